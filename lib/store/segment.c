/*
 * segment.c -- building, opening, reading and verifying segment files.
 * The layout and invariants are in segment.h and docs/FORMAT.md.
 *
 *   header  : "ESSEGMNT" | u32 format version | u32 flags (0)
 *   blocks  : for each row group, for each column: LZ4(raw column bytes)
 *   footer  : u32 groups | u32 columns | u64 rows | i64 min_ts |
 *             i64 max_ts | u32 bloom_bits | u32 bloom_k |
 *             groups x (u32 rows | u32 0 | i64 min_ts | i64 max_ts |
 *                       columns x (u64 off | u32 clen | u32 rlen |
 *                                  u64 checksum)) |
 *             bloom bytes
 *   trailer : u64 footer_off | u32 footer_len | u32 format version |
 *             u64 footer checksum | "ESSEGEND"
 *
 * String columns start with an encoding byte: PLAIN (per row a varint
 * len+1, or 0 for NULL, then the bytes and a NUL), DICT (a dictionary
 * of distinct values in PLAIN form, then per row a varint index, 0 for
 * NULL) or, since format version 4, SHAPE (every value has one length
 * and at each position either one constant byte or a hex digit of one
 * case: the shape once, then per row only the hex digits, two per byte).
 * DICT is chosen when distinct values are at most half the rows; else
 * SHAPE when the values have a shape, it is smaller than PLAIN, and,
 * if LZ4 finds repeats in it, its LZ4 block is too (the random uuids of
 * message ids: 16 bytes a row instead of 38, which LZ4 cannot shrink;
 * sequential ids LZ4 shrinks better as PLAIN); else PLAIN.  No Debian library
 * packs hex digits by position, so this file does (docs/FORMAT.md, "Segment
 * files").
 */
#include <assert.h>
#include <stdio.h>

#include "base/hashtab.h"
#include "base/mem.h"
#include "store/rollup.h"
#include "store/segment.h"

#define SEG_MAGIC "ESSEGMNT"
#define SEG_END "ESSEGEND"
#define SEG_ENC_PLAIN 0
#define SEG_ENC_DICT 1
#define SEG_ENC_SHAPE 2
#define SEG_SHAPE_LEN_MAX                                                      \
  ES_SEG_SHAPE_LEN_MAX /* longer values are never SHAPE */
#define SEG_BLOOM_K 7
#define SEG_FOOTER_FIXED 40
#define SEG_GROUP_BYTES (24 + ES_SEG_NCOLS * 24)

/* --- building ---------------------------------------------------------- */

typedef struct seg_dict {
  es_htab index; /* index + 1 into vals, by the string's hash */
  const char **vals;
  uint32_t *lens; /* lens[v]: the length of vals[v] */
  size_t nvals;
} seg_dict;

typedef struct seg_str {
  const char *s;
  uint32_t len;
} seg_str;

/* Whether dictionary value `v` - 1 is the string `key` (a seg_str). */
static int seg_dict_eq(const void *ctx, uint32_t v, const void *key) {
  const seg_dict *d = ctx;
  const seg_str *k = key;
  return d->lens[v - 1] == k->len && memcmp(d->vals[v - 1], k->s, k->len) == 0;
}

/* Looks s (len bytes) up, inserting it (room was reserved); returns its
 * index + 1. */
static uint32_t seg_dict_put(seg_dict *d, const char *s, uint32_t len) {
  seg_str k = {s, len};
  uint64_t h = es__hash64(s, len, 0);
  size_t i = es__htab_probe(&d->index, h, seg_dict_eq, d, &k);
  if (d->index.slots[i].val == 0) {
    d->vals[d->nvals] = s;
    d->lens[d->nvals++] = len;
    es__htab_set(&d->index, i, h, (uint32_t)d->nvals);
  }
  return d->index.slots[i].val;
}

static int seg_put_str(es_buf *b, const char *s, uint32_t len) {
  if (!s)
    return es__buf_put_u8(b, 0);
  ES_TRY(es__buf_put_varint(b, (uint64_t)len + 1));
  return es__buf_put(b, s, (size_t)len + 1);
}

/* --- SHAPE: hex digits packed by position ----------------------------- */

/* What a position of a shape holds (the bytes of the shape's class
 * array): one constant byte, or a hex digit of one case. */
enum { SHAPE_CONST = 0, SHAPE_LOWER = 1, SHAPE_UPPER = 2 };

/* Per byte value: bit 1 when it is a lower-case hex digit, bit 2 when an
 * upper-case one (digits are both).  Bit 0 is "equal to the first
 * value", added per position while scanning. */
#define SHAPE_D 6 /* a digit: both cases */
#define SHAPE_L 2
#define SHAPE_U 4
static const uint8_t shape_class_bits[256] = {
    ['0'] = SHAPE_D, ['1'] = SHAPE_D, ['2'] = SHAPE_D, ['3'] = SHAPE_D,
    ['4'] = SHAPE_D, ['5'] = SHAPE_D, ['6'] = SHAPE_D, ['7'] = SHAPE_D,
    ['8'] = SHAPE_D, ['9'] = SHAPE_D, ['a'] = SHAPE_L, ['b'] = SHAPE_L,
    ['c'] = SHAPE_L, ['d'] = SHAPE_L, ['e'] = SHAPE_L, ['f'] = SHAPE_L,
    ['A'] = SHAPE_U, ['B'] = SHAPE_U, ['C'] = SHAPE_U, ['D'] = SHAPE_U,
    ['E'] = SHAPE_U, ['F'] = SHAPE_U};

/* The value of a hex digit of either case (a table: the writer packs
 * every digit of every uuid through it). */
static const uint8_t shape_nibble[256] = {
    ['1'] = 1,  ['2'] = 2,  ['3'] = 3,  ['4'] = 4,  ['5'] = 5,  ['6'] = 6,
    ['7'] = 7,  ['8'] = 8,  ['9'] = 9,  ['a'] = 10, ['b'] = 11, ['c'] = 12,
    ['d'] = 13, ['e'] = 14, ['f'] = 15, ['A'] = 10, ['B'] = 11, ['C'] = 12,
    ['D'] = 13, ['E'] = 14, ['F'] = 15};

static const char shape_digits[3][16] = {
    {0}, "0123456789abcdef", "0123456789ABCDEF"};

typedef struct seg_shape {
  uint32_t len;     /* every value's length */
  uint32_t nibbles; /* positions that are not constant */
  uint8_t cls[SEG_SHAPE_LEN_MAX];
  uint8_t pos[SEG_SHAPE_LEN_MAX]; /* the nibble positions, ascending */
} seg_shape;

/* Finds the shape of string column col of rows[0..n): 1 when every
 * non-NULL value (at least one) has one length <= SEG_SHAPE_LEN_MAX, no
 * NUL, and at each position the same byte or hex digits of one case;
 * *s0_out is the first value (the constant bytes).  A failed scan stops
 * at the first value that breaks it: most columns fail on the length. */
static int seg_shape_find(const es_event *evs, const uint32_t *lens, size_t n,
                          int col, seg_shape *sh, const char **s0_out) {
  const char *s0 = NULL;
  size_t r = 0;
  while (r < n && !(s0 = es__ev_cstr(&evs[r], col)))
    r++;
  if (!s0 || lens[r * ES_NSTR + col] > SEG_SHAPE_LEN_MAX)
    return 0;
  uint32_t len = lens[r * ES_NSTR + col];
  uint8_t m[SEG_SHAPE_LEN_MAX];
  for (uint32_t i = 0; i < len; i++) {
    if (s0[i] == '\0')
      return 0;
    m[i] = (uint8_t)(1 | shape_class_bits[(uint8_t)s0[i]]);
  }
  /* no early exit inside a value: only values of the same length get
   * here, and the branch-free loop is what uuid columns pay per byte */
  for (r++; r < n; r++) {
    const uint8_t *s = (const uint8_t *)es__ev_cstr(&evs[r], col);
    if (!s)
      continue;
    if (lens[r * ES_NSTR + col] != len)
      return 0;
    for (uint32_t i = 0; i < len; i++)
      m[i] &= (uint8_t)(shape_class_bits[s[i]] | (s[i] == (uint8_t)s0[i]));
  }
  for (uint32_t i = 0; i < len; i++)
    if (m[i] == 0)
      return 0;
  sh->len = len;
  sh->nibbles = 0;
  for (uint32_t i = 0; i < len; i++) {
    sh->cls[i] = m[i] & 1 ? SHAPE_CONST : m[i] & 2 ? SHAPE_LOWER : SHAPE_UPPER;
    if (sh->cls[i] != SHAPE_CONST)
      sh->pos[sh->nibbles++] = (uint8_t)i;
  }
  *s0_out = s0;
  return 1;
}

/* The PLAIN size of string column col of rows[0..n), encoding byte
 * included. */
static size_t seg_plain_bytes(const es_event *evs, const uint32_t *lens,
                              size_t n, int col) {
  size_t bytes = 1;
  for (size_t r = 0; r < n; r++) {
    size_t len = lens[r * ES_NSTR + col]; /* < 2^21: a 3-byte varint */
    bytes += es__ev_cstr(&evs[r], col)
                 ? 1 + (len + 1 >= 128) + (len + 1 >= 16384) + len + 1
                 : 1;
  }
  return bytes;
}

/* Writes column col as SHAPE when it has a shape and that is smaller
 * than PLAIN; *done_out says whether it did.  Layout (FORMAT.md): u8 2,
 * varint len, len class bytes, the constant bytes, u8 has_nulls, [a
 * bitmap of the non-NULL rows], per non-NULL row the nibbles packed high
 * first (an odd count padded with a zero nibble). */
static int seg_encode_shape(es_buf *raw, const es_event *evs,
                            const uint32_t *lens, size_t n, int col,
                            int *done_out) {
  seg_shape sh;
  const char *s0;
  *done_out = 0;
  if (!seg_shape_find(evs, lens, n, col, &sh, &s0))
    return ES_OK;
  size_t present = 0;
  for (size_t r = 0; r < n; r++)
    present += es__ev_cstr(&evs[r], col) != NULL;
  uint8_t v[10];
  size_t bytes = 1 + es__varint_put(v, sh.len) + 2 * (size_t)sh.len -
                 sh.nibbles + 1 + (present < n ? (n + 7) / 8 : 0) +
                 present * ((sh.nibbles + 1) / 2);
  if (bytes >= seg_plain_bytes(evs, lens, n, col))
    return ES_OK;
  ES_TRY(es__buf_reserve(raw, bytes));
  ES_TRY(es__buf_put_u8(raw, SEG_ENC_SHAPE));
  ES_TRY(es__buf_put_varint(raw, sh.len));
  ES_TRY(es__buf_put(raw, sh.cls, sh.len));
  for (uint32_t i = 0; i < sh.len; i++)
    if (sh.cls[i] == SHAPE_CONST)
      ES_TRY(es__buf_put_u8(raw, (uint8_t)s0[i]));
  ES_TRY(es__buf_put_u8(raw, present < n));
  if (present < n) {
    uint8_t *bits = raw->data + raw->len;
    memset(bits, 0, (n + 7) / 8);
    for (size_t r = 0; r < n; r++)
      if (es__ev_cstr(&evs[r], col))
        bits[r / 8] |= (uint8_t)(1u << (r % 8));
    raw->len += (n + 7) / 8;
  }
  for (size_t r = 0; r < n; r++) {
    const uint8_t *s = (const uint8_t *)es__ev_cstr(&evs[r], col);
    if (!s)
      continue;
    uint8_t *p = raw->data + raw->len;
    for (uint32_t k = 0; k + 1 < sh.nibbles; k += 2)
      *p++ = (uint8_t)(shape_nibble[s[sh.pos[k]]] << 4 |
                       shape_nibble[s[sh.pos[k + 1]]]);
    if (sh.nibbles % 2)
      *p++ = (uint8_t)(shape_nibble[s[sh.pos[sh.nibbles - 1]]] << 4);
    raw->len = (size_t)(p - raw->data);
  }
  *done_out = 1;
  return ES_OK;
}

/* Encodes string column col of rows[0..n) as PLAIN. */
static int seg_encode_plain(es_buf *raw, const es_event *evs,
                            const uint32_t *lens, size_t n, int col) {
  ES_TRY(es__buf_put_u8(raw, SEG_ENC_PLAIN));
  for (size_t r = 0; r < n; r++)
    ES_TRY(
        seg_put_str(raw, es__ev_cstr(&evs[r], col), lens[r * ES_NSTR + col]));
  return ES_OK;
}

/* Encodes string column i of rows[0..n) as DICT, SHAPE or PLAIN: DICT
 * when it has at most n/2 distinct values, so the dictionary is given
 * up as soon as it grows past that; then SHAPE when it is smaller than
 * PLAIN.  lens holds ES_NSTR lengths per row. */
static int seg_encode_strings(es_buf *raw, const es_event *evs,
                              const uint32_t *lens, size_t n, int col,
                              seg_dict *d, uint32_t *idx) {
  d->nvals = 0;
  es__htab_clear(&d->index);
  size_t r = 0;
  for (; r < n && d->nvals <= n / 2; r++) {
    const char *s = es__ev_cstr(&evs[r], col);
    idx[r] = s ? seg_dict_put(d, s, lens[r * ES_NSTR + col]) : 0;
  }
  if (r == n && d->nvals <= n / 2) {
    ES_TRY(es__buf_put_u8(raw, SEG_ENC_DICT));
    ES_TRY(es__buf_put_varint(raw, d->nvals));
    for (size_t v = 0; v < d->nvals; v++)
      ES_TRY(seg_put_str(raw, d->vals[v], d->lens[v]));
    for (r = 0; r < n; r++)
      ES_TRY(es__buf_put_varint(raw, idx[r]));
    return ES_OK;
  }
  int done;
  ES_TRY(seg_encode_shape(raw, evs, lens, n, col, &done));
  if (done)
    return ES_OK;
  return seg_encode_plain(raw, evs, lens, n, col);
}

/* Encodes column c of one row group into raw. */
static int seg_encode_column(es_buf *raw, const es_event *evs,
                             const uint32_t *lens, size_t n, int c,
                             int64_t min_ts, seg_dict *d, uint32_t *idx) {
  int64_t prev = min_ts;
  switch (c) {
  case ES_COL_TS:
    for (size_t r = 0; r < n; r++) {
      ES_TRY(es__buf_put_svarint(raw, evs[r].ts_us - prev));
      prev = evs[r].ts_us;
    }
    return ES_OK;
  case ES_COL_RECV:
    for (size_t r = 0; r < n; r++)
      ES_TRY(es__buf_put_svarint(
          raw, (int64_t)((uint64_t)evs[r].recv_us - (uint64_t)evs[r].ts_us)));
    return ES_OK;
  case ES_COL_TYPE:
    for (size_t r = 0; r < n; r++)
      ES_TRY(es__buf_put_u8(raw, (uint8_t)evs[r].type));
    return ES_OK;
  default:
    return seg_encode_strings(raw, evs, lens, n, c - ES_COL_STR0, d, idx);
  }
}

/* The i-th probe position of key in a filter of nbits (double hashing
 * over one XXH3 value). */
static uint32_t seg_bloom_bit(uint64_t h, uint32_t i, uint32_t nbits) {
  uint32_t h1 = (uint32_t)h, h2 = (uint32_t)(h >> 32) | 1;
  return (h1 + i * h2) % nbits;
}

static uint64_t seg_bloom_hash(const char *key, size_t len) {
  return es__hash64(key, len, 0x5e9b100f);
}

static void seg_bloom_add(uint8_t *bits, uint32_t nbits, uint64_t h) {
  for (uint32_t i = 0; i < SEG_BLOOM_K; i++) {
    uint32_t bit = seg_bloom_bit(h, i, nbits);
    bits[bit / 8] |= (uint8_t)(1u << (bit % 8));
  }
}

typedef struct seg_build {
  es_buf *out;
  es_buf footer_groups;
  es_buf raw, comp;
  es_buf raw2, comp2; /* PLAIN beside a SHAPE block, to compare */
  es_event *evs;
  uint32_t *lens; /* ES_NSTR string lengths per row of evs */
  seg_dict dict;
  uint32_t *idx;
  /* distinct hashes of person and message ids, for the filter */
  uint64_t *keys;
  size_t nkeys, keys_cap;
  es_htab keyset; /* index + 1 into keys, by the hash */
} seg_build;

/* Whether keys[v - 1] is the hash *key. */
static int seg_key_eq(const void *ctx, uint32_t v, const void *key) {
  return ((const uint64_t *)ctx)[v - 1] == *(const uint64_t *)key;
}

/* Adds hash h to the filter's keys unless it is there: the filter is
 * sized by distinct keys (a visitor's id repeats on each of its rows). */
static void seg_add_key(seg_build *sb, uint64_t h) {
  size_t i = es__htab_probe(&sb->keyset, h, seg_key_eq, sb->keys, &h);
  if (sb->keyset.slots[i].val == 0) {
    sb->keys[sb->nkeys++] = h;
    es__htab_set(&sb->keyset, i, h, (uint32_t)sb->nkeys);
  }
}

/* Remembers the ids of a row group for the Bloom filter. */
static int seg_collect_keys(seg_build *sb, size_t n) {
  ES_TRY(es__grow((void **)&sb->keys, &sb->keys_cap, sb->nkeys + 3 * n,
                  sizeof(uint64_t)));
  ES_TRY(es__htab_reserve(&sb->keyset, 3 * n));
  for (size_t r = 0; r < n; r++) {
    const es_event *ev = &sb->evs[r];
    const uint32_t *len = &sb->lens[r * ES_NSTR];
    if (ev->anonymous_id)
      seg_add_key(sb,
                  seg_bloom_hash(ev->anonymous_id, len[ES_STR_anonymous_id]));
    if (ev->user_id)
      seg_add_key(sb, seg_bloom_hash(ev->user_id, len[ES_STR_user_id]));
    if (ev->message_id)
      seg_add_key(sb, seg_bloom_hash(ev->message_id, len[ES_STR_message_id]));
  }
  return ES_OK;
}

/* LZ4-compresses raw into comp; *clen_out is the compressed length. */
static int seg_compress(const es_buf *raw, es_buf *comp, size_t *clen_out) {
  size_t bound = es__lz4_bound(raw->len);
  comp->len = 0;
  ES_TRY(es__buf_reserve(comp, bound));
  *clen_out = es__lz4_compress(raw->data, raw->len, comp->data, bound);
  if (*clen_out == 0)
    return ES_ERR(ES_ETOOBIG, "column block of %zu bytes", raw->len);
  return ES_OK;
}

/* Writes one row group's blocks and appends its footer entry. */
static int seg_build_group(seg_build *sb, size_t n, uint64_t row_bytes) {
  int64_t min_ts = sb->evs[0].ts_us, max_ts = sb->evs[n - 1].ts_us;
  ES_TRY(es__buf_put_u32(&sb->footer_groups, (uint32_t)n));
  ES_TRY(es__buf_put_u32(&sb->footer_groups, row_bytes < UINT32_MAX
                                                 ? (uint32_t)row_bytes
                                                 : UINT32_MAX));
  ES_TRY(es__buf_put_u64(&sb->footer_groups, (uint64_t)min_ts));
  ES_TRY(es__buf_put_u64(&sb->footer_groups, (uint64_t)max_ts));
  for (int c = 0; c < ES_SEG_NCOLS; c++) {
    sb->raw.len = 0;
    ES_TRY(seg_encode_column(&sb->raw, sb->evs, sb->lens, n, c, min_ts,
                             &sb->dict, sb->idx));
    size_t clen;
    ES_TRY(seg_compress(&sb->raw, &sb->comp, &clen));
    es_buf *raw = &sb->raw, *comp = &sb->comp;
    if (c >= ES_COL_STR0 && raw->data[0] == SEG_ENC_SHAPE &&
        clen < raw->len - raw->len / 8) {
      /* smaller raw, but when LZ4 finds repeats in the digits
       * (sequential ids) it may shrink PLAIN more: keep whichever is
       * smaller on disk.  Random digits (uuids) skip the trial. */
      size_t plen;
      sb->raw2.len = 0;
      ES_TRY(
          seg_encode_plain(&sb->raw2, sb->evs, sb->lens, n, c - ES_COL_STR0));
      ES_TRY(seg_compress(&sb->raw2, &sb->comp2, &plen));
      if (plen <= clen)
        raw = &sb->raw2, comp = &sb->comp2, clen = plen;
    }
    uint64_t off = sb->out->len;
    ES_TRY(es__buf_put(sb->out, comp->data, clen));
    ES_TRY(es__buf_put_u64(&sb->footer_groups, off));
    ES_TRY(es__buf_put_u32(&sb->footer_groups, (uint32_t)clen));
    ES_TRY(es__buf_put_u32(&sb->footer_groups, (uint32_t)raw->len));
    ES_TRY(
        es__buf_put_u64(&sb->footer_groups, es__hash64(comp->data, clen, 0)));
  }
  return ES_OK;
}

/* Appends footer and trailer. */
static int seg_build_footer(seg_build *sb, const es_mrow *const *rows, size_t n,
                            uint32_t ngroups) {
  es_buf *out = sb->out;
  uint32_t nbits = (uint32_t)((sb->nkeys * 10 + 63) / 64 * 64);
  if (nbits < 64)
    nbits = 64;
  uint8_t *bloom = es__calloc(1, nbits / 8);
  if (!bloom)
    return ES_NOMEM_BKPT();
  for (size_t k = 0; k < sb->nkeys; k++)
    seg_bloom_add(bloom, nbits, sb->keys[k]);
  uint64_t footer_off = out->len;
  int rc = es__buf_put_u32(out, ngroups);
  if (rc == ES_OK)
    rc = es__buf_put_u32(out, ES_SEG_NCOLS);
  if (rc == ES_OK)
    rc = es__buf_put_u64(out, n);
  if (rc == ES_OK)
    rc = es__buf_put_u64(out, (uint64_t)rows[0]->ts_us);
  if (rc == ES_OK)
    rc = es__buf_put_u64(out, (uint64_t)rows[n - 1]->ts_us);
  if (rc == ES_OK)
    rc = es__buf_put_u32(out, nbits);
  if (rc == ES_OK)
    rc = es__buf_put_u32(out, SEG_BLOOM_K);
  if (rc == ES_OK)
    rc = es__buf_put(out, sb->footer_groups.data, sb->footer_groups.len);
  if (rc == ES_OK)
    rc = es__buf_put(out, bloom, nbits / 8);
  es__free(bloom);
  ES_TRY(rc);
  uint64_t footer_len = out->len - footer_off;
  uint64_t sum = es__hash64(out->data + footer_off, footer_len, 0);
  ES_TRY(es__buf_put_u64(out, footer_off));
  ES_TRY(es__buf_put_u32(out, (uint32_t)footer_len));
  ES_TRY(es__buf_put_u32(out, ES_FORMAT_VERSION));
  ES_TRY(es__buf_put_u64(out, sum));
  return es__buf_put(out, SEG_END, 8);
}

/* Builds a whole segment image; see segment.h. */
int es__segment_build(es_buf *out, const es_mrow *const *rows, size_t n) {
  if (n == 0)
    return ES_INVAL_BKPT("empty segment");
  seg_build sb = {.out = out};
  int rc = ES_OK;
  size_t group = n < ES_SEG_GROUP_ROWS ? n : ES_SEG_GROUP_ROWS;
  sb.evs = es__malloc(group * sizeof(es_event));
  sb.idx = es__malloc(group * sizeof(uint32_t));
  sb.dict.vals = es__malloc(group * sizeof(char *));
  sb.dict.lens = es__malloc(group * sizeof(uint32_t));
  sb.lens = es__malloc(group * ES_NSTR * sizeof(uint32_t));
  if (!sb.evs || !sb.idx || !sb.dict.vals || !sb.dict.lens || !sb.lens)
    ES_CHECK(ES_NOMEM_BKPT());
  ES_CHECK(es__htab_reserve(&sb.dict.index, group)); /* a group's values */
  uint8_t hdr[ES_SEG_HEADER_BYTES];
  memcpy(hdr, SEG_MAGIC, 8);
  es__le32(hdr + 8, ES_FORMAT_VERSION);
  es__le32(hdr + 12, 0);
  ES_CHECK(es__buf_put(out, hdr, sizeof(hdr)));
  uint32_t ngroups = 0;
  for (size_t start = 0; start < n; start += ES_SEG_GROUP_ROWS, ngroups++) {
    size_t m = n - start < ES_SEG_GROUP_ROWS ? n - start : ES_SEG_GROUP_ROWS;
    uint64_t row_bytes = 0;
    for (size_t r = 0; r < m; r++) {
      size_t used;
      ES_CHECK(es__event_decode_lens(rows[start + r]->row, ES_EVENT_BYTES_MAX,
                                     &sb.evs[r], &sb.lens[r * ES_NSTR], &used));
      row_bytes += used;
    }
    ES_CHECK(seg_collect_keys(&sb, m));
    ES_CHECK(seg_build_group(&sb, m, row_bytes));
  }
  ES_CHECK(seg_build_footer(&sb, rows, n, ngroups));
err:
  es__buf_free(&sb.footer_groups);
  es__buf_free(&sb.raw);
  es__buf_free(&sb.comp);
  es__buf_free(&sb.raw2);
  es__buf_free(&sb.comp2);
  es__free(sb.evs);
  es__free(sb.idx);
  es__htab_free(&sb.dict.index);
  es__free(sb.dict.vals);
  es__free(sb.dict.lens);
  es__free(sb.lens);
  es__free(sb.keys);
  es__htab_free(&sb.keyset);
  return rc;
}

/* --- opening ----------------------------------------------------------- */

/* Parses a footer image into seg (groups, bloom). */
static int seg_parse_footer(es_segment *seg, const uint8_t *f, size_t len,
                            uint64_t footer_off) {
  es_rd r = es__rd(f, len);
  seg->ngroups = es__rd_u32(&r);
  uint32_t ncols = es__rd_u32(&r);
  seg->rows = es__rd_u64(&r);
  seg->min_ts = (int64_t)es__rd_u64(&r);
  seg->max_ts = (int64_t)es__rd_u64(&r);
  seg->bloom_bits = es__rd_u32(&r);
  seg->bloom_k = es__rd_u32(&r);
  if (r.bad || ncols != ES_SEG_NCOLS || seg->bloom_bits == 0 ||
      seg->bloom_bits % 8 || seg->bloom_k == 0 || seg->bloom_k > 32 ||
      (uint64_t)seg->ngroups * SEG_GROUP_BYTES + seg->bloom_bits / 8 !=
          len - SEG_FOOTER_FIXED)
    return ES_CORRUPT_BKPT("%s: footer shape is wrong", seg->path);
  seg->groups =
      es__calloc(seg->ngroups ? seg->ngroups : 1, sizeof(es_seg_group));
  seg->bloom = es__malloc(seg->bloom_bits / 8);
  if (!seg->groups || !seg->bloom)
    return ES_NOMEM_BKPT();
  uint64_t rows = 0;
  int row_bytes_known = 1;
  for (uint32_t g = 0; g < seg->ngroups; g++) {
    es_seg_group *gr = &seg->groups[g];
    gr->rows = es__rd_u32(&r);
    gr->row_bytes = es__rd_u32(&r);
    row_bytes_known &= gr->row_bytes != 0;
    seg->row_bytes += gr->row_bytes;
    gr->min_ts = (int64_t)es__rd_u64(&r);
    gr->max_ts = (int64_t)es__rd_u64(&r);
    rows += gr->rows;
    for (int c = 0; c < ES_SEG_NCOLS; c++) {
      es_seg_block *b = &gr->cols[c];
      b->off = es__rd_u64(&r);
      b->clen = es__rd_u32(&r);
      b->rlen = es__rd_u32(&r);
      b->checksum = es__rd_u64(&r);
      seg->raw_bytes += b->rlen;
      if (b->off < ES_SEG_HEADER_BYTES || b->off > footer_off ||
          b->clen > footer_off - b->off || b->clen == 0)
        return ES_CORRUPT_BKPT("%s: block %u/%d lies outside the data area",
                               seg->path, g, c);
    }
    if (gr->rows == 0 || gr->rows > ES_SEG_GROUP_ROWS)
      return ES_CORRUPT_BKPT("%s: row group %u has %u rows", seg->path, g,
                             gr->rows);
  }
  const uint8_t *bloom = es__rd_bytes(&r, seg->bloom_bits / 8);
  if (bloom)
    memcpy(seg->bloom, bloom, seg->bloom_bits / 8);
  if (r.bad || rows != seg->rows)
    return ES_CORRUPT_BKPT("%s: footer row counts disagree", seg->path);
  if (!row_bytes_known)
    seg->row_bytes = 0;
  return ES_OK;
}

/* Reads and checks header, trailer and footer. */
static int seg_load(es_segment *seg) {
  es_vfs *vfs = seg->vfs;
  uint8_t hdr[ES_SEG_HEADER_BYTES], tr[ES_SEG_TRAILER_BYTES];
  ES_TRY(vfs->size(vfs, seg->file, &seg->bytes));
  if (seg->bytes <
      ES_SEG_HEADER_BYTES + ES_SEG_TRAILER_BYTES + SEG_FOOTER_FIXED)
    return ES_CORRUPT_BKPT("%s: %llu bytes is too short for a segment",
                           seg->path, (unsigned long long)seg->bytes);
  ES_TRY(es__io_read_exact(vfs, seg->file, hdr, sizeof(hdr), 0, seg->path));
  ES_TRY(es__io_read_exact(vfs, seg->file, tr, sizeof(tr),
                           seg->bytes - sizeof(tr), seg->path));
  if (memcmp(hdr, SEG_MAGIC, 8) != 0 || memcmp(tr + 24, SEG_END, 8) != 0)
    return ES_CORRUPT_BKPT("%s: not a segment file (bad magic)", seg->path);
  uint32_t version = es__get_le32(hdr + 8);
  if (version > ES_FORMAT_VERSION || version == 0)
    return ES_ERR(ES_EVERSION,
                  "%s: format version %u (this library reads "
                  "up to %d)",
                  seg->path, version, ES_FORMAT_VERSION);
  uint64_t foff = es__get_le64(tr);
  uint32_t flen = es__get_le32(tr + 8);
  if (foff < ES_SEG_HEADER_BYTES || flen < SEG_FOOTER_FIXED ||
      foff + flen != seg->bytes - ES_SEG_TRAILER_BYTES)
    return ES_CORRUPT_BKPT("%s: trailer at %llu points outside the file",
                           seg->path,
                           (unsigned long long)(seg->bytes - sizeof(tr)));
  uint8_t *f = es__malloc(flen);
  if (!f)
    return ES_NOMEM_BKPT();
  int rc = es__io_read_exact(vfs, seg->file, f, flen, foff, seg->path);
  if (rc == ES_OK && es__hash64(f, flen, 0) != es__get_le64(tr + 16))
    rc = ES_CORRUPT_BKPT("%s: footer checksum mismatch at offset %llu",
                         seg->path, (unsigned long long)foff);
  if (rc == ES_OK)
    rc = seg_parse_footer(seg, f, flen, foff);
  es__free(f);
  return rc;
}

/* Opens a segment file; see segment.h. */
int es__segment_open(es_vfs *vfs, const char *path, uint64_t id,
                     es_segment **seg_out) {
  *seg_out = NULL;
  es_segment *seg = es__calloc(1, sizeof(*seg));
  if (!seg)
    return ES_NOMEM_BKPT();
  atomic_init(&seg->refs, 1);
  seg->vfs = vfs;
  seg->id = id;
  int rc = ES_OK;
  if (strlen(path) >= sizeof(seg->path))
    rc = ES_INVAL_BKPT("path too long: %.64s", path);
  else
    strcpy(seg->path, path);
  if (rc == ES_OK)
    rc = vfs->open(vfs, path, ES_IO_READ, &seg->file);
  if (rc == ES_OK)
    rc = seg_load(seg);
  if (rc < 0) {
    es__segment_unref(seg);
    return rc;
  }
  *seg_out = seg;
  return ES_OK;
}

/* Takes a reference. */
void es__segment_ref(es_segment *seg) {
  atomic_fetch_add_explicit(&seg->refs, 1, memory_order_relaxed);
}

/* Drops a reference; closes and frees with the last. */
void es__segment_unref(es_segment *seg) {
  if (!seg ||
      atomic_fetch_sub_explicit(&seg->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (seg->file)
    (void)seg->vfs->close(seg->vfs, seg->file);
  es__free(seg->groups);
  es__free(seg->bloom);
  es__rollup_chain_free(atomic_load(&seg->rollup));
  es__free(seg);
}

/* Bloom filter probe. */
int es__segment_may_contain(const es_segment *seg, const char *key) {
  return es__segment_may_contain_hash(seg, seg_bloom_hash(key, strlen(key)));
}

uint64_t es__segment_key_hash(const char *key, size_t len) {
  return seg_bloom_hash(key, len);
}

int es__segment_may_contain_hash(const es_segment *seg, uint64_t h) {
  for (uint32_t i = 0; i < seg->bloom_k; i++) {
    uint32_t bit = seg_bloom_bit(h, i, seg->bloom_bits);
    if (!(seg->bloom[bit / 8] & (1u << (bit % 8))))
      return 0;
  }
  return 1;
}

/* Probes many keys at once: out[j] = whether seg may hold key j.  A
 * segment's filter is far larger than the CPU caches once a tenant has
 * many segments, so each probe is a memory access; fetching the first two
 * probe positions of the keys a few places ahead lets those accesses
 * overlap instead of waiting for each in turn (dedupe.c probes every
 * segment of a window with every new id). */
void es__segment_may_contain_many(const es_segment *seg, const uint64_t *h,
                                  size_t n, uint8_t *out) {
  enum { AHEAD = 8 };
  const uint8_t *bits = seg->bloom;
  uint32_t nbits = seg->bloom_bits;
  for (size_t j = 0; j < n && j < AHEAD; j++) {
    __builtin_prefetch(&bits[seg_bloom_bit(h[j], 0, nbits) / 8]);
    __builtin_prefetch(&bits[seg_bloom_bit(h[j], 1, nbits) / 8]);
  }
  for (size_t j = 0; j < n; j++) {
    if (j + AHEAD < n) {
      __builtin_prefetch(&bits[seg_bloom_bit(h[j + AHEAD], 0, nbits) / 8]);
      __builtin_prefetch(&bits[seg_bloom_bit(h[j + AHEAD], 1, nbits) / 8]);
    }
    out[j] = (uint8_t)es__segment_may_contain_hash(seg, h[j]);
  }
}

/* --- reading ----------------------------------------------------------- */

/* Reads block (g, c), checks its checksum, and decompresses it. */
static int seg_read_block(es_segment *seg, uint32_t g, int c, es_buf *cbuf,
                          es_buf *raw) {
  const es_seg_block *b = &seg->groups[g].cols[c];
  cbuf->len = 0;
  ES_TRY(es__buf_reserve(cbuf, b->clen));
  ES_TRY(es__io_read_exact(seg->vfs, seg->file, cbuf->data, b->clen, b->off,
                           seg->path));
  if (es__hash64(cbuf->data, b->clen, 0) != b->checksum)
    return ES_CORRUPT_BKPT("%s: block checksum mismatch at offset %llu "
                           "(row group %u, column %d)",
                           seg->path, (unsigned long long)b->off, g, c);
  raw->len = 0;
  /* LZ4 expands at most ~255x; a larger claim is damage, not a reason to
   * allocate gigabytes */
  if (b->rlen > 0x7fffffffu || (uint64_t)b->rlen > (uint64_t)b->clen * 255 + 64)
    return ES_CORRUPT_BKPT("%s: block at offset %llu claims %u raw bytes "
                           "from %u",
                           seg->path, (unsigned long long)b->off, b->rlen,
                           b->clen);
  ES_TRY(es__buf_reserve(raw, b->rlen + 1));
  if (es__lz4_decompress(cbuf->data, b->clen, raw->data, b->rlen) < 0)
    return ES_CORRUPT_BKPT("%s: block at offset %llu does not decompress",
                           seg->path, (unsigned long long)b->off);
  raw->len = b->rlen;
  return ES_OK;
}

/* Reads one PLAIN string (varint len+1 / 0, bytes, NUL) from r. */
static const char *seg_get_str(es_rd *r) {
  uint64_t l = es__rd_varint(r);
  if (l == 0)
    return NULL;
  const uint8_t *s = es__rd_bytes(r, (size_t)l);
  if (!s || s[l - 1] != '\0') {
    r->bad = 1;
    return NULL;
  }
  return (const char *)s;
}

/* Parses the rest of a SHAPE block (after its encoding byte) of n rows
 * into *v, which then points into the block.  Strict: a class,
 * constant, bitmap or padding nibble that the writer would not have
 * written is damage, so one column has one encoding (and the packed
 * bytes of two equal values are equal: es__seg_rows_eq relies on it). */
static int seg_shape_parse(es_rd *r, size_t n, es_seg_packed *v) {
  uint64_t len = es__rd_varint(r);
  if (r->bad || len > SEG_SHAPE_LEN_MAX)
    return ES_CORRUPT_BKPT("string shape of %llu bytes",
                           (unsigned long long)len);
  const uint8_t *cls = es__rd_bytes(r, (size_t)len);
  uint8_t pos[SEG_SHAPE_LEN_MAX];
  size_t nib = 0;
  for (size_t i = 0; cls && i < len; i++) {
    if (cls[i] > SHAPE_UPPER)
      return ES_CORRUPT_BKPT("string shape class %u", cls[i]);
    v->cls[i] = cls[i];
    if (cls[i] == SHAPE_CONST) {
      v->tmpl[i] = (char)es__rd_u8(r);
      if (v->tmpl[i] == '\0' && !r->bad)
        return ES_CORRUPT_BKPT("NUL in a string shape");
    } else {
      v->tmpl[i] = '0';
      pos[nib++] = (uint8_t)i;
    }
  }
  v->tmpl[len] = '\0';
  uint8_t has_nulls = es__rd_u8(r);
  const uint8_t *bits = has_nulls ? es__rd_bytes(r, (n + 7) / 8) : NULL;
  size_t present = n;
  if (has_nulls > 1 || (n % 8 && bits && bits[n / 8] >> (n % 8)))
    return ES_CORRUPT_BKPT("string shape null bitmap");
  for (size_t i = 0; bits && i < n; i++)
    present -= !(bits[i / 8] >> (i % 8) & 1);
  size_t row_bytes = (nib + 1) / 2;
  if (r->bad || (size_t)(r->end - r->p) != present * row_bytes)
    return ES_CORRUPT_BKPT("string shape rows do not fill the block");
  /* per packed byte: where its two digits go; one digit set when every
   * position has one case (uuids), so a value costs a few instructions a
   * digit pair on top of the template's copy */
  v->set = nib ? shape_digits[cls[pos[0]]] : NULL;
  for (size_t k = 0; k < nib; k++) {
    if (shape_digits[cls[pos[k]]] != v->set)
      v->set = NULL;
    if (k % 2)
      v->lo_at[k / 2] = pos[k];
    else
      v->hi_at[k / 2] = pos[k];
  }
  v->len = (size_t)len;
  v->nib = nib;
  v->row_bytes = row_bytes;
  v->n = n;
  v->present = present;
  v->bits = bits;
  v->data = r->p;
  for (size_t i = 0; nib % 2 && i < present; i++)
    if (v->data[i * row_bytes + row_bytes - 1] & 15)
      return ES_CORRUPT_BKPT("string shape padding nibble");
  r->p = r->end;
  return ES_OK;
}

/* Writes the value whose packed digits are at p into d (v->len + 1
 * bytes, NUL included). */
static inline void seg_shape_expand(const es_seg_packed *v, const uint8_t *p,
                                    char *d) {
  size_t pairs = v->nib / 2;
  memcpy(d, v->tmpl, v->len + 1);
  if (v->set) {
    for (size_t j = 0; j < pairs; j++) {
      d[v->hi_at[j]] = v->set[p[j] >> 4];
      d[v->lo_at[j]] = v->set[p[j] & 15];
    }
  } else {
    for (size_t j = 0; j < pairs; j++) {
      d[v->hi_at[j]] = shape_digits[v->cls[v->hi_at[j]]][p[j] >> 4];
      d[v->lo_at[j]] = shape_digits[v->cls[v->lo_at[j]]][p[j] & 15];
    }
  }
  if (v->nib % 2)
    d[v->hi_at[pairs]] = shape_digits[v->cls[v->hi_at[pairs]]][p[pairs] >> 4];
}

/* Decodes the rest of a SHAPE block (after its encoding byte) into n
 * NUL-terminated values in dst, out[i] pointing there (NULL for NULL). */
static int seg_decode_shape(es_rd *r, size_t n, const char **out, es_buf *dst,
                            es_seg_packed *v) {
  ES_TRY(seg_shape_parse(r, n, v));
  dst->len = 0;
  ES_TRY(es__buf_reserve(dst, v->present * (v->len + 1)));
  char *d = (char *)dst->data;
  const uint8_t *p = v->data;
  for (size_t i = 0; i < n; i++) {
    if (v->bits && !(v->bits[i / 8] >> (i % 8) & 1)) {
      out[i] = NULL;
      continue;
    }
    seg_shape_expand(v, p, d);
    out[i] = d;
    d += v->len + 1;
    p += v->row_bytes;
  }
  dst->len = (size_t)((uint8_t *)d - dst->data);
  return ES_OK;
}

/* Where row i's packed digits start in a packed column, or NULL when the
 * row's value is NULL. */
static const uint8_t *seg_packed_row(const es_seg_packed *v, size_t i) {
  if (!v->bits)
    return v->data + i * v->row_bytes;
  if (!(v->bits[i / 8] >> (i % 8) & 1))
    return NULL;
  return v->data + (size_t)v->rank[i] * v->row_bytes;
}

/* Row i's value of string field f; see segment.h. */
const char *es__seg_rows_get(const es_seg_rows *rows, int f, size_t i,
                             char *buf) {
  if (!(rows->packed >> f & 1))
    return rows->str[f][i];
  const es_seg_packed *v = &rows->pk[f];
  const uint8_t *p = seg_packed_row(v, i);
  if (!p)
    return NULL;
  seg_shape_expand(v, p, buf);
  return buf;
}

/* Prepares key s for es__seg_rows_eq on field f; see segment.h. */
void es__seg_rows_key(const es_seg_rows *rows, int f, const char *s,
                      es_seg_key *k) {
  k->s = s;
  k->never = 0;
  if (!(rows->packed >> f & 1))
    return;
  const es_seg_packed *v = &rows->pk[f];
  k->never = 1;
  if (strlen(s) != v->len)
    return; /* no value of the column has another length */
  memset(k->p, 0, v->row_bytes);
  size_t nib = 0;
  for (size_t i = 0; i < v->len; i++) {
    uint8_t c = (uint8_t)s[i];
    if (v->cls[i] == SHAPE_CONST) {
      if (c != (uint8_t)v->tmpl[i])
        return;
      continue;
    }
    /* a digit of the position's case, or no value of the column has it */
    if (!(shape_class_bits[c] & (v->cls[i] == SHAPE_LOWER ? SHAPE_L : SHAPE_U)))
      return;
    k->p[nib / 2] |= (uint8_t)(shape_nibble[c] << (nib % 2 ? 0 : 4));
    nib++;
  }
  k->never = 0;
}

/* Whether row i's value of field f equals the key; see segment.h. */
int es__seg_rows_eq(const es_seg_rows *rows, int f, size_t i,
                    const es_seg_key *k) {
  if (!(rows->packed >> f & 1)) {
    const char *s = rows->str[f][i];
    return s && strcmp(s, k->s) == 0;
  }
  if (k->never)
    return 0;
  const es_seg_packed *v = &rows->pk[f];
  const uint8_t *p = seg_packed_row(v, i);
  return p && memcmp(p, k->p, v->row_bytes) == 0;
}

/* Keeps a parsed SHAPE block of n rows packed as field f of out: the
 * rank of each present row when the column has NULLs. */
static int seg_keep_packed(es_seg_rows *out, int f, size_t n) {
  es_seg_packed *v = &out->pk[f];
  if (v->bits) {
    ES_TRY(es__grow((void **)&v->rank, &v->rank_cap, n, sizeof(uint32_t)));
    uint32_t k = 0;
    for (size_t i = 0; i < n; i++) {
      v->rank[i] = k;
      k += v->bits[i / 8] >> (i % 8) & 1;
    }
  }
  out->packed |= 1u << f;
  return ES_OK;
}

/* Decodes string column i of n rows from raw into out[].  A SHAPE block
 * is expanded into scratch, which is then swapped with *raw: the values
 * point into *raw either way, and scratch keeps the old bytes. */
static int seg_decode_strings(es_buf *raw, es_buf *scratch, size_t n,
                              const char **out, const char ***dict_tmp,
                              size_t *dict_cap, es_seg_packed *v,
                              int keep_packed, int *packed_out) {
  es_rd r = es__rd(raw->data, raw->len);
  uint8_t enc = es__rd_u8(&r);
  *packed_out = 0;
  if (enc == SEG_ENC_SHAPE && !r.bad && keep_packed) {
    ES_TRY(seg_shape_parse(&r, n, v));
    *packed_out = 1;
    return ES_OK;
  }
  if (enc == SEG_ENC_SHAPE && !r.bad) {
    ES_TRY(seg_decode_shape(&r, n, out, scratch, v));
    es_buf t = *raw;
    *raw = *scratch;
    *scratch = t;
    return ES_OK;
  }
  if (enc == SEG_ENC_PLAIN) {
    for (size_t i = 0; i < n; i++)
      out[i] = seg_get_str(&r);
  } else if (enc == SEG_ENC_DICT) {
    uint64_t nd = es__rd_varint(&r);
    if (nd > n)
      return ES_CORRUPT_BKPT("dictionary larger than its block");
    ES_TRY(es__grow((void **)dict_tmp, dict_cap, nd + 1, sizeof(char *)));
    const char **d = *dict_tmp;
    for (uint64_t v = 0; v < nd; v++)
      if (!(d[v] = seg_get_str(&r)))
        r.bad = 1;
    for (size_t i = 0; i < n && !r.bad; i++) {
      uint64_t k = es__rd_varint(&r);
      if (k > nd) {
        r.bad = 1;
        break;
      }
      out[i] = k ? d[k - 1] : NULL;
    }
  } else {
    r.bad = 1;
  }
  if (r.bad || r.p != r.end)
    return ES_CORRUPT_BKPT("string column does not decode");
  return ES_OK;
}

/* Sizes the per-row arrays of out for n rows: ts, recv, ES_NSTR string
 * columns, one column of NULLs (what a column not decoded points at:
 * zeroed here, never written), type. */
static int seg_rows_arrays(es_seg_rows *out, size_t n) {
  if (out->arrays_cap < n || !out->arrays) {
    size_t per = 2 * sizeof(int64_t) + (ES_NSTR + 1) * sizeof(char *) + 1;
    void *a = es__realloc(out->arrays, (n ? n : 1) * per);
    if (!a)
      return ES_NOMEM_BKPT();
    out->arrays = a;
    out->arrays_cap = n ? n : 1;
    out->ts = NULL; /* the NULL column moved: zero it below */
  }
  size_t cap = out->arrays_cap;
  int64_t *ts = out->arrays;
  const char **strs = (const char **)(ts + 2 * cap);
  const char **nulls = strs + (size_t)ES_NSTR * cap;
  if (!out->ts)
    memset(nulls, 0, cap * sizeof(char *));
  out->ts = ts;
  out->recv = ts + cap;
  for (int i = 0; i < ES_NSTR; i++)
    out->str[i] = nulls;
  out->type = (uint8_t *)(nulls + cap);
  return ES_OK;
}

/* Where string column i's pointers go in out's arrays. */
static const char **seg_rows_col(es_seg_rows *out, int i) {
  return (const char **)(out->ts + 2 * out->arrays_cap) +
         (size_t)i * out->arrays_cap;
}

/* Decodes the fixed-width-ish columns (time, receive time, type). */
static int seg_decode_numeric(es_seg_rows *out, int64_t min_ts, int64_t max_ts,
                              size_t n) {
  es_rd r = es__rd(out->raw[ES_COL_TS].data, out->raw[ES_COL_TS].len);
  int64_t prev = min_ts;
  for (size_t i = 0; i < n; i++)
    out->ts[i] = prev =
        (int64_t)((uint64_t)prev + (uint64_t)es__rd_svarint(&r));
  /* the zone map must hold what the column holds (wrapping included) */
  for (size_t i = 0; i < n && !r.bad; i++)
    if (out->ts[i] < min_ts || out->ts[i] > max_ts ||
        (i > 0 && out->ts[i] < out->ts[i - 1]))
      r.bad = 1;
  if (r.bad || r.p != r.end)
    return ES_CORRUPT_BKPT("time column does not decode");
  r = es__rd(out->raw[ES_COL_RECV].data, out->raw[ES_COL_RECV].len);
  for (size_t i = 0; i < n; i++)
    out->recv[i] =
        (int64_t)((uint64_t)out->ts[i] + (uint64_t)es__rd_svarint(&r));
  if (r.bad || r.p != r.end)
    return ES_CORRUPT_BKPT("receive-time column does not decode");
  if (out->raw[ES_COL_TYPE].len != n)
    return ES_CORRUPT_BKPT("type column has %zu bytes for %zu rows",
                           out->raw[ES_COL_TYPE].len, n);
  memcpy(out->type, out->raw[ES_COL_TYPE].data, n);
  for (size_t i = 0; i < n; i++)
    if (out->type[i] < ES_TYPE_TRACK || out->type[i] > ES_TYPE_GROUP)
      return ES_CORRUPT_BKPT("type column holds %u", out->type[i]);
  return ES_OK;
}

/* Reads and decodes a whole row group; see segment.h. */
int es__segment_read_group(es_segment *seg, uint32_t g, es_seg_rows *out) {
  return es__segment_read_group_cols(seg, g, ES_FIELD_ALL, out);
}

/* Reads a row group, decoding only the string columns in `fields`. */
int es__segment_read_group_cols(es_segment *seg, uint32_t g, uint32_t fields,
                                es_seg_rows *out) {
  return es__segment_read_group_packed(seg, g, fields, 0, out);
}

/* The same, SHAPE columns in `packed` kept packed; see segment.h. */
int es__segment_read_group_packed(es_segment *seg, uint32_t g, uint32_t fields,
                                  uint32_t packed, es_seg_rows *out) {
  if (g >= seg->ngroups)
    return ES_INVAL_BKPT("row group %u of %u", g, seg->ngroups);
  const es_seg_group *gr = &seg->groups[g];
  size_t n = gr->rows;
  out->n = 0;
  out->packed = 0;
  ES_TRY(seg_rows_arrays(out, n));
  for (int c = 0; c < ES_COL_STR0; c++)
    ES_TRY(seg_read_block(seg, g, c, &out->cbuf, &out->raw[c]));
  int rc = seg_decode_numeric(out, gr->min_ts, gr->max_ts, n);
  if (rc == ES_ECORRUPT) {
    char why[256];
    snprintf(why, sizeof(why), "%s", es_errdetail());
    return ES_CORRUPT_BKPT("%s: row group %u: %s", seg->path, g, why);
  }
  ES_TRY(rc);
  out->n = n;
  rc = es__segment_read_group_add(seg, g, fields, packed, out);
  if (rc < 0)
    out->n = 0;
  return rc;
}

/* Decodes more string columns of the row group in out; see segment.h. */
int es__segment_read_group_add(es_segment *seg, uint32_t g, uint32_t fields,
                               uint32_t packed, es_seg_rows *out) {
  if (g >= seg->ngroups || out->n != seg->groups[g].rows)
    return ES_INVAL_BKPT("row group %u of %u is not the one read", g,
                         seg->ngroups);
  size_t n = out->n;
  if (packed && !out->pk &&
      !(out->pk = es__calloc(ES_NSTR, sizeof(es_seg_packed))))
    return ES_NOMEM_BKPT();
  for (int i = 0; i < ES_NSTR; i++)
    if (fields >> i & 1)
      ES_TRY(seg_read_block(seg, g, ES_COL_STR0 + i, &out->cbuf,
                            &out->raw[ES_COL_STR0 + i]));
  es_seg_packed tmp;
  const char **dict = NULL;
  size_t dict_cap = 0;
  int rc = ES_OK;
  for (int i = 0; rc == ES_OK && i < ES_NSTR; i++) {
    if (!(fields >> i & 1))
      continue; /* not asked for: left as it is (NULL if never read) */
    int keep = (int)(packed >> i & 1), kept = 0;
    out->packed &= ~(1u << i);
    rc = seg_decode_strings(&out->raw[ES_COL_STR0 + i], &out->cbuf, n,
                            seg_rows_col(out, i), &dict, &dict_cap,
                            keep ? &out->pk[i] : &tmp, keep, &kept);
    if (rc == ES_OK && kept)
      rc = seg_keep_packed(out, i, n);
    else if (rc == ES_OK)
      out->str[i] = seg_rows_col(out, i);
  }
  es__free(dict);
  if (rc == ES_ECORRUPT) {
    char why[256];
    snprintf(why, sizeof(why), "%s", es_errdetail());
    return ES_CORRUPT_BKPT("%s: row group %u: %s", seg->path, g, why);
  }
  return rc; /* ES_ENOMEM stays what it is */
}

/* Frees a decoded row group's buffers. */
void es__segment_rows_free(es_seg_rows *rows) {
  for (int c = 0; c < ES_SEG_NCOLS; c++)
    es__buf_free(&rows->raw[c]);
  es__buf_free(&rows->cbuf);
  es__free(rows->arrays);
  for (int f = 0; rows->pk && f < ES_NSTR; f++)
    es__free(rows->pk[f].rank);
  es__free(rows->pk);
  memset(rows, 0, sizeof(*rows));
}

/* Checks every checksum of one segment, reporting each problem, then
 * that every row group decodes. */
int es__segment_verify(es_vfs *vfs, const char *path,
                       void (*fn)(void *, const char *, uint64_t, const char *),
                       void *ud, uint64_t *rows_out) {
  es_segment *seg = NULL;
  int rc = es__segment_open(vfs, path, 0, &seg);
  if (rc < 0) {
    if (fn && rc == ES_ECORRUPT)
      fn(ud, path, 0, es_errdetail());
    return rc;
  }
  if (rows_out)
    *rows_out = seg->rows;
  es_buf cbuf = {0}, raw = {0};
  int bad = 0;
  for (uint32_t g = 0; g < seg->ngroups; g++) {
    for (int c = 0; c < ES_SEG_NCOLS; c++) {
      rc = seg_read_block(seg, g, c, &cbuf, &raw);
      if (rc == ES_ECORRUPT) {
        bad = 1;
        if (fn)
          fn(ud, path, seg->groups[g].cols[c].off, es_errdetail());
      } else if (rc < 0) {
        goto out;
      }
    }
  }
  /* blocks that pass their checksums must also decode (SHAPE and DICT
   * have rules a checksum cannot see: a writer's bug, not a bad disk) */
  es_seg_rows rows = {0};
  for (uint32_t g = 0; !bad && g < seg->ngroups; g++) {
    rc = es__segment_read_group(seg, g, &rows);
    if (rc == ES_ECORRUPT) {
      bad = 1;
      if (fn)
        fn(ud, path, seg->groups[g].cols[0].off, es_errdetail());
    } else if (rc < 0) {
      es__segment_rows_free(&rows);
      goto out;
    }
  }
  es__segment_rows_free(&rows);
  rc = bad ? ES_ECORRUPT : ES_OK;
out:
  es__buf_free(&cbuf);
  es__buf_free(&raw);
  es__segment_unref(seg);
  return rc;
}

/* Sorts keys by (ts, idx); see segment.h.  Nothing to do when the times
 * already ascend (rows mostly arrive in time order, and a merge's inputs
 * mostly follow each other), else a stable radix sort on ts - min by
 * bytes, skipping the high bytes every key shares (a memtable spans
 * minutes, a merge days, not years).  Stable from idx order, so the
 * order is the one qsort by (ts, idx) gave: segment files do not
 * change. */
void es__time_keys_sort(es_time_key *keys, es_time_key *tmp, size_t n) {
  int64_t min = n ? keys[0].ts : 0, max = min;
  int sorted = 1;
  for (size_t i = 1; i < n; i++) {
    sorted &= keys[i].ts >= keys[i - 1].ts;
    min = keys[i].ts < min ? keys[i].ts : min;
    max = keys[i].ts > max ? keys[i].ts : max;
  }
  if (sorted)
    return;
  uint64_t range = (uint64_t)max - (uint64_t)min;
  es_time_key *src = keys, *dst = tmp;
  for (int shift = 0; shift < 64 && range >> shift; shift += 8) {
    size_t count[257] = {0};
    for (size_t i = 0; i < n; i++)
      count[(((uint64_t)src[i].ts - (uint64_t)min) >> shift & 255) + 1]++;
    for (int b = 0; b < 256; b++)
      count[b + 1] += count[b];
    for (size_t i = 0; i < n; i++)
      dst[count[((uint64_t)src[i].ts - (uint64_t)min) >> shift & 255]++] =
          src[i];
    es_time_key *t = src;
    src = dst;
    dst = t;
  }
  if (src != keys)
    memcpy(keys, src, n * sizeof(*keys));
  for (size_t i = 1; i < n; i++) /* the total order, ties in idx order */
    assert(keys[i - 1].ts < keys[i].ts ||
           (keys[i - 1].ts == keys[i].ts && keys[i - 1].idx < keys[i].idx));
}
