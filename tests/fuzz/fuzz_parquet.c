/*
 * fuzz_parquet.c -- fuzz target: the Parquet writer (lib/export/parquet.c)
 * and the footer reader of the tests and tools (es__pq_footer_read).
 *
 * The input drives a file written with the export schema's 20 columns
 * (lib/export/export.c): the first byte picks the codec (and, bit 7, text
 * mode: strings as printable ASCII and JSON columns as JSON strings, as
 * the export layer guarantees; else any bytes), the second the sizes
 * (default pages and row groups, or tiny ones, which make many pages and
 * row groups), the rest is rows: per column one byte says null
 * or a value, and the value's bytes come from the input (empty strings,
 * strings up to 255 bytes, huge ones of up to 700 KB, any bytes at all).
 * The file is written to an in-memory vfs, then read back by
 * es__pq_footer_read.  The input itself is also handed to
 * es__pq_footer_read as a file image (hostile footers).
 *
 * Properties beyond "no crash, no leak":
 *  1. Writing never fails (the vfs does not fail, memory suffices).
 *  2. The written file's footer parses: num_rows = the rows written = the
 *     sum of its row groups' rows; 20 columns; one chunk per column per
 *     row group; every chunk inside the file; each column's null_count,
 *     summed over row groups, = the nulls written.
 *  3. Tiny row groups over more than 200 rows give more than one.
 *
 * With FUZZ_PARQUET_OUT=DIR in the environment, each text-mode file is
 * also written to DIR/NNNN.parquet, for tests/export/export.test.mjs,
 * whose independent readers (DuckDB, parquet-wasm, hyparquet) must agree
 * on them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/export.h"
#include "export/parquet.h"
#include "fuzz_util.h"

/* A one-file writable vfs in memory: open/write/sync/close only. */
typedef struct mem_out {
  uint8_t *data;
  size_t len, cap;
  int open;
} mem_out;

static mem_out out_file;

static int mo_open(es_vfs *v, const char *p, int flags, es_file **f) {
  (void)v, (void)p, (void)flags;
  FUZZ_ASSERT(!out_file.open);
  out_file.open = 1;
  out_file.len = 0;
  *f = (es_file *)&out_file;
  return ES_OK;
}
static int mo_close(es_vfs *v, es_file *f) {
  (void)v, (void)f;
  out_file.open = 0;
  return ES_OK;
}
static int mo_write(es_vfs *v, es_file *f, const void *buf, size_t len,
                    uint64_t off) {
  (void)v, (void)f;
  if (off + len > out_file.cap) {
    size_t cap = (size_t)(off + len) * 2;
    out_file.data = realloc(out_file.data, cap);
    FUZZ_ASSERT(out_file.data != NULL);
    out_file.cap = cap;
  }
  memcpy(out_file.data + off, buf, len);
  if (off + len > out_file.len)
    out_file.len = (size_t)(off + len);
  return ES_OK;
}
static int mo_sync(es_vfs *v, es_file *f) {
  (void)v, (void)f;
  return ES_OK;
}

static es_vfs mo_vfs = {
    .open = mo_open, .close = mo_close, .write = mo_write, .sync = mo_sync};

typedef struct in_rd {
  const uint8_t *p;
  size_t n, at;
} in_rd;

static uint8_t in_u8(in_rd *r) { return r->at < r->n ? r->p[r->at++] : 0; }

static void write_file(in_rd *in) {
  static uint8_t huge[700000];
  const es_pq_column *cols = es__export_columns();
  es_pq_options o;
  es__pq_options_init(&o);
  uint8_t mode = in_u8(in), sizes = in_u8(in);
  uint8_t codec = (mode & 0x7f) % 3;
  int text = mode >> 7;
  o.codec = codec == 0   ? ES_PQ_ZSTD
            : codec == 1 ? ES_PQ_SNAPPY
                         : ES_PQ_UNCOMPRESSED;
  o.zstd_level = 1;
  int tiny = sizes & 1;
  if (tiny) {
    o.row_group_bytes = 64 + (sizes >> 1) * 16u;
    o.page_bytes = 32 + (sizes >> 1);
  }
  es_pq_writer *w = NULL;
  FUZZ_ASSERT(es__pq_open(&mo_vfs, "f.parquet", cols, EX_COLUMNS, &o, &w) ==
              ES_OK);
  int64_t nulls[EX_COLUMNS] = {0};
  int64_t rows = 0;
  while (in->at < in->n && rows < 3000) {
    for (size_t c = 0; c < EX_COLUMNS; c++) {
      uint8_t b = in_u8(in);
      int null = cols[c].optional && b % 4 == 0;
      nulls[c] += null;
      if (cols[c].kind == ES_PQ_INT64) {
        int64_t v =
            (int64_t)((uint64_t)b << 56 | (uint64_t)in_u8(in) << 8 | in_u8(in));
        FUZZ_ASSERT(es__pq_put_i64(w, c, v, !null) == ES_OK);
        continue;
      }
      if (null) {
        FUZZ_ASSERT(es__pq_put_bytes(w, c, NULL, 0) == ES_OK);
        continue;
      }
      size_t len = b % 16 == 1 ? (size_t)(in_u8(in) % 8) * 100000u : in_u8(in);
      if (len > sizeof huge)
        len = sizeof huge;
      for (size_t i = 0; i < len; i++) /* from the input, repeated */
        huge[i] = in->n ? in->p[(in->at + i) % in->n] : 0;
      if (text) { /* printable ASCII; JSON columns a JSON string */
        for (size_t i = 0; i < len; i++) {
          uint8_t ch = (uint8_t)(0x20 + huge[i] % 95);
          huge[i] = ch == '"' || ch == '\\' ? 'q' : ch;
        }
        if (cols[c].logical == ES_PQ_JSON) {
          if (len < 2)
            len = 2;
          huge[0] = huge[len - 1] = '"';
        }
      }
      in->at += len < 255 ? len : 255;
      FUZZ_ASSERT(es__pq_put_bytes(w, c, huge, len) == ES_OK);
    }
    FUZZ_ASSERT(es__pq_end_row(w) == ES_OK);
    rows++;
  }
  uint64_t bytes;
  uint32_t crc;
  FUZZ_ASSERT(es__pq_close(w, &bytes, &crc) == ES_OK);
  FUZZ_ASSERT(bytes == out_file.len);
  es_pq_footer_info info;
  FUZZ_ASSERT(es__pq_footer_read(out_file.data, out_file.len, &info) == ES_OK);
  FUZZ_ASSERT(info.num_rows == rows && info.row_group_rows == rows);
  FUZZ_ASSERT(info.columns == EX_COLUMNS);
  FUZZ_ASSERT(info.chunks == info.row_groups * EX_COLUMNS);
  for (size_t c = 0; c < EX_COLUMNS; c++)
    FUZZ_ASSERT(info.null_count[c] == nulls[c]);
  if (tiny && rows > 200)
    FUZZ_ASSERT(info.row_groups > 1);
  const char *dir = getenv("FUZZ_PARQUET_OUT");
  static int written;
  if (dir && text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%04d.parquet", dir, written++);
    FILE *f = fopen(path, "wb");
    FUZZ_ASSERT(f && fwrite(out_file.data, 1, out_file.len, f) == out_file.len);
    fclose(f);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  es_pq_footer_info info;
  if (es__pq_footer_read(data, size, &info) == ES_OK) /* hostile footers */
    FUZZ_ASSERT(info.row_group_rows == info.num_rows &&
                info.chunks == info.row_groups * info.columns);
  in_rd in = {data, size, 0};
  write_file(&in);
  return 0;
}
