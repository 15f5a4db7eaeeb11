/*
 * bench.h -- what the parts of es-bench share: the pre-generated workload
 * (events cut into per-tenant batches), the multi-threaded driver that
 * feeds batches to a system and times it, the per-run result every system
 * runner fills, and small file-system helpers (du, rm -rf, fs type).
 *
 * Layering inside bench/: es-bench.c (command line, report) calls the
 * runners (run_es.c, run_rocksdb.c, run_sqlite.c), which call the driver
 * and helpers (util.c) and the workload (workload.c -> gen.c, encode.c).
 * run_es.c, query.c and live.c talk to libeventstore, through
 * include/eventstore.h (opening a store: bench_es_open in run_es.c).
 */
#ifndef ES_BENCH_BENCH_H
#define ES_BENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "eventstore.h"
#include "gen.h"

/* ------------------------------------------------------------------ */
/* Workload                                                            */
/* ------------------------------------------------------------------ */

/* One acknowledged unit of ingest: up to batch_max events of one tenant,
 * contiguous in workload.events. */
typedef struct batch {
  const char *tenant;
  const es_event *events;
  size_t count;
} batch;

typedef struct workload {
  gen *g;           /* owns every string of every event */
  es_event *events; /* events_count, laid out batch after batch */
  size_t events_count;
  batch *batches; /* in the order an ingest server would cut them */
  size_t batches_count;
  uint64_t payload_bytes; /* sum of enc_event_size() over all events */
  int tenants_seen;
  uint64_t seed;
  int batch_max;
  int days;
} workload;

/*
 * Generates `events` events with gen (seed, days) and cuts them, in
 * generator order, into per-tenant batches: each tenant has a pending
 * batch that is emitted when it reaches batch_max events; what is pending
 * at the end is emitted last (partial batches).  Returns 0, or -1 when out
 * of memory (*w is then empty).  Free with workload_free().
 */
int workload_build(workload *w, uint64_t events, uint64_t seed, int days,
                   int batch_max);

/* Frees what workload_build() allocated; safe on a zeroed workload. */
void workload_free(workload *w);

/* ------------------------------------------------------------------ */
/* Driver                                                              */
/* ------------------------------------------------------------------ */

/* How the driver talks to a system under test.  ctx is the runner's. */
typedef struct driver_ops {
  /* Per thread, before the clock starts (e.g. open a connection); may be
   * NULL.  Returns 0 or -1 (after writing the reason with bench_fail). */
  int (*thread_begin)(void *ctx, int tid);
  /* Makes one batch durable; 0 or -1 (after bench_fail). */
  int (*append)(void *ctx, int tid, const batch *b);
  /* Per thread, after the clock stopped; may be NULL. */
  void (*thread_end)(void *ctx, int tid);
  void *ctx;
} driver_ops;

/*
 * Feeds every batch of w to ops->append from `threads` threads that take
 * the next unclaimed batch in order, and sets *seconds_out to the wall time
 * from the moment all threads are ready until the last batch is
 * acknowledged.  Shows progress on stderr (tty only) labelled `label`.
 * Returns 0, or -1 when a thread failed (the first failure's reason is in
 * bench_last_error()).
 */
int drive(const workload *w, int threads, const driver_ops *ops,
          const char *label, double *seconds_out);

/* Context switches (voluntary and involuntary, every thread of this
 * process: getrusage) during the last drive(), from the start barrier to
 * the last thread's end; includes the driver's own 50 ms progress naps. */
extern double bench_drive_ctx_switches;

/* ------------------------------------------------------------------ */
/* Results                                                             */
/* ------------------------------------------------------------------ */

/* What one run of one system configuration measured.  A figure a system
 * does not have is negative. */
typedef struct run_result {
  double ingest_s;              /* wall time of the ingest */
  double du_close_bytes;        /* directory after close (no flush) */
  double du_flush_bytes;        /* directory after an explicit flush+close */
  double du_data_bytes;         /* only the data files (segments / SSTs) */
  double recover_s;             /* reopen time after close without flush */
  double recover_events;        /* events that were in the log at reopen */
  double recover_file_bytes;    /* log file bytes at reopen (allocated) */
  double recover_payload_bytes; /* encoded bytes of the replayed events */
  double stored_events;         /* rows the store holds at the end */
  double ctx_switches;          /* during the ingest (drive) */
} run_result;

/* Sets every figure of *r to -1 (unknown). */
void run_result_clear(run_result *r);

/* es_open of dir as every es-bench command opens it (sync_mode FULL,
 * ips kept as generated); 0, or -1 after bench_fail. */
int bench_es_open(const char *dir, es_db **db);
/* es_options.dedupe_window_us for bench_es_open; -1: the default
 * (es-bench --dedupe-hours). */
extern int64_t bench_es_dedupe_window_us;
/* Opens a fresh store in dir (bench_es_open), appends every batch of w
 * from one thread and flushes: the loaded store that es-bench query and
 * export measure.  0 with *db open, or -1 after bench_fail with *db NULL
 * (nothing left open). */
int bench_es_load(const workload *w, const char *dir, es_db **db);

/* The runners: ingest w into a fresh store in dir (which does not exist
 * yet) with `threads` threads, then measure what run_result holds.  Each
 * returns 0, or -1 with the reason in bench_last_error(). */
int run_eventstore(const workload *w, const char *dir, int threads,
                   const char *label, run_result *out);
/* The disk's limit for the WAL's bytes (run_limit.c): per batch, one
 * write of its WAL frame's length and one fdatasync, per thread. */
int run_limit(const workload *w, const char *dir, int threads,
              const char *label, run_result *out);
int run_rocksdb(const workload *w, const char *dir, int threads,
                const char *label, run_result *out);
int run_sqlite(const workload *w, const char *dir, int threads,
               const char *label, run_result *out);
/* DuckDB runs in a node child process (duckdb.c); one thread only.  The
 * batch file (duckdb_write_batches) must exist at batches_path. */
int run_duckdb(const workload *w, const char *dir, const char *batches_path,
               const char *label, run_result *out);

/* ------------------------------------------------------------------ */
/* The DuckDB peer (duckdb.c): node bench/duckdb/peer.mjs as a child   */
/* ------------------------------------------------------------------ */

/* Writes every batch of w, in order, to path as the peer reads them (one
 * JSON line per batch: see bench/duckdb/peer.mjs); 0 or -1 (bench_fail). */
int duckdb_write_batches(const workload *w, const char *path);

/* A running peer: its pid and the read end of its stdout. */
typedef struct peer_proc {
  int pid;
  FILE *out;
  const char *name; /* for messages: "the DuckDB peer" (static) */
} peer_proc;

/* Starts `node peer.mjs args...` (args NULL-terminated).  The peer's
 * directory is $ES_BENCH_DUCKDB_DIR or the source tree's bench/duckdb.
 * 0 or -1 (bench_fail says why: node missing, not installed...). */
int peer_start(peer_proc *p, const char *const *args);

/* Starts this program again (/proc/self/exe) with args, its stdout on a
 * pipe like a peer's: the appending child of `es-bench live`. */
int self_start(peer_proc *p, const char *const *args);

/* Starts argv[0], a path (argv NULL-terminated), its stdout on a pipe
 * like a peer's, by posix_spawn: no copy of this process's page tables,
 * which fork() takes tens of ms for once es-bench holds gigabytes. */
int exe_start(peer_proc *p, const char *name, const char *const *argv);

/* Starts `node script args...` (args NULL-terminated), the protocol and
 * failure handling of peer_start; name (static) names it in messages. */
int node_start(peer_proc *p, const char *name, const char *script,
               const char *const *args);

/* Reads the peer's next protocol line (without the newline) into buf;
 * returns 1, or 0 at the end of its output. */
int peer_line(peer_proc *p, char *buf, size_t cap);

/* Reads the peer's output to the end, drawing its "P done total" progress
 * under `label`, then reaps it.  On success (an "R {json}" line and exit
 * status 0) *json_out is that JSON, owned by the caller (free()); else -1
 * with the reason in bench_last_error(). */
int peer_finish(peer_proc *p, const char *label, char **json_out);

/* Closes the peer's output and waits for it; 0 when it exited 0, else
 * -1 (bench_fail says how it ended). */
int peer_reap(peer_proc *p);

/* SIGKILLs the peer and reaps it. */
void peer_kill(peer_proc *p);

/* One number from a peer's JSON result: a top-level key holding a number
 * or the i-th number of an array; -1 when absent. */
double json_num(const char *json, const char *key, int i);

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Records the first failure reason of the current measurement (later ones
 * are dropped: first error wins).  Thread-safe. */
void bench_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The recorded reason ("" if none); bench_fail_reset() forgets it. */
const char *bench_last_error(void);
void bench_fail_reset(void);

/* Monotonic seconds. */
double now_s(void);
/* Wall-clock microseconds since the epoch (for peers' receive stamps). */
int64_t wall_us(void);

/* Bytes allocated on disk under path (st_blocks * 512, like du), counting
 * only files whose name ends in `suffix` when it is not NULL; -1 on
 * error. */
double du_bytes(const char *path, const char *suffix);

/* Like du_bytes, but the files' sizes (st_size) instead of allocation. */
double apparent_bytes(const char *path, const char *suffix);

/* Removes path and everything under it; 0 or -1. */
int rm_rf(const char *path);

/* A name for the file system that holds path ("ext4", "tmpfs", ...). */
const char *fs_type_name(const char *path);

/* Whether progress should be drawn (stderr is a terminal). */
extern int bench_progress_enabled;

/* Draws "label [####    ]  40%" over the current stderr line, or erases
 * it; nothing unless bench_progress_enabled. */
void bench_progress(const char *label, size_t done, size_t total);
void bench_progress_clear(void);

/* min / median / max of a set of figures; -1 when unknown. */
typedef struct stat3 {
  double min, med, max;
} stat3;

/* min/median/max of n figures (v is sorted in place); all -1 when n is
 * 0.  Figures below 0 must be left out by the caller. */
stat3 stat3_of(double *v, int n);

/* Prints "key":{"min":..,"median":..,"max":..} on stdout, a figure below
 * 0 (unknown) as null. */
void bench_json_stat3(const char *key, stat3 s);

/* The commands besides gen and ingest (query.c, live.c).  Each returns
 * the exit status: 0, or 1 when a measurement or a cross-check failed. */
/* replica.c: `es-bench replicate` and the hidden `_replica` helper. */
struct bench_common;
int cmd_replicate_args(const struct bench_common *a);
int cmd_replica_hidden(int argc, char **argv);

typedef struct bench_common {
  uint64_t events;
  int runs;
  int quick;
  int json;
  const char *dir;
  uint64_t seed;
  int days;
  int use_es, use_duckdb;
  const char *json_file; /* also write the JSON report here (appended) */
} bench_common;
int cmd_query(const bench_common *a);
int cmd_live(const bench_common *a);
/* es-bench http: HTTP ingest through es-ingestd beside nginx (http.c). */
int cmd_http(const bench_common *a);
/* es-bench export: Parquet export, es_export against DuckDB's COPY
 * (export.c). */
int cmd_export(const bench_common *a);
/* The hidden `es-bench _appendloop` child of cmd_live. */
int cmd_appendloop(const char *dir, uint64_t events, uint64_t seed, int days);

/* Runs print(arg) with stdout appended to path (for --json-file: the
 * table goes to the terminal, the JSON of the same run to the file). */
void bench_print_to_file(const char *path, void (*print)(const void *),
                         const void *arg);

/* Creates a fresh es-bench-XXXXXX directory under dir (or ./bench-data)
 * into out; *made_base says whether the parent was created too. */
int make_base_dir(const char *dir, char *out, size_t cap, int *made_base);
/* Undoes make_base_dir(dir, made, ...): removes `made` with all it holds,
 * and the parent when make_base_dir created it and it is now empty. */
void remove_base_dir(const char *dir, const char *made, int made_base);

#endif
