/*
 * run_es.c -- the libeventstore runner: ingest through es_append with
 * ES_SYNC_FULL, then measure bytes on disk and recovery.
 *
 * Sequence of one run (dir does not exist before):
 *  1. es_open (fresh), ingest timed by the driver (one es_append per
 *     batch, shared by all threads), es_close WITHOUT es_flush;
 *     du -> du_close_bytes (WAL files, preallocated, plus whatever sealed
 *     by itself during the ingest).
 *  2. es_inspect the WAL (events and file bytes still to replay), then
 *     time es_open: that is recovery (replay of every unsealed record).
 *  3. es_flush(NULL), es_close; du -> du_flush_bytes (WAL + segments) and
 *     the sum of segment sizes from es_inspect -> du_data_bytes.
 *
 * keep_full_ip is set so that every system stores the same bytes (the
 * peers have no ip truncation).
 */
#include "bench.h"

#include <string.h>

typedef struct es_ctx {
  es_db *db;
} es_ctx;

static int es_append_batch(void *ctx, int tid, const batch *b) {
  (void)tid;
  es_ctx *c = ctx;
  int rc = es_append(c->db, b->tenant, b->events, b->count, NULL);
  if (rc != ES_OK) {
    bench_fail("es_append(%s, %zu events): %s: %s", b->tenant, b->count,
               es_strerror(rc), es_errdetail());
    return -1;
  }
  return 0;
}

/* What es_inspect tells about a directory, summed by kind. */
typedef struct es_sizes {
  double wal_bytes, wal_events;
  double seg_bytes, seg_rows;
} es_sizes;

static int sizes_add(void *ud, const es_file_info *info) {
  es_sizes *s = ud;
  if (info->kind == ES_FILE_WAL) {
    s->wal_bytes += (double)info->bytes;
    s->wal_events += (double)info->events;
  } else if (info->kind == ES_FILE_SEGMENT) {
    s->seg_bytes += (double)info->bytes;
    s->seg_rows += (double)info->rows;
  }
  return 0;
}

static int es_sizes_get(const char *dir, es_sizes *s) {
  memset(s, 0, sizeof *s);
  int rc = es_inspect(dir, sizes_add, s);
  if (rc != ES_OK) {
    bench_fail("es_inspect(%s): %s: %s", dir, es_strerror(rc), es_errdetail());
    return -1;
  }
  return 0;
}

int64_t bench_es_dedupe_window_us = -1;

int bench_es_open(const char *dir, es_db **db) {
  es_options o;
  es_options_init(&o);
  if (bench_es_dedupe_window_us >= 0)
    o.dedupe_window_us = bench_es_dedupe_window_us;
  o.data_dir = dir;
  o.sync_mode = ES_SYNC_FULL;
  o.keep_full_ip = 1;
  int rc = es_open(&o, db);
  if (rc != ES_OK) {
    bench_fail("es_open(%s): %s: %s", dir, es_strerror(rc), es_errdetail());
    return -1;
  }
  return 0;
}

int bench_es_load(const workload *w, const char *dir, es_db **db) {
  if (bench_es_open(dir, db) != 0)
    return -1;
  es_ctx c = {*db};
  driver_ops ops = {NULL, es_append_batch, NULL, &c};
  double s;
  int rc = drive(w, 1, &ops, "load libeventstore", &s) == 0 ? ES_OK : -1;
  if (rc == ES_OK && (rc = es_flush(*db, NULL)) != ES_OK)
    bench_fail("es_flush: %s: %s", es_strerror(rc), es_errdetail());
  if (rc != ES_OK) {
    es_close(*db);
    *db = NULL;
    return -1;
  }
  return 0;
}

static int es_close_checked(es_db *db, const char *what) {
  int rc = es_close(db);
  if (rc != ES_OK) {
    bench_fail("es_close after %s: %s: %s", what, es_strerror(rc),
               es_errdetail());
    return -1;
  }
  return 0;
}

int run_eventstore(const workload *w, const char *dir, int threads,
                   const char *label, run_result *out) {
  run_result_clear(out);
  es_ctx c = {NULL};
  if (bench_es_open(dir, &c.db) != 0)
    return -1;
  driver_ops ops = {NULL, es_append_batch, NULL, &c};
  int rc = drive(w, threads, &ops, label, &out->ingest_s);
  int crc = es_close_checked(c.db, "ingest");
  if (rc != 0 || crc != 0)
    return -1;
  out->du_close_bytes = du_bytes(dir, NULL);

  es_sizes before;
  if (es_sizes_get(dir, &before) != 0)
    return -1;
  double t0 = now_s();
  if (bench_es_open(dir, &c.db) != 0)
    return -1;
  out->recover_s = now_s() - t0;
  out->recover_events = before.wal_events;
  out->recover_file_bytes = before.wal_bytes;
  /* The WAL holds the row encoding, which enc_event mirrors; scale the
   * workload's payload by the share of events still in the log. */
  out->recover_payload_bytes = w->events_count ? (double)w->payload_bytes *
                                                     before.wal_events /
                                                     (double)w->events_count
                                               : 0;

  rc = es_flush(c.db, NULL);
  if (rc != ES_OK) {
    bench_fail("es_flush: %s: %s", es_strerror(rc), es_errdetail());
    es_close(c.db);
    return -1;
  }
  if (es_close_checked(c.db, "flush") != 0)
    return -1;
  out->du_flush_bytes = du_bytes(dir, NULL);
  es_sizes after;
  if (es_sizes_get(dir, &after) != 0)
    return -1;
  /* data files: the segments and their rollups (.rlp, which grow with
   * the dimensions the dashboard reads: they count against the goal) */
  double rlp = apparent_bytes(dir, ".rlp");
  if (rlp < 0) {
    bench_fail("measuring the rollup files of %s", dir);
    return -1;
  }
  out->du_data_bytes = after.seg_bytes + rlp;
  out->stored_events = after.seg_rows;
  /* The library may drop retried messageIds; it must not lose more. */
  if (after.seg_rows > (double)w->events_count ||
      after.seg_rows < 0.98 * (double)w->events_count) {
    bench_fail("segments hold %.0f rows after es_flush; %zu were appended",
               after.seg_rows, w->events_count);
    return -1;
  }
  return 0;
}
