/*
 * hll.c -- HyperLogLog sketches; see hll.h.
 */
#include <math.h>

#include "base/hll.h"
#include "base/mem.h"

/* Register index (top p bits) and rank (leading zeros of the rest, + 1). */
static uint32_t hll_entry(uint64_t hash) {
  uint32_t idx = (uint32_t)(hash >> (64 - ES_HLL_P));
  uint64_t w = hash << ES_HLL_P;
  uint32_t rank = w ? (uint32_t)__builtin_clzll(w) + 1 : 64 - ES_HLL_P + 1;
  return idx << 8 | rank;
}

/* The sparse entries: in place until the first allocation. */
static uint32_t *hll_ents(es_hll *h) { return h->cap ? h->sparse : h->inl; }
static const uint32_t *hll_ents_c(const es_hll *h) {
  return h->cap ? h->sparse : h->inl;
}

/* Turns a sparse sketch dense (n: the registers in use, unchanged). */
static int hll_densify(es_hll *h) {
  uint8_t *d = es__calloc(ES_HLL_M, 1);
  if (!d)
    return ES_NOMEM_BKPT();
  const uint32_t *s = hll_ents(h);
  for (uint32_t i = 0; i < h->n; i++)
    d[s[i] >> 8] = (uint8_t)(s[i] & 0xff);
  if (h->cap)
    es__free(h->sparse);
  h->sparse = NULL;
  h->cap = 0;
  h->dense = d;
  return ES_OK;
}

/* Sets one register to at least `rank` (entry = index << 8 | rank). */
static int hll_set(es_hll *h, uint32_t e) {
  uint32_t idx = e >> 8;
  uint8_t rank = (uint8_t)(e & 0xff);
  if (h->dense) {
    if (h->dense[idx] < rank) {
      h->n += h->dense[idx] == 0;
      h->dense[idx] = rank;
    }
    return ES_OK;
  }
  uint32_t *s = hll_ents(h);
  uint32_t lo = 0, hi = h->n; /* first entry with index >= idx */
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if ((s[mid] >> 8) < idx)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < h->n && (s[lo] >> 8) == idx) {
    if ((s[lo] & 0xff) < rank)
      s[lo] = e;
    return ES_OK;
  }
  if (h->n >= ES_HLL_SPARSE_HELD) {
    ES_TRY(hll_densify(h));
    return hll_set(h, e);
  }
  if (h->cap == 0 && h->n == ES_HLL_INLINE) { /* out of place */
    uint32_t *a = es__malloc(4 * ES_HLL_INLINE * sizeof(uint32_t));
    if (!a)
      return ES_NOMEM_BKPT();
    memcpy(a, h->inl, sizeof h->inl);
    h->sparse = a;
    h->cap = 4 * ES_HLL_INLINE;
  } else if (h->cap != 0 && h->n == h->cap) {
    size_t cap = h->cap;
    ES_TRY(es__grow((void **)&h->sparse, &cap, (size_t)h->n + 1,
                    sizeof(uint32_t)));
    h->cap = (uint32_t)cap;
  }
  s = hll_ents(h);
  memmove(s + lo + 1, s + lo, (h->n - lo) * sizeof(uint32_t));
  s[lo] = e;
  h->n++;
  return ES_OK;
}

int es__hll_add(es_hll *h, uint64_t hash) {
  return hll_set(h, hll_entry(hash));
}

/* Merges src into dst; see hll.h. */
int es__hll_merge(es_hll *dst, const es_hll *src) {
  if (src->dense) {
    if (!dst->dense)
      ES_TRY(hll_densify(dst));
    for (uint32_t i = 0; i < ES_HLL_M; i++)
      if (dst->dense[i] < src->dense[i]) {
        dst->n += dst->dense[i] == 0;
        dst->dense[i] = src->dense[i];
      }
    return ES_OK;
  }
  const uint32_t *s = hll_ents_c(src);
  for (uint32_t i = 0; i < src->n; i++)
    ES_TRY(hll_set(dst, s[i]));
  return ES_OK;
}

/* Ertl's estimator ("New cardinality estimation algorithms for
 * HyperLogLog sketches", 2017): from the histogram of register values,
 * with no bias tables and no switch between linear counting and the raw
 * estimate, so it stays unbiased across the whole range. */
static double hll_sigma(double x) {
  if (x == 1.0)
    return INFINITY;
  double y = 1, z = x, prev;
  do {
    x *= x;
    prev = z;
    z += x * y;
    y += y;
  } while (z != prev);
  return z;
}

static double hll_tau(double x) {
  if (x == 0.0 || x == 1.0)
    return 0;
  double y = 1, z = 1 - x, prev;
  do {
    x = sqrt(x);
    prev = z;
    y *= 0.5;
    z -= (1 - x) * (1 - x) * y;
  } while (z != prev);
  return z / 3;
}

uint64_t es__hll_estimate(const es_hll *h) {
  enum { Q = 64 - ES_HLL_P };
  const double m = ES_HLL_M;
  uint32_t c[Q + 2] = {0}; /* registers holding each value 0..Q+1 */
  if (h->dense) {
    for (uint32_t i = 0; i < ES_HLL_M; i++)
      c[h->dense[i] <= Q + 1 ? h->dense[i] : Q + 1]++;
  } else {
    const uint32_t *s = hll_ents_c(h);
    c[0] = ES_HLL_M - h->n;
    for (uint32_t i = 0; i < h->n; i++)
      c[s[i] & 0xff]++;
  }
  if (c[0] == ES_HLL_M)
    return 0;
  double z = m * hll_tau(1 - c[Q + 1] / m);
  for (int k = Q; k >= 1; k--)
    z = 0.5 * (z + c[k]);
  z += m * hll_sigma(c[0] / m);
  return (uint64_t)llround(m * m / (2 * log(2)) / z);
}

/* The register of index idx. */
static uint8_t hll_reg(const es_hll *h, uint32_t idx, uint32_t *pos) {
  if (h->dense)
    return h->dense[idx];
  const uint32_t *s = hll_ents_c(h);
  while (*pos < h->n && (s[*pos] >> 8) < idx)
    (*pos)++;
  return *pos < h->n && (s[*pos] >> 8) == idx ? (uint8_t)(s[*pos] & 0xff) : 0;
}

int es__hll_equal(const es_hll *a, const es_hll *b) {
  if (!a->dense && !b->dense)
    return a->n == b->n &&
           (a->n == 0 || memcmp(hll_ents_c(a), hll_ents_c(b), a->n * 4) == 0);
  uint32_t pa = 0, pb = 0;
  for (uint32_t i = 0; i < ES_HLL_M; i++)
    if (hll_reg(a, i, &pa) != hll_reg(b, i, &pb))
      return 0;
  return 1;
}

void es__hll_free(es_hll *h) {
  if (h->cap)
    es__free(h->sparse);
  es__free(h->dense);
  memset(h, 0, sizeof(*h));
}

/* Kinds of a serialised sketch (hll.h): 0 empty, 1 sparse with entries
 * index << 8 | rank (rollup versions 1 and 2), 2 dense, and (rollup
 * version 3) HLL_KIND_FEW + n - 1 for n <= HLL_FEW_MAX entries, or
 * HLL_KIND_PACKED with a varint n, entries index << 6 | (rank - 1).  A
 * one-visitor cell -- most of a small tenant's cells -- takes 4 bytes
 * instead of 5-6: its kind says the count, and its entry fits 20 bits. */
#define HLL_KIND_FEW 3
#define HLL_FEW_MAX 8
#define HLL_KIND_PACKED (HLL_KIND_FEW + HLL_FEW_MAX)

/* Writes entry (index << 8 | rank) packed and delta-coded after *prev. */
static int hll_put_entry(es_buf *b, uint32_t *prev, uint32_t entry) {
  uint32_t e = (entry >> 8) << 6 | ((entry & 0xff) - 1);
  ES_TRY(es__buf_put_varint(b, e - *prev));
  *prev = e;
  return ES_OK;
}

int es__hll_put(es_buf *b, const es_hll *h) {
  if (h->dense && h->n > ES_HLL_SPARSE_MAX) {
    ES_TRY(es__buf_put_u8(b, 2));
    return es__buf_put(b, h->dense, ES_HLL_M);
  }
  if (h->n == 0)
    return es__buf_put_u8(b, 0);
  if (h->n <= HLL_FEW_MAX) {
    ES_TRY(es__buf_put_u8(b, (uint8_t)(HLL_KIND_FEW + h->n - 1)));
  } else {
    ES_TRY(es__buf_put_u8(b, HLL_KIND_PACKED));
    ES_TRY(es__buf_put_varint(b, h->n));
  }
  uint32_t prev = 0;
  if (h->dense) { /* held dense, encoded sparse (invariant 1) */
    for (uint32_t i = 0; i < ES_HLL_M; i++)
      if (h->dense[i] != 0)
        ES_TRY(hll_put_entry(b, &prev, i << 8 | h->dense[i]));
    return ES_OK;
  }
  const uint32_t *s = hll_ents_c(h);
  for (uint32_t i = 0; i < h->n; i++)
    ES_TRY(hll_put_entry(b, &prev, s[i]));
  return ES_OK;
}

/* Reads n delta-coded entries, index << shift | code, into h->sparse:
 * the packed form (shift 6, code rank - 1) and version 2's sparse form
 * (shift 8, code rank); malformed input sets r->bad. */
static int hll_get_entries(es_rd *r, es_hll *h, uint64_t n, int shift) {
  if (!(h->sparse = es__malloc(n * sizeof(uint32_t))))
    return ES_NOMEM_BKPT();
  h->cap = (uint32_t)n;
  uint32_t bias = shift == 6; /* packed ranks are stored less one */
  uint64_t prev = 0;
  for (uint64_t i = 0; i < n && !r->bad; i++) {
    uint64_t e = prev + es__rd_varint(r);
    uint64_t index = e >> shift;
    uint32_t rank = (uint32_t)(e & ((1u << shift) - 1)) + bias;
    /* strictly increasing indexes, rank 1..51 */
    if (index >= ES_HLL_M || (i > 0 && index <= prev >> shift) || rank == 0 ||
        rank > 64 - ES_HLL_P + 1) {
      r->bad = 1;
      break;
    }
    h->sparse[h->n++] = (uint32_t)index << 8 | rank;
    prev = e;
  }
  return ES_OK;
}

/* Reads a sketch into *h (empty on entry); malformed input sets r->bad
 * and leaves *h for es__hll_free. */
int es__hll_get(es_rd *r, es_hll *h) {
  uint8_t kind = es__rd_u8(r);
  if (kind == 0 || r->bad)
    return ES_OK;
  if (kind == 2) {
    const uint8_t *p = es__rd_bytes(r, ES_HLL_M);
    if (!p)
      return ES_OK;
    if (!(h->dense = es__malloc(ES_HLL_M)))
      return ES_NOMEM_BKPT();
    memcpy(h->dense, p, ES_HLL_M);
    for (uint32_t i = 0; i < ES_HLL_M; i++) {
      h->n += h->dense[i] != 0;
      if (h->dense[i] > 64 - ES_HLL_P + 1)
        r->bad = 1;
    }
    return ES_OK;
  }
  if (kind >= HLL_KIND_FEW && kind < HLL_KIND_PACKED)
    return hll_get_entries(r, h, (uint64_t)kind - HLL_KIND_FEW + 1, 6);
  uint64_t n = es__rd_varint(r);
  if (kind == HLL_KIND_PACKED) {
    if (r->bad || n <= HLL_FEW_MAX || n > ES_HLL_SPARSE_MAX) {
      r->bad = 1;
      return ES_OK;
    }
    return hll_get_entries(r, h, n, 6);
  }
  if (kind != 1 || n == 0 || n > ES_HLL_SPARSE_MAX) {
    r->bad = 1;
    return ES_OK;
  }
  return hll_get_entries(r, h, n, 8);
}
