/*
 * fwdqueue.h -- the frames of es-ingestd's forward queue files
 * (forward.h): writing one, reading one, and scanning a file for its
 * valid prefix after a crash.  Pure file I/O on a descriptor (no threads,
 * no HTTP), so that tests/fuzz/fuzz_fwdqueue.c drives it alone.
 *
 * A frame (native byte order: the queue is this host's own):
 *
 *   u32 magic 'EFW1'   u32 key_len   u32 body_len   u32 events
 *   i64 enqueued_us    u64 xxh64(key, body)   key   body
 *
 * key is the write key, body a Segment batch ({"batch":[...]}).
 */
#ifndef INGESTD_FWDQUEUE_H
#define INGESTD_FWDQUEUE_H

#include <stddef.h>
#include <stdint.h>

#define FWDQ_MAGIC 0x31574645u /* "EFW1" */
#define FWDQ_FRAME_BYTES_MAX (64u << 20)

typedef struct fwdq_head {
  uint32_t magic, key_len, body_len, events;
  int64_t enqueued_us;
  uint64_t sum;
} fwdq_head;

/*
 * Reads the frame at off of fd into *h and, when buf is not NULL, its key
 * and body into *buf (malloc'ed, NUL-terminated, key first; the caller
 * frees it).  1 a whole valid frame, 0 the end of the file, -1 a torn or
 * damaged frame (short, bad magic, over FWDQ_FRAME_BYTES_MAX, checksum).
 */
int fwdq_read(int fd, uint64_t off, fwdq_head *h, char **buf);

/*
 * Walks the frames of fd from offset 0.  *end_out: the end of the last
 * valid frame; *events_out and *bytes_out: events and body bytes of the
 * valid frames at or after `from`.  Returns 0 when the file ends cleanly,
 * 1 when a torn or damaged frame stops the walk at *end_out (the caller
 * cuts the file there).
 */
int fwdq_scan(int fd, uint64_t from, uint64_t *end_out, uint64_t *events_out,
              uint64_t *bytes_out);

/*
 * Appends one frame with a single writev at the end of fd (opened with
 * O_APPEND), whose size before is size_before.  0, or -1 with errno; a
 * failed or short write is cut off again (ftruncate to size_before), so
 * the file stays whole frames.
 */
int fwdq_append(int fd, uint64_t size_before, const char *key, size_t key_len,
                const char *body, size_t body_len, uint32_t events,
                int64_t enqueued_us);

/* The frame's size on disk. */
static inline uint64_t fwdq_frame_bytes(const fwdq_head *h) {
  return sizeof *h + (uint64_t)h->key_len + h->body_len;
}

#endif /* INGESTD_FWDQUEUE_H */
