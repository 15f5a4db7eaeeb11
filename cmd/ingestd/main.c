/*
 * main.c -- es-ingestd: flags, the keys file, start-up (open the store,
 * reload the recent messageIds, start the writers, listen) and the
 * SIGTERM drain.  docs/INGEST.md is the operator's manual.
 *
 * Shutdown order (SIGTERM or SIGINT):
 *
 *  1. stop accepting; close idle connections (http_drain);
 *  2. requests already read finish: their jobs become durable and are
 *     answered, with "Connection: close";
 *  3. when no connection is left (or after --drain-timeout-ms, when the
 *     rest are cut), the writers finish the queue and are joined;
 *  4. the loop ends; es_flush seals the memtables, es_close; exit 0.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yajl_tree.h>

#include "server.h"

#define KEYS_FILE_BYTES_MAX (16u << 20)

static const char usage[] =
    "usage: es-ingestd --data DIR --listen HOST:PORT --keys FILE [flags]\n"
    "\n"
    "Segment-compatible HTTP ingest server (POST /v1/track ... /v1/batch):\n"
    "answers 200 once the request's events are durable in the store.\n"
    "\n"
    "  --data DIR            data directory (created if missing)\n"
    "  --listen HOST:PORT    address to listen on (port 0: any free port;\n"
    "                        the bound port is logged as \"listening\")\n"
    "  --keys FILE           JSON object mapping write key -> tenant id\n"
    "  --threads N           writer threads calling es_append (default 4)\n"
    "  --memory-budget MB    bodies + queued events; 503 above (default 256)\n"
    "  --tenant-share PCT    one tenant's share of the budget; 429 above\n"
    "                        (default 25)\n"
    "  --dedupe-ids N        messageIds remembered per tenant (default\n"
    "                        1000000)\n"
    "  --dedupe-hours H      at start-up, reload the messageIds of events\n"
    "                        with timestamp and receivedAt in the last H\n"
    "                        hours (default 24)\n"
    "  --read-timeout-ms MS  time to read one request (default 10000)\n"
    "  --idle-timeout-ms MS  keep-alive idle time (default 60000)\n"
    "  --drain-timeout-ms MS SIGTERM: longest wait for requests in flight\n"
    "                        (default 30000)\n"
    "  --max-connections N   (default 10000)\n"
    "  --sync full|none      none: no fsync, tests/benchmarks only\n"
    "  --help, --version\n"
    "\n"
    "Exit status: 0 after a clean SIGTERM, 1 on a runtime error, 2 on bad\n"
    "usage.  Logs are JSON lines on stderr.\n";

static server g_srv;

/* ----------------------------------------------------------------------
 * Logging and the clock
 * ---------------------------------------------------------------------- */

int64_t ing_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One line, one write(2): lines from several threads do not interleave. */
void ing_log(const char *level, const char *msg, const char *extra) {
  char iso[SEG_ISO8601_SIZE];
  seg_buf b;
  seg_buf_init(&b);
  seg_iso8601_format(ing_now_us(), iso, sizeof iso);
  if (seg_buf_put(&b, "{\"ts\":\"", 7) || seg_buf_put(&b, iso, strlen(iso)) ||
      seg_buf_put(&b, "\",\"level\":\"", 11) ||
      seg_buf_put(&b, level, strlen(level)) ||
      seg_buf_put(&b, "\",\"msg\":", 8) ||
      seg_buf_put_json_string(&b, msg, strlen(msg)) ||
      (extra && seg_buf_put(&b, extra, strlen(extra))) ||
      seg_buf_put(&b, "}\n", 2)) {
    seg_buf_free(&b);
    return;
  }
  ssize_t n = write(STDERR_FILENO, b.data, b.len);
  (void)n;
  seg_buf_free(&b);
}

static void lib_log(void *ud, int level, const char *msg) {
  (void)ud;
  ing_log(level == 0   ? "error"
          : level == 1 ? "warning"
                       : "info",
          msg, ",\"from\":\"libeventstore\"");
}

static int die_usage(const char *fmt, ...) {
  va_list ap;
  fputs("es-ingestd: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs(" (see --help)\n", stderr);
  return 2;
}

/* ----------------------------------------------------------------------
 * Flags
 * ---------------------------------------------------------------------- */

static int parse_num(const char *flag, const char *v, long long lo,
                     long long hi, long long *out) {
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (errno || end == v || *end != '\0' || x < lo || x > hi)
    return die_usage("%s wants a whole number in %lld..%lld, not \"%s\"", flag,
                     lo, hi, v);
  *out = x;
  return 0;
}

static int parse_args(int argc, char **argv, config *cfg) {
  long long v;
  memset(cfg, 0, sizeof *cfg);
  cfg->threads = 4;
  cfg->memory_budget_bytes = (size_t)256 << 20;
  long long share_pct = 25;
  cfg->dedupe_ids_max = 1000000;
  cfg->dedupe_window_us = INT64_C(24) * 3600 * 1000000;
  cfg->read_timeout_ms = 10000;
  cfg->idle_timeout_ms = 60000;
  cfg->drain_timeout_ms = 30000;
  cfg->connections_max = 10000;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      exit(0);
    }
    if (strcmp(a, "--version") == 0) {
      printf("es-ingestd %d.%d.%d\n", ES_VERSION_MAJOR, ES_VERSION_MINOR,
             ES_VERSION_PATCH);
      exit(0);
    }
    if (strncmp(a, "--", 2) != 0)
      return die_usage("unexpected argument \"%s\"", a);
    if (i + 1 >= argc)
      return die_usage("%s needs a value", a);
    const char *val = argv[++i];
    if (strcmp(a, "--data") == 0)
      cfg->data_dir = val;
    else if (strcmp(a, "--listen") == 0)
      cfg->listen = val;
    else if (strcmp(a, "--keys") == 0)
      cfg->keys_path = val;
    else if (strcmp(a, "--sync") == 0) {
      if (strcmp(val, "full") && strcmp(val, "none"))
        return die_usage("--sync wants full or none, not \"%s\"", val);
      cfg->sync_none = strcmp(val, "none") == 0;
    } else if (strcmp(a, "--threads") == 0) {
      if (parse_num(a, val, 1, SCHED_THREADS_MAX, &v))
        return 2;
      cfg->threads = (int)v;
    } else if (strcmp(a, "--memory-budget") == 0) {
      if (parse_num(a, val, 1, 1 << 20, &v))
        return 2;
      cfg->memory_budget_bytes = (size_t)v << 20;
    } else if (strcmp(a, "--tenant-share") == 0) {
      if (parse_num(a, val, 1, 100, &share_pct))
        return 2;
    } else if (strcmp(a, "--dedupe-ids") == 0) {
      if (parse_num(a, val, 1, 1LL << 32, &v))
        return 2;
      cfg->dedupe_ids_max = (size_t)v;
    } else if (strcmp(a, "--dedupe-hours") == 0) {
      if (parse_num(a, val, 0, 24 * 365, &v))
        return 2;
      cfg->dedupe_window_us = v * 3600 * INT64_C(1000000);
    } else if (strcmp(a, "--read-timeout-ms") == 0) {
      if (parse_num(a, val, 1, 3600000, &v))
        return 2;
      cfg->read_timeout_ms = v;
    } else if (strcmp(a, "--idle-timeout-ms") == 0) {
      if (parse_num(a, val, 1, 3600000, &v))
        return 2;
      cfg->idle_timeout_ms = v;
    } else if (strcmp(a, "--drain-timeout-ms") == 0) {
      if (parse_num(a, val, 1, 3600000, &v))
        return 2;
      cfg->drain_timeout_ms = v;
    } else if (strcmp(a, "--max-connections") == 0) {
      if (parse_num(a, val, 1, 1000000, &v))
        return 2;
      cfg->connections_max = (size_t)v;
    } else {
      return die_usage("unknown flag %s", a);
    }
  }
  if (!cfg->data_dir || !cfg->listen || !cfg->keys_path)
    return die_usage("--data, --listen and --keys are required");
  cfg->tenant_bytes_max =
      (size_t)((double)cfg->memory_budget_bytes * (double)share_pct / 100.0);
  return 0;
}

/* "host:port", "[v6]:port" -> host (in buf) and port; 0 or 2. */
static int split_listen(const char *s, char *host, size_t size, int *port) {
  const char *colon = strrchr(s, ':');
  long long p;
  if (colon == NULL || colon == s)
    return die_usage("--listen wants HOST:PORT, not \"%s\"", s);
  size_t n = (size_t)(colon - s);
  if (s[0] == '[' && n >= 2 && s[n - 1] == ']')
    s++, n -= 2;
  if (n >= size)
    return die_usage("--listen host too long");
  memcpy(host, s, n);
  host[n] = '\0';
  if (parse_num("--listen port", colon + 1, 0, 65535, &p))
    return 2;
  *port = (int)p;
  return 0;
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

static int valid_tenant(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > ES_TENANT_LEN_MAX)
    return 0;
  return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789_-") == n;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  char *buf = malloc(KEYS_FILE_BYTES_MAX + 1);
  size_t n = buf ? fread(buf, 1, KEYS_FILE_BYTES_MAX + 1, f) : 0;
  fclose(f);
  if (buf == NULL || n > KEYS_FILE_BYTES_MAX) {
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

/* Loads the keys file into srv->keys and srv->tenants; 0 or exit code. */
static int load_keys(server *srv, const char *path) {
  char yerr[256];
  size_t len;
  char *text = read_file(path, &len);
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
    if (!YAJL_IS_STRING(v) || !valid_tenant(v->u.string) || key[0] == '\0') {
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
      ing_dedupe_init(&t->dedupe, srv->cfg.dedupe_ids_max);
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

/*
 * Reloads each tenant's recent messageIds from the store with es_scan, so
 * that a retry after a crash or restart is still recognised.  The public
 * API scans by event time; receive time is filtered here.
 */
static int seed_dedupe(server *srv) {
  int64_t since = ing_now_us() - srv->cfg.dedupe_window_us;
  uint64_t total = 0;
  for (size_t i = 0; i < srv->tenants_count; i++) {
    tenant *t = &srv->tenants[i];
    es_scan_spec spec;
    es_cursor *cur;
    es_event ev;
    int rc;
    es_scan_spec_init(&spec);
    spec.tenant = t->st.id;
    spec.from_us = since;
    if ((rc = es_scan(srv->db, &spec, &cur)) != ES_OK)
      return rc;
    while ((rc = es_cursor_next(cur, &ev)) == 1)
      if (ev.message_id && ev.recv_us >= since) {
        if (ing_dedupe_add(&t->dedupe, ing_dedupe_hash(ev.message_id))) {
          rc = ES_ENOMEM;
          break;
        }
        total++;
      }
    es_cursor_close(cur);
    if (rc < 0)
      return rc;
  }
  char extra[96];
  snprintf(extra, sizeof extra, ",\"ids\":%llu,\"tenants\":%zu",
           (unsigned long long)total, srv->tenants_count);
  ing_log("info", "dedupe set reloaded", extra);
  return ES_OK;
}

/* ----------------------------------------------------------------------
 * Shutdown
 * ---------------------------------------------------------------------- */

static int g_finished;

static void on_drain_timeout(uv_timer_t *t) {
  server *srv = t->data;
  ing_log("warning", "drain timeout: closing the remaining connections", "");
  http_close_all(srv);
}

/* Step 3 of the shutdown, once no connection is left. */
void server_maybe_finish(server *srv) {
  if (!srv->draining || srv->connections > 0 || g_finished)
    return;
  g_finished = 1;
  sched_stop(&srv->sched);
  uv_close((uv_handle_t *)&srv->sigterm, NULL);
  uv_close((uv_handle_t *)&srv->sigint, NULL);
  uv_close((uv_handle_t *)&srv->drain_timer, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  server *srv = h->data;
  if (srv->draining)
    return;
  char extra[64];
  snprintf(extra, sizeof extra, ",\"signal\":%d", signum);
  ing_log("info", "draining", extra);
  http_drain(srv);
  uv_timer_start(&srv->drain_timer, on_drain_timeout,
                 (uint64_t)srv->cfg.drain_timeout_ms, 0);
  server_maybe_finish(srv);
}

static void free_server(server *srv) {
  for (size_t i = 0; i < srv->keys_count; i++)
    free(srv->keys[i].key);
  for (size_t i = 0; i < srv->tenants_count; i++)
    ing_dedupe_free(&srv->tenants[i].dedupe);
  free(srv->keys);
  free(srv->tenants);
}

/* ----------------------------------------------------------------------
 * main
 * ---------------------------------------------------------------------- */

static int run(server *srv) {
  char host[256], extra[512];
  int port = 0, bound = 0, rc;
  if ((rc = split_listen(srv->cfg.listen, host, sizeof host, &port)) ||
      (rc = load_keys(srv, srv->cfg.keys_path)))
    return rc;
  es_options o;
  es_options_init(&o);
  o.data_dir = srv->cfg.data_dir;
  o.sync_mode = srv->cfg.sync_none ? ES_SYNC_NONE : ES_SYNC_FULL;
  o.log.fn = lib_log;
  if ((rc = es_open(&o, &srv->db)) != ES_OK) {
    fprintf(stderr, "es-ingestd: cannot open %s: %s: %s\n", o.data_dir,
            es_strerror(rc), es_errdetail());
    return 1;
  }
  if ((rc = seed_dedupe(srv)) != ES_OK) {
    fprintf(stderr, "es-ingestd: reloading messageIds: %s: %s\n",
            es_strerror(rc), es_errdetail());
    return 1;
  }
  srv->loop = uv_default_loop();
  uint64_t seed = (uint64_t)ing_now_us() ^ ((uint64_t)getpid() << 32);
  srv->rng = seed ? seed : 1;
  if (sched_start(&srv->sched, srv->loop, srv->db, srv->cfg.threads,
                  http_job_done, srv)) {
    fprintf(stderr, "es-ingestd: cannot start writer threads\n");
    return 1;
  }
  if ((rc = http_listen(srv, host, port, &bound)) != 0) {
    fprintf(stderr, "es-ingestd: cannot listen on %s: %s\n", srv->cfg.listen,
            uv_strerror(rc));
    sched_stop(&srv->sched);
    uv_close((uv_handle_t *)&srv->listener, NULL);
    uv_run(srv->loop, UV_RUN_DEFAULT);
    return 1;
  }
  uv_signal_init(srv->loop, &srv->sigterm);
  uv_signal_init(srv->loop, &srv->sigint);
  uv_timer_init(srv->loop, &srv->drain_timer);
  srv->sigterm.data = srv->sigint.data = srv->drain_timer.data = srv;
  uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
  uv_signal_start(&srv->sigint, on_signal, SIGINT);
  snprintf(extra, sizeof extra,
           ",\"host\":\"%s\",\"port\":%d,\"threads\":%d,\"tenants\":%zu,"
           "\"memory_budget_bytes\":%zu",
           host, bound, srv->cfg.threads, srv->tenants_count,
           srv->cfg.memory_budget_bytes);
  ing_log("info", "listening", extra);
  uv_run(srv->loop, UV_RUN_DEFAULT);
  return 0;
}

int main(int argc, char **argv) {
  server *srv = &g_srv;
  int rc = parse_args(argc, argv, &srv->cfg);
  signal(SIGPIPE, SIG_IGN);
  if (rc == 0)
    rc = run(srv);
  if (srv->db) {
    int frc = rc == 0 ? es_flush(srv->db, NULL) : ES_OK;
    int crc = es_close(srv->db);
    if (frc != ES_OK || crc != ES_OK) {
      ing_log("error", "flush/close failed", "");
      rc = 1;
    }
  }
  if (srv->loop)
    uv_loop_close(srv->loop);
  free_server(srv);
  if (rc == 0)
    ing_log("info", "stopped", "");
  return rc;
}
