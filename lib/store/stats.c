/*
 * stats.c -- es_stats_get: what an open store holds and has done, for an
 * operator's metrics, without I/O.
 *
 * The figures come from state other threads own, each read the way its
 * owner publishes it:
 *
 *  1. Segments: each tenant's segment set, taken under tenant->mu as a
 *     scan takes it; a tenant not loaded yet has none in memory and its
 *     files are not opened for a figure (tenants_loaded says how many
 *     were counted).
 *  2. WAL bytes: each shard writer stores es__wal_bytes() into
 *     shard->wal_bytes (an atomic) after every pass of its loop, since
 *     the es_wal itself belongs to the writer thread.
 *  3. Flush and merge counts and times: atomics added to by the flusher
 *     (tenant.c) and by compaction (compact.c) after each success, with
 *     es__stats_time; a figure may be one operation behind another.
 */
#include <stddef.h>
#include <string.h>

#include "base/mem.h"
#include "store/dbint.h"

/* The first release's es_stats: what an older program may pass. */
#define STATS_SIZE_MIN (offsetof(es_stats, failed) + sizeof(int))

/* Adds one timed operation (3). */
void es__stats_time(_Atomic uint64_t *count, _Atomic uint64_t *total_us,
                    _Atomic uint64_t *max_us, int64_t took_us) {
  uint64_t took = took_us > 0 ? (uint64_t)took_us : 0;
  atomic_fetch_add(count, 1);
  atomic_fetch_add(total_us, took);
  uint64_t seen = atomic_load(max_us);
  while (took > seen && !atomic_compare_exchange_weak(max_us, &seen, took))
    ;
}

/* Adds one tenant's segments (1): the set a scan would see. */
static void stats_tenant(es_tenant *t, es_stats *st) {
  pthread_mutex_lock(&t->mu);
  es_segset *set = t->segs;
  if (set != NULL || atomic_load(&t->loaded))
    st->tenants_loaded++;
  for (size_t i = 0; set && i < set->n; i++) {
    st->segments++;
    st->segment_bytes += set->segs[i]->bytes;
    st->segment_rows += set->segs[i]->rows;
  }
  pthread_mutex_unlock(&t->mu);
}

/* The tenants the handle knows, under tenants_mu (*ts_out malloc'ed by
 * es__grow; free with es__free).  A tenant object lives as long as the
 * handle, so it may be visited after the lock. */
static int list_tenants(es_db *db, es_tenant ***ts_out, uint64_t *n_out) {
  es_tenant **ts = NULL;
  size_t cap = 0;
  uint64_t n = 0;
  int rc = ES_OK;
  pthread_mutex_lock(&db->tenants_mu);
  for (size_t i = 0; rc == ES_OK && i < db->ntenants; i++) {
    rc = es__grow((void **)&ts, &cap, n + 1, sizeof(*ts));
    if (rc == ES_OK)
      ts[n++] = db->tenants[i];
  }
  pthread_mutex_unlock(&db->tenants_mu);
  if (rc != ES_OK) {
    es__free(ts);
    return rc;
  }
  *ts_out = ts;
  *n_out = n;
  return ES_OK;
}

/* One tenant's figures (1), under its lock; the memtables' published
 * rows are atomics. */
static void tenant_figures(es_tenant *t, es_tenant_stats *ts) {
  memset(ts, 0, sizeof(*ts));
  ts->struct_size = sizeof(*ts);
  memcpy(ts->tenant, t->name, sizeof(ts->tenant));
  pthread_mutex_lock(&t->mu);
  es_segset *set = t->segs;
  ts->loaded = set != NULL || atomic_load(&t->loaded);
  for (size_t i = 0; set && i < set->n; i++) {
    ts->segments++;
    ts->segment_bytes += set->segs[i]->bytes;
    ts->segment_rows += set->segs[i]->rows;
  }
  if (t->active)
    ts->memtable_rows += atomic_load(&t->active->visible);
  for (size_t i = 0; i < t->nimm; i++)
    ts->memtable_rows += atomic_load(&t->imm[i]->visible);
  pthread_mutex_unlock(&t->mu);
}

int es_stats_tenants(es_db *db, void (*fn)(void *ud, const es_tenant_stats *ts),
                     void *ud) {
  es__error_clear();
  if (!db || !fn)
    return ES_INVAL_BKPT("es_stats_tenants: NULL db or fn");
  es_tenant **ts;
  uint64_t n;
  ES_TRY(list_tenants(db, &ts, &n));
  for (uint64_t i = 0; i < n; i++) {
    es_tenant_stats one;
    tenant_figures(ts[i], &one);
    fn(ud, &one);
  }
  es__free(ts);
  return ES_OK;
}

/* Fills the caller's es_stats; see eventstore.h.  The tenants are listed
 * under tenants_mu and visited after it (no lock nesting; a tenant object
 * lives as long as the handle). */
int es_stats_get_sized(es_db *db, es_stats *stats_out, size_t struct_size) {
  es__error_clear();
  if (!db || !stats_out || struct_size < STATS_SIZE_MIN)
    return ES_INVAL_BKPT("es_stats_get: NULL, or struct_size %zu too small",
                         struct_size);
  es_stats st;
  memset(&st, 0, sizeof(st));
  es_tenant **ts;
  ES_TRY(list_tenants(db, &ts, &st.tenants));
  for (size_t i = 0; i < st.tenants; i++)
    stats_tenant(ts[i], &st);
  es__free(ts);
  st.memtable_bytes = atomic_load(&db->mem_bytes);
  for (uint32_t s = 0; db->shards && s < db->nshards; s++)
    st.wal_bytes += atomic_load(&db->shards[s].wal_bytes);
  st.flushes = atomic_load(&db->st_flushes);
  st.flush_us_total = atomic_load(&db->st_flush_us);
  st.flush_us_max = atomic_load(&db->st_flush_us_max);
  st.merges = atomic_load(&db->st_merges);
  st.events_suppressed = atomic_load(&db->st_suppressed);
  st.merge_us_total = atomic_load(&db->st_merge_us);
  st.merge_us_max = atomic_load(&db->st_merge_us_max);
  st.failed = atomic_load(&db->failed);
  size_t n = struct_size < sizeof(st) ? struct_size : sizeof(st);
  memcpy(stats_out, &st, n);
  stats_out->struct_size = n;
  return ES_OK;
}
