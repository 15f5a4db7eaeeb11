/*
 * run_limit.c -- the physical limit beside the systems (issue 17): what
 * the disk allows a durable ingest that writes what libeventstore's WAL
 * writes, with nothing else in the way.
 *
 * Each thread owns one file of LIMIT_FILE_BYTES, zero-filled and synced
 * before the clock starts (as the WAL's preallocated files are, so an
 * fdatasync has no size or block allocation to write), and for every
 * batch it takes writes that batch's share of the WAL's bytes at the
 * next offset (wrapping round the file) and fdatasyncs: one write and
 * one fdatasync per acknowledged batch, which is what es_append does
 * for a lone appender.  What is written for a batch is as long as its
 * WAL frame (docs/FORMAT.md, "WAL"): the 24-byte frame header, the
 * record header with the tenant, and the batch's rows LZ4-compressed
 * as the WAL stores them (encode.c's encoding, the row encoding
 * without its NUL bytes), sized before the clock starts.  With one
 * thread this is the one-thread limit; with T threads, T files synced
 * independently (the disk's synced bandwidth for T writers; the WAL's
 * group commit may do better, since it shares one fdatasync).
 *
 * Nothing is read back and nothing is measured but ingest_s.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lz4.h>

#include "encode.h"

#define LIMIT_FILE_BYTES ((size_t)8 << 20) /* written round and round */
#define LIMIT_THREADS_MAX 256
#define LIMIT_BUF_BYTES ((size_t)1 << 20) /* written over and over */

typedef struct limit_thread {
  int fd;
  size_t off;
  unsigned char *buf; /* LIMIT_BUF_BYTES */
} limit_thread;

typedef struct limit_ctx {
  const char *dir;
  const batch *batches; /* w->batches: a batch's index is b - batches */
  size_t *frame_bytes;  /* per batch */
  limit_thread th[LIMIT_THREADS_MAX];
} limit_ctx;

static int limit_begin(void *ctx, int tid) {
  limit_ctx *c = ctx;
  limit_thread *t = &c->th[tid];
  char path[4096 + 64];
  snprintf(path, sizeof path, "%s/limit-%d", c->dir, tid);
  t->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  t->buf = calloc(1, LIMIT_BUF_BYTES);
  if (t->fd < 0 || t->buf == NULL) {
    bench_fail("open %s: %s", path, t->fd < 0 ? strerror(errno) : "no memory");
    return -1;
  }
  /* zero-filled and synced, as a fresh WAL file is before its first
   * record */
  for (size_t done = 0; done < LIMIT_FILE_BYTES;) {
    ssize_t n = pwrite(t->fd, t->buf, LIMIT_BUF_BYTES, (off_t)done);
    if (n <= 0) {
      bench_fail("writing %s: %s", path, strerror(errno));
      return -1;
    }
    done += (size_t)n;
  }
  if (fsync(t->fd) != 0) {
    bench_fail("fsync %s: %s", path, strerror(errno));
    return -1;
  }
  memset(t->buf, 0xA5, LIMIT_BUF_BYTES);
  return 0;
}

/* The length of b's WAL frame: headers and the LZ4-compressed rows.
 * 0 when out of memory. */
static size_t frame_bytes_of(const batch *b) {
  size_t raw = 0;
  for (size_t i = 0; i < b->count; i++)
    raw += enc_event_size(&b->events[i]);
  uint8_t *rows = malloc(raw ? raw : 1);
  char *lz = malloc((size_t)LZ4_compressBound((int)raw) + 1);
  size_t stored = 0, pos = 0;
  if (rows != NULL && lz != NULL) {
    for (size_t i = 0; i < b->count; i++)
      pos += enc_event(&b->events[i], rows + pos);
    int n = LZ4_compress_default((const char *)rows, lz, (int)raw,
                                 LZ4_compressBound((int)raw));
    stored = n > 0 && (size_t)n < raw ? (size_t)n : raw; /* as the WAL */
  }
  free(rows);
  free(lz);
  if (stored == 0 && raw > 0)
    return 0;
  return 24 + 1 + strlen(b->tenant) + 13 + stored;
}

static int limit_append(void *ctx, int tid, const batch *b) {
  limit_ctx *c = ctx;
  limit_thread *t = &c->th[tid];
  size_t n = c->frame_bytes[b - c->batches];
  if (n > LIMIT_FILE_BYTES)
    n = LIMIT_FILE_BYTES;
  if (t->off + n > LIMIT_FILE_BYTES)
    t->off = 0;
  for (size_t done = 0; done < n;) {
    size_t k = n - done < LIMIT_BUF_BYTES ? n - done : LIMIT_BUF_BYTES;
    ssize_t w = pwrite(t->fd, t->buf, k, (off_t)(t->off + done));
    if (w <= 0) {
      bench_fail("write: %s", strerror(errno));
      return -1;
    }
    done += (size_t)w;
  }
  t->off += n;
  if (fdatasync(t->fd) != 0) {
    bench_fail("fdatasync: %s", strerror(errno));
    return -1;
  }
  return 0;
}

int run_limit(const workload *w, const char *dir, int threads,
              const char *label, run_result *out) {
  run_result_clear(out);
  if (threads > LIMIT_THREADS_MAX) {
    bench_fail("at most %d threads", LIMIT_THREADS_MAX);
    return -1;
  }
  if (mkdir(dir, 0755) != 0) {
    bench_fail("mkdir %s: %s", dir, strerror(errno));
    return -1;
  }
  limit_ctx *c = calloc(1, sizeof *c);
  if (c == NULL) {
    bench_fail("out of memory");
    return -1;
  }
  c->dir = dir;
  c->batches = w->batches;
  c->frame_bytes = malloc(sizeof *c->frame_bytes * (w->batches_count + 1));
  for (int i = 0; i < LIMIT_THREADS_MAX; i++)
    c->th[i].fd = -1;
  for (size_t i = 0; c->frame_bytes && i < w->batches_count; i++)
    if ((c->frame_bytes[i] = frame_bytes_of(&w->batches[i])) == 0) {
      free(c->frame_bytes);
      c->frame_bytes = NULL;
    }
  if (c->frame_bytes == NULL) {
    free(c);
    bench_fail("out of memory");
    return -1;
  }
  driver_ops ops = {limit_begin, limit_append, NULL, c};
  int rc = drive(w, threads, &ops, label, &out->ingest_s);
  for (int i = 0; i < threads; i++) {
    if (c->th[i].fd >= 0)
      close(c->th[i].fd);
    free(c->th[i].buf);
  }
  free(c->frame_bytes);
  free(c);
  return rc;
}
