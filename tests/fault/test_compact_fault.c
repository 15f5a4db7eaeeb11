/*
 * test_compact_fault.c -- es_compact under power cuts and I/O errors at
 * every counted I/O call (tests/fault/memvfs.h), SQLite test6.c style.
 *
 * The store: two tenants, each with several small segments (one flush per
 * batch) whose events are partly older than the retention and partly
 * recent, plus a few rows left in the WAL.  For every k, a fresh copy of
 * that store is compacted (merge + retention) with the k-th counted call
 * cut (power cut) or failed (EIO, then a restart and a power cut); then
 * the store is reopened and must hold, per tenant:
 *  1. every recent event exactly once, in the original order;
 *  2. for each original segment, its expired events all present or all
 *     absent (a run commits whole or not at all: never a mix);
 *  3. nothing invented; es_verify clean; no file the manifests do not
 *     list (orphans removed at open);
 *  4. rollup answers equal to scan answers (counts).
 * A clean run must have dropped every expired event and merged the
 * segments.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "api.h"
#include "store/db.h"
#include "eventstore.h"
#include "memvfs.h"
#include "unit.h"

#define NTEN 2
#define NBATCH 8
#define PER 6 /* events per batch */
#define DAY_US (INT64_C(86400) * 1000000)
#define DATA "/data"

static const char *const tenants[NTEN] = {"ca", "cb"};
static int64_t g_now;

/* batch b of tenant t: even batches are 10 days old (expired at a 5-day
 * retention), odd ones an hour old; event e of it has messageId
 * "t<t>-b<b>-e<e>". */
static int64_t event_ts(int b, int e) {
  return g_now - (b % 2 == 0 ? 10 * DAY_US : DAY_US / 24) + e * 1000000;
}

static void make_opts(es_options *o) {
  es_options_init(o);
  o->data_dir = DATA;
  o->shards = 1;
  o->wal_file_bytes = 64 << 10;
}

/* Builds the store on vfs: per tenant NBATCH batches, flushed after each
 * but the last (which stays in the WAL); closed cleanly and made durable. */
static void build_store(es_vfs *vfs) {
  es_options o;
  make_opts(&o);
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  static char ids[NTEN][NBATCH][PER][32];
  for (int b = 0; b < NBATCH; b++) {
    for (int t = 0; t < NTEN; t++) {
      es_event evs[PER];
      memset(evs, 0, sizeof(evs));
      for (int e = 0; e < PER; e++) {
        snprintf(ids[t][b][e], sizeof(ids[t][b][e]), "t%d-b%d-e%d", t, b, e);
        evs[e].ts_us = event_ts(b, e);
        evs[e].type = ES_TYPE_PAGE;
        evs[e].path = e % 2 ? "/pricing" : "/";
        evs[e].message_id = ids[t][b][e];
        evs[e].anonymous_id = e % 3 ? "a1" : "a2";
      }
      ck_assert_int_eq(es_append(db, tenants[t], evs, PER, NULL), ES_OK);
      if (b < NBATCH - 1)
        ck_assert_int_eq(es_flush(db, tenants[t]), ES_OK);
    }
  }
  ck_assert_int_eq(es_close(db), ES_OK);
  memvfs_sync_all(vfs);
}

/* Checks the reopened store; returns a description of the first problem,
 * or NULL.  *dropped_out: expired events absent, over both tenants. */
static const char *check_store(es_vfs *vfs, int *dropped_out) {
  static char why[256];
  es_options o;
  make_opts(&o);
  es_db *db = NULL;
  int rc = es__open_vfs(&o, vfs, &db);
  if (rc != ES_OK) {
    snprintf(why, sizeof(why), "reopen: %s: %s", es_strerror(rc),
             es_errdetail());
    return why;
  }
  *dropped_out = 0;
  const char *bad = NULL;
  for (int t = 0; t < NTEN && !bad; t++) {
    int seen[NBATCH][PER];
    memset(seen, 0, sizeof(seen));
    es_scan_spec spec;
    es_scan_spec_init(&spec);
    spec.tenant = tenants[t];
    es_cursor *cur = NULL;
    ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
    es_event ev;
    int last_b = -1, last_e = -1, n = 0;
    int64_t last_ts = INT64_MIN;
    while (!bad && (rc = es_cursor_next(cur, &ev)) == 1) {
      int tt = -1, b = -1, e = -1;
      n++;
      if (!ev.message_id ||
          sscanf(ev.message_id, "t%d-b%d-e%d", &tt, &b, &e) != 3 || tt != t ||
          b < 0 || b >= NBATCH || e < 0 || e >= PER ||
          ev.ts_us != event_ts(b, e)) {
        snprintf(why, sizeof(why), "%s: invented event %s", tenants[t],
                 ev.message_id ? ev.message_id : "(null)");
        bad = why;
      } else if (seen[b][e]++) {
        snprintf(why, sizeof(why), "%s: %s twice", tenants[t], ev.message_id);
        bad = why;
      } else if (ev.ts_us < last_ts ||
                 (ev.ts_us == last_ts && (b < last_b ||
                                          (b == last_b && e < last_e)))) {
        snprintf(why, sizeof(why), "%s: %s out of order", tenants[t],
                 ev.message_id);
        bad = why;
      }
      last_ts = ev.ts_us, last_b = b, last_e = e;
    }
    if (!bad && rc != 0) {
      snprintf(why, sizeof(why), "%s: scan: %s", tenants[t], es_errdetail());
      bad = why;
    }
    es_cursor_close(cur);
    for (int b = 0; b < NBATCH && !bad; b++) {
      int present = 0;
      for (int e = 0; e < PER; e++)
        present += seen[b][e];
      int expired = b % 2 == 0 && b < NBATCH - 1; /* in a segment */
      if (present != PER && !(expired && present == 0)) {
        snprintf(why, sizeof(why), "%s: batch %d has %d of %d events",
                 tenants[t], b, present, PER);
        bad = why;
      }
      *dropped_out += PER - present;
    }
    /* rollups agree with the rows */
    char *a = NULL, *s = NULL;
    if (!bad && (es_query(db, tenants[t], "{\"groupBy\":[\"path\"]}", &a) !=
                     ES_OK ||
                 es_query(db, tenants[t],
                          "{\"groupBy\":[\"path\"],\"plan\":\"scan\"}",
                          &s) != ES_OK)) {
      snprintf(why, sizeof(why), "%s: query: %s", tenants[t], es_errdetail());
      bad = why;
    }
    if (!bad && strncmp(a, s, strstr(s, "\"source\"") - s) != 0) {
      snprintf(why, sizeof(why), "%s: rollup %s vs scan %s", tenants[t], a,
               s);
      bad = why;
    }
    es_free(a);
    es_free(s);
    (void)n;
  }
  rc = es_close(db);
  if (!bad && rc != ES_OK) {
    snprintf(why, sizeof(why), "close: %s", es_errdetail());
    bad = why;
  }
  if (!bad && es__verify_vfs(vfs, DATA, NULL, NULL) != ES_OK) {
    snprintf(why, sizeof(why), "verify: %s", es_errdetail());
    bad = why;
  }
  return bad;
}

/* Counts the .seg files of a tenant directory on the vfs. */
static int list_count(void *ud, const char *name) {
  size_t l = strlen(name);
  if (l > 4 && strcmp(name + l - 4, ".seg") == 0)
    ++*(int *)ud;
  return 0;
}

static int seg_files(es_vfs *vfs, int t) {
  char dir[64];
  snprintf(dir, sizeof(dir), DATA "/tenants/%s", tenants[t]);
  int n = 0;
  ck_assert_int_eq(vfs->list(vfs, dir, list_count, &n), ES_OK);
  return n;
}

/* Compacts on a fresh copy with a fault at k (k = 0: none); returns the
 * counted calls made. */
static unsigned long compact_point(unsigned long k, int crash, int *bad_out,
                                   int *dropped_out) {
  es_vfs *vfs = memvfs_create();
  build_store(vfs);
  es_options o;
  make_opts(&o);
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  if (k > 0 && crash)
    memvfs_crash_at(vfs, k);
  else if (k > 0)
    memvfs_fail_at(vfs, k, ES_EIO, 0);
  else
    memvfs_fail_at(vfs, 0, ES_EIO, 0); /* resets the counter */
  es_compact_options co;
  es_compact_options_init(&co);
  co.retain_us = 5 * DAY_US;
  es_compact_report rep;
  int rc = es_compact(db, NULL, &co, &rep);
  unsigned long calls = memvfs_count(vfs);
  if (k == 0) {
    ck_assert_msg(rc == ES_OK, "clean compaction: %s", es_errdetail());
    ck_assert_uint_eq(rep.tenants, NTEN);
    ck_assert_uint_eq(rep.segments_out, NTEN); /* one per tenant */
    ck_assert_uint_eq(rep.rows_dropped, NTEN * (NBATCH / 2) * PER);
  }
  (void)es_close(db); /* may report the fault */
  memvfs_clear_faults(vfs);
  memvfs_crash(vfs);
  const char *why = check_store(vfs, dropped_out);
  *bad_out = why != NULL;
  if (why)
    printf("fault at %lu (%s): %s\n", k, crash ? "power cut" : "EIO", why);
  if (!why && k == 0) { /* merged into one segment per tenant, files too */
    for (int t = 0; t < NTEN; t++)
      ck_assert_int_eq(seg_files(vfs, t), 1);
  }
  memvfs_destroy(vfs);
  return calls;
}

START_TEST(test_compact_faults) {
  int bad = 0, dropped = 0;
  /* event times are relative to the clock, as retention is */
  g_now = es__clock_now_us();
  unsigned long k_total = compact_point(0, 0, &bad, &dropped);
  ck_assert_msg(!bad, "clean run failed");
  ck_assert_int_eq(dropped, NTEN * (NBATCH / 2) * PER);
  printf("compaction: %lu counted I/O calls\n", k_total);
  ck_assert_uint_gt(k_total, 10);
  int failures = 0, partial = 0;
  for (int crash = 1; crash >= 0; crash--) {
    for (unsigned long k = 1; k <= k_total + 1; k++) {
      compact_point(k, crash, &bad, &dropped);
      failures += bad;
      partial += dropped > 0 && dropped < NTEN * (NBATCH / 2) * PER;
    }
  }
  printf("compaction: %lu points x 2 (power cut, EIO): %d failures, "
         "%d left some runs uncommitted\n",
         k_total + 1, failures, partial);
  ck_assert_int_eq(failures, 0);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("compact_fault");
  TCase *tc = tcase_create("compact_fault");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_compact_faults);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(suite()); }
