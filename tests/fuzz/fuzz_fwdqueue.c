/*
 * fuzz_fwdqueue.c -- fuzz target: es-ingestd's forward queue files
 * (cmd/ingest/fwdqueue.c), as the start-up scan reads them after a crash.
 *
 * Input: byte 0 even: the rest is a queue file as it is (what a damaged
 * disk or a torn write leaves).  Byte 0 odd: the rest is cut into frames
 * ([u8 key_len][u16 body_len][key][body]...) written with fwdq_append,
 * and whatever is left over is appended raw as a torn tail: this reaches
 * the reader behind the checksums.
 *
 * Properties beyond "no crash, no leak":
 *  1. fwdq_scan's valid prefix ends inside the file, and the walk says
 *     "clean" exactly when it ends at the file's end.
 *  2. Every frame of the prefix reads back whole (fwdq_read = 1) with
 *     the counts the scan reported.
 *  3. Built frames are all found, with their keys and bodies intact.
 *  4. Recovery is idempotent: cut at the prefix, the file scans clean to
 *     the same end with the same counts.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "ingest/fwdqueue.h"

#define FRAMES_MAX 64

typedef struct built {
  const uint8_t *key, *body;
  size_t kn, bn;
} built;

/* Odd mode: frames from the input, then the rest raw.  Returns the count
 * of frames written (their bytes end at *frames_end). */
static size_t build(int fd, const uint8_t *p, size_t n, built *b,
                    uint64_t *frames_end) {
  size_t count = 0, at = 0;
  uint64_t size = 0;
  while (count < FRAMES_MAX && at + 3 <= n) {
    size_t kn = p[at], bn = (size_t)p[at + 1] | (size_t)p[at + 2] << 8;
    if (at + 3 + kn + bn > n)
      break;
    b[count] = (built){p + at + 3, p + at + 3 + kn, kn, bn};
    FUZZ_ASSERT(fwdq_append(fd, size, (const char *)b[count].key, kn,
                            (const char *)b[count].body, bn, (uint32_t)bn,
                            1) == 0);
    size += sizeof(fwdq_head) + kn + bn;
    at += 3 + kn + bn;
    count++;
  }
  *frames_end = size;
  if (at < n)
    FUZZ_ASSERT(write(fd, p + at, n - at) == (ssize_t)(n - at));
  return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  int fd = memfd_create("fwdq", 0);
  FUZZ_ASSERT(fd >= 0);
  built b[FRAMES_MAX];
  size_t nbuilt = 0;
  uint64_t built_end = 0;
  if (data[0] & 1) {
    nbuilt = build(fd, data + 1, size - 1, b, &built_end);
  } else if (size > 1) {
    FUZZ_ASSERT(write(fd, data + 1, size - 1) == (ssize_t)(size - 1));
  }
  struct stat st;
  FUZZ_ASSERT(fstat(fd, &st) == 0);
  uint64_t end, events, bytes;
  int torn = fwdq_scan(fd, 0, &end, &events, &bytes);
  FUZZ_ASSERT(end <= (uint64_t)st.st_size); /* 1 */
  FUZZ_ASSERT(torn == (end != (uint64_t)st.st_size));
  uint64_t off = 0, ev = 0, by = 0;
  size_t i = 0;
  while (off < end) { /* 2, 3 */
    fwdq_head h;
    char *buf = NULL;
    FUZZ_ASSERT(fwdq_read(fd, off, &h, &buf) == 1);
    if (i < nbuilt) {
      FUZZ_ASSERT(h.key_len == b[i].kn && h.body_len == b[i].bn);
      FUZZ_ASSERT(memcmp(buf, b[i].key, b[i].kn) == 0);
      FUZZ_ASSERT(memcmp(buf + b[i].kn, b[i].body, b[i].bn) == 0);
    }
    free(buf);
    ev += h.events;
    by += h.body_len;
    off += fwdq_frame_bytes(&h);
    i++;
  }
  FUZZ_ASSERT(off == end && ev == events && by == bytes);
  FUZZ_ASSERT(end >= built_end && i >= nbuilt);
  FUZZ_ASSERT(ftruncate(fd, (off_t)end) == 0); /* 4 */
  uint64_t end2, events2, bytes2;
  FUZZ_ASSERT(fwdq_scan(fd, 0, &end2, &events2, &bytes2) == 0);
  FUZZ_ASSERT(end2 == end && events2 == events && bytes2 == bytes);
  close(fd);
  return 0;
}
