/*
 * setup.c -- the ingest service's start and finish (ingest.h): the keys
 * file, the writers and the listener, started on a caller's loop with a
 * caller's es_db. cmd/ingestd/main.c (flags, signals, the store's open and
 * close) drives it for es-ingestd; es-queryd's embedded mode (--ingest-listen)
 * drives it to host ingest and queries in one process on one writable handle
 * (docs/QUERYD.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yajl_tree.h>

#include "common/svc.h"
#include "server.h"

#define KEYS_FILE_BYTES_MAX (16u << 20)

_Static_assert(SCHED_THREADS_MAX == INGEST_THREADS_MAX,
               "ingest.h's thread limit is the writers'");

/* ----------------------------------------------------------------------
 * Logging and the clock
 * ---------------------------------------------------------------------- */

int64_t ing_now_us(void) { return svc_now_us(); }

void ing_log(const char *level, const char *msg, const char *extra) {
  svc_log(NULL, level, msg, extra);
}

void ing_lib_log(void *ud, int level, const char *msg) {
  (void)ud;
  ing_log(level == 0   ? "error"
          : level == 1 ? "warning"
                       : "info",
          msg, ",\"from\":\"libeventstore\"");
}

/* ----------------------------------------------------------------------
 * Keys file and tenants
 * ---------------------------------------------------------------------- */

static int key_cmp(const void *a, const void *b) {
  return strcmp(((const write_key *)a)->key, ((const write_key *)b)->key);
}

const tenant *server_tenant_for_key(const server *srv, const char *key) {
  write_key k = {.key = (char *)key};
  const write_key *hit =
      bsearch(&k, srv->keys, srv->keys_count, sizeof k, key_cmp);
  return hit ? hit->tenant : NULL;
}

/* Loads the keys file into srv->keys and srv->tenants; 0 or exit code. */
static int load_keys(server *srv, const char *path) {
  char yerr[256];
  size_t len;
  char *text = svc_read_file(path, KEYS_FILE_BYTES_MAX, &len);
  if (text == NULL) {
    fprintf(stderr, "es-ingestd: cannot read --keys %s: %s\n", path,
            strerror(errno ? errno : EFBIG));
    return 2;
  }
  yajl_val root = yajl_tree_parse(text, yerr, sizeof yerr);
  free(text);
  if (!YAJL_IS_OBJECT(root) || root->u.object.len == 0) {
    yerr[strcspn(yerr, "\n")] = '\0';
    fprintf(stderr,
            "es-ingestd: --keys %s: want a non-empty JSON object of "
            "\"writeKey\": \"tenant\"%s%s\n",
            path, root ? "" : ": ", root ? "" : yerr);
    yajl_tree_free(root);
    return 2;
  }
  size_t n = root->u.object.len;
  srv->keys = calloc(n, sizeof *srv->keys);
  srv->tenants = calloc(n, sizeof *srv->tenants);
  for (size_t i = 0; srv->keys && srv->tenants && i < n; i++) {
    const char *key = root->u.object.keys[i];
    yajl_val v = root->u.object.values[i];
    if (!YAJL_IS_STRING(v) || !svc_tenant_ok(v->u.string) || key[0] == '\0') {
      fprintf(stderr,
              "es-ingestd: --keys %s: key \"%.40s\" must map to a tenant "
              "id of 1-64 [A-Za-z0-9_-]\n",
              path, key);
      yajl_tree_free(root);
      return 2;
    }
    tenant *t = NULL;
    for (size_t j = 0; j < srv->tenants_count && !t; j++)
      if (strcmp(srv->tenants[j].st.id, v->u.string) == 0)
        t = &srv->tenants[j];
    if (t == NULL) {
      t = &srv->tenants[srv->tenants_count++];
      snprintf(t->st.id, sizeof t->st.id, "%s", v->u.string);
    }
    srv->keys[i].key = strdup(key);
    srv->keys[i].tenant = t;
    srv->keys_count = i + 1;
  }
  yajl_tree_free(root);
  if (srv->keys == NULL || srv->tenants == NULL) {
    fprintf(stderr, "es-ingestd: out of memory\n");
    return 1;
  }
  qsort(srv->keys, srv->keys_count, sizeof *srv->keys, key_cmp);
  for (size_t i = 1; i < srv->keys_count; i++)
    if (strcmp(srv->keys[i].key, srv->keys[i - 1].key) == 0) {
      fprintf(stderr, "es-ingestd: --keys %s: duplicate key\n", path);
      return 2;
    }
  return 0;
}

/* ----------------------------------------------------------------------
 * Start and finish
 * ---------------------------------------------------------------------- */

void ingest_config_defaults(ingest_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  /* One appending thread per core (at least 2, so that one batch is
   * encoded while another waits for its fsync): on 2 cores, 4 threads
   * cost 5-11% more CPU per request in switches (docs/INGEST.md). */
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  cfg->threads = cores < 2                   ? 2
                 : cores > SCHED_THREADS_MAX ? SCHED_THREADS_MAX
                                             : (int)cores;
  cfg->memory_budget_bytes = (size_t)256 << 20;
  cfg->tenant_bytes_max = cfg->memory_budget_bytes / 4;
  cfg->jobs_max = 128;
  cfg->tenant_jobs_max = cfg->jobs_max / 4;
  cfg->dedupe_window_us = INT64_C(7) * 24 * 3600 * 1000000;
  cfg->read_timeout_ms = 10000;
  cfg->idle_timeout_ms = 60000;
  cfg->drain_timeout_ms = 30000;
  cfg->connections_max = 10000;
  cfg->compact_segments = 8;
  cfg->replica_lag_max_us = INT64_C(300) * 1000000;
}

static int start(server *srv, uv_loop_t *loop, es_db *db, const char *host,
                 int port, int *bound_out) {
  int rc;
  if ((rc = load_keys(srv, srv->cfg.keys_path)))
    return rc;
  srv->db = db;
  srv->loop = loop;
  uint64_t seed = (uint64_t)ing_now_us() ^ ((uint64_t)getpid() << 32);
  srv->rng = seed ? seed : 1;
  if (sched_start(&srv->sched, loop, db, srv->cfg.threads, http_job_done,
                  srv)) {
    fprintf(stderr, "es-ingestd: cannot start writer threads\n");
    return 1;
  }
  if ((rc = http_listen(srv, host, port, bound_out)) != 0) {
    fprintf(stderr, "es-ingestd: cannot listen on %s: %s\n", srv->cfg.listen,
            uv_strerror(rc));
    sched_stop(&srv->sched);
    uv_close((uv_handle_t *)&srv->http.listener, NULL);
    srv->http.listener_open = 0;
    return 1;
  }
  return 0;
}

int ingest_start(server *srv, uv_loop_t *loop, es_db *db, const char *host,
                 int port, int *bound_out) {
  int rc = start(srv, loop, db, host, port, bound_out);
  if (rc != 0) /* nothing to drain: no writers, no listener left */
    srv->draining = srv->finished = 1;
  return rc;
}

/* The last step of a drain (cmd/ingestd/main.c), once no connection is
 * left. */
void server_maybe_finish(server *srv) {
  if (!srv->draining || srv->http.connections > 0 || srv->finished)
    return;
  srv->finished = 1;
  sched_stop(&srv->sched);
  if (srv->finish_fn)
    srv->finish_fn(srv->finish_ud);
}

ingest_server *ingest_new(const ingest_config *cfg, void (*finished)(void *ud),
                          void *ud) {
  server *srv = calloc(1, sizeof *srv);
  if (srv == NULL)
    return NULL;
  srv->cfg = *cfg;
  srv->finish_fn = finished;
  srv->finish_ud = ud;
  return srv;
}

void ingest_drain(server *srv) {
  http_drain(srv);
  server_maybe_finish(srv);
}

void ingest_close_all(server *srv) { http_close_all(srv); }

size_t ingest_tenants_count(const server *srv) { return srv->tenants_count; }

void ingest_free(server *srv) {
  if (srv == NULL)
    return;
  for (size_t i = 0; i < srv->keys_count; i++)
    free(srv->keys[i].key);
  free(srv->keys);
  free(srv->tenants);
  free(srv);
}
