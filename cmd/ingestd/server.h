/*
 * server.h -- the state of one es-ingestd process, shared by its files.
 *
 * Threads: everything here belongs to the libuv loop thread, except what
 * writers.h says its writer threads touch (sched_tenant queues, under the
 * sched mutex).  So counters and budgets need no locks.
 */
#ifndef INGESTD_SERVER_H
#define INGESTD_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "eventstore.h"
#include "hconn.h"
#include "metrics.h"
#include "writers.h"

typedef struct tenant {
  sched_tenant st;      /* first: sched_job.tenant points here */
  size_t pending_bytes; /* admitted, not yet completed */
  size_t pending_jobs;  /* requests of those */
} tenant;

typedef struct write_key {
  char *key;
  tenant *tenant;
} write_key;

typedef struct config {
  const char *data_dir, *listen, *keys_path;
  int threads;
  size_t memory_budget_bytes;
  size_t tenant_bytes_max;  /* per-tenant share of the budget (429 above) */
  size_t jobs_max;          /* requests parsing or waiting for a writer */
  size_t tenant_jobs_max;   /* one tenant's share of those (429 above) */
  int64_t dedupe_window_us; /* es_options.dedupe_window_us */
  int64_t read_timeout_ms, idle_timeout_ms, drain_timeout_ms;
  int sync_none;
  int compact_segments; /* es_options.compact_segments */
  size_t connections_max;
} config;

typedef struct server {
  config cfg;
  uv_loop_t *loop;
  es_db *db;
  sched sched;
  tenant *tenants;
  size_t tenants_count;
  write_key *keys; /* sorted by key */
  size_t keys_count;
  hconn_host http; /* listener and connections (hconn.h) */
  uv_signal_t sigterm, sigint;
  uv_timer_t drain_timer;
  int draining;
  size_t held_bytes;   /* bodies being read + admitted jobs */
  size_t jobs_pending; /* handed to the writers, not yet answered */
  size_t parsing;      /* handed to the parse pool (or just back) */
  uint64_t rng;
  metrics m;
  int finished;                          /* server_maybe_finish ran */
  void (*finish_fn)(struct server *srv); /* its last step; may be NULL */
} server;

/* http.c */
int http_listen(server *srv, const char *host, int port, int *port_out);
void http_drain(server *srv);
void http_close_all(server *srv);
void http_job_done(sched_job *sj, void *ud);
/* setup.c: the server without main(), for es-ingestd and es-queryd's
 * embedded mode.  ingest_start loads srv->cfg.keys_path, reloads the
 * starts the writers on loop and listens on
 * host:port (*bound_out: the bound port); 0, or an exit status after a
 * one-line reason on stderr.  The caller owns db and the loop; after the
 * loop ends (or a failed start), ingest_free releases the rest.  Drain
 * with http_drain: when the last connection is gone the writers are
 * joined and srv->finish_fn is called (server_maybe_finish). */
void ingest_config_defaults(config *cfg); /* es-ingestd's defaults */
int ingest_start(server *srv, uv_loop_t *loop, es_db *db, const char *host,
                 int port, int *bound_out);
void ingest_free(server *srv);
const tenant *server_tenant_for_key(const server *srv, const char *key);
void server_maybe_finish(server *srv);
void ing_lib_log(void *ud, int level, const char *msg); /* es_log_options */
/* log.c: one JSON object per line on stderr; extra is raw JSON members
 * (",\"k\":v..."), may be NULL or "". */
void ing_log(const char *level, const char *msg, const char *extra);
int64_t ing_now_us(void);

#endif /* INGESTD_SERVER_H */
