/*
 * server.h -- the state of one ingest service, shared by its files.
 * Its users (es-ingestd, es-queryd's embedded mode) see only ingest.h.
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

#include "common/hconn.h"
#include "common/svc.h"
#include "eventstore.h"
#include "ingest.h"
#include "metrics.h"
#include "writers.h"

typedef struct tenant {
  sched_tenant st;      /* first: sched_job.tenant points here */
  size_t pending_bytes; /* admitted, not yet completed */
  size_t pending_jobs;  /* requests of those */
  int durability;       /* its keys' "durability" (ES_DURABILITY_DEFAULT:
                           none), applied to the store by setup.c */
} tenant;

typedef struct write_key {
  char *key;
  tenant *tenant;
  int primary; /* the keys file's "primary": true (ing_key_entry) */
  int durability; /* the keys file's "durability" (ing_key_entry) */
} write_key;

typedef ingest_config config; /* ingest.h */

typedef struct server {
  config cfg;
  uv_loop_t *loop;
  es_db *db;
  es_exporter *exporter; /* continuous export (--export), or NULL */
  sched sched;
  /* Every tenant ever named by a keys file since the start, each
   * allocated once: jobs and keys point at them, so a reload that drops
   * a tenant's last key leaves the tenant (and its queued jobs) alone. */
  svc_named tenants; /* tenant objects, in order of creation */
  write_key *keys;   /* sorted by key; replaced whole by a reload */
  size_t keys_count;
  char **admin_tokens; /* --admin-tokens; replaced whole by a reload */
  size_t admin_tokens_count;
  int keys_loaded; /* ingest_load ran */
  hconn_host http; /* listener and connections (hconn.h) */
  int draining;
  size_t held_bytes;   /* bodies being read + admitted jobs */
  size_t jobs_pending; /* handed to the writers, not yet answered */
  size_t parsing;      /* handed to the parse pool (or just back) */
  uint64_t rng;
  metrics m;
  struct fwd *fwd; /* --forward (forward.h), or NULL */
  /* --forward: 200s waiting for the queue's fdatasync (http.c,
   * http_forward_flush run by fwd_check once per loop turn) */
  struct job *fwd_parked;
  size_t fwd_parked_count;
  uv_check_t fwd_check;
  int fwd_check_init;
  int finished;                /* server_maybe_finish ran */
  void (*finish_fn)(void *ud); /* its last step; may be NULL */
  struct eraser *eraser;       /* admin.c: runs erase requests' stages */
  void *finish_ud;
} server;

/* setup.c: the keys and admin tokens, (re)loaded whole (admin.c) */
int server_keys_replace(server *srv, const char *text, size_t len,
                        const char *save_path, char *err, size_t err_size);
int server_admin_tokens_load(server *srv, const char *path, char *err,
                             size_t err_size);
tenant *server_tenant_by_id(const server *srv, const char *id);

/* http.c */
int http_listen(server *srv, const char *host, int port, int *port_out);
void http_drain(server *srv);
void http_close_all(server *srv);
void http_job_done(sched_job *sj, void *ud);
int http_forward_init(server *srv);
void http_forward_flush(server *srv);
void http_forward_close(server *srv);
/* setup.c: the server without main(), for es-ingestd and es-queryd's
 * embedded mode (ingest.h); drain it
 * with http_drain: when the last connection is gone the writers are
 * joined and srv->finish_fn is called (server_maybe_finish). */
const tenant *server_tenant_for_key(const server *srv, const char *key);
void server_maybe_finish(server *srv);
int64_t ing_now_us(void);

#endif /* INGESTD_SERVER_H */
