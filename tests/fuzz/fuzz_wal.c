/*
 * fuzz_wal.c -- fuzz target: one WAL file image.
 *
 * The input is served by the memfile as a shard's log file and read with
 * es__wal_read_file twice, as the newest file of its shard (a torn tail
 * is accepted) and as an older one (it is corruption), then again with
 * every frame checksum recomputed (fuzz_util.h).  Every record is decoded
 * row by row with es__event_decode, as replay does, and every string is
 * read to its end.
 *
 * Properties beyond "no crash, no leak":
 *  1. The scan is self-consistent: end_off <= file size, frames count
 *     records at least once each, and the callback saw exactly the
 *     records and events the scan reports.
 *  2. A file read successfully as "not the newest" also reads successfully
 *     as "the newest", with the same scan (the torn-tail rule only ever
 *     relaxes).
 *  3. es__wal_read_frames (the WAL shipper's reader) hands back, up to the
 *     last LSN the scan accepted, exactly the file's bytes before end_off
 *     when the LSNs are consecutive (as a live log's are); asked for more
 *     than is there, it fails cleanly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/event.h"
#include "fuzz_util.h"
#include "memfile.h"
#include "store/wal.h"

#define WAL_DIR "/shard-0"
#define WAL_PATH WAL_DIR "/0000000000000001.wal"

typedef struct wal_seen {
  uint64_t records, events;
  uint64_t last_lsn;
} wal_seen;

/* Decodes the rows of one record; any row error ends the record (replay
 * would report corruption, which is fine here). */
static int wal_on_record(void *ud, uint64_t lsn, const es_wal_rec *rec,
                         uint64_t frame_off) {
  wal_seen *seen = ud;
  (void)frame_off;
  FUZZ_ASSERT(lsn >= seen->last_lsn); /* records of a frame share its lsn */
  /* The reader copies the tenant bytes as they are (a NUL among them
   * shortens the name); replay validates the name (db.c), as here. */
  FUZZ_ASSERT(strlen(rec->tenant) <= ES_TENANT_LEN_MAX);
  if (es__tenant_check(rec->tenant) == ES_OK)
    FUZZ_ASSERT(rec->tenant[0] != '\0');
  seen->last_lsn = lsn;
  seen->records++;
  seen->events += rec->events;
  size_t off = 0;
  for (uint32_t i = 0; i < rec->events && off < rec->rows_len; i++) {
    es_event ev;
    size_t used = 0;
    if (es__event_decode(rec->rows + off, rec->rows_len - off, &ev, &used) < 0)
      break;
    FUZZ_ASSERT(used > 0 && used <= rec->rows_len - off);
    for (int s = 0; s < ES_NSTR; s++)
      fuzz_touch(es__ev_cstr(&ev, s));
    off += used;
  }
  return 0;
}

/* Reads the registered image once; returns the status. */
static int wal_read(es_vfs *vfs, int is_last, es_wal_scan *scan) {
  wal_seen seen = {0};
  int rc =
      es__wal_read_file(vfs, WAL_PATH, is_last, 0, wal_on_record, &seen, scan);
  fuzz_check_handles(vfs, "es__wal_read_file");
  if (rc == ES_OK) {
    FUZZ_ASSERT(scan->end_off <= scan->file_bytes);
    FUZZ_ASSERT(scan->records == seen.records);
    FUZZ_ASSERT(scan->events == seen.events);
    FUZZ_ASSERT(scan->records >= scan->frames);
    FUZZ_ASSERT(scan->frames == 0 || scan->last_lsn == seen.last_lsn);
  }
  return rc;
}

/* Both readings of one image, and property 2. */
static void wal_check(es_vfs *vfs, const uint8_t *img, size_t size) {
  memfile_put(vfs, WAL_PATH, img, size);
  es_wal_scan older, newest;
  int rc_older = wal_read(vfs, 0, &older);
  int rc_newest = wal_read(vfs, 1, &newest);
  if (rc_older == ES_OK) {
    FUZZ_ASSERT(rc_newest == ES_OK);
    FUZZ_ASSERT(memcmp(&older, &newest, sizeof(older)) == 0);
  }
  es_wal_cursor cur = {0};
  es_buf out = {0};
  uint64_t first = 0, last = 0;
  uint64_t lsn0 = size >= ES_WAL_FRAME_HDR ? es__get_le64(img + 8) : 0;
  if (rc_newest == ES_OK && newest.frames > 0 && lsn0 > 0 &&
      newest.last_lsn - lsn0 + 1 == newest.frames) { /* property 3 */
    int rc = es__wal_read_frames(vfs, WAL_DIR, lsn0 - 1, newest.last_lsn,
                                 SIZE_MAX, &cur, &out, &first, &last);
    FUZZ_ASSERT(rc == ES_OK && last == newest.last_lsn);
    FUZZ_ASSERT(out.len == newest.end_off);
    FUZZ_ASSERT(memcmp(out.data, img, out.len) == 0);
  }
  es__error_clear();
  out.len = 0;
  cur = (es_wal_cursor){0};
  if (es__wal_read_frames(vfs, WAL_DIR, 0, UINT64_MAX, 1 << 16, &cur, &out,
                          &first, &last) < 0)
    es__error_clear();
  fuzz_check_handles(vfs, "es__wal_read_frames");
  es__buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  es_vfs *vfs = fuzz_vfs();
  wal_check(vfs, data, size);
  uint8_t *fixed = fuzz_dup(data, size);
  if (fuzz_fix_wal(fixed, size) > 0)
    wal_check(vfs, fixed, size);
  free(fixed);
  memfile_clear(vfs);
  return 0;
}
