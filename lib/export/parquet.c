/*
 * parquet.c -- the Parquet writer (parquet.h has the contract and the
 * invariants; docs/EXPORT.md the bytes).
 *
 * What a file holds: "PAR1", then row groups, each a column chunk per
 * column in schema order; a chunk is an optional dictionary page followed
 * by data pages (format v1: DataPageHeader).  A data page's body is, for
 * an optional column, its definition levels (a 4-byte little-endian length
 * then the RLE/bit-packed hybrid of 0/1 levels, bit width 1), then the
 * non-null values: PLAIN (INT64 little-endian; BYTE_ARRAY as a 4-byte
 * length and the bytes) or RLE_DICTIONARY (one byte of bit width, then
 * the hybrid of dictionary indices).  The whole body is compressed with
 * the file's codec; the page header (Thrift compact) is not.  The footer
 * is FileMetaData, its 4-byte length and "PAR1" (apache/parquet-format:
 * parquet.thrift, Encodings.md).
 *
 * The field ids below are parquet.thrift's.
 */
#include "export/parquet.h"

#include <snappy-c.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "base/hashtab.h"
#include "base/mem.h"
#include "export/thrift.h"

/* parquet.thrift enums */
#define PT_INT64 2
#define PT_BYTE_ARRAY 6
#define ENC_PLAIN 0
#define ENC_RLE 3
#define ENC_RLE_DICTIONARY 8
#define PAGE_DATA 0
#define PAGE_DICTIONARY 2
#define CT_UTF8 0
#define CT_TIMESTAMP_MICROS 10
#define CT_JSON 19

typedef struct pq_col {
  es_pq_column def;
  char *name;
  /* the page being filled */
  uint8_t *levels; /* one definition level per row (optional columns) */
  size_t nlevels, levels_cap;
  es_buf plain;  /* PLAIN values of the page */
  uint32_t *idx; /* dictionary indices of the page */
  size_t nidx, idx_cap;
  int page_dict; /* this page is dictionary-encoded */
  int put;       /* a value was put in the current row */
  /* the dictionary of the chunk (invariant 2) */
  int dict_on;
  es_buf dict;        /* PLAIN entries: the dictionary page's body */
  uint32_t *dict_off; /* entry -> offset of its length in dict */
  size_t dict_n, dict_off_cap;
  es_htab index; /* entry + 1 by the value's hash */
  /* the chunk's encoded pages and counters */
  es_buf pages;
  int64_t values, nulls;
  uint64_t unc_bytes; /* uncompressed, headers included */
  int used_plain, used_dict;
  /* statistics (invariant 3) */
  int have_minmax;
  int64_t imin, imax;
  es_buf bmin, bmax;
  /* where the chunk went in the file */
  int64_t dict_page_off, data_page_off, chunk_bytes, chunk_unc;
} pq_col;

typedef struct pq_chunk_meta {
  int64_t dict_off, data_off, comp, unc, values, nulls;
  int used_plain, used_dict, has_dict;
  int have_minmax;
  uint8_t *min, *max; /* owned */
  size_t min_n, max_n;
} pq_chunk_meta;

typedef struct pq_rg_meta {
  int64_t rows, offset, comp, unc;
  pq_chunk_meta *chunks; /* ncols */
} pq_rg_meta;

struct es_pq_writer {
  es_vfs *vfs;
  es_file *file;
  es_pq_options o;
  char *created_by;
  size_t ncols;
  pq_col *cols;
  int rc;       /* first error (invariant 4) */
  uint64_t off; /* bytes written */
  uint32_t crc; /* CRC-32 of the bytes written */
  int64_t rows, rg_rows;
  uint64_t rg_comp; /* compressed bytes of the row group's pages so far */
  pq_rg_meta *rgs;
  size_t nrgs, rgs_cap;
  ZSTD_CCtx *zctx;
  es_buf body, comp, hdr; /* scratch */
};

void es__pq_options_init(es_pq_options *o) {
  memset(o, 0, sizeof *o);
  o->codec = ES_PQ_ZSTD;
  o->zstd_level = 3;
  o->row_group_bytes = 32u << 20;
  o->page_bytes = ES_PQ_PAGE_BYTES;
}

static int pq_fail(es_pq_writer *w, int rc) {
  if (w->rc == 0)
    w->rc = rc;
  return w->rc;
}

static int pq_write(es_pq_writer *w, const void *p, size_t n) {
  ES_TRY(w->vfs->write(w->vfs, w->file, p, n, w->off));
  w->off += n;
  w->crc = (uint32_t)crc32_z(w->crc, p, n);
  return ES_OK;
}

/* ---- RLE / bit-packed hybrid ---------------------------------------- */

static int bits_for(uint32_t max) {
  int b = 0;
  while (max) {
    b++;
    max >>= 1;
  }
  return b;
}

/* Bit-packs values v[0..n) (n a multiple of 8, zero-padded by the
 * caller) at width bw, least significant bit first, as one run. */
static int rle_put_packed(es_buf *b, const uint32_t *v, size_t n, int bw) {
  ES_TRY(es__buf_put_varint(b, ((uint64_t)(n / 8) << 1) | 1));
  ES_TRY(es__buf_reserve(b, n * (size_t)bw / 8 + 1));
  uint64_t acc = 0;
  int have = 0;
  for (size_t i = 0; i < n; i++) {
    acc |= (uint64_t)v[i] << have;
    have += bw;
    while (have >= 8) {
      b->data[b->len++] = (uint8_t)acc;
      acc >>= 8;
      have -= 8;
    }
  }
  return ES_OK;
}

static int rle_put_run(es_buf *b, uint32_t value, size_t count, int bw) {
  ES_TRY(es__buf_put_varint(b, (uint64_t)count << 1));
  for (int i = 0; i < (bw + 7) / 8; i++)
    ES_TRY(es__buf_put_u8(b, (uint8_t)(value >> (8 * i))));
  return ES_OK;
}

/* Encodes v[0..n) at bit width bw: runs of 8 or more equal values that
 * start on a group boundary become RLE runs, the rest bit-packed groups of
 * 8 (the last one zero-padded; the reader knows how many values there
 * are).  pad must have room for 8 values. */
static int rle_encode(es_buf *b, const uint32_t *v, size_t n, int bw) {
  size_t lit = 0; /* start of pending literals */
  size_t i = 0;
  while (i < n) {
    size_t run = 1;
    while (i + run < n && v[i + run] == v[i])
      run++;
    size_t align = (8 - (i - lit) % 8) % 8; /* literals to a group edge */
    if (run >= align + 8) {
      size_t full = i + align - lit;
      if (full > 0)
        ES_TRY(rle_put_packed(b, v + lit, full, bw));
      ES_TRY(rle_put_run(b, v[i], run - align, bw));
      i += run;
      lit = i;
    } else {
      i += run;
    }
  }
  if (lit < n) {
    size_t whole = (n - lit) / 8 * 8;
    if (whole > 0)
      ES_TRY(rle_put_packed(b, v + lit, whole, bw));
    if (lit + whole < n) {
      uint32_t pad[8] = {0};
      memcpy(pad, v + lit + whole, (n - lit - whole) * sizeof *pad);
      ES_TRY(rle_put_packed(b, pad, 8, bw));
    }
  }
  return ES_OK;
}

/* ---- dictionary ------------------------------------------------------ */

static const uint8_t *dict_entry(const pq_col *c, uint32_t e, size_t *n) {
  const uint8_t *p = c->dict.data + c->dict_off[e];
  *n = es__get_le32(p);
  return p + 4;
}

typedef struct dict_key {
  const void *p;
  size_t n;
} dict_key;

/* Whether entry `v` - 1 is the value `key` (a dict_key). */
static int dict_eq(const void *ctx, uint32_t v, const void *key) {
  const dict_key *k = key;
  size_t len;
  const uint8_t *q = dict_entry(ctx, v - 1, &len);
  return len == k->n && memcmp(k->p, q, len) == 0;
}

/* The index of value p[0..n) in the dictionary, added if new. */
static int dict_index(pq_col *c, const void *p, size_t n, uint32_t *e_out,
                      int *added) {
  ES_TRY(es__htab_reserve(&c->index, 1));
  dict_key k = {p, n};
  uint64_t h = es__hash64(p, n, 0);
  size_t i = es__htab_probe(&c->index, h, dict_eq, c, &k);
  *added = 0;
  if (c->index.slots[i].val) {
    *e_out = c->index.slots[i].val - 1;
    return ES_OK;
  }
  ES_TRY(es__grow((void **)&c->dict_off, &c->dict_off_cap, c->dict_n + 1,
                  sizeof *c->dict_off));
  c->dict_off[c->dict_n] = (uint32_t)c->dict.len;
  ES_TRY(es__buf_put_u32(&c->dict, (uint32_t)n));
  ES_TRY(es__buf_put(&c->dict, p, n));
  es__htab_set(&c->index, i, h, (uint32_t)c->dict_n + 1);
  *e_out = (uint32_t)c->dict_n++;
  *added = 1;
  return ES_OK;
}

/* ---- statistics ------------------------------------------------------ */

static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  size_t n = an < bn ? an : bn;
  int r = n ? memcmp(a, b, n) : 0;
  if (r)
    return r;
  return an < bn ? -1 : an > bn;
}

static int stat_bytes(pq_col *c, const void *p, size_t n) {
  if (!c->def.stats)
    return ES_OK;
  if (!c->have_minmax || bytes_cmp(p, n, c->bmin.data, c->bmin.len) < 0) {
    c->bmin.len = 0;
    ES_TRY(es__buf_put(&c->bmin, p, n));
  }
  if (!c->have_minmax || bytes_cmp(p, n, c->bmax.data, c->bmax.len) > 0) {
    c->bmax.len = 0;
    ES_TRY(es__buf_put(&c->bmax, p, n));
  }
  c->have_minmax = 1;
  return ES_OK;
}

/* ---- pages ----------------------------------------------------------- */

static int compress_body(es_pq_writer *w, const es_buf *in, es_buf *out) {
  out->len = 0;
  if (w->o.codec == ES_PQ_UNCOMPRESSED)
    return es__buf_put(out, in->data, in->len);
  if (w->o.codec == ES_PQ_SNAPPY) {
    size_t cap = snappy_max_compressed_length(in->len);
    ES_TRY(es__buf_reserve(out, cap));
    if (snappy_compress((const char *)in->data, in->len, (char *)out->data,
                        &cap) != SNAPPY_OK)
      return ES_ERR(ES_ENOMEM, "snappy_compress failed");
    out->len = cap;
    return ES_OK;
  }
  size_t cap = ZSTD_compressBound(in->len);
  ES_TRY(es__buf_reserve(out, cap));
  size_t r = ZSTD_compressCCtx(w->zctx, out->data, cap, in->data, in->len,
                               w->o.zstd_level);
  if (ZSTD_isError(r))
    return ES_ERR(ES_ENOMEM, "zstd: %s", ZSTD_getErrorName(r));
  out->len = r;
  return ES_OK;
}

/* Appends a page (header + compressed body of w->body) to dst. */
static int put_page(es_pq_writer *w, pq_col *c, es_buf *dst, int page_type,
                    int32_t nvalues, int encoding) {
  ES_TRY(compress_body(w, &w->body, &w->comp));
  if (w->body.len > INT32_MAX || w->comp.len > INT32_MAX)
    return ES_ERR(ES_ETOOBIG, "parquet: a page over 2 GiB");
  es_thrift_w t;
  w->hdr.len = 0;
  es__thrift_begin(&t, &w->hdr);
  es__thrift_i32(&t, 1, page_type);
  es__thrift_i32(&t, 2, (int32_t)w->body.len);
  es__thrift_i32(&t, 3, (int32_t)w->comp.len);
  if (page_type == PAGE_DATA) {
    es__thrift_struct(&t, 5); /* DataPageHeader */
    es__thrift_i32(&t, 1, nvalues);
    es__thrift_i32(&t, 2, encoding);
    es__thrift_i32(&t, 3, ENC_RLE); /* definition levels */
    es__thrift_i32(&t, 4, ENC_RLE); /* repetition levels (none) */
    es__thrift_end(&t);
  } else {
    es__thrift_struct(&t, 7); /* DictionaryPageHeader */
    es__thrift_i32(&t, 1, nvalues);
    es__thrift_i32(&t, 2, ENC_PLAIN);
    es__thrift_end(&t);
  }
  es__thrift_end(&t);
  ES_TRY(t.rc);
  ES_TRY(es__buf_put(dst, w->hdr.data, w->hdr.len));
  ES_TRY(es__buf_put(dst, w->comp.data, w->comp.len));
  c->unc_bytes += w->hdr.len + w->body.len;
  if (dst == &c->pages)
    w->rg_comp += w->hdr.len + w->comp.len;
  return ES_OK;
}

/* Closes the column's current page into its chunk. */
static int page_flush(es_pq_writer *w, pq_col *c) {
  /* rows of the page: levels (optional), else indices or the count of
   * PLAIN values kept in nlevels (required columns have no levels) */
  size_t nvals = (c->def.optional || !c->page_dict) ? c->nlevels : c->nidx;
  if (nvals == 0)
    return ES_OK;
  es_buf *b = &w->body;
  b->len = 0;
  if (c->def.optional) {
    ES_TRY(es__buf_put_u32(b, 0)); /* length, patched below */
    size_t at = b->len;
    /* levels are bytes; the encoder takes 32-bit values */
    uint32_t *lv = es__malloc((c->nlevels + 8) * sizeof *lv);
    if (!lv)
      return ES_NOMEM_BKPT();
    for (size_t i = 0; i < c->nlevels; i++)
      lv[i] = c->levels[i];
    int rc = rle_encode(b, lv, c->nlevels, 1);
    es__free(lv);
    ES_TRY(rc);
    es__le32(b->data + at - 4, (uint32_t)(b->len - at));
  }
  int enc = ENC_PLAIN;
  if (c->page_dict) {
    int bw = bits_for(c->dict_n ? (uint32_t)c->dict_n - 1 : 0);
    ES_TRY(es__buf_put_u8(b, (uint8_t)bw));
    if (c->nidx > 0 && bw > 0)
      ES_TRY(rle_encode(b, c->idx, c->nidx, bw));
    else if (c->nidx > 0)
      ES_TRY(rle_put_run(b, 0, c->nidx, 0));
    enc = ENC_RLE_DICTIONARY;
    c->used_dict = 1;
  } else {
    ES_TRY(es__buf_put(b, c->plain.data, c->plain.len));
    c->used_plain = 1;
  }
  ES_TRY(put_page(w, c, &c->pages, PAGE_DATA, (int32_t)nvals, enc));
  c->nlevels = 0;
  c->nidx = 0;
  c->plain.len = 0;
  /* invariant 2: the next page is PLAIN once the dictionary is full */
  if (c->dict_on && (c->dict_n >= ES_PQ_DICT_ENTRIES_MAX ||
                     c->dict.len >= ES_PQ_DICT_BYTES_MAX))
    c->dict_on = 0;
  c->page_dict = c->dict_on;
  return ES_OK;
}

static size_t page_bytes(const pq_col *c) {
  return c->plain.len + c->nidx * 4 + c->nlevels;
}

static int page_rows(const pq_col *c) {
  return c->def.optional ? (int)c->nlevels : (int)(c->nidx + c->nlevels);
}

/* ---- writer ---------------------------------------------------------- */

int es__pq_open(es_vfs *vfs, const char *path, const es_pq_column *cols,
                size_t ncols, const es_pq_options *o, es_pq_writer **w_out) {
  *w_out = NULL;
  if (ncols == 0 || ncols > ES_PQ_COLUMNS_MAX)
    return ES_INVAL_BKPT("parquet: %zu columns", ncols);
  for (size_t i = 0; i < ncols; i++)
    if ((cols[i].kind != ES_PQ_INT64 && cols[i].kind != ES_PQ_BYTES) ||
        !cols[i].name)
      return ES_INVAL_BKPT("parquet: column %zu has no kind or name", i);
  int rc = ES_OK;
  es_pq_writer *w = es__calloc(1, sizeof *w);
  if (!w)
    return ES_NOMEM_BKPT();
  w->vfs = vfs;
  w->ncols = ncols;
  if (o)
    w->o = *o;
  else
    es__pq_options_init(&w->o);
  if (w->o.page_bytes == 0)
    w->o.page_bytes = ES_PQ_PAGE_BYTES;
  w->o.created_by = NULL;
  w->created_by =
      es__strdup(o && o->created_by ? o->created_by : "libeventstore");
  w->cols = es__calloc(ncols, sizeof *w->cols);
  if (!w->cols || !w->created_by)
    ES_CHECK(ES_NOMEM_BKPT());
  for (size_t i = 0; i < ncols; i++) {
    pq_col *c = &w->cols[i];
    c->def = cols[i];
    c->name = es__strdup(cols[i].name);
    if (!c->name)
      ES_CHECK(ES_NOMEM_BKPT());
    c->def.name = c->name;
    if (c->def.kind != ES_PQ_BYTES)
      c->def.dictionary = 0;
    c->dict_on = c->page_dict = c->def.dictionary;
  }
  if (w->o.codec == ES_PQ_ZSTD) {
    w->zctx = ZSTD_createCCtx();
    if (!w->zctx)
      ES_CHECK(ES_NOMEM_BKPT());
  } else if (w->o.codec != ES_PQ_SNAPPY && w->o.codec != ES_PQ_UNCOMPRESSED) {
    ES_CHECK(ES_INVAL_BKPT("parquet: unknown codec %d", w->o.codec));
  }
  ES_CHECK(
      vfs->open(vfs, path, ES_IO_WRITE | ES_IO_CREATE | ES_IO_TRUNC, &w->file));
  ES_CHECK(pq_write(w, "PAR1", 4));
  *w_out = w;
  return ES_OK;
err:
  es__pq_abort(w);
  return rc;
}

static int put_level(pq_col *c, uint8_t level) {
  ES_TRY(es__grow((void **)&c->levels, &c->levels_cap, c->nlevels + 1, 1));
  c->levels[c->nlevels++] = level;
  return ES_OK;
}

static int col_for(es_pq_writer *w, size_t col, int kind, pq_col **c_out) {
  if (w->rc)
    return w->rc;
  if (col >= w->ncols || w->cols[col].def.kind != kind || w->cols[col].put)
    return pq_fail(w, ES_INVAL_BKPT("parquet: bad put on column %zu", col));
  *c_out = &w->cols[col];
  (*c_out)->put = 1;
  return ES_OK;
}

int es__pq_put_i64(es_pq_writer *w, size_t col, int64_t v, int present) {
  pq_col *c = NULL;
  ES_TRY(col_for(w, col, ES_PQ_INT64, &c));
  if (!present && !c->def.optional)
    return pq_fail(w, ES_INVAL_BKPT("parquet: null in required %s", c->name));
  int rc = ES_OK;
  if (c->def.optional)
    ES_CHECK(put_level(c, present ? 1 : 0));
  c->values++;
  if (!present) {
    c->nulls++;
    return ES_OK;
  }
  uint8_t le[8];
  es__le64(le, (uint64_t)v);
  ES_CHECK(es__buf_put(&c->plain, le, 8));
  if (!c->def.optional)
    c->nlevels++; /* counts the page's rows */
  if (c->def.stats) {
    if (!c->have_minmax || v < c->imin)
      c->imin = v;
    if (!c->have_minmax || v > c->imax)
      c->imax = v;
    c->have_minmax = 1;
  }
  return ES_OK;
err:
  return pq_fail(w, rc);
}

int es__pq_put_bytes(es_pq_writer *w, size_t col, const void *p, size_t n) {
  pq_col *c = NULL;
  ES_TRY(col_for(w, col, ES_PQ_BYTES, &c));
  if (!p && !c->def.optional)
    return pq_fail(w, ES_INVAL_BKPT("parquet: null in required %s", c->name));
  if (n > UINT32_MAX / 2)
    return pq_fail(w, ES_ERR(ES_ETOOBIG, "parquet: a value over 2 GiB"));
  int rc = ES_OK;
  if (c->def.optional)
    ES_CHECK(put_level(c, p ? 1 : 0));
  c->values++;
  if (!p) {
    c->nulls++;
    return ES_OK;
  }
  if (c->page_dict) {
    uint32_t e;
    int added;
    ES_CHECK(dict_index(c, p, n, &e, &added));
    ES_CHECK(
        es__grow((void **)&c->idx, &c->idx_cap, c->nidx + 1, sizeof *c->idx));
    c->idx[c->nidx++] = e;
    if (added)
      ES_CHECK(stat_bytes(c, p, n));
  } else {
    ES_CHECK(es__buf_put_u32(&c->plain, (uint32_t)n));
    ES_CHECK(es__buf_put(&c->plain, p, n));
    if (!c->def.optional)
      c->nlevels++;
    ES_CHECK(stat_bytes(c, p, n));
  }
  return ES_OK;
err:
  return pq_fail(w, rc);
}

static int rg_flush(es_pq_writer *w);

int es__pq_end_row(es_pq_writer *w) {
  if (w->rc)
    return w->rc;
  int rc = ES_OK;
  for (size_t i = 0; i < w->ncols; i++) {
    pq_col *c = &w->cols[i];
    if (!c->put)
      return pq_fail(w, ES_INVAL_BKPT("parquet: row without %s", c->name));
    c->put = 0;
    if (page_bytes(c) >= w->o.page_bytes || page_rows(c) >= ES_PQ_PAGE_VALUES)
      ES_CHECK(page_flush(w, c));
  }
  w->rows++;
  w->rg_rows++;
  if (w->rg_comp >= w->o.row_group_bytes)
    ES_CHECK(rg_flush(w));
  return ES_OK;
err:
  return pq_fail(w, rc);
}

/* Writes the buffered row group: per column its dictionary page and its
 * data pages; records where each chunk went for the footer. */
static int rg_flush(es_pq_writer *w) {
  if (w->rg_rows == 0)
    return ES_OK;
  ES_TRY(es__grow((void **)&w->rgs, &w->rgs_cap, w->nrgs + 1, sizeof *w->rgs));
  pq_rg_meta *rg = &w->rgs[w->nrgs];
  memset(rg, 0, sizeof *rg);
  rg->chunks = es__calloc(w->ncols, sizeof *rg->chunks);
  if (!rg->chunks)
    return ES_NOMEM_BKPT();
  w->nrgs++;
  rg->rows = w->rg_rows;
  rg->offset = (int64_t)w->off;
  for (size_t i = 0; i < w->ncols; i++) {
    pq_col *c = &w->cols[i];
    pq_chunk_meta *m = &rg->chunks[i];
    ES_TRY(page_flush(w, c));
    m->dict_off = -1;
    uint64_t start = w->off;
    if (c->used_dict) {
      es_buf dp = {0};
      w->body.len = 0;
      ES_TRY(es__buf_put(&w->body, c->dict.data, c->dict.len));
      int rc = put_page(w, c, &dp, PAGE_DICTIONARY, (int32_t)c->dict_n, 0);
      if (rc == ES_OK)
        rc = pq_write(w, dp.data, dp.len);
      es__buf_free(&dp);
      ES_TRY(rc);
      m->dict_off = (int64_t)start;
      m->has_dict = 1;
    }
    m->data_off = (int64_t)w->off;
    ES_TRY(pq_write(w, c->pages.data, c->pages.len));
    m->comp = (int64_t)(w->off - start);
    m->unc = (int64_t)c->unc_bytes;
    m->values = c->values;
    m->nulls = c->nulls;
    m->used_plain = c->used_plain;
    m->used_dict = c->used_dict;
    if (c->have_minmax) {
      size_t mn = c->def.kind == ES_PQ_INT64 ? 8 : c->bmin.len;
      size_t mx = c->def.kind == ES_PQ_INT64 ? 8 : c->bmax.len;
      if (mn <= ES_PQ_STAT_BYTES_MAX && mx <= ES_PQ_STAT_BYTES_MAX) {
        m->min = es__malloc(mn ? mn : 1);
        m->max = es__malloc(mx ? mx : 1);
        if (!m->min || !m->max)
          return ES_NOMEM_BKPT();
        if (c->def.kind == ES_PQ_INT64) {
          es__le64(m->min, (uint64_t)c->imin);
          es__le64(m->max, (uint64_t)c->imax);
        } else {
          if (mn)
            memcpy(m->min, c->bmin.data, mn);
          if (mx)
            memcpy(m->max, c->bmax.data, mx);
        }
        m->min_n = mn;
        m->max_n = mx;
        m->have_minmax = 1;
      }
    }
    rg->comp += m->comp;
    rg->unc += m->unc;
    /* the next chunk of this column starts afresh */
    c->pages.len = 0;
    c->values = c->nulls = 0;
    c->unc_bytes = 0;
    c->used_plain = c->used_dict = 0;
    c->have_minmax = 0;
    c->dict.len = 0;
    c->dict_n = 0;
    es__htab_clear(&c->index);
    c->dict_on = c->page_dict = c->def.dictionary;
  }
  w->rg_rows = 0;
  w->rg_comp = 0;
  return ES_OK;
}

static void put_logical(es_thrift_w *t, int logical) {
  es__thrift_struct(t, 10); /* LogicalType (a union) */
  if (logical == ES_PQ_TIMESTAMP_US) {
    es__thrift_struct(t, 8);  /* TIMESTAMP: TimestampType */
    es__thrift_bool(t, 1, 1); /* isAdjustedToUTC */
    es__thrift_struct(t, 2);  /* unit: TimeUnit (a union) */
    es__thrift_struct(t, 2);  /* MICROS: MicroSeconds {} */
    es__thrift_end(t);
    es__thrift_end(t);
    es__thrift_end(t);
  } else {
    es__thrift_struct(t, logical == ES_PQ_JSON ? 12 : 1); /* JSON / STRING */
    es__thrift_end(t);
  }
  es__thrift_end(t);
}

static void put_schema(es_pq_writer *w, es_thrift_w *t) {
  es__thrift_list(t, 2, ES_TC_STRUCT, (uint32_t)w->ncols + 1);
  es__thrift_elem_struct(t); /* the root group */
  es__thrift_str(t, 4, "schema");
  es__thrift_i32(t, 5, (int32_t)w->ncols);
  es__thrift_end(t);
  for (size_t i = 0; i < w->ncols; i++) {
    const es_pq_column *d = &w->cols[i].def;
    es__thrift_elem_struct(t);
    es__thrift_i32(t, 1, d->kind == ES_PQ_INT64 ? PT_INT64 : PT_BYTE_ARRAY);
    es__thrift_i32(t, 3, d->optional ? 1 : 0);
    es__thrift_str(t, 4, d->name);
    if (d->logical == ES_PQ_TIMESTAMP_US)
      es__thrift_i32(t, 6, CT_TIMESTAMP_MICROS);
    else if (d->logical == ES_PQ_STRING)
      es__thrift_i32(t, 6, CT_UTF8);
    else if (d->logical == ES_PQ_JSON)
      es__thrift_i32(t, 6, CT_JSON);
    if (d->logical != ES_PQ_PLAIN_TYPE)
      put_logical(t, d->logical);
    es__thrift_end(t);
  }
}

static void put_chunk(es_pq_writer *w, es_thrift_w *t, size_t i,
                      const pq_chunk_meta *m) {
  const es_pq_column *d = &w->cols[i].def;
  es__thrift_elem_struct(t); /* ColumnChunk */
  es__thrift_i64(t, 2, m->has_dict ? m->dict_off : m->data_off);
  es__thrift_struct(t, 3); /* ColumnMetaData */
  es__thrift_i32(t, 1, d->kind == ES_PQ_INT64 ? PT_INT64 : PT_BYTE_ARRAY);
  int encs[3], ne = 0;
  encs[ne++] = ENC_RLE;
  if (m->used_plain || m->has_dict)
    encs[ne++] = ENC_PLAIN; /* the dictionary page is PLAIN too */
  if (m->used_dict)
    encs[ne++] = ENC_RLE_DICTIONARY;
  es__thrift_list(t, 2, ES_TC_I32, (uint32_t)ne);
  for (int k = 0; k < ne; k++)
    es__thrift_elem_i32(t, encs[k]);
  es__thrift_list(t, 3, ES_TC_BINARY, 1);
  es__thrift_elem_str(t, d->name);
  es__thrift_i32(t, 4, w->o.codec);
  es__thrift_i64(t, 5, m->values);
  es__thrift_i64(t, 6, m->unc);
  es__thrift_i64(t, 7, m->comp);
  es__thrift_i64(t, 9, m->data_off);
  if (m->has_dict)
    es__thrift_i64(t, 11, m->dict_off);
  es__thrift_struct(t, 12); /* Statistics */
  es__thrift_i64(t, 3, m->nulls);
  if (m->have_minmax) {
    es__thrift_bin(t, 5, m->max, m->max_n);
    es__thrift_bin(t, 6, m->min, m->min_n);
  }
  es__thrift_end(t);
  es__thrift_end(t); /* ColumnMetaData */
  es__thrift_end(t); /* ColumnChunk */
}

static int put_footer(es_pq_writer *w, es_buf *out) {
  es_thrift_w t;
  es__thrift_begin(&t, out);
  es__thrift_i32(&t, 1, 1); /* version */
  put_schema(w, &t);
  es__thrift_i64(&t, 3, w->rows);
  es__thrift_list(&t, 4, ES_TC_STRUCT, (uint32_t)w->nrgs);
  for (size_t g = 0; g < w->nrgs; g++) {
    const pq_rg_meta *rg = &w->rgs[g];
    es__thrift_elem_struct(&t); /* RowGroup */
    es__thrift_list(&t, 1, ES_TC_STRUCT, (uint32_t)w->ncols);
    for (size_t i = 0; i < w->ncols; i++)
      put_chunk(w, &t, i, &rg->chunks[i]);
    es__thrift_i64(&t, 2, rg->unc);
    es__thrift_i64(&t, 3, rg->rows);
    es__thrift_i64(&t, 5, rg->offset);
    es__thrift_i64(&t, 6, rg->comp);
    es__thrift_end(&t);
  }
  es__thrift_str(&t, 6, w->created_by);
  /* column_orders: TYPE_ORDER for every column, which says min_value and
   * max_value follow the type's order (invariant 3) */
  es__thrift_list(&t, 7, ES_TC_STRUCT, (uint32_t)w->ncols);
  for (size_t i = 0; i < w->ncols; i++) {
    es__thrift_elem_struct(&t);
    es__thrift_struct(&t, 1); /* TYPE_ORDER: TypeDefinedOrder {} */
    es__thrift_end(&t);
    es__thrift_end(&t);
  }
  es__thrift_end(&t);
  return t.rc;
}

uint64_t es__pq_bytes(const es_pq_writer *w) { return w->off; }
uint64_t es__pq_rows(const es_pq_writer *w) { return (uint64_t)w->rows; }

int es__pq_close(es_pq_writer *w, uint64_t *bytes_out, uint32_t *crc32_out) {
  *bytes_out = 0;
  *crc32_out = 0;
  int rc = w->rc;
  es_buf foot = {0};
  if (rc == ES_OK)
    rc = rg_flush(w);
  if (rc == ES_OK)
    rc = put_footer(w, &foot);
  if (rc == ES_OK) {
    uint8_t tail[8];
    es__le32(tail, (uint32_t)foot.len);
    memcpy(tail + 4, "PAR1", 4);
    rc = pq_write(w, foot.data, foot.len);
    if (rc == ES_OK)
      rc = pq_write(w, tail, 8);
  }
  if (rc == ES_OK)
    rc = w->vfs->sync(w->vfs, w->file);
  if (rc == ES_OK) {
    *bytes_out = w->off;
    *crc32_out = w->crc;
  }
  es__buf_free(&foot);
  int crc = w->vfs->close(w->vfs, w->file);
  w->file = NULL;
  if (rc == ES_OK)
    rc = crc;
  if (rc != ES_OK)
    *bytes_out = *crc32_out = 0;
  es__pq_abort(w);
  return rc;
}

void es__pq_abort(es_pq_writer *w) {
  if (!w)
    return;
  if (w->file)
    (void)w->vfs->close(w->vfs, w->file);
  for (size_t i = 0; w->cols && i < w->ncols; i++) {
    pq_col *c = &w->cols[i];
    es__free(c->name);
    es__free(c->levels);
    es__buf_free(&c->plain);
    es__free(c->idx);
    es__buf_free(&c->dict);
    es__free(c->dict_off);
    es__htab_free(&c->index);
    es__buf_free(&c->pages);
    es__buf_free(&c->bmin);
    es__buf_free(&c->bmax);
  }
  for (size_t g = 0; g < w->nrgs; g++) {
    for (size_t i = 0; w->rgs[g].chunks && i < w->ncols; i++) {
      es__free(w->rgs[g].chunks[i].min);
      es__free(w->rgs[g].chunks[i].max);
    }
    es__free(w->rgs[g].chunks);
  }
  es__free(w->rgs);
  es__free(w->cols);
  es__free(w->created_by);
  ZSTD_freeCCtx(w->zctx);
  es__buf_free(&w->body);
  es__buf_free(&w->comp);
  es__buf_free(&w->hdr);
  es__free(w);
}

/* ---- the minimal footer reader --------------------------------------- */

typedef struct foot_rd {
  es_thrift_r r;
  es_pq_footer_info *info;
  int64_t data_end; /* where the footer starts: chunks must end before */
} foot_rd;

static int rd_stats(foot_rd *f, size_t col) {
  int16_t id;
  int t;
  es__thrift_renter(&f->r);
  while ((t = es__thrift_field(&f->r, &id)) != 0) {
    if (id == 3 && t == ES_TC_I64 && col < ES_PQ_COLUMNS_MAX)
      f->info->null_count[col] += es__thrift_rint(&f->r);
    else
      es__thrift_skip(&f->r, t);
  }
  return f->r.bad ? ES_CORRUPT_BKPT("parquet footer: statistics") : ES_OK;
}

static int rd_colmeta(foot_rd *f, size_t col) {
  int16_t id;
  int t;
  int64_t comp = -1, data_off = -1, dict_off = -1;
  es__thrift_renter(&f->r);
  while ((t = es__thrift_field(&f->r, &id)) != 0) {
    if (id == 7 && t == ES_TC_I64)
      comp = es__thrift_rint(&f->r);
    else if (id == 9 && t == ES_TC_I64)
      data_off = es__thrift_rint(&f->r);
    else if (id == 11 && t == ES_TC_I64)
      dict_off = es__thrift_rint(&f->r);
    else if (id == 12 && t == ES_TC_STRUCT)
      ES_TRY(rd_stats(f, col));
    else
      es__thrift_skip(&f->r, t);
  }
  if (f->r.bad)
    return ES_CORRUPT_BKPT("parquet footer: column metadata");
  int64_t start = dict_off >= 0 ? dict_off : data_off;
  if (comp < 0 || start < 4 || start > f->data_end ||
      comp > f->data_end - start)
    return ES_CORRUPT_BKPT("parquet footer: a column chunk outside the file");
  return ES_OK;
}

static int rd_rowgroup(foot_rd *f) {
  int16_t id;
  int t;
  int64_t rows = -1;
  uint32_t n;
  es__thrift_renter(&f->r);
  while ((t = es__thrift_field(&f->r, &id)) != 0) {
    if (id == 1 && t == ES_TC_LIST) {
      if (es__thrift_rlist(&f->r, &n) != ES_TC_STRUCT && n > 0)
        return ES_CORRUPT_BKPT("parquet footer: columns is not structs");
      if (n != f->info->columns)
        return ES_CORRUPT_BKPT("parquet footer: %u chunks, %u columns", n,
                               f->info->columns);
      for (uint32_t i = 0; i < n && !f->r.bad; i++) {
        int16_t cid;
        int ct;
        int seen = 0;
        es__thrift_renter(&f->r);
        while ((ct = es__thrift_field(&f->r, &cid)) != 0) {
          if (cid == 3 && ct == ES_TC_STRUCT) {
            ES_TRY(rd_colmeta(f, i));
            seen = 1;
          } else {
            es__thrift_skip(&f->r, ct);
          }
        }
        if (!seen && !f->r.bad)
          return ES_CORRUPT_BKPT("parquet footer: a chunk without metadata");
        f->info->chunks++;
      }
    } else if (id == 3 && t == ES_TC_I64) {
      rows = es__thrift_rint(&f->r);
    } else {
      es__thrift_skip(&f->r, t);
    }
  }
  if (f->r.bad || rows < 0)
    return ES_CORRUPT_BKPT("parquet footer: row group");
  f->info->row_group_rows += rows;
  f->info->row_groups++;
  return ES_OK;
}

/* Reads and checks a file's footer (parquet.h). */
int es__pq_footer_read(const uint8_t *file, size_t n,
                       es_pq_footer_info *info_out) {
  memset(info_out, 0, sizeof *info_out);
  if (n < 12 || memcmp(file, "PAR1", 4) != 0 ||
      memcmp(file + n - 4, "PAR1", 4) != 0)
    return ES_CORRUPT_BKPT("parquet: no PAR1 magic at both ends");
  uint32_t flen = es__get_le32(file + n - 8);
  if (flen > n - 12)
    return ES_CORRUPT_BKPT("parquet: footer length %u beyond the file", flen);
  foot_rd f = {.info = info_out, .data_end = (int64_t)(n - 8 - flen)};
  es__thrift_rbegin(&f.r, file + n - 8 - flen, flen);
  int16_t id;
  int t, have_rows = 0, have_schema = 0;
  uint32_t cnt;
  while ((t = es__thrift_field(&f.r, &id)) != 0) {
    if (id == 2 && t == ES_TC_LIST) {
      if (es__thrift_rlist(&f.r, &cnt) != ES_TC_STRUCT || cnt < 2)
        return ES_CORRUPT_BKPT("parquet footer: schema");
      for (uint32_t i = 0; i < cnt && !f.r.bad; i++)
        es__thrift_skip(&f.r, ES_TC_STRUCT);
      info_out->columns = cnt - 1;
      if (info_out->columns > ES_PQ_COLUMNS_MAX)
        return ES_CORRUPT_BKPT("parquet footer: %u columns", cnt - 1);
      have_schema = 1;
    } else if (id == 3 && t == ES_TC_I64) {
      info_out->num_rows = es__thrift_rint(&f.r);
      have_rows = 1;
    } else if (id == 4 && t == ES_TC_LIST && have_schema) {
      if (es__thrift_rlist(&f.r, &cnt) != ES_TC_STRUCT && cnt > 0)
        return ES_CORRUPT_BKPT("parquet footer: row groups");
      for (uint32_t i = 0; i < cnt && !f.r.bad; i++)
        ES_TRY(rd_rowgroup(&f));
    } else {
      es__thrift_skip(&f.r, t);
    }
  }
  if (f.r.bad || !have_rows || !have_schema)
    return ES_CORRUPT_BKPT("parquet footer: malformed FileMetaData");
  if (info_out->row_group_rows != info_out->num_rows)
    return ES_CORRUPT_BKPT("parquet footer: num_rows %lld, row groups %lld",
                           (long long)info_out->num_rows,
                           (long long)info_out->row_group_rows);
  return ES_OK;
}
