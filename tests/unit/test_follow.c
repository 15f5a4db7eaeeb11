/*
 * test_follow.c -- read-only handles (lib/follow.c) beside a writer, in
 * one process on the real file system (the writer's lock does not stop a
 * reader; tests/queryd runs them as two processes).
 *
 * What must hold:
 *  1. A reader sees what the writer acknowledged within a second (the
 *     follow interval is 20 ms here): scans equal, event for event, at
 *     quiet moments, while the writer appends, flushes (new manifests),
 *     rolls and reclaims WAL files, and compacts.
 *  2. Queries (rollups) and rule reads agree between the two handles; a
 *     rule created by the writer reaches the reader, whose trigger fires
 *     for crossings it reads.
 *  3. Writes on a reader return ES_EREADONLY; a reader of a missing store
 *     gets ES_ENOTFOUND; a reader opened on a store with history sees it.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "eventstore.h"
#include "unit.h"

static _Atomic int g_fired; /* the follower thread's triggers */
static void on_trigger(void *ud, const es_trigger *t) {
  (void)ud;
  if (strcmp(t->rule, "p2") == 0)
    g_fired++;
}

static es_db *open_handle(const char *dir, int ro) {
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.shards = 2;
  o.sync_mode = ES_SYNC_NONE;
  o.wal_file_bytes = 64 << 10; /* rolls and reclaims often */
  o.read_only = ro;
  o.follow_interval_us = 20000;
  if (ro)
    o.trigger.fn = on_trigger;
  es_db *db = NULL;
  int rc = es_open(&o, &db);
  ck_assert_msg(rc == ES_OK, "es_open(ro=%d): %s", ro, es_errdetail());
  return db;
}

static void append_n(es_db *db, const char *tenant, int from, int n) {
  for (int i = from; i < from + n;) {
    es_event evs[20];
    char ids[20][32], anon[20][16];
    int m = 0;
    for (; m < 20 && i < from + n; m++, i++) {
      memset(&evs[m], 0, sizeof(evs[m]));
      snprintf(ids[m], sizeof(ids[m]), "%s-%d", tenant, i);
      snprintf(anon[m], sizeof(anon[m]), "a%d", i % 7);
      evs[m].ts_us = INT64_C(1709251200000000) + (int64_t)i * 1000000;
      evs[m].type = ES_TYPE_PAGE;
      evs[m].path = i % 2 ? "/pricing" : "/";
      evs[m].message_id = ids[m];
      evs[m].anonymous_id = anon[m];
      evs[m].properties = "{\"k\":\"a somewhat longer property value\"}";
    }
    ck_assert_int_eq(es_append(db, tenant, evs, (size_t)m, NULL), ES_OK);
  }
}

/* Waits until the reader's scan equals the writer's; returns the wait in
 * microseconds (fails after 5 s). */
static int64_t converge(es_db *w, es_db *r, const char *tenant) {
  char *want = ut_scan_ids(w, tenant, NULL);
  int64_t t0 = es__clock_mono_us();
  for (;;) {
    char *got = ut_scan_ids(r, tenant, NULL);
    int same = strcmp(got, want) == 0;
    int64_t waited = es__clock_mono_us() - t0;
    if (!same && waited > 5000000)
      ck_abort_msg("reader differs after 5 s: %zu vs %zu bytes of ids",
                   strlen(got), strlen(want));
    free(got);
    if (same) {
      free(want);
      return waited;
    }
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
  }
}

static char *query_rows(es_db *db, const char *tenant, const char *spec) {
  char *out = NULL;
  ck_assert_int_eq(es_query(db, tenant, spec, &out), ES_OK);
  char *copy = strdup(out);
  es_free(out);
  return copy;
}

START_TEST(test_follow) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "follow");
  es_db *w = open_handle(dir, 0);
  append_n(w, "hist", 0, 300); /* history before the reader opens */
  ck_assert_int_eq(es_flush(w, "hist"), ES_OK);
  append_n(w, "hist", 300, 50);
  es_db *r = open_handle(dir, 1);
  converge(w, r, "hist");
  int64_t worst = 0;
  int n = 0;
  for (int round = 0; round < 12; round++) {
    append_n(w, "t", n, 120);
    n += 120;
    if (round % 3 == 1)
      ck_assert_int_eq(es_flush(w, "t"), ES_OK);
    if (round == 7) {
      es_compact_report rep;
      ck_assert_int_eq(es_compact(w, "t", NULL, &rep), ES_OK);
      ck_assert_uint_gt(rep.segments_in, 1);
    }
    int64_t waited = converge(w, r, "t");
    if (waited > worst)
      worst = waited;
  }
  printf("follow: reader converged within %.1f ms at worst\n", worst / 1e3);
  /* queries agree (rollups of segments and of the reader's memtables) */
  static const char *const spec =
      "{\"bucket\":\"hour\",\"groupBy\":[\"path\"],\"aggregate\":[\"count\","
      "\"uniques\"]}";
  char *qw = query_rows(w, "t", spec), *qr = query_rows(r, "t", spec);
  ck_assert_str_eq(qr, qw);
  free(qw), free(qr);
  /* rules: created by the writer, read and fed by the reader */
  ck_assert_int_eq(es_rule_put(w, "t",
                               "{\"name\":\"p2\",\"match\":{\"path\":\"/x\"},"
                               "\"atLeast\":2,\"within\":\"1h\"}"),
                   ES_OK);
  char *lw = NULL, *lr = NULL;
  ck_assert_int_eq(es_rules_list(w, "t", 1, &lw), ES_OK);
  int64_t t0 = es__clock_mono_us();
  for (;;) {
    ck_assert_int_eq(es_rules_list(r, "t", 1, &lr), ES_OK);
    if (strcmp(lr, lw) == 0)
      break;
    es_free(lr);
    ck_assert_msg(es__clock_mono_us() - t0 < 5000000, "rule not seen");
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  es_free(lw), es_free(lr);
  es_event ev[2];
  memset(ev, 0, sizeof(ev));
  for (int i = 0; i < 2; i++) {
    ev[i].ts_us = INT64_C(1709251200000000) + i;
    ev[i].type = ES_TYPE_PAGE;
    ev[i].path = "/x";
    ev[i].anonymous_id = "crosser";
    ev[i].message_id = i ? "cross-1" : "cross-0";
  }
  ck_assert_int_eq(es_append(w, "t", ev, 2, NULL), ES_OK);
  converge(w, r, "t");
  /* the follower publishes the rows (what converge sees) before it feeds
   * the rules (follow.c), so the trigger may come a moment later */
  for (int64_t t1 = es__clock_mono_us();
       g_fired == 0 && es__clock_mono_us() - t1 < 5000000;) {
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
  }
  ck_assert_int_eq(g_fired, 1); /* the reader's trigger, once */
  int member = 0;
  ck_assert_int_eq(es_rule_check(r, "t", "p2", "crosser",
                                 INT64_C(1709251200000000) + 5, &member),
                   ES_OK);
  ck_assert_int_eq(member, 1);
  /* a reader writes nothing */
  ck_assert_int_eq(es_append(r, "t", ev, 1, NULL), ES_EREADONLY);
  ck_assert_int_eq(es_flush(r, NULL), ES_EREADONLY);
  ck_assert_int_eq(es_rule_delete(r, "t", "p2"), ES_EREADONLY);
  ck_assert_int_eq(es_compact(r, NULL, NULL, NULL), ES_EREADONLY);
  ck_assert_int_eq(es_rollup_rebuild(r, "t", 0, 1, NULL), ES_EREADONLY);
  ck_assert_int_eq(es_close(r), ES_OK);
  ck_assert_int_eq(es_close(w), ES_OK);
  ck_assert_int_eq(es_verify(dir, NULL, NULL), ES_OK);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_missing) {
  es_options o;
  es_options_init(&o);
  o.data_dir = "/nonexistent/es-follow";
  o.read_only = 1;
  es_db *db = (es_db *)1;
  ck_assert_int_eq(es_open(&o, &db), ES_ENOTFOUND);
  ck_assert_ptr_null(db);
  o.follow_interval_us = 0;
  ck_assert_int_eq(es_open(&o, &db), ES_EINVAL);
}
END_TEST

static Suite *follow_suite(void) {
  Suite *s = suite_create("follow");
  TCase *tc = tcase_create("follow");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_follow);
  tcase_add_test(tc, test_missing);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(follow_suite()); }
