/*
 * fwdqueue.c -- forward queue frames (fwdqueue.h).
 *
 * Invariants:
 *  1. fwdq_read trusts nothing of the file: lengths are bounded before
 *     anything is allocated, and a frame counts only when its checksum
 *     matches, so a torn write, a zeroed tail or garbage ends the walk.
 *  2. fwdq_append leaves the file at size_before or size_before + the
 *     frame, never in between (unless the ftruncate itself fails, which
 *     the next open's scan then cuts).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <xxhash.h>

#include "fwdqueue.h"

static uint64_t frame_sum(const char *key, size_t kn, const char *body,
                          size_t bn) {
  return XXH64(body, bn, XXH64(key, kn, 0));
}

int fwdq_read(int fd, uint64_t off, fwdq_head *h, char **buf) {
  ssize_t got = pread(fd, h, sizeof *h, (off_t)off);
  if (got == 0)
    return 0;
  if (got != (ssize_t)sizeof *h || h->magic != FWDQ_MAGIC ||
      (uint64_t)h->key_len + h->body_len > FWDQ_FRAME_BYTES_MAX)
    return -1;
  size_t n = (size_t)h->key_len + h->body_len;
  char *p = malloc(n + 1);
  if (!p)
    return -1;
  got = pread(fd, p, n, (off_t)(off + sizeof *h));
  int ok = got == (ssize_t)n &&
           frame_sum(p, h->key_len, p + h->key_len, h->body_len) == h->sum;
  if (ok && buf) {
    p[n] = 0;
    *buf = p;
  } else {
    free(p);
  }
  return ok ? 1 : -1;
}

int fwdq_scan(int fd, uint64_t from, uint64_t *end_out, uint64_t *events_out,
              uint64_t *bytes_out) {
  uint64_t off = 0;
  fwdq_head h;
  int rc;
  *events_out = *bytes_out = 0;
  while ((rc = fwdq_read(fd, off, &h, NULL)) == 1) {
    if (off >= from) {
      *events_out += h.events;
      *bytes_out += h.body_len;
    }
    off += fwdq_frame_bytes(&h);
  }
  *end_out = off;
  return rc < 0 ? 1 : 0;
}

int fwdq_append(int fd, uint64_t size_before, const char *key, size_t key_len,
                const char *body, size_t body_len, uint32_t events,
                int64_t enqueued_us) {
  fwdq_head h = {.magic = FWDQ_MAGIC,
                 .key_len = (uint32_t)key_len,
                 .body_len = (uint32_t)body_len,
                 .events = events,
                 .enqueued_us = enqueued_us,
                 .sum = frame_sum(key, key_len, body, body_len)};
  if ((uint64_t)key_len + body_len > FWDQ_FRAME_BYTES_MAX) {
    errno = EFBIG;
    return -1;
  }
  struct iovec iov[3] = {
      {&h, sizeof h}, {(void *)key, key_len}, {(void *)body, body_len}};
  ssize_t got = writev(fd, iov, 3);
  if (got == (ssize_t)fwdq_frame_bytes(&h))
    return 0;
  int saved = got < 0 ? errno : ENOSPC;
  (void)!ftruncate(fd, (off_t)size_before);
  errno = saved;
  return -1;
}
