/*
 * parquet.h -- a Parquet file writer (Debian 12 packages no Parquet or
 * Arrow C library, so the library has its own; docs/EXPORT.md specifies
 * what it writes).
 *
 * A file is written row by row into column buffers: for each row the
 * caller puts one value (or a null) per column, then ends the row.  The
 * writer encodes each column into data pages as it goes (PLAIN, or
 * RLE_DICTIONARY with a PLAIN dictionary page), compresses the pages
 * (ZSTD, SNAPPY or none), and when the row group's compressed pages reach
 * row_group_bytes it writes the row group out: per column, the dictionary
 * page then the data pages.  es__pq_close writes the last row group and
 * the footer (FileMetaData in the Thrift compact protocol) and syncs the
 * file.
 *
 * Invariants:
 *  1. A column chunk's pages stay in memory until its row group is
 *     written, so the dictionary page (which grows while pages are
 *     encoded) can precede them in the file; memory is bounded by about
 *     row_group_bytes plus one page per column plus the dictionaries.
 *  2. Each column chunk starts dictionary-encoded (if its column allows
 *     it) and falls back to PLAIN for the rest of the chunk once the
 *     dictionary holds ES_PQ_DICT_ENTRIES_MAX entries or
 *     ES_PQ_DICT_BYTES_MAX bytes: pages already written keep their
 *     dictionary encoding (a reader decodes each page by its header).
 *  3. Statistics are exact: min_value/max_value are the chunk's least and
 *     greatest value (signed for INT64, unsigned bytes for strings, which
 *     is the order a TYPE_ORDER column order declares); they are left out
 *     when either is longer than ES_PQ_STAT_BYTES_MAX, and for columns
 *     declared without statistics (JSON).  null_count is always written.
 *  4. The first error sticks (like a db's failed state): every later call
 *     returns it, and es__pq_close then removes nothing but reports it;
 *     the caller deletes the partial file (export.c writes to a temporary
 *     name and renames only after a successful close).
 */
#ifndef ES_PARQUET_H
#define ES_PARQUET_H

#include <stddef.h>
#include <stdint.h>

#include "base/io.h"

/* Physical kinds the writer supports. */
#define ES_PQ_INT64 1
#define ES_PQ_BYTES 2

/* Logical annotations. */
#define ES_PQ_PLAIN_TYPE 0
#define ES_PQ_TIMESTAMP_US 1 /* INT64: TIMESTAMP(isAdjustedToUTC, MICROS) */
#define ES_PQ_STRING 2       /* BYTE_ARRAY: STRING (UTF-8) */
#define ES_PQ_JSON 3         /* BYTE_ARRAY: JSON (UTF-8) */

/* Page codecs. */
#define ES_PQ_UNCOMPRESSED 0
#define ES_PQ_SNAPPY 1
#define ES_PQ_ZSTD 6

#define ES_PQ_DICT_ENTRIES_MAX 65536
#define ES_PQ_DICT_BYTES_MAX (1u << 20)
#define ES_PQ_STAT_BYTES_MAX 1024
#define ES_PQ_PAGE_BYTES 1048576 /* a data page closes at this many bytes */
#define ES_PQ_PAGE_VALUES 20000  /* ... or this many values */
#define ES_PQ_COLUMNS_MAX 64

typedef struct es_pq_column {
  const char *name; /* copied */
  int kind;         /* ES_PQ_INT64 or ES_PQ_BYTES */
  int logical;      /* ES_PQ_PLAIN_TYPE, ES_PQ_TIMESTAMP_US, ... */
  int optional;     /* 1: nullable (definition levels), 0: required */
  int dictionary;   /* 1: try RLE_DICTIONARY first (invariant 2) */
  int stats;        /* 1: min_value/max_value (invariant 3) */
} es_pq_column;

typedef struct es_pq_options {
  int codec;                /* ES_PQ_ZSTD (default), _SNAPPY, _UNCOMPRESSED */
  int zstd_level;           /* default 3 */
  uint64_t row_group_bytes; /* compressed bytes per row group; 32 MiB */
  size_t page_bytes;        /* ES_PQ_PAGE_BYTES */
  const char *created_by;   /* FileMetaData.created_by; may be NULL */
} es_pq_options;

void es__pq_options_init(es_pq_options *o);

typedef struct es_pq_writer es_pq_writer;

/* Creates (truncating) path on vfs and writes the magic.  *w_out NULL on
 * failure.  Errors: ES_EINVAL (no columns, too many, bad kind), the vfs's,
 * ES_ENOMEM. */
int es__pq_open(es_vfs *vfs, const char *path, const es_pq_column *cols,
                size_t ncols, const es_pq_options *o,
                es_pq_writer **w_out) ES_MUST_CHECK;

/* One value of column col in the current row; a NULL p (bytes) or
 * present 0 (int64) is a null, ES_EINVAL for a required column. */
int es__pq_put_i64(es_pq_writer *w, size_t col, int64_t v,
                   int present) ES_MUST_CHECK;
int es__pq_put_bytes(es_pq_writer *w, size_t col, const void *p,
                     size_t n) ES_MUST_CHECK;

/* Ends the row: every column must have had exactly one value (ES_EINVAL
 * otherwise).  May write a row group. */
int es__pq_end_row(es_pq_writer *w) ES_MUST_CHECK;

/* Bytes written to the file so far (row groups out). */
uint64_t es__pq_bytes(const es_pq_writer *w);
uint64_t es__pq_rows(const es_pq_writer *w);

/* Writes the last row group and the footer, syncs and closes the file,
 * and frees the writer (also on failure).  *bytes_out: the file size;
 * *crc32_out: the zlib CRC-32 of the whole file. */
int es__pq_close(es_pq_writer *w, uint64_t *bytes_out,
                 uint32_t *crc32_out) ES_MUST_CHECK;

/* Frees the writer and closes its file without finishing it. */
void es__pq_abort(es_pq_writer *w);

/*
 * A minimal footer reader, for our own tests and the fuzz target: checks
 * the magic at both ends, parses FileMetaData and fills what it found.
 * Errors: ES_ECORRUPT for anything that is not a well-formed footer whose
 * row groups and column chunks lie inside the file.
 */
typedef struct es_pq_footer_info {
  int64_t num_rows;       /* FileMetaData.num_rows */
  int64_t row_group_rows; /* sum of RowGroup.num_rows */
  uint32_t row_groups;
  uint32_t columns;                      /* schema leaves */
  uint32_t chunks;                       /* column chunks over all row groups */
  int64_t null_count[ES_PQ_COLUMNS_MAX]; /* per column, summed */
} es_pq_footer_info;

int es__pq_footer_read(const uint8_t *file, size_t n,
                       es_pq_footer_info *info_out) ES_MUST_CHECK;

#endif
