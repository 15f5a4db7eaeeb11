/*
 * hll.h -- HyperLogLog sketches of person ids, for approximate unique
 * counts that merge across time buckets and segments.
 *
 * Precision p = 14: m = 16384 registers, standard error 1.04 / sqrt(m)
 * = 0.81 %.  Small sets (the common case: one minute, one page) are kept
 * sparse, as a sorted array of (register index, rank) entries; a sketch
 * is encoded dense (one byte per register) when the sparse array would be
 * larger than ES_HLL_SPARSE_MAX entries.  In memory it turns dense
 * earlier, past ES_HLL_SPARSE_HELD entries: an insert into the sorted
 * array moves the entries after it, which on a few thousand cost more
 * than the rest of counting an event (the encoding does not change: a
 * dense sketch with few registers in use is written sparse).  Small
 * cardinalities are estimated by linear counting, which is near exact
 * below a few thousand.
 *
 * Invariants:
 *  1. The registers a sketch stands for depend only on the set of hashes
 *     added, not on their order or on how sketches were merged; so is the
 *     choice of sparse or dense (a function of the number of registers in
 *     use).  Two sketches of the same set encode to the same bytes.
 *  2. Sparse entries are sorted by index, one per index, rank 1..51.
 */
#ifndef ES_HLL_H
#define ES_HLL_H

#include <stddef.h>
#include <stdint.h>

#include "base/codec.h"

#define ES_HLL_P 14
#define ES_HLL_M (1u << ES_HLL_P)
#define ES_HLL_SPARSE_MAX 3072
#define ES_HLL_SPARSE_HELD 512
/* The standard error of an estimate, as stated in query results. */
#define ES_HLL_ERROR 0.0081

/* Sparse entries a sketch holds in place, without an allocation (most
 * rollup cells count one or two persons). */
#define ES_HLL_INLINE 2

typedef struct es_hll {
  union {
    uint32_t *sparse; /* entries index << 8 | rank, sorted, when cap > 0 */
    uint32_t inl[ES_HLL_INLINE]; /* the entries while cap == 0 */
  };
  uint32_t n, cap; /* registers in use (the sparse entries) / allocated */
  uint8_t *dense;  /* ES_HLL_M registers, or NULL while sparse */
} es_hll;

/* A zeroed es_hll is an empty sketch. */
int es__hll_add(es_hll *h, uint64_t hash) ES_MUST_CHECK;
/* dst := dst ∪ src. */
int es__hll_merge(es_hll *dst, const es_hll *src) ES_MUST_CHECK;
/* The estimated number of distinct hashes added. */
uint64_t es__hll_estimate(const es_hll *h);
/* Whether two sketches stand for the same registers. */
int es__hll_equal(const es_hll *a, const es_hll *b);
/* Whether nothing was added. */
static inline int es__hll_empty(const es_hll *h) {
  return h->n == 0 && !h->dense;
}
void es__hll_free(es_hll *h);

/* Serialisation (docs/FORMAT.md, "Rollup files"): a kind byte (0 empty,
 * 1 sparse, 2 dense, 3..10 sparse of 1..8 entries, 11 sparse of more),
 * then for kind 1 a varint count and varint deltas of the entries, for
 * kinds 3..11 ([11: a varint count]) varint deltas of index << 6 |
 * (rank - 1), for dense the ES_HLL_M register bytes.  es__hll_put
 * writes kinds 0, 2 and 3..11; es__hll_get reads all (kind 1 is in
 * rollups of version 1 and 2).  es__hll_get sets r->bad on malformed
 * input. */
int es__hll_put(es_buf *b, const es_hll *h) ES_MUST_CHECK;
int es__hll_get(es_rd *r, es_hll *h) ES_MUST_CHECK;

#endif
