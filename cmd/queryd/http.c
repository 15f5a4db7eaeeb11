/*
 * http.c -- connections, HTTP/1.1 parsing (llhttp) and answers of
 * es-queryd; the one place where a connection's lifecycle lives.  The
 * shape follows es-ingestd's http.c (cmd/ingestd/http.c): one request at
 * a time per connection, pipelined bytes kept for after the answer.
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
 *     in rbuf[rest_off..+rest_len] until the answer is written.
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

#include "server.h"
#include "svc.h"

#define READ_BUF_BYTES 16384
#define HEADER_BYTES_MAX (16 * 1024)
#define URL_BYTES_MAX 4096
#define AUTH_BYTES_MAX 1024
#define BODY_BYTES_MAX (64 * 1024)
#define STREAM_QUEUE_BYTES_MAX (1u << 20)
#define LISTEN_BACKLOG 511

enum { ST_IDLE, ST_READING, ST_WAIT, ST_WRITE, ST_STREAM, ST_CLOSING };

struct qd_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  llhttp_t parser;
  qd_server *srv;
  struct qd_conn *prev, *next;
  struct qd_conn *stream_prev, *stream_next; /* invariant 3 */
  qd_tenant *stream_tenant;
  int state, handles_open, close_after, keep_alive;
  char url[URL_BYTES_MAX + 1];
  size_t url_len, header_bytes;
  char hname[32];
  size_t hname_len;
  int hauth;
  char auth[AUTH_BYTES_MAX + 1];
  size_t auth_len;
  char *body;
  size_t body_len;
  int fatal_status;
  const char *fatal_msg;
  void *work; /* api.c's, while in WAIT */
  size_t rest_off, rest_len;
  char rbuf[READ_BUF_BYTES];
};

static llhttp_settings_t settings;
static void conn_close(qd_conn *c);
static void feed(qd_conn *c, const char *data, size_t len);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);

static void start_timer(qd_conn *c, int64_t ms) {
  uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
}

/* ----------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------- */


typedef struct write_req {
  uv_write_t req;
  qd_conn *c;
  int last; /* the end of an answer: go IDLE or close after it */
  char data[];
} write_req;

static void after_write(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  qd_conn *c = w->c;
  int last = w->last;
  free(w);
  if (c->state == ST_CLOSING)
    return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  if (!last)
    return;
  if (c->close_after) {
    conn_close(c);
    return;
  }
  c->state = ST_IDLE;
  start_timer(c, c->srv->cfg.idle_timeout_ms);
  llhttp_resume(&c->parser);
  if (c->rest_len > 0) { /* invariant 1 */
    size_t off = c->rest_off, n = c->rest_len;
    c->rest_len = 0;
    feed(c, c->rbuf + off, n);
  }
  if (c->state == ST_IDLE || c->state == ST_READING)
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Writes head + body as one buffer; 0 or -1 (then the conn is closed). */
static int write_bytes(qd_conn *c, const char *head, size_t head_len,
                       const char *body, size_t body_len, int last) {
  write_req *w = malloc(sizeof *w + head_len + body_len);
  if (w == NULL) {
    conn_close(c);
    return -1;
  }
  memcpy(w->data, head, head_len);
  if (body_len)
    memcpy(w->data + head_len, body, body_len);
  w->c = c;
  w->last = last;
  uv_buf_t buf = uv_buf_init(w->data, (unsigned)(head_len + body_len));
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, after_write)) {
    free(w);
    conn_close(c);
    return -1;
  }
  return 0;
}

void qd_respond(qd_conn *c, int status, const char *type, const char *body,
                size_t len, const char *extra_headers) {
  qd_server *srv = c->srv;
  char head[1024];
  if (c->state == ST_CLOSING || c->state == ST_STREAM)
    return;
  c->work = NULL;
  c->close_after = !c->keep_alive || srv->draining || c->fatal_status;
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                   "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                   "X-Content-Type-Options: nosniff\r\n%s%s\r\n",
                   status, svc_http_reason(status), type, len,
                   extra_headers ? extra_headers : "",
                   c->close_after ? "Connection: close\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof head) {
    conn_close(c);
    return;
  }
  qd_metrics_request(&srv->m, status);
  c->state = ST_WRITE;
  start_timer(c, srv->cfg.read_timeout_ms);
  (void)write_bytes(c, head, (size_t)n, body, len, 1);
}

/* {"error":msg} */
void qd_respond_error(qd_conn *c, int status, const char *msg) {
  seg_buf b;
  seg_buf_init(&b);
  if (seg_buf_put(&b, "{\"error\":", 9) ||
      seg_buf_put_json_string(&b, msg, strlen(msg)) ||
      seg_buf_put(&b, "}", 1)) {
    seg_buf_free(&b);
    conn_close(c);
    return;
  }
  qd_respond(c, status, "application/json", b.data, b.len,
             status == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL);
  seg_buf_free(&b);
}

qd_conn *qd_conn_stream_next(qd_conn *c) { return c->stream_next; }

void qd_conn_set_work(qd_conn *c, void *work) {
  c->work = work;
  c->state = ST_WAIT;
  uv_timer_stop(&c->timer);
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
  qd_server *srv = c->srv;
  if (srv->streams >= srv->cfg.streams_max) {
    qd_respond_error(c, 503, "too many streams; retry later");
    return -1;
  }
  qd_metrics_request(&srv->m, 200);
  c->state = ST_STREAM;
  uv_timer_stop(&c->timer);
  c->stream_tenant = t;
  c->stream_next = t->streams;
  if (t->streams)
    t->streams->stream_prev = c;
  t->streams = c;
  t->streams_count++;
  srv->streams++;
  /* Keep reading: that is how a client going away is noticed. */
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  return write_bytes(c, head, sizeof head - 1, NULL, 0, 0);
}

void qd_stream_send(qd_conn *c, const char *data, size_t len) {
  if (c->state != ST_STREAM)
    return;
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >
      STREAM_QUEUE_BYTES_MAX) {
    c->srv->m.streams_cut++;
    conn_close(c); /* a client that does not read is cut, not buffered */
    return;
  }
  c->srv->m.stream_messages++;
  (void)write_bytes(c, data, len, NULL, 0, 0);
}

static void stream_unlink(qd_conn *c) {
  qd_tenant *t = c->stream_tenant;
  if (t == NULL || c->state != ST_STREAM)
    return;
  if (c->stream_prev)
    c->stream_prev->stream_next = c->stream_next;
  else
    t->streams = c->stream_next;
  if (c->stream_next)
    c->stream_next->stream_prev = c->stream_prev;
  t->streams_count--;
  c->srv->streams--;
}

/* ----------------------------------------------------------------------
 * llhttp callbacks
 * ---------------------------------------------------------------------- */

static int fatal(qd_conn *c, int status, const char *msg) {
  c->fatal_status = status;
  c->fatal_msg = msg;
  return -1;
}

static int count_header_bytes(qd_conn *c, size_t n) {
  c->header_bytes += n;
  return c->header_bytes > HEADER_BYTES_MAX
             ? fatal(c, 431, "request line and headers are over 16 KB")
             : 0;
}

static int on_message_begin(llhttp_t *p) {
  qd_conn *c = p->data;
  c->state = ST_READING;
  c->url_len = c->header_bytes = c->hname_len = c->auth_len = 0;
  c->url[0] = c->auth[0] = '\0';
  c->hauth = 0;
  free(c->body);
  c->body = NULL;
  c->body_len = 0;
  start_timer(c, c->srv->cfg.read_timeout_ms);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  qd_conn *c = p->data;
  if (count_header_bytes(c, n))
    return -1;
  if (c->url_len + n > URL_BYTES_MAX)
    return fatal(c, 431, "URL over 4 KB");
  memcpy(c->url + c->url_len, at, n);
  c->url_len += n;
  c->url[c->url_len] = '\0';
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  qd_conn *c = p->data;
  if (count_header_bytes(c, n))
    return -1;
  for (size_t i = 0; i < n; i++)
    if (c->hname_len < sizeof c->hname - 1)
      c->hname[c->hname_len++] = (char)tolower((unsigned char)at[i]);
    else
      c->hname_len = sizeof c->hname;
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  qd_conn *c = p->data;
  c->hauth = c->hname_len == 13 && memcmp(c->hname, "authorization", 13) == 0;
  c->hname_len = 0;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  qd_conn *c = p->data;
  if (count_header_bytes(c, n))
    return -1;
  if (c->hauth) {
    if (c->auth_len + n > AUTH_BYTES_MAX)
      return fatal(c, 431, "Authorization header over 1 KB");
    memcpy(c->auth + c->auth_len, at, n);
    c->auth_len += n;
    c->auth[c->auth_len] = '\0';
  }
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  qd_conn *c = p->data;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > BODY_BYTES_MAX)
    return fatal(c, 413, "request body is over 64 KB");
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  qd_conn *c = p->data;
  if (c->body_len + n > BODY_BYTES_MAX)
    return fatal(c, 413, "request body is over 64 KB");
  if (c->body == NULL && (c->body = malloc(BODY_BYTES_MAX + 1)) == NULL)
    return fatal(c, 503, "out of memory");
  memcpy(c->body + c->body_len, at, n);
  c->body_len += n;
  c->body[c->body_len] = '\0';
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  (void)p;
  return HPE_PAUSED; /* invariant 1 */
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

static void dispatch(qd_conn *c) {
  char path[URL_BYTES_MAX + 1];
  size_t path_len = strcspn(c->url, "?#");
  c->keep_alive = llhttp_should_keep_alive(&c->parser);
  memcpy(path, c->url, path_len); /* raw: api.c decodes each parameter */
  path[path_len] = '\0';
  qd_request rq = {.method = llhttp_get_method(&c->parser),
                   .path = path,
                   .query =
                       c->url[path_len] == '?' ? c->url + path_len + 1 : "",
                   .body = c->body ? c->body : "",
                   .body_len = c->body_len,
                   .bearer = NULL};
  if (c->auth_len > 7 && strncasecmp(c->auth, "Bearer ", 7) == 0) {
    const char *tok = c->auth + 7;
    while (*tok == ' ')
      tok++;
    rq.bearer = tok;
  }
  qd_api_dispatch(c->srv, c, &rq);
  free(c->body); /* the work copied what it needs (invariant 2) */
  c->body = NULL;
  c->body_len = 0;
}

static void feed(qd_conn *c, const char *data, size_t len) {
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
  if (!c->fatal_status)
    c->fatal_status = 400, c->fatal_msg = "malformed HTTP request";
  qd_respond_error(c, c->fatal_status, c->fatal_msg);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  qd_conn *c = h->data;
  (void)hint;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  qd_conn *c = s->data;
  (void)buf;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread > 0 && c->state != ST_STREAM) /* streams ignore what comes */
    feed(c, c->rbuf, (size_t)nread);
}

/* ----------------------------------------------------------------------
 * Connection lifecycle
 * ---------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
  qd_conn *c = t->data;
  if (c->state == ST_READING) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->fatal_status = 408;
    qd_respond_error(c, 408, "request not received in time");
  } else if (c->state != ST_WAIT && c->state != ST_STREAM) {
    conn_close(c);
  }
}

static void on_close(uv_handle_t *h) {
  qd_conn *c = h->data;
  if (--c->handles_open > 0)
    return;
  qd_server *srv = c->srv;
  srv->connections--;
  free(c->body);
  free(c);
  qd_maybe_finish(srv);
}

static void conn_close(qd_conn *c) {
  qd_server *srv = c->srv;
  if (c->state == ST_CLOSING)
    return;
  stream_unlink(c);
  c->state = ST_CLOSING;
  if (c->work)
    qd_api_work_detach(c->work); /* server.h, invariant 2 */
  c->work = NULL;
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
  qd_server *srv = listener->data;
  if (status < 0)
    return;
  qd_conn *c = calloc(1, sizeof *c);
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

int qd_http_listen(qd_server *srv, const char *host, int port, int *port_out) {
  struct sockaddr_storage ss;
  int len = sizeof ss, rc;
  if ((rc = uv_tcp_init(srv->loop, &srv->listener)))
    return rc;
  srv->listener_open = 1;
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

/* SIGTERM: stop accepting; close idle connections and streams; requests
 * in the pool finish and are answered with "Connection: close". */
void qd_http_drain(qd_server *srv) {
  srv->draining = 1;
  if (srv->listener_open)
    uv_close((uv_handle_t *)&srv->listener, NULL);
  srv->listener_open = 0;
  for (qd_conn *c = srv->conns, *next; c; c = next) {
    next = c->next;
    if ((c->state == ST_IDLE && c->rest_len == 0) || c->state == ST_STREAM)
      conn_close(c);
  }
}

void qd_http_close_all(qd_server *srv) {
  for (qd_conn *c = srv->conns, *next; c; c = next) {
    next = c->next;
    conn_close(c);
  }
}
