/*
 * metrics.h -- the counters es-ingestd exports at GET /metrics.
 *
 * Updated and rendered on the loop thread only (workers hand their
 * timings over inside the completed jobs), so plain integers suffice.
 */
#ifndef INGESTD_METRICS_H
#define INGESTD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/prom.h"
#include "common/segment_json.h"
#include "eventstore.h"

#define METRICS_STATUSES 12
#define METRICS_BUCKETS 13

/* A latency histogram over metrics.c's buckets (common/prom.h). */
typedef prom_hist metrics_hist;

typedef struct metrics {
  uint64_t requests[METRICS_STATUSES]; /* by status, see metrics.c */
  uint64_t events_stored, events_duplicate, events_rejected;
  uint64_t events_suppressed; /* dropped: the person is erased, suppressed */
  metrics_hist commit;        /* hand-off to a writer -> durable */
  metrics_hist request;       /* ingest requests: first byte -> answer queued */
  uint64_t bytes_received, bytes_inflated, bytes_stored;
  uint64_t appends_failed;
} metrics;

void metrics_request(metrics *m, int http_status);
void metrics_observe(metrics_hist *h, int64_t latency_us);
/* Appends the Prometheus text; gauges are passed in. -1 on OOM. */
/* Appends the replica's gauges and counters (es_replica_stats) to b. */
int metrics_render_replica(const es_replica_stats *st, seg_buf *b);
/* Appends the WAL shipper's counters and per-shard gauges
 * (es_walship_stats_get, es_walship_shards) when db is in tier s3. */
int metrics_render_walship(es_db *db, seg_buf *b);
/* Appends the continuous export's progress (es_exporter_stats) and its
 * lag at now_us to b. */
int metrics_render_export(const es_exporter_stats *st, int64_t now_us,
                          seg_buf *b);
/* Appends a cluster node's tenants (es_cluster_status) to b. */
int metrics_render_cluster(es_cluster *c, seg_buf *b);

int metrics_render(const metrics *m, seg_buf *out, size_t queue_jobs,
                   size_t held_bytes, size_t budget_bytes, size_t connections,
                   int draining);

/* Appends the store's figures (es_stats_get: segments, WAL bytes,
 * flushes and merges with their times, degraded, failed) and, per loaded
 * tenant (es_stats_tenants), segments, segment bytes and rows, for the
 * tenants_max biggest by segment bytes (the rest summed under
 * tenant="~others", a name no tenant can have); -1 on failure. */
int metrics_render_store(es_db *db, seg_buf *out, size_t tenants_max);

#endif /* INGESTD_METRICS_H */
