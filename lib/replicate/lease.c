/*
 * lease.c -- per-tenant leases in the object store: which node may write
 * a tenant, and a generation number that fences out every earlier writer.
 *
 * A node of a cluster (cluster.c, docs/SCALING.md) writes a tenant only
 * while it holds the tenant's lease, the object leases/<tenant> (outside
 * tenants/, so restore never sees it).  Taking, renewing, releasing and
 * asking for a lease are each one conditional put: create-only for the
 * first lease of a tenant (S3 If-None-Match: *), replace-if-unchanged on
 * the etag just read for every later change (S3 If-Match).  Two nodes that
 * read the same state and both write therefore cannot both succeed.
 *
 * The object (text, one line, at most ES_LEASE_BYTES_MAX bytes):
 *   "eslease 1 <gen> <expires_us> <owner> <want|->\n"
 * gen and expires_us in decimal, expires_us a wall-clock time (0: released),
 * owner and want node names ([A-Za-z0-9._-]{1,64}; want "-" for none).
 *
 * Invariants:
 *  1. Every change to a lease object is a conditional put on the state the
 *     writer read (or on its absence), so changes form one sequence, and
 *     an acquire writes the read generation + 1: generations only grow,
 *     and one generation is held by one node.
 *  2. A node takes a lease another node holds only when, by its own wall
 *     clock, the lease expired more than skew_us ago (or was released).
 *  3. A holder counts its lease valid only until the monotonic time at
 *     which it SENT its last confirmed put, plus ttl_us, minus skew_us
 *     (cluster.c): with wall clocks within skew_us of each other, the
 *     holder stops writing before any other node may take the lease, even
 *     if its put reached the store late.  A renewal that fails leaves that
 *     deadline as it was; a paused holder (SIGSTOP, a long GC-like stall)
 *     finds its deadline passed when it wakes, before it writes anything.
 *  4. Fencing in the data: everything published under lease generation g
 *     (manifest generations and segment ids, cluster.c) is (g << 40) | n.
 *     Restore takes the highest manifest generation, so a manifest put by
 *     an older owner that woke up late is shadowed by any manifest of a
 *     newer one, and the segment keys of two owners never collide.
 *  5. A put that failed in doubt (ES_EUNAVAIL) is resolved by reading the
 *     object back: it took effect exactly when the object holds what this
 *     node wrote (generation, owner, expiry and the asking node; an
 *     acquire or renewal writes an expiry no earlier put wrote).  When the read
 * fails too, nothing is held.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "replicate/lease.h"

int es__lease_key(char *out, size_t cap, const char *tenant) {
  int n = snprintf(out, cap, "leases/%s", tenant);
  if (n < 0 || (size_t)n >= cap)
    return ES_INVAL_BKPT("lease key for %s too long", tenant);
  return ES_OK;
}

static int node_char(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int es__lease_node_check(const char *node) {
  size_t n = node ? strlen(node) : 0;
  if (n == 0 || n > ES_LEASE_NODE_MAX)
    return ES_INVAL_BKPT("node name \"%s\" is not [A-Za-z0-9._-]{1,64}",
                         node ? node : "(null)");
  for (size_t i = 0; i < n; i++)
    if (!node_char((unsigned char)node[i]))
      return ES_INVAL_BKPT("node name \"%s\" is not [A-Za-z0-9._-]{1,64}",
                           node);
  return ES_OK;
}

int es__lease_encode(const es_lease *l, char *out, size_t cap,
                     size_t *len_out) {
  int n = snprintf(out, cap, "eslease 1 %" PRIu64 " %" PRId64 " %s %s\n",
                   l->gen, l->expires_us, l->owner, l->want[0] ? l->want : "-");
  if (n < 0 || (size_t)n >= cap)
    return ES_INVAL_BKPT("lease too long");
  *len_out = (size_t)n;
  return ES_OK;
}

/* One space-separated field of [p, end): its start and length. */
static int lease_field(const char **p, const char *end, const char **f,
                       size_t *flen) {
  const char *s = *p, *e = s;
  while (e < end && *e != ' ' && *e != '\n')
    e++;
  if (e == s || e == end)
    return -1;
  *f = s;
  *flen = (size_t)(e - s);
  *p = e + 1;
  return e[0] == '\n' ? 1 : 0; /* 1: the line's last field */
}

/* A decimal number of at most 19 digits (no sign, no leading zero). */
static int lease_num(const char *f, size_t n, uint64_t *v) {
  if (n == 0 || n > 19 || (f[0] == '0' && n > 1))
    return -1;
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (f[i] < '0' || f[i] > '9')
      return -1;
    x = x * 10 + (uint64_t)(f[i] - '0');
  }
  *v = x;
  return 0;
}

static int lease_name(const char *f, size_t n, char *out) {
  if (n == 0 || n > ES_LEASE_NODE_MAX)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (!node_char((unsigned char)f[i]))
      return -1;
  memcpy(out, f, n);
  out[n] = '\0';
  return 0;
}

int es__lease_decode(const char *what, const uint8_t *buf, size_t len,
                     es_lease *l) {
  const char *p = (const char *)buf, *end = p + len;
  const char *f[6];
  size_t fl[6];
  int last = 0;
  if (len > ES_LEASE_BYTES_MAX || len == 0 || p[len - 1] != '\n')
    return ES_CORRUPT_BKPT("lease %s: not one line of at most %d bytes", what,
                           ES_LEASE_BYTES_MAX);
  for (int i = 0; i < 6; i++) {
    if (last)
      return ES_CORRUPT_BKPT("lease %s: too few fields", what);
    last = lease_field(&p, end, &f[i], &fl[i]);
    if (last < 0)
      return ES_CORRUPT_BKPT("lease %s: empty field", what);
  }
  if (!last || p != end)
    return ES_CORRUPT_BKPT("lease %s: too many fields", what);
  uint64_t gen = 0, exp = 0;
  es_lease n;
  memset(&n, 0, sizeof(n));
  if (fl[0] != 7 || memcmp(f[0], "eslease", 7) != 0 || fl[1] != 1 ||
      f[1][0] != '1')
    return ES_CORRUPT_BKPT("lease %s: not an \"eslease 1\" object", what);
  if (lease_num(f[2], fl[2], &gen) || gen == 0 ||
      lease_num(f[3], fl[3], &exp) || exp > (uint64_t)INT64_MAX)
    return ES_CORRUPT_BKPT("lease %s: bad generation or expiry", what);
  if (lease_name(f[4], fl[4], n.owner) ||
      (!(fl[5] == 1 && f[5][0] == '-') && lease_name(f[5], fl[5], n.want)))
    return ES_CORRUPT_BKPT("lease %s: bad node name", what);
  n.gen = gen;
  n.expires_us = (int64_t)exp;
  memcpy(n.etag, l->etag, sizeof(n.etag));
  *l = n;
  return ES_OK;
}

int es__lease_read(es_objstore *os, const char *tenant, es_lease *out) {
  char key[ES_OBJ_KEY_MAX + 1];
  memset(out, 0, sizeof(*out));
  ES_TRY(es__lease_key(key, sizeof(key), tenant));
  uint8_t *buf = NULL;
  size_t len = 0;
  es_objinfo info;
  int rc = os->get(os, key, 0, ES_OBJ_TO_END, &buf, &len, &info);
  if (rc == ES_ENOTFOUND) {
    es__error_clear();
    return ES_OK;
  }
  ES_TRY(rc);
  memcpy(out->etag, info.etag, sizeof(out->etag));
  rc = es__lease_decode(key, buf, len, out);
  es__free(buf);
  return rc;
}

/* Puts `want` over `cur` (absent when cur->gen is 0); on ES_OK, want's
 * etag is the new one.  An in-doubt put is resolved by a read
 * (invariant 5). */
static int lease_put(es_objstore *os, const char *tenant, const es_lease *cur,
                     es_lease *want) {
  char key[ES_OBJ_KEY_MAX + 1], body[ES_LEASE_BYTES_MAX + 1];
  size_t len = 0;
  ES_TRY(es__lease_key(key, sizeof(key), tenant));
  ES_TRY(es__lease_encode(want, body, sizeof(body), &len));
  es_objinfo info;
  int rc =
      cur->gen == 0
          ? os->put(os, key, body, len, ES_OBJ_PUT_IF_ABSENT, NULL, &info)
          : os->put(os, key, body, len, ES_OBJ_PUT_IF_MATCH, cur->etag, &info);
  if (rc == ES_OK) {
    memcpy(want->etag, info.etag, sizeof(want->etag));
    return ES_OK;
  }
  if (rc != ES_EUNAVAIL)
    return rc;
  char why[256];
  snprintf(why, sizeof(why), "%s", es_errdetail());
  es_lease now;
  if (es__lease_read(os, tenant, &now) != ES_OK)
    return ES_ERR(ES_EUNAVAIL, "lease %s: put in doubt (%s), read failed", key,
                  why);
  if (now.gen == want->gen && now.expires_us == want->expires_us &&
      strcmp(now.owner, want->owner) == 0 &&
      strcmp(now.want, want->want) == 0) {
    es__error_clear();
    memcpy(want->etag, now.etag, sizeof(want->etag));
    return ES_OK; /* it took effect */
  }
  if (now.gen == cur->gen && strcmp(now.etag, cur->etag) == 0)
    return ES_ERR(ES_EUNAVAIL, "lease %s: put failed (%s), nothing changed",
                  key, why); /* retry */
  return ES_ERR(ES_ECONFLICT,
                "lease %s: put in doubt (%s) did not take, "
                "the lease changed",
                key, why);
}

int es__lease_acquire(es_objstore *os, const char *tenant, const char *node,
                      int64_t now_us, const es_lease_clock *clk,
                      es_lease *out) {
  ES_TRY(es__lease_node_check(node));
  es_lease cur;
  ES_TRY(es__lease_read(os, tenant, &cur));
  if (cur.gen && strcmp(cur.owner, node) != 0 && cur.expires_us != 0 &&
      now_us <= cur.expires_us + clk->skew_us) { /* invariant 2 */
    *out = cur;
    return ES_ERR(ES_EBUSY, "tenant %s: lease held by %s", tenant, cur.owner);
  }
  if (cur.gen >= (UINT64_C(1) << (64 - ES_LEASE_GEN_SHIFT)) - 1)
    return ES_ERR(ES_EINVAL, "tenant %s: lease generations exhausted", tenant);
  es_lease want;
  memset(&want, 0, sizeof(want));
  want.gen = cur.gen + 1; /* invariant 1 */
  want.expires_us = now_us + clk->ttl_us;
  snprintf(want.owner, sizeof(want.owner), "%s", node);
  int rc = lease_put(os, tenant, &cur, &want);
  if (rc == ES_ECONFLICT) /* someone else changed it first */
    return ES_ERR(ES_EBUSY, "tenant %s: lease taken meanwhile", tenant);
  ES_TRY(rc);
  *out = want;
  return ES_OK;
}

int es__lease_renew(es_objstore *os, const char *tenant, es_lease *l,
                    int64_t now_us, const es_lease_clock *clk) {
  es_lease want = *l;
  want.expires_us = now_us + clk->ttl_us;
  if (want.expires_us == l->expires_us)
    want.expires_us++; /* a new expiry tells this write apart (5) */
  int rc = lease_put(os, tenant, l, &want);
  if (rc == ES_ECONFLICT) {
    /* Someone asked for it (es__lease_ask), or it is lost: read. */
    es_lease cur;
    ES_TRY(es__lease_read(os, tenant, &cur));
    if (cur.gen != l->gen || strcmp(cur.owner, l->owner) != 0 ||
        cur.expires_us != l->expires_us)
      return ES_ERR(ES_ECONFLICT,
                    "tenant %s: lease lost to %s (generation "
                    "%" PRIu64 ")",
                    tenant, cur.gen ? cur.owner : "nobody", cur.gen);
    want = cur;
    want.expires_us = now_us + clk->ttl_us;
    if (want.expires_us == cur.expires_us)
      want.expires_us++;
    rc = lease_put(os, tenant, &cur, &want);
  }
  ES_TRY(rc);
  *l = want;
  return ES_OK;
}

int es__lease_release(es_objstore *os, const char *tenant, es_lease *l) {
  es_lease want = *l;
  want.expires_us = 0;
  want.want[0] = '\0';
  int rc = lease_put(os, tenant, l, &want);
  if (rc == ES_ECONFLICT) {
    es_lease cur; /* an ask changed the etag, or it is lost already */
    ES_TRY(es__lease_read(os, tenant, &cur));
    if (cur.gen != l->gen || strcmp(cur.owner, l->owner) != 0) {
      es__error_clear();
      return ES_OK;
    }
    want = cur;
    want.expires_us = 0;
    want.want[0] = '\0';
    rc = lease_put(os, tenant, &cur, &want);
  }
  ES_TRY(rc);
  *l = want;
  return ES_OK;
}

int es__lease_ask(es_objstore *os, const char *tenant, es_lease *l,
                  const char *node) {
  ES_TRY(es__lease_node_check(node));
  if (l->gen == 0 || strcmp(l->want, node) == 0)
    return ES_OK;
  es_lease want = *l;
  snprintf(want.want, sizeof(want.want), "%s", node);
  ES_TRY(lease_put(os, tenant, l, &want));
  *l = want;
  return ES_OK;
}
