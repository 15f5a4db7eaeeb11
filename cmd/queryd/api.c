/*
 * api.c -- the routes of es-queryd (docs/QUERYD.md): authentication, the
 * static dashboard, and the /v1 calls, each a library call run in libuv's
 * thread pool so that the loop never waits for a scan.
 *
 * Invariants:
 *  1. Every /v1 route authenticates first; the tenant comes from the
 *     token table alone (server.h, invariant 1).  Nothing in a request
 *     names a tenant.
 *  2. Errors say what was wrong with the request, or the status code's
 *     name: never a library detail that could carry a path (the one
 *     exception, a bad query spec, echoes the caller's own spec field).
 *  3. A work item is freed by its after-work callback, whether or not its
 *     connection is still there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>
#include <yajl_tree.h>

#include "server.h"

#define TIMELINE_LIMIT_DEFAULT 20
#define TIMELINE_LIMIT_MAX 1000
#define LATEST_LIMIT_MAX 200

enum { W_QUERY, W_TIMELINE, W_RULES, W_MEMBERS, W_PERSON_SEGMENTS, W_LATEST };

typedef struct qd_work {
  uv_work_t req;
  qd_server *srv;
  qd_conn *conn; /* NULL once the client went away */
  int kind;
  char tenant[ES_TENANT_LEN_MAX + 1];
  char *arg; /* the spec, the person or the rule */
  size_t limit;
  int64_t start_us;
  /* results */
  int status; /* HTTP */
  int es_status;
  seg_buf out;
  char err[512];
} qd_work;

/* The one table from library status to HTTP status. */
int qd_http_status_of(int es_status) {
  switch (es_status) {
  case ES_OK:
    return 200;
  case ES_EINVAL:
  case ES_ETENANT:
  case ES_ETOOBIG:
    return 400;
  case ES_ENOTFOUND:
    return 404;
  case ES_ENOMEM:
  case ES_ECLOSED:
  case ES_EBUSY:
  case ES_EDEGRADED: /* disk full: retry later (store/gate.c) */
    return 503;
  default:
    return 500; /* ES_EIO, ES_ECORRUPT, ES_EFAILED, ... */
  }
}

/* ----------------------------------------------------------------------
 * The work functions (thread pool)
 * ---------------------------------------------------------------------- */

static int fail(qd_work *w, int rc, const char *msg) {
  w->es_status = rc;
  w->status = qd_http_status_of(rc);
  snprintf(w->err, sizeof w->err, "%s", msg ? msg : es_strerror(rc));
  return rc;
}

static int put_owned(qd_work *w, char *json) {
  int rc = seg_buf_put(&w->out, json, strlen(json));
  es_free(json);
  return rc ? fail(w, ES_ENOMEM, NULL) : ES_OK;
}

static void run_query(qd_work *w) {
  char *res = NULL;
  int rc = es_query(w->srv->db, w->tenant, w->arg, &res);
  if (rc == ES_EINVAL) {
    /* invariant 2: "spec: ..." names the caller's own field */
    char d[sizeof w->err];
    snprintf(d, sizeof d, "%s", es_errdetail());
    char *where = strrchr(d, '(');
    if (where && where > d && strstr(where, ".c:")) /* "(query.c:270)" */
      where[-1] = '\0';
    fail(w, rc, strncmp(d, "spec: ", 6) == 0 ? d : "bad query spec");
    return;
  }
  if (rc != ES_OK) {
    fail(w, rc, NULL);
    return;
  }
  put_owned(w, res);
}

static int put_str(seg_buf *b, const char *s) {
  return seg_buf_put(b, s, strlen(s));
}

static void run_timeline(qd_work *w) {
  es_timeline *tl;
  es_event ev;
  int rc = es_timeline_open(w->srv->db, w->tenant, w->arg, w->limit, &tl);
  if (rc != ES_OK) {
    fail(w, rc, NULL);
    return;
  }
  int bad = put_str(&w->out, "{\"person\":") ||
            seg_buf_put_json_string(&w->out, w->arg, strlen(w->arg)) ||
            put_str(&w->out, ",\"events\":[");
  for (int first = 1; !bad && (rc = es_timeline_next(tl, &ev)) == 1; first = 0)
    bad = (!first && put_str(&w->out, ",")) || seg_event_write(&w->out, &ev);
  es_timeline_close(tl);
  if (bad || put_str(&w->out, "]}"))
    fail(w, ES_ENOMEM, NULL);
}

static void run_members(qd_work *w) {
  char *res = NULL;
  int rc = es_rule_members(w->srv->db, w->tenant, w->arg, 0, &res);
  if (rc != ES_OK)
    fail(w, rc, rc == ES_ENOTFOUND ? "no such segment" : NULL);
  else
    put_owned(w, res);
}

/* The rule names of the tenant, from es_rules_list, into *root (the yajl
 * tree that owns them) and *rules (its array); ES_OK or a status. */
static int rules_tree(qd_work *w, yajl_val *root_out, yajl_val *rules_out) {
  char *res = NULL;
  const char *path[] = {"rules", NULL};
  int rc = es_rules_list(w->srv->db, w->tenant, 0, &res);
  if (rc != ES_OK)
    return fail(w, rc, NULL);
  *root_out = yajl_tree_parse(res, NULL, 0);
  es_free(res);
  *rules_out = yajl_tree_get(*root_out, path, yajl_t_array);
  if (*rules_out == NULL) {
    yajl_tree_free(*root_out);
    return fail(w, ES_ENOMEM, NULL);
  }
  return ES_OK;
}

static void run_person_segments(qd_work *w) {
  yajl_val root, rules;
  const char *name_path[] = {"name", NULL};
  if (rules_tree(w, &root, &rules) != ES_OK)
    return;
  int bad = put_str(&w->out, "{\"person\":") ||
            seg_buf_put_json_string(&w->out, w->arg, strlen(w->arg)) ||
            put_str(&w->out, ",\"segments\":[");
  int count = 0;
  for (size_t i = 0; !bad && i < rules->u.array.len; i++) {
    yajl_val nv =
        yajl_tree_get(rules->u.array.values[i], name_path, yajl_t_string);
    int member = 0;
    if (nv == NULL)
      continue;
    int rc =
        es_rule_check(w->srv->db, w->tenant, nv->u.string, w->arg, 0, &member);
    if (rc == ES_ENOTFOUND) /* deleted since the list was taken */
      continue;
    if (rc != ES_OK) {
      yajl_tree_free(root);
      fail(w, rc, NULL);
      return;
    }
    if (member)
      bad =
          (count++ && put_str(&w->out, ",")) ||
          seg_buf_put_json_string(&w->out, nv->u.string, strlen(nv->u.string));
  }
  yajl_tree_free(root);
  if (bad || put_str(&w->out, "]}"))
    fail(w, ES_ENOMEM, NULL);
}

static void run_rules(qd_work *w) {
  char *res = NULL;
  int rc = es_rules_list(w->srv->db, w->tenant, 0, &res);
  if (rc != ES_OK)
    fail(w, rc, NULL);
  else
    put_owned(w, res);
}

/* The newest `limit` events of the live window, newest first. */
static void run_latest(qd_work *w) {
  int rc =
      qd_latest_events(w->srv, w->tenant, w->limit, 0, NULL, &w->out, NULL);
  if (rc < 0)
    fail(w, rc, NULL);
}

static void work_run(uv_work_t *req) {
  qd_work *w = req->data;
  w->status = 200;
  switch (w->kind) {
  case W_QUERY:
    run_query(w);
    break;
  case W_TIMELINE:
    run_timeline(w);
    break;
  case W_RULES:
    run_rules(w);
    break;
  case W_MEMBERS:
    run_members(w);
    break;
  case W_PERSON_SEGMENTS:
    run_person_segments(w);
    break;
  default:
    run_latest(w);
    break;
  }
}

static void work_done(uv_work_t *req, int status) {
  qd_work *w = req->data;
  qd_server *srv = w->srv;
  srv->works_pending--;
  qd_metrics_query(&srv->m, qd_now_us() - w->start_us,
                   status == 0 && w->status == 200);
  if (w->conn) {
    if (status != 0)
      qd_respond_error(w->conn, 503, "cancelled");
    else if (w->status != 200)
      qd_respond_error(w->conn, w->status, w->err);
    else
      qd_respond(w->conn, 200, "application/json", w->out.data, w->out.len,
                 NULL);
  }
  seg_buf_free(&w->out);
  free(w->arg);
  free(w); /* invariant 3 */
  qd_maybe_finish(srv);
}

void qd_api_work_detach(void *work) { ((qd_work *)work)->conn = NULL; }

static void submit(qd_server *srv, qd_conn *c, qd_tenant *t, int kind,
                   const char *arg, size_t arg_len, size_t limit) {
  qd_work *w = calloc(1, sizeof *w);
  if (w == NULL || (w->arg = malloc(arg_len + 1)) == NULL) {
    free(w);
    qd_respond_error(c, 503, "out of memory");
    return;
  }
  memcpy(w->arg, arg, arg_len);
  w->arg[arg_len] = '\0';
  w->srv = srv;
  w->conn = c;
  w->kind = kind;
  w->limit = limit;
  w->start_us = qd_now_us();
  snprintf(w->tenant, sizeof w->tenant, "%s", t->id);
  seg_buf_init(&w->out);
  w->req.data = w;
  if (uv_queue_work(srv->loop, &w->req, work_run, work_done)) {
    free(w->arg);
    free(w);
    qd_respond_error(c, 503, "cannot queue the work");
    return;
  }
  srv->works_pending++;
  qd_conn_set_work(c, w);
}

/* ----------------------------------------------------------------------
 * Routing
 * ---------------------------------------------------------------------- */

/* The value of `name` in a raw query string, percent-decoding only "%XX"
 * of hex digits; 0 when absent. */
static int query_param(const char *q, const char *name, char *out,
                       size_t size) {
  size_t nlen = strlen(name);
  for (const char *p = q; p && *p; p = strchr(p, '&'), p = p ? p + 1 : p) {
    if (strncmp(p, name, nlen) || p[nlen] != '=')
      continue;
    const char *v = p + nlen + 1;
    size_t o = 0;
    for (; *v && *v != '&' && o + 1 < size; v++) {
      unsigned x;
      if (*v == '%' && sscanf(v + 1, "%2x", &x) == 1 && x) {
        out[o++] = (char)x;
        v += 2;
      } else {
        out[o++] = *v == '+' ? ' ' : *v;
      }
    }
    out[o] = '\0';
    return 1;
  }
  return 0;
}

/* limit=N in 1..max, default dflt; -1 when malformed. */
static long parse_limit(const char *q, long dflt, long max) {
  char v[32];
  if (!query_param(q, "limit", v, sizeof v))
    return dflt;
  char *end;
  long n = strtol(v, &end, 10);
  if (end == v || *end || n < 1)
    return -1;
  return n > max ? max : n;
}

static void serve_asset(qd_conn *c, const char *path) {
  if (strcmp(path, "/") == 0)
    path = "/index.html";
  for (size_t i = 0; i < qd_assets_count; i++)
    if (strcmp(qd_assets[i].path, path) == 0) {
      qd_respond(c, 200, qd_assets[i].type, (const char *)qd_assets[i].data,
                 qd_assets[i].len, NULL);
      return;
    }
  qd_respond_error(c, 404, "no such endpoint");
}

/* "/v1/<a>/<id>/<b>": the percent-decoded middle segment into id; 0 when
 * it matches, -1 when not, -2 when it matches but decodes badly. */
static int middle(const char *path, const char *a, const char *b, char *id,
                  size_t size) {
  size_t al = strlen(a), bl = strlen(b), pl = strlen(path);
  if (pl <= al + bl || strncmp(path, a, al) || strcmp(path + pl - bl, b))
    return -1;
  size_t n = pl - al - bl;
  if (n == 0 || memchr(path + al, '/', n))
    return -1;
  if (n >= size || qd_url_decode(path + al, n, id) || id[0] == '\0' ||
      strlen(id) > QD_PERSON_BYTES_MAX)
    return -2;
  return 0;
}

static void serve_v1(qd_server *srv, qd_conn *c, const qd_request *rq,
                     qd_tenant *t) {
  const char *p = rq->path;
  char id[3 * QD_PERSON_BYTES_MAX + 1];
  int get = rq->method == HTTP_GET;
  if (strcmp(p, "/v1/query") == 0) {
    if (rq->method != HTTP_POST)
      qd_respond_error(c, 405, "POST a query spec here");
    else
      submit(srv, c, t, W_QUERY, rq->body_len ? rq->body : "{}",
             rq->body_len ? rq->body_len : 2, 0);
  } else if (strcmp(p, "/v1/stream") == 0) {
    if (!get)
      qd_respond_error(c, 405, "GET only");
    else if (qd_stream_start(c, t) == 0)
      qd_live_subscribed(srv, c, t);
  } else if (strcmp(p, "/v1/segments") == 0) {
    if (!get)
      qd_respond_error(c, 405,
                       "GET only (rules are made with esctl "
                       "rule-put)");
    else
      submit(srv, c, t, W_RULES, "", 0, 0);
  } else if (strcmp(p, "/v1/events/latest") == 0) {
    long lim = parse_limit(rq->query, 20, LATEST_LIMIT_MAX);
    if (!get)
      qd_respond_error(c, 405, "GET only");
    else if (lim < 0)
      qd_respond_error(c, 400, "\"limit\" must be an integer >= 1");
    else
      submit(srv, c, t, W_LATEST, "", 0, (size_t)lim);
  } else if (middle(p, "/v1/segments/", "/members", id, sizeof id) == -2 ||
             middle(p, "/v1/persons/", "/timeline", id, sizeof id) == -2 ||
             middle(p, "/v1/persons/", "/segments", id, sizeof id) == -2) {
    qd_respond_error(c, 400,
                     "bad id in the path (percent-encoding, or over "
                     "512 bytes)");
  } else if (middle(p, "/v1/segments/", "/members", id, sizeof id) == 0) {
    if (!get)
      qd_respond_error(c, 405, "GET only");
    else
      submit(srv, c, t, W_MEMBERS, id, strlen(id), 0);
  } else if (middle(p, "/v1/persons/", "/timeline", id, sizeof id) == 0) {
    long lim =
        parse_limit(rq->query, TIMELINE_LIMIT_DEFAULT, TIMELINE_LIMIT_MAX);
    if (!get)
      qd_respond_error(c, 405, "GET only");
    else if (lim < 0)
      qd_respond_error(c, 400, "\"limit\" must be an integer >= 1");
    else
      submit(srv, c, t, W_TIMELINE, id, strlen(id), (size_t)lim);
  } else if (middle(p, "/v1/persons/", "/segments", id, sizeof id) == 0) {
    if (!get)
      qd_respond_error(c, 405, "GET only");
    else
      submit(srv, c, t, W_PERSON_SEGMENTS, id, strlen(id), 0);
  } else {
    qd_respond_error(c, 404, "no such endpoint");
  }
}

static void serve_metrics(qd_server *srv, qd_conn *c) {
  seg_buf b;
  seg_buf_init(&b);
  if (qd_metrics_render(srv, &b)) {
    seg_buf_free(&b);
    qd_respond_error(c, 503, "out of memory");
    return;
  }
  qd_respond(c, 200, "text/plain; version=0.0.4", b.data, b.len, NULL);
  seg_buf_free(&b);
}

/* /healthz (liveness: 200 while serving) and /readyz (200 only when the
 * handle, a writer in embedded mode or a reader, is ok and the server is
 * not draining; else 503 with the reason), both with the state:
 * {"status":...,"mode":...,"store":"ok|degraded|failed","reason":...}. */
static void serve_health(qd_server *srv, qd_conn *c, int ready_probe) {
  char why[400], esc[900];
  int state = es_state(srv->db, why, sizeof why);
  const char *store = state == ES_STATE_OK         ? "ok"
                      : state == ES_STATE_DEGRADED ? "degraded"
                                                   : "failed";
  size_t n = 0;
  for (const char *s = why; *s && n + 7 < sizeof esc; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      esc[n++] = '\\', esc[n++] = (char)ch;
    else if (ch < 0x20)
      n += (size_t)snprintf(esc + n, sizeof esc - n, "\\u%04x", ch);
    else
      esc[n++] = (char)ch;
  }
  esc[n] = '\0';
  char body[1200];
  int len = snprintf(body, sizeof body,
                     "{\"status\":\"%s\",\"mode\":\"%s\",\"store\":\"%s\","
                     "\"reason\":\"%s\"}",
                     srv->draining ? "draining" : store,
                     srv->read_only ? "read-only" : "embedded", store, esc);
  int ok = state == ES_STATE_OK && !srv->draining;
  qd_respond(c, !ready_probe || ok ? 200 : 503, "application/json", body,
             (size_t)len, NULL);
}

void qd_api_dispatch(qd_server *srv, qd_conn *c, const qd_request *rq) {
  const char *p = rq->path;
  int get = rq->method == HTTP_GET;
  if (strncmp(p, "/v1/", 4) != 0) {
    if (!get)
      qd_respond_error(c, 405, "GET only");
    else if (strcmp(p, "/healthz") == 0 || strcmp(p, "/readyz") == 0)
      serve_health(srv, c, p[1] == 'r');
    else if (strcmp(p, "/metrics") == 0)
      serve_metrics(srv, c);
    else
      serve_asset(c, p);
    return;
  }
  /* invariant 1 */
  char qtok[256];
  const char *tok = rq->bearer;
  if (tok == NULL && strcmp(p, "/v1/stream") == 0 &&
      query_param(rq->query, "token", qtok, sizeof qtok))
    tok = qtok;
  if (tok == NULL || *tok == '\0') {
    qd_respond_error(c, 401, "no token (Authorization: Bearer TOKEN)");
    return;
  }
  qd_tenant *t = qd_tenant_for_token(srv, tok);
  if (t == NULL) {
    qd_respond_error(c, 401, "unknown token");
    return;
  }
  if (srv->draining) {
    qd_respond_error(c, 503, "server shutting down; retry later");
    return;
  }
  serve_v1(srv, c, rq, t);
}
