/*
 * test_cluster.c -- tenant leases (lib/replicate/lease.c) and cluster
 * takeover (lib/replicate/cluster.c) on the in-memory object store, with
 * its k-th-request fault injection.
 *
 *  - lease_codec: the lease object round-trips; malformed ones are refused.
 *  - lease_protocol: create-only first lease, a second node refused until
 *    expiry + skew, generations grow, the lost holder's renewal refused,
 *    ask / hand-over / release.
 *  - lease_fault_loop: a scripted takeover (A takes, renews; B asks; A
 *    sees it and releases; B takes; A's late renewal) with the k-th
 *    request failing (timeout, dropped connection applied or not, a
 *    permanent refusal) for every k: no two successful acquires share a
 *    generation, generations grow, A never renews after B took it, and the
 *    lease ends with B.
 *  - takeover_fence: node A appends and uploads; B takes the tenant over
 *    after A's lease expired (A paused: its threads stopped); A keeps
 *    appending and flushing: its uploader publishes nothing (the fence) and
 *    A no longer owns the tenant; B's appends are published; a restore
 *    holds A's events uploaded before the takeover and B's, once each.
 *  - takeover_fault_loop: A hands the tenant over (es_cluster_release)
 *    and B takes it, with the k-th request of the store failing for every
 *    k over the whole hand-over: B always ends up holding the tenant with
 *    every one of A's events exactly once.
 *  - takeover_replay: tier s3; A dies (SIGKILL: renewals and appends
 *    stop) with 40 acknowledged events only in its WAL chunks, which are
 *    keyed wal/A/...; B takes over, replays them, stores SDK retries of
 *    some once; B dies with its replayed and own events only in its
 *    chunks; C takes over from B: every event exactly once on each.
 *    es_restore of the bucket (one tenant after A's death, all after
 *    B's) holds every acknowledged event exactly once too: the manifest's
 *    segments and the dead node's chunks above it.
 *  - takeover_replay_fault_loop: the same death and takeover with the
 *    k-th request failing (each kind) for every k up to the takeover's
 *    request count: every acknowledged event exactly once.  A's tail is
 *    four records in four chunks, read in parallel.
 *  - takeover_many: tier s3; A holds six tenants (both shards) and dies
 *    with events of each only in its chunks; B is asked for all six at
 *    once: it takes them over concurrently, reads each chunk once for the
 *    tenants sharing a shard (the chunk cache answers the others), and
 *    holds every acknowledged event of each tenant exactly once.
 *  - chunk_gc: A dies holding two tenants of one shard; B takes one over:
 *    A's chunks stay (the other needs them; a restore still has all its
 *    events); B takes the other: A's chunks are deleted, and B and a
 *    restore of the bucket hold every event of both exactly once.
 *  - chunk_gc_faults (test case gc_faults, meson test cluster-gc-faults):
 *    the same with the k-th request failing (each kind), and every 3rd
 *    and 5th: the same outcome.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../unit/unit.h"
#include "api.h"
#include "base/clock.h"
#include "base/mem.h"
#include "replicate/lease.h"
#include "replicate/objmem.h"
#include "replicate/replicate.h"

#define T "acme"

static const es_lease_clock CLK = {.ttl_us = 1000, .skew_us = 100};

START_TEST(test_lease_codec) {
  es_lease l, d;
  memset(&l, 0, sizeof(l));
  memset(&d, 0, sizeof(d));
  l.gen = 42;
  l.expires_us = 1700000000000000;
  strcpy(l.owner, "node-1.a_b");
  char buf[ES_LEASE_BYTES_MAX + 1];
  size_t len = 0;
  ck_assert_int_eq(es__lease_encode(&l, buf, sizeof(buf), &len), ES_OK);
  ck_assert_int_eq(es__lease_decode("t", (uint8_t *)buf, len, &d), ES_OK);
  ck_assert_uint_eq(d.gen, 42);
  ck_assert_int_eq(d.expires_us, l.expires_us);
  ck_assert_str_eq(d.owner, l.owner);
  ck_assert_str_eq(d.want, "");
  strcpy(l.want, "n2");
  ck_assert_int_eq(es__lease_encode(&l, buf, sizeof(buf), &len), ES_OK);
  ck_assert_int_eq(es__lease_decode("t", (uint8_t *)buf, len, &d), ES_OK);
  ck_assert_str_eq(d.want, "n2");
  static const char *const bad[] = {
      "",
      "eslease 1 1 0 a -",                      /* no newline */
      "eslease 2 1 0 a -\n",                    /* version */
      "eslease 1 0 0 a -\n",                    /* generation 0 */
      "eslease 1 01 0 a -\n",                   /* leading zero */
      "eslease 1 1 0 a/b -\n",                  /* node name */
      "eslease 1 1 0 a - x\n",                  /* extra field */
      "eslease 1 1 0 a\n",                      /* missing field */
      "eslease 1 1 -5 a -\n",                   /* sign */
      "eslease 1  1 0 a -\n",                   /* empty field */
      "eslease 1 99999999999999999999 0 a -\n", /* too long */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(es__lease_decode("t", (const uint8_t *)bad[i], strlen(bad[i]),
                                   &d) == ES_ECORRUPT,
                  "accepted %s", bad[i]);
  ck_assert_int_eq(es__lease_node_check("ok.node-1"), ES_OK);
  ck_assert_int_eq(es__lease_node_check(""), ES_EINVAL);
  ck_assert_int_eq(es__lease_node_check("a b"), ES_EINVAL);
}
END_TEST

START_TEST(test_lease_protocol) {
  es_objstore *os = NULL;
  ck_assert_int_eq(es__objmem_create(3, 1, &os), ES_OK);
  es_lease a, b, r;
  ck_assert_int_eq(es__lease_read(os, T, &r), ES_OK);
  ck_assert_uint_eq(r.gen, 0);
  ck_assert_int_eq(es__lease_acquire(os, T, "A", 10000, &CLK, &a), ES_OK);
  ck_assert_uint_eq(a.gen, 1);
  /* B is refused until A's expiry plus the skew */
  ck_assert_int_eq(es__lease_acquire(os, T, "B", 11000, &CLK, &b), ES_EBUSY);
  ck_assert_str_eq(b.owner, "A");
  ck_assert_int_eq(es__lease_acquire(os, T, "B", 11100, &CLK, &b), ES_EBUSY);
  ck_assert_int_eq(es__lease_renew(os, T, &a, 10500, &CLK), ES_OK);
  ck_assert_int_eq(es__lease_acquire(os, T, "B", 11200, &CLK, &b), ES_EBUSY);
  ck_assert_int_eq(es__lease_acquire(os, T, "B", 11601, &CLK, &b), ES_OK);
  ck_assert_uint_eq(b.gen, 2);
  /* A's renewal is refused: lost */
  ck_assert_int_eq(es__lease_renew(os, T, &a, 11700, &CLK), ES_ECONFLICT);
  ck_assert_uint_eq(a.gen, 1);
  /* A asks; B's renewal sees it; B releases; A takes at once */
  ck_assert_int_eq(es__lease_read(os, T, &r), ES_OK);
  ck_assert_int_eq(es__lease_ask(os, T, &r, "A"), ES_OK);
  ck_assert_int_eq(es__lease_renew(os, T, &b, 11800, &CLK), ES_OK);
  ck_assert_str_eq(b.want, "A");
  ck_assert_int_eq(es__lease_release(os, T, &b), ES_OK);
  ck_assert_int_eq(es__lease_acquire(os, T, "A", 11900, &CLK, &a), ES_OK);
  ck_assert_uint_eq(a.gen, 3);
  ck_assert_str_eq(a.want, "");
  /* a release of a lease lost is not an error and changes nothing */
  ck_assert_int_eq(es__lease_release(os, T, &b), ES_OK);
  ck_assert_int_eq(es__lease_read(os, T, &r), ES_OK);
  ck_assert_str_eq(r.owner, "A");
  ck_assert_uint_eq(r.gen, 3);
  ck_assert_int_ne(r.expires_us, 0);
  /* the same node takes its own lease again: a new generation */
  ck_assert_int_eq(es__lease_acquire(os, T, "A", 12000, &CLK, &a), ES_OK);
  ck_assert_uint_eq(a.gen, 4);
  es__objstore_destroy(os);
}
END_TEST

/* Retries a step that may fail transiently (or in doubt) until it
 * answers something else; returns that. */
#define RETRY(expr)                                                            \
  ({                                                                           \
    int rc_ = ES_EUNAVAIL;                                                     \
    for (int i_ = 0; i_ < 20 && es__objstore_transient(rc_); i_++)             \
      rc_ = (expr);                                                            \
    rc_;                                                                       \
  })

START_TEST(test_lease_fault_loop) {
  static const int kinds[] = {ES_OBJMEM_FAIL_TIMEOUT, ES_OBJMEM_FAIL_DROP,
                              ES_OBJMEM_FAIL_STATUS};
  int iterations = 0, hits = 0;
  for (size_t kind = 0; kind < 3; kind++)
    for (unsigned long k = 1; k <= 24; k++) {
      es_objstore *os = NULL;
      ck_assert_int_eq(es__objmem_create(3, k * 7 + kind, &os), ES_OK);
      es__objmem_fail_at(os, k, kinds[kind], ES_EREMOTE);
      es_lease a, b, r;
      memset(&a, 0, sizeof(a));
      memset(&b, 0, sizeof(b));
      uint64_t last_gen = 0;
      int64_t now = 100000;
      /* A takes (a permanent failure: it tries again) */
      int rc = RETRY(es__lease_acquire(os, T, "A", now, &CLK, &a));
      if (rc == ES_EREMOTE)
        rc = RETRY(es__lease_acquire(os, T, "A", now, &CLK, &a));
      ck_assert_int_eq(rc, ES_OK);
      ck_assert_uint_gt(a.gen, last_gen);
      last_gen = a.gen;
      now += 300;
      rc = RETRY(es__lease_renew(os, T, &a, now, &CLK));
      ck_assert(rc == ES_OK || rc == ES_EREMOTE);
      /* B asks while A holds it */
      rc = RETRY(es__lease_read(os, T, &r));
      if (rc == ES_EREMOTE)
        rc = RETRY(es__lease_read(os, T, &r));
      ck_assert_int_eq(rc, ES_OK);
      ck_assert_str_eq(r.owner, "A");
      ck_assert_uint_eq(r.gen, a.gen);
      rc = RETRY(es__lease_acquire(os, T, "B", now, &CLK, &b));
      ck_assert_msg(rc == ES_EBUSY || rc == ES_EREMOTE,
                    "k %lu: B took a held lease (%d)", k, rc);
      rc = RETRY(es__lease_ask(os, T, &r, "B"));
      ck_assert(rc == ES_OK || rc == ES_EREMOTE || rc == ES_ECONFLICT);
      int asked = rc == ES_OK;
      /* A renews: sees the ask when it went through, releases */
      now += 300;
      rc = RETRY(es__lease_renew(os, T, &a, now, &CLK));
      if (rc == ES_EREMOTE)
        rc = RETRY(es__lease_renew(os, T, &a, now, &CLK));
      ck_assert_msg(rc == ES_OK, "k %lu: A lost an unexpired lease (%d: %s)", k,
                    rc, es_errdetail());
      if (asked)
        ck_assert_str_eq(a.want, "B");
      rc = RETRY(es__lease_release(os, T, &a));
      int released = rc == ES_OK;
      ck_assert(rc == ES_OK || rc == ES_EREMOTE);
      /* B takes: at once after a release, else after expiry + skew */
      if (!released)
        now += CLK.ttl_us + CLK.skew_us + 1;
      rc = RETRY(es__lease_acquire(os, T, "B", now, &CLK, &b));
      if (rc == ES_EREMOTE)
        rc = RETRY(es__lease_acquire(os, T, "B", now, &CLK, &b));
      ck_assert_msg(rc == ES_OK, "k %lu kind %zu: B could not take (%d: %s)", k,
                    kind, rc, es_errdetail());
      ck_assert_uint_gt(b.gen, last_gen);
      /* A's late renewal must fail: it lost the lease */
      es_lease late = a;
      late.expires_us = released ? late.expires_us : a.expires_us;
      rc = RETRY(es__lease_renew(os, T, &late, now + 1, &CLK));
      ck_assert_msg(rc != ES_OK, "k %lu: A renewed a lease B holds", k);
      rc = RETRY(es__lease_read(os, T, &r));
      if (rc == ES_EREMOTE)
        rc = RETRY(es__lease_read(os, T, &r));
      ck_assert_int_eq(rc, ES_OK);
      ck_assert_str_eq(r.owner, "B");
      ck_assert_uint_eq(r.gen, b.gen);
      hits += es__objmem_failed(os) > 0; /* k within the script */
      es__objstore_destroy(os);
      iterations++;
    }
  ck_assert_int_eq(iterations, 72);
  ck_assert_int_ge(hits, 45); /* the script makes ~18 requests */
}
END_TEST

/* --- takeover on real stores ---------------------------------------------- */

typedef struct node {
  char dir[4096];
  es_replica *rep;
  es_cluster *cl;
  es_db *db;
} node;

static void node_up_tier(node *n, es_objstore *os, const char *name,
                         int durability) {
  ut_tmpdir(n->dir, sizeof(n->dir), name);
  ck_assert_int_eq(es__replica_wrap(os, 0, &n->rep), ES_OK);
  es_cluster_config cc;
  es_cluster_config_init(&cc);
  cc.node = name;
  cc.lease_ttl_us = durability == ES_DURABILITY_S3 ? 300000 : 600000;
  cc.clock_skew_us = durability == ES_DURABILITY_S3 ? 50000 : 100000;
  ck_assert_int_eq(es_cluster_new(n->rep, &cc, &n->cl), ES_OK);
  es_options o;
  es_options_init(&o);
  o.data_dir = n->dir;
  o.shards = 2;
  o.sync_mode = ES_SYNC_NONE;
  o.replica = n->rep;
  o.replica_interval_us = 5000;
  o.wal_file_bytes = 1 << 20;
  o.durability = durability;
  o.s3_ack_timeout_us = 2000000;
  ck_assert_msg(es_open(&o, &n->db) == ES_OK, "%s", es_errdetail());
  ck_assert_int_eq(es_cluster_start(n->cl, n->db), ES_OK);
}

static void node_up(node *n, es_objstore *os, const char *name) {
  node_up_tier(n, os, name, ES_DURABILITY_LOCAL);
}

/* What a SIGKILL leaves of a node for the others: its renewals stop, its
 * appends stop; its files stay (es_close later, for the test's sake). */
static void node_die(node *n) { es_cluster_stop(n->cl); }

static void node_down(node *n) {
  es_cluster_stop(n->cl);
  ck_assert_int_eq(es_close(n->db), ES_OK);
  es_cluster_free(n->cl);
  es_replica_free(n->rep);
  ut_rmrf(n->dir);
}

/* Waits until the node admits the tenant (a takeover); returns the
 * microseconds it took. */
static int64_t admit_wait(node *n, int64_t timeout_us) {
  int64_t t0 = es__clock_mono_us();
  for (;;) {
    int rc = es_cluster_admit(n->cl, T);
    if (rc == ES_OK)
      return es__clock_mono_us() - t0;
    ck_assert_msg(rc == ES_EUNAVAIL, "admit: %d %s", rc, es_errdetail());
    ck_assert_msg(es__clock_mono_us() - t0 < timeout_us,
                  "no takeover within %lld ms", (long long)(timeout_us / 1000));
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
}

static void append_range(es_db *db, int first, int n);
static void append_batch(es_db *db, int first, int n);
static void count_ids(es_db *db, int *seen, int limit);
static void restore_count(es_objstore *os, int *seen, int limit);
static void restore_count_all(es_objstore *os, int *seen, int limit);

typedef struct key_count {
  int mine, single, other;
  const char *node;
} key_count;

static int key_count_one(void *ud, const char *key, const es_objinfo *info) {
  key_count *kc = ud;
  (void)info;
  char node[ES_LEASE_NODE_MAX + 1];
  uint32_t shard = 0;
  uint64_t first = 0, last = 0;
  ck_assert_msg(es__walship_parse_node_key(key, node, &shard, &first, &last) ==
                    ES_OK,
                "%s", key);
  if (!node[0])
    kc->single++;
  else if (strcmp(node, kc->node) == 0)
    kc->mine++;
  else
    kc->other++;
  return 0;
}

/* Appends events [first, first + n) on node n (tier s3: acknowledged =
 * in its chunks), counts every event on a node that took over, and a
 * chain of two takeovers after deaths. */
static void replay_chain(es_objstore *os, int64_t *took_b, int64_t *took_c) {
  node a, b, c;
  node_up_tier(&a, os, "A", ES_DURABILITY_S3);
  node_up_tier(&b, os, "B", ES_DURABILITY_S3);
  admit_wait(&a, 5000000);
  append_range(a.db, 0, 60);
  ck_assert_int_eq(es_flush(a.db, T), ES_OK);
  ck_assert_int_eq(es_replica_drain(a.db, 5000000), ES_OK);
  append_range(a.db, 60, 40); /* only in A's WAL chunks */
  key_count kc = {.node = "A"};
  ck_assert_int_eq(os->list(os, "wal/", NULL, key_count_one, &kc), ES_OK);
  ck_assert_int_gt(kc.mine, 0);
  ck_assert_int_eq(kc.single + kc.other, 0);
  node_die(&a);
  /* esctl restore of the bucket now: every acknowledged event, from the
   * manifest and A's chunks (restore.c, 7) */
  int seen_r[200] = {0};
  restore_count(os, seen_r, 200);
  for (int i = 0; i < 200; i++)
    ck_assert_msg(seen_r[i] == (i < 100),
                  "restore after A: event %d seen %d "
                  "times",
                  i, seen_r[i]);
  *took_b = admit_wait(&b, 10000000);
  append_range(b.db, 100, 10);
  append_range(b.db, 55, 10); /* retries of A's: stored once */
  int seen[200] = {0};
  count_ids(b.db, seen, 200);
  for (int i = 0; i < 200; i++)
    ck_assert_msg(seen[i] == (i < 110), "B: event %d seen %d times", i,
                  seen[i]);
  /* B dies too, its 40 replayed and 10 own events in its chunks only */
  node_die(&b);
  int seen_rb[200] = {0}; /* B's manifest and chunks, all tenants */
  restore_count_all(os, seen_rb, 200);
  for (int i = 0; i < 200; i++)
    ck_assert_msg(seen_rb[i] == (i < 110),
                  "restore after B: event %d seen "
                  "%d times",
                  i, seen_rb[i]);
  node_up_tier(&c, os, "C", ES_DURABILITY_S3);
  *took_c = admit_wait(&c, 10000000);
  int seen_c[200] = {0};
  count_ids(c.db, seen_c, 200);
  for (int i = 0; i < 200; i++)
    ck_assert_msg(seen_c[i] == (i < 110), "C: event %d seen %d times", i,
                  seen_c[i]);
  node_down(&a);
  node_down(&b);
  node_down(&c);
}

START_TEST(test_takeover_replay) {
  es_objstore *os = NULL;
  ck_assert_int_eq(es__objmem_create(3, 11, &os), ES_OK);
  int64_t b = 0, c = 0;
  replay_chain(os, &b, &c);
  fprintf(stderr, "takeover with replay: B %lld ms, C %lld ms\n",
          (long long)(b / 1000), (long long)(c / 1000));
  es__objstore_destroy(os);
}
END_TEST

/* Events [first, first + n) in one es_append (one WAL record). */
static void append_batch(es_db *db, int first, int n) {
  es_event ev[64];
  char mid[64][32];
  ck_assert_int_le(n, 64);
  for (int i = 0; i < n; i++) {
    snprintf(mid[i], sizeof(mid[i]), "m%06d", first + i);
    ev[i] =
        (es_event){.ts_us = 1700000000000000LL + (int64_t)(first + i) * 1000000,
                   .type = ES_TYPE_TRACK,
                   .event = "Buy",
                   .message_id = mid[i],
                   .anonymous_id = "v"};
  }
  ck_assert_msg(es_append(db, T, ev, (size_t)n, NULL) == ES_OK, "%s",
                es_errdetail());
}

static void append_range(es_db *db, int first, int n) {
  for (int i = first; i < first + n; i++) {
    char mid[32];
    snprintf(mid, sizeof(mid), "m%06d", i);
    es_event ev = {.ts_us = 1700000000000000LL + (int64_t)i * 1000000,
                   .type = ES_TYPE_TRACK,
                   .event = "Buy",
                   .message_id = mid,
                   .anonymous_id = "v"};
    ck_assert_msg(es_append(db, T, &ev, 1, NULL) == ES_OK, "%s",
                  es_errdetail());
  }
}

/* The tenant's events by number in db: seen[i] counts event i. */
static void count_tenant(es_db *db, const char *tenant, int *seen, int limit) {
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = tenant;
  spec.fields = ES_FIELD_MESSAGE_ID;
  es_cursor *cur = NULL;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  es_event ev;
  int rc;
  while ((rc = es_cursor_next(cur, &ev)) == 1) {
    int id = atoi(ev.message_id + 1);
    ck_assert_msg(id >= 0 && id < limit, "invented event %d", id);
    seen[id]++;
  }
  ck_assert_int_eq(rc, 0);
  es_cursor_close(cur);
}

static void count_ids(es_db *db, int *seen, int limit) {
  count_tenant(db, T, seen, limit);
}

/* Restores the replica's tenant (or, with all, every tenant) into a new
 * store and counts its events. */
static void restore_count_how(es_objstore *os, int *seen, int limit, int all) {
  es_replica *rep = NULL;
  ck_assert_int_eq(es__replica_wrap(os, 0, &rep), ES_OK);
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "restored");
  const char *one[1] = {T};
  ck_assert_msg(
      es_restore(rep, dir, all ? NULL : one, all ? 0 : 1, NULL, NULL) == ES_OK,
      "%s", es_errdetail());
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.sync_mode = ES_SYNC_NONE;
  es_db *db = NULL;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  count_ids(db, seen, limit);
  ck_assert_int_eq(es_close(db), ES_OK);
  es_replica_free(rep);
  ut_rmrf(dir);
}

static void restore_count(es_objstore *os, int *seen, int limit) {
  restore_count_how(os, seen, limit, 0);
}

static void restore_count_all(es_objstore *os, int *seen, int limit) {
  restore_count_how(os, seen, limit, 1);
}

/* A shard's chunks in key order: each one's key, first and last LSN. */
typedef struct chunk_list {
  char key[400][96];
  uint64_t first[400], last[400];
  uint32_t shard;
  int n;
} chunk_list;

static int chunk_list_one(void *ud, const char *key, const es_objinfo *info) {
  chunk_list *cl = ud;
  (void)info;
  char node[ES_LEASE_NODE_MAX + 1];
  ck_assert_int_lt(cl->n, 400);
  ck_assert_int_eq(es__walship_parse_node_key(key, node, &cl->shard,
                                              &cl->first[cl->n],
                                              &cl->last[cl->n]),
                   ES_OK);
  snprintf(cl->key[cl->n++], sizeof(cl->key[0]), "%s", key);
  return 0;
}

typedef struct lsn_list {
  uint64_t lsn[400];
  int n;
} lsn_list;

static int lsn_list_one(void *ud, uint64_t lsn, const es_wal_rec *rec) {
  lsn_list *l = ud;
  (void)rec;
  ck_assert_int_lt(l->n, 400);
  l->lsn[l->n++] = lsn;
  return 0;
}

/* A takeover's replay lists the old holder's chunks from near its
 * flushed LSN, not from the first (restore.c, rs_chunks_from), and still
 * finds a chunk that starts at or below that LSN and ends above it. */
START_TEST(test_replay_lists_from) {
  es_objstore *os = NULL;
  ck_assert_int_eq(es__objmem_create(3, 23, &os), ES_OK);
  node a;
  node_up_tier(&a, os, "A", ES_DURABILITY_S3);
  admit_wait(&a, 5000000);
  append_range(a.db, 0, 300); /* a chunk each: one appender, tier s3 */
  node_die(&a);
  chunk_list *cl = calloc(1, sizeof(*cl));
  ck_assert_int_eq(os->list(os, "wal/A/", NULL, chunk_list_one, cl), ES_OK);
  ck_assert_int_ge(cl->n, 100);
  /* chunks m and m + 1 become one, which starts at `above` and ends past
   * it: the first chunk after above + 1 is not the one to start from */
  int m = cl->n - 10;
  uint8_t *b1 = NULL, *b2 = NULL;
  size_t n1 = 0, n2 = 0;
  ck_assert_int_eq(os->get(os, cl->key[m], 0, ES_OBJ_TO_END, &b1, &n1, NULL),
                   ES_OK);
  ck_assert_int_eq(
      os->get(os, cl->key[m + 1], 0, ES_OBJ_TO_END, &b2, &n2, NULL), ES_OK);
  uint8_t *both = malloc(n1 + n2);
  memcpy(both, b1, n1);
  memcpy(both + n1, b2, n2);
  char merged[96];
  ck_assert_int_eq(es__walship_node_key(merged, sizeof(merged), "A", cl->shard,
                                        cl->first[m], cl->last[m + 1]),
                   ES_OK);
  ck_assert_int_eq(os->del(os, cl->key[m]), ES_OK);
  ck_assert_int_eq(os->del(os, cl->key[m + 1]), ES_OK);
  ck_assert_int_eq(
      os->put(os, merged, both, n1 + n2, ES_OBJ_PUT_ALWAYS, NULL, NULL), ES_OK);
  uint64_t above = cl->first[m], top = cl->last[cl->n - 1];
  ck_assert_uint_lt(above, cl->last[m + 1]);
  es_replica *rep = NULL;
  ck_assert_int_eq(es__replica_wrap(os, 0, &rep), ES_OK);
  lsn_list got = {0};
  uint64_t chunks = 0;
  es__objmem_fail_at(os, 0, 0, 0); /* counts requests from here */
  ck_assert_int_eq(es__restore_wal_tenant(rep, NULL, "A", cl->shard, T, above,
                                          lsn_list_one, &got, &chunks),
                   ES_OK);
  unsigned long requests = es__objmem_requests(os);
  ck_assert_int_eq(got.n, (int)(top - above)); /* every LSN above, once */
  for (int i = 0; i < got.n; i++)
    ck_assert_uint_eq(got.lsn[i], above + 1 + (uint64_t)i);
  ck_assert_uint_eq(chunks, 9); /* the merged one and the 8 after it */
  /* a listing from the first key alone takes n / 3 pages: here 2
   * probes, a few pages and the 9 GETs */
  ck_assert_uint_lt(requests, (unsigned long)cl->n / 3 / 4);
  /* from LSN 0: every chunk, the listing from the first key */
  lsn_list all = {0};
  ck_assert_int_eq(es__restore_wal_tenant(rep, NULL, "A", cl->shard, T, 0,
                                          lsn_list_one, &all, &chunks),
                   ES_OK);
  ck_assert_int_eq(all.n, (int)(top - cl->first[0] + 1));
  fprintf(stderr, "replay from LSN %llu of %d chunks: %lu requests\n",
          (unsigned long long)above, cl->n, requests);
  es_replica_free(rep);
  es__free(b1);
  es__free(b2);
  free(both);
  free(cl);
  node_down(&a);
  es__objstore_destroy(os);
}
END_TEST

START_TEST(test_takeover_fence) {
  es_objstore *os = NULL;
  ck_assert_int_eq(es__objmem_create(3, 9, &os), ES_OK);
  node a, b;
  node_up(&a, os, "A");
  node_up(&b, os, "B");
  admit_wait(&a, 5000000);
  append_range(a.db, 0, 100);
  ck_assert_int_eq(es_flush(a.db, T), ES_OK);
  ck_assert_int_eq(es_replica_drain(a.db, 5000000), ES_OK);
  /* B asks while A holds it and renews: refused */
  ck_assert_int_eq(es_cluster_admit(b.cl, T), ES_EUNAVAIL);
  /* A pauses (its renewals stop); B takes over after the expiry */
  es_cluster_stop(a.cl);
  int64_t took = admit_wait(&b, 5000000);
  ck_assert_int_ge(took, 300000); /* it had to wait for the expiry */
  ck_assert_int_eq(es_cluster_owns(a.cl, T), 0);
  /* A writes on (as a paused node would when it wakes, without asking):
   * its uploader publishes nothing */
  append_range(a.db, 100, 50);
  ck_assert_int_eq(es_flush(a.db, T), ES_OK);
  ck_assert_int_eq(es_replica_drain(a.db, 300000), ES_EUNAVAIL);
  /* B's events go up */
  append_range(b.db, 200, 10);
  ck_assert_int_eq(es_flush(b.db, T), ES_OK);
  ck_assert_int_eq(es_replica_drain(b.db, 5000000), ES_OK);
  int seen[300] = {0};
  count_ids(b.db, seen, 300);
  int seen_r[300] = {0};
  restore_count(os, seen_r, 300);
  for (int i = 0; i < 300; i++) {
    int want = (i < 100 || (i >= 200 && i < 210)) ? 1 : 0;
    ck_assert_msg(seen[i] == want, "B: event %d seen %d times", i, seen[i]);
    ck_assert_msg(seen_r[i] == want, "restore: event %d seen %d times", i,
                  seen_r[i]);
  }
  node_down(&a);
  node_down(&b);
  es__objstore_destroy(os);
}
END_TEST

START_TEST(test_takeover_fault_loop) {
  static const int kinds[] = {ES_OBJMEM_FAIL_TIMEOUT, ES_OBJMEM_FAIL_DROP,
                              ES_OBJMEM_FAIL_STATUS};
  unsigned long failed = 0;
  for (size_t kind = 0; kind < 3; kind++)
    for (unsigned long k = 1; k <= 30; k += (kind == 0 ? 1 : 2)) {
      es_objstore *os = NULL;
      ck_assert_int_eq(es__objmem_create(3, k, &os), ES_OK);
      node a, b;
      node_up(&a, os, "A");
      node_up(&b, os, "B");
      admit_wait(&a, 5000000);
      append_range(a.db, 0, 60);
      ck_assert_int_eq(es_flush(a.db, T), ES_OK);
      append_range(a.db, 60, 40);
      /* from here on, the k-th request fails: the hand-over and the
       * takeover (A's release, B's lease, listing, restore, claim, its
       * first upload) */
      es__objmem_fail_at(os, k, kinds[kind], ES_EREMOTE);
      int rc = es_cluster_release(a.cl, T, 3000000);
      if (rc != ES_OK) /* A could not hand over: it stops as if dead */
        es_cluster_stop(a.cl);
      admit_wait(&b, 10000000);
      int seen[100] = {0};
      count_ids(b.db, seen, 100);
      for (int i = 0; i < 100; i++)
        ck_assert_msg(seen[i] == (rc == ES_OK || i < 60 ? 1 : seen[i]),
                      "k %lu kind %zu: event %d seen %d times", k, kind, i,
                      seen[i]);
      if (rc == ES_OK) /* a clean hand-over loses nothing */
        for (int i = 0; i < 100; i++)
          ck_assert_int_eq(seen[i], 1);
      else /* A died: what it had uploaded survives, once */
        for (int i = 0; i < 100; i++)
          ck_assert_int_le(seen[i], 1);
      failed += es__objmem_failed(os);
      node_down(&a);
      node_down(&b);
      es__objstore_destroy(os);
    }
  ck_assert_uint_gt(failed, 0);
}
END_TEST

/* A dies with 40 events only in its chunks; B takes over with the k-th
 * request of the store failing, for every k over the whole takeover
 * (lease, restore, the listing and reads of A's chunks, B's appends and
 * their chunks, the claim's put): B ends up holding the tenant with every
 * one of A's acknowledged events exactly once. */
static unsigned long replay_once(unsigned long k, int kind, int *armed_out) {
  es_objstore *os = NULL;
  ck_assert_int_eq(es__objmem_create(3, k + 100, &os), ES_OK);
  node a, b;
  node_up_tier(&a, os, "A", ES_DURABILITY_S3);
  node_up_tier(&b, os, "B", ES_DURABILITY_S3);
  admit_wait(&a, 5000000);
  append_range(a.db, 0, 30);
  ck_assert_int_eq(es_flush(a.db, T), ES_OK);
  ck_assert_int_eq(es_replica_drain(a.db, 5000000), ES_OK);
  for (int i = 0; i < 4; i++) /* four records, four chunks */
    append_batch(a.db, 30 + 5 * i, 5);
  node_die(&a);
  struct timespec ts = {0, 400000000}; /* past A's lease: B takes at once */
  nanosleep(&ts, NULL);
  if (k)
    es__objmem_fail_at(os, k, kind, ES_EREMOTE);
  else
    (void)es__objmem_requests(os);
  unsigned long before = es__objmem_requests(os);
  admit_wait(&b, 15000000);
  unsigned long used = es__objmem_requests(os) - (k ? 0 : before);
  int seen[50] = {0};
  count_ids(b.db, seen, 50);
  for (int i = 0; i < 50; i++)
    ck_assert_msg(seen[i] == 1, "k %lu kind %d: event %d seen %d times", k,
                  kind, i, seen[i]);
  *armed_out = es__objmem_failed(os) > 0;
  node_down(&a);
  node_down(&b);
  es__objstore_destroy(os);
  return used;
}

START_TEST(test_takeover_replay_fault_loop) {
  static const int kinds[] = {ES_OBJMEM_FAIL_TIMEOUT, ES_OBJMEM_FAIL_DROP,
                              ES_OBJMEM_FAIL_STATUS};
  int armed = 0;
  unsigned long n = replay_once(0, 0, &armed); /* requests of a takeover */
  ck_assert_uint_ge(n, 8);
  unsigned long hits = 0, runs = 0;
  for (size_t kind = 0; kind < 3; kind++)
    for (unsigned long k = 1 + kind; k <= n + 1; k += (kind == 0 ? 1 : 3)) {
      replay_once(k, kinds[kind], &armed);
      hits += (unsigned long)armed;
      runs++;
    }
  fprintf(stderr,
          "replay fault loop: %lu requests per takeover, %lu runs, "
          "%lu faults hit\n",
          n, runs, hits);
  /* the takeover's request count varies with background requests
   * (renewals, the shippers' listings): most k must still hit one */
  ck_assert_uint_ge(hits * 4, runs * 3);
}
END_TEST

/* Events [first, first + n) of tenant, one es_append each. */
static void append_tenant(es_db *db, const char *tenant, int first, int n) {
  for (int i = first; i < first + n; i++) {
    char mid[32];
    snprintf(mid, sizeof(mid), "m%06d", i);
    es_event ev = {.ts_us = 1700000000000000LL + (int64_t)i * 1000000,
                   .type = ES_TYPE_TRACK,
                   .event = "Buy",
                   .message_id = mid,
                   .anonymous_id = "v"};
    ck_assert_msg(es_append(db, tenant, &ev, 1, NULL) == ES_OK, "%s",
                  es_errdetail());
  }
}

#define MANY 6

START_TEST(test_takeover_many) {
  es_objstore *os = NULL;
  ck_assert_int_eq(es__objmem_create(3, 13, &os), ES_OK);
  node a, b;
  node_up_tier(&a, os, "A", ES_DURABILITY_S3);
  node_up_tier(&b, os, "B", ES_DURABILITY_S3);
  char names[MANY][16];
  for (int t = 0; t < MANY; t++) {
    snprintf(names[t], sizeof(names[t]), "tenant%d", t);
    int64_t t0 = es__clock_mono_us();
    while (es_cluster_admit(a.cl, names[t]) != ES_OK) {
      ck_assert_int_lt(es__clock_mono_us() - t0, 5000000);
      struct timespec ts = {0, 5000000};
      nanosleep(&ts, NULL);
    }
  }
  /* interleaved, so the tenants of one shard share its chunks */
  for (int round = 0; round < 5; round++)
    for (int t = 0; t < MANY; t++)
      append_tenant(a.db, names[t], round * 4, 4);
  node_die(&a);
  int64_t t0 = es__clock_mono_us();
  int held = 0;
  while (held < MANY) {
    held = 0;
    for (int t = 0; t < MANY; t++) {
      int rc = es_cluster_admit(b.cl, names[t]);
      ck_assert_msg(rc == ES_OK || rc == ES_EUNAVAIL, "admit: %d %s", rc,
                    es_errdetail());
      held += rc == ES_OK;
    }
    ck_assert_msg(es__clock_mono_us() - t0 < 15000000,
                  "%d of %d tenants taken over in 15 s", held, MANY);
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  int64_t took = es__clock_mono_us() - t0;
  uint64_t gets = 0, hits = 0;
  es__cluster_chunk_counts(b.cl, &gets, &hits);
  fprintf(stderr,
          "takeover of %d tenants: all held after %lld ms; %llu chunk GETs, "
          "%llu reads shared\n",
          MANY, (long long)(took / 1000), (unsigned long long)gets,
          (unsigned long long)hits);
  ck_assert_uint_gt(hits, 0); /* at least 3 tenants share a shard */
  for (int t = 0; t < MANY; t++) {
    int seen[20] = {0};
    count_tenant(b.db, names[t], seen, 20);
    for (int i = 0; i < 20; i++)
      ck_assert_msg(seen[i] == 1, "%s: event %d seen %d times", names[t], i,
                    seen[i]);
  }
  node_down(&a);
  node_down(&b);
  es__objstore_destroy(os);
}
END_TEST

static int wal_keys_of(es_objstore *os, const char *node) {
  key_count kc = {.node = node};
  ck_assert_int_eq(os->list(os, "wal/", NULL, key_count_one, &kc), ES_OK);
  return kc.mine;
}

/* Restores every tenant of the bucket into a new store and counts the
 * events of tenant. */
static void restore_tenant_count(es_objstore *os, const char *tenant, int *seen,
                                 int limit) {
  es_replica *rep = NULL;
  ck_assert_int_eq(es__replica_wrap(os, 0, &rep), ES_OK);
  char dir[4096];
  ut_tmpdir(dir, sizeof(dir), "restored");
  ck_assert_msg(es_restore(rep, dir, NULL, 0, NULL, NULL) == ES_OK, "%s",
                es_errdetail());
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.sync_mode = ES_SYNC_NONE;
  es_db *db = NULL;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  count_tenant(db, tenant, seen, limit);
  ck_assert_int_eq(es_close(db), ES_OK);
  es_replica_free(rep);
  ut_rmrf(dir);
}

static void admit_name(node *n, const char *tenant) {
  int64_t t0 = es__clock_mono_us();
  while (es_cluster_admit(n->cl, tenant) != ES_OK) {
    ck_assert_msg(es__clock_mono_us() - t0 < 10000000, "no takeover of %s",
                  tenant);
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
}

static void expect_once(const char *what, const int *seen, int n) {
  for (int i = 0; i < n; i++)
    ck_assert_msg(seen[i] == 1, "%s: event %d seen %d times", what, i, seen[i]);
}

/* A dies holding T and U (one shard) with events of both only in its
 * chunks; B takes T: B's collector keeps A's chunks, which U needs (a
 * restore of the bucket still has every event of U); B takes U: A's
 * chunks are deleted; every event of both is still on B and in a restore
 * of the bucket.  From B's takeover of T on, the store fails as armed:
 * the k-th request (every > 0: every k-th) with kind; 0 none.  Returns
 * whether a fault was injected. */
static int gc_once(unsigned long k, int every, int kind) {
  if (k)
    fprintf(stderr, "chunk collection: %s %lu, kind %d\n",
            every ? "every" : "request", k, kind);
  es_objstore *os = NULL;
  ck_assert_int_eq(es__objmem_create(3, 17 + k, &os), ES_OK);
  node a, b;
  node_up_tier(&a, os, "A", ES_DURABILITY_S3);
  node_up_tier(&b, os, "B", ES_DURABILITY_S3);
  es__cluster_gc_timing(b.cl, 50000, 150000);
  char u[16] = "";
  for (int i = 0; i < 100 && !u[0]; i++) {
    snprintf(u, sizeof(u), "u%d", i);
    if (es__tenant_shard(a.db, u) != es__tenant_shard(a.db, T))
      u[0] = '\0';
  }
  ck_assert(u[0]);
  admit_name(&a, T);
  admit_name(&a, u);
  append_tenant(a.db, T, 0, 20);
  ck_assert_int_eq(es_flush(a.db, T), ES_OK);
  ck_assert_int_eq(es_replica_drain(a.db, 5000000), ES_OK);
  append_tenant(a.db, u, 0, 15);
  append_tenant(a.db, T, 20, 20);
  append_tenant(a.db, u, 15, 15);
  node_die(&a);
  ck_assert_int_gt(wal_keys_of(os, "A"), 0);
  struct timespec ts = {0, 400000000}; /* past A's lease */
  nanosleep(&ts, NULL);
  admit_name(&b, T);
  if (k && every)
    es__objmem_fail_every(os, k, kind, ES_EREMOTE);
  else if (k)
    es__objmem_fail_at(os, k, kind, ES_EREMOTE);
  /* the collector looks: 4 whole passes, or with a fault every k-th
   * request (no pass may end without one) 1 s of failing passes */
  uint64_t passes = es__cluster_gc_passes(b.cl);
  int64_t t0 = es__clock_mono_us();
  while (every ? es__clock_mono_us() - t0 < 1000000
               : es__cluster_gc_passes(b.cl) < passes + 4) {
    ck_assert_msg(es__clock_mono_us() - t0 < 10000000, "no collector pass");
    ts.tv_nsec = 20000000;
    nanosleep(&ts, NULL);
  }
  es__objmem_fail_at(os, 0, 0, 0);           /* the checks read the store */
  ck_assert_int_gt(wal_keys_of(os, "A"), 0); /* U needs them */
  int seen_u[30] = {0};
  restore_tenant_count(os, u, seen_u, 30);
  expect_once("U restored while A's chunks are collected", seen_u, 30);
  if (k && !every) /* the takeover of U and the passes after it */
    es__objmem_fail_at(os, k, kind, ES_EREMOTE);
  admit_name(&b, u);
  if (every) { /* 1 s of failing passes, then let them end (a takeover
                  cannot end with every k-th request failing) */
    es__objmem_fail_every(os, k, kind, ES_EREMOTE);
    ts.tv_sec = 1;
    ts.tv_nsec = 0;
    nanosleep(&ts, NULL);
    ts.tv_sec = 0;
    es__objmem_fail_at(os, 0, 0, 0);
  }
  t0 = es__clock_mono_us();
  while (wal_keys_of(os, "A") > 0) {
    ck_assert_msg(es__clock_mono_us() - t0 < 10000000,
                  "A's chunks not deleted in 10 s");
    ts.tv_nsec = 20000000;
    nanosleep(&ts, NULL);
  }
  es__objmem_fail_at(os, 0, 0, 0);
  int seen_t[40] = {0}, seen_ub[30] = {0}, seen_rt[40] = {0}, seen_ru[30] = {0};
  count_tenant(b.db, T, seen_t, 40);
  count_tenant(b.db, u, seen_ub, 30);
  expect_once("T on B", seen_t, 40);
  expect_once("U on B", seen_ub, 30);
  restore_tenant_count(os, T, seen_rt, 40);
  restore_tenant_count(os, u, seen_ru, 30);
  expect_once("T restored", seen_rt, 40);
  expect_once("U restored", seen_ru, 30);
  int hit = es__objmem_failed(os) > 0;
  node_down(&a);
  node_down(&b);
  es__objstore_destroy(os);
  return hit;
}

START_TEST(test_chunk_gc) { (void)gc_once(0, 0, 0); }
END_TEST

/* The same with the store failing: the k-th request for k = 1..12 of
 * each kind, and every 3rd and every 5th request throughout (so that
 * each of the collector's requests, listings, manifest reads and
 * deletes, fails in some pass): never a chunk U needs deleted, A's all
 * deleted in the end, every event once. */
START_TEST(test_chunk_gc_faults) {
  static const int kinds[] = {ES_OBJMEM_FAIL_TIMEOUT, ES_OBJMEM_FAIL_DROP,
                              ES_OBJMEM_FAIL_STATUS};
  unsigned long runs = 0, hits = 0;
  for (size_t kind = 0; kind < 3; kind++) {
    for (unsigned long k = 1 + kind; k <= 12; k += 3, runs++)
      hits += (unsigned long)gc_once(k, 0, kinds[kind]);
    hits += (unsigned long)gc_once(3, 1, kinds[kind]);
    hits += (unsigned long)gc_once(5, 1, kinds[kind]);
    runs += 2;
  }
  fprintf(stderr, "chunk collection fault loop: %lu runs, %lu faults hit\n",
          runs, hits);
  ck_assert_uint_ge(hits * 4, runs * 3);
}
END_TEST

static Suite *cluster_suite(void) {
  Suite *s = suite_create("cluster");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, test_lease_codec);
  tcase_add_test(tc, test_lease_protocol);
  tcase_add_test(tc, test_lease_fault_loop);
  tcase_add_test(tc, test_takeover_fence);
  tcase_add_test(tc, test_takeover_fault_loop);
  tcase_add_test(tc, test_takeover_replay);
  tcase_add_test(tc, test_replay_lists_from);
  tcase_add_test(tc, test_takeover_replay_fault_loop);
  tcase_add_test(tc, test_takeover_many);
  tcase_add_test(tc, test_chunk_gc);
  suite_add_tcase(s, tc);
  /* its own meson test (CK_RUN_CASE=gc_faults), for its run time */
  TCase *gc = tcase_create("gc_faults");
  tcase_set_timeout(gc, 240);
  tcase_add_test(gc, test_chunk_gc_faults);
  suite_add_tcase(s, gc);
  return s;
}

int main(void) { return ut_main(cluster_suite()); }
