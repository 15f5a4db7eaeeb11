/*
 * fuzz_segment.c -- fuzz target: one segment file image.
 *
 * The input is served by the memfile as a segment and opened with
 * es__segment_open; then every row group is read with
 * es__segment_read_group (reusing one es_seg_rows, as a cursor does),
 * and again kept packed (as es_timeline_open reads them), and
 * every decoded value is touched; the Bloom filter is probed; finally
 * es__segment_verify checks the whole file.  All of it runs again on a
 * copy whose block and footer checksums are recomputed (fuzz_util.h).
 *
 * Properties beyond "no crash, no leak":
 *  1. A group that decodes has the row count its footer entry promised,
 *     and only valid event types.
 *  2. If the file opens and every group decodes, es__segment_verify finds
 *     nothing wrong (it checks less than decoding does).
 *  3. A group read with every column kept packed
 *     (es__segment_read_group_packed) decodes exactly when the full read
 *     does, and gives the same bytes for every value; each value equals
 *     itself by es__seg_rows_eq.
 */
#include <stdlib.h>

#include "fuzz_util.h"
#include "memfile.h"
#include "store/segment.h"

#define SEG_PATH "/tenant/0000000000000001.seg"

static void seg_problem(void *ud, const char *path, uint64_t off,
                        const char *what) {
  (void)path, (void)off;
  fuzz_touch(what);
  ++*(int *)ud;
}

/* Reads every group; returns 1 when all of them decoded. */
static int seg_read_all(es_segment *seg) {
  es_seg_rows rows = {0}, packed = {0};
  int all_ok = 1;
  for (uint32_t g = 0; g < seg->ngroups; g++) {
    int rc = es__segment_read_group(seg, g, &rows);
    int prc = es__segment_read_group_packed(seg, g, ES_FIELD_ALL,
                                            ES_FIELD_ALL, &packed);
    if (rc != ES_ENOMEM && prc != ES_ENOMEM)
      FUZZ_ASSERT((rc == ES_OK) == (prc == ES_OK));
    if (rc < 0) {
      all_ok = 0;
      continue; /* the next group may still be readable */
    }
    FUZZ_ASSERT(rows.n == seg->groups[g].rows);
    for (size_t r = 0; r < rows.n; r++) {
      FUZZ_ASSERT(rows.type[r] >= ES_TYPE_TRACK &&
                  rows.type[r] <= ES_TYPE_GROUP);
      for (int s = 0; s < ES_NSTR; s++) {
        fuzz_touch(rows.str[s][r]);
        if (prc != ES_OK)
          continue;
        char buf[ES_SEG_SHAPE_LEN_MAX + 1];
        const char *v = es__seg_rows_get(&packed, s, r, buf);
        FUZZ_ASSERT((v == NULL) == (rows.str[s][r] == NULL));
        if (!v)
          continue;
        FUZZ_ASSERT(strcmp(v, rows.str[s][r]) == 0);
        es_seg_key k;
        es__seg_rows_key(&packed, s, v, &k);
        FUZZ_ASSERT(es__seg_rows_eq(&packed, s, r, &k));
      }
    }
  }
  es__segment_rows_free(&rows);
  es__segment_rows_free(&packed);
  return all_ok;
}

static void seg_check(es_vfs *vfs, const uint8_t *img, size_t size) {
  memfile_put(vfs, SEG_PATH, img, size);
  es_segment *seg = NULL;
  int all_ok = 0;
  if (es__segment_open(vfs, SEG_PATH, 1, &seg) == ES_OK) {
    all_ok = seg_read_all(seg);
    (void)es__segment_may_contain(seg, "user-1");
    (void)es__segment_may_contain(seg, "");
    es__segment_unref(seg);
  }
  fuzz_check_handles(vfs, "es__segment_open/read_group");
  int problems = 0;
  uint64_t rows = 0;
  int rc = es__segment_verify(vfs, SEG_PATH, seg_problem, &problems, &rows);
  fuzz_check_handles(vfs, "es__segment_verify");
  FUZZ_ASSERT(rc != ES_OK || problems == 0);
  if (all_ok)
    FUZZ_ASSERT(rc == ES_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  es_vfs *vfs = fuzz_vfs();
  seg_check(vfs, data, size);
  uint8_t *fixed = fuzz_dup(data, size);
  if (fuzz_fix_segment(fixed, size) > 0)
    seg_check(vfs, fixed, size);
  free(fixed);
  memfile_clear(vfs);
  return 0;
}
