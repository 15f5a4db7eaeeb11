/*
 * test_rollup.c -- unit tests of lib/hll.{h,c} and lib/rollup.{h,c}:
 * sketches and per-minute cells, their canonical encoding and decoding.
 *
 * What must hold:
 *  1. Estimates stay within 3 standard errors (3 x 0.81 %) of the true
 *     distinct count at every size from 1 to 200,000, through the sparse
 *     to dense switch; below 1,000 they are within 1 % + 1.
 *  2. Merging is order-independent: any split of a set, merged in any
 *     order, equals the sketch of the whole set (hll.h invariant 1).
 *  3. A rollup counts each event once into its (minute, type, event,
 *     path) cell; two rollups of the same events added in different
 *     orders encode to identical bytes (rollup.h invariant 2), and decode
 *     to sorted cells with the same counts and sketches.
 *  4. Any damage to an encoded rollup (every byte flipped in turn,
 *     truncation) is ES_ECORRUPT, never a crash or a silent wrong answer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hll.h"
#include "base/mem.h"
#include "store/rollup.h"
#include "unit.h"

static uint64_t mix(uint64_t x) { /* splitmix64 */
  x += UINT64_C(0x9E3779B97F4A7C15);
  x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
  return x ^ (x >> 31);
}

START_TEST(test_hll_accuracy) {
  static const uint64_t sizes[] = {1,    2,     10,    100,   999,   3000,
                                   3100, 10000, 40000, 50000, 200000};
  for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
    es_hll h;
    memset(&h, 0, sizeof(h));
    for (uint64_t i = 0; i < sizes[s]; i++) {
      ck_assert_int_eq(es__hll_add(&h, mix(i + 1000 * s)), ES_OK);
      ck_assert_int_eq(es__hll_add(&h, mix(i + 1000 * s)), ES_OK); /* dup */
    }
    double n = (double)sizes[s], est = (double)es__hll_estimate(&h);
    double tol = n < 1000 ? 0.01 * n + 1 : 3 * ES_HLL_ERROR * n;
    ck_assert_msg(est >= n - tol && est <= n + tol, "n %.0f: estimate %.0f", n,
                  est);
    ck_assert_int_eq(h.dense != NULL, sizes[s] > ES_HLL_SPARSE_MAX + 200);
    es__hll_free(&h);
  }
  es_hll empty;
  memset(&empty, 0, sizeof(empty));
  ck_assert_uint_eq(es__hll_estimate(&empty), 0);
}
END_TEST

START_TEST(test_hll_merge) {
  for (int round = 0; round < 4; round++) {
    uint64_t n = round == 0   ? 50
                 : round == 1 ? 2000
                 : round == 2 ? 5000
                              : 30000;
    es_hll whole, parts[3], merged_a, merged_b;
    memset(&whole, 0, sizeof(whole));
    memset(parts, 0, sizeof(parts));
    memset(&merged_a, 0, sizeof(merged_a));
    memset(&merged_b, 0, sizeof(merged_b));
    for (uint64_t i = 0; i < n; i++) {
      uint64_t h = mix(i * 7 + (uint64_t)round);
      ck_assert_int_eq(es__hll_add(&whole, h), ES_OK);
      ck_assert_int_eq(es__hll_add(&parts[mix(i) % 3], h), ES_OK);
    }
    for (int i = 0; i < 3; i++)
      ck_assert_int_eq(es__hll_merge(&merged_a, &parts[i]), ES_OK);
    for (int i = 2; i >= 0; i--)
      ck_assert_int_eq(es__hll_merge(&merged_b, &parts[i]), ES_OK);
    ck_assert(es__hll_equal(&whole, &merged_a));
    ck_assert(es__hll_equal(&whole, &merged_b));
    ck_assert_uint_eq(es__hll_estimate(&whole), es__hll_estimate(&merged_a));
    /* encodings agree too, and decode to the same registers */
    es_buf a = {0}, b = {0};
    ck_assert_int_eq(es__hll_put(&a, &whole), ES_OK);
    ck_assert_int_eq(es__hll_put(&b, &merged_b), ES_OK);
    ck_assert_uint_eq(a.len, b.len);
    ck_assert(memcmp(a.data, b.data, a.len) == 0);
    es_rd rd = es__rd(a.data, a.len);
    es_hll back;
    memset(&back, 0, sizeof(back));
    ck_assert_int_eq(es__hll_get(&rd, &back), ES_OK);
    ck_assert(!rd.bad && rd.p == rd.end);
    ck_assert(es__hll_equal(&whole, &back));
    es__hll_free(&back);
    es__buf_free(&a);
    es__buf_free(&b);
    es__hll_free(&whole);
    es__hll_free(&merged_a);
    es__hll_free(&merged_b);
    for (int i = 0; i < 3; i++)
      es__hll_free(&parts[i]);
  }
}
END_TEST

/* A deterministic event i (strings from small pools). */
static es_event event_i(int i) {
  static const char *const events[] = {"Signed Up", "Clicked", NULL, "x"};
  static const char *const paths[] = {"/", "/pricing", NULL, "/docs/a"};
  static char anon[64][8];
  es_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.ts_us = INT64_C(1709251200000000) +
             (int64_t)(mix((uint64_t)i) % 600) * INT64_C(1000000);
  ev.type = 1 + (int)(mix((uint64_t)i + 1) % 6);
  ev.event = events[mix((uint64_t)i + 2) % 4];
  ev.path = paths[mix((uint64_t)i + 3) % 4];
  int a = (int)(mix((uint64_t)i + 4) % 64);
  snprintf(anon[a], sizeof(anon[a]), "a%d", a);
  ev.anonymous_id = a % 5 ? anon[a] : NULL;
  ev.user_id = a % 7 ? NULL : "u";
  return ev;
}

START_TEST(test_rollup_canonical) {
  enum { N = 3000 };
  es_rollup fwd, rev;
  memset(&fwd, 0, sizeof(fwd));
  memset(&rev, 0, sizeof(rev));
  for (int i = 0; i < N; i++) {
    es_event a = event_i(i), b = event_i(N - 1 - i);
    ck_assert_int_eq(es__rollup_add(&fwd, &a), ES_OK);
    ck_assert_int_eq(es__rollup_add(&rev, &b), ES_OK);
  }
  uint64_t total = 0;
  for (size_t c = 0; c < fwd.n; c++)
    total += fwd.cells[c].count;
  ck_assert_uint_eq(total, N);
  ck_assert_uint_le(fwd.n, 10 * 6 * 4 * 4); /* minutes x types x ev x path */
  es_buf a = {0}, b = {0};
  ck_assert_int_eq(es__rollup_encode(&fwd, &a), ES_OK);
  ck_assert_int_eq(es__rollup_encode(&rev, &b), ES_OK);
  ck_assert_uint_eq(a.len, b.len);
  ck_assert(memcmp(a.data, b.data, a.len) == 0);
  es_rollup back;
  ck_assert_int_eq(es__rollup_decode(a.data, a.len, "t.rlp", &back), ES_OK);
  ck_assert(back.sorted);
  ck_assert_uint_eq(back.n, fwd.n);
  total = 0;
  for (size_t c = 0; c < back.n; c++) {
    const es_rcell *x = &back.cells[c];
    total += x->count;
    if (c > 0)
      ck_assert(back.cells[c - 1].minute <= x->minute);
    /* find the same cell in fwd by its strings */
    const char *ev = es__strtab_str(&back.strs, x->event);
    const char *path = es__strtab_str(&back.strs, x->path);
    size_t f = 0;
    while (f < fwd.n &&
           !(fwd.cells[f].minute == x->minute && fwd.cells[f].type == x->type &&
             fwd.cells[f].event == es__strtab_find(&fwd.strs, ev) &&
             fwd.cells[f].path == es__strtab_find(&fwd.strs, path)))
      f++;
    ck_assert_uint_lt(f, fwd.n);
    ck_assert_uint_eq(fwd.cells[f].count, x->count);
    ck_assert(es__hll_equal(&fwd.cells[f].persons, &x->persons));
  }
  ck_assert_uint_eq(total, N);
  /* seek: the first cell of a minute */
  int64_t m = back.cells[back.n / 2].minute;
  size_t at = es__rollup_seek(&back, m);
  ck_assert(back.cells[at].minute == m &&
            (at == 0 || back.cells[at - 1].minute < m));
  /* every single-byte flip and every truncation is refused */
  for (size_t off = 0; off < a.len; off++) {
    a.data[off] ^= 0x04;
    es_rollup bad;
    int rc = es__rollup_decode(a.data, a.len, "t.rlp", &bad);
    ck_assert_msg(rc == ES_ECORRUPT || rc == ES_EVERSION, "flip at %zu: %d",
                  off, rc);
    a.data[off] ^= 0x04;
  }
  for (size_t len = 0; len < a.len; len += 1 + len / 8) {
    es_rollup bad;
    ck_assert_int_eq(es__rollup_decode(a.data, len, "t.rlp", &bad),
                     ES_ECORRUPT);
  }
  es__rollup_free(&back);
  es__rollup_free(&fwd);
  es__rollup_free(&rev);
  es__buf_free(&a);
  es__buf_free(&b);
}
END_TEST

/* Every allocation of building and encoding failing in turn. */
START_TEST(test_rollup_alloc_failures) {
  for (unsigned long k = 1;; k++) {
    es_rollup r;
    memset(&r, 0, sizeof(r));
    es_buf out = {0};
    es__mem_fail_at(k);
    int rc = ES_OK;
    for (int i = 0; rc == ES_OK && i < 200; i++) {
      es_event ev = event_i(i);
      rc = es__rollup_add(&r, &ev);
    }
    if (rc == ES_OK)
      rc = es__rollup_encode(&r, &out);
    unsigned long used = es__mem_fail_at(0);
    ck_assert(rc == ES_OK || rc == ES_ENOMEM);
    es__rollup_free(&r);
    es__buf_free(&out);
    if (rc == ES_OK) {
      ck_assert_uint_gt(k, 10);
      (void)used;
      break;
    }
  }
}
END_TEST

static Suite *rollup_suite(void) {
  Suite *s = suite_create("rollup");
  TCase *tc = tcase_create("rollup");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_hll_accuracy);
  tcase_add_test(tc, test_hll_merge);
  tcase_add_test(tc, test_rollup_canonical);
  tcase_add_test(tc, test_rollup_alloc_failures);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(rollup_suite()); }
