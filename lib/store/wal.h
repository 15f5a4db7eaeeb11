/*
 * wal.h -- the write-ahead log of one shard.
 *
 * A shard's log is a directory of files named by the first log sequence
 * number (LSN) they may hold, "<016x lsn>.wal", each preallocated with
 * zeros so that an fdatasync after an append need not update metadata
 * (right after an open, a small one until a full-size one is ready: 5).
 * The unit of writing is a frame: one group commit, holding the records of
 * every append that joined the group.  See docs/FORMAT.md, "WAL".
 *
 *   frame  := u32 payload_len | u32 flags (0) | u64 lsn | u64 checksum |
 *             payload
 *   payload:= record+
 *   record := u8 tenant_len | tenant | u32 events | u32 raw_len |
 *             u32 stored_len | u8 codec (0 raw, 1 lz4) | stored bytes
 *   raw    := row encodings (event.h), `events` of them, raw_len bytes
 *   checksum = XXH3(payload, seed = XXH3(first 16 header bytes, seed 0))
 *
 * Invariants:
 *  1. LSNs strictly increase along a shard's files, in file-name order.
 *  2. A frame is acknowledged only after the fdatasync that follows its
 *     write returned success; every frame before it in the file is then
 *     durable too.
 *  3. Only the newest file of a shard may end in a torn frame (invalid
 *     frame with no valid frame after it): a newer file receives frames
 *     only after every older frame was synced.  Anywhere else an invalid
 *     frame is corruption and is reported, never skipped.
 *  4. A file is deleted only when every record in it is in a segment
 *     recorded in its tenant's manifest (the caller decides; see db.c).
 *  5. Every file is preallocated with zeros: to file_bytes, or, for the
 *     first file after an open when no zero-filled spare was ready, to a
 *     small size (1 MiB) that the writer leaves for a full-size spare as
 *     soon as one is ready or the small file is full.  So the first
 *     acknowledgement after an open never waits for file_bytes of zeros,
 *     and a full disk fails a file's creation, never a frame's write.
 */
#ifndef ES_WAL_H
#define ES_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/codec.h"
#include "base/io.h"

#define ES_WAL_FRAME_HDR 24
#define ES_WAL_CODEC_RAW 0
#define ES_WAL_CODEC_LZ4 1

/* Builds one record (tenant's batch of encoded rows) into out; compresses
 * with LZ4 when that saves space and `compress` is set. */
int es__wal_record_build(es_buf *out, const char *tenant, uint32_t events,
                         const uint8_t *rows, size_t rows_len,
                         int compress) ES_MUST_CHECK;

/* Fills the header of the frame at buf (whose first ES_WAL_FRAME_HDR bytes
 * are reserved and whose payload follows) with length, lsn and checksum. */
void es__wal_frame_finish(uint8_t *buf, size_t total_len, uint64_t lsn);

/* --- writing --------------------------------------------------------- */

typedef struct es_wal es_wal;

/* Starts writing a shard's log in dir.  live_firsts lists the first LSNs
 * of the files present (sorted), which es__wal_reclaim may delete later.
 * With resume_off > 0 and room left, writing resumes in the newest of them
 * at that offset (the end of its valid frames, zeros after it); otherwise
 * a fresh file named next_lsn is started. */
int es__wal_open(es_vfs *vfs, const char *dir, uint64_t next_lsn,
                 const uint64_t *live_firsts, size_t live_count,
                 uint64_t resume_off, size_t file_bytes, int sync,
                 es_wal **wal_out) ES_MUST_CHECK;

/* Prepares a zero-filled spare file for the next rollover when the log
 * wants one (large files with syncing on; with force, even before the
 * current file is half full).  Safe to call from a thread other than the
 * writer.  Returns 1 if a spare is ready (made now, or with force already
 * there), 0 if none was needed.  A file it failed to make is removed. */
int es__wal_prepare_spare(es_wal *wal, int force) ES_MUST_CHECK;

/* Starts a new file when a frame of len bytes would not fit in the
 * current one (es__wal_write does it too).  On failure *undone_out says
 * whether the failure left nothing behind (the half-made file removed,
 * nothing written: the caller may retry later) or left a file name in
 * doubt (a failed rename or directory sync). */
int es__wal_roll(es_wal *wal, size_t len, uint64_t lsn,
                 int *undone_out) ES_MUST_CHECK;

/* Writes a finished frame (lsn must exceed all earlier ones); starts a new
 * file first when the frame does not fit in the current one. */
int es__wal_write(es_wal *wal, const uint8_t *frame, size_t len,
                  uint64_t lsn) ES_MUST_CHECK;

/* Makes everything written durable (fdatasync; nothing in ES_SYNC_NONE). */
int es__wal_sync(es_wal *wal) ES_MUST_CHECK;

/* Deletes files all of whose LSNs are below keep_lsn (never the current
 * file).  Failures are reported but leave the log consistent. */
int es__wal_reclaim(es_wal *wal, uint64_t keep_lsn) ES_MUST_CHECK;

/* The first LSNs of the live files, oldest first (the last is the one
 * being written), borrowed until the next call on wal; *file_bytes_out is
 * the preallocated size of a file.  Writer thread only, as the writes. */
size_t es__wal_files(const es_wal *wal, const uint64_t **firsts_out,
                     uint64_t *file_bytes_out);

/* Bytes in live files (for metrics and inspect). */
uint64_t es__wal_bytes(const es_wal *wal);

/* Closes the current file and frees the handle (NULL is fine). */
void es__wal_close(es_wal *wal);

/* Where the writer would write next: the current file's first LSN and
 * the offset in it (after its last frame).  For CLEAN (db.c). */
void es__wal_position(const es_wal *wal, uint64_t *first_lsn_out,
                      uint64_t *off_out);

/* --- reading --------------------------------------------------------- */

/* One record of a frame, as replay sees it. */
typedef struct es_wal_rec {
  char tenant[ES_TENANT_LEN_MAX + 1];
  uint32_t events;
  const uint8_t *rows; /* raw row encodings, borrowed */
  size_t rows_len;
} es_wal_rec;

/* Called per record: lsn of its frame, file offset of the frame. */
typedef int (*es_wal_rec_fn)(void *ud, uint64_t lsn, const es_wal_rec *rec,
                             uint64_t frame_off);

/* Result of reading one file. */
typedef struct es_wal_scan {
  uint64_t end_off;   /* offset after the last valid frame */
  uint64_t last_lsn;  /* lsn of the last valid frame (0 if none) */
  uint64_t frames;    /* valid frames */
  uint64_t records;   /* records in them */
  uint64_t events;    /* events in them */
  int torn;           /* 1: an invalid frame at end_off, nothing valid after */
  uint64_t dirty_end; /* offset after the last non-zero byte of the file */
  uint64_t file_bytes;
} es_wal_scan;

/* Reads every frame of one file in order, verifying checksums, calling fn
 * (may be NULL) per record.  prev_lsn is the last LSN of older files: the
 * first frame must exceed it.  A torn tail is accepted only when is_last;
 * otherwise, or when valid frames follow an invalid one, it returns
 * ES_ECORRUPT naming the path and offset. */
int es__wal_read_file(es_vfs *vfs, const char *path, int is_last,
                      uint64_t prev_lsn, es_wal_rec_fn fn, void *ud,
                      es_wal_scan *scan_out) ES_MUST_CHECK;

/* As es__wal_read_file, except that the records of frames whose LSN is at
 * or below skip_lsn are checked for shape and counted but neither
 * decompressed nor passed to fn: replay after a clean close (CLEAN) reads
 * the records it will skip at the cost of the frame checksums only. */
int es__wal_read_file_after(es_vfs *vfs, const char *path, int is_last,
                            uint64_t prev_lsn, uint64_t skip_lsn,
                            es_wal_rec_fn fn, void *ud,
                            es_wal_scan *scan_out) ES_MUST_CHECK;

/* As es__wal_read_file_after, reading the file from byte `base` on (a
 * frame boundary); the offsets in scan_out and in errors are the file's. */
int es__wal_read_file_at(es_vfs *vfs, const char *path, int is_last,
                         uint64_t base, uint64_t prev_lsn, uint64_t skip_lsn,
                         es_wal_rec_fn fn, void *ud,
                         es_wal_scan *scan_out) ES_MUST_CHECK;

/* Lists the WAL files of a shard directory as sorted first-LSNs (owned
 * array).  A missing directory gives zero files. */
/* For a reader beside a live writer: reads the frames of path from off on
 * (prev_lsn: the last LSN read before), as far as they are complete and
 * valid, calling fn per record.  An incomplete or invalid frame ends the
 * walk without an error (it may still be being written); scan_out->end_off
 * is where to continue, last_lsn the last LSN read (prev_lsn if none). */
int es__wal_follow(es_vfs *vfs, const char *path, uint64_t off,
                   uint64_t prev_lsn, es_wal_rec_fn fn, void *ud,
                   es_wal_scan *scan_out) ES_MUST_CHECK;

/* Called per frame by es__wal_read_buf: its LSN and whole bytes (header
 * included), borrowed for the call. */
typedef int (*es_wal_frame_fn)(void *ud, uint64_t lsn, const uint8_t *frame,
                               size_t len);

/* Reads frames that must all be whole and valid: an image held in memory
 * (a WAL chunk from the object store, replicate/walship.c), `what` naming
 * it in errors.  LSNs must increase from above prev_lsn; a frame that is
 * short, fails its checksum or holds a malformed record is ES_ECORRUPT.
 * frame_fn (may be NULL) sees each frame, then rec_fn (may be NULL) each
 * of its records. */
int es__wal_read_buf(const char *what, const uint8_t *buf, size_t len,
                     uint64_t prev_lsn, es_wal_frame_fn frame_fn,
                     es_wal_rec_fn rec_fn, void *ud,
                     es_wal_scan *scan_out) ES_MUST_CHECK;

/* A reader's place in a shard's log for es__wal_read_frames: the file
 * (its first LSN) and the offset after the frame of LSN lsn.  All zero:
 * unknown (the next read finds its place by listing and scanning). */
typedef struct es_wal_cursor {
  uint64_t file_first, off, lsn;
} es_wal_cursor;

/* For the WAL shipper (replicate/walship.c), beside the live writer:
 * appends to out the whole frames (header included, byte for byte) of the
 * log in dir with LSNs above after_lsn and at most upto_lsn, in order,
 * until out grew by at least bytes_max (always one frame at least).
 * upto_lsn must not exceed the last frame the writer has synced: every
 * frame up to it is complete, so a frame that is short or fails its
 * checksum is ES_ECORRUPT naming the file and offset, and a frame that
 * is gone (its file deleted: the LSNs of a log are consecutive) is
 * ES_ENOTFOUND.  *cur
 * saves the place between calls (zero it to start).  *first_out and
 * *last_out get the LSNs appended. */
int es__wal_read_frames(es_vfs *vfs, const char *dir, uint64_t after_lsn,
                        uint64_t upto_lsn, size_t bytes_max, es_wal_cursor *cur,
                        es_buf *out, uint64_t *first_out,
                        uint64_t *last_out) ES_MUST_CHECK;

int es__wal_list(es_vfs *vfs, const char *dir, uint64_t **firsts_out,
                 size_t *count_out) ES_MUST_CHECK;

/* Formats the path of the file with first LSN `first` in dir. */
int es__wal_path(char *buf, size_t cap, const char *dir,
                 uint64_t first) ES_MUST_CHECK;

#endif
