/*
 * query.c -- es_query(): answers a JSON query spec (docs/QUERY.md), from
 * the per-minute rollups where they can answer (the planner, "Answering
 * from rollups" below) and by scanning rows otherwise.
 *
 * The scan path runs in five steps:
 *
 *   parse     the spec's JSON (yajl's tree API) into an es_query_spec,
 *             checking every field; an error names the field.
 *   identity  when the spec asks for uniques or filters by person, the
 *             tenant's identity map (engine/identity.c): ids linked by its
 *             identify and alias events are one person.
 *   scan      one es_scan of the tenant over [from, to).  A person filter
 *             naming an id that is linked to no other is pushed down (it
 *             uses the segments' Bloom filters); a linked person's ids are
 *             matched here, row by row, as are the type/event/path
 *             filters.
 *   aggregate into a hash table of groups keyed by (bucket start, group
 *             values).  Strings (event names, paths, persons) are interned
 *             once per query, so a group key is four integers and a
 *             group's distinct persons are a hash set of integers.
 *   write     the groups, sorted and limited, as the result JSON, with our
 *             own small writer (so every byte goes through es__malloc, and
 *             invalid UTF-8 in stored strings cannot make invalid JSON).
 *
 * The rollup path (and uniques with "exact":false) counts persons in
 * HyperLogLog sketches and says "approx":true; see "Answering from
 * rollups".
 *
 * Invariants:
 *  1. Every row of a scan's result is exact: count is the number of matching
 *     events of its group, uniques the number of distinct persons.  An
 *     event's person is the identity root of its id (user id when present
 *     and non-empty, else anonymous id; events with neither count no
 *     person).  The result says "approx":false.
 *  2. Row order is total and deterministic: by the key (bucket, then the
 *     groupBy values in groupBy order, absent values first, strings by
 *     bytes), or by count first when "order" is given, ties by the key.
 *  3. A failed query leaves nothing allocated and *result_out NULL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "base/codec.h"
#include "base/event.h"
#include "base/hashtab.h"
#include "base/json.h"
#include "base/mem.h"
#include "base/strtab.h"
#include "engine/identity.h"
#include "engine/query.h"
#include "store/dbint.h"
#include "store/dims.h"
#include "store/rollup.h"
#include "store/tomb.h"

#define US_PER_S INT64_C(1000000)
#define Q_STR2(x) #x
#define Q_STR(x) Q_STR2(x)
#define S_PER_DAY INT64_C(86400)

/* ----------------------------------------------------------------------
 * The spec
 * ---------------------------------------------------------------------- */

#define SPEC_TIME_HINT "an ISO 8601 time, e.g. \"2024-03-01T10:00:00Z\""

/* from / to: an ISO 8601 string. */
static int spec_time(const char *name, yajl_val v, int64_t *us) {
  if (!YAJL_IS_STRING(v) || es__time_parse(YAJL_GET_STRING(v), 1, us) != 0)
    return ES_INVAL_BKPT("spec: \"%s\" must be " SPEC_TIME_HINT, name);
  return ES_OK;
}

static int spec_from(yajl_val v, es_query_spec *s) {
  return spec_time("from", v, &s->from_us);
}

static int spec_to(yajl_val v, es_query_spec *s) {
  return spec_time("to", v, &s->to_us);
}

/* One string of "filter", copied into *out. */
static int spec_filter_str(const char *key, yajl_val v, char **out) {
  if (!YAJL_IS_STRING(v))
    return ES_INVAL_BKPT("spec: \"filter.%s\" must be a string", key);
  es__free(*out); /* a repeated key: the last one counts */
  if (!(*out = es__strdup(YAJL_GET_STRING(v))))
    return ES_NOMEM_BKPT();
  return ES_OK;
}

/* "filter": {"type", "event", "path", "person"}, each optional. */
static int spec_filter(yajl_val v, es_query_spec *s) {
  if (!YAJL_IS_OBJECT(v))
    return ES_INVAL_BKPT("spec: \"filter\" must be an object");
  for (size_t i = 0; i < v->u.object.len; i++) {
    const char *key = v->u.object.keys[i];
    yajl_val val = v->u.object.values[i];
    if (strcmp(key, "type") == 0) {
      s->type =
          YAJL_IS_STRING(val) ? es_type_from_name(YAJL_GET_STRING(val)) : 0;
      if (s->type == 0)
        return ES_INVAL_BKPT("spec: \"filter.type\" must be one of track, "
                             "page, screen, identify, alias, group");
    } else if (strcmp(key, "event") == 0) {
      ES_TRY(spec_filter_str(key, val, &s->event));
    } else if (strcmp(key, "path") == 0) {
      ES_TRY(spec_filter_str(key, val, &s->path));
    } else if (strcmp(key, "person") == 0) {
      ES_TRY(spec_filter_str(key, val, &s->person));
    } else {
      return ES_INVAL_BKPT("spec: unknown key \"filter.%s\" (want type, "
                           "event, path, person)",
                           key);
    }
  }
  return ES_OK;
}

/* "bucket": "minute" | "hour" | "day" | "none". */
static int spec_bucket(yajl_val v, es_query_spec *s) {
  static const struct {
    const char *name;
    int64_t us;
  } buckets[] = {{"none", 0},
                 {"minute", 60 * US_PER_S},
                 {"hour", 3600 * US_PER_S},
                 {"day", S_PER_DAY * US_PER_S}};
  const char *name = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : "";
  for (size_t i = 0; i < sizeof(buckets) / sizeof(buckets[0]); i++) {
    if (strcmp(name, buckets[i].name) == 0) {
      s->bucket_us = buckets[i].us;
      return ES_OK;
    }
  }
  return ES_INVAL_BKPT(
      "spec: \"bucket\" must be one of minute, hour, day, none");
}

#define SPEC_GROUP_KEYS                                                        \
  "event, path, type, referrer, utm_source, utm_medium, utm_campaign, "        \
  "device, browser"

/* "groupBy": an array of distinct "event", "path", "type" and at most one
 * dimension (store/dims.h). */
static int spec_group_by(yajl_val v, es_query_spec *s) {
  if (!YAJL_IS_ARRAY(v))
    return ES_INVAL_BKPT(
        "spec: \"groupBy\" must be an array of " SPEC_GROUP_KEYS);
  s->nkeys = 0;
  s->dim = 0;
  for (size_t i = 0; i < v->u.array.len; i++) {
    yajl_val e = v->u.array.values[i];
    const char *name = YAJL_IS_STRING(e) ? YAJL_GET_STRING(e) : "";
    int dim = es__dim_by_name(name);
    int key = strcmp(name, "event") == 0  ? ES_QKEY_EVENT
              : strcmp(name, "path") == 0 ? ES_QKEY_PATH
              : strcmp(name, "type") == 0 ? ES_QKEY_TYPE
              : dim                       ? ES_QKEY_DIM
                                          : 0;
    if (key == 0)
      return ES_INVAL_BKPT(
          "spec: \"groupBy\" entries must be one of " SPEC_GROUP_KEYS);
    for (int k = 0; k < s->nkeys; k++)
      if (s->keys[k] == key && key != ES_QKEY_DIM)
        return ES_INVAL_BKPT("spec: \"groupBy\" lists \"%s\" twice", name);
    if (key == ES_QKEY_DIM && s->dim)
      return ES_INVAL_BKPT("spec: \"groupBy\" may list one of referrer, "
                           "utm_source, utm_medium, utm_campaign, device, "
                           "browser, not \"%s\" and \"%s\"",
                           es__dim_name(s->dim), name);
    if (key == ES_QKEY_DIM)
      s->dim = dim;
    s->keys[s->nkeys++] = key;
  }
  return ES_OK;
}

/* "aggregate": a non-empty array of distinct "count", "uniques". */
static int spec_aggregate(yajl_val v, es_query_spec *s) {
  if (!YAJL_IS_ARRAY(v) || v->u.array.len == 0)
    return ES_INVAL_BKPT("spec: \"aggregate\" must be a non-empty array of "
                         "\"count\", \"uniques\"");
  s->count = s->uniques = 0;
  for (size_t i = 0; i < v->u.array.len; i++) {
    yajl_val e = v->u.array.values[i];
    const char *name = YAJL_IS_STRING(e) ? YAJL_GET_STRING(e) : "";
    int *flag = strcmp(name, "count") == 0     ? &s->count
                : strcmp(name, "uniques") == 0 ? &s->uniques
                                               : NULL;
    if (!flag)
      return ES_INVAL_BKPT("spec: \"aggregate\" entries must be one of "
                           "count, uniques");
    if (*flag)
      return ES_INVAL_BKPT("spec: \"aggregate\" lists \"%s\" twice", name);
    *flag = 1;
  }
  return ES_OK;
}

/* "exact": a boolean (every answer of this version is exact). */
static int spec_exact(yajl_val v, es_query_spec *s) {
  if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
    return ES_INVAL_BKPT("spec: \"exact\" must be true or false");
  s->exact = YAJL_IS_TRUE(v);
  return ES_OK;
}

/* "limit": an integer >= 1; above ES_QUERY_ROWS_MAX it is lowered. */
static int spec_limit(yajl_val v, es_query_spec *s) {
  if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 1)
    return ES_INVAL_BKPT("spec: \"limit\" must be an integer >= 1");
  long long n = YAJL_GET_INTEGER(v);
  s->limit = n > ES_QUERY_ROWS_MAX ? ES_QUERY_ROWS_MAX : (uint32_t)n;
  return ES_OK;
}

/* "order": "desc" | "asc" (by count). */
static int spec_order(yajl_val v, es_query_spec *s) {
  const char *o = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : "";
  if (strcmp(o, "desc") == 0)
    s->order = ES_QORDER_DESC;
  else if (strcmp(o, "asc") == 0)
    s->order = ES_QORDER_ASC;
  else
    return ES_INVAL_BKPT("spec: \"order\" must be one of desc, asc");
  return ES_OK;
}

/* "plan": "auto" | "scan" | "rollup" (which engine answers). */
static int spec_plan(yajl_val v, es_query_spec *s) {
  const char *p = YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : "";
  if (strcmp(p, "auto") == 0)
    s->plan = ES_QPLAN_AUTO;
  else if (strcmp(p, "scan") == 0)
    s->plan = ES_QPLAN_SCAN;
  else if (strcmp(p, "rollup") == 0)
    s->plan = ES_QPLAN_ROLLUP;
  else
    return ES_INVAL_BKPT("spec: \"plan\" must be one of auto, scan, rollup");
  return ES_OK;
}

/* The top-level keys and their parsers. */
static const struct {
  const char *name;
  int (*parse)(yajl_val v, es_query_spec *s);
} spec_fields[] = {
    {"from", spec_from},        {"to", spec_to},
    {"filter", spec_filter},    {"bucket", spec_bucket},
    {"groupBy", spec_group_by}, {"aggregate", spec_aggregate},
    {"exact", spec_exact},      {"limit", spec_limit},
    {"order", spec_order},      {"plan", spec_plan},
};

#define SPEC_NFIELDS (sizeof(spec_fields) / sizeof(spec_fields[0]))

/* Checks every key of the top-level object against spec_fields. */
static int spec_fields_parse(yajl_val root, es_query_spec *s) {
  for (size_t i = 0; i < root->u.object.len; i++) {
    const char *key = root->u.object.keys[i];
    size_t f = 0;
    while (f < SPEC_NFIELDS && strcmp(spec_fields[f].name, key) != 0)
      f++;
    if (f == SPEC_NFIELDS)
      return ES_INVAL_BKPT(
          "spec: unknown key \"%s\" (want from, to, filter, "
          "bucket, groupBy, aggregate, exact, limit, order, plan)",
          key);
    ES_TRY(spec_fields[f].parse(root->u.object.values[i], s));
  }
  if (s->from_us > s->to_us)
    return ES_INVAL_BKPT("spec: \"to\" must not be before \"from\"");
  if (s->plan == ES_QPLAN_ROLLUP && (s->person || (s->uniques && s->exact)))
    return ES_INVAL_BKPT("spec: \"plan\": rollups cannot answer "
                         "\"filter.person\" or exact uniques");
  int by_event_path = s->event || s->path;
  for (int k = 0; k < s->nkeys; k++)
    by_event_path |= s->keys[k] == ES_QKEY_EVENT || s->keys[k] == ES_QKEY_PATH;
  if (s->plan == ES_QPLAN_ROLLUP && s->dim && by_event_path)
    return ES_INVAL_BKPT("spec: \"plan\": rollups cannot answer a "
                         "dimension (\"%s\") with an event or path filter "
                         "or group",
                         es__dim_name(s->dim));
  if (s->plan == ES_QPLAN_ROLLUP && ES_DIM_PAGE_ONLY(s->dim) &&
      s->type != ES_TYPE_PAGE)
    return ES_INVAL_BKPT("spec: \"plan\": rollups answer \"%s\" for page "
                         "events only (\"filter\":{\"type\":\"page\"})",
                         es__dim_name(s->dim));
  if (s->plan == ES_QPLAN_ROLLUP && s->dim && s->bucket_us &&
      s->bucket_us % (ES_ROLLUP_DIM_MINUTES * ES_MINUTE_US) != 0)
    return ES_INVAL_BKPT("spec: \"plan\": rollups cannot answer a "
                         "dimension (\"%s\") per minute (their cells are "
                         "per %d minutes)",
                         es__dim_name(s->dim), ES_ROLLUP_DIM_MINUTES);
  return ES_OK;
}

/* Parses a spec; see query.h. */
int es__query_spec_parse(const char *json, es_query_spec *s) {
  char why[256];
  memset(s, 0, sizeof(*s));
  s->from_us = INT64_MIN;
  s->to_us = INT64_MAX;
  s->count = 1; /* "aggregate" defaults to ["count"] */
  if (!json)
    return ES_INVAL_BKPT("spec: NULL");
  why[0] = '\0';
  yajl_val root = yajl_tree_parse(json, why, sizeof(why));
  if (!root) {
    for (char *c = why; *c; c++) /* yajl's message spans lines */
      if (*c == '\n' || *c == '\r')
        *c = ' ';
    return ES_INVAL_BKPT("spec: not valid JSON: %s", why[0] ? why : "?");
  }
  int rc = YAJL_IS_OBJECT(root) ? spec_fields_parse(root, s)
                                : ES_INVAL_BKPT("spec: must be a JSON object");
  yajl_tree_free(root);
  if (rc < 0)
    es__query_spec_free(s);
  return rc;
}

/* Releases a spec's strings. */
void es__query_spec_free(es_query_spec *s) {
  es__free(s->event);
  es__free(s->path);
  es__free(s->person);
  s->event = s->path = s->person = NULL;
}

/* ----------------------------------------------------------------------
 * Groups: one per (bucket start, group values), each with its count and,
 * when uniques are asked for, the set of its persons' ids.
 * ---------------------------------------------------------------------- */

typedef struct q_key {
  int64_t bucket;                    /* bucket start; 0 without buckets */
  uint32_t type, event, path, value; /* 0 when not grouped by it (value:
                                        the dimension's, as event/path) */
} q_key;

typedef struct q_group {
  q_key key;
  uint64_t count;
  es_htab persons; /* the set of its person ids (the values themselves) */
  es_hll hll;      /* approximate plans: the sketch of its persons */
} q_group;

typedef struct q_table {
  q_group *groups;
  size_t n, cap;
  es_htab index; /* a group index + 1 by key */
} q_table;

/* Whether group `val` - 1 has the key `key`. */
static int table_eq(const void *ctx, uint32_t val, const void *key) {
  return memcmp(&((const q_table *)ctx)->groups[val - 1].key, key,
                sizeof(q_key)) == 0;
}

/* The group of key k, created (count 0) when new.  The pointer is valid
 * until the next table_get. */
static int table_get(q_table *t, const q_key *k, q_group **g_out) {
  ES_TRY(es__htab_reserve(&t->index, 1));
  uint64_t h = es__hash64(k, sizeof(*k), 0);
  size_t i = es__htab_probe(&t->index, h, table_eq, t, k);
  if (t->index.slots[i].val == 0) {
    ES_TRY(es__grow((void **)&t->groups, &t->cap, t->n + 1, sizeof(q_group)));
    memset(&t->groups[t->n], 0, sizeof(q_group));
    t->groups[t->n].key = *k;
    es__htab_set(&t->index, i, h, (uint32_t)++t->n);
  }
  *g_out = &t->groups[t->index.slots[i].val - 1];
  return ES_OK;
}

/* Whether person id `val` is `key`. */
static int person_eq(const void *ctx, uint32_t val, const void *key) {
  (void)ctx;
  return val == *(const uint32_t *)key;
}

/* Adds person id (non-zero) to the group's set. */
static int group_add_person(q_group *g, uint32_t id) {
  ES_TRY(es__htab_reserve(&g->persons, 1));
  uint64_t h = id * UINT32_C(2654435761);
  size_t j = es__htab_probe(&g->persons, h, person_eq, NULL, &id);
  if (g->persons.slots[j].val == 0)
    es__htab_set(&g->persons, j, h, id);
  return ES_OK;
}

static void table_free(q_table *t) {
  for (size_t g = 0; g < t->n; g++) {
    es__htab_free(&t->groups[g].persons);
    es__hll_free(&t->groups[g].hll);
  }
  es__free(t->groups);
  es__htab_free(&t->index);
}

/* ----------------------------------------------------------------------
 * Scanning and aggregating
 * ---------------------------------------------------------------------- */

/* What one query holds while it runs. */
/* A group key's event or path id: an id of `base` (the strings of the
 * first segment rollup or index level the query read, borrowed: no
 * copy; the view the query holds keeps them), or,
 * with Q_OWN set, of the query's own table (strings base lacks). */
#define Q_OWN (UINT32_C(1) << 31)

typedef struct q_run {
  const es_query_spec *spec;
  es_strtab strs;        /* event names and paths base lacks; persons */
  const es_strtab *base; /* NULL until the index is read */
  es_tenant_view view;   /* holds base's index while the query runs */
  int have_view;
  int in_index; /* run_cells reads a rollup the view holds (not a
                   memtable's): the first such is base */
  q_table table;
  es_identity *identity; /* with uniques or filter.person, else NULL */
  const char *ids[ES_IDENTITY_IDS_MAX]; /* filter.person: the person's ids */
  size_t nids;
  int approx;            /* uniques go into sketches (rollup plan), not sets */
  int used_rollups;      /* some of the answer came from rollups */
  int used_scan;         /* some of it came from scanning rows */
  uint32_t *map;         /* rollup string id -> our id + 1 (0: not yet) */
  uint64_t dict_persons; /* the dictionary plan's uniques (one group) */
  int dict;              /* whether the dictionary plan answered */
  size_t map_cap;
} q_run;

/* Whether an optional string filter accepts a value (NULL never matches
 * a filter). */
static int filter_ok(const char *want, const char *have) {
  return !want || (have && strcmp(want, have) == 0);
}

/* The start of the bucket holding ts (floor, also before the epoch). */
static int64_t bucket_start(int64_t ts, int64_t width) {
  int64_t r = ts % width;
  return ts - (r < 0 ? r + width : r);
}

/* The string of a group key's event or path id (NULL for 0). */
static const char *q_str(const q_run *r, uint32_t id) {
  if (id == 0)
    return NULL;
  return id & Q_OWN ? r->strs.strs[id & ~Q_OWN] : r->base->strs[id];
}

/* The group key id of a string (0 for NULL): base's when it has it. */
static int q_intern(q_run *r, const char *str, uint32_t *id) {
  *id = 0;
  if (!str)
    return ES_OK;
  if (r->base && (*id = es__strtab_find(r->base, str)) != 0)
    return ES_OK;
  uint32_t own;
  ES_TRY(es__strtab_intern(&r->strs, str, &own));
  if (own >= Q_OWN)
    return ES_NOMEM_BKPT();
  *id = own | Q_OWN;
  return ES_OK;
}

/* Counts one event that passed the filters into its group. */
static int run_add(q_run *r, const es_event *ev) {
  const es_query_spec *s = r->spec;
  q_key k;
  memset(&k, 0, sizeof(k));
  if (s->bucket_us)
    k.bucket = bucket_start(ev->ts_us, s->bucket_us);
  for (int i = 0; i < s->nkeys; i++) {
    if (s->keys[i] == ES_QKEY_TYPE)
      k.type = (uint32_t)ev->type;
    else if (s->keys[i] == ES_QKEY_EVENT)
      ES_TRY(q_intern(r, ev->event, &k.event));
    else if (s->keys[i] == ES_QKEY_DIM) {
      es_dims scratch; /* the same values rollups count (dims.h) */
      ES_TRY(q_intern(r, es__dim_of(ev, s->dim, &scratch), &k.value));
    } else
      ES_TRY(q_intern(r, ev->path, &k.path));
  }
  q_group *g = NULL;
  ES_TRY(table_get(&r->table, &k, &g));
  g->count++;
  if (s->uniques && r->approx) {
    uint64_t h = es__rollup_person_hash(ev); /* as rollups count them */
    if (h)
      ES_TRY(es__hll_add(&g->hll, h));
  } else if (s->uniques) {
    const char *person = ev->user_id && ev->user_id[0] ? ev->user_id
                         : ev->anonymous_id && ev->anonymous_id[0]
                             ? ev->anonymous_id
                             : NULL;
    person = es__identity_root(r->identity, person); /* stitching */
    uint32_t id;
    ES_TRY(es__strtab_intern(&r->strs, person, &id));
    if (id != 0)
      ES_TRY(group_add_person(g, id));
  }
  return ES_OK;
}

/* Whether the event's user_id or anonymous_id is one of filter.person's
 * ids (always true without a person filter). */
static int run_person_ok(const q_run *r, const es_event *ev) {
  if (!r->spec->person)
    return 1;
  for (size_t i = 0; i < r->nids; i++)
    if (filter_ok(r->ids[i], ev->user_id) ||
        filter_ok(r->ids[i], ev->anonymous_id))
      return 1;
  return 0;
}

/* One scan of the tenant over [from, to), every matching event counted. */
static int run_scan(q_run *r, es_db *db, const char *tenant, int64_t from_us,
                    int64_t to_us) {
  const es_query_spec *s = r->spec;
  es_scan_spec scan;
  es_scan_spec_init(&scan);
  scan.tenant = tenant;
  scan.from_us = from_us;
  scan.to_us = to_us;
  scan.fields = ES_FIELD_EVENT | ES_FIELD_PATH | ES_FIELD_ANONYMOUS_ID |
                ES_FIELD_USER_ID; /* what filters and groups read */
  if (s->dim)
    scan.fields |= ES_FIELD_URL | ES_FIELD_REFERRER | ES_FIELD_USER_AGENT;
  r->used_scan = 1;
  if (s->person && r->nids == 0)
    r->nids = es__identity_ids(r->identity, s->person, r->ids);
  if (r->nids == 1) /* one id: the cursor's Bloom filter check applies */
    scan.person = s->person;
  es_cursor *cur;
  ES_TRY(es_scan(db, &scan, &cur));
  es_event ev;
  int rc;
  while ((rc = es_cursor_next(cur, &ev)) == 1) {
    if ((s->type && ev.type != s->type) || !filter_ok(s->event, ev.event) ||
        !filter_ok(s->path, ev.path) || !run_person_ok(r, &ev))
      continue;
    if ((rc = run_add(r, &ev)) < 0)
      break;
  }
  es_cursor_close(cur);
  return rc < 0 ? rc : ES_OK;
}

/* ----------------------------------------------------------------------
 * Exact uniques from the person dictionary
 *
 * "How many persons" with no filter, groups or buckets, over a range
 * holding every segment of the tenant: the distinct person ids of the
 * segments come from the segment set's dictionary (es__segset_persons,
 * read once per set), the memtables' rows are looked at one by one, and
 * each id is stitched to its root as a scan would (invariant 1).  Not
 * used while the tenant has an erase request (its rows may still be in
 * the segments, hidden by the tombstone only).
 * ---------------------------------------------------------------------- */

/* Whether the spec asks only for the count of persons (and events). */
static int plan_dict_ok(const es_query_spec *s) {
  return s->uniques && !s->person && !s->type && !s->event && !s->path &&
         s->nkeys == 0 && s->bucket_us == 0;
}

/* Distinct person strings, not copied (they live in the identity map,
 * the dictionary or a memtable, all held while the plan counts). */
typedef struct dict_seen {
  const char **strs;
  size_t n, cap;
  es_htab index; /* strs index + 1 by the string's hash */
} dict_seen;

static int seen_eq(const void *ctx, uint32_t val, const void *key) {
  return strcmp(((const dict_seen *)ctx)->strs[val - 1], key) == 0;
}

/* Adds p to the set unless it is there. */
static int seen_add(dict_seen *d, const char *p) {
  ES_TRY(es__htab_reserve(&d->index, 1));
  uint64_t h = es__hash64(p, strlen(p), 7);
  size_t i = es__htab_probe(&d->index, h, seen_eq, d, p);
  if (d->index.slots[i].val != 0)
    return ES_OK;
  ES_TRY(es__grow((void **)&d->strs, &d->cap, d->n + 1, sizeof(char *)));
  d->strs[d->n] = p;
  es__htab_set(&d->index, i, h, (uint32_t)++d->n);
  return ES_OK;
}

/* Counts the persons (stitched roots) of the dictionary's ids and of the
 * memtable ids in mem[0..nmem) into *persons.  An id the identity map
 * does not hold is its own root, distinct from every root of a linked id
 * (which is a linked id itself) and from the dictionary's other ids: those
 * are counted without hashing; the rest go through a set. */
static int dict_count(es_identity *map, const es_strtab *ids,
                      const char *const *mem, size_t nmem, uint64_t *persons) {
  dict_seen d;
  memset(&d, 0, sizeof(d));
  uint64_t alone = 0;
  int rc = ES_OK;
  for (uint32_t id = 1; rc == ES_OK && id < es__strtab_count(ids); id++) {
    const char *p = es__strtab_str(ids, id), *root = es__identity_root(map, p);
    if (root == p)
      alone++;
    else
      rc = seen_add(&d, root);
  }
  for (size_t i = 0; rc == ES_OK && i < nmem; i++) {
    const char *root = es__identity_root(map, mem[i]);
    if (root != mem[i] || !es__strtab_find(ids, mem[i]))
      rc = seen_add(&d, root); /* else: counted as the dictionary's */
  }
  *persons = alone + d.n;
  es__free(d.strs);
  es__htab_free(&d.index);
  return rc;
}

/* The dictionary plan; *done is 0 when the caller must scan instead. */
static int run_dict(q_run *r, const es_tenant_view *v, int *done) {
  const es_query_spec *s = r->spec;
  uint64_t rows = 0;
  *done = 0;
  for (size_t i = 0; i < v->set->n; i++) {
    const es_segment *seg = v->set->segs[i];
    if (seg->min_ts < s->from_us || seg->max_ts >= s->to_us)
      return ES_OK; /* a segment partly outside: scan */
    rows += seg->rows;
  }
  for (size_t i = 0; i < v->nmts; i++) {
    size_t n = es__memtable_visible(v->mts[i]);
    for (size_t j = 0; j < n; j++) {
      int64_t ts = es__memtable_row(v->mts[i], j)->ts_us;
      rows += ts >= s->from_us && ts < s->to_us;
    }
  }
  *done = 1;
  r->dict = 1;
  r->used_scan = 1; /* exact, from rows: reported as a scan */
  if (rows == 0)
    return ES_OK; /* no row: no group, as a scan finds none */
  const es_strtab *ids = NULL;
  ES_TRY(es__segset_persons(v->set, &ids));
  const char **mem = NULL; /* the memtable rows' person ids */
  size_t nmem = 0, cap = 0;
  int rc = ES_OK;
  for (size_t i = 0; rc == ES_OK && i < v->nmts; i++) {
    size_t n = es__memtable_visible(v->mts[i]);
    for (size_t j = 0; rc == ES_OK && j < n; j++) {
      const es_mrow *mr = es__memtable_row(v->mts[i], j);
      if (mr->ts_us < s->from_us || mr->ts_us >= s->to_us)
        continue;
      es_event ev;
      size_t used;
      rc = es__event_decode(mr->row, ES_EVENT_BYTES_MAX, &ev, &used);
      const char *p = ev.user_id && ev.user_id[0]             ? ev.user_id
                      : ev.anonymous_id && ev.anonymous_id[0] ? ev.anonymous_id
                                                              : NULL;
      if (rc == ES_OK && p &&
          (rc = es__grow((void **)&mem, &cap, nmem + 1, sizeof(char *))) ==
              ES_OK)
        mem[nmem++] = p;
    }
  }
  uint64_t persons = 0;
  if (rc == ES_OK)
    rc = dict_count(r->identity, ids, mem, nmem, &persons);
  es__free(mem);
  ES_TRY(rc);
  r->dict_persons = persons;
  q_key k;
  memset(&k, 0, sizeof(k));
  q_group *g = NULL;
  ES_TRY(table_get(&r->table, &k, &g));
  g->count = rows;
  return ES_OK;
}

/* Takes the view and runs the dictionary plan when it can answer. */
static int run_dict_plan(q_run *r, es_db *db, const char *tenant, int *done) {
  *done = 0;
  es_tenant *t = NULL;
  ES_TRY(es__tenant_get(db, tenant, 0, &t));
  if (!t || atomic_load(&t->tomb_any))
    return ES_OK;
  es_tenant_view v;
  ES_TRY(es__tenant_view(t, &v));
  int rc = run_dict(r, &v, done);
  es__tenant_view_release(&v);
  return rc;
}

/* ----------------------------------------------------------------------
 * Answering from rollups
 *
 * The rollup plan splits [from, to) at whole minutes: the minutes inside
 * come from the rollups of every segment and memtable of a tenant view;
 * the partial minutes at either end (when from or to is not on a minute)
 * are scanned.  Uniques are then HyperLogLog estimates of the persons'
 * ids without stitching (rollup.h), and the result says "approx":true.
 * ---------------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Whether the tenant's rollups may still count rows of a pending erase
 * request (before its stage (c), store/tomb.h): then every answer comes
 * from a scan, which honours the tombstone, so counts and uniques equal a
 * recompute without the person at once. */
static int rollups_hold_erased(es_db *db, const char *tenant) {
  es_tenant *t = NULL;
  if (es__tenant_get(db, tenant, 0, &t) < 0 || !t) {
    es__error_clear(); /* the scan reports it */
    return 0;
  }
  es_tomb *tb = es__tomb_get(db, t);
  int stale = tb && tb->rollups_stale;
  es__tomb_unref(tb);
  return stale;
}

/* Whether the rollups can answer the spec at all: a dimension's cells
 * have no event or path (rollup.h). */
static int plan_rollup_ok(const es_query_spec *s) {
  int by_event_path = s->event || s->path;
  for (int k = 0; k < s->nkeys; k++)
    by_event_path |= s->keys[k] == ES_QKEY_EVENT || s->keys[k] == ES_QKEY_PATH;
  int fine = s->bucket_us &&
             s->bucket_us % (ES_ROLLUP_DIM_MINUTES * ES_MINUTE_US) != 0;
  /* rollups count the page-only dimensions of page events only */
  int other_types = ES_DIM_PAGE_ONLY(s->dim) && s->type != ES_TYPE_PAGE;
  return !s->person && !(s->uniques && s->exact) &&
         !(s->dim && (by_event_path || fine || other_types));
}

/* Our id of the rollup's string id (interning it on first use). */
static int run_map(q_run *r, const es_rollup *ro, uint32_t id, uint32_t *out) {
  *out = 0;
  if (id == 0)
    return ES_OK;
  if (&ro->strs == r->base) { /* the same ids */
    *out = id;
    return ES_OK;
  }
  if (r->map[id] == 0) {
    uint32_t ours;
    ES_TRY(q_intern(r, es__strtab_str(&ro->strs, id), &ours));
    r->map[id] = ours + 1;
  }
  *out = r->map[id] - 1;
  return ES_OK;
}

/* Adds the cells of one rollup within minutes [lo, hi) that pass the
 * filters. */
static int run_cells(q_run *r, const es_rollup *ro, int64_t lo, int64_t hi) {
  const es_query_spec *s = r->spec;
  if (r->in_index && !r->base && r->strs.n <= 1)
    r->base = &ro->strs; /* no own string yet: none base has too */
  uint32_t want_event = s->event ? es__strtab_find(&ro->strs, s->event) : 0;
  uint32_t want_path = s->path ? es__strtab_find(&ro->strs, s->path) : 0;
  if ((s->event && !want_event) || (s->path && !want_path))
    return ES_OK; /* a filter value this rollup never saw */
  size_t nstr = &ro->strs == r->base ? 0 : es__strtab_count(&ro->strs);
  if (nstr > r->map_cap) {
    es__free(r->map);
    r->map_cap = 0;
    if (!(r->map = es__malloc(nstr * sizeof(uint32_t))))
      return ES_NOMEM_BKPT();
    r->map_cap = nstr;
  }
  if (nstr)
    memset(r->map, 0, nstr * sizeof(uint32_t));
  r->used_rollups = 1;
  q_group *g = NULL; /* the group of `last`, valid until the next get */
  q_key last;
  memset(&last, 0, sizeof(last));
  for (size_t i = ro->sorted ? es__rollup_seek(ro, lo) : 0; i < ro->n; i++) {
    const es_rcell *c = &ro->cells[i];
    if (c->minute >= hi && ro->sorted)
      break;
    if (c->dim > s->dim && ro->sorted) { /* the minute's other dimensions */
      if (c->minute == INT64_MAX)
        break;
      i = es__rollup_seek(ro, c->minute + 1) - 1;
      continue;
    }
    if (c->minute < lo || c->minute >= hi || c->dim != s->dim ||
        (s->type && c->type != s->type) ||
        (s->event && c->event != want_event) ||
        (s->path && c->path != want_path))
      continue;
    q_key k;
    memset(&k, 0, sizeof(k));
    if (s->bucket_us)
      k.bucket = bucket_start(c->minute * ES_MINUTE_US, s->bucket_us);
    for (int j = 0; j < s->nkeys; j++) {
      if (s->keys[j] == ES_QKEY_TYPE)
        k.type = c->type;
      else if (s->keys[j] == ES_QKEY_EVENT)
        ES_TRY(run_map(r, ro, c->event, &k.event));
      else if (s->keys[j] == ES_QKEY_DIM)
        ES_TRY(run_map(r, ro, c->value, &k.value));
      else
        ES_TRY(run_map(r, ro, c->path, &k.path));
    }
    /* cells come sorted by minute: runs of them share one group */
    if (!g || memcmp(&k, &last, sizeof(k)) != 0) {
      ES_TRY(table_get(&r->table, &k, &g));
      last = k;
    }
    g->count += c->count;
    if (s->uniques)
      ES_TRY(es__hll_merge(&g->hll, &c->persons));
  }
  return ES_OK;
}

/* Rounds a minute up / down to a multiple of period (unbounded ends stay
 * unbounded; minutes here are >= 0). */
static int64_t minute_up(int64_t m, int64_t period) {
  return m == INT64_MIN ? m : m + (period - m % period) % period;
}
static int64_t minute_down(int64_t m, int64_t period) {
  return m == INT64_MAX ? m : m - m % period;
}

/* Whether the spec's cells may be summed per type (no filter on, or
 * grouping by, event or path): the index's "bytype" level. */
static int spec_bytype(const es_query_spec *s) {
  if (s->event || s->path || s->dim)
    return 0;
  for (int j = 0; j < s->nkeys; j++)
    if (s->keys[j] != ES_QKEY_TYPE)
      return 0;
  return 1;
}

/* A segment's cells of minutes [lo, hi): whole days inside from its daily
 * rollup, whole hours from its hourly one, the minutes at the ends from
 * the minutes -- far fewer cells over long ranges -- as far as the
 * buckets asked for allow (a day bucket can take days, hours; an hour
 * bucket hours).  Counts by type alone (no event, path, dimension or
 * uniques) read the minutes from its per-(minute, type) counts. */
static int run_segment_cells(q_run *r, const es_rollup *ro, int64_t lo,
                             int64_t hi) {
  const es_rollup *mins = ro; /* where whole minutes are read */
  if (spec_bytype(r->spec) && !r->spec->uniques && ro->sorted)
    ES_TRY(es__rollup_type_counts(ro, &mins)); /* a few cells a minute */
  int64_t bucket = r->spec->bucket_us, hour = 60 * ES_MINUTE_US;
  int hourly = bucket == 0 || bucket % hour == 0;
  int daily = bucket == 0 || bucket % (24 * hour) == 0;
  if (!hourly || (lo != INT64_MIN && lo < 0) || (hi != INT64_MAX && hi < 0))
    return run_cells(r, mins, lo, hi); /* event times are >= 0 anyway */
  int64_t hlo = minute_up(lo, 60), hhi = minute_down(hi, 60);
  if (hlo >= hhi)
    return run_cells(r, mins, lo, hi);
  int64_t dlo = daily ? minute_up(hlo, 1440) : hhi;
  int64_t dhi = daily ? minute_down(hhi, 1440) : hhi;
  if (dlo >= dhi)
    dlo = dhi = hhi; /* no whole day inside: hours only */
  const es_rollup *hours = NULL, *days = NULL;
  ES_TRY(es__rollup_coarse(ro, 60, &hours));
  if (lo < hlo)
    ES_TRY(run_cells(r, mins, lo, hlo));
  ES_TRY(run_cells(r, hours, hlo, dlo));
  if (dlo < dhi) {
    ES_TRY(es__rollup_coarse(ro, 1440, &days));
    ES_TRY(run_cells(r, days, dlo, dhi));
  }
  if (dhi < hhi)
    ES_TRY(run_cells(r, hours, dhi, hhi));
  if (hhi < hi)
    ES_TRY(run_cells(r, mins, hhi, hi));
  return ES_OK;
}

/* The whole minutes [lo, hi) from the rollups of a view.  *fallback is
 * set (and nothing counted is trustworthy) when a memtable could not keep
 * its rollup. */
static int run_rollups(q_run *r, es_db *db, es_tenant *t,
                       const es_tenant_view *v, int64_t lo, int64_t hi,
                       int *fallback) {
  int64_t from_us = lo == INT64_MIN ? INT64_MIN : lo * ES_MINUTE_US;
  int64_t to_us = hi == INT64_MAX ? INT64_MAX : hi * ES_MINUTE_US;
  /* A spec without buckets over a range holding every segment whole
   * reads the tenant index's all-time cells; others each segment's. */
  int all = r->spec->bucket_us == 0, any = 0;
  for (size_t i = 0; i < v->set->n; i++) {
    const es_segment *seg = v->set->segs[i];
    any |= seg->max_ts >= from_us && seg->min_ts < to_us;
    all &= seg->min_ts >= from_us && seg->max_ts < to_us;
  }
  r->in_index = 1;          /* segment rollups live as long as the view */
  all &= r->spec->dim == 0; /* the index holds no dimension cells */
  int rc = ES_OK;
  if (all && any) {
    const es_setrollup *sr = NULL;
    const es_rollup *ro = NULL;
    rc = es__segset_rollup(db, t, v->set, &sr, NULL);
    if (rc == ES_OK)
      rc = es__setrollup_level(sr, spec_bytype(r->spec), &ro);
    if (rc == ES_OK)
      rc = run_cells(r, ro, INT64_MIN, INT64_MAX);
  }
  for (size_t i = 0; rc == ES_OK && !(all && any) && i < v->set->n; i++) {
    es_segment *seg = v->set->segs[i];
    if (seg->max_ts < from_us || seg->min_ts >= to_us)
      continue;
    const es_rollup *ro = NULL;
    int derived = 0;
    rc = es__segment_rollup(seg, &ro, &derived);
    if (rc == ES_OK && derived)
      es__db_log(db, 1, "%s: rollup file %s; derived from the rows", seg->path,
                 es__rollup_derived_why(derived));
    if (rc == ES_OK)
      rc = run_segment_cells(r, ro, lo, hi);
  }
  r->in_index = 0;
  ES_TRY(rc);
  for (size_t i = 0; i < v->nmts; i++) {
    const es_rollup *ro = es__memtable_rollup_begin(v->mts[i]);
    int rc = ro ? run_cells(r, ro, lo, hi) : ES_OK;
    es__memtable_rollup_end(v->mts[i]);
    ES_TRY(rc);
    if (!ro) {
      *fallback = 1;
      return ES_OK;
    }
  }
  return ES_OK;
}

/* The rollup plan; *fallback set when the caller must scan instead. */
static int run_rollup_plan(q_run *r, es_db *db, const char *tenant,
                           int *fallback) {
  const es_query_spec *s = r->spec;
  r->approx = s->uniques;
  /* whole minutes [lo, hi); the partial ones at the ends are scanned */
  int64_t lo = s->from_us == INT64_MIN
                   ? INT64_MIN
                   : -floor_div(-s->from_us, ES_MINUTE_US); /* ceiling */
  int64_t hi =
      s->to_us == INT64_MAX ? INT64_MAX : floor_div(s->to_us, ES_MINUTE_US);
  if (s->dim) { /* dimension cells are per block of minutes (rollup.h) */
    const int64_t b = ES_ROLLUP_DIM_MINUTES;
    if (lo != INT64_MIN)
      lo = -floor_div(-lo, b) * b;
    if (hi != INT64_MAX)
      hi = floor_div(hi, b) * b;
  }
  if (lo >= hi) /* no whole minute (block) inside: scan it all */
    return run_scan(r, db, tenant, s->from_us, s->to_us);
  es_tenant *t = NULL;
  ES_TRY(es__tenant_get(db, tenant, 0, &t));
  if (t) { /* the view is kept until the result is written (base) */
    ES_TRY(es__tenant_view(t, &r->view));
    r->have_view = 1;
    ES_TRY(run_rollups(r, db, t, &r->view, lo, hi, fallback));
    if (*fallback)
      return ES_OK;
  }
  if (lo != INT64_MIN && s->from_us < lo * ES_MINUTE_US)
    ES_TRY(run_scan(r, db, tenant, s->from_us, lo * ES_MINUTE_US));
  if (hi != INT64_MAX && hi * ES_MINUTE_US < s->to_us)
    ES_TRY(run_scan(r, db, tenant, hi * ES_MINUTE_US, s->to_us));
  return ES_OK;
}

/* ----------------------------------------------------------------------
 * Ordering and writing the result
 * ---------------------------------------------------------------------- */

/* A row to sort: qsort has no context argument, so each row carries it. */
typedef struct q_row {
  const q_group *g;
  const q_run *run;
} q_row;

/* NULL (absent) first, then by bytes. */
static int cmp_str(const char *a, const char *b) {
  if (!a || !b)
    return (a != NULL) - (b != NULL);
  return strcmp(a, b);
}

/* Compares two groups by key: bucket, then groupBy values in order. */
static int cmp_key(const q_run *r, const q_key *a, const q_key *b) {
  if (a->bucket != b->bucket)
    return a->bucket < b->bucket ? -1 : 1;
  for (int i = 0; i < r->spec->nkeys; i++) {
    int c; /* one string, one id (q_intern): equal ids are equal strings */
    if (r->spec->keys[i] == ES_QKEY_TYPE)
      c = cmp_str(es_type_name((int)a->type), es_type_name((int)b->type));
    else if (r->spec->keys[i] == ES_QKEY_EVENT)
      c = a->event == b->event
              ? 0
              : cmp_str(q_str(r, a->event), q_str(r, b->event));
    else if (r->spec->keys[i] == ES_QKEY_DIM)
      c = a->value == b->value
              ? 0
              : cmp_str(q_str(r, a->value), q_str(r, b->value));
    else
      c = a->path == b->path ? 0
                             : cmp_str(q_str(r, a->path), q_str(r, b->path));
    if (c != 0)
      return c;
  }
  return 0;
}

static int cmp_row(const void *pa, const void *pb) {
  const q_row *a = pa, *b = pb;
  int order = a->run->spec->order;
  if (order != ES_QORDER_KEY && a->g->count != b->g->count) {
    int asc = a->g->count < b->g->count ? -1 : 1;
    return order == ES_QORDER_ASC ? asc : -asc;
  }
  return cmp_key(a->run, &a->g->key, &b->g->key);
}

static int put_str(es_buf *b, const char *s) {
  return es__buf_put(b, s, strlen(s));
}

/* Writes `"name":`, preceded by a comma unless it is the row's first
 * (one put: a result writes it once per row). */
static int put_name(es_buf *b, const char *name, int *first) {
  char t[32];
  size_t len = strlen(name), n = 0;
  if (len > sizeof(t) - 4)
    return ES_INVAL_BKPT("query: field name too long");
  if (!*first)
    t[n++] = ',';
  *first = 0;
  t[n++] = '"';
  memcpy(t + n, name, len);
  n += len;
  t[n++] = '"';
  t[n++] = ':';
  return es__buf_put(b, t, n);
}

/* "name": and a string, or null for an absent (NULL) value. */
static int put_field_str(es_buf *b, const char *name, const char *value,
                         int *first) {
  ES_TRY(put_name(b, name, first));
  return value ? es__json_put_str(b, value) : put_str(b, "null");
}

/* "name": and an unsigned number. */
static int put_field_u64(es_buf *b, const char *name, uint64_t value,
                         int *first) {
  char num[24], *p = num + sizeof(num); /* by hand: one per row */
  ES_TRY(put_name(b, name, first));
  do
    *--p = (char)('0' + value % 10);
  while ((value /= 10) != 0);
  return es__buf_put(b, p, (size_t)(num + sizeof(num) - p));
}

/* One row object, with only the keys the spec asked for. */
static int put_row(es_buf *b, const q_run *r, const q_group *g) {
  const es_query_spec *s = r->spec;
  const q_key *k = &g->key;
  int first = 1;
  ES_TRY(put_str(b, "{"));
  if (s->bucket_us) { /* plain ASCII: no escaping to look for */
    char t[ES_TIME_TEXT_SIZE + 16] = "\"bucket\":\"";
    size_t n = strlen(t);
    n += es__time_format(k->bucket, 0, t + n, sizeof(t) - n - 1);
    t[n++] = '"';
    ES_TRY(es__buf_put(b, t, n)); /* the row's first field */
    first = 0;
  }
  for (int i = 0; i < s->nkeys; i++) {
    if (s->keys[i] == ES_QKEY_TYPE)
      ES_TRY(put_field_str(b, "type", es_type_name((int)k->type), &first));
    else if (s->keys[i] == ES_QKEY_EVENT)
      ES_TRY(put_field_str(b, "event", q_str(r, k->event), &first));
    else if (s->keys[i] == ES_QKEY_DIM)
      ES_TRY(
          put_field_str(b, es__dim_name(s->dim), q_str(r, k->value), &first));
    else
      ES_TRY(put_field_str(b, "path", q_str(r, k->path), &first));
  }
  if (s->count)
    ES_TRY(put_field_u64(b, "count", g->count, &first));
  if (s->uniques)
    ES_TRY(put_field_u64(b, "uniques",
                         r->approx ? es__hll_estimate(&g->hll)
                         : r->dict ? r->dict_persons
                                   : g->persons.n,
                         &first));
  return put_str(b, "}");
}

/* Moves the `keep` first rows in cmp_row order to the front of rows[0..n)
 * (in no particular order): a bounded max-heap of the best seen so far,
 * so a top-N of many groups costs n log keep, not n log n. */
static void rows_select(q_row *rows, size_t n, size_t keep) {
  for (size_t i = 0; i < n; i++) {
    size_t at; /* where row i goes in the heap, or skip it */
    q_row x = rows[i];
    if (i < keep) {
      at = i;
      while (at > 0 && cmp_row(&rows[(at - 1) / 2], &x) < 0) { /* sift up */
        rows[at] = rows[(at - 1) / 2];
        at = (at - 1) / 2;
      }
      rows[at] = x;
      continue;
    }
    if (cmp_row(&x, &rows[0]) >= 0)
      continue; /* not better than the worst kept */
    at = 0;     /* replace the root, sift down */
    for (;;) {
      size_t c = 2 * at + 1;
      if (c >= keep)
        break;
      if (c + 1 < keep && cmp_row(&rows[c + 1], &rows[c]) > 0)
        c++;
      if (cmp_row(&rows[c], &x) <= 0)
        break;
      rows[at] = rows[c];
      at = c;
    }
    rows[at] = x;
  }
}

/* Sorts the groups, applies the limit and writes the result JSON into b,
 * NUL-terminated. */
static int run_write(const q_run *r, es_buf *b) {
  size_t n = r->table.n;
  q_row *rows = es__malloc((n ? n : 1) * sizeof(q_row));
  if (!rows)
    return ES_NOMEM_BKPT();
  int sorted = 1; /* often already: rollup cells come in minute order */
  for (size_t i = 0; i < n; i++) {
    rows[i] = (q_row){&r->table.groups[i], r};
    if (sorted && i > 0 && cmp_row(&rows[i - 1], &rows[i]) > 0)
      sorted = 0;
  }
  if (r->spec->limit && n > r->spec->limit) {
    if (!sorted)
      rows_select(rows, n, r->spec->limit);
    n = r->spec->limit;
  }
  if (!sorted)
    qsort(rows, n, sizeof(q_row), cmp_row);
  int rc = put_str(b, "{\"rows\":[");
  for (size_t i = 0; rc == ES_OK && i < n; i++) {
    if (i > 0)
      rc = put_str(b, ",");
    if (rc == ES_OK)
      rc = put_row(b, r, rows[i].g);
  }
  const char *source = !r->used_rollups ? "scan"
                       : r->used_scan   ? "mixed"
                                        : "rollup";
  char tail[96];
  snprintf(tail, sizeof(tail), "],\"source\":\"%s\",\"approx\":%s%s}", source,
           r->approx ? "true" : "false",
           r->approx ? ",\"error\":" Q_STR(ES_HLL_ERROR) : "");
  if (rc == ES_OK)
    rc = put_str(b, tail);
  if (rc == ES_OK)
    rc = es__buf_put(b, "", 1);
  es__free(rows);
  return rc;
}

/* ----------------------------------------------------------------------
 * The public calls
 * ---------------------------------------------------------------------- */

/* Answers a query spec; see eventstore.h. */
int es_query(es_db *db, const char *tenant, const char *spec_json,
             char **result_out) {
  es__error_clear();
  if (!result_out)
    return ES_INVAL_BKPT("es_query: result_out is NULL");
  *result_out = NULL;
  if (!db || !spec_json)
    return ES_INVAL_BKPT("es_query: NULL handle or spec");
  ES_TRY(es__tenant_check(tenant));
  es_query_spec spec;
  ES_TRY(es__query_spec_parse(spec_json, &spec));
  q_run run = {.spec = &spec};
  es_buf out = {0};
  int rc = ES_OK, fallback = 0, scan = 1;
  if (spec.plan != ES_QPLAN_SCAN && plan_rollup_ok(&spec) &&
      !rollups_hold_erased(db, tenant)) {
    ES_CHECK(run_rollup_plan(&run, db, tenant, &fallback));
    scan = fallback;
    if (fallback) { /* a memtable lost its rollup: start again, scanning */
      table_free(&run.table);
      es__strtab_free(&run.strs);
      run.base = NULL;
      memset(&run.table, 0, sizeof(run.table));
      run.approx = run.used_rollups = run.used_scan = 0;
    }
  }
  if (scan && (spec.uniques || spec.person))
    ES_CHECK(es__identity_load(db, tenant, &run.identity));
  if (scan && spec.plan != ES_QPLAN_SCAN && plan_dict_ok(&spec)) {
    int done = 0;
    ES_CHECK(run_dict_plan(&run, db, tenant, &done));
    scan = !done;
  }
  if (scan)
    ES_CHECK(run_scan(&run, db, tenant, spec.from_us, spec.to_us));
  ES_CHECK(run_write(&run, &out));
  *result_out = (char *)out.data; /* ownership passes to the caller */
  out.data = NULL;
err:
  es__buf_free(&out);
  table_free(&run.table);
  es__strtab_free(&run.strs);
  if (run.have_view)
    es__tenant_view_release(&run.view);
  es__identity_free(run.identity);
  es__free(run.map);
  es__query_spec_free(&spec);
  return rc;
}

/* Frees what the library returned as owned; NULL is fine. */
void es_free(void *p) { es__free(p); }
