/*
 * xreg.c -- the store's record of its export destinations (DATA/exports/),
 * so that an erasure reaches every copy of a person's rows that an export
 * made: stage (f) of lib/erase/erase.c re-cuts the person's partitions in
 * each recorded destination, from any process that runs the erasure,
 * after a restart, with or without a continuous exporter running.
 *
 * es_export (esctl export, beside a running es-ingestd: a read-only
 * handle) and es_exporter_start each record their destination before
 * writing their first partition: one small file per destination,
 * "exports/dest-<16 hex digits>", the digits a hash of the destination, so
 * that a second export to the same place finds it there and writes
 * nothing, and two processes recording one destination write the same
 * bytes under the same name (an atomic replace: no lost update).  The
 * days a destination holds are not recorded: the destination is the
 * record of them (its partitions' names, stream.c invariant 1).
 *
 * File: "ESXREG1\n" | u64 checksum (es__hash64 of what follows, XREG_SEED)
 * | (varint len | bytes) x 3: the URL (a local directory made absolute, or
 * s3://BUCKET[/PREFIX]), the S3 endpoint and region ("" for the
 * environment's).  No credentials: an S3 destination is opened with the
 * environment of the process that runs the erasure.
 *
 * Invariants:
 *  1. A destination is recorded (written, synced, renamed, directory
 *     synced) before the first partition is written to it: an export
 *     whose record failed writes nothing.
 *  2. A record is never removed by the store (an operator may delete one
 *     to make erasures forget a destination that is gone for good).
 *  3. A file that does not check is reported with its name (ES_ECORRUPT),
 *     never skipped silently: an erasure must not miss a destination.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/isotime.h"
#include "base/mem.h"
#include "export/xreg.h"
#include "store/dbint.h"

#define XREG_MAGIC "ESXREG1\n"
#define XREG_MAGIC_LEN 8
#define XREG_SEED UINT64_C(0x78726567)
#define XREG_DIR "exports"

static int put_str(es_buf *b, const char *s) {
  s = s ? s : "";
  ES_TRY(es__buf_put_varint(b, strlen(s)));
  return es__buf_put(b, s, strlen(s));
}

int es__xreg_encode(const char *url, const char *endpoint, const char *region,
                    es_buf *b, char name[32]) {
  ES_TRY(es__buf_put(b, XREG_MAGIC, XREG_MAGIC_LEN));
  ES_TRY(es__buf_put_u64(b, 0));
  ES_TRY(put_str(b, url));
  ES_TRY(put_str(b, endpoint));
  ES_TRY(put_str(b, region));
  size_t body = XREG_MAGIC_LEN + 8;
  es__le64(b->data + XREG_MAGIC_LEN,
           es__hash64(b->data + body, b->len - body, XREG_SEED));
  snprintf(name, 32, "dest-%016llx",
           (unsigned long long)es__hash64(b->data + body, b->len - body, 0));
  return ES_OK;
}

static int get_str(es_rd *rd, char **out) {
  uint64_t len = es__rd_varint(rd);
  const uint8_t *p = len < ES_PATH_MAX ? es__rd_bytes(rd, len) : NULL;
  if (!p)
    return ES_ECORRUPT;
  if (!(*out = es__malloc(len + 1)))
    return ES_NOMEM_BKPT();
  memcpy(*out, p, len);
  (*out)[len] = '\0';
  return ES_OK;
}

void es__xreg_entry_free(es_xreg_entry *e) {
  es__free(e->url);
  es__free(e->endpoint);
  es__free(e->region);
  memset(e, 0, sizeof(*e));
}

int es__xreg_parse(const uint8_t *p, size_t n, const char *path,
                   es_xreg_entry *e) {
  memset(e, 0, sizeof(*e));
  size_t body = XREG_MAGIC_LEN + 8;
  if (n < body || memcmp(p, XREG_MAGIC, XREG_MAGIC_LEN) != 0 ||
      es__get_le64(p + XREG_MAGIC_LEN) !=
          es__hash64(p + body, n - body, XREG_SEED))
    return ES_CORRUPT_BKPT("%s: not an export destination record (bad magic "
                           "or checksum)",
                           path);
  es_rd rd = es__rd(p + body, n - body);
  int rc = get_str(&rd, &e->url);
  if (rc == ES_OK)
    rc = get_str(&rd, &e->endpoint);
  if (rc == ES_OK)
    rc = get_str(&rd, &e->region);
  if (rc == ES_OK && (rd.bad || rd.p != rd.end || e->url[0] == '\0'))
    rc = ES_ECORRUPT;
  if (rc < 0)
    es__xreg_entry_free(e);
  if (rc == ES_ECORRUPT)
    return ES_CORRUPT_BKPT("%s: malformed export destination record", path);
  return rc;
}

/* A local directory as an absolute path (the erasure may run in another
 * working directory); an s3:// URL as it is. */
static int xreg_absolute(const char *url, char *out, size_t cap) {
  if (strncmp(url, "s3://", 5) == 0 || url[0] == '/') {
    if (strlen(url) >= cap)
      return ES_INVAL_BKPT("export destination too long");
    memcpy(out, url, strlen(url) + 1);
    return ES_OK;
  }
  char cwd[ES_PATH_MAX];
  if (!getcwd(cwd, sizeof(cwd)))
    return ES_ERR(ES_EIO, "export: cannot read the working directory");
  return es__path_join(out, cap, cwd, url);
}

int es__xreg_add(es_db *db, const char *url, const char *endpoint,
                 const char *region) {
  char abs[ES_PATH_MAX], dir[ES_PATH_MAX], path[ES_PATH_MAX], name[32];
  ES_TRY(xreg_absolute(url, abs, sizeof(abs)));
  es_buf b = {0};
  int rc = es__xreg_encode(abs, endpoint, region, &b, name);
  if (rc == ES_OK)
    rc = es__path_join(dir, sizeof(dir), db->dir, XREG_DIR);
  if (rc == ES_OK)
    rc = es__path_join(path, sizeof(path), dir, name);
  uint8_t *old = NULL;
  size_t len = 0;
  int have = rc == ES_OK &&
             es__io_read_all(db->vfs, path, &old, &len) == ES_OK &&
             len == b.len && memcmp(old, b.data, len) == 0;
  es__free(old);
  es__error_clear(); /* none yet, or unreadable: written below */
  if (rc == ES_OK && !have)
    rc = db->vfs->mkdir(db->vfs, dir);
  if (rc == ES_OK && !have)
    rc = db->vfs->sync_dir(db->vfs, db->dir);
  if (rc == ES_OK && !have)
    rc = es__io_write_atomic(db->vfs, dir, name, b.data, b.len);
  es__buf_free(&b);
  if (rc < 0)
    return ES_ERR(rc,
                  "export: cannot record the destination in %s/" XREG_DIR
                  " (an erasure must find it): %s",
                  db->dir, es_errdetail());
  return ES_OK;
}

typedef struct xreg_list {
  es_db *db;
  const char *dir;
  es_xreg_entry *v;
  size_t n, cap;
  int rc;
} xreg_list;

static int xreg_one(void *ud, const char *name) {
  xreg_list *l = ud;
  if (strncmp(name, "dest-", 5) != 0 || strlen(name) != 21)
    return 0; /* a temporary file, or not ours */
  char path[ES_PATH_MAX];
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = es__path_join(path, sizeof(path), l->dir, name);
  if (rc == ES_OK)
    rc = es__io_read_all(l->db->vfs, path, &buf, &len);
  if (rc == ES_ENOTFOUND) { /* replaced meanwhile: the same record */
    es__error_clear();
    return 0;
  }
  if (rc == ES_OK)
    rc = es__grow((void **)&l->v, &l->cap, l->n + 1, sizeof(*l->v));
  if (rc == ES_OK)
    rc = es__xreg_parse(buf, len, path, &l->v[l->n]);
  if (rc == ES_OK)
    l->n++;
  es__free(buf);
  l->rc = rc;
  return rc < 0 ? 1 : 0;
}

int es__xreg_list(es_db *db, es_xreg_entry **v_out, size_t *n_out) {
  *v_out = NULL;
  *n_out = 0;
  char dir[ES_PATH_MAX];
  ES_TRY(es__path_join(dir, sizeof(dir), db->dir, XREG_DIR));
  xreg_list l = {.db = db, .dir = dir};
  int rc = db->vfs->list(db->vfs, dir, xreg_one, &l);
  if (rc == ES_ENOTFOUND) {
    es__error_clear();
    rc = ES_OK;
  }
  if (rc == 1)
    rc = l.rc;
  if (rc < 0) {
    es__xreg_free(l.v, l.n);
    return rc;
  }
  *v_out = l.v;
  *n_out = l.n;
  return ES_OK;
}

void es__xreg_free(es_xreg_entry *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    es__xreg_entry_free(&v[i]);
  es__free(v);
}

int es__xreg_key(const char *url, const char *endpoint, const char *region,
                 char key_out[32]) {
  char abs[ES_PATH_MAX];
  ES_TRY(xreg_absolute(url, abs, sizeof(abs)));
  es_buf b = {0};
  int rc = es__xreg_encode(abs, endpoint, region, &b, key_out);
  es__buf_free(&b);
  return rc;
}

typedef struct day_list {
  int64_t *v;
  size_t n, cap;
} day_list;

/* A partition's day from a name under tenant=T/ ("date=YYYY-MM-DD...");
 * other names are skipped. */
static int day_seen(void *ud, const char *name) {
  day_list *l = ud;
  char ts[32];
  int64_t day;
  if (strncmp(name, "date=", 5) != 0 || strlen(name) < 15 ||
      (name[15] != '\0' && name[15] != '/'))
    return ES_OK;
  snprintf(ts, sizeof ts, "%.10sT00:00:00Z", name + 5);
  if (es__time_parse(ts, 1, &day) != 0)
    return ES_OK;
  for (size_t i = 0; i < l->n; i++)
    if (l->v[i] == day)
      return ES_OK;
  ES_TRY(es__grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v));
  l->v[l->n++] = day;
  return ES_OK;
}

int es__xreg_days(es_xdest *dest, const char *tenant, int64_t **days_out,
                  size_t *n_out) {
  *days_out = NULL;
  *n_out = 0;
  char rel[ES_PATH_MAX];
  int n = snprintf(rel, sizeof rel, "tenant=%s", tenant);
  if (n <= 0 || (size_t)n >= sizeof rel)
    return ES_INVAL_BKPT("export: tenant name too long");
  day_list l = {0};
  int rc = es__dest_list_deep(dest, rel, day_seen, &l);
  if (rc < 0) {
    es__free(l.v);
    return rc;
  }
  *days_out = l.v;
  *n_out = l.n;
  return ES_OK;
}
