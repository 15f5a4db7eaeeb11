/*
 * test_segment.c -- unit tests of lib/segment.{h,c}: build, write, open,
 * read back, zone maps, Bloom filter, column encodings and every check
 * that guards a segment file.
 *
 * What must hold (segment.h):
 *  1. A segment built from N sorted rows reads back, group by group, to
 *     exactly those rows (every field, NULL distinct from ""), in groups of
 *     ES_SEG_GROUP_ROWS; the zone maps hold each group's min and max time.
 *  2. The Bloom filter has no false negatives for message, anonymous and
 *     user ids, and few false positives (10 bits per key, k = 7: ~1%).
 *  3. Low-cardinality string columns are DICT-encoded, high-cardinality
 *     ones PLAIN, and both decode; a column whose values have one shape
 *     (one length, each position a constant byte or hex digits of one
 *     case: uuids) is SHAPE-encoded when that is smaller, and every
 *     string comes back byte for byte whichever encoding was chosen.
 *  4. A damaged block is ES_ECORRUPT naming its offset, both when read and
 *     when verified, and does not affect other groups; a damaged header,
 *     trailer or footer, or a truncated file, fails the open with
 *     ES_ECORRUPT (ES_EVERSION for a newer format version).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/segment.h"
#include "unit.h"

#define TS_BASE INT64_C(1700000000000000)
#define SEG_ENC_PLAIN 0 /* segment.c's string column encodings */
#define SEG_ENC_DICT 1
#define SEG_ENC_SHAPE 2

/* ---- input rows ---------------------------------------------------------- */

/* N encoded rows as a memtable would hold them, and decoded views of them
 * (strings pointing into enc) to compare against. */
typedef struct seg_input {
  size_t n;
  es_buf enc;
  es_mrow *mrows;
  const es_mrow **ptrs;
  es_event *evs;
} seg_input;

/* Event times: three rows per time, so equal times straddle groups. */
static int64_t input_ts(size_t i) { return TS_BASE + (int64_t)(i / 3) * 1000; }

/* Points in's rows at in->enc, where row i starts at offs[i], and
 * decodes in->evs from them. */
static void input_point(seg_input *in, const size_t *offs) {
  for (size_t i = 0; i < in->n; i++) {
    in->mrows[i].ts_us = input_ts(i);
    in->mrows[i].row = in->enc.data + offs[i];
    in->ptrs[i] = &in->mrows[i];
    size_t used;
    ck_assert_int_eq(es__event_decode(in->mrows[i].row, in->enc.len - offs[i],
                                      &in->evs[i], &used),
                     ES_OK);
  }
}

static void input_make(seg_input *in, size_t n) {
  memset(in, 0, sizeof(*in));
  in->n = n;
  size_t *offs = malloc(n * sizeof(size_t));
  for (size_t i = 0; i < n; i++) {
    es_event ev;
    ut_text tx;
    ut_event(&ev, &tx, "seg", (int)i, input_ts(i));
    offs[i] = in->enc.len;
    ck_assert_int_eq(es__event_encode(&in->enc, &ev, TS_BASE, 0), ES_OK);
  }
  in->mrows = malloc(n * sizeof(es_mrow));
  in->ptrs = malloc(n * sizeof(es_mrow *));
  in->evs = malloc(n * sizeof(es_event));
  input_point(in, offs);
  free(offs);
}

/* Encodes in->evs as a test changed them (their strings may point into
 * the old in->enc) into a new in->enc, and points the rows at it. */
static void input_reencode(seg_input *in) {
  es_buf enc = {0};
  size_t *offs = malloc(in->n * sizeof(size_t));
  for (size_t i = 0; i < in->n; i++) {
    offs[i] = enc.len;
    ck_assert_int_eq(es__event_encode(&enc, &in->evs[i], TS_BASE, 0), ES_OK);
  }
  es__buf_free(&in->enc);
  in->enc = enc;
  input_point(in, offs);
  free(offs);
}

static void input_free(seg_input *in) {
  es__buf_free(&in->enc);
  free(in->mrows);
  free(in->ptrs);
  free(in->evs);
}

/* Builds the segment of in, writes it atomically as dir/name, opens it. */
static es_segment *seg_write_open(const seg_input *in, const char *dir,
                                  const char *name, char *path, size_t cap) {
  es_buf img = {0};
  ck_assert_int_eq(es__segment_build(&img, in->ptrs, in->n), ES_OK);
  ck_assert_int_eq(
      es__io_write_atomic(es__vfs_posix(), dir, name, img.data, img.len),
      ES_OK);
  ck_assert_int_eq(es__path_join(path, cap, dir, name), ES_OK);
  ck_assert_uint_eq(ut_file_size(path), img.len);
  es__buf_free(&img);
  es_segment *seg = NULL;
  ck_assert_int_eq(es__segment_open(es__vfs_posix(), path, 42, &seg), ES_OK);
  ck_assert_ptr_nonnull(seg);
  return seg;
}

/* The event in row r of a decoded group. */
static void group_event(const es_seg_rows *rows, size_t r, es_event *ev) {
  memset(ev, 0, sizeof(*ev));
  ev->ts_us = rows->ts[r];
  ev->recv_us = rows->recv[r];
  ev->type = rows->type[r];
  for (int f = 0; f < ES_NSTR; f++)
    *es__ev_str(ev, f) = rows->str[f][r];
}

/* ---- round trips -------------------------------------------------------- */

static const size_t sizes[] = {1, 8191, 8192, 8193, 20000};

START_TEST(test_build_read_round_trip) {
  size_t n = sizes[_i];
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "seg-rt");
  seg_input in;
  input_make(&in, n);
  es_segment *seg =
      seg_write_open(&in, dir, "0000000000000001.seg", path, sizeof(path));
  uint32_t groups = (uint32_t)((n + ES_SEG_GROUP_ROWS - 1) / ES_SEG_GROUP_ROWS);
  ck_assert_uint_eq(seg->id, 42);
  ck_assert_uint_eq(seg->rows, n);
  ck_assert_uint_eq(seg->ngroups, groups);
  ck_assert_int_eq(seg->min_ts, input_ts(0));
  ck_assert_int_eq(seg->max_ts, input_ts(n - 1));
  ck_assert_uint_eq(seg->bytes, ut_file_size(path));

  es_seg_rows rows = {0};
  size_t k = 0;
  for (uint32_t g = 0; g < groups; g++) {
    size_t want = n - k < ES_SEG_GROUP_ROWS ? n - k : ES_SEG_GROUP_ROWS;
    /* zone map: first and last time of the group */
    ck_assert_uint_eq(seg->groups[g].rows, want);
    ck_assert_int_eq(seg->groups[g].min_ts, input_ts(k));
    ck_assert_int_eq(seg->groups[g].max_ts, input_ts(k + want - 1));
    ck_assert_int_eq(es__segment_read_group(seg, g, &rows), ES_OK);
    ck_assert_uint_eq(rows.n, want);
    for (size_t r = 0; r < want; r++, k++) {
      es_event got;
      group_event(&rows, r, &got);
      char what[64];
      snprintf(what, sizeof(what), "n=%zu group %u row %zu", n, g, r);
      ut_event_eq(&got, &in.evs[k], what);
    }
  }
  ck_assert_uint_eq(k, n);
  /* reading a group again reuses the buffers and gives the same rows */
  ck_assert_int_eq(es__segment_read_group(seg, 0, &rows), ES_OK);
  es_event again;
  group_event(&rows, 0, &again);
  ut_event_eq(&again, &in.evs[0], "reread");
  /* a group past the end is an argument error */
  ck_assert_int_eq(es__segment_read_group(seg, groups, &rows), ES_EINVAL);
  es__segment_rows_free(&rows);
  es__segment_unref(seg);
  input_free(&in);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_build_empty) {
  es_buf img = {0};
  ck_assert_int_eq(es__segment_build(&img, NULL, 0), ES_EINVAL);
  ck_assert_uint_eq(img.len, 0);
  es__buf_free(&img);
}
END_TEST

START_TEST(test_refs) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "seg-ref");
  seg_input in;
  input_make(&in, 10);
  es_segment *seg = seg_write_open(&in, dir, "a.seg", path, sizeof(path));
  es__segment_ref(seg);
  ck_assert_int_eq(atomic_load(&seg->refs), 2);
  es__segment_unref(seg);
  es_seg_rows rows = {0};
  ck_assert_int_eq(es__segment_read_group(seg, 0, &rows), ES_OK);
  es__segment_rows_free(&rows);
  es__segment_unref(seg);
  es__segment_unref(NULL);
  input_free(&in);
  ut_rmrf(dir);
}
END_TEST

/* ---- encodings ---------------------------------------------------------- */

START_TEST(test_dict_and_plain) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "seg-enc");
  seg_input in;
  input_make(&in, 1000);
  es_segment *seg = seg_write_open(&in, dir, "a.seg", path, sizeof(path));
  es_seg_rows rows = {0};
  ck_assert_int_eq(es__segment_read_group(seg, 0, &rows), ES_OK);
  /* ut_event: event has 5 values, user_id 50 (and NULLs), path 13;
   * message_id and url are unique per row */
  static const struct {
    int field, enc;
  } want[] = {
      {ES_STR_event, SEG_ENC_DICT},       {ES_STR_user_id, SEG_ENC_DICT},
      {ES_STR_path, SEG_ENC_DICT},        {ES_STR_previous_id, SEG_ENC_DICT},
      {ES_STR_message_id, SEG_ENC_PLAIN}, {ES_STR_url, SEG_ENC_PLAIN},
      {ES_STR_properties, SEG_ENC_PLAIN},
  };
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    const es_buf *raw = &rows.raw[ES_COL_STR0 + want[i].field];
    ck_assert_uint_gt(raw->len, 0);
    ck_assert_msg(raw->data[0] == want[i].enc, "%s: encoding %u, want %d",
                  es__str_name[want[i].field], raw->data[0], want[i].enc);
  }
  /* the values of both kinds decode (NULLs and "" inside DICT too) */
  for (size_t r = 0; r < rows.n; r++) {
    es_event got;
    group_event(&rows, r, &got);
    ut_event_eq(&got, &in.evs[r], "encodings");
  }
  es__segment_rows_free(&rows);
  es__segment_unref(seg);
  input_free(&in);
  ut_rmrf(dir);
}
END_TEST

/* The encoding byte of block (g, c), read from the file (a decoded
 * group's raw buffer holds expanded SHAPE values instead). */
static int block_encoding(es_segment *seg, uint32_t g, int c) {
  const es_seg_block *b = &seg->groups[g].cols[c];
  uint8_t *comp = malloc(b->clen), *raw = malloc(b->rlen + 1);
  ck_assert_int_eq(
      es__io_read_exact(seg->vfs, seg->file, comp, b->clen, b->off, "t"),
      ES_OK);
  ck_assert_int_ge(es__lz4_decompress(comp, b->clen, raw, b->rlen), 0);
  int enc = raw[0];
  free(comp);
  free(raw);
  return enc;
}

/* A random hex digit of the case asked for. */
static char hex_digit(unsigned *seed, int upper) {
  return (upper ? "0123456789ABCDEF" : "0123456789abcdef")[rand_r(seed) % 16];
}

/* Fills out (cap >= 37) with a random version-4 uuid. */
static void uuid_str(char *out, unsigned *seed, int upper) {
  for (int i = 0; i < 36; i++)
    out[i] = i == 8 || i == 13 || i == 18 || i == 23 ? '-'
             : i == 14                               ? '4'
                                                     : hex_digit(seed, upper);
  out[36] = '\0';
}

/* One column's values (NULL allowed) and the encoding it must get. */
typedef struct shape_case {
  const char *name;
  int want;
  void (*make)(char *out, size_t cap, size_t row, unsigned *seed);
  int nulls; /* every nulls-th row is NULL (0: none) */
} shape_case;

static void mk_uuid(char *o, size_t cap, size_t r, unsigned *s) {
  (void)cap, (void)r;
  uuid_str(o, s, 0);
}
static void mk_uuid_upper(char *o, size_t cap, size_t r, unsigned *s) {
  (void)cap, (void)r;
  uuid_str(o, s, 1);
}
/* Upper case in some rows, lower in others at the same places: no
 * shape (a position must hold one case). */
static void mk_case_by_row(char *o, size_t cap, size_t r, unsigned *s) {
  (void)cap;
  uuid_str(o, s, (int)(r % 2));
  o[0] = r % 2 ? 'A' : 'a'; /* letters, so the cases really differ */
}
/* Mixed case within a value, fixed by position; odd hex runs (3, 5). */
static void mk_mixed_odd(char *o, size_t cap, size_t r, unsigned *s) {
  (void)r;
  snprintf(o, cap, "x%c%c%c-%c%c%c%c%c.z", hex_digit(s, 1), hex_digit(s, 1),
           hex_digit(s, 0), hex_digit(s, 0), hex_digit(s, 1), hex_digit(s, 0),
           hex_digit(s, 0), hex_digit(s, 1));
}
/* Non-ASCII constants around hex digits. */
static void mk_utf8(char *o, size_t cap, size_t r, unsigned *s) {
  (void)r;
  snprintf(o, cap, "\xc3\xa9t\xc3\xa9-%c%c%c%c\xf0\x9f\x9a\x80",
           hex_digit(s, 0), hex_digit(s, 0), hex_digit(s, 0), hex_digit(s, 0));
}
/* Non-ASCII bytes that vary: no shape. */
static void mk_utf8_varying(char *o, size_t cap, size_t r, unsigned *s) {
  snprintf(o, cap, "%s-%c%c%c%c", r % 3 ? "\xc3\xa9" : "\xc3\xa8",
           hex_digit(s, 0), hex_digit(s, 0), hex_digit(s, 0), hex_digit(s, 0));
}
/* Segment analytics.js style: a prefix, a timestamp and hex. */
static void mk_ajs(char *o, size_t cap, size_t r, unsigned *s) {
  char u[37];
  uuid_str(u, s, 0);
  snprintf(o, cap, "ajs-next-%013zu-%s", (size_t)1701234567890 + r * 7919, u);
}
/* 255 hex digits (the longest shape), then 256 (too long: PLAIN). */
static void mk_long255(char *o, size_t cap, size_t r, unsigned *s) {
  (void)cap, (void)r;
  for (int i = 0; i < 255; i++)
    o[i] = hex_digit(s, 0);
  o[255] = '\0';
}
static void mk_long256(char *o, size_t cap, size_t r, unsigned *s) {
  (void)cap, (void)r;
  for (int i = 0; i < 256; i++)
    o[i] = hex_digit(s, 0);
  o[256] = '\0';
}
/* Lengths that differ: no shape. */
static void mk_lengths(char *o, size_t cap, size_t r, unsigned *s) {
  char u[37];
  uuid_str(u, s, 0);
  snprintf(o, cap, "%.*s", (int)(30 + r % 7), u);
}
/* Five hex digits and nothing else: an odd count, no constant. */
static void mk_five_nibbles(char *o, size_t cap, size_t r, unsigned *s) {
  (void)cap, (void)r;
  for (int i = 0; i < 5; i++)
    o[i] = hex_digit(s, 0);
  o[5] = '\0';
}

static const shape_case shape_cases[] = {
    {"uuid", SEG_ENC_SHAPE, mk_uuid, 0},
    {"uuid upper, NULLs", SEG_ENC_SHAPE, mk_uuid_upper, 3},
    {"case by row", SEG_ENC_PLAIN, mk_case_by_row, 0},
    {"mixed case, odd runs, NULLs", SEG_ENC_SHAPE, mk_mixed_odd, 8},
    {"utf-8 constants", SEG_ENC_SHAPE, mk_utf8, 0},
    {"utf-8 varying", SEG_ENC_PLAIN, mk_utf8_varying, 0},
    {"ajs-next", SEG_ENC_SHAPE, mk_ajs, 5},
    {"255 hex", SEG_ENC_SHAPE, mk_long255, 0},
    {"256 hex", SEG_ENC_PLAIN, mk_long256, 0},
    {"lengths", SEG_ENC_PLAIN, mk_lengths, 0},
    {"five nibbles", SEG_ENC_SHAPE, mk_five_nibbles, 0},
};
static const size_t shape_rows[] = {1, 7, 200, 2000};

/* Row group g read with every column packed (es__segment_read_group_packed
 * of the id columns, then es__segment_read_group_add of the others) gives, per
 * row and field, the very bytes of the full decode in rows (NULL where it has
 * NULL); es__seg_rows_eq finds each row's value, a value one digit off is never
 * equal, and another row's value is equal exactly when the strings are. */
static void packed_matches_eager(es_segment *seg, uint32_t g,
                                 const es_seg_rows *rows, es_seg_rows *packed,
                                 const char *what) {
  /* as es_timeline_open reads: the id columns, then the others added */
  uint32_t ids = ES_FIELD_ANONYMOUS_ID | ES_FIELD_USER_ID;
  ck_assert_int_eq(
      es__segment_read_group_packed(seg, g, ids, ES_FIELD_ALL, packed), ES_OK);
  for (size_t r = 0; r < packed->n; r++)
    ck_assert_ptr_null(packed->str[ES_STR_message_id][r]); /* not read */
  ck_assert_int_eq(es__segment_read_group_add(seg, g, ES_FIELD_ALL & ~ids,
                                              ES_FIELD_ALL, packed),
                   ES_OK);
  ck_assert_uint_eq(packed->n, rows->n);
  for (size_t r = 0; r < rows->n; r++) {
    for (int f = 0; f < ES_NSTR; f++) {
      char buf[ES_SEG_SHAPE_LEN_MAX + 1];
      const char *want = rows->str[f][r];
      const char *got = es__seg_rows_get(packed, f, r, buf);
      ck_assert_msg((want == NULL) == (got == NULL), "%s: row %zu field %d",
                    what, r, f);
      if (!want)
        continue;
      ck_assert_msg(strcmp(want, got) == 0, "%s: row %zu field %d: %s != %s",
                    what, r, f, got, want);
      es_seg_key k;
      es__seg_rows_key(packed, f, want, &k);
      ck_assert_msg(es__seg_rows_eq(packed, f, r, &k), "%s: row %zu field %d",
                    what, r, f);
      const char *other = rows->str[f][(r * 7 + 3) % rows->n];
      if (other) {
        es__seg_rows_key(packed, f, other, &k);
        ck_assert_int_eq(es__seg_rows_eq(packed, f, r, &k),
                         strcmp(other, want) == 0);
      }
      /* the last hex digit changed (in its case), or a byte appended */
      char near[ES_SEG_SHAPE_LEN_MAX + 2];
      size_t len = strlen(want);
      if (len > ES_SEG_SHAPE_LEN_MAX)
        continue;
      memcpy(near, want, len + 1);
      size_t i = len;
      while (i-- > 0) {
        char c = near[i];
        if ((c >= '0' && c <= '8') || (c >= 'a' && c <= 'e') ||
            (c >= 'A' && c <= 'E')) {
          near[i] = (char)(c + 1);
          break;
        }
      }
      if (i == SIZE_MAX) { /* no such digit */
        near[len] = 'x';
        near[len + 1] = '\0';
      }
      es__seg_rows_key(packed, f, near, &k);
      ck_assert_msg(!es__seg_rows_eq(packed, f, r, &k), "%s: row %zu: %s", what,
                    r, near);
    }
  }
}

/* Every shape case, at several row counts (one row: SHAPE is never
 * smaller than PLAIN for a single short value, so only checked to
 * round-trip), puts its values in message_id: each decodes byte for byte
 * with NULL told from "", in the encoding the case names. */
START_TEST(test_shape) {
  const shape_case *sc = &shape_cases[_i % 11];
  size_t n = shape_rows[_i / 11];
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "seg-shape");
  seg_input in;
  input_make(&in, n);
  /* the rows again with message_id replaced (input_make's other
   * columns are kept: ut_event's texts live in in.enc) */
  char(*ids)[300] = malloc(n * sizeof(*ids));
  unsigned seed = (unsigned)_i;
  for (size_t r = 0; r < n; r++) {
    sc->make(ids[r], sizeof(ids[r]), r, &seed);
    in.evs[r].message_id = sc->nulls && r % sc->nulls == 1 ? NULL : ids[r];
  }
  input_reencode(&in);
  es_segment *seg = seg_write_open(&in, dir, "s.seg", path, sizeof(path));
  es_seg_rows rows = {0}, packed = {0};
  size_t r0 = 0;
  for (uint32_t g = 0; g < seg->ngroups; g++) {
    if (n > 1)
      ck_assert_msg(
          block_encoding(seg, g, ES_COL_STR0 + ES_STR_message_id) == sc->want,
          "%s, %zu rows, group %u: encoding %d, want %d", sc->name, n, g,
          block_encoding(seg, g, ES_COL_STR0 + ES_STR_message_id), sc->want);
    ck_assert_int_eq(es__segment_read_group(seg, g, &rows), ES_OK);
    for (size_t r = 0; r < rows.n; r++) {
      es_event got;
      group_event(&rows, r, &got);
      ut_event_eq(&got, &in.evs[r0 + r], sc->name);
    }
    packed_matches_eager(seg, g, &rows, &packed, sc->name);
    if (n > 1)
      ck_assert_int_eq(packed.packed >> ES_STR_message_id & 1,
                       sc->want == SEG_ENC_SHAPE);
    r0 += rows.n;
  }
  ck_assert_uint_eq(r0, n);
  es__segment_rows_free(&packed);
  ck_assert_int_eq(es__segment_verify(es__vfs_posix(), path, NULL, NULL, NULL),
                   ES_OK);
  es__segment_rows_free(&rows);
  es__segment_unref(seg);
  free(ids);
  input_free(&in);
  ut_rmrf(dir);
}
END_TEST

static void count_problem(void *ud, const char *path, uint64_t off,
                          const char *what) {
  (void)path, (void)off, (void)what;
  ++*(int *)ud;
}

/* A SHAPE block whose last padding nibble is set, checksums fixed: its
 * checksum passes, so only decoding sees it; read_group and verify both
 * call it ES_ECORRUPT, and so does a read that keeps it packed.  (LZ4 ends a
 * block with literals, so the last compressed byte is the last raw byte: the
 * last row's padding.) */
START_TEST(test_shape_damage_verified) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "seg-shape-bad");
  seg_input in;
  input_make(&in, 200);
  char(*ids)[8] = malloc(in.n * sizeof(*ids));
  unsigned seed = 7;
  for (size_t r = 0; r < in.n; r++) {
    ids[r][0] = 'x';
    for (int i = 1; i < 6; i++) /* 5 digits: an odd count, one padding */
      ids[r][i] = hex_digit(&seed, 0);
    ids[r][6] = '\0';
    in.evs[r].message_id = ids[r];
  }
  input_reencode(&in);
  es_segment *seg = seg_write_open(&in, dir, "s.seg", path, sizeof(path));
  int col = ES_COL_STR0 + ES_STR_message_id;
  ck_assert_int_eq(block_encoding(seg, 0, col), SEG_ENC_SHAPE);
  es_seg_block b = seg->groups[0].cols[col];
  es__segment_unref(seg);
  ck_assert_int_eq(es__segment_verify(es__vfs_posix(), path, NULL, NULL, NULL),
                   ES_OK);
  size_t len;
  uint8_t *img = ut_read_file(path, &len);
  ck_assert_int_eq(img[b.off + b.clen - 1] & 15, 0);
  img[b.off + b.clen - 1] |= 1;
  /* the block's checksum in the footer, then the footer's */
  uint64_t foff = es__get_le64(img + len - 32);
  uint32_t flen = es__get_le32(img + len - 24);
  size_t at = foff + 40 + 24 + (size_t)col * 24 + 16;
  ck_assert_uint_eq(es__get_le64(img + at), b.checksum);
  es__le64(img + at, es__hash64(img + b.off, b.clen, 0));
  es__le64(img + len - 16, es__hash64(img + foff, flen, 0));
  FILE *f = fopen(path, "wb");
  ck_assert_uint_eq(fwrite(img, 1, len, f), len);
  fclose(f);
  ck_assert_int_eq(es__segment_open(es__vfs_posix(), path, 42, &seg), ES_OK);
  es_seg_rows rows = {0};
  ck_assert_int_eq(es__segment_read_group(seg, 0, &rows), ES_ECORRUPT);
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "padding"));
  es__error_clear();
  /* kept packed, the block is checked as strictly */
  ck_assert_int_eq(
      es__segment_read_group_packed(seg, 0, ES_FIELD_ALL, ES_FIELD_ALL, &rows),
      ES_ECORRUPT);
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "padding"));
  es__error_clear();
  es__segment_rows_free(&rows);
  es__segment_unref(seg);
  int problems = 0;
  ck_assert_int_eq(
      es__segment_verify(es__vfs_posix(), path, count_problem, &problems, NULL),
      ES_ECORRUPT);
  ck_assert_int_eq(problems, 1);
  free(img);
  free(ids);
  input_free(&in);
  ut_rmrf(dir);
}
END_TEST

/* ---- the Bloom filter --------------------------------------------------- */

START_TEST(test_bloom) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "seg-bloom");
  seg_input in;
  input_make(&in, 20000);
  es_segment *seg = seg_write_open(&in, dir, "a.seg", path, sizeof(path));
  for (size_t i = 0; i < in.n; i++) {
    const es_event *ev = &in.evs[i];
    ck_assert_msg(es__segment_may_contain(seg, ev->message_id),
                  "message id %s missing", ev->message_id);
    ck_assert_int_eq(es__segment_may_contain(seg, ev->anonymous_id), 1);
    if (ev->user_id)
      ck_assert_int_eq(es__segment_may_contain(seg, ev->user_id), 1);
  }
  int fp = 0;
  for (int i = 0; i < 10000; i++) {
    char key[48];
    snprintf(key, sizeof(key), "absent-%d", i);
    fp += es__segment_may_contain(seg, key);
  }
  ck_assert_msg(fp < 300, "false positive rate %d/10000 >= 3%%", fp);
  /* the batched probe answers what one probe at a time answers: present
   * ids, absent ones (and their false positives), any count of keys */
  enum { NH = 2 * 1000 + 3 };
  uint64_t h[NH];
  uint8_t many[NH];
  int present = 0, maybe = 0;
  for (int i = 0; i < NH; i++) {
    char key[48];
    if (i % 2)
      snprintf(key, sizeof(key), "%s", in.evs[(size_t)i * 7 % in.n].message_id);
    else
      snprintf(key, sizeof(key), "absent-%d", i);
    h[i] = es__segment_key_hash(key, strlen(key));
  }
  /* 0..20 keys, then NH - 1 and NH */
  for (size_t n = 0; n <= NH; n = n == 20 ? NH - 1 : n + 1) {
    memset(many, 0xee, sizeof(many));
    es__segment_may_contain_many(seg, h, n, many);
    for (size_t i = 0; i < n; i++)
      ck_assert_int_eq(many[i], es__segment_may_contain_hash(seg, h[i]));
    ck_assert_int_eq(n < NH ? many[n] : 0xee, 0xee); /* nothing beyond n */
  }
  for (int i = 0; i < NH; i++) {
    present += i % 2 && many[i];
    maybe += many[i];
  }
  ck_assert_int_eq(present, NH / 2); /* every stored id */
  ck_assert_int_lt(maybe, NH / 2 + 100);
  es__segment_unref(seg);
  input_free(&in);

  /* a one-row segment knows its ids and not much else */
  input_make(&in, 1);
  seg = seg_write_open(&in, dir, "b.seg", path, sizeof(path));
  ck_assert_int_eq(es__segment_may_contain(seg, in.evs[0].message_id), 1);
  ck_assert_int_eq(es__segment_may_contain(seg, in.evs[0].anonymous_id), 1);
  fp = 0;
  for (int i = 0; i < 1000; i++) {
    char key[48];
    snprintf(key, sizeof(key), "nobody-%d", i);
    fp += es__segment_may_contain(seg, key);
  }
  ck_assert_int_lt(fp, 100);
  es__segment_unref(seg);
  input_free(&in);
  ut_rmrf(dir);
}
END_TEST

/* ---- damage ---------------------------------------------------------------
 */

typedef struct problems {
  int n;
  uint64_t off[8];
  char what[8][256];
} problems;

static void problem_cb(void *ud, const char *path, uint64_t off,
                       const char *what) {
  (void)path;
  problems *p = ud;
  if (p->n < 8) {
    p->off[p->n] = off;
    snprintf(p->what[p->n], sizeof(p->what[0]), "%s", what);
  }
  p->n++;
}

START_TEST(test_corrupt_block) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "seg-block");
  seg_input in;
  input_make(&in, 20000);
  es_segment *seg = seg_write_open(&in, dir, "a.seg", path, sizeof(path));
  ck_assert_uint_eq(seg->ngroups, 3);
  const int col = ES_COL_STR0 + ES_STR_url;
  es_seg_block blk = seg->groups[1].cols[col];
  es__segment_unref(seg);
  ut_flip_byte(path, blk.off + blk.clen / 2, 0x40);

  /* the footer is intact: the open succeeds */
  ck_assert_int_eq(es__segment_open(es__vfs_posix(), path, 1, &seg), ES_OK);
  es_seg_rows rows = {0};
  ck_assert_int_eq(es__segment_read_group(seg, 0, &rows), ES_OK);
  es__error_clear();
  ck_assert_int_eq(es__segment_read_group(seg, 1, &rows), ES_ECORRUPT);
  char want[64];
  snprintf(want, sizeof(want), "offset %" PRIu64, blk.off);
  ck_assert_msg(strstr(es_errdetail(), want) != NULL,
                "detail \"%s\" does not name %s", es_errdetail(), want);
  /* the damage stays in its group */
  ck_assert_int_eq(es__segment_read_group(seg, 2, &rows), ES_OK);
  ck_assert_uint_eq(rows.n, 20000 - 2 * ES_SEG_GROUP_ROWS);
  es__segment_rows_free(&rows);
  es__segment_unref(seg);

  problems p = {0};
  uint64_t nrows = 0;
  ck_assert_int_eq(
      es__segment_verify(es__vfs_posix(), path, problem_cb, &p, &nrows),
      ES_ECORRUPT);
  ck_assert_int_eq(p.n, 1);
  ck_assert_uint_eq(p.off[0], blk.off);
  ck_assert_uint_eq(nrows, 20000);
  /* repaired, it verifies clean */
  ut_flip_byte(path, blk.off + blk.clen / 2, 0x40);
  memset(&p, 0, sizeof(p));
  ck_assert_int_eq(
      es__segment_verify(es__vfs_posix(), path, problem_cb, &p, NULL), ES_OK);
  ck_assert_int_eq(p.n, 0);
  input_free(&in);
  ut_rmrf(dir);
}
END_TEST

/* Copies the good image to path, applies one kind of damage, and expects
 * es__segment_open to fail with `want`. */
static void expect_open_fails(const uint8_t *img, size_t len, const char *path,
                              int want, const char *what,
                              void (*damage)(const char *path, size_t len)) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(img, 1, len, f), len);
  fclose(f);
  damage(path, len);
  es_segment *seg = (es_segment *)1;
  int rc = es__segment_open(es__vfs_posix(), path, 1, &seg);
  ck_assert_msg(rc == want, "%s: open gave %d (%s), want %d", what, rc,
                es_errdetail(), want);
  ck_assert_ptr_null(seg);
  problems p = {0};
  ck_assert_int_eq(
      es__segment_verify(es__vfs_posix(), path, problem_cb, &p, NULL), want);
  if (want == ES_ECORRUPT)
    ck_assert_int_eq(p.n, 1); /* reported once, at the file level */
}

static void cut_last_byte(const char *path, size_t len) {
  ut_truncate(path, len - 1);
}
static void cut_half(const char *path, size_t len) {
  ut_truncate(path, len / 2);
}
static void cut_tiny(const char *path, size_t len) {
  (void)len;
  ut_truncate(path, 20);
}
static void bad_magic(const char *path, size_t len) {
  (void)len;
  ut_flip_byte(path, 0, 0x01);
}
static void bad_end_magic(const char *path, size_t len) {
  ut_flip_byte(path, len - 1, 0x01);
}
/* The footer begins where the trailer's first field says. */
static uint64_t footer_off(const char *path, size_t len) {
  size_t n;
  uint8_t *buf = ut_read_file(path, &n);
  uint64_t off = es__get_le64(buf + len - ES_SEG_TRAILER_BYTES);
  free(buf);
  return off;
}
static void bad_footer_byte(const char *path, size_t len) {
  ut_flip_byte(path, footer_off(path, len) + 3, 0x08);
}
static void bad_footer_bloom(const char *path, size_t len) {
  ut_flip_byte(path, len - ES_SEG_TRAILER_BYTES - 1, 0x80);
}
static void bad_footer_sum(const char *path, size_t len) {
  ut_flip_byte(path, len - ES_SEG_TRAILER_BYTES + 16, 0x01);
}
static void bad_trailer_off(const char *path, size_t len) {
  ut_flip_byte(path, len - ES_SEG_TRAILER_BYTES, 0x01);
}
static void newer_version(const char *path, size_t len) {
  (void)len;
  uint8_t v[4];
  es__le32(v, ES_FORMAT_VERSION + 1);
  ut_write_at(path, 8, v, 4);
}

START_TEST(test_corrupt_open) {
  char dir[512], path[1024], bad[1100];
  ut_tmpdir(dir, sizeof(dir), "seg-open");
  seg_input in;
  input_make(&in, 9000); /* two groups */
  es_segment *seg = seg_write_open(&in, dir, "a.seg", path, sizeof(path));
  es__segment_unref(seg);
  size_t len;
  uint8_t *img = ut_read_file(path, &len);
  snprintf(bad, sizeof(bad), "%s/bad.seg", dir);
  expect_open_fails(img, len, bad, ES_ECORRUPT, "last byte cut", cut_last_byte);
  expect_open_fails(img, len, bad, ES_ECORRUPT, "half cut", cut_half);
  expect_open_fails(img, len, bad, ES_ECORRUPT, "20 bytes left", cut_tiny);
  expect_open_fails(img, len, bad, ES_ECORRUPT, "header magic", bad_magic);
  expect_open_fails(img, len, bad, ES_ECORRUPT, "trailer magic", bad_end_magic);
  expect_open_fails(img, len, bad, ES_ECORRUPT, "footer byte", bad_footer_byte);
  expect_open_fails(img, len, bad, ES_ECORRUPT, "bloom byte", bad_footer_bloom);
  expect_open_fails(img, len, bad, ES_ECORRUPT, "footer checksum",
                    bad_footer_sum);
  expect_open_fails(img, len, bad, ES_ECORRUPT, "footer offset",
                    bad_trailer_off);
  expect_open_fails(img, len, bad, ES_EVERSION, "newer version", newer_version);
  /* a missing file is not corruption */
  snprintf(bad, sizeof(bad), "%s/missing.seg", dir);
  ck_assert_int_eq(es__segment_open(es__vfs_posix(), bad, 1, &seg),
                   ES_ENOTFOUND);
  free(img);
  input_free(&in);
  ut_rmrf(dir);
}
END_TEST

static Suite *segment_suite(void) {
  Suite *s = suite_create("segment");
  TCase *tc = tcase_create("segment");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_build_read_round_trip, 0,
                      sizeof(sizes) / sizeof(sizes[0]));
  tcase_add_test(tc, test_build_empty);
  tcase_add_test(tc, test_refs);
  tcase_add_test(tc, test_dict_and_plain);
  tcase_add_loop_test(tc, test_shape, 0, 11 * 4);
  tcase_add_test(tc, test_shape_damage_verified);
  tcase_add_test(tc, test_bloom);
  tcase_add_test(tc, test_corrupt_block);
  tcase_add_test(tc, test_corrupt_open);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(segment_suite()); }
