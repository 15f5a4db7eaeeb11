/*
 * codec.h -- byte-level encodings shared by the WAL, segments and
 * manifests: a growable byte buffer, little-endian integers, LEB128
 * varints with zigzag for signed values, and the wrappers around xxHash
 * (checksums) and LZ4 (block compression).
 *
 * Readers (es_rd) never read past their end: every get reports failure
 * through the reader's sticky `bad` flag, which the caller turns into
 * ES_ECORRUPT with the context it knows (file, offset).
 */
#ifndef ES_CODEC_H
#define ES_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/status.h"

/* A growable buffer (owned by whoever initialised it). */
typedef struct es_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
} es_buf;

void es__buf_free(es_buf *b);
/* Makes room for `more` bytes after len. */
int es__buf_reserve(es_buf *b, size_t more) ES_MUST_CHECK;
int es__buf_put(es_buf *b, const void *p, size_t n) ES_MUST_CHECK;
int es__buf_put_u8(es_buf *b, uint8_t v) ES_MUST_CHECK;
int es__buf_put_u32(es_buf *b, uint32_t v) ES_MUST_CHECK;
int es__buf_put_u64(es_buf *b, uint64_t v) ES_MUST_CHECK;
int es__buf_put_varint(es_buf *b, uint64_t v) ES_MUST_CHECK;
int es__buf_put_svarint(es_buf *b, int64_t v) ES_MUST_CHECK;

/* A bounds-checked reader over borrowed bytes. */
typedef struct es_rd {
  const uint8_t *p;
  const uint8_t *end;
  int bad; /* set once a read ran past the end or a varint was malformed */
} es_rd;

static inline es_rd es__rd(const void *p, size_t n) {
  es_rd r = {(const uint8_t *)p, (const uint8_t *)p + n, 0};
  return r;
}

static inline void es__le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline void es__le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t es__get_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
static inline uint64_t es__get_le64(const uint8_t *p) {
  return (uint64_t)es__get_le32(p) | (uint64_t)es__get_le32(p + 4) << 32;
}

/* Writes a varint into p (at least 10 bytes); returns bytes written. */
static inline size_t es__varint_put(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}
static inline uint64_t es__zigzag(int64_t v) {
  return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}
static inline int64_t es__unzigzag(uint64_t v) {
  return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* Returns a pointer to the next n bytes and skips them (NULL if short). */
static inline const uint8_t *es__rd_bytes(es_rd *r, size_t n) {
  if ((size_t)(r->end - r->p) < n) {
    r->bad = 1;
    r->p = r->end;
    return NULL;
  }
  const uint8_t *p = r->p;
  r->p += n;
  return p;
}

/* Reads one byte (0 and bad when past the end). */
static inline uint8_t es__rd_u8(es_rd *r) {
  if (r->p >= r->end) {
    r->bad = 1;
    return 0;
  }
  return *r->p++;
}

/* Reads a little-endian u32 / u64. */
static inline uint32_t es__rd_u32(es_rd *r) {
  const uint8_t *p = es__rd_bytes(r, 4);
  return p ? es__get_le32(p) : 0;
}
static inline uint64_t es__rd_u64(es_rd *r) {
  const uint8_t *p = es__rd_bytes(r, 8);
  return p ? es__get_le64(p) : 0;
}

/* Reads an unsigned varint of at most 10 bytes (inline: it is on every
 * row's decode path). */
static inline uint64_t es__rd_varint(es_rd *r) {
  if (r->p < r->end && *r->p < 0x80)
    return *r->p++;
  uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (r->p >= r->end) {
      r->bad = 1;
      return 0;
    }
    uint8_t c = *r->p++;
    if (shift == 63 && c > 1)
      break; /* would overflow 64 bits */
    v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80))
      return v;
  }
  r->bad = 1;
  return 0;
}

/* Reads a zigzag signed varint. */
static inline int64_t es__rd_svarint(es_rd *r) {
  return es__unzigzag(es__rd_varint(r));
}

/* The checksum of every on-disk structure: XXH3 64-bit with a seed. */
uint64_t es__hash64(const void *p, size_t n, uint64_t seed);

/* LZ4 block compression into dst (capacity es__lz4_bound(n)); returns the
 * compressed size, or 0 if it did not fit. */
size_t es__lz4_bound(size_t n);
size_t es__lz4_compress(const void *src, size_t n, void *dst, size_t cap);
/* Decompresses exactly raw_len bytes; ES_ECORRUPT otherwise. */
int es__lz4_decompress(const void *src, size_t n, void *dst,
                       size_t raw_len) ES_MUST_CHECK;

#endif
