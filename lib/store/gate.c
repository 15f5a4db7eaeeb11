/*
 * gate.c -- the write gate: one entry check for every durable writer, one
 * judge of every write-path I/O error, and the handle's state that both
 * feed (es_state): ok, degraded, failed.
 *
 * Why two kinds of failure.  An acknowledgement means durable, so an
 * error that may have lost acknowledged bytes, or made the disk disagree
 * with memory in a way a retry cannot see, must stop the writer: after a
 * failed fsync Linux marks the dirty pages clean and a second fsync says
 * "fine" (the "fsyncgate" lesson).  But most writes on a full disk are not
 * like that: a segment, its rollup, a RULES or manifest temp file, a spare
 * WAL file are all written beside the state they replace and only become
 * the store's by a rename.  Until that rename nothing depends on them;
 * the rows they carry are still in the WAL and in memory.  Failing the
 * whole handle for those (as the store did) turned "the disk filled up"
 * into "every request fails until a restart", while nothing was at risk.
 *
 * Invariants:
 *  1. Every durable writer enters through es__gate_enter, which refuses
 *     read-only, closing and failed handles with one wording; and reports
 *     its write errors through es__gate_io_error, which alone decides
 *     between degraded and failed.
 *  2. Fail-stop (ES_EFAILED until reopened) are: a failed WAL write or
 *     sync (a frame may be partly on disk, and its pages may have been
 *     dropped); a failed sync of an append-only log (IDENTITY); a failure
 *     at or after the rename of an atomic file replacement (the name is in
 *     doubt: es__io_failed_committing); and any error of a background
 *     writer that is not ENOSPC or EIO (ENOMEM, ECORRUPT: a bug or bad
 *     data, not weather).
 *  3. Retryable are ENOSPC and EIO before a commit point: a temp file
 *     (which es__io_write_atomic then removes), a segment or rollup file
 *     not yet in a manifest, a spare WAL file (removed by wal.c), and a
 *     WAL rollover that failed while making the new file (removed; no
 *     frame byte was written, and the LSN it would have used is not
 *     consumed).  A write to the tail of an append-only log that fails is
 *     a torn tail, which the next append writes over: retryable too.
 *  4. A retryable error of a background writer (flusher, housekeeper,
 *     writer rollover) degrades the handle: the bit of that work is set,
 *     the first reason is kept, the work is retried with backoff (50 ms
 *     doubling to 5 s, never a busy loop), and the first retry that
 *     succeeds clears the bit; with no bit left the handle is ok again.
 *     A retryable error of a caller's write is returned to the caller
 *     (ES_ENOSPC or ES_EIO), changes nothing, and does not degrade: only
 *     work the store retries by itself may make it "not ready", or a
 *     rule write failing once would leave a server unready forever.
 *  5. While degraded, appends are taken while the WAL takes them and the
 *     memtables fit their budget; past the budget they return
 *     ES_EDEGRADED at once instead of waiting for flushes that fail (db.c,
 *     db_wait_memory); es_flush returns ES_EDEGRADED when a flush it waits
 *     for fails retryably.  Nothing is dropped: a refused append wrote
 *     nothing and the caller still holds its events.
 *  6. Failed wins over degraded: once failed, es_state says failed, and
 *     no degraded bit is ever cleared or set again.
 *
 * WAL space.  WAL files are preallocated with zeros (wal.c), so a frame
 * written into the current file allocates nothing and ENOSPC there means
 * something odd: it fails stop (2).  The one WAL step that allocates is
 * the rollover to a new file, which takes the housekeeper's spare when
 * there is one; when making the file fails it is removed and the group is
 * refused with ES_EDEGRADED (3); the housekeeper then keeps trying to make
 * a spare with backoff, and a spare made, or the next rollover that works,
 * clears the state.
 */
#include <stdio.h>

#include "base/io.h"
#include "store/dbint.h"
#include "store/gate.h"

/* Entry check of every durable writer (invariant 1). */
int es__gate_enter(es_db *db, const char *what) {
  if (db->opts.read_only)
    return ES_ERR(ES_EREADONLY, "%s on a read-only handle", what);
  if (atomic_load(&db->closing))
    return ES_ERR(ES_ECLOSED, "%s: database is closing", what);
  int failed = atomic_load(&db->failed);
  if (failed) {
    pthread_mutex_lock(&db->gate_mu);
    int rc = ES_ERR(ES_EFAILED, "%s: database failed earlier (%s); reopen it",
                    what, db->fail_why);
    pthread_mutex_unlock(&db->gate_mu);
    return rc;
  }
  return ES_OK;
}

/* Fails the database with rc (first failure wins) and wakes every waiter
 * so nobody sleeps on a database that will not make progress. */
void es__db_fail(es_db *db, int rc) {
  int expected = 0;
  pthread_mutex_lock(&db->gate_mu);
  if (atomic_compare_exchange_strong(&db->failed, &expected, rc)) {
    snprintf(db->fail_why, sizeof(db->fail_why), "%s: %s", es_strerror(rc),
             es_errdetail());
    es__db_log(db, 0, "database failed: %s", db->fail_why);
  }
  pthread_mutex_unlock(&db->gate_mu);
  pthread_mutex_lock(&db->flush_mu);
  pthread_cond_broadcast(&db->flushed_cv);
  pthread_mutex_unlock(&db->flush_mu);
  pthread_mutex_lock(&db->mem_mu);
  pthread_cond_broadcast(&db->mem_cv);
  pthread_mutex_unlock(&db->mem_mu);
}

/* Sets a degraded bit (invariant 4) and wakes waiters that must now give
 * up instead of waiting (invariant 5). */
static void gate_degrade(es_db *db, int bit, int rc) {
  pthread_mutex_lock(&db->gate_mu);
  int before = atomic_fetch_or(&db->degraded, bit);
  if (before == 0) {
    snprintf(db->degraded_why, sizeof(db->degraded_why), "%s: %s",
             es_strerror(rc), es_errdetail());
    es__db_log(db, 1, "database degraded, retrying with backoff: %s",
               db->degraded_why);
  }
  if (bit == ES_DEGRADED_FLUSH)
    atomic_fetch_add(&db->flush_failures, 1);
  pthread_mutex_unlock(&db->gate_mu);
  pthread_mutex_lock(&db->flush_mu);
  pthread_cond_broadcast(&db->flushed_cv);
  pthread_mutex_unlock(&db->flush_mu);
  pthread_mutex_lock(&db->mem_mu);
  pthread_cond_broadcast(&db->mem_cv);
  pthread_mutex_unlock(&db->mem_mu);
}

/* Judges one write error; see gate.h and invariants 2-4. */
int es__gate_io_error(es_db *db, int site, int rc) {
  if (rc >= 0 || rc == ES_EFAILED || rc == ES_EDEGRADED)
    return rc;
  int committing = es__io_failed_committing();
  int weather = (rc == ES_ENOSPC || rc == ES_EIO) && !committing;
  if (site == ES_GATE_STOP ||
      (!weather && site != ES_GATE_CALL && site != ES_GATE_SPARE) ||
      (committing && (rc == ES_ENOSPC || rc == ES_EIO))) {
    es__db_fail(db, rc);
    return rc;
  }
  if (site == ES_GATE_CALL || atomic_load(&db->failed))
    return rc; /* the caller's to retry, or failed already (invariant 6) */
  int bit = site == ES_GATE_FLUSH   ? ES_DEGRADED_FLUSH
            : site == ES_GATE_SPARE ? ES_DEGRADED_SPARE
                                    : ES_DEGRADED_ROLL;
  char keep[512];
  snprintf(keep, sizeof(keep), "%s", es_errdetail());
  gate_degrade(db, bit, rc);
  return es__error_at(ES_EDEGRADED, __FILE__, __LINE__,
                      "database degraded: %s (%s); retry later",
                      es_strerror(rc), keep);
}

/* Clears degraded bits after a retry succeeded (invariant 4). */
void es__gate_recovered(es_db *db, int bits) {
  if ((atomic_load(&db->degraded) & bits) == 0)
    return;
  pthread_mutex_lock(&db->gate_mu);
  int before = atomic_fetch_and(&db->degraded, ~bits);
  if (before != 0 && (before & ~bits) == 0 && !atomic_load(&db->failed))
    es__db_log(db, 2, "database recovered from: %s", db->degraded_why);
  pthread_mutex_unlock(&db->gate_mu);
}

int es__gate_degraded(es_db *db) { return atomic_load(&db->degraded); }

uint64_t es__gate_flush_failures(es_db *db) {
  return atomic_load(&db->flush_failures);
}

int64_t es__gate_backoff_next(int64_t cur_us) {
  if (cur_us < ES_GATE_BACKOFF_MIN_US)
    return ES_GATE_BACKOFF_MIN_US;
  return cur_us >= ES_GATE_BACKOFF_MAX_US / 2 ? ES_GATE_BACKOFF_MAX_US
                                              : cur_us * 2;
}

/* The handle's state; see eventstore.h. */
int es_state(es_db *db, char *why, size_t why_cap) {
  if (!db)
    return ES_INVAL_BKPT("es_state: NULL handle");
  int state = ES_STATE_OK;
  pthread_mutex_lock(&db->gate_mu);
  const char *text = "ok";
  if (atomic_load(&db->failed)) {
    state = ES_STATE_FAILED;
    text = db->fail_why;
  } else if (atomic_load(&db->degraded)) {
    state = ES_STATE_DEGRADED;
    text = db->degraded_why;
  }
  if (why && why_cap > 0)
    snprintf(why, why_cap, "%s", text);
  pthread_mutex_unlock(&db->gate_mu);
  return state;
}

/* Appends to a small log and makes it durable; see gate.h. */
int es__gate_log_append(es_db *db, const char *path, const char *dir,
                        const void *data, size_t len, size_t end) {
  es_vfs *vfs = db->vfs;
  es_file *f = NULL;
  int rc = vfs->open(vfs, path, ES_IO_WRITE | ES_IO_CREATE, &f);
  if (rc < 0)
    return es__gate_io_error(db, ES_GATE_CALL, rc);
  rc = vfs->write(vfs, f, data, len, end);
  if (rc < 0) {
    (void)vfs->close(vfs, f);
    return es__gate_io_error(db, ES_GATE_CALL, rc);
  }
  rc = vfs->sync(vfs, f);
  int rc2 = vfs->close(vfs, f);
  if (rc == ES_OK)
    rc = rc2;
  if (rc == ES_OK && end == 0) /* a new file: its name must be durable */
    rc = vfs->sync_dir(vfs, dir);
  return es__gate_io_error(db, ES_GATE_STOP, rc);
}
