/*
 * test_commit.c -- the commit path (lib/store/commit.c) and the row
 * predicate rewrite (lib/store/rewrite.c), on the memory file system.
 *
 * What must hold:
 *  1. A subscriber hears every generation of a tenant, in order, once,
 *     with the right new and removed files, for flush and compaction, and
 *     hears of WAL files before the WAL reclaim deletes them.
 *  2. A held file (segment, rollup or WAL) stays on disk until its last
 *     release, then goes; queries never see it meanwhile.
 *  3. A power cut between the commit and the removal (files held) leaves
 *     only orphans: the next open deletes them and every named file and
 *     every row is still there.
 *  4. es__rewrite with a predicate dropping some ids leaves exactly the
 *     other rows (scan, query by rollup and by scan agree, es_rollup_rebuild
 *     finds nothing to correct), with a memory bound that makes several
 *     outputs; under a power cut or an EIO at every I/O point of the
 *     rewrite, the reopened store holds all the old rows or exactly the
 *     kept rows, never a mix, nothing else lost.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "eventstore.h"
#include "memvfs.h"
#include "store/commit.h"
#include "store/db.h"
#include "store/rewrite.h"
#include "unit.h"

#define DATA "/data"
#define NBATCH 6
#define PER 8

/* ---- a recording subscriber ------------------------------------------- */

typedef struct rec_ev {
  int wal;
  char tenant[16];
  uint64_t gen;
  int nadded, nremoved;
  char added[8][40];
  uint64_t added_bytes[8];
  char removed[32][40];
} rec_ev;

typedef struct recorder {
  pthread_mutex_t mu;
  es_db *db;
  int hold; /* hold every removed file */
  rec_ev ev[128];
  int n;
  char held[64][2][128]; /* dir, name */
  int nheld;
} recorder;

static void rec_note(recorder *r, int wal, const es_commit_info *info) {
  pthread_mutex_lock(&r->mu);
  ck_assert_int_lt(r->n, 128);
  rec_ev *e = &r->ev[r->n++];
  memset(e, 0, sizeof(*e));
  e->wal = wal;
  snprintf(e->tenant, sizeof(e->tenant), "%s", wal ? "" : info->tenant);
  e->gen = info->generation;
  e->nadded = (int)info->nadded;
  e->nremoved = (int)info->nremoved;
  ck_assert_int_le(info->nadded, 8);
  ck_assert_int_le(info->nremoved, 32);
  for (size_t i = 0; i < info->nadded; i++) {
    strcpy(e->added[i], info->added[i].name);
    e->added_bytes[i] = info->added[i].bytes;
  }
  for (size_t i = 0; i < info->nremoved; i++) {
    strcpy(e->removed[i], info->removed[i].name);
    if (r->hold) {
      ck_assert_int_eq(es__commit_hold(r->db, info->dir, info->removed[i].name),
                       ES_OK);
      ck_assert_int_lt(r->nheld, 64);
      snprintf(r->held[r->nheld][0], 128, "%s", info->dir);
      snprintf(r->held[r->nheld][1], 128, "%s", info->removed[i].name);
      r->nheld++;
    }
  }
  pthread_mutex_unlock(&r->mu);
}

static void rec_committed(void *ud, const es_commit_info *info) {
  rec_note(ud, 0, info);
}
static void rec_wal(void *ud, const es_commit_info *info) {
  rec_note(ud, 1, info);
}
static const es_commit_hooks rec_hooks = {rec_committed, rec_wal};

static int file_exists(es_vfs *vfs, const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  return memvfs_exists(vfs, path);
}

/* ---- the store ----------------------------------------------------------- */

static void make_opts(es_options *o, size_t wal_bytes) {
  es_options_init(o);
  o->data_dir = DATA;
  o->shards = 1;
  o->wal_file_bytes = wal_bytes;
}

/* Event e of batch b: messageId "b<b>-e<e>", user "u<e%4>", anonymous
 * id "a<(b+e)%3>", times increasing with b and e. */
static void batch(es_event *evs, char (*ids)[3][24], int b) {
  memset(evs, 0, PER * sizeof(*evs));
  for (int e = 0; e < PER; e++) {
    snprintf(ids[e][0], 24, "b%d-e%d", b, e);
    snprintf(ids[e][1], 24, "u%d", e % 4);
    snprintf(ids[e][2], 24, "a%d", (b + e) % 3);
    evs[e].ts_us = INT64_C(1760000000000000) + (b * PER + e) * INT64_C(1000000);
    evs[e].type = ES_TYPE_PAGE;
    evs[e].path = e % 2 ? "/pricing" : "/";
    evs[e].message_id = ids[e][0];
    evs[e].user_id = ids[e][1];
    evs[e].anonymous_id = ids[e][2];
  }
}

static void append_batch(es_db *db, const char *tenant, int b) {
  es_event evs[PER];
  char ids[PER][3][24];
  batch(evs, ids, b);
  ck_assert_int_eq(es_append(db, tenant, evs, PER, NULL), ES_OK);
}

/* Waits (up to 5 s) until cond(r) holds: the WAL reclaim runs on the
 * shard's writer thread after a flush. */
static int wait_for(recorder *r, int (*cond)(recorder *r, void *arg),
                    void *arg) {
  for (int i = 0; i < 500; i++) {
    pthread_mutex_lock(&r->mu);
    int ok = cond(r, arg);
    pthread_mutex_unlock(&r->mu);
    if (ok)
      return 1;
    usleep(10000);
  }
  return 0;
}

static int has_wal_event(recorder *r, void *arg) {
  (void)arg;
  for (int i = 0; i < r->n; i++)
    if (r->ev[i].wal && r->ev[i].nremoved > 0)
      return 1;
  return 0;
}

static int wal_gone(recorder *r, void *arg) {
  es_vfs *vfs = arg;
  for (int i = 0; i < r->n; i++)
    for (int k = 0; r->ev[i].wal && k < r->ev[i].nremoved; k++)
      if (file_exists(vfs, DATA "/wal/0", r->ev[i].removed[k]))
        return 0;
  return 1;
}

static uint64_t count_rows(es_db *db, const char *tenant) {
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = tenant;
  es_cursor *cur = NULL;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  es_event ev;
  uint64_t n = 0;
  int rc;
  while ((rc = es_cursor_next(cur, &ev)) == 1)
    n++;
  ck_assert_int_eq(rc, 0);
  es_cursor_close(cur);
  return n;
}

/* 1: every generation, in order, with its files; WAL files announced. */
START_TEST(test_subscriber_sees_generations) {
  es_vfs *vfs = memvfs_create();
  es_options o;
  make_opts(&o, 4096); /* small WAL files: several to reclaim */
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  recorder r = {.db = db};
  pthread_mutex_init(&r.mu, NULL);
  ck_assert_int_eq(es__commit_subscribe(db, &rec_hooks, &r), ES_OK);
  for (int b = 0; b < 3; b++) {
    for (int k = 0; k < 16; k++) /* several frames: the WAL rolls over */
      append_batch(db, "ta", b * 16 + k);
    ck_assert_int_eq(es_flush(db, "ta"), ES_OK);
  }
  int seen_wal = wait_for(&r, has_wal_event, NULL);
  ck_assert_msg(seen_wal, "no WAL reclaim announced");
  ck_assert_msg(wait_for(&r, wal_gone, vfs), "announced WAL files not gone");
  es_compact_options co;
  es_compact_options_init(&co);
  es_compact_report rep;
  ck_assert_int_eq(es_compact(db, "ta", &co, &rep), ES_OK);
  ck_assert_uint_eq(rep.segments_in, 3);
  ck_assert_uint_eq(rep.segments_out, 1);
  /* the tenant's generations: 3 flushes then the compaction */
  uint64_t want = 1;
  char flushed[3][40];
  pthread_mutex_lock(&r.mu);
  for (int i = 0; i < r.n; i++) {
    rec_ev *e = &r.ev[i];
    if (e->wal) {
      for (int k = 0; k < e->nremoved; k++)
        ck_assert_ptr_nonnull(strstr(e->removed[k], ".wal"));
      continue;
    }
    ck_assert_str_eq(e->tenant, "ta");
    ck_assert_uint_eq(e->gen, want);
    ck_assert_int_eq(e->nadded, 2);
    ck_assert_ptr_nonnull(strstr(e->added[0], ".seg"));
    ck_assert_ptr_nonnull(strstr(e->added[1], ".rlp"));
    ck_assert_uint_gt(e->added_bytes[0], 0);
    ck_assert_uint_gt(e->added_bytes[1], 0);
    if (want <= 3) {
      ck_assert_int_eq(e->nremoved, 0);
      strcpy(flushed[want - 1], e->added[0]);
    } else { /* the compaction: the three flushed segments and rollups go */
      ck_assert(file_exists(vfs, DATA "/tenants/ta", e->added[0]));
      ck_assert(file_exists(vfs, DATA "/tenants/ta", e->added[1]));
      ck_assert_int_eq(e->nremoved, 6);
      for (int k = 0; k < 3; k++) {
        ck_assert_str_eq(e->removed[2 * k], flushed[k]);
        ck_assert(!file_exists(vfs, DATA "/tenants/ta", e->removed[2 * k]));
        ck_assert(!file_exists(vfs, DATA "/tenants/ta", e->removed[2 * k + 1]));
      }
    }
    want++;
  }
  pthread_mutex_unlock(&r.mu);
  ck_assert_uint_eq(want, 5);
  ck_assert_uint_eq(es__commit_pending(db), 0);
  es__commit_unsubscribe(db, &rec_hooks, &r);
  ck_assert_int_eq(es_close(db), ES_OK);
  /* the generation is in the MANIFEST: a reopen continues from it */
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  r.n = 0;
  ck_assert_int_eq(es__commit_subscribe(db, &rec_hooks, &r), ES_OK);
  append_batch(db, "ta", 99);
  ck_assert_int_eq(es_flush(db, "ta"), ES_OK);
  pthread_mutex_lock(&r.mu);
  int found = 0;
  for (int i = 0; i < r.n; i++)
    if (!r.ev[i].wal) {
      ck_assert_uint_eq(r.ev[i].gen, 5);
      found++;
    }
  pthread_mutex_unlock(&r.mu);
  ck_assert_int_eq(found, 1);
  ck_assert_uint_eq(count_rows(db, "ta"), 49 * PER);
  ck_assert_int_eq(es_close(db), ES_OK);
  pthread_mutex_destroy(&r.mu);
  memvfs_destroy(vfs);
}
END_TEST

/* Builds NBATCH flushed segments of tenant "ta" and returns the handle
 * with r (holding when hold) subscribed. */
static es_db *open_with_segments(es_vfs *vfs, recorder *r, int hold) {
  es_options o;
  make_opts(&o, 64 << 10);
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  for (int b = 0; b < NBATCH; b++) {
    append_batch(db, "ta", b);
    ck_assert_int_eq(es_flush(db, "ta"), ES_OK);
  }
  memset(r, 0, sizeof(*r));
  pthread_mutex_init(&r->mu, NULL);
  r->db = db;
  r->hold = hold;
  ck_assert_int_eq(es__commit_subscribe(db, &rec_hooks, r), ES_OK);
  return db;
}

/* 2: held files survive until released. */
START_TEST(test_hold_until_release) {
  es_vfs *vfs = memvfs_create();
  recorder r;
  es_db *db = open_with_segments(vfs, &r, 1);
  es_compact_options co;
  es_compact_options_init(&co);
  ck_assert_int_eq(es_compact(db, "ta", &co, NULL), ES_OK);
  pthread_mutex_lock(&r.mu);
  int nheld = r.nheld;
  pthread_mutex_unlock(&r.mu);
  ck_assert_int_eq(nheld, 2 * NBATCH);
  ck_assert_uint_eq(es__commit_pending(db), 2 * NBATCH);
  for (int i = 0; i < nheld; i++)
    ck_assert(file_exists(vfs, r.held[i][0], r.held[i][1]));
  ck_assert_uint_eq(count_rows(db, "ta"), NBATCH * PER); /* no double */
  /* a second hold needs a second release */
  ck_assert_int_eq(es__commit_hold(db, r.held[0][0], r.held[0][1]), ES_OK);
  for (int i = 0; i < nheld; i++) {
    ck_assert_int_eq(es__commit_release(db, r.held[i][0], r.held[i][1]), ES_OK);
    ck_assert_int_eq(file_exists(vfs, r.held[i][0], r.held[i][1]), i == 0);
  }
  ck_assert_int_eq(es__commit_release(db, r.held[0][0], r.held[0][1]), ES_OK);
  ck_assert(!file_exists(vfs, r.held[0][0], r.held[0][1]));
  ck_assert_uint_eq(es__commit_pending(db), 0);
  ck_assert_int_eq(es__commit_release(db, r.held[0][0], r.held[0][1]),
                   ES_ENOTFOUND);
  es__error_clear();
  ck_assert_int_eq(es__commit_hold(db, DATA "/tenants/ta", "nope.seg"),
                   ES_ENOTFOUND);
  es__error_clear();
  ck_assert_uint_eq(count_rows(db, "ta"), NBATCH * PER);
  ck_assert_int_eq(es_close(db), ES_OK);
  pthread_mutex_destroy(&r.mu);
  memvfs_destroy(vfs);
}
END_TEST

static int wal_held(recorder *r, void *arg) {
  (void)arg;
  return r->nheld > 0;
}

/* 2 (WAL): a held WAL file stays until released, then the writer
 * reclaims it. */
START_TEST(test_wal_hold) {
  es_vfs *vfs = memvfs_create();
  es_options o;
  make_opts(&o, 4096);
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  recorder r = {.db = db, .hold = 1};
  pthread_mutex_init(&r.mu, NULL);
  ck_assert_int_eq(es__commit_subscribe(db, &rec_hooks, &r), ES_OK);
  for (int b = 0; b < 40; b++)
    append_batch(db, "tw", b);
  ck_assert_int_eq(es_flush(db, "tw"), ES_OK);
  ck_assert_msg(wait_for(&r, wal_held, NULL), "no WAL file announced");
  usleep(50000);
  pthread_mutex_lock(&r.mu);
  int nheld = r.nheld;
  pthread_mutex_unlock(&r.mu);
  for (int i = 0; i < nheld; i++)
    ck_assert_msg(file_exists(vfs, r.held[i][0], r.held[i][1]), "held %s gone",
                  r.held[i][1]);
  r.hold = 0;
  for (int i = 0; i < nheld; i++)
    ck_assert_int_eq(es__commit_release(db, r.held[i][0], r.held[i][1]), ES_OK);
  ck_assert_msg(wait_for(&r, wal_gone, vfs), "released WAL files not gone");
  ck_assert_int_eq(es_close(db), ES_OK);
  pthread_mutex_destroy(&r.mu);
  memvfs_destroy(vfs);
}
END_TEST

/* Counts the .seg and .rlp files of a tenant. */
static int count_seg(void *ud, const char *name) {
  size_t l = strlen(name);
  if (l > 4 && (!strcmp(name + l - 4, ".seg") || !strcmp(name + l - 4, ".rlp")))
    ++*(int *)ud;
  return 0;
}

/* 3: power cut with removed files held: orphans, cleaned at next open. */
START_TEST(test_crash_between_commit_and_removal) {
  es_vfs *vfs = memvfs_create();
  recorder r;
  es_db *db = open_with_segments(vfs, &r, 1);
  es_compact_options co;
  es_compact_options_init(&co);
  ck_assert_int_eq(es_compact(db, "ta", &co, NULL), ES_OK);
  int files = 0;
  ck_assert_int_eq(vfs->list(vfs, DATA "/tenants/ta", count_seg, &files),
                   ES_OK);
  ck_assert_int_eq(files, 2 * NBATCH + 2); /* the held ones and the output */
  /* the process ends with the files held (its holds die with it), and
   * the power goes */
  ck_assert_int_eq(es_close(db), ES_OK);
  memvfs_crash(vfs);
  es_options o;
  make_opts(&o, 64 << 10);
  es_db *db2 = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db2), ES_OK);
  ck_assert_uint_eq(count_rows(db2, "ta"), NBATCH * PER);
  files = 0;
  ck_assert_int_eq(vfs->list(vfs, DATA "/tenants/ta", count_seg, &files),
                   ES_OK);
  ck_assert_int_eq(files, 2); /* orphans removed, the output kept */
  ck_assert_int_eq(es_close(db2), ES_OK);
  ck_assert_int_eq(es__verify_vfs(vfs, DATA, NULL, NULL), ES_OK);
  pthread_mutex_destroy(&r.mu);
  memvfs_destroy(vfs);
}
END_TEST

/* ---- 4: the rewrite ------------------------------------------------------ */

/* Drops the rows of user u1 or anonymous id a2. */
static int keep_not_erased(void *ud, const es_event *row) {
  (void)ud;
  return !(row->user_id && !strcmp(row->user_id, "u1")) &&
         !(row->anonymous_id && !strcmp(row->anonymous_id, "a2"));
}

static int erased(int b, int e) { return e % 4 == 1 || (b + e) % 3 == 2; }

/* Rewrites every segment of "ta" with keep_not_erased, two inputs per
 * output at most. */
static int rewrite_all(es_db *db, es_tenant *t, es_rewrite_stats *st) {
  pthread_mutex_lock(&t->compact_mu);
  es_tenant_view v;
  ck_assert_int_eq(es__tenant_view(t, &v), ES_OK);
  ck_assert_uint_eq(v.set->n, NBATCH);
  uint64_t two = es__compact_merge_bytes(v.set->segs[0]) +
                 es__compact_merge_bytes(v.set->segs[1]) + 64;
  es_rewrite_spec spec = {.keep = keep_not_erased, .memory_bytes = two};
  int rc = es__rewrite(db, t, v.set->segs, v.set->n, &spec, st);
  es__tenant_view_release(&v);
  pthread_mutex_unlock(&t->compact_mu);
  return rc;
}

/* Builds the store for the rewrite on vfs, closed and durable. */
static void build_store(es_vfs *vfs) {
  es_options o;
  make_opts(&o, 64 << 10);
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  for (int b = 0; b < NBATCH; b++) {
    append_batch(db, "ta", b);
    ck_assert_int_eq(es_flush(db, "ta"), ES_OK);
  }
  append_batch(db, "tb", 0); /* another tenant: untouched */
  ck_assert_int_eq(es_close(db), ES_OK);
  memvfs_sync_all(vfs);
}

/* Checks the reopened store: returns NULL or the problem; *state_out: 0
 * all old rows, 1 exactly the kept ones. */
static const char *check_store(es_vfs *vfs, int *state_out) {
  static char why[512];
  es_options o;
  make_opts(&o, 64 << 10);
  es_db *db = NULL;
  int rc = es__open_vfs(&o, vfs, &db);
  if (rc != ES_OK) {
    snprintf(why, sizeof(why), "reopen: %s", es_errdetail());
    return why;
  }
  const char *bad = NULL;
  int seen[NBATCH][PER];
  memset(seen, 0, sizeof(seen));
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = "ta";
  es_cursor *cur = NULL;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  es_event ev;
  while (!bad && (rc = es_cursor_next(cur, &ev)) == 1) {
    int b = -1, e = -1;
    if (!ev.message_id || sscanf(ev.message_id, "b%d-e%d", &b, &e) != 2 ||
        b < 0 || b >= NBATCH || e < 0 || e >= PER || seen[b][e]++) {
      snprintf(why, sizeof(why), "invented or doubled %s", ev.message_id);
      bad = why;
    }
  }
  if (!bad && rc != 0) {
    snprintf(why, sizeof(why), "scan: %s", es_errdetail());
    bad = why;
  }
  es_cursor_close(cur);
  int olds = 1, kept = 1;
  for (int b = 0; b < NBATCH; b++)
    for (int e = 0; e < PER; e++) {
      olds &= seen[b][e] == 1;
      kept &= seen[b][e] == !erased(b, e);
    }
  if (!bad && !olds && !kept) {
    snprintf(why, sizeof(why), "a mix of old and rewritten rows");
    bad = why;
  }
  *state_out = kept && !olds;
  if (!bad && count_rows(db, "tb") != PER) {
    snprintf(why, sizeof(why), "tenant tb lost rows");
    bad = why;
  }
  char *a = NULL, *s = NULL;
  if (!bad && (es_query(db, "ta", "{\"groupBy\":[\"path\"]}", &a) != ES_OK ||
               es_query(db, "ta", "{\"groupBy\":[\"path\"],\"plan\":\"scan\"}",
                        &s) != ES_OK)) {
    snprintf(why, sizeof(why), "query: %s", es_errdetail());
    bad = why;
  }
  if (!bad && strncmp(a, s, strstr(s, "\"source\"") - s) != 0) {
    snprintf(why, sizeof(why), "rollup %s vs scan %s", a, s);
    bad = why;
  }
  es_free(a);
  es_free(s);
  es_rollup_report rep;
  if (!bad &&
      (es_rollup_rebuild(db, "ta", INT64_MIN, INT64_MAX, &rep) != ES_OK ||
       rep.differing != 0 || rep.missing != 0)) {
    snprintf(why, sizeof(why), "rollup rebuild: %llu differing, %llu missing",
             (unsigned long long)rep.differing,
             (unsigned long long)rep.missing);
    bad = why;
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

/* Rewrites a fresh copy with a fault at k (0: none); returns the counted
 * I/O calls of the rewrite. */
static unsigned long rewrite_point(unsigned long k, int crash, int *bad_out,
                                   int *state_out) {
  es_vfs *vfs = memvfs_create();
  build_store(vfs);
  es_options o;
  make_opts(&o, 64 << 10);
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  es_tenant *t = NULL; /* loaded before the fault: the rewrite's I/O only */
  ck_assert_int_eq(es__tenant_get(db, "ta", 0, &t), ES_OK);
  ck_assert_ptr_nonnull(t);
  if (k > 0 && crash)
    memvfs_crash_at(vfs, k);
  else
    memvfs_fail_at(vfs, k, ES_EIO, 0); /* k = 0: resets the counter */
  es_rewrite_stats st;
  int rc = rewrite_all(db, t, &st);
  unsigned long calls = memvfs_count(vfs);
  if (k == 0) {
    ck_assert_msg(rc == ES_OK, "clean rewrite: %s", es_errdetail());
    ck_assert_uint_eq(st.segments_in, NBATCH);
    ck_assert_uint_eq(st.segments_out, NBATCH / 2); /* the memory bound */
    ck_assert_uint_eq(st.rows_in, NBATCH * PER);
    int keep = 0;
    for (int b = 0; b < NBATCH; b++)
      for (int e = 0; e < PER; e++)
        keep += !erased(b, e);
    ck_assert_uint_eq(st.rows_out, (uint64_t)keep);
  }
  es__error_clear();
  (void)es_close(db);
  memvfs_clear_faults(vfs);
  memvfs_crash(vfs);
  const char *why = check_store(vfs, state_out);
  *bad_out = why != NULL;
  if (why)
    printf("rewrite fault at %lu (%s): %s\n", k, crash ? "power cut" : "EIO",
           why);
  memvfs_destroy(vfs);
  return calls;
}

START_TEST(test_rewrite_faults) {
  int bad = 0, state = 0;
  unsigned long total = rewrite_point(0, 0, &bad, &state);
  ck_assert_msg(!bad, "clean rewrite failed");
  ck_assert_int_eq(state, 1);
  ck_assert_uint_gt(total, 10);
  int failures = 0, committed = 0, points = 0;
  for (int crash = 1; crash >= 0; crash--)
    for (unsigned long k = 1; k <= total + 1; k++) {
      rewrite_point(k, crash, &bad, &state);
      failures += bad;
      committed += state;
      points++;
    }
  printf("rewrite: %lu counted I/O calls, %d fault points: %d failures, %d "
         "committed\n",
         total, points, failures, committed);
  ck_assert_int_eq(failures, 0);
  ck_assert_int_gt(committed, 0); /* faults after the commit point */
  ck_assert_int_lt(committed, points);
}
END_TEST

/* A rewrite that keeps nothing commits zero outputs. */
static int keep_none(void *ud, const es_event *row) {
  (void)ud;
  (void)row;
  return 0;
}

START_TEST(test_rewrite_keep_none) {
  es_vfs *vfs = memvfs_create();
  recorder r;
  es_db *db = open_with_segments(vfs, &r, 0);
  es_tenant *t = NULL;
  ck_assert_int_eq(es__tenant_get(db, "ta", 0, &t), ES_OK);
  pthread_mutex_lock(&t->compact_mu);
  es_tenant_view v;
  ck_assert_int_eq(es__tenant_view(t, &v), ES_OK);
  es_rewrite_spec spec = {.keep = keep_none};
  es_rewrite_stats st;
  ck_assert_int_eq(es__rewrite(db, t, v.set->segs, 2, &spec, &st), ES_OK);
  es__tenant_view_release(&v);
  pthread_mutex_unlock(&t->compact_mu);
  ck_assert_uint_eq(st.segments_out, 0);
  ck_assert_uint_eq(st.rows_out, 0);
  ck_assert_uint_eq(count_rows(db, "ta"), (NBATCH - 2) * PER);
  pthread_mutex_lock(&r.mu);
  ck_assert_int_eq(r.n, 1);
  ck_assert_uint_eq(r.ev[0].gen, NBATCH + 1);
  ck_assert_int_eq(r.ev[0].nadded, 0);
  ck_assert_int_eq(r.ev[0].nremoved, 4);
  pthread_mutex_unlock(&r.mu);
  ck_assert_int_eq(es_close(db), ES_OK);
  pthread_mutex_destroy(&r.mu);
  memvfs_destroy(vfs);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("commit");
  TCase *tc = tcase_create("commit");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_subscriber_sees_generations);
  tcase_add_test(tc, test_hold_until_release);
  tcase_add_test(tc, test_wal_hold);
  tcase_add_test(tc, test_crash_between_commit_and_removal);
  tcase_add_test(tc, test_rewrite_keep_none);
  tcase_add_test(tc, test_rewrite_faults);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(suite()); }
