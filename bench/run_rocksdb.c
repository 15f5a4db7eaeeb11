/*
 * run_rocksdb.c -- the RocksDB peer (C API): one WriteBatch of puts per
 * batch, written with WriteOptions.sync = 1, so each batch is durable in
 * the RocksDB WAL before the write returns (RocksDB groups concurrent
 * writers into one WAL sync, as libeventstore does).
 *
 * Key:   tenant | '|' | ts_us (8 bytes big-endian) | seq (8 bytes BE),
 *        so a tenant's events sort by time, like our segments.
 * Value: the event in the shared encoding of encode.c (every field).
 * Options: defaults plus create_if_missing and LZ4 block compression (the
 * codec libeventstore uses), so bytes on disk compare like for like.
 *
 * Sequence of one run: open, ingest (timed), close; du (WAL + SSTs that
 * RocksDB flushed by itself); time a reopen (WAL replay: the peer's
 * recovery figure); flush, close; du again, and du of *.sst alone.
 */
#include "bench.h"

#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"

typedef struct rdb_ctx {
  rocksdb_t *db;
  rocksdb_writeoptions_t *wo;
  atomic_uint_fast64_t seq;
} rdb_ctx;

static void put_be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)v;
    v >>= 8;
  }
}

static int rdb_append_batch(void *ctx, int tid, const batch *b) {
  (void)tid;
  rdb_ctx *c = ctx;
  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  size_t tlen = strlen(b->tenant);
  uint8_t key[ES_TENANT_LEN_MAX + 1 + 16];
  uint8_t stackval[4096];
  int rc = 0;
  memcpy(key, b->tenant, tlen);
  key[tlen] = '|';
  for (size_t i = 0; i < b->count && rc == 0; i++) {
    const es_event *ev = &b->events[i];
    put_be64(key + tlen + 1, (uint64_t)ev->ts_us);
    put_be64(key + tlen + 9, atomic_fetch_add(&c->seq, 1));
    size_t n = enc_event_size(ev);
    uint8_t *val = n <= sizeof stackval ? stackval : malloc(n);
    if (!val) {
      bench_fail("out of memory encoding an event");
      rc = -1;
      break;
    }
    enc_event(ev, val);
    rocksdb_writebatch_put(wb, (const char *)key, tlen + 17, (const char *)val,
                           n);
    if (val != stackval)
      free(val);
  }
  char *err = NULL;
  if (rc == 0)
    rocksdb_write(c->db, c->wo, wb, &err);
  if (err) {
    bench_fail("rocksdb_write: %s", err);
    rocksdb_free(err);
    rc = -1;
  }
  rocksdb_writebatch_destroy(wb);
  return rc;
}

static rocksdb_t *rdb_open(rocksdb_options_t *opt, const char *dir) {
  char *err = NULL;
  rocksdb_t *db = rocksdb_open(opt, dir, &err);
  if (err) {
    bench_fail("rocksdb_open(%s): %s", dir, err);
    rocksdb_free(err);
    return NULL;
  }
  return db;
}

int run_rocksdb(const workload *w, const char *dir, int threads,
                const char *label, run_result *out) {
  run_result_clear(out);
  rocksdb_options_t *opt = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(opt, 1);
  rocksdb_options_set_compression(opt, rocksdb_lz4_compression);
  rdb_ctx c;
  memset(&c, 0, sizeof c);
  atomic_init(&c.seq, 0);
  c.wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(c.wo, 1);
  int rc = -1;
  if (!(c.db = rdb_open(opt, dir)))
    goto done;
  driver_ops ops = {NULL, rdb_append_batch, NULL, &c};
  int drc = drive(w, threads, &ops, label, &out->ingest_s);
  rocksdb_close(c.db);
  c.db = NULL;
  if (drc != 0)
    goto done;
  out->du_close_bytes = du_bytes(dir, NULL);
  out->recover_file_bytes = du_bytes(dir, ".log");
  /* RocksDB's log files hold exactly the records to replay. */
  out->recover_payload_bytes = apparent_bytes(dir, ".log");

  double t0 = now_s();
  if (!(c.db = rdb_open(opt, dir)))
    goto done;
  out->recover_s = now_s() - t0;

  rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
  rocksdb_flushoptions_set_wait(fo, 1);
  char *err = NULL;
  rocksdb_flush(c.db, fo, &err);
  rocksdb_flushoptions_destroy(fo);
  rocksdb_close(c.db);
  c.db = NULL;
  if (err) {
    bench_fail("rocksdb_flush: %s", err);
    rocksdb_free(err);
    goto done;
  }
  out->du_flush_bytes = du_bytes(dir, NULL);
  out->du_data_bytes = du_bytes(dir, ".sst");
  out->stored_events = (double)w->events_count;
  rc = 0;
done:
  rocksdb_writeoptions_destroy(c.wo);
  rocksdb_options_destroy(opt);
  return rc;
}
