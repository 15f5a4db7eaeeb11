/*
 * replrec.c -- tenants/<t>/REPLICA: the durable record of which of a
 * tenant's objects are confirmed in the object store (docs/FORMAT.md,
 * "REPLICA").  The uploader (replicate.c) reads it once per tenant and
 * rewrites it (temp, fdatasync, rename, directory fsync) after every
 * object it confirms, so a restart resumes where it stopped.
 *
 * Invariants:
 *  1. An entry is added only after the store answered ES_OK for its put:
 *     the record never claims an object that may be missing.  (The
 *     reverse is allowed: a crash between the put and the save leaves an
 *     object the record does not name; it is uploaded once more.)
 *  2. The file is whole or absent: one checksum over every byte, and a
 *     decoder that refuses anything it would have to guess at.
 */
#include <stdio.h>
#include <string.h>

#include "base/codec.h"
#include "base/io.h"
#include "base/mem.h"
#include "replicate/replicate.h"

#define REPLREC_MAGIC "ESREPLC1"
#define REPLREC_VERSION 1
#define REPLREC_SEED 0x7e91
#define REPLREC_HEAD 40 /* magic, version, count, three u64 */
#define REPLREC_ENTRIES_MAX (1u << 22)

void es__replrec_free(es_replrec *rec) {
  es__free(rec->e);
  memset(rec, 0, sizeof(*rec));
}

es_replrec_entry *es__replrec_find(es_replrec *rec, const char *name) {
  for (size_t i = 0; i < rec->n; i++)
    if (strcmp(rec->e[i].name, name) == 0)
      return &rec->e[i];
  return NULL;
}

int es__replrec_put(es_replrec *rec, const char *name, uint64_t bytes,
                    int64_t superseded_us) {
  size_t len = strlen(name);
  if (len == 0 || len >= sizeof(rec->e[0].name))
    return ES_INVAL_BKPT("replica record name \"%s\"", name);
  es_replrec_entry *e = es__replrec_find(rec, name);
  if (!e) {
    if (rec->n == rec->cap) {
      size_t cap = rec->cap ? 2 * rec->cap : 16;
      es_replrec_entry *ne = es__realloc(rec->e, cap * sizeof(*ne));
      if (!ne)
        return ES_NOMEM_BKPT();
      rec->e = ne;
      rec->cap = cap;
    }
    e = &rec->e[rec->n++];
    memset(e, 0, sizeof(*e));
    memcpy(e->name, name, len + 1);
  }
  e->bytes = bytes;
  e->superseded_us = superseded_us;
  return ES_OK;
}

void es__replrec_remove(es_replrec *rec, const char *name) {
  es_replrec_entry *e = es__replrec_find(rec, name);
  if (e)
    *e = rec->e[--rec->n];
}

int es__replrec_encode(const es_replrec *rec, uint8_t **buf_out,
                       size_t *len_out) {
  es_buf b = {0};
  int rc = es__buf_put(&b, REPLREC_MAGIC, 8);
  if (rc == ES_OK)
    rc = es__buf_put_u32(&b, REPLREC_VERSION);
  if (rc == ES_OK)
    rc = es__buf_put_u32(&b, (uint32_t)rec->n);
  if (rc == ES_OK)
    rc = es__buf_put_u64(&b, rec->generation);
  if (rc == ES_OK)
    rc = es__buf_put_u64(&b, rec->identity_hash);
  if (rc == ES_OK)
    rc = es__buf_put_u64(&b, rec->rules_hash);
  for (size_t i = 0; rc == ES_OK && i < rec->n; i++) {
    size_t len = strlen(rec->e[i].name);
    rc = es__buf_put_u8(&b, (uint8_t)len);
    if (rc == ES_OK)
      rc = es__buf_put(&b, rec->e[i].name, len);
    if (rc == ES_OK)
      rc = es__buf_put_u64(&b, rec->e[i].bytes);
    if (rc == ES_OK)
      rc = es__buf_put_u64(&b, (uint64_t)rec->e[i].superseded_us);
  }
  if (rc == ES_OK)
    rc = es__buf_put_u64(&b, es__hash64(b.data, b.len, REPLREC_SEED));
  if (rc < 0) {
    es__buf_free(&b);
    return rc;
  }
  *buf_out = b.data;
  *len_out = b.len;
  return ES_OK;
}

/* A name the uploader could have written: printable, no '/', not empty. */
static int replrec_name_ok(const uint8_t *p, size_t n) {
  if (n == 0 || n >= sizeof(((es_replrec_entry *)0)->name))
    return 0;
  for (size_t i = 0; i < n; i++)
    if (p[i] <= ' ' || p[i] >= 0x7f || p[i] == '/')
      return 0;
  return 1;
}

int es__replrec_decode(const char *what, const uint8_t *buf, size_t len,
                       es_replrec *rec) {
  memset(rec, 0, sizeof(*rec));
  if (len < REPLREC_HEAD + 8 || memcmp(buf, REPLREC_MAGIC, 8) != 0)
    return ES_CORRUPT_BKPT("%s: not a replica record", what);
  if (es__hash64(buf, len - 8, REPLREC_SEED) != es__get_le64(buf + len - 8))
    return ES_CORRUPT_BKPT("%s: checksum mismatch at offset %zu", what,
                           len - 8);
  es_rd r = es__rd(buf + 8, len - 16);
  uint32_t version = es__rd_u32(&r);
  if (version != REPLREC_VERSION)
    return ES_ERR(ES_EVERSION, "%s: replica record version %u", what, version);
  uint32_t count = es__rd_u32(&r);
  rec->generation = es__rd_u64(&r);
  rec->identity_hash = es__rd_u64(&r);
  rec->rules_hash = es__rd_u64(&r);
  if (count > REPLREC_ENTRIES_MAX || count > len / 17)
    return ES_CORRUPT_BKPT("%s: %u entries cannot fit", what, count);
  int rc = ES_OK;
  for (uint32_t i = 0; rc == ES_OK && i < count; i++) {
    size_t n = es__rd_u8(&r);
    const uint8_t *p = es__rd_bytes(&r, n);
    uint64_t bytes = es__rd_u64(&r);
    int64_t sup = (int64_t)es__rd_u64(&r);
    char name[40];
    if (r.bad || !p || !replrec_name_ok(p, n) || sup < 0) {
      rc = ES_CORRUPT_BKPT("%s: entry %u is malformed", what, i);
      break;
    }
    memcpy(name, p, n);
    name[n] = '\0';
    if (es__replrec_find(rec, name))
      rc = ES_CORRUPT_BKPT("%s: %s listed twice", what, name);
    else
      rc = es__replrec_put(rec, name, bytes, sup);
  }
  if (rc == ES_OK && (r.bad || r.p != r.end))
    rc = ES_CORRUPT_BKPT("%s: %zu bytes after the entries", what,
                         (size_t)(r.end - r.p));
  if (rc < 0)
    es__replrec_free(rec);
  return rc;
}

int es__replrec_load(es_vfs *vfs, const char *dir, es_replrec *rec) {
  memset(rec, 0, sizeof(*rec));
  char path[ES_PATH_MAX];
  ES_TRY(es__path_join(path, sizeof(path), dir, ES_REPLREC_NAME));
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = es__io_read_all(vfs, path, &buf, &len);
  if (rc == ES_ENOTFOUND) {
    es__error_clear();
    return ES_OK;
  }
  ES_TRY(rc);
  rc = es__replrec_decode(path, buf, len, rec);
  es__free(buf);
  return rc;
}

int es__replrec_save(es_vfs *vfs, const char *dir, const es_replrec *rec) {
  uint8_t *buf = NULL;
  size_t len = 0;
  ES_TRY(es__replrec_encode(rec, &buf, &len));
  int rc = es__io_write_atomic(vfs, dir, ES_REPLREC_NAME, buf, len);
  es__free(buf);
  return rc;
}
