/*
 * codec.c -- growable buffers, varints, and the xxHash/LZ4 wrappers.
 * See codec.h for the contracts.
 */
#include <lz4.h>
#include <xxhash.h>

#include "base/codec.h"
#include "base/mem.h"

/* Releases a buffer's memory and empties it. */
void es__buf_free(es_buf *b) {
  es__free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* Ensures capacity for len + more bytes. */
int es__buf_reserve(es_buf *b, size_t more) {
  if (b->cap - b->len >= more) /* the common case, without a call */
    return ES_OK;
  if (more > ((size_t)-1) - b->len)
    return ES_NOMEM_BKPT();
  return es__grow((void **)&b->data, &b->cap, b->len + more, 1);
}

/* Appends n bytes. */
int es__buf_put(es_buf *b, const void *p, size_t n) {
  ES_TRY(es__buf_reserve(b, n));
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  return ES_OK;
}

/* Appends one byte. */
int es__buf_put_u8(es_buf *b, uint8_t v) { return es__buf_put(b, &v, 1); }

/* Appends a little-endian u32. */
int es__buf_put_u32(es_buf *b, uint32_t v) {
  uint8_t t[4];
  es__le32(t, v);
  return es__buf_put(b, t, 4);
}

/* Appends a little-endian u64. */
int es__buf_put_u64(es_buf *b, uint64_t v) {
  uint8_t t[8];
  es__le64(t, v);
  return es__buf_put(b, t, 8);
}

/* Appends an unsigned LEB128 varint. */
int es__buf_put_varint(es_buf *b, uint64_t v) {
  ES_TRY(es__buf_reserve(b, 10));
  b->len += es__varint_put(b->data + b->len, v);
  return ES_OK;
}

/* Appends a zigzag-encoded signed varint. */
int es__buf_put_svarint(es_buf *b, int64_t v) {
  return es__buf_put_varint(b, es__zigzag(v));
}

/* XXH3-64 with a seed: the checksum of every on-disk structure. */
uint64_t es__hash64(const void *p, size_t n, uint64_t seed) {
  return XXH3_64bits_withSeed(p, n, seed);
}

/* Worst-case compressed size for n input bytes. */
size_t es__lz4_bound(size_t n) {
  return n > LZ4_MAX_INPUT_SIZE ? 0 : (size_t)LZ4_compressBound((int)n);
}

/* One LZ4 state per thread, zeroed once.  LZ4_compress_default builds
 * and zeroes a 16 KB state on every call, which cost more than the
 * compression of a WAL record or a segment's column block (callgrind,
 * es-bench ingest: LZ4_initStream was 53% of es__lz4_compress).  Every
 * call starts a new stream (LZ4_resetStream_fast), so each block is
 * independent and decodes with LZ4_decompress_safe as before. */
static _Thread_local LZ4_stream_t lz4_state;
static _Thread_local int lz4_state_ready;

/* LZ4 block compression; 0 when the output did not fit in cap. */
size_t es__lz4_compress(const void *src, size_t n, void *dst, size_t cap) {
  if (n > LZ4_MAX_INPUT_SIZE || cap > 0x7fffffff)
    return 0;
  if (!lz4_state_ready) {
    LZ4_initStream(&lz4_state, sizeof lz4_state);
    lz4_state_ready = 1;
  } else {
    LZ4_resetStream_fast(&lz4_state);
  }
  int r = LZ4_compress_fast_continue(&lz4_state, src, dst, (int)n, (int)cap, 1);
  return r > 0 ? (size_t)r : 0;
}

/* LZ4 block decompression that must produce exactly raw_len bytes. */
int es__lz4_decompress(const void *src, size_t n, void *dst, size_t raw_len) {
  if (n > 0x7fffffff || raw_len > 0x7fffffff)
    return ES_CORRUPT_BKPT("lz4 block too large");
  int r = LZ4_decompress_safe(src, dst, (int)n, (int)raw_len);
  if (r < 0 || (size_t)r != raw_len)
    return ES_CORRUPT_BKPT("lz4 block does not decompress to %zu bytes",
                           raw_len);
  return ES_OK;
}
