/*
 * test_sim.c -- seeded random simulation of the library against a model.
 *
 * Each seed drives one store on memvfs (tests/fault/memvfs.h) through
 * es__open_vfs with a random sequence of operations, and keeps beside it
 * the simplest model that can say what the store must answer: per tenant,
 * the list of acknowledged events in append order.  A scan of [from, to)
 * with an optional person filter must return exactly the model's events
 * in that range, stably sorted by ts (ties in append order), with the
 * fields they were appended with.
 *
 * Operations (weighted, chosen by a splitmix64 generator seeded by the
 * seed; see op_pick):
 *
 *   append      a batch of 1..50 events for one of five tenants; ts from a
 *               small range (equal ts are common), persons from a small
 *               pool, NULL and "" strings, unique message ids;
 *   flush       es_flush of one tenant or of all (NULL);
 *   scan        random range (empty, full, partial, inverted) and person;
 *   reopen      es_close + es__open_vfs, sometimes with other options;
 *   power cut   the durable state is frozen (memvfs_crash_at), the handle
 *               closed, memvfs_crash or memvfs_crash_torn, reopen: every
 *               acknowledged batch must be there (sync_mode is FULL);
 *   files       es__verify_vfs must report no problem and es__inspect_vfs
 *               row totals (segments + ES_FILE_UNFLUSHED) must equal the
 *               model's count per tenant, with the handle closed (then
 *               reopened) or beside the open handle once quiesced (see
 *               quiesce: no flush or WAL reclaim may run meanwhile).
 *
 * Two deterministic tests (tcase "live_readers", not seeded) cover what
 * the quiescing avoids: a live es_verify / es_inspect that has listed a
 * WAL directory when the store reclaims a file of it.  Seeded runs met
 * that race only now and then (see seeds.txt); a gate in the reader's vfs
 * makes it happen every time.
 *
 * Beside those, a second generator of its own (so that the operations
 * above, and the seeds in seeds.txt, stay what they were) adds after one
 * main operation in four one of:
 *
 *   rule put    es_rule_put of r0..r3 (random match, atLeast, within);
 *   rule delete es_rule_delete (ES_ENOTFOUND when the model has none);
 *   unlink      es_identity_unlink of two persons, often a pair an
 *               identify event links, at or before a random time;
 *   rebuild     es_rollup_rebuild over a random range: the report must
 *               find no rollup that differs from its rows;
 *   reads       es_query (rollup count, count by type, exact stitched
 *               uniques, filter.person count and uniques), a timeline of
 *               one person, es_rule_members and es_rule_persons of every
 *               rule, against brute-force answers from the model's
 *               events: identity as
 *               a union of the identify events no unlink covers (the
 *               rules of tests/unit/bf_identity.h; sim events carry no
 *               previous_id, and six ids never reach the size cap), rule
 *               members by counting each visitor's matching events in
 *               (T - within, T] for T at or after the tenant's latest, and
 *               per person by summing those of its stitched ids (links
 *               that arrived after the events, and unlinks, included).
 *
 * The model takes a rule write or an unlink when its call returns ES_OK
 * (it is durable then): after a power cut it must be there.
 *
 * After every reopen every tenant is scanned whole, every tenant's rules
 * are checked, and one tenant gets the read checks.  The options vary per
 * seed (shards 1 or 2, seal_bytes and wal_file_bytes 4 KiB..64 KiB so that
 * seals by size and WAL rollovers happen, wal_compress, sometimes a
 * memtable budget small enough for pressure sealing, sometimes a short
 * seal age).  Background seals run on library threads, so a seed fixes
 * the operations but not every interleaving with the flusher.
 *
 * A seed prints nothing unless it fails; a failure prints the seed, the
 * options, the operation index, the last operations and the first
 * difference.  Seeds that ever failed are listed in seeds.txt (next to
 * this file) and replayed first, as permanent regression tests.
 *
 * Environment:
 *   ES_SIM_SEEDS=n     random seeds 1..n (default 200; meson sets 100)
 *   ES_SIM_SEED=s      run only seed s (seeds.txt is skipped)
 *   ES_SIM_OPS=n       operations per seed (default 200)
 *   ES_SIM_TRACE=1     print every operation
 *   ES_SIM_HANG_S=n    an operation that takes longer is a hang (default 60)
 *   ES_SIM_LIVE=0      verify/inspect only with the handle closed
 *   ES_SIM_EXTRA=0     no rules, unlinks, rebuilds or read checks (the
 *                      main operations alone, as before they existed)
 */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "memvfs.h"
#include "store/db.h"
#include "store/dbint.h"
#include "store/dedupe.h"

#ifndef SIM_SEEDS_FILE
#define SIM_SEEDS_FILE "seeds.txt"
#endif

#define DATA_DIR "/db"
#define NTENANTS 5      /* tenants appended to: t0..t4 */
#define NTENANTS_SCAN 6 /* t5 is never appended to: scans must be empty */
#define NPERSONS 6      /* person ids p0..p5 */
#define BATCH_EVENTS_MAX 50
#define TS_BASE_US INT64_C(1700000000000000)
#define TS_STEPS 40  /* ordinary ts: TS_BASE_US + k * 1000, k < TS_STEPS */
#define OPLOG_LEN 24 /* operations shown when a seed fails */
#define NRULES 4     /* rule names r0..r3 per tenant */
#define DESC_LEN 160
#define WHY_LEN 1024

/* ----------------------------------------------------------------------
 * Random numbers: splitmix64, so that a seed names one whole run
 * ---------------------------------------------------------------------- */

typedef struct rng {
  uint64_t s;
} rng;

static uint64_t rng_next(rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0.  The modulo bias is irrelevant here. */
static uint32_t rng_below(rng *r, uint32_t n) {
  return (uint32_t)(rng_next(r) % n);
}

/* 1 with probability 1/n. */
static int rng_one_in(rng *r, uint32_t n) { return rng_below(r, n) == 0; }

/* ----------------------------------------------------------------------
 * The model: per tenant, the acknowledged events in append order
 * ---------------------------------------------------------------------- */

/* One event as the model remembers it.  The has_* flags keep NULL apart
 * from "" (the store must too). */
#define SIM_DEDUPE_US (INT64_C(7) * 86400 * 1000000) /* the default */

typedef struct mev {
  int64_t ts_us;
  int type;
  char msg[32], anon[8], user[8], name[8], path[8];
  char has_anon, has_user, has_name, has_path;
  char *props; /* malloc'd, or NULL when absent */
} mev;

typedef struct mtenant {
  mev *v;
  size_t n, cap;
} mtenant;

static const char *opt_str(const char *s, int has) { return has ? s : NULL; }

static void mtenant_reserve(mtenant *t, size_t more) {
  if (t->n + more <= t->cap)
    return;
  size_t cap = t->cap ? t->cap : 64;
  while (cap < t->n + more)
    cap *= 2;
  mev *v = realloc(t->v, cap * sizeof *v);
  ck_assert_ptr_nonnull(v);
  t->v = v;
  t->cap = cap;
}

static void mtenant_free(mtenant *t) {
  for (size_t i = 0; i < t->n; i++)
    free(t->v[i].props);
  free(t->v);
  memset(t, 0, sizeof *t);
}

/* Whether the model's event matches a scan's person filter. */
static int mev_has_person(const mev *e, const char *person) {
  if (person == NULL)
    return 1;
  return (e->has_user && strcmp(e->user, person) == 0) ||
         (e->has_anon && strcmp(e->anon, person) == 0);
}

/* A rule as the model keeps it (what es_rule_put returned ES_OK for). */
typedef struct mrule {
  int present;
  int type;               /* 0: any */
  char event[8], path[8]; /* "": any */
  int at_least;
  int64_t within_us;
  char json[160];
} mrule;

/* An unlink that returned ES_OK: persons p<a>, p<b>, at or before ts. */
typedef struct munlink {
  int a, b;
  int64_t ts;
} munlink;

/* ----------------------------------------------------------------------
 * One simulation run (one seed)
 * ---------------------------------------------------------------------- */

typedef struct sim {
  uint64_t seed;
  rng r;
  es_vfs *vfs;
  es_db *db;            /* NULL while closed */
  es_options opts;      /* the options of the next open */
  int shards_created;   /* the shard count the store was created with */
  mtenant t[NTENANTS];  /* the model */
  uint64_t next_msg;    /* message ids are unique within the seed */
  uint64_t last_lsn[2]; /* per shard: LSNs never go back */
  rng x;                /* rules, unlinks, rebuilds and read checks */
  mrule rules[NTENANTS][NRULES];
  munlink *unlinks[NTENANTS];
  size_t nunlinks[NTENANTS], capunlinks[NTENANTS];
  int op;              /* index of the running operation */
  int nlog;            /* operations logged (main and extra) */
  char desc[DESC_LEN]; /* what the running operation is */
  char oplog[OPLOG_LEN][DESC_LEN + 16];
  int failed;
  char why[WHY_LEN]; /* the first difference */
  int trace;
  int live_checks; /* verify/inspect beside the open handle too */
} sim;

static const char *const tenant_names[NTENANTS_SCAN] = {"t0", "t1", "t2",
                                                        "t3", "t4", "t5"};
static const char *const persons[NPERSONS] = {"p0", "p1", "p2",
                                              "p3", "p4", "p5"};

/* Records the first failure of the run; later ones are ignored, because
 * the first difference is the interesting one. */
static void sim_fail(sim *s, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sim_fail(sim *s, int line, const char *fmt, ...) {
  if (s->failed++)
    return;
  int n = snprintf(s->why, sizeof s->why, "line %d: ", line);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->why + n, sizeof s->why - (size_t)n, fmt, ap);
  va_end(ap);
}

#define FAIL(s, ...) sim_fail((s), __LINE__, __VA_ARGS__)

/* Names the running operation (for the log, the trace and the watchdog). */
static void sim_desc(sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sim_desc(sim *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->desc, sizeof s->desc, fmt, ap);
  va_end(ap);
  s->nlog++;
  snprintf(s->oplog[s->nlog % OPLOG_LEN], sizeof s->oplog[0], "%4d %s", s->op,
           s->desc);
  if (s->trace) {
    printf("seed %" PRIu64 " op %d: %s\n", s->seed, s->op, s->desc);
    fflush(stdout);
  }
}

/* ----------------------------------------------------------------------
 * Watchdog: an operation that never returns is a failure too
 * ---------------------------------------------------------------------- */

static int live_checks = 1; /* ES_SIM_LIVE */
static int extra_ops = 1;   /* ES_SIM_EXTRA */
static char hang_msg[WHY_LEN];
static unsigned hang_s = 60;

static void on_alarm(int sig) {
  (void)sig;
  ssize_t w = write(STDOUT_FILENO, hang_msg, strlen(hang_msg));
  (void)w;
  _exit(3);
}

/* Arms the watchdog for the operation just described. */
static void watchdog_arm(const sim *s) {
  snprintf(hang_msg, sizeof hang_msg,
           "sim: seed %" PRIu64 " op %d (%s): no progress for %u s (hang)\n",
           s->seed, s->op, s->desc, hang_s);
  alarm(hang_s);
}

/* ----------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------- */

/* Rolls the options that may change from one open to the next.  The shard
 * count is rolled too: a later open must use the stored count. */
static void roll_options(sim *s) {
  es_options *o = &s->opts;
  o->shards = 1 + (int)rng_below(&s->r, 2);
  o->seal_bytes =
      rng_one_in(&s->r, 5) ? (size_t)1 << 30 : 4096 + rng_below(&s->r, 61441);
  o->wal_file_bytes = 4096 + rng_below(&s->r, 61441);
  o->wal_compress = (int)rng_below(&s->r, 2);
  o->memtable_budget_bytes = rng_one_in(&s->r, 3)
                                 ? 65536 + rng_below(&s->r, 3 * 65536)
                                 : (size_t)1 << 30;
  /* A short seal age makes the writers seal on their own timer. */
  o->seal_age_us = rng_one_in(&s->r, 6) ? 2000 : INT64_MAX / 4;
  /* One seed in three compacts on the compactor thread after flushes.
   * Drawn from its own generator so that the operations of every seed
   * (and of the seeds in seeds.txt) are what they were before. */
  rng c = {s->seed ^ UINT64_C(0xc0c0a5e5)};
  o->compact_segments = rng_one_in(&c, 3) ? 2 + (int)rng_below(&c, 3) : 0;
}

static void format_options(const es_options *o, char *buf, size_t len) {
  snprintf(buf, len,
           "shards %d, seal_bytes %zu, wal_file_bytes %zu, wal_compress %d, "
           "memtable_budget_bytes %zu, seal_age_us %" PRId64
           ", compact_segments %d",
           o->shards, o->seal_bytes, o->wal_file_bytes, o->wal_compress,
           o->memtable_budget_bytes, o->seal_age_us, o->compact_segments);
}

/* ----------------------------------------------------------------------
 * Generating events
 * ---------------------------------------------------------------------- */

/* A mostly small range, so equal timestamps are common; rarely the
 * extremes the API allows. */
static int64_t gen_ts(rng *r) {
  uint32_t k = rng_below(r, 200);
  if (k == 0)
    return 0;
  if (k == 1)
    return INT64_MAX - 1;
  return TS_BASE_US + (int64_t)rng_below(r, TS_STEPS) * 1000;
}

/* Fills e (already in the model's storage) with a random event. */
static void gen_event(sim *s, mev *e) {
  rng *r = &s->r;
  memset(e, 0, sizeof *e);
  e->ts_us = gen_ts(r);
  e->type = ES_TYPE_TRACK + (int)rng_below(r, 6);
  snprintf(e->msg, sizeof e->msg, "m%" PRIu64, s->next_msg++);
  uint32_t a = rng_below(r, 8); /* 1/8 NULL, 1/8 "", else a person */
  e->has_anon = a != 0;
  strcpy(e->anon, a == 1 ? "" : persons[rng_below(r, NPERSONS)]);
  uint32_t u = rng_below(r, 12); /* 1/3 NULL, 1/12 "", else a person */
  e->has_user = u >= 4;
  strcpy(e->user, u == 4 ? "" : persons[rng_below(r, NPERSONS)]);
  e->has_name = e->type <= ES_TYPE_SCREEN || rng_one_in(r, 4);
  snprintf(e->name, sizeof e->name, "e%u", rng_below(r, 4));
  e->has_path = e->type == ES_TYPE_PAGE;
  snprintf(e->path, sizeof e->path, "/x%u", rng_below(r, 5));
  if (rng_one_in(r, 4))
    return; /* no properties */
  size_t hex = rng_one_in(r, 20) ? 1500 : rng_below(r, 200);
  e->props = malloc(hex + 16);
  ck_assert_ptr_nonnull(e->props);
  size_t n = (size_t)sprintf(e->props, "{\"k\":\"");
  for (size_t i = 0; i < hex; i++)
    e->props[n++] = "0123456789abcdef"[rng_below(r, 16)];
  strcpy(e->props + n, "\"}");
}

/* The es_event a model event was appended as. */
static void mev_to_event(const mev *m, es_event *ev) {
  memset(ev, 0, sizeof *ev);
  ev->ts_us = m->ts_us;
  ev->type = m->type;
  ev->message_id = m->msg;
  ev->event = opt_str(m->name, m->has_name);
  ev->anonymous_id = opt_str(m->anon, m->has_anon);
  ev->user_id = opt_str(m->user, m->has_user);
  ev->path = opt_str(m->path, m->has_path);
  ev->properties = m->props;
}

/* ----------------------------------------------------------------------
 * Comparing scans with the model
 * ---------------------------------------------------------------------- */

static int str_eq(const char *a, const char *b) {
  if (a == NULL || b == NULL)
    return a == b;
  return strcmp(a, b) == 0;
}

static const char *show(const char *p) { return p ? p : "(NULL)"; }

/* Compares every field the store must keep; returns the name of the first
 * field that differs, or NULL. */
static const char *event_diff(const mev *want, const es_event *got) {
  es_event w;
  mev_to_event(want, &w);
  if (!str_eq(got->message_id, w.message_id))
    return "message_id";
  if (got->ts_us != w.ts_us)
    return "ts_us";
  if (got->type != w.type)
    return "type";
  if (!str_eq(got->event, w.event))
    return "event";
  if (!str_eq(got->anonymous_id, w.anonymous_id))
    return "anonymous_id";
  if (!str_eq(got->user_id, w.user_id))
    return "user_id";
  if (!str_eq(got->path, w.path))
    return "path";
  if (!str_eq(got->properties, w.properties))
    return "properties";
  if (got->previous_id || got->group_id || got->url || got->referrer ||
      got->user_agent || got->ip)
    return "a field that was appended as NULL";
  return NULL;
}

/* A model event's position in the expected answer. */
typedef struct want_ref {
  int64_t ts_us;
  size_t i; /* index in the tenant's append order */
} want_ref;

static int want_cmp(const void *a, const void *b) {
  const want_ref *x = a, *y = b;
  if (x->ts_us != y->ts_us)
    return x->ts_us < y->ts_us ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i; /* ties: append order */
}

/* Scans tenant ti over [from, to) with an optional person and compares the
 * whole ordered answer with the model's.  An inverted range may be refused
 * with ES_EINVAL or answered empty. */
static void check_scan(sim *s, int ti, int64_t from, int64_t to,
                       const char *person) {
  const mtenant *mt = ti < NTENANTS ? &s->t[ti] : NULL;
  size_t n_model = mt ? mt->n : 0, n_want = 0;
  want_ref *want = malloc((n_model + 1) * sizeof *want);
  ck_assert_ptr_nonnull(want);
  for (size_t i = 0; i < n_model; i++) {
    const mev *e = &mt->v[i];
    if (e->ts_us >= from && e->ts_us < to && mev_has_person(e, person))
      want[n_want++] = (want_ref){e->ts_us, i};
  }
  qsort(want, n_want, sizeof *want, want_cmp);

  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = tenant_names[ti];
  spec.from_us = from;
  spec.to_us = to;
  spec.person = person;
  es_cursor *cur = NULL;
  int rc = es_scan(s->db, &spec, &cur);
  if (rc != ES_OK) {
    if (!(rc == ES_EINVAL && from > to))
      FAIL(s, "es_scan failed: %d (%s) %s", rc, es_strerror(rc),
           es_errdetail());
    free(want);
    return;
  }
  es_event ev;
  size_t k = 0;
  while ((rc = es_cursor_next(cur, &ev)) == 1) {
    if (k >= n_want) {
      FAIL(s,
           "scan returned more than the %zu events expected: extra at "
           "position %zu is %s ts %" PRId64,
           n_want, k, show(ev.message_id), ev.ts_us);
      break;
    }
    const mev *w = &mt->v[want[k].i];
    const char *field = event_diff(w, &ev);
    if (field) {
      FAIL(s,
           "position %zu of %zu differs in %s: want %s ts %" PRId64
           " (append #%zu), got %s ts %" PRId64 " (user %s anon %s)",
           k, n_want, field, w->msg, w->ts_us, want[k].i, show(ev.message_id),
           ev.ts_us, show(ev.user_id), show(ev.anonymous_id));
      break;
    }
    k++;
  }
  if (rc < 0)
    FAIL(s, "es_cursor_next failed at position %zu: %d (%s) %s", k, rc,
         es_strerror(rc), es_errdetail());
  else if (rc == 0 && k < n_want)
    FAIL(s,
         "scan ended after %zu events, want %zu; first missing: %s ts %" PRId64
         " (append #%zu)",
         k, n_want, mt->v[want[k].i].msg, mt->v[want[k].i].ts_us, want[k].i);
  es_cursor_close(cur);
  free(want);
}

static void check_reads(sim *s, int ti);
static void check_rules(sim *s, int ti);

/* Scans every tenant whole (after a reopen) and checks its query,
 * timeline and rule answers. */
static void check_all(sim *s) {
  for (int ti = 0; ti < NTENANTS_SCAN && !s->failed; ti++)
    check_scan(s, ti, INT64_MIN, INT64_MAX, NULL);
  /* every tenant's rules (in memory: cheap), one tenant's queries and a
   * timeline (scans: one tenant keeps the seed's time bounded) */
  for (int ti = 0; ti < NTENANTS && extra_ops && !s->failed; ti++)
    check_rules(s, ti);
  if (extra_ops && !s->failed)
    check_reads(s, (int)rng_below(&s->x, NTENANTS));
}

/* ----------------------------------------------------------------------
 * Operations
 * ---------------------------------------------------------------------- */

static void op_append(sim *s) {
  int ti = (int)rng_below(&s->r, NTENANTS);
  size_t count = rng_one_in(&s->r, 3) ? 1 + rng_below(&s->r, 5)
                                      : 1 + rng_below(&s->r, BATCH_EVENTS_MAX);
  mtenant *mt = &s->t[ti];
  es_event evs[BATCH_EVENTS_MAX];
  mtenant_reserve(mt, count);
  uint8_t dup_want[BATCH_EVENTS_MAX], dup_got[BATCH_EVENTS_MAX];
  uint32_t ndup = 0;
  for (size_t i = 0; i < count; i++) {
    mev *e = &mt->v[mt->n + i];
    gen_event(s, e);
    int again = mt->n + i > 0 && rng_one_in(&s->r, 8);
    if (again) /* a retry: an id again (fresh ones are unique) */
      strcpy(e->msg, mt->v[rng_below(&s->r, (uint32_t)(mt->n + i))].msg);
    dup_want[i] = 0; /* idempotent append: held within 7 days? */
    for (size_t k = 0; again && k < mt->n + i && !dup_want[i]; k++) {
      const mev *o = &mt->v[k];
      int64_t d =
          o->ts_us > e->ts_us ? o->ts_us - e->ts_us : e->ts_us - o->ts_us;
      dup_want[i] = (k < mt->n || !dup_want[k - mt->n]) &&
                    strcmp(o->msg, e->msg) == 0 && d <= SIM_DEDUPE_US;
    }
    ndup += dup_want[i];
    mev_to_event(e, &evs[i]);
  }
  sim_desc(s, "append %s x%zu (%s..%s, %u repeated)", tenant_names[ti], count,
           mt->v[mt->n].msg, mt->v[mt->n + count - 1].msg, ndup);
  watchdog_arm(s);
  es_receipt rec;
  int rc =
      es_append_flagged(s->db, tenant_names[ti], evs, count, &rec, dup_got);
  if (rc != ES_OK) {
    FAIL(s, "es_append failed: %d (%s) %s", rc, es_strerror(rc),
         es_errdetail());
    for (size_t i = 0; i < count; i++)
      free(mt->v[mt->n + i].props);
    return;
  }
  /* acknowledged: the model takes what was not a duplicate */
  size_t kept = mt->n;
  for (size_t i = 0; i < count; i++) {
    if (dup_got[i] != dup_want[i])
      FAIL(s, "event %zu (%s): duplicate %d, want %d", i, evs[i].message_id,
           dup_got[i], dup_want[i]);
    if (dup_want[i])
      free(mt->v[mt->n + i].props);
    else
      mt->v[kept++] = mt->v[mt->n + i];
  }
  mt->n = kept;
  if (rec.events_count != count || rec.duplicates_count != ndup)
    FAIL(s, "receipt says %u events, %u duplicates; want %zu, %u",
         rec.events_count, rec.duplicates_count, count, ndup);
  if (rec.stored_count == 0)
    return; /* no LSN: nothing was written */
  if (rec.shard >= (uint32_t)s->shards_created) {
    FAIL(s, "receipt shard %u, but the store has %d shards", rec.shard,
         s->shards_created);
    return;
  }
  if (rec.lsn <= s->last_lsn[rec.shard])
    FAIL(s, "LSN went back on shard %u: %" PRIu64 " after %" PRIu64, rec.shard,
         rec.lsn, s->last_lsn[rec.shard]);
  s->last_lsn[rec.shard] = rec.lsn;
}

static void op_flush(sim *s) {
  const char *tenant =
      rng_one_in(&s->r, 3) ? NULL : tenant_names[rng_below(&s->r, NTENANTS)];
  sim_desc(s, "flush %s", tenant ? tenant : "(all)");
  watchdog_arm(s);
  int rc = es_flush(s->db, tenant);
  if (rc != ES_OK)
    FAIL(s, "es_flush failed: %d (%s) %s", rc, es_strerror(rc), es_errdetail());
}

/* A scan bound: usually on the ts grid (so bounds hit equal timestamps),
 * sometimes between grid points, sometimes an extreme. */
static int64_t gen_bound(rng *r) {
  uint32_t k = rng_below(r, 20);
  if (k == 0)
    return 0;
  if (k == 1)
    return INT64_MAX - 1;
  int64_t b = TS_BASE_US + ((int64_t)rng_below(r, TS_STEPS + 4) - 2) * 1000;
  return rng_one_in(r, 5) ? b + 500 : b;
}

static void op_scan(sim *s) {
  rng *r = &s->r;
  int ti = (int)rng_below(r, NTENANTS_SCAN);
  int64_t from = INT64_MIN, to = INT64_MAX;
  uint32_t shape = rng_below(r, 20);
  if (shape == 0) { /* empty */
    from = to = gen_bound(r);
  } else if (shape == 1) { /* inverted */
    from = gen_bound(r);
    to = from - 1000;
  } else if (shape >= 5) { /* partial; 2..4 stay full */
    from = rng_one_in(r, 6) ? INT64_MIN : gen_bound(r);
    to = rng_one_in(r, 6) ? INT64_MAX : gen_bound(r);
    if (from > to) {
      int64_t x = from;
      from = to;
      to = x;
    }
  }
  const char *person = NULL; /* 3/10 a person, 1/20 "" or unknown */
  uint32_t p = rng_below(r, 10);
  if (p < 3)
    person = persons[rng_below(r, NPERSONS)];
  else if (p == 3)
    person = rng_one_in(r, 2) ? "" : "nobody";
  sim_desc(s, "scan %s [%" PRId64 ", %" PRId64 ") person %s", tenant_names[ti],
           from, to, person ? person : "(any)");
  watchdog_arm(s);
  check_scan(s, ti, from, to, person);
}

/* Opens the store and scans it whole. */
static void sim_open(sim *s) {
  int rc = es__open_vfs(&s->opts, s->vfs, &s->db);
  if (rc != ES_OK) {
    FAIL(s, "es__open_vfs failed: %d (%s) %s", rc, es_strerror(rc),
         es_errdetail());
    s->db = NULL;
    return;
  }
  /* One seed in two narrows dedupe's message-id fingerprints to 3 bits
   * (most row groups a Bloom filter names then match and are read and
   * compared), half of those with the indexes bounded at 4 KB (evicted
   * and rebuilt, or a segment read group by group).  From a generator of
   * its own, so that the operations of every seed stay what they were. */
  rng d = {s->seed ^ UINT64_C(0xdd5eed5eed)};
  if (rng_one_in(&d, 2))
    es__dedupe_test_tune(s->db, 0x7,
                         rng_one_in(&d, 2) ? 4096 : (size_t)64 << 20);
  check_all(s);
}

/* Closes the handle and checks that it let go of every vfs handle. */
static void sim_close(sim *s, int expect_ok) {
  int rc = es_close(s->db);
  s->db = NULL;
  if (expect_ok && rc != ES_OK)
    FAIL(s, "es_close failed: %d (%s) %s", rc, es_strerror(rc), es_errdetail());
  if (memvfs_open_handles(s->vfs) != 0)
    FAIL(s, "%ld vfs handles still open after es_close",
         memvfs_open_handles(s->vfs));
}

static void op_reopen(sim *s) {
  int roll = rng_one_in(&s->r, 3);
  if (roll)
    roll_options(s);
  sim_desc(s, "close + reopen%s", roll ? " (new options)" : "");
  watchdog_arm(s);
  sim_close(s, 1);
  if (!s->failed)
    sim_open(s);
}

/* Power cut: from now on nothing reaches the disk (memvfs_crash_at), the
 * library lets go (its writes fail), then the cut itself. */
static void op_power_cut(sim *s) {
  int torn = (int)rng_below(&s->r, 2);
  uint64_t torn_seed = rng_next(&s->r);
  sim_desc(s, "power cut%s + reopen", torn ? " (torn sectors)" : "");
  watchdog_arm(s);
  memvfs_crash_at(s->vfs, 1);
  sim_close(s, 0);
  memvfs_clear_faults(s->vfs);
  if (torn)
    memvfs_crash_torn(s->vfs, torn_seed);
  else
    memvfs_crash(s->vfs);
  if (!s->failed)
    sim_open(s);
}

/* Row totals per tenant as es_inspect reports them. */
typedef struct inspect_sum {
  sim *s;
  uint64_t rows[NTENANTS];
} inspect_sum;

static int inspect_cb(void *ud, const es_file_info *info) {
  inspect_sum *sum = ud;
  if (info->kind == ES_FILE_WAL)
    return 0;
  for (int ti = 0; ti < NTENANTS; ti++)
    if (info->tenant && strcmp(info->tenant, tenant_names[ti]) == 0) {
      sum->rows[ti] +=
          info->kind == ES_FILE_UNFLUSHED ? info->events : info->rows;
      return 0;
    }
  FAIL(sum->s, "es_inspect reports unknown tenant %s (%s)", show(info->tenant),
       show(info->path));
  return 0;
}

static void verify_cb(void *ud, const char *path, uint64_t offset,
                      const char *what) {
  FAIL((sim *)ud, "es_verify: %s at offset %" PRIu64 ": %s", show(path), offset,
       show(what));
}

/* es_verify and es_inspect over the directory as it is now, through vfs
 * (s->vfs itself, or a slow_vfs around it). */
static void check_files_now(sim *s, es_vfs *vfs) {
  int rc = es__verify_vfs(vfs, DATA_DIR, verify_cb, s);
  if (rc != ES_OK)
    FAIL(s, "es_verify returned %d (%s) %s", rc, es_strerror(rc),
         es_errdetail());
  inspect_sum sum = {s, {0}};
  rc = es__inspect_vfs(vfs, DATA_DIR, inspect_cb, &sum);
  if (rc != ES_OK)
    FAIL(s, "es_inspect returned %d (%s) %s", rc, es_strerror(rc),
         es_errdetail());
  for (int ti = 0; ti < NTENANTS && !s->failed; ti++)
    if (sum.rows[ti] != s->t[ti].n)
      FAIL(s, "es_inspect counts %" PRIu64 " rows for %s, the model %zu",
           sum.rows[ti], tenant_names[ti], s->t[ti].n);
}

/* Lets the background work of the open handle settle, with the public API
 * only.  The first es_flush(NULL) seals everything and waits for the
 * segments; the flusher then asks each shard writer to reclaim WAL files,
 * which it does after the next group it handles.  That group may be the
 * second flush's request (answered before the reclaim runs), so only the
 * third flush's request, handled in a later round, proves it done. */
static int quiesce(es_db *db) {
  int rc = ES_OK;
  for (int i = 0; i < 3 && rc == ES_OK; i++) {
    rc = es_flush(db, NULL);
    es__compact_wait_idle(db); /* a merge deletes files when it commits */
  }
  return rc;
}

/* Verify and inspect, either with the handle closed or beside it (as an
 * operator runs esctl beside a live server, which verify.c promises to
 * support).  Beside it, the store is quiesced first so that no flush
 * commits and no WAL file is reclaimed while they read: the row totals are
 * then exact.  (What happens when a reclaim does meet a live reader is
 * test_live_reader_meets_reclaim's business.) */
static void op_files(sim *s) {
  int live = (int)rng_below(&s->r, 2) && s->live_checks;
  sim_desc(s, "verify + inspect (%s)", live ? "flush all, live" : "closed");
  watchdog_arm(s);
  if (live) {
    int rc = quiesce(s->db);
    if (rc != ES_OK) {
      FAIL(s, "es_flush(NULL) failed: %d (%s) %s", rc, es_strerror(rc),
           es_errdetail());
      return;
    }
    check_files_now(s, s->vfs);
    return;
  }
  sim_close(s, 1);
  if (!s->failed)
    check_files_now(s, s->vfs);
  if (!s->failed)
    sim_open(s);
}

typedef void (*op_fn)(sim *);

/* ----------------------------------------------------------------------
 * Rules, unlinks, rollup rebuilds and the read checks (query, timeline,
 * members).  Drawn from s->x, a generator of their own, so that the
 * operations the main generator picks (and the seeds in seeds.txt) are
 * what they were before these existed.
 * ---------------------------------------------------------------------- */

/* A person's index p0..p5, or -1 ("" and anything else never link). */
static int person_index(const char *id, int has) {
  if (!has || id[0] != 'p' || id[1] < '0' || id[1] >= '0' + NPERSONS || id[2])
    return -1;
  return id[1] - '0';
}

/* Whether an unlink of the tenant covers an identify event linking ids a
 * and b at ts (either way round, unlink time at or after the event's). */
static int model_unlinked(const sim *s, int ti, int a, int b, int64_t ts) {
  for (size_t k = 0; k < s->nunlinks[ti]; k++) {
    const munlink *u = &s->unlinks[ti][k];
    if (((u->a == a && u->b == b) || (u->a == b && u->b == a)) && ts <= u->ts)
      return 1;
  }
  return 0;
}

/* The model's identity map of tenant ti: label[i] names p<i>'s person.
 * With six linkable ids the ES_IDENTITY_IDS_MAX cap never bites, so the
 * order links are applied in does not matter: a plain union. */
static void model_persons(const sim *s, int ti, int label[NPERSONS]) {
  for (int i = 0; i < NPERSONS; i++)
    label[i] = i;
  const mtenant *mt = &s->t[ti];
  for (size_t i = 0; i < mt->n; i++) {
    const mev *e = &mt->v[i];
    if (e->type != ES_TYPE_IDENTIFY)
      continue; /* sim events carry no previous_id: alias links nothing */
    int a = person_index(e->user, e->has_user);
    int b = person_index(e->anon, e->has_anon);
    if (a < 0 || b < 0 || a == b || model_unlinked(s, ti, a, b, e->ts_us))
      continue;
    int la = label[a], lb = label[b];
    for (int k = 0; k < NPERSONS; k++)
      if (label[k] == lb)
        label[k] = la;
  }
}

/* Whether e belongs to person pi's timeline / filter.person. */
static int mev_of_person(const mev *e, const int label[NPERSONS], int pi) {
  int u = person_index(e->user, e->has_user);
  int a = person_index(e->anon, e->has_anon);
  return (u >= 0 && label[u] == label[pi]) || (a >= 0 && label[a] == label[pi]);
}

/* The person an event counts for in exact uniques: its user_id when
 * present and not empty, else its anonymous_id; -1 for none. */
static int mev_unique_label(const mev *e, const int label[NPERSONS]) {
  int id = e->has_user && e->user[0]   ? person_index(e->user, 1)
           : e->has_anon && e->anon[0] ? person_index(e->anon, 1)
                                       : -2;
  if (id == -2)
    return -1;
  ck_assert_int_ge(id, 0); /* every non-empty id of the sim is a p<i> */
  return label[id];
}

/* Reads "count" and "uniques" of a query answer with at most one row. */
static int parse_counts(const char *json, long long *count, long long *uniq) {
  *count = *uniq = 0;
  if (strstr(json, "\"rows\":[]"))
    return 0;
  const char *c = strstr(json, "\"count\":");
  const char *u = strstr(json, "\"uniques\":");
  if (!c)
    return -1;
  *count = atoll(c + 8);
  if (u)
    *uniq = atoll(u + 10);
  return 0;
}

/* Runs one query; returns the owned answer or NULL after a FAIL. */
static char *run_query(sim *s, int ti, const char *spec) {
  char *out = NULL;
  int rc = es_query(s->db, tenant_names[ti], spec, &out);
  if (rc != ES_OK) {
    FAIL(s, "es_query(%s, %s) failed: %d (%s) %s", tenant_names[ti], spec, rc,
         es_strerror(rc), es_errdetail());
    return NULL;
  }
  return out;
}

/* Whole-tenant counts: from rollups (no person, not exact), by type from
 * rollups, and exact stitched uniques by scanning. */
static void check_query_totals(sim *s, int ti) {
  int label[NPERSONS];
  model_persons(s, ti, label);
  const mtenant *mt = &s->t[ti];
  long long n_page = 0, uniq = 0;
  int seen[NPERSONS] = {0};
  for (size_t i = 0; i < mt->n; i++) {
    n_page += mt->v[i].type == ES_TYPE_PAGE;
    int l = mev_unique_label(&mt->v[i], label);
    if (l >= 0 && !seen[l]++)
      uniq++;
  }
  static const char *const specs[3] = {
      "{\"aggregate\":[\"count\"]}",
      "{\"filter\":{\"type\":\"page\"},\"aggregate\":[\"count\"]}",
      "{\"aggregate\":[\"count\",\"uniques\"],\"exact\":true}"};
  const long long want_count[3] = {(long long)mt->n, n_page, (long long)mt->n};
  for (int k = 0; k < 3 && !s->failed; k++) {
    char *out = run_query(s, ti, specs[k]);
    if (!out)
      return;
    long long c, u;
    if (parse_counts(out, &c, &u) != 0 || c != want_count[k] ||
        (k == 2 && u != uniq))
      FAIL(s, "query %s %s answered %s; the model: count %lld, uniques %lld",
           tenant_names[ti], specs[k], out, want_count[k], k == 2 ? uniq : 0);
    es_free(out);
  }
}

/* One person: filter.person count and exact uniques, and the timeline. */
static void check_person(sim *s, int ti, int pi, size_t limit) {
  int label[NPERSONS];
  model_persons(s, ti, label);
  const mtenant *mt = &s->t[ti];
  want_ref *want = malloc((mt->n + 1) * sizeof *want);
  ck_assert_ptr_nonnull(want);
  size_t n_want = 0;
  long long uniq = 0;
  int seen[NPERSONS] = {0};
  for (size_t i = 0; i < mt->n; i++)
    if (mev_of_person(&mt->v[i], label, pi)) {
      want[n_want++] = (want_ref){mt->v[i].ts_us, i};
      int l = mev_unique_label(&mt->v[i], label);
      if (l >= 0 && !seen[l]++)
        uniq++;
    }
  char spec[160];
  snprintf(spec, sizeof spec,
           "{\"filter\":{\"person\":\"%s\"},\"aggregate\":[\"count\","
           "\"uniques\"]}",
           persons[pi]);
  char *out = run_query(s, ti, spec);
  if (out) {
    long long c, u;
    if (parse_counts(out, &c, &u) != 0 || c != (long long)n_want || u != uniq)
      FAIL(s, "query %s %s answered %s; the model: count %zu, uniques %lld",
           tenant_names[ti], spec, out, n_want, uniq);
    es_free(out);
  }
  /* the timeline: newest first, ties the later-appended first */
  qsort(want, n_want, sizeof *want, want_cmp);
  es_timeline *tl = NULL;
  int rc = es_timeline_open(s->db, tenant_names[ti], persons[pi], limit, &tl);
  if (rc != ES_OK) {
    FAIL(s, "es_timeline_open(%s, %s, %zu) failed: %d (%s) %s",
         tenant_names[ti], persons[pi], limit, rc, es_strerror(rc),
         es_errdetail());
    free(want);
    return;
  }
  size_t n_tl = n_want < limit ? n_want : limit, k = 0;
  es_event ev;
  while (!s->failed && (rc = es_timeline_next(tl, &ev)) == 1) {
    if (k >= n_tl) {
      FAIL(s, "timeline %s %s limit %zu: more than %zu events (extra %s)",
           tenant_names[ti], persons[pi], limit, n_tl, show(ev.message_id));
      break;
    }
    const mev *w = &mt->v[want[n_want - 1 - k].i];
    const char *field = event_diff(w, &ev);
    if (field)
      FAIL(s,
           "timeline %s %s limit %zu: position %zu of %zu differs in %s: "
           "want %s ts %" PRId64 ", got %s ts %" PRId64,
           tenant_names[ti], persons[pi], limit, k, n_tl, field, w->msg,
           w->ts_us, show(ev.message_id), ev.ts_us);
    k++;
  }
  if (!s->failed && rc == 0 && k < n_tl)
    FAIL(s, "timeline %s %s limit %zu: %zu events, want %zu (first missing %s)",
         tenant_names[ti], persons[pi], limit, k, n_tl,
         mt->v[want[n_want - 1 - k].i].msg);
  es_timeline_close(tl);
  free(want);
}

/* Whether e counts for rule r (its visitor id: anonymous_id when not
 * empty, else user_id when not empty), and the visitor's index. */
static int mrule_visitor(const mrule *r, const mev *e) {
  if ((r->type && e->type != r->type) ||
      (r->event[0] && (!e->has_name || strcmp(e->name, r->event) != 0)) ||
      (r->path[0] && (!e->has_path || strcmp(e->path, r->path) != 0)))
    return -1;
  return e->has_anon && e->anon[0]   ? person_index(e->anon, 1)
         : e->has_user && e->user[0] ? person_index(e->user, 1)
                                     : -1;
}

/* Rule ri of tenant ti against es_rule_persons at T (at or after the
 * tenant's latest event): the model stitches (model_persons: identify
 * events no unlink covers, whenever they arrived), sums each person's
 * matching events in (T - within, T] over its ids, and names a member by
 * its smallest id, listing every id linked to it. */
static void check_rule_persons(sim *s, int ti, int ri, int64_t at) {
  const mtenant *mt = &s->t[ti];
  const mrule *r = &s->rules[ti][ri];
  int label[NPERSONS], cnt[NPERSONS] = {0};
  model_persons(s, ti, label);
  for (size_t i = 0; i < mt->n; i++) {
    int v = mrule_visitor(r, &mt->v[i]);
    if (v >= 0 && mt->v[i].ts_us <= at && mt->v[i].ts_us > at - r->within_us)
      cnt[label[v]]++;
  }
  char want[512];
  size_t n = (size_t)snprintf(want, sizeof want, "\"persons\":[");
  int first = 1;
  for (int p = 0; p < NPERSONS; p++) {
    int smallest = 1; /* p names its person: no smaller id shares it */
    for (int q = 0; q < p; q++)
      smallest &= label[q] != label[p];
    if (!smallest || cnt[label[p]] < r->at_least)
      continue;
    n += (size_t)snprintf(want + n, sizeof want - n,
                          "%s{\"person\":\"%s\",\"ids\":[", first ? "" : ",",
                          persons[p]);
    for (int q = p, k = 0; q < NPERSONS; q++)
      if (label[q] == label[p])
        n += (size_t)snprintf(want + n, sizeof want - n, "%s\"%s\"",
                              k++ ? "," : "", persons[q]);
    n += (size_t)snprintf(want + n, sizeof want - n, "]}");
    first = 0;
  }
  snprintf(want + n, sizeof want - n, "]}");
  char name[8], *out = NULL;
  snprintf(name, sizeof name, "r%d", ri);
  int rc = es_rule_persons(s->db, tenant_names[ti], name, at, &out);
  if (rc != ES_OK)
    FAIL(s, "es_rule_persons(%s, %s) failed: %d (%s) %s", tenant_names[ti],
         name, rc, es_strerror(rc), es_errdetail());
  else if (!strstr(out, want))
    FAIL(s, "es_rule_persons(%s, %s = %s, at %" PRId64 ") is %s; want %s",
         tenant_names[ti], name, r->json, at, out, want);
  es_free(out);
}

/* Every rule of the model against es_rule_members at T, for T at and
 * after the tenant's latest event (where the documented definition --
 * at least atLeast matching events in (T - within, T] -- is what the
 * counters, which keep each visitor's latest atLeast times, answer);
 * and every deleted rule is gone. */
static void check_rules(sim *s, int ti) {
  const mtenant *mt = &s->t[ti];
  int64_t max = 1; /* at_us 0 would mean "now" */
  for (size_t i = 0; i < mt->n; i++)
    if (mt->v[i].ts_us > max)
      max = mt->v[i].ts_us;
  for (int ri = 0; ri < NRULES && !s->failed; ri++) {
    const mrule *r = &s->rules[ti][ri];
    char name[8];
    snprintf(name, sizeof name, "r%d", ri);
    int64_t at = max;
    if (r->present && max < INT64_MAX / 2 && rng_one_in(&s->x, 2))
      at = max + (int64_t)rng_below(&s->x, 2) * (r->within_us / 2);
    char *out = NULL;
    int rc = es_rule_members(s->db, tenant_names[ti], name, at, &out);
    if (!r->present) {
      if (rc != ES_ENOTFOUND)
        FAIL(s, "es_rule_members(%s, %s) of a deleted rule: %d (%s)",
             tenant_names[ti], name, rc, es_strerror(rc));
      es_free(out);
      continue;
    }
    if (rc != ES_OK) {
      FAIL(s, "es_rule_members(%s, %s) failed: %d (%s) %s", tenant_names[ti],
           name, rc, es_strerror(rc), es_errdetail());
      continue;
    }
    int cnt[NPERSONS] = {0};
    for (size_t i = 0; i < mt->n; i++) {
      int v = mrule_visitor(r, &mt->v[i]);
      if (v >= 0 && mt->v[i].ts_us <= at && mt->v[i].ts_us > at - r->within_us)
        cnt[v]++;
    }
    char want[128];
    size_t n = (size_t)snprintf(want, sizeof want, "\"members\":[");
    int first = 1;
    for (int v = 0; v < NPERSONS; v++)
      if (cnt[v] >= r->at_least) {
        n += (size_t)snprintf(want + n, sizeof want - n, "%s\"%s\"",
                              first ? "" : ",", persons[v]);
        first = 0;
      }
    snprintf(want + n, sizeof want - n, "]");
    if (!strstr(out, want))
      FAIL(s, "es_rule_members(%s, %s = %s, at %" PRId64 ") is %s; want %s",
           tenant_names[ti], name, r->json, at, out, want);
    es_free(out);
    if (!s->failed)
      check_rule_persons(s, ti, ri, at);
  }
}

/* All the read checks of one tenant, one random person's included. */
static void check_reads(sim *s, int ti) {
  check_query_totals(s, ti);
  if (!s->failed)
    check_person(s, ti, (int)rng_below(&s->x, NPERSONS),
                 1 + rng_below(&s->x, rng_one_in(&s->x, 3) ? 5 : 300));
  if (!s->failed)
    check_rules(s, ti);
}

static void op_rule_put(sim *s) {
  int ti = (int)rng_below(&s->x, NTENANTS), ri = (int)rng_below(&s->x, NRULES);
  mrule r = {.present = 1};
  static const char *const within[4] = {"1s", "1m", "1d", "366d"};
  static const int64_t within_us[4] = {1000000, 60000000, 86400000000,
                                       366 * INT64_C(86400000000)};
  int w = (int)rng_below(&s->x, 4);
  r.within_us = within_us[w];
  r.at_least = 1 + (int)rng_below(&s->x, 4);
  uint32_t ty = rng_below(&s->x, 3);
  r.type = ty == 1 ? ES_TYPE_PAGE : ty == 2 ? ES_TYPE_TRACK : 0;
  if (rng_one_in(&s->x, 2))
    snprintf(r.event, sizeof r.event, "e%u", rng_below(&s->x, 4));
  if (rng_one_in(&s->x, 3))
    snprintf(r.path, sizeof r.path, "/x%u", rng_below(&s->x, 5));
  char match[96] = "";
  size_t m = 0;
  if (r.type)
    m += (size_t)snprintf(match + m, sizeof match - m, "\"type\":\"%s\"",
                          r.type == ES_TYPE_PAGE ? "page" : "track");
  if (r.event[0])
    m += (size_t)snprintf(match + m, sizeof match - m, "%s\"event\":\"%s\"",
                          m ? "," : "", r.event);
  if (r.path[0])
    snprintf(match + m, sizeof match - m, "%s\"path\":\"%s\"", m ? "," : "",
             r.path);
  snprintf(r.json, sizeof r.json,
           "{\"name\":\"r%d\",\"match\":{%s},\"atLeast\":%d,\"within\":\"%s\"}",
           ri, match, r.at_least, within[w]);
  sim_desc(s, "rule put %s %s", tenant_names[ti], r.json);
  watchdog_arm(s);
  int rc = es_rule_put(s->db, tenant_names[ti], r.json);
  if (rc != ES_OK) {
    FAIL(s, "es_rule_put failed: %d (%s) %s", rc, es_strerror(rc),
         es_errdetail());
    return;
  }
  s->rules[ti][ri] = r; /* ES_OK: durable (RULES is synced before) */
  check_rules(s, ti);
}

static void op_rule_delete(sim *s) {
  int ti = (int)rng_below(&s->x, NTENANTS), ri = (int)rng_below(&s->x, NRULES);
  char name[8];
  snprintf(name, sizeof name, "r%d", ri);
  sim_desc(s, "rule delete %s %s", tenant_names[ti], name);
  watchdog_arm(s);
  int rc = es_rule_delete(s->db, tenant_names[ti], name);
  int want = s->rules[ti][ri].present ? ES_OK : ES_ENOTFOUND;
  if (rc != want)
    FAIL(s, "es_rule_delete returned %d (%s), want %d: %s", rc, es_strerror(rc),
         want, es_errdetail());
  s->rules[ti][ri].present = 0;
}

static void op_unlink(sim *s) {
  int ti = (int)rng_below(&s->x, NTENANTS);
  const mtenant *mt = &s->t[ti];
  int a = (int)rng_below(&s->x, NPERSONS),
      b = (a + 1 + (int)rng_below(&s->x, NPERSONS - 1)) % NPERSONS;
  int64_t ts = rng_one_in(&s->x, 3)
                   ? INT64_MAX - 1
                   : TS_BASE_US + (int64_t)rng_below(&s->x, TS_STEPS) * 1000;
  if (mt->n && rng_one_in(&s->x, 2)) { /* a pair an identify event links */
    const mev *e = &mt->v[rng_below(&s->x, (uint32_t)mt->n)];
    int u = person_index(e->user, e->has_user),
        v = person_index(e->anon, e->has_anon);
    if (e->type == ES_TYPE_IDENTIFY && u >= 0 && v >= 0 && u != v) {
      a = u;
      b = v;
      if (e->ts_us > 0 && !rng_one_in(&s->x, 3))
        ts = e->ts_us;
    }
  }
  sim_desc(s, "unlink %s %s %s ts %" PRId64, tenant_names[ti], persons[a],
           persons[b], ts);
  watchdog_arm(s);
  int rc =
      es_identity_unlink(s->db, tenant_names[ti], persons[a], persons[b], ts);
  if (rc != ES_OK) {
    FAIL(s, "es_identity_unlink failed: %d (%s) %s", rc, es_strerror(rc),
         es_errdetail());
    return;
  }
  if (s->nunlinks[ti] == s->capunlinks[ti]) { /* ES_OK: durable */
    s->capunlinks[ti] = s->capunlinks[ti] ? 2 * s->capunlinks[ti] : 16;
    s->unlinks[ti] =
        realloc(s->unlinks[ti], s->capunlinks[ti] * sizeof(munlink));
    ck_assert_ptr_nonnull(s->unlinks[ti]);
  }
  s->unlinks[ti][s->nunlinks[ti]++] = (munlink){a, b, ts};
  if (rng_one_in(&s->x, 2))
    check_person(s, ti, rng_one_in(&s->x, 2) ? a : b, 1000);
}

static void op_rollup_rebuild(sim *s) {
  int ti = (int)rng_below(&s->x, NTENANTS);
  int64_t from = INT64_MIN, to = INT64_MAX;
  if (rng_one_in(&s->x, 2)) {
    from = gen_bound(&s->x);
    to = gen_bound(&s->x);
    if (from > to) {
      int64_t t = from;
      from = to;
      to = t;
    }
  }
  sim_desc(s, "rollup rebuild %s [%" PRId64 ", %" PRId64 ")", tenant_names[ti],
           from, to);
  watchdog_arm(s);
  es_rollup_report rep;
  memset(&rep, 0xff, sizeof rep);
  int rc = es_rollup_rebuild(s->db, tenant_names[ti], from, to, &rep);
  if (rc != ES_OK) {
    FAIL(s, "es_rollup_rebuild failed: %d (%s) %s", rc, es_strerror(rc),
         es_errdetail());
    return;
  }
  /* nothing damages files here: every rollup file must agree with its
   * segment's rows (a missing one may follow a power cut) */
  if (rep.differing != 0 || rep.rewritten != rep.missing + rep.differing ||
      rep.missing > rep.segments)
    FAIL(s,
         "es_rollup_rebuild report: segments %" PRIu64 ", missing %" PRIu64
         ", differing %" PRIu64 ", rewritten %" PRIu64,
         rep.segments, rep.missing, rep.differing, rep.rewritten);
  check_query_totals(s, ti);
}

static void op_reads(sim *s) {
  int ti = (int)rng_below(&s->x, NTENANTS);
  sim_desc(s, "query + timeline + members %s", tenant_names[ti]);
  watchdog_arm(s);
  check_reads(s, ti);
}

/* After each operation of the main generator, one in four times, one of
 * these (from s->x). */
static void extra_pick(sim *s) {
  if (!extra_ops || !s->db || s->failed || !rng_one_in(&s->x, 4))
    return;
  static const struct {
    op_fn fn;
    uint32_t weight;
  } ops[] = {{op_rule_put, 3},
             {op_rule_delete, 2},
             {op_unlink, 3},
             {op_rollup_rebuild, 2},
             {op_reads, 6}};
  uint32_t x = rng_below(&s->x, 16);
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    if (x < ops[i].weight) {
      ops[i].fn(s);
      return;
    }
    x -= ops[i].weight;
  }
}

/* The operation mix: mostly appends and scans. */
static op_fn op_pick(rng *r) {
  static const struct {
    op_fn fn;
    uint32_t weight;
  } ops[] = {{op_append, 45}, {op_scan, 30},     {op_flush, 9},
             {op_reopen, 5},  {op_power_cut, 5}, {op_files, 6}};
  uint32_t total = 0;
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    total += ops[i].weight;
  uint32_t x = rng_below(r, total);
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    if (x < ops[i].weight)
      return ops[i].fn;
    x -= ops[i].weight;
  }
  return op_append;
}

/* Prints what a failed seed saw: enough to start debugging from. */
static void sim_report(const sim *s, const es_options *first_opts) {
  char o[256];
  format_options(first_opts, o, sizeof o);
  printf("sim: seed %" PRIu64 " FAILED at op %d (%s)\n", s->seed, s->op,
         s->desc);
  printf("  options at creation: %s\n", o);
  format_options(&s->opts, o, sizeof o);
  printf("  options now: %s\n", o);
  printf("  first difference: %s\n", s->why);
  printf("  last operations:\n");
  int first = s->nlog - OPLOG_LEN + 1 > 1 ? s->nlog - OPLOG_LEN + 1 : 1;
  for (int i = first; i <= s->nlog; i++)
    printf("    %s\n", s->oplog[i % OPLOG_LEN]);
  fflush(stdout);
}

/* Runs one seed for ops operations; returns 1 if it passed, 0 if it failed
 * (after printing why). */
static int run_seed(uint64_t seed, int ops, int trace) {
  sim *s = calloc(1, sizeof *s);
  ck_assert_ptr_nonnull(s);
  s->seed = seed;
  s->r.s = seed;
  s->x.s = seed ^ UINT64_C(0x5eed0fe7a11e0f75);
  s->trace = trace;
  s->live_checks = live_checks;
  s->vfs = memvfs_create();
  es_options_init(&s->opts);
  s->opts.data_dir = DATA_DIR;
  s->opts.sync_mode = ES_SYNC_FULL;
  roll_options(s);
  s->shards_created = s->opts.shards;
  es_options first_opts = s->opts;
  sim_desc(s, "open (creates the store)");
  watchdog_arm(s);
  sim_open(s);
  for (s->op = 1; s->op <= ops && !s->failed; s->op++) {
    op_pick (&s->r)(s);
    extra_pick(s);
  }
  if (s->failed)
    s->op--; /* the loop's increment came after the failing op */
  alarm(0);
  int ok = !s->failed;
  if (!ok)
    sim_report(s, &first_opts);
  if (s->db)
    (void)es_close(s->db);
  memvfs_destroy(s->vfs);
  for (int ti = 0; ti < NTENANTS; ti++) {
    mtenant_free(&s->t[ti]);
    free(s->unlinks[ti]);
  }
  free(s);
  return ok;
}

/* ----------------------------------------------------------------------
 * A live reader meets a WAL reclaim (deterministic, not seeded)
 * ---------------------------------------------------------------------- */

/* A vfs for a reader beside a live handle: memvfs, except that the first
 * listing of a WAL directory ("/wal/" in the path) remembers the first
 * WAL file it names and then blocks until the test releases it.  A reader
 * process can always be descheduled between readdir and open; the gate
 * makes that happen exactly where the test wants it. */
typedef struct gate_vfs {
  es_vfs vfs;
  es_vfs *inner;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int listed, released;
  char first[64]; /* the first "*.wal" name listed */
} gate_vfs;

/* The caller's list callback, and the gate to note names in. */
typedef struct gate_list_ud {
  gate_vfs *g;
  es_list_fn fn;
  void *ud;
} gate_list_ud;

static es_vfs *gate_inner(es_vfs *v) { return ((gate_vfs *)v->ctx)->inner; }

static int gate_open(es_vfs *v, const char *path, int flags, es_file **f) {
  return gate_inner(v)->open(gate_inner(v), path, flags, f);
}
static int gate_close(es_vfs *v, es_file *f) {
  return gate_inner(v)->close(gate_inner(v), f);
}
static int gate_read(es_vfs *v, es_file *f, void *buf, size_t len, uint64_t off,
                     size_t *got) {
  return gate_inner(v)->read(gate_inner(v), f, buf, len, off, got);
}
static int gate_write(es_vfs *v, es_file *f, const void *buf, size_t len,
                      uint64_t off) {
  return gate_inner(v)->write(gate_inner(v), f, buf, len, off);
}
static int gate_sync(es_vfs *v, es_file *f) {
  return gate_inner(v)->sync(gate_inner(v), f);
}
static int gate_truncate(es_vfs *v, es_file *f, uint64_t size) {
  return gate_inner(v)->truncate(gate_inner(v), f, size);
}
static int gate_size(es_vfs *v, es_file *f, uint64_t *size) {
  return gate_inner(v)->size(gate_inner(v), f, size);
}
static int gate_rename(es_vfs *v, const char *from, const char *to) {
  return gate_inner(v)->rename(gate_inner(v), from, to);
}
static int gate_unlink(es_vfs *v, const char *path) {
  return gate_inner(v)->unlink(gate_inner(v), path);
}
static int gate_mkdir(es_vfs *v, const char *path) {
  return gate_inner(v)->mkdir(gate_inner(v), path);
}
static int gate_sync_dir(es_vfs *v, const char *path) {
  return gate_inner(v)->sync_dir(gate_inner(v), path);
}
static int gate_lock(es_vfs *v, const char *path, es_file **f) {
  return gate_inner(v)->lock(gate_inner(v), path, f);
}

static int gate_note_name(void *ud, const char *name) {
  gate_list_ud *gl = ud;
  size_t n = strlen(name);
  if (!gl->g->first[0] && n > 4 && n < sizeof gl->g->first &&
      strcmp(name + n - 4, ".wal") == 0)
    memcpy(gl->g->first, name, n + 1);
  return gl->fn(gl->ud, name);
}

static int gate_list(es_vfs *v, const char *path, es_list_fn fn, void *ud) {
  gate_vfs *g = v->ctx;
  int gated = !g->listed && strstr(path, "/wal/") != NULL;
  gate_list_ud gl = {g, fn, ud};
  int rc = gated ? g->inner->list(g->inner, path, gate_note_name, &gl)
                 : g->inner->list(g->inner, path, fn, ud);
  if (!gated)
    return rc;
  pthread_mutex_lock(&g->mu);
  g->listed = 1;
  pthread_cond_broadcast(&g->cv);
  while (!g->released)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
  return rc;
}

static void gate_init(gate_vfs *g, es_vfs *inner) {
  memset(g, 0, sizeof *g);
  g->vfs = (es_vfs){gate_open,     gate_close,
                    gate_read,     gate_write,
                    gate_sync,     gate_truncate,
                    gate_size,     gate_rename,
                    gate_unlink,   gate_mkdir,
                    gate_sync_dir, gate_list,
                    gate_lock,     g};
  g->inner = inner;
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
}

/* One reader thread's job and result. */
typedef struct reader_job {
  gate_vfs *g;
  int inspect; /* 0: es_verify, 1: es_inspect */
  int rc;
  char detail[512];
  char problem[512];
} reader_job;

static void reader_problem(void *ud, const char *path, uint64_t offset,
                           const char *what) {
  reader_job *j = ud;
  if (!j->problem[0])
    snprintf(j->problem, sizeof j->problem, "%s at %" PRIu64 ": %s", show(path),
             offset, show(what));
}

static int reader_count(void *ud, const es_file_info *info) {
  (void)ud;
  (void)info;
  return 0;
}

static void *reader_main(void *arg) {
  reader_job *j = arg;
  j->rc = j->inspect ? es__inspect_vfs(&j->g->vfs, DATA_DIR, reader_count, NULL)
                     : es__verify_vfs(&j->g->vfs, DATA_DIR, reader_problem, j);
  snprintf(j->detail, sizeof j->detail, "%s", es_errdetail());
  return NULL;
}

/* A reader lists the WAL directory of a live store and is descheduled;
 * meanwhile the store flushes everything and reclaims its old WAL files
 * (as it does after every flush); then the reader goes on.  es_verify and
 * es_inspect promise to run beside a live server ("safe to run while
 * another process has the directory open"), so the reader must still
 * answer ES_OK: a WAL file that vanished was reclaimed, not lost. */
static void live_reader_meets_reclaim(int inspect) {
  es_vfs *mem = memvfs_create();
  es_options o;
  es_options_init(&o);
  o.data_dir = DATA_DIR;
  o.shards = 1;
  o.wal_file_bytes = 4096; /* the log rolls every few batches */
  o.seal_bytes = (size_t)1 << 30;
  o.seal_age_us = INT64_MAX / 4; /* seals only on es_flush */
  o.wal_compress = 0;
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, mem, &db), ES_OK);
  static char props[400];
  memset(props, 'x', sizeof props - 1);
  for (int b = 0; b < 12; b++) { /* ~40 KB of WAL: several files */
    es_event evs[10];
    char msg[10][16];
    for (int e = 0; e < 10; e++) {
      snprintf(msg[e], sizeof msg[e], "b%d-e%d", b, e);
      memset(&evs[e], 0, sizeof evs[e]);
      evs[e].ts_us = TS_BASE_US + e;
      evs[e].type = ES_TYPE_TRACK;
      evs[e].message_id = msg[e];
      evs[e].properties = props;
    }
    ck_assert_int_eq(es_append(db, "t0", evs, 10, NULL), ES_OK);
  }

  gate_vfs g;
  gate_init(&g, mem);
  reader_job job = {.g = &g, .inspect = inspect};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, reader_main, &job), 0);
  pthread_mutex_lock(&g.mu);
  while (!g.listed)
    pthread_cond_wait(&g.cv, &g.mu);
  pthread_mutex_unlock(&g.mu);

  /* The reader holds a listing; the store flushes and reclaims. */
  ck_assert_int_eq(quiesce(db), ES_OK);
  char path[128];
  snprintf(path, sizeof path, DATA_DIR "/wal/0/%s", g.first);
  int reclaimed = g.first[0] && !memvfs_exists(mem, path);

  pthread_mutex_lock(&g.mu);
  g.released = 1;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  pthread_join(th, NULL);
  ck_assert_int_eq(es_close(db), ES_OK);
  memvfs_destroy(mem);
  pthread_mutex_destroy(&g.mu);
  pthread_cond_destroy(&g.cv);

  /* The premise: the flush did reclaim a file the reader had listed. */
  ck_assert_msg(reclaimed, "no listed WAL file was reclaimed (first: %s)",
                g.first);
  ck_assert_msg(job.rc == ES_OK,
                "%s beside a live handle returned %d (%s) after the store "
                "reclaimed WAL file %s, which the reader had listed: %s%s%s",
                inspect ? "es_inspect" : "es_verify", job.rc,
                es_strerror(job.rc), path, job.detail,
                job.problem[0] ? "; problem: " : "", job.problem);
}

START_TEST(test_live_verify_meets_reclaim) { live_reader_meets_reclaim(0); }
END_TEST

START_TEST(test_live_inspect_meets_reclaim) { live_reader_meets_reclaim(1); }
END_TEST

/* ----------------------------------------------------------------------
 * Seeds and the Check harness
 * ---------------------------------------------------------------------- */

static int env_int(const char *name, int def) {
  const char *v = getenv(name);
  return v && *v ? atoi(v) : def;
}

static int env_flag(const char *name) {
  const char *v = getenv(name);
  return v != NULL && *v && *v != '0';
}

/* Replays every seed listed in seeds.txt: one seed per line, optionally
 * followed by its operation count; '#' starts a comment. */
START_TEST(test_seeds_file) {
  if (getenv("ES_SIM_SEED")) {
    printf("sim: ES_SIM_SEED set, seeds file skipped\n");
    return;
  }
  const char *path = getenv("ES_SIM_SEEDS_FILE");
  if (!path)
    path = SIM_SEEDS_FILE;
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  char line[256];
  int run = 0, failed = 0, trace = env_flag("ES_SIM_TRACE");
  while (fgets(line, sizeof line, f)) {
    char *hash = strchr(line, '#');
    if (hash)
      *hash = '\0';
    unsigned long long seed;
    int ops = 0;
    int got = sscanf(line, "%llu %d", &seed, &ops);
    if (got < 1)
      continue;
    if (got < 2 || ops <= 0)
      ops = env_int("ES_SIM_OPS", 200);
    run++;
    failed += !run_seed(seed, ops, trace);
  }
  fclose(f);
  printf("sim: seeds.txt: %d seeds replayed, %d passed, %d failed\n", run,
         run - failed, failed);
  ck_assert_msg(failed == 0, "%d of %d seeds from seeds.txt failed", failed,
                run);
}
END_TEST

/* Runs the random seeds 1..ES_SIM_SEEDS, or only ES_SIM_SEED. */
START_TEST(test_random_seeds) {
  int ops = env_int("ES_SIM_OPS", 200), trace = env_flag("ES_SIM_TRACE");
  uint64_t first = 1, count = (uint64_t)env_int("ES_SIM_SEEDS", 200);
  const char *one = getenv("ES_SIM_SEED");
  if (one) {
    first = strtoull(one, NULL, 10);
    count = 1;
  }
  int failed = 0;
  for (uint64_t seed = first; seed < first + count; seed++)
    failed += !run_seed(seed, ops, trace);
  printf("sim: %" PRIu64 " seeds x %d ops: %" PRIu64 " passed, %d failed\n",
         count, ops, count - (uint64_t)failed, failed);
  ck_assert_msg(failed == 0, "%d of %" PRIu64 " seeds failed", failed, count);
}
END_TEST

int main(void) {
  hang_s = (unsigned)env_int("ES_SIM_HANG_S", 60);
  live_checks = env_int("ES_SIM_LIVE", 1) != 0;
  extra_ops = env_int("ES_SIM_EXTRA", 1) != 0;
  signal(SIGALRM, on_alarm);
  Suite *su = suite_create("sim");
  TCase *tc = tcase_create("sim");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_seeds_file);
  tcase_add_test(tc, test_random_seeds);
  suite_add_tcase(su, tc);
  TCase *tl = tcase_create("live_readers");
  tcase_set_timeout(tl, 60);
  tcase_add_test(tl, test_live_verify_meets_reclaim);
  tcase_add_test(tl, test_live_inspect_meets_reclaim);
  suite_add_tcase(su, tl);
  SRunner *sr = srunner_create(su);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
