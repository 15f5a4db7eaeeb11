/*
 * hconn.c -- HTTP/1.1 connections shared by es-ingestd and es-queryd
 * (hconn.h says what and its invariants).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "hconn.h"

#define LISTEN_BACKLOG 511

static void feed(hconn *c, const char *data, size_t len);
static void on_timer(uv_timer_t *t);

static void start_timer(hconn *c, int64_t ms) {
  uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
}

/* ----------------------------------------------------------------------
 * Reading
 * ---------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  hconn *c = h->data;
  (void)hint;
  *buf = uv_buf_init(c->host->rbuf, (unsigned)c->host->ops->rbuf_bytes);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  hconn *c = s->data;
  (void)buf;
  if (nread < 0) {
    hconn_close(c);
    return;
  }
  if (nread > 0 && c->state != HC_STREAM) /* streams ignore what comes */
    feed(c, c->host->rbuf, (size_t)nread);
}

void hconn_read_start(hconn *c) {
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Parses bytes; serves a complete request, answers a broken one. */
static void feed(hconn *c, const char *data, size_t len) {
  llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
  if (e == HPE_OK)
    return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  if (e == HPE_PAUSED) {
    const char *pos = llhttp_get_error_pos(&c->parser);
    size_t n = (size_t)(data + len - pos);
    if (n > 0) { /* invariant 7: the shared buffer is read into next */
      if ((c->rest = malloc(n)) == NULL) {
        hconn_close(c);
        return;
      }
      memcpy(c->rest, pos, n);
    }
    c->rest_len = n;
    c->keep_alive = llhttp_should_keep_alive(&c->parser);
    c->host->ops->dispatch(c);
    return;
  }
  c->rest_len = 0;
  if (!c->fatal_status)
    hconn_fatal(c, 400, "malformed HTTP request");
  c->host->ops->fail(c, c->fatal_status, c->fatal_msg); /* invariant 4 */
}

/* ----------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------- */

typedef struct write_req {
  uv_write_t req;
  hconn *c;
  int last; /* the end of an answer: go IDLE or close after it */
  char data[];
} write_req;

static void after_write(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  hconn *c = w->c;
  int last = w->last;
  free(w);
  if (c->state == HC_CLOSING)
    return;
  if (status < 0) {
    hconn_close(c);
    return;
  }
  if (!last)
    return;
  if (c->close_after) {
    hconn_close(c);
    return;
  }
  c->state = HC_IDLE;
  start_timer(c, c->host->idle_timeout_ms);
  llhttp_resume(&c->parser);
  if (c->rest_len > 0) {  /* pipelined bytes read before (invariant 1) */
    char *rest = c->rest; /* feed may keep a new rest of its own */
    size_t n = c->rest_len;
    c->rest = NULL;
    c->rest_len = 0;
    feed(c, rest, n);
    free(rest);
  }
  /* Unless those bytes held a whole request (now being served), read on:
   * they may have been only the start of one. */
  if (c->state == HC_IDLE || c->state == HC_READING)
    hconn_read_start(c);
}

int hconn_write(hconn *c, const char *head, size_t head_len, const char *body,
                size_t body_len, int last) {
  write_req *w = malloc(sizeof *w + head_len + body_len);
  if (w == NULL) {
    hconn_close(c);
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
    hconn_close(c);
    return -1;
  }
  return 0;
}

void hconn_answer(hconn *c, const char *head, size_t head_len, const char *body,
                  size_t body_len) {
  c->state = HC_WRITE;
  start_timer(c, c->host->read_timeout_ms);
  (void)hconn_write(c, head, head_len, body, body_len, 1);
}

/* ----------------------------------------------------------------------
 * llhttp callbacks
 * ---------------------------------------------------------------------- */

int hconn_fatal(hconn *c, int status, const char *msg) {
  c->fatal_status = status;
  c->fatal_msg = msg;
  return -1;
}

static int count_header_bytes(hconn *c, size_t n) {
  c->header_bytes += n;
  if (c->header_bytes > HCONN_HEADER_BYTES_MAX)
    return hconn_fatal(c, 431, "request line and headers are over 16 KB");
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  hconn *c = p->data;
  c->state = HC_READING;
  c->url_len = c->header_bytes = c->hname_len = c->auth_len = 0;
  c->url[0] = c->auth[0] = '\0';
  c->hcur = HC_H_NONE;
  c->host->ops->message_begin(c);
  start_timer(c, c->host->read_timeout_ms); /* the whole request */
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  hconn *c = p->data;
  if (count_header_bytes(c, n))
    return -1;
  if (c->url_len + n > c->host->ops->url_max)
    return hconn_fatal(c, 431, c->host->ops->url_msg);
  memcpy(c->url + c->url_len, at, n);
  c->url_len += n;
  c->url[c->url_len] = '\0';
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  hconn *c = p->data;
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
  hconn *c = p->data;
  size_t n = c->hname_len;
  c->hcur = HC_H_NONE;
  if (n < sizeof c->hname) {
    c->hname[n] = '\0';
    if (strcmp(c->hname, "authorization") == 0)
      c->hcur = HC_H_AUTH;
    else if (c->host->ops->header)
      c->hcur = c->host->ops->header(c, c->hname);
  }
  c->hname_len = 0;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  hconn *c = p->data;
  if (count_header_bytes(c, n))
    return -1;
  if (c->hcur == HC_H_AUTH) {
    if (c->auth_len + n > HCONN_AUTH_BYTES_MAX) {
      if (c->host->ops->auth_fatal)
        return hconn_fatal(c, 431, "Authorization header over 1 KB");
      n = HCONN_AUTH_BYTES_MAX - c->auth_len;
      c->auth[0] = '\0'; /* truncated: make it unusable rather than wrong */
    }
    memcpy(c->auth + c->auth_len, at, n);
    c->auth_len += n;
    c->auth[c->auth_len] = '\0';
  } else if (c->hcur != HC_H_NONE) {
    c->host->ops->header_value(c, c->hcur, at, n);
  }
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  hconn *c = p->data;
  return c->host->ops->headers_complete(c);
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  hconn *c = p->data;
  return c->host->ops->body(c, at, n);
}

static int on_message_complete(llhttp_t *p) {
  (void)p;
  return HPE_PAUSED; /* invariant 1: one request at a time */
}

/* ----------------------------------------------------------------------
 * Connection lifecycle
 * ---------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
  hconn *c = t->data;
  if (c->state == HC_READING) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    hconn_fatal(c, 408, "request not received in time");
    c->host->ops->fail(c, c->fatal_status, c->fatal_msg);
  } else if (c->state != HC_WAIT && c->state != HC_STREAM) {
    hconn_close(c); /* idle keep-alive, or a client not reading answers */
  }
}

static void on_close(uv_handle_t *h) {
  hconn *c = h->data;
  if (--c->handles_open > 0)
    return;
  hconn_host *host = c->host;
  host->connections--;
  if (host->ops->freed)
    host->ops->freed(c);
  free(c->rest);
  free(c);
  host->ops->finish(host->srv);
}

void hconn_close(hconn *c) {
  hconn_host *host = c->host;
  if (c->state == HC_CLOSING)
    return;
  if (host->ops->closing)
    host->ops->closing(c); /* invariant 2 */
  c->state = HC_CLOSING;
  if (c->prev)
    c->prev->next = c->next;
  else
    host->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  uv_close((uv_handle_t *)&c->tcp, on_close);
  uv_close((uv_handle_t *)&c->timer, on_close);
}

static void on_connection(uv_stream_t *listener, int status) {
  hconn_host *host = listener->data;
  const hconn_ops *ops = host->ops;
  if (status < 0)
    return;
  hconn *c = calloc(1, ops->conn_size + ops->url_max + 1);
  if (c == NULL)
    return;
  c->host = host;
  c->srv = host->srv;
  c->url = (char *)c + ops->conn_size;
  uv_tcp_init(host->loop, &c->tcp);
  uv_timer_init(host->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles_open = 2;
  host->connections++;
  c->next = host->conns;
  if (host->conns)
    host->conns->prev = c;
  host->conns = c;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) ||
      host->connections > host->connections_max) {
    hconn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  llhttp_init(&c->parser, HTTP_REQUEST, &host->settings);
  c->parser.data = c;
  c->state = HC_IDLE;
  start_timer(c, host->idle_timeout_ms);
  hconn_read_start(c);
}

int hconn_listen(hconn_host *h, uv_loop_t *loop, const hconn_ops *ops,
                 void *srv, hconn_limits lim, const char *host, int port,
                 int *port_out) {
  struct sockaddr_storage ss;
  int len = sizeof ss, rc;
  h->loop = loop;
  h->ops = ops;
  h->srv = srv;
  h->connections_max = lim.connections_max;
  h->read_timeout_ms = lim.read_timeout_ms;
  h->idle_timeout_ms = lim.idle_timeout_ms;
  if ((rc = uv_tcp_init(h->loop, &h->listener)))
    return rc;
  if (ops->rbuf_bytes == 0 || ops->rbuf_bytes > HCONN_RBUF_BYTES_MAX)
    return UV_EINVAL; /* invariant 7 */
  h->listener_open = 1;
  h->listener.data = h;
  llhttp_settings_init(&h->settings);
  h->settings.on_message_begin = on_message_begin;
  h->settings.on_url = on_url;
  h->settings.on_header_field = on_header_field;
  h->settings.on_header_field_complete = on_header_field_complete;
  h->settings.on_header_value = on_header_value;
  h->settings.on_headers_complete = on_headers_complete;
  h->settings.on_body = on_body;
  h->settings.on_message_complete = on_message_complete;
  if (strchr(host, ':'))
    rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
  else
    rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
  if (rc)
    return rc;
  if ((rc = uv_tcp_bind(&h->listener, (struct sockaddr *)&ss, 0)) ||
      (rc = uv_listen((uv_stream_t *)&h->listener, LISTEN_BACKLOG,
                      on_connection)) ||
      (rc = uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &len)))
    return rc;
  *port_out =
      ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
  return 0;
}

void hconn_drain(hconn_host *h) {
  if (h->listener_open)
    uv_close((uv_handle_t *)&h->listener, NULL);
  h->listener_open = 0;
  for (hconn *c = h->conns, *next; c; c = next) {
    next = c->next;
    if ((c->state == HC_IDLE && c->rest_len == 0) || c->state == HC_STREAM)
      hconn_close(c);
  }
}

void hconn_close_all(hconn_host *h) {
  for (hconn *c = h->conns, *next; c; c = next) {
    next = c->next;
    hconn_close(c);
  }
}
