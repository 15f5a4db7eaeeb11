/*
 * hconn.h -- the HTTP/1.1 connection plumbing es-ingestd and es-queryd
 * share: accepting, reading, llhttp (request line and headers with their
 * caps, Authorization), pipelining, timers, writing answers, closing,
 * listening, draining.  One copy, in es-ingestd's core library, which
 * es-queryd links anyway.  Each server embeds an hconn as the FIRST member
 * of its connection struct and an hconn_host in its server struct, and
 * gives an hconn_ops table for what is its own (routes, bodies, work).
 *
 *   IDLE --first byte--> READING --message complete--> ops->dispatch
 *   dispatch: answered at once (hconn_answer)                 -> WRITE
 *             work elsewhere (the server sets WAIT)            -> WAIT
 *             an event stream (queryd only)                    -> STREAM
 *   WAIT --the server answers--> WRITE
 *   WRITE --the last write done--> IDLE (keep-alive) or CLOSING
 *
 * Invariants:
 *
 *  1. At most one request per connection is being served.  llhttp is
 *     paused at the end of each message (on_message_complete returns
 *     HPE_PAUSED) and reading stops; pipelined bytes already read wait in
 *     rest[0..rest_len) and are parsed after the answer is written.  So answers
 * go out in request order.
 *  2. A connection is in its host's list (host->conns) from accept until
 *     hconn_close, and counted in host->connections until both of its
 *     handles are closed; then ops->freed, free() and ops->finish run, in
 *     that order.  ops->closing runs once, before the state is CLOSING, so
 *     that work that outlives the connection can be detached from it.
 *  3. The request line and headers are at most HCONN_HEADER_BYTES_MAX
 *     bytes, the URL at most ops->url_max (both 431, and close).  An
 *     Authorization value over HCONN_AUTH_BYTES_MAX is a 431 too when
 *     ops->auth_fatal, else it is kept as "" (unusable rather than wrong).
 *  4. Protocol errors (malformed HTTP, the caps of 3, a hook's
 *     hconn_fatal, the read timeout) are answered through ops->fail with
 *     fatal_status set, and the connection closes after that answer.
 *  5. Timers: the idle timeout runs in IDLE, the read timeout from the
 *     first byte of a request to its end and while an answer is written;
 *     none runs in WAIT or STREAM.  A request not read in time is a 408;
 *     an idle connection or a client not reading its answer is closed.
 *  6. Everything here runs on the loop thread of the host.
 *  7. One read buffer per host, not per connection: libuv reads into
 *     host->rbuf and the bytes are parsed at once, the hooks copying what
 *     they keep (URL, headers, body), so an idle or slow connection holds
 *     no read buffer and memory does not grow by ops->rbuf_bytes per
 *     connection (6.4 MB at 100 connections with 64 KB).  Pipelined
 *     bytes left after a request (invariant 1) are copied into c->rest,
 *     malloc'ed for as long as they wait.
 */
#ifndef ES_HCONN_H
#define ES_HCONN_H

#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>
#include <uv.h>

#define HCONN_HEADER_BYTES_MAX (16 * 1024)
/* The largest ops->rbuf_bytes: the host's one read buffer (invariant 7) */
#define HCONN_RBUF_BYTES_MAX (64 * 1024)
#define HCONN_AUTH_BYTES_MAX 1024

enum { HC_IDLE, HC_READING, HC_WAIT, HC_WRITE, HC_STREAM, HC_CLOSING };
/* Header ids: ops->header returns HC_H_NONE or one above HC_H_AUTH. */
enum { HC_H_NONE, HC_H_AUTH };

typedef struct hconn hconn;

typedef struct hconn_ops {
  size_t conn_size;    /* sizeof the server's connection (hconn first) */
  size_t url_max;      /* URL bytes */
  const char *url_msg; /* the 431's message past url_max */
  size_t rbuf_bytes;   /* read size, at most HCONN_RBUF_BYTES_MAX */
  int auth_fatal;      /* invariant 3 */
  /* A header name (lower case) the server wants: its id, or HC_H_NONE.
   * May be NULL. */
  int (*header)(hconn *c, const char *name);
  void (*header_value)(hconn *c, int id, const char *at, size_t n);
  void (*message_begin)(hconn *c);   /* reset the server's request state */
  int (*headers_complete)(hconn *c); /* 0, or hconn_fatal(...) */
  int (*body)(hconn *c, const char *at, size_t n); /* 0 or hconn_fatal */
  void (*dispatch)(hconn *c); /* a whole request was read */
  /* Answers a protocol error (invariant 4) and closes. */
  void (*fail)(hconn *c, int status, const char *msg);
  void (*closing)(hconn *c); /* invariant 2; may be NULL */
  void (*freed)(hconn *c);   /* just before free(); may be NULL */
  void (*finish)(void *srv); /* a connection is gone */
} hconn_ops;

/* What a server's configuration says about its connections. */
typedef struct hconn_limits {
  size_t connections_max;                   /* more are closed at once */
  int64_t read_timeout_ms, idle_timeout_ms; /* invariant 5 */
} hconn_limits;

typedef struct hconn_host {
  const hconn_ops *ops;
  void *srv; /* the server, for the hooks */
  uv_loop_t *loop;
  uv_tcp_t listener;
  int listener_open;
  hconn *conns; /* doubly linked list of open connections */
  size_t connections, connections_max;
  int64_t read_timeout_ms, idle_timeout_ms;
  llhttp_settings_t settings;
  char rbuf[HCONN_RBUF_BYTES_MAX]; /* invariant 7 */
} hconn_host;

struct hconn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  llhttp_t parser;
  hconn_host *host;
  void *srv; /* host->srv */
  hconn *prev, *next;
  int state, handles_open, close_after, keep_alive;
  /* the request being read */
  char *url; /* ops->url_max + 1 bytes */
  size_t url_len, header_bytes;
  char hname[32];
  size_t hname_len;
  int hcur;
  char auth[HCONN_AUTH_BYTES_MAX + 1];
  size_t auth_len;
  int fatal_status; /* answer this and close (set before failing llhttp) */
  const char *fatal_msg;
  char *rest;      /* pipelined bytes parsed later (invariants 1, 7) */
  size_t rest_len; /* of them; rest is NULL when 0 */
};

/* Binds and listens on host:port on loop, serving with ops (srv: the
 * hooks' server); *port_out is the bound port (for ...:0).
 * h->listener is initialised even on a later failure (close it). */
int hconn_listen(hconn_host *h, uv_loop_t *loop, const hconn_ops *ops,
                 void *srv, hconn_limits lim, const char *host, int port,
                 int *port_out);
/* Stops accepting; closes idle connections and streams. */
void hconn_drain(hconn_host *h);
/* Closes every connection at once. */
void hconn_close_all(hconn_host *h);

/* Sets the failure to answer (invariant 4); returns -1 for llhttp. */
int hconn_fatal(hconn *c, int status, const char *msg);
/* Writes head + body as one buffer; last: the end of an answer (then the
 * connection goes IDLE or closes).  0, or -1 and the connection closed. */
int hconn_write(hconn *c, const char *head, size_t head_len, const char *body,
                size_t body_len, int last);
/* A whole answer: state WRITE, the read timeout, then hconn_write. */
void hconn_answer(hconn *c, const char *head, size_t head_len, const char *body,
                  size_t body_len);
void hconn_read_start(hconn *c);
void hconn_close(hconn *c);

#endif /* ES_HCONN_H */
