/*
 * rewrite.h -- rewriting some segments of a tenant, keeping the rows a
 * predicate accepts, as one atomic commit.  Compaction (merge small
 * segments, keep every row), retention (drop rows older than a cut-off)
 * and, later, a person's erasure are all this call.  The essay and the
 * invariants are in rewrite.c.
 */
#ifndef ES_REWRITE_H
#define ES_REWRITE_H

#include "store/dbint.h"

typedef struct es_rewrite_spec {
  /* Nonzero: the row stays.  The row is borrowed for the call. */
  int (*keep)(void *ud, const es_event *row);
  /* Optional: nonzero when `keep` refuses every row whose time is in
   * [min_ts_us, max_ts_us], so a row group there is skipped unread. */
  int (*drop_all)(void *ud, int64_t min_ts_us, int64_t max_ts_us);
  /* Optional: nonzero when `keep` accepts every row whose time is in
   * [min_ts_us, max_ts_us]; then an input segment there has its rollup's
   * cells added to its output's, not its rows counted again. */
  int (*keep_all)(void *ud, int64_t min_ts_us, int64_t max_ts_us);
  void *ud;
  /* Bound on the memory one output holds (es__compact_merge_bytes of its
   * inputs); inputs past it go to another output.  0: one output. */
  uint64_t memory_bytes;
} es_rewrite_spec;

typedef struct es_rewrite_stats {
  uint64_t segments_in, segments_out;
  uint64_t rows_in, rows_out;
  uint64_t bytes_in, bytes_out;
} es_rewrite_stats;

/* Rewrites segs[0..n) of tenant t (segments of its current set, in set
 * order, references held by the caller, who holds t->compact_mu): the
 * rows `keep` accepts, sorted by (time, input order), go into new
 * segments with the rollups those rows give (rewrite.c, 5); one new manifest
 * generation then names the outputs in place of the inputs (none when no
 * row is kept).  Either all of it commits or none (a failure before the
 * commit leaves the inputs, and the outputs written so far are removed or
 * left as orphans for the next open).  *stats_out (may be NULL) is filled
 * on success. */
int es__rewrite(es_db *db, es_tenant *t, es_segment *const *segs, size_t n,
                const es_rewrite_spec *spec,
                es_rewrite_stats *stats_out) ES_MUST_CHECK;

#endif
