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
 * A run is one es__rewrite (rewrite.c) whose predicate keeps the rows at
 * or after the cut-off: read, keep, sort, write the new segment and its
 * rollup, then one manifest generation through the commit path
 * (commit.c) names it in place of the inputs, whose files are removed
 * after that (or, after a crash, at the next open as orphans).
 *
 * Invariants:
 *  1. The manifest is the only commit point (rewrite.c, 1): a crash
 *     leaves the old set or the new set, never both or neither.
 *  2. Compaction never changes flushed_lsn and never touches memtables, so
 *     WAL recovery is unaffected.
 *  3. One compaction (rewrite) per tenant at a time (tenant->compact_mu);
 *     the flusher and the commit serialise on tenant->man_mu.
 *  4. A run's inputs fit o->memory_bytes together (es__compact_merge_bytes;
 *     one segment alone may exceed it), so its rewrite makes one output.
 */
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/abi.h"
#include "base/clock.h"
#include "base/event.h"
#include "base/mem.h"
#include "store/dbint.h"
#include "store/gate.h"
#include "store/rewrite.h"

#define COMPACT_TARGET_DEFAULT (UINT64_C(64) << 20)

#define COMPACT_OPTIONS_SIZE_MIN                                               \
  (offsetof(es_compact_options, memory_bytes) + sizeof(uint64_t))

/* Defaults; writes struct_size bytes only (eventstore.h, convention 9). */
void es_compact_options_init_sized(es_compact_options *opts,
                                   size_t struct_size) {
  es_compact_options o;
  memset(&o, 0, sizeof(o));
  o.target_bytes = COMPACT_TARGET_DEFAULT;
  memset(opts, 0, struct_size);
  memcpy(opts, &o, struct_size < sizeof(o) ? struct_size : sizeof(o));
  opts->struct_size = struct_size;
}

/* Retention's predicate for es__rewrite: rows at or after the cut-off. */
static int compact_keep(void *ud, const es_event *row) {
  return row->ts_us >= *(const int64_t *)ud;
}

static int compact_drop_all(void *ud, int64_t min_ts_us, int64_t max_ts_us) {
  (void)min_ts_us;
  return max_ts_us < *(const int64_t *)ud;
}

static int compact_keep_all(void *ud, int64_t min_ts_us, int64_t max_ts_us) {
  (void)max_ts_us;
  return min_ts_us >= *(const int64_t *)ud;
}

/* About the memory a merge holds for segment s: its rows re-encoded
 * (when the footer does not say, the blocks' raw size stands in), their
 * sort keys and row pointers, and its share of the output image. */
uint64_t es__compact_merge_bytes(const es_segment *s) {
  uint64_t rows = s->row_bytes ? s->row_bytes : s->raw_bytes;
  /* a row's sort key (time, order, offset) and its two row pointers */
  return rows +
         s->rows *
             (sizeof(int64_t) + 2 * sizeof(uint64_t) + 2 * sizeof(void *)) +
         s->bytes;
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
    size_t nin = 0;
    uint64_t bytes = 0, mem = 0;
    int expired = 0;
    for (; i + nin < set->n; nin++) {
      const es_segment *s = set->segs[i + nin];
      if (!seg_wanted(s, o, cutoff) ||
          (nin > 0 && (bytes + s->bytes > o->target_bytes ||
                       (o->memory_bytes &&
                        mem + es__compact_merge_bytes(s) > o->memory_bytes))))
        break;
      expired |= s->min_ts < cutoff;
      bytes += s->bytes;
      mem += es__compact_merge_bytes(s);
    }
    es_segment *const *in = &set->segs[i];
    i += nin;
    if (nin == 1 && !expired) {
      done += bytes;
      continue; /* one small segment alone: nothing to gain */
    }
    /* the run's memory fits o->memory_bytes: one output, or none */
    es_rewrite_spec spec = {.keep = compact_keep,
                            .drop_all = compact_drop_all,
                            .keep_all = compact_keep_all,
                            .ud = &cutoff,
                            .memory_bytes = o->memory_bytes};
    es_rewrite_stats st;
    int64_t t0 = es__clock_mono_us();
    rc = es__rewrite(db, t, in, nin, &spec, &st);
    if (rc == ES_OK) {
      es__stats_time(&db->st_merges, &db->st_merge_us, &db->st_merge_us_max,
                     es__clock_mono_us() - t0);
      rep->segments_in += st.segments_in;
      rep->segments_out += st.segments_out;
      rep->rows_in += st.rows_in;
      rep->rows_out += st.rows_out;
      rep->rows_dropped += st.rows_in - st.rows_out;
      rep->bytes_in += st.bytes_in;
      rep->bytes_out += st.bytes_out;
    }
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
    ES_TRY(es__abi_options_in(opts, &o, sizeof(o), COMPACT_OPTIONS_SIZE_MIN,
                              "es_compact_options"));
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
  for (size_t i = 0; rc == ES_OK && i < db->ntenants; i++) {
    const es_tenant *t = db->tenants[i];
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
