/*
 * erase.c -- a person's erasure (GDPR Art. 17, CCPA): es_erase_submit,
 * es_erase_run, es_erase_status.  The request's log and the tombstone
 * every read honours are the store's (store/tomb.c); this file runs the
 * stages that remove the rows for good, each ending with a durable stage
 * record, so a crash anywhere resumes where the log says:
 *
 *   (a) hidden    es_erase_submit: the ids linked to the person now (the
 *                 identity map), a REQ record synced, the tombstone
 *                 installed; the caller is answered after that.
 *   (b) segments  the tenant's memtables flushed (so every stored row of
 *                 the person is in a segment), then one es__rewrite of the
 *                 segments whose Bloom filter admits one of the ids, keeping
 *                 the rows that carry none (atomic like compaction; the
 *                 other segments are untouched).  Count: rows removed.
 *   (c) rollups   a rewrite derives each output's rollup from the rows it
 *                 keeps (rewrite.c, 5) and (b) left no memtable row of the
 *                 person, so nothing is left to correct: the stage records
 *                 how many rollup files were re-derived.  Until it is done
 *                 queries do not answer from rollups (query.c).
 *   (d) WAL       the shard's log rolled to a new file, every tenant of the
 *                 shard flushed, the old files reclaimed: waits until no
 *                 file that may hold the person's records is left; then the
 *                 identity log's unlink records naming the ids are dropped
 *                 and the rule counters refilled from the rows left.
 *   (e) replica   with a replicator: uploads drained, then waits until
 *                 every object superseded by (b) is deleted (its grace
 *                 period); in durability tier s3, also until the shard's
 *                 WAL chunks older than (d)'s roll are deleted (walship.c,
 *                 3).  Without one and no REPLICA record: skipped.
 *   (f) exports   every export destination re-cuts the tenant's
 *                 partitions of the days the rows removed by (b) were in
 *                 (every partition of the tenant when (b) ran in an
 *                 earlier process): a running es_exporter's through its
 *                 hook (store/dbint.h, es_export_hook), every other one
 *                 recorded in DATA/exports (lib/export/xreg.c: one-off
 *                 es_export runs, exporters of earlier starts) opened
 *                 here.  None: skipped.
 *
 * Then the log is compacted: the ids leave the disk, a receipt stays, and
 * the tombstone is rebuilt without them.
 *
 * Invariants:
 *  1. A stage is recorded only after its effect is durable (the manifest
 *     of (b), the reclaim of (d)); redoing a stage whose record was lost
 *     is harmless (a rewrite finds no row to drop, a roll finds the old
 *     files already gone).
 *  2. One es_erase_run at a time per handle (run_mu); submissions do not
 *     wait for it (the log's appends take only tenant->tomb_log_mu).
 *  3. Log lines name a request by its id and the person by the salted
 *     hash, never by an id.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/abi.h"
#include "base/clock.h"
#include "base/isotime.h"
#include "base/json.h"
#include "base/mem.h"
#include "engine/identity.h"
#include "export/export.h"
#include "export/xreg.h"
#include "replicate/replicate.h"
#include "store/commit.h"
#include "store/gate.h"
#include "store/rewrite.h"
#include "store/tomb.h"

#define ERASE_WAL_WAIT_US INT64_C(5000000) /* then EDEGRADED: retried */
#define ERASE_REPLICA_POLL_US INT64_C(100000)
#define ERASE_CHUNK_FLUSH_US INT64_C(2000000)
#define ERASE_REWRITE_MEMORY_BYTES (UINT64_C(64) << 20)
#define ERASE_DAY_US INT64_C(86400000000)

static pthread_mutex_t run_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const stage_names[ES_TOMB_STAGES] = {
    "hidden", "segments", "rollups", "wal", "replica", "exports"};

/* the first release's es_erase_options: up to anonymous_id */
#define ERASE_OPTS_SIZE_MIN                                                    \
  (offsetof(es_erase_options, anonymous_id) + sizeof(const char *))

void es_erase_options_init_sized(es_erase_options *opts, size_t struct_size) {
  es_erase_options o;
  memset(&o, 0, sizeof o);
  memset(opts, 0, struct_size);
  memcpy(opts, &o, struct_size < sizeof o ? struct_size : sizeof o);
  opts->struct_size = struct_size;
}

static void hash_hex(const uint8_t h[16], char out[33]) {
  for (int i = 0; i < 16; i++)
    snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* --- (a) submission ------------------------------------------------------ */

/* The ids of the person `who` names: every id linked to it now. */
static int erase_resolve(es_db *db, const char *tenant, const char *who,
                         es_tomb_req *r) {
  es_identity *map = NULL;
  ES_TRY(es__identity_load(db, tenant, &map));
  const char *ids[ES_IDENTITY_IDS_MAX];
  size_t n = es__identity_ids(map, who, ids);
  int rc = (r->ids = es__calloc(n, sizeof(char *))) ? ES_OK : ES_NOMEM_BKPT();
  for (size_t i = 0; rc == ES_OK && i < n; i++) {
    if (!(r->ids[i] = es__strdup(ids[i])))
      rc = ES_NOMEM_BKPT();
    else
      r->nids++;
  }
  es__identity_free(map);
  return rc;
}

static int erase_check(const es_erase_options *o, const char **who_out) {
  ES_TRY(es__tenant_check(o->tenant));
  if (!o->user_id == !o->anonymous_id)
    return ES_INVAL_BKPT("erase: give exactly one of a userId and an "
                         "anonymousId");
  const char *who = o->user_id ? o->user_id : o->anonymous_id;
  if (!es__identity_linkable(who) || strlen(who) > ES_TOMB_ID_BYTES_MAX)
    return ES_INVAL_BKPT("erase: the id is empty, a placeholder (null, "
                         "undefined, 0, anonymous) or over %d bytes",
                         ES_TOMB_ID_BYTES_MAX);
  *who_out = who;
  return ES_OK;
}

/* The caller's options into o (the ABI's defaults for fields it does
 * not know), checked; *who_out is the one id they name. */
static int erase_options_in(const es_erase_options *opts, es_erase_options *o,
                            const char **who_out) {
  es_erase_options_init(o);
  ES_TRY(es__abi_options_in(opts, o, sizeof *o, ERASE_OPTS_SIZE_MIN,
                            "es_erase_options"));
  return erase_check(o, who_out);
}

/* Submits a request; see eventstore.h. */
int es_erase_submit(es_db *db, const es_erase_options *opts, char *id_out) {
  es__error_clear();
  if (!db || !opts || !id_out)
    return ES_INVAL_BKPT("es_erase_submit: NULL argument");
  id_out[0] = '\0';
  es_erase_options o;
  const char *who = NULL;
  ES_TRY(erase_options_in(opts, &o, &who));
  ES_TRY(es__gate_enter(db, "es_erase_submit"));
  es_tomb_req r;
  memset(&r, 0, sizeof(r));
  es_tenant *t = NULL;
  int rc = erase_resolve(db, o.tenant, who, &r);
  if (rc == ES_OK) /* an unknown tenant too: same answer (no leak) */
    rc = es__tenant_get(db, o.tenant, 1, &t);
  if (rc == ES_OK)
    rc = es__tenant_dir_make(db, t);
  if (rc < 0)
    goto out;
  es__tomb_lock(t);
  es_tomb_log log;
  size_t end;
  rc = es__tomb_log_read(db->vfs, t->dir, &log, &end);
  if (rc == ES_OK)
    rc = es__tomb_salt_ensure(&log);
  if (rc == ES_OK) {
    r.id = log.next_id ? log.next_id : 1;
    r.submitted_us = es__clock_now_us();
    r.flags = o.suppress ? ES_TOMB_SUPPRESS : 0;
    r.state[ES_TOMB_HIDDEN] = ES_TOMB_DONE;
    r.stage_us[ES_TOMB_HIDDEN] = r.submitted_us;
    r.stage_count[ES_TOMB_HIDDEN] = r.nids;
    es__tomb_hash(&log, who, r.subject_hash);
    rc = es__tomb_append_req(db, t, &log, &r);
  }
  if (rc == ES_OK) { /* durable: hide before answering (tomb.c, 1) */
    es_tomb_req *slot = NULL;
    rc = es__grow((void **)&log.v, &log.cap, log.n + 1, sizeof(es_tomb_req));
    if (rc == ES_OK) {
      slot = &log.v[log.n++];
      *slot = r;
      r.ids = NULL; /* the log owns them now */
      r.nids = 0;
      rc = es__tomb_install(t, &log);
    }
    if (rc < 0) /* durable, yet not installed here: the reopen does */
      es__db_fail(db, rc);
  }
  if (rc == ES_OK) {
    char hex[33];
    hash_hex(log.v[log.n - 1].subject_hash, hex);
    snprintf(id_out, ES_ERASE_ID_MAX, "%s.%llu", t->name,
             (unsigned long long)log.v[log.n - 1].id);
    es__db_log(db, 2, "erase %s: submitted for person %s (%zu ids)", id_out,
               hex, log.v[log.n - 1].nids);
  }
  es__tomb_log_free(&log);
  es__tomb_unlock(t);
out:
  for (size_t i = 0; i < r.nids; i++)
    es__free(r.ids[i]);
  es__free(r.ids);
  return rc;
}

/* --- the stages ---------------------------------------------------------- */

typedef struct erase_ctx {
  es_db *db;
  es_tenant *t;
  uint64_t id;
  char name[ES_ERASE_ID_MAX];
  char **ids; /* the request's (a copy) */
  size_t nids;
  es_tomb_req snap; /* the request's state when the stage began */
  int64_t *days;    /* (b): the UTC days of the rows removed */
  size_t ndays, days_cap;
  int days_known; /* (b) ran in this run: days is complete */
  int days_rc;    /* an allocation failure while collecting them */
} erase_ctx;

static int erase_hides(const erase_ctx *c, const char *id) {
  for (size_t i = 0; id && i < c->nids; i++)
    if (strcmp(c->ids[i], id) == 0)
      return 1;
  return 0;
}

/* Notes the UTC day of a removed row (for (f)). */
static void erase_note_day(erase_ctx *c, int64_t ts_us) {
  int64_t day = ts_us / ERASE_DAY_US * ERASE_DAY_US -
                (ts_us % ERASE_DAY_US < 0 ? ERASE_DAY_US : 0);
  for (size_t i = 0; i < c->ndays; i++)
    if (c->days[i] == day)
      return;
  if (es__grow((void **)&c->days, &c->days_cap, c->ndays + 1,
               sizeof(*c->days)) != ES_OK) {
    c->days_rc = ES_ENOMEM;
    return;
  }
  c->days[c->ndays++] = day;
}

/* Keeps a row unless it carries an id of the person and was received up
 * to the request (a later one is new data, kept: docs/PRIVACY.md; with
 * suppression none is stored after it, and any that slipped in goes). */
static int erase_keep(void *ud, const es_event *ev) {
  erase_ctx *c = ud;
  int keep =
      (!erase_hides(c, ev->anonymous_id) && !erase_hides(c, ev->user_id) &&
       !erase_hides(c, ev->previous_id)) ||
      (!(c->snap.flags & ES_TOMB_SUPPRESS) &&
       ev->recv_us > c->snap.submitted_us);
  if (!keep)
    erase_note_day(c, ev->ts_us);
  return keep;
}

/* Whether seg may hold a row of the person (its Bloom filter). */
static int erase_seg_may_hold(const erase_ctx *c, const es_segment *seg) {
  for (size_t i = 0; i < c->nids; i++)
    if (es__segment_may_contain(seg, c->ids[i]))
      return 1;
  return 0;
}

/* Records stage s done (or skipped) with count. */
static int erase_record(erase_ctx *c, int s, int state, uint64_t count) {
  es__tomb_lock(c->t);
  es_tomb_log log;
  size_t end;
  int rc = es__tomb_log_read(c->db->vfs, c->t->dir, &log, &end);
  if (rc == ES_OK)
    rc = es__tomb_append_stage(c->db, c->t, &log, c->id, s, state, count);
  if (rc == ES_OK && s == ES_TOMB_ROLLUPS) /* queries may use rollups */
    rc = es__tomb_install(c->t, &log);
  es__tomb_log_free(&log);
  es__tomb_unlock(c->t);
  if (rc == ES_OK)
    es__db_log(c->db, 2, "erase %s: stage %s %s (%llu)", c->name,
               stage_names[s],
               state == ES_TOMB_DONE    ? "done"
               : state == ES_TOMB_BEGUN ? "begun"
                                        : "skipped",
               (unsigned long long)count);
  return rc;
}

/* (b): the segments that may hold the person, rewritten without them;
 * *rollups_out: rollup files re-derived (one per output). */
static int stage_segments(erase_ctx *c, uint64_t *rows_out,
                          uint64_t *rollups_out) {
  *rows_out = *rollups_out = 0;
  ES_TRY(es_flush(c->db, c->t->name)); /* memtable rows into segments */
  pthread_mutex_lock(&c->t->compact_mu);
  es_tenant_view v;
  int rc = es__tenant_view(c->t, &v);
  if (rc < 0) {
    pthread_mutex_unlock(&c->t->compact_mu);
    return rc;
  }
  es_segment **in = es__malloc((v.set->n ? v.set->n : 1) * sizeof(*in));
  size_t nin = 0;
  rc = in ? ES_OK : ES_NOMEM_BKPT();
  for (size_t i = 0; rc == ES_OK && i < v.set->n; i++)
    if (erase_seg_may_hold(c, v.set->segs[i]))
      in[nin++] = v.set->segs[i];
  if (rc == ES_OK && nin == 0) {
    c->ndays = 0; /* nothing of the person stored: no day to re-cut */
    c->days_known = 1;
  }
  if (rc == ES_OK && nin > 0) {
    es_rewrite_spec spec = {.keep = erase_keep,
                            .ud = c,
                            .memory_bytes = ERASE_REWRITE_MEMORY_BYTES};
    es_rewrite_stats st;
    c->ndays = 0;
    c->days_rc = ES_OK;
    rc = es__rewrite(c->db, c->t, in, nin, &spec, &st);
    if (rc == ES_OK) {
      c->days_known = c->days_rc == ES_OK; /* else: every day, in (f) */
      *rows_out = st.rows_in - st.rows_out;
      *rollups_out = st.segments_out;
    } else {
      rc = es__gate_io_error(c->db, ES_GATE_CALL, rc);
    }
  }
  es__free(in);
  es__tenant_view_release(&v);
  pthread_mutex_unlock(&c->t->compact_mu);
  return rc;
}

typedef struct wal_probe {
  es_db *db;
  uint32_t shard;
  uint64_t lsn;   /* in: roll before it; out: the next LSN at the roll */
  uint64_t first; /* out: the first LSN of the oldest live file */
  size_t nfiles;
  int roll;
} wal_probe;

/* On the shard's writer thread: starts a new WAL file (when roll) so that
 * no file the person's records are in is still being written to; reports
 * the oldest live file. */
static int wal_probe_run(void *arg) {
  wal_probe *p = arg;
  es_shard *sh = &p->db->shards[p->shard];
  if (p->roll) {
    p->lsn = sh->next_lsn;
    int undone = 0;
    /* a frame that cannot fit: a fresh file named next_lsn, unless the
     * current one is still empty */
    int rc = es__wal_roll(sh->wal, SIZE_MAX / 4, sh->next_lsn, &undone);
    if (rc < 0)
      return es__gate_io_error(p->db, undone ? ES_GATE_ROLL : ES_GATE_STOP, rc);
  }
  const uint64_t *firsts;
  uint64_t fb;
  p->nfiles = es__wal_files(sh->wal, &firsts, &fb);
  p->first = p->nfiles ? firsts[0] : sh->next_lsn;
  return ES_OK;
}

/* (d), the log: waits until every WAL file of the shard that was written
 * to before the roll is gone; *files_out counts them. */
static int stage_wal(erase_ctx *c, uint64_t *files_out) {
  es_db *db = c->db;
  wal_probe p = {.db = db, .shard = c->t->shard, .roll = 1};
  ES_TRY(es__shard_call(db, p.shard, wal_probe_run, &p));
  size_t before = p.nfiles;
  uint64_t keep = p.lsn;
  ES_TRY(es_flush(db, NULL)); /* every tenant: the shard's WAL is shared */
  int64_t deadline = es__clock_mono_us() + ERASE_WAL_WAIT_US;
  p.roll = 0;
  for (;;) {
    es_shard *sh = &db->shards[p.shard];
    atomic_store(&sh->reclaim, 1);
    pthread_mutex_lock(&sh->mu);
    pthread_cond_signal(&sh->work_cv);
    pthread_mutex_unlock(&sh->mu);
    ES_TRY(es__shard_call(db, p.shard, wal_probe_run, &p));
    if (p.first >= keep)
      break;
    if (es__clock_mono_us() > deadline)
      return ES_ERR(ES_EDEGRADED,
                    "erase: WAL files before LSN %llu are still held (a "
                    "replicator?); run the erase again later",
                    (unsigned long long)keep);
    es__clock_sleep_us(20000);
  }
  *files_out = before > p.nfiles ? before - p.nfiles : 0;
  return ES_OK;
}

/* (d), the rest: identity-log records and rule counters. */
static int stage_links(erase_ctx *c, uint64_t *records_out) {
  size_t dropped = 0;
  ES_TRY(es__identity_log_forget(c->db, c->t, (const char *const *)c->ids,
                                 c->nids, &dropped));
  *records_out = dropped;
  /* the counters from the rows left (none of the person's), and the
   * persisted rule state rewritten from them (it held the ids) */
  ES_TRY(c->db->hooks->tenant_load(c->db, c->t, 1));
  return c->db->hooks->tenant_save(c->db, c->t);
}

/* How many objects of rec were superseded at or before cut and are not
 * deleted yet. */
static uint64_t replica_waiting(const es_replrec *rec, int64_t cut) {
  uint64_t n = 0;
  for (size_t i = 0; i < rec->n; i++)
    n += rec->e[i].superseded_us != 0 && rec->e[i].superseded_us <= cut;
  return n;
}

/* (e): with a replicator, the new segments and manifest uploaded (which
 * marks the old objects superseded), then every object superseded up to
 * then deleted, after its grace period, through the uploader's own order
 * (replicate.c); *objects_out: how many were waited for. */
static int stage_replica(erase_ctx *c, int *skip_out, uint64_t *objects_out) {
  es_replrec rec;
  memset(&rec, 0, sizeof(rec));
  ES_TRY(es__replrec_load(c->db->vfs, c->t->dir, &rec));
  int replicated = rec.generation > 0 || rec.n > 0;
  es__replrec_free(&rec);
  *skip_out = !replicated && !c->db->ext;
  *objects_out = 0;
  if (*skip_out)
    return ES_OK;
  if (!c->db->ext)
    return ES_ERR(ES_EDEGRADED,
                  "erase: tenant %s is replicated and this handle has no "
                  "replica: open it with the replica to finish",
                  c->t->name);
  int rc;
  while ((rc = es_replica_drain(c->db, 5000000)) == ES_EUNAVAIL)
    es__error_clear(); /* the uploader retries; so do we */
  ES_TRY(rc);
  int64_t cut = es__clock_now_us();
  ES_TRY(es__replrec_load(c->db->vfs, c->t->dir, &rec));
  *objects_out = replica_waiting(&rec, cut);
  while (replica_waiting(&rec, cut) > 0) {
    es__replrec_free(&rec);
    es__clock_sleep_us(ERASE_REPLICA_POLL_US);
    while ((rc = es_replica_drain(c->db, 5000000)) == ES_EUNAVAIL)
      es__error_clear();
    ES_TRY(rc);
    ES_TRY(es__replrec_load(c->db->vfs, c->t->dir, &rec));
  }
  es__replrec_free(&rec);
  return ES_OK;
}

/* The days of c's request to re-cut in a destination that holds
 * `have` (its partitions): those (b) removed rows from, or all when (b)
 * ran in an earlier process. */
static size_t erase_days_in(const erase_ctx *c, int64_t *have, size_t n) {
  if (!c->days_known)
    return n;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < c->ndays; j++)
      if (have[i] == c->days[j]) {
        have[k++] = have[i];
        break;
      }
  return k;
}

/* (f), a recorded destination no running exporter writes to: opened here,
 * the tenant's partitions listed, those of the person's days cut again. */
static int stage_export_dest(erase_ctx *c, const es_xreg_entry *e,
                             uint64_t *days_out) {
  es_xdest *dest = NULL;
  ES_TRY(es__dest_open(e->url, e->endpoint[0] ? e->endpoint : NULL,
                       e->region[0] ? e->region : NULL, c->db->vfs, &dest));
  int64_t *days = NULL;
  size_t n = 0;
  int rc = es__xreg_days(dest, c->t->name, &days, &n);
  if (rc == ES_OK)
    n = erase_days_in(c, days, n);
  es_export_result res;
  memset(&res, 0, sizeof(res));
  if (rc == ES_OK && n > 0)
    rc = es__export_refresh(c->db, dest, c->t->name, days, n, &res);
  if (rc == ES_OK)
    *days_out += n;
  es__free(days);
  es__dest_close(dest);
  return rc;
}

/* (f): every export destination re-cuts the tenant's partitions of the
 * days the rows (b) removed were in (every partition of the tenant when
 * (b) ran in an earlier process): each running exporter's (registered on
 * the handle) through it, so that its passes and the re-cut never
 * interleave; every other destination recorded in DATA/exports (one-off
 * es_export runs, an exporter of an earlier start) opened here.  *skip_out
 * when there is none; *days_out: partitions re-cut. */
static int stage_exports(erase_ctx *c, int *skip_out, uint64_t *days_out) {
  es_db *db = c->db;
  *skip_out = 0;
  *days_out = 0;
  es_xreg_entry *reg = NULL;
  size_t nreg = 0;
  ES_TRY(es__xreg_list(db, &reg, &nreg));
  pthread_mutex_lock(&db->exp_mu);
  int rc = ES_OK;
  *skip_out = db->exp_n == 0 && nreg == 0 && !db->exp_ever;
  if (db->exp_n == 0 && db->exp_ever) /* unrecorded, stopped: the next run */
    rc = ES_ERR(ES_EDEGRADED, "erase: the exporter stopped before its "
                              "partitions were re-cut; run the erase again "
                              "with it");
  int nothing = c->days_known && c->ndays == 0; /* no row removed */
  for (size_t i = 0; rc == ES_OK && !nothing && i < db->exp_n; i++) {
    const es_export_hook *h = &db->exp_hooks[i];
    rc = h->refresh(h->ud, c->t->name, c->days_known ? c->days : NULL,
                    c->days_known ? c->ndays : 0);
    *days_out += c->days_known ? c->ndays : 0;
  }
  for (size_t i = 0; rc == ES_OK && !nothing && i < nreg; i++) {
    char key[32];
    int running = 0;
    rc = es__xreg_key(reg[i].url, reg[i].endpoint, reg[i].region, key);
    for (size_t k = 0; rc == ES_OK && k < db->exp_n; k++)
      running |= strcmp(db->exp_hooks[k].key, key) == 0;
    if (rc == ES_OK && !running)
      rc = stage_export_dest(c, &reg[i], days_out);
  }
  pthread_mutex_unlock(&db->exp_mu);
  es__xreg_free(reg, nreg);
  return rc;
}

typedef struct chunk_scan {
  uint64_t below; /* in: count chunks whose first LSN is below it */
  uint64_t n;
} chunk_scan;

static int chunk_one(void *ud, const char *key, const es_objinfo *info) {
  (void)info;
  chunk_scan *cs = ud;
  uint32_t shard;
  uint64_t first, last;
  if (es__walship_parse_key(key, &shard, &first, &last) == ES_OK &&
      first < cs->below)
    cs->n++;
  es__error_clear();
  return ES_OK;
}

/* (e), tier s3: the shard's WAL chunks that may hold the person (first
 * LSN below the oldest local WAL file left after (d), which holds none of
 * their records) deleted from the store by the shipper (walship.c, 3:
 * once their events are in uploaded segments, plus the grace period).
 * The chunks are listed in the store itself, so a run resumed in another
 * process checks the same; *chunks_out: how many were waited for. */
static int stage_wal_chunks(erase_ctx *c, uint64_t *chunks_out) {
  es_db *db = c->db;
  *chunks_out = 0;
  if (db->opts.durability != ES_DURABILITY_S3 || !db->opts.replica)
    return ES_OK;
  wal_probe p = {.db = db, .shard = c->t->shard, .roll = 0};
  ES_TRY(es__shard_call(db, p.shard, wal_probe_run, &p));
  es_objstore *os = db->opts.replica->os;
  char prefix[32];
  snprintf(prefix, sizeof(prefix), "wal/%u/", p.shard);
  int64_t flushed = es__clock_mono_us();
  for (int first = 1;; first = 0) {
    chunk_scan cs = {.below = p.first};
    int rc = os->list(os, prefix, NULL, chunk_one, &cs);
    if (rc == ES_EUNAVAIL) {
      es__error_clear(); /* the store is away: ask again */
      cs.n = 1;
    } else if (rc < 0) {
      return rc;
    }
    if (first)
      *chunks_out = cs.n;
    if (cs.n == 0)
      return ES_OK;
    /* a chunk also holding later frames goes once they are in segments
     * too: flush now and then, not only at the memtables' own pace */
    if (es__clock_mono_us() - flushed > ERASE_CHUNK_FLUSH_US) {
      ES_TRY(es_flush(db, NULL));
      flushed = es__clock_mono_us();
    }
    es__clock_sleep_us(ERASE_REPLICA_POLL_US);
    while ((rc = es_replica_drain(db, 5000000)) == ES_EUNAVAIL)
      es__error_clear();
    ES_TRY(rc);
  }
}

/* Runs the stages of one request that are left, in order. */
static int erase_run_req(erase_ctx *c) {
  const es_tomb_req *r = &c->snap;
  int rc = ES_OK;
  if (r->state[ES_TOMB_SEGMENTS] != ES_TOMB_DONE) {
    uint64_t rows = 0, rollups = 0;
    int resumed = r->state[ES_TOMB_SEGMENTS] == ES_TOMB_BEGUN;
    if (!resumed) /* so that a resumed run knows (tomb.h, ES_TOMB_BEGUN) */
      rc = erase_record(c, ES_TOMB_SEGMENTS, ES_TOMB_BEGUN, 0);
    if (rc == ES_OK)
      rc = stage_segments(c, &rows, &rollups);
    /* an earlier run's rewrite may have removed rows (and so their days)
     * before its crash: (f) re-cuts every partition */
    if (rc == ES_OK && resumed && rows == 0)
      c->days_known = 0;
    if (rc == ES_OK)
      rc = erase_record(c, ES_TOMB_SEGMENTS, ES_TOMB_DONE, rows);
    c->snap.stage_count[ES_TOMB_ROLLUPS] = rollups;
    c->snap.stage_us[ES_TOMB_SEGMENTS] = es__clock_now_us();
  }
  if (rc == ES_OK && r->state[ES_TOMB_ROLLUPS] == ES_TOMB_PENDING)
    rc = erase_record(c, ES_TOMB_ROLLUPS, ES_TOMB_DONE,
                      c->snap.stage_count[ES_TOMB_ROLLUPS]);
  if (rc == ES_OK && r->state[ES_TOMB_WAL] == ES_TOMB_PENDING) {
    uint64_t files = 0, records = 0;
    rc = stage_wal(c, &files);
    if (rc == ES_OK)
      rc = stage_links(c, &records);
    if (rc == ES_OK)
      rc = erase_record(c, ES_TOMB_WAL, ES_TOMB_DONE, files);
  }
  if (rc == ES_OK && r->state[ES_TOMB_REPLICA] == ES_TOMB_PENDING) {
    int skip = 0;
    uint64_t objects = 0;
    rc = stage_replica(c, &skip, &objects);
    uint64_t chunks = 0;
    if (rc == ES_OK && !skip)
      rc = stage_wal_chunks(c, &chunks);
    objects += chunks;
    if (rc == ES_OK)
      rc = erase_record(c, ES_TOMB_REPLICA,
                        skip ? ES_TOMB_SKIPPED : ES_TOMB_DONE, objects);
  }
  if (rc == ES_OK && r->state[ES_TOMB_EXPORTS] == ES_TOMB_PENDING) {
    int skip = 0;
    uint64_t days = 0;
    rc = stage_exports(c, &skip, &days);
    if (rc == ES_OK)
      rc = erase_record(c, ES_TOMB_EXPORTS,
                        skip ? ES_TOMB_SKIPPED : ES_TOMB_DONE, days);
  }
  return rc;
}

/* After the last stage: the log without the ids, the tombstone without
 * them. */
static int erase_finish(es_db *db, es_tenant *t) {
  es__tomb_lock(t);
  es_tomb_log log;
  size_t end;
  int rc = es__tomb_log_read(db->vfs, t->dir, &log, &end);
  int any = 0;
  for (size_t i = 0; rc == ES_OK && i < log.n; i++) {
    es_tomb_req *r = &log.v[i];
    if (!es__tomb_req_done(r) || !r->ids)
      continue;
    any = 1; /* its ids leave; with suppression their salted hashes stay */
    if (r->flags & ES_TOMB_SUPPRESS)
      rc = es__tomb_log_suppress_add(&log, r->ids, r->nids);
  }
  if (rc == ES_OK && any)
    rc = es__tomb_log_compact(db, t, &log);
  if (rc == ES_OK && any) {
    for (size_t i = 0; i < log.n; i++)
      if (es__tomb_req_done(&log.v[i])) {
        for (size_t k = 0; k < log.v[i].nids; k++)
          es__free(log.v[i].ids[k]);
        es__free(log.v[i].ids);
        log.v[i].ids = NULL;
        log.v[i].nids = 0;
      }
    rc = es__tomb_install(t, &log);
  }
  es__tomb_log_free(&log);
  es__tomb_unlock(t);
  return rc;
}

/* Runs every pending request of one tenant. */
static int erase_run_tenant(es_db *db, es_tenant *t) {
  for (;;) {
    es__tomb_lock(t);
    es_tomb_log log;
    size_t end;
    int rc = es__tomb_log_read(db->vfs, t->dir, &log, &end);
    erase_ctx c;
    memset(&c, 0, sizeof(c));
    c.db = db;
    c.t = t;
    for (size_t i = 0; rc == ES_OK && i < log.n && !c.id; i++) {
      if (es__tomb_req_done(&log.v[i]))
        continue;
      c.id = log.v[i].id;
      c.snap = log.v[i];
      c.ids = log.v[i].ids; /* taken from the log */
      c.nids = log.v[i].nids;
      log.v[i].ids = NULL;
      log.v[i].nids = 0;
    }
    c.snap.ids = NULL;
    es__tomb_log_free(&log);
    es__tomb_unlock(t);
    if (rc == ES_OK && c.id) {
      snprintf(c.name, sizeof(c.name), "%s.%llu", t->name,
               (unsigned long long)c.id);
      rc = erase_run_req(&c);
      if (rc < 0)
        es__db_log(db, 1, "erase %s: %s (resumes at the next run)", c.name,
                   es_errdetail());
    }
    for (size_t i = 0; i < c.nids; i++)
      es__free(c.ids[i]);
    es__free(c.ids);
    es__free(c.days);
    /* also when none was pending: a completed request whose compaction
     * a crash interrupted still has its ids in the log */
    if (rc == ES_OK)
      rc = erase_finish(db, t);
    if (rc < 0 || !c.id)
      return rc;
  }
}

typedef struct run_list {
  es_db *db;
  int rc;
} run_list;

static int run_one_dir(void *ud, const char *name) {
  run_list *l = ud;
  if (es__tenant_check(name) < 0) {
    es__error_clear();
    return 0;
  }
  es_tenant *t = NULL;
  int rc = es__tenant_get(l->db, name, 0, &t);
  if (rc == ES_OK && !t) { /* not known yet: only if it has an ERASE log */
    char dir[ES_PATH_MAX], path[ES_PATH_MAX];
    uint8_t *buf = NULL;
    size_t len = 0;
    rc = es__path_join(dir, sizeof(dir), l->db->tenants_dir, name);
    if (rc == ES_OK)
      rc = es__path_join(path, sizeof(path), dir, ES_TOMB_LOG);
    if (rc == ES_OK &&
        (rc = es__io_read_all(l->db->vfs, path, &buf, &len)) == ES_ENOTFOUND) {
      es__error_clear();
      return 0;
    }
    es__free(buf);
    if (rc == ES_OK)
      rc = es__tenant_get(l->db, name, 1, &t);
  }
  if (rc == ES_OK && t)
    rc = erase_run_tenant(l->db, t);
  if (rc < 0 && l->rc == ES_OK)
    l->rc = rc; /* the other tenants still run */
  return 0;
}

/* Runs what is left; see eventstore.h. */
int es_erase_run(es_db *db, const char *tenant) {
  es__error_clear();
  if (!db)
    return ES_INVAL_BKPT("es_erase_run: NULL handle");
  if (tenant)
    ES_TRY(es__tenant_check(tenant));
  ES_TRY(es__gate_enter(db, "es_erase_run"));
  pthread_mutex_lock(&run_mu);
  run_list l = {db, ES_OK};
  int rc = ES_OK;
  if (tenant) {
    rc = run_one_dir(&l, tenant);
  } else {
    rc = db->vfs->list(db->vfs, db->tenants_dir, run_one_dir, &l);
    if (rc == ES_ENOTFOUND) {
      es__error_clear();
      rc = ES_OK;
    }
  }
  pthread_mutex_unlock(&run_mu);
  return rc < 0 ? rc : l.rc;
}

/* Lifts a suppression; see eventstore.h. */
int es_erase_unsuppress(es_db *db, const es_erase_options *opts,
                        size_t *lifted_out) {
  es__error_clear();
  if (lifted_out)
    *lifted_out = 0;
  if (!db || !opts)
    return ES_INVAL_BKPT("es_erase_unsuppress: NULL argument");
  es_erase_options o;
  const char *who = NULL;
  ES_TRY(erase_options_in(opts, &o, &who));
  ES_TRY(es__gate_enter(db, "es_erase_unsuppress"));
  es_tenant *t = NULL;
  ES_TRY(es__tenant_get(db, o.tenant, 1, &t)); /* no file is made */
  es__tomb_lock(t);
  es_tomb_log log;
  size_t end, lifted = 0;
  int rc = es__tomb_log_read(db->vfs, t->dir, &log, &end);
  if (rc == ES_OK && log.has_salt)
    rc = es__tomb_log_unsuppress(&log, who, &lifted);
  if (rc == ES_OK && lifted > 0)
    rc = es__tomb_log_compact(db, t, &log);
  if (rc == ES_OK && lifted > 0)
    rc = es__tomb_install(t, &log);
  if (rc == ES_OK && lifted > 0)
    es__db_log(db, 2, "erase: suppression of %zu ids of tenant %s lifted",
               lifted, t->name);
  es__tomb_log_free(&log);
  es__tomb_unlock(t);
  if (rc == ES_OK && lifted_out)
    *lifted_out = lifted;
  return rc;
}

/* --- status ----------------------------------------------------------------
 */

static int put_time(es_buf *b, const char *key, int64_t us) {
  char when[ES_TIME_TEXT_SIZE];
  es__time_format(us, 0, when, sizeof(when));
  ES_TRY(es__buf_put(b, key, strlen(key)));
  return es__json_put_str(b, when);
}

static int put_u64(es_buf *b, const char *key, uint64_t v) {
  char num[48];
  int n = snprintf(num, sizeof(num), "%s%llu", key, (unsigned long long)v);
  return es__buf_put(b, num, (size_t)n);
}

/* The status JSON of r. */
static int status_json(const char *id, const char *tenant, const es_tomb_req *r,
                       es_buf *b) {
  char hex[33];
  hash_hex(r->subject_hash, hex);
  int done = es__tomb_req_done(r);
  int64_t last = r->submitted_us;
  ES_TRY(es__buf_put(b, "{\"id\":", 6));
  ES_TRY(es__json_put_str(b, id));
  ES_TRY(es__buf_put(b, ",\"tenant\":", 10));
  ES_TRY(es__json_put_str(b, tenant));
  ES_TRY(es__buf_put(b, ",\"subject\":", 11));
  ES_TRY(es__json_put_str(b, hex));
  ES_TRY(put_time(b, ",\"submitted\":", r->submitted_us));
  if (r->flags & ES_TOMB_SUPPRESS)
    ES_TRY(es__buf_put(b, ",\"suppress\":true", 16));
  ES_TRY(es__buf_put(b, ",\"state\":", 9));
  ES_TRY(es__json_put_str(b, done ? "done" : "pending"));
  ES_TRY(es__buf_put(b, ",\"stages\":[", 11));
  for (int s = 0; s < ES_TOMB_STAGES; s++) {
    static const char *const st[] = {"pending", "done", "skipped"};
    ES_TRY(es__buf_put(b, s ? ",{\"stage\":" : "{\"stage\":", s ? 10 : 9));
    ES_TRY(es__json_put_str(b, stage_names[s]));
    ES_TRY(es__buf_put(b, ",\"state\":", 9));
    ES_TRY(es__json_put_str(
        b, st[r->state[s] <= 2 ? r->state[s] : 0])); /* begun: pending */
    if (r->state[s] == ES_TOMB_DONE || r->state[s] == ES_TOMB_SKIPPED) {
      ES_TRY(put_time(b, ",\"at\":", r->stage_us[s]));
      ES_TRY(put_u64(b, ",\"count\":", r->stage_count[s]));
      if (r->stage_us[s] > last)
        last = r->stage_us[s];
    }
    ES_TRY(es__buf_put(b, "}", 1));
  }
  ES_TRY(es__buf_put(b, "]", 1));
  if (done) {
    ES_TRY(es__buf_put(b, ",\"receipt\":{\"subject\":", 22));
    ES_TRY(es__json_put_str(b, hex));
    ES_TRY(put_u64(b, ",\"ids\":", r->stage_count[ES_TOMB_HIDDEN]));
    ES_TRY(
        put_u64(b, ",\"events_removed\":", r->stage_count[ES_TOMB_SEGMENTS]));
    ES_TRY(put_u64(
        b, ",\"rollup_files_rederived\":", r->stage_count[ES_TOMB_ROLLUPS]));
    ES_TRY(put_u64(b, ",\"wal_files_removed\":", r->stage_count[ES_TOMB_WAL]));
    ES_TRY(put_u64(
        b, ",\"replica_objects_deleted\":", r->stage_count[ES_TOMB_REPLICA]));
    ES_TRY(put_u64(
        b, ",\"export_partitions_recut\":", r->stage_count[ES_TOMB_EXPORTS]));
    ES_TRY(put_time(b, ",\"completed\":", last));
    ES_TRY(
        put_u64(b, ",\"took_ms\":", (uint64_t)(last - r->submitted_us) / 1000));
    ES_TRY(es__buf_put(b, "}", 1));
  }
  return es__buf_put(b, "}", 2); /* with its NUL */
}

/* A request's state; see eventstore.h. */
int es_erase_status(es_db *db, const char *id, char **json_out) {
  es__error_clear();
  if (!json_out)
    return ES_INVAL_BKPT("es_erase_status: json_out is NULL");
  *json_out = NULL;
  if (!db || !id)
    return ES_INVAL_BKPT("es_erase_status: NULL argument");
  const char *dot = strrchr(id, '.');
  char tenant[ES_TENANT_LEN_MAX + 1];
  char *endp = NULL;
  unsigned long long n = dot ? strtoull(dot + 1, &endp, 10) : 0;
  if (!dot || dot == id || (size_t)(dot - id) > ES_TENANT_LEN_MAX || !endp ||
      *endp || dot[1] == '\0' || n == 0)
    return ES_ERR(ES_ENOTFOUND, "no erase request \"%s\"", id);
  memcpy(tenant, id, (size_t)(dot - id));
  tenant[dot - id] = '\0';
  if (es__tenant_check(tenant) < 0) {
    es__error_clear();
    return ES_ERR(ES_ENOTFOUND, "no erase request \"%s\"", id);
  }
  char dir[ES_PATH_MAX];
  ES_TRY(es__path_join(dir, sizeof(dir), db->tenants_dir, tenant));
  es_tomb_log log;
  size_t end;
  ES_TRY(es__tomb_log_read(db->vfs, dir, &log, &end));
  es_tomb_req *r = es__tomb_log_find(&log, n);
  es_buf b = {0};
  int rc = r ? status_json(id, tenant, r, &b)
             : ES_ERR(ES_ENOTFOUND, "no erase request \"%s\"", id);
  es__tomb_log_free(&log);
  if (rc < 0) {
    es__buf_free(&b);
    return rc;
  }
  *json_out = (char *)b.data;
  return ES_OK;
}
