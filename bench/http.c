/*
 * http.c -- `es-bench http`: HTTP ingest of Segment batches through
 * es-ingestd (issue 4), side by side with nginx answering the same POSTs
 * with an empty 200 (the HTTP ceiling of the machine).
 *
 * What this file owns:
 *  1. the request bodies: full batches of 100 events of the generated
 *     workload (workload order), as Segment /v1/batch bodies
 *     {"batch":[...],"writeKey":"<tenant>"}, every messageId "[<id>]-<n>"
 *     so the load generators make each request's ids unique (no event is
 *     a retry of another, so the server stores every one); and the keys
 *     file (write key = tenant id);
 *  2. running bench/http/load.mjs (node), which starts the servers and
 *     drives them with wrk (full load, closed loop) and with its own
 *     open-loop client at a fixed rate (half rate, burst), and reads its
 *     result;
 *  3. the check that nothing acknowledged was lost: after each
 *     es-ingestd run (stopped with SIGTERM) es_inspect counts the events
 *     in its data directory, which must lie between 100 x the 200s and
 *     100 x (the 200s + the requests left unanswered when the load
 *     generator stopped);
 *  4. the report: table and JSON.
 *
 * Durability: es-ingestd with its default --sync full, so a 200 is sent
 * only after every event of the request was fdatasync'ed by the store's
 * WAL; its data directory is under --dir (not tmpfs; the file system is
 * printed).  The load generators run on the same machine as the servers
 * and share its cores: the figures are for this whole machine.
 */
#include "bench.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#ifndef ES_BENCH_HTTP_DIR
#define ES_BENCH_HTTP_DIR "bench/http"
#endif

#define BODY_EVENTS 100
#define CONNECTIONS 32
#define BUDGET_MB 256
#define RUNS_MAX 20

typedef struct hbench {
  const bench_common *a;
  char dir[4096];
  char bodies[4200], keys[4200];
  char ingestd[4096], nginx[4096], wrk[4096], script[4200];
  size_t bodies_count;
  double body_bytes_mean;
  int duration_s, burst_s, warmup_s;
  yajl_val root;  /* load.mjs's result, parsed */
  char *raw_json; /* the same, as text */
  int stored_ok;  /* every stored-events check passed */
} hbench;

/* ------------------------------------------------------------------ */
/* Bodies and keys                                                     */
/* ------------------------------------------------------------------ */

static int write_body(FILE *f, const batch *b, char **scratch,
                      size_t *scratch_len, size_t *bytes_out) {
  long start = ftell(f);
  *bytes_out = 0;
  fputs("{\"batch\":[", f);
  for (size_t j = 0; j < b->count; j++) {
    es_event ev = b->events[j];
    char id[32];
    snprintf(id, sizeof id, "[<id>]-%zu", j);
    ev.message_id = id;
    FILE *m = open_memstream(scratch, scratch_len);
    if (!m || gen_write_ndjson(m, &ev, NULL) != 0) {
      if (m)
        fclose(m);
      return -1;
    }
    fclose(m);
    size_t n = strlen(*scratch);
    if (n && (*scratch)[n - 1] == '\n')
      n--;
    if (j)
      putc(',', f);
    fwrite(*scratch, 1, n, f);
    free(*scratch);
    *scratch = NULL;
  }
  fprintf(f, "],\"writeKey\":\"%s\"}\n", b->tenant);
  *bytes_out = (size_t)(ftell(f) - start - 1);
  return ferror(f) ? -1 : 0;
}

/* The bodies file and the keys file from the first `want` full batches
 * of the workload. */
static int write_inputs(hbench *hb, const workload *w, size_t want) {
  FILE *f = fopen(hb->bodies, "w");
  FILE *k = fopen(hb->keys, "w");
  char *scratch = NULL;
  size_t scratch_len = 0, total = 0;
  int rc = f && k ? 0 : -1;
  char seen[10000] = {0};
  int nkeys = 0;
  if (k)
    fputc('{', k);
  for (size_t i = 0; rc == 0 && i < w->batches_count && hb->bodies_count < want;
       i++) {
    const batch *b = &w->batches[i];
    if (b->count != BODY_EVENTS)
      continue;
    size_t bytes = 0;
    rc = write_body(f, b, &scratch, &scratch_len, &bytes);
    total += bytes;
    hb->bodies_count++;
    int t = atoi(b->tenant + 1);
    if (t >= 0 && t < 10000 && !seen[t]) {
      seen[t] = 1;
      fprintf(k, "%s\"%s\":\"%s\"", nkeys++ ? "," : "", b->tenant, b->tenant);
    }
  }
  if (k)
    fputs("}\n", k);
  if ((f && fclose(f) != 0) || (k && fclose(k) != 0))
    rc = -1;
  if (rc != 0 || hb->bodies_count == 0) {
    bench_fail("cannot write the request bodies under %s", hb->dir);
    return -1;
  }
  hb->body_bytes_mean = (double)total / (double)hb->bodies_count;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Finding the programs                                                */
/* ------------------------------------------------------------------ */

static int find_in_path(const char *name, const char *extra, char *out,
                        size_t cap) {
  const char *path = getenv("PATH");
  char buf[8192];
  snprintf(buf, sizeof buf, "%s:%s", path ? path : "", extra);
  for (char *save, *d = strtok_r(buf, ":", &save); d;
       d = strtok_r(NULL, ":", &save)) {
    snprintf(out, cap, "%s/%s", d, name);
    if (access(out, X_OK) == 0)
      return 0;
  }
  return -1;
}

static int find_programs(hbench *hb) {
  const char *env = getenv("ES_BENCH_INGESTD");
  if (env && *env) {
    snprintf(hb->ingestd, sizeof hb->ingestd, "%s", env);
  } else {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
      bench_fail("readlink /proc/self/exe: %s", strerror(errno));
      return -1;
    }
    self[n] = 0; /* .../build/bench/es-bench -> .../build/cmd/ingestd */
    snprintf(hb->ingestd, sizeof hb->ingestd, "%s/../cmd/ingestd/es-ingestd",
             dirname(self));
  }
  if (access(hb->ingestd, X_OK) != 0) {
    bench_fail("es-ingestd not found at %s (build it, or set "
               "ES_BENCH_INGESTD)",
               hb->ingestd);
    return -1;
  }
  if (find_in_path("nginx", "/usr/sbin:/sbin", hb->nginx, sizeof hb->nginx) ||
      find_in_path("wrk", "/usr/bin", hb->wrk, sizeof hb->wrk)) {
    bench_fail("nginx or wrk is missing (Debian packages nginx-light and "
               "wrk; scripts/deps.sh installs them)");
    return -1;
  }
  const char *d = getenv("ES_BENCH_HTTP_DIR");
  d = d && *d ? d : ES_BENCH_HTTP_DIR;
  snprintf(hb->script, sizeof hb->script, "%s/load.mjs", d);
  if (access(hb->script, R_OK) != 0) {
    bench_fail("the HTTP load driver %s is missing (set ES_BENCH_HTTP_DIR)",
               hb->script);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Reading load.mjs's result                                           */
/* ------------------------------------------------------------------ */

static yajl_val at(yajl_val v, const char *const *path) {
  return v ? yajl_tree_get(v, (const char **)path, yajl_t_any) : NULL;
}

static double num(yajl_val v, const char *k1, const char *k2, const char *k3) {
  const char *p[] = {k1, k2, k3, NULL};
  yajl_val x = at(v, p);
  return x && YAJL_IS_NUMBER(x) ? YAJL_GET_DOUBLE(x) : -1;
}

static const char *str(yajl_val v, const char *k) {
  const char *p[] = {k, NULL};
  yajl_val x = at(v, p);
  return x && YAJL_IS_STRING(x) ? YAJL_GET_STRING(x) : NULL;
}

/* A wrk run's figures. */
typedef struct wrk_fig {
  double rps, eps, p50_ms, p99_ms, ok, non2xx, sock_errors;
} wrk_fig;

static wrk_fig wrk_of(yajl_val w) {
  wrk_fig f;
  double s = num(w, "duration_us", NULL, NULL) / 1e6;
  double req = num(w, "requests", NULL, NULL);
  f.non2xx = num(w, "errors", "status", NULL);
  f.sock_errors =
      num(w, "errors", "connect", NULL) + num(w, "errors", "read", NULL) +
      num(w, "errors", "write", NULL) + num(w, "errors", "timeout", NULL);
  f.ok = req - f.non2xx;
  f.rps = s > 0 ? f.ok / s : 0;
  f.eps = f.rps * BODY_EVENTS;
  f.p50_ms = num(w, "latency_us", "p50", NULL) / 1e3;
  f.p99_ms = num(w, "latency_us", "p99", NULL) / 1e3;
  return f;
}

/* ------------------------------------------------------------------ */
/* The stored-events check                                             */
/* ------------------------------------------------------------------ */

static int count_event(void *ud, const es_file_info *fi) {
  if (fi->kind == ES_FILE_SEGMENT || fi->kind == ES_FILE_UNFLUSHED)
    *(uint64_t *)ud += fi->events;
  return 0;
}

/* Counts the events in an es-ingestd data directory and checks them
 * against the 200s (ok) and the requests without an answer (open). */
static int check_stored(hbench *hb, const char *what, const char *dir,
                        double ok, double open, double *stored_out) {
  uint64_t n = 0;
  int rc = es_inspect(dir, count_event, &n);
  *stored_out = (double)n;
  if (rc != ES_OK) {
    fprintf(stderr, "es-bench http: %s: es_inspect(%s): %s\n", what, dir,
            es_strerror(rc));
    hb->stored_ok = 0;
    return -1;
  }
  double lo = ok * BODY_EVENTS, hi = (ok + open) * BODY_EVENTS;
  if ((double)n < lo || (double)n > hi) {
    fprintf(stderr,
            "es-bench http: %s: %llu events stored, expected %.0f (the "
            "200s x %d) to %.0f (+ unanswered requests)\n",
            what, (unsigned long long)n, lo, BODY_EVENTS, hi);
    hb->stored_ok = 0;
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Report                                                              */
/* ------------------------------------------------------------------ */

static int exit_code(yajl_val v) { return (int)num(v, "exit", "code", NULL); }

static void print_cannon(const char *who, yajl_val c) {
  double s = num(c, "duration_s", NULL, NULL), ok = num(c, "ok", NULL, NULL);
  printf("  %-22s %9.0f %11.0f %11.0f %8.2f %8.2f %8.2f %9.0f %7.0f\n", who,
         num(c, "rate_asked", NULL, NULL), s > 0 ? ok / s : 0,
         s > 0 ? ok / s * BODY_EVENTS : 0, num(c, "latency_ms", "p50", NULL),
         num(c, "latency_ms", "p99", NULL), num(c, "latency_ms", "max", NULL),
         num(c, "non2xx", NULL, NULL),
         num(c, "errors", NULL, NULL) + num(c, "timeouts", NULL, NULL));
}

static void status_list(yajl_val c, char *buf, size_t cap) {
  const char *p[] = {"status", NULL};
  yajl_val s = at(c, p);
  size_t n = 0;
  buf[0] = 0;
  for (size_t i = 0; s && YAJL_IS_OBJECT(s) && i < s->u.object.len; i++)
    n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s: %.0f",
                          i ? ", " : "", s->u.object.keys[i],
                          YAJL_GET_DOUBLE(s->u.object.values[i]));
}

typedef struct summary {
  stat3 es_rps, es_eps, es_p50, es_p99, ng_rps, ng_p50, ng_p99;
  double half_rate, half_p99_ms, half_eps;
  double burst_peak_mb, burst_hwm_mb, burst_idle_mb;
} summary;

static void summarize(const hbench *hb, summary *sm) {
  const char *fe[] = {"full", "ingestd", NULL}, *fn[] = {"full", "nginx", NULL};
  yajl_val es = at(hb->root, fe), ng = at(hb->root, fn);
  double v[7][RUNS_MAX];
  int n = es && YAJL_IS_ARRAY(es) ? (int)es->u.array.len : 0;
  n = n > RUNS_MAX ? RUNS_MAX : n;
  for (int i = 0; i < n; i++) {
    wrk_fig a = wrk_of(es->u.array.values[i]);
    wrk_fig b = wrk_of(ng->u.array.values[i]);
    v[0][i] = a.rps, v[1][i] = a.eps, v[2][i] = a.p50_ms, v[3][i] = a.p99_ms;
    v[4][i] = b.rps, v[5][i] = b.p50_ms, v[6][i] = b.p99_ms;
  }
  sm->es_rps = stat3_of(v[0], n), sm->es_eps = stat3_of(v[1], n);
  sm->es_p50 = stat3_of(v[2], n), sm->es_p99 = stat3_of(v[3], n);
  sm->ng_rps = stat3_of(v[4], n), sm->ng_p50 = stat3_of(v[5], n);
  sm->ng_p99 = stat3_of(v[6], n);
  const char *hp[] = {"half", "ingestd", NULL}, *bp[] = {"burst", NULL};
  yajl_val h = at(hb->root, hp), b = at(hb->root, bp);
  double hs = num(h, "duration_s", NULL, NULL);
  sm->half_rate = num(hb->root, "half_rate", NULL, NULL);
  sm->half_p99_ms = num(h, "latency_ms", "p99", NULL);
  sm->half_eps = hs > 0 ? num(h, "ok", NULL, NULL) / hs * BODY_EVENTS : 0;
  sm->burst_peak_mb = num(b, "rss_peak_sampled_bytes", NULL, NULL) / 1048576;
  sm->burst_hwm_mb = num(b, "rss_hwm_bytes", NULL, NULL) / 1048576;
  sm->burst_idle_mb = num(b, "rss_idle_bytes", NULL, NULL) / 1048576;
}

static void print_table(const hbench *hb, const summary *sm) {
  const bench_common *a = hb->a;
  const char *fe[] = {"full", "ingestd", NULL}, *fn[] = {"full", "nginx", NULL};
  yajl_val es = at(hb->root, fe), ng = at(hb->root, fn);
  printf("es-bench http: POST /v1/batch, %d events per request (%zu "
         "different bodies from the generated workload, mean %.0f bytes), "
         "seed %llu\n",
         BODY_EVENTS, hb->bodies_count, hb->body_bytes_mean,
         (unsigned long long)a->seed);
  printf("data: %s (%s)\n", hb->dir, fs_type_name(hb->dir));
  printf("durability: es-ingestd --sync full (default): 200 only after "
         "every event of the request is fdatasync'ed (the store's WAL, "
         "group commit); default --threads (one per core, at least 2), "
         "--memory-budget %d MB; nginx: "
         "`return 200` (empty body, the request body read and "
         "discarded), 2 workers, no access log\n",
         BUDGET_MB);
  printf("load generators on the same machine (cores online: %ld), sharing "
         "its cores with the server under test\n\n",
         sysconf(_SC_NPROCESSORS_ONLN));
  printf("full load: wrk, 2 threads, %d connections (closed loop), %d s, "
         "%d runs\n",
         CONNECTIONS, hb->duration_s, a->runs);
  printf("  %-22s %12s %12s %12s %12s %9s %9s %8s %6s\n", "server", "req/s min",
         "median", "max", "events/s med", "p50 ms", "p99 ms", "non-2xx",
         "exit");
  for (int s = 0; s < 2; s++) {
    yajl_val arr = s ? ng : es;
    size_t n = arr && YAJL_IS_ARRAY(arr) ? arr->u.array.len : 0;
    double non2xx = 0;
    int bad_exit = 0;
    for (size_t i = 0; i < n; i++) {
      wrk_fig f = wrk_of(arr->u.array.values[i]);
      non2xx += f.non2xx + f.sock_errors;
      bad_exit |= exit_code(arr->u.array.values[i]) != 0;
    }
    stat3 r = s ? sm->ng_rps : sm->es_rps;
    printf("  %-22s %12.0f %12.0f %12.0f %12.0f %9.2f %9.2f %8.0f %6s\n",
           s ? "nginx (empty 200)" : "es-ingestd", r.min, r.med, r.max,
           s ? r.med * BODY_EVENTS : sm->es_eps.med,
           s ? sm->ng_p50.med : sm->es_p50.med,
           s ? sm->ng_p99.med : sm->es_p99.med, non2xx,
           bad_exit ? "FAIL" : "0");
  }
  printf("  es-ingestd / nginx requests/s (medians): %.2f; latencies are "
         "medians over the runs of each run's percentile\n\n",
         sm->ng_rps.med > 0 ? sm->es_rps.med / sm->ng_rps.med : 0);

  const char *hp[] = {"half", "ingestd", NULL}, *hn[] = {"half", "nginx", NULL};
  printf("half rate: open-loop client (load.mjs, node http) sending evenly "
         "spaced requests at %.0f req/s (half es-ingestd's median full-load "
         "req/s), at most %d connections, %d s after a %d s warm-up at the "
         "same rate (not counted); latency from each request's due time\n",
         sm->half_rate, CONNECTIONS, hb->duration_s, hb->warmup_s);
  printf("  %-22s %9s %11s %11s %8s %8s %8s %9s %7s\n", "server", "req/s",
         "2xx req/s", "events/s", "p50 ms", "p99 ms", "max ms", "non-2xx",
         "errors");
  print_cannon("es-ingestd", at(hb->root, hp));
  print_cannon("nginx (empty 200)", at(hb->root, hn));
  printf("  the client's own lateness in sending, included above (p50 / p99 "
         "ms): %.2f / %.2f beside es-ingestd, %.2f / %.2f beside nginx\n",
         num(at(hb->root, hp), "send_lag_ms", "p50", NULL),
         num(at(hb->root, hp), "send_lag_ms", "p99", NULL),
         num(at(hb->root, hn), "send_lag_ms", "p50", NULL),
         num(at(hb->root, hn), "send_lag_ms", "p99", NULL));

  const char *bp[] = {"burst", NULL};
  yajl_val b = at(hb->root, bp);
  char st[256];
  status_list(b, st, sizeof st);
  printf("\nburst: the same client at %.0f req/s (10x the half rate; it "
         "sent %.0f req/s), at most %d connections, %d s, against a fresh "
         "es-ingestd\n",
         num(b, "rate_asked", NULL, NULL), num(b, "rate_sent", NULL, NULL),
         CONNECTIONS * 10, hb->burst_s);
  print_cannon("es-ingestd", b);
  printf("  statuses: %s; requests sent %.0f, answered %.0f, the last "
         "answer %.2f s after the burst began (2xx req/s above: per second "
         "of sending)\n",
         st, num(b, "requests_sent", NULL, NULL),
         num(b, "responses", NULL, NULL), num(b, "answered_by_s", NULL, NULL));
  printf("  es-ingestd RSS: idle %.1f MB, peak %.1f MB sampled every 10 ms, "
         "VmHWM %.1f MB; --memory-budget %d MB (memtables, requests, messageId "
         "sets)\n\n",
         sm->burst_idle_mb, sm->burst_peak_mb, sm->burst_hwm_mb, BUDGET_MB);
  printf("stored events: %s (es_inspect of every es-ingestd data directory "
         "after SIGTERM: 100 x the 200s <= stored <= 100 x (200s + "
         "unanswered requests))\n",
         hb->stored_ok ? "all checks passed" : "CHECK FAILED");
  printf("issue 4 goals: >= 300000 events/s at full load: %s (median "
         "%.0f); p99 <= 20 ms at half rate: %s (p99 %.2f ms at %.0f "
         "events/s)\n",
         sm->es_eps.med >= 300000 ? "met" : "NOT met", sm->es_eps.med,
         sm->half_p99_ms >= 0 && sm->half_p99_ms <= 20 ? "met" : "NOT met",
         sm->half_p99_ms, sm->half_eps);
}

static void print_json(const void *arg) {
  const hbench *hb = arg;
  summary sm;
  summarize(hb, &sm);
  printf("{\"bench\":\"http\",\"events_per_request\":%d,\"bodies\":%zu,"
         "\"body_bytes_mean\":%.1f,\"seed\":%llu,\"runs\":%d,"
         "\"duration_s\":%d,\"warmup_s\":%d,\"burst_s\":%d,"
         "\"connections\":%d,"
         "\"memory_budget_mb\":%d,\"fs\":\"%s\",\"cores\":%ld,"
         "\"durability\":\"es-ingestd --sync full: 200 after fdatasync of "
         "every event\",\"stored_check\":%s,",
         BODY_EVENTS, hb->bodies_count, hb->body_bytes_mean,
         (unsigned long long)hb->a->seed, hb->a->runs, hb->duration_s,
         hb->warmup_s, hb->burst_s, CONNECTIONS, BUDGET_MB,
         fs_type_name(hb->dir), sysconf(_SC_NPROCESSORS_ONLN),
         hb->stored_ok ? "true" : "false");
  bench_json_stat3("ingestd_requests_per_s", sm.es_rps);
  putchar(',');
  bench_json_stat3("ingestd_events_per_s", sm.es_eps);
  putchar(',');
  bench_json_stat3("ingestd_p50_ms", sm.es_p50);
  putchar(',');
  bench_json_stat3("ingestd_p99_ms", sm.es_p99);
  putchar(',');
  bench_json_stat3("nginx_requests_per_s", sm.ng_rps);
  putchar(',');
  bench_json_stat3("nginx_p50_ms", sm.ng_p50);
  putchar(',');
  bench_json_stat3("nginx_p99_ms", sm.ng_p99);
  printf(",\"ingestd_over_nginx_requests\":%.4f,\"half_rate\":%.0f,"
         "\"half_rate_p99_ms\":%.3f,\"half_rate_events_per_s\":%.0f,"
         "\"burst_rss_idle_mb\":%.1f,\"burst_rss_peak_mb\":%.1f,"
         "\"burst_rss_hwm_mb\":%.1f,\"raw\":",
         sm.ng_rps.med > 0 ? sm.es_rps.med / sm.ng_rps.med : 0, sm.half_rate,
         sm.half_p99_ms, sm.half_eps, sm.burst_idle_mb, sm.burst_peak_mb,
         sm.burst_hwm_mb);
  fputs(hb->raw_json ? hb->raw_json : "null", stdout);
  printf("}\n");
}

/* ------------------------------------------------------------------ */
/* The command                                                         */
/* ------------------------------------------------------------------ */

/* Checks the stored events of every es-ingestd run of the result. */
static void check_all(hbench *hb) {
  hb->stored_ok = 1;
  const char *fe[] = {"full", "ingestd", NULL};
  yajl_val es = at(hb->root, fe);
  for (size_t i = 0; es && YAJL_IS_ARRAY(es) && i < es->u.array.len; i++) {
    yajl_val w = es->u.array.values[i];
    wrk_fig f = wrk_of(w);
    double stored;
    const char *dir = str(w, "dir");
    if (!dir || exit_code(w) != 0) {
      fprintf(stderr,
              "es-bench http: full load run %zu: es-ingestd did not "
              "exit 0 after SIGTERM\n",
              i + 1);
      hb->stored_ok = 0;
      continue;
    }
    /* wrk leaves at most one request per connection unanswered. */
    check_stored(hb, "full load", dir, f.ok, CONNECTIONS, &stored);
  }
  const char *hp[] = {"half", "ingestd", NULL}, *bp[] = {"burst", NULL};
  yajl_val c[2] = {at(hb->root, hp), at(hb->root, bp)};
  for (int i = 0; i < 2; i++) {
    const char *dir = str(c[i], "dir");
    double stored;
    if (!dir || exit_code(c[i]) != 0) {
      fprintf(stderr,
              "es-bench http: %s: es-ingestd did not exit 0 after "
              "SIGTERM\n",
              i ? "burst" : "half rate");
      hb->stored_ok = 0;
      continue;
    }
    /* every request sent, the half rate's warm-up included */
    double ok = num(c[i], "all", "ok", NULL);
    double open = num(c[i], "all", "requests_sent", NULL) -
                  num(c[i], "all", "responses", NULL);
    check_stored(hb, i ? "burst" : "half rate", dir, ok, open > 0 ? open : 0,
                 &stored);
  }
}

static int run_load(hbench *hb) {
  char runs[16], dur[16], burst[16], conns[16], budget[16], warm[16];
  snprintf(runs, sizeof runs, "%d", hb->a->runs);
  snprintf(warm, sizeof warm, "%d", hb->warmup_s);
  snprintf(dur, sizeof dur, "%d", hb->duration_s);
  snprintf(burst, sizeof burst, "%d", hb->burst_s);
  snprintf(conns, sizeof conns, "%d", CONNECTIONS);
  snprintf(budget, sizeof budget, "%d", BUDGET_MB);
  const char *args[] = {
      "--ingestd",   hb->ingestd,     "--nginx",    hb->nginx,   "--wrk",
      hb->wrk,       "--keys",        hb->keys,     "--bodies",  hb->bodies,
      "--dir",       hb->dir,         "--duration", dur,         "--runs",
      runs,          "--connections", conns,        "--burst-s", burst,
      "--budget-mb", budget,          "--warmup",   warm,        NULL};
  peer_proc p;
  if (node_start(&p, "the HTTP load driver (bench/http/load.mjs)", hb->script,
                 args) != 0 ||
      peer_finish(&p, "http", &hb->raw_json) != 0)
    return -1;
  char err[256];
  hb->root = yajl_tree_parse(hb->raw_json, err, sizeof err);
  if (!hb->root) {
    bench_fail("load.mjs's result is not JSON: %s", err);
    return -1;
  }
  return 0;
}

int cmd_http(const bench_common *a) {
  hbench *hb = calloc(1, sizeof *hb);
  if (!hb) {
    fprintf(stderr, "es-bench: out of memory\n");
    return 1;
  }
  hb->a = a;
  hb->duration_s = a->quick ? 2 : 10;
  hb->burst_s = a->quick ? 1 : 5;
  hb->warmup_s = a->quick ? 1 : 2;
  int made_base = 0, rc = -1;
  workload w;
  memset(&w, 0, sizeof w);
  if (a->runs > RUNS_MAX ||
      make_base_dir(a->dir, hb->dir, sizeof hb->dir, &made_base) != 0) {
    free(hb);
    return 1;
  }
  snprintf(hb->bodies, sizeof hb->bodies, "%s/bodies.jsonl", hb->dir);
  snprintf(hb->keys, sizeof hb->keys, "%s/keys.json", hb->dir);
  bench_fail_reset();
  if (find_programs(hb) != 0)
    goto out;
  if (workload_build(&w, a->events, a->seed, a->days, BODY_EVENTS) != 0) {
    bench_fail("out of memory generating the workload");
    goto out;
  }
  if (write_inputs(hb, &w, a->quick ? 16 : 64) != 0 || run_load(hb) != 0)
    goto out;
  check_all(hb);
  summary sm;
  summarize(hb, &sm);
  if (a->json) {
    print_json(hb);
  } else {
    print_table(hb, &sm);
    if (a->json_file)
      bench_print_to_file(a->json_file, print_json, hb);
  }
  rc = hb->stored_ok ? 0 : -1;
  if (!hb->stored_ok)
    bench_fail("an es-ingestd run lost or duplicated events (see above)");
out:
  if (rc != 0)
    fprintf(stderr, "es-bench http: %s\n", bench_last_error());
  workload_free(&w);
  if (hb->root)
    yajl_tree_free(hb->root);
  free(hb->raw_json);
  remove_base_dir(a->dir, hb->dir, made_base);
  free(hb);
  return rc == 0 ? 0 : 1;
}
