/*
 * query.c -- `es-bench query`: the dashboard queries of issues 3 and 6 on
 * libeventstore (through the C API) and on DuckDB (SQL, bench/duckdb/
 * peer.mjs), on the same generated events, with every answer checked
 * across the systems.
 *
 * Sequence:
 *  1. Generate the workload; pick the hot tenant (most events), the
 *     median tenant (median event count of the tenants that have any),
 *     the cold tenant (fewest events), the day (the middle day of the
 *     span), the person (the hot tenant's userId with most events).
 *  2. Load libeventstore: es_append per batch (ES_SYNC_FULL, one thread,
 *     the ingest path), then es_flush.  Load DuckDB: the appender,
 *     committing every 100,000 rows (a bulk load: durable ingest is what
 *     `es-bench ingest` measures).  Load times are reported, not compared.
 *  3. Each query, on each system: `runs` cold timings (libeventstore:
 *     es_close, then es_open + the query; DuckDB: a fresh DuckDBInstance
 *     on the file + the query), then `runs` hot timings (the same query
 *     again on the open database).  The OS page cache stays warm: "cold"
 *     means a freshly opened database, not a cold disk.
 *  4. Answers are put in one canonical text form per query and compared
 *     byte for byte; a difference fails the run (exit 1).  The clock
 *     stops when a system's answer is in hand (libeventstore: the JSON
 *     text es_query or the rules API returns, the timeline's events as
 *     read; DuckDB: the rows as JS values); making the canonical text
 *     (parsing our JSON, formatting DuckDB's rows) comes after, on both
 *     sides, so neither is timed on the cross-check's own code.  Approximate
 *     uniques are not compared; their error against the exact answer is
 *     reported.
 *
 * libeventstore's side of each query:
 *  - minute counts, top pages, uniques: es_query with the JSON spec of
 *    docs/QUERY.md (whatever source it answers from: the result's
 *    "source" is reported);
 *  - segment members (/pricing >= 3 times in 7 days): the rules API.  The
 *    rule pricing-3x is created with es_rule_put (timed, but outside the
 *    query figures) right before its queries, and es_rule_members lists
 *    the members at T, the latest event time of the workload: visitor
 *    ids (anonymousId, else userId; not stitched) with at least 3
 *    /pricing page views in (T - 7d, T];
 *  - the same question over stitched persons (hot tenant only):
 *    es_rule_persons of the same rule at T, each person named by its
 *    smallest id;
 *  - person timeline: es_timeline_open / next / close.
 *
 * Approximate uniques (es_query "exact":false) are HyperLogLog estimates
 * of distinct visitor ids (not stitched) when es_query answers from its
 * rollups; DuckDB's approx_count_distinct is given the same visitor id,
 * and both are compared with the exact count of distinct visitor ids,
 * which es-bench computes from the generated events themselves.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "strmap.h"

#define RUNS_MAX 100
#define QUERIES_MAX 16
#define BASE_S 1709251200 /* 2024-03-01T00:00:00Z, gen.c's first day */

enum {
  K_MINUTE,
  K_TOP,
  K_UNIQ,
  K_UNIQ_APPROX,
  K_TIMELINE,
  K_MEMBERS_STITCHED,
  K_MEMBERS,
  K_COUNT
};
static const char *const kind_names[] = {
    "minute_counts",  "top_pages", "uniques_exact",
    "uniques_approx", "timeline",  "segment_members_stitched",
    "segment_members"};

/* What libeventstore's side of a query is answered by. */
static const char *const kind_api[] = {
    "es_query",
    "es_query",
    "es_query",
    "es_query",
    "es_timeline",
    "es_rule_persons (rule pricing-3x: counters summed per stitched person)",
    "es_rule_members (rule pricing-3x, created with es_rule_put)"};

#define RULE_NAME "pricing-3x"
#define RULE_JSON                                                              \
  "{\"name\":\"" RULE_NAME "\",\"match\":{\"type\":\"page\",\"path\":"         \
  "\"/pricing\"},\"atLeast\":3,\"within\":\"7d\"}"
#define RULE_WITHIN_US (INT64_C(7) * 86400 * 1000000)

typedef struct side {
  double cold_s[RUNS_MAX], hot_s[RUNS_MAX];
  double open_s[RUNS_MAX]; /* the open part of each cold run */
  char *answer;            /* canonical text, owned */
  char source[16];         /* es_query's "source" ("" if not es_query) */
  int approx;              /* es_query's "approx" */
} side;

typedef struct qdef {
  char name[96];
  int kind;
  char tenant[16];
  int64_t from_us, to_us; /* members: the window (from_us, to_us] */
  const char *person;
  int limit, at_least;
  side ours, peer;
  int checked; /* 1 equal, 0 not compared, -1 differ */
} qdef;

typedef struct qbench {
  const bench_common *a;
  workload w;
  char dir[4096];
  char es_dir[4200], duck_db[4200], batches[4200], qfile[4200];
  char hot[16], median[16], cold[16];
  size_t hot_n, median_n, cold_n;
  char person[256];
  size_t person_n;
  double load_es_s, load_duck_s;
  int64_t end_us;       /* T: the latest event time of the workload */
  double rule_put_s[2]; /* es_rule_put on the hot and median tenant */
  int rules_made;       /* how many of those have run */
  size_t visitors_hot;  /* distinct visitor ids of the hot tenant */
  qdef q[QUERIES_MAX];
  int nq;
  es_db *db;
} qbench;

/* ------------------------------------------------------------------ */
/* Picking tenants, the day and the person                             */
/* ------------------------------------------------------------------ */

typedef struct tcount {
  int idx;
  size_t n;
} tcount;

static int cmp_tcount(const void *x, const void *y) {
  const tcount *a = x, *b = y;
  if (a->n != b->n)
    return a->n < b->n ? -1 : 1;
  return a->idx - b->idx;
}

/* The ground truth the approximate uniques are judged by: the distinct
 * visitor ids (anonymousId, else userId; empty = absent) of the hot
 * tenant's generated events.  Also T, the latest event time of all. */
static int count_visitors(qbench *qb) {
  const workload *w = &qb->w;
  strmap ids = {0};
  qb->end_us = INT64_MIN;
  for (size_t i = 0; i < w->events_count; i++)
    if (w->events[i].ts_us > qb->end_us)
      qb->end_us = w->events[i].ts_us;
  for (size_t i = 0; i < w->batches_count; i++) {
    const batch *b = &w->batches[i];
    if (strcmp(b->tenant, qb->hot) != 0)
      continue;
    for (size_t j = 0; j < b->count; j++) {
      const es_event *ev = &b->events[j];
      const char *id = ev->anonymous_id && *ev->anonymous_id ? ev->anonymous_id
                       : ev->user_id && *ev->user_id         ? ev->user_id
                                                             : NULL;
      if (id && strmap_get(&ids, id) < 0) {
        strmap_free(&ids);
        return -1;
      }
    }
  }
  qb->visitors_hot = ids.count;
  strmap_free(&ids);
  return 0;
}

static int pick_targets(qbench *qb) {
  const workload *w = &qb->w;
  tcount *tc = calloc(10000, sizeof *tc);
  if (!tc)
    return -1;
  for (int i = 0; i < 10000; i++)
    tc[i].idx = i;
  for (size_t i = 0; i < w->batches_count; i++)
    tc[atoi(w->batches[i].tenant + 1)].n += w->batches[i].count;
  qsort(tc, 10000, sizeof *tc, cmp_tcount);
  int first = 0;
  while (first < 10000 && tc[first].n == 0)
    first++;
  int seen = 10000 - first;
  if (seen == 0) {
    free(tc);
    return -1;
  }
  const tcount *h = &tc[9999], *m = &tc[first + seen / 2], *c = &tc[first];
  snprintf(qb->hot, sizeof qb->hot, "t%04d", h->idx);
  snprintf(qb->median, sizeof qb->median, "t%04d", m->idx);
  snprintf(qb->cold, sizeof qb->cold, "t%04d", c->idx);
  qb->hot_n = h->n, qb->median_n = m->n, qb->cold_n = c->n;
  free(tc);

  /* The hot tenant's userId with the most events (ties: smallest). */
  strmap ids = {0};
  for (size_t i = 0; i < w->batches_count; i++) {
    const batch *b = &w->batches[i];
    if (strcmp(b->tenant, qb->hot) != 0)
      continue;
    for (size_t j = 0; j < b->count; j++) {
      const char *u = b->events[j].user_id;
      int64_t k = u && *u ? strmap_get(&ids, u) : -2;
      if (k == -1) {
        strmap_free(&ids);
        return -1;
      }
      if (k >= 0)
        ids.counts[k]++;
    }
  }
  int64_t best = -1;
  for (size_t k = 0; k < ids.count; k++)
    if (best < 0 || ids.counts[k] > ids.counts[best] ||
        (ids.counts[k] == ids.counts[best] &&
         strcmp(ids.names[k], ids.names[best]) < 0))
      best = (int64_t)k;
  snprintf(qb->person, sizeof qb->person, "%s",
           best >= 0 ? ids.names[best] : "nobody");
  qb->person_n = best >= 0 ? (size_t)ids.counts[best] : 0;
  strmap_free(&ids);
  return count_visitors(qb);
}

static void add_query(qbench *qb, int kind, const char *tenant,
                      const char *what) {
  qdef *q = &qb->q[qb->nq++];
  memset(q, 0, sizeof *q);
  q->kind = kind;
  snprintf(q->tenant, sizeof q->tenant, "%s", tenant);
  snprintf(q->name, sizeof q->name, "%s %s", what, tenant);
  int64_t day0 = (int64_t)BASE_S + (int64_t)(qb->a->days / 2) * 86400;
  q->from_us = INT64_MIN;
  q->to_us = INT64_MAX;
  if (kind == K_MINUTE) {
    q->from_us = day0 * 1000000;
    q->to_us = (day0 + 86400) * 1000000;
  } else if (kind == K_MEMBERS || kind == K_MEMBERS_STITCHED) {
    q->from_us = qb->end_us - RULE_WITHIN_US; /* excluded */
    q->to_us = qb->end_us;                    /* included */
    q->at_least = 3;
  } else if (kind == K_TOP) {
    q->limit = 10;
  } else if (kind == K_TIMELINE) {
    q->person = qb->person;
    q->limit = 20;
  }
  q->checked = 0;
}

static void plan_queries(qbench *qb) {
  add_query(qb, K_MINUTE, qb->hot, "counts/minute, 1 day, hot");
  add_query(qb, K_MINUTE, qb->median, "counts/minute, 1 day, median");
  add_query(qb, K_MINUTE, qb->cold, "counts/minute, 1 day, cold");
  add_query(qb, K_TOP, qb->hot, "top 10 pages, hot");
  add_query(qb, K_TOP, qb->median, "top 10 pages, median");
  add_query(qb, K_UNIQ, qb->hot, "unique visitors exact, hot");
  add_query(qb, K_UNIQ, qb->median, "unique visitors exact, median");
  add_query(qb, K_UNIQ_APPROX, qb->hot, "unique visitors approx, hot");
  add_query(qb, K_TIMELINE, qb->hot, "person's last 20 events, hot");
  /* Last: the rules exist from here on, and the first use of the tenant
   * loads their counters (from the rule state RSTATE, or a scan of each
   * rule's window when that is missing or stale), which the cold figures
   * of every later query include. */
  add_query(qb, K_MEMBERS, qb->hot, "/pricing>=3 in 7d members, hot");
  add_query(qb, K_MEMBERS_STITCHED, qb->hot, "/pricing>=3/7d persons, hot");
  add_query(qb, K_MEMBERS, qb->median, "/pricing>=3 in 7d members, median");
}

/* ------------------------------------------------------------------ */
/* libeventstore's answers                                             */
/* ------------------------------------------------------------------ */

static void iso_of(int64_t us, char *buf, size_t cap) {
  time_t s = (time_t)(us / 1000000);
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The es_query spec of a query (kinds answered by es_query). */
static void spec_of(const qdef *q, char *buf, size_t cap) {
  char from[32], to[32];
  switch (q->kind) {
  case K_MINUTE:
    iso_of(q->from_us, from, sizeof from);
    iso_of(q->to_us, to, sizeof to);
    snprintf(buf, cap, "{\"from\":\"%s\",\"to\":\"%s\",\"bucket\":\"minute\"}",
             from, to);
    break;
  case K_TOP:
    snprintf(buf, cap,
             "{\"filter\":{\"type\":\"page\"},\"groupBy\":[\"path\"],"
             "\"order\":\"desc\",\"limit\":%d}",
             q->limit);
    break;
  default:
    snprintf(buf, cap, "{\"aggregate\":[\"uniques\"],\"exact\":%s}",
             q->kind == K_UNIQ ? "true" : "false");
  }
}

static long long int_at(yajl_val row, const char *key, int *ok) {
  const char *path[] = {key, NULL};
  yajl_val v = yajl_tree_get(row, path, yajl_t_number);
  if (!v || !YAJL_IS_INTEGER(v)) {
    *ok = 0;
    return 0;
  }
  return YAJL_GET_INTEGER(v);
}

static const char *str_at(yajl_val row, const char *key) {
  const char *path[] = {key, NULL};
  yajl_val v = yajl_tree_get(row, path, yajl_t_any);
  return v && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

/* Turns es_query's result JSON into the canonical text of the query. */
static int canon_result(qdef *q, const char *json, sbuf *out) {
  char err[256];
  yajl_val root = yajl_tree_parse(json, err, sizeof err);
  if (!root) {
    bench_fail("%s: es_query's result is not JSON: %s", q->name, err);
    return -1;
  }
  const char *rows_path[] = {"rows", NULL};
  yajl_val rows = yajl_tree_get(root, rows_path, yajl_t_array);
  const char *src = str_at(root, "source");
  snprintf(q->ours.source, sizeof q->ours.source, "%s", src ? src : "?");
  const char *ap[] = {"approx", NULL};
  q->ours.approx = YAJL_IS_TRUE(yajl_tree_get(root, ap, yajl_t_any));
  int ok = rows != NULL;
  size_t n = rows ? rows->u.array.len : 0;
  if (ok && (q->kind == K_UNIQ || q->kind == K_UNIQ_APPROX))
    sbuf_printf(out, "%lld",
                n ? int_at(rows->u.array.values[0], "uniques", &ok) : 0LL);
  for (size_t i = 0;
       ok && i < n && q->kind != K_UNIQ && q->kind != K_UNIQ_APPROX; i++) {
    yajl_val r = rows->u.array.values[i];
    long long c = int_at(r, "count", &ok);
    if (q->kind == K_MINUTE) {
      const char *b = str_at(r, "bucket");
      struct tm tm;
      memset(&tm, 0, sizeof tm);
      if (!b || !strptime(b, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
        ok = 0;
        break;
      }
      sbuf_printf(out, "%s%lld %lld", i ? "\n" : "", (long long)timegm(&tm), c);
    } else {
      const char *p = str_at(r, "path");
      sbuf_printf(out, "%s%s %lld", i ? "\n" : "", p ? p : "(null)", c);
    }
  }
  yajl_tree_free(root);
  if (!ok) {
    bench_fail("%s: unexpected es_query result shape", q->name);
    return -1;
  }
  return 0;
}

/* The canonical text of es_rule_persons' answer (json, freed here): each
 * person by its name (its smallest id). */
static int members_answer(qdef *q, char *json, sbuf *out) {
  char err[256];
  yajl_val root = yajl_tree_parse(json, err, sizeof err);
  es_free(json);
  const char *pp[] = {"persons", NULL}, *np[] = {"person", NULL};
  yajl_val m = root ? yajl_tree_get(root, pp, yajl_t_array) : NULL;
  for (size_t i = 0; m && i < m->u.array.len; i++) {
    yajl_val v = yajl_tree_get(m->u.array.values[i], np, yajl_t_string);
    sbuf_printf(out, "%s%s", i ? "\n" : "",
                v ? YAJL_GET_STRING(v) : "(not a string)");
  }
  if (root)
    yajl_tree_free(root);
  if (!m) {
    bench_fail("%s: unexpected es_rule_persons result", q->name);
    return -1;
  }
  return 0;
}

/* The canonical text of es_rule_members' answer (json, freed here). */
static int rule_answer(qdef *q, char *json, sbuf *out) {
  char err[256];
  yajl_val root = yajl_tree_parse(json, err, sizeof err);
  es_free(json);
  const char *mp[] = {"members", NULL};
  yajl_val m = root ? yajl_tree_get(root, mp, yajl_t_array) : NULL;
  for (size_t i = 0; m && i < m->u.array.len; i++) {
    yajl_val v = m->u.array.values[i];
    sbuf_printf(out, "%s%s", i ? "\n" : "",
                YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : "(not a string)");
  }
  if (root)
    yajl_tree_free(root);
  if (!m) {
    bench_fail("%s: unexpected es_rule_members result", q->name);
    return -1;
  }
  return 0;
}

/* Creates the rule on q's tenant (once per tenant), timing es_rule_put:
 * it stores the rule durably and fills its counters from one scan of the
 * window.  Outside every query figure; reported on its own. */
static int rule_make(qbench *qb, const qdef *q) {
  int slot = !strcmp(q->tenant, qb->hot) ? 0 : 1;
  if (qb->rules_made & (1 << slot))
    return 0;
  double t0 = now_s();
  int rc = es_rule_put(qb->db, q->tenant, RULE_JSON);
  qb->rule_put_s[slot] = now_s() - t0;
  if (rc != ES_OK) {
    bench_fail("es_rule_put(%s): %s: %s", q->tenant, es_strerror(rc),
               es_errdetail());
    return -1;
  }
  qb->rules_made |= 1 << slot;
  return 0;
}

static int timeline_answer(qbench *qb, qdef *q, sbuf *out) {
  es_timeline *tl;
  int rc =
      es_timeline_open(qb->db, q->tenant, q->person, (size_t)q->limit, &tl);
  if (rc != ES_OK) {
    bench_fail("es_timeline_open: %s: %s", es_strerror(rc), es_errdetail());
    return -1;
  }
  es_event ev;
  int i = 0;
  while ((rc = es_timeline_next(tl, &ev)) == 1)
    sbuf_printf(out, "%s%lld %d %s", i++ ? "\n" : "", (long long)ev.ts_us,
                ev.type, ev.message_id ? ev.message_id : "(null)");
  es_timeline_close(tl);
  if (rc < 0) {
    bench_fail("es_timeline_next: %s", es_strerror(rc));
    return -1;
  }
  return 0;
}

/* q's call on the open store: es_query's result, or es_rule_persons' or
 * es_rule_members' at T (the rule's counters; persons: summed over each
 * person's linked ids), into *json_out (the library's, owned). */
static int ours_call(qbench *qb, qdef *q, char **json_out) {
  *json_out = NULL;
  const char *what = "es_query";
  int st;
  char spec[512] = "";
  if (q->kind == K_MEMBERS_STITCHED) {
    what = "es_rule_persons";
    st = es_rule_persons(qb->db, q->tenant, RULE_NAME, q->to_us, json_out);
  } else if (q->kind == K_MEMBERS) {
    what = "es_rule_members";
    st = es_rule_members(qb->db, q->tenant, RULE_NAME, q->to_us, json_out);
  } else {
    spec_of(q, spec, sizeof spec);
    st = es_query(qb->db, q->tenant, spec, json_out);
  }
  if (st != ES_OK) {
    bench_fail("%s: %s(%s): %s: %s", q->name, what, *spec ? spec : q->tenant,
               es_strerror(st), es_errdetail());
    return -1;
  }
  return 0;
}

/* Runs q once on the open store; *answer_out is malloc'ed text.  *took_s
 * is the time until libeventstore's answer is in hand (the result JSON;
 * the timeline's events as read): the canonical text is made after that,
 * as the DuckDB peer makes it after its rows are in hand. */
static int ours_once(qbench *qb, qdef *q, char **answer_out, double *took_s) {
  sbuf out = {0};
  int rc;
  double t0 = now_s();
  if (q->kind == K_TIMELINE) {
    rc = timeline_answer(qb, q, &out);
    *took_s = now_s() - t0;
  } else {
    char *res = NULL;
    if (ours_call(qb, q, &res) != 0)
      return -1;
    *took_s = now_s() - t0;
    rc = q->kind == K_MEMBERS_STITCHED ? members_answer(q, res, &out)
         : q->kind == K_MEMBERS        ? rule_answer(q, res, &out)
                                       : canon_result(q, res, &out);
    if (q->kind != K_MEMBERS_STITCHED && q->kind != K_MEMBERS)
      es_free(res);
  }
  sbuf_printf(&out, "%s", ""); /* an empty answer is "" rather than NULL */
  if (rc != 0 || out.failed) {
    if (rc == 0)
      bench_fail("out of memory");
    sbuf_free(&out);
    return -1;
  }
  *answer_out = out.s;
  return 0;
}

/* Keeps the first answer; a later one that differs is a failure. */
static int keep_answer(qdef *q, side *s, char *ans) {
  if (!s->answer) {
    s->answer = ans;
    return 0;
  }
  int same = !strcmp(s->answer, ans);
  free(ans);
  if (!same)
    bench_fail("%s: libeventstore's answer changed between runs", q->name);
  return same ? 0 : -1;
}

static int ours_measure(qbench *qb, qdef *q, size_t *done, size_t total) {
  int runs = qb->a->runs;
  if ((q->kind == K_MEMBERS || q->kind == K_MEMBERS_STITCHED) &&
      rule_make(qb, q) != 0)
    return -1;
  for (int r = 0; r < runs; r++) { /* cold: a freshly opened store */
    if (es_close(qb->db) != ES_OK) {
      qb->db = NULL;
      bench_fail("es_close: %s", es_errdetail());
      return -1;
    }
    qb->db = NULL;
    double t0 = now_s();
    char *ans;
    if (bench_es_open(qb->es_dir, &qb->db) != 0)
      return -1;
    q->ours.open_s[r] = now_s() - t0;
    double took;
    if (ours_once(qb, q, &ans, &took) != 0)
      return -1;
    q->ours.cold_s[r] = q->ours.open_s[r] + took;
    if (keep_answer(q, &q->ours, ans) != 0)
      return -1;
    bench_progress("queries: libeventstore", ++*done, total);
  }
  for (int r = 0; r < runs; r++) { /* hot: again on the open store */
    char *ans;
    if (ours_once(qb, q, &ans, &q->ours.hot_s[r]) != 0)
      return -1;
    if (keep_answer(q, &q->ours, ans) != 0)
      return -1;
    bench_progress("queries: libeventstore", ++*done, total);
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

static int load_es(qbench *qb) {
  double t0 = now_s();
  if (bench_es_load(&qb->w, qb->es_dir, &qb->db) != 0)
    return -1;
  qb->load_es_s = now_s() - t0;
  return 0;
}

static int load_duckdb(qbench *qb) {
  char total[32];
  snprintf(total, sizeof total, "%zu", qb->w.events_count);
  const char *args[] = {"ingest",    "--db",    qb->duck_db, "--input",
                        qb->batches, "--total", total,       "--commit-rows",
                        "100000",    NULL};
  peer_proc p;
  char *json;
  double t0 = now_s();
  if (peer_start(&p, args) != 0 || peer_finish(&p, "load duckdb", &json) != 0)
    return -1;
  qb->load_duck_s = now_s() - t0;
  double n = json_num(json, "events", 0);
  free(json);
  if (n != (double)qb->w.events_count) {
    bench_fail("DuckDB loaded %.0f events, not %zu", n, qb->w.events_count);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* DuckDB's answers                                                    */
/* ------------------------------------------------------------------ */

static int write_queries_file(qbench *qb) {
  FILE *f = fopen(qb->qfile, "w");
  if (!f) {
    bench_fail("cannot write %s", qb->qfile);
    return -1;
  }
  fputs("{\"queries\":[", f);
  for (int i = 0; i < qb->nq; i++) {
    const qdef *q = &qb->q[i];
    fprintf(f, "%s{\"name\":", i ? "," : "");
    json_string_to(f, q->name);
    fprintf(f, ",\"kind\":\"%s\",\"tenant\":\"%s\"", kind_names[q->kind],
            q->tenant);
    if (q->from_us != INT64_MIN)
      fprintf(f, ",\"from_us\":%lld,\"to_us\":%lld", (long long)q->from_us,
              (long long)q->to_us);
    if (q->limit)
      fprintf(f, ",\"limit\":%d", q->limit);
    if (q->at_least)
      fprintf(f, ",\"at_least\":%d,\"path\":\"/pricing\"", q->at_least);
    if (q->person) {
      fputs(",\"person\":", f);
      json_string_to(f, q->person);
    }
    fputc('}', f);
  }
  fputs("]}\n", f);
  return fclose(f) == 0 ? 0 : -1;
}

static int peer_measure(qbench *qb) {
  if (write_queries_file(qb) != 0)
    return -1;
  char runs[16];
  snprintf(runs, sizeof runs, "%d", qb->a->runs);
  const char *args[] = {"query",   "--db",   qb->duck_db, "--queries",
                        qb->qfile, "--runs", runs,        NULL};
  peer_proc p;
  char *json;
  if (peer_start(&p, args) != 0 ||
      peer_finish(&p, "queries: duckdb", &json) != 0)
    return -1;
  char err[256];
  yajl_val root = yajl_tree_parse(json, err, sizeof err);
  free(json);
  const char *rp[] = {"results", NULL};
  yajl_val res = root ? yajl_tree_get(root, rp, yajl_t_array) : NULL;
  int rc = res && res->u.array.len == (size_t)qb->nq ? 0 : -1;
  for (int i = 0; rc == 0 && i < qb->nq; i++) {
    yajl_val r = res->u.array.values[i];
    const char *cp[] = {"cold_s", NULL}, *hp[] = {"hot_s", NULL},
               *op[] = {"open_s", NULL};
    yajl_val c = yajl_tree_get(r, cp, yajl_t_array);
    yajl_val h = yajl_tree_get(r, hp, yajl_t_array);
    yajl_val o = yajl_tree_get(r, op, yajl_t_array);
    const char *ans = str_at(r, "answer");
    size_t runs = (size_t)qb->a->runs;
    if (!c || !h || !o || !ans || c->u.array.len != runs ||
        h->u.array.len != runs || o->u.array.len != runs) {
      rc = -1;
      break;
    }
    for (int k = 0; k < qb->a->runs; k++) {
      qb->q[i].peer.cold_s[k] = YAJL_GET_DOUBLE(c->u.array.values[k]);
      qb->q[i].peer.hot_s[k] = YAJL_GET_DOUBLE(h->u.array.values[k]);
      qb->q[i].peer.open_s[k] = YAJL_GET_DOUBLE(o->u.array.values[k]);
    }
    qb->q[i].peer.answer = strdup(ans);
  }
  if (root)
    yajl_tree_free(root);
  if (rc != 0)
    bench_fail("the DuckDB peer's query result has an unexpected shape");
  return rc;
}

/* ------------------------------------------------------------------ */
/* Cross-check and report                                              */
/* ------------------------------------------------------------------ */

/* The first line where answers a and b differ, for the failure message;
 * a side that ran out of lines shows "(no more rows)".  An answer is a
 * sequence of lines; "" has none. */
static void first_difference(const char *a, const char *b, int *line, char *la,
                             char *lb, size_t cap) {
  if (!*a)
    a = NULL;
  if (!*b)
    b = NULL;
  for (*line = 1; a || b; (*line)++) {
    size_t na = a ? strcspn(a, "\n") : 0, nb = b ? strcspn(b, "\n") : 0;
    if (!a || !b || na != nb || memcmp(a, b, na) != 0) {
      snprintf(la, cap, "%.*s", (int)(a ? na : 14), a ? a : "(no more rows)");
      snprintf(lb, cap, "%.*s", (int)(b ? nb : 14), b ? b : "(no more rows)");
      return;
    }
    a = a[na] ? a + na + 1 : NULL;
    b = b[nb] ? b + nb + 1 : NULL;
  }
  snprintf(la, cap, "(equal)");
  snprintf(lb, cap, "(equal)");
}

static int cross_check(qbench *qb) {
  int bad = 0;
  for (int i = 0; i < qb->nq; i++) {
    qdef *q = &qb->q[i];
    if (!q->ours.answer || !q->peer.answer)
      continue;
    if (q->kind == K_UNIQ_APPROX) {
      q->checked = 0;
      continue;
    }
    if (!strcmp(q->ours.answer, q->peer.answer)) {
      q->checked = 1;
      continue;
    }
    q->checked = -1;
    bad = 1;
    int line;
    char la[256], lb[256];
    first_difference(q->ours.answer, q->peer.answer, &line, la, lb, sizeof la);
    fprintf(stderr,
            "es-bench: MISMATCH in \"%s\": answers differ at line %d:\n"
            "  libeventstore: %s\n  duckdb:        %s\n",
            q->name, line, la, lb);
  }
  return bad ? -1 : 0;
}

static size_t lines_of(const char *s) {
  if (!s || !*s)
    return 0;
  size_t n = 1;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

static stat3 ms_of(const double *v, int runs) {
  double x[RUNS_MAX];
  for (int i = 0; i < runs; i++)
    x[i] = v[i] * 1e3;
  return stat3_of(x, runs);
}

/* An approximate answer's error against the exact count of distinct
 * visitor ids (the generated events' own), in percent. */
static double approx_error_pct(const qbench *qb, const char *answer) {
  double e = (double)qb->visitors_hot, v = atof(answer);
  return e > 0 ? (v - e) / e * 100 : 0;
}

static const char *check_word(const qdef *q) {
  return q->checked > 0 ? "equal" : q->checked < 0 ? "DIFFER" : "unchecked";
}

static void check_text(const qbench *qb, const qdef *q, int peer, char *buf,
                       size_t cap) {
  const side *s = peer ? &q->peer : &q->ours;
  if (!s->answer) {
    snprintf(buf, cap, "-");
  } else if (q->kind == K_UNIQ_APPROX) {
    snprintf(buf, cap, "%s (%+.2f%% vs %zu visitor ids%s)", s->answer,
             approx_error_pct(qb, s->answer), qb->visitors_hot,
             peer        ? ""
             : s->approx ? "; approx:true"
                         : "; approx:false");
  } else if (q->kind == K_UNIQ) {
    snprintf(buf, cap, "%s %s", check_word(q), s->answer);
  } else {
    snprintf(buf, cap, "%s, %zu rows", check_word(q), lines_of(s->answer));
  }
  if (!peer && s->source[0]) {
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, " [%s]", s->source);
  }
}

/* The median open time over the cold runs of the queries measured
 * before the rules existed (with_rules 0), after (1) or all (-1), ms; -1
 * if there are none. */
static double open_ms(const qbench *qb, int peer, int with_rules) {
  static double v[QUERIES_MAX * RUNS_MAX];
  int n = 0;
  for (int i = 0; i < qb->nq; i++) {
    const side *s = peer ? &qb->q[i].peer : &qb->q[i].ours;
    if (s->answer &&
        (with_rules < 0 ||
         (qb->q[i].kind == K_MEMBERS || qb->q[i].kind == K_MEMBERS_STITCHED) ==
             with_rules))
      for (int r = 0; r < qb->a->runs; r++)
        v[n++] = s->open_s[r] * 1e3;
  }
  return n ? stat3_of(v, n).med : -1;
}

static void print_row(const char *name, const char *sys, stat3 c, stat3 h,
                      double sc, double sh, const char *check) {
  char b[2][16];
  snprintf(b[0], sizeof b[0], sc > 0 ? "%.2fx" : "-", sc);
  snprintf(b[1], sizeof b[1], sh > 0 ? "%.2fx" : "-", sh);
  printf("  %-40s %-13s %9.2f %9.2f %9.2f %9.3f %9.3f %9.3f %8s %8s  %s\n",
         name, sys, c.min, c.med, c.max, h.min, h.med, h.max, b[0], b[1],
         check);
}

static void print_table(const qbench *qb) {
  const bench_common *a = qb->a;
  printf("es-bench query: %zu events, %d tenants, seed %llu, %d days, %d "
         "runs\n",
         qb->w.events_count, qb->w.tenants_seen, (unsigned long long)a->seed,
         a->days, a->runs);
  printf("tenants: hot %s (%zu events), median %s (%zu), cold %s (%zu); "
         "person %s (%zu events as userId)\n",
         qb->hot, qb->hot_n, qb->median, qb->median_n, qb->cold, qb->cold_n,
         qb->person, qb->person_n);
  printf("load (not compared): libeventstore %.1f s (es_append per batch, "
         "ES_SYNC_FULL, + es_flush); duckdb %.1f s (appender, commit every "
         "100000 rows, incl. node start)\n",
         qb->load_es_s, qb->load_duck_s);
  char T[32];
  iso_of(qb->end_us, T, sizeof T);
  printf("open, part of every cold figure (median over the cold runs): "
         "libeventstore es_open %.1f ms, %.1f ms once the rules exist "
         "(members rows: cold = es_open + the tenant's first use, which "
         "loads the rule counters saved at close, RSTATE); duckdb "
         "DuckDBInstance.create + connect %.1f ms\n",
         open_ms(qb, 0, 0), open_ms(qb, 0, 1), open_ms(qb, 1, -1));
  printf("rule " RULE_JSON " created with es_rule_put (not in any figure): "
         "%.1f ms on %s, %.1f ms on %s; members asked at T = %s (the "
         "latest event time), window (T - 7d, T]\n\n",
         qb->rule_put_s[0] * 1e3, qb->hot, qb->rule_put_s[1] * 1e3, qb->median,
         T);
  printf("  %-40s %-13s %9s %9s %9s %9s %9s %9s %8s %8s  %s\n", "query",
         "system", "cold ms", "median", "max", "hot ms", "median", "max",
         "x cold", "x hot", "answer");
  for (int i = 0; i < qb->nq; i++) {
    const qdef *q = &qb->q[i];
    char chk[160];
    stat3 oc = ms_of(q->ours.cold_s, a->runs),
          oh = ms_of(q->ours.hot_s, a->runs);
    if (q->ours.answer) {
      check_text(qb, q, 0, chk, sizeof chk);
      print_row(q->name, "libeventstore", oc, oh, -1, -1, chk);
    }
    if (q->peer.answer) {
      stat3 pc = ms_of(q->peer.cold_s, a->runs),
            ph = ms_of(q->peer.hot_s, a->runs);
      check_text(qb, q, 1, chk, sizeof chk);
      print_row(q->ours.answer ? "" : q->name, "duckdb", pc, ph,
                oc.med > 0 ? pc.med / oc.med : -1,
                oh.med > 0 ? ph.med / oh.med : -1, chk);
    }
  }
  printf("  (x cold / x hot: DuckDB's median time divided by "
         "libeventstore's -- above 1, libeventstore is faster.\n"
         "   cold = open the database + the query (es_open; a fresh "
         "DuckDBInstance), page cache warm;\n"
         "   hot = the same query again on the open database.  DuckDB uses "
         "its default threads (all cores).\n"
         "   The clock stops at each system's answer: es_query's or the rules "
         "API's JSON text, the timeline's events; DuckDB's rows as JS\n"
         "   values.  The canonical text compared is made after it.)\n");
  printf("  libeventstore answers through: ");
  for (int k = 0; k < K_COUNT; k++)
    printf("%s%s = %s", k ? "; " : "", kind_names[k], kind_api[k]);
  printf(".\n  [rollup|scan|mixed]: the \"source\" of es_query's result.\n"
         "  unique visitors exact = distinct persons after identity "
         "stitching (es_query \"exact\":true; DuckDB: recursive CTE over\n"
         "   identify/alias links, the same rules).  approx = distinct "
         "visitor ids (anonymousId, else userId; not stitched):\n"
         "   es_query \"exact\":false (HyperLogLog from rollups) and "
         "DuckDB approx_count_distinct, each against the exact count of\n"
         "   distinct visitor ids in the generated events.\n"
         "  members = visitor ids (anonymousId, else userId; not stitched) "
         "with >= 3 /pricing page views in (T - 7d, T]; DuckDB:\n"
         "   GROUP BY that id HAVING count(*) >= 3.  persons = the same "
         "count over stitched persons: es_rule_persons of the\n"
         "   same rule; DuckDB with the stitching CTE; a person is named by "
         "its smallest id.\n");
}

static void print_json(const qbench *qb) {
  const bench_common *a = qb->a;
  printf("{\"bench\":\"query\",\"events\":%zu,\"tenants\":%d,\"seed\":%llu,"
         "\"days\":%d,\"runs\":%d,\"hot\":\"%s\",\"hot_events\":%zu,"
         "\"median\":\"%s\",\"median_events\":%zu,\"cold\":\"%s\","
         "\"cold_events\":%zu,\"person\":",
         qb->w.events_count, qb->w.tenants_seen, (unsigned long long)a->seed,
         a->days, a->runs, qb->hot, qb->hot_n, qb->median, qb->median_n,
         qb->cold, qb->cold_n);
  json_string_to(stdout, qb->person);
  printf(",\"load_s\":{\"libeventstore\":%.3f,\"duckdb\":%.3f},"
         "\"open_ms_median\":{\"libeventstore\":%.3f,\"duckdb\":%.3f},",
         qb->load_es_s, qb->load_duck_s, open_ms(qb, 0, 0), open_ms(qb, 1, -1));
  printf("\"open_ms_median_with_rules\":{\"libeventstore\":%.3f},"
         "\"rule\":%s,\"rule_put_ms\":{\"hot\":%.3f,\"median\":%.3f},"
         "\"members_at_us\":%lld,\"visitor_ids_exact_hot\":%zu,"
         "\"queries\":[",
         open_ms(qb, 0, 1), RULE_JSON, qb->rule_put_s[0] * 1e3,
         qb->rule_put_s[1] * 1e3, (long long)qb->end_us, qb->visitors_hot);
  for (int i = 0; i < qb->nq; i++) {
    const qdef *q = &qb->q[i];
    printf("%s{\"name\":", i ? "," : "");
    json_string_to(stdout, q->name);
    printf(",\"kind\":\"%s\",\"tenant\":\"%s\",\"api\":\"%s\","
           "\"check\":\"%s\",\"systems\":[",
           kind_names[q->kind], q->tenant, kind_api[q->kind],
           q->checked > 0   ? "equal"
           : q->checked < 0 ? "mismatch"
                            : "not compared");
    for (int s = 0; s < 2; s++) {
      const side *sd = s ? &q->peer : &q->ours;
      if (!sd->answer)
        continue;
      printf("%s{\"system\":\"%s\",", s ? "," : "",
             s ? "duckdb" : "libeventstore");
      bench_json_stat3("cold_ms", ms_of(sd->cold_s, a->runs));
      putchar(',');
      bench_json_stat3("hot_ms", ms_of(sd->hot_s, a->runs));
      printf(",\"answer_lines\":%zu", lines_of(sd->answer));
      if (q->kind == K_UNIQ || q->kind == K_UNIQ_APPROX)
        printf(",\"uniques\":%s", sd->answer);
      if (q->kind == K_UNIQ_APPROX)
        printf(",\"error_pct_vs_visitor_ids\":%.4f",
               approx_error_pct(qb, sd->answer));
      if (!s && sd->source[0])
        printf(",\"source\":\"%s\",\"approx\":%s", sd->source,
               sd->approx ? "true" : "false");
      putchar('}');
    }
    printf("]");
    if (q->peer.answer && q->ours.answer) {
      stat3 oc = ms_of(q->ours.cold_s, a->runs),
            oh = ms_of(q->ours.hot_s, a->runs);
      stat3 pc = ms_of(q->peer.cold_s, a->runs),
            ph = ms_of(q->peer.hot_s, a->runs);
      printf(",\"duckdb_over_ours_cold\":%.4f,\"duckdb_over_ours_hot\":%.4f",
             pc.med / oc.med, ph.med / oh.med);
    }
    putchar('}');
  }
  printf("]}\n");
}

/* ------------------------------------------------------------------ */
/* The command                                                         */
/* ------------------------------------------------------------------ */

static int run_all(qbench *qb) {
  const bench_common *a = qb->a;
  if (pick_targets(qb) != 0) {
    bench_fail("no events to query");
    return -1;
  }
  plan_queries(qb);
  if (a->use_es) {
    if (load_es(qb) != 0)
      return -1;
    size_t done = 0, total = (size_t)qb->nq * (size_t)a->runs * 2;
    for (int i = 0; i < qb->nq; i++)
      if (ours_measure(qb, &qb->q[i], &done, total) != 0)
        return -1;
    bench_progress_clear();
    es_close(qb->db);
    qb->db = NULL;
  }
  if (a->use_duckdb) {
    if (duckdb_write_batches(&qb->w, qb->batches) != 0 ||
        load_duckdb(qb) != 0 || peer_measure(qb) != 0)
      return -1;
    unlink(qb->batches);
  }
  return 0;
}

int cmd_query(const bench_common *a) {
  qbench *qb = calloc(1, sizeof *qb);
  if (!qb) {
    fprintf(stderr, "es-bench: out of memory\n");
    return 1;
  }
  qb->a = a;
  int made_base = 0, rc = -1;
  if (a->runs > RUNS_MAX ||
      make_base_dir(a->dir, qb->dir, sizeof qb->dir, &made_base) != 0) {
    free(qb);
    return 1;
  }
  snprintf(qb->es_dir, sizeof qb->es_dir, "%s/es", qb->dir);
  snprintf(qb->duck_db, sizeof qb->duck_db, "%s/events.duckdb", qb->dir);
  snprintf(qb->batches, sizeof qb->batches, "%s/batches.jsonl", qb->dir);
  snprintf(qb->qfile, sizeof qb->qfile, "%s/queries.json", qb->dir);
  if (bench_progress_enabled)
    fprintf(stderr, "generating %llu events...", (unsigned long long)a->events);
  if (workload_build(&qb->w, a->events, a->seed, a->days, 100) != 0) {
    fprintf(stderr, "es-bench: out of memory generating the workload\n");
    goto out;
  }
  if (bench_progress_enabled)
    fputs("\r\033[K", stderr);
  bench_fail_reset();
  rc = run_all(qb);
  if (qb->db)
    es_close(qb->db);
  if (rc != 0) {
    bench_progress_clear();
    fprintf(stderr, "es-bench query: %s\n", bench_last_error());
    goto out;
  }
  int check = cross_check(qb);
  if (a->json) {
    print_json(qb);
  } else {
    print_table(qb);
    if (a->json_file)
      bench_print_to_file(a->json_file, (void (*)(const void *))print_json, qb);
  }
  if (check != 0) {
    fprintf(stderr, "es-bench query: answers differ between the systems "
                    "(see MISMATCH above): failing\n");
    rc = -1;
  }
out:
  for (int i = 0; i < qb->nq; i++) {
    free(qb->q[i].ours.answer);
    free(qb->q[i].peer.answer);
  }
  workload_free(&qb->w);
  if (getenv("ES_BENCH_KEEP")) /* the stores, for profiling es_open */
    fprintf(stderr, "es-bench query: kept %s (ES_BENCH_KEEP)\n", qb->dir);
  else
    remove_base_dir(a->dir, qb->dir, made_base);
  free(qb);
  return rc == 0 ? 0 : 1;
}
