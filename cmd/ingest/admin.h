/*
 * admin.h -- es-ingestd's admin API (admin.c): write keys replaced live
 * and rules put or deleted on the writer's handle, behind admin tokens.
 * http.c routes the requests here and answers with what these return.
 */
#ifndef INGESTD_ADMIN_H
#define INGESTD_ADMIN_H

#include <stddef.h>
#include <uv.h>

#include "common/segment_json.h"
#include "eventstore.h"

typedef struct server server;

/* A rule call (list, put, delete) run on libuv's pool (invariant 3). */
#define ADMIN_RULES 0
#define ADMIN_ERASE_POST 1 /* POST /v1/privacy/erase */
#define ADMIN_ERASE_GET 2  /* GET /v1/privacy/erase/{id} */
#define ADMIN_UNSUPPRESS 3 /* POST /v1/privacy/unsuppress */
#define ADMIN_DRAIN 4      /* POST /v1/admin/cluster/drain */
#define ADMIN_CLUSTER 5    /* GET /v1/admin/cluster */

typedef struct admin_op {
  uv_work_t work;
  es_db *db;
  int kind; /* ADMIN_* */
  server *srv;
  int method; /* llhttp's HTTP_GET (list), HTTP_PUT or HTTP_DELETE */
  char tenant[ES_TENANT_LEN_MAX + 1];
  char name[ES_TENANT_LEN_MAX + 1]; /* the rule's; "" for a list */
  char *rule;                       /* PUT: the rule JSON, name filled in */
  int status;                       /* the HTTP answer's, set by the work */
  seg_buf out;                      /* the answer's JSON */
  void *ud;                         /* http.c's conn; NULL once it closed */
  char why[256];                    /* a refusal's message (the access log) */
  /* erase: the person's id (owned; never logged) and the request's id */
  char *erase_user, *erase_anon;
  int erase_suppress; /* POST: "suppress": true */
  char erase_id[ES_ERASE_ID_MAX];
} admin_op;

/* The message of the calling thread's last refusal (for the access log
 * line of a 4xx/5xx); "" before any. */
const char *admin_last_error(void);

/* Whether the Authorization header value auth carries an admin token
 * ("Bearer T"); constant time per token. */
int admin_authorized(const server *srv, const char *auth);

/* GET /v1/admin/keys: {"keys":{"writeKey":"tenant",...}} into out;
 * the HTTP status. */
int admin_keys_get(const server *srv, seg_buf *out);

/* PUT /v1/admin/keys: the body replaces every write key (and the --keys
 * file) or nothing; the HTTP status and its JSON into out. */
int admin_keys_put(server *srv, const char *body, size_t len, seg_buf *out);

/*
 * A rule call for method on path (/v1/admin/tenants/T/rules[/NAME]) with
 * the request's body: 0 and *op_out ready for admin_op_work, or an HTTP
 * status with its JSON in out (bad name, unknown tenant, bad body).
 */
int admin_op_new(server *srv, int method, const char *path, size_t path_len,
                 const char *body, size_t len, admin_op **op_out, seg_buf *out);
/*
 * An erase call: POST /v1/privacy/erase with body {"tenant":"T",
 * "userId":"U"} (or "anonymousId"; "suppress": true optional), GET
 * /v1/privacy/erase/ID, or POST /v1/privacy/unsuppress with the body of
 * an erase (lifts a suppression).  0 and
 * *op_out ready for admin_op_work, or an HTTP status with its JSON in out.
 */
int admin_erase_new(server *srv, int method, const char *path, const char *body,
                    size_t len, admin_op **op_out, seg_buf *out);

/* The erase runner: a thread that runs es_erase_run (every pending
 * request's stages) at start and after each submission, and retries a
 * request that waits (a replica's grace period) every second.  0 or -1. */
int admin_eraser_start(server *srv);
/* Wakes it (a request was submitted). */
void admin_eraser_kick(server *srv);
/* Stops it (waits for the stage it runs to end). */
void admin_eraser_stop(server *srv);

/* The library call, on a pool thread: fills op->status and op->out. */
/* POST /v1/admin/cluster/drain and GET /v1/admin/cluster on a cluster
 * node (--node): 0 and *op_out ready for admin_op_work, or an HTTP status
 * with its JSON in out (404 on a node that is not in a cluster). */
int admin_cluster_new(server *srv, int method, admin_op **op_out, seg_buf *out);
void admin_op_work(uv_work_t *w);
/* Logs what the call changed (loop thread), then frees it. */
void admin_op_finish(admin_op *op);

#endif /* INGESTD_ADMIN_H */
