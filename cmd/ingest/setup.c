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

#include "admin.h"
#include "common/svc.h"
#include "forward.h"
#include "keys.h"
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
  if (srv->keys_count == 0)
    return NULL;
  const write_key *hit =
      bsearch(&k, srv->keys, srv->keys_count, sizeof k, key_cmp);
  return hit ? hit->tenant : NULL;
}

tenant *server_tenant_by_id(const server *srv, const char *id) {
  return svc_named_find(&srv->tenants, id);
}

/* The tenant named id, created when new; NULL when out of memory. */
static tenant *tenant_get(server *srv, const char *id) {
  return svc_named_get(&srv->tenants, id);
}

static void keys_free(write_key *keys, size_t n) {
  for (size_t i = 0; keys && i < n; i++)
    free(keys[i].key);
  free(keys);
}

/* Whether a write key of ks is also an admin token (either way round,
 * one would unlock the other's door: both loads refuse it). */
static int keys_overlap(char *const *tokens, size_t ntokens,
                        const ing_keyset *ks) {
  for (size_t i = 0; i < ntokens; i++)
    if (ing_keyset_find(ks, tokens[i]) != NULL)
      return 1;
  return 0;
}

/* Gives the store each tenant's tier (its keys' "durability", or the
 * server's), tenants without keys included (they fall back to the
 * server's).  Each tenant is set once, to its final tier. */
static void keys_apply_tiers(server *srv) {
  if (!srv->db || !srv->cfg.ship_wal)
    return;
  for (size_t i = 0; i < srv->tenants.count; i++)
    ((tenant *)srv->tenants.v[i])->durability = ES_DURABILITY_DEFAULT;
  for (size_t i = 0; i < srv->keys_count; i++)
    srv->keys[i].tenant->durability = srv->keys[i].durability;
  for (size_t i = 0; i < srv->tenants.count; i++) {
    tenant *t = srv->tenants.v[i];
    if (es_tenant_durability_set(srv->db, t->st.id, t->durability) != ES_OK)
      ing_log("error", "cannot set a tenant's durability tier", "");
  }
}

/*
 * Replaces the write keys with the JSON object text ("writeKey":
 * "tenant"), atomically: the document is checked whole first (keys.c),
 * and on any fault the old keys stay and err says why (never quoting a
 * key).  New tenants are created; a tenant left without keys stays (its
 * queued jobs finish) but no request can reach it.  With save_path the
 * text replaces that file durably (svc_write_file_atomic) before the keys
 * are swapped, so a restart or SIGHUP keeps them.  Loop thread only.  0,
 * -1 (a bad document) or -2 (it could not be saved; the old keys stay).
 */
int server_keys_replace(server *srv, const char *text, size_t len,
                        const char *save_path, char *err, size_t err_size) {
  ing_keyset ks;
  if (ing_keys_parse(text, &ks, err, err_size))
    return -1;
  if (keys_overlap(srv->admin_tokens, srv->admin_tokens_count, &ks)) {
    snprintf(err, err_size, "a write key is also an admin token");
    ing_keyset_free(&ks);
    return -1;
  }
  for (size_t i = 0; i < ks.count; i++)
    if (ks.keys[i].durability == ES_DURABILITY_S3 && !srv->cfg.ship_wal) {
      snprintf(err, err_size,
               "a tenant has \"durability\": \"s3\", which needs the WAL "
               "shipped: start es-ingestd with --durability s3 or --ship-wal "
               "on (and --replica)");
      ing_keyset_free(&ks);
      return -1;
    }
  size_t n = ks.count, tenants_before = srv->tenants.count;
  write_key *keys = calloc(n, sizeof *keys);
  for (size_t i = 0; keys && i < n; i++) {
    if ((keys[i].tenant = tenant_get(srv, ks.keys[i].tenant)) == NULL) {
      keys_free(keys, n);
      keys = NULL;
      break;
    }
    keys[i].primary = ks.keys[i].primary;
    keys[i].durability = ks.keys[i].durability;
    keys[i].key = ks.keys[i].key; /* moved: same order (sorted by key) */
    ks.keys[i].key = NULL;
  }
  ing_keyset_free(&ks);
  if (keys == NULL) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  if (save_path && svc_write_file_atomic(save_path, text, len)) {
    snprintf(err, err_size, "cannot save %s: %s", save_path, strerror(errno));
    keys_free(keys, n);
    return -2;
  }
  size_t kept = 0;
  for (size_t i = 0; i < n; i++)
    kept += server_tenant_for_key(srv, keys[i].key) == keys[i].tenant;
  char extra[192];
  snprintf(extra, sizeof extra,
           ",\"keys\":%zu,\"keys_unchanged\":%zu,\"tenants_new\":%zu,"
           "\"tenants\":%zu",
           n, kept, srv->tenants.count - tenants_before, srv->tenants.count);
  keys_free(srv->keys, srv->keys_count);
  srv->keys = keys;
  srv->keys_count = n;
  keys_apply_tiers(srv);
  if (srv->keys_loaded) /* the start's counts are in "listening" */
    ing_log("info", "write keys reloaded", extra);
  srv->keys_loaded = 1;
  return 0;
}

/* Loads the keys file; 0, or -1 with err set. */
static int keys_load_file(server *srv, const char *path, char *err,
                          size_t err_size) {
  size_t len;
  char *text = svc_read_file(path, KEYS_FILE_BYTES_MAX, &len);
  if (text == NULL) {
    snprintf(err, err_size, "cannot read %s: %s", path,
             strerror(errno ? errno : EFBIG));
    return -1;
  }
  int rc = server_keys_replace(srv, text, len, NULL, err, err_size);
  free(text);
  return rc;
}

/*
 * Replaces the admin tokens with those of path (keys.c: a JSON array of
 * strings, 16-200 bytes each), atomically as server_keys_replace, and
 * refuses a token that is also a write key.  0 or -1.
 */
int server_admin_tokens_load(server *srv, const char *path, char *err,
                             size_t err_size) {
  char why[256];
  char **tokens;
  size_t n;
  char *text = svc_read_file(path, KEYS_FILE_BYTES_MAX, NULL);
  if (text == NULL) {
    snprintf(err, err_size, "cannot read %s: %s", path,
             strerror(errno ? errno : EFBIG));
    return -1;
  }
  int rc = ing_tokens_parse(text, &tokens, &n, why, sizeof why);
  free(text);
  if (rc) {
    snprintf(err, err_size, "%s: %s", path, why);
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    if (server_tenant_for_key(srv, tokens[i]) != NULL) {
      snprintf(err, err_size, "%s: token #%zu is also a write key", path,
               i + 1);
      ing_tokens_free(tokens, n);
      return -1;
    }
  int reload = srv->admin_tokens != NULL;
  ing_tokens_free(srv->admin_tokens, srv->admin_tokens_count);
  srv->admin_tokens = tokens;
  srv->admin_tokens_count = n;
  char extra[64];
  snprintf(extra, sizeof extra, ",\"tokens\":%zu", n);
  if (reload)
    ing_log("info", "admin tokens reloaded", extra);
  return 0;
}

/* Loads the keys file and the admin tokens for a start; 0 or an exit
 * status after a line on stderr. */
int ingest_load(server *srv) {
  char err[512];
  if (srv->keys_loaded)
    return 0;
  if (keys_load_file(srv, srv->cfg.keys_path, err, sizeof err)) {
    fprintf(stderr, "es-ingestd: --keys %s: %s\n", srv->cfg.keys_path, err);
    return 2;
  }
  if (srv->cfg.admin_tokens_path &&
      server_admin_tokens_load(srv, srv->cfg.admin_tokens_path, err,
                               sizeof err)) {
    fprintf(stderr, "es-ingestd: --admin-tokens %s\n", err);
    return 2;
  }
  return 0;
}

/* SIGHUP: the keys file and the admin tokens again; a file that fails
 * its checks keeps the old set and is logged with the reason. */
void ingest_reload(server *srv) {
  char err[512], extra[640];
  if (keys_load_file(srv, srv->cfg.keys_path, err, sizeof err)) {
    snprintf(extra, sizeof extra, ",\"file\":\"--keys\",\"reason\":");
    size_t n = strlen(extra);
    svc_json_string(extra + n, sizeof extra - n, err);
    ing_log("warning", "reload refused: keeping the old write keys", extra);
  }
  if (srv->cfg.admin_tokens_path &&
      server_admin_tokens_load(srv, srv->cfg.admin_tokens_path, err,
                               sizeof err)) {
    snprintf(extra, sizeof extra, ",\"file\":\"--admin-tokens\",\"reason\":");
    size_t n = strlen(extra);
    svc_json_string(extra + n, sizeof extra - n, err);
    ing_log("warning", "reload refused: keeping the old admin tokens", extra);
  }
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
  cfg->access_log = 1;
  cfg->replica_lag_max_us = INT64_C(300) * 1000000;
  cfg->metrics_tenants = 1000;
  cfg->tenant_appends = 1;
}

/* --forward: the queue and its sender thread (forward.h).  0 or 1. */
static int forward_start(server *srv) {
  char dir[4096], err[512];
  const char *qdir = srv->cfg.forward_queue_dir;
  if (qdir == NULL) {
    snprintf(dir, sizeof dir, "%s/forward-queue", srv->cfg.data_dir);
    qdir = dir;
  }
  if (fwd_open(srv->cfg.forward_url, qdir, &srv->fwd, err, sizeof err)) {
    fprintf(stderr, "es-ingestd: --forward: %s\n", err);
    return 1;
  }
  return 0;
}

static int start(server *srv, uv_loop_t *loop, es_db *db, const char *host,
                 int port, int *bound_out) {
  int rc;
  if ((rc = ingest_load(srv)))
    return rc;
  srv->db = db;
  keys_apply_tiers(srv); /* the keys were loaded before the store */
  srv->loop = loop;
  uint64_t seed = (uint64_t)ing_now_us() ^ ((uint64_t)getpid() << 32);
  srv->rng = seed ? seed : 1;
  if (srv->cfg.forward_url && forward_start(srv) != 0)
    return 1;
  if (sched_start(&srv->sched, loop, db, srv->cfg.threads,
                  srv->cfg.tenant_appends, http_job_done, srv)) {
    fprintf(stderr, "es-ingestd: cannot start writer threads\n");
    return 1;
  }
  if (admin_eraser_start(srv)) {
    fprintf(stderr, "es-ingestd: cannot start the erase thread\n");
    sched_stop(&srv->sched);
    return 1;
  }
  if ((rc = http_listen(srv, host, port, bound_out)) != 0) {
    fprintf(stderr, "es-ingestd: cannot listen on %s: %s\n", srv->cfg.listen,
            uv_strerror(rc));
    admin_eraser_stop(srv);
    sched_stop(&srv->sched);
    uv_close((uv_handle_t *)&srv->http.listener, NULL);
    srv->http.listener_open = 0;
    return 1;
  }
  if (srv->fwd && http_forward_init(srv)) {
    fprintf(stderr, "es-ingestd: cannot start the forward queue's check\n");
    return 1;
  }
  return 0;
}

void ingest_set_cluster(server *srv, es_cluster *cluster) {
  srv->sched.cluster = cluster;
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
  admin_eraser_stop(srv);
  sched_stop(&srv->sched);
  http_forward_close(srv); /* the last completions' answers (no client) */
  fwd_stop(srv->fwd);      /* after the last completions queued their events */
  if (srv->finish_fn)
    srv->finish_fn(srv->finish_ud);
}

ingest_server *ingest_new(const ingest_config *cfg, void (*finished)(void *ud),
                          void *ud) {
  server *srv = calloc(1, sizeof *srv);
  if (srv == NULL)
    return NULL;
  srv->cfg = *cfg;
  srv->tenants.size = sizeof(tenant);
  srv->tenants.name_off = offsetof(tenant, st.id);
  srv->tenants.name_cap = sizeof(((tenant *)0)->st.id);
  srv->finish_fn = finished;
  srv->finish_ud = ud;
  return srv;
}

void ingest_drain(server *srv) {
  http_drain(srv);
  server_maybe_finish(srv);
}

void ingest_close_all(server *srv) { http_close_all(srv); }

size_t ingest_tenants_count(const server *srv) { return srv->tenants.count; }

void ingest_set_exporter(server *srv, es_exporter *ex) { srv->exporter = ex; }

void ingest_free(server *srv) {
  if (srv == NULL)
    return;
  fwd_free(srv->fwd);
  keys_free(srv->keys, srv->keys_count);
  ing_tokens_free(srv->admin_tokens, srv->admin_tokens_count);
  svc_named_free(&srv->tenants);
  free(srv);
}
