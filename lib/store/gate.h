/*
 * gate.h -- the one door of every durable writer and the one place its
 * I/O errors are judged: ok, degraded (retryable, retried in the
 * background) or failed (fail-stop).  The reasoning is in gate.c.
 */
#ifndef ES_GATE_H
#define ES_GATE_H

#include <stdint.h>

#include "base/status.h"

/* Where an error happened: decides what it does to the handle. */
#define ES_GATE_STOP                                                           \
  1 /* a WAL write or sync, an append-only log's sync,                         \
       a directory sync that commits: always fail-stop */
#define ES_GATE_CALL                                                           \
  2                     /* a caller's write (rules, unlink, rollup rebuild,    \
                           es_compact): retryable errors are returned */
#define ES_GATE_FLUSH 3 /* the flusher writing a segment: degrades */
#define ES_GATE_SPARE 4 /* the housekeeper making a spare WAL file */
#define ES_GATE_ROLL 5  /* a WAL rollover that wrote nothing: degrades */

/* Degraded reasons, bits of es_db.degraded. */
#define ES_DEGRADED_FLUSH (1 << 0)
#define ES_DEGRADED_SPARE (1 << 1)
#define ES_DEGRADED_ROLL (1 << 2)

/* Exponential backoff of background retries while degraded. */
#define ES_GATE_BACKOFF_MIN_US 50000
#define ES_GATE_BACKOFF_MAX_US 5000000

/* Entry of every durable writer (es_append, es_flush, es_rule_put and
 * es_rule_delete, es_identity_unlink, es_rollup_rebuild, es_compact, and
 * es__shard_call): ES_EREADONLY, ES_ECLOSED or ES_EFAILED (with a detail
 * naming `what` and, when failed, why), else ES_OK.  Degraded handles
 * pass: each writer decides what degraded means to it. */
int es__gate_enter(es_db *db, const char *what) ES_MUST_CHECK;

/* Judges a write error rc (< 0) that happened at `site` (ES_GATE_*), on
 * the thread that got it (the I/O layer's mark of a failed commit is
 * thread-local): fails the handle (returns rc), degrades it (returns
 * ES_EDEGRADED; background sites only) or returns rc unchanged for the
 * caller to see (retryable errors of ES_GATE_CALL, and errors that are
 * no I/O failure).  rc >= 0, ES_EFAILED and ES_EDEGRADED pass through. */
int es__gate_io_error(es_db *db, int site, int rc) ES_MUST_CHECK;

/*
 * Appends len bytes at offset end of the small log file path (created if
 * missing) and makes them durable: fdatasync, and dir's fsync when the
 * file is new (end == 0).  A failed open or write is the caller's to retry
 * (ES_GATE_CALL); a failed sync fails stop (ES_GATE_STOP): the page cache
 * may claim bytes the disk lost.  The IDENTITY and ERASE logs use it.
 */
int es__gate_log_append(es_db *db, const char *path, const char *dir,
                        const void *data, size_t len, size_t end) ES_MUST_CHECK;

/* A retry of the work behind `bits` (ES_DEGRADED_*) succeeded: clears
 * them, and logs the return to ok when none is left. */
void es__gate_recovered(es_db *db, int bits);

/* The ES_DEGRADED_* bits set now (0: not degraded). */
int es__gate_degraded(es_db *db);

/* How many retryable flush failures there were (es_flush notices one
 * that happened while it waited). */
uint64_t es__gate_flush_failures(es_db *db);

/* The next backoff after cur_us (0 = the first): 50 ms doubling to 5 s. */
int64_t es__gate_backoff_next(int64_t cur_us);

#endif
