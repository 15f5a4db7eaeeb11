/*
 * rules.c -- behaviour segments: rules, their file, their counters, and
 * the calls of eventstore.h that manage and read them.  The model and the
 * invariants are in rules.h.
 *
 * RULES file (docs/FORMAT.md, "RULES"), little-endian:
 *   "ESRULES1" | u32 version (1) | u32 count |
 *   count x (varint length, the rule's canonical JSON) |
 *   u64 XXH3 of everything before (seed 0)
 */
#include <stdio.h>
#include <stdlib.h>
#include <yajl/yajl_tree.h>

#include "base/clock.h"
#include "base/event.h"
#include "base/json.h"
#include "base/mem.h"
#include "engine/identity.h"
#include "engine/query.h"
#include "engine/rules.h"
#include "store/dbint.h"
#include "store/gate.h"

#define RULES_MAGIC "ESRULES1"
#define RULES_VERSION 1
#define WITHIN_US_MAX (INT64_C(366) * 86400 * 1000000)

/* --- parsing ------------------------------------------------------------- */

static int rule_name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > ES_RULE_NAME_MAX)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
      return 0;
  return 1;
}

/* "<n>s|m|h|d" -> microseconds, or -1. */
static int64_t rule_within(const char *s) {
  char *end;
  long long n = strtoll(s, &end, 10);
  if (end == s || s[0] < '0' || s[0] > '9' || end[0] == '\0' || end[1] != '\0')
    return -1;
  int64_t unit = end[0] == 's'   ? 1
                 : end[0] == 'm' ? 60
                 : end[0] == 'h' ? 3600
                 : end[0] == 'd' ? 86400
                                 : 0;
  if (unit == 0 || n < 1 || n > 366 * 86400 || n * unit > 366 * 86400)
    return -1;
  return (int64_t)n * unit * 1000000;
}

static int rule_match(yajl_val m, es_rule *r) {
  if (!YAJL_IS_OBJECT(m))
    return ES_INVAL_BKPT("rule: \"match\" must be an object");
  for (size_t i = 0; i < m->u.object.len; i++) {
    const char *k = m->u.object.keys[i];
    yajl_val v = m->u.object.values[i];
    if (strcmp(k, "type") == 0) {
      r->type = YAJL_IS_STRING(v) ? es_type_from_name(YAJL_GET_STRING(v)) : 0;
      if (r->type == 0)
        return ES_INVAL_BKPT("rule: \"match.type\" must be one of track, page, "
                             "screen, identify, alias, group");
    } else if (strcmp(k, "event") == 0 || strcmp(k, "path") == 0) {
      char **dst = k[0] == 'e' ? &r->event : &r->path;
      if (!YAJL_IS_STRING(v) || !es__json_utf8_valid(YAJL_GET_STRING(v)))
        return ES_INVAL_BKPT("rule: \"match.%s\" must be a UTF-8 string", k);
      es__free(*dst);
      if (!(*dst = es__strdup(YAJL_GET_STRING(v))))
        return ES_NOMEM_BKPT();
    } else {
      return ES_INVAL_BKPT("rule: unknown key \"match.%s\" (want type, "
                           "event, path)",
                           k);
    }
  }
  return ES_OK;
}

static int rule_fields(yajl_val root, es_rule *r, char *within, size_t cap) {
  int have_name = 0, have_within = 0;
  r->at_least = 1;
  for (size_t i = 0; i < root->u.object.len; i++) {
    const char *k = root->u.object.keys[i];
    yajl_val v = root->u.object.values[i];
    const char *str = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
    if (strcmp(k, "name") == 0) {
      if (!str || !rule_name_ok(str))
        return ES_INVAL_BKPT("rule: \"name\" must match [A-Za-z0-9_-]{1,64}");
      strcpy(r->name, str);
      have_name = 1;
    } else if (strcmp(k, "match") == 0) {
      ES_TRY(rule_match(v, r));
    } else if (strcmp(k, "atLeast") == 0) {
      if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 1 ||
          YAJL_GET_INTEGER(v) > ES_RULE_AT_LEAST_MAX)
        return ES_INVAL_BKPT("rule: \"atLeast\" must be an integer from 1 to "
                             "%d",
                             ES_RULE_AT_LEAST_MAX);
      r->at_least = (uint32_t)YAJL_GET_INTEGER(v);
    } else if (strcmp(k, "within") == 0) {
      if (!str || (r->within_us = rule_within(str)) < 0 || strlen(str) >= cap)
        return ES_INVAL_BKPT("rule: \"within\" must be like \"7d\", \"12h\", "
                             "\"30m\" or \"90s\" (1s to 366d)");
      strcpy(within, str);
      have_within = 1;
    } else {
      return ES_INVAL_BKPT("rule: unknown key \"%s\" (want name, match, "
                           "atLeast, within)",
                           k);
    }
  }
  if (!have_name)
    return ES_INVAL_BKPT("rule: \"name\" is required");
  if (!have_within)
    return ES_INVAL_BKPT("rule: \"within\" is required");
  return ES_OK;
}

/* The canonical JSON of a parsed rule. */
static int rule_canonical(es_rule *r, const char *within) {
  es_buf b = {0};
  char num[32];
  int rc = es__buf_put(&b, "{\"name\":", 8);
  if (rc == ES_OK)
    rc = es__json_put_str(&b, r->name);
  if (rc == ES_OK)
    rc = es__buf_put(&b, ",\"match\":{", 10);
  const char *sep = "";
  if (rc == ES_OK && r->type) {
    snprintf(num, sizeof(num), "\"type\":\"%s\"", es_type_name(r->type));
    rc = es__buf_put(&b, num, strlen(num));
    sep = ",";
  }
  const char *names[] = {"event", "path"}, *vals[] = {r->event, r->path};
  for (int i = 0; rc == ES_OK && i < 2; i++) {
    if (!vals[i])
      continue;
    snprintf(num, sizeof(num), "%s\"%s\":", sep, names[i]);
    rc = es__buf_put(&b, num, strlen(num));
    if (rc == ES_OK)
      rc = es__json_put_str(&b, vals[i]);
    sep = ",";
  }
  snprintf(num, sizeof(num), "},\"atLeast\":%u,\"within\":", r->at_least);
  if (rc == ES_OK)
    rc = es__buf_put(&b, num, strlen(num));
  if (rc == ES_OK)
    rc = es__json_put_str(&b, within);
  if (rc == ES_OK)
    rc = es__buf_put(&b, "}", 2); /* with the NUL */
  if (rc == ES_OK)
    r->json = (char *)b.data;
  else
    es__buf_free(&b);
  return rc;
}

/* Parses a rule; see rules.h. */
int es__rule_parse(const char *json, es_rule **rule_out) {
  *rule_out = NULL;
  if (!json)
    return ES_INVAL_BKPT("rule: NULL");
  char why[256] = "", within[32];
  yajl_val root = yajl_tree_parse(json, why, sizeof(why));
  if (!root) {
    for (char *c = why; *c; c++)
      if (*c == '\n' || *c == '\r')
        *c = ' ';
    return ES_INVAL_BKPT("rule: not valid JSON: %s", why[0] ? why : "?");
  }
  es_rule *r = es__calloc(1, sizeof(*r));
  int rc = r ? ES_OK : ES_NOMEM_BKPT();
  if (rc == ES_OK)
    rc = YAJL_IS_OBJECT(root) ? rule_fields(root, r, within, sizeof(within))
                              : ES_INVAL_BKPT("rule: must be a JSON object");
  yajl_tree_free(root);
  if (rc == ES_OK)
    rc = rule_canonical(r, within);
  if (rc < 0) {
    es__rule_free(r);
    return rc;
  }
  r->max_ts = INT64_MIN;
  r->prune_at = 1024;
  *rule_out = r;
  return ES_OK;
}

void es__rule_free(es_rule *r) {
  if (!r)
    return;
  for (size_t i = 0; i < r->n; i++)
    es__free(es__rule_visitor(r, i)->id);
  es__free(r->vis);
  es__htab_free(&r->index);
  es__free(r->json);
  es__free(r->event);
  es__free(r->path);
  es__free(r);
}

/* --- counters ------------------------------------------------------------ */

/* Whether visitor `val` - 1 has the id `key`. */
static int rule_vis_eq(const void *ctx, uint32_t val, const void *key) {
  return strcmp(es__rule_visitor(ctx, val - 1)->id, key) == 0;
}

static uint64_t rule_hash(const char *id) {
  return es__hash64(id, strlen(id), 5);
}

/* Drops the visitors whose latest matching event is older than
 * `keep_from` (they are no member at any time from max_ts on, and nothing
 * but a late event revives them), and files the others in a table sized
 * for them.  On ES_ENOMEM nothing changed. */
static int rule_prune(es_rule *r, int64_t keep_from) {
  size_t vsize = es__rule_vsize(r), live = 0;
  for (size_t i = 0; i < r->n; i++) {
    const es_rvisitor *v = es__rule_visitor(r, i);
    live += v->ts[v->n - 1] >= keep_from;
  }
  es_htab index = {0};
  ES_TRY(es__htab_reserve(&index, 2 * live + 1));
  size_t k = 0;
  for (size_t i = 0; i < r->n; i++) {
    es_rvisitor *v = es__rule_visitor(r, i);
    if (v->ts[v->n - 1] < keep_from) {
      es__free(v->id);
      continue;
    }
    if (k != i)
      memcpy(r->vis + k * vsize, v, vsize);
    uint64_t h = rule_hash(v->id);
    es__htab_set(&index, es__htab_free_slot(&index, h), h, (uint32_t)++k);
  }
  es__htab_free(&r->index);
  r->index = index;
  r->n = k;
  r->prune_at = 2 * r->n + 1024;
  return ES_OK;
}

/* Matching events of v inside (t - within, t]. */
static uint32_t rule_window(const es_rule *r, const es_rvisitor *v, int64_t t) {
  uint32_t c = 0;
  for (uint32_t i = 0; i < v->n; i++)
    c += v->ts[i] <= t && v->ts[i] > t - r->within_us;
  return c;
}

static const char *rule_visitor(const es_event *ev) {
  return ev->anonymous_id && ev->anonymous_id[0] ? ev->anonymous_id
         : ev->user_id && ev->user_id[0]         ? ev->user_id
                                                 : NULL;
}

/* Counts one event; see rules.h. */
int es__rule_count(es_rule *r, const es_event *ev, int *crossed_out,
                   const char **visitor_out, uint32_t *count_out) {
  *crossed_out = 0;
  const char *id = rule_visitor(ev);
  if (!id || (r->type && ev->type != r->type) ||
      (r->event && (!ev->event || strcmp(r->event, ev->event) != 0)) ||
      (r->path && (!ev->path || strcmp(r->path, ev->path) != 0)))
    return ES_OK;
  if (ev->ts_us > r->max_ts)
    r->max_ts = ev->ts_us;
  if (r->n >= r->prune_at)
    ES_TRY(rule_prune(r, r->max_ts - r->within_us));
  ES_TRY(es__htab_reserve(&r->index, 1));
  uint64_t h = rule_hash(id);
  size_t i = es__htab_probe(&r->index, h, rule_vis_eq, r, id);
  if (r->index.slots[i].val == 0) {
    size_t vsize = es__rule_vsize(r);
    ES_TRY(es__grow((void **)&r->vis, &r->vis_cap, r->n + 1, vsize));
    char *copy = es__strdup(id);
    if (!copy)
      return ES_NOMEM_BKPT();
    es_rvisitor *nv = es__rule_visitor(r, r->n);
    nv->id = copy;
    nv->n = 0;
    es__htab_set(&r->index, i, h, (uint32_t)++r->n);
  }
  es_rvisitor *v = es__rule_visitor(r, r->index.slots[i].val - 1);
  int64_t t = ev->ts_us;
  int was = rule_window(r, v, t) >= r->at_least;
  /* keep the latest at_least times, ascending */
  if (v->n == r->at_least) {
    if (t <= v->ts[0])
      return ES_OK; /* older than everything kept: invariant 4 */
    memmove(v->ts, v->ts + 1, (v->n - 1) * sizeof(int64_t));
    v->n--;
  }
  uint32_t j = v->n;
  while (j > 0 && v->ts[j - 1] > t) {
    v->ts[j] = v->ts[j - 1];
    j--;
  }
  v->ts[j] = t;
  v->n++;
  uint32_t now = rule_window(r, v, t);
  if (!was && now >= r->at_least) {
    *crossed_out = 1;
    *visitor_out = v->id;
    *count_out = now;
  }
  return ES_OK;
}

int es__rule_is_member(const es_rule *r, const char *id, int64_t at_us) {
  uint32_t val =
      id ? es__htab_find(&r->index, rule_hash(id), rule_vis_eq, r, id) : 0;
  return val &&
         rule_window(r, es__rule_visitor(r, val - 1), at_us) >= r->at_least;
}

/* --- the RULES file ------------------------------------------------------ */

int es__rules_write(es_vfs *vfs, const char *tenant_dir,
                    const es_rules *rules) {
  es_buf b = {0};
  int rc = es__buf_put(&b, RULES_MAGIC, 8);
  if (rc == ES_OK)
    rc = es__buf_put_u32(&b, RULES_VERSION);
  if (rc == ES_OK)
    rc = es__buf_put_u32(&b, (uint32_t)rules->n);
  for (size_t i = 0; rc == ES_OK && i < rules->n; i++) {
    size_t len = strlen(rules->v[i]->json);
    rc = es__buf_put_varint(&b, len);
    if (rc == ES_OK)
      rc = es__buf_put(&b, rules->v[i]->json, len);
  }
  if (rc == ES_OK)
    rc = es__buf_put_u64(&b, es__hash64(b.data, b.len, 0));
  if (rc == ES_OK)
    rc = es__io_write_atomic(vfs, tenant_dir, "RULES", b.data, b.len);
  es__buf_free(&b);
  return rc;
}

void es__rules_free(es_rules *rules) {
  for (size_t i = 0; i < rules->n; i++)
    es__rule_free(rules->v[i]);
  es__free(rules->v);
  rules->v = NULL;
  rules->n = 0;
}

int es__rules_parse(const uint8_t *p, size_t n, const char *path,
                    es_rules *rules) {
  if (n < 24 || memcmp(p, RULES_MAGIC, 8) != 0 ||
      es__get_le64(p + n - 8) != es__hash64(p, n - 8, 0))
    return ES_CORRUPT_BKPT("%s: offset 0: bad RULES header or checksum", path);
  if (es__get_le32(p + 8) > RULES_VERSION)
    return ES_ERR(ES_EVERSION, "%s: RULES version %u is newer than %u", path,
                  es__get_le32(p + 8), RULES_VERSION);
  uint32_t count = es__get_le32(p + 12);
  if (count > ES_RULES_MAX)
    return ES_CORRUPT_BKPT("%s: offset 12: %u rules", path, count);
  rules->v = es__calloc(count ? count : 1, sizeof(es_rule *));
  if (!rules->v)
    return ES_NOMEM_BKPT();
  es_rd rd = es__rd(p + 16, n - 24);
  for (uint32_t i = 0; i < count; i++) {
    size_t at = (size_t)(rd.p - p); /* offsets name the damage */
    uint64_t len = es__rd_varint(&rd);
    const uint8_t *text = es__rd_bytes(&rd, len);
    if (!text)
      return ES_CORRUPT_BKPT("%s: offset %zu: rule %u runs past the end", path,
                             at, i);
    char *json = es__malloc(len + 1);
    if (!json)
      return ES_NOMEM_BKPT();
    memcpy(json, text, len);
    json[len] = '\0';
    int rc = es__rule_parse(json, &rules->v[rules->n]);
    es__free(json);
    if (rc == ES_EINVAL)
      return ES_CORRUPT_BKPT("%s: offset %zu: rule %u does not parse: %s", path,
                             at, i, es_errdetail());
    ES_TRY(rc);
    rules->n++;
  }
  if (rd.p != rd.end)
    return ES_CORRUPT_BKPT("%s: offset %zu: bytes after the last rule", path,
                           (size_t)(rd.p - p));
  return ES_OK;
}

int es__rules_read(es_vfs *vfs, const char *tenant_dir, es_rules *rules) {
  memset(rules, 0, sizeof(*rules));
  char path[ES_PATH_MAX];
  ES_TRY(es__path_join(path, sizeof(path), tenant_dir, "RULES"));
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = es__io_read_all(vfs, path, &buf, &len);
  if (rc == ES_ENOTFOUND) {
    es__error_clear();
    return ES_OK;
  }
  ES_TRY(rc);
  rc = es__rules_parse(buf, len, path, rules);
  es__free(buf);
  if (rc < 0)
    es__rules_free(rules);
  return rc;
}

/* --- the database's side ------------------------------------------------- */

/* The latest event time a tenant view holds (INT64_MIN when empty). */
static int64_t view_max_ts(const es_tenant_view *v) {
  int64_t max = INT64_MIN;
  for (size_t i = 0; i < v->set->n; i++)
    if (v->set->segs[i]->rows > 0 && v->set->segs[i]->max_ts > max)
      max = v->set->segs[i]->max_ts;
  for (size_t i = 0; i < v->nmts; i++) {
    size_t n = es__memtable_visible(v->mts[i]);
    for (size_t j = 0; j < n; j++)
      if (es__memtable_row(v->mts[i], j)->ts_us > max)
        max = es__memtable_row(v->mts[i], j)->ts_us;
  }
  return max;
}

/* Fills a new rule's counters from the tenant's stored events: one scan
 * of the window that ends at the tenant's latest event. */
static int rule_fill(es_db *db, es_tenant *t, es_rule *r) {
  es_tenant_view v;
  ES_TRY(es__tenant_view(t, &v));
  int64_t max = view_max_ts(&v);
  es__tenant_view_release(&v);
  if (max == INT64_MIN)
    return ES_OK;
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = t->name;
  spec.from_us = max - r->within_us;
  spec.fields =
      ES_FIELD_EVENT | ES_FIELD_PATH | ES_FIELD_ANONYMOUS_ID | ES_FIELD_USER_ID;
  es_cursor *cur;
  ES_TRY(es_scan(db, &spec, &cur));
  es_event ev;
  int rc, crossed;
  const char *who;
  uint32_t n;
  while ((rc = es_cursor_next(cur, &ev)) == 1)
    if ((rc = es__rule_count(r, &ev, &crossed, &who, &n)) < 0)
      break;
  es_cursor_close(cur);
  return rc < 0 ? rc : ES_OK;
}

/* Loads RULES at open and fills the counters; see rules.h. */
int es__tenant_rules_load(es_db *db, es_tenant *t) {
  es_rules rules;
  ES_TRY(es__rules_read(db->vfs, t->dir, &rules));
  int rc = ES_OK;
  for (size_t i = 0; rc == ES_OK && i < rules.n; i++)
    rc = rule_fill(db, t, rules.v[i]);
  if (rc < 0) {
    es__rules_free(&rules);
    return rc;
  }
  pthread_mutex_lock(&t->rules_mu);
  es__rules_free(t->rules);
  *t->rules = rules;
  pthread_mutex_unlock(&t->rules_mu);
  return ES_OK;
}

/* Counts an append's rows into the rules and fires; see rules.h. */
int es__tenant_rules_count(es_db *db, es_tenant *t, const uint8_t *rows,
                           size_t rows_len, uint32_t count, int fire) {
  pthread_mutex_lock(&t->rules_mu);
  int rc = ES_OK;
  size_t off = 0;
  for (uint32_t i = 0; t->rules->n > 0 && rc == ES_OK && i < count; i++) {
    es_event ev;
    size_t used = 0;
    rc = es__event_decode(rows + off, rows_len - off, &ev, &used);
    off += used;
    for (size_t k = 0; rc == ES_OK && k < t->rules->n; k++) {
      int crossed = 0;
      es_trigger tr = {.tenant = t->name, .rule = t->rules->v[k]->name};
      rc = es__rule_count(t->rules->v[k], &ev, &crossed, &tr.person, &tr.count);
      if (rc == ES_OK && crossed && fire && db->opts.trigger.fn) {
        tr.ts_us = ev.ts_us;
        db->opts.trigger.fn(db->opts.trigger.ud, &tr);
      }
    }
  }
  pthread_mutex_unlock(&t->rules_mu);
  return rc;
}

/* --- es_rule_put, es_rule_delete ----------------------------------------- */

typedef struct rule_change {
  es_db *db;
  es_tenant *t;
  es_rule *add;     /* put: the new rule (taken over on success) */
  const char *drop; /* delete: the name */
} rule_change;

/* On the writer thread: fills the new rule, writes RULES, swaps it in. */
static int rule_change_run(void *arg) {
  rule_change *c = arg;
  es_tenant *t = c->t;
  const char *name = c->add ? c->add->name : c->drop;
  /* only this thread changes t->rules, so reading it unlocked is safe */
  size_t at = 0;
  while (at < t->rules->n && strcmp(t->rules->v[at]->name, name) < 0)
    at++;
  int exists = at < t->rules->n && strcmp(t->rules->v[at]->name, name) == 0;
  if (!c->add && !exists)
    return ES_ERR(ES_ENOTFOUND, "no rule \"%s\" in tenant %s", name, t->name);
  if (c->add && !exists && t->rules->n >= ES_RULES_MAX)
    return ES_INVAL_BKPT("rule: tenant %s has %d rules already (the most)",
                         t->name, ES_RULES_MAX);
  if (c->add)
    ES_TRY(rule_fill(c->db, t, c->add));
  es_rules next = {es__malloc((t->rules->n + 1) * sizeof(es_rule *)), 0};
  if (!next.v)
    return ES_NOMEM_BKPT();
  for (size_t i = 0; i < t->rules->n; i++) {
    if (i == at && c->add)
      next.v[next.n++] = c->add;
    if (!(i == at && exists))
      next.v[next.n++] = t->rules->v[i];
  }
  if (at == t->rules->n && c->add)
    next.v[next.n++] = c->add;
  int rc = es__tenant_dir_make(c->db, t);
  if (rc == ES_OK)
    rc = es__rules_write(c->db->vfs, t->dir, &next);
  if (rc < 0) { /* judged here: the I/O layer's mark is this thread's */
    es__free(next.v);
    return es__gate_io_error(c->db, ES_GATE_CALL, rc);
  }
  pthread_mutex_lock(&t->rules_mu);
  es_rule *old = exists ? t->rules->v[at] : NULL;
  es__free(t->rules->v);
  *t->rules = next;
  pthread_mutex_unlock(&t->rules_mu);
  es__rule_free(old);
  c->add = NULL;
  return ES_OK;
}

static int rule_change_submit(es_db *db, const char *tenant, rule_change *c) {
  ES_TRY(es__tenant_check(tenant));
  ES_TRY(es__gate_enter(db, c->add ? "es_rule_put" : "es_rule_delete"));
  ES_TRY(es__tenant_get(db, tenant, c->add != NULL, &c->t));
  if (!c->t)
    return ES_ERR(ES_ENOTFOUND, "no rule \"%s\" in tenant %s", c->drop, tenant);
  c->db = db;
  return es__shard_call(db, c->t->shard, rule_change_run, c);
}

int es_rule_put(es_db *db, const char *tenant, const char *rule_json) {
  es__error_clear();
  if (!db || !rule_json)
    return ES_INVAL_BKPT("es_rule_put: NULL argument");
  rule_change c = {0};
  ES_TRY(es__rule_parse(rule_json, &c.add));
  int rc = rule_change_submit(db, tenant, &c);
  es__rule_free(c.add); /* NULL once taken over */
  return rc;
}

int es_rule_delete(es_db *db, const char *tenant, const char *name) {
  es__error_clear();
  if (!db || !name)
    return ES_INVAL_BKPT("es_rule_delete: NULL argument");
  rule_change c = {.drop = name};
  return rule_change_submit(db, tenant, &c);
}

/* --- reading: list, members, check ---------------------------------------- */

/* Looks the tenant up and locks its rules (*t_out NULL: no such tenant,
 * nothing locked). */
static int rules_begin(es_db *db, const char *tenant, es_tenant **t_out) {
  *t_out = NULL;
  if (!db)
    return ES_INVAL_BKPT("NULL handle");
  ES_TRY(es__tenant_check(tenant));
  if (atomic_load(&db->closing))
    return ES_ERR(ES_ECLOSED, "database is closing");
  ES_TRY(es__tenant_get(db, tenant, 0, t_out));
  if (*t_out)
    pthread_mutex_lock(&(*t_out)->rules_mu);
  return ES_OK;
}

static es_rule *rules_find(es_tenant *t, const char *name) {
  for (size_t i = 0; t && name && i < t->rules->n; i++)
    if (strcmp(t->rules->v[i]->name, name) == 0)
      return t->rules->v[i];
  return NULL;
}

static int64_t rules_at(int64_t at_us) {
  return at_us ? at_us : es__clock_now_us();
}

static size_t rule_members_count(const es_rule *r, int64_t at) {
  size_t n = 0;
  for (size_t i = 0; i < r->n; i++)
    n += rule_window(r, es__rule_visitor(r, i), at) >= r->at_least;
  return n;
}

int es_rules_list(es_db *db, const char *tenant, int64_t at_us,
                  char **json_out) {
  es__error_clear();
  if (!json_out)
    return ES_INVAL_BKPT("es_rules_list: json_out is NULL");
  *json_out = NULL;
  es_tenant *t;
  ES_TRY(rules_begin(db, tenant, &t));
  int64_t at = rules_at(at_us);
  es_buf b = {0};
  int rc = es__buf_put(&b, "{\"rules\":[", 10);
  for (size_t i = 0; t && rc == ES_OK && i < t->rules->n; i++) {
    const es_rule *r = t->rules->v[i];
    char tail[48];
    snprintf(tail, sizeof(tail), ",\"members\":%zu}",
             rule_members_count(r, at));
    if (i > 0)
      rc = es__buf_put(&b, ",", 1);
    if (rc == ES_OK)
      rc = es__buf_put(&b, r->json, strlen(r->json) - 1); /* no '}' */
    if (rc == ES_OK)
      rc = es__buf_put(&b, tail, strlen(tail));
  }
  if (t)
    pthread_mutex_unlock(&t->rules_mu);
  if (rc == ES_OK)
    rc = es__buf_put(&b, "]}", 3);
  if (rc < 0) {
    es__buf_free(&b);
    return rc;
  }
  *json_out = (char *)b.data;
  return ES_OK;
}

static int cmp_strp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int es_rule_members(es_db *db, const char *tenant, const char *name,
                    int64_t at_us, char **json_out) {
  es__error_clear();
  if (!json_out)
    return ES_INVAL_BKPT("es_rule_members: json_out is NULL");
  *json_out = NULL;
  es_tenant *t;
  ES_TRY(rules_begin(db, tenant, &t));
  es_rule *r = rules_find(t, name);
  int64_t at = rules_at(at_us);
  es_buf b = {0};
  const char **ids = NULL;
  size_t n = 0;
  int rc = r ? ES_OK
             : ES_ERR(ES_ENOTFOUND, "no rule \"%s\" in tenant %s",
                      name ? name : "(null)", tenant);
  if (rc == ES_OK &&
      !(ids = es__malloc((rule_members_count(r, at) + 1) * sizeof(char *))))
    rc = ES_NOMEM_BKPT();
  for (size_t i = 0; rc == ES_OK && i < r->n; i++)
    if (rule_window(r, es__rule_visitor(r, i), at) >= r->at_least)
      ids[n++] = es__rule_visitor(r, i)->id;
  if (rc == ES_OK) {
    qsort(ids, n, sizeof(char *), cmp_strp);
    char when[ES_TIME_TEXT_SIZE];
    es__time_format(at, 0, when, sizeof(when));
    rc = es__buf_put(&b, "{\"rule\":", 8);
    if (rc == ES_OK)
      rc = es__json_put_str(&b, r->name);
    if (rc == ES_OK)
      rc = es__buf_put(&b, ",\"at\":", 6);
    if (rc == ES_OK)
      rc = es__json_put_str(&b, when);
    if (rc == ES_OK)
      rc = es__buf_put(&b, ",\"members\":[", 12);
  }
  for (size_t i = 0; rc == ES_OK && i < n; i++) {
    if (i > 0)
      rc = es__buf_put(&b, ",", 1);
    if (rc == ES_OK)
      rc = es__json_put_str(&b, ids[i]);
  }
  if (t)
    pthread_mutex_unlock(&t->rules_mu);
  if (rc == ES_OK)
    rc = es__buf_put(&b, "]}", 3);
  es__free(ids);
  if (rc < 0) {
    es__buf_free(&b);
    return rc;
  }
  *json_out = (char *)b.data;
  return ES_OK;
}

int es_rule_check(es_db *db, const char *tenant, const char *name,
                  const char *person, int64_t at_us, int *member_out) {
  es__error_clear();
  if (!member_out || !person)
    return ES_INVAL_BKPT("es_rule_check: NULL argument");
  *member_out = 0;
  if (!db)
    return ES_INVAL_BKPT("NULL handle");
  ES_TRY(es__tenant_check(tenant));
  /* the person's linked ids: the tenant's cached identity map */
  es_identity *map = NULL;
  ES_TRY(es__identity_load(db, tenant, &map));
  const char *ids[ES_IDENTITY_IDS_MAX];
  size_t nids = es__identity_ids(map, person, ids);
  es_tenant *t;
  int rc = rules_begin(db, tenant, &t);
  es_rule *r = rc == ES_OK ? rules_find(t, name) : NULL;
  int64_t at = rules_at(at_us);
  for (size_t i = 0; r && i < nids && !*member_out; i++)
    *member_out = es__rule_is_member(r, ids[i], at);
  if (t)
    pthread_mutex_unlock(&t->rules_mu);
  es__identity_free(map);
  ES_TRY(rc);
  if (!r)
    return ES_ERR(ES_ENOTFOUND, "no rule \"%s\" in tenant %s",
                  name ? name : "(null)", tenant);
  return ES_OK;
}
