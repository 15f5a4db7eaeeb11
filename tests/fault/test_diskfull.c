/*
 * test_diskfull.c -- a full disk degrades the store, never fails it, and
 * the store recovers by itself when space returns (store/gate.c).
 *
 * The library runs on memvfs with a byte quota (memvfs_set_quota): the
 * disk is "full" when the files would hold more than the quota.  Each
 * test checks, on the public API:
 *  - appends are acknowledged while the preallocated WAL takes them and
 *    the memtables fit, then refused with ES_EDEGRADED (not blocked, not
 *    ES_EFAILED); es_flush returns ES_EDEGRADED; es_state says degraded
 *    and why; no temporary file is left behind;
 *  - while degraded, the background retries back off: the vfs calls
 *    counted over a fixed interval stay few (a busy loop makes hundreds);
 *  - after the quota is lifted the state returns to ok without a reopen,
 *    appends and flushes work, a refused batch retried is stored (its
 *    messageIds were not kept as if stored), and after a reopen every
 *    acknowledged event is present exactly once.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "memvfs.h"

#define DIR "/db"
#define TENANT "acme"
#define BATCH 20
#define BATCHES_MAX 4000

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void options(es_options *o, size_t wal_file_bytes) {
  es_options_init(o);
  o->data_dir = DIR;
  o->shards = 1;
  o->memtable_budget_bytes = 256 * 1024;
  o->seal_bytes = 32 * 1024;
  o->wal_file_bytes = wal_file_bytes;
}

/* Appends batch b (BATCH events, message ids "b<b>-<e>"). */
static int append_batch(es_db *db, int b) {
  es_event ev[BATCH];
  char msg[BATCH][32], props[256];
  memset(props, 'x', sizeof(props) - 1);
  props[sizeof(props) - 1] = '\0';
  memcpy(props, "\"", 1);
  props[sizeof(props) - 2] = '"';
  for (int e = 0; e < BATCH; e++) {
    memset(&ev[e], 0, sizeof(ev[e]));
    snprintf(msg[e], sizeof(msg[e]), "b%d-%d", b, e);
    ev[e].ts_us = INT64_C(1700000000000000) + (int64_t)b * 1000 + e;
    ev[e].type = ES_TYPE_TRACK;
    ev[e].event = "click";
    ev[e].message_id = msg[e];
    ev[e].anonymous_id = "a1";
    ev[e].properties = props;
  }
  return es_append(db, TENANT, ev, BATCH, NULL);
}

/* Reopens and checks that every acknowledged batch is there, once. */
static void check_all_present(es_vfs *vfs, const es_options *o,
                              const unsigned char *acked, int nbatches) {
  static unsigned char seen[BATCHES_MAX][BATCH];
  memset(seen, 0, sizeof(seen));
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(o, vfs, &db), ES_OK);
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = TENANT;
  es_cursor *cur = NULL;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  es_event ev;
  int rc;
  while ((rc = es_cursor_next(cur, &ev)) == 1) {
    int b = -1, e = -1;
    ck_assert_int_eq(sscanf(ev.message_id, "b%d-%d", &b, &e), 2);
    ck_assert(b >= 0 && b < nbatches && e >= 0 && e < BATCH);
    ck_assert_msg(seen[b][e] == 0, "event %s twice", ev.message_id);
    seen[b][e] = 1;
  }
  ck_assert_int_eq(rc, 0);
  es_cursor_close(cur);
  for (int b = 0; b < nbatches; b++)
    for (int e = 0; e < BATCH; e++)
      if (acked[b])
        ck_assert_msg(seen[b][e], "acknowledged event b%d-%d lost", b, e);
  ck_assert_int_eq(es_close(db), ES_OK);
}

static int tmp_found;
static int find_tmp(void *ud, const char *name) {
  (void)ud;
  size_t n = strlen(name);
  if (n > 4 && strcmp(name + n - 4, ".tmp") == 0)
    tmp_found++;
  return 0;
}

/* Waits up to ms for the state to become want. */
static int wait_state(es_db *db, int want, long ms) {
  for (long t = 0; t < ms; t += 20) {
    if (es_state(db, NULL, 0) == want)
      return 1;
    sleep_ms(20);
  }
  return es_state(db, NULL, 0) == want;
}

/* Flushes fail on a full disk: degraded, refused at the memory budget,
 * backoff, recovery without a reopen, nothing lost. */
START_TEST(test_flush_disk_full) {
  static unsigned char acked[BATCHES_MAX];
  memset(acked, 0, sizeof(acked));
  es_vfs *vfs = memvfs_create();
  es_options o;
  options(&o, 4u << 20); /* preallocated: appends need no new blocks */
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  int b = 0;
  for (; b < 10; b++) {
    ck_assert_int_eq(append_batch(db, b), ES_OK);
    acked[b] = 1;
  }
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  char why[512];
  ck_assert_int_eq(es_state(db, why, sizeof(why)), ES_STATE_OK);
  ck_assert_str_eq(why, "ok");

  /* The disk is full: not even a tiny segment fits.  The store may still
   * free space of its own (a reclaimed WAL file, a removed spare.tmp), and
   * a flush may then succeed: fill it again until a flush fails. */
  int rc = ES_OK;
  for (int round = 0;; round++) {
    ck_assert_msg(round < 20, "the disk never stayed full");
    memvfs_set_quota(vfs, memvfs_used(vfs));
    rc = ES_OK;
    int acked_round = 0;
    for (; b < BATCHES_MAX && rc == ES_OK; b++)
      if ((rc = append_batch(db, b)) == ES_OK)
        acked[b] = 1, acked_round++;
    ck_assert_msg(rc == ES_EDEGRADED, "append on a full disk: %d (%s) %s", rc,
                  es_strerror(rc), es_errdetail());
    ck_assert_int_eq(es_state(db, why, sizeof(why)), ES_STATE_DEGRADED);
    ck_assert_msg(strstr(why, "disk full") != NULL, "why: %s", why);
    rc = es_flush(db, NULL);
    /* rows it cannot flush; or none at all (the housekeeper's failed
     * spare WAL file made the store degraded first) */
    if (rc == ES_EDEGRADED || (rc == ES_OK && acked_round == 0))
      break;
    ck_assert_msg(rc == ES_OK, "es_flush on a full disk: %d", rc);
  }
  ck_assert_int_eq(append_batch(db, b++), ES_EDEGRADED);

  /* backoff: let it grow, then count the vfs calls over two seconds */
  sleep_ms(1000);
  unsigned long calls0 = memvfs_count(vfs);
  unsigned long refusals0 = memvfs_quota_refusals(vfs);
  sleep_ms(2000);
  unsigned long calls = memvfs_count(vfs) - calls0;
  unsigned long refusals = memvfs_quota_refusals(vfs) - refusals0;
  printf("diskfull: %lu vfs calls, %lu refused writes in 2 s while "
         "degraded\n",
         calls, refusals);
  ck_assert_msg(calls <= 40,
                "%lu vfs calls in 2 s while degraded: a busy "
                "loop, not a backoff",
                calls);
  ck_assert_uint_ge(refusals, 1); /* but it does keep trying */
  char tdir[64];
  snprintf(tdir, sizeof(tdir), "%s/tenants/%s", DIR, TENANT);
  tmp_found = 0;
  ck_assert_int_eq(vfs->list(vfs, tdir, find_tmp, NULL), ES_OK);
  ck_assert_int_eq(tmp_found, 0);

  memvfs_set_quota(vfs, 0); /* space returns */
  ck_assert_msg(wait_state(db, ES_STATE_OK, 10000), "still degraded");
  ck_assert_int_eq(es_state(db, why, sizeof(why)), ES_STATE_OK);
  ck_assert_int_eq(append_batch(db, b), ES_OK);
  acked[b++] = 1;
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  check_all_present(vfs, &o, acked, b);
  memvfs_destroy(vfs);
}
END_TEST

/* Closing while degraded neither hangs nor loses anything. */
START_TEST(test_close_while_degraded) {
  static unsigned char acked[BATCHES_MAX];
  memset(acked, 0, sizeof(acked));
  es_vfs *vfs = memvfs_create();
  es_options o;
  options(&o, 4u << 20);
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  ck_assert_int_eq(append_batch(db, 0), ES_OK);
  acked[0] = 1;
  memvfs_set_quota(vfs, memvfs_used(vfs) + 1024);
  int b = 1, rc = ES_OK;
  for (; b < BATCHES_MAX && rc == ES_OK; b++)
    if ((rc = append_batch(db, b)) == ES_OK)
      acked[b] = 1;
  ck_assert_int_eq(rc, ES_EDEGRADED);
  ck_assert_int_eq(es_close(db), ES_OK); /* degraded is not failed */
  memvfs_set_quota(vfs, 0);
  check_all_present(vfs, &o, acked, b);
  memvfs_destroy(vfs);
}
END_TEST

/* A store opened on a full disk: its first WAL file cannot be made.  The
 * append that needed it gets ES_EDEGRADED, the half-made file is removed
 * (not left half written), the spare is retried with backoff (not 50
 * times a second), and when space returns the spare is made and the
 * state is ok by itself. */
START_TEST(test_spare_disk_full) {
  static unsigned char acked[BATCHES_MAX];
  memset(acked, 0, sizeof(acked));
  es_vfs *vfs = memvfs_create();
  es_options o;
  options(&o, 2u << 20); /* spares are made for files of 1 MiB and more */
  es_db *db = NULL;
  memvfs_set_quota(vfs, 256 * 1024); /* room for all but a WAL file */
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  /* no spare is wanted before the first frame (wal.c): the first append
   * needs a WAL file, cannot make it, and degrades the store */
  int rc = append_batch(db, 1);
  ck_assert_msg(rc == ES_EDEGRADED, "append: %d (%s)", rc, es_strerror(rc));
  ck_assert(!memvfs_exists(vfs, DIR "/wal/0/0000000000000001.wal"));
  ck_assert_msg(wait_state(db, ES_STATE_DEGRADED, 5000), "not degraded");
  /* a failed attempt removes its half-made file (a retry may be making one
   * at this very moment on a loaded machine: wait for it to fail too) */
  for (int t = 0; t < 100 && memvfs_exists(vfs, DIR "/wal/0/spare.tmp"); t++)
    sleep_ms(20);
  ck_assert(!memvfs_exists(vfs, DIR "/wal/0/spare.tmp"));
  sleep_ms(1000);
  unsigned long calls0 = memvfs_count(vfs);
  sleep_ms(2000);
  unsigned long calls = memvfs_count(vfs) - calls0;
  printf("diskfull: spare: %lu vfs calls in 2 s while degraded\n", calls);
  ck_assert_msg(calls <= 20, "%lu vfs calls in 2 s: no backoff", calls);
  ck_assert(!memvfs_exists(vfs, DIR "/wal/0/spare.tmp"));
  memvfs_set_quota(vfs, 0);
  ck_assert_msg(wait_state(db, ES_STATE_OK, 10000), "still degraded");
  /* the refused batch, retried first (no flush in between can make the
   * store forget what its failed attempt recorded): stored, not taken
   * for a duplicate of itself */
  ck_assert_int_eq(append_batch(db, 1), ES_OK);
  acked[1] = 1;
  ck_assert_int_eq(append_batch(db, 2), ES_OK);
  acked[2] = 1;
  ck_assert_int_eq(append_batch(db, 0), ES_OK);
  acked[0] = 1;
  ck_assert_int_eq(es_close(db), ES_OK);
  check_all_present(vfs, &o, acked, 3);
  memvfs_destroy(vfs);
}
END_TEST

int main(void) {
  Suite *s = suite_create("diskfull");
  TCase *tc = tcase_create("diskfull");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_flush_disk_full);
  tcase_add_test(tc, test_close_while_degraded);
  tcase_add_test(tc, test_spare_disk_full);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
