/*
 * compact.c -- es_compact(): merging small segments and dropping events
 * past retention, crash-safely, while the store stays open.
 *
 * Per tenant, the segments (in manifest order) are cut into runs:
 *   - a segment holding only expired events is dropped (a run with no
 *     output);
 *   - adjacent segments that are small (under half the target) or hold
 *     some expired events are merged, up to about the target size, into
 *     one new segment of the events kept;
 *   - a run of one small segment with nothing expired is left alone.
 *
 * A run is done in three steps:
 *   1. read  every row group of the inputs (checksums checked), keep the
 *            rows at or after the cut-off, re-encode them, sort them by
 *            (event time, input order), derive their rollup;
 *   2. write the new segment and its rollup file (temp, fdatasync,
 *            rename, directory fsync) under a fresh segment id;
 *   3. commit: under tenant->man_mu, one atomic MANIFEST write listing the
 *            output in place of the inputs, then the reader-visible set is
 *            swapped under tenant->mu; the inputs' files are unlinked
 *            after that (or, after a crash, at the next open as orphans).
 *
 * Invariants:
 *  1. The manifest is the only commit point: before its rename the old
 *     segments are the store's, after it the new one is; orphans of either
 *     side are deleted at open (tenant.c, 3).  So a crash leaves the old
 *     set or the new set, never both or neither.
 *  2. Compaction never changes flushed_lsn and never touches memtables, so
 *     WAL recovery is unaffected.
 *  3. One compaction per tenant at a time (tenant->compact_mu); the
 *     flusher and compaction serialise on tenant->man_mu.
 */
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/event.h"
#include "base/mem.h"
#include "store/dbint.h"
#include "store/gate.h"
#include "store/rollup.h"

#define COMPACT_TARGET_DEFAULT (UINT64_C(64) << 20)

void es_compact_options_init(es_compact_options *opts) {
  memset(opts, 0, sizeof(*opts));
  opts->target_bytes = COMPACT_TARGET_DEFAULT;
}

typedef struct crow {
  int64_t ts;
  uint64_t seq; /* input order: keeps append order among equal times */
  size_t off;   /* in the encoded rows buffer */
} crow;

static int crow_cmp(const void *a, const void *b) {
  const crow *x = a, *y = b;
  if (x->ts != y->ts)
    return x->ts < y->ts ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* What one run produces before it is committed. */
typedef struct crun {
  es_segment **in; /* inputs, in set order (references held by the view) */
  size_t nin;
  es_buf rows; /* the kept rows, encoded */
  crow *keys;
  size_t nkeys, keys_cap;
  es_rollup rollup;
  uint64_t rows_in;
} crun;

static void crun_free(crun *r) {
  es__buf_free(&r->rows);
  es__free(r->keys);
  es__rollup_free(&r->rollup);
  memset(r, 0, sizeof(*r));
}

/* Step 1: reads the inputs, keeping rows at or after cutoff. */
static int crun_read(crun *r, int64_t cutoff) {
  es_seg_rows rows;
  memset(&rows, 0, sizeof(rows));
  int rc = ES_OK;
  uint64_t seq = 0;
  for (size_t s = 0; rc == ES_OK && s < r->nin; s++) {
    es_segment *seg = r->in[s];
    r->rows_in += seg->rows;
    for (uint32_t g = 0; rc == ES_OK && g < seg->ngroups; g++) {
      if (seg->groups[g].max_ts < cutoff) {
        seq += seg->groups[g].rows;
        continue; /* all expired: no need to read it */
      }
      rc = es__segment_read_group(seg, g, &rows);
      for (size_t i = 0; rc == ES_OK && i < rows.n; i++, seq++) {
        if (rows.ts[i] < cutoff)
          continue;
        es_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.ts_us = rows.ts[i];
        ev.recv_us = rows.recv[i];
        ev.type = rows.type[i];
        for (int f = 0; f < ES_NSTR; f++)
          *es__ev_str(&ev, f) = rows.str[f][i];
        rc = es__grow((void **)&r->keys, &r->keys_cap, r->nkeys + 1,
                      sizeof(crow));
        if (rc == ES_OK) {
          r->keys[r->nkeys++] = (crow){ev.ts_us, seq, r->rows.len};
          /* stored rows were checked when appended: keep them as they are
           * (full ip: it was truncated, or not, then) */
          rc = es__event_encode(&r->rows, &ev, ev.recv_us, 1);
        }
        if (rc == ES_OK)
          rc = es__rollup_add(&r->rollup, &ev);
      }
    }
  }
  es__segment_rows_free(&rows);
  if (rc == ES_OK)
    qsort(r->keys, r->nkeys, sizeof(crow), crow_cmp);
  return rc;
}

/* Step 2: writes the output segment and its rollup under a fresh id;
 * *seg_out is the opened segment, with its rollup attached. */
static int crun_write(es_db *db, es_tenant *t, crun *r, es_segment **seg_out) {
  *seg_out = NULL;
  pthread_mutex_lock(&t->man_mu);
  uint64_t id = t->man.next_segment_id++; /* persisted by the next write */
  pthread_mutex_unlock(&t->man_mu);
  es_mrow *mrows = es__malloc(r->nkeys * sizeof(es_mrow));
  const es_mrow **ptrs = es__malloc(r->nkeys * sizeof(es_mrow *));
  es_buf img = {0}, rimg = {0};
  es_rollup *attach = es__calloc(1, sizeof(*attach));
  char name[32], path[ES_PATH_MAX];
  es__segment_name(name, sizeof(name), id);
  int rc = mrows && ptrs && attach ? ES_OK : ES_NOMEM_BKPT();
  for (size_t i = 0; rc == ES_OK && i < r->nkeys; i++) {
    mrows[i] = (es_mrow){r->keys[i].ts, r->rows.data + r->keys[i].off};
    ptrs[i] = &mrows[i];
  }
  if (rc == ES_OK)
    rc = es__segment_build(&img, ptrs, r->nkeys);
  if (rc == ES_OK)
    rc = es__rollup_encode(&r->rollup, &rimg);
  if (rc == ES_OK)
    rc = es__io_write_atomic(db->vfs, t->dir, name, img.data, img.len);
  memcpy(name + 16, ".rlp", 5);
  if (rc == ES_OK)
    rc = es__io_write_atomic(db->vfs, t->dir, name, rimg.data, rimg.len);
  memcpy(name + 16, ".seg", 5);
  if (rc == ES_OK)
    rc = es__path_join(path, sizeof(path), t->dir, name);
  if (rc == ES_OK)
    rc = es__segment_open(db->vfs, path, id, seg_out);
  if (rc == ES_OK && es__tenant_rollups_hot(t)) {
    rc = es__rollup_decode(rimg.data, rimg.len, name, attach);
    if (rc == ES_OK) {
      es__segment_rollup_set(*seg_out, attach);
      attach = NULL;
    }
  }
  es__free(attach);
  es__free(mrows);
  es__free(ptrs);
  es__buf_free(&img);
  es__buf_free(&rimg);
  return rc;
}

/* Step 3: the manifest without the inputs, with out (may be NULL) in the
 * first input's place; then the reader-visible swap. */
static int crun_commit(es_db *db, es_tenant *t, crun *r, es_segment *out) {
  pthread_mutex_lock(&t->man_mu);
  es_manifest next = t->man;
  next.entries = es__malloc((t->man.count + 1) * sizeof(es_manifest_entry));
  es_segset *set = NULL;
  int rc = next.entries ? ES_OK : ES_NOMEM_BKPT();
  next.count = 0;
  for (size_t i = 0; rc == ES_OK && i < t->man.count; i++) {
    size_t k = 0;
    while (k < r->nin && r->in[k]->id != t->man.entries[i].id)
      k++;
    if (k == 0 && out)
      next.entries[next.count++] = (es_manifest_entry){
          out->id, out->rows, out->bytes, out->min_ts, out->max_ts};
    if (k == r->nin)
      next.entries[next.count++] = t->man.entries[i];
  }
  if (rc == ES_OK)
    rc = es__manifest_write(db->vfs, t->dir, &next);
  if (rc == ES_OK) /* committed (invariant 1): now the readers' view */
    rc = es__segset_replace(t->segs, r->in, r->nin, out, &set);
  if (rc == ES_OK) {
    pthread_mutex_lock(&t->mu);
    es_segset *old = t->segs;
    t->segs = set;
    pthread_mutex_unlock(&t->mu);
    es__segset_unref(old);
    es__manifest_free(&t->man);
    t->man = next;
    next.entries = NULL;
  }
  pthread_mutex_unlock(&t->man_mu);
  es__free(next.entries);
  return rc;
}

/* Deletes a committed run's input files; a failure only leaves orphans,
 * which the next open removes. */
static void crun_unlink(es_db *db, es_tenant *t, const crun *r) {
  for (size_t i = 0; i < r->nin; i++) {
    char name[32], path[ES_PATH_MAX];
    es__segment_name(name, sizeof(name), r->in[i]->id);
    for (int k = 0; k < 2; k++) {
      if (k == 1)
        memcpy(name + 16, ".rlp", 5);
      if (es__path_join(path, sizeof(path), t->dir, name) == ES_OK) {
        int rc = db->vfs->unlink(db->vfs, path);
        if (rc < 0 && rc != ES_ENOTFOUND)
          es__db_log(db, 1, "compaction: could not delete %s: %s", path,
                     es_errdetail());
      }
    }
  }
  es__error_clear();
}

/* About the memory a merge holds for segment s: its rows re-encoded
 * (when the footer does not say, the blocks' raw size stands in), their
 * sort keys and row pointers, and its share of the output image. */
uint64_t es__compact_merge_bytes(const es_segment *s) {
  uint64_t rows = s->row_bytes ? s->row_bytes : s->raw_bytes;
  return rows + s->rows * (sizeof(crow) + 2 * sizeof(void *)) + s->bytes;
}

/* Whether a segment is small enough to be merged (see dbint.h). */
int es__compact_small(const es_segment *s, const es_compact_options *o) {
  return s->bytes < o->target_bytes / 2 &&
         (o->memory_bytes == 0 ||
          es__compact_merge_bytes(s) < o->memory_bytes / 2);
}

/* Whether a segment must be part of a run: small, or holding expired
 * events. */
static int seg_wanted(const es_segment *s, const es_compact_options *o,
                      int64_t cutoff) {
  return es__compact_small(s, o) || s->min_ts < cutoff;
}

/* Compacts one tenant. */
static int compact_tenant(es_db *db, es_tenant *t, const es_compact_options *o,
                          int64_t cutoff, es_compact_report *rep) {
  es_tenant_view v;
  ES_TRY(es__tenant_view(t, &v));
  es_segset *set = v.set;
  uint64_t total = 0, done = 0;
  for (size_t i = 0; i < set->n; i++)
    if (seg_wanted(set->segs[i], o, cutoff))
      total += set->segs[i]->bytes;
  rep->tenants++;
  int rc = ES_OK;
  for (size_t i = 0; rc == ES_OK && i < set->n;) {
    if (!seg_wanted(set->segs[i], o, cutoff)) {
      i++;
      continue;
    }
    /* a run: wanted segments, adjacent, up to about the target size */
    crun r;
    memset(&r, 0, sizeof(r));
    r.in = &set->segs[i];
    uint64_t bytes = 0, mem = 0;
    int expired = 0;
    for (; i + r.nin < set->n; r.nin++) {
      const es_segment *s = set->segs[i + r.nin];
      if (!seg_wanted(s, o, cutoff) ||
          (r.nin > 0 && (bytes + s->bytes > o->target_bytes ||
                         (o->memory_bytes &&
                          mem + es__compact_merge_bytes(s) > o->memory_bytes))))
        break;
      expired |= s->min_ts < cutoff;
      bytes += s->bytes;
      mem += es__compact_merge_bytes(s);
    }
    i += r.nin;
    if (r.nin == 1 && !expired) {
      done += bytes;
      continue; /* one small segment alone: nothing to gain */
    }
    es_segment *out = NULL;
    rc = crun_read(&r, cutoff);
    if (rc == ES_OK && r.nkeys > 0)
      rc = crun_write(db, t, &r, &out);
    if (rc == ES_OK)
      rc = crun_commit(db, t, &r, out);
    if (rc == ES_OK) {
      if (r.nkeys < r.rows_in) /* links may be gone with the rows */
        atomic_fetch_add(&t->id_gen, 1);
      crun_unlink(db, t, &r);
      rep->segments_in += r.nin;
      rep->segments_out += out != NULL;
      rep->rows_in += r.rows_in;
      rep->rows_out += r.nkeys;
      rep->rows_dropped += r.rows_in - r.nkeys;
      rep->bytes_in += bytes;
      rep->bytes_out += out ? out->bytes : 0;
    }
    es__segment_unref(out);
    crun_free(&r);
    done += bytes;
    if (rc == ES_OK && o->progress)
      o->progress(o->ud, t->name, done, total);
  }
  es__tenant_view_release(&v);
  return rc;
}

typedef struct name_list {
  char (*names)[ES_TENANT_LEN_MAX + 1];
  size_t n, cap;
} name_list;

/* Compacts tenants; see eventstore.h. */
int es_compact(es_db *db, const char *tenant, const es_compact_options *opts,
               es_compact_report *report_out) {
  es__error_clear();
  es_compact_report rep;
  memset(&rep, 0, sizeof(rep));
  if (report_out)
    *report_out = rep;
  es_compact_options o;
  es_compact_options_init(&o);
  if (opts)
    o = *opts;
  if (!db || o.target_bytes == 0 || o.retain_us < 0)
    return ES_INVAL_BKPT("es_compact: NULL handle or bad options");
  if (tenant)
    ES_TRY(es__tenant_check(tenant));
  ES_TRY(es__gate_enter(db, "es_compact"));
  int64_t cutoff = o.retain_us ? es__clock_now_us() - o.retain_us : INT64_MIN;
  /* the tenants to do, copied so no lock is held while compacting */
  name_list names = {0};
  int rc = ES_OK;
  pthread_mutex_lock(&db->tenants_mu);
  for (size_t b = 0; rc == ES_OK && b < db->nbuckets; b++)
    for (es_tenant *t = db->buckets[b]; rc == ES_OK && t; t = t->hash_next) {
      if (tenant && strcmp(tenant, t->name) != 0)
        continue;
      rc = es__grow((void **)&names.names, &names.cap, names.n + 1,
                    sizeof(*names.names));
      if (rc == ES_OK)
        strcpy(names.names[names.n++], t->name);
    }
  pthread_mutex_unlock(&db->tenants_mu);
  for (size_t i = 0; rc == ES_OK && i < names.n; i++) {
    es_tenant *t = NULL;
    rc = es__tenant_get(db, names.names[i], 0, &t);
    if (rc == ES_OK && t) {
      pthread_mutex_lock(&t->compact_mu);
      rc = compact_tenant(db, t, &o, cutoff, &rep);
      pthread_mutex_unlock(&t->compact_mu);
    }
  }
  es__free(names.names);
  /* before its manifest's rename a failed run changed nothing: the caller
   * may retry; at or after it the store fails (gate.c, 2-3) */
  rc = es__gate_io_error(db, ES_GATE_CALL, rc);
  if (report_out)
    *report_out = rep;
  return rc;
}

/* --- the compactor thread (es_options.compact_segments) ----------------- */

/* Queues t unless it is queued already. */
void es__compact_request(es_db *db, es_tenant *t) {
  pthread_mutex_lock(&db->cmp_mu);
  if (!t->compact_queued && !db->cmp_stop &&
      es__grow((void **)&db->cmp_queue, &db->cmp_cap, db->cmp_len + 1,
               sizeof(es_tenant *)) == ES_OK) {
    t->compact_queued = 1;
    db->cmp_queue[db->cmp_len++] = t;
    pthread_cond_signal(&db->cmp_cv);
  }
  es__error_clear(); /* a failed grow: the next flush asks again */
  pthread_mutex_unlock(&db->cmp_mu);
}

void es__compact_wait_idle(es_db *db) {
  pthread_mutex_lock(&db->cmp_mu);
  while (db->cmp_started && (db->cmp_len > 0 || db->cmp_busy))
    pthread_cond_wait(&db->cmp_idle_cv, &db->cmp_mu);
  pthread_mutex_unlock(&db->cmp_mu);
}

/* Compacts t if it has compact_segments small segments or more.  A failed
 * compaction has failed the database (es_compact) if it failed at a
 * commit point; otherwise it is logged and the tenant waits for its next
 * flush.  Returns the status (ES_OK when nothing was due). */
static int compact_auto(es_db *db, es_tenant *t) {
  es_compact_options o;
  es_compact_options_init(&o);
  /* a merge holds its run's rows, re-encoded, in memory: keep that to an
   * eighth of the memory the store was given */
  o.memory_bytes = db->opts.memtable_budget_bytes / 8;
  int small = 0;
  pthread_mutex_lock(&t->mu);
  for (size_t i = 0; t->segs && i < t->segs->n; i++)
    small += es__compact_small(t->segs->segs[i], &o);
  pthread_mutex_unlock(&t->mu);
  if (small < db->opts.compact_segments)
    return ES_OK;
  es_compact_report rep;
  int rc = es_compact(db, t->name, &o, &rep);
  if (rc < 0 && rc != ES_ECLOSED)
    es__db_log(db, 1, "tenant %s: compaction: %s", t->name, es_errdetail());
  else if (rc == ES_OK && rep.segments_in > 0)
    es__db_log(db, 2, "tenant %s: compacted %llu segments into %llu", t->name,
               (unsigned long long)rep.segments_in,
               (unsigned long long)rep.segments_out);
  es__error_clear();
  return rc;
}

/* Takes queued tenants in order, at nice +10 (Linux sets the nice value
 * of one thread this way); merges yield the CPU to appends and flushes. */
void *es__compactor_main(void *arg) {
  es_db *db = arg;
  int64_t backoff_us = 0;
  (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
  pthread_mutex_lock(&db->cmp_mu);
  for (;;) {
    while (db->cmp_len == 0 && !db->cmp_stop) {
      db->cmp_busy = 0;
      pthread_cond_broadcast(&db->cmp_idle_cv);
      pthread_cond_wait(&db->cmp_cv, &db->cmp_mu);
    }
    if (db->cmp_stop)
      break;
    es_tenant *t = db->cmp_queue[0];
    memmove(db->cmp_queue, db->cmp_queue + 1,
            --db->cmp_len * sizeof(es_tenant *));
    t->compact_queued = 0; /* a flush from now on may queue it again */
    db->cmp_busy = 1;
    pthread_mutex_unlock(&db->cmp_mu);
    int rc = compact_auto(db, t);
    pthread_mutex_lock(&db->cmp_mu);
    /* a full disk: the next merge waits out a backoff (gate.c, 4); new
     * requests queue meanwhile, stop ends the wait */
    backoff_us =
        rc == ES_ENOSPC || rc == ES_EIO ? es__gate_backoff_next(backoff_us) : 0;
    int64_t until = es__clock_mono_us() + backoff_us;
    while (backoff_us && !db->cmp_stop && es__clock_mono_us() < until) {
      struct timespec ts;
      es__clock_deadline(&ts, until - es__clock_mono_us());
      pthread_cond_timedwait(&db->cmp_cv, &db->cmp_mu, &ts);
    }
  }
  db->cmp_busy = 0;
  pthread_cond_broadcast(&db->cmp_idle_cv);
  pthread_mutex_unlock(&db->cmp_mu);
  return NULL;
}
