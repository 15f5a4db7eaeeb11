/*
 * manifest.c -- reading and writing MANIFEST and ESDB files.
 *
 *   MANIFEST: "ESMANIFS" | u32 version | u32 count | u64 flushed_lsn |
 *             u64 next_segment_id | [v2: u64 generation] |
 *             [v3: u8 node length (0..64) | node name] |
 *             count x (u64 id | u64 rows | u64 bytes | i64 min_ts |
 *             i64 max_ts) | u64 checksum
 *             Version 1 has no generation: it reads as generation 1 (a
 *             file exists, so at least one commit made it).  Writers
 *             always write the current version.  Before version 3
 *             the node is "" (the store's own WAL).
 *   ESDB:     "ESDBFILE" | u32 version | u32 shards | u64 checksum
 * Checksums are XXH3 of every byte before them.
 */
#include <stdio.h>
#include <string.h>

#include "base/codec.h"
#include "base/mem.h"
#include "store/manifest.h"

#define MANIFEST_MAGIC "ESMANIFS"
#define ESDB_MAGIC "ESDBFILE"
#define MANIFEST_ENTRY_BYTES 40
#define MANIFEST_V1_BYTES 40 /* magic .. next_segment_id, checksum */
#define MANIFEST_V2_BYTES 48 /* and the generation */
#define MANIFEST_V3_BYTES 49 /* and the node's length */

/* "<016x>.seg" */
void es__segment_name(char *buf, size_t cap, uint64_t id) {
  snprintf(buf, cap, "%016llx.seg", (unsigned long long)id);
}

/* Releases the entries. */
void es__manifest_free(es_manifest *m) {
  es__free(m->entries);
  memset(m, 0, sizeof(*m));
}

/* Checks the trailing checksum and the magic/version of a small file. */
static int manifest_check(const char *path, const uint8_t *buf, size_t len,
                          const char *magic, size_t min_len) {
  if (len < min_len || memcmp(buf, magic, 8) != 0)
    return ES_CORRUPT_BKPT("%s: not a %s file", path, magic);
  if (es__hash64(buf, len - 8, 0) != es__get_le64(buf + len - 8))
    return ES_CORRUPT_BKPT("%s: checksum mismatch at offset %zu", path,
                           len - 8);
  uint32_t version = es__get_le32(buf + 8);
  if (version == 0 || version > ES_FORMAT_VERSION)
    return ES_ERR(ES_EVERSION,
                  "%s: format version %u (this library reads "
                  "up to %d)",
                  path, version, ES_FORMAT_VERSION);
  return ES_OK;
}

/* Decodes a manifest's bytes; see manifest.h. */
/* Reads the v3 node field (u8 length, name) into node. */
static int manifest_node(const char *path, es_rd *r, char *node) {
  size_t n = es__rd_u8(r);
  if (n > ES_MANIFEST_NODE_MAX || (size_t)(r->end - r->p) < n)
    return ES_CORRUPT_BKPT("%s: node name of %zu bytes", path, n);
  for (size_t i = 0; i < n; i++)
    if (r->p[i] < 0x21 || r->p[i] > 0x7e)
      return ES_CORRUPT_BKPT("%s: node name not printable", path);
  memcpy(node, r->p, n);
  node[n] = '\0';
  r->p += n;
  return ES_OK;
}

int es__manifest_decode(const char *what, const uint8_t *buf, size_t len,
                        es_manifest *m) {
  memset(m, 0, sizeof(*m));
  m->next_segment_id = 1;
  const char *path = what;
  int rc = manifest_check(path, buf, len, MANIFEST_MAGIC, MANIFEST_V1_BYTES);
  uint32_t version = rc == ES_OK ? es__get_le32(buf + 8) : 0;
  size_t fixed = version >= 3   ? MANIFEST_V3_BYTES
                 : version >= 2 ? MANIFEST_V2_BYTES
                                : MANIFEST_V1_BYTES;
  if (rc == ES_OK && len < fixed)
    rc = ES_CORRUPT_BKPT("%s: %zu bytes, too short for version %u", path, len,
                         version);
  if (rc == ES_OK) {
    es_rd r = es__rd(buf + 12, len - 20);
    uint32_t count = es__rd_u32(&r);
    m->flushed_lsn = es__rd_u64(&r);
    m->next_segment_id = es__rd_u64(&r);
    m->generation = version >= 2 ? es__rd_u64(&r) : 1;
    if (version >= 3)
      rc = manifest_node(path, &r, m->lsn_node);
    if (rc == ES_OK &&
        (size_t)(r.end - r.p) != (size_t)count * MANIFEST_ENTRY_BYTES)
      rc = ES_CORRUPT_BKPT("%s: %u entries do not fit its size", path, count);
    else if (rc == ES_OK && count &&
             !(m->entries = es__malloc(count * sizeof(*m->entries))))
      rc = ES_NOMEM_BKPT();
    for (uint32_t i = 0; rc == ES_OK && i < count; i++) {
      es_manifest_entry *e = &m->entries[i];
      e->id = es__rd_u64(&r);
      e->rows = es__rd_u64(&r);
      e->bytes = es__rd_u64(&r);
      e->min_ts_us = (int64_t)es__rd_u64(&r);
      e->max_ts_us = (int64_t)es__rd_u64(&r);
      if (e->id >= m->next_segment_id)
        rc = ES_CORRUPT_BKPT("%s: segment id %llu not below next id", path,
                             (unsigned long long)e->id);
    }
    m->count = rc == ES_OK ? count : 0;
  }
  if (rc < 0)
    es__manifest_free(m);
  return rc;
}

/* Reads a manifest; a missing one is empty (a tenant never sealed). */
int es__manifest_read(es_vfs *vfs, const char *tenant_dir, es_manifest *m) {
  memset(m, 0, sizeof(*m));
  m->next_segment_id = 1;
  char path[ES_PATH_MAX];
  ES_TRY(es__path_join(path, sizeof(path), tenant_dir, "MANIFEST"));
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = es__io_read_all(vfs, path, &buf, &len);
  if (rc == ES_ENOTFOUND)
    return ES_OK;
  ES_TRY(rc);
  rc = es__manifest_decode(path, buf, len, m);
  es__free(buf);
  return rc;
}

/* Writes a manifest with the atomic-replace protocol. */
int es__manifest_write(es_vfs *vfs, const char *tenant_dir,
                       const es_manifest *m) {
  es_buf b = {0};
  int rc = es__buf_put(&b, MANIFEST_MAGIC, 8);
  if (rc == ES_OK)
    rc = es__buf_put_u32(&b, ES_FORMAT_VERSION);
  if (rc == ES_OK)
    rc = es__buf_put_u32(&b, (uint32_t)m->count);
  if (rc == ES_OK)
    rc = es__buf_put_u64(&b, m->flushed_lsn);
  if (rc == ES_OK)
    rc = es__buf_put_u64(&b, m->next_segment_id);
  if (rc == ES_OK)
    rc = es__buf_put_u64(&b, m->generation);
  size_t nlen = strnlen(m->lsn_node, sizeof(m->lsn_node));
  if (rc == ES_OK && nlen > ES_MANIFEST_NODE_MAX)
    rc = ES_INVAL_BKPT("manifest node name too long");
  if (rc == ES_OK)
    rc = es__buf_put_u8(&b, (uint8_t)nlen);
  if (rc == ES_OK)
    rc = es__buf_put(&b, m->lsn_node, nlen);
  for (size_t i = 0; rc == ES_OK && i < m->count; i++) {
    const es_manifest_entry *e = &m->entries[i];
    rc = es__buf_put_u64(&b, e->id);
    if (rc == ES_OK)
      rc = es__buf_put_u64(&b, e->rows);
    if (rc == ES_OK)
      rc = es__buf_put_u64(&b, e->bytes);
    if (rc == ES_OK)
      rc = es__buf_put_u64(&b, (uint64_t)e->min_ts_us);
    if (rc == ES_OK)
      rc = es__buf_put_u64(&b, (uint64_t)e->max_ts_us);
  }
  if (rc == ES_OK)
    rc = es__buf_put_u64(&b, es__hash64(b.data, b.len, 0));
  if (rc == ES_OK)
    rc = es__io_write_atomic(vfs, tenant_dir, "MANIFEST", b.data, b.len);
  es__buf_free(&b);
  return rc;
}

/* Reads DATA/ESDB; ES_ENOTFOUND when the directory holds no store. */
int es__esdb_read(es_vfs *vfs, const char *data_dir, uint32_t *shards_out) {
  char path[ES_PATH_MAX];
  ES_TRY(es__path_join(path, sizeof(path), data_dir, "ESDB"));
  uint8_t *buf = NULL;
  size_t len = 0;
  ES_TRY(es__io_read_all(vfs, path, &buf, &len));
  int rc = manifest_check(path, buf, len, ESDB_MAGIC, 24);
  if (rc == ES_OK && len != 24)
    rc = ES_CORRUPT_BKPT("%s: %zu bytes, want 24", path, len);
  if (rc == ES_OK) {
    *shards_out = es__get_le32(buf + 12);
    if (*shards_out == 0 || *shards_out > 1024)
      rc = ES_CORRUPT_BKPT("%s: %u shards", path, *shards_out);
  }
  es__free(buf);
  return rc;
}

/* Writes DATA/ESDB atomically. */
int es__esdb_write(es_vfs *vfs, const char *data_dir, uint32_t shards) {
  uint8_t buf[24];
  memcpy(buf, ESDB_MAGIC, 8);
  es__le32(buf + 8, ES_FORMAT_VERSION);
  es__le32(buf + 12, shards);
  es__le64(buf + 16, es__hash64(buf, 16, 0));
  return es__io_write_atomic(vfs, data_dir, "ESDB", buf, sizeof(buf));
}
