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
#include "store/tomb.h"

#define RULES_MAGIC "ESRULES1"
#define RULES_VERSION 1
#define RSTATE_NAME "RSTATE"
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
  es__free(r->series);
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

/* The counters of id (NULL: none); valid until the next insertion. */
static es_rvisitor *rule_get(const es_rule *r, const char *id) {
  uint32_t val = es__htab_find(&r->index, rule_hash(id), rule_vis_eq, r, id);
  return val ? es__rule_visitor(r, val - 1) : NULL;
}

/* The ids of id's person: the map's, or id alone. */
static size_t rule_person_ids(es_identity *ids, const char *id,
                              const char **buf) {
  if (ids)
    return es__identity_ids(ids, id, buf);
  buf[0] = id;
  return 1;
}

/* The smallest of a person's ids: the name it goes by (rules.h). */
static const char *rule_person_name(const char *const *ids, size_t n) {
  const char *min = ids[0];
  for (size_t i = 1; i < n; i++)
    if (strcmp(ids[i], min) < 0)
      min = ids[i];
  return min;
}

/* Counts a person's matching events in (at - within, at]; see rules.h. */
uint32_t es__rule_person_count(const es_rule *r, const char *const *ids,
                               size_t n, int64_t at_us) {
  uint32_t c = 0;
  for (size_t i = 0; i < n; i++) {
    const es_rvisitor *v = rule_get(r, ids[i]);
    if (v)
      c += rule_window(r, v, at_us);
  }
  return c;
}

/* The latest matching event time of a person (INT64_MIN: none kept). */
static int64_t rule_person_latest(const es_rule *r, const char *const *ids,
                                  size_t n) {
  int64_t max = INT64_MIN;
  for (size_t i = 0; i < n; i++) {
    const es_rvisitor *v = rule_get(r, ids[i]);
    if (v && v->n > 0 && v->ts[v->n - 1] > max)
      max = v->ts[v->n - 1];
  }
  return max;
}

/* Whether ev matches r (not yet whether it has a visitor id). */
static int rule_matches(const es_rule *r, const es_event *ev) {
  return !((r->type && ev->type != r->type) ||
           (r->event && (!ev->event || strcmp(r->event, ev->event) != 0)) ||
           (r->path && (!ev->path || strcmp(r->path, ev->path) != 0)));
}

/* The counters of id, made when new; valid until the next insertion. */
static int rule_visitor_get(es_rule *r, const char *id, es_rvisitor **v_out) {
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
  *v_out = es__rule_visitor(r, r->index.slots[i].val - 1);
  return ES_OK;
}

/* Keeps t among v's latest at_least times (ascending); 0 when t is older
 * than all of a full set (invariant 4: not kept). */
static int rule_keep(const es_rule *r, es_rvisitor *v, int64_t t) {
  if (v->n == r->at_least) {
    if (t <= v->ts[0])
      return 0;
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
  return 1;
}

/* Adds a visitor from RSTATE; see rules.h. */
int es__rule_visitor_add(es_rule *r, const char *id, const int64_t *ts,
                         uint32_t n) {
  if (!id[0] || n < 1 || n > r->at_least)
    return ES_INVAL_BKPT("visitor \"%s\": %u times (want 1 to %u)", id, n,
                         r->at_least);
  for (uint32_t i = 1; i < n; i++)
    if (ts[i] < ts[i - 1])
      return ES_INVAL_BKPT("visitor \"%s\": times out of order", id);
  if (rule_get(r, id))
    return ES_INVAL_BKPT("visitor \"%s\" twice", id);
  r->prune_at = SIZE_MAX; /* loading: no pruning midway */
  es_rvisitor *v = NULL;
  ES_TRY(rule_visitor_get(r, id, &v));
  memcpy(v->ts, ts, n * sizeof(int64_t));
  v->n = n;
  if (ts[n - 1] > r->max_ts)
    r->max_ts = ts[n - 1];
  return ES_OK;
}

/* Counts one event; see rules.h. */
int es__rule_count(es_rule *r, es_identity *ids, const es_event *ev,
                   int *crossed_out, const char **person_out,
                   uint32_t *count_out) {
  *crossed_out = 0;
  const char *id = rule_visitor(ev);
  if (!id || !rule_matches(r, ev))
    return ES_OK;
  if (ev->ts_us > r->max_ts)
    r->max_ts = ev->ts_us;
  es_rvisitor *v = NULL;
  ES_TRY(rule_visitor_get(r, id, &v));
  const char *pid[ES_IDENTITY_IDS_MAX];
  size_t np = rule_person_ids(ids, id, pid);
  int64_t t = ev->ts_us;
  int was = es__rule_person_count(r, pid, np, t) >= r->at_least;
  if (!rule_keep(r, v, t))
    return ES_OK;
  uint32_t now = es__rule_person_count(r, pid, np, t);
  if (!was && now >= r->at_least) {
    *crossed_out = 1;
    *person_out = np > 1 ? rule_person_name(pid, np) : v->id;
    *count_out = now;
  }
  return ES_OK;
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
  es__identity_free(rules->ids);
  rules->ids = NULL;
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
    if ((rc = es__rule_count(r, NULL, &ev, &crossed, &who, &n)) < 0)
      break;
  es_cursor_close(cur);
  return rc < 0 ? rc : ES_OK;
}

/* Whether the tenant holds memtable rows (then RSTATE is not used: those
 * rows may lie below its LSN and would not be counted again). */
static int rules_have_memtable_rows(es_tenant *t) {
  pthread_mutex_lock(&t->mu);
  int any = t->nimm > 0 || (t->active && es__memtable_visible(t->active) > 0);
  pthread_mutex_unlock(&t->mu);
  return any;
}

/* Reads the tenant's RSTATE into *st (st->rules.n 0: none, or not usable:
 * damaged or unreadable, which is logged). */
static void rstate_read(es_db *db, es_tenant *t, es_rstate *st) {
  memset(st, 0, sizeof(*st));
  char path[ES_PATH_MAX];
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = es__path_join(path, sizeof(path), t->dir, RSTATE_NAME);
  if (rc == ES_OK)
    rc = es__io_read_all(db->vfs, path, &buf, &len);
  if (rc == ES_OK)
    rc = es__rstate_parse(buf, len, path, st);
  es__free(buf);
  if (rc < 0) {
    if (rc != ES_ENOTFOUND)
      es__db_log(db, 1,
                 "tenant %s: rule state not used (rules are counted "
                 "again from the rows): %s",
                 t->name, es_errdetail());
    es__error_clear();
    es__rules_free(&st->rules);
    st->lsn = 0;
  }
}

/* The rule of `rules` with r's definition, or NULL. */
static es_rule *rules_same(const es_rules *rules, const es_rule *r) {
  for (size_t i = 0; i < rules->n; i++)
    if (rules->v[i] && strcmp(rules->v[i]->json, r->json) == 0)
      return rules->v[i];
  return NULL;
}

/* Moves src's counters (and, with series, its series) into dst, which
 * has the same definition and no counters; src keeps none. */
static void rule_take(es_rule *dst, es_rule *src, int counters) {
  if (counters) {
    es_htab tmp = dst->index;
    dst->index = src->index;
    src->index = tmp;
    unsigned char *vis = dst->vis;
    size_t cap = dst->vis_cap;
    dst->vis = src->vis, dst->vis_cap = src->vis_cap, dst->n = src->n;
    src->vis = vis, src->vis_cap = cap, src->n = 0;
    dst->max_ts = src->max_ts;
    dst->prune_at = 2 * dst->n + 1024;
  }
  if (!dst->series) {
    dst->series = src->series, dst->nseries = src->nseries;
    src->series = NULL, src->nseries = 0;
  }
}

/* Loads RULES and the counters (RSTATE or a scan); see rules.h. */
int es__tenant_rules_load(es_db *db, es_tenant *t, int rebuild) {
  es_rules rules;
  ES_TRY(es__rules_read(db->vfs, t->dir, &rules));
  es_rstate st = {0};
  if (rules.n > 0)
    rstate_read(db, t, &st);
  uint64_t flushed = t->man.flushed_lsn;
  int state_ok = !rebuild && st.rules.n > 0 && st.lsn >= flushed &&
                 !rules_have_memtable_rows(t);
  int rc = ES_OK, filled = 0;
  for (size_t i = 0; rc == ES_OK && i < rules.n; i++) {
    es_rule *r = rules.v[i], *s = rules_same(&st.rules, r);
    pthread_mutex_lock(&t->rules_mu); /* the series kept in memory first */
    es_rule *mem = rules_same(t->rules, r);
    if (mem && mem->series) {
      r->series = es__malloc(mem->nseries * sizeof(es_rpoint));
      if (r->series) {
        memcpy(r->series, mem->series, mem->nseries * sizeof(es_rpoint));
        r->nseries = mem->nseries;
      }
    }
    pthread_mutex_unlock(&t->rules_mu);
    if (s && state_ok) {
      rule_take(r, s, 1);
      r->base_lsn = st.lsn;
      continue;
    }
    if (s)
      rule_take(r, s, 0);
    r->base_lsn = flushed;
    rc = rule_fill(db, t, r);
    filled = 1;
  }
  es__rules_free(&st.rules);
  if (rc < 0) {
    es__rules_free(&rules);
    return rc;
  }
  pthread_mutex_lock(&t->rules_mu);
  for (size_t i = 0; i < t->rules->n; i++)
    es__rule_free(t->rules->v[i]);
  es__free(t->rules->v);
  t->rules->v = rules.v;
  t->rules->n = rules.n;
  uint64_t lsn = state_ok && st.lsn > flushed ? st.lsn : flushed;
  if (lsn > atomic_load(&t->rules->lsn))
    atomic_store(&t->rules->lsn, lsn);
  t->rules->dirty |= filled || rebuild;
  t->rules->lost = 0; /* counted afresh */
  pthread_mutex_unlock(&t->rules_mu);
  return ES_OK;
}

/* Hides the ids an erase request names (es__rstate_encode's hide). */
static int rstate_hide(const void *ud, const char *id) {
  return es__tomb_hides_id(ud, id);
}

static int rules_members_persons(const es_rule *r, es_identity *m, int64_t at,
                                 size_t *n_out);

/* Adds the point (this hour, members now) to r's series. */
static int rule_series_note(es_rule *r, es_identity *m, int64_t now) {
  size_t members = 0;
  ES_TRY(rules_members_persons(r, m, now, &members));
  int64_t hour = now - ((now % 3600000000) + 3600000000) % 3600000000;
  es_rpoint p = {hour, members > UINT32_MAX ? UINT32_MAX : (uint32_t)members};
  if (r->nseries > 0 && r->series[r->nseries - 1].hour_us >= hour) {
    r->series[r->nseries - 1].members = p.members; /* the hour's last */
    return ES_OK;
  }
  if (r->nseries == ES_RULE_SERIES_MAX) {
    memmove(r->series, r->series + 1, (r->nseries - 1) * sizeof(es_rpoint));
    r->nseries--;
  }
  es_rpoint *s = es__realloc(r->series, (r->nseries + 1) * sizeof(es_rpoint));
  if (!s)
    return ES_NOMEM_BKPT();
  r->series = s;
  r->series[r->nseries++] = p;
  return ES_OK;
}

/* Writes RSTATE; see rules.h. */
int es__tenant_rules_save(es_db *db, es_tenant *t) {
  if (db->opts.read_only)
    return ES_OK;
  pthread_mutex_lock(&t->man_mu);
  uint64_t flushed = t->man.flushed_lsn;
  pthread_mutex_unlock(&t->man_mu);
  if (atomic_load(&t->rules->replay_lsn) > flushed)
    return ES_OK; /* replayed rows not yet durable: after a flush */
  pthread_mutex_lock(&t->rules->save_mu);
  /* the series counts persons as es_rule_persons does: without the
   * writer's map (built only once a trigger needs it), the identity log's */
  es_identity *own = NULL;
  if (t->rules->dirty &&
      (!t->rules->ids || atomic_load(&t->rules->ids_stale)) &&
      es__identity_load(db, t->name, &own) < 0) {
    es__error_clear(); /* counted per id, as before the map existed */
    own = NULL;
  }
  pthread_mutex_lock(&t->rules_mu);
  int rc = ES_OK, dirty = t->rules->dirty,
      none = t->rules->n == 0 || t->rules->lost; /* lost: removed */
  es_buf b = {0};
  es_tomb *tb = NULL;
  if (dirty && !none) {
    int64_t now = es__clock_now_us();
    es_identity *m = t->rules->ids && !atomic_load(&t->rules->ids_stale)
                         ? t->rules->ids
                         : own;
    for (size_t k = 0; rc == ES_OK && k < t->rules->n; k++)
      rc = rule_series_note(t->rules->v[k], m, now);
    tb = es__tomb_get(db, t); /* pending erase requests: never written */
    if (rc == ES_OK)
      rc = es__rstate_encode(&b, atomic_load(&t->rules->lsn), t->rules,
                             tb ? rstate_hide : NULL, tb);
  }
  t->rules->dirty = 0; /* a later change sets it again */
  pthread_mutex_unlock(&t->rules_mu);
  es__tomb_unref(tb);
  char path[ES_PATH_MAX];
  if (rc == ES_OK && dirty && !none)
    rc = es__io_write_atomic(db->vfs, t->dir, RSTATE_NAME, b.data, b.len);
  else if (rc == ES_OK && dirty && none &&
           (rc = es__path_join(path, sizeof(path), t->dir, RSTATE_NAME)) ==
               ES_OK &&
           (rc = db->vfs->unlink(db->vfs, path)) == ES_ENOTFOUND) {
    es__error_clear();
    rc = ES_OK;
  }
  if (rc < 0 && dirty) { /* written next time, then */
    pthread_mutex_lock(&t->rules_mu);
    t->rules->dirty = 1;
    pthread_mutex_unlock(&t->rules_mu);
  }
  es__buf_free(&b);
  pthread_mutex_unlock(&t->rules->save_mu);
  es__identity_free(own);
  return rc;
}

/* The writer's identity map, built or rebuilt when it is missing or an
 * unlink made it stale (writer thread; rules.h, 5). */
static int rules_ids_ensure(es_db *db, es_tenant *t) {
  if (t->rules->ids && !atomic_load(&t->rules->ids_stale))
    return ES_OK;
  atomic_store(&t->rules->ids_stale, 0); /* an unlink from now on: again */
  es_identity *m = NULL;
  int rc = es__identity_build(db, t->name, &m);
  if (rc < 0) {
    atomic_store(&t->rules->ids_stale, 1);
    return rc;
  }
  pthread_mutex_lock(&t->rules_mu);
  es_identity *old = t->rules->ids;
  t->rules->ids = m;
  pthread_mutex_unlock(&t->rules_mu);
  es__identity_free(old);
  return ES_OK;
}

/* The two ids a link event joins (NULLs for other events). */
static void rules_link_ids(const es_event *ev, const char **a, const char **b) {
  *a = *b = NULL;
  if (ev->type == ES_TYPE_IDENTIFY)
    *a = ev->user_id, *b = ev->anonymous_id;
  else if (ev->type == ES_TYPE_ALIAS)
    *a = ev->previous_id, *b = ev->user_id;
}

/* One person's state before a link, per rule: the time it is judged at
 * and whether either side was a member then. */
typedef struct link_before {
  int64_t at;
  int was;
} link_before;

/* Applies a link event to the writer's map and fires for every rule in
 * which it made the joined person a member (rules.h). */
static int rules_link(es_db *db, es_tenant *t, const es_event *ev, int fire) {
  es_identity *m = t->rules->ids;
  const char *a, *b;
  rules_link_ids(ev, &a, &b);
  if (!m || !a || !b || !es__identity_linkable(a) ||
      !es__identity_linkable(b) || strcmp(a, b) == 0)
    return ES_OK;
  if (strcmp(es__identity_root(m, a), es__identity_root(m, b)) == 0)
    return ES_OK; /* one person already */
  const char *ia[ES_IDENTITY_IDS_MAX], *ib[ES_IDENTITY_IDS_MAX];
  size_t na = es__identity_ids(m, a, ia), nb = es__identity_ids(m, b, ib);
  link_before before[ES_RULES_MAX];
  for (size_t k = 0; k < t->rules->n; k++) {
    const es_rule *r = t->rules->v[k];
    int64_t at = ev->ts_us, la = rule_person_latest(r, ia, na),
            lb = rule_person_latest(r, ib, nb);
    at = la > at ? la : at;
    at = lb > at ? lb : at;
    before[k].at = at;
    before[k].was = es__rule_person_count(r, ia, na, at) >= r->at_least ||
                    es__rule_person_count(r, ib, nb, at) >= r->at_least;
  }
  ES_TRY(es__identity_apply(m, ev));
  const char *ids[ES_IDENTITY_IDS_MAX];
  size_t n = es__identity_ids(m, a, ids);
  if (n != na + nb) /* not joined: the cap, or an unlink covers it */
    return ES_OK;
  for (size_t k = 0; fire && db->opts.trigger.fn && k < t->rules->n; k++) {
    const es_rule *r = t->rules->v[k];
    uint32_t now = es__rule_person_count(r, ids, n, before[k].at);
    if (before[k].was || now < r->at_least)
      continue;
    es_trigger tr = {.tenant = t->name,
                     .rule = r->name,
                     .person = rule_person_name(ids, n),
                     .ts_us = before[k].at,
                     .count = now};
    db->opts.trigger.fn(db->opts.trigger.ud, &tr);
  }
  return ES_OK;
}

/* Counts an append's rows into the rules and fires; see rules.h. */
int es__tenant_rules_count(es_db *db, es_tenant *t, const uint8_t *rows,
                           size_t rows_len, uint32_t count, uint64_t lsn,
                           int fire) {
  if (!fire && !db->opts.read_only && lsn > atomic_load(&t->rules->lsn) &&
      lsn > atomic_load(&t->rules->replay_lsn))
    atomic_store(&t->rules->replay_lsn, lsn); /* not known durable */
  if (t->rules->n == 0) { /* only this thread changes the list */
    if (lsn > atomic_load(&t->rules->lsn)) /* a rule put scans it later */
      atomic_store(&t->rules->lsn, lsn);
    return ES_OK;
  }
  /* triggers need the writer's map; replay fires none (invariant 2) */
  int rc = fire ? rules_ids_ensure(db, t) : ES_OK;
  pthread_mutex_lock(&t->rules_mu);
  if (rc < 0) { /* these rows go uncounted: no state may claim them */
    t->rules->lost = t->rules->dirty = 1;
    pthread_mutex_unlock(&t->rules_mu);
    return rc;
  }
  es_identity *ids = fire ? t->rules->ids : NULL;
  size_t off = 0;
  for (uint32_t i = 0; rc == ES_OK && i < count; i++) {
    es_event ev;
    size_t used = 0;
    rc = es__event_decode(rows + off, rows_len - off, &ev, &used);
    off += used;
    for (size_t k = 0; rc == ES_OK && k < t->rules->n; k++) {
      if (lsn <= t->rules->v[k]->base_lsn)
        continue; /* in its counters already (rules.h, 2) */
      int crossed = 0;
      es_trigger tr = {.tenant = t->name, .rule = t->rules->v[k]->name};
      rc = es__rule_count(t->rules->v[k], ids, &ev, &crossed, &tr.person,
                          &tr.count);
      if (rc == ES_OK && crossed && fire && db->opts.trigger.fn) {
        tr.ts_us = ev.ts_us;
        db->opts.trigger.fn(db->opts.trigger.ud, &tr);
      }
    }
    if (rc == ES_OK && ids)
      rc = rules_link(db, t, &ev, fire);
  }
  /* with the counters, under the lock: a save sees both or neither */
  if (lsn > atomic_load(&t->rules->lsn))
    atomic_store(&t->rules->lsn, lsn);
  t->rules->dirty = 1;
  t->rules->lost |= rc < 0;
  pthread_mutex_unlock(&t->rules_mu);
  return rc;
}

/* Forgets ids in every rule; see rules.h. */
void es__tenant_rules_forget(es_tenant *t, const char *const *ids, size_t n) {
  pthread_mutex_lock(&t->rules_mu);
  for (size_t k = 0; k < t->rules->n; k++) {
    es_rule *r = t->rules->v[k];
    size_t gone = 0;
    for (size_t i = 0; i < n; i++) {
      es_rvisitor *v = rule_get(r, ids[i]);
      if (v && v->n > 0) { /* no time: a member at no time, pruned next */
        v->ts[0] = INT64_MIN;
        v->n = 1;
        gone++;
      }
    }
    t->rules->dirty |= gone > 0;
    /* drops them now; on ES_ENOMEM they stay, members of nothing */
    if (gone && rule_prune(r, INT64_MIN + 1) < 0)
      es__error_clear();
  }
  atomic_store(&t->rules->ids_stale, 1);
  pthread_mutex_unlock(&t->rules_mu);
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
  if (c->add) /* its first crossings may come from links */
    ES_TRY(rules_ids_ensure(c->db, t));
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
  t->rules->v = next.v;
  t->rules->n = next.n;
  t->rules->dirty = 1;
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

/* The head of a members answer: {"rule":NAME,"at":TIME,"<list>":[ */
static int rule_answer_head(es_buf *b, const es_rule *r, int64_t at,
                            const char *list) {
  char when[ES_TIME_TEXT_SIZE];
  es__time_format(at, 0, when, sizeof(when));
  int rc = es__buf_put(b, "{\"rule\":", 8);
  if (rc == ES_OK)
    rc = es__json_put_str(b, r->name);
  if (rc == ES_OK)
    rc = es__buf_put(b, ",\"at\":", 6);
  if (rc == ES_OK)
    rc = es__json_put_str(b, when);
  if (rc == ES_OK)
    rc = es__buf_put(b, ",\"", 2);
  if (rc == ES_OK)
    rc = es__buf_put(b, list, strlen(list));
  if (rc == ES_OK)
    rc = es__buf_put(b, "\":[", 3);
  return rc;
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
  es_tomb *tb = t ? es__tomb_get(db, t) : NULL; /* pending erase requests */
  for (size_t i = 0; rc == ES_OK && i < r->n; i++)
    if (rule_window(r, es__rule_visitor(r, i), at) >= r->at_least &&
        !es__tomb_hides_id(tb, es__rule_visitor(r, i)->id))
      ids[n++] = es__rule_visitor(r, i)->id;
  es__tomb_unref(tb);
  if (rc == ES_OK) {
    qsort(ids, n, sizeof(char *), cmp_strp);
    rc = rule_answer_head(&b, r, at, "members");
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
  es_tomb *tb = t ? es__tomb_get(db, t) : NULL; /* pending erase requests */
  if (r) { /* the person's ids count together (rules.h); erased ids do not */
    const char *live[ES_IDENTITY_IDS_MAX];
    size_t nlive = 0;
    for (size_t i = 0; i < nids; i++)
      if (!es__tomb_hides_id(tb, ids[i]))
        live[nlive++] = ids[i];
    *member_out = es__rule_person_count(r, live, nlive, at) >= r->at_least;
  }
  es__tomb_unref(tb);
  if (t)
    pthread_mutex_unlock(&t->rules_mu);
  es__identity_free(map);
  ES_TRY(rc);
  if (!r)
    return ES_ERR(ES_ENOTFOUND, "no rule \"%s\" in tenant %s",
                  name ? name : "(null)", tenant);
  return ES_OK;
}

/* --- members per person --------------------------------------------------- */

/* A visitor id with events in the window, and its person's name. */
typedef struct person_ref {
  const char *name, *id;
} person_ref;

static int cmp_person_ref(const void *a, const void *b) {
  const person_ref *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->id, y->id);
}

/* One member: {"person":name,"ids":[...sorted]}. */
static int persons_put_one(es_buf *b, const char *name, const char **ids,
                           size_t n) {
  qsort(ids, n, sizeof(char *), cmp_strp);
  int rc = es__buf_put(b, "{\"person\":", 10);
  if (rc == ES_OK)
    rc = es__json_put_str(b, name);
  if (rc == ES_OK)
    rc = es__buf_put(b, ",\"ids\":[", 8);
  for (size_t i = 0; rc == ES_OK && i < n; i++) {
    if (i > 0)
      rc = es__buf_put(b, ",", 1);
    if (rc == ES_OK)
      rc = es__json_put_str(b, ids[i]);
  }
  if (rc == ES_OK)
    rc = es__buf_put(b, "]}", 2);
  return rc;
}

/* Calls visit once per person who is a member of r at `at`, in order of
 * the person's name (the smallest of its ids), with the person's ids:
 * every visitor id with an event in the window is grouped under its
 * person (identity map m; NULL: every visitor id its own person), and
 * each person is counted once over all its ids.  Stops at the first
 * visit that does not return ES_OK.
 *
 * An id linked to no other is a person alone, judged by its own count;
 * a linked id's person is judged once, at the smallest of its ids with
 * an event in the window.  Only the members are sorted, by name (sorting
 * every id in the window to group them was half the time of a hot
 * es_rule_persons). */
typedef int (*person_visit)(void *ctx, const char *name, const char **ids,
                            size_t nids);

static int cmp_person_name(const void *a, const void *b) {
  return strcmp(((const person_ref *)a)->name, ((const person_ref *)b)->name);
}

/* The window count of the person of v (ids[0..nids), ids[0] v's own, c
 * its count) when v is the smallest of them with an event in the window,
 * else 0 (the person is judged at that id). */
static uint32_t person_count_at_first(const es_rule *r, const es_rvisitor *v,
                                      uint32_t c, const char *const *ids,
                                      size_t nids, int64_t at) {
  uint32_t total = c;
  for (size_t k = 1; k < nids; k++) {
    const es_rvisitor *w = rule_get(r, ids[k]);
    uint32_t wc = w ? rule_window(r, w, at) : 0;
    if (wc > 0 && strcmp(ids[k], v->id) < 0)
      return 0;
    total += wc;
  }
  return total;
}

static int persons_walk(const es_rule *r, es_identity *m, int64_t at,
                        person_visit visit, void *ctx) {
  person_ref *refs = es__malloc((r->n + 1) * sizeof(*refs));
  if (!refs)
    return ES_NOMEM_BKPT();
  size_t n = 0;
  const char *ids[ES_IDENTITY_IDS_MAX];
  for (size_t i = 0; i < r->n; i++) {
    const es_rvisitor *v = es__rule_visitor(r, i);
    uint32_t c = rule_window(r, v, at);
    if (c == 0)
      continue;
    size_t nids = rule_person_ids(m, v->id, ids);
    if (nids > 1)
      c = person_count_at_first(r, v, c, ids, nids, at);
    if (c >= r->at_least)
      refs[n++] =
          (person_ref){nids > 1 ? rule_person_name(ids, nids) : v->id, v->id};
  }
  qsort(refs, n, sizeof(*refs), cmp_person_name); /* names are distinct */
  int rc = ES_OK;
  for (size_t i = 0; rc == ES_OK && i < n; i++) {
    size_t nids = rule_person_ids(m, refs[i].id, ids);
    rc = visit(ctx, refs[i].name, ids, nids);
  }
  es__free(refs);
  return rc;
}

typedef struct persons_out {
  es_buf *b;
  int first;
} persons_out;

static int persons_put_visit(void *ctx, const char *name, const char **ids,
                             size_t nids) {
  persons_out *o = ctx;
  int rc = o->first ? ES_OK : es__buf_put(o->b, ",", 1);
  o->first = 0;
  return rc == ES_OK ? persons_put_one(o->b, name, ids, nids) : rc;
}

/* The members of r at `at` per person into b (persons_walk). */
static int persons_put(es_buf *b, const es_rule *r, es_identity *m,
                       int64_t at) {
  persons_out o = {b, 1};
  return persons_walk(r, m, at, persons_put_visit, &o);
}

static int persons_count_visit(void *ctx, const char *name, const char **ids,
                               size_t nids) {
  (void)name, (void)ids, (void)nids;
  ++*(size_t *)ctx;
  return ES_OK;
}

/* How many persons are members of r at `at` (as persons_put lists them;
 * m NULL: every visitor id its own person). */
static int rules_members_persons(const es_rule *r, es_identity *m, int64_t at,
                                 size_t *n_out) {
  *n_out = 0;
  return persons_walk(r, m, at, persons_count_visit, n_out);
}

int es_rule_persons(es_db *db, const char *tenant, const char *name,
                    int64_t at_us, char **json_out) {
  es__error_clear();
  if (!json_out)
    return ES_INVAL_BKPT("es_rule_persons: json_out is NULL");
  *json_out = NULL;
  if (!db)
    return ES_INVAL_BKPT("NULL handle");
  ES_TRY(es__tenant_check(tenant));
  es_identity *map = NULL;
  ES_TRY(es__identity_load(db, tenant, &map));
  es_tenant *t;
  int rc = rules_begin(db, tenant, &t);
  es_rule *r = rc == ES_OK ? rules_find(t, name) : NULL;
  if (rc == ES_OK && !r)
    rc = ES_ERR(ES_ENOTFOUND, "no rule \"%s\" in tenant %s",
                name ? name : "(null)", tenant);
  int64_t at = rules_at(at_us);
  es_buf b = {0};
  if (rc == ES_OK) {
    rc = rule_answer_head(&b, r, at, "persons");
    if (rc == ES_OK)
      rc = persons_put(&b, r, map, at);
  }
  if (t)
    pthread_mutex_unlock(&t->rules_mu);
  es__identity_free(map);
  if (rc == ES_OK)
    rc = es__buf_put(&b, "]}", 3);
  if (rc < 0) {
    es__buf_free(&b);
    return rc;
  }
  *json_out = (char *)b.data;
  return ES_OK;
}

/* --- members over time -----------------------------------------------------
 */

/* A copy of the series of the rule with r's definition in the tenant's
 * RSTATE (a read-only handle: the writer records the points). */
static int series_from_file(es_db *db, es_tenant *t, const es_rule *r,
                            es_rpoint **out, size_t *n_out) {
  es_rstate st;
  rstate_read(db, t, &st);
  es_rule *s = rules_same(&st.rules, r);
  if (s) {
    *out = s->series, *n_out = s->nseries;
    s->series = NULL, s->nseries = 0;
  }
  es__rules_free(&st.rules);
  return ES_OK;
}

#define SERIES_HOUR_US INT64_C(3600000000)

/* The hours [lo, hi) of a series request that may get a point: those in
 * [from, to) (0: unbounded) that have ended by `now`, at most the last
 * ES_RULE_SERIES_MAX of them. */
static void series_hours(int64_t from_us, int64_t to_us, int64_t now,
                         int64_t *lo, int64_t *hi) {
  int64_t cur = now - now % SERIES_HOUR_US; /* "now" stands for this one */
  int64_t first = cur - ES_RULE_SERIES_MAX * SERIES_HOUR_US;
  *lo = from_us > first ? from_us : first;
  if (*lo % SERIES_HOUR_US) /* round up: a point is listed when t >= from */
    *lo += SERIES_HOUR_US - *lo % SERIES_HOUR_US;
  *hi = to_us && to_us < cur ? to_us : cur;
}

/* The first of n hours from lo whose last microsecond is at or after x
 * (n when none is). */
static size_t series_hour_index(int64_t lo, size_t n, int64_t x) {
  int64_t end0 = lo + SERIES_HOUR_US - 1;
  if (x <= end0)
    return 0;
  uint64_t i = ((uint64_t)(x - end0) + SERIES_HOUR_US - 1) / SERIES_HOUR_US;
  return i < n ? (size_t)i : n;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Adds +1 to diff over the hours at whose end the person with the kept
 * times ts[0..n) (sorted) is a member: at time `at` it is one when some
 * atLeast consecutive times t_j..t_j+k-1 lie in (at - within, at], i.e.
 * for at in [t_j+k-1, t_j + within); those intervals come sorted by both
 * ends, and overlapping ones are merged so the person counts once. */
static void series_person(const es_rule *r, const int64_t *ts, size_t n,
                          int64_t lo, size_t nh, int64_t *diff) {
  size_t k = r->at_least ? r->at_least : 1;
  size_t open_i = 0, close_i = 0;
  int have = 0;
  for (size_t j = 0; j + k <= n; j++) {
    int64_t s = ts[j + k - 1];
    int64_t e =
        ts[j] > INT64_MAX - r->within_us ? INT64_MAX : ts[j] + r->within_us;
    size_t a = series_hour_index(lo, nh, s), b = series_hour_index(lo, nh, e);
    if (a >= b)
      continue;
    if (have && a <= close_i) { /* overlaps the open run: extend it */
      if (b > close_i)
        close_i = b;
      continue;
    }
    if (have) {
      diff[open_i]++;
      diff[close_i]--;
    }
    open_i = a, close_i = b, have = 1;
  }
  if (have) {
    diff[open_i]++;
    diff[close_i]--;
  }
}

/* The member count of r at the end of each hour of [lo, hi) from its
 * state (the points of hours without a recorded one; rules.h): the same
 * count per person as persons_walk at each hour's last microsecond, in
 * one pass over the persons instead of one per hour. */
static int series_fill(const es_rule *r, es_identity *m, int64_t lo, int64_t hi,
                       es_rpoint **out, size_t *n_out) {
  *out = NULL;
  *n_out = 0;
  if (lo >= hi)
    return ES_OK;
  size_t nh = (size_t)((hi - lo + SERIES_HOUR_US - 1) / SERIES_HOUR_US);
  es_rpoint *f = es__malloc(nh * sizeof(*f));
  int64_t *diff = es__calloc(nh + 1, sizeof(int64_t));
  person_ref *refs = es__malloc((r->n + 1) * sizeof(*refs));
  int64_t *ts = NULL;
  size_t nts_cap = 0, nrefs = 0;
  int rc = f && diff && refs ? ES_OK : ES_NOMEM_BKPT();
  const char *ids[ES_IDENTITY_IDS_MAX];
  for (size_t i = 0; rc == ES_OK && i < r->n; i++) {
    const es_rvisitor *v = es__rule_visitor(r, i);
    if (v->n == 0)
      continue;
    size_t nids = rule_person_ids(m, v->id, ids);
    refs[nrefs++] =
        (person_ref){nids > 1 ? rule_person_name(ids, nids) : v->id, v->id};
  }
  if (rc == ES_OK)
    qsort(refs, nrefs, sizeof(*refs), cmp_person_ref);
  for (size_t i = 0; rc == ES_OK && i < nrefs; i++) {
    if (i > 0 && strcmp(refs[i].name, refs[i - 1].name) == 0)
      continue; /* this person was counted at its first id */
    size_t nids = rule_person_ids(m, refs[i].id, ids), nts = 0;
    for (size_t j = 0; rc == ES_OK && j < nids; j++) {
      const es_rvisitor *v = rule_get(r, ids[j]);
      if (!v || v->n == 0)
        continue;
      rc = es__grow((void **)&ts, &nts_cap, nts + v->n, sizeof(int64_t));
      if (rc == ES_OK) {
        memcpy(ts + nts, v->ts, v->n * sizeof(int64_t));
        nts += v->n;
      }
    }
    if (rc == ES_OK) {
      qsort(ts, nts, sizeof(int64_t), cmp_i64);
      series_person(r, ts, nts, lo, nh, diff);
    }
  }
  int64_t members = 0;
  for (size_t i = 0; rc == ES_OK && i < nh; i++) {
    members += diff[i];
    f[i] = (es_rpoint){lo + (int64_t)i * SERIES_HOUR_US, (uint32_t)members};
  }
  es__free(diff);
  es__free(refs);
  es__free(ts);
  if (rc < 0) {
    es__free(f);
    return rc;
  }
  *out = f;
  *n_out = nh;
  return ES_OK;
}

/* One point of the series JSON ("estimated": from the state). */
static int series_put_point(es_buf *b, int *first, const es_rpoint *p,
                            int estimated) {
  char when[ES_TIME_TEXT_SIZE], num[64];
  es__time_format(p->hour_us, 0, when, sizeof(when));
  ES_TRY(es__buf_put(b, *first ? "{\"t\":" : ",{\"t\":", *first ? 5 : 6));
  *first = 0;
  ES_TRY(es__json_put_str(b, when));
  snprintf(num, sizeof(num), ",\"members\":%u%s}", p->members,
           estimated ? ",\"estimated\":true" : "");
  return es__buf_put(b, num, strlen(num));
}

int es_rule_series(es_db *db, const char *tenant, const char *name,
                   int64_t from_us, int64_t to_us, char **json_out) {
  es__error_clear();
  if (!json_out)
    return ES_INVAL_BKPT("es_rule_series: json_out is NULL");
  *json_out = NULL;
  if (!db)
    return ES_INVAL_BKPT("NULL handle");
  ES_TRY(es__tenant_check(tenant));
  int64_t now = es__clock_now_us();
  int live = to_us == 0 || to_us > now;
  int64_t lo, hi;
  series_hours(from_us, to_us, now, &lo, &hi);
  es_identity *map = NULL;
  if (live || lo < hi)
    ES_TRY(es__identity_load(db, tenant, &map));
  es_tenant *t;
  int rc = rules_begin(db, tenant, &t);
  es_rule *r = rc == ES_OK ? rules_find(t, name) : NULL;
  if (rc == ES_OK && !r)
    rc = ES_ERR(ES_ENOTFOUND, "no rule \"%s\" in tenant %s",
                name ? name : "(null)", tenant);
  es_rpoint *pts = NULL, *fill = NULL;
  size_t npts = 0, nfill = 0, members = 0;
  char *json = NULL;
  if (rc == ES_OK && live)
    rc = rules_members_persons(r, map, now, &members);
  if (rc == ES_OK)
    rc = series_fill(r, map, lo, hi, &fill, &nfill);
  if (rc == ES_OK && !db->opts.read_only && r->nseries > 0) {
    if ((pts = es__malloc(r->nseries * sizeof(es_rpoint)))) {
      memcpy(pts, r->series, r->nseries * sizeof(es_rpoint));
      npts = r->nseries;
    } else {
      rc = ES_NOMEM_BKPT();
    }
  }
  if (rc == ES_OK && db->opts.read_only && !(json = es__strdup(r->json)))
    rc = ES_NOMEM_BKPT();
  if (t)
    pthread_mutex_unlock(&t->rules_mu);
  es__identity_free(map);
  if (rc == ES_OK && json) { /* the file, outside the lock */
    es_rule *probe = NULL;
    rc = es__rule_parse(json, &probe);
    if (rc == ES_OK)
      rc = series_from_file(db, t, probe, &pts, &npts);
    es__rule_free(probe);
  }
  es__free(json);
  es_buf b = {0};
  char when[ES_TIME_TEXT_SIZE], num[48];
  if (rc == ES_OK)
    rc = es__buf_put(&b, "{\"rule\":", 8);
  if (rc == ES_OK)
    rc = es__json_put_str(&b, name);
  if (rc == ES_OK)
    rc = es__buf_put(&b, ",\"points\":[", 11);
  int first = 1;
  /* the recorded points and, for the other hours, the state's counts;
   * both ascending */
  size_t f = 0;
  for (size_t i = 0; rc == ES_OK && i <= npts; i++) {
    int64_t until = i < npts ? pts[i].hour_us : INT64_MAX;
    for (; rc == ES_OK && f < nfill && fill[f].hour_us <= until; f++)
      if (fill[f].hour_us < until)
        rc = series_put_point(&b, &first, &fill[f], 1);
    if (rc < 0 || i == npts || pts[i].hour_us < from_us ||
        (to_us && pts[i].hour_us >= to_us))
      continue;
    rc = series_put_point(&b, &first, &pts[i], 0);
  }
  if (rc == ES_OK)
    rc = es__buf_put(&b, "]", 1);
  if (rc == ES_OK && live) {
    es__time_format(now, 0, when, sizeof(when));
    rc = es__buf_put(&b, ",\"now\":{\"t\":", 12);
    if (rc == ES_OK)
      rc = es__json_put_str(&b, when);
    snprintf(num, sizeof(num), ",\"members\":%zu}", members);
    if (rc == ES_OK)
      rc = es__buf_put(&b, num, strlen(num));
  }
  if (rc == ES_OK)
    rc = es__buf_put(&b, "}", 2); /* with the NUL */
  es__free(pts);
  es__free(fill);
  if (rc < 0) {
    es__buf_free(&b);
    return rc;
  }
  *json_out = (char *)b.data;
  return ES_OK;
}
