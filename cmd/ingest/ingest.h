/*
 * ingest.h -- the Segment ingest service as a library (cmd/ingest/): the
 * keys file, the writer threads and the HTTP routes, started on a caller's loop
 * with a caller's es_db. es-ingestd's main() (cmd/ingestd/) and es-queryd's
 * embedded mode
 * (--ingest-listen, cmd/queryd/) drive it through this header only; the
 * service's state (server.h) is the library's own.
 *
 * Lifecycle: ingest_new -> ingest_start -> (serving) -> ingest_drain ->
 * once the last connection is gone the writers are joined and the
 * finished callback runs -> the caller's loop ends -> ingest_free.  After
 * a failed start, run the loop until it ends (handles are closing), then
 * ingest_free.  Everything runs on the loop thread.
 */
#ifndef ES_INGEST_H
#define ES_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/netaddr.h"
#include "eventstore.h"

#define INGEST_THREADS_MAX 64 /* writer threads */

typedef struct ingest_config {
  const char *data_dir, *listen, *keys_path;
  const char *admin_tokens_path; /* NULL: no admin API (every call 401) */
  int access_log;                /* 1 (default): a JSON line per request */
  int threads;
  int tenant_appends; /* one tenant's appends in flight at once: 1; tier
                         s3 sets s3_puts_inflight (writers.h, 1) */
  size_t memory_budget_bytes;
  size_t tenant_bytes_max;  /* per-tenant share of the budget (429 above) */
  size_t jobs_max;          /* requests parsing or waiting for a writer */
  size_t tenant_jobs_max;   /* one tenant's share of those (429 above) */
  int64_t dedupe_window_us; /* es_options.dedupe_window_us */
  int64_t read_timeout_ms, idle_timeout_ms, drain_timeout_ms;
  int sync_none;
  int compact_segments;  /* es_options.compact_segments */
  int shards;            /* es_options.shards; 0: the library's default */
  size_t wal_file_bytes; /* es_options.wal_file_bytes; 0: the default */
  size_t seal_bytes;     /* es_options.seal_bytes; 0: the default */
  size_t connections_max;
  /* replication (docs/REPLICATION.md): es_options.replica is opened by
   * the program; the service reads its state for /metrics and /readyz */
  int replica_on;
  int ship_wal; /* the store ships its WAL (tier s3 or --ship-wal): the
                   keys file may put tenants in tier s3 */
  int64_t replica_lag_max_us; /* /readyz: 503 when the oldest commit not
                                 yet in the replica is older */
  /* --forward URL (forward.h, docs/MIGRATION.md): stored events are sent
   * on to the legacy endpoint from a queue in forward_queue_dir (NULL:
   * DATA_DIR/forward-queue); NULL url: no forwarding */
  const char *forward_url, *forward_queue_dir;
  /* --trusted-proxies: peers whose X-Forwarded-For names the client
   * (common/netaddr.h); an event without context.ip gets the client's
   * address */
  svc_cidrs trusted_proxies;
  /* --metrics-tenants: tenants listed by name in /metrics (the biggest by
   * segment bytes; the rest summed under tenant="~others") */
  size_t metrics_tenants;
} ingest_config;

typedef struct server ingest_server;

/* es-ingestd's defaults (docs/INGEST.md). */
void ingest_config_defaults(ingest_config *cfg);

/* A service not yet started, with a copy of cfg; finished(ud) (may be
 * NULL) is its last step after a drain.  NULL when out of memory. */
ingest_server *ingest_new(const ingest_config *cfg, void (*finished)(void *ud),
                          void *ud);

/* Loads cfg.keys_path and cfg.admin_tokens_path, checked whole, before
 * a store is opened: 0, or an exit status after a line on stderr.
 * ingest_start calls it when the caller did not. */
int ingest_load(ingest_server *srv);

/* SIGHUP: reloads both files; each that fails its checks keeps the old
 * set, and the refusal is logged with its reason (counts only, never a
 * key).  Loop thread. */
void ingest_reload(ingest_server *srv);

/* Loads cfg.keys_path (unless ingest_load did), starts the
 * writers on loop and listens on host:port (*bound_out: the bound port).
 * 0, or an exit status after a one-line reason on stderr.  The caller
 * owns db and the loop, and closes db only after the loop ended. */
int ingest_start(ingest_server *srv, uv_loop_t *loop, es_db *db,
                 const char *host, int port, int *bound_out);

/* Stops accepting and closes idle connections; requests already read
 * are answered ("Connection: close"); then the writers are joined and
 * finished runs (at once when nothing is in flight). */
void ingest_drain(ingest_server *srv);
/* Closes every connection at once (a drain deadline passed). */
void ingest_close_all(ingest_server *srv);

size_t ingest_tenants_count(const ingest_server *srv);
/* The continuous exporter whose progress /metrics shows (NULL: none);
 * the caller stops it after the loop ended. */
void ingest_set_exporter(ingest_server *srv, es_exporter *ex);
/* Makes the server a cluster node (before ingest_start): appends only for
 * tenants the node holds, /metrics lists them (docs/SCALING.md). */
void ingest_set_cluster(ingest_server *srv, es_cluster *cluster);
/* Frees the service (NULL is fine); after its loop ended. */
void ingest_free(ingest_server *srv);

/* es_options.log.fn: the library's lines as the service's JSON logs. */
void ing_lib_log(void *ud, int level, const char *msg);
/* One JSON log line on stderr; extra is raw JSON members
 * (",\"k\":v..."), may be NULL or "". */
void ing_log(const char *level, const char *msg, const char *extra);

#endif /* ES_INGEST_H */
