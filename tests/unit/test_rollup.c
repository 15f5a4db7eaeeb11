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
 *  5. Each dimension's cells (store/dims.h) count every event once; a
 *     dimension with more than ES_ROLLUP_DIM_TOP values keeps the most
 *     frequent and counts the rest as "(other)", the same way whether
 *     encoded once or twice; a version 1 file (no dimensions) still
 *     decodes.
 *  6. The dimension values follow dims.h's rules (referrer host, direct,
 *     internal; UTM parameters decoded; device and browser classes).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "base/hll.h"
#include "base/mem.h"
#include "store/dims.h"
#include "store/rollup.h"
#include "unit.h"

static uint64_t mix(uint64_t x) { /* splitmix64 */
  x += UINT64_C(0x9E3779B97F4A7C15);
  x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
  return x ^ (x >> 31);
}

/* Reads the sketch in p[0..n): all of it, and equal to want. */
static void hll_decodes_to(const uint8_t *p, size_t n, const es_hll *want) {
  es_rd rd = es__rd(p, n);
  es_hll back;
  memset(&back, 0, sizeof(back));
  ck_assert_int_eq(es__hll_get(&rd, &back), ES_OK);
  ck_assert(!rd.bad && rd.p == rd.end);
  ck_assert(es__hll_equal(want, &back));
  es__hll_free(&back);
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
    /* held dense past ES_HLL_SPARSE_HELD, encoded dense only past
     * ES_HLL_SPARSE_MAX (a few registers are shared, hence the margins) */
    if (sizes[s] < ES_HLL_SPARSE_HELD || sizes[s] > ES_HLL_SPARSE_HELD + 200)
      ck_assert_int_eq(h.dense != NULL, sizes[s] > ES_HLL_SPARSE_HELD);
    es_buf enc = {0};
    ck_assert_int_eq(es__hll_put(&enc, &h), ES_OK);
    ck_assert_int_eq(enc.data[0] == 2, sizes[s] > ES_HLL_SPARSE_MAX + 200);
    es__buf_free(&enc);
    es__hll_free(&h);
  }
  es_hll empty;
  memset(&empty, 0, sizeof(empty));
  ck_assert_uint_eq(es__hll_estimate(&empty), 0);
}
END_TEST

/* Each sketch size round-trips through its kind: empty (0), 1..8
 * entries (kinds 3..10: count in the kind), 9..3072 (11, varint count),
 * dense (2); the version-2 sparse kind 1 of the same entries still
 * decodes to the same registers; malformed packed entries are refused. */
START_TEST(test_hll_kinds) {
  static const uint64_t sizes[] = {0, 1, 2, 8, 9, 100, 3000, 20000};
  for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
    es_hll h;
    memset(&h, 0, sizeof(h));
    for (uint64_t i = 0; i < sizes[t]; i++)
      ck_assert_int_eq(es__hll_add(&h, mix(i + 77 * t)), ES_OK);
    es_buf a = {0};
    ck_assert_int_eq(es__hll_put(&a, &h), ES_OK);
    int want = h.n > ES_HLL_SPARSE_MAX ? 2
               : h.n == 0              ? 0
               : h.n <= 8              ? 3 + (int)h.n - 1
                                       : 11;
    ck_assert_int_eq(a.data[0], want);
    hll_decodes_to(a.data, a.len, &h);
    if (!h.dense && h.n > 0) {
      /* the same entries as version 2 wrote them: kind 1 */
      es_buf v2 = {0};
      ck_assert_int_eq(es__buf_put_u8(&v2, 1), ES_OK);
      ck_assert_int_eq(es__buf_put_varint(&v2, h.n), ES_OK);
      const uint32_t *ents = h.cap ? h.sparse : h.inl; /* see hll.h */
      uint32_t prev = 0;
      for (uint32_t i = 0; i < h.n; i++) {
        ck_assert_int_eq(es__buf_put_varint(&v2, ents[i] - prev), ES_OK);
        prev = ents[i];
      }
      hll_decodes_to(v2.data, v2.len, &h);
      es__buf_free(&v2);
    }
    es__buf_free(&a);
    es__hll_free(&h);
  }
  /* malformed: rank 52 (51 + 1 in the low 6 bits), index 16384, equal
   * indexes, a packed count of 8 (belongs in the kind) */
  static const uint8_t bad[][8] = {
      {3, 51},                      /* rank 52 */
      {3, 0x80, 0x80, 0x40},        /* index 16384 */
      {4, 0x40, 0x01},              /* second index equal to the first */
      {11, 8, 1, 0x40, 0x40, 0x40}, /* count 8 with kind 11 */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    es_rd rd = es__rd(bad[i], sizeof(bad[i]));
    es_hll back;
    memset(&back, 0, sizeof(back));
    ck_assert_int_eq(es__hll_get(&rd, &back), ES_OK);
    ck_assert_msg(rd.bad, "malformed sketch %zu accepted", i);
    es__hll_free(&back);
  }
}
END_TEST

START_TEST(test_hll_merge) {
  for (int round = 0; round < 5; round++) {
    uint64_t n = round == 0   ? 50
                 : round == 1 ? 2000
                 : round == 2 ? 5000
                 : round == 3 ? 30000
                              : 1200; /* sparse parts, a dense whole */
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
    hll_decodes_to(a.data, a.len, &whole);
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
  static const char *const uas[] = {
      NULL, "Mozilla/5.0 (iPhone) Version/17.1 Mobile Safari/604.1",
      "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"};
  static const char *const urls[] = {
      "https://acme.example/?utm_source=nl&utm_medium=email", NULL,
      "https://acme.example/pricing?utm_campaign=dec%20sale"};
  static const char *const refs[] = {"", "https://www.google.com/",
                                     "https://acme.example/a"};
  ev.user_agent = uas[mix((uint64_t)i + 5) % 3];
  ev.url = urls[mix((uint64_t)i + 6) % 3];
  ev.referrer = refs[mix((uint64_t)i + 7) % 3];
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
  uint64_t total = 0, dims[ES_DIM_COUNT] = {0};
  size_t plain = 0;
  for (size_t c = 0; c < fwd.n; c++) {
    dims[fwd.cells[c].dim] += fwd.cells[c].count;
    plain += fwd.cells[c].dim == 0;
  }
  uint64_t pages = 0;
  for (int i = 0; i < N; i++)
    pages += event_i(i).type == ES_TYPE_PAGE;
  for (int d = 0; d < ES_DIM_COUNT; d++) /* every event once per dimension */
    ck_assert_uint_eq(dims[d], ES_DIM_PAGE_ONLY(d) ? pages : N);
  ck_assert_uint_le(plain, 10 * 6 * 4 * 4); /* minutes x types x ev x path */
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
    const char *value = es__strtab_str(&back.strs, x->value);
    size_t f = 0;
    while (f < fwd.n &&
           !(fwd.cells[f].minute == x->minute && fwd.cells[f].type == x->type &&
             fwd.cells[f].dim == x->dim &&
             fwd.cells[f].event == es__strtab_find(&fwd.strs, ev) &&
             fwd.cells[f].path == es__strtab_find(&fwd.strs, path) &&
             fwd.cells[f].value == es__strtab_find(&fwd.strs, value)))
      f++;
    ck_assert_uint_lt(f, fwd.n);
    ck_assert_uint_eq(fwd.cells[f].count, x->count);
    ck_assert(es__hll_equal(&fwd.cells[f].persons, &x->persons));
  }
  ck_assert_uint_eq(total, (uint64_t)N * 3 + pages * (ES_DIM_COUNT - 3));
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

/* The count of value `v` of dimension d over all of r's cells. */
static uint64_t dim_count(const es_rollup *r, int d, const char *v) {
  uint32_t id = es__strtab_find(&r->strs, v);
  uint64_t n = 0;
  for (size_t c = 0; id && c < r->n; c++)
    if (r->cells[c].dim == d && r->cells[c].value == id)
      n += r->cells[c].count;
  return n;
}

/* Distinct values of dimension d in r. */
static size_t dim_values(const es_rollup *r, int d) {
  uint8_t seen[4096] = {0};
  size_t n = 0;
  for (size_t c = 0; c < r->n; c++) {
    uint32_t v = r->cells[c].value;
    if (r->cells[c].dim == d && v && v < sizeof(seen) && !seen[v]++)
      n++;
  }
  return n;
}

START_TEST(test_rollup_dim_bound) {
  /* 200 referrer hosts: host k is seen k + 1 times, so the top 64 are
   * hosts 136..199 and the other 136 hosts' views are "(other)". */
  enum { HOSTS = 200 };
  es_rollup r;
  memset(&r, 0, sizeof(r));
  char ref[64];
  uint64_t folded = 0, all = 0;
  for (int k = 0; k < HOSTS; k++) {
    for (int j = 0; j <= k; j++) {
      es_event ev;
      memset(&ev, 0, sizeof(ev));
      ev.ts_us = INT64_C(1709251200000000) + (int64_t)j * 7 * INT64_C(1000000);
      ev.type = ES_TYPE_PAGE;
      ev.path = "/";
      ev.url = "https://acme.example/";
      snprintf(ref, sizeof(ref), "https://h%03d.example/x", k);
      ev.referrer = ref;
      ev.anonymous_id = "a";
      ck_assert_int_eq(es__rollup_add(&r, &ev), ES_OK);
      folded += k < HOSTS - ES_ROLLUP_DIM_TOP;
      all++;
    }
  }
  ck_assert_uint_eq(dim_values(&r, ES_DIM_REFERRER), HOSTS); /* not cut */
  es_buf a = {0}, b = {0};
  ck_assert_int_eq(es__rollup_encode(&r, &a), ES_OK);
  es_rollup back, again;
  ck_assert_int_eq(es__rollup_decode(a.data, a.len, "t.rlp", &back), ES_OK);
  ck_assert_int_eq(back.version, ES_ROLLUP_VERSION);
  ck_assert_uint_eq(dim_values(&back, ES_DIM_REFERRER), ES_ROLLUP_DIM_TOP + 1);
  ck_assert_uint_eq(dim_count(&back, ES_DIM_REFERRER, ES_ROLLUP_DIM_OTHER),
                    folded);
  ck_assert_uint_eq(dim_count(&back, ES_DIM_REFERRER, "h199.example"), 200);
  ck_assert_uint_eq(dim_count(&back, ES_DIM_REFERRER, "h136.example"), 137);
  ck_assert_uint_eq(dim_count(&back, ES_DIM_REFERRER, "h135.example"), 0);
  ck_assert_uint_eq(dim_count(&back, ES_DIM_DEVICE, "(no user agent)"), all);
  /* idempotent: a bounded rollup encodes to the same bytes */
  ck_assert_int_eq(es__rollup_encode(&back, &b), ES_OK);
  ck_assert_uint_eq(a.len, b.len);
  ck_assert(memcmp(a.data, b.data, a.len) == 0);
  ck_assert_int_eq(es__rollup_decode(b.data, b.len, "t.rlp", &again), ES_OK);
  es__rollup_free(&again);
  es__rollup_free(&back);
  es__rollup_free(&r);
  es__buf_free(&a);
  es__buf_free(&b);
}
END_TEST

START_TEST(test_rollup_version1) {
  /* a version 1 body by hand: strings "/" and "x"; one cell of minute 5,
   * type track, event "x", path "/", count 3, no person */
  const uint8_t body[] = {2, 1, '/', 1, 'x', 1, 10, 1, 2, 1, 3, 0};
  uint8_t img[48 + 64];
  size_t clen = es__lz4_compress(body, sizeof(body), img + 48, 64);
  ck_assert_uint_gt(clen, 0);
  memcpy(img, "ESROLLUP", 8);
  es__le32(img + 8, 1);
  es__le32(img + 12, 0);
  es__le64(img + 16, sizeof(body));
  es__le64(img + 24, clen);
  es__le64(img + 32, es__hash64(img + 48, clen, 0x726c70));
  es__le64(img + 40, es__hash64(img, 40, 0x726c70));
  es_rollup r;
  ck_assert_int_eq(es__rollup_decode(img, 48 + clen, "v1.rlp", &r), ES_OK);
  ck_assert_int_eq(r.version, 1);
  ck_assert_uint_eq(r.n, 1);
  ck_assert_int_eq(r.cells[0].minute, 5);
  ck_assert_int_eq(r.cells[0].dim, 0);
  ck_assert_str_eq(es__strtab_str(&r.strs, r.cells[0].event), "x");
  ck_assert_str_eq(es__strtab_str(&r.strs, r.cells[0].path), "/");
  ck_assert_uint_eq(r.cells[0].count, 3);
  es__rollup_free(&r);
}
END_TEST

/* dims of a page view with these columns (type page unless track). */
static const char *dim_of(int dim, const char *url, const char *ref,
                          const char *ua, int track) {
  static es_dims out;
  es_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = track ? ES_TYPE_TRACK : ES_TYPE_PAGE;
  ev.url = url;
  ev.referrer = ref;
  ev.user_agent = ua;
  es__dims_of(&ev, &out);
  const char *one = es__dim_of(&ev, dim, &out);
  es_dims again;
  es__dims_of(&ev, &again);
  const char *all = again.v[dim];
  ck_assert((one == NULL) == (all == NULL));
  ck_assert(!one || strcmp(one, all) == 0);
  return one;
}

START_TEST(test_dims_values) {
  const char *u = "https://Acme.example/p?x=1&utm_source=news+letter&"
                  "utm_medium=e%2Dmail&utm_source=second&utm_campaign=#f";
  ck_assert_str_eq(dim_of(ES_DIM_REFERRER, u, NULL, NULL, 0), "(direct)");
  ck_assert_str_eq(dim_of(ES_DIM_REFERRER, u, "", NULL, 0), "(direct)");
  ck_assert_str_eq(
      dim_of(ES_DIM_REFERRER, u, "https://acme.EXAMPLE/x", NULL, 0),
      "(internal)");
  ck_assert_str_eq(
      dim_of(ES_DIM_REFERRER, u, "https://me@News.Example:8080/a?b", NULL, 0),
      "news.example:8080");
  ck_assert_str_eq(dim_of(ES_DIM_REFERRER, u, "android-app://x", NULL, 0), "x");
  ck_assert_str_eq(dim_of(ES_DIM_REFERRER, u, "not a url", NULL, 0),
                   "not a url");
  /* no scheme, or a character outside one before the "://": kept whole */
  ck_assert_str_eq(dim_of(ES_DIM_REFERRER, u, "://x.example/", NULL, 0),
                   "://x.example/");
  ck_assert_str_eq(dim_of(ES_DIM_REFERRER, u, "a b://x/", NULL, 0), "a b://x/");
  ck_assert_str_eq(dim_of(ES_DIM_REFERRER, u, "weird:x://h/", NULL, 0),
                   "weird:x://h/");
  ck_assert_str_eq(dim_of(ES_DIM_REFERRER, u, "Git+SSH.1-x://H/", NULL, 0),
                   "h");
  ck_assert_ptr_null(dim_of(ES_DIM_REFERRER, u, "https://x.example/", NULL, 1));
  ck_assert_str_eq(dim_of(ES_DIM_UTM_SOURCE, u, NULL, NULL, 0), "news letter");
  ck_assert_str_eq(dim_of(ES_DIM_UTM_MEDIUM, u, NULL, NULL, 0), "e-mail");
  ck_assert_ptr_null(dim_of(ES_DIM_UTM_CAMPAIGN, u, NULL, NULL, 0)); /* "" */
  ck_assert_ptr_null(dim_of(ES_DIM_UTM_SOURCE, u, NULL, NULL, 1));   /* track */
  ck_assert_ptr_null(
      dim_of(ES_DIM_UTM_SOURCE, "https://a/?utm_sourcex=1", NULL, NULL, 0));
  char long_url[400];
  snprintf(long_url, sizeof(long_url), "https://a/?utm_campaign=%0250d", 7);
  ck_assert_uint_eq(
      strlen(dim_of(ES_DIM_UTM_CAMPAIGN, long_url, NULL, NULL, 0)),
      ES_DIM_VALUE_MAX);
  /* a cut never splits a UTF-8 character (é is 2 bytes) */
  char utf[400] = "https://a/?utm_source=x";
  for (int i = 0; i < 60; i++)
    strcat(utf, "%C3%A9");
  const char *cut = dim_of(ES_DIM_UTM_SOURCE, utf, NULL, NULL, 0);
  ck_assert_uint_eq(strlen(cut), ES_DIM_VALUE_MAX - 1);
  static const struct {
    const char *ua, *device, *browser;
  } uas[] = {
      {NULL, "(no user agent)", "(no user agent)"},
      {"Googlebot/2.1 (+http://www.google.com/bot.html)", "bot", "other"},
      {"Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) Version/17.1 "
       "Safari/604.1",
       "tablet", "Safari"},
      {"Mozilla/5.0 (Linux; Android 14; SM-X) Chrome/120 Safari/537.36",
       "tablet", "Chrome"},
      {"Mozilla/5.0 (Linux; Android 14) SamsungBrowser/23.0 Chrome/115 Mobile "
       "Safari/537.36",
       "mobile", "Samsung Internet"},
      {"Mozilla/5.0 (iPhone) Version/17.1 Mobile/15E148 Safari/604.1", "mobile",
       "Safari"},
      {"Mozilla/5.0 (Windows NT 10.0) Chrome/120 Safari/537.36 Edg/120.0",
       "desktop", "Edge"},
      {"Mozilla/5.0 (Windows NT 10.0) Chrome/120 Safari/537.36 OPR/105",
       "desktop", "Opera"},
      {"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
       "desktop", "Firefox"},
      {"curl/8.5.0", "desktop", "other"},
  };
  for (size_t i = 0; i < sizeof(uas) / sizeof(uas[0]); i++) {
    ck_assert_str_eq(dim_of(ES_DIM_DEVICE, NULL, NULL, uas[i].ua, 1),
                     uas[i].device);
    ck_assert_str_eq(dim_of(ES_DIM_BROWSER, NULL, NULL, uas[i].ua, 0),
                     uas[i].browser);
  }
  /* a user agent too long for the folded copy (dims.c searches it
   * folding as it goes) classifies as a short one does, the tokens far
   * past the copy's size; and asking twice in a row (the per-thread
   * last answer) or in turn with another gives the same answers */
  static char big[3000];
  memset(big, 'x', sizeof(big) - 1);
  memcpy(big + 2500, " ANDROID Firefox/121.0", 22);
  for (int round = 0; round < 2; round++) {
    ck_assert_str_eq(dim_of(ES_DIM_DEVICE, NULL, NULL, big, 1), "tablet");
    ck_assert_str_eq(dim_of(ES_DIM_BROWSER, NULL, NULL, big, 0), "Firefox");
    for (size_t i = 0; i < sizeof(uas) / sizeof(uas[0]); i++) {
      ck_assert_str_eq(dim_of(ES_DIM_BROWSER, NULL, NULL, uas[i].ua, 0),
                       uas[i].browser);
      ck_assert_str_eq(dim_of(ES_DIM_DEVICE, NULL, NULL, uas[i].ua, 1),
                       uas[i].device);
      ck_assert_str_eq(dim_of(ES_DIM_DEVICE, NULL, NULL, uas[i].ua, 1),
                       uas[i].device);
    }
  }
  /* many more user agents than the per-thread memo holds (dims.c:
   * 16 sets of two), asked in turn in three orders: each keeps its
   * answers however the memo's entries are evicted and reused (a suffix
   * " n<k>" changes no token) */
  enum { NVAR = 24, NUA = sizeof(uas) / sizeof(uas[0]) };
  static char var[NUA][NVAR][200];
  for (size_t i = 1; i < NUA; i++)
    for (int k = 0; k < NVAR; k++)
      snprintf(var[i][k], sizeof(var[i][k]), "%s n%d", uas[i].ua, k);
  for (int order = 0; order < 3; order++) {
    for (size_t step = 0; step < (NUA - 1) * NVAR; step++) {
      size_t at = order == 0   ? step
                  : order == 1 ? (NUA - 1) * NVAR - 1 - step
                               : step * 37 % ((NUA - 1) * NVAR);
      size_t i = 1 + at % (NUA - 1);
      int k = (int)(at / (NUA - 1));
      ck_assert_str_eq(dim_of(ES_DIM_DEVICE, NULL, NULL, var[i][k], 1),
                       uas[i].device);
      ck_assert_str_eq(dim_of(ES_DIM_BROWSER, NULL, NULL, var[i][k], 0),
                       uas[i].browser);
    }
  }
  ck_assert_int_eq(es__dim_by_name("utm_medium"), ES_DIM_UTM_MEDIUM);
  ck_assert_int_eq(es__dim_by_name("path"), 0);
  ck_assert_str_eq(es__dim_name(ES_DIM_BROWSER), "browser");
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
  tcase_add_test(tc, test_rollup_dim_bound);
  tcase_add_test(tc, test_rollup_version1);
  tcase_add_test(tc, test_hll_kinds);
  tcase_add_test(tc, test_dims_values);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(rollup_suite()); }
