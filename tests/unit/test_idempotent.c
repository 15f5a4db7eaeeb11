/*
 * test_idempotent.c -- unit tests of idempotent append (lib/store/dedupe.c)
 * through the public API: es_append / es_append_flagged with
 * es_options.dedupe_window_us.
 *
 * What must hold (eventstore.h, "Idempotent append"):
 *  1. A (tenant, messageId) already stored within the window is not stored
 *     again, whether the first copy is in the same batch, an earlier batch,
 *     the memtable, a segment, a compacted segment, or came back by WAL
 *     replay after a reopen; the receipt counts and flags it.
 *  2. Never a false duplicate: distinct ids are all stored, also when the
 *     segments' Bloom filters answer "maybe" (many ids, small filters).
 *  3. Outside the window, with window 0, or without a messageId, an event
 *     is stored.
 *  4. Concurrent appends of overlapping ids from several threads store
 *     each id once.
 *  5. Queries (rollups) do not count duplicates.
 *  6. A decision taken while a flush is between its manifest commit and
 *     its swap of the segment set still finds the flushed ids (an
 *     internal hook holds the flusher in that window: flush_window).
 *  7. The segments' message-id fingerprint indexes (dedupe.c) change no
 *     answer: with fingerprints narrowed to 2 bits (nearly every row
 *     group matches and is confirmed by its rows), with indexes evicted
 *     and rebuilt between lookups, and with segments too large to index
 *     (read group by group), each id is stored once (fingerprints).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventstore.h"
#include "store/dbint.h"
#include "store/dedupe.h"
#include "unit.h"

#define TS0 INT64_C(1700000000000000)
#define DAY_US INT64_C(86400000000)

static es_db *open_w(const char *dir, int64_t window_us) {
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.shards = 2;
  o.sync_mode = ES_SYNC_NONE;
  o.wal_file_bytes = 1 << 20;
  if (window_us >= 0)
    o.dedupe_window_us = window_us;
  es_db *db = NULL;
  int rc = es_open(&o, &db);
  ck_assert_msg(rc == ES_OK, "es_open: %s: %s", es_strerror(rc),
                es_errdetail());
  return db;
}

static void ev_make(es_event *ev, const char *mid, int64_t ts) {
  memset(ev, 0, sizeof(*ev));
  ev->ts_us = ts;
  ev->type = ES_TYPE_TRACK;
  ev->event = "Signed Up";
  ev->message_id = mid;
  ev->anonymous_id = "anon-1";
}

/* Appends ids "<prefix><first..first+n-1>" at TS0 + i ms as one batch and
 * checks the receipt says `stored` of them were stored. */
static void append_ids(es_db *db, const char *tenant, const char *prefix,
                       int first, int n, int64_t dts, uint32_t stored) {
  es_event *evs = calloc((size_t)n, sizeof(*evs));
  char(*ids)[32] = calloc((size_t)n, 32);
  uint8_t *dup = malloc((size_t)n);
  for (int i = 0; i < n; i++) {
    snprintf(ids[i], 32, "%s%d", prefix, first + i);
    ev_make(&evs[i], ids[i], TS0 + (int64_t)(first + i) * 1000 + dts);
  }
  es_receipt r;
  int rc = es_append_flagged(db, tenant, evs, (size_t)n, &r, dup);
  ck_assert_msg(rc == ES_OK, "append: %s", es_errdetail());
  ck_assert_uint_eq(r.events_count, (uint32_t)n);
  ck_assert_uint_eq(r.stored_count, stored);
  ck_assert_uint_eq(r.duplicates_count, (uint32_t)n - stored);
  uint32_t flagged = 0;
  for (int i = 0; i < n; i++)
    flagged += dup[i];
  ck_assert_uint_eq(flagged, (uint32_t)n - stored);
  free(evs);
  free(ids);
  free(dup);
}

static void count_none(void *ud, const es_event *ev) {
  (void)ud;
  (void)ev;
}

static size_t count_rows(es_db *db, const char *tenant) {
  return ut_scan(db, tenant, count_none, NULL);
}

START_TEST(same_batch) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "idem");
  es_db *db = open_w(dir, -1);
  es_event evs[4];
  ev_make(&evs[0], "a", TS0);
  ev_make(&evs[1], "b", TS0 + 1);
  ev_make(&evs[2], "a", TS0 + 2); /* same id, a bit later: duplicate */
  ev_make(&evs[3], "a", TS0);
  uint8_t dup[4];
  es_receipt r;
  ck_assert_int_eq(es_append_flagged(db, "t", evs, 4, &r, dup), ES_OK);
  ck_assert_uint_eq(r.stored_count, 2);
  ck_assert_uint_eq(r.duplicates_count, 2);
  ck_assert(!dup[0] && !dup[1] && dup[2] && dup[3]);
  ck_assert_uint_gt(r.lsn, 0);
  /* the whole batch again: nothing stored, lsn 0 */
  ck_assert_int_eq(es_append_flagged(db, "t", evs, 4, &r, dup), ES_OK);
  ck_assert_uint_eq(r.stored_count, 0);
  ck_assert_uint_eq(r.lsn, 0);
  ck_assert(dup[0] && dup[1] && dup[2] && dup[3]);
  ck_assert_uint_eq(count_rows(db, "t"), 2);
  /* another tenant has its own ids */
  ck_assert_int_eq(es_append(db, "u", evs, 4, &r), ES_OK);
  ck_assert_uint_eq(r.stored_count, 2);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* Across batches, after a flush, after reopen (replay), after both. */
START_TEST(across_flush_reopen) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "idem");
  es_db *db = open_w(dir, -1);
  append_ids(db, "t", "m", 0, 100, 0, 100);
  append_ids(db, "t", "m", 50, 100, 0, 50); /* 50..99 repeat */
  ck_assert_int_eq(es_flush(db, "t"), ES_OK);
  append_ids(db, "t", "m", 0, 200, 7, 50); /* in the segment now */
  ck_assert_int_eq(es_close(db), ES_OK);   /* 150..199 only in the WAL */
  db = open_w(dir, -1);
  append_ids(db, "t", "m", 100, 150, 0, 50); /* replayed: 150..199 */
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  db = open_w(dir, -1);
  append_ids(db, "t", "m", 0, 300, 0, 50);
  ck_assert_uint_eq(count_rows(db, "t"), 300);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* After compaction merged the segments that hold the ids. */
START_TEST(after_compaction) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "idem");
  es_db *db = open_w(dir, -1);
  for (int k = 0; k < 4; k++) {
    append_ids(db, "t", "c", k * 100, 100, 0, 100);
    ck_assert_int_eq(es_flush(db, "t"), ES_OK);
  }
  es_compact_report rep;
  ck_assert_int_eq(es_compact(db, "t", NULL, &rep), ES_OK);
  ck_assert_uint_eq(rep.segments_in, 4);
  ck_assert_uint_eq(rep.segments_out, 1);
  append_ids(db, "t", "c", 0, 450, 0, 50);
  ck_assert_int_eq(es_close(db), ES_OK);
  db = open_w(dir, -1);
  append_ids(db, "t", "c", 0, 450, 0, 0);
  ck_assert_uint_eq(count_rows(db, "t"), 450);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* Many distinct ids against segments with Bloom false positives: all are
 * stored (the confirmation read says no). */
START_TEST(no_false_duplicates) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "idem");
  es_db *db = open_w(dir, -1);
  for (int k = 0; k < 4; k++) {
    append_ids(db, "t", "x", k * 5000, 5000, 0, 5000);
    ck_assert_int_eq(es_flush(db, "t"), ES_OK);
  }
  append_ids(db, "t", "y", 0, 20000, 0, 20000);
  ck_assert_uint_eq(count_rows(db, "t"), 40000);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

START_TEST(window_and_missing_ids) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "idem");
  es_db *db = open_w(dir, -1); /* 7 days */
  append_ids(db, "t", "w", 0, 10, 0, 10);
  append_ids(db, "t", "w", 0, 10, 7 * DAY_US, 0);      /* at the edge */
  append_ids(db, "t", "w", 0, 10, 7 * DAY_US + 1, 10); /* just outside */
  append_ids(db, "t", "w", 0, 10, -(7 * DAY_US + 1), 10);
  ck_assert_int_eq(es_flush(db, "t"), ES_OK);
  append_ids(db, "t", "w", 0, 10, 30 * DAY_US, 10);
  append_ids(db, "t", "w", 0, 10, 30 * DAY_US - DAY_US, 0);
  es_event evs[3];
  ev_make(&evs[0], NULL, TS0);
  ev_make(&evs[1], NULL, TS0);
  ev_make(&evs[2], "", TS0);
  es_receipt r;
  for (int k = 0; k < 2; k++) {
    ck_assert_int_eq(es_append(db, "t", evs, 3, &r), ES_OK);
    ck_assert_uint_eq(r.stored_count, 3);
  }
  ck_assert_uint_eq(count_rows(db, "t"), 46);
  ck_assert_int_eq(es_close(db), ES_OK);
  db = open_w(dir, 0); /* off */
  append_ids(db, "t", "w", 0, 10, 0, 10);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

typedef struct worker {
  es_db *db;
  int seed;
  uint32_t stored;
} worker;

#define CONC_THREADS 4
#define CONC_IDS 500
#define CONC_ROUNDS 40

static void *conc_main(void *arg) {
  worker *w = arg;
  unsigned s = (unsigned)w->seed;
  es_event evs[25];
  char ids[25][16];
  for (int round = 0; round < CONC_ROUNDS; round++) {
    for (int i = 0; i < 25; i++) {
      int id = (int)(rand_r(&s) % CONC_IDS);
      snprintf(ids[i], sizeof(ids[i]), "k%d", id);
      ev_make(&evs[i], ids[i], TS0 + id);
    }
    es_receipt r;
    ck_assert_int_eq(es_append(w->db, "t", evs, 25, &r), ES_OK);
    w->stored += r.stored_count;
    if (round == CONC_ROUNDS / 2 && w->seed == 1)
      ck_assert_int_eq(es_flush(w->db, "t"), ES_OK);
  }
  return NULL;
}

START_TEST(concurrent) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "idem");
  es_db *db = open_w(dir, -1);
  pthread_t th[CONC_THREADS];
  worker w[CONC_THREADS];
  for (int i = 0; i < CONC_THREADS; i++) {
    w[i] = (worker){db, i + 1, 0};
    ck_assert_int_eq(pthread_create(&th[i], NULL, conc_main, &w[i]), 0);
  }
  uint32_t stored = 0;
  for (int i = 0; i < CONC_THREADS; i++) {
    pthread_join(th[i], NULL);
    stored += w[i].stored;
  }
  int n = 0;
  char *ids = ut_scan_ids(db, "t", &n);
  ck_assert_uint_eq((uint32_t)n, stored);
  ck_assert_int_le(n, CONC_IDS);
  ck_assert_int_gt(n, CONC_IDS / 2);
  /* each id once: sort the lines and look for neighbours */
  char **line = calloc((size_t)n, sizeof(char *));
  int k = 0;
  for (char *p = strtok(ids, "\n"); p; p = strtok(NULL, "\n"))
    line[k++] = p;
  ck_assert_int_eq(k, n);
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++)
      ck_assert_msg(strcmp(line[i], line[j]) != 0, "%s twice", line[i]);
  free(line);
  free(ids);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* Rollups (and so counts) see stored events only. */
START_TEST(query_counts) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "idem");
  es_db *db = open_w(dir, -1);
  append_ids(db, "t", "q", 0, 20, 0, 20);
  append_ids(db, "t", "q", 0, 20, 0, 0);
  char *res = NULL;
  ck_assert_int_eq(es_query(db, "t",
                            "{\"from\":\"2023-11-14T00:00:00Z\","
                            "\"to\":\"2023-11-16T00:00:00Z\","
                            "\"aggregate\":[\"count\"]}",
                            &res),
                   ES_OK);
  ck_assert_msg(strstr(res, "\"count\":20") != NULL, "%s", res);
  es_free(res);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* Appends n events "<mp><first+i>" whose anonymousId is "<ap><first+i>"
 * (so that the message ids "<ap>..." of a later call are in the segments'
 * Bloom filters as person ids, not as message ids: the filter says maybe
 * and only the fingerprints or the rows can say no); checks `stored`. */
static void append_pairs(es_db *db, const char *mp, const char *ap, int first,
                         int n, uint32_t stored) {
  es_event *evs = calloc((size_t)n, sizeof(*evs));
  char(*ids)[2][32] = calloc((size_t)n, sizeof(*ids));
  for (int i = 0; i < n; i++) {
    snprintf(ids[i][0], 32, "%s%d", mp, first + i);
    snprintf(ids[i][1], 32, "%s%d", ap, first + i);
    ev_make(&evs[i], ids[i][0], TS0 + (int64_t)(first + i) * 1000);
    evs[i].anonymous_id = ids[i][1];
  }
  es_receipt r;
  ck_assert_int_eq(es_append(db, "t", evs, (size_t)n, &r), ES_OK);
  ck_assert_uint_eq(r.stored_count, stored);
  free(evs);
  free(ids);
}

static void fingerprint_case(uint32_t fp_mask, size_t fp_bytes_max) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "idem");
  es_db *db = open_w(dir, -1);
  es__dedupe_test_tune(db, fp_mask, fp_bytes_max);
  for (int k = 0; k < 4; k++) { /* 4 segments of 3,000 rows */
    append_pairs(db, "m", "a", k * 3000, 3000, 3000);
    ck_assert_int_eq(es_flush(db, "t"), ES_OK);
  }
  /* new ids that every segment's filter admits: all stored */
  append_pairs(db, "a", "z", 0, 12000, 12000);
  /* repeats from every segment, interleaved across them: none stored */
  for (int k = 0; k < 4; k++)
    for (int j = 0; j < 4; j++)
      append_pairs(db, "m", "a", j * 3000 + k * 700, 100, 0);
  ck_assert_int_eq(es_flush(db, "t"), ES_OK);
  append_pairs(db, "a", "z", 6000, 7000, 1000); /* 12000..12999 are new */
  ck_assert_uint_eq(count_rows(db, "t"), 25000);
  ck_assert_int_eq(es_close(db), ES_OK);
  db = open_w(dir, -1);
  es__dedupe_test_tune(db, fp_mask, fp_bytes_max);
  append_pairs(db, "m", "a", 0, 12000, 0);
  append_pairs(db, "a", "z", 0, 13000, 0);
  append_pairs(db, "z", "y", 0, 13000, 13000);
  ck_assert_uint_eq(count_rows(db, "t"), 38000);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}

START_TEST(fingerprints) {
  fingerprint_case(UINT32_MAX, (size_t)64 << 20); /* as shipped */
  fingerprint_case(0x3, (size_t)64 << 20);        /* collisions */
  fingerprint_case(UINT32_MAX, 13000); /* one segment's index at a time */
  fingerprint_case(0x3, 13000);
  fingerprint_case(0x3, 1000); /* no segment indexed: read by groups */
}
END_TEST

/* flush_window: on the flusher thread, inside flush_one's window, the
 * ids of the memtable being flushed are appended again. */
typedef struct pause_ctx {
  es_db *db;
  int calls, rc;
  es_receipt r;
  uint8_t dup[3];
} pause_ctx;

static void pause_append(void *ud, es_tenant *t) {
  pause_ctx *c = ud;
  if (strcmp(t->name, "t") != 0 || c->calls++ > 0)
    return;
  es_event evs[3];
  ev_make(&evs[0], "w0", TS0);
  ev_make(&evs[1], "w1", TS0 + 1);
  ev_make(&evs[2], "w-new", TS0 + 2);
  c->rc = es_append_flagged(c->db, "t", evs, 3, &c->r, c->dup);
}

START_TEST(flush_window) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "idem");
  es_db *db = open_w(dir, -1);
  es_event evs[2];
  ev_make(&evs[0], "w0", TS0);
  ev_make(&evs[1], "w1", TS0 + 1);
  es_receipt r;
  ck_assert_int_eq(es_append(db, "t", evs, 2, &r), ES_OK);
  ck_assert_uint_eq(r.stored_count, 2);
  pause_ctx c = {db, 0, ES_OK, {0}, {0}};
  es__tenant_test_flush_pause(pause_append, &c);
  ck_assert_int_eq(es_flush(db, "t"), ES_OK);
  es__tenant_test_flush_pause(NULL, NULL);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_msg(c.rc == ES_OK, "append in the window: %s", es_strerror(c.rc));
  /* w0 and w1 were in the manifest just made durable, not yet in the
   * segment set the writer consulted: still duplicates */
  ck_assert_uint_eq(c.r.stored_count, 1);
  ck_assert_uint_eq(c.r.duplicates_count, 2);
  ck_assert(c.dup[0] && c.dup[1] && !c.dup[2]);
  ck_assert_uint_eq(count_rows(db, "t"), 3);
  /* and afterwards, from the segment and after a reopen */
  ck_assert_int_eq(es_append(db, "t", evs, 2, &r), ES_OK);
  ck_assert_uint_eq(r.duplicates_count, 2);
  ck_assert_int_eq(es_close(db), ES_OK);
  db = open_w(dir, -1);
  ck_assert_int_eq(es_append(db, "t", evs, 2, &r), ES_OK);
  ck_assert_uint_eq(r.duplicates_count, 2);
  ck_assert_uint_eq(count_rows(db, "t"), 3);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

int main(void) {
  Suite *s = suite_create("idempotent");
  TCase *tc = tcase_create("idempotent");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, same_batch);
  tcase_add_test(tc, across_flush_reopen);
  tcase_add_test(tc, after_compaction);
  tcase_add_test(tc, no_false_duplicates);
  tcase_add_test(tc, window_and_missing_ids);
  tcase_add_test(tc, concurrent);
  tcase_add_test(tc, query_counts);
  tcase_add_test(tc, flush_window);
  tcase_add_test(tc, fingerprints);
  suite_add_tcase(s, tc);
  return ut_main(s);
}
