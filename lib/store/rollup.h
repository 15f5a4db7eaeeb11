/*
 * rollup.h -- time-bucketed aggregates of one memtable or one segment:
 * per minute and per (type, event name, page path), the number of events
 * and a HyperLogLog sketch of the persons behind them.
 *
 * Coarser buckets (hour, day) and any filter or grouping on type, event
 * and path are sums of these cells, so the query planner answers those
 * queries from rollups without reading rows (query.c).  A memtable's
 * rollup grows as rows are published (memtable.c); at flush it is written
 * beside the segment as "<id>.rlp" (tenant.c), and it can always be
 * derived again from the segment's rows (es__rollup_derive), which is how
 * a missing or damaged file is repaired and how es_rollup_rebuild checks
 * the incremental result.
 *
 * Beside those cells, a rollup holds per block of ES_ROLLUP_DIM_MINUTES
 * minutes, per type and per dashboard dimension (dims.h: referrer, UTM
 * source/medium/campaign, device, browser) one cell per value: `dim`
 * names the dimension, `value` the string (0: absent for that event, e.g.
 * a page view without utm_source), event and path are 0.  Every event
 * adds to one cell of each dimension, except that the page-only ones
 * (referrer, UTM: ES_DIM_PAGE_ONLY) count page events only; so a
 * dimension's cells sum to the plain cells' count (of page events for
 * those).  A dimension whose rollup holds more than ES_ROLLUP_DIM_TOP
 * values keeps its ES_ROLLUP_DIM_TOP most frequent (by count over the
 * whole rollup, ties by bytes) and counts the rest as
 * ES_ROLLUP_DIM_OTHER: applied when a rollup is encoded and when it is
 * derived, so the file, the derived and the attached rollup agree
 * (invariant 2); a memtable's rollup is not cut.
 *
 * The person of an event, for the sketches, is its anonymous id when it
 * has one, else its user id (a pure function of the row, so derived and
 * incremental rollups agree).  Identity stitching is applied only by exact
 * (scanning) queries; docs/QUERY.md states the consequence.
 *
 * Invariants:
 *  1. A rollup counts each row it was given exactly once.
 *  2. The encoding is canonical: strings sorted, cells sorted by (minute,
 *     dim, type, event, path, value), so two rollups of the same rows
 *     encode to the same bytes whatever the order the rows came in.
 *  3. A decoded rollup's cells are sorted as in 2, a derived coarse or
 *     index level's by (minute, dim), a type-counts level's by (minute,
 *     type) (es__rollup_seek relies on the
 *     minutes, the query's skip of other dimensions on dim within a
 *     minute); a rollup being built is unsorted.
 */
#ifndef ES_ROLLUP_H
#define ES_ROLLUP_H

#include "base/hashtab.h"
#include "base/hll.h"
#include "base/io.h"
#include "base/strtab.h"
#include "eventstore.h"
#include "store/dims.h"

#define ES_MINUTE_US INT64_C(60000000)

/* The rollup file version written: 3 (sketches of few entries packed,
 * hll.h); 2 is read as it is, 1 (no dimension cells) has them derived. */
#define ES_ROLLUP_VERSION 3
/* The first version with dimension cells. */
#define ES_ROLLUP_DIMS_VERSION 2
/* Dimension cells are per block of this many minutes (their `minute` is
 * the block's first): a tenth of the cells per-minute ones would take,
 * for queries that need no finer time than that. */
#define ES_ROLLUP_DIM_MINUTES 10
/* Values kept per dimension and rollup; the rest count as "(other)". */
#define ES_ROLLUP_DIM_TOP 64
#define ES_ROLLUP_DIM_OTHER "(other)"

typedef struct es_rcell {
  int64_t minute;       /* minutes since the epoch (floor of ts / 60 s) */
  uint32_t event, path; /* ids in the rollup's strtab, 0 = absent */
  uint32_t value;       /* dim != 0: the value's id, 0 = absent */
  uint8_t type;
  uint8_t dim; /* 0: a (type, event, path) cell; else ES_DIM_* (dims.h) */
  uint64_t count;
  es_hll persons;
} es_rcell;

typedef struct es_rollup {
  es_strtab strs;
  es_rcell *cells;
  size_t n, cap;
  es_htab index;             /* building: cell index + 1 by key */
  int sorted;                /* invariant 3 */
  int version;               /* decoded: the file's; built: 0 (current) */
  struct es_rollup *retired; /* an older rollup of the same segment */
  /* The checksum of the header of the .rlp image it was decoded from
   * (bytes 40..47, which cover the body's checksum), 0 when it was not
   * decoded from a file: the tenant's rollup index file (setrollup.c)
   * names each segment's rollup by it. */
  uint64_t file_hash;
  /* Derived on first use (es__rollup_coarse): the same cells summed per
   * hour and per day (minute = the period's first minute), for long
   * ranges. */
  struct es_rollup *_Atomic hours;
  struct es_rollup *_Atomic days;
  /* Derived on first use (es__rollup_type_counts): the counts per minute
   * and type alone, for counts that neither filter nor group by event,
   * path or dimension. */
  struct es_rollup *_Atomic types;
  /* es__rollup_add's memo of its last answer per key slot (event, path,
   * then each dimension): the interned id and the cell index + 1 (0:
   * none).  Each is checked against the string or key before use, so a
   * stale entry only costs a miss; consecutive events of a batch mostly
   * repeat them (one browser, one page). */
  uint32_t last_id[2 + ES_DIM_COUNT];
  uint32_t last_cell[1 + ES_DIM_COUNT];
} es_rollup;

/* A zeroed es_rollup is empty. */
int es__rollup_add(es_rollup *r, const es_event *ev) ES_MUST_CHECK;
void es__rollup_free(es_rollup *r);

/* The person hash sketches use for an event (0: the event has no id). */
uint64_t es__rollup_person_hash(const es_event *ev);

/* The rollup summed per hour (period 60) or per day (1440), built once
 * and kept with r (borrowed: it lives as long as r).  Its cells are
 * sorted by minute and dim only. */
int es__rollup_coarse(const es_rollup *r, int period,
                      const es_rollup **out) ES_MUST_CHECK;

/* The counts of a sorted rollup summed per (minute, type), its
 * dimension cells left out: cells with no event, path or persons (an
 * empty sketch), sorted by minute and type, built once in one pass and
 * kept with r (borrowed: it lives as long as r).  A minute-count query
 * reads a few cells per minute there instead of one per (event, path)
 * and dimension value. */
int es__rollup_type_counts(const es_rollup *r,
                           const es_rollup **out) ES_MUST_CHECK;

/* Index of the first cell with minute >= m (a sorted rollup). */
size_t es__rollup_seek(const es_rollup *r, int64_t minute);

/* Canonical encoding (invariant 2) of the complete .rlp file (dimension
 * values beyond ES_ROLLUP_DIM_TOP folded into ES_ROLLUP_DIM_OTHER). */
int es__rollup_encode(const es_rollup *r, es_buf *out) ES_MUST_CHECK;
/* Checks a .rlp image's header and body checksums (not its body's
 * structure, which es__rollup_decode checks). */
int es__rollup_image_check(const uint8_t *p, size_t n,
                           const char *path) ES_MUST_CHECK;
/* Decodes a .rlp image; ES_ECORRUPT naming `path` if it does not check. */
int es__rollup_decode(const uint8_t *p, size_t n, const char *path,
                      es_rollup *r) ES_MUST_CHECK;

/* The rollup file name of a segment path ("x/0..1.seg" -> "x/0..1.rlp"). */
int es__rollup_path(const char *seg_path, char *out, size_t cap) ES_MUST_CHECK;
/* Reads and decodes a .rlp file (ES_ENOTFOUND when there is none). */
int es__rollup_read(es_vfs *vfs, const char *path, es_rollup *r) ES_MUST_CHECK;
/* The header checksum (es_rollup.file_hash) of a .rlp file, from its
 * first 48 bytes only (ES_ENOTFOUND, or ES_ECORRUPT when they do not
 * check). */
int es__rollup_file_hash(es_vfs *vfs, const char *path,
                         uint64_t *hash_out) ES_MUST_CHECK;
/* Adds cell c of rollup `from` (its strings re-interned) into r, keyed at
 * `minute`: summed with the cell of the same key. */
int es__rollup_add_cell(es_rollup *r, const es_rollup *from, const es_rcell *c,
                        int64_t minute) ES_MUST_CHECK;
/* Checks a .rlp file's checksums and structure (for es_verify). */
int es__rollup_verify(es_vfs *vfs, const char *path) ES_MUST_CHECK;

/* --- rollups of segments ------------------------------------------------ */

struct es_segment;

/* Computes a segment's rollup from its rows (reads every row group),
 * dimension values beyond ES_ROLLUP_DIM_TOP folded as encoding does. */
int es__rollup_derive(struct es_segment *seg, es_rollup *r) ES_MUST_CHECK;

/* The segment's rollup, borrowed for as long as the caller holds a
 * reference to seg: read from its .rlp file on first use, or derived
 * from the rows when that file is missing (then *derived_out is 1),
 * fails its checks (2) or is of version 1, without dimension cells (3),
 * so the caller can log it (es__rollup_derived_why); may be NULL.
 * `esctl rollup rebuild` rewrites such files. */
int es__segment_rollup(struct es_segment *seg, const es_rollup **r_out,
                       int *derived_out) ES_MUST_CHECK;

/* Why a rollup was derived, for the log: "missing", "damaged", ... */
const char *es__rollup_derived_why(int derived);

/* Installs r (heap-allocated, taken over) as the segment's rollup; the
 * previous one is retired, not freed. */
void es__segment_rollup_set(struct es_segment *seg, es_rollup *r);

/* Frees a heap rollup and the ones it retired (segment.c, at free). */
void es__rollup_chain_free(es_rollup *r);

/* --- the tenant's rollup index -------------------------------------------
 *
 * The rollups of every segment of a segment set (an immutable list,
 * dbint.h) summed over all time into one set of cells per (type, event,
 * path), and per type only, so that a query over all of a tenant's time
 * (top pages, uniques) reads one cell per key instead of one per segment
 * and minute.  Built on the first query that wants it and kept with the
 * set: a flush, compaction, retention or erase publishes a new set, so the
 * index always counts exactly the set's rows.  It remembers each
 * segment's rollup generation (es_segment.rollup_gen); a segment whose
 * rollup was replaced since (es__segment_rollup_set, after
 * es_rollup_rebuild) makes the next use build it again.
 *
 * Persisted (setrollup.c; docs/FORMAT.md, "ROLLIDX"): a writable handle
 * that built both levels from the segments' rollup files writes them to
 * the tenant's ROLLIDX, keyed by the set's content -- every segment's id
 * and its .rlp header checksum, in order.  The next process's first use
 * takes the levels from that file when its key matches the set and the
 * .rlp files on disk (read: their 48-byte headers only), so a cold query
 * decodes one small file instead of every segment's rollup.  A missing,
 * damaged or mismatched file means the index is built from the .rlp
 * files as before, never a wrong answer.  A commit that drops segments
 * (compaction, retention, erase) removes the file before its manifest
 * write, so the strings of dropped rows do not outlive their .rlp files.
 *
 * Invariant 4: an index level counts each row of the set's segments
 * exactly once (as each segment's rollup does, invariant 1). */
typedef struct es_setrollup {
  const es_rollup **src; /* src[i]: the rollup of segs[i] (NULL: from file) */
  uint64_t *gen;         /* gen[i]: segs[i]'s rollup_gen when taken */
  size_t nsrc;
  struct es_setrollup *retired; /* an older index of the same set */
  /* Derived on first use (es__setrollup_level): the cells of every src
   * summed over all time (minute 0), per (type, event, path) and per
   * (type, dim, value) and, [1], per type only (no dimension cells). */
  es_rollup *_Atomic all[2];
  /* Loaded from ROLLIDX: the file image; level k's .rlp image is
   * img[lvl_off[k], +lvl_len[k]), decoded on first use. */
  uint8_t *img;
  size_t lvl_off[2], lvl_len[2];
} es_setrollup;

struct es_segset;
struct es_tenant;

/* The set's rollup index, borrowed while the caller holds a reference to
 * set (t's set, or one it had); `derived` (may be NULL) gets the number
 * of segments whose rollup file was missing or damaged and had to be
 * derived from the rows (db logs each). */
int es__segset_rollup(es_db *db, struct es_tenant *t, struct es_segset *set,
                      const es_setrollup **sr_out,
                      size_t *derived) ES_MUST_CHECK;

/* The index's cells over all time, per (type, event, path) or, when
 * bytype, per type only (event and path 0: for queries that neither
 * filter nor group by them).  Built once, borrowed as sr is; every cell
 * has minute 0. */
int es__setrollup_level(const es_setrollup *sr, int bytype,
                        const es_rollup **out) ES_MUST_CHECK;

/* Frees an index and the ones it retired (tenant.c, at the set's free). */
void es__setrollup_chain_free(es_setrollup *sr);

/* --- ROLLIDX (setrollup.c) ---------------------------------------------- */

#define ES_ROLLIDX_NAME "ROLLIDX"

/* The parsed head of a ROLLIDX image: the key and where each level's
 * .rlp image lies (pointers into the image). */
typedef struct es_rollidx_head {
  uint32_t nsegs;
  const uint8_t *key; /* nsegs x (u64 segment id, u64 .rlp header hash) */
  size_t lvl_off[2], lvl_len[2];
} es_rollidx_head;

/* Checks a ROLLIDX image's header, key and checksum (not the levels);
 * ES_ECORRUPT naming path when it does not check. */
int es__rollidx_parse(const uint8_t *p, size_t n, const char *path,
                      es_rollidx_head *h) ES_MUST_CHECK;
/* Checks the whole image, both levels decoded (es_verify, the fuzz
 * target). */
int es__rollidx_check(const uint8_t *p, size_t n,
                      const char *path) ES_MUST_CHECK;
/* Removes t's ROLLIDX (ES_OK when there is none); the caller holds
 * t->man_mu (commit.c, before a manifest write that drops segments). */
int es__rollidx_remove(es_db *db, struct es_tenant *t) ES_MUST_CHECK;

/* Test counters: indexes taken from ROLLIDX, built from segment
 * rollups, and ROLLIDX files written, since the process started. */
typedef struct es_rollidx_stats {
  uint64_t loaded, built, written;
} es_rollidx_stats;
void es__rollidx_stats(es_rollidx_stats *out);

#endif
