/*
 * fuzz_walchunk.c -- fuzz target: one WAL chunk object (durability tier
 * s3, docs/FORMAT.md "WAL chunks") as restore reads it, and chunk keys.
 *
 * The input is read with es__wal_read_buf (every frame must be whole and
 * valid), then again with every frame checksum recomputed
 * (fuzz_util.h), so the record decoding behind valid checksums is
 * reached.  Its first line is also parsed as a chunk key.
 *
 * Properties beyond "no crash, no leak":
 *  1. An accepted chunk is consumed exactly: end_off equals its size,
 *     the frame callback saw `frames` frames whose lengths add up to it,
 *     with increasing LSNs, and the record callback saw the records and
 *     events the scan reports.
 *  2. A key that parses formats back to the same bytes
 *     (es__walship_key), and a formatted key parses back; the same for
 *     a cluster node's key (es__walship_parse_node_key, node_key), which
 *     reads a single store's key as node "".
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "replicate/lease.h"
#include "replicate/replicate.h"
#include "store/wal.h"

static volatile uint8_t sink;

static void touch_bytes(const uint8_t *p, size_t n) {
  uint8_t x = 0;
  for (size_t i = 0; i < n; i++)
    x ^= p[i];
  sink = x;
}

typedef struct chunk_seen {
  uint64_t frames, bytes, last_lsn, records, events;
} chunk_seen;

static int on_frame(void *ud, uint64_t lsn, const uint8_t *frame, size_t len) {
  chunk_seen *s = ud;
  FUZZ_ASSERT(lsn > s->last_lsn);
  FUZZ_ASSERT(len >= ES_WAL_FRAME_HDR && frame != NULL);
  s->last_lsn = lsn;
  s->frames++;
  s->bytes += len;
  return 0;
}

static int on_rec(void *ud, uint64_t lsn, const es_wal_rec *rec, uint64_t off) {
  chunk_seen *s = ud;
  (void)off;
  FUZZ_ASSERT(lsn == s->last_lsn);
  FUZZ_ASSERT(strlen(rec->tenant) <= ES_TENANT_LEN_MAX);
  if (rec->rows_len)
    touch_bytes(rec->rows, rec->rows_len);
  s->records++;
  s->events += rec->events;
  return 0;
}

static void chunk_check(const uint8_t *buf, size_t size) {
  chunk_seen s = {0};
  es_wal_scan scan;
  int rc = es__wal_read_buf("chunk", buf, size, 0, on_frame, on_rec, &s, &scan);
  es__error_clear();
  if (rc != ES_OK)
    return;
  FUZZ_ASSERT(scan.end_off == size);
  FUZZ_ASSERT(s.bytes == size);
  FUZZ_ASSERT(s.frames == scan.frames);
  FUZZ_ASSERT(s.records == scan.records && s.events == scan.events);
  FUZZ_ASSERT(scan.frames == 0 || scan.last_lsn == s.last_lsn);
}

static void key_check(const uint8_t *data, size_t size) {
  char key[160];
  size_t n = 0;
  while (n < size && n < sizeof(key) - 1 && data[n] != '\n' && data[n] != 0)
    n++;
  memcpy(key, data, n);
  key[n] = '\0';
  uint32_t shard = 0;
  uint64_t first = 0, last = 0;
  if (es__walship_parse_key(key, &shard, &first, &last) == ES_OK) {
    char back[96];
    FUZZ_ASSERT(es__walship_key(back, sizeof(back), shard, first, last) ==
                ES_OK);
    FUZZ_ASSERT(strcmp(back, key) == 0);
  }
  es__error_clear();
  char node[ES_LEASE_NODE_MAX + 1];
  if (es__walship_parse_node_key(key, node, &shard, &first, &last) == ES_OK) {
    char back[160];
    FUZZ_ASSERT(es__walship_node_key(back, sizeof(back), node, shard, first,
                                     last) == ES_OK);
    FUZZ_ASSERT(strcmp(back, key) == 0);
  }
  es__error_clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  key_check(data, size);
  chunk_check(data, size);
  uint8_t *fixed = fuzz_dup(data, size);
  if (fuzz_fix_wal(fixed, size) > 0)
    chunk_check(fixed, size);
  free(fixed);
  return 0;
}
