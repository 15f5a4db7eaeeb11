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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
          seg_buf_put_json_string(out, t, strlen(t));
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

void admin_op_work(uv_work_t *w) {
  admin_op *op = w->data;
  char *json = NULL, ok[256];
  int rc;
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
  if (op->status != 0 && op->method != HTTP_GET) {
    char extra[256];
    snprintf(extra, sizeof extra,
             ",\"tenant\":\"%s\",\"rule\":\"%s\",\"status\":%d", op->tenant,
             op->name, op->status);
    ing_log(op->status == 200 ? "info" : "warning",
            op->method == HTTP_PUT ? "rule put" : "rule deleted", extra);
  }
  seg_buf_free(&op->out);
  free(op->rule);
  free(op);
}
