/*
 * http.c -- connections, HTTP/1.1 parsing (llhttp) and answers of
 * es-queryd.  The connection plumbing (accept, read, llhttp, pipelining,
 * timers, writes, close) is cmd/common/hconn.c, with its invariants
 * (hconn.h), shared with the ingest service: one request at a time per
 * connection, pipelined bytes kept for after the answer.  This file is what is
 * es-queryd's own, as hconn_ops hooks, and its event streams.
 *
 *   IDLE --first byte--> READING --message complete--> dispatch (api.c)
 *   dispatch: answered at once                          -> WRITE
 *             a library call in the thread pool          -> WAIT
 *             GET /v1/stream                             -> STREAM
 *   WAIT --work done--> WRITE --written--> IDLE (keep-alive) or closed
 *   STREAM: messages are written as they come, until the client goes
 *           away, stops reading (cut at STREAM_QUEUE_BYTES_MAX) or the
 *           server drains.
 *
 * Invariants:
 *  1. llhttp is paused at the end of every message; bytes after it wait
 *     in rest[0..rest_len) until the answer is written (hconn.h,
 *     invariant 1).
 *  2. A connection in WAIT owns no buffer the work uses: the work copied
 *     what it needs (server.h, invariant 2).
 *  3. A STREAM connection is in its tenant's list of streams exactly
 *     while it is open.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "common/hconn.h"
#include "common/route.h"
#include "common/status_http.h"
#include "server.h"

#define READ_BUF_BYTES 16384
#define URL_BYTES_MAX 4096
#define BODY_BYTES_MAX (64 * 1024)
#define STREAM_QUEUE_BYTES_MAX (1u << 20)

struct qd_conn {
  hconn h;                                   /* first: the hooks get &h */
  struct qd_conn *stream_prev, *stream_next; /* invariant 3 */
  qd_tenant *stream_tenant;
  char *body;
  size_t body_len;
  void *work; /* api.c's, while in WAIT */
};

/* ----------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------- */

void qd_respond(qd_conn *c, int status, const char *type, const char *body,
                size_t len, const char *extra_headers) {
  qd_server *srv = c->h.srv;
  char head[1024], retry[32] = "";
  if (c->h.state == HC_CLOSING || c->h.state == HC_STREAM)
    return;
  c->work = NULL;
  c->h.close_after = !c->h.keep_alive || srv->draining || c->h.fatal_status;
  if (http_status_retry_after_s(status))
    snprintf(retry, sizeof retry, "Retry-After: %d\r\n",
             http_status_retry_after_s(status));
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                   "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                   "X-Content-Type-Options: nosniff\r\n%s%s%s\r\n",
                   status, http_status_reason(status), type, len, retry,
                   extra_headers ? extra_headers : "",
                   c->h.close_after ? "Connection: close\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof head) {
    hconn_close(&c->h);
    return;
  }
  qd_metrics_request(&srv->m, status);
  hconn_answer(&c->h, head, (size_t)n, body, len);
}

/* {"error":msg} */
void qd_respond_error(qd_conn *c, int status, const char *msg) {
  qd_respond_allow(c, status, msg, NULL);
}

void qd_respond_allow(qd_conn *c, int status, const char *msg,
                      const char *allow) {
  char extra[64 + HTTP_ROUTE_ALLOW_SIZE] = "";
  seg_buf b;
  if (status == 401)
    snprintf(extra, sizeof extra, "WWW-Authenticate: Bearer\r\n");
  else if (allow)
    snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
  seg_buf_init(&b);
  if (seg_buf_put(&b, "{\"error\":", 9) ||
      seg_buf_put_json_string(&b, msg, strlen(msg)) ||
      seg_buf_put(&b, "}", 1)) {
    seg_buf_free(&b);
    hconn_close(&c->h);
    return;
  }
  qd_respond(c, status, "application/json", b.data, b.len,
             extra[0] ? extra : NULL);
  seg_buf_free(&b);
}

qd_conn *qd_conn_stream_next(qd_conn *c) { return c->stream_next; }

void qd_conn_set_work(qd_conn *c, void *work) {
  c->work = work;
  c->h.state = HC_WAIT;
  uv_timer_stop(&c->h.timer);
}

/* ----------------------------------------------------------------------
 * Event streams
 * ---------------------------------------------------------------------- */

int qd_stream_start(qd_conn *c, qd_tenant *t) {
  static const char head[] = "HTTP/1.1 200 OK\r\n"
                             "Content-Type: text/event-stream\r\n"
                             "Cache-Control: no-store\r\n"
                             "X-Accel-Buffering: no\r\n"
                             "Connection: keep-alive\r\n\r\n"
                             "retry: 2000\n\n";
  qd_server *srv = c->h.srv;
  if (srv->streams >= srv->cfg.streams_max) {
    qd_respond_error(c, 503, "too many streams; retry later");
    return -1;
  }
  qd_metrics_request(&srv->m, 200);
  c->h.state = HC_STREAM;
  uv_timer_stop(&c->h.timer);
  c->stream_tenant = t;
  c->stream_next = t->streams;
  if (t->streams)
    t->streams->stream_prev = c;
  t->streams = c;
  t->streams_count++;
  srv->streams++;
  /* Keep reading: that is how a client going away is noticed. */
  hconn_read_start(&c->h);
  return hconn_write(&c->h, head, sizeof head - 1, NULL, 0, 0);
}

void qd_stream_send(qd_conn *c, const char *data, size_t len) {
  qd_server *srv = c->h.srv;
  if (c->h.state != HC_STREAM)
    return;
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->h.tcp) >
      STREAM_QUEUE_BYTES_MAX) {
    srv->m.streams_cut++;
    hconn_close(&c->h); /* a client that does not read is cut, not buffered */
    return;
  }
  srv->m.stream_messages++;
  (void)hconn_write(&c->h, data, len, NULL, 0, 0);
}

static void stream_unlink(qd_conn *c) {
  qd_tenant *t = c->stream_tenant;
  if (t == NULL || c->h.state != HC_STREAM)
    return;
  if (c->stream_prev)
    c->stream_prev->stream_next = c->stream_next;
  else
    t->streams = c->stream_next;
  if (c->stream_next)
    c->stream_next->stream_prev = c->stream_prev;
  t->streams_count--;
  ((qd_server *)c->h.srv)->streams--;
}

/* ----------------------------------------------------------------------
 * hconn hooks: the request's body
 * ---------------------------------------------------------------------- */

static void on_message_begin(hconn *h) {
  qd_conn *c = (qd_conn *)h;
  free(c->body);
  c->body = NULL;
  c->body_len = 0;
}

static int on_headers_complete(hconn *h) {
  llhttp_t *p = &h->parser;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > BODY_BYTES_MAX)
    return hconn_fatal(h, 413, "request body is over 64 KB");
  return 0;
}

static int on_body(hconn *h, const char *at, size_t n) {
  qd_conn *c = (qd_conn *)h;
  if (c->body_len + n > BODY_BYTES_MAX)
    return hconn_fatal(h, 413, "request body is over 64 KB");
  if (c->body == NULL && (c->body = malloc(BODY_BYTES_MAX + 1)) == NULL)
    return hconn_fatal(h, 503, "out of memory");
  memcpy(c->body + c->body_len, at, n);
  c->body_len += n;
  c->body[c->body_len] = '\0';
  return 0;
}

/* ----------------------------------------------------------------------
 * Dispatch and reading
 * ---------------------------------------------------------------------- */

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  ch = tolower(ch);
  return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

int qd_url_decode(const char *src, size_t n, char *dst) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (src[i] != '%') {
      dst[o++] = src[i];
      continue;
    }
    int hi = i + 2 < n ? hexval((unsigned char)src[i + 1]) : -1;
    int lo = i + 2 < n ? hexval((unsigned char)src[i + 2]) : -1;
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
      return -1;
    dst[o++] = (char)(hi * 16 + lo);
    i += 2;
  }
  dst[o] = '\0';
  return 0;
}

static void dispatch(hconn *h) {
  qd_conn *c = (qd_conn *)h;
  const char *url = h->url;
  char path[URL_BYTES_MAX + 1];
  size_t path_len = strcspn(url, "?#");
  memcpy(path, url, path_len); /* raw: api.c decodes each parameter */
  path[path_len] = '\0';
  qd_request rq = {.method = llhttp_get_method(&h->parser),
                   .path = path,
                   .query = url[path_len] == '?' ? url + path_len + 1 : "",
                   .body = c->body ? c->body : "",
                   .body_len = c->body_len,
                   .bearer = NULL};
  if (h->auth_len > 7 && strncasecmp(h->auth, "Bearer ", 7) == 0) {
    const char *tok = h->auth + 7;
    while (*tok == ' ')
      tok++;
    rq.bearer = tok;
  }
  qd_api_dispatch(h->srv, c, &rq);
  free(c->body); /* the work copied what it needs (invariant 2) */
  c->body = NULL;
  c->body_len = 0;
}

/* A protocol error: answer and close (hconn.h, invariant 4). */
static void fail(hconn *h, int status, const char *msg) {
  qd_respond_error((qd_conn *)h, status, msg);
}

/* ----------------------------------------------------------------------
 * Connection lifecycle
 * ---------------------------------------------------------------------- */

static void on_closing(hconn *h) {
  qd_conn *c = (qd_conn *)h;
  stream_unlink(c); /* invariant 3: while the state is still STREAM */
  if (c->work)
    qd_api_work_detach(c->work); /* server.h, invariant 2 */
  c->work = NULL;
}

static void on_freed(hconn *h) { free(((qd_conn *)h)->body); }

static void on_gone(void *srv) { qd_maybe_finish(srv); }

static const hconn_ops ops = {
    .conn_size = sizeof(qd_conn),
    .url_max = URL_BYTES_MAX,
    .url_msg = "URL over 4 KB",
    .rbuf_bytes = READ_BUF_BYTES,
    .auth_fatal = 1,
    .message_begin = on_message_begin,
    .headers_complete = on_headers_complete,
    .body = on_body,
    .dispatch = dispatch,
    .fail = fail,
    .closing = on_closing,
    .freed = on_freed,
    .finish = on_gone,
};

int qd_http_listen(qd_server *srv, const char *host, int port, int *port_out) {
  hconn_limits lim = {srv->cfg.connections_max, srv->cfg.read_timeout_ms,
                      srv->cfg.idle_timeout_ms};
  return hconn_listen(&srv->http, srv->loop, &ops, srv, lim, host, port,
                      port_out);
}

/* SIGTERM: stop accepting; close idle connections and streams; requests
 * in the pool finish and are answered with "Connection: close". */
void qd_http_drain(qd_server *srv) {
  srv->draining = 1;
  hconn_drain(&srv->http);
}

void qd_http_close_all(qd_server *srv) { hconn_close_all(&srv->http); }
