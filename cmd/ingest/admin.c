/*
 * admin.c -- es-ingestd's admin API (docs/INGEST.md, "Administration"):
 * the process that owns the writable handle changes its write keys and
 * its tenants' rules (behaviour segments) while it serves, so that adding
 * a customer, rotating a key or adding a segment needs no restart.
 *
 *   GET    /v1/admin/keys                          the write keys
 *   PUT    /v1/admin/keys                          replace them (and --keys)
 *   GET    /v1/admin/tenants/T/rules               es_rules_list
 *   PUT    /v1/admin/tenants/T/rules/NAME          es_rule_put
 *   DELETE /v1/admin/tenants/T/rules/NAME          es_rule_delete
 *   POST   /v1/privacy/erase                       es_erase_submit (202)
 *   GET    /v1/privacy/erase/ID                    es_erase_status
 *   POST   /v1/privacy/unsuppress                  es_erase_unsuppress
 *   GET    /v1/admin/cluster                       es_cluster_status
 *   POST   /v1/admin/cluster/drain                 es_cluster_release, each
 *
 * Invariants:
 *
 *  1. Every admin call carries "Authorization: Bearer T" with T one of
 *     the --admin-tokens; anything else is 401 before a body is read
 *     (http.c).  Without --admin-tokens every call is 401.  A write key
 *     can never be an admin token (both loads refuse the overlap), and
 *     write keys travel as HTTP Basic users, never as Bearer tokens.
 *  2. A key set is replaced whole or not at all, and the --keys file is
 *     replaced durably before the new set serves (server_keys_replace):
 *     a SIGHUP or a restart after a PUT keeps it.
 *  3. Library calls that may wait (es_rule_put scans the rule's window on
 *     the tenant's shard writer) run on libuv's pool, never on the loop.
 *  4. Logs say what changed (counts, tenant, rule name), never a key or
 *     a token; error answers carry es_errmsg() (no source locations).
 *  5. An erase is answered 202 only after es_erase_submit returned: the
 *     tombstone is durable and every read already excludes the person.
 *     Its later stages run on one eraser thread (es_erase_run), never on
 *     the loop or the pool.  Logs and answers name the request by its id,
 *     never the person's ids.
 *  6. A drain (cluster nodes only) first makes the node take no tenant
 *     (writers.c answers 503 + Retry-After for every tenant from then on,
 *     for good: a drained node is stopped next), then releases each held
 *     tenant with es_cluster_release on the pool, and answers 200 only if
 *     every one was released; otherwise 503 naming each failure.  A
 *     tenant not released keeps its lease (es_cluster_release) until the
 *     node stops, then its lease expires and another node takes it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <llhttp.h>
#include <yajl_tree.h>

#include "admin.h"
#include "common/status_http.h"
#include "common/svc.h"
#include "server.h"

#define RULES_PREFIX "/v1/admin/tenants/"

/* Compares without stopping at the first difference (no timing hint). */
static int token_equal(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b), n = la > lb ? la : lb;
  unsigned char d = la != lb;
  for (size_t i = 0; i < n; i++)
    d |= (unsigned char)((i < la ? a[i] : 0) ^ (i < lb ? b[i] : 0));
  return d == 0;
}

int admin_authorized(const server *srv, const char *auth) {
  if (strncasecmp(auth, "Bearer ", 7) != 0)
    return 0;
  const char *tok = auth + 7;
  while (*tok == ' ')
    tok++;
  int hit = 0;
  for (size_t i = 0; i < srv->admin_tokens_count; i++)
    hit |= token_equal(srv->admin_tokens[i], tok);
  return hit && tok[0] != '\0';
}

/* The last refusal's message, for the access log (loop thread; a pool
 * thread's is copied into its admin_op). */
static _Thread_local char admin_why[256];

const char *admin_last_error(void) { return admin_why; }

/* {"success":false,"error":msg} into out; returns status. */
static int admin_error(seg_buf *out, int status, const char *msg) {
  snprintf(admin_why, sizeof admin_why, "%.*s", (int)sizeof admin_why - 1, msg);
  out->len = 0;
  if (seg_buf_put(out, "{\"success\":false,\"error\":", 25) ||
      seg_buf_put_json_string(out, msg, strlen(msg)) ||
      seg_buf_put(out, "}", 1))
    out->len = 0;
  return status;
}

int admin_keys_get(const server *srv, seg_buf *out) {
  int bad = seg_buf_put(out, "{\"keys\":{", 9);
  for (size_t i = 0; !bad && i < srv->keys_count; i++) {
    const char *k = srv->keys[i].key, *t = srv->keys[i].tenant->st.id;
    bad = (i > 0 && seg_buf_put(out, ",", 1)) ||
          seg_buf_put_json_string(out, k, strlen(k)) ||
          seg_buf_put(out, ":", 1) ||
          (srv->keys[i].primary && seg_buf_put(out, "{\"tenant\":", 10)) ||
          seg_buf_put_json_string(out, t, strlen(t)) ||
          (srv->keys[i].primary && seg_buf_put(out, ",\"primary\":true}", 16));
  }
  if (bad || seg_buf_put(out, "}}", 2))
    return admin_error(out, 503, "out of memory");
  return 200;
}

int admin_keys_put(server *srv, const char *body, size_t len, seg_buf *out) {
  char err[512], ok[96];
  int rc = server_keys_replace(srv, body ? body : "", len, srv->cfg.keys_path,
                               err, sizeof err);
  if (rc == -1)
    return admin_error(out, 400, err);
  if (rc < 0)
    return admin_error(out, 500, err);
  snprintf(ok, sizeof ok, "{\"success\":true,\"keys\":%zu,\"tenants\":%zu}",
           srv->keys_count, srv->tenants.count);
  if (seg_buf_put(out, ok, strlen(ok)))
    return admin_error(out, 503, "out of memory");
  return 200;
}

/* The path segment at *p up to the next '/' (or end) into dst, checked
 * as [A-Za-z0-9_-]{1,64}; moves *p past it.  0 or -1. */
static int path_segment(const char **p, const char *end, char *dst,
                        size_t size) {
  size_t n = 0;
  while (*p + n < end && (*p)[n] != '/')
    n++;
  if (n == 0 || n >= size)
    return -1;
  memcpy(dst, *p, n);
  dst[n] = '\0';
  *p += n;
  return svc_tenant_ok(dst) ? 0 : -1;
}

/* The rule body with "name" set to op->name: the name in the path wins
 * when the body has none, and must agree when it has one.  0 or a
 * status with its error in out. */
static int rule_body(admin_op *op, const char *body, size_t len, seg_buf *out) {
  char yerr[256] = "";
  if (body == NULL)
    return admin_error(out, 400, "rule: want a JSON object (docs/QUERY.md)");
  yajl_val root = yajl_tree_parse(body, yerr, sizeof yerr);
  if (!YAJL_IS_OBJECT(root)) {
    yajl_tree_free(root);
    return admin_error(out, 400, "rule: want a JSON object (docs/QUERY.md)");
  }
  const char *name_path[] = {"name", NULL};
  yajl_val name = yajl_tree_get(root, name_path, yajl_t_any);
  int has_name = name != NULL, empty = root->u.object.len == 0;
  int agrees =
      name && YAJL_IS_STRING(name) && strcmp(name->u.string, op->name) == 0;
  yajl_tree_free(root);
  if (has_name && !agrees)
    return admin_error(out, 400,
                       "rule: \"name\" differs from the name in the path");
  const char *brace = memchr(body, '{', len);
  if (brace == NULL) /* an object has one; keeps the arithmetic safe */
    return admin_error(out, 400, "rule: want a JSON object");
  size_t rest = len - (size_t)(brace + 1 - body);
  op->rule = malloc(len + 2 * sizeof op->name + 16);
  if (op->rule == NULL)
    return admin_error(out, 503, "out of memory");
  if (has_name)
    snprintf(op->rule, len + 1, "%.*s", (int)len, body);
  else
    snprintf(op->rule, len + 2 * sizeof op->name + 16, "{\"name\":\"%s\"%s%.*s",
             op->name, empty ? "}" : ",", empty ? 0 : (int)rest, brace + 1);
  return 0;
}

int admin_op_new(server *srv, int method, const char *path, size_t path_len,
                 const char *body, size_t len, admin_op **op_out,
                 seg_buf *out) {
  const char *p = path + strlen(RULES_PREFIX), *end = path + path_len;
  *op_out = NULL;
  admin_op *op = calloc(1, sizeof *op);
  if (op == NULL)
    return admin_error(out, 503, "out of memory");
  seg_buf_init(&op->out);
  op->db = srv->db;
  op->method = method;
  op->work.data = op;
  int status = 0;
  if (path_segment(&p, end, op->tenant, sizeof op->tenant))
    status = admin_error(out, 400, "tenant id: want [A-Za-z0-9_-]{1,64}");
  else if (server_tenant_by_id(srv, op->tenant) == NULL)
    status = admin_error(out, 404, "unknown tenant (no write key names it)");
  else if (method != HTTP_GET &&
           (p += strlen("/rules/"),
            path_segment(&p, end, op->name, sizeof op->name)))
    status = admin_error(out, 400, "rule name: want [A-Za-z0-9_-]{1,64}");
  else if (method == HTTP_PUT)
    status = rule_body(op, body, len, out);
  if (status != 0) {
    admin_op_finish(op);
    return status;
  }
  *op_out = op;
  return 0;
}

/* An erase call's library work (pool thread). */
static void admin_erase_work(admin_op *op) {
  char *json = NULL;
  int rc, status = 200;
  if (op->kind == ADMIN_ERASE_POST) {
    es_erase_options o;
    es_erase_options_init(&o);
    o.tenant = op->tenant;
    o.user_id = op->erase_user;
    o.anonymous_id = op->erase_anon;
    o.suppress = op->erase_suppress;
    rc = es_erase_submit(op->db, &o, op->erase_id);
    status = 202;
  } else if (op->kind == ADMIN_UNSUPPRESS) {
    es_erase_options o;
    es_erase_options_init(&o);
    o.tenant = op->tenant;
    o.user_id = op->erase_user;
    o.anonymous_id = op->erase_anon;
    size_t lifted = 0;
    rc = es_erase_unsuppress(op->db, &o, &lifted);
    if (rc == ES_OK) {
      char ok[96];
      snprintf(ok, sizeof ok, "{\"success\":true,\"lifted\":%zu}", lifted);
      op->status = seg_buf_put(&op->out, ok, strlen(ok))
                       ? admin_error(&op->out, 503, "out of memory")
                       : 200;
      return;
    }
  } else {
    rc = es_erase_status(op->db, op->erase_id, &json);
  }
  if (rc == ES_OK && op->kind == ADMIN_ERASE_POST) {
    char ok[2 * ES_ERASE_ID_MAX + 96];
    snprintf(ok, sizeof ok,
             "{\"success\":true,\"id\":\"%s\",\"status\":"
             "\"/v1/privacy/erase/%s\"}",
             op->erase_id, op->erase_id);
    json = NULL;
    op->status = seg_buf_put(&op->out, ok, strlen(ok))
                     ? admin_error(&op->out, 503, "out of memory")
                     : status;
    return;
  }
  if (rc != ES_OK) {
    op->status = admin_error(&op->out, http_status_of(rc), es_errmsg());
    snprintf(op->why, sizeof op->why, "%.*s", (int)sizeof op->why - 1,
             admin_why);
    return;
  }
  op->status = seg_buf_put(&op->out, json, strlen(json))
                   ? admin_error(&op->out, 503, "out of memory")
                   : status;
  es_free(json);
}

int admin_cluster_new(server *srv, int method, admin_op **op_out,
                      seg_buf *out) {
  *op_out = NULL;
  if (srv->sched.cluster == NULL)
    return admin_error(out, 404, "not a cluster node (no --node)");
  admin_op *op = calloc(1, sizeof *op);
  if (op == NULL)
    return admin_error(out, 503, "out of memory");
  seg_buf_init(&op->out);
  op->srv = srv;
  op->method = method;
  op->kind = method == HTTP_POST ? ADMIN_DRAIN : ADMIN_CLUSTER;
  op->work.data = op;
  *op_out = op;
  return 0;
}

/* The tenants of a node in the states a drain hands over. */
typedef struct drain_list {
  char (*ids)[ES_TENANT_LEN_MAX + 1];
  size_t n, cap, taking;
  int oom;
} drain_list;

static int drain_push(drain_list *l, const char *tenant) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    void *p = realloc(l->ids, cap * sizeof *l->ids);
    if (p == NULL)
      return l->oom = 1;
    l->ids = p;
    l->cap = cap;
  }
  snprintf(l->ids[l->n++], sizeof *l->ids, "%s", tenant);
  return 0;
}

static int drain_has(const drain_list *l, const char *tenant) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->ids[i], tenant) == 0)
      return 1;
  return 0;
}

static int drain_collect(void *ud, const es_cluster_tenant *t) {
  drain_list *l = ud;
  if (strcmp(t->state, "taking") == 0)
    l->taking++;
  if (strcmp(t->state, "held") != 0)
    return 0;
  return drain_push(l, t->tenant);
}

/* One tenant of GET /v1/admin/cluster. */
static int cluster_member(void *ud, const es_cluster_tenant *t) {
  admin_op *op = ud;
  char line[ES_TENANT_LEN_MAX + 320];
  snprintf(line, sizeof line,
           "%s{\"tenant\":\"%s\",\"state\":\"%s\",\"lease_gen\":%llu,"
           "\"took_s\":%.6f,\"restored_rows\":%llu,\"lease_s\":%.6f,"
           "\"restore_s\":%.6f,\"replay_s\":%.6f,\"replayed_events\":%llu}",
           op->out.len > 12 ? "," : "", t->tenant, t->state,
           (unsigned long long)t->lease_gen, (double)t->took_us / 1e6,
           (unsigned long long)t->restored_rows, (double)t->lease_us / 1e6,
           (double)t->restore_us / 1e6, (double)t->replay_us / 1e6,
           (unsigned long long)t->replayed_events);
  return seg_buf_put(&op->out, line, strlen(line)) ? ES_ENOMEM : 0;
}

#define DRAIN_RELEASE_TIMEOUT_US (30 * 1000000LL)

/* GET /v1/admin/cluster and POST /v1/admin/cluster/drain (pool thread;
 * invariant 6). */
static void admin_cluster_work(admin_op *op) {
  es_cluster *c = op->srv->sched.cluster;
  if (op->kind == ADMIN_CLUSTER) {
    int rc = seg_buf_put(&op->out, "{\"tenants\":[", 12) ? ES_ENOMEM : ES_OK;
    if (rc == ES_OK)
      rc = es_cluster_status(c, cluster_member, op);
    if (rc == ES_OK && seg_buf_put(&op->out, "]}", 2))
      rc = ES_ENOMEM;
    op->status = rc == ES_OK ? 200
                             : admin_error(&op->out, http_status_of(rc),
                                           rc == ES_ENOMEM ? "out of memory"
                                                           : es_errmsg());
    return;
  }
  __atomic_store_n(&op->srv->sched.draining, 1, __ATOMIC_RELEASE);
  seg_buf ok, bad;
  seg_buf_init(&ok);
  seg_buf_init(&bad);
  int oom = 0;
  size_t released = 0, failed = 0, taking = 0;
  /* a takeover started just before the flag was set ends as "held":
   * a few passes catch it */
  drain_list gave_up = {0}; /* a failed release is not tried again */
  for (int pass = 0; pass < 50 && !oom; pass++) {
    drain_list l = {0};
    int rc = es_cluster_status(c, drain_collect, &l);
    oom |= l.oom || rc != ES_OK;
    taking = l.taking;
    size_t tried = 0;
    for (size_t i = 0; i < l.n && !oom; i++) {
      if (drain_has(&gave_up, l.ids[i]))
        continue;
      tried++;
      rc = es_cluster_release(c, l.ids[i], DRAIN_RELEASE_TIMEOUT_US);
      if (rc != ES_OK)
        oom |= drain_push(&gave_up, l.ids[i]);
      seg_buf *b = rc == ES_OK ? &ok : &bad;
      const char *sep = (rc == ES_OK ? released++ : failed++) ? "," : "";
      if (rc == ES_OK) {
        oom |= seg_buf_put(b, sep, strlen(sep)) ||
               seg_buf_put_json_string(b, l.ids[i], strlen(l.ids[i]));
      } else {
        const char *why = es_errmsg();
        oom |= seg_buf_put(b, sep, strlen(sep)) ||
               seg_buf_put(b, "{\"tenant\":", 10) ||
               seg_buf_put_json_string(b, l.ids[i], strlen(l.ids[i])) ||
               seg_buf_put(b, ",\"error\":", 9) ||
               seg_buf_put_json_string(b, why, strlen(why)) ||
               seg_buf_put(b, "}", 1);
      }
    }
    free(l.ids);
    if (tried == 0 && taking == 0)
      break;
    if (tried == 0)
      usleep(100 * 1000);
  }
  char tail[96];
  snprintf(tail, sizeof tail, "],\"still_taking\":%zu}", taking);
  int good = !oom && failed == 0 && taking == 0;
  const char *head = good ? "{\"success\":true,\"released\":["
                          : "{\"success\":false,\"released\":[";
  if (oom || seg_buf_put(&op->out, head, strlen(head)) ||
      seg_buf_put(&op->out, ok.data, ok.len) ||
      seg_buf_put(&op->out, "],\"failed\":[", 12) ||
      seg_buf_put(&op->out, bad.data, bad.len) ||
      seg_buf_put(&op->out, tail, strlen(tail)))
    op->status = admin_error(&op->out, 503, "out of memory");
  else
    op->status = good ? 200 : 503;
  if (!good)
    snprintf(op->why, sizeof op->why,
             "drain: %zu released, %zu failed, %zu "
             "still being taken",
             released, failed, taking);
  char extra[128];
  snprintf(extra, sizeof extra, ",\"released\":%zu,\"failed\":%zu", released,
           failed);
  ing_log(good ? "info" : "warning", "cluster node drained", extra);
  seg_buf_free(&ok);
  seg_buf_free(&bad);
  free(gave_up.ids);
}

void admin_op_work(uv_work_t *w) {
  admin_op *op = w->data;
  char *json = NULL, ok[256];
  int rc;
  if (op->kind == ADMIN_DRAIN || op->kind == ADMIN_CLUSTER) {
    admin_cluster_work(op);
    return;
  }
  if (op->kind != ADMIN_RULES) {
    admin_erase_work(op);
    return;
  }
  if (op->method == HTTP_GET)
    rc = es_rules_list(op->db, op->tenant, 0, &json);
  else if (op->method == HTTP_PUT)
    rc = es_rule_put(op->db, op->tenant, op->rule);
  else
    rc = es_rule_delete(op->db, op->tenant, op->name);
  if (rc != ES_OK) {
    op->status = admin_error(&op->out, http_status_of(rc), es_errmsg());
    snprintf(op->why, sizeof op->why, "%.*s", (int)sizeof op->why - 1,
             admin_why);
    return;
  }
  snprintf(ok, sizeof ok,
           "{\"success\":true,\"tenant\":\"%s\",\"rule\":\"%s\"}", op->tenant,
           op->name);
  const char *text = json ? json : ok;
  op->status = seg_buf_put(&op->out, text, strlen(text))
                   ? admin_error(&op->out, 503, "out of memory")
                   : 200;
  es_free(json);
}

void admin_op_finish(admin_op *op) {
  if (op->kind == ADMIN_ERASE_POST && op->status != 0) {
    char extra[256];
    snprintf(extra, sizeof extra,
             ",\"tenant\":\"%s\",\"id\":\"%s\",\"status\":%d", op->tenant,
             op->erase_id, op->status);
    ing_log(op->status == 202 ? "info" : "warning", "erase submitted", extra);
    if (op->status == 202 && op->srv)
      admin_eraser_kick(op->srv);
  } else if (op->kind == ADMIN_UNSUPPRESS && op->status != 0) {
    char extra[128];
    snprintf(extra, sizeof extra, ",\"tenant\":\"%s\",\"status\":%d",
             op->tenant, op->status);
    ing_log(op->status == 200 ? "info" : "warning", "suppression lifted",
            extra);
  } else if (op->kind == ADMIN_RULES && op->status != 0 &&
             op->method != HTTP_GET) {
    char extra[256];
    snprintf(extra, sizeof extra,
             ",\"tenant\":\"%s\",\"rule\":\"%s\",\"status\":%d", op->tenant,
             op->name, op->status);
    ing_log(op->status == 200 ? "info" : "warning",
            op->method == HTTP_PUT ? "rule put" : "rule deleted", extra);
  }
  seg_buf_free(&op->out);
  free(op->rule);
  free(op->erase_user);
  free(op->erase_anon);
  free(op);
}

/* A string member of an erase body: 0 (absent or a string, copied), -1
 * (not a string), -2 (no memory). */
static int erase_member(yajl_val root, const char *name, char **dst) {
  const char *path[] = {name, NULL};
  yajl_val v = yajl_tree_get(root, path, yajl_t_any);
  if (v == NULL || YAJL_IS_NULL(v))
    return 0;
  if (!YAJL_IS_STRING(v))
    return -1;
  return (*dst = strdup(v->u.string)) ? 0 : -2;
}

/* The body of POST /v1/privacy/erase into op; 0 or a status. */
static int erase_body(admin_op *op, const char *body, size_t len,
                      seg_buf *out) {
  char yerr[256] = "", *tenant = NULL, *text = NULL;
  if (body == NULL || len == 0 || !(text = strndup(body, len)))
    return admin_error(out, 400,
                       "erase: want a JSON object {\"tenant\":\"T\","
                       "\"userId\":\"U\"} or \"anonymousId\"");
  yajl_val root = yajl_tree_parse(text, yerr, sizeof yerr);
  free(text);
  int rc = YAJL_IS_OBJECT(root) ? 0 : -1;
  if (rc == 0)
    rc = erase_member(root, "tenant", &tenant);
  if (rc == 0)
    rc = erase_member(root, "userId", &op->erase_user);
  if (rc == 0)
    rc = erase_member(root, "anonymousId", &op->erase_anon);
  const char *sup_path[] = {"suppress", NULL};
  yajl_val sup = rc == 0 ? yajl_tree_get(root, sup_path, yajl_t_any) : NULL;
  if (sup && !YAJL_IS_NULL(sup) && !YAJL_IS_TRUE(sup) && !YAJL_IS_FALSE(sup))
    rc = -3;
  op->erase_suppress = sup && YAJL_IS_TRUE(sup);
  yajl_tree_free(root);
  int status = 0;
  if (rc == -2)
    status = admin_error(out, 503, "out of memory");
  else if (rc == -3)
    status = admin_error(out, 400, "erase: \"suppress\": want true or false");
  else if (rc < 0)
    status = admin_error(out, 400,
                         "erase: want a JSON object with string "
                         "\"tenant\" and \"userId\" or "
                         "\"anonymousId\"");
  else if (!tenant || !svc_tenant_ok(tenant))
    status =
        admin_error(out, 400, "erase: \"tenant\": want [A-Za-z0-9_-]{1,64}");
  else if (!op->erase_user == !op->erase_anon)
    status = admin_error(out, 400,
                         "erase: give exactly one of \"userId\" "
                         "and \"anonymousId\"");
  else
    snprintf(op->tenant, sizeof op->tenant, "%s", tenant);
  free(tenant);
  return status;
}

int admin_erase_new(server *srv, int method, const char *path, const char *body,
                    size_t len, admin_op **op_out, seg_buf *out) {
  *op_out = NULL;
  admin_op *op = calloc(1, sizeof *op);
  if (op == NULL)
    return admin_error(out, 503, "out of memory");
  seg_buf_init(&op->out);
  op->db = srv->db;
  op->srv = srv;
  op->method = method;
  op->work.data = op;
  int status = 0;
  if (method == HTTP_POST) {
    int lift = strcmp(path, "/v1/privacy/unsuppress") == 0;
    op->kind = lift ? ADMIN_UNSUPPRESS : ADMIN_ERASE_POST;
    status = erase_body(op, body, len, out);
    if (status == 0 && lift && op->erase_suppress)
      status = admin_error(out, 400,
                           "unsuppress: \"suppress\" is for "
                           "/v1/privacy/erase");
  } else {
    op->kind = ADMIN_ERASE_GET;
    const char *id = path + strlen("/v1/privacy/erase/");
    if (strlen(id) == 0 || strlen(id) >= sizeof op->erase_id)
      status = admin_error(out, 404, "no such erase request");
    else
      snprintf(op->erase_id, sizeof op->erase_id, "%s", id);
  }
  if (status != 0) {
    op->kind = ADMIN_RULES; /* nothing to log */
    op->method = HTTP_GET;
    admin_op_finish(op);
    return status;
  }
  *op_out = op;
  return 0;
}

/* ---- the eraser thread ---------------------------------------------- */

#define ERASER_RETRY_NS 1000000000L

struct eraser {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int kicked, stop, waiting; /* waiting: a request is left to retry */
  es_db *db;
};

static void *eraser_main(void *arg) {
  struct eraser *e = arg;
  /* at nice +10, as the library's compactor: a rewrite of a large tenant
   * yields the CPU to appends (Linux sets the nice value per thread) */
  (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
  pthread_mutex_lock(&e->mu);
  e->kicked = 1; /* requests left by the last process */
  while (!e->stop) {
    if (!e->kicked) {
      if (e->waiting) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&e->cv, &e->mu, &ts);
        e->kicked = 1;
      } else {
        pthread_cond_wait(&e->cv, &e->mu);
      }
      continue;
    }
    e->kicked = 0;
    pthread_mutex_unlock(&e->mu);
    int rc = es_erase_run(e->db, NULL);
    if (rc != ES_OK) {
      char extra[400];
      snprintf(extra, sizeof extra, ",\"reason\":");
      size_t n = strlen(extra);
      svc_json_string(extra + n, sizeof extra - n, es_errmsg());
      ing_log("warning", "erase: a request waits; retrying", extra);
    }
    pthread_mutex_lock(&e->mu);
    e->waiting = rc != ES_OK && rc != ES_ECLOSED && rc != ES_EFAILED;
  }
  pthread_mutex_unlock(&e->mu);
  return NULL;
}

int admin_eraser_start(server *srv) {
  struct eraser *e = calloc(1, sizeof *e);
  if (e == NULL)
    return -1;
  e->db = srv->db;
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->cv, NULL);
  if (pthread_create(&e->thread, NULL, eraser_main, e) != 0) {
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e);
    return -1;
  }
  (void)pthread_setname_np(e->thread, "ing-erase");
  srv->eraser = e;
  return 0;
}

void admin_eraser_kick(server *srv) {
  struct eraser *e = srv->eraser;
  if (e == NULL)
    return;
  pthread_mutex_lock(&e->mu);
  e->kicked = 1;
  pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
}

void admin_eraser_stop(server *srv) {
  struct eraser *e = srv->eraser;
  if (e == NULL)
    return;
  pthread_mutex_lock(&e->mu);
  e->stop = 1;
  pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
  pthread_join(e->thread, NULL);
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
  free(e);
  srv->eraser = NULL;
}
