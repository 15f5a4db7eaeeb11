/*
 * http.c -- connections, HTTP/1.1 parsing (llhttp) and the routes of
 * es-ingestd.  The one place where a connection's lifecycle lives.
 *
 * A connection is a small state machine:
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
 *  1. At most one request per connection is being served.  llhttp is
 *     paused at the end of each message (on_message_complete returns
 *     HPE_PAUSED) and reading stops; pipelined bytes already read wait in
 *     rbuf[rest_off..+rest_len] and are parsed after the answer is
 *     written.  So answers go out in request order.
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
 *     nothing but its job; budgets, dedupe sets, metrics and the write
 *     key lookup stay on the loop (parse_done), so they need no locks.
 *  6. Admission is decided as early as the information allows: at the
 *     headers (Content-Length, the Basic auth tenant, requests in the
 *     queue), again when the events' size and the body's writeKey are
 *     known (parse_done).  A refused body is discarded, never parsed.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "body.h"
#include "server.h"
#include "svc.h"

#define READ_BUF_BYTES 65536
#define HEADER_BYTES_MAX (16 * 1024)
#define URL_BYTES_MAX 2048
#define AUTH_BYTES_MAX 1024
#define DISCARD_BYTES_MAX (16u << 20)
#define LISTEN_BACKLOG 511

enum { ST_IDLE, ST_READING, ST_WAIT, ST_WRITE, ST_CLOSING };
enum { H_NONE, H_AUTH, H_ENCODING, H_EXPECT };
enum { R_NONE, R_INGEST, R_HEALTHZ, R_METRICS, R_OPTIONS };

typedef struct job job;

typedef struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  llhttp_t parser;
  server *srv;
  struct conn *prev, *next;
  int state, handles_open, close_after, keep_alive;
  /* the request being read */
  int route, ingest_type;
  char url[URL_BYTES_MAX + 1];
  size_t url_len, header_bytes;
  char hname[32];
  size_t hname_len;
  int hcur;
  char auth[AUTH_BYTES_MAX + 1], enc[64];
  size_t auth_len, enc_len;
  int expect_continue;
  char *body;
  size_t body_len, body_cap, discarded;
  int refuse_status; /* answer this once the message is read */
  char refuse_msg[ING_ERR_SIZE];
  int fatal_status; /* answer this and close (set before failing llhttp) */
  const char *fatal_msg;
  job *job;
  size_t rest_off, rest_len; /* parsed-later bytes in rbuf */
  char rbuf[READ_BUF_BYTES];
} conn;

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
  int gzip, ingest_type, parse_rc;
  int64_t recv_us;
  uint64_t rng;
  char err[ING_ERR_SIZE];
  ing_batch batch;
  es_event *evs;
  size_t n, dups, bytes;
  uint64_t *added, *waits;
  size_t n_added, n_waits;
};

static llhttp_settings_t settings;
static int basic_auth_key(const char *auth, char *key, size_t size);
static int admission_status(const server *srv, const tenant *t, size_t bytes);
static void conn_close(conn *c);
static void feed(conn *c, const char *data, size_t len);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ----------------------------------------------------------------------
 * Answers
 * ---------------------------------------------------------------------- */


/* The one table from library status to HTTP status (docs/INGEST.md). */
static int http_status_of(int es_status) {
  switch (es_status) {
  case ES_OK:
    return 200;
  case ES_EINVAL:
  case ES_ETOOBIG:
    return 400;
  case ES_ENOMEM:
  case ES_ECLOSED:
  case ES_ENOSPC:
    return 503;
  default:
    return 500; /* ES_EIO, ES_EFAILED, ES_ETENANT, ... */
  }
}

typedef struct write_req {
  uv_write_t req;
  conn *c;
  char data[];
} write_req;

static void start_timer(conn *c, int64_t ms);
static void on_timer(uv_timer_t *t);

static void after_write(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  conn *c = w->c;
  free(w);
  if (c->state == ST_CLOSING)
    return;
  if (status < 0 || c->close_after) {
    conn_close(c);
    return;
  }
  c->state = ST_IDLE;
  start_timer(c, c->srv->cfg.idle_timeout_ms);
  llhttp_resume(&c->parser);
  if (c->rest_len > 0) { /* pipelined bytes read before (invariant 1) */
    size_t off = c->rest_off, n = c->rest_len;
    c->rest_len = 0;
    feed(c, c->rbuf + off, n);
  }
  /* Unless those bytes held a whole request (now being served), read on:
   * they may have been only the start of one. */
  if (c->state == ST_IDLE || c->state == ST_READING)
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Sends one complete answer; the connection goes to WRITE. */
static void respond(conn *c, int status, const char *type, const char *body,
                    size_t body_len, int close) {
  server *srv = c->srv;
  char head[512];
  if (c->state == ST_CLOSING)
    return;
  c->close_after = close || !c->keep_alive || srv->draining;
  int n =
      snprintf(head, sizeof head,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Access-Control-Allow-Origin: *\r\n%s%s\r\n",
               status, svc_http_reason(status), type, body_len,
               status == 429 || status == 503 ? "Retry-After: 1\r\n" : "",
               c->close_after ? "Connection: close\r\n" : "");
  metrics_request(&srv->m, status);
  write_req *w = malloc(sizeof *w + (size_t)n + body_len);
  if (w == NULL) {
    conn_close(c);
    return;
  }
  memcpy(w->data, head, (size_t)n);
  if (body_len)
    memcpy(w->data + n, body, body_len);
  w->c = c;
  uv_buf_t buf = uv_buf_init(w->data, (unsigned)((size_t)n + body_len));
  c->state = ST_WRITE;
  start_timer(c, srv->cfg.read_timeout_ms);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, after_write)) {
    free(w);
    conn_close(c);
  }
}

static void respond_json(conn *c, int status, const char *json, int close) {
  respond(c, status, "application/json", json, strlen(json), close);
}

/* {"success":false,"error":msg} */
static void respond_error(conn *c, int status, const char *msg, int close) {
  seg_buf b;
  seg_buf_init(&b);
  if (seg_buf_put(&b, "{\"success\":false,\"error\":", 25) ||
      seg_buf_put_json_string(&b, msg, strlen(msg)) ||
      seg_buf_put(&b, "}", 1)) {
    seg_buf_free(&b);
    conn_close(c);
    return;
  }
  respond(c, status, "application/json", b.data, b.len, close);
  seg_buf_free(&b);
}

/* ----------------------------------------------------------------------
 * Memory accounting
 * ---------------------------------------------------------------------- */

static void body_release(conn *c) {
  if (c->body) {
    c->srv->held_bytes -= c->body_cap;
    free(c->body);
  }
  c->body = NULL;
  c->body_len = c->body_cap = 0;
}

/*
 * Makes room for n more body bytes (exact is set when n is the announced
 * Content-Length: then exactly that is reserved, once); -1 (and a
 * refusal) when the budget or the allocator says no.
 */
static int body_reserve(conn *c, size_t n, int exact) {
  server *srv = c->srv;
  size_t need = c->body_len + n + 1, cap = c->body_cap ? c->body_cap : 4096;
  if (need <= c->body_cap)
    return 0;
  while (cap < need)
    cap *= 2;
  if (exact)
    cap = need;
  if (cap > ING_REQUEST_BYTES_MAX + 1 && need <= ING_REQUEST_BYTES_MAX + 1)
    cap = ING_REQUEST_BYTES_MAX + 1;
  if (srv->held_bytes - c->body_cap + cap > srv->cfg.memory_budget_bytes) {
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
  return 0;
}

/* ----------------------------------------------------------------------
 * llhttp callbacks
 * ---------------------------------------------------------------------- */

static int fatal(conn *c, int status, const char *msg) {
  c->fatal_status = status;
  c->fatal_msg = msg;
  return -1;
}

static int count_header_bytes(conn *c, size_t n) {
  c->header_bytes += n;
  if (c->header_bytes > HEADER_BYTES_MAX)
    return fatal(c, 431, "request line and headers are over 16 KB");
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  conn *c = p->data;
  c->state = ST_READING;
  c->route = R_NONE;
  c->ingest_type = -1;
  c->url_len = c->header_bytes = c->hname_len = 0;
  c->auth_len = c->enc_len = 0;
  c->auth[0] = c->enc[0] = '\0';
  c->hcur = H_NONE;
  c->expect_continue = 0;
  c->refuse_status = 0;
  c->discarded = 0;
  body_release(c);
  start_timer(c, c->srv->cfg.read_timeout_ms); /* the whole request */
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (count_header_bytes(c, n))
    return -1;
  if (c->url_len + n > URL_BYTES_MAX)
    return fatal(c, 431, "URL over 2 KB");
  memcpy(c->url + c->url_len, at, n);
  c->url_len += n;
  c->url[c->url_len] = '\0';
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (count_header_bytes(c, n))
    return -1;
  for (size_t i = 0; i < n; i++)
    if (c->hname_len < sizeof c->hname - 1)
      c->hname[c->hname_len++] = (char)tolower((unsigned char)at[i]);
    else
      c->hname_len = sizeof c->hname; /* too long: no header we want */
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  conn *c = p->data;
  size_t n = c->hname_len;
  c->hcur = H_NONE;
  if (n < sizeof c->hname) {
    c->hname[n] = '\0';
    if (strcmp(c->hname, "authorization") == 0)
      c->hcur = H_AUTH;
    else if (strcmp(c->hname, "content-encoding") == 0)
      c->hcur = H_ENCODING;
    else if (strcmp(c->hname, "expect") == 0)
      c->hcur = H_EXPECT;
  }
  c->hname_len = 0;
  return 0;
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

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (count_header_bytes(c, n))
    return -1;
  if (c->hcur == H_AUTH)
    append_value(c->auth, &c->auth_len, sizeof c->auth, at, n);
  else if (c->hcur == H_ENCODING)
    append_value(c->enc, &c->enc_len, sizeof c->enc, at, n);
  else if (c->hcur == H_EXPECT && n >= 3 && strncasecmp(at, "100", 3) == 0)
    c->expect_continue = 1;
  return 0;
}

/* The tenant of the request's Basic auth key, NULL when it has none (or
 * an unknown one: that is answered 401 once the body is read). */
static const tenant *auth_tenant(conn *c) {
  char key[AUTH_BYTES_MAX + 1];
  if (c->auth_len == 0 || basic_auth_key(c->auth, key, sizeof key))
    return NULL;
  return server_tenant_for_key(c->srv, key);
}

static void refuse(conn *c, int status, const char *msg) {
  c->refuse_status = status;
  snprintf(c->refuse_msg, sizeof c->refuse_msg, "%s", msg);
}

/* Routes the request and refuses early what can be refused by headers. */
static int on_headers_complete(llhttp_t *p) {
  conn *c = p->data;
  server *srv = c->srv;
  size_t path_len = strcspn(c->url, "?#");
  int method = llhttp_get_method(p);
  c->ingest_type = ing_endpoint_type(c->url, path_len);
  if (method == HTTP_OPTIONS) {
    c->route = R_OPTIONS;
  } else if (path_len == 8 && memcmp(c->url, "/healthz", 8) == 0) {
    c->route = method == HTTP_GET ? R_HEALTHZ : 0;
  } else if (path_len == 8 && memcmp(c->url, "/metrics", 8) == 0) {
    c->route = method == HTTP_GET ? R_METRICS : 0;
  } else if (c->ingest_type >= 0) {
    c->route = method == HTTP_POST ? R_INGEST : 0;
  } else {
    refuse(c, 404, "no such endpoint");
  }
  if (c->route == R_NONE && c->refuse_status == 0)
    refuse(c, 405, "method not allowed here");
  if (c->route != R_INGEST || c->refuse_status)
    return 0;
  uint64_t len = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
  if (len > DISCARD_BYTES_MAX)
    return fatal(c, 400, "request body is over 500 KB");
  int over = 0;
  if (len <= ING_REQUEST_BYTES_MAX && !srv->draining)
    over = admission_status(srv, auth_tenant(c), (size_t)len);
  if (len > ING_REQUEST_BYTES_MAX)
    refuse(c, 400, "request body is over 500 KB");
  else if (srv->draining)
    refuse(c, 503, "server shutting down; retry later");
  else if (over == 429)
    refuse(c, 429, "tenant over its queue share; retry later");
  else if (over)
    refuse(c, 503, "server saturated; retry later");
  else if (len > 0)
    (void)body_reserve(c, (size_t)len, 1); /* a refusal when it fails */
  if (c->expect_continue && c->refuse_status == 0) {
    static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init(cont, sizeof cont - 1);
    uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (c->route != R_INGEST || c->refuse_status) {
    c->discarded += n;
    return c->discarded > DISCARD_BYTES_MAX
               ? fatal(c, 400, "request body is over 500 KB")
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

static int on_message_complete(llhttp_t *p) {
  (void)p;
  return HPE_PAUSED; /* invariant 1: one request at a time */
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
  ing_batch_free(&j->batch);
  free(j->body);
  free(j->evs);
  free(j->added);
  free(j->waits);
  free(j);
}

/* Splits the batch into new events and retries (see docs/INGEST.md). */
static int job_dedupe(job *j) {
  ing_dedupe *d = &j->t->dedupe;
  size_t n = j->batch.count;
  j->evs = malloc((n ? n : 1) * sizeof *j->evs);
  j->added = malloc((n ? n : 1) * sizeof *j->added);
  j->waits = malloc((n ? n : 1) * sizeof *j->waits);
  if (!j->evs || !j->added || !j->waits)
    return -1;
  for (size_t i = 0; i < n; i++) {
    const es_event *ev = &j->batch.events[i].ev;
    uint64_t h = ing_dedupe_hash(ev->message_id);
    if (ing_dedupe_has(d, h)) {
      j->waits[j->n_waits++] = h;
      j->dups++;
      continue;
    }
    if (ing_dedupe_add(d, h))
      return -1;
    j->added[j->n_added++] = h;
    j->evs[j->n++] = *ev;
  }
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
}

/* Gives the job's body bytes back to the budget.  (A parse's own working
 * memory, yajl's tree, is not counted: only libuv's few pool threads parse
 * at once, so it is bounded by their number, not by the queue.) */
static void job_body_release(job *j) {
  if (j->body)
    j->srv->held_bytes -= j->body_cap;
  free(j->body);
  j->body = NULL;
  j->body_cap = 0;
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
 * 0 when there is room for bytes more of t's events and one request. */
static int admission_status(const server *srv, const tenant *t, size_t bytes) {
  const config *cfg = &srv->cfg;
  if (t && (t->pending_bytes + bytes > cfg->tenant_bytes_max ||
            t->pending_jobs + 1 > cfg->tenant_jobs_max))
    return 429;
  if (srv->held_bytes + bytes > cfg->memory_budget_bytes ||
      srv->jobs_pending + srv->parsing + 1 > cfg->jobs_max)
    return 503;
  return 0;
}

/* Back on the loop after parse_work: key, admission, dedupe, hand-off. */
static void parse_done(uv_work_t *w, int status) {
  job *j = w->data;
  server *srv = j->srv;
  char key[AUTH_BYTES_MAX + 1];
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
    if (c->auth_len > 0 && basic_auth_key(c->auth, key, sizeof key) == 0)
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
  j->bytes = j->batch.bytes;
  srv->parsing--; /* admission counts this request once, below */
  int refuse_status = admission_status(srv, t, j->bytes);
  srv->parsing++;
  if (refuse_status) {
    job_refuse(j, refuse_status,
               refuse_status == 429 ? "tenant over its queue share; retry later"
                                    : "server saturated; retry later");
    return;
  }
  j->t = t;
  if (job_dedupe(j)) {
    for (size_t i = 0; i < j->n_added; i++)
      ing_dedupe_remove(&t->dedupe, j->added[i]);
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
  sched_submit(&srv->sched, &j->sj);
}

/*
 * A request was read completely: checks what the loop can check cheaply,
 * then hands the body to a pool thread (parse_work) so that the loop only
 * does I/O.  The body's bytes stay counted (now by the job).
 */
static void ingest(conn *c) {
  server *srv = c->srv;
  char key[AUTH_BYTES_MAX + 1];
  srv->m.bytes_received += c->body_len;
  if (srv->draining) {
    body_release(c);
    respond_error(c, 503, "server shutting down; retry later", 0);
    return;
  }
  int gzip = c->enc_len > 0 && strcasecmp(c->enc, "identity") != 0;
  if (gzip && strcasecmp(c->enc, "gzip") && strcasecmp(c->enc, "x-gzip") &&
      strcasecmp(c->enc, "deflate")) {
    body_release(c);
    respond_error(c, 400, "unsupported Content-Encoding (use gzip)", 0);
    return;
  }
  /* A Basic auth key names the tenant before any parsing. */
  const tenant *t = NULL;
  if (c->auth_len > 0 && basic_auth_key(c->auth, key, sizeof key) == 0 &&
      (t = server_tenant_for_key(srv, key)) == NULL) {
    body_release(c);
    respond_error(c, 401, "unknown write key", 0);
    return;
  }
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
  j->ingest_type = c->ingest_type;
  j->recv_us = ing_now_us();
  j->rng = job_seed(&srv->rng);
  j->body = c->body; /* ownership and its budget bytes move to the job */
  j->body_len = c->body_len;
  j->body_cap = c->body_cap;
  c->body = NULL;
  c->body_len = c->body_cap = 0;
  j->work.data = j;
  srv->parsing++;
  c->job = j;
  c->state = ST_WAIT;
  uv_timer_stop(&c->timer);
  if (uv_queue_work(srv->loop, &j->work, parse_work, parse_done)) {
    job_body_release(j);
    job_refuse(j, 503, "server saturated; retry later");
  }
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
    metrics_commit(&srv->m, sj->done_us - sj->submit_us);
  if (sj->status == ES_OK) {
    for (size_t i = 0; i < j->n_waits; i++)
      if (!ing_dedupe_has(&j->t->dedupe, j->waits[i])) {
        status = 503; /* the earlier copy failed: let the client retry */
        msg = "an earlier copy of a retried event failed; retry";
      }
    srv->m.events_stored += j->n;
    srv->m.events_duplicate += j->dups;
    if (j->batch.count > 0) /* the stored share of the compact JSON */
      srv->m.bytes_stored += j->bytes * j->n / j->batch.count;
  } else {
    for (size_t i = 0; i < j->n_added; i++)
      ing_dedupe_remove(&j->t->dedupe, j->added[i]);
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

static void answer_options(conn *c) {
  static const char extra[] =
      "Access-Control-Allow-Methods: POST, GET, OPTIONS\r\n"
      "Access-Control-Allow-Headers: Content-Type, Authorization, "
      "Content-Encoding, X-Retry-Count\r\n"
      "Access-Control-Max-Age: 86400\r\n";
  server *srv = c->srv;
  char head[512];
  c->close_after = !c->keep_alive || srv->draining;
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 204 No Content\r\n"
                   "Access-Control-Allow-Origin: *\r\n%s%s\r\n",
                   extra, c->close_after ? "Connection: close\r\n" : "");
  metrics_request(&srv->m, 204);
  write_req *w = malloc(sizeof *w + (size_t)n);
  if (w == NULL) {
    conn_close(c);
    return;
  }
  memcpy(w->data, head, (size_t)n);
  w->c = c;
  uv_buf_t buf = uv_buf_init(w->data, (unsigned)n);
  c->state = ST_WRITE;
  start_timer(c, srv->cfg.read_timeout_ms);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, after_write)) {
    free(w);
    conn_close(c);
  }
}

static void answer_metrics(conn *c) {
  server *srv = c->srv;
  seg_buf b;
  seg_buf_init(&b);
  if (metrics_render(&srv->m, &b, srv->jobs_pending + srv->parsing,
                     srv->held_bytes, srv->cfg.memory_budget_bytes,
                     srv->connections, srv->draining)) {
    seg_buf_free(&b);
    respond_error(c, 503, "out of memory", 0);
    return;
  }
  respond(c, 200, "text/plain; version=0.0.4", b.data, b.len, 0);
  seg_buf_free(&b);
}

/* Serves the request that was just read completely. */
static void dispatch(conn *c) {
  server *srv = c->srv;
  c->keep_alive = llhttp_should_keep_alive(&c->parser);
  if (c->refuse_status) {
    body_release(c);
    respond_error(c, c->refuse_status, c->refuse_msg, 0);
  } else if (c->route == R_OPTIONS) {
    answer_options(c);
  } else if (c->route == R_HEALTHZ) {
    respond_json(
        c, 200,
        srv->draining ? "{\"status\":\"draining\"}" : "{\"status\":\"ok\"}", 0);
  } else if (c->route == R_METRICS) {
    answer_metrics(c);
  } else {
    ingest(c);
  }
}

/* Parses bytes; serves a complete request, answers a broken one. */
static void feed(conn *c, const char *data, size_t len) {
  llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
  if (e == HPE_OK)
    return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  if (e == HPE_PAUSED) {
    const char *pos = llhttp_get_error_pos(&c->parser);
    c->rest_off = (size_t)(pos - c->rbuf);
    c->rest_len = (size_t)(data + len - pos);
    dispatch(c);
    return;
  }
  c->rest_len = 0;
  body_release(c);
  if (c->fatal_status)
    respond_error(c, c->fatal_status, c->fatal_msg, 1);
  else
    respond_error(c, 400, "malformed HTTP request", 1);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  conn *c = h->data;
  (void)hint;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  (void)buf;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread > 0)
    feed(c, c->rbuf, (size_t)nread);
}

/* ----------------------------------------------------------------------
 * Connection lifecycle
 * ---------------------------------------------------------------------- */

static void start_timer(conn *c, int64_t ms) {
  uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
}

static void on_timer(uv_timer_t *t) {
  conn *c = t->data;
  if (c->state == ST_READING) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    body_release(c);
    respond_error(c, 408, "request not received in time", 1);
  } else if (c->state != ST_WAIT) {
    conn_close(c); /* idle keep-alive, or a client not reading answers */
  }
}

static void on_close(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->handles_open > 0)
    return;
  server *srv = c->srv;
  srv->connections--;
  free(c);
  server_maybe_finish(srv);
}

static void conn_close(conn *c) {
  server *srv = c->srv;
  if (c->state == ST_CLOSING)
    return;
  c->state = ST_CLOSING;
  if (c->job)
    c->job->conn = NULL; /* invariant 2 */
  body_release(c);
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  uv_close((uv_handle_t *)&c->tcp, on_close);
  uv_close((uv_handle_t *)&c->timer, on_close);
}

static void on_connection(uv_stream_t *listener, int status) {
  server *srv = listener->data;
  if (status < 0)
    return;
  conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return;
  c->srv = srv;
  uv_tcp_init(srv->loop, &c->tcp);
  uv_timer_init(srv->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles_open = 2;
  srv->connections++;
  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) ||
      srv->connections > srv->cfg.connections_max) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
  c->state = ST_IDLE;
  start_timer(c, srv->cfg.idle_timeout_ms);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Binds and listens; *port_out is the bound port (for --listen ...:0).
 * The listener handle is initialised even on failure (close it). */
int http_listen(server *srv, const char *host, int port, int *port_out) {
  struct sockaddr_storage ss;
  int len = sizeof ss, rc;
  if ((rc = uv_tcp_init(srv->loop, &srv->listener)))
    return rc;
  srv->listener.data = srv;
  llhttp_settings_init(&settings);
  settings.on_message_begin = on_message_begin;
  settings.on_url = on_url;
  settings.on_header_field = on_header_field;
  settings.on_header_field_complete = on_header_field_complete;
  settings.on_header_value = on_header_value;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
  if (strchr(host, ':'))
    rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
  else
    rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
  if (rc)
    return rc;
  if ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0)) ||
      (rc = uv_listen((uv_stream_t *)&srv->listener, LISTEN_BACKLOG,
                      on_connection)) ||
      (rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len)))
    return rc;
  *port_out =
      ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
  return 0;
}

/* SIGTERM: stop accepting, close idle connections, let the rest finish. */
void http_drain(server *srv) {
  srv->draining = 1;
  uv_close((uv_handle_t *)&srv->listener, NULL);
  for (conn *c = srv->conns, *next; c; c = next) {
    next = c->next;
    if (c->state == ST_IDLE && c->rest_len == 0)
      conn_close(c);
  }
}

/* Closes every connection at once (the drain deadline passed). */
void http_close_all(server *srv) {
  for (conn *c = srv->conns, *next; c; c = next) {
    next = c->next;
    conn_close(c);
  }
}
