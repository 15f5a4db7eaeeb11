/*
 * fuzz_row.c -- fuzz target: encoded rows (event.h), the bytes inside
 * every WAL record and memtable.
 *
 * The input is read as a sequence of rows with es__event_decode, as
 * replay and the memtable do, and then handed whole to
 * es__memtable_insert.
 *
 * Properties beyond "no crash, no leak":
 *  1. A decoded row used at least one and at most the remaining bytes,
 *     and es__event_ts reads the same event time from it.
 *  2. Decoding is the inverse of encoding on what it accepts: a decoded
 *     event with ts_us in [0, INT64_MAX) (what es__event_encode takes)
 *     re-encodes (keep_full_ip, now_us 0 so that
 *     recv_us 0 stays 0) and decodes to equal fields.  Byte equality is
 *     not required: the decoder accepts non-minimal varints and strings
 *     with a NUL inside their declared length.
 *  3. es__memtable_insert accepts the input with the count of rows that
 *     decoded exactly when they cover every byte, and the rows it then
 *     indexes carry the decoded event times.
 */
#include <string.h>

#include "base/event.h"
#include "fuzz_util.h"
#include "store/memtable.h"

/* Most rows one input is read as (inputs are small anyway). */
#define ROW_MAX 4096

/* Whether two strings are equal as C strings (NULL only equals NULL). */
static int row_str_eq(const char *a, const char *b) {
  if (!a || !b)
    return a == b;
  return strcmp(a, b) == 0;
}

/* Property 2 for one decoded event. */
static void row_reencode(const es_event *ev) {
  if (ev->ts_us < 0 || ev->ts_us == INT64_MAX)
    return;
  es_buf b = {0};
  int rc = es__event_encode(&b, ev, 0, 1);
  if (rc == ES_OK) {
    es_event back;
    size_t used = 0;
    FUZZ_ASSERT(es__event_decode(b.data, b.len, &back, &used) == ES_OK);
    FUZZ_ASSERT(used == b.len);
    FUZZ_ASSERT(back.ts_us == ev->ts_us && back.recv_us == ev->recv_us &&
                back.type == ev->type);
    for (int s = 0; s < ES_NSTR; s++)
      FUZZ_ASSERT(row_str_eq(es__ev_cstr(&back, s), es__ev_cstr(ev, s)));
  } else {
    FUZZ_ASSERT(rc == ES_ENOMEM);
  }
  es__buf_free(&b);
}

/* Property 3. */
static void row_memtable(const uint8_t *data, size_t size, uint32_t count,
                         int covers_all, const int64_t *ts) {
  es_memtable *mt = NULL;
  if (es__memtable_new(&mt) < 0)
    return;
  size_t added = 0;
  int rc = es__memtable_insert(mt, data, size, count, 1, &added);
  if (covers_all) {
    FUZZ_ASSERT(rc == ES_OK || rc == ES_ENOMEM);
  } else {
    FUZZ_ASSERT(rc != ES_OK);
  }
  if (rc == ES_OK) {
    es__memtable_publish(mt, 1);
    FUZZ_ASSERT(es__memtable_visible(mt) == count);
    for (uint32_t i = 0; i < count; i++)
      FUZZ_ASSERT(es__memtable_row(mt, i)->ts_us == ts[i]);
  }
  es__memtable_unref(mt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int64_t ts[ROW_MAX];
  size_t off = 0;
  uint32_t count = 0;
  while (off < size && count < ROW_MAX) {
    es_event ev;
    size_t used = 0;
    if (es__event_decode(data + off, size - off, &ev, &used) < 0)
      break;
    FUZZ_ASSERT(used > 0 && used <= size - off);
    FUZZ_ASSERT(es__event_ts(data + off) == ev.ts_us);
    for (int s = 0; s < ES_NSTR; s++)
      fuzz_touch(es__ev_cstr(&ev, s));
    row_reencode(&ev);
    ts[count++] = ev.ts_us;
    off += used;
  }
  if (count < ROW_MAX) {
    row_memtable(data, size, count, off == size, ts);
    /* One row more than decodes must be refused. */
    row_memtable(data, size, count + 1, 0, ts);
  }
  return 0;
}
