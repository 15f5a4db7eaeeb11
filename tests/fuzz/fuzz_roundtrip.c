/*
 * fuzz_roundtrip.c -- fuzz target: what is written is what is read back.
 *
 * The input describes events (the format below, which mkseeds.c also
 * writes).  Each event goes through every encoding the store has and
 * must come back with equal fields:
 *
 *  1. row:      es__event_encode -> es__event_decode (ip truncation off);
 *  2. WAL:      es__wal_record_build (LZ4 when it pays) -> frame ->
 *               es__wal_read_file -> the same row bytes;
 *  3. segment:  memtable -> es__segment_build -> es__segment_open ->
 *               es__segment_read_group, for a one-row segment of the first
 *               event and a multi-row segment of all of them (replicated
 *               past ES_SEG_GROUP_ROWS when asked, for several groups);
 *               rows come back in (ts, append order), the zone maps hold,
 *               the Bloom filter has no false negative, and
 *               es__segment_verify is happy.
 *
 * Input format (little-endian; whatever is missing at the end is absent):
 *   u8 flags          low 4 bits all set: replicate the events past one
 *                     row group (rare on purpose: it is slow); high 4
 *                     bits: extra rows beyond ES_SEG_GROUP_ROWS
 *   event*            each: i64 ts_us (sign bit cleared; INT64_MAX must
 *                     be refused) | i64 recv_us |
 *                     u8 type (as is: invalid types must be refused) |
 *                     u16 mask (bit i: string field i present) |
 *                     for each present field, in column order: its bytes
 *                     up to the next 0x00 (consumed) or the end of input
 */
#include <stdlib.h>
#include <string.h>

#include "base/event.h"
#include "fuzz_util.h"
#include "memfile.h"
#include "store/memtable.h"
#include "store/segment.h"
#include "store/wal.h"

#define RT_EVENTS_MAX 64
#define RT_HDR_BYTES 19
#define RT_FLAG_GROUPS 0x0f
#define RT_NOW_US INT64_C(1700000000000000) /* stands in for "now" */
#define RT_SEG_PATH "/t/0000000000000001.seg"
#define RT_WAL_PATH "/w/0000000000000001.wal"

/* The events of one input; strings are copies owned here. */
typedef struct rt_input {
  int flags;
  size_t n;
  es_event ev[RT_EVENTS_MAX];
  char *strs; /* one block holding every string, NUL-separated */
} rt_input;

static int rt_str_eq(const char *a, const char *b) {
  if (!a || !b)
    return a == b;
  return strcmp(a, b) == 0;
}

/* Equal fields; recv_us compared as stored (0 became RT_NOW_US). */
static void rt_assert_equal(const es_event *want, const es_event *got,
                            const char *where) {
  int64_t recv = want->recv_us ? want->recv_us : RT_NOW_US;
  if (got->ts_us != want->ts_us || got->recv_us != recv ||
      got->type != want->type)
    FUZZ_FAIL("%s: ts/recv/type differ: %lld/%lld/%d, want %lld/%lld/%d", where,
              (long long)got->ts_us, (long long)got->recv_us, got->type,
              (long long)want->ts_us, (long long)recv, want->type);
  for (int s = 0; s < ES_NSTR; s++)
    if (!rt_str_eq(es__ev_cstr(got, s), es__ev_cstr(want, s)))
      FUZZ_FAIL("%s: field %s differs", where, es__str_name[s]);
}

/* Splits the input into events (see the format above). */
static void rt_parse(const uint8_t *data, size_t size, rt_input *in) {
  memset(in, 0, sizeof(*in));
  if (size == 0)
    return;
  in->flags = data[0];
  char *s = malloc(size + 1); /* a copy with room for a final NUL */
  FUZZ_ASSERT(s);
  memcpy(s, data, size);
  s[size] = '\0';
  in->strs = s;
  size_t off = 1;
  while (in->n < RT_EVENTS_MAX && size - off >= RT_HDR_BYTES) {
    es_event *ev = &in->ev[in->n++];
    ev->ts_us = (int64_t)(es__get_le64(data + off) & ~(UINT64_C(1) << 63));
    ev->recv_us = (int64_t)es__get_le64(data + off + 8);
    ev->type = data[off + 16];
    unsigned mask = data[off + 17] | (unsigned)data[off + 18] << 8;
    off += RT_HDR_BYTES;
    for (int f = 0; f < ES_NSTR; f++) {
      if (!(mask & (1u << f)))
        continue;
      *es__ev_str(ev, f) = s + off; /* the copy is NUL-terminated here */
      const uint8_t *nul = memchr(data + off, 0, size - off);
      off = nul ? (size_t)(nul - data) + 1 : size;
    }
  }
}

/* 1: row encoding.  Returns the status of the encode. */
static int rt_row(const es_event *ev, es_buf *rows) {
  size_t start = rows->len;
  int rc = es__event_encode(rows, ev, RT_NOW_US, 1);
  /* Refused: types outside es_type, times outside [1970, INT64_MAX). */
  if (ev->type < ES_TYPE_TRACK || ev->type > ES_TYPE_GROUP ||
      ev->ts_us == INT64_MAX) {
    FUZZ_ASSERT(rc == ES_EINVAL || rc == ES_ENOMEM);
    return rc;
  }
  if (rc < 0) {
    FUZZ_ASSERT(rc == ES_ETOOBIG || rc == ES_ENOMEM);
    FUZZ_ASSERT(rc != ES_ETOOBIG || rows->len == start);
    rows->len = start; /* ES_ENOMEM may leave a partial row */
    return rc;
  }
  es_event back;
  size_t used = 0;
  FUZZ_ASSERT(es__event_decode(rows->data + start, rows->len - start, &back,
                               &used) == ES_OK);
  FUZZ_ASSERT(used == rows->len - start);
  FUZZ_ASSERT(es__event_ts(rows->data + start) == ev->ts_us);
  rt_assert_equal(ev, &back, "row");
  return ES_OK;
}

typedef struct rt_wal_seen {
  const es_buf *rows;
  uint32_t events;
  int records;
} rt_wal_seen;

static int rt_wal_rec(void *ud, uint64_t lsn, const es_wal_rec *rec,
                      uint64_t frame_off) {
  rt_wal_seen *seen = ud;
  FUZZ_ASSERT(lsn == 7 && frame_off == 0);
  FUZZ_ASSERT(strcmp(rec->tenant, "tenant-1") == 0);
  FUZZ_ASSERT(rec->events == seen->events);
  FUZZ_ASSERT(rec->rows_len == seen->rows->len);
  FUZZ_ASSERT(memcmp(rec->rows, seen->rows->data, rec->rows_len) == 0);
  seen->records++;
  return 0;
}

/* 2: one WAL frame holding the rows as one record, read back. */
static void rt_wal(es_vfs *vfs, const es_buf *rows, uint32_t events) {
  es_buf frame = {0};
  if (es__buf_reserve(&frame, ES_WAL_FRAME_HDR) < 0)
    return;
  frame.len = ES_WAL_FRAME_HDR;
  if (es__wal_record_build(&frame, "tenant-1", events, rows->data, rows->len,
                           1) == ES_OK) {
    es__wal_frame_finish(frame.data, frame.len, 7);
    memfile_put(vfs, RT_WAL_PATH, frame.data, frame.len);
    rt_wal_seen seen = {rows, events, 0};
    es_wal_scan scan;
    int rc =
        es__wal_read_file(vfs, RT_WAL_PATH, 0, 0, rt_wal_rec, &seen, &scan);
    fuzz_check_handles(vfs, "es__wal_read_file");
    FUZZ_ASSERT(rc == ES_OK || rc == ES_ENOMEM);
    FUZZ_ASSERT(rc != ES_OK || (seen.records == 1 && scan.frames == 1 &&
                                !scan.torn && scan.end_off == frame.len));
  }
  es__buf_free(&frame);
}

/* Stable order of the rows by event time. */
static const es_event *const *rt_sort_base;
static int rt_cmp(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  int64_t tx = rt_sort_base[x]->ts_us, ty = rt_sort_base[y]->ts_us;
  if (tx != ty)
    return tx < ty ? -1 : 1;
  return x < y ? -1 : x > y;
}

/* Reads the segment back and compares it with want[order[k]]. */
static void rt_seg_read(es_vfs *vfs, const es_event *const *want,
                        const size_t *order, size_t n) {
  es_segment *seg = NULL;
  int rc = es__segment_open(vfs, RT_SEG_PATH, 1, &seg);
  if (rc == ES_ENOMEM)
    return;
  FUZZ_ASSERT(rc == ES_OK);
  FUZZ_ASSERT(seg->rows == n);
  FUZZ_ASSERT(seg->min_ts == want[order[0]]->ts_us &&
              seg->max_ts == want[order[n - 1]]->ts_us);
  es_seg_rows rows = {0};
  size_t k = 0;
  for (uint32_t g = 0; g < seg->ngroups; g++) {
    FUZZ_ASSERT(es__segment_read_group(seg, g, &rows) == ES_OK);
    FUZZ_ASSERT(rows.n > 0 && rows.n <= ES_SEG_GROUP_ROWS);
    FUZZ_ASSERT(seg->groups[g].min_ts == rows.ts[0] &&
                seg->groups[g].max_ts == rows.ts[rows.n - 1]);
    for (size_t r = 0; r < rows.n; r++, k++) {
      FUZZ_ASSERT(k < n);
      es_event got = {
          .ts_us = rows.ts[r], .recv_us = rows.recv[r], .type = rows.type[r]};
      for (int s = 0; s < ES_NSTR; s++)
        *es__ev_str(&got, s) = rows.str[s][r];
      rt_assert_equal(want[order[k]], &got, "segment");
    }
  }
  FUZZ_ASSERT(k == n);
  for (size_t i = 0; i < n; i++) {
    const es_event *ev = want[i];
    FUZZ_ASSERT(!ev->anonymous_id ||
                es__segment_may_contain(seg, ev->anonymous_id));
    FUZZ_ASSERT(!ev->user_id || es__segment_may_contain(seg, ev->user_id));
    FUZZ_ASSERT(!ev->message_id ||
                es__segment_may_contain(seg, ev->message_id));
  }
  es__segment_rows_free(&rows);
  es__segment_unref(seg);
  uint64_t vrows = 0;
  FUZZ_ASSERT(es__segment_verify(vfs, RT_SEG_PATH, NULL, NULL, &vrows) ==
              ES_OK);
  FUZZ_ASSERT(vrows == n);
  fuzz_check_handles(vfs, "segment read-back");
}

/* 3: rows through a memtable into a segment and back.  want[i] is the
 * event whose encoding is the i-th row of rows. */
static void rt_segment(es_vfs *vfs, const es_buf *rows,
                       const es_event *const *want, size_t n) {
  es_memtable *mt = NULL;
  size_t added = 0;
  size_t *order = malloc(n * sizeof(size_t));
  const es_mrow **mrows = malloc(n * sizeof(*mrows));
  es_buf img = {0};
  FUZZ_ASSERT(order && mrows);
  if (es__memtable_new(&mt) < 0)
    goto out;
  int rc =
      es__memtable_insert(mt, rows->data, rows->len, (uint32_t)n, 1, &added);
  if (rc == ES_ENOMEM)
    goto out;
  FUZZ_ASSERT(rc == ES_OK);
  es__memtable_publish(mt, 1);
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  rt_sort_base = want;
  qsort(order, n, sizeof(size_t), rt_cmp);
  for (size_t i = 0; i < n; i++)
    mrows[i] = es__memtable_row(mt, order[i]);
  rc = es__segment_build(&img, mrows, n);
  if (rc == ES_ENOMEM)
    goto out;
  FUZZ_ASSERT(rc == ES_OK);
  memfile_put(vfs, RT_SEG_PATH, img.data, img.len);
  rt_seg_read(vfs, want, order, n);
out:
  es__buf_free(&img);
  es__memtable_unref(mt);
  free(mrows);
  free(order);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  es_vfs *vfs = fuzz_vfs();
  rt_input in;
  rt_parse(data, size, &in);
  /* The events that encode, and their rows in one buffer. */
  const es_event *ok[RT_EVENTS_MAX];
  size_t nok = 0;
  es_buf rows = {0}, one = {0};
  for (size_t i = 0; i < in.n; i++)
    if (rt_row(&in.ev[i], &rows) == ES_OK)
      ok[nok++] = &in.ev[i];
  if (nok > 0) {
    rt_wal(vfs, &rows, (uint32_t)nok);
    if (rt_row(ok[0], &one) == ES_OK)
      rt_segment(vfs, &one, ok, 1);
    rt_segment(vfs, &rows, ok, nok);
  }
  if (nok > 0 && (in.flags & RT_FLAG_GROUPS) == RT_FLAG_GROUPS) {
    /* Past one row group: the rows again and again. */
    size_t n = ES_SEG_GROUP_ROWS + (size_t)(in.flags >> 4);
    const es_event **want = malloc(n * sizeof(*want));
    es_buf many = {0};
    FUZZ_ASSERT(want);
    size_t i = 0;
    for (; i < n; i++) {
      want[i] = ok[i % nok];
      if (rt_row(want[i], &many) < 0)
        break;
    }
    if (i == n)
      rt_segment(vfs, &many, want, n);
    es__buf_free(&many);
    free(want);
  }
  es__buf_free(&rows);
  es__buf_free(&one);
  free(in.strs);
  memfile_clear(vfs);
  return 0;
}
