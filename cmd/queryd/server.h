/*
 * server.h -- the state of one es-queryd process, shared by its files.
 *
 * Threads:
 *  - the libuv loop thread owns everything here unless said otherwise;
 *  - libuv's thread pool runs the library calls of requests and of the
 *    live ticks (api.c, live.c); a work item only reads the immutable
 *    tenant table and writes its own qd_work;
 *  - the library calls qd_live_trigger (es_trigger_options) on its own
 *    threads: it touches only srv->trig (under trig.mu) and uv_async_send;
 *  - the webhook thread (webhook.c) owns its queue under its own mutex.
 *
 * Invariants:
 *  1. A request acts on the tenant of its token and on nothing else: the
 *     tenant is taken from the token table, never from the request.
 *  2. A work item outlives its connection if the client goes away: the
 *     work's conn is cleared when the connection closes.
 *  3. Everything the library returns as owned is released in the work
 *     function that received it.
 */
#ifndef QUERYD_SERVER_H
#define QUERYD_SERVER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/hconn.h"
#include "common/prom.h"
#include "common/segment_json.h"
#include "common/svc.h"
#include "eventstore.h"

#define QD_TYPES 7         /* es_type values 1..6, index 0 unused */
#define QD_FIRINGS_KEPT 50 /* per tenant, for streams that connect */
#define QD_TRIGGERS_QUEUED_MAX 10000
#define QD_FEED_EVENTS_MAX 20 /* events per feed message */
#define QD_FEED_SEEN 512
#define QD_PERSON_BYTES_MAX 512 /* path parameters (person, rule) */

struct qd_conn;
struct qd_webhooks;

/* One trigger firing, owned strings. */
typedef struct qd_firing {
  struct qd_firing *next;
  char tenant[ES_TENANT_LEN_MAX + 1];
  char rule[ES_TENANT_LEN_MAX + 1]; /* rule names are [A-Za-z0-9_-]{1,64} */
  char *person;
  int64_t ts_us, fired_us;
  uint32_t count;
} qd_firing;

typedef struct qd_tenant {
  char id[ES_TENANT_LEN_MAX + 1];
  struct qd_conn *streams; /* SSE subscribers, via qd_conn.stream_next */
  size_t streams_count;
  /* live ticks (live.c) */
  int tick_busy;   /* a tick's work is in the pool */
  int have_totals; /* totals[] holds a previous tick */
  uint64_t totals[QD_TYPES];
  int64_t base_us, base_set_us; /* counts are since base_us */
  int64_t feed_after_us;        /* the feed shows events received after this */
  uint64_t feed_seen[QD_FEED_SEEN]; /* messageId hashes sent lately */
  size_t feed_seen_next;
  /* the latest firings, oldest first (a ring) */
  qd_firing *firings[QD_FIRINGS_KEPT];
  size_t firings_head, firings_count;
} qd_tenant;

typedef struct qd_token {
  char *token;
  qd_tenant *tenant;
} qd_token;

typedef struct qd_config {
  const char *data_dir, *listen, *tokens_path, *webhooks_path;
  const char *ingest_listen, *keys_path; /* embedded mode */
  int64_t follow_interval_ms;
  int64_t read_timeout_ms, idle_timeout_ms, drain_timeout_ms;
  int64_t live_window_s; /* the feed's scan window */
  size_t connections_max, streams_max;
  int sync_none, ingest_threads;
} qd_config;

typedef struct qd_metrics {
  uint64_t requests[6]; /* by status class: 0 other, 2xx, 3xx, 4xx, 5xx; [5]
                           401 */
  prom_hist calls;      /* library calls of requests, metrics.c's buckets */
  uint64_t query_errors;
  uint64_t triggers, triggers_dropped;
  uint64_t stream_messages, streams_cut;
  uint64_t ticks, tick_errors;
} qd_metrics;

typedef struct qd_server {
  qd_config cfg;
  uv_loop_t *loop;
  es_db *db;
  int read_only;
  int64_t started_us;
  /* Every tenant --tokens named since the start, sorted by id, each
   * allocated once (connections, ticks and firings point at them); a
   * SIGHUP reload adds tenants and replaces tokens, never frees one. */
  svc_named tenants; /* qd_tenant objects, sorted by id */
  qd_token *tokens;  /* sorted by token */
  size_t tokens_count;
  hconn_host http;                     /* listener and connections (hconn.h) */
  uv_signal_t sigterm, sigint, sighup; /* sighup.data: set once started */
  uv_timer_t tick_timer, drain_timer;
  int draining, finished;
  size_t streams, works_pending;
  qd_metrics m;
  struct {
    pthread_mutex_t mu;
    qd_firing *head, *tail; /* from library threads to the loop */
    size_t count;
    uint64_t dropped;
    uv_async_t async;
  } trig;
  struct qd_webhooks *webhooks; /* NULL without --webhooks */
  struct server *ingest;        /* embedded mode (ingest/ingest.h); or NULL */
} qd_server;

/* main.c */
qd_tenant *qd_tenant_for_token(const qd_server *srv, const char *token);
qd_tenant *qd_tenant_by_id(const qd_server *srv, const char *id);
void qd_log(const char *level, const char *msg, const char *extra);
int64_t qd_now_us(void);
void qd_maybe_finish(qd_server *srv);

/* http.c: connections and answers */
typedef struct qd_conn qd_conn;
int qd_http_listen(qd_server *srv, const char *host, int port, int *port_out);
void qd_http_drain(qd_server *srv);
void qd_http_close_all(qd_server *srv);
void qd_respond(qd_conn *c, int status, const char *type, const char *body,
                size_t len, const char *extra_headers);
void qd_respond_error(qd_conn *c, int status, const char *msg);
/* The same, with allow (may be NULL) as a 405's Allow header. */
void qd_respond_allow(qd_conn *c, int status, const char *msg,
                      const char *allow);
/* Turns the connection into an event stream (headers sent) on tenant t. */
int qd_stream_start(qd_conn *c, qd_tenant *t);
/* Queues raw SSE text on a stream; cuts a stream that does not read. */
void qd_stream_send(qd_conn *c, const char *data, size_t len);
qd_conn *qd_conn_stream_next(qd_conn *c);
void qd_conn_set_work(qd_conn *c, void *work);

/* Percent-decodes n bytes of src into dst (size n+1); -1 on a bad escape
 * or an encoded NUL. */
int qd_url_decode(const char *src, size_t n, char *dst);

/* api.c: the route table and the /v1 calls */
typedef struct qd_request {
  int method;               /* llhttp's */
  const char *path, *query; /* raw path; raw query (after '?') or "" */
  const char *body;
  size_t body_len;
  const char *bearer; /* the token, from the header or ?token= */
} qd_request;
void qd_api_dispatch(qd_server *srv, qd_conn *c, const qd_request *rq);
void qd_api_work_detach(void *work); /* the connection closed */

/* live.c: triggers, per-second counts, the feed */
int qd_live_start(qd_server *srv);
void qd_live_stop(qd_server *srv);
void qd_live_trigger(void *ud, const es_trigger *trigger); /* any thread */
void qd_live_subscribed(qd_server *srv, qd_conn *c, qd_tenant *t);
/* Appends {"events":[...]} (seg_event_write objects, newest first, at
 * most limit) of the tenant's events in the live window received after
 * recv_after_us; *max_recv_out (may be NULL) gets the newest receive
 * time seen.  With seen (the tick's tenant), events whose messageId
 * hash is in its ring are skipped and the others added.  Any thread.
 * Returns the number of events written, or a negative library status. */
int qd_latest_events(qd_server *srv, const char *tenant, size_t limit,
                     int64_t recv_after_us, qd_tenant *seen, seg_buf *out,
                     int64_t *max_recv_out);
/* The same for events of event time in [from_us, to_us), the newest
 * `limit` received (GET /v1/events: the dashboard's bounded sample). */
int qd_range_events(qd_server *srv, const char *tenant, int64_t from_us,
                    int64_t to_us, size_t limit, int64_t recv_after_us,
                    qd_tenant *seen, seg_buf *out, int64_t *max_recv_out);
void qd_live_free(qd_server *srv); /* after es_close */
int qd_firing_json(seg_buf *b, const qd_firing *f);

/* webhook.c */
int qd_webhooks_load(qd_server *srv, const char *path);
void qd_webhooks_fire(qd_server *srv, const qd_firing *f);
void qd_webhooks_stop(qd_server *srv);
int qd_webhooks_metrics(qd_server *srv, seg_buf *out);

/* metrics.c */
void qd_metrics_request(qd_metrics *m, int status);
void qd_metrics_query(qd_metrics *m, int64_t latency_us, int ok);
int qd_metrics_render(const qd_server *srv, seg_buf *out);

/* static.c (generated from static/ by embed.py) */
typedef struct qd_asset {
  const char *path, *type;
  const unsigned char *data;
  size_t len;
} qd_asset;
extern const qd_asset qd_assets[];
extern const size_t qd_assets_count;

#endif /* QUERYD_SERVER_H */
