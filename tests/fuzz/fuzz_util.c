/*
 * fuzz_util.c -- helpers shared by the fuzz targets (see fuzz_util.h).
 *
 * The fix-ups mirror the layouts in lib/wal.h, lib/segment.c and
 * lib/manifest.c.  They must stay in step with those files: if a layout
 * changes and a fix-up does not, nothing breaks, but the fuzzer quietly
 * stops reaching the code behind that checksum (the seeds in the corpus
 * would show it: they still parse as they are).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "fuzz_util.h"
#include "memfile.h"
#include "store/segment.h"
#include "store/wal.h"

/* Segment footer geometry (segment.c: SEG_FOOTER_FIXED, SEG_GROUP_BYTES). */
#define FIX_SEG_FOOTER_FIXED 40
#define FIX_SEG_GROUP_BYTES (24 + ES_SEG_NCOLS * 24)

es_vfs *fuzz_vfs(void) {
  static es_vfs *vfs;
  if (!vfs)
    vfs = memfile_create();
  memfile_clear(vfs);
  return vfs;
}

void fuzz_check_handles(es_vfs *vfs, const char *where) {
  long open = memfile_open_handles(vfs);
  if (open != 0)
    FUZZ_FAIL("%s left %ld file handle(s) open", where, open);
}

size_t fuzz_touch(const char *s) {
  if (!s)
    return 0;
  volatile unsigned char sink = 0;
  size_t n = 0;
  for (; s[n]; n++)
    sink ^= (unsigned char)s[n];
  (void)sink;
  return n;
}

void fuzz_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "\n%s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n(es_errdetail: %s)\n", es_errdetail());
  abort();
}

uint8_t *fuzz_dup(const uint8_t *data, size_t size) {
  uint8_t *p = malloc(size ? size : 1);
  if (!p)
    FUZZ_FAIL("out of memory copying %zu bytes", size);
  if (size)
    memcpy(p, data, size);
  return p;
}

/* Stores v at p and reports whether that changed anything. */
static size_t fix_put64(uint8_t *p, uint64_t v) {
  if (es__get_le64(p) == v)
    return 0;
  es__le64(p, v);
  return 1;
}

/* Frames follow one another from offset 0: u32 len | u32 flags | u64 lsn |
 * u64 checksum | payload.  Stops at the first header that does not fit. */
size_t fuzz_fix_wal(uint8_t *img, size_t size) {
  size_t fixed = 0, off = 0;
  while (size - off >= ES_WAL_FRAME_HDR) {
    uint8_t *h = img + off;
    size_t len = es__get_le32(h);
    if (len == 0 || len > size - off - ES_WAL_FRAME_HDR)
      break;
    uint64_t sum = es__hash64(h + ES_WAL_FRAME_HDR, len, es__hash64(h, 16, 0));
    fixed += fix_put64(h + 16, sum);
    off += ES_WAL_FRAME_HDR + len;
  }
  return fixed;
}

/* Trailer (last 32 bytes): u64 footer_off | u32 footer_len | u32 version |
 * u64 footer checksum | magic.  The footer lists each group's blocks. */
size_t fuzz_fix_segment(uint8_t *img, size_t size) {
  if (size < ES_SEG_TRAILER_BYTES)
    return 0;
  uint8_t *tr = img + size - ES_SEG_TRAILER_BYTES;
  uint64_t foff = es__get_le64(tr);
  uint64_t flen = es__get_le32(tr + 8);
  uint64_t data_end = size - ES_SEG_TRAILER_BYTES;
  if (foff > data_end || flen > data_end - foff || flen < FIX_SEG_FOOTER_FIXED)
    return 0;
  size_t fixed = 0;
  uint8_t *f = img + foff;
  uint64_t ngroups = es__get_le32(f);
  for (uint64_t g = 0; g < ngroups; g++) {
    uint64_t at = FIX_SEG_FOOTER_FIXED + g * FIX_SEG_GROUP_BYTES;
    if (at + FIX_SEG_GROUP_BYTES > flen)
      break;
    for (int c = 0; c < ES_SEG_NCOLS; c++) {
      uint8_t *b = f + at + 24 + (size_t)c * 24;
      uint64_t off = es__get_le64(b);
      uint64_t clen = es__get_le32(b + 8);
      if (off <= size && clen <= size - off)
        fixed += fix_put64(b + 16, es__hash64(img + off, clen, 0));
    }
  }
  fixed += fix_put64(tr + 16, es__hash64(f, flen, 0));
  return fixed;
}

/* MANIFEST and ESDB end with the XXH3 of every byte before. */
size_t fuzz_fix_trailing(uint8_t *img, size_t size) {
  if (size < 8)
    return 0;
  return fix_put64(img + size - 8, es__hash64(img, size - 8, 0));
}
