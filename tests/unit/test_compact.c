/*
 * test_compact.c -- unit tests of es_compact (lib/compact.c) on the real
 * file system; its crash safety is tested in tests/fault.
 *
 * What must hold:
 *  1. Merging many small segments gives one segment holding exactly the
 *     same events in exactly the same order (scan equal event by event),
 *     the same query answers from rollups and from rows, verify clean, the
 *     same after a reopen; the old files are gone.
 *  2. Retention drops exactly the events older than the cut-off (segments
 *     of only old events go entirely) and rollups follow.
 *  3. Compaction runs while other threads append and flush: every
 *     acknowledged event is present exactly once afterwards.
 *  4. Bad arguments are refused; an empty store is fine.
 *  5. es_compact_options.memory_bytes bounds a run by what its inputs
 *     cost a merge in memory (rows re-encoded, as the segment footer
 *     records them), and segments too big for it are left alone.
 *  6. An output's rollup equals the one its rows give (es_rollup_rebuild
 *     rewrites nothing), whether its inputs' rollups were added whole
 *     (every row kept, nothing folded into "(other)"), their rows
 *     counted (some rows dropped, or a dimension folded), or both.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "eventstore.h"
#include "store/dbint.h"
#include "unit.h"

#define DAY_US (INT64_C(86400) * 1000000)

static es_db *open_db(const char *dir) {
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.shards = 2;
  o.sync_mode = ES_SYNC_NONE;
  es_db *db = NULL;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  return db;
}

/* Appends n events of tenant with ts base + i ms, message ids "<tag>-i". */
static void fill(es_db *db, const char *tenant, const char *tag, int n,
                 int64_t base) {
  for (int i = 0; i < n;) {
    es_event evs[50];
    char ids[50][32];
    int m = 0;
    for (; m < 50 && i < n; m++, i++) {
      memset(&evs[m], 0, sizeof(evs[m]));
      snprintf(ids[m], sizeof(ids[m]), "%s-%d", tag, i);
      evs[m].ts_us = base + (int64_t)(i % 37) * 60000000 + i; /* unsorted */
      evs[m].type = i % 4 ? ES_TYPE_PAGE : ES_TYPE_TRACK;
      evs[m].event = i % 4 ? NULL : "Clicked";
      evs[m].path = i % 3 ? "/pricing" : "/";
      evs[m].message_id = ids[m];
      evs[m].anonymous_id = i % 5 ? "a1" : "a2";
    }
    ck_assert_int_eq(es_append(db, tenant, evs, (size_t)m, NULL), ES_OK);
  }
}

static char *query(es_db *db, const char *tenant, const char *spec) {
  char *out = NULL;
  ck_assert_int_eq(es_query(db, tenant, spec, &out), ES_OK);
  char *copy = strdup(out);
  es_free(out);
  *strstr(copy, ",\"source\"") = '\0'; /* compare the rows only */
  return copy;
}

/* A fresh store (in dir, named after what) whose tenant has nseg
 * segments of 300 events each, all from a day ago. */
static es_db *with_segments(char *dir, size_t cap, const char *what,
                            const char *tenant, int nseg) {
  ut_tmpdir(dir, cap, what);
  es_db *db = open_db(dir);
  int64_t base = es__clock_now_us() - DAY_US;
  for (int s = 0; s < nseg; s++) {
    char tag[8];
    snprintf(tag, sizeof(tag), "s%d", s);
    fill(db, tenant, tag, 300, base);
    ck_assert_int_eq(es_flush(db, tenant), ES_OK);
  }
  return db;
}

START_TEST(test_merge) {
  char dir[512], tdir[600];
  es_db *db = with_segments(dir, sizeof(dir), "compact-merge", "m", 7);
  int64_t base = es__clock_now_us() - DAY_US;
  fill(db, "m", "mem", 100, base); /* stays in the memtable */
  snprintf(tdir, sizeof(tdir), "%s/tenants/m", dir);
  ck_assert_int_eq(ut_count_suffix(tdir, ".seg"), 7);
  int n0;
  char *ids0 = ut_scan_ids(db, "m", &n0);
  static const char *const spec =
      "{\"bucket\":\"hour\",\"groupBy\":[\"path\",\"type\"],"
      "\"aggregate\":[\"count\",\"uniques\"]}";
  char *q0 = query(db, "m", spec);
  es_compact_report rep;
  ck_assert_int_eq(es_compact(db, "m", NULL, &rep), ES_OK);
  ck_assert_uint_eq(rep.tenants, 1);
  ck_assert_uint_eq(rep.segments_in, 7);
  ck_assert_uint_eq(rep.segments_out, 1);
  ck_assert_uint_eq(rep.rows_in, 2100);
  ck_assert_uint_eq(rep.rows_out, 2100);
  ck_assert_uint_eq(rep.rows_dropped, 0);
  ck_assert_int_eq(ut_count_suffix(tdir, ".seg"), 1);
  ck_assert_int_eq(ut_count_suffix(tdir, ".rlp"), 1);
  int n1;
  char *ids1 = ut_scan_ids(db, "m", &n1);
  ck_assert_int_eq(n1, n0);
  ck_assert_str_eq(ids1, ids0); /* same events, same order */
  char *q1 = query(db, "m", spec);
  ck_assert_str_eq(q1, q0);
  /* a second compaction has nothing to do */
  ck_assert_int_eq(es_compact(db, NULL, NULL, &rep), ES_OK);
  ck_assert_uint_eq(rep.segments_in, 0);
  ck_assert_int_eq(es_close(db), ES_OK);
  ck_assert_int_eq(es_verify(dir, NULL, NULL), ES_OK);
  db = open_db(dir);
  char *ids2 = ut_scan_ids(db, "m", NULL), *q2 = query(db, "m", spec);
  ck_assert_str_eq(ids2, ids0);
  ck_assert_str_eq(q2, q0);
  es_rollup_report rr;
  ck_assert_int_eq(es_rollup_rebuild(db, "m", INT64_MIN, INT64_MAX, &rr),
                   ES_OK);
  ck_assert_uint_eq(rr.rewritten, 0); /* its rollup equals the rows' */
  ck_assert_int_eq(es_close(db), ES_OK);
  free(ids0), free(ids1), free(ids2), free(q0), free(q1), free(q2);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_retention) {
  char dir[512], tdir[600];
  ut_tmpdir(dir, sizeof(dir), "compact-retain");
  es_db *db = open_db(dir);
  int64_t now = es__clock_now_us();
  fill(db, "r", "old", 200, now - 40 * DAY_US); /* all expired */
  ck_assert_int_eq(es_flush(db, "r"), ES_OK);
  fill(db, "r", "mix-old", 150, now - 31 * DAY_US);
  fill(db, "r", "mix-new", 150, now - 10 * DAY_US);
  ck_assert_int_eq(es_flush(db, "r"), ES_OK);
  fill(db, "r", "new", 100, now - DAY_US);
  ck_assert_int_eq(es_flush(db, "r"), ES_OK);
  es_compact_options o;
  es_compact_options_init(&o);
  o.retain_us = 30 * DAY_US;
  es_compact_report rep;
  ck_assert_int_eq(es_compact(db, "r", &o, &rep), ES_OK);
  ck_assert_uint_eq(rep.rows_dropped, 350);
  ck_assert_uint_eq(rep.rows_out, 250);
  int n;
  char *ids = ut_scan_ids(db, "r", &n);
  ck_assert_int_eq(n, 250);
  ck_assert_ptr_null(strstr(ids, "old-"));
  char *a = query(db, "r", "{\"groupBy\":[\"path\"]}");
  char *b = query(db, "r", "{\"groupBy\":[\"path\"],\"plan\":\"scan\"}");
  ck_assert_str_eq(a, b);
  ck_assert_ptr_nonnull(strstr(a, "\"count\":")); /* not empty */
  snprintf(tdir, sizeof(tdir), "%s/tenants/r", dir);
  ck_assert_int_eq(ut_count_suffix(tdir, ".seg"), 1);
  es_rollup_report rr; /* one input's rows counted, one's cells added */
  ck_assert_int_eq(es_rollup_rebuild(db, "r", INT64_MIN, INT64_MAX, &rr),
                   ES_OK);
  ck_assert_uint_eq(rr.rewritten, 0);
  ck_assert_int_eq(es_close(db), ES_OK);
  free(ids), free(a), free(b);
  ut_rmrf(dir);
}
END_TEST

/* An input whose rollup folded referrers into "(other)" (100 hosts, 64
 * kept) is counted again from its rows; the others' cells are added. */
START_TEST(test_merge_folded) {
  char dir[512];
  es_db *db = with_segments(dir, sizeof(dir), "compact-folded", "f", 2);
  int64_t base = es__clock_now_us() - DAY_US;
  es_event evs[100];
  char refs[100][40];
  for (int i = 0; i < 100; i++) {
    memset(&evs[i], 0, sizeof(evs[i]));
    snprintf(refs[i], sizeof(refs[i]), "https://r%d.example/from", i);
    evs[i].ts_us = base + (int64_t)i * 1000;
    evs[i].type = ES_TYPE_PAGE;
    evs[i].path = "/landing";
    evs[i].url = "https://shop.example/landing";
    evs[i].referrer = refs[i];
    evs[i].anonymous_id = i % 2 ? "a1" : "a3";
  }
  ck_assert_int_eq(es_append(db, "f", evs, 100, NULL), ES_OK);
  ck_assert_int_eq(es_append(db, "f", evs, 70, NULL), ES_OK); /* ranks */
  ck_assert_int_eq(es_flush(db, "f"), ES_OK);
  /* the last host, folded there, is among the top once this adds to it */
  fill(db, "f", "late", 300, base);
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(es_append(db, "f", &evs[99], 1, NULL), ES_OK);
  ck_assert_int_eq(es_flush(db, "f"), ES_OK);
  char *ids0 = ut_scan_ids(db, "f", NULL);
  es_compact_report rep;
  ck_assert_int_eq(es_compact(db, "f", NULL, &rep), ES_OK);
  ck_assert_uint_eq(rep.segments_in, 4);
  ck_assert_uint_eq(rep.segments_out, 1);
  char *ids1 = ut_scan_ids(db, "f", NULL);
  ck_assert_str_eq(ids1, ids0);
  char *top = query(db, "f",
                    "{\"filter\":{\"type\":\"page\"},"
                    "\"groupBy\":[\"referrer\"],\"plan\":\"rollup\"}");
  ck_assert_ptr_nonnull(strstr(top, "\"(other)\"")); /* it was folded */
  es_rollup_report rr;
  ck_assert_int_eq(es_rollup_rebuild(db, "f", INT64_MIN, INT64_MAX, &rr),
                   ES_OK);
  ck_assert_uint_eq(rr.rewritten, 0); /* its rollup equals the rows' */
  ck_assert_int_eq(es_close(db), ES_OK);
  free(ids0), free(ids1), free(top);
  ut_rmrf(dir);
}
END_TEST

typedef struct appender {
  es_db *db;
  int batches, acked;
} appender;

static void *append_main(void *arg) {
  appender *ap = arg;
  for (int b = 0; b < ap->batches; b++) {
    char tag[16];
    snprintf(tag, sizeof(tag), "c%d", b);
    fill(ap->db, "c", tag, 50, es__clock_now_us() - DAY_US);
    ap->acked += 50;
    if (b % 3 == 2)
      ck_assert_int_eq(es_flush(ap->db, "c"), ES_OK);
  }
  return NULL;
}

START_TEST(test_concurrent) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "compact-conc");
  es_db *db = open_db(dir);
  appender ap = {db, 60, 0};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, append_main, &ap), 0);
  es_compact_report rep;
  uint64_t merged = 0;
  for (int i = 0; i < 40; i++) {
    ck_assert_int_eq(es_compact(db, "c", NULL, &rep), ES_OK);
    merged += rep.segments_in;
    int n;
    char *ids = ut_scan_ids(db, "c", &n); /* concurrent reads see no dup */
    free(ids);
  }
  pthread_join(th, NULL);
  ck_assert_int_eq(es_compact(db, "c", NULL, &rep), ES_OK);
  merged += rep.segments_in;
  ck_assert_uint_gt(merged, 2);
  int n;
  char *ids = ut_scan_ids(db, "c", &n);
  ck_assert_int_eq(n, ap.acked);
  /* each id once */
  for (int b = 0; b < ap.batches; b++)
    for (int i = 0; i < 50; i++) {
      char id[32];
      snprintf(id, sizeof(id), "\nc%d-%d\n", b, i);
      char *p = strstr(ids, id + (strncmp(ids, id + 1, strlen(id + 1)) == 0));
      ck_assert_msg(p != NULL, "%s missing", id + 1);
    }
  ck_assert_int_eq(es_close(db), ES_OK);
  db = open_db(dir);
  char *again = ut_scan_ids(db, "c", &n);
  ck_assert_int_eq(n, ap.acked);
  ck_assert_str_eq(again, ids);
  ck_assert_int_eq(es_close(db), ES_OK);
  free(ids), free(again);
  ut_rmrf(dir);
}
END_TEST

/* es_options.compact_segments: the flusher merges small segments itself. */
/* What merging the tenant's first segment would cost in memory, and its
 * rows' encoded size and its blocks' raw size. */
static uint64_t first_seg_cost(const char *tdir, uint64_t *row_bytes,
                               uint64_t *raw_bytes) {
  char path[700];
  snprintf(path, sizeof(path), "%s/0000000000000001.seg", tdir);
  es_segment *seg = NULL;
  ck_assert_int_eq(es__segment_open(es__vfs_posix(), path, 1, &seg), ES_OK);
  uint64_t cost = es__compact_merge_bytes(seg);
  *row_bytes = seg->row_bytes;
  *raw_bytes = seg->raw_bytes;
  es__segment_unref(seg);
  return cost;
}

START_TEST(test_memory) {
  char dir[512], tdir[600];
  es_db *db = with_segments(dir, sizeof(dir), "compact-memory", "mm", 6);
  snprintf(tdir, sizeof(tdir), "%s/tenants/mm", dir);
  uint64_t row_bytes, raw_bytes;
  uint64_t cost = first_seg_cost(tdir, &row_bytes, &raw_bytes);
  /* the footer records the rows' encoded size: each of the 300 rows
   * carries its strings in full there, where dictionary blocks (path,
   * anonymous id, event) hold each value once */
  ck_assert_uint_gt(row_bytes, 300 * 20);
  ck_assert_uint_gt(row_bytes, raw_bytes);
  ck_assert_uint_gt(cost, row_bytes);
  char *ids0 = ut_scan_ids(db, "mm", NULL);
  /* too little memory for even two: every segment counts as big */
  es_compact_options o;
  es_compact_options_init(&o);
  o.memory_bytes = cost;
  es_compact_report rep;
  ck_assert_int_eq(es_compact(db, "mm", &o, &rep), ES_OK);
  ck_assert_uint_eq(rep.segments_in, 0);
  ck_assert_int_eq(ut_count_suffix(tdir, ".seg"), 6);
  /* room for two and a half: runs of two */
  o.memory_bytes = cost * 5 / 2;
  ck_assert_int_eq(es_compact(db, "mm", &o, &rep), ES_OK);
  ck_assert_uint_eq(rep.segments_in, 6);
  ck_assert_uint_eq(rep.segments_out, 3);
  ck_assert_uint_eq(rep.rows_out, 1800);
  ck_assert_int_eq(ut_count_suffix(tdir, ".seg"), 3);
  char *ids1 = ut_scan_ids(db, "mm", NULL);
  ck_assert_str_eq(ids1, ids0);
  ck_assert_int_eq(es_close(db), ES_OK);
  ck_assert_int_eq(es_verify(dir, NULL, NULL), ES_OK);
  free(ids0), free(ids1);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_auto) {
  char dir[512], tdir[600];
  ut_tmpdir(dir, sizeof(dir), "compact-auto");
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.shards = 1;
  o.sync_mode = ES_SYNC_NONE;
  o.compact_segments = 3;
  es_db *db = NULL;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  for (int s = 0; s < 7; s++) {
    char tag[8];
    snprintf(tag, sizeof(tag), "a%d", s);
    fill(db, "auto", tag, 100, es__clock_now_us() - DAY_US);
    ck_assert_int_eq(es_flush(db, "auto"), ES_OK);
    if (s % 2)
      es__compact_wait_idle(db); /* else let flushes overtake merges */
  }
  es__compact_wait_idle(db);
  int n;
  char *ids = ut_scan_ids(db, "auto", &n);
  ck_assert_int_eq(n, 700);
  free(ids);
  snprintf(tdir, sizeof(tdir), "%s/tenants/auto", dir);
  /* 7 flushes, merged whenever 3 small ones were there: at most 3 left */
  ck_assert_int_le(ut_count_suffix(tdir, ".seg"), 3);
  ck_assert_int_eq(es_close(db), ES_OK);
  ck_assert_int_eq(es_verify(dir, NULL, NULL), ES_OK);
  o.compact_segments = -1;
  ck_assert_int_eq(es_open(&o, &db), ES_EINVAL);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_args) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "compact-args");
  es_db *db = open_db(dir);
  es_compact_report rep;
  ck_assert_int_eq(es_compact(db, NULL, NULL, &rep), ES_OK);
  ck_assert_uint_eq(rep.segments_in, 0);
  ck_assert_int_eq(es_compact(db, "../x", NULL, NULL), ES_ETENANT);
  ck_assert_int_eq(es_compact(NULL, NULL, NULL, NULL), ES_EINVAL);
  es_compact_options o;
  es_compact_options_init(&o);
  o.retain_us = -1;
  ck_assert_int_eq(es_compact(db, NULL, &o, NULL), ES_EINVAL);
  ck_assert_int_eq(es_compact(db, "unknown", NULL, &rep), ES_OK);
  ck_assert_uint_eq(rep.tenants, 0);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

static Suite *compact_suite(void) {
  Suite *s = suite_create("compact");
  TCase *tc = tcase_create("compact");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_merge);
  tcase_add_test(tc, test_retention);
  tcase_add_test(tc, test_merge_folded);
  tcase_add_test(tc, test_concurrent);
  tcase_add_test(tc, test_args);
  tcase_add_test(tc, test_auto);
  tcase_add_test(tc, test_memory);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(compact_suite()); }
