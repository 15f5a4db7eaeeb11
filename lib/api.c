/*
 * api.c -- the library's top layer.  The store (lib/store/) knows nothing
 * of the engine (lib/engine/); opening a handle is where the two meet:
 * es_open gives the store the engine's hooks (engine/engine.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "base/clock.h"
#include "base/mem.h"
#include "engine/engine.h"
#include "replicate/replicate.h"
#include "store/db.h"

/* A tenant's durability tier, overriding the handle's. */
typedef struct api_tier {
  char tenant[ES_TENANT_LEN_MAX + 1];
  int durability;
} api_tier;

/* What rides on a writable handle with a replica (db->ext). */
typedef struct api_ext {
  es_replicator *repl;
  es_walship *ship;   /* tier s3, or es_options.ship_wal */
  uint64_t dup_sweep; /* walship.c, 5: an uploader sweep numbered above
                         this one that found all uploaded covers the
                         data that was local at open */
  atomic_int dup_ready;
  pthread_mutex_t tiers_mu; /* a leaf, guards the per-tenant tiers */
  api_tier *tiers;          /* sorted by tenant */
  size_t ntiers, tiers_cap;
} api_ext;

/* es_close's first step when a replicator rides on the handle.  Requests
 * to the store under way are cancelled (objstore.h, cancel), so closing
 * never waits for a slow or unreachable store: what was not uploaded
 * stays on disk for the next open. */
static void api_replica_stop(es_db *db) {
  api_ext *x = db->ext;
  es_objstore *os = db->opts.replica->os;
  if (os->cancel)
    os->cancel(os, 1);
  es__walship_stop(x->ship);
  es__replicator_stop(x->repl);
  if (os->cancel)
    os->cancel(os, 0);
  pthread_mutex_destroy(&x->tiers_mu);
  es__free(x->tiers);
  es__free(x);
  db->ext = NULL;
  db->ext_stop = NULL;
}

/* Opens with a chosen vfs; see api.h.  A writable handle with a replica
 * starts its uploader once the store is open (recovered); in tier s3 also
 * the WAL shipper, and seals what the open replayed, so that the uploader
 * carries it to the store (walship.c, 5). */
int es__open_vfs(const es_options *opts, es_vfs *vfs, es_db **db_out) {
  if (opts &&
      opts->struct_size >= offsetof(es_options, durability) + sizeof(int)) {
    if (opts->durability != ES_DURABILITY_LOCAL &&
        opts->durability != ES_DURABILITY_S3)
      return ES_INVAL_BKPT("options.durability %d is neither "
                           "ES_DURABILITY_LOCAL nor ES_DURABILITY_S3",
                           opts->durability);
    if (opts->durability == ES_DURABILITY_S3 &&
        (!opts->replica || opts->read_only))
      return ES_INVAL_BKPT("durability tier s3 needs options.replica and a "
                           "writable handle");
  }
  ES_TRY(es__db_open(opts, vfs, &es__engine_hooks, db_out));
  es_db *db = *db_out;
  if (!db->opts.replica || db->opts.read_only)
    return ES_OK;
  api_ext *x = es__calloc(1, sizeof(*x));
  if (x)
    pthread_mutex_init(&x->tiers_mu, NULL);
  int rc = x ? es__replicator_start(db, db->opts.replica, &x->repl)
             : ES_NOMEM_BKPT();
  if (rc == ES_OK) {
    db->ext = x;
    db->ext_stop = api_replica_stop;
  }
  if (rc == ES_OK &&
      (db->opts.durability == ES_DURABILITY_S3 || db->opts.ship_wal))
    rc = es__walship_start(db, db->opts.replica, x->repl, &x->ship);
  if (rc == ES_OK && x->ship) {
    rc = es_flush(db, NULL);
    uint64_t clean = 0;
    if (rc == ES_OK)
      es__replicator_sweeps(x->repl, &x->dup_sweep, &clean);
  }
  if (rc < 0) {
    if (!db->ext && x) {
      pthread_mutex_destroy(&x->tiers_mu);
      es__free(x);
    }
    (void)es_close(db);
    *db_out = NULL;
    return rc;
  }
  return ES_OK;
}

static int api_tier_cmp(const void *key, const void *elt) {
  return strcmp(key, ((const api_tier *)elt)->tenant);
}

/* The tier of tenant's appends: its override, else the handle's. */
static int api_tier_of(es_db *db, const char *tenant) {
  api_ext *x = db->ext;
  int tier = db->opts.durability;
  if (!x || !x->ship || !tenant)
    return tier;
  pthread_mutex_lock(&x->tiers_mu);
  const api_tier *t = x->ntiers ? bsearch(tenant, x->tiers, x->ntiers,
                                          sizeof(api_tier), api_tier_cmp)
                                : NULL;
  if (t)
    tier = t->durability;
  pthread_mutex_unlock(&x->tiers_mu);
  return tier;
}

/* Sets or drops a tenant's tier; see eventstore.h. */
int es_tenant_durability_set(es_db *db, const char *tenant, int durability) {
  if (!db || !tenant)
    return ES_INVAL_BKPT("es_tenant_durability_set: NULL argument");
  ES_TRY(es__tenant_check(tenant));
  if (durability != ES_DURABILITY_LOCAL && durability != ES_DURABILITY_S3 &&
      durability != ES_DURABILITY_DEFAULT)
    return ES_INVAL_BKPT("durability %d is neither ES_DURABILITY_LOCAL, "
                         "ES_DURABILITY_S3 nor ES_DURABILITY_DEFAULT",
                         durability);
  api_ext *x = db->ext;
  if (!x || !x->ship)
    return ES_INVAL_BKPT("per-tenant tiers need the WAL shipped: a replica "
                         "and es_options.ship_wal (or tier s3)");
  int rc = ES_OK;
  pthread_mutex_lock(&x->tiers_mu);
  size_t i = 0;
  while (i < x->ntiers && strcmp(x->tiers[i].tenant, tenant) < 0)
    i++;
  int found = i < x->ntiers && strcmp(x->tiers[i].tenant, tenant) == 0;
  if (durability == ES_DURABILITY_DEFAULT) {
    if (found) {
      memmove(&x->tiers[i], &x->tiers[i + 1],
              (x->ntiers - i - 1) * sizeof(api_tier));
      x->ntiers--;
    }
  } else if (found) {
    x->tiers[i].durability = durability;
  } else if ((rc = es__grow((void **)&x->tiers, &x->tiers_cap, x->ntiers + 1,
                            sizeof(api_tier))) == ES_OK) {
    memmove(&x->tiers[i + 1], &x->tiers[i], (x->ntiers - i) * sizeof(api_tier));
    snprintf(x->tiers[i].tenant, sizeof(x->tiers[i].tenant), "%s", tenant);
    x->tiers[i].durability = durability;
    x->ntiers++;
  }
  pthread_mutex_unlock(&x->tiers_mu);
  return rc;
}

/* In tier s3, after es_append stored (or found) a batch: waits until it
 * is in the object store (walship.c, 2 and 5). */
static int api_s3_ack(es_db *db, const es_receipt *r) {
  api_ext *x = db->ext;
  int64_t timeout =
      db->opts.s3_ack_timeout_us > 0 ? db->opts.s3_ack_timeout_us : 5000000;
  int64_t until = es__clock_mono_us() + timeout;
  uint64_t lsn = r->lsn;
  if (r->duplicates_count > 0) {
    uint64_t synced = es__walship_synced(x->ship, r->shard);
    if (synced > lsn)
      lsn = synced; /* the original is at or below it, if of this process */
    while (!atomic_load(&x->dup_ready)) {
      uint64_t begun = 0, clean = 0;
      es__replicator_sweeps(x->repl, &begun, &clean);
      if (clean > x->dup_sweep) {
        atomic_store(&x->dup_ready, 1);
        break;
      }
      if (es__clock_mono_us() >= until)
        return ES_ERR(ES_EUNAVAIL, "tier s3: a duplicate of data that was "
                                   "local at open, not yet confirmed in the "
                                   "object store (retry)");
      struct timespec ts = {0, 10 * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  int64_t left = until - es__clock_mono_us();
  return es__walship_wait(x->ship, r->shard, lsn, left > 0 ? left : 0);
}

/* The uploader's counters; see eventstore.h. */
int es_replica_stats_get(es_db *db, es_replica_stats *out) {
  if (!db || !out)
    return ES_INVAL_BKPT("es_replica_stats_get: NULL argument");
  memset(out, 0, sizeof(*out));
  if (!db->ext)
    return ES_INVAL_BKPT("this handle has no replica");
  es__replicator_stats(((api_ext *)db->ext)->repl, out);
  return ES_OK;
}

/* The WAL shipper's counters; see eventstore.h. */
int es_walship_stats_get(es_db *db, es_walship_stats *out) {
  if (!db || !out)
    return ES_INVAL_BKPT("es_walship_stats_get: NULL argument");
  memset(out, 0, sizeof(*out));
  if (!db->ext || !((api_ext *)db->ext)->ship)
    return ES_INVAL_BKPT("this handle ships no WAL (neither durability "
                         "tier s3 nor es_options.ship_wal)");
  es__walship_stats(((api_ext *)db->ext)->ship, out);
  return ES_OK;
}

int es_walship_shards(es_db *db, int (*fn)(void *ud, const es_walship_shard *s),
                      void *ud) {
  if (!db || !fn)
    return ES_INVAL_BKPT("es_walship_shards: NULL argument");
  if (!db->ext || !((api_ext *)db->ext)->ship)
    return ES_INVAL_BKPT("this handle ships no WAL (neither durability "
                         "tier s3 nor es_options.ship_wal)");
  return es__walship_shards(((api_ext *)db->ext)->ship, fn, ud);
}

/* Waits for a clean sweep; see eventstore.h. */
int es_replica_drain(es_db *db, int64_t timeout_us) {
  if (!db)
    return ES_INVAL_BKPT("es_replica_drain: NULL db");
  if (!db->ext)
    return ES_INVAL_BKPT("this handle has no replica");
  return es__replicator_drain(((api_ext *)db->ext)->repl, timeout_us);
}

/* Opens the store on the real file system; see eventstore.h. */
int es_open(const es_options *opts, es_db **db_out) {
  return es__open_vfs(opts, es__vfs_posix(), db_out);
}

/* --- sized calls (eventstore.h, convention 10) --------------------------- */

/* The smallest of each struct a program may have been built with: its
 * layout in release 0.1. */
#define API_EVENT_SIZE_MIN (offsetof(es_event, ip) + sizeof(const char *))
#define API_RECEIPT_SIZE_MIN                                                   \
  (offsetof(es_receipt, durable_us) + sizeof(int64_t))

static int api_size_ok(size_t size, size_t min, const char *what) {
  if (size < min || size > ((size_t)1 << 16))
    return ES_INVAL_BKPT("%s of %zu bytes is no release's %s", what, size,
                         what);
  return ES_OK;
}

/* The program's events in this library's layout: events itself when the
 * sizes agree, else a copy in *copy_out (es__free it), each event's
 * fields past what the program has zeroed, and fields past what the
 * library knows refused unless zero. */
static int api_events_in(const es_event *events, size_t count, size_t size,
                         es_event **copy_out, const es_event **use_out) {
  *copy_out = NULL;
  *use_out = events;
  if (size == sizeof(es_event) || !events)
    return ES_OK;
  ES_TRY(api_size_ok(size, API_EVENT_SIZE_MIN, "es_event"));
  if (count > ES_BATCH_EVENTS_MAX)
    return ES_OK; /* es_append refuses it with ES_ETOOBIG */
  es_event *copy = es__calloc(count ? count : 1, sizeof(es_event));
  if (!copy)
    return ES_NOMEM_BKPT();
  const unsigned char *p = (const unsigned char *)events;
  for (size_t i = 0; i < count; i++, p += size) {
    for (size_t b = sizeof(es_event); b < size; b++)
      if (p[b] != 0) {
        es__free(copy);
        return ES_INVAL_BKPT("event %zu sets a field (byte %zu) that this "
                             "library version does not know",
                             i, b);
      }
    memcpy(&copy[i], p, size < sizeof(es_event) ? size : sizeof(es_event));
  }
  *copy_out = copy;
  *use_out = copy;
  return ES_OK;
}

/* Writes the library's result `lib` (lib_size bytes) into the program's
 * struct of size bytes: as far as both go, zeros past the library's. */
static void api_out(void *out, size_t size, const void *lib, size_t lib_size) {
  if (!out)
    return;
  memcpy(out, lib, size < lib_size ? size : lib_size);
  if (size > lib_size)
    memset((unsigned char *)out + lib_size, 0, size - lib_size);
}

static int api_append(es_db *db, const char *tenant, const es_event *events,
                      size_t count, es_receipt *receipt_out, uint8_t *dup_out,
                      size_t event_size, size_t receipt_size) {
  if (receipt_out)
    ES_TRY(api_size_ok(receipt_size, API_RECEIPT_SIZE_MIN, "es_receipt"));
  es_event *copy = NULL;
  const es_event *use = NULL;
  ES_TRY(api_events_in(events, count, event_size, &copy, &use));
  es_receipt r;
  memset(&r, 0, sizeof(r));
  int rc = ES_OK;
  es_walship *ship = db && db->ext ? ((api_ext *)db->ext)->ship : NULL;
  if (ship && api_tier_of(db, tenant) != ES_DURABILITY_S3)
    ship = NULL; /* tier local: never waits for the store */
  if (ship && tenant) {
    if (es__tenant_check(tenant) == ES_OK)
      rc = es__walship_admit(ship, es__tenant_shard(db, tenant));
    else
      es__error_clear(); /* es_append says it */
  }
  if (rc == ES_OK)
    rc = es_append_flagged(db, tenant, use, count, &r, dup_out);
  if (rc == ES_OK && ship)
    rc = api_s3_ack(db, &r);
  if (receipt_out)
    api_out(receipt_out, receipt_size, &r, sizeof(r));
  es__free(copy);
  return rc;
}

int es_append_sized(es_db *db, const char *tenant, const es_event *events,
                    size_t count, es_receipt *receipt_out, size_t event_size,
                    size_t receipt_size) {
  return api_append(db, tenant, events, count, receipt_out, NULL, event_size,
                    receipt_size);
}

int es_append_flagged_sized(es_db *db, const char *tenant,
                            const es_event *events, size_t count,
                            es_receipt *receipt_out, uint8_t *dup_out,
                            size_t event_size, size_t receipt_size) {
  return api_append(db, tenant, events, count, receipt_out, dup_out, event_size,
                    receipt_size);
}

int es_cursor_next_sized(es_cursor *cur, es_event *ev_out, size_t event_size) {
  if (ev_out)
    ES_TRY(api_size_ok(event_size, API_EVENT_SIZE_MIN, "es_event"));
  if (event_size == sizeof(es_event))
    return es_cursor_next(cur, ev_out);
  es_event ev;
  int rc = es_cursor_next(cur, ev_out ? &ev : NULL);
  if (rc == 1)
    api_out(ev_out, event_size, &ev, sizeof(ev));
  return rc;
}

int es_timeline_next_sized(es_timeline *tl, es_event *ev_out,
                           size_t event_size) {
  if (ev_out)
    ES_TRY(api_size_ok(event_size, API_EVENT_SIZE_MIN, "es_event"));
  if (event_size == sizeof(es_event))
    return es_timeline_next(tl, ev_out);
  es_event ev;
  int rc = es_timeline_next(tl, ev_out ? &ev : NULL);
  if (rc == 1)
    api_out(ev_out, event_size, &ev, sizeof(ev));
  return rc;
}

int es_rollup_rebuild_sized(es_db *db, const char *tenant, int64_t from_us,
                            int64_t to_us, es_rollup_report *report_out,
                            size_t report_size) {
  if (report_out)
    ES_TRY(
        api_size_ok(report_size, sizeof(es_rollup_report), "es_rollup_report"));
  es_rollup_report r;
  int rc =
      es_rollup_rebuild(db, tenant, from_us, to_us, report_out ? &r : NULL);
  if (report_out)
    api_out(report_out, report_size, &r, sizeof(r));
  return rc;
}

int es_compact_sized(es_db *db, const char *tenant,
                     const es_compact_options *opts,
                     es_compact_report *report_out, size_t report_size) {
  if (report_out)
    ES_TRY(api_size_ok(report_size, sizeof(es_compact_report),
                       "es_compact_report"));
  es_compact_report r;
  int rc = es_compact(db, tenant, opts, report_out ? &r : NULL);
  if (report_out)
    api_out(report_out, report_size, &r, sizeof(r));
  return rc;
}
