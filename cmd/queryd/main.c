/*
 * main.c -- es-queryd: flags, the tokens file, opening the store
 * (read-only beside es-ingestd, or writable in the embedded mode that
 * also serves ingest), start-up and the SIGTERM drain.  docs/QUERYD.md is
 * the operator's manual.
 *
 * Two ways to run:
 *
 *  - read-only (default): es-ingestd writes DIR; es-queryd opens it with
 *    es_options.read_only = 1 and the library's follower thread brings
 *    it every acknowledged append (include/eventstore.h, "Read-only
 *    handles").
 *  - embedded (--ingest-listen HOST:PORT --keys FILE): one process opens
 *    DIR writable and serves both es-ingestd's Segment API (the same code,
 *    cmd/ingest/) and the query API on one es_db handle.
 *
 * Shutdown (SIGTERM or SIGINT): stop accepting and close streams and idle
 * connections (both servers); requests in the thread pool finish and are
 * answered; after --drain-timeout-ms the rest are cut.  When nothing is
 * left the loop ends; the store is flushed (embedded) and closed; exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <yajl_tree.h>

#include "common/svc.h"
/* the ingest service, for the embedded mode (cmd/ingest/) */
#include "ingest/ingest.h"
#include "server.h"

#define TOKENS_FILE_BYTES_MAX (16u << 20)

static const char usage[] =
    "usage: es-queryd --data DIR --listen HOST:PORT --tokens FILE [flags]\n"
    "\n"
    "Query API, live event stream and dashboard over a libeventstore data\n"
    "directory that es-ingestd writes (docs/QUERYD.md).\n"
    "\n"
    "  --data DIR             data directory\n"
    "  --listen HOST:PORT     address of the query API and dashboard (port\n"
    "                         0: any free port, logged as \"listening\")\n"
    "  --tokens FILE          JSON object mapping bearer token -> tenant id\n"
    "  --webhooks FILE        JSON object tenant -> {rule or \"*\" -> URL}:\n"
    "                         trigger firings are POSTed there\n"
    "  --follow-interval-ms MS  read-only: how often new WAL bytes and\n"
    "                         manifests are looked for (default 50)\n"
    "  --live-window-s S      the live feed scans this many seconds back\n"
    "                         by event time (default 300)\n"
    "  --read-timeout-ms MS   time to read one request (default 10000)\n"
    "  --idle-timeout-ms MS   keep-alive idle time (default 60000)\n"
    "  --drain-timeout-ms MS  SIGTERM: longest wait for requests in flight\n"
    "                         (default 10000)\n"
    "  --max-connections N    (default 10000)\n"
    "  --max-streams N        open event streams (default 1000)\n"
    "\n"
    "Embedded mode: one process opens DIR writable and also serves the\n"
    "Segment ingest API of es-ingestd (then no es-ingestd may run on DIR):\n"
    "  --ingest-listen HOST:PORT  address of the ingest API\n"
    "  --keys FILE            es-ingestd's keys file (write key -> tenant)\n"
    "  --ingest-threads N     writer threads (default: es-ingestd's, one\n"
    "                         per core, at least 2)\n"
    "  --sync full|none       none: no fsync, tests/benchmarks only\n"
    "\n"
    "  --help, --version\n"
    "\n"
    "Exit status: 0 after a clean SIGTERM, 1 on a runtime error, 2 on bad\n"
    "usage.  Logs are JSON lines on stderr.\n";

static qd_server g_srv;

/* ----------------------------------------------------------------------
 * Logging and the clock
 * ---------------------------------------------------------------------- */

int64_t qd_now_us(void) { return svc_now_us(); }

void qd_log(const char *level, const char *msg, const char *extra) {
  svc_log("es-queryd", level, msg, extra);
}

static void lib_log(void *ud, int level, const char *msg) {
  (void)ud;
  qd_log(level == 0   ? "error"
         : level == 1 ? "warning"
                      : "info",
         msg, ",\"lib\":\"libeventstore\"");
}

#define die_usage(...) svc_usage_error("es-queryd", __VA_ARGS__)

/* ----------------------------------------------------------------------
 * Flags
 * ---------------------------------------------------------------------- */

static int parse_num(const char *flag, const char *v, long long lo,
                     long long hi, long long *out) {
  return svc_parse_num("es-queryd", flag, v, lo, hi, out);
}

/* A flag taking a number: its bounds and where it goes. */
typedef struct num_flag {
  const char *name;
  long long lo, hi;
  int64_t *i64;
  size_t *size;
  int *i;
} num_flag;

static int parse_args(int argc, char **argv, qd_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->follow_interval_ms = 50;
  cfg->live_window_s = 300;
  cfg->read_timeout_ms = 10000;
  cfg->idle_timeout_ms = 60000;
  cfg->drain_timeout_ms = 10000;
  cfg->connections_max = 10000;
  cfg->streams_max = 1000;
  cfg->ingest_threads = 0; /* es-ingestd's default */
  const num_flag nums[] = {
      {"--follow-interval-ms", 1, 60000, &cfg->follow_interval_ms, 0, 0},
      {"--live-window-s", 1, 86400, &cfg->live_window_s, 0, 0},
      {"--read-timeout-ms", 1, 3600000, &cfg->read_timeout_ms, 0, 0},
      {"--idle-timeout-ms", 1, 3600000, &cfg->idle_timeout_ms, 0, 0},
      {"--drain-timeout-ms", 1, 3600000, &cfg->drain_timeout_ms, 0, 0},
      {"--max-connections", 1, 1000000, 0, &cfg->connections_max, 0},
      {"--max-streams", 1, 100000, 0, &cfg->streams_max, 0},
      {"--ingest-threads", 1, 64, 0, 0, &cfg->ingest_threads},
  };
  for (int i = 1; i < argc; i++) {
    const char *a, *val;
    int st = svc_next_flag("es-queryd", usage, argc, argv, &i, &a, &val);
    if (st < 0)
      exit(0); /* --help or --version, printed */
    if (st > 0)
      return st;
    const num_flag *nf = NULL;
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++)
      if (strcmp(a, nums[k].name) == 0)
        nf = &nums[k];
    if (nf) {
      long long v = 0;
      if (parse_num(a, val, nf->lo, nf->hi, &v))
        return 2;
      if (nf->i64)
        *nf->i64 = v;
      else if (nf->size)
        *nf->size = (size_t)v;
      else
        *nf->i = (int)v;
    } else if (strcmp(a, "--data") == 0) {
      cfg->data_dir = val;
    } else if (strcmp(a, "--listen") == 0) {
      cfg->listen = val;
    } else if (strcmp(a, "--tokens") == 0) {
      cfg->tokens_path = val;
    } else if (strcmp(a, "--webhooks") == 0) {
      cfg->webhooks_path = val;
    } else if (strcmp(a, "--ingest-listen") == 0) {
      cfg->ingest_listen = val;
    } else if (strcmp(a, "--keys") == 0) {
      cfg->keys_path = val;
    } else if (strcmp(a, "--sync") == 0) {
      if (strcmp(val, "full") && strcmp(val, "none"))
        return die_usage("--sync wants full or none, not \"%s\"", val);
      cfg->sync_none = strcmp(val, "none") == 0;
    } else {
      return die_usage("unknown flag %s", a);
    }
  }
  if (!cfg->data_dir || !cfg->listen || !cfg->tokens_path)
    return die_usage("--data, --listen and --tokens are required");
  if (!cfg->ingest_listen != !cfg->keys_path)
    return die_usage("--ingest-listen and --keys go together (embedded "
                     "mode)");
  return 0;
}

/* "host:port", "[v6]:port" -> host (in buf) and port; 0 or 2. */
static int split_listen(const char *flag, const char *s, char *host,
                        size_t size, int *port) {
  return svc_parse_hostport("es-queryd", flag, s, host, size, port);
}

/* ----------------------------------------------------------------------
 * Tokens and tenants
 * ---------------------------------------------------------------------- */

static int token_cmp(const void *a, const void *b) {
  return strcmp(((const qd_token *)a)->token, ((const qd_token *)b)->token);
}

/* Compares without stopping at the first difference, so the time taken
 * does not tell an attacker how much of a guessed token was right. */
static int token_equal(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b), n = la > lb ? la : lb;
  unsigned char d = la != lb;
  for (size_t i = 0; i < n; i++)
    d |= (unsigned char)((i < la ? a[i] : 0) ^ (i < lb ? b[i] : 0));
  return d == 0;
}

/* Every token is compared (no early exit, no binary search), in constant
 * time each. */
qd_tenant *qd_tenant_for_token(const qd_server *srv, const char *token) {
  qd_tenant *hit = NULL;
  for (size_t i = 0; i < srv->tokens_count; i++)
    if (token_equal(srv->tokens[i].token, token))
      hit = srv->tokens[i].tenant;
  return hit;
}

qd_tenant *qd_tenant_by_id(const qd_server *srv, const char *id) {
  return svc_named_find(&srv->tenants, id);
}

/* The tenant id, created when new (kept sorted); NULL when out of
 * memory.  Tenants are never freed before the end: connections, ticks
 * and firings point at them, and a reload may drop their last token. */
static qd_tenant *tenant_get(qd_server *srv, const char *id) {
  return svc_named_get(&srv->tenants, id);
}

static void tokens_free(qd_token *tokens, size_t n) {
  for (size_t i = 0; tokens && i < n; i++)
    free(tokens[i].token);
  free(tokens);
}

/*
 * Replaces srv->tokens with those of path, atomically: the file is
 * checked whole, and on any fault the old tokens stay and err says why
 * (never quoting a token).  New tenants are created.  0, -1 (a bad
 * file) or -2 (an unreadable one: err names the flag and path).
 */
static int tokens_replace(qd_server *srv, const char *path, char *err,
                          size_t err_size) {
  char yerr[256] = "";
  char *text = svc_read_file(path, TOKENS_FILE_BYTES_MAX, NULL);
  if (text == NULL) {
    snprintf(err, err_size, "cannot read --tokens %s: %s", path,
             strerror(errno));
    return -2;
  }
  yajl_val root = yajl_tree_parse(text, yerr, sizeof yerr);
  free(text);
  size_t n = YAJL_IS_OBJECT(root) ? root->u.object.len : 0;
  int bad = n == 0;
  for (size_t i = 0; !bad && i < n; i++) {
    const char *tok = root->u.object.keys[i];
    yajl_val v = root->u.object.values[i];
    bad = !YAJL_IS_STRING(v) || !svc_tenant_ok(v->u.string) ||
          strlen(tok) < 8 || strlen(tok) > 200;
  }
  if (bad) {
    yajl_tree_free(root);
    snprintf(err, err_size,
             "want a non-empty JSON object of \"token\": \"tenant\", each "
             "token (8-200 bytes) mapping to a tenant id of 1-64 "
             "[A-Za-z0-9_-]");
    return -1;
  }
  size_t tenants_before = srv->tenants.count;
  qd_token *tokens = calloc(n, sizeof *tokens);
  for (size_t i = 0; tokens && i < n; i++) {
    tokens[i].token = strdup(root->u.object.keys[i]);
    tokens[i].tenant = tenant_get(srv, root->u.object.values[i]->u.string);
    if (tokens[i].token == NULL || tokens[i].tenant == NULL) {
      tokens_free(tokens, n);
      tokens = NULL;
    }
  }
  yajl_tree_free(root);
  if (tokens == NULL) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  qsort(tokens, n, sizeof *tokens, token_cmp);
  for (size_t i = 1; i < n; i++)
    if (strcmp(tokens[i].token, tokens[i - 1].token) == 0) {
      snprintf(err, err_size, "a token appears twice");
      tokens_free(tokens, n);
      return -1;
    }
  int reload = srv->tokens != NULL;
  tokens_free(srv->tokens, srv->tokens_count);
  srv->tokens = tokens;
  srv->tokens_count = n;
  char extra[128];
  snprintf(extra, sizeof extra, ",\"tokens\":%zu,\"tenants_new\":%zu", n,
           srv->tenants.count - tenants_before);
  if (reload) /* the start's counts are in the "listening" line */
    qd_log("info", "query tokens reloaded", extra);
  return 0;
}

/* Loads --tokens at the start; 0 or an exit code. */
static int load_tokens(qd_server *srv, const char *path) {
  char err[512];
  int rc = tokens_replace(srv, path, err, sizeof err);
  if (rc == -2)
    fprintf(stderr, "es-queryd: %s\n", err);
  else if (rc != 0)
    fprintf(stderr, "es-queryd: --tokens %s: %s\n", path, err);
  return rc == 0 ? 0 : 2;
}

/* SIGHUP: --tokens again (a bad file keeps the old tokens, logged), and
 * in embedded mode the ingest service's keys. */
static void on_sighup(uv_signal_t *h, int signum) {
  qd_server *srv = h->data;
  char err[512], extra[640];
  (void)signum;
  qd_log("info", "SIGHUP: reloading --tokens", "");
  if (tokens_replace(srv, srv->cfg.tokens_path, err, sizeof err)) {
    snprintf(extra, sizeof extra, ",\"file\":\"--tokens\",\"reason\":");
    size_t n = strlen(extra);
    svc_json_string(extra + n, sizeof extra - n, err);
    qd_log("warning", "reload refused: keeping the old query tokens", extra);
  }
  if (srv->ingest)
    ingest_reload(srv->ingest);
}

/* ----------------------------------------------------------------------
 * Shutdown
 * ---------------------------------------------------------------------- */

static void on_drain_timeout(uv_timer_t *t) {
  qd_server *srv = t->data;
  qd_log("warning", "drain timeout: closing the remaining connections", "");
  qd_http_close_all(srv);
  if (srv->ingest)
    ingest_close_all(srv->ingest);
}

/* The last step, once no connection and no work is left. */
void qd_maybe_finish(qd_server *srv) {
  if (!srv->draining || srv->http.connections > 0 || srv->works_pending > 0 ||
      srv->finished)
    return;
  srv->finished = 1;
  qd_live_stop(srv);
  uv_close((uv_handle_t *)&srv->sigterm, NULL);
  uv_close((uv_handle_t *)&srv->sigint, NULL);
  if (srv->sighup.data)
    uv_close((uv_handle_t *)&srv->sighup, NULL);
  uv_close((uv_handle_t *)&srv->drain_timer, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  qd_server *srv = h->data;
  char extra[64];
  if (srv->draining)
    return;
  snprintf(extra, sizeof extra, ",\"signal\":%d", signum);
  qd_log("info", "draining", extra);
  uv_timer_start(&srv->drain_timer, on_drain_timeout,
                 (uint64_t)srv->cfg.drain_timeout_ms, 0);
  if (srv->ingest)
    ingest_drain(srv->ingest); /* its writers are joined when it is idle */
  qd_http_drain(srv);
  qd_maybe_finish(srv);
}

static void free_server(qd_server *srv) {
  tokens_free(srv->tokens, srv->tokens_count);
  svc_named_free(&srv->tenants);
}

/* ----------------------------------------------------------------------
 * main
 * ---------------------------------------------------------------------- */

static int open_store(qd_server *srv) {
  es_options o;
  es_options_init(&o);
  o.data_dir = srv->cfg.data_dir;
  o.log.fn = lib_log;
  o.trigger.fn = qd_live_trigger;
  o.trigger.ud = srv;
  srv->read_only = srv->cfg.ingest_listen == NULL;
  if (srv->read_only) {
    o.read_only = 1;
    o.follow_interval_us = srv->cfg.follow_interval_ms * 1000;
  } else {
    o.sync_mode = srv->cfg.sync_none ? ES_SYNC_NONE : ES_SYNC_FULL;
  }
  int rc = es_open(&o, &srv->db);
  if (rc != ES_OK) {
    fprintf(stderr, "es-queryd: cannot open %s%s: %s: %s\n", o.data_dir,
            srv->read_only ? " read-only" : "", es_strerror(rc), es_errmsg());
    return 1;
  }
  return 0;
}

/* Embedded mode: es-ingestd's server on the same loop and handle. */
static int start_ingest(qd_server *srv, int *bound) {
  char host[256];
  int port, rc;
  ingest_config cfg;
  if ((rc = split_listen("--ingest-listen", srv->cfg.ingest_listen, host,
                         sizeof host, &port)))
    return rc;
  ingest_config_defaults(&cfg);
  cfg.data_dir = srv->cfg.data_dir;
  cfg.listen = srv->cfg.ingest_listen;
  cfg.keys_path = srv->cfg.keys_path;
  if (srv->cfg.ingest_threads > 0)
    cfg.threads = srv->cfg.ingest_threads;
  cfg.sync_none = srv->cfg.sync_none;
  /* drained and freed with the server, even when the start fails (its
   * handles close as the loop runs) */
  if ((srv->ingest = ingest_new(&cfg, NULL, NULL)) == NULL) {
    fprintf(stderr, "es-queryd: out of memory\n");
    return 1;
  }
  return ingest_start(srv->ingest, srv->loop, srv->db, host, port, bound);
}

static int run(qd_server *srv) {
  char host[256], extra[512];
  int port = 0, bound = 0, ingest_bound = 0, rc;
  if ((rc = split_listen("--listen", srv->cfg.listen, host, sizeof host,
                         &port)) ||
      (rc = load_tokens(srv, srv->cfg.tokens_path)) ||
      (srv->cfg.webhooks_path &&
       (rc = qd_webhooks_load(srv, srv->cfg.webhooks_path))))
    return rc;
  srv->loop = uv_default_loop();
  srv->started_us = qd_now_us();
  /* Before the store opens: a read-only handle's follower may fire a
   * trigger as soon as es_open returns. */
  if (qd_live_start(srv)) {
    fprintf(stderr, "es-queryd: cannot start the live stream\n");
    return 1;
  }
  uv_signal_init(srv->loop, &srv->sigterm);
  uv_signal_init(srv->loop, &srv->sigint);
  uv_timer_init(srv->loop, &srv->drain_timer);
  srv->sigterm.data = srv->sigint.data = srv->drain_timer.data = srv;
  rc = open_store(srv);
  if (rc == 0 && srv->cfg.ingest_listen)
    rc = start_ingest(srv, &ingest_bound);
  if (rc == 0 && (rc = qd_http_listen(srv, host, port, &bound)) != 0) {
    fprintf(stderr, "es-queryd: cannot listen on %s: %s\n", srv->cfg.listen,
            uv_strerror(rc));
    rc = 1;
  }
  if (rc != 0) { /* close what was started; the loop then ends */
    qd_http_drain(srv);
    if (srv->ingest)
      ingest_drain(srv->ingest);
    qd_maybe_finish(srv);
    uv_run(srv->loop, UV_RUN_DEFAULT);
    return rc;
  }
  uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
  uv_signal_start(&srv->sigint, on_signal, SIGINT);
  uv_signal_init(srv->loop, &srv->sighup);
  srv->sighup.data = srv;
  uv_signal_start(&srv->sighup, on_sighup, SIGHUP);
  snprintf(extra, sizeof extra,
           ",\"host\":\"%s\",\"port\":%d,\"mode\":\"%s\",\"tenants\":%zu,"
           "\"ingest_port\":%d",
           host, bound, srv->read_only ? "read-only" : "embedded",
           srv->tenants.count, ingest_bound);
  qd_log("info", "listening", extra);
  uv_run(srv->loop, UV_RUN_DEFAULT);
  return 0;
}

int main(int argc, char **argv) {
  qd_server *srv = &g_srv;
  srv->tenants.size = sizeof(qd_tenant);
  srv->tenants.name_off = offsetof(qd_tenant, id);
  srv->tenants.name_cap = sizeof(((qd_tenant *)0)->id);
  srv->tenants.sorted = 1;
  int rc = parse_args(argc, argv, &srv->cfg);
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (rc == 0)
    rc = run(srv);
  if (srv->db) {
    int frc = rc == 0 && !srv->read_only ? es_flush(srv->db, NULL) : ES_OK;
    int crc = es_close(srv->db);
    if (frc != ES_OK || crc != ES_OK) {
      qd_log("error", "flush/close failed", "");
      rc = 1;
    }
  }
  qd_webhooks_stop(srv);
  if (srv->loop) {
    qd_live_free(srv);
    uv_loop_close(srv->loop);
  }
  ingest_free(srv->ingest);
  free_server(srv);
  curl_global_cleanup();
  if (rc == 0)
    qd_log("info", "stopped", "");
  return rc;
}
