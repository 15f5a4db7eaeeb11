/*
 * test_tier.c -- durability tier s3 against the in-memory object store:
 * an acknowledged append is in the store (a restore that never saw the
 * live directory gives it back, from WAL chunks, before any seal);
 * concurrent appends share PUTs; an outage answers ES_EUNAVAIL at once
 * and recovers, while tier local never waits; chunks are deleted once
 * their events are in replicated segments; es_close is bounded while a
 * PUT hangs; and the fault loop: the k-th object-store request fails
 * (timeout, dropped connection applied or not, a permanent status) at
 * every k over append + seal + upload + compaction + restore, failed
 * appends retried with the same messageIds as an SDK does; the restore
 * then holds every acknowledged event exactly once and nothing else.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../unit/unit.h"
#include "api.h"
#include "base/clock.h"
#include "base/mem.h"
#include "replicate/objmem.h"
#include "replicate/replicate.h"

static const char *const TENANTS[] = {"acme", "b-2"};
#define NTENANTS 2
#define BATCH 10

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* How a test opens: WAL shipping in tier local too, the shipper's
 * in-memory window and disk bound, smaller WAL files (0: the defaults). */
typedef struct tier_cfg {
  int ship_wal;
  int64_t window, backlog_max;
  size_t wal_file_bytes;
} tier_cfg;
static tier_cfg g_cfg;

static es_db *open_tier_depth(const char *dir, es_replica *rep, int tier,
                              int depth) {
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.shards = 2;
  o.sync_mode = ES_SYNC_NONE;
  o.replica = rep;
  o.replica_interval_us = 5000;
  o.replica_grace_us = 0;
  o.wal_file_bytes = 1 << 20;
  o.durability = tier;
  o.s3_ack_timeout_us = 1000000;
  o.s3_puts_inflight = depth;
  o.ship_wal = g_cfg.ship_wal;
  o.s3_window_bytes = g_cfg.window;
  o.s3_backlog_bytes_max = g_cfg.backlog_max;
  if (g_cfg.wal_file_bytes)
    o.wal_file_bytes = g_cfg.wal_file_bytes;
  es_db *db = NULL;
  int rc = es_open(&o, &db);
  ck_assert_msg(rc == ES_OK, "es_open: %s", es_errdetail());
  return db;
}

static es_db *open_tier(const char *dir, es_replica *rep, int tier) {
  return open_tier_depth(dir, rep, tier, 0);
}

static void mkevent(es_event *ev, char *mid, size_t cap, int i) {
  snprintf(mid, cap, "m%06d", i);
  *ev = (es_event){.ts_us = 1700000000000000LL + (int64_t)i * 1000000,
                   .type = ES_TYPE_PAGE,
                   .event = "Home",
                   .message_id = mid,
                   .anonymous_id = "v1",
                   .path = "/"};
}

/* Appends events first..first+n-1 to tenant t in batches, retrying a
 * failed batch with the same messageIds (as an SDK does after a 503) up
 * to `tries` times; returns how many events were acknowledged. */
static int append_retry(es_db *db, int t, int first, int n, int tries) {
  int acked = 0;
  for (int b = first; b < first + n; b += BATCH) {
    es_event ev[BATCH];
    char mid[BATCH][16];
    int cnt = first + n - b < BATCH ? first + n - b : BATCH;
    for (int i = 0; i < cnt; i++)
      mkevent(&ev[i], mid[i], sizeof(mid[i]), b + i);
    int rc = ES_EUNAVAIL;
    for (int k = 0; k < tries && rc != ES_OK; k++) {
      rc = es_append(db, TENANTS[t], ev, (size_t)cnt, NULL);
      ck_assert_msg(rc == ES_OK || rc == ES_EUNAVAIL, "append: %d %s", rc,
                    es_errdetail());
      if (rc != ES_OK)
        sleep_ms(20);
    }
    if (rc == ES_OK)
      acked += cnt;
  }
  return acked;
}

static void append_all(es_db *db, int first, int n) {
  for (int t = 0; t < NTENANTS; t++)
    ck_assert_int_eq(append_retry(db, t, first, n, 200), n);
}

/* Message ids of a tenant, as numbers (es__malloc'ed). */
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
    ids[n++] = atoi(ev.message_id + 1);
  }
  ck_assert_int_eq(rc, 0);
  es_cursor_close(cur);
  *n_out = n;
  return ids;
}

/* Restores into a new directory (never the live one: a lost node) and
 * checks each tenant holds exactly events 0..want-1, once each. */
static int restore_check(es_replica *rep, int want) {
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "tier-restore");
  int rc = es_restore(rep, dir, NULL, 0, NULL, NULL);
  if (rc < 0) {
    ut_rmrf(dir);
    return rc;
  }
  ck_assert_msg(es_verify(dir, NULL, NULL) == ES_OK, "verify: %s",
                es_errdetail());
  tier_cfg keep = g_cfg;
  g_cfg = (tier_cfg){0};
  es_db *db = open_tier(dir, NULL, ES_DURABILITY_LOCAL);
  g_cfg = keep;
  for (int t = 0; t < NTENANTS; t++) {
    size_t n = 0;
    int *ids = scan_ids(db, TENANTS[t], &n);
    char *seen = calloc((size_t)want + 1, 1);
    for (size_t i = 0; i < n; i++) {
      ck_assert_msg(ids[i] >= 0 && ids[i] < want, "invented event %d", ids[i]);
      ck_assert_msg(!seen[ids[i]], "%s: event %d restored twice", TENANTS[t],
                    ids[i]);
      seen[ids[i]] = 1;
    }
    ck_assert_msg(n == (size_t)want, "%s: restored %zu of %d events",
                  TENANTS[t], n, want);
    free(seen);
    es__free(ids);
  }
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
  return ES_OK;
}

/* ---- a store in front of objmem: counts WAL puts, can delay or hang ---- */

typedef struct wrap_store {
  es_objstore vt;
  es_objstore *inner;
  atomic_ulong wal_puts;
  atomic_int delay_ms; /* before each WAL put */
  atomic_int hang;     /* WAL puts wait for a cancel (60 s at most) */
  atomic_int cancel;
  atomic_int slow_next_ms; /* the next WAL put only: its delay */
  atomic_int slow_done;    /* that put is in the inner store */
  atomic_int cur, most;    /* WAL puts under way, their most at once */
} wrap_store;

static int w_put(es_objstore *os, const char *key, const void *buf, size_t len,
                 int cond, const char *if_etag, es_objinfo *info) {
  wrap_store *w = (wrap_store *)os;
  if (strncmp(key, "wal/", 4) != 0)
    return w->inner->put(w->inner, key, buf, len, cond, if_etag, info);
  atomic_fetch_add(&w->wal_puts, 1);
  int cur = atomic_fetch_add(&w->cur, 1) + 1, most = atomic_load(&w->most);
  while (cur > most && !atomic_compare_exchange_weak(&w->most, &most, cur))
    ;
  int slow = atomic_exchange(&w->slow_next_ms, 0);
  if (slow)
    sleep_ms(slow);
  if (atomic_load(&w->delay_ms))
    sleep_ms(atomic_load(&w->delay_ms));
  int rc = ES_EUNAVAIL;
  for (int i = 0; atomic_load(&w->hang) && i < 6000; i++) {
    if (atomic_load(&w->cancel))
      goto out;
    sleep_ms(10);
  }
  rc = w->inner->put(w->inner, key, buf, len, cond, if_etag, info);
  if (slow)
    atomic_store(&w->slow_done, 1);
out:
  atomic_fetch_sub(&w->cur, 1);
  return rc;
}
static int w_get(es_objstore *os, const char *key, uint64_t off, uint64_t len,
                 uint8_t **buf, size_t *len_out, es_objinfo *info) {
  es_objstore *in = ((wrap_store *)os)->inner;
  return in->get(in, key, off, len, buf, len_out, info);
}
static int w_head(es_objstore *os, const char *key, es_objinfo *info) {
  es_objstore *in = ((wrap_store *)os)->inner;
  return in->head(in, key, info);
}
static int w_del(es_objstore *os, const char *key) {
  es_objstore *in = ((wrap_store *)os)->inner;
  return in->del(in, key);
}
static int w_list(es_objstore *os, const char *prefix, const char *start_after,
                  es_objlist_fn fn, void *ud) {
  es_objstore *in = ((wrap_store *)os)->inner;
  return in->list(in, prefix, start_after, fn, ud);
}
static void w_cancel(es_objstore *os, int on) {
  atomic_store(&((wrap_store *)os)->cancel, on);
}
static void w_destroy(es_objstore *os) { (void)os; }

static es_replica *wrap(wrap_store *w, es_objstore **inner_out,
                        es_replica **inner_rep_out) {
  ck_assert_int_eq(es__objmem_create(100, 7, inner_out), ES_OK);
  ck_assert_int_eq(es__replica_wrap(*inner_out, 1, inner_rep_out), ES_OK);
  w->vt = (es_objstore){.put = w_put,
                        .get = w_get,
                        .head = w_head,
                        .del = w_del,
                        .list = w_list,
                        .cancel = w_cancel,
                        .destroy = w_destroy};
  w->inner = *inner_out;
  es_replica *rep = NULL;
  ck_assert_int_eq(es__replica_wrap(&w->vt, 0, &rep), ES_OK);
  return rep;
}

static int count_wal_fn(void *ud, const char *key, const es_objinfo *info) {
  (void)key, (void)info;
  (*(int *)ud)++;
  return 0;
}

static int wal_chunks(es_objstore *os) {
  int n = 0;
  ck_assert_int_eq(os->list(os, "wal/", NULL, count_wal_fn, &n), ES_OK);
  return n;
}

/* ---- tests ------------------------------------------------------------- */

typedef struct thr_arg {
  es_db *db;
  int t, first, n;
} thr_arg;

static void *thr_append(void *p) {
  thr_arg *a = p;
  for (int i = a->first; i < a->first + a->n; i++) {
    es_event ev;
    char mid[16];
    mkevent(&ev, mid, sizeof(mid), i);
    int rc = es_append(a->db, TENANTS[a->t], &ev, 1, NULL);
    ck_assert_msg(rc == ES_OK, "append: %s", es_errdetail());
  }
  return NULL;
}

/* Acknowledged means in the store: a restore made without the live
 * directory, before any seal, has every event (from WAL chunks); 16
 * threads appending one event at a time to one tenant (one shard) share
 * PUTs (each PUT takes 20 ms here): the first frame after a PUT goes
 * alone, the ones that arrive during it share the next; sealed and
 * uploaded, the chunks are deleted. */
START_TEST(test_ack_means_stored) {
  wrap_store w = {0};
  es_objstore *inner = NULL;
  es_replica *inner_rep = NULL;
  es_replica *rep = wrap(&w, &inner, &inner_rep);
  atomic_store(&w.delay_ms, 20);
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "tier-live");
  es_db *db = open_tier(dir, rep, ES_DURABILITY_S3);
  pthread_t th[16];
  thr_arg args[16];
  for (int i = 0; i < 16; i++) {
    args[i] = (thr_arg){db, 0, i * 10, 10};
    pthread_create(&th[i], NULL, thr_append, &args[i]);
  }
  for (int i = 0; i < 16; i++)
    pthread_join(th[i], NULL);
  unsigned long puts = atomic_load(&w.wal_puts);
  fprintf(stderr, "tier s3: 160 appends from 16 threads, %lu WAL PUTs\n", puts);
  ck_assert_uint_gt(puts, 0);
  ck_assert_uint_le(puts, 160 / 3); /* one PUT per group, not per append */
  append_all(db, 0, 160); /* duplicates: acknowledged, not stored again */
  append_all(db, 160, 40);
  atomic_store(&w.delay_ms, 0);
  /* the node is lost now: restore from the store alone */
  ck_assert_int_eq(restore_check(inner_rep, 200), ES_OK);
  ck_assert_int_gt(wal_chunks(inner), 0);
  /* sealed and uploaded: the chunks go (grace 0) */
  for (int t = 0; t < NTENANTS; t++)
    ck_assert_int_eq(es_flush(db, TENANTS[t]), ES_OK);
  ck_assert_int_eq(es_replica_drain(db, 10000000), ES_OK);
  int64_t until = es__clock_mono_us() + 10000000;
  while (wal_chunks(inner) > 0 && es__clock_mono_us() < until)
    sleep_ms(50);
  ck_assert_int_eq(wal_chunks(inner), 0);
  es_walship_stats st;
  ck_assert_int_eq(es_walship_stats_get(db, &st), ES_OK);
  ck_assert_uint_gt(st.deleted, 0);
  ck_assert_uint_eq(st.chunks, atomic_load(&w.wal_puts));
  ck_assert_int_eq(restore_check(inner_rep, 200), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  es_replica_free(rep);
  es_replica_free(inner_rep);
  ut_rmrf(dir);
}
END_TEST

static void *thr_one(void *p) {
  thr_arg *a = p;
  es_event ev;
  char mid[16];
  mkevent(&ev, mid, sizeof(mid), a->first);
  int rc = es_append(a->db, TENANTS[a->t], &ev, 1, NULL);
  ck_assert_msg(rc == ES_OK, "append: %s", es_errdetail());
  return NULL;
}

/* Pipelining (walship.c, 2), with depth PUTs allowed per shard: the first
 * chunk's PUT made slow (400 ms), an append on the same shard meanwhile
 * gets its own chunk put at once (two PUTs under way; with depth 1 it
 * waits for the slow one to return), and is acknowledged only once the
 * slow chunk before it is in the store.  The counters of
 * es_walship_stats_get and es_walship_shards move with it. */
static void pipeline_case(int depth) {
  wrap_store w = {0};
  es_objstore *inner = NULL;
  es_replica *inner_rep = NULL;
  es_replica *rep = wrap(&w, &inner, &inner_rep);
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "tier-pipe");
  es_db *db = open_tier_depth(dir, rep, ES_DURABILITY_S3, depth);
  append_all(db, 0, 10);
  es_walship_stats st0, st;
  ck_assert_int_eq(es_walship_stats_get(db, &st0), ES_OK);
  ck_assert_uint_eq(st0.depth, (unsigned)depth);
  ck_assert_uint_gt(st0.chunks, 0);
  ck_assert_uint_gt(st0.bytes, 0);
  ck_assert_uint_ge(st0.waits, 2 * 10 / BATCH);
  ck_assert_uint_eq(st0.lag_lsn, 0);
  ck_assert_uint_eq(st0.pending_bytes, 0);
  atomic_store(&w.most, 0);
  atomic_store(&w.slow_next_ms, 400);
  thr_arg a = {db, 0, 100, 1};
  pthread_t th;
  pthread_create(&th, NULL, thr_one, &a);
  while (atomic_load(&w.cur) == 0)
    sleep_ms(1);
  sleep_ms(50);
  ck_assert_int_eq(es_walship_stats_get(db, &st), ES_OK);
  ck_assert_uint_eq(st.inflight, 1);
  ck_assert_uint_gt(st.lag_lsn, 0);
  ck_assert_uint_gt(st.pending_bytes, 0);
  ck_assert_int_gt(st.oldest_age_us, 0);
  es_event ev;
  char mid[16];
  mkevent(&ev, mid, sizeof(mid), 101);
  ck_assert_int_eq(es_append(db, TENANTS[0], &ev, 1, NULL), ES_OK);
  ck_assert_int_eq(atomic_load(&w.slow_done), 1); /* in order */
  pthread_join(th, NULL);
  fprintf(stderr, "tier s3, depth %d: %d WAL PUTs under way at most\n", depth,
          atomic_load(&w.most));
  if (depth > 1)
    ck_assert_int_ge(atomic_load(&w.most), 2);
  else
    ck_assert_int_eq(atomic_load(&w.most), 1);
  ck_assert_int_eq(es_walship_stats_get(db, &st), ES_OK);
  ck_assert_uint_ge(st.chunks, st0.chunks + 2);
  ck_assert_uint_ge(st.waits, st0.waits + 2);
  ck_assert_uint_eq(st.inflight, 0);
  ck_assert_uint_eq(st.lag_lsn, 0);
  ck_assert_uint_eq(st.put_errors, 0);
  ck_assert_uint_eq(st.failing_shards + st.broken_shards, 0);
  ck_assert_int_eq(es_close(db), ES_OK);
  es_replica_free(rep);
  es_replica_free(inner_rep);
  ut_rmrf(dir);
}

START_TEST(test_pipeline) {
  pipeline_case(4);
  pipeline_case(1);
}
END_TEST

/* Every request fails: tier s3 answers ES_EUNAVAIL (the first append
 * after its PUT failed, the next ones at once, nothing written), tier
 * local never waits; the store back, retried appends are acknowledged
 * and the restore holds each event once. */
START_TEST(test_outage) {
  es_replica *rep = NULL;
  es_objstore *os = NULL;
  ck_assert_int_eq(es__objmem_create(100, 3, &os), ES_OK);
  ck_assert_int_eq(es__replica_wrap(os, 1, &rep), ES_OK);
  char dir[4096], dir2[4096];
  ut_tmpdir(dir, sizeof(dir), "tier-out");
  ut_tmpdir(dir2, sizeof(dir2), "tier-out-local");
  es_db *db = open_tier(dir, rep, ES_DURABILITY_S3);
  append_all(db, 0, 10);
  es__objmem_fail_every(os, 1, ES_OBJMEM_FAIL_TIMEOUT, 0);
  ck_assert_int_eq(append_retry(db, 0, 10, 5, 1), 0); /* its PUT failed */
  int64_t t0 = es__clock_mono_us();
  ck_assert_int_eq(append_retry(db, 0, 15, 5, 1), 0); /* refused at once */
  ck_assert_int_lt(es__clock_mono_us() - t0, 500000);
  es_walship_stats st;
  ck_assert_int_eq(es_walship_stats_get(db, &st), ES_OK);
  ck_assert_uint_ge(st.put_errors, 1);
  ck_assert_uint_ge(st.refused, 1);
  ck_assert_uint_ge(st.wait_failures, 1);
  ck_assert_uint_eq(st.failing_shards, 1);
  ck_assert_uint_gt(st.pending_bytes, 0);
  /* tier local beside it, same failing store: never waits */
  es_db *loc = open_tier(dir2, rep, ES_DURABILITY_LOCAL);
  t0 = es__clock_mono_us();
  for (int t = 0; t < NTENANTS; t++)
    ck_assert_int_eq(append_retry(loc, t, 0, 50, 1), 50);
  ck_assert_int_lt(es__clock_mono_us() - t0, 5000000);
  ck_assert_int_eq(es_walship_stats_get(loc, &st), ES_EINVAL); /* no shipper */
  ck_assert_int_eq(es_close(loc), ES_OK);
  es__objmem_fail_every(os, 0, 0, 0);
  ck_assert_int_eq(append_retry(db, 0, 10, 10, 200), 10);
  ck_assert_int_eq(append_retry(db, 1, 10, 10, 200), 10);
  ck_assert_int_eq(es_walship_stats_get(db, &st), ES_OK);
  ck_assert_uint_ge(st.retries, 1);
  ck_assert_uint_eq(st.failing_shards, 0);
  ck_assert_uint_eq(st.lag_lsn, 0);
  ck_assert_int_eq(es_close(db), ES_OK);
  ck_assert_int_eq(restore_check(rep, 20), ES_OK);
  es_replica_free(rep);
  ut_rmrf(dir);
  ut_rmrf(dir2);
}
END_TEST

/* es_close with a WAL PUT hanging: bounded by the cancel. */
START_TEST(test_close_bounded) {
  wrap_store w = {0};
  es_objstore *inner = NULL;
  es_replica *inner_rep = NULL;
  es_replica *rep = wrap(&w, &inner, &inner_rep);
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "tier-close");
  es_db *db = open_tier(dir, rep, ES_DURABILITY_S3);
  atomic_store(&w.hang, 1);
  ck_assert_int_eq(append_retry(db, 0, 0, 1, 1), 0); /* not confirmed */
  int64_t t0 = es__clock_mono_us();
  ck_assert_int_eq(es_close(db), ES_OK);
  int64_t dt = es__clock_mono_us() - t0;
  fprintf(stderr, "es_close with a hanging PUT: %lld ms\n",
          (long long)(dt / 1000));
  ck_assert_int_lt(dt, 2000000);
  es_replica_free(rep);
  es_replica_free(inner_rep);
  ut_rmrf(dir);
}
END_TEST

/* One cycle with the k-th request failing; returns the requests made. */
static unsigned long fault_cycle(unsigned long k, int kind) {
  es_replica *rep = NULL;
  es_objstore *os = NULL;
  ck_assert_int_eq(es__objmem_create(3, 500 + k, &os), ES_OK);
  ck_assert_int_eq(es__replica_wrap(os, 1, &rep), ES_OK);
  es__objmem_fail_at(os, k, kind, ES_EREMOTE);
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "tier-fault");
  /* odd k: a window smaller than a frame, so that every chunk is read
   * back from the WAL files (walship.c, 4) */
  g_cfg = (tier_cfg){.window = k % 2 ? 64 : 0};
  es_db *db = open_tier(dir, rep, ES_DURABILITY_S3);
  append_all(db, 0, 20);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  int rc = es_replica_drain(db, 10000000);
  ck_assert_msg(rc == ES_OK, "k=%lu drain: %s", k, es_errdetail());
  append_all(db, 20, 20);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  ck_assert_int_eq(es_compact(db, NULL, NULL, NULL), ES_OK);
  append_all(db, 40, 20); /* only in the WAL (and its chunks) */
  es_walship_stats st;
  ck_assert_int_eq(es_walship_stats_get(db, &st), ES_OK);
  if (k % 2) /* every chunk was read back */
    ck_assert_uint_eq(st.reread_chunks, st.chunks);
  ck_assert_int_eq(es_close(db), ES_OK); /* the node is lost now */
  g_cfg = (tier_cfg){0};
  rc = restore_check(rep, 60);
  if (rc < 0) { /* the fault hit the restore: it says so; again */
    ck_assert_msg(rc == ES_EUNAVAIL || rc == ES_EREMOTE, "k=%lu restore: %s", k,
                  es_errdetail());
    ck_assert_int_eq(restore_check(rep, 60), ES_OK);
  }
  unsigned long n = es__objmem_requests(os);
  ut_rmrf(dir);
  es_replica_free(rep);
  return n;
}

START_TEST(test_fault_loop) {
  int64_t t0 = es__clock_mono_us();
  unsigned long total = fault_cycle(0, ES_OBJMEM_FAIL_TIMEOUT); /* no fault */
  fprintf(stderr, "one cycle: %lld ms\n",
          (long long)((es__clock_mono_us() - t0) / 1000));
  ck_assert_uint_gt(total, 10);
  static const int kinds[] = {ES_OBJMEM_FAIL_TIMEOUT, ES_OBJMEM_FAIL_DROP,
                              ES_OBJMEM_FAIL_STATUS};
  for (unsigned long k = 1; k <= total + 2; k++)
    (void)fault_cycle(k, kinds[k % 3]);
  fprintf(stderr, "tier s3 fault loop: %lu requests per cycle\n", total);
}
END_TEST

/* ---- the backlog on disk (walship.c, 4, 8 and 9) ----------------------- */

typedef struct out_probe {
  uint64_t pending_max, held_max;
  uint32_t spilled_max, degraded_max;
} out_probe;

static void probe(es_db *db, out_probe *p) {
  es_walship_stats st;
  ck_assert_int_eq(es_walship_stats_get(db, &st), ES_OK);
  if (st.pending_bytes > p->pending_max)
    p->pending_max = st.pending_bytes;
  if (st.held_wal_bytes > p->held_max)
    p->held_max = st.held_wal_bytes;
  if (st.spilled_shards > p->spilled_max)
    p->spilled_max = st.spilled_shards;
  if (st.degraded_shards > p->degraded_max)
    p->degraded_max = st.degraded_shards;
}

/* Appends events first..first+n-1 to every tenant during an outage in
 * tier local (each append answered ES_OK, none slow), sealing now and
 * then so that the writer reclaims WAL files the shipper still needs. */
static void outage_load(es_db *db, int first, int n, out_probe *p) {
  for (int b = first; b < first + n; b += 100) {
    int cnt = first + n - b < 100 ? first + n - b : 100;
    for (int t = 0; t < NTENANTS; t++) {
      int64_t t0 = es__clock_mono_us();
      ck_assert_int_eq(append_retry(db, t, b, cnt, 1), cnt);
      ck_assert_int_lt(es__clock_mono_us() - t0, 2000000);
    }
    probe(db, p);
    if ((b / 100) % 5 == 4)
      ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  }
}

/* Waits until every shard shipped everything and holds no WAL file. */
static void wait_drained(es_db *db, es_walship_stats *st) {
  int64_t until = es__clock_mono_us() + 60000000;
  for (;;) {
    ck_assert_int_eq(es_walship_stats_get(db, st), ES_OK);
    if (st->lag_lsn == 0 && st->held_wal_bytes == 0 &&
        st->spilled_shards == 0 && st->degraded_shards == 0)
      return;
    ck_assert_msg(es__clock_mono_us() < until,
                  "not drained: lag %llu, held %llu, spilled %u, degraded %u",
                  (unsigned long long)st->lag_lsn,
                  (unsigned long long)st->held_wal_bytes, st->spilled_shards,
                  st->degraded_shards);
    sleep_ms(20);
  }
}

/* An outage under load in tier local with WAL shipping and a 16 KiB
 * window: every append succeeds at once, memory stays within the window,
 * the backlog lives in WAL files held past their reclaim (or, with
 * backlog_max tiny, is let go to the uploader: degraded, nothing lost);
 * a restart in the middle of it resumes; the store back, the backlog
 * drains (read back from the WAL files) and a restore made only from the
 * store equals the live store. */
static void backlog_case(int64_t backlog_max) {
  es_replica *rep = NULL;
  es_objstore *os = NULL;
  ck_assert_int_eq(es__objmem_create(100, 11, &os), ES_OK);
  ck_assert_int_eq(es__replica_wrap(os, 1, &rep), ES_OK);
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "tier-backlog");
  g_cfg = (tier_cfg){.ship_wal = 1,
                     .window = 16 << 10,
                     .backlog_max = backlog_max,
                     .wal_file_bytes = 4096};
  es_db *db = open_tier(dir, rep, ES_DURABILITY_LOCAL);
  append_all(db, 0, 100);
  es__objmem_fail_every(os, 1, ES_OBJMEM_FAIL_TIMEOUT, 0);
  out_probe p = {0};
  int64_t t0 = es__clock_mono_us();
  outage_load(db, 100, 1900, &p);
  int64_t dt = es__clock_mono_us() - t0;
  es_walship_stats st;
  ck_assert_int_eq(es_walship_stats_get(db, &st), ES_OK);
  fprintf(
      stderr,
      "backlog (bound %lld): 380 appends of 10 events in %lld ms during the "
      "outage; "
      "in memory at most %llu bytes, WAL held at most %llu bytes, "
      "gaps %llu\n",
      (long long)backlog_max, (long long)(dt / 1000),
      (unsigned long long)p.pending_max, (unsigned long long)p.held_max,
      (unsigned long long)st.gaps);
  ck_assert_uint_ge(p.spilled_max, 1);
  /* the window per shard, plus one frame (invariant 4) */
  ck_assert_uint_le(p.pending_max, 2 * ((16 << 10) + (16 << 10)));
  if (backlog_max == 0 || backlog_max > 4096) {
    ck_assert_uint_gt(p.held_max, 0); /* the backlog is in held WAL files */
    ck_assert_uint_eq(st.gaps, 0);
  } else {
    ck_assert_uint_ge(st.gaps, 1); /* past the bound: let go, degraded */
    ck_assert_uint_ge(p.degraded_max, 1);
  }
  es__objmem_fail_every(os, 0, 0, 0); /* the store is back */
  t0 = es__clock_mono_us();
  wait_drained(db, &st);
  fprintf(stderr,
          "backlog (bound %lld): drained in %lld ms, %llu chunks "
          "(%llu bytes) read back from the WAL files\n",
          (long long)backlog_max,
          (long long)((es__clock_mono_us() - t0) / 1000),
          (unsigned long long)st.reread_chunks,
          (unsigned long long)st.reread_bytes);
  if (backlog_max == 0 || backlog_max > 4096)
    ck_assert_uint_gt(st.reread_chunks, 0);
  ck_assert_uint_eq(st.read_errors, 0);
  /* a second outage, and a restart in the middle of its backlog */
  es__objmem_fail_every(os, 1, ES_OBJMEM_FAIL_TIMEOUT, 0);
  outage_load(db, 2000, 300, &p);
  ck_assert_int_eq(es_close(db), ES_OK);
  db = open_tier(dir, rep, ES_DURABILITY_LOCAL);
  outage_load(db, 2300, 200, &p);
  es__objmem_fail_every(os, 0, 0, 0);
  wait_drained(db, &st);
  append_all(db, 2500, 100); /* and on it goes */
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  ck_assert_int_eq(es_replica_drain(db, 30000000), ES_OK);
  wait_drained(db, &st);
  ck_assert_int_eq(es_close(db), ES_OK);
  g_cfg = (tier_cfg){0};
  ck_assert_int_eq(restore_check(rep, 2600), ES_OK);
  es_replica_free(rep);
  ut_rmrf(dir);
}

START_TEST(test_backlog_on_disk) { backlog_case(0); }
END_TEST

START_TEST(test_backlog_bound) { backlog_case(1); }
END_TEST

/* Per-tenant tiers on one handle in tier local: with the store failing,
 * the tier-s3 tenant's append is ES_EUNAVAIL, the tier-local tenant's
 * ES_OK at once; back to the default, the first tenant never waits. */
START_TEST(test_tenant_tiers) {
  wrap_store w = {0};
  es_objstore *inner = NULL;
  es_replica *inner_rep = NULL;
  es_replica *rep = wrap(&w, &inner, &inner_rep);
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "tier-tenant");
  es_db *plain = open_tier(dir, rep, ES_DURABILITY_LOCAL);
  ck_assert_int_eq(
      es_tenant_durability_set(plain, TENANTS[0], ES_DURABILITY_S3),
      ES_EINVAL); /* no WAL shipping */
  es__error_clear();
  ck_assert_int_eq(es_close(plain), ES_OK);
  g_cfg = (tier_cfg){.ship_wal = 1};
  es_db *db = open_tier(dir, rep, ES_DURABILITY_LOCAL);
  ck_assert_int_eq(es_tenant_durability_set(db, TENANTS[0], ES_DURABILITY_S3),
                   ES_OK);
  ck_assert_int_lt(es_tenant_durability_set(db, "bad/id", ES_DURABILITY_S3), 0);
  ck_assert_int_eq(es_tenant_durability_set(db, TENANTS[1], 7), ES_EINVAL);
  es__error_clear();
  ck_assert_int_eq(append_retry(db, 0, 0, 10, 1), 10);
  ck_assert_int_eq(append_retry(db, 1, 0, 10, 1), 10);
  unsigned long puts0 = atomic_load(&w.wal_puts);
  ck_assert_uint_gt(puts0, 0);
  atomic_store(&w.delay_ms, 300); /* each WAL PUT takes 300 ms */
  int64_t t0 = es__clock_mono_us();
  ck_assert_int_eq(append_retry(db, 0, 10, 1, 1), 1); /* waits for its PUT */
  int64_t s3_us = es__clock_mono_us() - t0;
  t0 = es__clock_mono_us();
  ck_assert_int_eq(append_retry(db, 1, 10, 1, 1), 1); /* does not */
  int64_t local_us = es__clock_mono_us() - t0;
  ck_assert_int_ge(s3_us, 300000);
  ck_assert_int_lt(local_us, 250000);
  atomic_store(&w.hang, 1); /* the store stops answering */
  sleep_ms(50);
  ck_assert_int_eq(append_retry(db, 0, 11, 1, 1), 0); /* ES_EUNAVAIL */
  t0 = es__clock_mono_us();
  ck_assert_int_eq(append_retry(db, 1, 11, 1, 1), 1);
  ck_assert_int_lt(es__clock_mono_us() - t0, 250000);
  ck_assert_int_eq(
      es_tenant_durability_set(db, TENANTS[0], ES_DURABILITY_DEFAULT), ES_OK);
  t0 = es__clock_mono_us();
  ck_assert_int_eq(append_retry(db, 0, 12, 1, 1), 1); /* local now */
  ck_assert_int_lt(es__clock_mono_us() - t0, 250000);
  atomic_store(&w.hang, 0);
  atomic_store(&w.delay_ms, 0);
  ck_assert_int_eq(es_close(db), ES_OK);
  g_cfg = (tier_cfg){0};
  es_replica_free(rep);
  es_replica_free(inner_rep);
  ut_rmrf(dir);
}
END_TEST

/* Chunk keys: the format and what is refused. */
START_TEST(test_chunk_keys) {
  char key[128];
  ck_assert_int_eq(es__walship_key(key, sizeof(key), 3, 1, 0x2a), ES_OK);
  ck_assert_str_eq(key, "wal/3/0000000000000001-000000000000002a");
  uint32_t s = 0;
  uint64_t f = 0, l = 0;
  ck_assert_int_eq(es__walship_parse_key(key, &s, &f, &l), ES_OK);
  ck_assert_uint_eq(s, 3);
  ck_assert_uint_eq(f, 1);
  ck_assert_uint_eq(l, 0x2a);
  static const char *const bad[] = {
      "wal/3/0000000000000002-0000000000000001", /* last < first */
      "wal/3/0000000000000001-000000000000002a.tmp", "wal/3/1-2",
      "wal/x/0000000000000001-000000000000002a",
      "wal/3/0000000000000000-0000000000000001"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(es__walship_parse_key(bad[i], &s, &f, &l) == ES_EINVAL, "%s",
                  bad[i]);
  es__error_clear();
}
END_TEST

static Suite *tier_suite(void) {
  Suite *s = suite_create("tier");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, test_chunk_keys);
  tcase_add_test(tc, test_ack_means_stored);
  tcase_add_test(tc, test_outage);
  tcase_add_test(tc, test_pipeline);
  tcase_add_test(tc, test_close_bounded);
  tcase_add_test(tc, test_fault_loop);
  suite_add_tcase(s, tc);
  TCase *bl = tcase_create("backlog");
  tcase_set_timeout(bl, 120);
  tcase_add_test(bl, test_backlog_on_disk);
  tcase_add_test(bl, test_backlog_bound);
  tcase_add_test(bl, test_tenant_tiers);
  suite_add_tcase(s, bl);
  return s;
}

int main(void) { return ut_main(tier_suite()); }
