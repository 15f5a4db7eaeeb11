/*
 * mkseeds.c -- writes the valid seeds of the fuzz corpus with the library
 * itself, so that the fuzzers start from real files rather than from
 * guesses about the format.
 *
 *   mkseeds OUTDIR
 *
 * creates OUTDIR/fuzz_<target>/seed-* for every target but segment_json
 * (whose seeds are hand-written JSON).  WAL files, segments, MANIFEST and
 * ESDB are written through the POSIX vfs into a temporary directory under
 * OUTDIR, exactly as the store writes them, read back, and copied; rows
 * and round-trip inputs are encoded in memory.  A few damaged variants
 * (torn tail, a flipped byte in the middle of a log) are derived from the
 * valid images.  Everything is deterministic: the same library writes the
 * same bytes, so regenerating the corpus shows format changes in a diff.
 *
 * To refresh the checked-in corpus:  build/tests/fuzz/mkseeds tests/fuzz/corpus
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/event.h"
#include "base/io.h"
#include "base/mem.h"
#include "engine/rules.h"
#include "eventstore.h"
#include "export/xreg.h"
#include "replicate/replicate.h"
#include "store/manifest.h"
#include "store/memtable.h"
#include "store/rollup.h"
#include "store/segment.h"
#include "store/tomb.h"
#include "store/wal.h"

#define NOW_US INT64_C(1764000000000000) /* a fixed "now" */

static const char *out_root;
static char work_dir[ES_PATH_MAX];

static void die(const char *what, int rc) {
  fprintf(stderr, "mkseeds: %s: %s (%s)\n", what, es_strerror(rc),
          es_errdetail());
  exit(1);
}

#define TRY(what, expr)                                                        \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    if (rc_ < 0)                                                               \
      die(what, rc_);                                                          \
  } while (0)

/* Writes OUT/<target>/<name>. */
static void seed_write(const char *target, const char *name, const void *data,
                       size_t len) {
  char dir[ES_PATH_MAX], path[ES_PATH_MAX];
  TRY(target, es__path_join(dir, sizeof(dir), out_root, target));
  TRY(dir, es__vfs_posix()->mkdir(es__vfs_posix(), dir));
  TRY(name, es__path_join(path, sizeof(path), dir, name));
  FILE *f = fopen(path, "wb");
  if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

/* Copies a file the library wrote into the corpus. */
static void seed_copy(const char *target, const char *name, const char *src,
                      uint8_t **img_out, size_t *len_out) {
  uint8_t *img = NULL;
  size_t len = 0;
  TRY(src, es__io_read_all(es__vfs_posix(), src, &img, &len));
  seed_write(target, name, img, len);
  if (img_out) {
    *img_out = img;
    *len_out = len;
  } else {
    es__free(img);
  }
}

/* --- sample events --------------------------------------------------- */

/* One of each type, with NULL and "" strings, IPv4/IPv6, JSON, UTF-8. */
static const es_event samples[] = {
    {.ts_us = 1764000000000000,
     .recv_us = 1764000000050000,
     .type = ES_TYPE_PAGE,
     .event = "Pricing",
     .message_id = "m-0001",
     .anonymous_id = "anon-42",
     .path = "/pricing",
     .url = "https://example.com/pricing?x=1",
     .referrer = "",
     .properties = "{\"title\":\"Pricing\",\"n\":12345678901234567}",
     .user_agent = "Mozilla/5.0 (X11; Linux x86_64)",
     .ip = "203.0.113.0"},
    {.ts_us = 1764000000100000,
     .recv_us = 1764000000100000,
     .type = ES_TYPE_TRACK,
     .event = "Signed Up",
     .message_id = "m-0002",
     .anonymous_id = "anon-42",
     .user_id = "user-7",
     .properties = "{\"plan\":\"pro\",\"seats\":3}",
     .ip = "2001:db8:1::"},
    {.ts_us = 1764000000100000,
     .recv_us = 1764000000200000,
     .type = ES_TYPE_IDENTIFY,
     .message_id = "m-0003",
     .user_id = "user-7",
     .properties = "{\"email\":\"a@example.com\",\"name\":\"Zo\xc3\xab\"}"},
    {.ts_us = 1764000000300000,
     .recv_us = 1764000000300000,
     .type = ES_TYPE_ALIAS,
     .message_id = "m-0004",
     .user_id = "user-7",
     .previous_id = "anon-42"},
    {.ts_us = 1764000000400000,
     .recv_us = 1764000000400000,
     .type = ES_TYPE_GROUP,
     .message_id = "m-0005",
     .user_id = "user-7",
     .group_id = "acme",
     .properties = "{\"employees\":50}"},
    {.ts_us = 1764000000500000,
     .recv_us = 1764000000400000,
     .type = ES_TYPE_SCREEN,
     .event = "Home",
     .anonymous_id = "",
     .user_id = "user-\xe2\x9c\x93"},
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

/* Appends the row encodings of n events (cycling through the samples,
 * with increasing times and varied ids) to rows. */
static void encode_rows(es_buf *rows, size_t n) {
  char mid[32], anon[32];
  for (size_t i = 0; i < n; i++) {
    es_event ev = samples[i % NSAMPLES];
    ev.ts_us += (int64_t)i * 1000;
    if (i >= NSAMPLES) { /* distinct message ids, repeated visitors */
      snprintf(mid, sizeof(mid), "m-%06zu", i);
      snprintf(anon, sizeof(anon), "anon-%zu", i % 17);
      ev.message_id = mid;
      ev.anonymous_id = anon;
    }
    TRY("encode", es__event_encode(rows, &ev, NOW_US, 1));
  }
}

/* Rows whose message ids are upper-case uuids (every 5th NULL) and
 * whose anonymous ids hold an odd run of hex digits: both columns are
 * SHAPE-encoded in a segment (format version 4). */
static void encode_shaped_rows(es_buf *rows, size_t n) {
  char mid[40], anon[40];
  for (size_t i = 0; i < n; i++) {
    es_event ev = samples[i % NSAMPLES];
    ev.ts_us += (int64_t)i * 1000;
    uint64_t h = (uint64_t)(i + 1) * UINT64_C(0x9e3779b97f4a7c15);
    snprintf(mid, sizeof(mid), "%08X-%04X-4%03X-B%03X-%012llX",
             (unsigned)(h >> 32), (unsigned)(h >> 16) & 0xffff,
             (unsigned)h & 0xfff, (unsigned)(h >> 20) & 0xfff,
             (unsigned long long)(h * 31) & UINT64_C(0xffffffffffff));
    snprintf(anon, sizeof(anon), "a-%05llx", (unsigned long long)(h >> 44));
    ev.message_id = i % 5 == 2 ? NULL : mid;
    ev.anonymous_id = anon;
    TRY("encode", es__event_encode(rows, &ev, NOW_US, 1));
  }
}

/* --- rows and round-trip inputs -------------------------------------- */

static void seeds_rows(void) {
  es_buf all = {0};
  for (size_t i = 0; i < NSAMPLES; i++) {
    es_buf one = {0};
    TRY("encode", es__event_encode(&one, &samples[i], NOW_US, 1));
    char name[32];
    snprintf(name, sizeof(name), "seed-row-%zu", i);
    seed_write("fuzz_row", name, one.data, one.len);
    es__buf_free(&one);
  }
  encode_rows(&all, NSAMPLES);
  seed_write("fuzz_row", "seed-rows-all", all.data, all.len);
  es__buf_free(&all);
}

/* The input format of fuzz_roundtrip.c for the samples. */
static void rt_put_event(es_buf *b, const es_event *ev) {
  unsigned mask = 0;
  for (int f = 0; f < ES_NSTR; f++)
    if (es__ev_cstr(ev, f))
      mask |= 1u << f;
  TRY("rt", es__buf_put_u64(b, (uint64_t)ev->ts_us));
  TRY("rt", es__buf_put_u64(b, (uint64_t)ev->recv_us));
  TRY("rt", es__buf_put_u8(b, (uint8_t)ev->type));
  TRY("rt", es__buf_put_u8(b, (uint8_t)mask));
  TRY("rt", es__buf_put_u8(b, (uint8_t)(mask >> 8)));
  for (int f = 0; f < ES_NSTR; f++) {
    const char *s = es__ev_cstr(ev, f);
    if (s)
      TRY("rt", es__buf_put(b, s, strlen(s) + 1));
  }
}

static void seeds_roundtrip(void) {
  es_buf b = {0};
  TRY("rt", es__buf_put_u8(&b, 0));
  rt_put_event(&b, &samples[0]);
  seed_write("fuzz_roundtrip", "seed-rt-one", b.data, b.len);
  for (size_t i = 1; i < NSAMPLES; i++)
    rt_put_event(&b, &samples[i]);
  seed_write("fuzz_roundtrip", "seed-rt-all", b.data, b.len);
  b.data[0] = 0x0f | (5 << 4); /* more than one row group (see there) */
  seed_write("fuzz_roundtrip", "seed-rt-groups", b.data, b.len);
  es__buf_free(&b);
}

/* --- WAL --------------------------------------------------------------- */

/* Builds a frame of one record per tenant, each with n rows. */
static void build_frame(es_buf *frame, const char *const *tenants,
                        size_t ntenants, size_t n, int compress, uint64_t lsn) {
  frame->len = 0;
  TRY("frame", es__buf_reserve(frame, ES_WAL_FRAME_HDR));
  frame->len = ES_WAL_FRAME_HDR;
  for (size_t t = 0; t < ntenants; t++) {
    es_buf rows = {0};
    encode_rows(&rows, n);
    TRY("record", es__wal_record_build(frame, tenants[t], (uint32_t)n,
                                       rows.data, rows.len, compress));
    es__buf_free(&rows);
  }
  es__wal_frame_finish(frame->data, frame->len, lsn);
}

/* Writes frames to a fresh log with es__wal_*, copies the file, and
 * returns its image (owned) for variants. */
static uint8_t *wal_seed(const char *name, size_t file_bytes, size_t nframes,
                         size_t *len_out) {
  static const char *const one[] = {"acme"};
  static const char *const two[] = {"acme", "tenant_B-2"};
  char sub[64], dir[ES_PATH_MAX], path[ES_PATH_MAX];
  snprintf(sub, sizeof(sub), "wal-%.50s", name);
  TRY(sub, es__path_join(dir, sizeof(dir), work_dir, sub));
  TRY(dir, es__vfs_posix()->mkdir(es__vfs_posix(), dir));
  es_wal *wal = NULL;
  TRY("wal open",
      es__wal_open(es__vfs_posix(), dir, 1, NULL, 0, 0, file_bytes, 0, &wal));
  es_buf frame = {0};
  for (size_t i = 0; i < nframes; i++) {
    /* Frame 2 is one big compressible record (LZ4), frame 3 two tenants. */
    if (i == 1)
      build_frame(&frame, one, 1, 24, 1, i + 1);
    else if (i == 2)
      build_frame(&frame, two, 2, 3, 0, i + 1);
    else
      build_frame(&frame, one, 1, 2, 0, i + 1);
    TRY("wal write", es__wal_write(wal, frame.data, frame.len, i + 1));
  }
  TRY("wal sync", es__wal_sync(wal));
  es__wal_close(wal);
  es__buf_free(&frame);
  TRY("wal path", es__wal_path(path, sizeof(path), dir, 1));
  uint8_t *img = NULL;
  seed_copy("fuzz_wal", name, path, &img, len_out);
  return img;
}

/* The end of the last frame of a log image (where its zeros start). */
static size_t wal_frames_end(const uint8_t *img, size_t len) {
  size_t off = 0;
  while (len - off >= ES_WAL_FRAME_HDR && es__get_le32(img + off) != 0)
    off += ES_WAL_FRAME_HDR + es__get_le32(img + off);
  return off;
}

static void seeds_wal(void) {
  size_t len = 0;
  /* Without preallocation every frame starts a file of its own. */
  es__free(wal_seed("seed-wal-one-frame", 0, 1, &len));
  uint8_t *img = wal_seed("seed-wal-prealloc", 4096, 3, &len);
  size_t end = wal_frames_end(img, len);
  seed_write("fuzz_wal", "seed-wal-three-frames", img, end);
  /* Torn tail: the last frame cut short (fine if it is the newest file). */
  seed_write("fuzz_wal", "seed-wal-torn-tail", img, end - 7);
  /* Damage in the middle: a byte of the first frame's payload flipped,
   * with valid frames after it (always corruption). */
  img[ES_WAL_FRAME_HDR + 3] ^= 0x40;
  seed_write("fuzz_wal", "seed-wal-bad-middle", img, end);
  es__free(img);
}

/* --- segments ------------------------------------------------------------ */

static void segment_seed(const char *name, size_t n,
                         void (*encode)(es_buf *, size_t)) {
  es_buf rows = {0}, img = {0};
  encode(&rows, n);
  es_memtable *mt = NULL;
  size_t added = 0;
  TRY("memtable", es__memtable_new(&mt));
  TRY("memtable",
      es__memtable_insert(mt, rows.data, rows.len, (uint32_t)n, 1, &added));
  es__memtable_publish(mt, 1);
  const es_mrow **mrows = es__malloc(n * sizeof(*mrows));
  if (!mrows)
    die("segment", ES_ENOMEM);
  for (size_t i = 0; i < n; i++) /* rows were encoded in time order */
    mrows[i] = es__memtable_row(mt, i);
  TRY("segment build", es__segment_build(&img, mrows, n));
  char file[64], path[ES_PATH_MAX];
  snprintf(file, sizeof(file), "%s.seg", name);
  TRY("segment write",
      es__io_write_atomic(es__vfs_posix(), work_dir, file, img.data, img.len));
  TRY("path", es__path_join(path, sizeof(path), work_dir, file));
  seed_copy("fuzz_segment", name, path, NULL, NULL);
  es__free(mrows);
  es__memtable_unref(mt);
  es__buf_free(&rows);
  es__buf_free(&img);
}

static void seeds_segment(void) {
  segment_seed("seed-seg-one-row", 1, encode_rows);
  /* repeated values: DICT columns (m-NNNNNN ids: SHAPE, but LZ4 keeps
   * PLAIN for 40 rows; the second group of two-groups is SHAPE) */
  segment_seed("seed-seg-dict", 40, encode_rows);
  segment_seed("seed-seg-two-groups", ES_SEG_GROUP_ROWS + 3, encode_rows);
  segment_seed("seed-seg-shape", 40, encode_shaped_rows);
}

/* --- MANIFEST and ESDB --------------------------------------------------- */

static void seeds_manifest(void) {
  char dir[ES_PATH_MAX], path[ES_PATH_MAX];
  es_manifest_entry entries[3] = {
      {1, 10, 4096, 1764000000000000, 1764000000900000},
      {2, 8192, 300000, 1764000001000000, 1764000002000000},
      {5, 1, 512, 1764000003000000, 1764000003000000},
  };
  es_manifest m = {.flushed_lsn = 0, .next_segment_id = 1};
  TRY("path", es__path_join(dir, sizeof(dir), work_dir, "tenant"));
  TRY(dir, es__vfs_posix()->mkdir(es__vfs_posix(), dir));
  TRY("path", es__path_join(path, sizeof(path), dir, "MANIFEST"));
  TRY("manifest", es__manifest_write(es__vfs_posix(), dir, &m));
  seed_copy("fuzz_manifest", "seed-manifest-empty", path, NULL, NULL);
  m = (es_manifest){.flushed_lsn = 4242,
                    .next_segment_id = 6,
                    .count = 3,
                    .entries = entries};
  TRY("manifest", es__manifest_write(es__vfs_posix(), dir, &m));
  seed_copy("fuzz_manifest", "seed-manifest-three", path, NULL, NULL);
  snprintf(m.lsn_node, sizeof(m.lsn_node), "node-1"); /* a cluster node's */
  TRY("manifest", es__manifest_write(es__vfs_posix(), dir, &m));
  seed_copy("fuzz_manifest", "seed-manifest-node", path, NULL, NULL);
  TRY("esdb", es__esdb_write(es__vfs_posix(), work_dir, 4));
  TRY("path", es__path_join(path, sizeof(path), work_dir, "ESDB"));
  seed_copy("fuzz_manifest", "seed-esdb", path, NULL, NULL);
}

/* --- REPLICA -------------------------------------------------------------- */

static void seeds_replrec(void) {
  char dir[ES_PATH_MAX], path[ES_PATH_MAX];
  TRY("path", es__path_join(dir, sizeof(dir), work_dir, "tenant"));
  TRY(dir, es__vfs_posix()->mkdir(es__vfs_posix(), dir));
  TRY("path", es__path_join(path, sizeof(path), dir, ES_REPLREC_NAME));
  es_replrec rec = {0};
  TRY("replrec", es__replrec_save(es__vfs_posix(), dir, &rec));
  seed_copy("fuzz_replrec", "seed-replrec-empty", path, NULL, NULL);
  rec.generation = 3;
  rec.identity_hash = 0x1234567890abcdefULL | 1;
  TRY("replrec", es__replrec_put(&rec, "0000000000000001.seg", 4096, 0));
  TRY("replrec", es__replrec_put(&rec, "0000000000000001.rlp", 300, 0));
  TRY("replrec",
      es__replrec_put(&rec, "MANIFEST-0000000000000002", 80, 1764000000000000));
  TRY("replrec", es__replrec_put(&rec, "MANIFEST-0000000000000003", 80, 0));
  TRY("replrec", es__replrec_save(es__vfs_posix(), dir, &rec));
  seed_copy("fuzz_replrec", "seed-replrec-four", path, NULL, NULL);
  es__replrec_free(&rec);
}

/* An erase log (ERASE) with every kind of record: the salt, a pending
 * request with ids and a stage done, a completed one as a receipt, the
 * suppression hashes; then a torn and a damaged variant. */
static void seeds_tomb(void) {
  static char id_a[] = "anon-1", id_u[] = "user-1";
  static char *ids[] = {id_a, id_u};
  es_tomb_req v[2];
  memset(v, 0, sizeof(v));
  v[0].id = 1;
  v[0].submitted_us = NOW_US;
  v[0].ids = ids;
  v[0].nids = 2;
  memset(v[0].subject_hash, 0xab, 16);
  v[0].state[ES_TOMB_HIDDEN] = ES_TOMB_DONE;
  v[0].state[ES_TOMB_SEGMENTS] = ES_TOMB_DONE;
  v[0].stage_us[ES_TOMB_SEGMENTS] = NOW_US + 1000;
  v[0].stage_count[ES_TOMB_SEGMENTS] = 12;
  v[1].id = 2;
  v[1].submitted_us = NOW_US + 5;
  for (int s = 0; s < ES_TOMB_STAGES; s++) {
    v[1].state[s] = s >= ES_TOMB_REPLICA ? ES_TOMB_SKIPPED : ES_TOMB_DONE;
    v[1].stage_us[s] = NOW_US + 10 * s;
    v[1].stage_count[s] = (uint64_t)s;
  }
  uint8_t sup[32];
  memset(sup, 0x5c, sizeof(sup));
  es_tomb_log log;
  memset(&log, 0, sizeof(log));
  memset(log.salt, 0x42, 16);
  log.has_salt = 1;
  log.v = v;
  log.n = 2;
  log.suppress = sup;
  log.nsuppress = 2;
  es_buf b = {0};
  TRY("tomb", es__tomb_log_encode(&log, &b));
  seed_write("fuzz_tomb", "seed-tomb-all", b.data, b.len);
  seed_write("fuzz_tomb", "seed-tomb-torn", b.data, b.len - 5);
  b.data[b.len / 2] ^= 0x10;
  seed_write("fuzz_tomb", "seed-tomb-damaged", b.data, b.len);
  es__buf_free(&b);
}

/* Records of export destinations (DATA/exports): a local directory, an
 * S3 one with endpoint and region; a damaged one. */
static void seeds_xreg(void) {
  es_buf b = {0};
  char name[32];
  TRY("xreg", es__xreg_encode("/var/lib/warehouse", "", "", &b, name));
  seed_write("fuzz_xreg", "seed-xreg-dir", b.data, b.len);
  b.len = 0;
  TRY("xreg", es__xreg_encode("s3://bucket/exports", "http://127.0.0.1:9000",
                              "eu-west-1", &b, name));
  seed_write("fuzz_xreg", "seed-xreg-s3", b.data, b.len);
  b.data[b.len - 3] ^= 0x20;
  seed_write("fuzz_xreg", "seed-xreg-damaged", b.data, b.len);
  es__buf_free(&b);
}

/* Removes the temporary directory (a few levels, all known). */
static int rm_entry(void *ud, const char *name) {
  char path[ES_PATH_MAX];
  if (es__path_join(path, sizeof(path), (const char *)ud, name) < 0)
    return 0;
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    (void)es__vfs_posix()->list(es__vfs_posix(), path, rm_entry, path);
    rmdir(path);
  } else {
    unlink(path);
  }
  return 0;
}

/* The tenant's rollup index (ROLLIDX): a store of two segments whose
 * index a top-pages query wrote. */
static void seeds_rollidx(void) {
  char dir[ES_PATH_MAX], path[ES_PATH_MAX];
  TRY("path", es__path_join(dir, sizeof(dir), work_dir, "rixstore"));
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  es_db *db = NULL;
  TRY("es_open", es_open(&o, &db));
  static const char *const paths[] = {"/", "/pricing", "/docs", "/signup"};
  for (int seg = 0; seg < 2; seg++) {
    es_event ev[12];
    char anon[12][16];
    memset(ev, 0, sizeof(ev));
    for (int i = 0; i < 12; i++) {
      snprintf(anon[i], sizeof(anon[i]), "a%d", (i * 7 + seg) % 5);
      ev[i].ts_us = NOW_US + (seg * 12 + i) * INT64_C(90000000);
      ev[i].type = i % 4 == 3 ? ES_TYPE_TRACK : ES_TYPE_PAGE;
      ev[i].event = ev[i].type == ES_TYPE_TRACK ? "Signed Up" : NULL;
      ev[i].path = paths[(i + seg) % 4];
      ev[i].anonymous_id = anon[i];
    }
    TRY("es_append", es_append(db, "t", ev, 12, NULL));
    TRY("es_flush", es_flush(db, "t"));
  }
  char *res = NULL;
  TRY("es_query",
      es_query(db, "t",
               "{\"filter\":{\"type\":\"page\"},\"groupBy\":[\"path\"]}",
               &res));
  es_free(res);
  TRY("es_close", es_close(db));
  TRY("path", es__path_join(path, sizeof(path), dir, "tenants/t/ROLLIDX"));
  uint8_t *img = NULL;
  size_t len = 0;
  seed_copy("fuzz_rollidx", "seed-rollidx", path, &img, &len);
  img[len - 9] ^= 0x10; /* in level 1's body: its checksum fails */
  seed_write("fuzz_rollidx", "seed-rollidx-damaged", img, len);
  es__free(img);
}

/* A version-3 rollup: one cell of 30 visitors (sketch kind 11), cells of
 * one and two (kinds 3, 4), dimension cells from user agents and URLs. */
static void seeds_rollup(void) {
  es_rollup r;
  memset(&r, 0, sizeof(r));
  char anon[40][16];
  for (int i = 0; i < 40; i++) {
    es_event ev = samples[i % NSAMPLES];
    snprintf(anon[i], sizeof(anon[i]), "v%d", i < 30 ? i : i % 2);
    ev.ts_us = NOW_US + (i < 30 ? 0 : (i - 29) * INT64_C(60000000));
    ev.anonymous_id = anon[i];
    TRY("rollup", es__rollup_add(&r, &ev));
  }
  es_buf img = {0};
  TRY("rollup", es__rollup_encode(&r, &img));
  seed_write("fuzz_rollup", "seed-v3.rlp", img.data, img.len);
  es__buf_free(&img);
  es__rollup_free(&r);
}

/* Rule states (RSTATE): two rules, one with a series and visitors of
 * 1..atLeast times, one empty; and the same with a damaged byte. */
static void seeds_rstate(void) {
  es_rules rules = {0};
  es_rule *r = NULL;
  TRY("rstate", es__rule_parse("{\"name\":\"p3\",\"match\":{\"path\":"
                               "\"/pricing\"},\"atLeast\":3,\"within\":"
                               "\"7d\"}",
                               &r));
  int64_t ts[3] = {-5, 1700000000000000, 1700000000000001};
  TRY("rstate", es__rule_visitor_add(r, "a1", ts, 3));
  TRY("rstate", es__rule_visitor_add(r, "u7@example.com", ts + 1, 1));
  r->series = es__malloc(2 * sizeof(es_rpoint));
  r->series[0] = (es_rpoint){1700000000000000 - 3600000000, 0};
  r->series[1] = (es_rpoint){1700000000000000, 2};
  r->nseries = 2;
  es_rule *any = NULL;
  TRY("rstate", es__rule_parse("{\"name\":\"any\",\"within\":\"1d\"}", &any));
  es_rule *v[2] = {any, r};
  rules.v = v;
  rules.n = 2;
  es_buf b = {0};
  TRY("rstate", es__rstate_encode(&b, 42, &rules, NULL, NULL));
  seed_write("fuzz_rstate", "seed-rstate", b.data, b.len);
  b.data[b.len / 2] ^= 1;
  seed_write("fuzz_rstate", "seed-rstate-damaged", b.data, b.len);
  es__buf_free(&b);
  es__rule_free(r);
  es__rule_free(any);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 2;
  }
  out_root = argv[1];
  es_vfs *vfs = es__vfs_posix();
  TRY(out_root, vfs->mkdir(vfs, out_root));
  TRY(out_root,
      es__path_join(work_dir, sizeof(work_dir), out_root, ".mkseeds-work"));
  TRY(work_dir, vfs->mkdir(vfs, work_dir));
  seeds_rows();
  seeds_roundtrip();
  seeds_wal();
  seeds_segment();
  seeds_manifest();
  seeds_replrec();
  seeds_tomb();
  seeds_xreg();
  seeds_rstate();
  seeds_rollidx();
  seeds_rollup();
  (void)vfs->list(vfs, work_dir, rm_entry, work_dir);
  rmdir(work_dir);
  printf("mkseeds: seeds written under %s\n", out_root);
  return 0;
}
