/*
 * segment.h -- immutable columnar files holding one tenant's sealed rows.
 *
 * A segment holds rows sorted by (event time, append order) in row groups
 * of up to ES_SEG_GROUP_ROWS rows; each row group stores each column as
 * one LZ4 block with its own checksum, so damage is confined to (and
 * reported for) one block.  The footer carries per-group zone maps
 * (min/max event time) and a Bloom filter of the person and message ids.
 * docs/FORMAT.md specifies the bytes.
 *
 * Invariants:
 *  1. A segment file is never modified after the rename that publishes it.
 *  2. Every byte read from it is checked before use: the trailer magic,
 *     the footer checksum, and each block's checksum before it is
 *     decompressed.  A failed check is ES_ECORRUPT naming path and offset.
 *  3. Rows within a segment are in (ts, append order) order.
 */
#ifndef ES_SEGMENT_H
#define ES_SEGMENT_H

#include <stdatomic.h>

#include "base/codec.h"
#include "base/event.h"
#include "base/io.h"
#include "store/memtable.h"

#define ES_SEG_GROUP_ROWS 8192
#define ES_SEG_HEADER_BYTES 16
#define ES_SEG_TRAILER_BYTES 32

/* Columns: time, receive time, type, then the string fields. */
enum { ES_COL_TS = 0, ES_COL_RECV = 1, ES_COL_TYPE = 2, ES_COL_STR0 = 3 };
#define ES_SEG_NCOLS (ES_COL_STR0 + ES_NSTR)

typedef struct es_seg_block {
  uint64_t off;
  uint32_t clen, rlen;
  uint64_t checksum;
} es_seg_block;

typedef struct es_seg_group {
  uint32_t rows;
  uint32_t row_bytes; /* the rows' encoded size (saturated); 0: unknown */
  int64_t min_ts, max_ts;
  es_seg_block cols[ES_SEG_NCOLS];
} es_seg_group;

typedef struct es_segment {
  atomic_int refs;
  es_vfs *vfs;
  es_file *file;
  char path[ES_PATH_MAX];
  uint64_t id;
  uint64_t rows, bytes;
  uint64_t raw_bytes; /* the blocks' sizes decompressed (footer's rlen) */
  /* The rows' size in the row encoding (event.h), as a merge holds them:
   * the sum of the groups' row_bytes, or 0 when a group does not say
   * (files written before it was recorded). */
  uint64_t row_bytes;
  int64_t min_ts, max_ts;
  uint32_t ngroups;
  es_seg_group *groups;
  uint32_t bloom_bits, bloom_k;
  uint8_t *bloom;
  /* The rollup (rollup.h), loaded on first use by es__segment_rollup;
   * replaced ones stay on the `retired` list until the segment is freed,
   * as readers may still hold them. */
  struct es_rollup *_Atomic rollup;
  /* How many times that rollup was replaced (es__segment_rollup_set):
   * the tenant's rollup index is fresh while it has not changed. */
  _Atomic uint64_t rollup_gen;
} es_segment;

/* Builds a complete segment file image in out from rows sorted by
 * (ts, append order).  n must be at least 1. */
int es__segment_build(es_buf *out, const es_mrow *const *rows,
                      size_t n) ES_MUST_CHECK;

/* A row's sort key: its time, and idx, which grows with the order the
 * rows came in (an index, or an offset into their buffer). */
typedef struct es_time_key {
  int64_t ts;
  size_t idx;
} es_time_key;

/* Sorts keys[0..n), made in idx order, into (ts, idx) order, the order
 * es__segment_build wants, with tmp (n keys) to spare. */
void es__time_keys_sort(es_time_key *keys, es_time_key *tmp, size_t n);

/* Opens a segment and checks its trailer and footer; one reference. */
int es__segment_open(es_vfs *vfs, const char *path, uint64_t id,
                     es_segment **seg_out) ES_MUST_CHECK;
void es__segment_ref(es_segment *seg);
void es__segment_unref(es_segment *seg);

/* Whether the segment may hold a row with this person or message id
 * (a Bloom filter: false positives happen, false negatives never). */
int es__segment_may_contain(const es_segment *seg, const char *key);
/* The same with the key's hash, es__segment_key_hash(key, len), computed
 * once for many segments (dedupe.c). */
uint64_t es__segment_key_hash(const char *key, size_t len);
int es__segment_may_contain_hash(const es_segment *seg, uint64_t h);
/* The same for n hashes at once, out[j] for h[j]: faster than n calls
 * when the filter is not in the CPU caches (the accesses overlap). */
void es__segment_may_contain_many(const es_segment *seg, const uint64_t *h,
                                  size_t n, uint8_t *out);

/* The most bytes a string of a SHAPE column has (the NUL not counted). */
#define ES_SEG_SHAPE_LEN_MAX 255

/* A SHAPE column kept packed (es__segment_read_group_packed): the
 * shape's template and the rows' packed hex digits, in the block. */
typedef struct es_seg_packed {
  size_t len, nib, row_bytes; /* value length, digits, bytes per row */
  size_t n, present;          /* rows, rows that are not NULL */
  const char *set;            /* the digits when every one has one case */
  const uint8_t *bits;        /* NULL bitmap (1 = present) or NULL */
  const uint8_t *data;        /* the present rows' packed digits */
  uint32_t *rank;             /* with bits: present rows before row i */
  size_t rank_cap;
  char tmpl[ES_SEG_SHAPE_LEN_MAX + 1]; /* constants; digits are '0' */
  uint8_t cls[ES_SEG_SHAPE_LEN_MAX];
  uint8_t hi_at[ES_SEG_SHAPE_LEN_MAX / 2 + 1],
      lo_at[ES_SEG_SHAPE_LEN_MAX / 2 + 1];
} es_seg_packed;

/* A decoded row group. */
typedef struct es_seg_rows {
  size_t n;
  int64_t *ts;
  int64_t *recv;
  uint8_t *type;
  /* the strings of field f; all NULL when f was not read or is packed */
  const char **str[ES_NSTR];
  uint32_t packed;   /* fields kept packed by the last read (bit f) */
  es_seg_packed *pk; /* ES_NSTR of them, allocated by the first such read */
  es_buf raw[ES_SEG_NCOLS]; /* decompressed blocks (strings point here) */
  es_buf cbuf;              /* compressed block being read */
  void *arrays;             /* one allocation behind ts/recv/type/str */
  size_t arrays_cap;        /* rows the arrays can hold */
} es_seg_rows;

/* Reads, checks and decodes row group g into *out (reusing its buffers). */
int es__segment_read_group(es_segment *seg, uint32_t g,
                           es_seg_rows *out) ES_MUST_CHECK;
/* The same, decoding only the string columns whose ES_FIELD_* bit is in
 * `fields` (the others' blocks are not read; their strings are NULL). */
int es__segment_read_group_cols(es_segment *seg, uint32_t g, uint32_t fields,
                                es_seg_rows *out) ES_MUST_CHECK;
/* The same, but a string column in `packed` (ES_FIELD_* bits) that is
 * stored as SHAPE stays packed: its str[] array is not filled and its
 * values are read one at a time with es__seg_rows_get / es__seg_rows_eq
 * (a reader that wants a few rows of a group, not every row's uuid
 * expanded).  Checks the block as strictly as the full decode. */
int es__segment_read_group_packed(es_segment *seg, uint32_t g, uint32_t fields,
                                  uint32_t packed,
                                  es_seg_rows *out) ES_MUST_CHECK;
/* Decodes the string columns in `fields` of row group g into out, which
 * holds that group from es__segment_read_group_packed (the columns read
 * then stay as they are): a reader that needs the other columns only in
 * some groups.  `packed` as there.  On failure, out's columns are
 * unusable until the next read of a whole group. */
int es__segment_read_group_add(es_segment *seg, uint32_t g, uint32_t fields,
                               uint32_t packed, es_seg_rows *out) ES_MUST_CHECK;
/* Row i's value of string field f: rows->str[f][i], or, when the field
 * is packed, the value written into buf (ES_SEG_SHAPE_LEN_MAX + 1 bytes)
 * and buf returned; NULL for NULL.  Byte-identical to the full decode. */
const char *es__seg_rows_get(const es_seg_rows *rows, int f, size_t i,
                             char *buf);
/* A key to compare with a field's values: packed like the column's rows
 * when the field is packed (never = no value of the column can equal
 * it).  Valid for the rows as read when it was made. */
typedef struct es_seg_key {
  const char *s;
  int never;
  uint8_t p[ES_SEG_SHAPE_LEN_MAX / 2 + 1];
} es_seg_key;
void es__seg_rows_key(const es_seg_rows *rows, int f, const char *s,
                      es_seg_key *k);
/* Whether row i's value of field f equals k's string (NULL never does). */
int es__seg_rows_eq(const es_seg_rows *rows, int f, size_t i,
                    const es_seg_key *k);
/* Releases what es__segment_read_group allocated. */
void es__segment_rows_free(es_seg_rows *rows);

/* Checks every checksum of a segment file and that every row group
 * decodes, calling fn per problem;
 * returns ES_OK, ES_ECORRUPT or an I/O status.  *rows_out may be NULL. */
int es__segment_verify(es_vfs *vfs, const char *path,
                       void (*fn)(void *, const char *, uint64_t, const char *),
                       void *ud, uint64_t *rows_out);

#endif
