/*
 * webhook.c -- trigger firings POSTed to the URLs of --webhooks FILE, on
 * one thread of its own with libcurl, so that neither the loop nor the
 * library's threads ever wait for a remote server.
 *
 * FILE is a JSON object tenant -> {rule -> URL}, "*" standing for every
 * rule of the tenant:
 *
 *   {"acme": {"pricing-3x": "https://hooks.example/p3", "*": "https://..."}}
 *
 * A delivery is a POST of the firing as JSON ({"tenant","rule","person",
 * "ts","count","firedAt"}) answered by any 2xx.  A network error, a
 * timeout, a 429 or a 5xx is retried up to WEBHOOK_ATTEMPTS times in all,
 * after 0.25, 0.5, 1, 2 s; any other status ends it as failed.  While a
 * delivery waits for its retry, others go ahead (the queue is ordered by
 * due time).
 *
 * Invariants:
 *  1. The queue holds at most WEBHOOK_QUEUED_MAX deliveries; a firing
 *     that finds it full is dropped and counted, never waited for.
 *  2. Only the webhook thread calls libcurl; the loop only queues.
 *  3. At stop, the attempt in progress ends (each attempt is bounded by
 *     WEBHOOK_TIMEOUT_MS) and what is still queued is counted as dropped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <yajl_tree.h>

#include "common/svc.h"
#include "server.h"

#define WEBHOOK_QUEUED_MAX 1000
#define WEBHOOK_ATTEMPTS 5
#define WEBHOOK_TIMEOUT_MS 5000
#define WEBHOOK_CONNECT_TIMEOUT_MS 2000
#define WEBHOOK_BACKOFF_US 250000
#define WEBHOOKS_FILE_BYTES_MAX (1u << 20)

typedef struct hook {
  char tenant[ES_TENANT_LEN_MAX + 1];
  char *rule; /* "*" = every rule */
  char *url;
} hook;

typedef struct delivery {
  struct delivery *next;
  const char *url; /* borrowed from the hook table (lives until free) */
  char *body;
  int attempts;
  int64_t due_us;
} delivery;

typedef struct qd_webhooks {
  hook *hooks;
  size_t hooks_count;
  pthread_t thread;
  int started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  delivery *queue; /* unordered; the thread picks the earliest due */
  size_t queued;
  int stopping;
  uint64_t ok, failed, dropped, attempts; /* under mu */
} qd_webhooks;

/* ----------------------------------------------------------------------
 * The file
 * ---------------------------------------------------------------------- */

static int bad_file(const char *path, const char *why) {
  fprintf(stderr, "es-queryd: --webhooks %s: %s\n", path, why);
  return 2;
}

static void *worker(void *arg);

/* Reads FILE and starts the thread; 0 or an exit status (message given). */
int qd_webhooks_load(qd_server *srv, const char *path) {
  char yerr[256];
  char *text = svc_read_file(path, WEBHOOKS_FILE_BYTES_MAX, NULL);
  if (text == NULL) {
    fprintf(stderr, "es-queryd: cannot read --webhooks %s: %s\n", path,
            strerror(errno));
    return 2;
  }
  yajl_val root = yajl_tree_parse(text, yerr, sizeof yerr);
  free(text);
  if (!YAJL_IS_OBJECT(root)) {
    yajl_tree_free(root);
    return bad_file(path, "want a JSON object tenant -> {rule -> URL}");
  }
  qd_webhooks *wh = calloc(1, sizeof *wh);
  srv->webhooks = wh;
  if (wh == NULL) {
    yajl_tree_free(root);
    return bad_file(path, "out of memory");
  }
  for (size_t i = 0; i < root->u.object.len; i++) {
    yajl_val rules = root->u.object.values[i];
    const char *tenant = root->u.object.keys[i];
    if (!YAJL_IS_OBJECT(rules) || strlen(tenant) > ES_TENANT_LEN_MAX) {
      yajl_tree_free(root);
      return bad_file(path, "each tenant must map to an object rule -> URL");
    }
    for (size_t k = 0; k < rules->u.object.len; k++) {
      yajl_val url = rules->u.object.values[k];
      if (!YAJL_IS_STRING(url) || (strncmp(url->u.string, "http://", 7) &&
                                   strncmp(url->u.string, "https://", 8))) {
        yajl_tree_free(root);
        return bad_file(path, "each URL must be an http:// or https:// "
                              "string");
      }
      hook *h = realloc(wh->hooks, (wh->hooks_count + 1) * sizeof *h);
      if (h == NULL) {
        yajl_tree_free(root);
        return bad_file(path, "out of memory");
      }
      wh->hooks = h;
      h = &wh->hooks[wh->hooks_count++];
      snprintf(h->tenant, sizeof h->tenant, "%s", tenant);
      h->rule = strdup(rules->u.object.keys[k]);
      h->url = strdup(url->u.string);
      if (!h->rule || !h->url) {
        yajl_tree_free(root);
        return bad_file(path, "out of memory");
      }
    }
  }
  yajl_tree_free(root);
  pthread_mutex_init(&wh->mu, NULL);
  pthread_cond_init(&wh->cv, NULL);
  if (pthread_create(&wh->thread, NULL, worker, wh))
    return bad_file(path, "cannot start the webhook thread");
  wh->started = 1;
  return 0;
}

/* ----------------------------------------------------------------------
 * Queueing (loop thread)
 * ---------------------------------------------------------------------- */

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void enqueue(qd_webhooks *wh, const char *url, const qd_firing *f) {
  seg_buf b;
  seg_buf_init(&b);
  /* {"tenant":..., then the firing's own members */
  if (seg_buf_put(&b, "{\"tenant\":", 10) ||
      seg_buf_put_json_string(&b, f->tenant, strlen(f->tenant)) ||
      seg_buf_put(&b, ",", 1) || qd_firing_json(&b, f)) {
    seg_buf_free(&b);
    pthread_mutex_lock(&wh->mu);
    wh->dropped++;
    pthread_mutex_unlock(&wh->mu);
    return;
  }
  /* qd_firing_json wrote "{...}": splice out its opening brace */
  char *brace = strchr(b.data + 10, '{');
  memmove(brace, brace + 1, b.len - (size_t)(brace - b.data));
  b.len--;
  delivery *d = calloc(1, sizeof *d);
  pthread_mutex_lock(&wh->mu);
  if (d == NULL || wh->queued >= WEBHOOK_QUEUED_MAX || wh->stopping) {
    wh->dropped++; /* invariant 1 */
    pthread_mutex_unlock(&wh->mu);
    free(d);
    seg_buf_free(&b);
    return;
  }
  d->url = url;
  d->body = b.data; /* ownership moves */
  d->due_us = mono_us();
  d->next = wh->queue;
  wh->queue = d;
  wh->queued++;
  pthread_cond_signal(&wh->cv);
  pthread_mutex_unlock(&wh->mu);
}

void qd_webhooks_fire(qd_server *srv, const qd_firing *f) {
  qd_webhooks *wh = srv->webhooks;
  if (wh == NULL)
    return;
  for (size_t i = 0; i < wh->hooks_count; i++) {
    const hook *h = &wh->hooks[i];
    if (strcmp(h->tenant, f->tenant) == 0 &&
        (strcmp(h->rule, f->rule) == 0 || strcmp(h->rule, "*") == 0))
      enqueue(wh, h->url, f);
  }
}

/* ----------------------------------------------------------------------
 * Delivering (webhook thread)
 * ---------------------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return size * n;
}

/* One attempt: 1 delivered, 0 retry, -1 give up. */
static int attempt(CURL *curl, const delivery *d) {
  struct curl_slist *hdrs = NULL;
  long code = 0;
  char att[48];
  snprintf(att, sizeof att, "X-Es-Attempt: %d", d->attempts);
  hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
  hdrs = curl_slist_append(hdrs, att);
  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, d->url);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, d->body);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "es-queryd/0.1");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)WEBHOOK_TIMEOUT_MS);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   (long)WEBHOOK_CONNECT_TIMEOUT_MS);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK)
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(hdrs);
  if (rc != CURLE_OK)
    return 0;
  if (code >= 200 && code < 300)
    return 1;
  return code == 429 || code >= 500 ? 0 : -1;
}

/* The earliest-due delivery, unlinked, or NULL; *wait_us how long until
 * one is due.  Under mu. */
static delivery *take_due(qd_webhooks *wh, int64_t now, int64_t *wait_us) {
  delivery **best = NULL;
  for (delivery **p = &wh->queue; *p; p = &(*p)->next)
    if (best == NULL || (*p)->due_us < (*best)->due_us)
      best = p;
  if (best == NULL) {
    *wait_us = 1000000;
    return NULL;
  }
  if ((*best)->due_us > now) {
    *wait_us = (*best)->due_us - now;
    return NULL;
  }
  delivery *d = *best;
  *best = d->next;
  wh->queued--;
  return d;
}

static void *worker(void *arg) {
  qd_webhooks *wh = arg;
  CURL *curl = curl_easy_init();
  pthread_mutex_lock(&wh->mu);
  while (!wh->stopping) {
    int64_t wait_us;
    delivery *d = take_due(wh, mono_us(), &wait_us);
    if (d == NULL) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      int64_t ns = ts.tv_nsec + (wait_us % 1000000) * 1000;
      ts.tv_sec += (time_t)(wait_us / 1000000 + ns / 1000000000);
      ts.tv_nsec = (long)(ns % 1000000000);
      pthread_cond_timedwait(&wh->cv, &wh->mu, &ts);
      continue;
    }
    pthread_mutex_unlock(&wh->mu);
    d->attempts++;
    int r = curl ? attempt(curl, d) : -1;
    pthread_mutex_lock(&wh->mu);
    wh->attempts++;
    if (r == 0 && d->attempts < WEBHOOK_ATTEMPTS) {
      d->due_us = mono_us() + (WEBHOOK_BACKOFF_US << (d->attempts - 1));
      d->next = wh->queue;
      wh->queue = d;
      wh->queued++;
      continue;
    }
    if (r == 1)
      wh->ok++;
    else
      wh->failed++;
    if (r != 1) {
      char extra[96];
      snprintf(extra, sizeof extra, ",\"attempts\":%d", d->attempts);
      qd_log("warning", "webhook delivery failed", extra);
    }
    free(d->body);
    free(d);
  }
  pthread_mutex_unlock(&wh->mu);
  if (curl)
    curl_easy_cleanup(curl);
  return NULL;
}

/* Stops the thread (invariant 3) and frees everything. */
void qd_webhooks_stop(qd_server *srv) {
  qd_webhooks *wh = srv->webhooks;
  if (wh == NULL)
    return;
  if (wh->started) {
    pthread_mutex_lock(&wh->mu);
    wh->stopping = 1;
    pthread_cond_signal(&wh->cv);
    pthread_mutex_unlock(&wh->mu);
    pthread_join(wh->thread, NULL);
    pthread_mutex_destroy(&wh->mu);
    pthread_cond_destroy(&wh->cv);
  }
  for (delivery *d = wh->queue, *next; d; d = next) {
    next = d->next;
    wh->dropped++;
    free(d->body);
    free(d);
  }
  for (size_t i = 0; i < wh->hooks_count; i++) {
    free(wh->hooks[i].rule);
    free(wh->hooks[i].url);
  }
  free(wh->hooks);
  free(wh);
  srv->webhooks = NULL;
}

int qd_webhooks_metrics(qd_server *srv, seg_buf *out) {
  qd_webhooks *wh = srv->webhooks;
  char text[768];
  uint64_t ok = 0, failed = 0, dropped = 0, attempts = 0, queued = 0;
  if (wh) {
    pthread_mutex_lock(&wh->mu);
    ok = wh->ok, failed = wh->failed, dropped = wh->dropped;
    attempts = wh->attempts, queued = wh->queued;
    pthread_mutex_unlock(&wh->mu);
  }
  int n = snprintf(
      text, sizeof text,
      "# HELP es_queryd_webhook_deliveries_total Webhook deliveries by "
      "outcome.\n# TYPE es_queryd_webhook_deliveries_total counter\n"
      "es_queryd_webhook_deliveries_total{result=\"ok\"} %llu\n"
      "es_queryd_webhook_deliveries_total{result=\"failed\"} %llu\n"
      "es_queryd_webhook_deliveries_total{result=\"dropped\"} %llu\n"
      "# TYPE es_queryd_webhook_attempts_total counter\n"
      "es_queryd_webhook_attempts_total %llu\n"
      "# TYPE es_queryd_webhook_queued gauge\nes_queryd_webhook_queued %llu\n",
      (unsigned long long)ok, (unsigned long long)failed,
      (unsigned long long)dropped, (unsigned long long)attempts,
      (unsigned long long)queued);
  return seg_buf_put(out, text, (size_t)n);
}
