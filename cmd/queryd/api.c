/*
 * api.c -- the routes of es-queryd (docs/QUERYD.md): authentication, the
 * static dashboard, and the /v1 calls, each a library call run in libuv's
 * thread pool so that the loop never waits for a scan.
 *
 * Invariants:
 *  1. Every /v1 route authenticates before it does anything (ROUTE_TOKEN
 *     on its row); the tenant comes from the token table alone (server.h,
 *     invariant 1).  Nothing in a request names a tenant.
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

#include "common/route.h"
#include "common/status_http.h"
#include "server.h"

#define TIMELINE_LIMIT_DEFAULT 20
#define TIMELINE_LIMIT_MAX 1000
#define LATEST_LIMIT_MAX 200
#define RANGE_LIMIT_MAX 5000

enum {
  W_QUERY,
  W_TIMELINE,
  W_RULES,
  W_MEMBERS,
  W_PERSON_SEGMENTS,
  W_LATEST,
  W_RANGE,
  W_SERIES
};

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

/* ----------------------------------------------------------------------
 * The work functions (thread pool)
 * ---------------------------------------------------------------------- */

static int fail(qd_work *w, int rc, const char *msg) {
  w->es_status = rc;
  w->status = http_status_of(rc);
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
    snprintf(d, sizeof d, "%s", es_errmsg()); /* no "(query.c:270)" */
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

/* Per person (limit 1: es_rule_persons) or per visitor id (0). */
static void run_members(qd_work *w) {
  char *res = NULL;
  int rc = w->limit ? es_rule_persons(w->srv->db, w->tenant, w->arg, 0, &res)
                    : es_rule_members(w->srv->db, w->tenant, w->arg, 0, &res);
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

/* The newest `limit` received of the events in [from, to) (w->arg holds
 * the two times in microseconds). */
static void run_range(qd_work *w) {
  long long from_us, to_us;
  if (sscanf(w->arg, "%lld %lld", &from_us, &to_us) != 2) {
    fail(w, ES_EINVAL, NULL);
    return;
  }
  int rc = qd_range_events(w->srv, w->tenant, from_us, to_us, w->limit, 0, NULL,
                           &w->out, NULL);
  if (rc < 0)
    fail(w, rc, NULL);
}

/* A segment's member count over time: w->arg holds "from to rule". */
static void run_series(qd_work *w) {
  long long from_us, to_us;
  int off = 0;
  if (sscanf(w->arg, "%lld %lld %n", &from_us, &to_us, &off) != 2 || !off) {
    fail(w, ES_EINVAL, NULL);
    return;
  }
  char *res = NULL;
  int rc = es_rule_series(w->srv->db, w->tenant, w->arg + off, from_us, to_us,
                          &res);
  if (rc != ES_OK)
    fail(w, rc, rc == ES_ENOTFOUND ? "no such segment" : NULL);
  else
    put_owned(w, res);
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
  case W_RANGE:
    run_range(w);
    break;
  case W_SERIES:
    run_series(w);
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

/* The dashboard's files, compiled in (static.c, from static/). */
static void serve_asset(qd_server *srv, qd_conn *c, const qd_request *rq,
                        qd_tenant *t) {
  const char *path = strcmp(rq->path, "/") == 0 ? "/index.html" : rq->path;
  (void)srv, (void)t;
  for (size_t i = 0; i < qd_assets_count; i++)
    if (strcmp(qd_assets[i].path, path) == 0) {
      qd_respond(c, 200, qd_assets[i].type, (const char *)qd_assets[i].data,
                 qd_assets[i].len, NULL);
      return;
    }
  qd_respond_error(c, 404, "no such file"); /* a row without its file */
}

/* The id in "/v1/<a>/<id>/<b>" (the route matched the shape) into id;
 * 0, or -1 after answering 400. */
static int path_id(qd_conn *c, const char *path, const char *a, const char *b,
                   char *id, size_t size) {
  if (middle(path, a, b, id, size) == 0)
    return 0;
  qd_respond_error(c, 400,
                   "bad id in the path (percent-encoding, or over "
                   "512 bytes)");
  return -1;
}

#define ID_SIZE (3 * QD_PERSON_BYTES_MAX + 1)

static void serve_query(qd_server *srv, qd_conn *c, const qd_request *rq,
                        qd_tenant *t) {
  submit(srv, c, t, W_QUERY, rq->body_len ? rq->body : "{}",
         rq->body_len ? rq->body_len : 2, 0);
}

static void serve_stream(qd_server *srv, qd_conn *c, const qd_request *rq,
                         qd_tenant *t) {
  (void)rq;
  if (qd_stream_start(c, t) == 0)
    qd_live_subscribed(srv, c, t);
}

static void serve_rules(qd_server *srv, qd_conn *c, const qd_request *rq,
                        qd_tenant *t) {
  (void)rq;
  submit(srv, c, t, W_RULES, "", 0, 0);
}

static void serve_latest(qd_server *srv, qd_conn *c, const qd_request *rq,
                         qd_tenant *t) {
  long lim = parse_limit(rq->query, 20, LATEST_LIMIT_MAX);
  if (lim < 0)
    qd_respond_error(c, 400, "\"limit\" must be an integer >= 1");
  else
    submit(srv, c, t, W_LATEST, "", 0, (size_t)lim);
}

/* GET /v1/events?from=T&to=T[&limit=N]: a bounded sample of a time range
 * (RFC 3339 times as in /v1/query; to defaults to now + 1 day). */
static void serve_range(qd_server *srv, qd_conn *c, const qd_request *rq,
                        qd_tenant *t) {
  char v[64], arg[64];
  int64_t from_us, to_us = INT64_MAX;
  long lim = parse_limit(rq->query, 1000, RANGE_LIMIT_MAX);
  if (!query_param(rq->query, "from", v, sizeof v) ||
      seg_iso8601_parse(v, &from_us)) {
    qd_respond_error(c, 400, "\"from\" must be an RFC 3339 time");
    return;
  }
  if (query_param(rq->query, "to", v, sizeof v) &&
      seg_iso8601_parse(v, &to_us)) {
    qd_respond_error(c, 400, "\"to\" must be an RFC 3339 time");
    return;
  }
  if (lim < 0) {
    qd_respond_error(c, 400, "\"limit\" must be an integer >= 1");
    return;
  }
  int n = snprintf(arg, sizeof arg, "%lld %lld", (long long)from_us,
                   (long long)to_us);
  submit(srv, c, t, W_RANGE, arg, (size_t)n, (size_t)lim);
}

static void serve_members(qd_server *srv, qd_conn *c, const qd_request *rq,
                          qd_tenant *t) {
  char id[ID_SIZE], by[16];
  int person = 1;
  if (query_param(rq->query, "by", by, sizeof by)) {
    person = strcmp(by, "person") == 0 ? 1 : strcmp(by, "id") == 0 ? 0 : -1;
    if (person < 0) {
      qd_respond_error(c, 400, "\"by\" must be person or id");
      return;
    }
  }
  if (path_id(c, rq->path, "/v1/segments/", "/members", id, sizeof id) == 0)
    submit(srv, c, t, W_MEMBERS, id, strlen(id), (size_t)person);
}

/* GET /v1/segments/{rule}/members/series[?from=T][&to=T]: the member
 * count over time (es_rule_series; RFC 3339 times, both optional). */
static void serve_series(qd_server *srv, qd_conn *c, const qd_request *rq,
                         qd_tenant *t) {
  char id[ID_SIZE], v[64], arg[64 + ID_SIZE];
  int64_t from_us = 0, to_us = 0;
  if (query_param(rq->query, "from", v, sizeof v) &&
      seg_iso8601_parse(v, &from_us)) {
    qd_respond_error(c, 400, "\"from\" must be an RFC 3339 time");
    return;
  }
  if (query_param(rq->query, "to", v, sizeof v) &&
      seg_iso8601_parse(v, &to_us)) {
    qd_respond_error(c, 400, "\"to\" must be an RFC 3339 time");
    return;
  }
  if (path_id(c, rq->path, "/v1/segments/", "/members/series", id,
              sizeof id) != 0)
    return;
  int n = snprintf(arg, sizeof arg, "%lld %lld %s", (long long)from_us,
                   (long long)to_us, id);
  submit(srv, c, t, W_SERIES, arg, (size_t)n, 0);
}

static void serve_timeline(qd_server *srv, qd_conn *c, const qd_request *rq,
                           qd_tenant *t) {
  char id[ID_SIZE];
  long lim = parse_limit(rq->query, TIMELINE_LIMIT_DEFAULT, TIMELINE_LIMIT_MAX);
  if (path_id(c, rq->path, "/v1/persons/", "/timeline", id, sizeof id))
    return;
  if (lim < 0)
    qd_respond_error(c, 400, "\"limit\" must be an integer >= 1");
  else
    submit(srv, c, t, W_TIMELINE, id, strlen(id), (size_t)lim);
}

static void serve_person_segments(qd_server *srv, qd_conn *c,
                                  const qd_request *rq, qd_tenant *t) {
  char id[ID_SIZE];
  if (path_id(c, rq->path, "/v1/persons/", "/segments", id, sizeof id) == 0)
    submit(srv, c, t, W_PERSON_SEGMENTS, id, strlen(id), 0);
}

static void serve_health(qd_server *srv, qd_conn *c, int ready_probe);

static void serve_healthz(qd_server *srv, qd_conn *c, const qd_request *rq,
                          qd_tenant *t) {
  (void)rq, (void)t;
  serve_health(srv, c, 0);
}

static void serve_readyz(qd_server *srv, qd_conn *c, const qd_request *rq,
                         qd_tenant *t) {
  (void)rq, (void)t;
  serve_health(srv, c, 1);
}

static void serve_metrics(qd_server *srv, qd_conn *c, const qd_request *rq,
                          qd_tenant *t) {
  seg_buf b;
  (void)rq, (void)t;
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

/* ----------------------------------------------------------------------
 * The route table
 * ---------------------------------------------------------------------- */

/* qd_route.r.flags */
#define ROUTE_TOKEN 1u       /* a token names the tenant (invariant 1) */
#define ROUTE_QUERY_TOKEN 2u /* ?token= too (EventSource sets no header) */

typedef struct qd_route {
  http_route r; /* first (common/route.h) */
  /* t: the token's tenant (ROUTE_TOKEN), else NULL */
  void (*serve)(qd_server *srv, qd_conn *c, const qd_request *rq, qd_tenant *t);
} qd_route;

/* Every endpoint, one row each (docs/QUERYD.md).  The dashboard's rows
 * name the files of static/ (meson.build's queryd_assets). */
static const qd_route routes[] = {
    {{HTTP_GET, "/", 0}, serve_asset},
    {{HTTP_GET, "/index.html", 0}, serve_asset},
    {{HTTP_GET, "/app.js", 0}, serve_asset},
    {{HTTP_GET, "/app.css", 0}, serve_asset},
    {{HTTP_GET, "/healthz", 0}, serve_healthz},
    {{HTTP_GET, "/readyz", 0}, serve_readyz},
    {{HTTP_GET, "/metrics", 0}, serve_metrics},
    {{HTTP_POST, "/v1/query", ROUTE_TOKEN}, serve_query},
    {{HTTP_GET, "/v1/stream", ROUTE_TOKEN | ROUTE_QUERY_TOKEN}, serve_stream},
    {{HTTP_GET, "/v1/segments", ROUTE_TOKEN}, serve_rules},
    {{HTTP_GET, "/v1/events/latest", ROUTE_TOKEN}, serve_latest},
    {{HTTP_GET, "/v1/events", ROUTE_TOKEN}, serve_range},
    {{HTTP_GET, "/v1/segments/*/members", ROUTE_TOKEN}, serve_members},
    {{HTTP_GET, "/v1/segments/*/members/series", ROUTE_TOKEN}, serve_series},
    {{HTTP_GET, "/v1/persons/*/timeline", ROUTE_TOKEN}, serve_timeline},
    {{HTTP_GET, "/v1/persons/*/segments", ROUTE_TOKEN}, serve_person_segments},
};

void qd_api_dispatch(qd_server *srv, qd_conn *c, const qd_request *rq) {
  char allow[HTTP_ROUTE_ALLOW_SIZE], msg[64 + HTTP_ROUTE_ALLOW_SIZE];
  int status;
  const qd_route *r = (const qd_route *)http_route_find(
      routes, sizeof routes / sizeof *routes, sizeof *routes, rq->method,
      rq->path, strlen(rq->path), &status, allow);
  if (r == NULL) {
    snprintf(msg, sizeof msg, "method not allowed here (Allow: %s)", allow);
    qd_respond_allow(c, status, status == 404 ? "no such endpoint" : msg,
                     status == 405 ? allow : NULL);
    return;
  }
  if (!(r->r.flags & ROUTE_TOKEN)) {
    r->serve(srv, c, rq, NULL);
    return;
  }
  /* invariant 1 */
  char qtok[256];
  const char *tok = rq->bearer;
  if (tok == NULL && (r->r.flags & ROUTE_QUERY_TOKEN) &&
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
  r->serve(srv, c, rq, t);
}
