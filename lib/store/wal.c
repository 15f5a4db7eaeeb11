/*
 * wal.c -- framing, writing, reading and reclaiming the shard logs.
 * The format and the invariants are in wal.h; the reasons are here.
 *
 * Why preallocate with zeros: on ext4 and xfs an fdatasync after a write
 * that extends a file must also commit the new size through the journal;
 * an overwrite of already-allocated, already-written blocks need not.  On
 * this project's reference machine that halves the cost of a 30 KB synced
 * append (284 us -> 124 us).  Zeros also mark the end of the log: a frame
 * header of zero length is "no more frames".
 *
 * Why the first file after an open may be small: zero-filling file_bytes
 * takes tens of milliseconds (about 90 ms for 32 MiB here), and the first
 * acknowledgement after an open must not wait for it.  When no zero-filled
 * spare is ready for the first file after an open (always so for a fresh
 * store), that file is zero-filled to WAL_FIRST_BYTES only (1 MiB: a few
 * milliseconds), and the writer moves on to the spare as soon as the
 * housekeeper has made one, or when the small file is full (invariant 5 of
 * wal.h).  It is still preallocated, so a full disk fails its creation,
 * before any frame is written (retryable: store/gate.c), never a frame's
 * write.
 *
 * Why a spare is named "spare" only once complete: it is zero-filled as
 * "spare.tmp", synced, then renamed "spare".  A file named "spare" is
 * therefore all zeros, durably, and the next open adopts it instead of
 * deleting it (deleting 32 MiB took 17 ms here, on the path of the first
 * acknowledgement after a restart); only a "spare.tmp" left by a crash
 * while it was being filled is deleted.
 *
 * Why one frame per group commit rather than per append: a torn write can
 * then damage only the last frame, so "an invalid frame followed by a
 * valid one" always means corruption, never a torn group.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/event.h"
#include "base/mem.h"
#include "store/wal.h"

#define WAL_ZERO_CHUNK (1u << 20)
#define WAL_FIRST_BYTES ((size_t)1 << 20) /* see the top of this file */
#define WAL_SPARE_BYTES_MIN (1u << 20)
#define WAL_LSN_SLACK ((uint64_t)1 << 40) /* plausibility bound in search */

struct es_wal {
  es_vfs *vfs;
  char dir[ES_PATH_MAX];
  size_t file_bytes;
  int sync;
  es_file *cur;
  uint64_t off;     /* next write offset in cur */
  uint64_t *firsts; /* first LSNs of live files, sorted; last = cur */
  size_t nfiles, cap;
  uint64_t bytes; /* bytes in live files (approximate for old ones) */
  /* A zero-filled file made ahead of need by another thread, so that a
   * rollover costs a rename instead of writing file_bytes of zeros while
   * appenders wait.  Guarded by spare_mu; the only state shared with a
   * thread other than the shard writer. */
  pthread_mutex_t spare_mu;
  es_file *spare;
  int spare_enabled;
  size_t cur_bytes;          /* cur's preallocated size: file_bytes, or less
                                for a small first file */
  int cur_small;             /* cur is a small first file: leave it for the
                                spare as soon as one is ready (after this
                                process wrote a frame to it: the first
                                acknowledgement after a restart goes where
                                the log stopped, with no new file) */
  uint64_t cur_open_off;     /* where this process began writing in cur */
  atomic_uint_fast64_t fill; /* wal->off, for the spare maker to read */
};

/* Builds one record; see wal.h. */
int es__wal_record_build(es_buf *out, const char *tenant, uint32_t events,
                         const uint8_t *rows, size_t rows_len, int compress) {
  size_t tlen = strlen(tenant);
  if (tlen == 0 || tlen > ES_TENANT_LEN_MAX || rows_len > 0x7fffffff)
    return ES_INVAL_BKPT("record too large");
  ES_TRY(es__buf_put_u8(out, (uint8_t)tlen));
  ES_TRY(es__buf_put(out, tenant, tlen));
  ES_TRY(es__buf_put_u32(out, events));
  ES_TRY(es__buf_put_u32(out, (uint32_t)rows_len));
  size_t at = out->len;
  if (compress && rows_len >= 256) {
    size_t bound = es__lz4_bound(rows_len);
    ES_TRY(es__buf_reserve(out, 5 + bound));
    size_t c = es__lz4_compress(rows, rows_len, out->data + at + 5, bound);
    if (c > 0 && c < rows_len - rows_len / 8) {
      es__le32(out->data + at, (uint32_t)c);
      out->data[at + 4] = ES_WAL_CODEC_LZ4;
      out->len = at + 5 + c;
      return ES_OK;
    }
  }
  ES_TRY(es__buf_put_u32(out, (uint32_t)rows_len));
  ES_TRY(es__buf_put_u8(out, ES_WAL_CODEC_RAW));
  return es__buf_put(out, rows, rows_len);
}

static uint64_t wal_frame_checksum(const uint8_t *hdr, const uint8_t *payload,
                                   size_t len) {
  return es__hash64(payload, len, es__hash64(hdr, 16, 0));
}

/* Fills a frame header in place. */
void es__wal_frame_finish(uint8_t *buf, size_t total_len, uint64_t lsn) {
  size_t len = total_len - ES_WAL_FRAME_HDR;
  es__le32(buf, (uint32_t)len);
  es__le32(buf + 4, 0);
  es__le64(buf + 8, lsn);
  es__le64(buf + 16, wal_frame_checksum(buf, buf + ES_WAL_FRAME_HDR, len));
}

/* Formats "<dir>/<016x first>.wal". */
int es__wal_path(char *buf, size_t cap, const char *dir, uint64_t first) {
  int n = snprintf(buf, cap, "%s/%016llx.wal", dir, (unsigned long long)first);
  if (n < 0 || (size_t)n >= cap)
    return ES_INVAL_BKPT("path too long: %s", dir);
  return ES_OK;
}

/* Creates path, zero-filled to bytes and synced (its directory entry is
 * the caller's business); removed again if that fails. */
static int wal_create_zeroed(es_wal *wal, const char *path, size_t bytes,
                             es_file **f_out) {
  es_vfs *vfs = wal->vfs;
  es_file *f = NULL;
  *f_out = NULL;
  ES_TRY(vfs->open(vfs, path, ES_IO_WRITE | ES_IO_CREATE | ES_IO_TRUNC, &f));
  int rc = ES_OK;
  if (bytes > 0) {
    size_t chunk = bytes < WAL_ZERO_CHUNK ? bytes : WAL_ZERO_CHUNK;
    uint8_t *zeros = es__calloc(1, chunk);
    if (!zeros)
      rc = ES_NOMEM_BKPT();
    for (uint64_t o = 0; rc == ES_OK && o < bytes; o += chunk) {
      size_t n = bytes - o < chunk ? bytes - o : chunk;
      rc = vfs->write(vfs, f, zeros, n, o);
    }
    es__free(zeros);
  }
  if (rc == ES_OK && wal->sync)
    rc = vfs->sync(vfs, f);
  if (rc < 0) { /* remove it: on a full disk its blocks are needed */
    char keep[512];
    snprintf(keep, sizeof(keep), "%s", es_errdetail());
    (void)vfs->close(vfs, f);
    (void)vfs->unlink(vfs, path); /* its failure must not hide the cause */
    return es__error_at(rc, __FILE__, __LINE__, "%s", keep);
  }
  *f_out = f;
  return ES_OK;
}

static int wal_spare_path(es_wal *wal, char *buf, size_t cap) {
  return es__path_join(buf, cap, wal->dir, "spare");
}

static int wal_spare_tmp_path(es_wal *wal, char *buf, size_t cap) {
  return es__path_join(buf, cap, wal->dir, "spare.tmp");
}

/* At open: adopts a complete spare left by the last process (see the top
 * of this file).  An incomplete one (spare.tmp) is left to the
 * housekeeper, which truncates and refills it in the background (deleting
 * a half-written 32 MiB file here took milliseconds on the path of the
 * first acknowledgement), unless this log keeps no spares.  Neither is an
 * error: a spare that cannot be adopted is deleted, and failing that,
 * left. */
static void wal_spare_adopt(es_wal *wal) {
  es_vfs *vfs = wal->vfs;
  char path[ES_PATH_MAX];
  if (!wal->spare_enabled &&
      wal_spare_tmp_path(wal, path, sizeof(path)) == ES_OK &&
      vfs->unlink(vfs, path) < 0)
    es__error_clear(); /* usually there is none */
  if (wal_spare_path(wal, path, sizeof(path)) != ES_OK)
    return;
  es_file *f = NULL;
  uint64_t size = 0;
  if (wal->spare_enabled && vfs->open(vfs, path, ES_IO_WRITE, &f) == ES_OK &&
      vfs->size(vfs, f, &size) == ES_OK && size == wal->file_bytes) {
    wal->spare = f;
    return;
  }
  if (f)
    (void)vfs->close(vfs, f);
  if (vfs->unlink(vfs, path) < 0)
    es__error_clear();
}

/* Makes the file for `first` current: the prepared spare renamed, or,
 * for the first file after an open when none is ready, a small zero-filled
 * file (see the top of this file), or a new zero-filled file; durable with
 * its directory entry before any frame is written into it. */
static int wal_new_file(es_wal *wal, uint64_t first, int *undone_out) {
  char path[ES_PATH_MAX], spare_path[ES_PATH_MAX];
  ES_TRY(es__wal_path(path, sizeof(path), wal->dir, first));
  ES_TRY(wal_spare_path(wal, spare_path, sizeof(spare_path)));
  ES_TRY(es__grow((void **)&wal->firsts, &wal->cap, wal->nfiles + 1,
                  sizeof(uint64_t)));
  es_vfs *vfs = wal->vfs;
  pthread_mutex_lock(&wal->spare_mu);
  es_file *f = wal->spare;
  wal->spare = NULL;
  pthread_mutex_unlock(&wal->spare_mu);
  int rc = ES_OK;
  /* only the first file after an open is small: a later rollover with
   * no spare ready (the housekeeper behind, or the disk full) writes the
   * whole file's zeros here */
  int small = !f && wal->spare_enabled && !wal->cur &&
              wal->file_bytes > WAL_FIRST_BYTES;
  size_t bytes = small ? WAL_FIRST_BYTES : wal->file_bytes;
  *undone_out = 0;
  if (f) {
    rc = vfs->rename(vfs, spare_path, path);
  } else {
    rc = wal_create_zeroed(wal, path, bytes, &f);
    *undone_out = rc < 0; /* removed again by wal_create_zeroed */
  }
  if (rc == ES_OK && wal->sync)
    rc = vfs->sync_dir(vfs, wal->dir);
  if (rc < 0) {
    if (f)
      (void)vfs->close(vfs, f);
    return rc;
  }
  if (wal->cur)
    (void)vfs->close(vfs, wal->cur);
  wal->cur = f;
  wal->off = wal->cur_open_off = 0;
  wal->cur_small = small;
  wal->cur_bytes = bytes;
  /* a small file wants a spare once its first frame is durable
   * (es__wal_sync): zeros written sooner would hold up that fdatasync */
  atomic_store(&wal->fill, 0);
  wal->firsts[wal->nfiles++] = first;
  wal->bytes += bytes;
  return ES_OK;
}

/* Whether the housekeeper has a spare ready (the writer's question). */
static int wal_spare_ready(es_wal *wal) {
  pthread_mutex_lock(&wal->spare_mu);
  int have = wal->spare != NULL;
  pthread_mutex_unlock(&wal->spare_mu);
  return have;
}

/* Prepares the spare file if the log wants one and has none (called from
 * a background thread).  Returns 1 if it made one, 0 if none was needed. */
int es__wal_prepare_spare(es_wal *wal, int force) {
  /* wanted once the current file is half full: early enough to be ready,
   * late enough not to compete with a fresh file's first appends */
  if (!wal || !wal->spare_enabled ||
      (!force && atomic_load_explicit(&wal->fill, memory_order_relaxed) <
                     wal->file_bytes / 2))
    return 0;
  pthread_mutex_lock(&wal->spare_mu);
  int have = wal->spare != NULL;
  pthread_mutex_unlock(&wal->spare_mu);
  if (have)
    return force ? 1 : 0;
  char path[ES_PATH_MAX], tmp[ES_PATH_MAX];
  es_file *f = NULL;
  ES_TRY(wal_spare_path(wal, path, sizeof(path)));
  ES_TRY(wal_spare_tmp_path(wal, tmp, sizeof(tmp)));
  ES_TRY(wal_create_zeroed(wal, tmp, wal->file_bytes, &f));
  int rc = wal->vfs->rename(wal->vfs, tmp, path);
  if (rc < 0) { /* on a full disk its blocks are needed */
    char keep[512];
    snprintf(keep, sizeof(keep), "%s", es_errdetail());
    (void)wal->vfs->close(wal->vfs, f);
    (void)wal->vfs->unlink(wal->vfs, tmp);
    return es__error_at(rc, __FILE__, __LINE__, "%s", keep);
  }
  pthread_mutex_lock(&wal->spare_mu);
  wal->spare = f;
  pthread_mutex_unlock(&wal->spare_mu);
  return 1;
}

/* Resumes writing into an existing file at offset off. */
static int wal_resume(es_wal *wal, uint64_t first, uint64_t off) {
  char path[ES_PATH_MAX];
  ES_TRY(es__wal_path(path, sizeof(path), wal->dir, first));
  ES_TRY(wal->vfs->open(wal->vfs, path, ES_IO_WRITE, &wal->cur));
  uint64_t size = 0;
  ES_TRY(wal->vfs->size(wal->vfs, wal->cur, &size));
  wal->off = wal->cur_open_off = off;
  /* a small first file is left for a spare as soon as one is ready */
  wal->cur_bytes = size < wal->file_bytes ? size : wal->file_bytes;
  wal->cur_small = wal->spare_enabled && size < wal->file_bytes;
  /* a small first file wants a spare after this process's first frame
   * (es__wal_write), not before it */
  atomic_store(&wal->fill, off);
  wal->firsts[wal->nfiles++] = first;
  return ES_OK;
}

/* Opens a shard log for writing; see wal.h. */
int es__wal_open(es_vfs *vfs, const char *dir, uint64_t next_lsn,
                 const uint64_t *live_firsts, size_t live_count,
                 uint64_t resume_off, size_t file_bytes, int sync,
                 es_wal **wal_out) {
  *wal_out = NULL;
  es_wal *wal = es__calloc(1, sizeof(*wal));
  if (!wal)
    return ES_NOMEM_BKPT();
  wal->vfs = vfs;
  wal->file_bytes = file_bytes;
  wal->sync = sync;
  pthread_mutex_init(&wal->spare_mu, NULL);
  /* Spares pay off for real file sizes; tests with tiny files keep every
   * I/O on the writer thread, in a deterministic order. */
  wal->spare_enabled = sync && file_bytes >= WAL_SPARE_BYTES_MIN;
  int rc = ES_OK;
  if (strlen(dir) >= sizeof(wal->dir))
    rc = ES_INVAL_BKPT("path too long: %s", dir);
  else
    strcpy(wal->dir, dir);
  if (rc == ES_OK)
    rc = es__grow((void **)&wal->firsts, &wal->cap, live_count + 1,
                  sizeof(uint64_t));
  if (rc == ES_OK)
    wal_spare_adopt(wal);
  int resume = live_count > 0 && resume_off > 0 &&
               resume_off + ES_WAL_FRAME_HDR < file_bytes;
  if (rc == ES_OK) {
    size_t keep = resume ? live_count - 1 : live_count;
    for (size_t i = 0; i < keep; i++)
      if (resume || live_firsts[i] != next_lsn) /* frameless: recreated */
        wal->firsts[wal->nfiles++] = live_firsts[i];
    wal->bytes = (uint64_t)(wal->nfiles + (resume ? 1 : 0)) * file_bytes;
    if (resume)
      rc = wal_resume(wal, live_firsts[live_count - 1], resume_off);
    else if (wal->spare_enabled)   /* the first write makes the file (small, */
      atomic_store(&wal->fill, 0); /* or an adopted spare); a spare is wanted
                                      only after it: zeros written now would
                                      hold up the first fdatasync */
    else
      rc = wal_new_file(wal, next_lsn, &(int){0});
  }
  if (rc < 0) {
    es__wal_close(wal);
    return rc;
  }
  *wal_out = wal;
  return ES_OK;
}

/* Writes one frame at the end of the log, rolling to a new file when the
 * frame would not fit (a frame larger than a file gets a file of its own,
 * which then grows past its preallocation). */
int es__wal_roll(es_wal *wal, size_t len, uint64_t lsn, int *undone_out) {
  *undone_out = 0;
  if (!wal->cur || (wal->off > 0 && wal->off + len > wal->cur_bytes) ||
      (wal->cur_small && wal->off > wal->cur_open_off && wal_spare_ready(wal)))
    return wal_new_file(wal, lsn, undone_out);
  return ES_OK;
}

int es__wal_write(es_wal *wal, const uint8_t *frame, size_t len, uint64_t lsn) {
  ES_TRY(es__wal_roll(wal, len, lsn, &(int){0}));
  ES_TRY(wal->vfs->write(wal->vfs, wal->cur, frame, len, wal->off));
  wal->off += len;
  atomic_store_explicit(&wal->fill, wal->off, memory_order_relaxed);
  if (wal->off > wal->cur_bytes)
    wal->bytes += len;
  return ES_OK;
}

/* fdatasync of the current file: every earlier file was synced before the
 * current one received its first frame (invariant 3). */
int es__wal_sync(es_wal *wal) {
  if (!wal->sync || !wal->cur) /* nothing written since open */
    return ES_OK;
  ES_TRY(wal->vfs->sync(wal->vfs, wal->cur));
  /* a small first file with a durable frame of this process wants a
   * full-size spare now (the housekeeper reads fill) */
  if (wal->cur_small && wal->off > wal->cur_open_off)
    atomic_store(&wal->fill, wal->file_bytes);
  return ES_OK;
}

/* Deletes whole files below keep_lsn; see wal.h. */
int es__wal_reclaim(es_wal *wal, uint64_t keep_lsn) {
  size_t drop = 0;
  while (drop + 1 < wal->nfiles && wal->firsts[drop + 1] <= keep_lsn)
    drop++;
  int rc = ES_OK;
  size_t done = 0;
  for (; done < drop; done++) {
    char path[ES_PATH_MAX];
    rc = es__wal_path(path, sizeof(path), wal->dir, wal->firsts[done]);
    if (rc == ES_OK)
      rc = wal->vfs->unlink(wal->vfs, path);
    if (rc == ES_ENOTFOUND)
      rc = ES_OK;
    if (rc < 0)
      break;
    wal->bytes -= wal->bytes >= wal->file_bytes ? wal->file_bytes : 0;
  }
  if (done > 0) {
    memmove(wal->firsts, wal->firsts + done,
            (wal->nfiles - done) * sizeof(uint64_t));
    wal->nfiles -= done;
  }
  return rc;
}

/* The live files' first LSNs; see wal.h. */
size_t es__wal_files(const es_wal *wal, const uint64_t **firsts_out,
                     uint64_t *file_bytes_out) {
  *firsts_out = wal->firsts;
  *file_bytes_out = wal->file_bytes;
  return wal->nfiles;
}

/* Bytes held by live log files. */
uint64_t es__wal_bytes(const es_wal *wal) { return wal ? wal->bytes : 0; }

/* Closes and frees a writer. */
void es__wal_close(es_wal *wal) {
  if (!wal)
    return;
  if (wal->cur)
    (void)wal->vfs->close(wal->vfs, wal->cur);
  if (wal->spare)
    (void)wal->vfs->close(wal->vfs, wal->spare);
  pthread_mutex_destroy(&wal->spare_mu);
  es__free(wal->firsts);
  es__free(wal);
}

/* --- reading --------------------------------------------------------- */

/* Checks the frame at off of a file image; returns its payload length or
 * -1 when it is not a valid frame with an LSN above prev_lsn. */
static int64_t wal_frame_valid(const uint8_t *img, uint64_t size, uint64_t off,
                               uint64_t prev_lsn) {
  if (size - off < ES_WAL_FRAME_HDR)
    return -1;
  const uint8_t *h = img + off;
  uint64_t len = es__get_le32(h);
  uint64_t lsn = es__get_le64(h + 8);
  if (len == 0 || len > size - off - ES_WAL_FRAME_HDR)
    return -1;
  if (es__get_le32(h + 4) != 0 || lsn <= prev_lsn ||
      lsn - prev_lsn > WAL_LSN_SLACK)
    return -1;
  if (wal_frame_checksum(h, h + ES_WAL_FRAME_HDR, len) != es__get_le64(h + 16))
    return -1;
  return (int64_t)len;
}

static int wal_all_zero(const uint8_t *p, uint64_t n) {
  for (uint64_t i = 0; i < n; i++)
    if (p[i])
      return 0;
  return 1;
}

/* The offset of the first non-zero byte at or after o (size if none). */
static uint64_t wal_next_nonzero(const uint8_t *img, uint64_t size,
                                 uint64_t o) {
  while (o < size && (o & 7))
    if (img[o++])
      return o - 1;
  while (o + 8 <= size) {
    uint64_t w;
    memcpy(&w, img + o, 8);
    if (w)
      break;
    o += 8;
  }
  while (o < size && !img[o])
    o++;
  return o;
}

/* Walks the records of one verified frame, calling fn for each. */
/* With fn NULL the records are checked for shape and counted, not
 * decompressed (a replay that skips them needs no rows). */
static int wal_frame_records(const char *path, uint64_t off, uint64_t lsn,
                             const uint8_t *p, size_t len, es_buf *scratch,
                             es_wal_rec_fn fn, void *ud, es_wal_scan *scan) {
  es_rd r = es__rd(p, len);
  while (r.p < r.end) {
    es_wal_rec rec;
    uint8_t tlen = es__rd_u8(&r);
    const uint8_t *t = es__rd_bytes(&r, tlen);
    rec.events = es__rd_u32(&r);
    uint32_t raw_len = es__rd_u32(&r);
    uint32_t stored_len = es__rd_u32(&r);
    uint8_t codec = es__rd_u8(&r);
    const uint8_t *stored = es__rd_bytes(&r, stored_len);
    if (r.bad || tlen == 0 || tlen > ES_TENANT_LEN_MAX || codec > 1 ||
        (codec == ES_WAL_CODEC_RAW && raw_len != stored_len))
      return ES_CORRUPT_BKPT("%s: frame at %llu: malformed record", path,
                             (unsigned long long)off);
    memcpy(rec.tenant, t, tlen);
    rec.tenant[tlen] = '\0';
    if (codec == ES_WAL_CODEC_LZ4 && fn) {
      if (raw_len > 0x7fffffffu ||
          (uint64_t)raw_len > (uint64_t)stored_len * 255 + 64)
        return ES_CORRUPT_BKPT("%s: frame at %llu: record claims %u raw "
                               "bytes from %u",
                               path, (unsigned long long)off, raw_len,
                               stored_len);
      scratch->len = 0;
      ES_TRY(es__buf_reserve(scratch, raw_len));
      int rc = es__lz4_decompress(stored, stored_len, scratch->data, raw_len);
      if (rc < 0)
        return ES_CORRUPT_BKPT("%s: frame at %llu: record does not "
                               "decompress",
                               path, (unsigned long long)off);
      rec.rows = scratch->data;
    } else {
      rec.rows = stored;
    }
    rec.rows_len = raw_len;
    scan->records++;
    scan->events += rec.events;
    if (fn)
      ES_TRY(fn(ud, lsn, &rec, off));
  }
  return ES_OK;
}

/* Reads frames held in memory, all of which must be valid; see wal.h. */
int es__wal_read_buf(const char *what, const uint8_t *buf, size_t len,
                     uint64_t prev_lsn, es_wal_frame_fn frame_fn,
                     es_wal_rec_fn rec_fn, void *ud, es_wal_scan *scan) {
  memset(scan, 0, sizeof(*scan));
  scan->last_lsn = prev_lsn;
  es_buf scratch = {0};
  int rc = ES_OK;
  uint64_t off = 0;
  while (rc == ES_OK && off < len) {
    int64_t flen = wal_frame_valid(buf, len, off, prev_lsn);
    if (flen < 0) {
      rc = ES_CORRUPT_BKPT("%s: frame at %llu is damaged (length, LSN or "
                           "checksum)",
                           what, (unsigned long long)off);
      break;
    }
    uint64_t lsn = es__get_le64(buf + off + 8);
    size_t whole = ES_WAL_FRAME_HDR + (size_t)flen;
    if (frame_fn)
      rc = frame_fn(ud, lsn, buf + off, whole);
    if (rc == ES_OK)
      rc = wal_frame_records(what, off, lsn, buf + off + ES_WAL_FRAME_HDR,
                             (size_t)flen, &scratch, rec_fn, ud, scan);
    prev_lsn = scan->last_lsn = lsn;
    scan->frames++;
    off += whole;
    scan->end_off = off;
  }
  es__buf_free(&scratch);
  return rc;
}

/* The writer's position; see wal.h. */
void es__wal_position(const es_wal *w, uint64_t *first_lsn_out,
                      uint64_t *off_out) {
  *first_lsn_out = w->nfiles ? w->firsts[w->nfiles - 1] : 0;
  *off_out = w->nfiles ? w->off : 0;
}

/* Reads a whole log file; see wal.h for the torn-tail rule. */
/* Reads a log file for es__wal_read_file, but keeps only what matters:
 * the bytes up to the last non-zero chunk plus one zero chunk.  The rest
 * of a preallocated file is zeros, checked through a small buffer and not
 * kept; so opening a store does not allocate (and fault in) a whole file
 * per shard.  A non-zero byte after a zero chunk keeps everything, as the
 * walk must then see it (it may be a valid frame after damage). */
#define WAL_LOAD_CHUNK (1u << 20)

static int wal_chunk_zero(const uint8_t *p, size_t n) {
  return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static int wal_load(es_vfs *vfs, const char *path, uint64_t start,
                    uint8_t **img_out, size_t *len_out,
                    uint64_t *file_bytes_out) {
  *img_out = NULL;
  *len_out = 0;
  es_file *f = NULL;
  ES_TRY(vfs->open(vfs, path, ES_IO_READ, &f));
  uint64_t size = 0;
  int rc = vfs->size(vfs, f, &size);
  if (rc == ES_OK && size > (UINT64_C(1) << 32))
    rc = ES_CORRUPT_BKPT("%s: implausible size %llu", path,
                         (unsigned long long)size);
  if (rc == ES_OK && start > size)
    rc = ES_CORRUPT_BKPT("%s: shorter (%llu bytes) than its CLEAN offset %llu",
                         path, (unsigned long long)size,
                         (unsigned long long)start);
  es_buf img = {0};
  uint8_t *scratch = NULL;
  uint64_t off = start;
  int trim = 1; /* still looking for the zero tail */
  while (rc == ES_OK && off < size) {
    size_t n =
        size - off < WAL_LOAD_CHUNK ? (size_t)(size - off) : WAL_LOAD_CHUNK;
    rc = es__buf_reserve(&img, n);
    if (rc == ES_OK)
      rc = es__io_read_exact(vfs, f, img.data + img.len, n, off, path);
    if (rc < 0)
      break;
    img.len += n;
    off += n;
    if (!trim || !wal_chunk_zero(img.data + img.len - n, n))
      continue;
    /* a zero chunk: is everything after it zero too? */
    if (!scratch && !(scratch = es__malloc(WAL_LOAD_CHUNK))) {
      rc = ES_NOMEM_BKPT();
      break;
    }
    uint64_t o = off;
    int zeros = 1;
    while (rc == ES_OK && zeros && o < size) {
      size_t m =
          size - o < WAL_LOAD_CHUNK ? (size_t)(size - o) : WAL_LOAD_CHUNK;
      rc = es__io_read_exact(vfs, f, scratch, m, o, path);
      zeros = rc == ES_OK && wal_chunk_zero(scratch, m);
      o += m;
    }
    if (rc == ES_OK && zeros)
      break;  /* keep [0, off): the rest is zeros */
    trim = 0; /* not all zero: load everything, as the walk needs it */
  }
  es__free(scratch);
  int rc2 = vfs->close(vfs, f);
  if (rc == ES_OK)
    rc = rc2;
  if (rc < 0) {
    es__buf_free(&img);
    return rc;
  }
  *img_out = img.data ? img.data : es__malloc(1);
  if (!*img_out)
    return ES_NOMEM_BKPT();
  *len_out = img.len;
  *file_bytes_out = size;
  return ES_OK;
}

int es__wal_read_file(es_vfs *vfs, const char *path, int is_last,
                      uint64_t prev_lsn, es_wal_rec_fn fn, void *ud,
                      es_wal_scan *scan) {
  return es__wal_read_file_after(vfs, path, is_last, prev_lsn, 0, fn, ud, scan);
}

/* As es__wal_read_file, but the records of frames at or below skip_lsn
 * are not decoded nor passed to fn; see wal.h. */
int es__wal_read_file_after(es_vfs *vfs, const char *path, int is_last,
                            uint64_t prev_lsn, uint64_t skip_lsn,
                            es_wal_rec_fn fn, void *ud, es_wal_scan *scan) {
  return es__wal_read_file_at(vfs, path, is_last, 0, prev_lsn, skip_lsn, fn, ud,
                              scan);
}

/* As es__wal_read_file_after, from byte `start` on; see wal.h.  Offsets
 * inside the walk are of the loaded image (`base` bytes into the file);
 * those reported are the file's. */
int es__wal_read_file_at(es_vfs *vfs, const char *path, int is_last,
                         uint64_t base, uint64_t prev_lsn, uint64_t skip_lsn,
                         es_wal_rec_fn fn, void *ud, es_wal_scan *scan) {
  memset(scan, 0, sizeof(*scan));
  uint8_t *img = NULL;
  size_t size = 0;
  ES_TRY(wal_load(vfs, path, base, &img, &size, &scan->file_bytes));
  es_buf scratch = {0};
  int rc = ES_OK;
  uint64_t off = 0;
  while (off < size) {
    scan->end_off = base + off; /* on failure: the frame at fault */
    if (size - off >= ES_WAL_FRAME_HDR && wal_all_zero(img + off, 16))
      break; /* zeros: the preallocated rest of the file */
    int64_t len = wal_frame_valid(img, size, off, prev_lsn);
    if (len < 0) {
      if (size - off < ES_WAL_FRAME_HDR && wal_all_zero(img + off, size - off))
        break;
      scan->torn = 1;
      break;
    }
    uint64_t lsn = es__get_le64(img + off + 8);
    rc = wal_frame_records(path, base + off, lsn, img + off + ES_WAL_FRAME_HDR,
                           (size_t)len, &scratch, lsn > skip_lsn ? fn : NULL,
                           ud, scan);
    if (rc < 0)
      goto done;
    prev_lsn = scan->last_lsn = lsn;
    scan->frames++;
    off += ES_WAL_FRAME_HDR + (uint64_t)len;
  }
  uint64_t dirty = size;
  while (dirty > off && img[dirty - 1] == 0)
    dirty--;
  scan->end_off = base + off;
  scan->dirty_end = base + dirty;
  /* Whatever ended the walk (zeros or an invalid frame), nothing valid may
   * follow: a valid frame after it means the log was damaged in the
   * middle, and replaying past or stopping at the damage would both be
   * wrong. */
  uint64_t o = off + 1;
  while (o + ES_WAL_FRAME_HDR <= size) {
    uint64_t nz = wal_next_nonzero(img, size, o);
    if (nz >= size)
      break;
    o = nz > o + 3 ? nz - 3 : o; /* a header has a non-zero length byte */
    for (uint64_t end = nz + 1; o <= end && o + ES_WAL_FRAME_HDR <= size; o++) {
      if (wal_frame_valid(img, size, o, prev_lsn) >= 0) {
        rc = ES_CORRUPT_BKPT("%s: invalid frame at offset %llu followed by "
                             "a valid frame at %llu",
                             path, (unsigned long long)(base + off),
                             (unsigned long long)(base + o));
        goto done;
      }
    }
  }
  if (scan->torn && !is_last)
    rc = ES_CORRUPT_BKPT("%s: invalid frame at offset %llu in a log file "
                         "that is not the newest",
                         path, (unsigned long long)(base + off));
done:
  es__buf_free(&scratch);
  es__free(img);
  return rc;
}

static int wal_list_one(void *ud, const char *name) {
  void **st = ud;
  uint64_t **arr = st[0];
  size_t *n = st[1], *cap = st[2];
  size_t l = strlen(name);
  if (l != 20 || strcmp(name + 16, ".wal") != 0)
    return 0;
  char *end = NULL;
  unsigned long long v = strtoull(name, &end, 16);
  if (end != name + 16)
    return 0;
  ES_TRY(es__grow((void **)arr, cap, *n + 1, sizeof(uint64_t)));
  (*arr)[(*n)++] = v;
  return 0;
}

static int wal_cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Lists a shard's log files in LSN order. */
int es__wal_list(es_vfs *vfs, const char *dir, uint64_t **firsts_out,
                 size_t *count_out) {
  uint64_t *arr = NULL;
  size_t n = 0, cap = 0;
  void *st[3] = {&arr, &n, &cap};
  int rc = vfs->list(vfs, dir, wal_list_one, st);
  if (rc == ES_ENOTFOUND)
    rc = ES_OK;
  if (rc < 0) {
    es__free(arr);
    *firsts_out = NULL;
    *count_out = 0;
    return rc;
  }
  if (n > 1)
    qsort(arr, n, sizeof(uint64_t), wal_cmp_u64);
  *firsts_out = arr;
  *count_out = n;
  return ES_OK;
}

/* Reads the frames of a log file from offset `off` on, as far as they are
 * complete and valid; see wal.h. */
int es__wal_follow(es_vfs *vfs, const char *path, uint64_t off,
                   uint64_t prev_lsn, es_wal_rec_fn fn, void *ud,
                   es_wal_scan *scan) {
  memset(scan, 0, sizeof(*scan));
  scan->end_off = off;
  scan->last_lsn = prev_lsn;
  es_file *f = NULL;
  ES_TRY(vfs->open(vfs, path, ES_IO_READ, &f));
  es_buf frame = {0}, scratch = {0};
  int rc = ES_OK;
  for (;;) {
    uint8_t h[ES_WAL_FRAME_HDR];
    size_t got = 0;
    rc = vfs->read(vfs, f, h, sizeof(h), off, &got);
    if (rc < 0 || got < sizeof(h) || wal_all_zero(h, 16))
      break; /* the end of what is written so far */
    uint64_t len = es__get_le32(h);
    frame.len = 0;
    if (len == 0 || len > (UINT64_C(1) << 31) ||
        (rc = es__buf_reserve(&frame, ES_WAL_FRAME_HDR + len)) < 0)
      break;
    memcpy(frame.data, h, sizeof(h));
    rc = vfs->read(vfs, f, frame.data + ES_WAL_FRAME_HDR, (size_t)len,
                   off + ES_WAL_FRAME_HDR, &got);
    if (rc < 0 || got < len)
      break;
    /* an invalid frame here is one still being written: try again later */
    if (wal_frame_valid(frame.data, ES_WAL_FRAME_HDR + len, 0, prev_lsn) < 0)
      break;
    uint64_t lsn = es__get_le64(h + 8);
    rc = wal_frame_records(path, off, lsn, frame.data + ES_WAL_FRAME_HDR,
                           (size_t)len, &scratch, fn, ud, scan);
    if (rc < 0)
      break;
    prev_lsn = scan->last_lsn = lsn;
    scan->frames++;
    off += ES_WAL_FRAME_HDR + len;
    scan->end_off = off;
  }
  es__buf_free(&frame);
  es__buf_free(&scratch);
  int rc2 = vfs->close(vfs, f);
  return rc < 0 ? rc : rc2;
}

/* --- reading behind the writer (the WAL shipper) --------------------- */

/* Where the frame after lsn lies: the newest file that may hold lsn + 1
 * (files are named by the first LSN they may hold), from its start. */
static int wal_cursor_find(es_vfs *vfs, const char *dir, uint64_t lsn,
                           es_wal_cursor *cur) {
  uint64_t *firsts = NULL;
  size_t n = 0;
  ES_TRY(es__wal_list(vfs, dir, &firsts, &n));
  size_t i = n;
  while (i > 0 && firsts[i - 1] > lsn + 1)
    i--;
  int rc = ES_OK;
  if (i == 0)
    rc = ES_ERR(ES_ENOTFOUND,
                "%s: the WAL frames after LSN %llu are no longer on disk", dir,
                (unsigned long long)lsn);
  else
    *cur = (es_wal_cursor){.file_first = firsts[i - 1], .off = 0, .lsn = 0};
  es__free(firsts);
  return rc;
}

/* The first LSN of the file after `first`, 0 if none yet. */
static int wal_next_file(es_vfs *vfs, const char *dir, uint64_t first,
                         uint64_t *next_out) {
  uint64_t *firsts = NULL;
  size_t n = 0;
  ES_TRY(es__wal_list(vfs, dir, &firsts, &n));
  *next_out = 0;
  for (size_t i = 0; i < n && !*next_out; i++)
    if (firsts[i] > first)
      *next_out = firsts[i];
  es__free(firsts);
  return ES_OK;
}

/* Appends the frame at cur (header h read) to out when its LSN is the
 * one wanted next, skips it when below; checks it whole.  A frame above
 * it is a hole (ES_ENOTFOUND: the LSNs of a log are consecutive, the
 * writer fails the store rather than skip one).  *len_out: its bytes. */
static int wal_frame_take(es_vfs *vfs, es_file *f, const char *path,
                          const uint8_t *h, es_wal_cursor *cur, uint64_t want,
                          es_buf *out, size_t *len_out) {
  uint64_t len = es__get_le32(h), lsn = es__get_le64(h + 8);
  if (len == 0 || len > (UINT64_C(1) << 31) || lsn <= cur->lsn)
    return ES_CORRUPT_BKPT("%s: frame at offset %llu is damaged (length or "
                           "LSN)",
                           path, (unsigned long long)cur->off);
  size_t whole = ES_WAL_FRAME_HDR + (size_t)len;
  *len_out = 0;
  if (lsn > want)
    return ES_ERR(ES_ENOTFOUND, "%s: WAL frame %llu is missing (found %llu)",
                  path, (unsigned long long)want, (unsigned long long)lsn);
  if (lsn == want) {
    size_t at = out->len;
    ES_TRY(es__buf_reserve(out, whole));
    ES_TRY(es__io_read_exact(vfs, f, out->data + at, whole, cur->off, path));
    if (wal_frame_valid(out->data + at, whole, 0, cur->lsn) < 0)
      return ES_CORRUPT_BKPT("%s: frame at offset %llu fails its checksum",
                             path, (unsigned long long)cur->off);
    out->len = at + whole;
    *len_out = whole;
  }
  cur->off += whole;
  cur->lsn = lsn;
  return ES_OK;
}

/* Reads synced frames behind the writer; see wal.h. */
int es__wal_read_frames(es_vfs *vfs, const char *dir, uint64_t after_lsn,
                        uint64_t upto_lsn, size_t bytes_max, es_wal_cursor *cur,
                        es_buf *out, uint64_t *first_out, uint64_t *last_out) {
  *first_out = *last_out = 0;
  if (upto_lsn <= after_lsn)
    return ES_OK;
  if (cur->file_first == 0 || cur->lsn > after_lsn) /* else skip to it */
    ES_TRY(wal_cursor_find(vfs, dir, after_lsn, cur));
  size_t got = 0;
  int rc = ES_OK, refound = 0;
  while (rc == ES_OK && cur->lsn < upto_lsn && (got == 0 || got < bytes_max)) {
    char path[ES_PATH_MAX];
    es_file *f = NULL;
    ES_TRY(es__wal_path(path, sizeof(path), dir, cur->file_first));
    rc = vfs->open(vfs, path, ES_IO_READ, &f);
    if (rc == ES_ENOTFOUND && !refound) {
      /* the file the cursor ended in was deleted (all of it was read):
       * find the place again, once */
      es__error_clear();
      refound = 1;
      rc = wal_cursor_find(vfs, dir, *last_out ? *last_out : after_lsn, cur);
      continue;
    }
    if (rc == ES_ENOTFOUND)
      rc =
          ES_ERR(ES_ENOTFOUND, "%s: removed before its frames were read", path);
    while (rc == ES_OK && cur->lsn < upto_lsn &&
           (got == 0 || got < bytes_max)) {
      uint8_t h[ES_WAL_FRAME_HDR];
      size_t n = 0;
      rc = vfs->read(vfs, f, h, sizeof(h), cur->off, &n);
      if (rc < 0 || n < sizeof(h) || wal_all_zero(h, 16))
        break; /* the end of this file's frames */
      size_t len = 0;
      uint64_t want = (*last_out ? *last_out : after_lsn) + 1;
      rc = wal_frame_take(vfs, f, path, h, cur, want, out, &len);
      if (rc == ES_OK && len > 0) {
        if (*first_out == 0)
          *first_out = cur->lsn;
        *last_out = cur->lsn;
        got += len;
      }
    }
    if (f)
      (void)vfs->close(vfs, f);
    if (rc < 0 || cur->lsn >= upto_lsn || (got > 0 && got >= bytes_max))
      break;
    refound = 0;
    uint64_t next = 0; /* this file is done: on to the next one */
    rc = wal_next_file(vfs, dir, cur->file_first, &next);
    if (rc == ES_OK && next == 0)
      rc = ES_ERR(ES_ENOTFOUND,
                  "%s: WAL frame %llu is in no file (last read: %llu)", dir,
                  (unsigned long long)upto_lsn, (unsigned long long)cur->lsn);
    if (rc == ES_OK)
      *cur = (es_wal_cursor){.file_first = next, .off = 0, .lsn = cur->lsn};
  }
  if (rc < 0)
    *cur = (es_wal_cursor){0}; /* find the place again next time */
  return rc;
}
