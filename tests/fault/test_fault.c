/*
 * test_fault.c -- SQLite-style fault loops over the real library.
 *
 * The library runs on memvfs (memvfs.h) through es__open_vfs.  One
 * "cycle" is a realistic session: open, append batches for three tenants,
 * flush one tenant, append, flush all, an all-time query of one tenant
 * (its rollup index file, ROLLIDX), append, close.  A clean run counts
 * the vfs's state-changing calls, K.  Then, for every point k in 1..K
 * (stride 2 or 3 in most loops: see loop_step), the cycle runs again with:
 *
 *   - an I/O error at call k (ES_EIO or ES_ENOSPC, once or from then on,
 *     with or without a short write): the library must fail-stop, or (a
 *     retryable error: a segment or temp file before its commit, store/
 *     gate.c) degrade and go on, then a reopen, and a power cut plus
 *     reopen, must show consistent data;
 *   - a power cut at call k (everything from k on is lost), optionally
 *     with torn sectors: the reopen must show consistent data.
 *
 * "Consistent data" (check_store) means, with events identified by their
 * message ids "t<T>-b<B>-e<E>":
 *
 *  1. Every event of every acknowledged batch is present exactly once,
 *     with the fields it was appended with.
 *  2. No event appears that was never appended.
 *  3. A batch that was not acknowledged is wholly present or wholly absent.
 *  4. Each tenant's scan is in non-decreasing ts order.
 *  5. Recovery is stable: a second power cut right after a recovery shows
 *     the same set of batches.
 *
 * Each point starts from a store that was created by a clean open and
 * close and then made wholly durable (memvfs_sync_all), so the loops test
 * a running store; one loop (test_crash_at_k_fresh) and two direct tests
 * start from nothing, so that es_open's creation of the store is under
 * test too.
 *
 * An allocation-failure loop (es__mem_fail_at) runs a smaller cycle, and
 * direct tests cover a torn WAL tail, a corrupt WAL file in the middle of
 * the log, a corrupt segment block and the durability of a fresh data
 * directory.
 *
 * Failures inside the loops are collected rather than aborting at the
 * first, so one run reports how many points fail and shows the first few
 * with their k; the test then fails.  FAULT_VERBOSE=1 prints every point,
 * FAULT_FULL=1 tests every k of every loop.
 */
#include <check.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "base/mem.h"
#include "memvfs.h"
#include "store/db.h"

#define DATA_DIR "/db"
#define NTENANTS 3
#define BATCHES_MAX 64
#define EVENTS_MAX 12
#define PROPS_HEX_MAX 1024
#define FAILS_SHOWN 5

static const char *const tenant_names[NTENANTS] = {"t0", "t1", "t2"};

/* ----------------------------------------------------------------------
 * The workload: deterministic events, identified by their message ids
 * ---------------------------------------------------------------------- */

/* One cycle's shape.  script: 'A' appends the next batch (batch b goes to
 * tenant b % 3), 'F' flushes tenant t1, 'N' flushes every tenant; the
 * other durable writers, through the same write gate: 'R' puts a rule,
 * 'D' deletes it, 'U' unlinks two ids, 'B' rebuilds t1's rollups. */
typedef struct workload {
  const char *script;
  int props_hex; /* length of the random hex text in properties */
  int shards;
} workload;

#define MAIN_SCRIPT                                                            \
  "AAAAAAAA"                                                                   \
  "F"                                                                          \
  "RU"                                                                         \
  "AAAAAAAA"                                                                   \
  "N"                                                                          \
  "BD"                                                                         \
  "AAAAAAAAAAAAAAAA"                                                           \
  "F"                                                                          \
  "AAAA"
/* The third run of appends (~80 KB) makes the log roll after the full
 * flush, so a later sync of the log directory makes the reclaim of old
 * log files durable: a manifest that was not durable then loses data. */
static const workload main_load = {MAIN_SCRIPT, 600, 1};
static const workload main_load_2shards = {MAIN_SCRIPT, 600, 2};
static const workload small_load = {"AAAA"
                                    "F"
                                    "AA"
                                    "N"
                                    "AA",
                                    40, 1};

/* Storage for one generated event's strings. */
typedef struct ev_text {
  char msg[32], name[16], path[16], anon[16], user[16];
  char props[PROPS_HEX_MAX + 32];
} ev_text;

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

static int batch_tenant(int b) { return b % NTENANTS; }
static int batch_events(int b) { return 4 + (b * 5) % 7; } /* 4..10 */

/* Fills *ev (strings in *tx) with event e of batch b.  Timestamps are
 * scattered within an hour so that scans must merge and sort. */
static void make_event(int b, int e, int props_hex, es_event *ev, ev_text *tx) {
  uint64_t h = mix64((uint64_t)b * 1000 + (uint64_t)e + 1);
  memset(ev, 0, sizeof *ev);
  snprintf(tx->msg, sizeof tx->msg, "t%d-b%d-e%d", batch_tenant(b), b, e);
  snprintf(tx->name, sizeof tx->name, "ev%d", e % 4);
  snprintf(tx->path, sizeof tx->path, "/p%d", (int)(h % 7));
  snprintf(tx->anon, sizeof tx->anon, "a%d", b % 5);
  snprintf(tx->user, sizeof tx->user, "u%d", e % 3);
  int n = snprintf(tx->props, sizeof tx->props, "{\"k\":\"");
  uint64_t r = h;
  for (int i = 0; i < props_hex && i < PROPS_HEX_MAX; i++) {
    if (i % 16 == 0)
      r = mix64(r + (uint64_t)i);
    tx->props[n++] = "0123456789abcdef"[(r >> (4 * (i % 16))) & 15];
  }
  snprintf(tx->props + n, sizeof tx->props - (size_t)n, "\"}");
  ev->ts_us = INT64_C(1700000000000000) + (int64_t)(h % 3600) * 1000000;
  ev->type = e % 2 ? ES_TYPE_PAGE : ES_TYPE_TRACK;
  if (b % 5 == 1 && e == 1) /* links a1 and u1: batches 1, 6 (t0), 11, ... */
    ev->type = ES_TYPE_IDENTIFY;
  ev->event = tx->name;
  ev->message_id = tx->msg;
  ev->anonymous_id = tx->anon;
  ev->user_id = e % 3 == 2 ? NULL : tx->user; /* NULL must round-trip */
  ev->path = ev->type == ES_TYPE_PAGE ? tx->path : NULL;
  ev->properties = tx->props;
}

/* ----------------------------------------------------------------------
 * Collected failures
 * ---------------------------------------------------------------------- */

/* What one loop saw: points tested, points failed, the first messages. */
typedef struct report {
  const char *name;
  unsigned long points;
  unsigned long failed;
  char shown[FAILS_SHOWN][768];
} report;

/* One run of a cycle at one point: its settings and what it saw. */
typedef struct run {
  es_vfs *vfs;
  es_options opts;
  const workload *load;
  char ctx[96];   /* "EIO transient k=17", for messages */
  int io_err;     /* injected I/O status (0: none) */
  int mem_faults; /* allocations fail */
  int bstate[BATCHES_MAX];
  int nbatches;        /* batches attempted */
  int failed_seen;     /* an append/flush/open returned an error */
  int dirty[NTENANTS]; /* acknowledged rows not yet flushed */
  /* the other writers ('R', 'D', 'U'): C_NONE, C_ACKED or C_FAILED */
  int rule_put, rule_del, unlink;
  unsigned long other_calls[4]; /* counted vfs calls of R, D, U, B */
  int rstate_seen;  /* t0's rule state (RSTATE) was written by a flush */
  int rollidx_seen; /* t1's rollup index file (ROLLIDX) was written */
  int bad;          /* a check failed */
  char why[768];    /* the first failed check */
} run;

enum { B_NONE = 0, B_ACKED = 1, B_FAILED = 2 };
enum { C_NONE = 0, C_ACKED = 1, C_FAILED = 2 };

/* Records a failed check (the first wins) and marks the run bad. */
static void note(run *r, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(run *r, int line, const char *fmt, ...) {
  if (r->bad++)
    return;
  int n = snprintf(r->why, sizeof r->why, "[%s] line %d: ", r->ctx, line);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->why + n, sizeof r->why - (size_t)n, fmt, ap);
  va_end(ap);
}

#define NOTE(r, ...) note((r), __LINE__, __VA_ARGS__)

static void report_add(report *rep, const run *r) {
  rep->points++;
  if (!r->bad)
    return;
  if (rep->failed < FAILS_SHOWN)
    snprintf(rep->shown[rep->failed], sizeof rep->shown[0], "%s", r->why);
  rep->failed++;
}

/* Prints the loop's summary and fails the test when any point failed. */
static void report_finish(const report *rep, unsigned long k_total) {
  printf("%s: K=%lu, %lu points tested, %lu failed\n", rep->name, k_total,
         rep->points, rep->failed);
  for (unsigned long i = 0; i < rep->failed && i < FAILS_SHOWN; i++)
    printf("  %s\n", rep->shown[i]);
  fflush(stdout);
  ck_assert_msg(rep->failed == 0, "%s: %lu of %lu points failed; first: %s",
                rep->name, rep->failed, rep->points, rep->shown[0]);
}

static int verbose(void) {
  const char *v = getenv("FAULT_VERBOSE");
  return v != NULL && *v && *v != '0';
}

/* The step that keeps a loop over 1..k_total near max_points points
 * (1 when FAULT_FULL is set).  The loops over the main cycle use fixed
 * strides instead (1 with FAULT_FULL): the plain power-cut loop tests
 * every k; the torn and the 2-shard power-cut loops stride 2 from k = 1
 * and 2; the five I/O-fault loops stride IO_STRIDE from k = 1, 2, 3, 1,
 * 2, so that between them every k gets an I/O error.  Each of the other
 * writers (rule put and delete, unlink, rollup rebuild) makes at least
 * IO_STRIDE consecutive counted calls (test_clean_cycle checks it), so
 * every loop still faults each of them. */
#define IO_STRIDE 3
static int fault_full(void) {
  const char *full = getenv("FAULT_FULL");
  return full != NULL && *full && *full != '0';
}

static unsigned long loop_step(unsigned long k_total,
                               unsigned long max_points) {
  if (fault_full() || k_total <= max_points)
    return 1;
  return (k_total + max_points - 1) / max_points;
}

/* ----------------------------------------------------------------------
 * Running a cycle
 * ---------------------------------------------------------------------- */

static void run_init(run *r, es_vfs *vfs, const workload *load,
                     const char *ctx) {
  memset(r, 0, sizeof *r);
  r->vfs = vfs;
  r->load = load;
  snprintf(r->ctx, sizeof r->ctx, "%s", ctx);
  es_options_init(&r->opts);
  r->opts.data_dir = DATA_DIR;
  r->opts.shards = load->shards;
  r->opts.wal_file_bytes = 64 * 1024; /* the log rolls within a cycle */
  r->opts.seal_bytes = (size_t)1 << 30;
  r->opts.seal_age_us = INT64_MAX / 4; /* seals only on es_flush */
  r->opts.sync_mode = ES_SYNC_FULL;
  /* single-shard loads with compressed WAL records, two-shard loads with
   * raw ones: both record codecs go through every crash point */
  r->opts.wal_compress = load->shards == 1;
}

/* Whether rc is an acceptable failure status at this point of the run:
 * the injected code, ES_EFAILED (the database failed earlier, maybe in a
 * background thread) or ES_EDEGRADED (a retryable failure: the store
 * goes on, so this is no fail-stop).  Once a fail-stop was seen, only
 * ES_EFAILED. */
static void check_failure_status(run *r, const char *what, int rc) {
  if (rc == ES_EDEGRADED && r->io_err && !r->failed_seen)
    return;
  if (r->failed_seen) {
    if (rc != ES_EFAILED)
      NOTE(r,
           "%s after an earlier failure returned %d (%s), want "
           "ES_EFAILED (fail-stop); detail: %s",
           what, rc, es_strerror(rc), es_errdetail());
    return;
  }
  int ok = rc == ES_EFAILED || (r->io_err && rc == r->io_err) ||
           (r->mem_faults && rc == ES_ENOMEM);
  if (!ok)
    NOTE(r, "%s returned %d (%s), want %s or ES_EFAILED; detail: %s", what, rc,
         es_strerror(rc), r->mem_faults ? "ES_ENOMEM" : "the injected code",
         es_errdetail());
}

static void do_append(run *r, es_db *db, int b) {
  es_event evs[EVENTS_MAX];
  ev_text tx[EVENTS_MAX];
  int n = batch_events(b);
  char what[48];
  for (int e = 0; e < n; e++)
    make_event(b, e, r->load->props_hex, &evs[e], &tx[e]);
  es_receipt rec;
  int rc = es_append(db, tenant_names[batch_tenant(b)], evs, (size_t)n, &rec);
  r->nbatches = b + 1;
  snprintf(what, sizeof what, "es_append(batch %d)", b);
  if (rc == ES_OK) {
    r->bstate[b] = B_ACKED;
    r->dirty[batch_tenant(b)] = 1;
    if (r->failed_seen && !r->mem_faults)
      NOTE(r, "%s returned ES_OK after an earlier failure (fail-stop)", what);
    if (rec.events_count != (uint32_t)n)
      NOTE(r, "%s: receipt says %u events, want %d", what, rec.events_count, n);
    return;
  }
  r->bstate[b] = B_FAILED;
  if (!r->io_err && !r->mem_faults) {
    NOTE(r, "%s failed without any fault: %d (%s) %s", what, rc,
         es_strerror(rc), es_errdetail());
    return;
  }
  /* With memory faults, ES_ENOMEM need not fail the database. */
  if (r->mem_faults && (rc == ES_ENOMEM || rc == ES_EFAILED)) {
    r->failed_seen |= rc == ES_EFAILED;
    return;
  }
  check_failure_status(r, what, rc);
  r->failed_seen |= rc != ES_EDEGRADED;
}

static void do_flush(run *r, es_db *db, const char *tenant) {
  char what[48];
  int rc = es_flush(db, tenant);
  snprintf(what, sizeof what, "es_flush(%s)", tenant ? tenant : "NULL");
  int had_rows = 0;
  for (int t = 0; t < NTENANTS; t++)
    if (tenant == NULL || strcmp(tenant, tenant_names[t]) == 0)
      had_rows |= r->dirty[t];
  if (rc == ES_OK) {
    /* A flush with nothing to do may succeed even on a failed database
     * ("flushing a tenant that has no rows is ES_OK"). */
    if (r->failed_seen && !r->mem_faults && had_rows)
      NOTE(r, "%s returned ES_OK after an earlier failure (fail-stop)", what);
    for (int t = 0; t < NTENANTS; t++)
      if (tenant == NULL || strcmp(tenant, tenant_names[t]) == 0)
        r->dirty[t] = 0;
    return;
  }
  if (!r->io_err && !r->mem_faults) {
    NOTE(r, "%s failed without any fault: %d (%s) %s", what, rc,
         es_strerror(rc), es_errdetail());
    return;
  }
  if (r->mem_faults && (rc == ES_ENOMEM || rc == ES_EFAILED)) {
    r->failed_seen |= rc == ES_EFAILED;
    return;
  }
  check_failure_status(r, what, rc);
  r->failed_seen |= rc != ES_EDEGRADED;
}

/* Checks the status of a rule, unlink or rollup write: ES_OK, or with a
 * fault the injected code (a retryable failure: nothing changed),
 * ES_EDEGRADED, ES_EFAILED (fail-stop), ES_ENOMEM under memory faults. */
static int do_call(run *r, const char *what, int rc) {
  if (rc == ES_OK) {
    if (r->failed_seen && !r->mem_faults)
      NOTE(r, "%s returned ES_OK after an earlier failure (fail-stop)", what);
    return C_ACKED;
  }
  if (!r->io_err && !r->mem_faults) {
    NOTE(r, "%s failed without any fault: %d (%s) %s", what, rc,
         es_strerror(rc), es_errdetail());
    return C_FAILED;
  }
  int ok = rc == ES_EFAILED || rc == ES_EDEGRADED ||
           (r->io_err && rc == r->io_err) || (r->mem_faults && rc == ES_ENOMEM);
  if (r->failed_seen && !r->mem_faults && rc != ES_EFAILED)
    ok = 0;
  if (!ok)
    NOTE(r, "%s returned %d (%s); detail: %s", what, rc, es_strerror(rc),
         es_errdetail());
  r->failed_seen |= rc == ES_EFAILED;
  return C_FAILED;
}

/* The unlink of 'U': t0's identify events (batch 6, event 1, and later
 * ones) link a1 and u1, all at or before this time. */
#define UNLINK_TS (INT64_C(1700000000000000) + INT64_C(3600) * 1000000)

/* Collects t1's rollup file names (for 'B'). */
typedef struct rlp_names {
  char v[16][64];
  int n;
} rlp_names;

static int rlp_cb(void *ud, const char *name) {
  rlp_names *rn = ud;
  size_t len = strlen(name);
  if (rn->n < 16 && len > 4 && len < 64 && strcmp(name + len - 4, ".rlp") == 0)
    memcpy(rn->v[rn->n++], name, len + 1);
  return 0;
}

static void do_other(run *r, es_db *db, char op) {
  static const char rule[] = "{\"name\":\"r1\",\"match\":{\"type\":\"page\"},"
                             "\"atLeast\":2,\"within\":\"1d\"}";
  if (op == 'R')
    r->rule_put = do_call(r, "es_rule_put", es_rule_put(db, "t0", rule));
  else if (op == 'D') { /* gone already if its put failed */
    int rc = es_rule_delete(db, "t0", "r1");
    if (rc == ES_ENOTFOUND && r->rule_put == C_ACKED)
      NOTE(r, "es_rule_delete: no rule r1, though its put returned ES_OK");
    r->rule_del = do_call(
        r, "es_rule_delete",
        rc == ES_ENOTFOUND && (r->io_err || r->mem_faults) ? ES_OK : rc);
  } else if (op == 'U')
    r->unlink = do_call(r, "es_identity_unlink",
                        es_identity_unlink(db, "t0", "a1", "u1", UNLINK_TS));
  else if (op == 'B') {
    /* t1's rollup files go first, so that the rebuild has files to write
     * (with correct files it writes nothing, and no fault could reach
     * it); a file lost at a fault or cut here is derived again at read */
    rlp_names rn = {.n = 0};
    (void)r->vfs->list(r->vfs, DATA_DIR "/tenants/t1", rlp_cb, &rn);
    for (int i = 0; i < rn.n; i++) {
      char path[128];
      snprintf(path, sizeof path, DATA_DIR "/tenants/t1/%s", rn.v[i]);
      (void)r->vfs->unlink(r->vfs, path);
    }
    do_call(r, "es_rollup_rebuild",
            es_rollup_rebuild(db, "t1", 0, INT64_MAX, NULL));
  }
}

/* Runs the workload once on r->vfs with whatever faults are armed. */
/* An all-time query of t1 after the full flush: it builds t1's rollup
 * index and writes ROLLIDX (a cache: a fault there is logged, and the
 * query still answers), so the loops fault that writer too; the reopen's
 * checks (check_others) compare t1's rollup count with its scan. */
static void do_index_query(run *r, es_db *db) {
  char *out = NULL;
  int rc = es_query(db, "t1", "{\"groupBy\":[\"type\"]}", &out);
  es_free(out);
  if (rc != ES_OK && !r->io_err && !r->mem_faults)
    NOTE(r, "es_query of t1 failed without a fault: %d (%s) %s", rc,
         es_strerror(rc), es_errdetail());
  r->rollidx_seen |= memvfs_exists(r->vfs, DATA_DIR "/tenants/t1/ROLLIDX");
}

static void run_cycle(run *r) {
  es_db *db = NULL;
  int rc = es__open_vfs(&r->opts, r->vfs, &db);
  if (rc != ES_OK) {
    if (db != NULL)
      NOTE(r, "es__open_vfs failed (%d) but left *db_out set", rc);
    if (!r->io_err && !r->mem_faults)
      NOTE(r, "es__open_vfs failed without a fault: %d (%s) %s", rc,
           es_strerror(rc), es_errdetail());
    else if (rc != (r->mem_faults ? ES_ENOMEM : r->io_err))
      NOTE(r, "es__open_vfs returned %d (%s), want the injected code; %s", rc,
           es_strerror(rc), es_errdetail());
    r->failed_seen = 1;
    return;
  }
  int b = 0;
  for (const char *p = r->load->script; *p; p++) {
    if (*p == 'A')
      do_append(r, db, b++);
    else if (*p == 'F')
      do_flush(r, db, "t1");
    else if (*p == 'N') {
      do_flush(r, db, NULL);
      r->rstate_seen |= memvfs_exists(r->vfs, DATA_DIR "/tenants/t0/RSTATE");
      do_index_query(r, db);
    } else {
      unsigned long k0 = memvfs_count(r->vfs);
      do_other(r, db, *p);
      const char *at = strchr("RDUB", *p);
      if (at)
        r->other_calls[at - "RDUB"] += memvfs_count(r->vfs) - k0;
    }
  }
  rc = es_close(db);
  if (r->failed_seen && rc == ES_OK && !r->mem_faults)
    NOTE(r, "es_close returned ES_OK on a failed database");
  if (!r->io_err && !r->mem_faults && rc != ES_OK)
    NOTE(r, "es_close failed without a fault: %d (%s)", rc, es_strerror(rc));
  if (memvfs_open_handles(r->vfs) != 0)
    NOTE(r, "%ld vfs handles still open after es_close",
         memvfs_open_handles(r->vfs));
}

/* ----------------------------------------------------------------------
 * Checking what a reopen shows
 * ---------------------------------------------------------------------- */

static int str_eq(const char *a, const char *b) {
  if (a == NULL || b == NULL)
    return a == b;
  return strcmp(a, b) == 0;
}

/* Compares one scanned event with what batch b, event e was. */
static void check_event(run *r, int b, int e, const es_event *got) {
  es_event want;
  ev_text tx;
  make_event(b, e, r->load->props_hex, &want, &tx);
  if (got->ts_us != want.ts_us || got->type != want.type ||
      !str_eq(got->event, want.event) ||
      !str_eq(got->anonymous_id, want.anonymous_id) ||
      !str_eq(got->user_id, want.user_id) || !str_eq(got->path, want.path) ||
      !str_eq(got->properties, want.properties))
    NOTE(r,
         "event %s came back with different fields (ts %" PRId64 " vs %" PRId64
         ", type %d vs %d, user %s vs %s)",
         tx.msg, got->ts_us, want.ts_us, got->type, want.type,
         got->user_id ? got->user_id : "NULL",
         want.user_id ? want.user_id : "NULL");
}

/* Scans one tenant, counting each (batch, event) seen into seen. */
static void scan_tenant(run *r, es_db *db, int t,
                        int seen[BATCHES_MAX][EVENTS_MAX]) {
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = tenant_names[t];
  es_cursor *cur = NULL;
  int rc = es_scan(db, &spec, &cur);
  if (rc != ES_OK) {
    NOTE(r, "es_scan(%s) failed: %d (%s) %s", spec.tenant, rc, es_strerror(rc),
         es_errdetail());
    return;
  }
  int64_t prev_ts = INT64_MIN;
  es_event ev;
  while ((rc = es_cursor_next(cur, &ev)) == 1) {
    int tt = -1, b = -1, e = -1, end = 0;
    if (ev.message_id == NULL ||
        sscanf(ev.message_id, "t%d-b%d-e%d%n", &tt, &b, &e, &end) != 3 ||
        ev.message_id[end] != '\0') {
      NOTE(r, "tenant %s: event with unknown message id %s", spec.tenant,
           ev.message_id ? ev.message_id : "NULL");
      continue;
    }
    if (tt != t || b < 0 || b >= r->nbatches || batch_tenant(b) != t || e < 0 ||
        e >= batch_events(b) || r->bstate[b] == B_NONE) {
      NOTE(r, "tenant %s: event %s was never appended (to this tenant)",
           spec.tenant, ev.message_id);
      continue;
    }
    if (ev.ts_us < prev_ts)
      NOTE(r, "tenant %s: ts goes back at %s (%" PRId64 " < %" PRId64 ")",
           spec.tenant, ev.message_id, ev.ts_us, prev_ts);
    prev_ts = ev.ts_us;
    seen[b][e]++;
    check_event(r, b, e, &ev);
  }
  if (rc != 0)
    NOTE(r, "es_cursor_next(%s) failed: %d (%s) %s", spec.tenant, rc,
         es_strerror(rc), es_errdetail());
  es_cursor_close(cur);
}

/* Rule r1 (page events, atLeast 2, within 1d) at the end of the hour
 * every event lies in: its members are t0's visitor ids (all have an
 * anonymousId) with two page views or more in the rows a scan sees. */
static void check_rule_members(run *r, es_db *db, const char *when) {
  enum { NANON = 5 };
  int views[NANON] = {0};
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = "t0";
  es_cursor *cur = NULL;
  if (es_scan(db, &spec, &cur) != ES_OK)
    return; /* the scan's own check reports it */
  es_event ev;
  while (es_cursor_next(cur, &ev) == 1)
    if (ev.type == ES_TYPE_PAGE && ev.anonymous_id &&
        ev.anonymous_id[0] == 'a' && ev.anonymous_id[1] >= '0' &&
        ev.anonymous_id[1] < '0' + NANON)
      views[ev.anonymous_id[1] - '0']++;
  es_cursor_close(cur);
  char want[128] = "\"members\":[";
  for (int i = 0, first = 1; i < NANON; i++)
    if (views[i] >= 2) {
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s\"a%d\"",
               first ? "" : ",", i);
      first = 0;
    }
  strcat(want, "]}");
  char *out = NULL;
  int rc = es_rule_members(db, "t0", "r1",
                           INT64_C(1700000000000000) + INT64_C(3600000000),
                           &out);
  if (rc != ES_OK || !strstr(out, want))
    NOTE(r, "%s: rule r1's members %s, want %s (%d %s)", when,
         out ? out : "(none)", want, rc, es_errdetail());
  es_free(out);
}

/* What the other writers left, with the store reopened: a rule whose put
 * returned ES_OK exists unless a delete may have run after it; one whose
 * delete returned ES_OK is gone; an unlink that returned ES_OK is in
 * effect (u1's person no longer takes a1's events, in a query and in the
 * timeline), and one never tried is not (while a linking event is
 * stored); a failed call may or may not have taken effect.  And t1's
 * rollups (rebuilt by 'B', written by flushes) count what a scan does. */
static void check_others(run *r, es_db *db, const char *when) {
  char *out = NULL;
  int rc = es_rule_members(db, "t0", "r1", 0, &out);
  es_free(out);
  int must_exist = r->rule_put == C_ACKED && r->rule_del == C_NONE;
  int must_not = r->rule_del == C_ACKED ||
                 (r->rule_put == C_NONE && r->rule_del == C_NONE);
  if ((must_exist && rc != ES_OK) || (must_not && rc != ES_ENOTFOUND) ||
      (rc != ES_OK && rc != ES_ENOTFOUND))
    NOTE(r, "%s: rule r1 (put %d, delete %d; 1 acked, 2 failed): %d (%s) %s",
         when, r->rule_put, r->rule_del, rc, es_strerror(rc), es_errdetail());
  if (rc == ES_OK) /* its counters (maybe from RSTATE) agree with the rows */
    check_rule_members(r, db, when);
  /* t0's events of u1 alone, and of u1 or a1, and whether a1-u1 linked */
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = "t0";
  es_cursor *cur = NULL;
  long long n_u1 = 0, n_both = 0, linked = 0, n_t1 = 0;
  if (es_scan(db, &spec, &cur) == ES_OK) {
    es_event ev;
    while (es_cursor_next(cur, &ev) == 1) {
      int u = str_eq(ev.user_id, "u1"), a = str_eq(ev.anonymous_id, "a1");
      n_u1 += u;
      n_both += u || a;
      linked |= ev.type == ES_TYPE_IDENTIFY && u && a;
    }
    es_cursor_close(cur);
  }
  spec.tenant = "t1";
  if (es_scan(db, &spec, &cur) == ES_OK) {
    es_event ev;
    while (es_cursor_next(cur, &ev) == 1)
      n_t1++;
    es_cursor_close(cur);
  }
  long long want = r->unlink == C_ACKED || !linked ? n_u1
                   : r->unlink == C_NONE           ? n_both
                                                   : -1; /* either */
  rc = es_query(db, "t0",
                "{\"filter\":{\"person\":\"u1\"},\"aggregate\":[\"count\"]}",
                &out);
  long long got = -2;
  if (rc == ES_OK) {
    const char *c = strstr(out, "\"count\":");
    got = c ? atoll(c + 8) : strstr(out, "\"rows\":[]") ? 0 : -2;
  }
  es_free(out);
  if (rc != ES_OK || got == -2 || (want >= 0 && got != want) ||
      (want < 0 && got != n_u1 && got != n_both))
    NOTE(r,
         "%s: t0 person u1 counts %lld (rc %d); want %lld (unlink %d; "
         "u1's events %lld, with a1's %lld)",
         when, got, rc, want, r->unlink, n_u1, n_both);
  es_timeline *tl = NULL;
  long long n_tl = 0;
  rc = es_timeline_open(db, "t0", "u1", 1000, &tl);
  if (rc == ES_OK) {
    es_event ev;
    while (es_timeline_next(tl, &ev) == 1)
      n_tl++;
    es_timeline_close(tl);
  }
  if (rc != ES_OK || (n_tl != got && got >= 0))
    NOTE(r, "%s: t0 timeline of u1 has %lld events (rc %d), its query %lld",
         when, n_tl, rc, got);
  rc = es_query(db, "t1", "{\"aggregate\":[\"count\"]}", &out);
  got = -2;
  if (rc == ES_OK) {
    const char *c = strstr(out, "\"count\":");
    got = c ? atoll(c + 8) : strstr(out, "\"rows\":[]") ? 0 : -2;
  }
  es_free(out);
  if (rc != ES_OK || got != n_t1)
    NOTE(r, "%s: t1's rollups count %lld events (rc %d), its scan %lld", when,
         got, rc, n_t1);
}

/* Reopens the store, scans every tenant and checks invariants 1-4 of the
 * file comment, and what the other writers left (check_others).
 * present_out[b] is set to 1 for each batch found whole. */
static void check_store(run *r, const char *when, int present_out[]) {
  static int seen[BATCHES_MAX][EVENTS_MAX];
  es_db *db = NULL;
  memset(seen, 0, sizeof seen);
  for (int b = 0; b < BATCHES_MAX; b++)
    present_out[b] = 0;
  int rc = es__open_vfs(&r->opts, r->vfs, &db);
  if (rc != ES_OK) {
    NOTE(r, "%s: reopen failed: %d (%s) %s", when, rc, es_strerror(rc),
         es_errdetail());
    return;
  }
  for (int t = 0; t < NTENANTS; t++)
    scan_tenant(r, db, t, seen);
  for (int b = 0; b < r->nbatches; b++) {
    int n = batch_events(b), whole = 0, dup = 0;
    for (int e = 0; e < n; e++) {
      whole += seen[b][e] > 0;
      dup |= seen[b][e] > 1;
    }
    if (dup)
      NOTE(r, "%s: batch %d has duplicated events", when, b);
    if (r->bstate[b] == B_ACKED && whole != n)
      NOTE(r,
           "%s: acknowledged batch %d (tenant t%d): %d of %d events "
           "present",
           when, b, batch_tenant(b), whole, n);
    if (r->bstate[b] == B_FAILED && whole != 0 && whole != n)
      NOTE(r, "%s: unacknowledged batch %d is torn: %d of %d events", when, b,
           whole, n);
    present_out[b] = whole == n;
  }
  check_others(r, db, when);
  rc = es_close(db);
  if (rc != ES_OK)
    NOTE(r, "%s: es_close after the check failed: %d (%s)", when, rc,
         es_strerror(rc));
  if (memvfs_open_handles(r->vfs) != 0)
    NOTE(r, "%s: %ld vfs handles open after es_close", when,
         memvfs_open_handles(r->vfs));
}

/* Power cut (torn or not), reopen and check; then a second cut right
 * after that recovery must show the same batches (invariant 5). */
static void crash_and_check(run *r, int torn, uint64_t seed) {
  int first[BATCHES_MAX], second[BATCHES_MAX];
  memvfs_clear_faults(r->vfs);
  if (torn)
    memvfs_crash_torn(r->vfs, seed);
  else
    memvfs_crash(r->vfs);
  check_store(r, "after power cut", first);
  memvfs_crash(r->vfs);
  check_store(r, "after a second power cut", second);
  for (int b = 0; b < r->nbatches; b++)
    if (first[b] != second[b])
      NOTE(r,
           "batch %d was %s after recovery but %s after a second power "
           "cut",
           b, first[b] ? "present" : "absent",
           second[b] ? "present" : "absent");
}

/* ----------------------------------------------------------------------
 * The loops
 * ---------------------------------------------------------------------- */

static void run_init(run *r, es_vfs *vfs, const workload *load,
                     const char *ctx);

/* A memvfs holding an empty store of load's shape, created by a clean
 * open and close and then made wholly durable (the store existed before
 * the test), or, when fresh, nothing at all (es_open creates the store
 * within the run, so its creation is under test too). */
static es_vfs *make_vfs(const workload *load, int fresh) {
  es_vfs *vfs = memvfs_create();
  if (fresh)
    return vfs;
  run r;
  es_db *db = NULL;
  run_init(&r, vfs, load, "bootstrap");
  int rc = es__open_vfs(&r.opts, vfs, &db);
  ck_assert_msg(rc == ES_OK, "bootstrap open: %s %s", es_strerror(rc),
                es_errdetail());
  ck_assert_int_eq(es_close(db), ES_OK);
  memvfs_sync_all(vfs);
  return vfs;
}

/* Runs the cycle with no fault; returns K, the counted calls it made.
 * Its checks fail the test at once, or with rep, count as one point of
 * the loop (so the loop still runs and shows the other points). */
static unsigned long g_other_calls[4]; /* of the last clean run */
static int g_rstate_seen;              /* of the last clean run */
static int g_rollidx_seen;             /* of the last clean run */

static unsigned long clean_count(const workload *load, int fresh, report *rep) {
  es_vfs *vfs = make_vfs(load, fresh);
  run r;
  run_init(&r, vfs, load, fresh ? "clean run, fresh store" : "clean run");
  memvfs_fail_at(vfs, 0, ES_EIO, 0);
  run_cycle(&r);
  unsigned long k_total = memvfs_count(vfs);
  memcpy(g_other_calls, r.other_calls, sizeof g_other_calls);
  g_rstate_seen = r.rstate_seen;
  g_rollidx_seen = r.rollidx_seen;
  if (!r.bad)
    crash_and_check(&r, 0, 0);
  for (int b = 0; b < r.nbatches; b++)
    if (r.bstate[b] != B_ACKED)
      NOTE(&r, "batch %d not acknowledged in a clean run", b);
  memvfs_destroy(vfs);
  if (rep != NULL)
    report_add(rep, &r);
  else
    ck_assert_msg(!r.bad, "%s", r.why);
  return k_total;
}

/* How one I/O-fault loop injects. */
typedef struct io_variant {
  const char *name;
  int err; /* ES_EIO or ES_ENOSPC */
  int persistent;
  int short_mode; /* MEMVFS_SHORT_NONE / HALF */
} io_variant;

/* One point of an I/O-fault loop: fault at k, run, reopen without a power
 * cut (the process restarted), then power cut and reopen. */
static void io_point(const workload *load, const io_variant *v, unsigned long k,
                     report *rep) {
  char ctx[96];
  int present[BATCHES_MAX];
  snprintf(ctx, sizeof ctx, "%s k=%lu", v->name, k);
  es_vfs *vfs = make_vfs(load, 0);
  run r;
  run_init(&r, vfs, load, ctx);
  r.io_err = v->err;
  memvfs_set_short_write(vfs, v->short_mode);
  memvfs_fail_at(vfs, k, v->err, v->persistent);
  run_cycle(&r);
  memvfs_clear_faults(vfs);
  check_store(&r, "after restart", present);
  crash_and_check(&r, 0, 0);
  if (verbose())
    printf("%s: %s\n", ctx, r.bad ? r.why : "ok");
  report_add(rep, &r);
  memvfs_destroy(vfs);
}

/* One point of a power-cut loop: everything from call k on is lost. */
static void crash_point(const workload *load, unsigned long k, int torn,
                        int fresh, report *rep) {
  char ctx[96];
  snprintf(ctx, sizeof ctx, "%s%s%s k=%lu", torn ? "torn " : "",
           load->shards > 1 ? "crash(2 shards)" : "crash",
           fresh ? "(fresh store)" : "", k);
  es_vfs *vfs = make_vfs(load, fresh);
  run r;
  run_init(&r, vfs, load, ctx);
  r.io_err = ES_EIO;
  memvfs_crash_at(vfs, k);
  run_cycle(&r);
  crash_and_check(&r, torn, k);
  if (verbose())
    printf("%s: %s\n", ctx, r.bad ? r.why : "ok");
  report_add(rep, &r);
  memvfs_destroy(vfs);
}

/* Tests k = first, first + step, ... and k_total + 1 (a fault that never
 * fires). */
static void io_loop(const workload *load, const io_variant *v,
                    unsigned long stride, unsigned long first) {
  report rep;
  memset(&rep, 0, sizeof rep);
  rep.name = v->name;
  unsigned long k_total = clean_count(load, 0, &rep);
  unsigned long step = fault_full() ? 1 : stride;
  unsigned long k = fault_full() ? 1 : first;
  for (; k <= k_total; k += step)
    io_point(load, v, k, &rep);
  io_point(load, v, k_total + 1, &rep);
  report_finish(&rep, k_total);
}

static void crash_loop(const workload *load, int torn, int fresh,
                       unsigned long stride, unsigned long first) {
  report rep;
  memset(&rep, 0, sizeof rep);
  rep.name = torn               ? "torn power cut at k"
             : fresh            ? "power cut at k (fresh store)"
             : load->shards > 1 ? "power cut at k (2 shards)"
                                : "power cut at k";
  unsigned long k_total = clean_count(load, fresh, &rep);
  unsigned long step = fault_full() ? 1 : stride;
  unsigned long k = fault_full() ? 1 : first;
  for (; k <= k_total; k += step)
    crash_point(load, k, torn, fresh, &rep);
  crash_point(load, k_total + 1, torn, fresh, &rep);
  report_finish(&rep, k_total);
}

/* One point of the recovery loop: the cycle is cut by a torn power cut at
 * call k_cycle; then recovery itself (open + close) is cut at its call
 * k_rec (0: not cut; *k_rec_total gets its call count).  A third recovery
 * must still find every acknowledged batch, whole, exactly once. */
static void recovery_point(unsigned long k_cycle, unsigned long k_rec,
                           unsigned long *k_rec_total, report *rep) {
  char ctx[96];
  snprintf(ctx, sizeof ctx, "recovery cut at %lu after a cycle cut at %lu",
           k_rec, k_cycle);
  es_vfs *vfs = make_vfs(&main_load, 0);
  run r;
  run_init(&r, vfs, &main_load, ctx);
  r.io_err = ES_EIO;
  memvfs_crash_at(vfs, k_cycle);
  run_cycle(&r);
  memvfs_clear_faults(vfs);
  memvfs_crash_torn(vfs, k_cycle);
  if (k_rec > 0)
    memvfs_crash_at(vfs, k_rec);
  else
    memvfs_fail_at(vfs, 0, ES_EIO, 0); /* just reset the counter */
  es_db *db = NULL;
  if (es__open_vfs(&r.opts, vfs, &db) == ES_OK)
    (void)es_close(db); /* may report the cut; the check below decides */
  if (k_rec_total)
    *k_rec_total = memvfs_count(vfs);
  crash_and_check(&r, 0, 0);
  if (verbose())
    printf("%s: %s\n", ctx, r.bad ? r.why : "ok");
  report_add(rep, &r);
  memvfs_destroy(vfs);
}

/* Power cuts during recovery, at every call of it, after cycles cut at a
 * few different places (so that recovery has a torn tail to cut, records
 * to replay, files to resume). */
static void recovery_loop(void) {
  report rep;
  memset(&rep, 0, sizeof rep);
  rep.name = "power cut during recovery at k";
  unsigned long k_cycle_total = clean_count(&main_load, 0, &rep);
  unsigned long points = 0, k_max = 0;
  for (int part = 1; part <= 3; part++) {
    unsigned long k_cycle = k_cycle_total * (unsigned long)part / 4;
    unsigned long k_rec_total = 0;
    recovery_point(k_cycle, 0, &k_rec_total, &rep);
    for (unsigned long k = 1; k <= k_rec_total + 1; k++, points++)
      recovery_point(k_cycle, k, NULL, &rep);
    if (k_rec_total > k_max)
      k_max = k_rec_total;
  }
  printf("recovery: up to %lu counted calls per recovery, %lu points\n", k_max,
         points);
  report_finish(&rep, k_max);
}

START_TEST(test_crash_during_recovery) { recovery_loop(); }
END_TEST

static const io_variant v_eio_once = {"EIO once, short write", ES_EIO, 0,
                                      MEMVFS_SHORT_HALF};
static const io_variant v_eio_always = {"EIO persistent", ES_EIO, 1,
                                        MEMVFS_SHORT_NONE};
static const io_variant v_nospc_once = {"ENOSPC once", ES_ENOSPC, 0,
                                        MEMVFS_SHORT_NONE};
static const io_variant v_eio_once_2 = {"EIO once, short write (2 shards)",
                                        ES_EIO, 0, MEMVFS_SHORT_HALF};
static const io_variant v_nospc_always = {"ENOSPC persistent, short write",
                                          ES_ENOSPC, 1, MEMVFS_SHORT_HALF};

START_TEST(test_clean_cycle) {
  unsigned long k_total = clean_count(&main_load, 0, NULL);
  printf("clean cycle: K=%lu counted I/O calls; rule put %lu, rule delete "
         "%lu, unlink %lu, rollup rebuild %lu\n",
         k_total, g_other_calls[0], g_other_calls[1], g_other_calls[2],
         g_other_calls[3]);
  ck_assert_uint_gt(k_total, 20);
  /* a loop of stride IO_STRIDE faults each writer only if it makes that
   * many calls in a row */
  for (int i = 0; i < 4; i++)
    ck_assert_uint_ge(g_other_calls[i], IO_STRIDE);
  /* the full flush writes t0's rule state: the loops fault its writes */
  ck_assert_int_eq(g_rstate_seen, 1);
  /* and the query after it t1's ROLLIDX */
  ck_assert_int_eq(g_rollidx_seen, 1);
}
END_TEST

START_TEST(test_io_eio_once) { io_loop(&main_load, &v_eio_once, IO_STRIDE, 1); }
END_TEST

START_TEST(test_io_eio_persistent) {
  io_loop(&main_load, &v_eio_always, IO_STRIDE, 2);
}
END_TEST

START_TEST(test_io_nospc_once) {
  io_loop(&main_load, &v_nospc_once, IO_STRIDE, 3);
}
END_TEST

START_TEST(test_io_nospc_persistent) {
  io_loop(&main_load, &v_nospc_always, IO_STRIDE, 1);
}
END_TEST

START_TEST(test_io_eio_once_2shards) {
  io_loop(&main_load_2shards, &v_eio_once_2, IO_STRIDE, 2);
}
END_TEST

START_TEST(test_crash_at_k) { crash_loop(&main_load, 0, 0, 1, 1); }
END_TEST

START_TEST(test_crash_at_k_2shards) {
  crash_loop(&main_load_2shards, 0, 0, 2, 2);
}
END_TEST

START_TEST(test_crash_at_k_torn) { crash_loop(&main_load, 1, 0, 2, 1); }
END_TEST

/* The store is created inside the run: crash points cover its creation. */
START_TEST(test_crash_at_k_fresh) { crash_loop(&small_load, 0, 1, 1, 1); }
END_TEST

/* ----------------------------------------------------------------------
 * Allocation failures
 * ---------------------------------------------------------------------- */

static void mem_point(unsigned long n, report *rep) {
  char ctx[96];
  int present[BATCHES_MAX];
  snprintf(ctx, sizeof ctx, "ENOMEM n=%lu", n);
  es_vfs *vfs = make_vfs(&small_load, 0);
  run r;
  run_init(&r, vfs, &small_load, ctx);
  r.mem_faults = 1;
  (void)es__mem_fail_at(n);
  run_cycle(&r);
  (void)es__mem_fail_at(0);
  check_store(&r, "after clearing the allocation failure", present);
  crash_and_check(&r, 0, 0);
  if (verbose())
    printf("%s: %s\n", ctx, r.bad ? r.why : "ok");
  report_add(rep, &r);
  memvfs_destroy(vfs);
}

START_TEST(test_alloc_failures) {
  es_vfs *vfs = make_vfs(&small_load, 0);
  run r;
  run_init(&r, vfs, &small_load, "clean allocation count");
  (void)es__mem_fail_at(0);
  run_cycle(&r);
  unsigned long n_total = es__mem_fail_at(0);
  memvfs_destroy(vfs);
  ck_assert_msg(!r.bad, "%s", r.why);
  report rep;
  memset(&rep, 0, sizeof rep);
  rep.name = "allocation failure at n";
  unsigned long step = loop_step(n_total, 400);
  for (unsigned long n = 1; n <= n_total + 1; n += step)
    mem_point(n, &rep);
  report_finish(&rep, n_total);
}
END_TEST

/* ----------------------------------------------------------------------
 * Direct scenarios
 * ---------------------------------------------------------------------- */

/* Appends batches 0..count-1 of main_load (all must succeed). */
static es_db *open_and_append(run *r, int count) {
  es_db *db = NULL;
  int rc = es__open_vfs(&r->opts, r->vfs, &db);
  ck_assert_msg(rc == ES_OK, "open: %s %s", es_strerror(rc), es_errdetail());
  for (int b = 0; b < count; b++)
    do_append(r, db, b);
  ck_assert_msg(!r->bad, "%s", r->why);
  return db;
}

/* A power cut with torn sectors while the 6th append's frame is written
 * but not yet synced: recovery keeps batches 0-4 and all or none of 5. */
START_TEST(test_torn_tail) {
  int present_count = 0;
  for (uint64_t seed = 1; seed <= 24; seed++) {
    int present[BATCHES_MAX];
    es_vfs *vfs = make_vfs(&main_load, 0);
    run r;
    char ctx[48];
    snprintf(ctx, sizeof ctx, "torn tail seed=%" PRIu64, seed);
    run_init(&r, vfs, &main_load, ctx);
    es_db *db = open_and_append(&r, 5);
    r.io_err = ES_EIO;
    memvfs_crash_at(vfs, 2); /* the frame write lands; its sync is lost */
    do_append(&r, db, 5);
    ck_assert_int_eq(r.bstate[5], B_FAILED);
    (void)es_close(db);
    memvfs_clear_faults(vfs);
    memvfs_crash_torn(vfs, seed);
    check_store(&r, "after torn power cut", present);
    ck_assert_msg(!r.bad, "%s", r.why);
    present_count += present[5];
    memvfs_destroy(vfs);
  }
  printf("torn tail: the in-doubt batch survived %d of 24 torn cuts\n",
         present_count);
}
END_TEST

typedef struct found_files {
  char paths[16][ES_PATH_MAX];
  int n;
  const char *suffix;
  es_vfs *vfs;
  char dir[ES_PATH_MAX];
} found_files;

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void find_files(es_vfs *vfs, const char *dir, found_files *ff);

static int find_cb(void *ud, const char *name) {
  found_files *ff = ud;
  char path[ES_PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", ff->dir, name) >= (int)sizeof path)
    return 0;
  uint64_t size = 0;
  if (memvfs_file_size(ff->vfs, path, &size) != ES_OK)
    find_files(ff->vfs, path, ff); /* a directory */
  else if (ends_with(name, ff->suffix) && ff->n < 16)
    memcpy(ff->paths[ff->n++], path, ES_PATH_MAX);
  return 0;
}

/* Collects files under dir (recursively) whose names end in ff->suffix. */
static void find_files(es_vfs *vfs, const char *dir, found_files *ff) {
  char saved[ES_PATH_MAX];
  memcpy(saved, ff->dir, sizeof saved);
  ff->vfs = vfs;
  snprintf(ff->dir, sizeof ff->dir, "%s", dir);
  (void)vfs->list(vfs, dir, find_cb, ff);
  memcpy(ff->dir, saved, sizeof saved);
}

static int cmp_path(const void *a, const void *b) {
  return strcmp((const char *)a, (const char *)b);
}

/* Offset of the last non-zero byte of a file plus one. */
static uint64_t used_bytes(es_vfs *vfs, const char *path) {
  uint64_t size = 0, used = 0;
  ck_assert_int_eq(memvfs_file_size(vfs, path, &size), ES_OK);
  uint8_t buf[4096];
  for (uint64_t off = 0; off < size; off += sizeof buf) {
    size_t got = 0;
    ck_assert_int_eq(memvfs_peek(vfs, path, off, buf, sizeof buf, &got), ES_OK);
    for (size_t i = 0; i < got; i++)
      if (buf[i])
        used = off + i + 1;
  }
  return used;
}

/* A flipped byte in the middle of the older of two WAL files with live
 * records must fail the open with ES_ECORRUPT naming the file. */
START_TEST(test_wal_middle_corruption) {
  es_vfs *vfs = make_vfs(&main_load, 0);
  run r;
  run_init(&r, vfs, &main_load, "wal corruption");
  es_db *db = open_and_append(&r, 20); /* ~100 KB: two or more files */
  ck_assert_int_eq(es_close(db), ES_OK);
  found_files ff;
  memset(&ff, 0, sizeof ff);
  ff.suffix = ".wal";
  find_files(vfs, DATA_DIR, &ff);
  qsort(ff.paths, (size_t)ff.n, ES_PATH_MAX, cmp_path);
  ck_assert_msg(ff.n >= 2, "want two WAL files, found %d", ff.n);
  const char *victim = ff.paths[0];
  uint64_t used = used_bytes(vfs, victim);
  ck_assert_uint_gt(used, 64);
  ck_assert_int_eq(memvfs_flip_byte(vfs, victim, used / 2, 0x20), ES_OK);
  int rc = es__open_vfs(&r.opts, vfs, &db);
  char detail[1024];
  snprintf(detail, sizeof detail, "%s", es_errdetail());
  const char *base = strrchr(victim, '/') + 1;
  printf("wal corruption in %s at %" PRIu64 ": open -> %s; detail: %s\n",
         victim, used / 2, es_strerror(rc), detail);
  if (rc == ES_OK)
    (void)es_close(db);
  ck_assert_msg(rc == ES_ECORRUPT, "open returned %d (%s), want ES_ECORRUPT",
                rc, es_strerror(rc));
  ck_assert_ptr_null(db);
  ck_assert_msg(strstr(detail, base) != NULL,
                "es_errdetail() does not name %s: %s", base, detail);
  ck_assert_int_eq(memvfs_open_handles(vfs), 0);
  memvfs_destroy(vfs);
}
END_TEST

typedef struct seg_find {
  char path[ES_PATH_MAX];
  uint64_t bytes;
} seg_find;

static int seg_cb(void *ud, const es_file_info *info) {
  seg_find *sf = ud;
  if (info->kind == ES_FILE_SEGMENT && info->tenant != NULL &&
      strcmp(info->tenant, "t0") == 0 && sf->path[0] == '\0') {
    snprintf(sf->path, sizeof sf->path, "%s/%s", DATA_DIR, info->path);
    sf->bytes = info->bytes;
  }
  return 0;
}

typedef struct problems {
  int n;
  char path[ES_PATH_MAX];
  uint64_t offset;
  char what[256];
} problems;

static void problem_cb(void *ud, const char *path, uint64_t offset,
                       const char *what) {
  problems *p = ud;
  if (p->n++ == 0) {
    snprintf(p->path, sizeof p->path, "%s", path);
    p->offset = offset;
    snprintf(p->what, sizeof p->what, "%s", what);
  }
}

/* A flipped byte in a segment's first block: the reopen works (footers
 * are intact), the scan reports ES_ECORRUPT, es__verify_vfs names the
 * file and an offset. */
START_TEST(test_segment_corruption) {
  es_vfs *vfs = make_vfs(&main_load, 0);
  run r;
  run_init(&r, vfs, &main_load, "segment corruption");
  es_db *db = open_and_append(&r, 9); /* t0 gets batches 0, 3, 6 */
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  seg_find sf;
  memset(&sf, 0, sizeof sf);
  ck_assert_int_eq(es__inspect_vfs(vfs, DATA_DIR, seg_cb, &sf), ES_OK);
  ck_assert_msg(sf.path[0] != '\0', "no segment of t0 found by inspect");
  const uint64_t off = 16 + 1; /* inside the first block after the header */
  ck_assert_int_eq(memvfs_flip_byte(vfs, sf.path, off, 0x10), ES_OK);
  ck_assert_int_eq(es__open_vfs(&r.opts, vfs, &db), ES_OK);
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = "t0";
  es_cursor *cur = NULL;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  es_event ev;
  int rc, rows = 0;
  while ((rc = es_cursor_next(cur, &ev)) == 1)
    rows++;
  char detail[1024];
  snprintf(detail, sizeof detail, "%s", es_errdetail());
  const char *base = strrchr(sf.path, '/') + 1;
  printf("segment corruption in %s at %" PRIu64 ": scan -> %s after %d "
         "rows; detail: %s\n",
         sf.path, off, es_strerror(rc), rows, detail);
  ck_assert_msg(rc == ES_ECORRUPT, "es_cursor_next returned %d, want %d", rc,
                ES_ECORRUPT);
  ck_assert_msg(strstr(detail, base) != NULL,
                "es_errdetail() does not name %s: %s", base, detail);
  /* The cursor stays at the error. */
  ck_assert_int_eq(es_cursor_next(cur, &ev), ES_ECORRUPT);
  es_cursor_close(cur);
  ck_assert_int_eq(es_close(db), ES_OK);
  problems p;
  memset(&p, 0, sizeof p);
  rc = es__verify_vfs(vfs, DATA_DIR, problem_cb, &p);
  printf("verify -> %s, %d problem(s); first: %s at %" PRIu64 ": %s\n",
         es_strerror(rc), p.n, p.path, p.offset, p.what);
  ck_assert_int_eq(rc, ES_ECORRUPT);
  ck_assert_int_ge(p.n, 1);
  ck_assert_msg(strstr(p.path, base) != NULL, "verify named %s, want %s",
                p.path, base);
  ck_assert_uint_ge(p.offset, 16);
  ck_assert_uint_lt(p.offset, sf.bytes);
  memvfs_destroy(vfs);
}
END_TEST

/* Creates a store with es_open, appends three batches, closes, cuts the
 * power and checks that the acknowledged batches survived. */
static void fresh_store_round(es_vfs *vfs, const char *ctx) {
  run r;
  run_init(&r, vfs, &main_load, ctx);
  es_db *db = open_and_append(&r, 3);
  ck_assert_int_eq(es_close(db), ES_OK);
  crash_and_check(&r, 0, 0);
  ck_assert_msg(!r.bad, "%s", r.why);
}

/* es_open must make what it creates durable before acknowledging appends
 * into it.  Here the data directory exists (durably) but is empty, so
 * only the directories es_open makes inside it are at stake. */
START_TEST(test_new_store_in_existing_dir_durable) {
  es_vfs *vfs = memvfs_create();
  ck_assert_int_eq(memvfs_mkdir_durable(vfs, DATA_DIR), ES_OK);
  fresh_store_round(vfs, "new store in an existing directory");
  memvfs_destroy(vfs);
}
END_TEST

/* Here the data directory itself is missing: es_open creates it, and its
 * entry in the parent directory must be synced too. */
START_TEST(test_new_data_dir_durable) {
  es_vfs *vfs = memvfs_create(); /* no /db at all */
  fresh_store_round(vfs, "new data directory");
  memvfs_destroy(vfs);
}
END_TEST

/* Two handles on one directory: the second open is ES_EBUSY. */
START_TEST(test_lock_excludes) {
  es_vfs *vfs = make_vfs(&small_load, 0);
  run r;
  run_init(&r, vfs, &small_load, "lock");
  es_db *db = NULL, *db2 = NULL;
  ck_assert_int_eq(es__open_vfs(&r.opts, vfs, &db), ES_OK);
  ck_assert_int_eq(es__open_vfs(&r.opts, vfs, &db2), ES_EBUSY);
  ck_assert_ptr_null(db2);
  ck_assert_int_eq(es_close(db), ES_OK);
  ck_assert_int_eq(es__open_vfs(&r.opts, vfs, &db2), ES_OK);
  ck_assert_int_eq(es_close(db2), ES_OK);
  memvfs_destroy(vfs);
}
END_TEST

static Suite *fault_suite(void) {
  Suite *s = suite_create("fault");
  TCase *direct = tcase_create("direct");
  tcase_set_timeout(direct, 60);
  tcase_add_test(direct, test_clean_cycle);
  tcase_add_test(direct, test_crash_during_recovery);
  tcase_add_test(direct, test_lock_excludes);
  tcase_add_test(direct, test_new_store_in_existing_dir_durable);
  tcase_add_test(direct, test_new_data_dir_durable);
  tcase_add_test(direct, test_torn_tail);
  tcase_add_test(direct, test_wal_middle_corruption);
  tcase_add_test(direct, test_segment_corruption);
  suite_add_tcase(s, direct);
  TCase *loops = tcase_create("loops");
  tcase_set_timeout(loops, 300);
  tcase_add_test(loops, test_crash_at_k);
  tcase_add_test(loops, test_crash_at_k_2shards);
  tcase_add_test(loops, test_crash_at_k_torn);
  tcase_add_test(loops, test_crash_at_k_fresh);
  tcase_add_test(loops, test_io_eio_once);
  tcase_add_test(loops, test_io_eio_persistent);
  tcase_add_test(loops, test_io_nospc_once);
  tcase_add_test(loops, test_io_nospc_persistent);
  tcase_add_test(loops, test_io_eio_once_2shards);
  tcase_add_test(loops, test_alloc_failures);
  suite_add_tcase(s, loops);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(fault_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
