/*
 * db.c -- the database handle: open and recovery, the append path with its
 * group commit, flush, and close.
 *
 * The append path, step by step:
 *  1. The appending thread encodes its events (event.c) and builds the WAL
 *     record, compressing it, before taking any lock: that work runs in
 *     parallel across appenders.
 *  2. It queues a request on its tenant's shard and sleeps.
 *  3. The shard's writer thread takes everything queued, frames it as one
 *     WAL frame with the next LSN, writes it, inserts the rows into the
 *     tenants' memtables (invisible), fdatasyncs once for the whole group,
 *     publishes the rows, and wakes every appender of the group.
 *
 * Invariants:
 *  1. An appender is told ES_OK only after the fdatasync covering its
 *     frame returned success; its rows become visible at the same time.
 *  2. A WAL write or sync failure fails the database (sticky): appends and
 *     flushes return ES_EFAILED; nothing is retried, since a failed fsync
 *     may have dropped dirty pages (the "fsyncgate" lesson).  A rollover
 *     that failed making its new file wrote nothing and only degrades it
 *     (store/gate.c, the judge of every write error).
 *  3. The writer thread is the only thread that touches its shard's WAL
 *     and inserts into its tenants' active memtables.
 *  4. Recovery gives each shard an LSN above every LSN in its WAL files,
 *     every flushed_lsn of its tenants, and the name of its newest file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/abi.h"
#include "base/clock.h"
#include "base/event.h"
#include "base/mem.h"
#include "store/commit.h"
#include "store/db.h"
#include "store/dbint.h"
#include "store/dedupe.h"
#include "store/gate.h"
#include "store/tomb.h"

#define DB_AGE_CHECK_US 100000 /* how often writers look for old memtables */
#define DB_FRAME_BYTES_MAX (64u << 20)
/* es_append reserves this much per event for its rows, up to 4 MB. */
#define DB_ROW_BYTES_GUESS 256u
#define DB_ROWS_RESERVE_MAX (4u << 20)
#define DB_GROUP_EVENTS_MAX (1u << 20)

int es_version(void) { return ES_VERSION_NUMBER; }

/* The smallest es_options a program may pass: the struct of the first
 * release that had struct_size (eventstore.h, convention 9). */
#define DB_OPTIONS_SIZE_MIN                                                    \
  (offsetof(es_options, trigger) + sizeof(es_trigger_options))

/* Documented defaults; see eventstore.h.  Writes struct_size bytes only:
 * an older program's struct is shorter than this library's. */
void es_options_init_sized(es_options *opts, size_t struct_size) {
  es_options o;
  memset(&o, 0, sizeof(o));
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  o.shards = cores > 0 && cores < 256 ? (int)cores : 1;
  o.memtable_budget_bytes = (size_t)1 << 30;
  o.seal_bytes = (size_t)8 << 20;
  o.seal_age_us = (int64_t)300 * 1000000;
  o.wal_file_bytes = (size_t)32 << 20;
  o.sync_mode = ES_SYNC_FULL;
  o.wal_compress = 1;
  o.follow_interval_us = 50000;
  o.dedupe_window_us = (int64_t)7 * 24 * 3600 * 1000000;
  o.replica_interval_us = 1000000;
  o.replica_grace_us = (int64_t)600 * 1000000;
  o.durability = ES_DURABILITY_LOCAL;
  o.s3_ack_timeout_us = (int64_t)5 * 1000000;
  memset(opts, 0, struct_size);
  memcpy(opts, &o, struct_size < sizeof(o) ? struct_size : sizeof(o));
  opts->struct_size = struct_size;
}

/* --- the shard writer --------------------------------------------------- */

typedef struct seal_cand {
  es_tenant *t;
  size_t bytes;
} seal_cand;

static int seal_cand_cmp(const void *a, const void *b) {
  const seal_cand *x = a, *y = b;
  return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

/* Keeps the flusher working ahead of the memory budget: once memtables
 * pass 3/4 of it, this shard's biggest active memtables are sealed until
 * its share of the active bytes is down to 1/2 of the budget.  Memtables
 * already sealed and waiting for the flusher do not count as active, so
 * repeated pressure never re-seals what is already queued (which would
 * shred tenants into tiny segments and slow the flusher down).  Appenders
 * wait only above the whole budget (db_wait_memory). */
static int writer_seal_pressure(es_shard *sh, es_tenant *list) {
  es_db *db = sh->db;
  size_t budget = db->opts.memtable_budget_bytes;
  size_t mem = atomic_load(&db->mem_bytes);
  size_t sealed = atomic_load(&db->sealed_bytes);
  sealed += atomic_load(&db->ids_bytes); /* not memtables: sealing them
                                            frees nothing until flushed */
  size_t active = mem > sealed ? mem - sealed : 0;
  if (mem <= budget / 4 * 3 || active <= budget / 2)
    return ES_OK;
  size_t n = 0, cap = 0;
  seal_cand *c = NULL;
  for (es_tenant *t = list; t; t = t->shard_next) {
    if (!t->active || es__memtable_visible(t->active) == 0)
      continue;
    if (es__grow((void **)&c, &cap, n + 1, sizeof(*c)) < 0)
      break; /* seal what we have: pressure relief must not fail */
    c[n++] = (seal_cand){t, t->active->bytes};
  }
  if (n > 1)
    qsort(c, n, sizeof(*c), seal_cand_cmp);
  size_t share = (active - budget / 2) / db->nshards + 1, done = 0;
  int rc = ES_OK;
  for (size_t i = 0; i < n && done < share && rc == ES_OK; i++) {
    done += c[i].bytes;
    rc = es__tenant_seal(db, c[i].t);
  }
  es__free(c);
  return rc;
}

/* Every 100 ms and under memory pressure: trims every tenant's dedupe
 * slabs, seals memtables that are too big or too old, then relieves
 * memory pressure. */
static int writer_seal_due(es_shard *sh) {
  es_db *db = sh->db;
  int64_t now = es__clock_mono_us();
  pthread_mutex_lock(&db->tenants_mu);
  es_tenant *list = sh->tenants;
  pthread_mutex_unlock(&db->tenants_mu);
  for (es_tenant *t = list; t; t = t->shard_next) {
    es__dedupe_trim(db, t); /* its flushed rows' ids leave the budget */
    es_memtable *mt = t->active;
    if (!mt || es__memtable_visible(mt) == 0)
      continue;
    if (mt->bytes >= db->opts.seal_bytes ||
        now - mt->first_insert_mono_us >= db->opts.seal_age_us)
      ES_TRY(es__tenant_seal(db, t));
  }
  return writer_seal_pressure(sh, list);
}

/* Deletes WAL files no tenant needs any more. */
static int writer_reclaim(es_shard *sh) {
  es_db *db = sh->db;
  uint64_t keep = sh->next_lsn;
  pthread_mutex_lock(&db->tenants_mu);
  es_tenant *list = sh->tenants;
  pthread_mutex_unlock(&db->tenants_mu);
  for (es_tenant *t = list; t; t = t->shard_next) {
    uint64_t m = es__tenant_min_unflushed(t);
    if (m < keep)
      keep = m;
  }
  atomic_store(&sh->keep_lsn, keep);
  return es__commit_wal_reclaim(db, sh, keep);
}

/* Takes the next group off the queue (caller holds sh->mu): everything
 * queued, up to DB_GROUP_EVENTS_MAX events or DB_FRAME_BYTES_MAX bytes, so
 * that one group always fits in an empty memtable. */
static es_req *writer_take(es_shard *sh) {
  es_req *first = sh->head, *last = NULL;
  size_t events = 0, bytes = 0;
  for (es_req *r = first; r; last = r, r = r->next) {
    if (last && (events + r->count > DB_GROUP_EVENTS_MAX ||
                 bytes + r->rec_len > DB_FRAME_BYTES_MAX))
      break;
    events += r->count;
    bytes += r->rec_len;
  }
  if (!first)
    return NULL;
  sh->head = last->next;
  if (!sh->head)
    sh->tail = NULL;
  last->next = NULL;
  return first;
}

/* Seals, before the group is written, every memtable the group might
 * overflow: a memtable must never be sealed while holding rows that are
 * not yet published (the flusher writes only published rows). */
static int writer_make_room(es_shard *sh, es_req *reqs) {
  size_t events = 0;
  for (es_req *r = reqs; r; r = r->next)
    events += r->count;
  for (es_req *r = reqs; r; r = r->next)
    if (r->kind == ES_REQ_APPEND && r->tenant->active &&
        !es__memtable_has_room(r->tenant->active, events))
      ES_TRY(es__tenant_seal(sh->db, r->tenant));
  return ES_OK;
}

/* Frames, writes, inserts, syncs and publishes a decided group; *written
 * is set once the frame may have reached the log. */
static int writer_write(es_shard *sh, es_req *reqs, int *written) {
  es_db *db = sh->db;
  es_buf *f = &sh->frame;
  ES_TRY(writer_make_room(sh, reqs));
  f->len = 0;
  ES_TRY(es__buf_reserve(f, ES_WAL_FRAME_HDR));
  f->len = ES_WAL_FRAME_HDR;
  for (es_req *r = reqs; r; r = r->next)
    if (r->kind == ES_REQ_APPEND)
      ES_TRY(es__buf_put(f, r->rec, r->rec_len));
  if (f->len == ES_WAL_FRAME_HDR)
    return ES_OK;
  uint64_t lsn = sh->next_lsn;
  es__wal_frame_finish(f->data, f->len, lsn);
  int undone = 0, rc = es__wal_roll(sh->wal, f->len, lsn, &undone);
  if (rc < 0) /* nothing written, lsn unused: degraded, not failed */
    return es__gate_io_error(db, undone ? ES_GATE_ROLL : ES_GATE_STOP, rc);
  sh->next_lsn++;
  *written = 1;
  ES_TRY(es__wal_write(sh->wal, f->data, f->len, lsn));
  for (es_req *r = reqs; r; r = r->next) {
    if (r->kind != ES_REQ_APPEND)
      continue;
    r->lsn = lsn;
    ES_TRY(es__tenant_insert(db, r->tenant, r->rows, r->rows_len, r->count, lsn,
                             r->hint));
  }
  ES_TRY(es__wal_sync(sh->wal));
  es__commit_wal_synced(db, sh, lsn, f->data, f->len);
  es__gate_recovered(db, ES_DEGRADED_ROLL);
  int64_t now = es__clock_now_us();
  for (es_req *r = reqs; r; r = r->next) {
    if (r->kind != ES_REQ_APPEND)
      continue;
    es__memtable_publish(r->tenant->active, lsn);
    r->durable_us = now;
  }
  /* rules count acknowledged rows only, each once (rules.h, 1) */
  for (es_req *r = reqs; r; r = r->next)
    if (r->kind == ES_REQ_APPEND &&
        db->hooks->rows(db, r->tenant, r->rows, r->rows_len, r->count, lsn, 1) <
            0) /* the rows stay acknowledged */
      es__db_log(db, 0, "tenant %s: rule counters missed a batch: %s",
                 r->tenant->name, es_errdetail());
  return ES_OK;
}

/* Decides, then writes one group of append requests.  A group that
 * fails before its frame is written (a rollover that could not make a
 * file: the store is only degraded, appenders retry) takes back the ids
 * its decisions recorded, or a retry would be called a duplicate of
 * events never stored (dedupe.c, invariant 5). */
static int writer_commit(es_shard *sh, es_req *reqs) {
  es_db *db = sh->db;
  for (es_req *r = reqs; r; r = r->next) /* dedupe.c, invariant 1 */
    es__dedupe_request(db, r, sh->next_lsn);
  int written = 0, rc = writer_write(sh, reqs, &written);
  if (rc < 0 && !written)
    es__dedupe_group_undo(db, reqs);
  return rc;
}

/* Handles seal requests (es_flush) after the group they came with. */
static int writer_seals(es_shard *sh, es_req *reqs) {
  es_db *db = sh->db;
  for (es_req *r = reqs; r; r = r->next) {
    if (r->kind != ES_REQ_SEAL)
      continue;
    if (r->tenant) {
      ES_TRY(es__tenant_seal(db, r->tenant));
      continue;
    }
    pthread_mutex_lock(&db->tenants_mu);
    es_tenant *list = sh->tenants;
    pthread_mutex_unlock(&db->tenants_mu);
    for (es_tenant *t = list; t; t = t->shard_next)
      ES_TRY(es__tenant_seal(db, t));
  }
  return ES_OK;
}

/* After a group: seals the memtables of its tenants that reached
 * seal_bytes (only they grew), then relieves memory pressure.  The pass
 * over every tenant of the shard (age, dedupe trims) is the 100 ms one
 * in writer_main: per group it cost 375 calls per batch in a 500-tenant
 * store (callgrind, es-bench ingest --quick), on the appender's path. */
static int writer_seal_grown(es_shard *sh, es_req *reqs) {
  es_db *db = sh->db;
  for (es_req *r = reqs; r; r = r->next) {
    es_memtable *mt = r->kind == ES_REQ_APPEND ? r->tenant->active : NULL;
    if (mt && mt->bytes >= db->opts.seal_bytes && es__memtable_visible(mt) > 0)
      ES_TRY(es__tenant_seal(db, r->tenant));
  }
  size_t mem = atomic_load(&db->mem_bytes);
  if (mem <= db->opts.memtable_budget_bytes / 4 * 3)
    return ES_OK; /* writer_seal_pressure's first test, without the list */
  pthread_mutex_lock(&db->tenants_mu);
  es_tenant *list = sh->tenants;
  pthread_mutex_unlock(&db->tenants_mu);
  return writer_seal_pressure(sh, list);
}

/* Processes one batch of requests taken from the queue. */
static void writer_process(es_shard *sh, es_req *reqs) {
  es_db *db = sh->db;
  int rc = atomic_load(&db->failed) ? ES_EFAILED : ES_OK;
  if (rc == ES_OK) /* a WAL error fails stop; a failed rollover degrades */
    rc = es__gate_io_error(db, ES_GATE_STOP, writer_commit(sh, reqs));
  if (rc == ES_OK && (rc = writer_seals(sh, reqs)) < 0)
    es__db_fail(db, rc);
  for (es_req *r = reqs; rc == ES_OK && r; r = r->next)
    if (r->kind == ES_REQ_CALL &&
        (r->call_rc = r->call(r->call_arg)) < 0) /* its own, not the db's */
      snprintf(r->call_detail, sizeof(r->call_detail), "%s", es_errdetail());
  if (rc == ES_OK && (rc = writer_seal_grown(sh, reqs)) < 0)
    es__db_fail(db, rc);
  uint32_t wake = 0; /* the slots where an appender of the group sleeps */
  pthread_mutex_lock(&sh->mu);
  for (es_req *r = reqs, *next; r; r = next) {
    next = r->next; /* r lives on its appender's stack: read it first */
    if (r->sleeping)
      wake |= 1u << r->slot;
    r->rc = rc;
    r->done = 1;
  }
  pthread_mutex_unlock(&sh->mu);
  for (uint32_t i = 0; wake; i++, wake >>= 1)
    if (wake & 1)
      pthread_cond_broadcast(&sh->done_cv[i]);
}

/* The shard writer thread: group commit loop plus housekeeping. */
static void *writer_main(void *arg) {
  es_shard *sh = arg;
  es_db *db = sh->db;
  int64_t last_age_check = es__clock_mono_us();
  pthread_mutex_lock(&sh->mu);
  for (;;) {
    if (!sh->head && !sh->stop && !atomic_load(&sh->reclaim) &&
        !atomic_load(&sh->pressure)) {
      struct timespec ts;
      es__clock_deadline(&ts, DB_AGE_CHECK_US);
      pthread_cond_timedwait(&sh->work_cv, &sh->mu, &ts);
    }
    es_req *reqs = writer_take(sh);
    int stop = sh->stop;
    pthread_mutex_unlock(&sh->mu);
    if (reqs)
      writer_process(sh, reqs);
    int failed = atomic_load(&db->failed) != 0;
    if (!failed && atomic_exchange(&sh->reclaim, 0)) {
      int rc = writer_reclaim(sh);
      if (rc < 0)
        es__db_log(db, 1, "WAL reclaim: %s", es_errdetail());
    }
    atomic_store(&sh->wal_bytes, es__wal_bytes(sh->wal)); /* es_stats */
    int64_t now = es__clock_mono_us();
    if (!failed && (now - last_age_check >= DB_AGE_CHECK_US ||
                    atomic_exchange(&sh->pressure, 0))) {
      last_age_check = now;
      int rc = writer_seal_due(sh);
      if (rc < 0)
        es__db_fail(db, rc);
    }
    pthread_mutex_lock(&sh->mu);
    if (stop && !sh->head)
      break;
  }
  pthread_mutex_unlock(&sh->mu);
  return NULL;
}

/* One round of spare making.  A failure (a full disk) degrades the store
 * and the next round waits out an exponential backoff: a failed spare is
 * removed (wal.c) and not rewritten 50 times a second.  After a rollover
 * failed (ES_DEGRADED_ROLL) a spare is made at once, and a spare ready on
 * every shard clears that state. */
static void housekeeper_spares(es_db *db, int64_t *backoff_us,
                               int64_t *next_us) {
  int roll = (es__gate_degraded(db) & ES_DEGRADED_ROLL) != 0;
  int rc = ES_OK, ready = 0;
  for (uint32_t s = 0; s < db->nshards && rc >= 0; s++) {
    rc = es__wal_prepare_spare(db->shards[s].wal, roll);
    ready += rc == 1;
  }
  if (rc < 0) {
    *backoff_us = es__gate_backoff_next(*backoff_us);
    *next_us = es__clock_mono_us() + *backoff_us;
    if (es__gate_io_error(db, ES_GATE_SPARE, rc) < 0) /* degraded */
      es__error_clear();
    return;
  }
  *backoff_us = 0;
  es__gate_recovered(db,
                     ES_DEGRADED_SPARE |
                         (ready == (int)db->nshards ? ES_DEGRADED_ROLL : 0));
}

/* The housekeeper thread: keeps a zero-filled spare WAL file ready for
 * every shard, so that a rollover never makes appenders wait for
 * wal_file_bytes of zeros to be written. */
static void *housekeeper_main(void *arg) {
  es_db *db = arg;
  int64_t backoff_us = 0, next_us = 0;
  pthread_mutex_lock(&db->hk_mu);
  while (!db->hk_stop) {
    pthread_mutex_unlock(&db->hk_mu);
    if (es__clock_mono_us() >= next_us && !atomic_load(&db->failed))
      housekeeper_spares(db, &backoff_us, &next_us);
    pthread_mutex_lock(&db->hk_mu);
    struct timespec ts;
    es__clock_deadline(&ts, 20000);
    if (!db->hk_stop)
      pthread_cond_timedwait(&db->hk_cv, &db->hk_mu, &ts);
  }
  pthread_mutex_unlock(&db->hk_mu);
  return NULL;
}

/* Queues a request on a shard and waits for the writer to finish it. */
static int shard_submit(es_shard *sh, es_req *req) {
  pthread_mutex_lock(&sh->mu);
  if (sh->stop) {
    pthread_mutex_unlock(&sh->mu);
    return ES_ERR(ES_ECLOSED, "database is closing");
  }
  req->next = NULL;
  req->slot = sh->done_next++ % ES_SHARD_DONE_CVS;
  if (sh->tail)
    sh->tail->next = req;
  else
    sh->head = req;
  sh->tail = req;
  pthread_cond_signal(&sh->work_cv);
  req->sleeping = 1; /* read by the writer under mu */
  while (!req->done)
    pthread_cond_wait(&sh->done_cv[req->slot], &sh->mu);
  pthread_mutex_unlock(&sh->mu);
  if (req->rc < 0)
    return ES_ERR(req->rc, "%s",
                  req->rc == ES_EFAILED ? "database failed earlier; reopen it"
                  : req->rc == ES_EDEGRADED ? "database degraded: a new WAL "
                                              "file could not be made (disk "
                                              "full?); nothing written, retry "
                                              "later"
                                            : "write failed; database is now "
                                              "failed");
  return ES_OK;
}

/* Runs fn on a shard's writer thread; see dbint.h. */
int es__shard_call(es_db *db, uint32_t shard, int (*fn)(void *arg), void *arg) {
  ES_TRY(es__gate_enter(db, "a call on a shard writer"));
  es_req req = {.kind = ES_REQ_CALL, .call = fn, .call_arg = arg};
  ES_TRY(shard_submit(&db->shards[shard], &req));
  if (req.call_rc < 0) /* the detail was set on the writer thread */
    return ES_ERR(req.call_rc, "%s", req.call_detail);
  return ES_OK;
}

/* --- the public write calls --------------------------------------------- */

/* Waits while memtables exceed their budget, so a burst larger than the
 * flusher can absorb slows appenders down instead of exhausting memory.
 * While the store is degraded (flushes failing) waiting would last as
 * long as the disk stays full: refuse at once (gate.c, invariant 5). */
static int db_wait_memory(es_db *db) {
  if (atomic_load(&db->mem_bytes) <= db->opts.memtable_budget_bytes)
    return ES_OK;
  if (es__gate_degraded(db))
    return ES_ERR(ES_EDEGRADED, "database degraded and its memtables are "
                                "full (flushes failing: disk full?); retry "
                                "later");
  for (uint32_t s = 0; s < db->nshards; s++) { /* ask writers to seal */
    es_shard *sh = &db->shards[s];
    atomic_store(&sh->pressure, 1);
    pthread_mutex_lock(&sh->mu);
    pthread_cond_signal(&sh->work_cv);
    pthread_mutex_unlock(&sh->mu);
  }
  pthread_mutex_lock(&db->mem_mu);
  while (atomic_load(&db->mem_bytes) > db->opts.memtable_budget_bytes &&
         !atomic_load(&db->failed) && !atomic_load(&db->closing) &&
         !es__gate_degraded(db)) {
    struct timespec ts;
    es__clock_deadline(&ts, 100000);
    pthread_cond_timedwait(&db->mem_cv, &db->mem_mu, &ts);
  }
  pthread_mutex_unlock(&db->mem_mu);
  if (atomic_load(&db->mem_bytes) > db->opts.memtable_budget_bytes &&
      es__gate_degraded(db) && !atomic_load(&db->failed))
    return ES_ERR(ES_EDEGRADED, "database degraded and its memtables are "
                                "full (flushes failing: disk full?); retry "
                                "later");
  return ES_OK;
}

/* Appends a batch durably; see eventstore.h. */
int es_append(es_db *db, const char *tenant, const es_event *events,
              size_t count, es_receipt *receipt_out) {
  return es_append_flagged(db, tenant, events, count, receipt_out, NULL);
}

/* The events of a batch that a suppression (an erasure with suppress,
 * tomb.h) drops: sup[i] = 1 for each, *kept_out: a copy of the others
 * (NULL when none is dropped: then sup is untouched).  Costs one atomic
 * load when the tenant suppresses nothing. */
static int db_suppress(es_db *db, es_tenant *t, const es_event *events,
                       size_t count, uint8_t *sup, es_event **kept_out,
                       size_t *nkept_out) {
  *kept_out = NULL;
  *nkept_out = count;
  es_tomb *tb = es__tomb_get(db, t);
  if (!tb)
    return ES_OK;
  size_t n = 0;
  for (size_t i = 0; i < count; i++) {
    sup[i] = (uint8_t)es__tomb_suppresses(
        tb, events[i].anonymous_id, events[i].user_id, events[i].previous_id);
    n += sup[i];
  }
  es__tomb_unref(tb);
  if (n == 0)
    return ES_OK;
  es_event *kept = NULL;
  if (n < count && !(kept = es__malloc((count - n) * sizeof(*kept))))
    return ES_NOMEM_BKPT();
  size_t k = 0;
  for (size_t i = 0; i < count; i++)
    if (!sup[i])
      kept[k++] = events[i]; /* shallow: the caller's strings */
  *kept_out = kept;
  *nkept_out = count - n;
  atomic_fetch_add(&db->st_suppressed, n);
  return ES_OK;
}

/* Appends the events that are not suppressed; see es_append_flagged. */
static int db_append(es_db *db, es_tenant *t, const char *tenant,
                     const es_event *events, size_t count,
                     es_receipt *receipt_out, uint8_t *dup_flags) {
  es_buf rows = {0}, rec = {0};
  int64_t now = es__clock_now_us();
  int rc = ES_OK;
  es_row_hint *hint = es__malloc(count * sizeof(*hint));
  uint8_t *dup = NULL; /* the caller's flags, or ours */
  if (db->opts.dedupe_window_us > 0)
    dup = dup_flags ? dup_flags : es__malloc(count);
  if (!hint || (db->opts.dedupe_window_us > 0 && !dup))
    ES_CHECK(ES_NOMEM_BKPT());
  /* Room for rows of a typical size at once: grown by doubling from
   * empty, the buffer was copied a dozen times per batch. */
  size_t guess = count < DB_ROWS_RESERVE_MAX / DB_ROW_BYTES_GUESS
                     ? count * DB_ROW_BYTES_GUESS
                     : DB_ROWS_RESERVE_MAX;
  ES_CHECK(es__buf_reserve(&rows, guess));
  for (size_t i = 0; i < count; i++) {
    if (rows.len > DB_FRAME_BYTES_MAX)
      ES_CHECK(ES_ERR(ES_ETOOBIG, "batch encodes to more than %u bytes",
                      DB_FRAME_BYTES_MAX));
    hint[i] = (es_row_hint){(uint32_t)rows.len, events[i].ts_us};
    ES_CHECK(es__event_encode(&rows, &events[i], now, db->opts.keep_full_ip));
  }
  ES_CHECK(es__wal_record_build(&rec, tenant, (uint32_t)count, rows.data,
                                rows.len, db->opts.wal_compress));
  if (rec.len > DB_FRAME_BYTES_MAX)
    ES_CHECK(ES_ERR(ES_ETOOBIG, "batch encodes to %zu bytes", rec.len));
  ES_CHECK(db_wait_memory(db));
  es_req req = {.kind = ES_REQ_APPEND,
                .tenant = t,
                .rec = rec.data,
                .rec_len = rec.len,
                .rows = rows.data,
                .rows_len = rows.len,
                .hint = hint,
                .count = (uint32_t)count,
                .dup = dup};
  rc = shard_submit(&db->shards[t->shard], &req);
  es__dedupe_req_free(&req);
  ES_CHECK(rc);
  if (req.dd_rc < 0) /* this batch only: see dedupe.h */
    ES_CHECK(ES_ERR(req.dd_rc, "%s", req.call_detail));
  /* visible now: a map of ids cached before these links is stale */
  for (size_t i = 0; i < count; i++)
    if (events[i].type == ES_TYPE_IDENTIFY || events[i].type == ES_TYPE_ALIAS) {
      atomic_fetch_add(&t->id_gen, 1);
      break;
    }
  if (receipt_out) {
    receipt_out->lsn = req.lsn;
    receipt_out->shard = t->shard;
    receipt_out->durable_us =
        req.durable_us ? req.durable_us : es__clock_now_us();
    receipt_out->stored_count = (uint32_t)count - req.ndup;
    receipt_out->duplicates_count = req.ndup;
  }
  if (dup_flags && !dup) /* dedupe off: nothing is a duplicate */
    memset(dup_flags, 0, count);
err:
  if (dup != dup_flags)
    es__free(dup);
  es__free(hint);
  es__buf_free(&rows);
  es__buf_free(&rec);
  return rc;
}

/* Appends a batch durably and flags its duplicates; see eventstore.h.
 * Suppressed events (an erasure with suppress) are taken out first. */
int es_append_flagged(es_db *db, const char *tenant, const es_event *events,
                      size_t count, es_receipt *receipt_out,
                      uint8_t *dup_flags) {
  es__error_clear();
  if (receipt_out)
    memset(receipt_out, 0, sizeof(*receipt_out));
  if (!db || !events || count == 0)
    return ES_INVAL_BKPT("es_append: NULL handle, NULL events or count 0");
  if (count > ES_BATCH_EVENTS_MAX)
    return ES_ERR(ES_ETOOBIG, "batch of %zu events (limit %d)", count,
                  ES_BATCH_EVENTS_MAX);
  ES_TRY(es__tenant_check(tenant));
  ES_TRY(es__gate_enter(db, "es_append"));
  for (size_t i = 0; i < count; i++) { /* also those suppressed below */
    if (events[i].type < ES_TYPE_TRACK || events[i].type > ES_TYPE_GROUP)
      return ES_INVAL_BKPT("event type %d is not an es_type", events[i].type);
    if (events[i].ts_us < 0 || events[i].ts_us == INT64_MAX)
      return ES_INVAL_BKPT("event time %lld is outside [1970, INT64_MAX)",
                           (long long)events[i].ts_us);
  }
  es_tenant *t = NULL;
  ES_TRY(es__tenant_get(db, tenant, 1, &t));
  uint8_t *sup = es__malloc(count);
  if (!sup)
    return ES_NOMEM_BKPT();
  es_event *kept = NULL;
  size_t n = count;
  int rc = db_suppress(db, t, events, count, sup, &kept, &n);
  if (rc == ES_OK && n == count) { /* the common case: nothing dropped */
    rc = db_append(db, t, tenant, events, count, receipt_out, dup_flags);
  } else if (rc == ES_OK) {
    uint8_t *dup = dup_flags && n ? es__malloc(n) : NULL;
    if (dup_flags && n && !dup)
      rc = ES_NOMEM_BKPT();
    if (rc == ES_OK && n)
      rc = db_append(db, t, tenant, kept, n, receipt_out, dup);
    for (size_t i = 0, k = 0; rc == ES_OK && dup_flags && i < count; i++)
      dup_flags[i] = sup[i] ? 2 : dup[k++];
    es__free(dup);
  }
  if (rc == ES_OK && receipt_out) {
    receipt_out->shard = t->shard;
    receipt_out->events_count = (uint32_t)count;
    receipt_out->suppressed_count = (uint32_t)(count - n);
    if (n == 0)
      receipt_out->durable_us = es__clock_now_us();
  }
  es__free(kept);
  es__free(sup);
  return rc;
}

/* Seals and flushes; see eventstore.h. */
int es_flush(es_db *db, const char *tenant) {
  es__error_clear();
  if (!db)
    return ES_INVAL_BKPT("es_flush: NULL handle");
  ES_TRY(es__gate_enter(db, "es_flush"));
  uint64_t failures = es__gate_flush_failures(db);
  es_tenant *t = NULL;
  if (tenant) {
    ES_TRY(es__tenant_check(tenant));
    ES_TRY(es__tenant_get(db, tenant, 0, &t));
    if (!t)
      return ES_OK;
  }
  for (uint32_t s = 0; s < db->nshards; s++) {
    if (t && t->shard != s)
      continue;
    es_req req = {.kind = ES_REQ_SEAL, .tenant = t};
    ES_TRY(shard_submit(&db->shards[s], &req));
  }
  pthread_mutex_lock(&db->flush_mu);
  uint64_t target = db->seal_seq;
  /* a retryable failure meanwhile: the flusher retries with backoff, the
   * rows are safe in the WAL; the caller is told instead of waiting */
  while (db->flushed_seq < target && !atomic_load(&db->failed) &&
         es__gate_flush_failures(db) == failures)
    pthread_cond_wait(&db->flushed_cv, &db->flush_mu);
  int done = db->flushed_seq >= target;
  pthread_mutex_unlock(&db->flush_mu);
  int failed = atomic_load(&db->failed);
  if (failed)
    return ES_ERR(ES_EFAILED, "flush failed (%s); reopen the database",
                  es_strerror(failed));
  if (!done)
    return ES_ERR(ES_EDEGRADED, "flush failed and is being retried (disk "
                                "full?); the rows are safe in the WAL");
  return ES_OK;
}

/* --- open and recovery -------------------------------------------------- */

typedef struct replay_ctx {
  es_db *db;
  uint32_t shard;
  const char *path;
  uint64_t records;
  uint64_t clean_lsn; /* every record at or below is in a segment */
} replay_ctx;

/* A shard's CLEAN file: "every record at or below this LSN is in a
 * segment", written at close.  It only ever becomes truer (flushes are
 * never undone), so an old one is still right; replay skips those records
 * without looking up their tenants, which keeps es_open from loading
 * every tenant of a cleanly closed store. */
#define CLEAN_NAME "CLEAN"
#define CLEAN_SEED 0xc1ea    /* the 16-byte form: the LSN alone */
#define CLEAN_SEED_AT 0xc1eb /* the 40-byte form: and where the log ended */

/* What a CLEAN file says (zeros: nothing). */
typedef struct clean_mark {
  uint64_t lsn;      /* every record at or below is in a segment */
  uint64_t file_lsn; /* the newest log file at close (its first LSN) */
  uint64_t off;      /* where its frames ended */
  uint64_t last_lsn; /* the LSN of the frame before off */
} clean_mark;

/* Reads CLEAN: the 40-byte form written now, or the 16-byte form of
 * earlier versions (no offset: the newest file is read whole). */
static clean_mark clean_read(es_db *db, es_shard *sh) {
  char path[ES_PATH_MAX];
  uint8_t *buf = NULL;
  size_t len = 0;
  clean_mark m = {0};
  if (es__path_join(path, sizeof(path), sh->dir, CLEAN_NAME) == ES_OK &&
      es__io_read_all(db->vfs, path, &buf, &len) == ES_OK) {
    if (len == 16 && es__get_le64(buf + 8) == es__hash64(buf, 8, CLEAN_SEED))
      m.lsn = es__get_le64(buf);
    else if (len == 40 &&
             es__get_le64(buf + 32) == es__hash64(buf, 32, CLEAN_SEED_AT))
      m = (clean_mark){es__get_le64(buf), es__get_le64(buf + 8),
                       es__get_le64(buf + 16), es__get_le64(buf + 24)};
  }
  es__free(buf);
  es__error_clear(); /* none, or unreadable: replay everything */
  return m;
}

/* At close: records below the oldest unflushed one are all flushed (the
 * manifests saying so are durable: tenant.c syncs a tenant's directory
 * when it loads it), and the mark never goes back.  Where the newest
 * file's frames end is written beside it: when every record before that
 * offset is at or below the mark, the next open reads the file from
 * there on only (see replay_shard). */
static int clean_write(es_db *db, es_shard *sh) {
  uint64_t lsn = sh->next_lsn - 1;
  pthread_mutex_lock(&db->tenants_mu);
  es_tenant *list = sh->tenants;
  pthread_mutex_unlock(&db->tenants_mu);
  for (es_tenant *t = list; t; t = t->shard_next) {
    uint64_t u = es__tenant_min_unflushed(t);
    if (u != UINT64_MAX && u - 1 < lsn)
      lsn = u - 1;
  }
  if (lsn < sh->clean_lsn)
    lsn = sh->clean_lsn;
  uint64_t file_lsn = 0, off = 0;
  es__wal_position(sh->wal, &file_lsn, &off);
  uint8_t buf[40];
  es__le64(buf, lsn);
  es__le64(buf + 8, file_lsn);
  es__le64(buf + 16, off);
  es__le64(buf + 24, sh->next_lsn - 1);
  es__le64(buf + 32, es__hash64(buf, 32, CLEAN_SEED_AT));
  return es__io_write_atomic(db->vfs, sh->dir, CLEAN_NAME, buf, sizeof(buf));
}

/* Replays one WAL record into its tenant's memtable unless a segment
 * already holds it (lsn <= flushed_lsn). */
static int replay_record(void *ud, uint64_t lsn, const es_wal_rec *rec,
                         uint64_t frame_off) {
  replay_ctx *rc = ud;
  es_db *db = rc->db;
  if (lsn <= rc->clean_lsn)
    return ES_OK; /* in a segment: see clean_read */
  if (es__tenant_check(rec->tenant) < 0 ||
      es__tenant_shard(db, rec->tenant) != rc->shard)
    return ES_CORRUPT_BKPT("%s: frame at %llu: tenant \"%s\" does not "
                           "belong to shard %u",
                           rc->path, (unsigned long long)frame_off, rec->tenant,
                           rc->shard);
  es_tenant *t = NULL;
  ES_TRY(es__tenant_get(db, rec->tenant, 1, &t));
  if (lsn <= t->man.flushed_lsn) /* made durable at load (tenant.c) */
    return ES_OK;
  ES_TRY(es__tenant_insert(db, t, rec->rows, rec->rows_len, rec->events, lsn,
                           NULL));
  ES_TRY(es__dedupe_note(db, t, rec->rows, rec->rows_len, rec->events, lsn));
  es__memtable_publish(t->active, lsn);
  /* no triggers on replay: rules.h, 2 */
  if (db->hooks->rows(db, t, rec->rows, rec->rows_len, rec->events, lsn, 0) < 0)
    es__db_log(db, 0, "tenant %s: rule counters missed a record: %s", t->name,
               es_errdetail());
  rc->records++;
  if (t->active->bytes >= db->opts.seal_bytes)
    ES_TRY(es__tenant_seal(db, t));
  return ES_OK;
}

/* Overwrites a torn tail of the newest log file with zeros, so that the
 * file ends cleanly where the valid frames end and writing can resume
 * there with its preallocation intact. */
static int replay_zero_tail(es_db *db, const char *path, uint64_t from,
                            uint64_t to) {
  size_t n = (size_t)(to - from);
  uint8_t *zeros = es__calloc(1, n);
  if (!zeros)
    return ES_NOMEM_BKPT();
  int rc = es__io_write_at(db->vfs, path, 0, zeros, n, from);
  es__free(zeros);
  return rc;
}

/* Recovers one shard: replays its log and opens a fresh file to write. */
static int replay_shard(es_db *db, es_shard *sh) {
  uint64_t *firsts = NULL;
  size_t n = 0;
  ES_TRY(es__wal_list(db->vfs, sh->dir, &firsts, &n));
  uint64_t prev = 0, next = 1, resume_off = 0;
  int rc = ES_OK;
  clean_mark mark = clean_read(db, sh);
  sh->clean_lsn = mark.lsn;
  replay_ctx ctx = {db, sh->id, NULL, 0, sh->clean_lsn};
  for (size_t i = 0; i < n; i++) {
    char path[ES_PATH_MAX];
    if (i + 1 < n && firsts[i + 1] - 1 <= ctx.clean_lsn) {
      /* every record of this file is below the next file's first LSN,
       * so at or below CLEAN: nothing to replay, nothing to read */
      if (ctx.clean_lsn > prev)
        prev =
            ctx.clean_lsn < firsts[i + 1] ? ctx.clean_lsn : firsts[i + 1] - 1;
      continue;
    }
    ES_CHECK(es__wal_path(path, sizeof(path), sh->dir, firsts[i]));
    ctx.path = path;
    /* The newest file as the last close left it, every record in it at
     * or below the mark: only what follows its frames needs reading
     * (frames a later process wrote and did not close cleanly, and the
     * zeros that must follow the last valid frame).  Those before were
     * checked when written or replayed, and nothing of them is replayed. */
    uint64_t base = 0;
    if (i + 1 == n && mark.off > 0 && mark.file_lsn == firsts[i] &&
        mark.lsn >= mark.last_lsn && mark.last_lsn >= prev) {
      base = mark.off;
      prev = mark.last_lsn;
    }
    es_wal_scan scan;
    ES_CHECK(es__wal_read_file_at(db->vfs, path, i + 1 == n, base, prev,
                                  ctx.clean_lsn, replay_record, &ctx, &scan));
    if (scan.torn) {
      es__db_log(db, 1, "%s: torn tail at offset %llu cut off", path,
                 (unsigned long long)scan.end_off);
      ES_CHECK(replay_zero_tail(db, path, scan.end_off, scan.dirty_end));
    }
    if (i + 1 == n && (scan.frames > 0 || base > 0)) /* also a small first
                                                        file (wal.h 5) */
      resume_off = scan.end_off;
    if (scan.last_lsn)
      prev = scan.last_lsn;
    if (firsts[i] > next)
      next = firsts[i];
  }
  if (prev + 1 > next)
    next = prev + 1;
  pthread_mutex_lock(&db->tenants_mu);
  for (es_tenant *t = sh->tenants; t; t = t->shard_next)
    if (t->man.flushed_lsn + 1 > next)
      next = t->man.flushed_lsn + 1;
  pthread_mutex_unlock(&db->tenants_mu);
  sh->next_lsn = next;
  atomic_store(&sh->reclaim, 1); /* files replayed into segments can go */
  if (ctx.records)
    es__db_log(db, 2, "shard %u: replayed %llu records", sh->id,
               (unsigned long long)ctx.records);
  ES_CHECK(es__wal_open(db->vfs, sh->dir, next, firsts, n, resume_off,
                        db->opts.wal_file_bytes,
                        db->opts.sync_mode == ES_SYNC_FULL, &sh->wal));
err:
  es__free(firsts);
  return rc;
}

typedef struct replay_job {
  es_db *db;
  uint32_t first, step; /* shards first, first + step, ... */
  int rc;
  char detail[512];
} replay_job;

static void *replay_thread(void *arg) {
  replay_job *j = arg;
  j->rc = ES_OK;
  for (uint32_t s = j->first; s < j->db->nshards && j->rc == ES_OK;
       s += j->step)
    j->rc = replay_shard(j->db, &j->db->shards[s]);
  if (j->rc < 0)
    snprintf(j->detail, sizeof(j->detail), "%s", es_errdetail());
  return NULL;
}

/* Replays every shard, in parallel on up to as many threads as cores:
 * shards share no tenant, so their replays touch disjoint memtables. */
static int replay_all(es_db *db) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  uint32_t n = cores > 1 ? (uint32_t)cores : 1;
  if (n > db->nshards)
    n = db->nshards;
  if (n > 16)
    n = 16;
  replay_job jobs[16];
  pthread_t th[16];
  int started[16] = {0};
  for (uint32_t i = 0; i < n; i++) {
    jobs[i] = (replay_job){db, i, n, ES_OK, ""};
    if (i > 0)
      started[i] = pthread_create(&th[i], NULL, replay_thread, &jobs[i]) == 0;
  }
  replay_thread(&jobs[0]);
  for (uint32_t i = 1; i < n; i++) {
    if (started[i])
      pthread_join(th[i], NULL);
    else
      replay_thread(&jobs[i]); /* no thread: do it here */
  }
  for (uint32_t i = 0; i < n; i++)
    if (jobs[i].rc < 0)
      return es__error_at(jobs[i].rc, __FILE__, __LINE__, "%s", jobs[i].detail);
  return ES_OK;
}

static int open_shards(es_db *db, int sync);
static int open_sync_parent(es_db *db);

/*
 * Reads ESDB, or creates a new store when the directory has none.  ESDB
 * is written last, after the data directory's entry in its parent, the
 * tenants/ and wal/ directories and every shard's directory are durable:
 * so a store with an ESDB needs none of those syncs again, and reopening
 * one (a restart) skips them (three directory fsyncs, several ms each
 * here, on the path of the first acknowledgement).  A creation cut short
 * leaves no ESDB and is simply done again.  (Stores created before this
 * order wrote ESDB first; their directories were synced in that same
 * open, unless it crashed within those few milliseconds.)
 */
static int open_identity(es_db *db, int shards_wanted) {
  es_vfs *vfs = db->vfs;
  uint32_t shards = 0;
  int rc = es__esdb_read(vfs, db->dir, &shards);
  if (rc == ES_ENOTFOUND) {
    es__error_clear();
    db->nshards = (uint32_t)shards_wanted;
    ES_TRY(open_sync_parent(db));
    ES_TRY(vfs->mkdir(vfs, db->tenants_dir));
    ES_TRY(open_shards(db, 1));
    ES_TRY(vfs->sync_dir(vfs, db->dir));
    ES_TRY(es__esdb_write(vfs, db->dir, db->nshards));
    es__db_log(db, 2, "created store in %s with %u shards", db->dir,
               db->nshards);
    return ES_OK;
  }
  ES_TRY(rc);
  if ((int)shards != shards_wanted)
    es__db_log(db, 2,
               "store has %u shards (fixed at creation); the "
               "requested %d applies only to new stores",
               shards, shards_wanted);
  db->nshards = shards;
  ES_TRY(vfs->mkdir(vfs, db->tenants_dir)); /* no-ops on a sound store */
  return open_shards(db, 0);
}

/* Allocates the handle and its locks; nothing on disk yet. */
static int open_alloc(const es_options *opts, es_vfs *vfs, es_db **db_out) {
  es_db *db = es__calloc(1, sizeof(*db));
  *db_out = db;
  if (!db)
    return ES_NOMEM_BKPT();
  db->opts = *opts;
  db->opts.data_dir = NULL;
  db->vfs = vfs;
  pthread_mutex_init(&db->tenants_mu, NULL);
  pthread_mutex_init(&db->gate_mu, NULL);
  pthread_mutex_init(&db->exp_mu, NULL);
  pthread_mutex_init(&db->flush_mu, NULL);
  pthread_cond_init(&db->flush_cv, NULL);
  pthread_cond_init(&db->flushed_cv, NULL);
  pthread_mutex_init(&db->mem_mu, NULL);
  pthread_cond_init(&db->mem_cv, NULL);
  pthread_mutex_init(&db->hk_mu, NULL);
  pthread_cond_init(&db->hk_cv, NULL);
  pthread_mutex_init(&db->cmp_mu, NULL);
  pthread_cond_init(&db->cmp_cv, NULL);
  pthread_cond_init(&db->cmp_idle_cv, NULL);
  ES_TRY(es__commit_init(db));
  if (strlen(opts->data_dir) + 64 >= sizeof(db->dir))
    return ES_INVAL_BKPT("data_dir too long");
  strcpy(db->dir, opts->data_dir);
  return es__path_join(db->tenants_dir, sizeof(db->tenants_dir), db->dir,
                       "tenants");
}

/* Creates the shard objects (threads start later), and for a writable
 * handle their directories, synced when `sync` (a new store). */
static int open_shards(es_db *db, int sync) {
  db->shards = es__calloc(db->nshards, sizeof(es_shard));
  if (!db->shards)
    return ES_NOMEM_BKPT();
  char waldir[ES_PATH_MAX];
  ES_TRY(es__path_join(waldir, sizeof(waldir), db->dir, "wal"));
  int ro = db->opts.read_only;
  if (!ro)
    ES_TRY(db->vfs->mkdir(db->vfs, waldir));
  for (uint32_t s = 0; s < db->nshards; s++) {
    es_shard *sh = &db->shards[s];
    sh->db = db;
    sh->id = s;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP /* glibc: spin briefly first */
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    pthread_mutex_init(&sh->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_cond_init(&sh->work_cv, NULL);
    for (int i = 0; i < ES_SHARD_DONE_CVS; i++)
      pthread_cond_init(&sh->done_cv[i], NULL);
    if (snprintf(sh->dir, sizeof(sh->dir), "%s/%u", waldir, s) >=
        (int)sizeof(sh->dir))
      return ES_INVAL_BKPT("data_dir too long");
    if (!ro)
      ES_TRY(db->vfs->mkdir(db->vfs, sh->dir));
  }
  return ro || !sync ? ES_OK : db->vfs->sync_dir(db->vfs, waldir);
}

static int open_check_options(const es_options *opts) {
  if (!opts || !opts->data_dir || !opts->data_dir[0])
    return ES_INVAL_BKPT("options.data_dir is required");
  if (opts->shards < 1 || opts->shards > 1024)
    return ES_INVAL_BKPT("options.shards %d not in 1..1024", opts->shards);
  if (opts->seal_bytes < 4096 || opts->memtable_budget_bytes < 65536)
    return ES_INVAL_BKPT("options.seal_bytes (>= 4096) or "
                         "memtable_budget_bytes (>= 65536) too small");
  if (opts->wal_file_bytes < 4096)
    return ES_INVAL_BKPT("options.wal_file_bytes must be >= 4096");
  if (opts->sync_mode != ES_SYNC_FULL && opts->sync_mode != ES_SYNC_NONE)
    return ES_INVAL_BKPT("options.sync_mode %d unknown", opts->sync_mode);
  if (opts->compact_segments < 0)
    return ES_INVAL_BKPT("options.compact_segments must be >= 0");
  if (opts->read_only && opts->follow_interval_us <= 0)
    return ES_INVAL_BKPT("options.follow_interval_us must be positive");
  if (opts->seal_age_us <= 0)
    return ES_INVAL_BKPT("options.seal_age_us must be positive");
  if (opts->dedupe_window_us < 0)
    return ES_INVAL_BKPT("options.dedupe_window_us must be >= 0");
  return ES_OK;
}

/* Makes the data directory's own entry durable in its parent (it may
 * just have been created): without it a power cut could lose the store. */
static int open_sync_parent(es_db *db) {
  char parent[ES_PATH_MAX];
  strcpy(parent, db->dir);
  size_t n = strlen(parent);
  while (n > 1 && parent[n - 1] == '/')
    parent[--n] = '\0';
  char *slash = strrchr(parent, '/');
  if (!slash)
    strcpy(parent, ".");
  else if (slash == parent)
    parent[1] = '\0';
  else
    *slash = '\0';
  return db->vfs->sync_dir(db->vfs, parent);
}

/* Opens with a chosen vfs and the layer above's hooks; see eventstore.h
 * (es_open) and db.h. */
int es__db_open(const es_options *opts_in, es_vfs *vfs,
                const es_engine_hooks *hooks, es_db **db_out) {
  es__error_clear();
  if (!db_out)
    return ES_INVAL_BKPT("db_out is NULL");
  *db_out = NULL;
  if (!opts_in)
    return ES_INVAL_BKPT("options is NULL");
  es_options full, *opts = &full;
  es_options_init(&full);
  ES_TRY(es__abi_options_in(opts_in, &full, sizeof(full), DB_OPTIONS_SIZE_MIN,
                            "es_options"));
  ES_TRY(open_check_options(opts));
  es_db *db = NULL;
  char path[ES_PATH_MAX];
  int rc = ES_OK;
  ES_CHECK(open_alloc(opts, vfs, &db));
  db->hooks = hooks;
  if (opts->read_only) { /* beside a writer: no lock, no writes */
    uint32_t shards = 0;
    rc = es__esdb_read(vfs, db->dir, &shards);
    if (rc == ES_ENOTFOUND)
      ES_CHECK(ES_ERR(ES_ENOTFOUND, "no store in %s", db->dir));
    ES_CHECK(rc);
    db->nshards = shards;
    ES_CHECK(open_shards(db, 0));
    ES_CHECK(es__open_read_only(db));
    *db_out = db;
    return ES_OK;
  }
  if (opts->must_exist) { /* a mistyped path must not become a store */
    uint32_t shards = 0;
    rc = es__esdb_read(vfs, db->dir, &shards);
    if (rc == ES_ENOTFOUND)
      ES_CHECK(ES_ERR(ES_ENOTFOUND, "no store in %s", db->dir));
    ES_CHECK(rc);
  }
  ES_CHECK(vfs->mkdir(vfs, db->dir));
  ES_CHECK(es__path_join(path, sizeof(path), db->dir, "LOCK"));
  ES_CHECK(vfs->lock(vfs, path, &db->lock));
  ES_CHECK(open_identity(db, opts->shards));
  ES_CHECK(es__dedupe_open(db));
  ES_CHECK(es__tenants_load(db));
  ES_CHECK(replay_all(db));
  if (pthread_create(&db->flusher, NULL, es__flusher_main, db) != 0)
    ES_CHECK(ES_ERR(ES_ENOMEM, "cannot start the flusher thread"));
  db->flusher_started = 1;
  (void)pthread_setname_np(db->flusher, "es-flush");
  if (opts->compact_segments > 0) {
    if (pthread_create(&db->compactor, NULL, es__compactor_main, db) != 0)
      ES_CHECK(ES_ERR(ES_ENOMEM, "cannot start the compactor thread"));
    db->cmp_started = 1;
    (void)pthread_setname_np(db->compactor, "es-compact");
  }
  for (uint32_t s = 0; s < db->nshards; s++) {
    es_shard *sh = &db->shards[s];
    if (pthread_create(&sh->thread, NULL, writer_main, sh) != 0)
      ES_CHECK(ES_ERR(ES_ENOMEM, "cannot start a writer thread"));
    sh->started = 1;
    char name[16];
    snprintf(name, sizeof(name), "es-wal%u", s % 1000);
    (void)pthread_setname_np(sh->thread, name);
  }
  if (pthread_create(&db->housekeeper, NULL, housekeeper_main, db) != 0)
    ES_CHECK(ES_ERR(ES_ENOMEM, "cannot start the housekeeper thread"));
  db->hk_started = 1;
  (void)pthread_setname_np(db->housekeeper, "es-housekeep");
  *db_out = db;
  return ES_OK;
err:
  if (db) {
    char keep[512];
    snprintf(keep, sizeof(keep), "%s", es_errdetail());
    (void)es_close(db);
    es__error_at(rc, __FILE__, __LINE__, "%s", keep);
  }
  return rc;
}

/* Sets a thread's stop flag under its lock, wakes it, and joins it. */
static void close_stop_thread(pthread_mutex_t *mu, pthread_cond_t *cv,
                              int *stop, int started, pthread_t th) {
  pthread_mutex_lock(mu);
  *stop = 1;
  pthread_cond_signal(cv);
  pthread_mutex_unlock(mu);
  if (started)
    pthread_join(th, NULL);
}

/* Stops threads (housekeeper, writers after they drain their queues, the
 * flusher after it drains its jobs), then frees everything. */
int es_close(es_db *db) {
  if (!db)
    return ES_OK;
  if (db->ext_stop) /* replication (lib/api.c): before the store stops */
    db->ext_stop(db);
  atomic_store(&db->closing, 1);
  close_stop_thread(&db->cmp_mu, &db->cmp_cv, &db->cmp_stop, db->cmp_started,
                    db->compactor);
  close_stop_thread(&db->hk_mu, &db->hk_cv, &db->hk_stop, db->hk_started,
                    db->housekeeper);
  for (uint32_t s = 0; db->shards && s < db->nshards; s++) {
    es_shard *sh = &db->shards[s];
    close_stop_thread(&sh->mu, &sh->work_cv, &sh->stop, sh->started,
                      sh->thread);
  }
  close_stop_thread(&db->flush_mu, &db->flush_cv, &db->flusher_stop,
                    db->flusher_started, db->flusher);
  for (size_t i = 0; i < db->jobs_len; i++) /* left when never started */
    es__memtable_unref(db->jobs[db->jobs_head + i].mt);
  /* every counted row is in the rule state the next open loads */
  for (size_t i = 0;
       !db->opts.read_only && !atomic_load(&db->failed) && i < db->ntenants;
       i++)
    if (atomic_load(&db->tenants[i]->loaded) &&
        db->hooks->tenant_save(db, db->tenants[i]) < 0) {
      es__db_log(db, 1, "tenant %s: rule state not saved: %s",
                 db->tenants[i]->name, es_errdetail());
      es__error_clear();
    }
  for (uint32_t s = 0; !db->opts.read_only && db->shards && s < db->nshards &&
                       db->shards[s].wal && !atomic_load(&db->failed);
       s++)
    if (clean_write(db, &db->shards[s]) < 0) /* only an optimisation */
      es__db_log(db, 1, "shard %u: CLEAN not written: %s", s, es_errdetail());
  for (uint32_t s = 0; db->shards && s < db->nshards; s++) {
    es_shard *sh = &db->shards[s];
    es__wal_close(sh->wal);
    es__buf_free(&sh->frame);
    pthread_mutex_destroy(&sh->mu);
    pthread_cond_destroy(&sh->work_cv);
    for (int i = 0; i < ES_SHARD_DONE_CVS; i++)
      pthread_cond_destroy(&sh->done_cv[i]);
  }
  es__tenants_free(db);
  es__commit_free(db);
  es__dedupe_close(db);
  if (db->lock)
    (void)db->vfs->close(db->vfs, db->lock);
  int rc = atomic_load(&db->failed);
  es__free(db->jobs);
  es__free(db->shards);
  es__free(db->tenants);
  es__htab_free(&db->tenant_index);
  pthread_mutex_destroy(&db->tenants_mu);
  pthread_mutex_destroy(&db->gate_mu);
  pthread_mutex_destroy(&db->exp_mu);
  es__free(db->exp_hooks);
  pthread_mutex_destroy(&db->flush_mu);
  pthread_cond_destroy(&db->flush_cv);
  pthread_cond_destroy(&db->flushed_cv);
  pthread_mutex_destroy(&db->mem_mu);
  pthread_cond_destroy(&db->mem_cv);
  pthread_mutex_destroy(&db->cmp_mu);
  pthread_cond_destroy(&db->cmp_cv);
  pthread_cond_destroy(&db->cmp_idle_cv);
  es__free(db->cmp_queue);
  pthread_mutex_destroy(&db->hk_mu);
  pthread_cond_destroy(&db->hk_cv);
  es__free(db);
  return rc;
}

/* Registers an export destination; see dbint.h. */
int es__export_hook_add(es_db *db, const es_export_hook *h) {
  pthread_mutex_lock(&db->exp_mu);
  int rc = es__grow((void **)&db->exp_hooks, &db->exp_cap, db->exp_n + 1,
                    sizeof(*db->exp_hooks));
  if (rc == ES_OK) {
    db->exp_hooks[db->exp_n++] = *h;
    db->exp_ever |= h->key[0] == '\0'; /* not recorded: see dbint.h */
  }
  pthread_mutex_unlock(&db->exp_mu);
  return rc;
}

void es__export_hook_remove(es_db *db, void *ud) {
  pthread_mutex_lock(&db->exp_mu);
  for (size_t i = 0; i < db->exp_n; i++)
    if (db->exp_hooks[i].ud == ud) {
      db->exp_hooks[i] = db->exp_hooks[--db->exp_n];
      break;
    }
  pthread_mutex_unlock(&db->exp_mu);
}
