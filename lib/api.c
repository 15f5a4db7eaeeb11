/*
 * api.c -- the library's top layer.  The store (lib/store/) knows nothing
 * of the engine (lib/engine/); opening a handle is where the two meet:
 * es_open gives the store the engine's hooks (engine/engine.h).
 */
#include <stddef.h>
#include <string.h>

#include "api.h"
#include "base/mem.h"
#include "engine/engine.h"
#include "replicate/replicate.h"
#include "store/db.h"

/* es_close's first step when a replicator rides on the handle. */
static void api_replica_stop(es_db *db) {
  es__replicator_stop(db->ext);
  db->ext = NULL;
  db->ext_stop = NULL;
}

/* Opens with a chosen vfs; see api.h.  A writable handle with a replica
 * starts its uploader once the store is open (recovered). */
int es__open_vfs(const es_options *opts, es_vfs *vfs, es_db **db_out) {
  ES_TRY(es__db_open(opts, vfs, &es__engine_hooks, db_out));
  es_db *db = *db_out;
  if (!db->opts.replica || db->opts.read_only)
    return ES_OK;
  es_replicator *r = NULL;
  int rc = es__replicator_start(db, db->opts.replica, &r);
  if (rc < 0) {
    (void)es_close(db);
    *db_out = NULL;
    return rc;
  }
  db->ext = r;
  db->ext_stop = api_replica_stop;
  return ES_OK;
}

/* The uploader's counters; see eventstore.h. */
int es_replica_stats_get(es_db *db, es_replica_stats *out) {
  if (!db || !out)
    return ES_INVAL_BKPT("es_replica_stats_get: NULL argument");
  memset(out, 0, sizeof(*out));
  if (!db->ext)
    return ES_INVAL_BKPT("this handle has no replica");
  es__replicator_stats(db->ext, out);
  return ES_OK;
}

/* Waits for a clean sweep; see eventstore.h. */
int es_replica_drain(es_db *db, int64_t timeout_us) {
  if (!db)
    return ES_INVAL_BKPT("es_replica_drain: NULL db");
  if (!db->ext)
    return ES_INVAL_BKPT("this handle has no replica");
  return es__replicator_drain(db->ext, timeout_us);
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
  int rc = es_append_flagged(db, tenant, use, count, receipt_out ? &r : NULL,
                             dup_out);
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
