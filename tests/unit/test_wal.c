/*
 * test_wal.c -- unit tests of lib/wal.{h,c} on the real POSIX vfs.
 *
 * What must hold (wal.h):
 *  1. A record carries tenant, event count and rows; LZ4 is used only when
 *     asked and worth it, and reads back to the same rows.
 *  2. Frames written and synced read back in order, each with its LSN.
 *  3. A frame that does not fit starts a new file named by its LSN;
 *     es__wal_list returns first-LSNs in numeric order.
 *  4. An invalid frame with nothing valid after it is a torn tail: ES_OK
 *     (torn = 1, end_off at the frame) in the newest file, ES_ECORRUPT in
 *     any other.  An invalid frame followed by a valid one is always
 *     ES_ECORRUPT, naming the offset.
 *  5. es__wal_reclaim deletes exactly the files all of whose LSNs are below
 *     keep_lsn, and never the current file.
 *
 * Every test works in its own directory under the build directory.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/event.h"
#include "base/mem.h"
#include "store/wal.h"
#include "unit.h"

#define NOW_US INT64_C(1700000000000000)

/* ---- helpers ------------------------------------------------------------ */

/* Encoded rows of `count` generated events (tag, first index). */
static void make_rows(es_buf *rows, const char *tag, int first, int count) {
  for (int i = 0; i < count; i++) {
    es_event ev;
    ut_text tx;
    ut_event(&ev, &tx, tag, first + i, NOW_US + first + i);
    ck_assert_int_eq(es__event_encode(rows, &ev, NOW_US, 0), ES_OK);
  }
}

/* A frame with one record per tenant in `tenants` (NULL-terminated); the
 * record of tenant k holds `events` events tagged "<tenant>-<lsn>". */
static void make_frame(es_buf *frame, uint64_t lsn, const char *const *tenants,
                       int events, int compress) {
  frame->len = 0;
  ck_assert_int_eq(es__buf_reserve(frame, ES_WAL_FRAME_HDR), ES_OK);
  frame->len = ES_WAL_FRAME_HDR;
  for (int k = 0; tenants[k]; k++) {
    char tag[96];
    snprintf(tag, sizeof(tag), "%s-%" PRIu64, tenants[k], lsn);
    es_buf rows = {0};
    make_rows(&rows, tag, 0, events);
    ck_assert_int_eq(es__wal_record_build(frame, tenants[k], (uint32_t)events,
                                          rows.data, rows.len, compress),
                     ES_OK);
    es__buf_free(&rows);
  }
  es__wal_frame_finish(frame->data, frame->len, lsn);
}

/* What the read callback saw. */
typedef struct seen {
  int n;
  uint64_t lsn[256];
  uint64_t off[256];
  char tenant[256][ES_TENANT_LEN_MAX + 1];
  uint32_t events[256];
  int rows_ok[256]; /* rows decode to exactly `events` events, right tag */
} seen;

static int seen_rec(void *ud, uint64_t lsn, const es_wal_rec *rec,
                    uint64_t frame_off) {
  seen *s = ud;
  ck_assert_int_lt(s->n, 256);
  int i = s->n++;
  s->lsn[i] = lsn;
  s->off[i] = frame_off;
  strcpy(s->tenant[i], rec->tenant);
  s->events[i] = rec->events;
  /* the rows must be the ones make_frame encoded for this tenant and lsn */
  char tag[96];
  snprintf(tag, sizeof(tag), "%s-%" PRIu64, rec->tenant, lsn);
  size_t off = 0;
  int ok = 1;
  for (uint32_t e = 0; ok && e < rec->events; e++) {
    es_event got, want;
    ut_text tx;
    size_t used;
    ut_event(&want, &tx, tag, (int)e, NOW_US + e);
    if (es__event_decode(rec->rows + off, rec->rows_len - off, &got, &used) <
        0) {
      ok = 0;
      break;
    }
    ut_event_eq(&got, &want, "wal row");
    off += used;
  }
  s->rows_ok[i] = ok && off == rec->rows_len;
  return 0;
}

static const char *const one_tenant[] = {"acme", NULL};

/* Writes frames lsn first..last (3 events each) to a new log in dir and
 * closes it; returns the frame end offsets in ends[] (if not NULL). */
static void write_log(const char *dir, size_t file_bytes, uint64_t first,
                      uint64_t last, uint64_t *ends) {
  es_wal *wal = NULL;
  ck_assert_int_eq(es__wal_open(es__vfs_posix(), dir, first, NULL, 0, 0,
                                file_bytes, 1, &wal),
                   ES_OK);
  es_buf frame = {0};
  uint64_t off = 0;
  for (uint64_t lsn = first; lsn <= last; lsn++) {
    make_frame(&frame, lsn, one_tenant, 3, 0);
    ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, lsn), ES_OK);
    ck_assert_int_eq(es__wal_sync(wal), ES_OK);
    off += frame.len;
    if (ends)
      ends[lsn - first] = off;
  }
  es__buf_free(&frame);
  es__wal_close(wal);
}

static void wal_file(char *out, size_t cap, const char *dir, uint64_t first) {
  ck_assert_int_eq(es__wal_path(out, cap, dir, first), ES_OK);
}

/* ---- records ------------------------------------------------------------ */

START_TEST(test_record_build_raw) {
  es_buf rows = {0}, rec = {0};
  make_rows(&rows, "raw", 0, 20);
  ck_assert_int_eq(
      es__wal_record_build(&rec, "tenant_1", 20, rows.data, rows.len, 0),
      ES_OK);
  /* u8 tenant_len | tenant | u32 events | u32 raw | u32 stored | u8 codec */
  es_rd r = es__rd(rec.data, rec.len);
  ck_assert_uint_eq(es__rd_u8(&r), 8);
  ck_assert_mem_eq(es__rd_bytes(&r, 8), "tenant_1", 8);
  ck_assert_uint_eq(es__rd_u32(&r), 20);
  ck_assert_uint_eq(es__rd_u32(&r), rows.len);
  ck_assert_uint_eq(es__rd_u32(&r), rows.len);
  ck_assert_uint_eq(es__rd_u8(&r), ES_WAL_CODEC_RAW);
  ck_assert_mem_eq(es__rd_bytes(&r, rows.len), rows.data, rows.len);
  ck_assert_int_eq(r.bad, 0);
  ck_assert_ptr_eq(r.p, r.end);
  es__buf_free(&rows);
  es__buf_free(&rec);
}
END_TEST

START_TEST(test_record_build_lz4) {
  es_buf rows = {0}, rec = {0};
  make_rows(&rows, "lz4", 0, 50); /* repetitive: compresses well */
  ck_assert_uint_ge(rows.len, 256);
  ck_assert_int_eq(
      es__wal_record_build(&rec, "acme", 50, rows.data, rows.len, 1), ES_OK);
  es_rd r = es__rd(rec.data, rec.len);
  ck_assert_uint_eq(es__rd_u8(&r), 4);
  (void)es__rd_bytes(&r, 4);
  ck_assert_uint_eq(es__rd_u32(&r), 50);
  ck_assert_uint_eq(es__rd_u32(&r), rows.len);
  uint32_t stored = es__rd_u32(&r);
  ck_assert_uint_eq(es__rd_u8(&r), ES_WAL_CODEC_LZ4);
  ck_assert_uint_lt(stored, rows.len - rows.len / 8);
  const uint8_t *c = es__rd_bytes(&r, stored);
  ck_assert_ptr_eq(r.p, r.end);
  uint8_t *back = malloc(rows.len);
  ck_assert_int_eq(es__lz4_decompress(c, stored, back, rows.len), ES_OK);
  ck_assert_mem_eq(back, rows.data, rows.len);
  free(back);

  /* small rows stay raw even when compression is asked for */
  es_buf small = {0}, rec2 = {0};
  make_rows(&small, "s", 0, 1);
  ck_assert_uint_lt(small.len, 256);
  ck_assert_int_eq(
      es__wal_record_build(&rec2, "acme", 1, small.data, small.len, 1), ES_OK);
  ck_assert_uint_eq(rec2.data[1 + 4 + 12], ES_WAL_CODEC_RAW);
  /* a bad tenant is refused */
  es_buf rec3 = {0};
  ck_assert_int_eq(es__wal_record_build(&rec3, "", 1, small.data, small.len, 0),
                   ES_EINVAL);
  es__buf_free(&rows);
  es__buf_free(&rec);
  es__buf_free(&small);
  es__buf_free(&rec2);
  es__buf_free(&rec3);
}
END_TEST

/* ---- write, sync, read back -------------------------------------------- */

START_TEST(test_write_read_in_order) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "wal-rw");
  es_wal *wal = NULL;
  ck_assert_int_eq(
      es__wal_open(es__vfs_posix(), dir, 1, NULL, 0, 0, 1 << 16, 1, &wal),
      ES_OK);
  static const char *const two[] = {"acme", "beta", NULL};
  es_buf frame = {0};
  uint64_t offs[6], off = 0;
  for (uint64_t lsn = 1; lsn <= 6; lsn++) {
    /* alternate raw and compressed records, one and two tenants */
    make_frame(&frame, lsn, lsn % 2 ? one_tenant : two, 20, (int)(lsn % 3));
    offs[lsn - 1] = off;
    ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, lsn), ES_OK);
    off += frame.len;
  }
  ck_assert_int_eq(es__wal_sync(wal), ES_OK);
  es__wal_close(wal);
  es__buf_free(&frame);

  uint64_t *firsts = NULL;
  size_t n = 0;
  ck_assert_int_eq(es__wal_list(es__vfs_posix(), dir, &firsts, &n), ES_OK);
  ck_assert_uint_eq(n, 1);
  ck_assert_uint_eq(firsts[0], 1);
  es__free(firsts);

  wal_file(path, sizeof(path), dir, 1);
  ck_assert_uint_eq(ut_file_size(path), 1 << 16); /* preallocated */
  seen *s = calloc(1, sizeof(*s));
  es_wal_scan scan;
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 0, seen_rec, s, &scan),
      ES_OK);
  ck_assert_uint_eq(scan.frames, 6);
  ck_assert_uint_eq(scan.records, 9); /* 3 frames x 1 + 3 frames x 2 */
  ck_assert_uint_eq(scan.events, 9 * 20);
  ck_assert_uint_eq(scan.last_lsn, 6);
  ck_assert_uint_eq(scan.end_off, off);
  ck_assert_int_eq(scan.torn, 0);
  ck_assert_uint_eq(scan.file_bytes, 1 << 16);
  ck_assert_int_eq(s->n, 9);
  int k = 0;
  for (uint64_t lsn = 1; lsn <= 6; lsn++) {
    int recs = lsn % 2 ? 1 : 2;
    for (int j = 0; j < recs; j++, k++) {
      ck_assert_uint_eq(s->lsn[k], lsn);
      ck_assert_uint_eq(s->off[k], offs[lsn - 1]);
      ck_assert_str_eq(s->tenant[k], j == 0 ? "acme" : "beta");
      ck_assert_uint_eq(s->events[k], 20);
      ck_assert_msg(s->rows_ok[k], "rows of record %d differ", k);
    }
  }
  /* prev_lsn (the last LSN of older files) at or above a frame's LSN makes
   * that frame unacceptable: with later frames above prev_lsn that is a
   * hole in the log (corrupt), with none it reads as a torn tail */
  memset(s, 0, sizeof(*s));
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 3, seen_rec, s, &scan),
      ES_ECORRUPT);
  ck_assert_int_eq(s->n, 0);
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 6, seen_rec, s, &scan),
      ES_OK);
  ck_assert_int_eq(scan.torn, 1);
  ck_assert_uint_eq(scan.end_off, 0);
  ck_assert_int_eq(s->n, 0);
  free(s);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_roll_files) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "wal-roll");
  es_wal *wal = NULL;
  ck_assert_int_eq(
      es__wal_open(es__vfs_posix(), dir, 100, NULL, 0, 0, 4096, 1, &wal),
      ES_OK);
  es_buf frame = {0};
  make_frame(&frame, 100, one_tenant, 3, 0);
  size_t flen = frame.len;
  ck_assert_uint_gt(flen, 200);
  size_t per_file = 4096 / flen; /* frames that fit in one file */
  ck_assert_uint_ge(per_file, 1);
  uint64_t last = 100 + 3 * per_file + 1; /* 4 files, the last with 2 */
  for (uint64_t lsn = 100; lsn <= last; lsn++) {
    make_frame(&frame, lsn, one_tenant, 3, 0);
    ck_assert_uint_eq(frame.len, flen);
    ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, lsn), ES_OK);
    ck_assert_int_eq(es__wal_sync(wal), ES_OK);
  }
  /* a frame larger than a file gets a file of its own */
  es_buf big = {0};
  make_frame(&big, last + 1, one_tenant, 40, 0);
  ck_assert_uint_gt(big.len, 4096);
  ck_assert_int_eq(es__wal_write(wal, big.data, big.len, last + 1), ES_OK);
  make_frame(&frame, last + 2, one_tenant, 3, 0);
  ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, last + 2), ES_OK);
  ck_assert_int_eq(es__wal_sync(wal), ES_OK);
  es__wal_close(wal);
  size_t big_len = big.len;
  es__buf_free(&frame);
  es__buf_free(&big);

  uint64_t *firsts = NULL;
  size_t n = 0;
  ck_assert_int_eq(es__wal_list(es__vfs_posix(), dir, &firsts, &n), ES_OK);
  ck_assert_uint_eq(n, 6);
  for (size_t i = 0; i < 4; i++)
    ck_assert_uint_eq(firsts[i], 100 + i * per_file);
  ck_assert_uint_eq(firsts[4], last + 1);
  ck_assert_uint_eq(firsts[5], last + 2);

  /* read the whole log as recovery does: prev_lsn chained, only the
   * newest file may be torn; every LSN exactly once, in order */
  seen *s = calloc(1, sizeof(*s));
  uint64_t prev = 0;
  for (size_t i = 0; i < n; i++) {
    es_wal_scan scan;
    wal_file(path, sizeof(path), dir, firsts[i]);
    ck_assert_int_eq(es__wal_read_file(es__vfs_posix(), path, i + 1 == n, prev,
                                       seen_rec, s, &scan),
                     ES_OK);
    ck_assert_int_eq(scan.torn, 0);
    ck_assert_uint_ge(scan.frames, 1);
    if (i == 4)
      ck_assert_uint_eq(scan.end_off, big_len); /* grew past 4096 */
    else
      ck_assert_uint_le(scan.end_off, 4096);
    prev = scan.last_lsn;
  }
  ck_assert_int_eq(s->n, (int)(last + 2 - 100 + 1));
  for (int k = 0; k < s->n; k++) {
    ck_assert_uint_eq(s->lsn[k], 100 + (uint64_t)k);
    ck_assert_msg(s->rows_ok[k], "rows of lsn %d differ", 100 + k);
  }
  free(s);
  es__free(firsts);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_list_order) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "wal-list");
  /* a missing directory is an empty log */
  snprintf(path, sizeof(path), "%s/missing", dir);
  uint64_t *firsts = NULL;
  size_t n = 99;
  ck_assert_int_eq(es__wal_list(es__vfs_posix(), path, &firsts, &n), ES_OK);
  ck_assert_uint_eq(n, 0);
  es__free(firsts);
  /* names that sort differently as text and as numbers are impossible
   * with fixed width; make sure numeric order is used and junk ignored */
  static const char *const names[] = {
      "0000000000000100.wal",     "000000000000000a.wal",
      "0000000000000002.wal",     "ffffffffffffff00.wal",
      "0000000000000003.wal.tmp", "README",
      "000000000000000g.wal",     "00000000000001.wal",
      "0000000000000004.seg"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
  }
  ck_assert_int_eq(es__wal_list(es__vfs_posix(), dir, &firsts, &n), ES_OK);
  ck_assert_uint_eq(n, 4);
  ck_assert_uint_eq(firsts[0], 0x2);
  ck_assert_uint_eq(firsts[1], 0xa);
  ck_assert_uint_eq(firsts[2], 0x100);
  ck_assert_uint_eq(firsts[3], 0xffffffffffffff00ull);
  es__free(firsts);
  /* es__wal_path formats the same names */
  ck_assert_int_eq(es__wal_path(path, sizeof(path), "d", 0xa), ES_OK);
  ck_assert_str_eq(path, "d/000000000000000a.wal");
  char tiny[8];
  ck_assert_int_eq(es__wal_path(tiny, sizeof(tiny), "d", 1), ES_EINVAL);
  ut_rmrf(dir);
}
END_TEST

/* ---- torn tails and corruption ------------------------------------------ */

START_TEST(test_torn_tail_newest) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "wal-torn");
  uint64_t ends[3];
  write_log(dir, 8192, 1, 3, ends);
  wal_file(path, sizeof(path), dir, 1);
  /* garbage right after the last frame */
  uint8_t junk[100];
  for (int i = 0; i < 100; i++)
    junk[i] = (uint8_t)(0x5a ^ (i * 37));
  ut_write_at(path, ends[2], junk, sizeof(junk));
  seen *s = calloc(1, sizeof(*s));
  es_wal_scan scan;
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 0, seen_rec, s, &scan),
      ES_OK);
  ck_assert_int_eq(scan.torn, 1);
  ck_assert_uint_eq(scan.end_off, ends[2]);
  ck_assert_uint_eq(scan.frames, 3);
  ck_assert_uint_eq(scan.last_lsn, 3);
  ck_assert_int_eq(s->n, 3);
  free(s);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_torn_partial_frame) {
  /* the first half of a real frame 4 (what a crash mid-write leaves) */
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "wal-half");
  uint64_t ends[3];
  write_log(dir, 8192, 1, 3, ends);
  wal_file(path, sizeof(path), dir, 1);
  es_buf frame = {0};
  make_frame(&frame, 4, one_tenant, 3, 0);
  ut_write_at(path, ends[2], frame.data, frame.len / 2);
  es_wal_scan scan;
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 0, NULL, NULL, &scan), ES_OK);
  ck_assert_int_eq(scan.torn, 1);
  ck_assert_uint_eq(scan.end_off, ends[2]);
  ck_assert_uint_eq(scan.frames, 3);
  /* and at the very end of a file that is not preallocated any more */
  ut_truncate(path, ends[2] + frame.len / 2);
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 0, NULL, NULL, &scan), ES_OK);
  ck_assert_int_eq(scan.torn, 1);
  ck_assert_uint_eq(scan.end_off, ends[2]);
  /* a clean end without preallocation is not torn */
  ut_truncate(path, ends[2]);
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 0, NULL, NULL, &scan), ES_OK);
  ck_assert_int_eq(scan.torn, 0);
  ck_assert_uint_eq(scan.end_off, ends[2]);
  es__buf_free(&frame);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_torn_tail_not_newest) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "wal-torn-old");
  uint64_t ends[3];
  write_log(dir, 8192, 1, 3, ends);
  write_log(dir, 8192, 4, 5, NULL); /* a newer file */
  wal_file(path, sizeof(path), dir, 1);
  uint8_t junk[64];
  memset(junk, 0xa5, sizeof(junk));
  ut_write_at(path, ends[2], junk, sizeof(junk));
  es_wal_scan scan;
  es__error_clear();
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 0, 0, NULL, NULL, &scan),
      ES_ECORRUPT);
  char want[64];
  snprintf(want, sizeof(want), "offset %" PRIu64, ends[2]);
  ck_assert_msg(strstr(es_errdetail(), want) != NULL,
                "detail \"%s\" does not name %s", es_errdetail(), want);
  ck_assert_ptr_nonnull(strstr(es_errdetail(), path));
  /* the same file as the newest one is merely torn */
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 0, NULL, NULL, &scan), ES_OK);
  ck_assert_int_eq(scan.torn, 1);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_middle_frame_corrupt) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "wal-mid");
  uint64_t ends[3];
  write_log(dir, 8192, 1, 3, ends);
  wal_file(path, sizeof(path), dir, 1);
  /* flip one payload byte of frame 2 (lsn 2, at ends[0]) */
  uint64_t mid = ends[0] + ES_WAL_FRAME_HDR + (ends[1] - ends[0]) / 2;
  ut_flip_byte(path, mid, 0x10);
  char want[64];
  snprintf(want, sizeof(want), "offset %" PRIu64, ends[0]);
  for (int is_last = 0; is_last <= 1; is_last++) {
    seen *s = calloc(1, sizeof(*s));
    es_wal_scan scan;
    es__error_clear();
    ck_assert_int_eq(es__wal_read_file(es__vfs_posix(), path, is_last, 0,
                                       seen_rec, s, &scan),
                     ES_ECORRUPT);
    ck_assert_msg(strstr(es_errdetail(), want) != NULL,
                  "detail \"%s\" does not name %s", es_errdetail(), want);
    ck_assert_uint_eq(scan.end_off, ends[0]);
    ck_assert_int_eq(s->n, 1); /* frame 1 was seen, nothing after it */
    free(s);
  }
  /* a damaged header (length) in the middle is caught as well */
  ut_flip_byte(path, mid, 0x10); /* repair */
  ut_flip_byte(path, ends[0] + 1, 0x01);
  es_wal_scan scan;
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 0, NULL, NULL, &scan),
      ES_ECORRUPT);
  ck_assert_uint_eq(scan.end_off, ends[0]);
  ut_rmrf(dir);
}
END_TEST

/* A large preallocated file (several MiB of zeros after the frames, read
 * through es__wal_read_file's trimmed load): the frames are found, the
 * file size is reported whole, and a valid frame far behind a zero gap
 * (damage in between) is still caught as corruption. */
START_TEST(test_large_file_zero_tail) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "wal-large");
  snprintf(path, sizeof(path), "%s/0000000000000001.wal", dir);
  const uint64_t file_bytes = UINT64_C(5) << 20;
  uint8_t zero[4096];
  memset(zero, 0, sizeof(zero));
  FILE *fp = fopen(path, "wb");
  ck_assert_ptr_nonnull(fp);
  for (uint64_t o = 0; o < file_bytes; o += sizeof(zero))
    ck_assert_uint_eq(fwrite(zero, 1, sizeof(zero), fp), sizeof(zero));
  ck_assert_int_eq(fclose(fp), 0);
  es_buf f1 = {0}, f2 = {0}, f3 = {0};
  make_frame(&f1, 1, one_tenant, 5, 1);
  make_frame(&f2, 2, one_tenant, 5, 1);
  make_frame(&f3, 3, one_tenant, 5, 1);
  ut_write_at(path, 0, f1.data, f1.len);
  ut_write_at(path, f1.len, f2.data, f2.len);
  seen *s = calloc(1, sizeof(*s));
  es_wal_scan scan;
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 0, seen_rec, s, &scan),
      ES_OK);
  ck_assert_int_eq(s->n, 2);
  ck_assert_uint_eq(scan.end_off, f1.len + f2.len);
  ck_assert_uint_eq(scan.file_bytes, file_bytes);
  ck_assert_uint_eq(scan.dirty_end, f1.len + f2.len);
  ck_assert(!scan.torn);
  /* frame 2's header zeroed (damage), frame 3 valid 3 MiB further on */
  ut_write_at(path, f1.len, zero, ES_WAL_FRAME_HDR);
  ut_write_at(path, UINT64_C(3) << 20, f3.data, f3.len);
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 0, NULL, NULL, &scan),
      ES_ECORRUPT);
  free(s);
  es__buf_free(&f1), es__buf_free(&f2), es__buf_free(&f3);
  ut_rmrf(dir);
}
END_TEST

/* A file's size, or -1 when it does not exist. */
static int64_t fsize(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* Creates path with these bytes. */
static void plant(const char *path, const void *buf, size_t len) {
  FILE *fp = fopen(path, "wb");
  ck_assert_ptr_nonnull(fp);
  ck_assert_uint_eq(fwrite(buf, 1, len, fp), len);
  ck_assert_int_eq(fclose(fp), 0);
}

/* A fresh log that keeps spares (file_bytes >= 1 MiB, syncing) writes its
 * first frames into a small (1 MiB) preallocated file, never waiting for
 * file_bytes of zeros;
 * once a spare is ready the next frame goes to it; a complete spare left
 * at close is adopted by the next open (not deleted), an incomplete one
 * (spare.tmp) is deleted; every frame reads back in order. */
START_TEST(test_small_first_file_then_spare) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "wal-small");
  const size_t file_bytes = (size_t)4 << 20, small = (size_t)1 << 20;
  es_wal *wal = NULL;
  ck_assert_int_eq(
      es__wal_open(es__vfs_posix(), dir, 1, NULL, 0, 0, file_bytes, 1, &wal),
      ES_OK);
  es_buf frame = {0};
  for (uint64_t lsn = 1; lsn <= 3; lsn++) {
    make_frame(&frame, lsn, one_tenant, 3, 0);
    ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, lsn), ES_OK);
    ck_assert_int_eq(es__wal_sync(wal), ES_OK);
  }
  wal_file(path, sizeof(path), dir, 1);
  ck_assert_int_eq(fsize(path), (int64_t)small); /* not file_bytes */
  ck_assert_int_eq(es__wal_prepare_spare(wal, 0), 1); /* the housekeeper */
  snprintf(path, sizeof(path), "%s/spare", dir);
  ck_assert_int_eq(fsize(path), (int64_t)file_bytes);
  make_frame(&frame, 4, one_tenant, 3, 0);
  ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, 4), ES_OK);
  ck_assert_int_eq(es__wal_sync(wal), ES_OK);
  ck_assert_int_eq(fsize(path), -1); /* the spare became 4.wal */
  wal_file(path, sizeof(path), dir, 4);
  ck_assert_int_eq(fsize(path), (int64_t)file_bytes);
  /* the next spare is wanted (half full) only later: make one by hand
   * through a fresh log, then check the next open adopts it */
  es__wal_close(wal);
  seen *s = calloc(1, sizeof(*s));
  es_wal_scan scan;
  wal_file(path, sizeof(path), dir, 1);
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 0, 0, seen_rec, s, &scan),
      ES_OK);
  wal_file(path, sizeof(path), dir, 4);
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 0, seen_rec, s, &scan),
      ES_OK);
  ck_assert_int_eq(s->n, 4);
  for (int i = 0; i < 4; i++) {
    ck_assert_uint_eq(s->lsn[i], (uint64_t)i + 1);
    ck_assert(s->rows_ok[i]);
  }
  free(s);
  /* a fresh open wants no spare before its first durable frame (zeros
   * written then would hold up that fdatasync), one right after it; the
   * complete spare it leaves at close is adopted by the next open, and a
   * torn spare.tmp (a crash while filling) is left to be refilled, never
   * adopted */
  ck_assert_int_eq(
      es__wal_open(es__vfs_posix(), dir, 7, NULL, 0, 0, file_bytes, 1, &wal),
      ES_OK);
  ck_assert_int_eq(es__wal_prepare_spare(wal, 0), 0);
  make_frame(&frame, 7, one_tenant, 3, 0);
  ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, 7), ES_OK);
  ck_assert_int_eq(es__wal_prepare_spare(wal, 0), 0); /* not yet durable */
  ck_assert_int_eq(es__wal_sync(wal), ES_OK);
  ck_assert_int_eq(es__wal_prepare_spare(wal, 0), 1);
  es__wal_close(wal);
  snprintf(path, sizeof(path), "%s/spare", dir);
  ck_assert_int_eq(fsize(path), (int64_t)file_bytes);
  snprintf(path, sizeof(path), "%s/spare.tmp", dir);
  plant(path, "xx", 2);
  ck_assert_int_eq(
      es__wal_open(es__vfs_posix(), dir, 10, NULL, 0, 0, file_bytes, 1, &wal),
      ES_OK);
  ck_assert_int_eq(fsize(path), 2); /* left for the housekeeper */
  make_frame(&frame, 10, one_tenant, 3, 0);
  ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, 10), ES_OK);
  ck_assert_int_eq(es__wal_sync(wal), ES_OK);
  wal_file(path, sizeof(path), dir, 10);
  ck_assert_int_eq(fsize(path), (int64_t)file_bytes); /* adopted */
  snprintf(path, sizeof(path), "%s/spare", dir);
  ck_assert_int_eq(fsize(path), -1);
  ck_assert_int_eq(es__wal_prepare_spare(wal, 1), 1); /* refills spare.tmp */
  ck_assert_int_eq(fsize(path), (int64_t)file_bytes);
  snprintf(path, sizeof(path), "%s/spare.tmp", dir);
  ck_assert_int_eq(fsize(path), -1);
  es__wal_close(wal);
  es__buf_free(&frame);
  ut_rmrf(dir);
}
END_TEST

/* A restart resumes a small first file where the log stopped, with no
 * new file, even with a spare ready: the first acknowledgement after a
 * restart costs one write and one fdatasync; only the frame after it
 * moves to the spare. */
START_TEST(test_restart_resumes_small_file) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "wal-resume-small");
  const size_t file_bytes = (size_t)4 << 20, small = (size_t)1 << 20;
  es_wal *wal = NULL;
  ck_assert_int_eq(
      es__wal_open(es__vfs_posix(), dir, 1, NULL, 0, 0, file_bytes, 1, &wal),
      ES_OK);
  es_buf frame = {0};
  make_frame(&frame, 1, one_tenant, 3, 0);
  ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, 1), ES_OK);
  ck_assert_int_eq(es__wal_sync(wal), ES_OK);
  uint64_t end = frame.len;
  ck_assert_int_eq(es__wal_prepare_spare(wal, 0), 1); /* left at close */
  es__wal_close(wal);
  uint64_t first = 1;
  ck_assert_int_eq(es__wal_open(es__vfs_posix(), dir, 2, &first, 1, end,
                                file_bytes, 1, &wal),
                   ES_OK);
  make_frame(&frame, 2, one_tenant, 3, 0);
  ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, 2), ES_OK);
  ck_assert_int_eq(es__wal_sync(wal), ES_OK);
  wal_file(path, sizeof(path), dir, 2);
  ck_assert_int_eq(fsize(path), -1); /* no new file for the first frame */
  wal_file(path, sizeof(path), dir, 1);
  ck_assert_int_eq(fsize(path), (int64_t)small);
  make_frame(&frame, 3, one_tenant, 3, 0);
  ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, 3), ES_OK);
  ck_assert_int_eq(es__wal_sync(wal), ES_OK);
  wal_file(path, sizeof(path), dir, 3);
  ck_assert_int_eq(fsize(path), (int64_t)file_bytes); /* then the spare */
  es__wal_close(wal);
  seen *s = calloc(1, sizeof(*s));
  es_wal_scan scan;
  wal_file(path, sizeof(path), dir, 1);
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 0, 0, seen_rec, s, &scan),
      ES_OK);
  wal_file(path, sizeof(path), dir, 3);
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 0, seen_rec, s, &scan),
      ES_OK);
  ck_assert_int_eq(s->n, 3);
  for (int i = 0; i < 3; i++)
    ck_assert_uint_eq(s->lsn[i], (uint64_t)i + 1);
  free(s);
  es__buf_free(&frame);
  ut_rmrf(dir);
}
END_TEST

/* ---- reclaim ------------------------------------------------------------ */

/* Writes frames until the log has `files` files; returns the last LSN. */
static uint64_t fill_files(es_wal *wal, uint64_t lsn, size_t files,
                           const char *dir) {
  es_buf frame = {0};
  for (;;) {
    make_frame(&frame, lsn, one_tenant, 3, 0);
    ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, lsn), ES_OK);
    ck_assert_int_eq(es__wal_sync(wal), ES_OK);
    if (ut_count_suffix(dir, ".wal") == (int)files) {
      /* fill the current file a bit more so it holds several LSNs */
      for (int i = 0; i < 2; i++) {
        make_frame(&frame, ++lsn, one_tenant, 3, 0);
        ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, lsn), ES_OK);
      }
      ck_assert_int_eq(ut_count_suffix(dir, ".wal"), (int)files);
      break;
    }
    lsn++;
  }
  es__buf_free(&frame);
  return lsn;
}

START_TEST(test_reclaim) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "wal-reclaim");
  es_wal *wal = NULL;
  ck_assert_int_eq(
      es__wal_open(es__vfs_posix(), dir, 1, NULL, 0, 0, 4096, 1, &wal), ES_OK);
  uint64_t last = fill_files(wal, 1, 5, dir);
  uint64_t *f = NULL;
  size_t n = 0;
  ck_assert_int_eq(es__wal_list(es__vfs_posix(), dir, &f, &n), ES_OK);
  ck_assert_uint_eq(n, 5);

  /* keep_lsn inside file 0: nothing can go */
  ck_assert_int_eq(es__wal_reclaim(wal, f[0] + 1), ES_OK);
  ck_assert_int_eq(ut_count_suffix(dir, ".wal"), 5);
  /* keep_lsn = first LSN of file 2: files 0 and 1 lie wholly below it */
  ck_assert_int_eq(es__wal_reclaim(wal, f[2]), ES_OK);
  ck_assert_int_eq(ut_count_suffix(dir, ".wal"), 3);
  wal_file(path, sizeof(path), dir, f[0]);
  ck_assert(!ut_exists(path));
  wal_file(path, sizeof(path), dir, f[1]);
  ck_assert(!ut_exists(path));
  wal_file(path, sizeof(path), dir, f[2]);
  ck_assert(ut_exists(path));
  /* keep_lsn one past file 3's first: file 2 goes, file 3 stays */
  ck_assert_int_eq(es__wal_reclaim(wal, f[3] + 1), ES_OK);
  ck_assert_int_eq(ut_count_suffix(dir, ".wal"), 2);
  wal_file(path, sizeof(path), dir, f[3]);
  ck_assert(ut_exists(path));
  /* everything is reclaimable: the current file still stays */
  ck_assert_int_eq(es__wal_reclaim(wal, UINT64_MAX), ES_OK);
  ck_assert_int_eq(ut_count_suffix(dir, ".wal"), 1);
  wal_file(path, sizeof(path), dir, f[4]);
  ck_assert(ut_exists(path));
  ck_assert_int_eq(es__wal_reclaim(wal, UINT64_MAX), ES_OK);
  ck_assert_int_eq(ut_count_suffix(dir, ".wal"), 1);
  /* and the log goes on working after reclaim */
  es_buf frame = {0};
  make_frame(&frame, last + 1, one_tenant, 3, 0);
  ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, last + 1), ES_OK);
  ck_assert_int_eq(es__wal_sync(wal), ES_OK);
  es__buf_free(&frame);
  es__wal_close(wal);
  es__free(f);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_reclaim_live_files_from_open) {
  /* files of an earlier session, passed to es__wal_open as live files,
   * are reclaimed by the new writer */
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "wal-live");
  write_log(dir, 4096, 1, 3, NULL);
  write_log(dir, 4096, 4, 6, NULL);
  uint64_t *f = NULL;
  size_t n = 0;
  ck_assert_int_eq(es__wal_list(es__vfs_posix(), dir, &f, &n), ES_OK);
  ck_assert_uint_eq(n, 2);
  es_wal *wal = NULL;
  ck_assert_int_eq(
      es__wal_open(es__vfs_posix(), dir, 7, f, n, 0, 4096, 1, &wal), ES_OK);
  ck_assert_int_eq(ut_count_suffix(dir, ".wal"), 3);
  ck_assert_int_eq(es__wal_reclaim(wal, 4), ES_OK); /* file 1..3 only */
  ck_assert_int_eq(ut_count_suffix(dir, ".wal"), 2);
  ck_assert_int_eq(es__wal_reclaim(wal, 7), ES_OK);
  ck_assert_int_eq(ut_count_suffix(dir, ".wal"), 1);
  es__wal_close(wal);
  es__free(f);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_resume) {
  /* es__wal_open with resume_off: writing continues in the newest file
   * right after its last valid frame, and the file reads back whole */
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "wal-resume");
  uint64_t ends[3];
  write_log(dir, 8192, 1, 3, ends);
  uint64_t first = 1;
  es_wal *wal = NULL;
  ck_assert_int_eq(
      es__wal_open(es__vfs_posix(), dir, 4, &first, 1, ends[2], 8192, 1, &wal),
      ES_OK);
  ck_assert_int_eq(ut_count_suffix(dir, ".wal"), 1); /* no new file */
  es_buf frame = {0};
  for (uint64_t lsn = 4; lsn <= 5; lsn++) {
    make_frame(&frame, lsn, one_tenant, 3, 0);
    ck_assert_int_eq(es__wal_write(wal, frame.data, frame.len, lsn), ES_OK);
  }
  ck_assert_int_eq(es__wal_sync(wal), ES_OK);
  es__wal_close(wal);
  wal_file(path, sizeof(path), dir, 1);
  seen *s = calloc(1, sizeof(*s));
  es_wal_scan scan;
  ck_assert_int_eq(
      es__wal_read_file(es__vfs_posix(), path, 1, 0, seen_rec, s, &scan),
      ES_OK);
  ck_assert_uint_eq(scan.frames, 5);
  ck_assert_uint_eq(scan.last_lsn, 5);
  ck_assert_int_eq(scan.torn, 0);
  ck_assert_int_eq(s->n, 5);
  for (int k = 0; k < 5; k++) {
    ck_assert_uint_eq(s->lsn[k], (uint64_t)k + 1);
    ck_assert(s->rows_ok[k]);
  }
  /* a resume offset with no room left starts a fresh file instead */
  first = 1;
  ck_assert_int_eq(
      es__wal_open(es__vfs_posix(), dir, 6, &first, 1, 8192 - 8, 8192, 1, &wal),
      ES_OK);
  ck_assert_int_eq(ut_count_suffix(dir, ".wal"), 2);
  wal_file(path, sizeof(path), dir, 6);
  ck_assert(ut_exists(path));
  es__wal_close(wal);
  free(s);
  es__buf_free(&frame);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_wal_bytes) {
  /* "Bytes in live files": preallocated sizes of the files on disk */
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "wal-bytes");
  es_wal *wal = NULL;
  ck_assert_int_eq(
      es__wal_open(es__vfs_posix(), dir, 1, NULL, 0, 0, 4096, 1, &wal), ES_OK);
  ck_assert_int_eq(ut_count_suffix(dir, ".wal"), 1);
  ck_assert_msg(es__wal_bytes(wal) == 4096,
                "fresh log: es__wal_bytes %" PRIu64 ", one file of 4096 on "
                "disk",
                es__wal_bytes(wal));
  fill_files(wal, 1, 3, dir);
  ck_assert_uint_eq(es__wal_bytes(wal), 3 * 4096);
  ck_assert_int_eq(es__wal_reclaim(wal, UINT64_MAX), ES_OK);
  ck_assert_int_eq(ut_count_suffix(dir, ".wal"), 1);
  ck_assert_uint_eq(es__wal_bytes(wal), 4096);
  es__wal_close(wal);
  /* reopened with the two files as live ones: three files on disk */
  uint64_t *f = NULL;
  size_t n = 0;
  write_log(dir, 4096, 1000, 1001, NULL);
  ck_assert_int_eq(es__wal_list(es__vfs_posix(), dir, &f, &n), ES_OK);
  ck_assert_uint_eq(n, 2);
  ck_assert_int_eq(
      es__wal_open(es__vfs_posix(), dir, 2000, f, n, 0, 4096, 1, &wal), ES_OK);
  ck_assert_int_eq(ut_count_suffix(dir, ".wal"), 3);
  ck_assert_uint_eq(es__wal_bytes(wal), 3 * 4096);
  es__wal_close(wal);
  es__free(f);
  ut_rmrf(dir);
}
END_TEST

static Suite *wal_suite(void) {
  Suite *s = suite_create("wal");
  TCase *tc = tcase_create("wal");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_record_build_raw);
  tcase_add_test(tc, test_record_build_lz4);
  tcase_add_test(tc, test_write_read_in_order);
  tcase_add_test(tc, test_roll_files);
  tcase_add_test(tc, test_list_order);
  tcase_add_test(tc, test_torn_tail_newest);
  tcase_add_test(tc, test_torn_partial_frame);
  tcase_add_test(tc, test_torn_tail_not_newest);
  tcase_add_test(tc, test_middle_frame_corrupt);
  tcase_add_test(tc, test_large_file_zero_tail);
  tcase_add_test(tc, test_small_first_file_then_spare);
  tcase_add_test(tc, test_restart_resumes_small_file);
  tcase_add_test(tc, test_reclaim);
  tcase_add_test(tc, test_reclaim_live_files_from_open);
  tcase_add_test(tc, test_resume);
  tcase_add_test(tc, test_wal_bytes);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(wal_suite()); }
