/*
 * test_replicate.c -- the uploader and restore against the in-memory
 * object store: the REPLICA record, a replicate-compact-restore cycle
 * compared event by event with the live store, restart without
 * re-uploading, a restart with a backlog, restores racing the uploader,
 * and the fault loop: the k-th object-store request fails (status,
 * timeout, dropped connection) for every k over a cycle of append + seal
 * + upload + compaction + restore; a restore afterwards holds every
 * sealed event, none invented, none twice.
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/unit.h"
#include "api.h"
#include "base/mem.h"
#include "replicate/objmem.h"
#include "replicate/replicate.h"

static const char *const TENANTS[] = {"acme", "b-2"};
#define NTENANTS 2

static int64_t g_grace_us = 0;

static es_db *open_db(const char *dir, es_replica *rep) {
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.shards = 2;
  o.sync_mode = ES_SYNC_NONE;
  o.replica = rep;
  o.replica_interval_us = 5000;
  o.replica_grace_us = g_grace_us;
  o.wal_file_bytes = 1 << 20;
  es_db *db = NULL;
  int rc = es_open(&o, &db);
  ck_assert_msg(rc == ES_OK, "es_open: %s", es_errdetail());
  return db;
}

/* Appends n events numbered from first to every tenant. */
static void append(es_db *db, int first, int n) {
  for (int t = 0; t < NTENANTS; t++)
    for (int i = first; i < first + n; i++) {
      char mid[32], anon[32];
      snprintf(mid, sizeof(mid), "m%06d", i);
      snprintf(anon, sizeof(anon), "v%d", i % 7);
      es_event ev = {.ts_us = 1700000000000000LL + (int64_t)i * 1000000,
                     .type = ES_TYPE_PAGE,
                     .event = "Home",
                     .message_id = mid,
                     .anonymous_id = anon,
                     .path = "/"};
      int rc = es_append(db, TENANTS[t], &ev, 1, NULL);
      ck_assert_msg(rc == ES_OK, "append: %s", es_errdetail());
    }
}

static void flush(es_db *db) {
  for (int t = 0; t < NTENANTS; t++)
    ck_assert_int_eq(es_flush(db, TENANTS[t]), ES_OK);
}

/* The message ids of a tenant's events, in scan order, as numbers;
 * *n_out of them (es__malloc'ed). */
static int *scan_ids(es_db *db, const char *tenant, size_t *n_out) {
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = tenant;
  spec.fields = ES_FIELD_MESSAGE_ID;
  es_cursor *cur = NULL;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  size_t n = 0, cap = 64;
  int *ids = es__malloc(cap * sizeof(int));
  es_event ev;
  int rc;
  while ((rc = es_cursor_next(cur, &ev)) == 1) {
    if (n == cap)
      ids = es__realloc(ids, (cap *= 2) * sizeof(int));
    ck_assert_ptr_nonnull(ev.message_id);
    ids[n++] = atoi(ev.message_id + 1);
  }
  ck_assert_int_eq(rc, 0);
  es_cursor_close(cur);
  *n_out = n;
  return ids;
}

/* Restores into a new directory and checks each tenant holds events
 * 0..want-1 exactly once (want < 0: a prefix-free subset of 0..-want-1,
 * each at most once: a restore racing the uploader).  Returns the
 * restore's status (transient failures are the caller's to judge). */
static int restore_check(es_replica *rep, int want) {
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "restore");
  int rc = es_restore(rep, dir, NULL, 0, NULL, NULL);
  if (rc < 0)
    fprintf(stderr, "restore: %d %s\n", rc, es_errdetail());
  if (rc < 0) {
    ut_rmrf(dir);
    return rc;
  }
  ck_assert_msg(es_verify(dir, NULL, NULL) == ES_OK, "verify: %s",
                es_errdetail());
  es_db *db = open_db(dir, NULL);
  int limit = want < 0 ? -want : want;
  for (int t = 0; t < NTENANTS; t++) {
    size_t n = 0;
    int *ids = scan_ids(db, TENANTS[t], &n);
    char *seen = calloc((size_t)limit + 1, 1);
    for (size_t i = 0; i < n; i++) {
      ck_assert_msg(ids[i] >= 0 && ids[i] < limit, "invented event %d", ids[i]);
      ck_assert_msg(!seen[ids[i]], "event %d restored twice", ids[i]);
      seen[ids[i]] = 1;
    }
    if (want >= 0)
      ck_assert_msg(n == (size_t)want, "%s: restored %zu of %d events",
                    TENANTS[t], n, want);
    free(seen);
    es__free(ids);
  }
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
  return ES_OK;
}

static es_objstore *mkstore(uint64_t seed, es_replica **rep_out) {
  es_objstore *os = NULL;
  ck_assert_int_eq(es__objmem_create(3, seed, &os), ES_OK);
  ck_assert_int_eq(es__replica_wrap(os, 1, rep_out), ES_OK);
  return os;
}

static int count_keys_fn(void *ud, const char *key, const es_objinfo *info) {
  (void)info;
  int *n = ud;
  if (strstr(key, "/MANIFEST-"))
    n[0]++;
  else if (strstr(key, ".seg"))
    n[1]++;
  return 0;
}

START_TEST(test_replrec) {
  es_replrec rec = {0}, back;
  rec.generation = 7;
  rec.rules_hash = 99;
  ck_assert_int_eq(es__replrec_put(&rec, "0000000000000001.seg", 123, 0),
                   ES_OK);
  ck_assert_int_eq(
      es__replrec_put(&rec, "MANIFEST-0000000000000007", 80, 1700000000),
      ES_OK);
  ck_assert_int_eq(es__replrec_put(&rec, "bad/name", 1, 0), ES_OK);
  uint8_t *buf = NULL;
  size_t len = 0;
  es__replrec_remove(&rec, "bad/name");
  ck_assert_int_eq(es__replrec_encode(&rec, &buf, &len), ES_OK);
  ck_assert_int_eq(es__replrec_decode("t", buf, len, &back), ES_OK);
  ck_assert_uint_eq(back.n, 2);
  ck_assert_uint_eq(back.generation, 7);
  ck_assert_uint_eq(back.rules_hash, 99);
  ck_assert_uint_eq(es__replrec_find(&back, "0000000000000001.seg")->bytes,
                    123);
  ck_assert_int_eq(
      es__replrec_find(&back, "MANIFEST-0000000000000007")->superseded_us,
      1700000000);
  es__replrec_free(&back);
  for (size_t i = 0; i < len; i++) { /* every flipped byte is refused */
    buf[i] ^= 0x10;
    ck_assert_int_eq(es__replrec_decode("t", buf, len, &back), ES_ECORRUPT);
    buf[i] ^= 0x10;
  }
  ck_assert_int_eq(es__replrec_decode("t", buf, len - 1, &back), ES_ECORRUPT);
  es__free(buf);
  es__replrec_free(&rec);
}
END_TEST

/* Append, flush, compact with a replica; the restore equals the live
 * store; superseded objects are gone (grace 0); one manifest each. */
START_TEST(test_cycle) {
  es_replica *rep = NULL;
  es_objstore *os = mkstore(1, &rep);
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "live");
  es_db *db = open_db(dir, rep);
  for (int b = 0; b < 4; b++) {
    append(db, b * 50, 50);
    flush(db);
  }
  ck_assert_int_eq(es_compact(db, NULL, NULL, NULL), ES_OK);
  ck_assert_msg(es_replica_drain(db, 10000000) == ES_OK, "drain: %s",
                es_errdetail());
  es_replica_stats st;
  ck_assert_int_eq(es_replica_stats_get(db, &st), ES_OK);
  ck_assert_uint_eq(st.backlog_objects, 0);
  ck_assert_uint_gt(st.uploaded_objects, 8);
  ck_assert_uint_gt(st.deleted_objects, 0);
  ck_assert_int_eq(st.oldest_age_us, 0);
  /* the live store and the restore agree event for event */
  for (int t = 0; t < NTENANTS; t++) {
    size_t n = 0;
    int *ids = scan_ids(db, TENANTS[t], &n);
    ck_assert_uint_eq(n, 200);
    es__free(ids);
  }
  ck_assert_int_eq(restore_check(rep, 200), ES_OK);
  int counts[2] = {0, 0};
  ck_assert_int_eq(os->list(os, "tenants/", NULL, count_keys_fn, counts),
                   ES_OK);
  ck_assert_int_eq(counts[0], NTENANTS); /* older manifests deleted */
  ck_assert_int_eq(counts[1], NTENANTS); /* compacted: one segment each */
  /* restore of one named tenant into the existing directory is refused
   * while it is there, and works once the directory is another store */
  ck_assert_int_eq(es_close(db), ES_OK);
  const char *one[] = {"acme"};
  ck_assert_int_eq(es_restore(rep, dir, one, 1, NULL, NULL), ES_EINVAL);
  const char *none[] = {"nobody"};
  char dir2[4096];
  ut_tmpdir(dir2, sizeof(dir2), "named");
  ck_assert_int_eq(es_restore(rep, dir2, none, 1, NULL, NULL), ES_ENOTFOUND);
  ck_assert_int_eq(es_restore(rep, dir2, one, 1, NULL, NULL), ES_OK);
  es_db *db2 = open_db(dir2, NULL);
  size_t n = 0;
  es__free(scan_ids(db2, "acme", &n));
  ck_assert_uint_eq(n, 200);
  es__free(scan_ids(db2, "b-2", &n));
  ck_assert_uint_eq(n, 0);
  ck_assert_int_eq(es_close(db2), ES_OK);
  ut_rmrf(dir2);
  ut_rmrf(dir);
  es_replica_free(rep);
}
END_TEST

/* A restart resumes from the record: nothing is uploaded twice; a
 * restart with a backlog (store down) uploads it after. */
START_TEST(test_restart) {
  es_replica *rep = NULL;
  es_objstore *os = mkstore(2, &rep);
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "restart");
  es_db *db = open_db(dir, rep);
  append(db, 0, 40);
  flush(db);
  ck_assert_int_eq(es_replica_drain(db, 10000000), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  db = open_db(dir, rep);
  ck_assert_int_eq(es_replica_drain(db, 10000000), ES_OK);
  es_replica_stats st;
  ck_assert_int_eq(es_replica_stats_get(db, &st), ES_OK);
  ck_assert_uint_eq(st.uploaded_objects, 1); /* ESDB only */
  /* the store goes down: appends and flushes go on, the backlog grows */
  es__objmem_fail_every(os, 1, ES_OBJMEM_FAIL_TIMEOUT, 0);
  append(db, 40, 40);
  flush(db);
  ck_assert_int_eq(es_replica_drain(db, 50000), ES_EUNAVAIL);
  ck_assert_int_eq(es_replica_stats_get(db, &st), ES_OK);
  ck_assert_uint_gt(st.backlog_objects, 0);
  ck_assert_uint_gt(st.errors, 0);
  ck_assert_int_eq(es_close(db), ES_OK);
  ck_assert_int_eq(restore_check(rep, -80), ES_EUNAVAIL);
  es__objmem_fail_every(os, 0, 0, 0);
  ck_assert_int_eq(restore_check(rep, 40), ES_OK); /* the old copy */
  db = open_db(dir, rep);
  ck_assert_int_eq(es_replica_drain(db, 10000000), ES_OK);
  ck_assert_int_eq(restore_check(rep, 80), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
  es_replica_free(rep);
}
END_TEST

/* Restores while the uploader works: always a consistent subset (the
 * grace period keeps what an older manifest names). */
START_TEST(test_restore_races_upload) {
  es_replica *rep = NULL;
  (void)mkstore(3, &rep);
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "race");
  g_grace_us = 60000000;
  es_db *db = open_db(dir, rep);
  g_grace_us = 0;
  ck_assert_int_eq(es_replica_drain(db, 10000000), ES_OK); /* ESDB */
  for (int b = 0; b < 6; b++) {
    append(db, b * 20, 20);
    flush(db);
    if (b == 3)
      ck_assert_int_eq(es_compact(db, NULL, NULL, NULL), ES_OK);
    int rc = restore_check(rep, -(b + 1) * 20);
    ck_assert_msg(rc == ES_OK, "b=%d: %s", b, es_errdetail());
  }
  ck_assert_int_eq(es_replica_drain(db, 10000000), ES_OK);
  ck_assert_int_eq(restore_check(rep, 120), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
  es_replica_free(rep);
}
END_TEST

/* One cycle with the k-th request failing; returns the requests made. */
static unsigned long fault_cycle(unsigned long k, int kind) {
  es_replica *rep = NULL;
  es_objstore *os = mkstore(100 + k, &rep);
  es__objmem_fail_at(os, k, kind, ES_EREMOTE);
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "fault");
  es_db *db = open_db(dir, rep);
  append(db, 0, 30);
  flush(db);
  ck_assert_msg(es_replica_drain(db, 10000000) == ES_OK, "k=%lu drain: %s", k,
                es_errdetail());
  append(db, 30, 30);
  flush(db);
  append(db, 60, 30);
  flush(db);
  ck_assert_int_eq(es_compact(db, NULL, NULL, NULL), ES_OK);
  ck_assert_msg(es_replica_drain(db, 10000000) == ES_OK, "k=%lu drain: %s", k,
                es_errdetail());
  ck_assert_int_eq(es_close(db), ES_OK);
  int rc = restore_check(rep, 90);
  if (rc < 0) { /* the fault hit the restore: it says so; again */
    ck_assert_msg(rc == ES_EUNAVAIL || rc == ES_EREMOTE, "k=%lu restore: %s", k,
                  es_errdetail());
    ck_assert_int_eq(restore_check(rep, 90), ES_OK);
  }
  unsigned long n = es__objmem_requests(os);
  ut_rmrf(dir);
  es_replica_free(rep);
  return n;
}

/* A store that dies for good after `limit` requests (every later one
 * fails ES_EUNAVAIL, with no effect): the uploader stopped at any point. */
typedef struct cut_store {
  es_objstore vt;
  es_objstore *inner;
  atomic_ulong n, limit;
} cut_store;

static int cut_pass(es_objstore *os) {
  cut_store *c = (cut_store *)os;
  return atomic_fetch_add(&c->n, 1) < atomic_load(&c->limit);
}
static int cut_put(es_objstore *os, const char *key, const void *buf,
                   size_t len, int cond, const char *if_etag,
                   es_objinfo *info) {
  es_objstore *in = ((cut_store *)os)->inner;
  return cut_pass(os) ? in->put(in, key, buf, len, cond, if_etag, info)
                      : ES_EUNAVAIL;
}
static int cut_get(es_objstore *os, const char *key, uint64_t off, uint64_t len,
                   uint8_t **buf, size_t *len_out, es_objinfo *info) {
  es_objstore *in = ((cut_store *)os)->inner;
  return cut_pass(os) ? in->get(in, key, off, len, buf, len_out, info)
                      : ES_EUNAVAIL;
}
static int cut_head(es_objstore *os, const char *key, es_objinfo *info) {
  es_objstore *in = ((cut_store *)os)->inner;
  return cut_pass(os) ? in->head(in, key, info) : ES_EUNAVAIL;
}
static int cut_del(es_objstore *os, const char *key) {
  es_objstore *in = ((cut_store *)os)->inner;
  return cut_pass(os) ? in->del(in, key) : ES_EUNAVAIL;
}
static int cut_list(es_objstore *os, const char *prefix,
                    const char *start_after, es_objlist_fn fn, void *ud) {
  es_objstore *in = ((cut_store *)os)->inner;
  return cut_pass(os) ? in->list(in, prefix, start_after, fn, ud) : ES_EUNAVAIL;
}
static void cut_destroy(es_objstore *os) { (void)os; }

/* The uploader cut off after k requests at every k over a cycle of
 * appends, flushes and a compaction (grace 0: deletes as early as the
 * invariants allow): a restore from what reached the store is always a
 * consistent subset (no missing object, nothing invented or twice), and
 * a later start with the store back uploads the rest. */
START_TEST(test_cut_loop) {
  unsigned long total = 0;
  for (unsigned long k = 0;; k++) {
    es_replica *inner_rep = NULL;
    es_objstore *inner = mkstore(200 + k, &inner_rep);
    cut_store cut = {.vt = {.put = cut_put,
                            .get = cut_get,
                            .head = cut_head,
                            .del = cut_del,
                            .list = cut_list,
                            .destroy = cut_destroy},
                     .inner = inner};
    atomic_store(&cut.limit, k ? k : ULONG_MAX);
    es_replica *rep = NULL;
    ck_assert_int_eq(es__replica_wrap(&cut.vt, 0, &rep), ES_OK);
    char dir[4096];
    ut_tmpdir(dir, sizeof(dir), "cut");
    es_db *db = open_db(dir, rep);
    for (int b = 0; b < 3; b++) {
      append(db, b * 10, 10);
      flush(db);
      if (b == 1)
        ck_assert_int_eq(es_compact(db, NULL, NULL, NULL), ES_OK);
      int drc = es_replica_drain(db, k ? 30000 : 10000000);
      ck_assert(drc == ES_OK || (k && drc == ES_EUNAVAIL));
    }
    ck_assert_int_eq(es_close(db), ES_OK);
    if (k == 0)
      total = atomic_load(&cut.n);
    int rc = restore_check(inner_rep, k ? -30 : 30);
    ck_assert_msg(rc == ES_OK, "k=%lu: restore %d: %s", k, rc, es_errdetail());
    /* the store is back: a restart uploads the rest */
    atomic_store(&cut.limit, ULONG_MAX);
    db = open_db(dir, rep);
    ck_assert_int_eq(es_replica_drain(db, 10000000), ES_OK);
    ck_assert_int_eq(es_close(db), ES_OK);
    ck_assert_int_eq(restore_check(inner_rep, 30), ES_OK);
    es_replica_free(rep);
    es_replica_free(inner_rep);
    ut_rmrf(dir);
    if (k > 0 && k >= total)
      break;
  }
  ck_assert_uint_gt(total, 10);
}
END_TEST

START_TEST(test_fault_loop) {
  unsigned long total = fault_cycle(0, ES_OBJMEM_FAIL_TIMEOUT); /* no fault */
  ck_assert_uint_gt(total, 10);
  static const int kinds[] = {ES_OBJMEM_FAIL_TIMEOUT, ES_OBJMEM_FAIL_DROP,
                              ES_OBJMEM_FAIL_STATUS};
  for (unsigned long k = 1; k <= total + 2; k++)
    (void)fault_cycle(k, kinds[k % 3]);
}
END_TEST

static Suite *replicate_suite(void) {
  Suite *s = suite_create("replicate");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_replrec);
  tcase_add_test(tc, test_cycle);
  tcase_add_test(tc, test_restart);
  tcase_add_test(tc, test_restore_races_upload);
  tcase_add_test(tc, test_fault_loop);
  tcase_add_test(tc, test_cut_loop);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(replicate_suite()); }
