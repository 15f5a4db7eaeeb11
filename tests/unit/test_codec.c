/*
 * test_codec.c -- unit tests of lib/codec.{h,c}: varints and zigzag,
 * the bounds-checked reader (es_rd), little-endian integers, the LZ4
 * wrappers and the growable buffer.
 *
 * What must hold (codec.h):
 *  1. Every value encodes and decodes back to itself, with the minimal
 *     LEB128 length (1 byte below 128, 10 bytes for UINT64_MAX).
 *  2. A reader never reads past its end: a short read sets the sticky
 *     `bad` flag and yields 0; so does a varint longer than 10 bytes.
 *  3. LZ4 decompression of anything that does not decompress to exactly
 *     the expected length is ES_ECORRUPT, never a crash.
 *  4. A failed buffer operation leaves the buffer as it was.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "base/mem.h"
#include "unit.h"

/* ---- varints and zigzag ------------------------------------------------ */

static const uint64_t varint_values[] = {
    0,
    1,
    127,
    128,
    129,
    255,
    16383,
    16384,
    (1ull << 21) - 1,
    1ull << 21,
    UINT32_MAX,
    (uint64_t)UINT32_MAX + 1,
    (uint64_t)INT64_MAX,
    (uint64_t)INT64_MAX + 1,
    UINT64_MAX - 1,
    UINT64_MAX,
};

/* The LEB128 length of v: one byte per started group of 7 bits. */
static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

START_TEST(test_varint_round_trip) {
  for (size_t i = 0; i < sizeof(varint_values) / sizeof(varint_values[0]);
       i++) {
    uint64_t v = varint_values[i];
    es_buf b = {0};
    ck_assert_int_eq(es__buf_put_varint(&b, v), ES_OK);
    ck_assert_uint_eq(b.len, varint_len(v));
    /* the inline writer produces the same bytes */
    uint8_t raw[10];
    ck_assert_uint_eq(es__varint_put(raw, v), b.len);
    ck_assert_mem_eq(raw, b.data, b.len);
    es_rd r = es__rd(b.data, b.len);
    ck_assert_msg(es__rd_varint(&r) == v, "value %llu", (unsigned long long)v);
    ck_assert_int_eq(r.bad, 0);
    ck_assert_ptr_eq(r.p, r.end);
    es__buf_free(&b);
  }
}
END_TEST

START_TEST(test_varint_exact_bytes) {
  uint8_t p[10];
  ck_assert_uint_eq(es__varint_put(p, 0), 1);
  ck_assert_uint_eq(p[0], 0x00);
  ck_assert_uint_eq(es__varint_put(p, 127), 1);
  ck_assert_uint_eq(p[0], 0x7f);
  ck_assert_uint_eq(es__varint_put(p, 128), 2);
  ck_assert_uint_eq(p[0], 0x80);
  ck_assert_uint_eq(p[1], 0x01);
  ck_assert_uint_eq(es__varint_put(p, 300), 2);
  ck_assert_uint_eq(p[0], 0xac);
  ck_assert_uint_eq(p[1], 0x02);
  ck_assert_uint_eq(es__varint_put(p, UINT64_MAX), 10);
  for (int i = 0; i < 9; i++)
    ck_assert_uint_eq(p[i], 0xff);
  ck_assert_uint_eq(p[9], 0x01);
}
END_TEST

START_TEST(test_zigzag) {
  ck_assert_uint_eq(es__zigzag(0), 0);
  ck_assert_uint_eq(es__zigzag(-1), 1);
  ck_assert_uint_eq(es__zigzag(1), 2);
  ck_assert_uint_eq(es__zigzag(-2), 3);
  ck_assert_uint_eq(es__zigzag(63), 126);
  ck_assert_uint_eq(es__zigzag(-64), 127); /* still one byte */
  ck_assert_uint_eq(es__zigzag(INT64_MAX), UINT64_MAX - 1);
  ck_assert_uint_eq(es__zigzag(INT64_MIN), UINT64_MAX);
  static const int64_t vals[] = {0,
                                 1,
                                 -1,
                                 63,
                                 -64,
                                 64,
                                 -65,
                                 1000000,
                                 -1000000,
                                 INT32_MAX,
                                 INT32_MIN,
                                 INT64_MAX,
                                 INT64_MIN,
                                 INT64_MAX - 1,
                                 INT64_MIN + 1};
  for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
    ck_assert_int_eq(es__unzigzag(es__zigzag(vals[i])), vals[i]);
    es_buf b = {0};
    ck_assert_int_eq(es__buf_put_svarint(&b, vals[i]), ES_OK);
    es_rd r = es__rd(b.data, b.len);
    ck_assert_int_eq(es__rd_svarint(&r), vals[i]);
    ck_assert_int_eq(r.bad, 0);
    ck_assert_ptr_eq(r.p, r.end);
    es__buf_free(&b);
  }
  /* small magnitudes of either sign stay one byte */
  es_buf b = {0};
  ck_assert_int_eq(es__buf_put_svarint(&b, -64), ES_OK);
  ck_assert_uint_eq(b.len, 1);
  es__buf_free(&b);
}
END_TEST

/* ---- the bounds-checked reader ---------------------------------------- */

START_TEST(test_rd_truncated_varint) {
  const uint8_t one[] = {0x80};
  es_rd r = es__rd(one, sizeof(one));
  ck_assert_uint_eq(es__rd_varint(&r), 0);
  ck_assert_int_eq(r.bad, 1);
  ck_assert_ptr_eq(r.p, r.end); /* never beyond the end */

  /* UINT64_MAX cut short at every length */
  uint8_t full[10];
  size_t n = es__varint_put(full, UINT64_MAX);
  for (size_t k = 0; k < n; k++) {
    es_rd t = es__rd(full, k);
    ck_assert_uint_eq(es__rd_varint(&t), 0);
    ck_assert_msg(t.bad == 1, "prefix of %zu bytes accepted", k);
    ck_assert(t.p <= t.end);
  }
}
END_TEST

START_TEST(test_rd_overlong_varint) {
  /* ten continuation bytes then a terminator: 11 bytes, too long */
  uint8_t p[11];
  memset(p, 0x80, 10);
  p[10] = 0x00;
  es_rd r = es__rd(p, sizeof(p));
  ck_assert_uint_eq(es__rd_varint(&r), 0);
  ck_assert_int_eq(r.bad, 1);

  /* ten bytes all with the continuation bit: no terminator within 10 */
  memset(p, 0xff, sizeof(p));
  r = es__rd(p, sizeof(p));
  ck_assert_uint_eq(es__rd_varint(&r), 0);
  ck_assert_int_eq(r.bad, 1);

  /* the longest legal form (10 bytes) is fine */
  size_t n = es__varint_put(p, UINT64_MAX);
  ck_assert_uint_eq(n, 10);
  r = es__rd(p, n);
  ck_assert_uint_eq(es__rd_varint(&r), UINT64_MAX);
  ck_assert_int_eq(r.bad, 0);
}
END_TEST

START_TEST(test_rd_fixed_and_sticky) {
  const uint8_t p[] = {1, 2, 3, 4, 5, 6, 7};
  es_rd r = es__rd(p, sizeof(p));
  ck_assert_uint_eq(es__rd_u8(&r), 1);
  ck_assert_uint_eq(es__rd_u32(&r), 0x05040302u);
  ck_assert_int_eq(r.bad, 0);
  /* two bytes left: a u32 fails, yields 0, and jumps to the end */
  ck_assert_uint_eq(es__rd_u32(&r), 0);
  ck_assert_int_eq(r.bad, 1);
  ck_assert_ptr_eq(r.p, r.end);
  /* sticky: later reads fail too */
  ck_assert_uint_eq(es__rd_u8(&r), 0);
  ck_assert_ptr_null(es__rd_bytes(&r, 1));
  ck_assert_int_eq(r.bad, 1);

  es_rd e = es__rd(p, 0);
  ck_assert_uint_eq(es__rd_u8(&e), 0);
  ck_assert_int_eq(e.bad, 1);
  e = es__rd(p, 7);
  ck_assert_uint_eq(es__rd_u64(&e), 0);
  ck_assert_int_eq(e.bad, 1);
  e = es__rd(p, 7);
  ck_assert_ptr_eq(es__rd_bytes(&e, 7), p);
  ck_assert_int_eq(e.bad, 0);
  ck_assert_ptr_null(es__rd_bytes(&e, 1));
  ck_assert_int_eq(e.bad, 1);
  /* a huge length must not wrap the pointer arithmetic */
  e = es__rd(p, 7);
  ck_assert_ptr_null(es__rd_bytes(&e, SIZE_MAX));
  ck_assert_int_eq(e.bad, 1);
}
END_TEST

/* ---- little-endian integers ------------------------------------------- */

START_TEST(test_le32_le64) {
  uint8_t p[8];
  es__le32(p, 0x04030201u);
  ck_assert_uint_eq(p[0], 1);
  ck_assert_uint_eq(p[1], 2);
  ck_assert_uint_eq(p[2], 3);
  ck_assert_uint_eq(p[3], 4);
  ck_assert_uint_eq(es__get_le32(p), 0x04030201u);
  es__le32(p, 0xffffffffu);
  ck_assert_uint_eq(es__get_le32(p), 0xffffffffu);
  es__le32(p, 0x80000000u);
  ck_assert_uint_eq(p[3], 0x80);
  ck_assert_uint_eq(es__get_le32(p), 0x80000000u);

  es__le64(p, 0x0807060504030201ull);
  for (int i = 0; i < 8; i++)
    ck_assert_uint_eq(p[i], (unsigned)(i + 1));
  ck_assert_uint_eq(es__get_le64(p), 0x0807060504030201ull);
  es__le64(p, 0x8000000000000001ull);
  ck_assert_uint_eq(p[0], 1);
  ck_assert_uint_eq(p[7], 0x80);
  ck_assert_uint_eq(es__get_le64(p), 0x8000000000000001ull);
  es__le64(p, UINT64_MAX);
  ck_assert_uint_eq(es__get_le64(p), UINT64_MAX);

  /* the buffer writers use the same layout */
  es_buf b = {0};
  ck_assert_int_eq(es__buf_put_u32(&b, 0xa1b2c3d4u), ES_OK);
  ck_assert_int_eq(es__buf_put_u64(&b, 0x1122334455667788ull), ES_OK);
  ck_assert_uint_eq(b.len, 12);
  ck_assert_uint_eq(b.data[0], 0xd4);
  ck_assert_uint_eq(b.data[4], 0x88);
  es_rd r = es__rd(b.data, b.len);
  ck_assert_uint_eq(es__rd_u32(&r), 0xa1b2c3d4u);
  ck_assert_uint_eq(es__rd_u64(&r), 0x1122334455667788ull);
  ck_assert_int_eq(r.bad, 0);
  es__buf_free(&b);
}
END_TEST

/* ---- LZ4 and xxHash ---------------------------------------------------- */

/* A pseudo-random byte stream (xorshift), incompressible. */
static void fill_random(uint8_t *p, size_t n, uint64_t seed) {
  uint64_t x = seed | 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = (uint8_t)(x >> 24);
  }
}

/* Compresses src, checks the size expectation, decompresses and compares. */
static size_t lz4_round_trip(const uint8_t *src, size_t n) {
  size_t bound = es__lz4_bound(n);
  ck_assert_uint_ge(bound, n);
  uint8_t *c = malloc(bound);
  uint8_t *d = malloc(n + 1);
  size_t clen = es__lz4_compress(src, n, c, bound);
  ck_assert_uint_gt(clen, 0);
  ck_assert_uint_le(clen, bound);
  ck_assert_int_eq(es__lz4_decompress(c, clen, d, n), ES_OK);
  ck_assert_mem_eq(d, src, n);
  free(c);
  free(d);
  return clen;
}

START_TEST(test_lz4_round_trip) {
  size_t n = 64 * 1024;
  uint8_t *text = malloc(n);
  for (size_t i = 0; i < n; i++)
    text[i] = (uint8_t) "{\"event\":\"page\",\"path\":\"/pricing\"}"[i % 34];
  ck_assert_uint_lt(lz4_round_trip(text, n), n / 4); /* compressible */
  uint8_t *noise = malloc(n);
  fill_random(noise, n, 42);
  ck_assert_uint_ge(lz4_round_trip(noise, n), n); /* incompressible */
  lz4_round_trip(noise, 1);
  free(text);
  free(noise);
}
END_TEST

START_TEST(test_lz4_corrupt) {
  size_t n = 4096;
  uint8_t *src = malloc(n), *c = malloc(es__lz4_bound(n)), *d = malloc(n);
  for (size_t i = 0; i < n; i++)
    src[i] = (uint8_t)(i % 17);
  size_t clen = es__lz4_compress(src, n, c, es__lz4_bound(n));
  ck_assert_uint_gt(clen, 0);

  /* garbage input */
  uint8_t garbage[256];
  fill_random(garbage, sizeof(garbage), 7);
  ck_assert_int_eq(es__lz4_decompress(garbage, sizeof(garbage), d, n),
                   ES_ECORRUPT);
  memset(garbage, 0xff, sizeof(garbage));
  ck_assert_int_eq(es__lz4_decompress(garbage, sizeof(garbage), d, n),
                   ES_ECORRUPT);
  /* valid input, wrong expected size (either way) */
  ck_assert_int_eq(es__lz4_decompress(c, clen, d, n - 1), ES_ECORRUPT);
  uint8_t *big = malloc(n + 100);
  ck_assert_int_eq(es__lz4_decompress(c, clen, big, n + 100), ES_ECORRUPT);
  /* truncated input */
  ck_assert_int_eq(es__lz4_decompress(c, clen / 2, d, n), ES_ECORRUPT);
  ck_assert_int_eq(es__lz4_decompress(c, 0, d, n), ES_ECORRUPT);
  /* the detail says what failed */
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "decompress"));
  /* compress into too small a buffer: 0, not an overflow */
  ck_assert_uint_eq(es__lz4_compress(src, n, c, 4), 0);
  free(src);
  free(c);
  free(d);
  free(big);
}
END_TEST

START_TEST(test_hash64) {
  const char *s = "the quick brown fox";
  uint64_t h = es__hash64(s, strlen(s), 0);
  ck_assert_uint_eq(h, es__hash64(s, strlen(s), 0));
  ck_assert_uint_ne(h, es__hash64(s, strlen(s), 1));
  ck_assert_uint_ne(h, es__hash64(s, strlen(s) - 1, 0));
  char t[32];
  strcpy(t, s);
  t[3] ^= 1;
  ck_assert_uint_ne(h, es__hash64(t, strlen(t), 0));
}
END_TEST

/* ---- the growable buffer ---------------------------------------------- */

START_TEST(test_buf_growth) {
  es_buf b = {0};
  size_t prev_cap = 0;
  int grew = 0;
  for (size_t i = 0; i < 100000; i++) {
    ck_assert_int_eq(es__buf_put_u8(&b, (uint8_t)(i * 7)), ES_OK);
    ck_assert_uint_eq(b.len, i + 1);
    ck_assert_uint_ge(b.cap, b.len);
    if (b.cap != prev_cap) {
      /* doubling: every new capacity at least twice the old one */
      ck_assert_uint_ge(b.cap, prev_cap * 2);
      prev_cap = b.cap;
      grew++;
    }
  }
  ck_assert_int_le(grew, 20); /* amortised, not one realloc per byte */
  for (size_t i = 0; i < 100000; i++)
    ck_assert_uint_eq(b.data[i], (uint8_t)(i * 7));

  /* reserve does not change the length and makes room */
  size_t len = b.len;
  ck_assert_int_eq(es__buf_reserve(&b, 1000000), ES_OK);
  ck_assert_uint_eq(b.len, len);
  ck_assert_uint_ge(b.cap, len + 1000000);

  /* put of zero bytes with a NULL pointer is fine */
  ck_assert_int_eq(es__buf_put(&b, NULL, 0), ES_OK);
  ck_assert_uint_eq(b.len, len);

  es__buf_free(&b);
  ck_assert_ptr_null(b.data);
  ck_assert_uint_eq(b.len, 0);
  ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_buf_failure_leaves_buffer) {
  es_buf b = {0};
  ck_assert_int_eq(es__buf_put(&b, "abc", 3), ES_OK);
  uint8_t *data = b.data;
  size_t cap = b.cap;
  /* an impossible size */
  ck_assert_int_eq(es__buf_reserve(&b, SIZE_MAX), ES_ENOMEM);
  ck_assert_ptr_eq(b.data, data);
  ck_assert_uint_eq(b.len, 3);
  ck_assert_uint_eq(b.cap, cap);
  /* an allocation failure while growing */
  es__mem_fail_at(1);
  ck_assert_int_eq(es__buf_reserve(&b, cap * 4), ES_ENOMEM);
  ck_assert_int_eq(es__buf_put_varint(&b, 5), ES_OK); /* room was there */
  es__mem_fail_at(0);
  ck_assert_ptr_eq(b.data, data);
  ck_assert_uint_eq(b.cap, cap);
  ck_assert_uint_eq(b.len, 4);
  ck_assert_mem_eq(b.data, "abc\x05", 4);
  es__buf_free(&b);
}
END_TEST

static Suite *codec_suite(void) {
  Suite *s = suite_create("codec");
  TCase *tc = tcase_create("codec");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_varint_round_trip);
  tcase_add_test(tc, test_varint_exact_bytes);
  tcase_add_test(tc, test_zigzag);
  tcase_add_test(tc, test_rd_truncated_varint);
  tcase_add_test(tc, test_rd_overlong_varint);
  tcase_add_test(tc, test_rd_fixed_and_sticky);
  tcase_add_test(tc, test_le32_le64);
  tcase_add_test(tc, test_lz4_round_trip);
  tcase_add_test(tc, test_lz4_corrupt);
  tcase_add_test(tc, test_hash64);
  tcase_add_test(tc, test_buf_growth);
  tcase_add_test(tc, test_buf_failure_leaves_buffer);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(codec_suite()); }
