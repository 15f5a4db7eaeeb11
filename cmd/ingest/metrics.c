/*
 * metrics.c -- Prometheus text for GET /metrics (see metrics.h and the
 * list in docs/INGEST.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static const int statuses[METRICS_STATUSES] = {200, 204, 400, 401, 404, 405,
                                               408, 413, 429, 431, 500, 503};
static const double bucket_s[METRICS_BUCKETS] = {
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

void metrics_request(metrics *m, int http_status) {
  for (int i = 0; i < METRICS_STATUSES; i++)
    if (statuses[i] == http_status) {
      m->requests[i]++;
      return;
    }
  m->requests[10]++; /* anything else counts as 500 */
}

void metrics_observe(metrics_hist *h, int64_t latency_us) {
  prom_hist_observe(h, bucket_s, METRICS_BUCKETS, latency_us);
}

/* The Prometheus text pieces are common/prom.h's. */
#define put prom_put
#define counter prom_counter
#define gauge prom_gauge

static int histogram(seg_buf *b, const char *name, const char *help,
                     const metrics_hist *h) {
  return prom_histogram(b, name, help, h, bucket_s, METRICS_BUCKETS);
}

int metrics_render(const metrics *m, seg_buf *b, size_t queue_jobs,
                   size_t held_bytes, size_t budget_bytes, size_t connections,
                   int draining) {
  int rc = counter(b, "es_ingest_requests_total",
                   "HTTP requests answered, by status code");
  for (int i = 0; i < METRICS_STATUSES; i++)
    rc |= put(b, "es_ingest_requests_total{code=\"%d\"} %llu\n", statuses[i],
              (unsigned long long)m->requests[i]);
  rc |= counter(b, "es_ingest_events_total",
                "events by outcome: stored (durable), duplicate (messageId "
                "the tenant held already: es_append's answer), suppressed "
                "(their person is erased with suppress: answered 200, not "
                "stored), rejected (in a refused request)");
  rc |= put(b, "es_ingest_events_total{status=\"stored\"} %llu\n",
            (unsigned long long)m->events_stored);
  rc |= put(b, "es_ingest_events_total{status=\"duplicate\"} %llu\n",
            (unsigned long long)m->events_duplicate);
  rc |= put(b, "es_ingest_events_total{status=\"suppressed\"} %llu\n",
            (unsigned long long)m->events_suppressed);
  rc |= put(b, "es_ingest_events_total{status=\"rejected\"} %llu\n",
            (unsigned long long)m->events_rejected);
  rc |= histogram(b, "es_ingest_commit_seconds",
                  "time from hand-off to a writer until the request's "
                  "events are durable",
                  &m->commit);
  rc |= histogram(b, "es_ingest_request_seconds",
                  "ingest requests, from their first byte read to their "
                  "answer queued (any status)",
                  &m->request);
  rc |= counter(b, "es_ingest_bytes_total",
                "body bytes received (as sent), inflated (after gzip), "
                "stored (compact JSON size of stored events)");
  rc |= put(b, "es_ingest_bytes_total{stage=\"received\"} %llu\n",
            (unsigned long long)m->bytes_received);
  rc |= put(b, "es_ingest_bytes_total{stage=\"inflated\"} %llu\n",
            (unsigned long long)m->bytes_inflated);
  rc |= put(b, "es_ingest_bytes_total{stage=\"stored\"} %llu\n",
            (unsigned long long)m->bytes_stored);
  rc |= counter(b, "es_ingest_appends_failed_total",
                "es_append calls that failed (answered 5xx)");
  rc |= put(b, "es_ingest_appends_failed_total %llu\n",
            (unsigned long long)m->appends_failed);
  rc |= gauge(b, "es_ingest_queue_jobs", "requests waiting to be durable",
              queue_jobs);
  rc |= gauge(b, "es_ingest_memory_bytes",
              "bytes held by request bodies and queued events", held_bytes);
  rc |= gauge(b, "es_ingest_memory_budget_bytes",
              "the requests' quarter of --memory-budget (503 above it)",
              budget_bytes);
  rc |=
      gauge(b, "es_ingest_connections", "open client connections", connections);
  rc |= gauge(b, "es_ingest_draining", "1 after SIGTERM", (unsigned)draining);
  return rc ? -1 : 0;
}

/* A counter with its one sample. */
static int counter1(seg_buf *b, const char *name, const char *help,
                    unsigned long long v) {
  return counter(b, name, help) || put(b, "%s %llu\n", name, v);
}

/* The loaded tenants' figures, gathered by es_stats_tenants. */
typedef struct tenant_list {
  es_tenant_stats *v;
  size_t n, cap;
  int oom;
} tenant_list;

static void tenant_collect(void *ud, const es_tenant_stats *ts) {
  tenant_list *l = ud;
  if (!ts->loaded || l->oom)
    return;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    es_tenant_stats *g = realloc(l->v, cap * sizeof *g);
    if (g == NULL) {
      l->oom = 1;
      return;
    }
    l->v = g, l->cap = cap;
  }
  l->v[l->n++] = *ts;
}

static int bytes_desc(const void *a, const void *b) {
  const es_tenant_stats *x = a, *y = b;
  if (x->segment_bytes != y->segment_bytes)
    return x->segment_bytes < y->segment_bytes ? 1 : -1;
  return strcmp(x->tenant, y->tenant);
}

/* One tenant's samples (name: a tenant id, or "~others"). */
static int tenant_samples(seg_buf *b, const char *name,
                          const es_tenant_stats *t) {
  return put(b, "es_store_tenant_segments{tenant=\"%s\"} %llu\n", name,
             (unsigned long long)t->segments) |
         put(b, "es_store_tenant_segment_bytes{tenant=\"%s\"} %llu\n", name,
             (unsigned long long)t->segment_bytes) |
         put(b, "es_store_tenant_rows{tenant=\"%s\",in=\"segments\"} %llu\n",
             name, (unsigned long long)t->segment_rows) |
         put(b, "es_store_tenant_rows{tenant=\"%s\",in=\"memtable\"} %llu\n",
             name, (unsigned long long)t->memtable_rows);
}

/* Per-tenant series (see metrics.h); tenant ids are [A-Za-z0-9_-], so
 * they need no escaping in a label. */
static int render_tenants(es_db *db, seg_buf *b, size_t tenants_max) {
  tenant_list l = {0};
  if (tenants_max == 0)
    return 0;
  if (es_stats_tenants(db, tenant_collect, &l) != ES_OK || l.oom) {
    free(l.v);
    return -1;
  }
  if (l.n > 1) /* qsort of NULL, 0 is undefined */
    qsort(l.v, l.n, sizeof *l.v, bytes_desc);
  int rc = put(b, "# HELP es_store_tenant_segments segments of a loaded "
                  "tenant\n# TYPE es_store_tenant_segments gauge\n"
                  "# HELP es_store_tenant_segment_bytes bytes of its "
                  "segments\n# TYPE es_store_tenant_segment_bytes gauge\n"
                  "# HELP es_store_tenant_rows its events, in segments or "
                  "not yet (memtable)\n# TYPE es_store_tenant_rows gauge\n");
  es_tenant_stats others = {0};
  for (size_t i = 0; i < l.n; i++) {
    if (i < tenants_max) {
      rc |= tenant_samples(b, l.v[i].tenant, &l.v[i]);
      continue;
    }
    others.segments += l.v[i].segments;
    others.segment_bytes += l.v[i].segment_bytes;
    others.segment_rows += l.v[i].segment_rows;
    others.memtable_rows += l.v[i].memtable_rows;
  }
  if (l.n > tenants_max)
    rc |= tenant_samples(b, "~others", &others);
  free(l.v);
  return rc ? -1 : 0;
}

int metrics_render_store(es_db *db, seg_buf *b, size_t tenants_max) {
  es_stats st;
  if (es_stats_get(db, &st) != ES_OK)
    return -1;
  int state = es_state(db, NULL, 0);
  int rc = gauge(b, "es_store_tenants", "tenants the store knows", st.tenants);
  rc |= gauge(b, "es_store_tenants_loaded",
              "tenants whose segments are counted below (loaded on first "
              "use)",
              st.tenants_loaded);
  rc |= gauge(b, "es_store_segments", "segments of the loaded tenants",
              st.segments);
  rc |= gauge(b, "es_store_segment_bytes", "bytes of those segments",
              st.segment_bytes);
  rc |= gauge(b, "es_store_segment_rows", "events in those segments",
              st.segment_rows);
  rc |= gauge(b, "es_store_memtable_bytes",
              "memtables (events not yet in segments)", st.memtable_bytes);
  rc |= gauge(b, "es_store_wal_bytes", "bytes in live WAL files", st.wal_bytes);
  rc |= counter1(b, "es_store_flushes_total", "memtables written as segments",
                 st.flushes);
  rc |= put(b,
            "# HELP es_store_flush_seconds_total time spent flushing\n"
            "# TYPE es_store_flush_seconds_total counter\n"
            "es_store_flush_seconds_total %.6f\n",
            (double)st.flush_us_total / 1e6);
  rc |= put(b,
            "# HELP es_store_flush_seconds_max the longest flush\n"
            "# TYPE es_store_flush_seconds_max gauge\n"
            "es_store_flush_seconds_max %.6f\n",
            (double)st.flush_us_max / 1e6);
  rc |= counter1(b, "es_store_merges_total",
                 "compaction runs merged into one segment", st.merges);
  rc |= counter1(b, "es_store_events_suppressed_total",
                 "appended events dropped: their person is erased with "
                 "suppress (es_stats.events_suppressed)",
                 st.events_suppressed);
  rc |= put(b,
            "# HELP es_store_merge_seconds_total time spent merging\n"
            "# TYPE es_store_merge_seconds_total counter\n"
            "es_store_merge_seconds_total %.6f\n",
            (double)st.merge_us_total / 1e6);
  rc |= put(b,
            "# HELP es_store_merge_seconds_max the longest merge\n"
            "# TYPE es_store_merge_seconds_max gauge\n"
            "es_store_merge_seconds_max %.6f\n",
            (double)st.merge_us_max / 1e6);
  rc |= gauge(b, "es_store_failed",
              "1 when the store failed after an I/O error (writes refused "
              "until a restart)",
              st.failed != 0);
  rc |= gauge(b, "es_store_degraded",
              "1 while a background write (flush, spare WAL file) fails, "
              "disk full for one: appends may be refused with 503 until it "
              "recovers by itself",
              state == ES_STATE_DEGRADED);
  rc |= render_tenants(db, b, tenants_max);
  return rc ? -1 : 0;
}

int metrics_render_replica(const es_replica_stats *st, seg_buf *b) {
  int rc = gauge(b, "es_replica_backlog_objects",
                 "files named by local manifests, not yet in the replica",
                 (unsigned long long)st->backlog_objects);
  rc |= gauge(b, "es_replica_backlog_bytes", "their bytes",
              (unsigned long long)st->backlog_bytes);
  rc |= gauge(b, "es_replica_oldest_unreplicated_seconds",
              "age of the oldest commit not yet in the replica (0: none)",
              (unsigned long long)(st->oldest_age_us / 1000000));
  rc |= counter(b, "es_replica_uploaded_objects_total",
                "objects put into the replica");
  rc |= put(b, "es_replica_uploaded_objects_total %llu\n",
            (unsigned long long)st->uploaded_objects);
  rc |= counter(b, "es_replica_uploaded_bytes_total", "their bytes");
  rc |= put(b, "es_replica_uploaded_bytes_total %llu\n",
            (unsigned long long)st->uploaded_bytes);
  rc |= counter(b, "es_replica_deleted_objects_total",
                "superseded objects deleted after the grace period");
  rc |= put(b, "es_replica_deleted_objects_total %llu\n",
            (unsigned long long)st->deleted_objects);
  rc |= counter(b, "es_replica_errors_total",
                "object-store requests that failed after the client's own "
                "retries");
  rc |=
      put(b, "es_replica_errors_total %llu\n", (unsigned long long)st->errors);
  rc |= counter(b, "es_replica_retries_total",
                "tenant uploads retried (with backoff) after a failure");
  rc |= put(b, "es_replica_retries_total %llu\n",
            (unsigned long long)st->retries);
  rc |= counter(b, "es_replica_requests_total", "object-store requests made");
  rc |= put(b, "es_replica_requests_total %llu\n",
            (unsigned long long)st->requests);
  rc |= counter(b, "es_replica_request_seconds_total",
                "their total latency (divide by the requests for the mean)");
  rc |= put(b, "es_replica_request_seconds_total %.6f\n",
            (double)st->request_us / 1e6);
  return rc ? -1 : 0;
}

/* Per-shard samples of the WAL shipper, one metric at a time. */
typedef struct ship_out {
  seg_buf *b;
  int which;
  int rc;
} ship_out;

static int ship_line(void *ud, const es_walship_shard *s) {
  ship_out *o = ud;
  unsigned long long v = o->which == 0   ? s->synced_lsn
                         : o->which == 1 ? s->shipped_lsn
                         : o->which == 2 ? s->synced_lsn - s->shipped_lsn
                         : o->which == 3 ? s->inflight
                         : o->which == 4 ? s->pending_bytes
                         : o->which == 5
                             ? (unsigned long long)(s->oldest_age_us / 1000)
                             : (unsigned long long)(s->broken ? 2 : s->failing);
  static const char *const name[] = {
      "es_walship_synced_lsn",    "es_walship_shipped_lsn",
      "es_walship_lag_lsn",       "es_walship_inflight_puts",
      "es_walship_pending_bytes", "es_walship_oldest_unshipped_seconds",
      "es_walship_state"};
  if (o->which == 5)
    o->rc |= put(o->b, "%s{shard=\"%u\"} %.3f\n", name[o->which], s->shard,
                 (double)v / 1e3);
  else
    o->rc |= put(o->b, "%s{shard=\"%u\"} %llu\n", name[o->which], s->shard, v);
  return 0;
}

int metrics_render_walship(es_db *db, seg_buf *b) {
  es_walship_stats st;
  if (es_walship_stats_get(db, &st) != ES_OK)
    return 0; /* not tier s3: nothing to say */
  int rc = counter1(b, "es_walship_chunks_total",
                    "WAL chunks put into S3 (tier s3)", st.chunks);
  rc |= counter1(b, "es_walship_bytes_total", "their bytes", st.bytes);
  rc |= counter1(b, "es_walship_put_requests_total",
                 "chunk PUTs made (each with the S3 client's own retries)",
                 st.put_requests);
  rc |= counter(b, "es_walship_put_seconds_total",
                "their total latency (divide by the PUTs for the mean)");
  rc |= put(b, "es_walship_put_seconds_total %.6f\n", (double)st.put_us / 1e6);
  rc |= counter1(b, "es_walship_put_errors_total", "chunk PUTs that failed",
                 st.put_errors);
  rc |= counter1(b, "es_walship_retries_total",
                 "failed chunks put again after a backoff", st.retries);
  rc |= counter1(b, "es_walship_deleted_chunks_total",
                 "chunks deleted once their events were in replicated "
                 "segments",
                 st.deleted);
  rc |= counter1(b, "es_walship_delete_errors_total",
                 "chunk deletes that failed (tried again later)",
                 st.delete_errors);
  rc |= counter1(b, "es_walship_waits_total",
                 "requests that waited for their chunk to be in S3", st.waits);
  rc |= counter(b, "es_walship_wait_seconds_total", "their total wait");
  rc |=
      put(b, "es_walship_wait_seconds_total %.6f\n", (double)st.wait_us / 1e6);
  rc |= counter1(b, "es_walship_wait_failures_total",
                 "of those, not confirmed by S3 (answered 503)",
                 st.wait_failures);
  rc |= counter1(b, "es_walship_refused_total",
                 "requests refused before writing, S3 failing or slow (503)",
                 st.refused);
  rc |= gauge(b, "es_walship_puts_inflight_max",
              "chunk PUTs a shard may have under way (--s3-puts-inflight)",
              st.depth);
  rc |= gauge(b, "es_walship_failing_shards",
              "shards whose last chunk PUT failed", st.failing_shards);
  rc |= gauge(b, "es_walship_broken_shards",
              "shards that fell too far behind and refuse tier-s3 requests "
              "until a restart",
              st.broken_shards);
  static const char *const head[] = {
      "# HELP es_walship_synced_lsn the shard's last WAL frame fdatasync'ed "
      "here\n# TYPE es_walship_synced_lsn gauge\n",
      "# HELP es_walship_shipped_lsn every WAL frame of the shard up to it "
      "is in S3\n# TYPE es_walship_shipped_lsn gauge\n",
      "# HELP es_walship_lag_lsn synced minus shipped LSN\n"
      "# TYPE es_walship_lag_lsn gauge\n",
      "# HELP es_walship_inflight_puts chunk PUTs under way\n"
      "# TYPE es_walship_inflight_puts gauge\n",
      "# HELP es_walship_pending_bytes WAL bytes synced here, not yet in S3 "
      "(held in memory)\n# TYPE es_walship_pending_bytes gauge\n",
      "# HELP es_walship_oldest_unshipped_seconds age of the oldest WAL frame "
      "not yet in S3 (0: none)\n"
      "# TYPE es_walship_oldest_unshipped_seconds gauge\n",
      "# HELP es_walship_state 0 shipping, 1 failing (S3 errors, retrying), 2 "
      "broken (until a restart)\n# TYPE es_walship_state gauge\n"};
  ship_out o = {b, 0, rc};
  for (o.which = 0; o.which < 7; o.which++) {
    o.rc |= put(b, "%s", head[o.which]);
    if (es_walship_shards(db, ship_line, &o) != ES_OK)
      o.rc = -1;
  }
  return o.rc ? -1 : 0;
}

int metrics_render_export(const es_exporter_stats *st, int64_t now_us,
                          seg_buf *b) {
  int64_t lag_us = st->synced_through_us ? now_us - st->synced_through_us : 0;
  int rc = gauge(b, "es_export_synced",
                 "1 once a pass exported every due "
                 "hour (until then es_export_lag_seconds is 0)",
                 st->synced_through_us != 0);
  rc |= put(b,
            "# HELP es_export_lag_seconds now minus the end of the newest "
            "hour up to which every hour is exported (about --export-delay-s "
            "to an hour more when caught up)\n"
            "# TYPE es_export_lag_seconds gauge\n"
            "es_export_lag_seconds %.3f\n",
            (double)(lag_us > 0 ? lag_us : 0) / 1e6);
  rc |= gauge(b, "es_export_pending_hours",
              "hours due but not exported (the last pass failed on them)",
              (unsigned long long)st->pending_hours);
  rc |= counter1(b, "es_export_passes_total", "passes over every tenant",
                 st->passes);
  rc |= counter1(b, "es_export_hours_total",
                 "hour part files written (first time or again)",
                 st->hours_exported);
  rc |= counter1(b, "es_export_hours_reexported_total",
                 "of those, hours written again (late events, erasures)",
                 st->hours_reexported);
  rc |= counter1(b, "es_export_rows_total", "rows written", st->rows);
  rc |= counter1(b, "es_export_files_total", "part files written", st->files);
  rc |= counter1(b, "es_export_bytes_total", "bytes of those", st->bytes);
  rc |=
      counter1(b, "es_export_errors_total",
               "partitions that failed (retried at the next pass)", st->errors);
  return rc ? -1 : 0;
}

typedef struct cluster_out {
  seg_buf *b;
  int which; /* 0 state, 1 takeover seconds, 2 restored rows, 3-5 steps,
                6 replayed events */
  int rc;
} cluster_out;

static int cluster_line(void *ud, const es_cluster_tenant *t) {
  cluster_out *o = ud;
  static const char *const step[] = {"lease", "restore", "replay"};
  if (o->which == 0)
    o->rc |= put(o->b, "es_cluster_tenant{tenant=\"%s\",state=\"%s\"} %llu\n",
                 t->tenant, t->state, (unsigned long long)t->lease_gen);
  else if (o->which == 1)
    o->rc |= put(o->b, "es_cluster_takeover_seconds{tenant=\"%s\"} %.6f\n",
                 t->tenant, (double)t->took_us / 1e6);
  else if (o->which == 2)
    o->rc |= put(o->b, "es_cluster_restored_rows{tenant=\"%s\"} %llu\n",
                 t->tenant, (unsigned long long)t->restored_rows);
  else if (o->which < 6)
    o->rc |= put(o->b,
                 "es_cluster_takeover_step_seconds{tenant=\"%s\",step=\"%s\"} "
                 "%.6f\n",
                 t->tenant, step[o->which - 3],
                 (double)(o->which == 3   ? t->lease_us
                          : o->which == 4 ? t->restore_us
                                          : t->replay_us) /
                     1e6);
  else
    o->rc |= put(o->b, "es_cluster_replayed_events{tenant=\"%s\"} %llu\n",
                 t->tenant, (unsigned long long)t->replayed_events);
  return 0;
}

int metrics_render_cluster(es_cluster *c, seg_buf *b) {
  static const char *const head[] = {
      "# HELP es_cluster_tenant a tenant this node knows, by state; the "
      "value is its lease generation\n# TYPE es_cluster_tenant gauge\n",
      "# HELP es_cluster_takeover_seconds the tenant's last takeover here "
      "(lease, restore, replay, claim)\n"
      "# TYPE es_cluster_takeover_seconds gauge\n",
      "# HELP es_cluster_restored_rows rows the last takeover restored\n"
      "# TYPE es_cluster_restored_rows gauge\n",
      "# HELP es_cluster_takeover_step_seconds the last takeover's steps: "
      "taking the lease, restoring the segments, replaying the old "
      "holder's WAL chunks\n"
      "# TYPE es_cluster_takeover_step_seconds gauge\n",
      "",
      "",
      "# HELP es_cluster_replayed_events events the last takeover replayed "
      "from the old holder's WAL chunks\n"
      "# TYPE es_cluster_replayed_events gauge\n"};
  cluster_out o = {b, 0, 0};
  for (o.which = 0; o.which < 7; o.which++) {
    o.rc |= put(b, "%s", head[o.which]);
    if (es_cluster_status(c, cluster_line, &o) != ES_OK)
      o.rc = -1;
  }
  return o.rc ? -1 : 0;
}
