/*
 * http.c -- connections, HTTP/1.1 parsing (llhttp) and the routes of the
 * ingest service (es-ingestd, and es-queryd's embedded mode).
 *
 * The connection plumbing (accept, read, llhttp, pipelining, timers,
 * writes, close) is hconn.c's, with its invariants (hconn.h); this file
 * is what is es-ingestd's own, as hconn_ops hooks.  A connection:
 *
 *   IDLE --first byte--> READING --message complete--> (dispatch)
 *   dispatch: GET/OPTIONS/refusals answer at once            -> WRITE
 *             POST /v1/... hands the body to the parse pool   -> WAIT
 *   WAIT --parsed (parse_done): refused --> WRITE, else the job goes to
 *          the writers; durable or failed (sched done_fn)     -> WRITE
 *   WRITE --written--> IDLE (keep-alive) or CLOSING
 *
 * Invariants:
 *
 *  1. At most one request per connection is being served (hconn.h,
 *     invariant 1): answers go out in request order.
 *  2. A job outlives its connection if the client goes away: the job's
 *     conn pointer is cleared on close and the result is only counted.
 *  3. Every byte of body memory and of queued events is counted in
 *     srv->held_bytes (and per tenant in pending_bytes) from allocation
 *     to release; admission compares those with the budget.
 *  4. Refusals that leave the stream in sync (429, 503, 400 for a body
 *     whose Content-Length is over the limit but bounded) read and discard
 *     the body and keep the connection; protocol errors (malformed HTTP,
 *     431, a body past DISCARD_BYTES_MAX, 408) answer and close.
 *  5. The loop thread only does I/O and bookkeeping: inflating, parsing
 *     and mapping a body run on libuv's pool (parse_work), which touches
 *     nothing but its job; budgets, metrics and the write
 *     key lookup stay on the loop (parse_done), so they need no locks.
 *  6. Admission is decided as early as the information allows, and counts
 *     what a request will cost before that memory is taken: at the
 *     headers, the body's Content-Length plus what parsing it is
 *     expected to take (parse_expected: an event every
 *     EXPECTED_EVENT_BYTES, a compressed body inflating up to
 *     GZIP_EXPECTED_RATIO times), with the Basic auth tenant and the
 *     requests in the queue; a chunked body is charged the same way
 *     for its buffer each time that grows, before the bytes are copied
 *     (body_reserve); again once the body is read and its events can be
 *     bounded (parse_admit: ing_events_max); last when the events'
 *     memory and the body's writeKey are known (parse_done).  The
 *     tenant's share counts bodies and queued events, not parses.  A
 *     refused body is discarded, never parsed.
 *  7. --forward: a 200 whose events went into the forward queue is sent
 *     only once the queue is durable.  http_job_done parks the job (its
 *     conn stays in WAIT, c->job set, so invariant 2 holds) and a
 *     uv_check handle, after the loop turn's completions, does one
 *     fdatasync for all of them and answers (http_forward_flush).
 */
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "admin.h"
#include "body.h"
#include "common/hconn.h"
#include "common/route.h"
#include "common/status_http.h"
#include "common/svc.h"
#include "cutover.h"
#include "forward.h"
#include "server.h"

#define READ_BUF_BYTES 65536
#define URL_BYTES_MAX 2048
#define DISCARD_BYTES_MAX (16u << 20)
/* Before its bytes are seen, a body is expected to hold an event every
 * this many bytes (the browser SDK's events with context are 600-1000)
 * and a compressed one to inflate this many times, up to 500 KB, when
 * its parse is charged (invariant 6). */
#define EXPECTED_EVENT_BYTES 512
#define GZIP_EXPECTED_RATIO 10

/* X-ES-Shadow: set by deploy/nginx's mirror location on the copy of a
 * request that the legacy side got itself: stored, never forwarded. */
enum { H_ENCODING = HC_H_AUTH + 1, H_EXPECT, H_SHADOW, H_XFF };
/* X-Forwarded-For bytes kept; a longer header is not believed */
#define XFF_BYTES_MAX 512
/* route.flags: the request's body is a batch of events, read and
 * admitted as it arrives (invariants 3, 4, 6). */
#define ROUTE_INGEST 1u
/* route.flags: the admin API (admin.c): a Bearer admin token, checked at
 * the headers; PUT bodies are read whole (up to ING_REQUEST_BYTES_MAX). */
#define ROUTE_ADMIN 2u

typedef struct job job;
typedef struct conn conn;

/* A row of the route table (routes[], near the end). */
typedef struct route {
  http_route r; /* first (common/route.h) */
  void (*serve)(conn *c);
  int ingest_type; /* ROUTE_INGEST: the es_type the path implies, 0: batch */
} route;

struct conn {
  hconn h; /* first: the hooks get &h */
  /* the request being read */
  const route *route; /* NULL when refused at the headers, or preflight */
  int preflight;      /* OPTIONS on a path of the table (CORS) */
  char allow[HTTP_ROUTE_ALLOW_SIZE]; /* the path's methods, for 405 */
  char enc[64];
  size_t enc_len;
  int expect_continue;
  int shadow_copy; /* X-ES-Shadow: a mirrored copy (never forwarded) */
  char *body;
  size_t body_len, body_cap, discarded;
  size_t charge;     /* the parse's, in held_bytes beside body_cap (inv. 6) */
  int refuse_status; /* answer this once the message is read */
  int64_t begin_us;  /* the request's first byte (es_ingest_request_seconds) */
  char refuse_msg[ING_ERR_SIZE];
  job *job;
  admin_op *admin; /* a rule call on the pool (admin.c), or NULL */
  /* the access log line's (respond): never a key or a token */
  int method;
  char path[128];
  char tenant[ES_TENANT_LEN_MAX + 1];
  const char *error;           /* the error answer's message, or NULL */
  size_t bytes_in;             /* body bytes received */
  char xff[XFF_BYTES_MAX + 1]; /* X-Forwarded-For, headers joined by ',' */
  size_t xff_len;
  int xff_bad; /* longer than XFF_BYTES_MAX: the peer is the client */
};

struct job {
  sched_job sj; /* first: done_fn gets &sj */
  uv_work_t work;
  server *srv;
  conn *conn;
  tenant *t; /* from Basic auth at once, else after parsing */
  /* parse stage: the pool thread reads these and fills batch, parse_rc,
   * err and inflated_bytes (invariant 5) */
  char *body;
  size_t body_len, body_cap, inflated_bytes;
  size_t charge; /* the parse's charge in held_bytes (invariant 6) */
  int gzip, ingest_type, parse_rc;
  int64_t recv_us;
  uint64_t rng;
  char ip[SVC_IP_TEXT_SIZE]; /* the client's address (netaddr.h), or "" */
  char err[ING_ERR_SIZE];
  ing_batch batch;
  es_event *evs;
  size_t n, bytes;
  int shadow_copy;  /* the request was a mirrored copy (X-ES-Shadow) */
  job *parked_next; /* srv->fwd_parked: its 200 waits for the queue sync */
};

static int basic_auth_key(const char *auth, char *key, size_t size);
static int admission_status(const server *srv, const tenant *t, size_t bytes,
                            size_t parse_bytes);
static void refuse(conn *c, int status, const char *msg);
static const route *route_find(conn *c, int method, const char *path,
                               size_t len, int *status_out);

/* Whether the request being read is an ingest batch. */
static int is_ingest(const conn *c) {
  return c->route && (c->route->r.flags & ROUTE_INGEST);
}

/* Whether the request's body is read (an ingest batch, an admin PUT). */
static int reads_body(const conn *c) {
  return is_ingest(c) || (c->route && (c->route->r.flags & ROUTE_ADMIN) &&
                          (c->method == HTTP_PUT || c->method == HTTP_POST));
}

/* ----------------------------------------------------------------------
 * Answers
 * ---------------------------------------------------------------------- */

/*
 * The request's line in the log (docs/INGEST.md, "Logs"): method, path
 * (no query string), status, bytes in and out, milliseconds, tenant when
 * known; never a key or a token.  Every 4xx/5xx gets its line with the
 * error, as a warning or an error, even with --access-log off.
 */
static void access_log(conn *c, int status, size_t bytes_out) {
  server *srv = c->h.srv;
  if (!srv->cfg.access_log && status < 400)
    return;
  char extra[768], path[300], err[300] = "";
  svc_json_string(path, sizeof path, c->path);
  if (c->error && status >= 400) {
    strcpy(err, ",\"error\":");
    svc_json_string(err + 9, sizeof err - 9, c->error);
  }
  snprintf(extra, sizeof extra,
           ",\"method\":\"%s\",\"path\":%s,\"status\":%d,\"bytes_in\":%zu,"
           "\"bytes_out\":%zu,\"ms\":%.3f%s%s%s%s",
           llhttp_method_name((llhttp_method_t)c->method), path, status,
           c->bytes_in, bytes_out,
           (double)(ing_now_us() - c->begin_us) / 1000.0,
           c->tenant[0] ? ",\"tenant\":\"" : "", c->tenant,
           c->tenant[0] ? "\"" : "", err);
  ing_log(status >= 500   ? "error"
          : status >= 400 ? "warning"
                          : "info",
          "request", extra);
}

/* Sends one complete answer; the connection goes to WRITE. */
static void respond(conn *c, int status, const char *type, const char *body,
                    size_t body_len, int close) {
  server *srv = c->h.srv;
  char head[512], retry[32] = "";
  if (c->h.state == HC_CLOSING)
    return;
  c->h.close_after = close || !c->h.keep_alive || srv->draining;
  if (http_status_retry_after_s(status))
    snprintf(retry, sizeof retry, "Retry-After: %d\r\n",
             http_status_retry_after_s(status));
  int n =
      snprintf(head, sizeof head,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Access-Control-Allow-Origin: *\r\n%s%s%s%s%s\r\n",
               status, http_status_reason(status), type, body_len, retry,
               status == 405 ? "Allow: " : "", status == 405 ? c->allow : "",
               status == 405 ? "\r\n" : "",
               c->h.close_after ? "Connection: close\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof head) {
    hconn_close(&c->h);
    return;
  }
  metrics_request(&srv->m, status);
  if (is_ingest(c))
    metrics_observe(&srv->m.request, ing_now_us() - c->begin_us);
  access_log(c, status, body_len);
  hconn_answer(&c->h, head, (size_t)n, body, body_len);
}

static void respond_json(conn *c, int status, const char *json, int close) {
  respond(c, status, "application/json", json, strlen(json), close);
}

/* {"success":false,"error":msg} */
static void respond_error(conn *c, int status, const char *msg, int close) {
  c->error = msg;
  seg_buf b;
  seg_buf_init(&b);
  if (seg_buf_put(&b, "{\"success\":false,\"error\":", 25) ||
      seg_buf_put_json_string(&b, msg, strlen(msg)) ||
      seg_buf_put(&b, "}", 1)) {
    seg_buf_free(&b);
    hconn_close(&c->h);
    return;
  }
  respond(c, status, "application/json", b.data, b.len, close);
  seg_buf_free(&b);
}

/* /healthz (liveness: 200 while the process serves) and /readyz (200 only
 * when the store is ok, the server not draining and, on a cluster node,
 * the node not drained by POST /v1/admin/cluster/drain, else 503 with the
 * reason, so that the balancer stops sending):
 * {"status":...,"store":"ok|degraded|failed","reason":...}. */
static void answer_health(conn *c, int ready_probe) {
  server *srv = c->h.srv;
  char why[400];
  int state = es_state(srv->db, why, sizeof why);
  const char *store = state == ES_STATE_OK         ? "ok"
                      : state == ES_STATE_DEGRADED ? "degraded"
                                                   : "failed";
  const char *status = srv->draining ? "draining" : store;
  int lagging = 0; /* the replica's oldest unreplicated commit too old */
  es_replica_stats st;
  if (srv->cfg.replica_on && es_replica_stats_get(srv->db, &st) == ES_OK &&
      st.oldest_age_us > srv->cfg.replica_lag_max_us) {
    lagging = 1;
    if (state == ES_STATE_OK) {
      status = srv->draining ? "draining" : "replica-lagging";
      snprintf(why, sizeof why,
               "replica lag %lld s beyond %lld s (last error: %s)",
               (long long)(st.oldest_age_us / 1000000),
               (long long)(srv->cfg.replica_lag_max_us / 1000000),
               es_strerror(st.last_error));
    }
  }
  int drained = __atomic_load_n(&srv->sched.draining, __ATOMIC_ACQUIRE);
  if (drained && !srv->draining) { /* admin.c, 6: for good */
    status = "cluster-drained";
    snprintf(why, sizeof why,
             "this cluster node was drained (esctl cluster drain): it takes "
             "no tenant until it restarts");
  }
  int code = !ready_probe || (state == ES_STATE_OK && !srv->draining &&
                              !lagging && !drained)
                 ? 200
                 : 503;
  seg_buf b;
  seg_buf_init(&b);
  if (seg_buf_put(&b, "{\"status\":\"", 11) ||
      seg_buf_put(&b, status, strlen(status)) ||
      seg_buf_put(&b, "\",\"store\":\"", 11) ||
      seg_buf_put(&b, store, strlen(store)) ||
      seg_buf_put(&b, "\",\"reason\":", 11) ||
      seg_buf_put_json_string(&b, why, strlen(why)) ||
      seg_buf_put(&b, "}", 1)) {
    seg_buf_free(&b);
    hconn_close(&c->h);
    return;
  }
  respond(c, code, "application/json", b.data, b.len, 0);
  seg_buf_free(&b);
}

/* ----------------------------------------------------------------------
 * Memory accounting
 * ---------------------------------------------------------------------- */

/* Gives the request's body and parse charge back to the budget. */
static void body_release(conn *c) {
  server *srv = c->h.srv;
  if (c->body) {
    srv->held_bytes -= c->body_cap;
    free(c->body);
  }
  srv->held_bytes -= c->charge;
  c->body = NULL;
  c->body_len = c->body_cap = c->charge = 0;
}

/* Sets the request's charge beside its body to bytes (invariant 6). */
static void charge_set(conn *c, size_t bytes) {
  server *srv = c->h.srv;
  srv->held_bytes = srv->held_bytes - c->charge + bytes;
  c->charge = bytes;
}

/* Whether the request's Content-Encoding is not identity. */
static int is_compressed(const conn *c) {
  return c->enc_len > 0 && strcasecmp(c->enc, "identity") != 0;
}

/* What parsing a body of body_len bytes is expected to take, before its
 * bytes are seen (invariant 6); a compressed body's text is held beside
 * it while it is parsed.  0 for a request that is not an ingest batch. */
static size_t parse_expected(const conn *c, size_t body_len) {
  size_t text = body_len;
  if (!is_ingest(c))
    return 0;
  if (is_compressed(c))
    text = body_len > (ING_REQUEST_BYTES_MAX + 1) / GZIP_EXPECTED_RATIO
               ? ING_REQUEST_BYTES_MAX + 1
               : body_len * GZIP_EXPECTED_RATIO;
  return ing_parse_bytes_max(text, text / EXPECTED_EVENT_BYTES + 1) +
         (is_compressed(c) ? text : 0);
}

/*
 * Makes room for n more body bytes (exact is set when n is the announced
 * Content-Length: then exactly that is reserved, once, its parse charged
 * at the headers; else the parse's charge grows with the buffer,
 * invariant 6); -1 (and a refusal) when the budget or the allocator
 * says no.
 */
static int body_reserve(conn *c, size_t n, int exact) {
  server *srv = c->h.srv;
  size_t need = c->body_len + n + 1, cap = c->body_cap ? c->body_cap : 4096;
  if (need <= c->body_cap)
    return 0;
  while (cap < need)
    cap *= 2;
  if (exact)
    cap = need;
  if (cap > ING_REQUEST_BYTES_MAX + 1 && need <= ING_REQUEST_BYTES_MAX + 1)
    cap = ING_REQUEST_BYTES_MAX + 1;
  size_t charge = c->charge;
  if (!exact && parse_expected(c, cap) > charge)
    charge = parse_expected(c, cap);
  if (srv->held_bytes - c->body_cap - c->charge + cap + charge >
      srv->cfg.memory_budget_bytes) {
    c->refuse_status = 503;
    snprintf(c->refuse_msg, sizeof c->refuse_msg,
             "server saturated (memory budget); retry later");
    return -1;
  }
  char *b = realloc(c->body, cap);
  if (b == NULL) {
    c->refuse_status = 503;
    snprintf(c->refuse_msg, sizeof c->refuse_msg, "out of memory");
    return -1;
  }
  srv->held_bytes += cap - c->body_cap;
  c->body = b;
  c->body_cap = cap;
  charge_set(c, charge);
  return 0;
}

/* ----------------------------------------------------------------------
 * hconn hooks: the request's headers and body
 * ---------------------------------------------------------------------- */

static void on_message_begin(hconn *h) {
  conn *c = (conn *)h;
  c->begin_us = ing_now_us();
  c->route = NULL;
  c->preflight = 0;
  c->allow[0] = '\0';
  c->enc_len = 0;
  c->enc[0] = '\0';
  c->expect_continue = 0;
  c->shadow_copy = 0;
  c->refuse_status = 0;
  c->discarded = 0;
  c->method = 0;
  c->path[0] = c->tenant[0] = '\0';
  c->error = NULL;
  c->bytes_in = 0;
  c->xff_len = 0;
  c->xff[0] = '\0';
  c->xff_bad = 0;
  body_release(c);
}

static void append_value(char *dst, size_t *len, size_t cap, const char *at,
                         size_t n) {
  size_t room = cap - 1 - *len;
  if (n > room) {
    n = room;
    dst[0] = '\0'; /* truncated: make it unusable rather than wrong */
  }
  memcpy(dst + *len, at, n);
  *len += n;
  dst[*len] = '\0';
}

static int on_header(hconn *h, const char *name) {
  conn *c = (conn *)h;
  if (strcmp(name, "x-forwarded-for") == 0) {
    if (c->xff_len > 0 && c->xff_len + 1 >= sizeof c->xff)
      c->xff_bad = 1;
    else if (c->xff_len > 0) /* a second header continues the list */
      append_value(c->xff, &c->xff_len, sizeof c->xff, ",", 1);
    return H_XFF;
  }
  if (strcmp(name, "content-encoding") == 0)
    return H_ENCODING;
  if (strcmp(name, "expect") == 0)
    return H_EXPECT;
  if (strcmp(name, "x-es-shadow") == 0)
    return H_SHADOW;
  return HC_H_NONE;
}

static void on_header_value(hconn *h, int id, const char *at, size_t n) {
  conn *c = (conn *)h;
  if (id == H_ENCODING)
    append_value(c->enc, &c->enc_len, sizeof c->enc, at, n);
  else if (id == H_EXPECT && n >= 3 && strncasecmp(at, "100", 3) == 0)
    c->expect_continue = 1;
  else if (id == H_SHADOW)
    c->shadow_copy = 1;
  else if (id == H_XFF) {
    if (n > sizeof c->xff - 1 - c->xff_len)
      c->xff_bad = 1;
    else
      append_value(c->xff, &c->xff_len, sizeof c->xff, at, n);
  }
}

/* The tenant of the request's Basic auth key, NULL when it has none (or
 * an unknown one: that is answered 401 once the body is read). */
static const tenant *auth_tenant(conn *c) {
  char key[HCONN_AUTH_BYTES_MAX + 1];
  if (c->h.auth_len == 0 || basic_auth_key(c->h.auth, key, sizeof key))
    return NULL;
  return server_tenant_for_key(c->h.srv, key);
}

static void refuse(conn *c, int status, const char *msg) {
  c->refuse_status = status;
  snprintf(c->refuse_msg, sizeof c->refuse_msg, "%s", msg);
}

/* An admin call: the token first (admin.c, invariant 1), then room for
 * a PUT's body; a refusal is answered once the body is discarded. */
static int admin_headers(conn *c) {
  llhttp_t *p = &c->h.parser;
  uint64_t len = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
  if (len > DISCARD_BYTES_MAX)
    return hconn_fatal(&c->h, 400, "request body is over 500 KB");
  if (!admin_authorized(c->h.srv, c->h.auth))
    refuse(c, 401,
           ((server *)c->h.srv)->admin_tokens_count
               ? "admin token required (Authorization: Bearer TOKEN)"
               : "admin API disabled (start es-ingestd with --admin-tokens)");
  else if (len > ING_REQUEST_BYTES_MAX)
    refuse(c, 400, "request body is over 500 KB");
  else if (len > 0 && reads_body(c))
    (void)body_reserve(c, (size_t)len, 1); /* a refusal when it fails */
  return 0;
}

/* Routes the request and refuses early what can be refused by headers. */
static int on_headers_complete(hconn *h) {
  conn *c = (conn *)h;
  server *srv = c->h.srv;
  llhttp_t *p = &c->h.parser;
  size_t path_len = strcspn(c->h.url, "?#");
  int method = llhttp_get_method(p), status;
  if (path_len > 1 && c->h.url[path_len - 1] == '/')
    path_len--; /* tolerate a trailing slash */
  c->method = method;
  snprintf(c->path, sizeof c->path, "%.*s", (int)path_len, c->h.url);
  c->route = route_find(c, method, c->h.url, path_len, &status);
  if (c->route == NULL && status == 405 && method == HTTP_OPTIONS)
    c->preflight = 1; /* a CORS preflight of a path of the table */
  else if (c->route == NULL)
    refuse(c, status,
           status == 404 ? "no such endpoint" : "method not allowed here");
  if (c->route && (c->route->r.flags & ROUTE_ADMIN))
    return admin_headers(c);
  if (!is_ingest(c) || c->refuse_status)
    return 0;
  uint64_t len = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
  if (len > DISCARD_BYTES_MAX)
    return hconn_fatal(h, 400, "request body is over 500 KB");
  /* invariant 6: the body and its parse (a chunked body's: as it grows) */
  size_t parse = 0;
  int over = 0;
  if (len <= ING_REQUEST_BYTES_MAX && !srv->draining) {
    parse = parse_expected(c, (size_t)len);
    over = admission_status(srv, auth_tenant(c), (size_t)len, parse);
  }
  if (len > ING_REQUEST_BYTES_MAX)
    refuse(c, 400, "request body is over 500 KB");
  else if (srv->draining)
    refuse(c, 503, "server shutting down; retry later");
  else if (over == 429)
    refuse(c, 429, "tenant over its queue share; retry later");
  else if (over)
    refuse(c, 503, "server saturated; retry later");
  else {
    charge_set(c, parse);
    if (len > 0)
      (void)body_reserve(c, (size_t)len, 1); /* a refusal when it fails */
  }
  if (c->expect_continue && c->refuse_status == 0) {
    static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init(cont, sizeof cont - 1);
    uv_try_write((uv_stream_t *)&c->h.tcp, &b, 1);
  }
  return 0;
}

static int on_body(hconn *h, const char *at, size_t n) {
  conn *c = (conn *)h;
  c->bytes_in += n;
  if (!reads_body(c) || c->refuse_status) {
    c->discarded += n;
    /* the size limit wins over the budget, as it does at the headers */
    if (is_ingest(c) && c->refuse_status == 503 &&
        c->bytes_in > ING_REQUEST_BYTES_MAX)
      refuse(c, 400, "request body is over 500 KB");
    return c->discarded > DISCARD_BYTES_MAX
               ? hconn_fatal(h, 400, "request body is over 500 KB")
               : 0;
  }
  if (c->body_len + n > ING_REQUEST_BYTES_MAX) {
    refuse(c, 400, "request body is over 500 KB");
    body_release(c);
    c->discarded = n;
    return 0;
  }
  if (body_reserve(c, n, 0)) {
    body_release(c);
    return 0;
  }
  memcpy(c->body + c->body_len, at, n);
  c->body_len += n;
  c->body[c->body_len] = '\0';
  return 0;
}

/* ----------------------------------------------------------------------
 * Ingest
 * ---------------------------------------------------------------------- */

/* The user name of "Basic base64(user:password)" into key; 0 or -1. */
static int basic_auth_key(const char *auth, char *key, size_t size) {
  static const char b64[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t out = 0;
  unsigned acc = 0;
  int bits = 0;
  if (strncasecmp(auth, "Basic ", 6) != 0)
    return -1;
  for (const char *s = auth + 6; *s && *s != '='; s++) {
    const char *q = strchr(b64, *s);
    if (*s == ' ')
      continue;
    if (q == NULL)
      return -1;
    acc = (acc << 6) | (unsigned)(q - b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      char ch = (char)((acc >> bits) & 0xFF);
      if (ch == ':')
        break;
      if (out + 1 >= size || ch == '\0')
        return -1;
      key[out++] = ch;
    }
  }
  key[out] = '\0';
  return out > 0 ? 0 : -1;
}

/* A seed for one job's generated messageIds (splitmix64 of a counter:
 * seeds far apart in xorshift's cycle, so jobs never share ids). */
static uint64_t job_seed(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  z ^= z >> 31;
  return z ? z : 1;
}

static void job_free(job *j) {
  free(j->sj.dup_flags);
  ing_batch_free(&j->batch);
  free(j->body);
  free(j->evs);
  free(j);
}

/* The batch's events as the array es_append takes.  Retries (a messageId
 * the tenant already holds) are recognised by the library, on the
 * tenant's shard writer, also when two copies are in flight at once: it
 * stores the first and reports the others (docs/INGEST.md). */
static int job_events(job *j) {
  size_t n = j->batch.count;
  j->evs = malloc((n ? n : 1) * sizeof *j->evs);
  if (!j->evs)
    return -1;
  for (size_t i = 0; i < n; i++)
    j->evs[j->n++] = j->batch.events[i].ev;
  return 0;
}

/*
 * Parse stage, on a libuv pool thread: inflate and parse the body the job
 * owns.  Touches nothing but the job (no server state: invariant 5).
 */
static void parse_work(uv_work_t *w) {
  job *j = w->data;
  char *inflated = NULL;
  const char *body = j->body ? j->body : "";
  size_t len = j->body_len;
  if (j->gzip) {
    if (ing_inflate(body, len, ING_REQUEST_BYTES_MAX, &inflated, &len, j->err,
                    sizeof j->err)) {
      j->parse_rc = -1;
      return;
    }
    body = inflated;
    j->inflated_bytes = len;
  }
  j->parse_rc = ing_batch_parse(&j->batch, body, len, j->ingest_type,
                                j->recv_us, &j->rng, j->err, sizeof j->err);
  free(inflated);
  /* Segment's rule: the request's address when the event names none */
  for (size_t i = 0; j->parse_rc == 0 && j->ip[0] && i < j->batch.count; i++)
    if (j->batch.events[i].ev.ip == NULL || j->batch.events[i].ev.ip[0] == 0)
      j->batch.events[i].ev.ip = j->ip;
}

/* Gives the job's body and parse charge back to the budget (the parse
 * is over: what it left, the batch, is charged by parse_done). */
static void job_body_release(job *j) {
  if (j->body)
    j->srv->held_bytes -= j->body_cap;
  j->srv->held_bytes -= j->charge;
  free(j->body);
  j->body = NULL;
  j->body_cap = j->charge = 0;
}

/* Refuses a job that did not reach the writers. */
static void job_refuse(job *j, int status, const char *msg) {
  server *srv = j->srv;
  conn *c = j->conn;
  srv->parsing--;
  srv->m.events_rejected += j->batch.count;
  if (c) {
    c->job = NULL;
    respond_error(c, status, msg, 0);
  }
  job_free(j);
  server_maybe_finish(srv);
}

/* The tenant over its share (429) or the server over the budget (503);
 * 0 when there is room for bytes more of t's events (a body, or a
 * batch), parse_bytes more of a parse's (in the budget only: invariant 6)
 * and one request. */
static int admission_status(const server *srv, const tenant *t, size_t bytes,
                            size_t parse_bytes) {
  const ingest_config *cfg = &srv->cfg;
  if (t && (t->pending_bytes + bytes > cfg->tenant_bytes_max ||
            t->pending_jobs + 1 > cfg->tenant_jobs_max))
    return 429;
  if (srv->held_bytes + bytes + parse_bytes > cfg->memory_budget_bytes ||
      srv->jobs_pending + srv->parsing + 1 > cfg->jobs_max)
    return 503;
  return 0;
}

/* Back on the loop after parse_work: key, admission, hand-off. */
static void parse_done(uv_work_t *w, int status) {
  job *j = w->data;
  server *srv = j->srv;
  char key[HCONN_AUTH_BYTES_MAX + 1];
  job_body_release(j);
  srv->m.bytes_inflated += j->inflated_bytes;
  if (status != 0 || j->conn == NULL) { /* cancelled, or nobody to answer */
    job_refuse(j, 503, "server shutting down; retry later");
    return;
  }
  if (j->parse_rc) {
    job_refuse(j, 400, j->err);
    return;
  }
  conn *c = j->conn;
  const tenant *ct = j->t;
  if (ct == NULL) {
    const char *k = j->batch.write_key;
    if (c->h.auth_len > 0 && basic_auth_key(c->h.auth, key, sizeof key) == 0)
      k = key;
    ct = k ? server_tenant_for_key(srv, k) : NULL;
    if (ct == NULL) {
      job_refuse(j, 401,
                 k ? "unknown write key"
                   : "no write key (HTTP Basic auth user, or \"writeKey\")");
      return;
    }
  }
  tenant *t = (tenant *)ct;
  snprintf(c->tenant, sizeof c->tenant, "%s", t->st.id);
  /* what the batch holds and its es_event copy (job_events) */
  j->bytes = j->batch.mem_bytes + j->batch.count * sizeof(es_event);
  srv->parsing--; /* admission counts this request once, below */
  int refuse_status = admission_status(srv, t, j->bytes, 0);
  srv->parsing++;
  if (refuse_status) {
    job_refuse(j, refuse_status,
               refuse_status == 429 ? "tenant over its queue share; retry later"
                                    : "server saturated; retry later");
    return;
  }
  j->t = t;
  if (job_events(j)) {
    job_refuse(j, 503, "out of memory");
    return;
  }
  srv->parsing--;
  srv->held_bytes += j->bytes;
  t->pending_bytes += j->bytes;
  t->pending_jobs++;
  srv->jobs_pending++;
  j->sj.tenant = &t->st;
  j->sj.events = j->evs;
  j->sj.count = j->n;
  if (srv->fwd && !j->shadow_copy && j->n) /* NULL (no memory): forward all */
    j->sj.dup_flags = calloc(j->n, 1);
  sched_submit(&srv->sched, &j->sj);
}

/*
 * A request was read completely: checks what the loop can check cheaply,
 * then hands the body to a pool thread (parse_work) so that the loop only
 * does I/O.  The body's bytes stay counted (now by the job).
 */
/* The request's client address (common/netaddr.h: the peer, or from
 * X-Forwarded-For when the peer is a trusted proxy); "" when the peer is
 * unknown (the socket already gone). */
static void client_ip(conn *c, char *dst, size_t size) {
  server *srv = c->h.srv;
  struct sockaddr_storage ss;
  int len = (int)sizeof ss;
  unsigned char peer[16];
  dst[0] = '\0';
  if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) != 0)
    return;
  if (ss.ss_family == AF_INET) {
    memset(peer, 0, 10);
    peer[10] = peer[11] = 0xff;
    memcpy(peer + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
  } else if (ss.ss_family == AF_INET6) {
    memcpy(peer, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
  } else {
    return;
  }
  svc_client_ip(&srv->cfg.trusted_proxies, peer, c->xff_bad ? NULL : c->xff,
                dst, size);
}

/*
 * The body is read: its parse is charged what it can take at most
 * (invariant 6), now that its events can be bounded.  A compressed body
 * keeps what it was charged (its text is seen only once inflated, on the
 * pool; parse_done charges what the parse left).  0, or -1 when refused
 * (answered).
 */
static int parse_admit(conn *c, const tenant *t, int gzip) {
  server *srv = c->h.srv;
  size_t have = c->charge, need = have;
  if (!gzip)
    need =
        ing_parse_bytes_max(c->body_len, ing_events_max(c->body, c->body_len));
  if (need <= have) {
    charge_set(c, need);
    return 0;
  }
  int over = admission_status(srv, t, 0, need - have);
  if (over) {
    body_release(c);
    respond_error(c, over,
                  over == 429 ? "tenant over its queue share; retry later"
                              : "server saturated; retry later",
                  0);
    return -1;
  }
  charge_set(c, need);
  return 0;
}

static void ingest(conn *c) {
  server *srv = c->h.srv;
  char key[HCONN_AUTH_BYTES_MAX + 1];
  srv->m.bytes_received += c->body_len;
  if (srv->draining) {
    body_release(c);
    respond_error(c, 503, "server shutting down; retry later", 0);
    return;
  }
  int gzip = is_compressed(c);
  if (gzip && strcasecmp(c->enc, "gzip") && strcasecmp(c->enc, "x-gzip") &&
      strcasecmp(c->enc, "deflate")) {
    body_release(c);
    respond_error(c, 400, "unsupported Content-Encoding (use gzip)", 0);
    return;
  }
  /* A Basic auth key names the tenant before any parsing. */
  const tenant *t = NULL;
  if (c->h.auth_len > 0 && basic_auth_key(c->h.auth, key, sizeof key) == 0 &&
      (t = server_tenant_for_key(srv, key)) == NULL) {
    body_release(c);
    respond_error(c, 401, "unknown write key", 0);
    return;
  }
  if (t)
    snprintf(c->tenant, sizeof c->tenant, "%s", t->st.id);
  if (parse_admit(c, t, gzip))
    return;
  job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    body_release(c);
    respond_error(c, 503, "out of memory", 0);
    return;
  }
  j->srv = srv;
  j->t = (tenant *)t;
  j->conn = c;
  j->gzip = gzip;
  j->shadow_copy = c->shadow_copy;
  j->ingest_type = c->route->ingest_type;
  j->recv_us = ing_now_us();
  j->rng = job_seed(&srv->rng);
  client_ip(c, j->ip, sizeof j->ip);
  j->body = c->body; /* ownership and its budget bytes move to the job */
  j->body_len = c->body_len;
  j->body_cap = c->body_cap;
  j->charge = c->charge;
  c->body = NULL;
  c->body_len = c->body_cap = c->charge = 0;
  j->work.data = j;
  srv->parsing++;
  c->job = j;
  c->h.state = HC_WAIT;
  uv_timer_stop(&c->h.timer);
  if (uv_queue_work(srv->loop, &j->work, parse_work, parse_done)) {
    job_body_release(j);
    job_refuse(j, 503, "server saturated; retry later");
  }
}

/* --forward: queues a durable job's stored events for the legacy
 * endpoint (forward.h) with the request's write key (Basic auth, else the
 * body's writeKey, else -- the client went away -- a key of its tenant). */
static int forward_job(server *srv, job *j) {
  char key[HCONN_AUTH_BYTES_MAX + 1];
  const char *k = j->batch.write_key;
  if (j->conn && j->conn->h.auth_len > 0 &&
      basic_auth_key(j->conn->h.auth, key, sizeof key) == 0)
    k = key;
  for (size_t i = 0; k == NULL && i < srv->keys_count; i++)
    if (srv->keys[i].tenant == j->t)
      k = srv->keys[i].key;
  return k != NULL ? fwd_submit(srv->fwd, k, j->evs, j->n, j->sj.dup_flags) : 0;
}

static void on_fwd_check(uv_check_t *h) { http_forward_flush(h->data); }

/* --forward: the check handle that sends the parked 200s.  0 or -1. */
int http_forward_init(server *srv) {
  if (uv_check_init(srv->loop, &srv->fwd_check))
    return -1;
  srv->fwd_check.data = srv;
  srv->fwd_check_init = 1;
  return 0;
}

/*
 * Sends the 200s parked by http_job_done after one fdatasync of the
 * forward queue (invariant 7): every answer completed in this loop turn
 * shares it.  A parked job whose client went away (on_closing cleared its
 * conn) is only freed.  A failed sync is counted and logged by fwd_sync;
 * the answers stay 200: the events are durable in the store, only their
 * copy for the legacy side may be lost by a crash (docs/MIGRATION.md).
 */
void http_forward_flush(server *srv) {
  job *list = srv->fwd_parked;
  if (list == NULL)
    return;
  (void)fwd_sync(srv->fwd, srv->fwd_parked_count);
  srv->fwd_parked = NULL;
  srv->fwd_parked_count = 0;
  uv_check_stop(&srv->fwd_check);
  while (list) {
    job *j = list;
    list = j->parked_next;
    if (j->conn) {
      j->conn->job = NULL;
      respond_json(j->conn, 200, "{\"success\":true}", 0);
    }
    job_free(j);
  }
  server_maybe_finish(srv);
}

/* The drain's end (server_maybe_finish, after the writers' last
 * completions): answers what is parked and closes the check handle. */
void http_forward_close(server *srv) {
  if (!srv->fwd_check_init)
    return;
  http_forward_flush(srv);
  uv_close((uv_handle_t *)&srv->fwd_check, NULL);
  srv->fwd_check_init = 0;
}

/* A job is durable or failed (loop thread, via sched). */
void http_job_done(sched_job *sj, void *ud) {
  job *j = (job *)sj;
  server *srv = ud;
  int status = http_status_of(sj->status);
  const char *msg = NULL;
  srv->jobs_pending--;
  srv->held_bytes -= j->bytes;
  j->t->pending_bytes -= j->bytes;
  j->t->pending_jobs--;
  if (j->n > 0)
    metrics_observe(&srv->m.commit, sj->done_us - sj->submit_us);
  if (sj->status == ES_OK) {
    /* a duplicate is answered 200 too: its first copy is durable */
    size_t stored = j->n - sj->dups - sj->suppressed;
    srv->m.events_stored += stored;
    srv->m.events_duplicate += sj->dups;
    srv->m.events_suppressed += sj->suppressed; /* an erasure's: 200 too */
    if (j->batch.count > 0) /* the stored share of the compact JSON */
      srv->m.bytes_stored += j->batch.bytes * stored / j->batch.count;
    int queued =
        srv->fwd && !j->shadow_copy && stored > 0 && forward_job(srv, j) == 1;
    /* the 200 waits for the queue's fdatasync (invariant 7); so does a
     * duplicate's while others wait: its first copy may be among them */
    if (srv->fwd_check_init && !j->shadow_copy && (queued || srv->fwd_parked)) {
      j->parked_next = srv->fwd_parked;
      srv->fwd_parked = j;
      if (srv->fwd_parked_count++ == 0)
        uv_check_start(&srv->fwd_check, on_fwd_check);
      return;
    }
  } else {
    srv->m.appends_failed++;
    srv->m.events_rejected += j->batch.count;
    msg = es_strerror(sj->status);
    char extra[256];
    snprintf(extra, sizeof extra, ",\"tenant\":\"%s\",\"status\":%d",
             j->t->st.id, sj->status);
    ing_log("error", "es_append failed", extra);
  }
  if (j->conn) {
    conn *c = j->conn;
    c->job = NULL;
    if (status == 200)
      respond_json(c, 200, "{\"success\":true}", 0);
    else
      respond_error(c, status, msg, 0);
  }
  job_free(j);
  server_maybe_finish(srv);
}

/* ----------------------------------------------------------------------
 * Dispatch and reading
 * ---------------------------------------------------------------------- */

/* The CORS preflight: the path's methods (c->allow) and OPTIONS. */
static void answer_options(conn *c) {
  static const char extra[] =
      "Access-Control-Allow-Headers: Content-Type, Authorization, "
      "Content-Encoding, X-Retry-Count\r\n"
      "Access-Control-Max-Age: 86400\r\n";
  server *srv = c->h.srv;
  char head[640];
  c->h.close_after = !c->h.keep_alive || srv->draining;
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 204 No Content\r\n"
                   "Access-Control-Allow-Origin: *\r\n"
                   "Access-Control-Allow-Methods: %s, OPTIONS\r\n"
                   "Allow: %s, OPTIONS\r\n%s%s\r\n",
                   c->allow, c->allow, extra,
                   c->h.close_after ? "Connection: close\r\n" : "");
  metrics_request(&srv->m, 204);
  access_log(c, 204, 0);
  hconn_answer(&c->h, head, (size_t)n, NULL, 0);
}

static void answer_metrics(conn *c) {
  server *srv = c->h.srv;
  seg_buf b;
  seg_buf_init(&b);
  if (metrics_render(&srv->m, &b, srv->jobs_pending + srv->parsing,
                     srv->held_bytes, srv->cfg.memory_budget_bytes,
                     srv->http.connections, srv->draining) ||
      metrics_render_store(srv->db, &b, srv->cfg.metrics_tenants)) {
    seg_buf_free(&b);
    respond_error(c, 503, "out of memory", 0);
    return;
  }
  es_replica_stats st;
  if (srv->cfg.replica_on && es_replica_stats_get(srv->db, &st) == ES_OK &&
      metrics_render_replica(&st, &b)) {
    seg_buf_free(&b);
    respond_error(c, 503, "out of memory", 0);
    return;
  }
  if (srv->cfg.replica_on && metrics_render_walship(srv->db, &b)) {
    seg_buf_free(&b);
    respond_error(c, 503, "out of memory", 0);
    return;
  }
  es_exporter_stats xs;
  if (srv->exporter && es_exporter_stats_get(srv->exporter, &xs) == ES_OK &&
      metrics_render_export(&xs, ing_now_us(), &b)) {
    seg_buf_free(&b);
    respond_error(c, 503, "out of memory", 0);
    return;
  }
  if (srv->sched.cluster && metrics_render_cluster(srv->sched.cluster, &b)) {
    seg_buf_free(&b);
    respond_error(c, 503, "out of memory", 0);
    return;
  }
  if (srv->fwd && fwd_metrics(srv->fwd, &b)) {
    seg_buf_free(&b);
    respond_error(c, 503, "out of memory", 0);
    return;
  }
  respond(c, 200, "text/plain; version=0.0.4", b.data, b.len, 0);
  seg_buf_free(&b);
}

static void answer_healthz(conn *c) { answer_health(c, 0); }
static void answer_readyz(conn *c) { answer_health(c, 1); }

/* GET and PUT /v1/admin/keys (admin.c). */
static void serve_admin_keys(conn *c) {
  seg_buf b;
  seg_buf_init(&b);
  int status = c->method == HTTP_GET
                   ? admin_keys_get(c->h.srv, &b)
                   : admin_keys_put(c->h.srv, c->body, c->body_len, &b);
  body_release(c);
  if (b.len == 0) {
    respond_error(c, 503, "out of memory", 0);
  } else {
    c->error = status >= 400 ? admin_last_error() : NULL;
    respond(c, status, "application/json", b.data, b.len, 0);
  }
  seg_buf_free(&b);
}

/* GET /v1/admin/cutover/nginx-map (cutover.h). */
static void serve_cutover_map(conn *c) {
  seg_buf b;
  seg_buf_init(&b);
  if (cutover_nginx_map(c->h.srv, &b))
    respond_error(c, 503, "out of memory", 0);
  else
    respond(c, 200, "text/plain", b.data, b.len, 0);
  seg_buf_free(&b);
}

/* A rule call is done (loop thread): answer, log, free. */
static void admin_rule_done(uv_work_t *w, int status) {
  admin_op *op = w->data;
  conn *c = op->ud;
  server *srv = c ? c->h.srv : NULL;
  if (status != 0)
    op->status = 503;
  if (c) {
    c->admin = NULL;
    if (op->status >= 400)
      c->error = op->why[0] ? op->why : "rule call refused";
    respond(c, op->status, "application/json", op->out.data, op->out.len, 0);
  }
  admin_op_finish(op);
  if (srv)
    server_maybe_finish(srv);
}

/* Answers an admin request whose operation could not be made (status:
 * its HTTP status, b its body), or queues the operation op on the pool;
 * frees b either way. */
static void admin_start(conn *c, int status, admin_op *op, seg_buf *b) {
  server *srv = c->h.srv;
  body_release(c);
  if (status != 0) {
    c->error = admin_last_error();
    respond(c, status, "application/json", b->data, b->len, 0);
    seg_buf_free(b);
    return;
  }
  seg_buf_free(b);
  op->ud = c;
  c->admin = op;
  c->h.state = HC_WAIT;
  uv_timer_stop(&c->h.timer);
  if (uv_queue_work(srv->loop, &op->work, admin_op_work, admin_rule_done)) {
    c->admin = NULL;
    admin_op_finish(op);
    respond_error(c, 503, "server saturated; retry later", 0);
  }
}

/* GET .../rules, PUT and DELETE .../rules/NAME: on the pool (admin.c,
 * invariant 3). */
static void serve_admin_rules(conn *c) {
  server *srv = c->h.srv;
  admin_op *op = NULL;
  seg_buf b;
  seg_buf_init(&b);
  snprintf(c->tenant, sizeof c->tenant, "%.*s",
           (int)strcspn(c->path + strlen("/v1/admin/tenants/"), "/"),
           c->path + strlen("/v1/admin/tenants/"));
  int status = admin_op_new(srv, c->method, c->path, strlen(c->path), c->body,
                            c->body_len, &op, &b);
  admin_start(c, status, op, &b);
}

/* GET /v1/admin/cluster and POST /v1/admin/cluster/drain: on the pool
 * (admin.c, invariant 6). */
static void serve_cluster(conn *c) {
  server *srv = c->h.srv;
  admin_op *op = NULL;
  seg_buf b;
  seg_buf_init(&b);
  int status = admin_cluster_new(srv, c->method, &op, &b);
  admin_start(c, status, op, &b);
}

/* POST /v1/privacy/erase, GET /v1/privacy/erase/ID and POST
 * /v1/privacy/unsuppress: on the pool
 * (admin.c, invariant 5). */
static void serve_erase(conn *c) {
  server *srv = c->h.srv;
  admin_op *op = NULL;
  seg_buf b;
  seg_buf_init(&b);
  int status =
      admin_erase_new(srv, c->method, c->path, c->body, c->body_len, &op, &b);
  if (status == 0)
    snprintf(c->tenant, sizeof c->tenant, "%s", op->tenant);
  admin_start(c, status, op, &b);
}

/* Every endpoint of the service, one row each (docs/INGEST.md).  The
 * Segment paths have one-letter aliases (/v1/t for /v1/track...). */
static const route routes[] = {
    {{HTTP_GET, "/healthz", 0}, answer_healthz, 0},
    {{HTTP_GET, "/readyz", 0}, answer_readyz, 0},
    {{HTTP_GET, "/metrics", 0}, answer_metrics, 0},
    {{HTTP_POST, "/v1/track", ROUTE_INGEST}, ingest, ES_TYPE_TRACK},
    {{HTTP_POST, "/v1/t", ROUTE_INGEST}, ingest, ES_TYPE_TRACK},
    {{HTTP_POST, "/v1/page", ROUTE_INGEST}, ingest, ES_TYPE_PAGE},
    {{HTTP_POST, "/v1/p", ROUTE_INGEST}, ingest, ES_TYPE_PAGE},
    {{HTTP_POST, "/v1/identify", ROUTE_INGEST}, ingest, ES_TYPE_IDENTIFY},
    {{HTTP_POST, "/v1/i", ROUTE_INGEST}, ingest, ES_TYPE_IDENTIFY},
    {{HTTP_POST, "/v1/alias", ROUTE_INGEST}, ingest, ES_TYPE_ALIAS},
    {{HTTP_POST, "/v1/a", ROUTE_INGEST}, ingest, ES_TYPE_ALIAS},
    {{HTTP_POST, "/v1/group", ROUTE_INGEST}, ingest, ES_TYPE_GROUP},
    {{HTTP_POST, "/v1/g", ROUTE_INGEST}, ingest, ES_TYPE_GROUP},
    {{HTTP_POST, "/v1/screen", ROUTE_INGEST}, ingest, ES_TYPE_SCREEN},
    {{HTTP_POST, "/v1/s", ROUTE_INGEST}, ingest, ES_TYPE_SCREEN},
    {{HTTP_POST, "/v1/batch", ROUTE_INGEST}, ingest, 0},
    {{HTTP_POST, "/v1/b", ROUTE_INGEST}, ingest, 0},
    {{HTTP_GET, "/v1/admin/keys", ROUTE_ADMIN}, serve_admin_keys, 0},
    {{HTTP_PUT, "/v1/admin/keys", ROUTE_ADMIN}, serve_admin_keys, 0},
    {{HTTP_GET, "/v1/admin/cutover/nginx-map", ROUTE_ADMIN},
     serve_cutover_map,
     0},
    {{HTTP_GET, "/v1/admin/tenants/*/rules", ROUTE_ADMIN},
     serve_admin_rules,
     0},
    {{HTTP_PUT, "/v1/admin/tenants/*/rules/*", ROUTE_ADMIN},
     serve_admin_rules,
     0},
    {{HTTP_DELETE, "/v1/admin/tenants/*/rules/*", ROUTE_ADMIN},
     serve_admin_rules,
     0},
    {{HTTP_GET, "/v1/admin/cluster", ROUTE_ADMIN}, serve_cluster, 0},
    {{HTTP_POST, "/v1/admin/cluster/drain", ROUTE_ADMIN}, serve_cluster, 0},
    {{HTTP_POST, "/v1/privacy/erase", ROUTE_ADMIN}, serve_erase, 0},
    {{HTTP_POST, "/v1/privacy/unsuppress", ROUTE_ADMIN}, serve_erase, 0},
    {{HTTP_GET, "/v1/privacy/erase/*", ROUTE_ADMIN}, serve_erase, 0},
};

static const route *route_find(conn *c, int method, const char *path,
                               size_t len, int *status_out) {
  return (const route *)http_route_find(routes, sizeof routes / sizeof *routes,
                                        sizeof *routes, method, path, len,
                                        status_out, c->allow);
}

/* Serves the request that was just read completely. */
static void dispatch(hconn *h) {
  conn *c = (conn *)h;
  if (c->refuse_status) {
    body_release(c);
    respond_error(c, c->refuse_status, c->refuse_msg, 0);
  } else if (c->preflight) {
    answer_options(c);
  } else {
    c->route->serve(c); /* a row of the table: else refuse_status is set */
  }
}

/* A protocol error: answer and close (hconn.h, invariant 4). */
static void fail(hconn *h, int status, const char *msg) {
  conn *c = (conn *)h;
  body_release(c);
  respond_error(c, status, msg, 1);
}

/* ----------------------------------------------------------------------
 * Connection lifecycle
 * ---------------------------------------------------------------------- */

static void on_closing(hconn *h) {
  conn *c = (conn *)h;
  if (c->job)
    c->job->conn = NULL; /* invariant 2 */
  if (c->admin)
    c->admin->ud = NULL; /* the same for a rule call */
  body_release(c);
}

static void on_gone(void *srv) { server_maybe_finish(srv); }

static const hconn_ops ops = {
    .conn_size = sizeof(conn),
    .url_max = URL_BYTES_MAX,
    .url_msg = "URL over 2 KB",
    .rbuf_bytes = READ_BUF_BYTES,
    .auth_fatal = 0,
    .header = on_header,
    .header_value = on_header_value,
    .message_begin = on_message_begin,
    .headers_complete = on_headers_complete,
    .body = on_body,
    .dispatch = dispatch,
    .fail = fail,
    .closing = on_closing,
    .finish = on_gone,
};

/* Binds and listens; *port_out is the bound port (for --listen ...:0).
 * The listener handle is initialised even on failure (close it). */
int http_listen(server *srv, const char *host, int port, int *port_out) {
  hconn_limits lim = {srv->cfg.connections_max, srv->cfg.read_timeout_ms,
                      srv->cfg.idle_timeout_ms};
  return hconn_listen(&srv->http, srv->loop, &ops, srv, lim, host, port,
                      port_out);
}

/* SIGTERM: stop accepting, close idle connections, let the rest finish. */
void http_drain(server *srv) {
  srv->draining = 1;
  hconn_drain(&srv->http);
}

/* Closes every connection at once (the drain deadline passed). */
void http_close_all(server *srv) { hconn_close_all(&srv->http); }
