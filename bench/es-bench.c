/*
 * es-bench.c -- the benchmark program: command line, the order of runs,
 * and the report (an aligned table for people, JSON for machines).
 *
 *   es-bench gen    [--events N] [--seed S] [--days D]      > x.ndjson
 *   es-bench ingest [--events N] [--threads T] [--batch B] [--runs R]
 *                   [--quick] [--json] [--dir D] [--seed S] [--days D]
 *                   [--systems es,limit,rocksdb,sqlite]
 *
 * ingest pre-generates the workload once (bench.h: per-tenant batches),
 * then for run 1..R measures every configuration (system x {1, T}
 * threads) in turn -- interleaved, so that a noisy minute on a shared
 * machine hurts every system a little rather than one system a lot --
 * each in a fresh directory that is deleted right after.  Figures are
 * reported as min / median / max over the runs; ratios ours/peer come from
 * medians.  The durability of every system is the same and is stated in
 * the output: a batch is acknowledged only after an fdatasync/fsync of
 * the log that holds it.
 *
 * Exit status: 0 success, 1 a measurement failed, 2 bad command line.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

/* ------------------------------------------------------------------ */
/* Command line                                                        */
/* ------------------------------------------------------------------ */

/* SYS_LIMIT is not a system: the disk's limit for the WAL's bytes
 * (run_limit.c), measured beside them in the same run. */
enum { SYS_ES, SYS_LIMIT, SYS_ROCKSDB, SYS_SQLITE, SYS_DUCKDB, SYS_COUNT };

static const char *const sys_names[SYS_COUNT] = {"libeventstore", "fsync-limit",
                                                 "rocksdb", "sqlite", "duckdb"};
static const char *const sys_flags[SYS_COUNT] = {"es", "limit", "rocksdb",
                                                 "sqlite", "duckdb"};

typedef struct args {
  uint64_t events;
  int threads;
  int batch;
  int runs;
  int quick;
  int json;
  const char *dir;
  uint64_t seed;
  int days;
  int systems[SYS_COUNT]; /* 1 = measure */
  int events_set, runs_set;
  const char *json_file;
} args;

static const char usage_text[] =
    "usage: es-bench gen [--events N] [--seed S] [--days D] > events.ndjson\n"
    "       es-bench ingest|query|live|http|export|replicate|all [options]\n"
    "\n"
    "gen     writes N generated Segment events as NDJSON to stdout\n"
    "        (default 10000); the tenant is each line's \"writeKey\".\n"
    "ingest  measures durable ingest (every batch fdatasync'ed before it\n"
    "        is acknowledged) of libeventstore, RocksDB, SQLite, DuckDB.\n"
    "query   the dashboard queries on libeventstore and DuckDB, cold and\n"
    "        hot, each answer cross-checked (a mismatch fails the run).\n"
    "live    freshness (append -> visible to a query), a new process's\n"
    "        first durable append (fresh directory and restart), and\n"
    "        recovery after a SIGKILL of a process appending:\n"
    "        libeventstore and DuckDB.\n"
    "http    HTTP ingest: es-ingestd (fsync before 200) driven by wrk and\n"
    "        autocannon with Segment /v1/batch bodies of 100 events, beside\n"
    "        nginx answering the same POSTs with an empty 200; full load,\n"
    "        half rate (p50/p99), a 10x burst (peak RSS).  Not in `all`.\n"
    "replicate  S3 replication against s3rver (npm) on loopback: upload\n"
    "        MB/s of the replicator beside @aws-sdk/client-s3 putting the\n"
    "        same files, es_restore MB/s beside the SDK's GETs, HTTP ingest\n"
    "        through es-ingestd in tier s3 as a ratio of tier local, and\n"
    "        one client's ack latency in each (bench/replicate/run.mjs).\n"
    "        Not in `all`.\n"
    "export  the same events exported to Parquet (ZSTD) by es_export and\n"
    "        by DuckDB's COPY ... TO (FORMAT parquet): rows/s and bytes.\n"
    "        Not in `all`.\n"
    "all     ingest, query and live in turn (CI runs all --quick).\n"
    "\n"
    "options:\n"
    "  --events N     ingest: events (default 200000; --quick 20000);\n"
    "                 query: events loaded (2000000; --quick 20000);\n"
    "                 live: events appended before each kill (200000;\n"
    "                 --quick 10000); http: events generated to cut the\n"
    "                 request bodies from (100000; --quick 20000);\n"
    "                 export: events loaded (1000000; --quick 20000).\n"
    "                 all: each command's default.\n"
    "  --threads T    appending threads of the parallel runs (default 8)\n"
    "  --batch B      events per batch, one tenant each (default 100)\n"
    "  --runs R       repetitions; figures are min/median/max (default:\n"
    "                 ingest 3, query 5, live 3, http 3; --quick 1, 2, 2,\n"
    "                 1)\n"
    "  --quick        small runs (CI smoke test; all of it < 2 minutes)\n"
    "  --json         print JSON instead of the table\n"
    "  --json-file F  print the table and write the JSON to F as well\n"
    "  --dir D        where to create data directories (default\n"
    "                 ./bench-data; avoid tmpfs: fsync is free there)\n"
    "  --seed S       generator seed (default 1)\n"
    "  --days D       time span of the generated events (default 7)\n"
    "  --systems L    comma list of es,limit,rocksdb,sqlite,duckdb (default\n"
    "                 all; query and live know es and duckdb).  limit\n"
    "                 (ingest): the disk's limit, one write + fdatasync\n"
    "                 of each batch's WAL frame bytes per batch\n"
    "  --dedupe-hours H  eventstore's messageId window (es_options.\n"
    "                 dedupe_window_us); 0 turns idempotent append off\n"
    "                 (default: the library's, 7 days)\n"
    "  -h, --help     this text\n"
    "\n"
    "DuckDB runs as `node bench/duckdb/peer.mjs` (npm @duckdb/node-api,\n"
    "installed by bench/duckdb/install.sh, which scripts/deps.sh runs);\n"
    "ES_BENCH_DUCKDB_DIR overrides where peer.mjs is looked for.\n";

/* Prints a one-line reason for a bad command line and exits 2. */
__attribute__((noreturn, format(printf, 1, 2))) static void
bad_usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("es-bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (try --help)\n", stderr);
  va_end(ap);
  exit(2);
}

/* Parses a decimal integer in [lo, hi] for flag `name`. */
static uint64_t parse_num(const char *name, const char *s, uint64_t lo,
                          uint64_t hi) {
  if (!s)
    bad_usage("%s needs a value", name);
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
    bad_usage("%s wants an integer in [%llu, %llu], not '%s'", name,
              (unsigned long long)lo, (unsigned long long)hi, s);
  return v;
}

static void parse_systems(args *a, const char *list) {
  if (!list)
    bad_usage("--systems needs a value");
  memset(a->systems, 0, sizeof a->systems);
  char buf[256];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *save, *tok = strtok_r(buf, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    int found = 0;
    for (int s = 0; s < SYS_COUNT; s++)
      if (strcmp(tok, sys_flags[s]) == 0)
        a->systems[s] = found = 1;
    if (!found)
      bad_usage("--systems: unknown system '%s' (es, limit, rocksdb, "
                "sqlite, duckdb)",
                tok);
  }
}

static void parse_args(args *a, int argc, char **argv, int is_gen) {
  memset(a, 0, sizeof *a);
  a->threads = 8;
  a->batch = 100;
  a->seed = 1;
  a->days = 7;
  for (int s = 0; s < SYS_COUNT; s++)
    a->systems[s] = 1;
  for (int i = 2; i < argc; i++) {
    const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
      fputs(usage_text, stdout);
      exit(0);
    } else if (!strcmp(f, "--events")) {
      a->events = parse_num(f, v, 1, 100000000), a->events_set = 1, i++;
    } else if (!strcmp(f, "--seed")) {
      a->seed = parse_num(f, v, 0, UINT64_MAX), i++;
    } else if (!strcmp(f, "--days")) {
      a->days = (int)parse_num(f, v, 1, 3650), i++;
    } else if (is_gen) {
      bad_usage("gen: unknown option '%s'", f);
    } else if (!strcmp(f, "--threads")) {
      a->threads = (int)parse_num(f, v, 1, 256), i++;
    } else if (!strcmp(f, "--batch")) {
      a->batch = (int)parse_num(f, v, 1, ES_BATCH_EVENTS_MAX), i++;
    } else if (!strcmp(f, "--runs")) {
      a->runs = (int)parse_num(f, v, 1, 100), a->runs_set = 1, i++;
    } else if (!strcmp(f, "--quick")) {
      a->quick = 1;
    } else if (!strcmp(f, "--json")) {
      a->json = 1;
    } else if (!strcmp(f, "--json-file")) {
      if (!v || !*v)
        bad_usage("--json-file needs a value");
      a->json_file = v, i++;
    } else if (!strcmp(f, "--dir")) {
      if (!v || !*v)
        bad_usage("--dir needs a value");
      a->dir = v, i++;
    } else if (!strcmp(f, "--systems")) {
      parse_systems(a, v), i++;
    } else if (!strcmp(f, "--dedupe-hours")) {
      bench_es_dedupe_window_us =
          (int64_t)parse_num(f, v, 0, 24 * 3650) * 3600 * INT64_C(1000000);
      i++;
    } else {
      bad_usage("%s: unknown option '%s'", argv[1], f);
    }
  }
  if (!a->events_set)
    a->events = is_gen ? 10000 : a->quick ? 20000 : 200000;
  if (!a->runs_set)
    a->runs = a->quick ? 1 : 3;
}

/* ------------------------------------------------------------------ */
/* gen                                                                 */
/* ------------------------------------------------------------------ */

static int cmd_gen(const args *a) {
  gen_opts go;
  gen_opts_init(&go);
  go.events_total = a->events;
  go.days = a->days;
  gen *g = gen_init(a->seed, &go);
  if (!g) {
    fprintf(stderr, "es-bench: out of memory\n");
    return 1;
  }
  static char outbuf[1 << 16];
  setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
  int rc = 0;
  for (uint64_t i = 0; i < a->events && rc == 0; i++) {
    es_event ev;
    const char *tenant;
    if (gen_next(g, &ev, &tenant) != 0) {
      fprintf(stderr, "es-bench: out of memory\n");
      rc = 1;
    } else if (gen_write_ndjson(stdout, &ev, tenant) != 0) {
      fprintf(stderr, "es-bench: writing stdout: %s\n", strerror(errno));
      rc = 1;
    }
    if ((i + 1) % 10000 == 0)
      gen_arena_reset(g); /* bounded memory for any N */
  }
  if (fflush(stdout) != 0 && rc == 0) {
    fprintf(stderr, "es-bench: writing stdout: %s\n", strerror(errno));
    rc = 1;
  }
  gen_free(g);
  return rc;
}

/* ------------------------------------------------------------------ */
/* ingest: measuring                                                   */
/* ------------------------------------------------------------------ */

#define CONFIGS_MAX (SYS_COUNT * 2)

typedef struct config {
  int sys;
  int threads;
  run_result *runs; /* one per run */
} config;

/* min/median/max of the field at byte offset `off` of every run, scaled
 * by `scale`; figures < 0 (unknown) are skipped. */
static stat3 stat_of(const config *c, int runs, size_t off, double scale) {
  double v[100];
  int n = 0;
  for (int r = 0; r < runs; r++) {
    double x = *(const double *)((const char *)&c->runs[r] + off);
    if (x >= 0)
      v[n++] = x * scale;
  }
  return stat3_of(v, n);
}

/* Events per second of each run (derived from ingest_s). */
static stat3 eps_of(const config *c, int runs, double events) {
  double v[100];
  int n = 0;
  for (int r = 0; r < runs; r++)
    if (c->runs[r].ingest_s > 0)
      v[n++] = events / c->runs[r].ingest_s;
  return stat3_of(v, n);
}

#define FIELD(f) offsetof(run_result, f)

static int run_one(const workload *w, config *c, int run, int runs,
                   const char *base, const char *batches_path) {
  char dir[4096 + 128], label[128];
  snprintf(dir, sizeof dir, "%s/%s-%dt-r%d", base, sys_flags[c->sys],
           c->threads, run + 1);
  snprintf(label, sizeof label, "run %d/%d %-13s %2d thread%s", run + 1, runs,
           sys_names[c->sys], c->threads, c->threads == 1 ? " " : "s");
  bench_fail_reset();
  run_result *r = &c->runs[run];
  bench_drive_ctx_switches = -1; /* duckdb's runner has no drive() */
  int rc = c->sys == SYS_ES      ? run_eventstore(w, dir, c->threads, label, r)
           : c->sys == SYS_LIMIT ? run_limit(w, dir, c->threads, label, r)
           : c->sys == SYS_ROCKSDB ? run_rocksdb(w, dir, c->threads, label, r)
           : c->sys == SYS_SQLITE  ? run_sqlite(w, dir, c->threads, label, r)
                                   : run_duckdb(w, dir, batches_path, label, r);
  r->ctx_switches = bench_drive_ctx_switches;
  if (rc != 0)
    fprintf(stderr, "es-bench: %s, %d threads, run %d: %s\n", sys_names[c->sys],
            c->threads, run + 1, bench_last_error());
  if (rm_rf(dir) != 0)
    fprintf(stderr, "es-bench: could not remove %s\n", dir);
  return rc;
}

/* ------------------------------------------------------------------ */
/* ingest: reporting                                                   */
/* ------------------------------------------------------------------ */

typedef struct report {
  const args *a;
  const workload *w;
  config *cfg;
  int ncfg;
  char dir[4096];
  const char *fs;
} report;

static const char durability_text[] =
    "every batch is on stable storage before it is acknowledged: "
    "libeventstore sync_mode=ES_SYNC_FULL (fdatasync of the shard WAL, "
    "group commit), RocksDB WriteOptions.sync=1 (WAL fsync, group commit), "
    "SQLite journal_mode=WAL + synchronous=FULL (WAL fsync per COMMIT), "
    "DuckDB appender flushed per batch = one autocommit transaction (WAL "
    "fsync per commit; one thread, in a node child process)";

/* The libeventstore config with the same thread count as c, or NULL. */
static const config *ours_for(const report *rp, const config *c) {
  for (int i = 0; i < rp->ncfg; i++)
    if (rp->cfg[i].sys == SYS_ES && rp->cfg[i].threads == c->threads)
      return &rp->cfg[i];
  return NULL;
}

/* Formats x with `prec` decimals into buf, or "-" when unknown. */
static const char *fmt_num(char *buf, size_t cap, double x, int prec) {
  if (x < 0)
    snprintf(buf, cap, "-");
  else
    snprintf(buf, cap, "%.*f", prec, x);
  return buf;
}

static void print_stat_row(const char *name, int threads, stat3 s, int prec,
                           double ratio) {
  char b1[32], b2[32], b3[32], b4[32];
  if (ratio > 0)
    snprintf(b4, sizeof b4, "%.2fx", ratio);
  else
    snprintf(b4, sizeof b4, "-");
  printf("  %-15s %7d %12s %12s %12s %10s\n", name, threads,
         fmt_num(b1, sizeof b1, s.min, prec),
         fmt_num(b2, sizeof b2, s.med, prec),
         fmt_num(b3, sizeof b3, s.max, prec), b4);
}

static void print_table(const report *rp) {
  const args *a = rp->a;
  const workload *w = rp->w;
  double n = (double)w->events_count;
  printf("es-bench ingest: %zu events in %zu batches (%.1f events/batch, "
         "max %d), %d tenants (Zipf s=1.1), seed %llu, %d runs\n",
         w->events_count, w->batches_count,
         w->batches_count ? n / (double)w->batches_count : 0, w->batch_max,
         w->tenants_seen, (unsigned long long)w->seed, a->runs);
  printf("data: %s (%s)%s\n", rp->dir, rp->fs,
         !strcmp(rp->fs, "tmpfs") || !strcmp(rp->fs, "ramfs")
             ? "  WARNING: fsync is a no-op on this file system"
             : "");
  printf("durability: %s\n", durability_text);
  printf("cores online: %ld; payload %.1f bytes/event (encode.c)\n\n",
         sysconf(_SC_NPROCESSORS_ONLN), (double)w->payload_bytes / n);

  printf("  %-15s %7s %12s %12s %12s %10s\n", "events/s", "threads", "min",
         "median", "max", "ours/peer");
  for (int i = 0; i < rp->ncfg; i++) {
    const config *c = &rp->cfg[i], *o = ours_for(rp, c);
    stat3 s = eps_of(c, a->runs, n);
    double ratio = -1;
    if (c->sys != SYS_ES && o && s.med > 0)
      ratio = eps_of(o, a->runs, n).med / s.med;
    print_stat_row(sys_names[c->sys], c->threads, s, 0, ratio);
  }
  printf("\n  %-15s %7s %12s %12s %12s\n", "ctx sw/batch", "threads", "min",
         "median", "max");
  for (int i = 0; i < rp->ncfg; i++) {
    const config *c = &rp->cfg[i];
    stat3 s =
        stat_of(c, a->runs, FIELD(ctx_switches), 1 / (double)w->batches_count);
    if (s.med >= 0)
      print_stat_row(sys_names[c->sys], c->threads, s, 1, -1);
  }
  printf("  (context switches of every thread of es-bench during the "
         "ingest, getrusage, per batch)\n");

  printf("\n  %-15s %7s %12s %12s %12s %10s\n", "bytes/event", "threads",
         "after close", "after flush", "data files", "ours/peer");
  for (int i = 0; i < rp->ncfg; i++) {
    const config *c = &rp->cfg[i], *o = ours_for(rp, c);
    stat3 cl = stat_of(c, a->runs, FIELD(du_close_bytes), 1 / n);
    stat3 fl = stat_of(c, a->runs, FIELD(du_flush_bytes), 1 / n);
    stat3 da = stat_of(c, a->runs, FIELD(du_data_bytes), 1 / n);
    char b1[32], b2[32], b3[32], b4[32] = "-";
    if (c->sys != SYS_ES && o && da.med > 0)
      snprintf(b4, sizeof b4, "%.2fx",
               stat_of(o, a->runs, FIELD(du_data_bytes), 1 / n).med / da.med);
    printf("  %-15s %7d %12s %12s %12s %10s\n", sys_names[c->sys], c->threads,
           fmt_num(b1, sizeof b1, cl.med, 1), fmt_num(b2, sizeof b2, fl.med, 1),
           fmt_num(b3, sizeof b3, da.med, 1), b4);
  }
  printf("  (ours/peer: events/s above 1 = we are faster; bytes below 1 = "
         "we are smaller.)\n");
  printf("  (medians; du = allocated blocks.  libeventstore: after close = "
         "WAL only, its files are\n   preallocated; after flush = WAL + "
         "segments after es_flush; data files = segments + their rollups\n   "
         "(.rlp, file lengths).  rocksdb: "
         "WAL + SSTs; after an explicit flush; *.sst.  sqlite: database "
         "after the WAL\n   checkpoint at close; data files = events.db.  "
         "duckdb: database file after the checkpoint\n   at close; data "
         "files = events.duckdb.)\n");

  printf("\n  %-15s %7s %12s %12s %12s %10s %9s %8s\n", "recovery", "threads",
         "open ms min", "median", "max", "log MB", "MB/s", "s/GB");
  for (int i = 0; i < rp->ncfg; i++) {
    const config *c = &rp->cfg[i];
    stat3 t = stat_of(c, a->runs, FIELD(recover_s), 1e3);
    if (t.med < 0)
      continue;
    stat3 mb = stat_of(c, a->runs, FIELD(recover_payload_bytes), 1e-6);
    double sec = t.med / 1e3, mbps = sec > 0 ? mb.med / sec : -1;
    double s_per_gb = mb.med > 0 ? sec / (mb.med / 1e3) : -1;
    char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];
    printf("  %-15s %7d %12s %12s %12s %10s %9s %8s\n", sys_names[c->sys],
           c->threads, fmt_num(b1, sizeof b1, t.min, 1),
           fmt_num(b2, sizeof b2, t.med, 1), fmt_num(b3, sizeof b3, t.max, 1),
           fmt_num(b4, sizeof b4, mb.med, 1), fmt_num(b5, sizeof b5, mbps, 1),
           fmt_num(b6, sizeof b6, s_per_gb, 2));
  }
  printf("  (es_open / rocksdb_open after a close without flush.  log MB = "
         "the replayed records:\n   libeventstore: row bytes of the events "
         "still in its WAL (es_inspect); rocksdb: *.log size.\n   sqlite "
         "has nothing to replay after a clean close.)\n");
  for (int i = 0; i < rp->ncfg; i++)
    if (rp->cfg[i].sys == SYS_DUCKDB)
      printf("  duckdb: @duckdb/node-api appender in a node child process, "
             "one thread; parsing\n   the batch file is outside the "
             "clock, node's start-up too.  It has no WAL left to\n   "
             "replay after a clean close (checkpointed): see `es-bench "
             "live` for recovery.\n");
  for (int i = 0; i < rp->ncfg; i++)
    if (rp->cfg[i].sys == SYS_SQLITE && rp->cfg[i].threads > 1)
      printf("  sqlite with %d threads: one connection per thread, "
             "busy_timeout %d ms; writers queue on one lock.\n",
             rp->cfg[i].threads, 120000);
}

static void json_stat(const char *key, stat3 s, int last) {
  bench_json_stat3(key, s);
  printf(last ? "" : ",");
}

static void json_string(const char *s) { json_string_to(stdout, s); }

static void print_json(const report *rp) {
  const args *a = rp->a;
  const workload *w = rp->w;
  double n = (double)w->events_count;
  printf("{\"bench\":\"ingest\",\"events\":%zu,\"batches\":%zu,"
         "\"batch_max\":%d,\"tenants\":%d,\"seed\":%llu,\"days\":%d,"
         "\"runs\":%d,\"threads\":%d,\"cores\":%ld,\"dir\":",
         w->events_count, w->batches_count, w->batch_max, w->tenants_seen,
         (unsigned long long)w->seed, w->days, a->runs, a->threads,
         sysconf(_SC_NPROCESSORS_ONLN));
  json_string(rp->dir);
  printf(",\"fs\":\"%s\",\"payload_bytes_per_event\":%.1f,"
         "\"durability\":\"%s\",\"configs\":[",
         rp->fs, (double)w->payload_bytes / n, durability_text);
  for (int i = 0; i < rp->ncfg; i++) {
    const config *c = &rp->cfg[i], *o = ours_for(rp, c);
    stat3 eps = eps_of(c, a->runs, n);
    printf("%s{\"system\":\"%s\",\"threads\":%d,", i ? "," : "",
           sys_names[c->sys], c->threads);
    json_stat("events_per_s", eps, 0);
    json_stat("bytes_per_event_after_close",
              stat_of(c, a->runs, FIELD(du_close_bytes), 1 / n), 0);
    json_stat("bytes_per_event_after_flush",
              stat_of(c, a->runs, FIELD(du_flush_bytes), 1 / n), 0);
    json_stat("bytes_per_event_data_files",
              stat_of(c, a->runs, FIELD(du_data_bytes), 1 / n), 0);
    json_stat("recovery_s", stat_of(c, a->runs, FIELD(recover_s), 1), 0);
    json_stat("recovery_log_bytes",
              stat_of(c, a->runs, FIELD(recover_payload_bytes), 1), 0);
    json_stat("stored_events", stat_of(c, a->runs, FIELD(stored_events), 1), 0);
    json_stat(
        "ctx_switches_per_batch",
        stat_of(c, a->runs, FIELD(ctx_switches), 1 / (double)w->batches_count),
        0);
    double ratio = -1;
    if (c->sys != SYS_ES && o && eps.med > 0)
      ratio = eps_of(o, a->runs, n).med / eps.med;
    if (ratio > 0)
      printf("\"ours_over_peer_events_per_s\":%.4f,", ratio);
    printf("\"ingest_s\":[");
    for (int r = 0; r < a->runs; r++)
      printf(r ? ",%.6f" : "%.6f", c->runs[r].ingest_s);
    printf("]}");
  }
  printf("]}\n");
}

/* ------------------------------------------------------------------ */
/* ingest: driver                                                      */
/* ------------------------------------------------------------------ */

static int cmd_ingest(const args *a) {
  report rp;
  memset(&rp, 0, sizeof rp);
  rp.a = a;
  config cfg[CONFIGS_MAX];
  for (int s = 0; s < SYS_COUNT; s++) {
    if (!a->systems[s])
      continue;
    cfg[rp.ncfg++] = (config){s, 1, NULL};
    if (a->threads > 1 && s != SYS_DUCKDB)
      cfg[rp.ncfg++] = (config){s, a->threads, NULL};
  }
  rp.cfg = cfg;

  int made_base = 0;
  if (make_base_dir(a->dir, rp.dir, sizeof rp.dir, &made_base) != 0)
    return 1;
  rp.fs = fs_type_name(rp.dir);

  if (bench_progress_enabled)
    fprintf(stderr, "generating %llu events...", (unsigned long long)a->events);
  workload w;
  int rc = workload_build(&w, a->events, a->seed, a->days, a->batch);
  if (bench_progress_enabled)
    fputs("\r\033[K", stderr);
  if (rc != 0) {
    fprintf(stderr, "es-bench: out of memory generating the workload\n");
    goto out;
  }
  rp.w = &w;
  char batches_path[4096 + 32];
  snprintf(batches_path, sizeof batches_path, "%s/batches.jsonl", rp.dir);
  if (a->systems[SYS_DUCKDB]) {
    bench_fail_reset();
    if (duckdb_write_batches(&w, batches_path) != 0) {
      fprintf(stderr, "es-bench: %s\n", bench_last_error());
      rc = -1;
      goto out;
    }
  }
  for (int i = 0; i < rp.ncfg; i++)
    if (!(cfg[i].runs = calloc((size_t)a->runs, sizeof *cfg[i].runs))) {
      fprintf(stderr, "es-bench: out of memory\n");
      rc = -1;
      goto out;
    }
  for (int r = 0; r < a->runs && rc == 0; r++)
    for (int i = 0; i < rp.ncfg && rc == 0; i++)
      rc = run_one(&w, &cfg[i], r, a->runs, rp.dir, batches_path);
  if (rc == 0) {
    if (a->json) {
      print_json(&rp);
    } else {
      print_table(&rp);
      if (a->json_file)
        bench_print_to_file(a->json_file, (void (*)(const void *))print_json,
                            &rp);
    }
  }
out:
  for (int i = 0; i < rp.ncfg; i++)
    free(cfg[i].runs);
  workload_free(&w);
  remove_base_dir(a->dir, rp.dir, made_base);
  return rc == 0 ? 0 : 1;
}

/* The options of query, live and all as the commands take them, with
 * each command's own defaults for what the command line left out. */
static bench_common common_of(const args *a, uint64_t events, uint64_t quick,
                              int runs, int runs_quick) {
  bench_common c;
  memset(&c, 0, sizeof c);
  c.events = a->events_set ? a->events : a->quick ? quick : events;
  c.runs = a->runs_set ? a->runs : a->quick ? runs_quick : runs;
  c.quick = a->quick;
  c.json = a->json;
  c.json_file = a->json_file;
  c.dir = a->dir;
  c.seed = a->seed;
  c.days = a->days;
  c.use_es = a->systems[SYS_ES];
  c.use_duckdb = a->systems[SYS_DUCKDB];
  return c;
}

/* query, live and export compare answers with DuckDB, which stores every
 * generated event: eventstore stores the generator's repeated messageIds
 * (its retries) too there, unless --dedupe-hours says otherwise. */
static void dedupe_off_unless_set(void) {
  if (bench_es_dedupe_window_us < 0)
    bench_es_dedupe_window_us = 0;
}

static int cmd_query_args(const args *a) {
  bench_common c = common_of(a, 2000000, 20000, 5, 2);
  int64_t keep = bench_es_dedupe_window_us;
  dedupe_off_unless_set();
  int rc = cmd_query(&c);
  bench_es_dedupe_window_us = keep;
  return rc;
}

static int cmd_live_args(const args *a) {
  bench_common c = common_of(a, 200000, 10000, 3, 2);
  int64_t keep = bench_es_dedupe_window_us;
  dedupe_off_unless_set();
  int rc = cmd_live(&c);
  bench_es_dedupe_window_us = keep;
  return rc;
}

static int cmd_export_args(const args *a) {
  bench_common c = common_of(a, 1000000, 20000, 3, 1);
  int64_t keep = bench_es_dedupe_window_us;
  dedupe_off_unless_set(); /* DuckDB exports every generated event too */
  int rc = cmd_export(&c);
  bench_es_dedupe_window_us = keep;
  return rc;
}

static int cmd_replicate_a(const args *a) {
  bench_common c = common_of(a, 1000000, 50000, 3, 1);
  return cmd_replicate_args(&c);
}

static int cmd_http_args(const args *a) {
  bench_common c = common_of(a, 100000, 20000, 3, 1);
  return cmd_http(&c);
}

/* ingest, query and live in turn; with --json one object holding the
 * three reports.  Fails when any of them failed (after running all). */
/* Writes the glue between the reports of `all` where the JSON goes. */
static void all_glue(const args *a, const char *text) {
  if (a->json) {
    fputs(text, stdout);
    fflush(stdout);
  } else if (a->json_file) {
    FILE *f = fopen(a->json_file, "a");
    if (f) {
      fputs(text, f);
      fclose(f);
    }
  }
}

/* Starts --json-file afresh (the reports append to it); 0 or -1. */
static int json_file_start(const args *a) {
  if (!a->json_file || a->json)
    return 0;
  FILE *f = fopen(a->json_file, "w");
  if (!f) {
    fprintf(stderr, "es-bench: cannot write %s\n", a->json_file);
    return -1;
  }
  fclose(f);
  return 0;
}

static int cmd_all(args *a) {
  int events_set = a->events_set, runs_set = a->runs_set;
  uint64_t events = a->events;
  int runs = a->runs;
  if (json_file_start(a))
    return 1;
  if (!events_set)
    a->events = a->quick ? 20000 : 200000;
  if (!runs_set)
    a->runs = a->quick ? 1 : 3;
  all_glue(a, "{\"ingest\":");
  int rc = cmd_ingest(a);
  all_glue(a, rc ? "null,\"query\":" : ",\"query\":");
  a->events = events, a->runs = runs;
  if (!a->json)
    putchar('\n');
  int rq = cmd_query_args(a);
  all_glue(a, rq ? "null,\"live\":" : ",\"live\":");
  if (!a->json)
    putchar('\n');
  int rl = cmd_live_args(a);
  all_glue(a, rl ? "null}\n" : "}\n");
  return rc || rq || rl;
}

/* The hidden child of `es-bench live`: _appendloop --dir D --events N
 * --seed S --days D. */
static int cmd_appendloop_args(int argc, char **argv) {
  const char *dir = NULL;
  uint64_t events = 10000, seed = 1;
  int days = 7;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--dir"))
      dir = argv[i + 1];
    else if (!strcmp(argv[i], "--events"))
      events = parse_num("--events", argv[i + 1], 1, 100000000);
    else if (!strcmp(argv[i], "--seed"))
      seed = parse_num("--seed", argv[i + 1], 0, UINT64_MAX);
    else if (!strcmp(argv[i], "--days"))
      days = (int)parse_num("--days", argv[i + 1], 1, 3650);
  }
  if (!dir)
    bad_usage("_appendloop needs --dir");
  return cmd_appendloop(dir, events, seed, days);
}

/*
 * Entry point: dispatches to a subcommand.  Exit 2 on a bad command line,
 * 1 when a measurement (or a cross-check) failed, 0 otherwise.
 */
int main(int argc, char **argv) {
  if (argc < 2)
    bad_usage("missing command: gen, ingest, query, live, http, export or all");
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    fputs(usage_text, stdout);
    return 0;
  }
  bench_progress_enabled = isatty(STDERR_FILENO);
  args a;
  if (!strcmp(argv[1], "gen")) {
    parse_args(&a, argc, argv, 1);
    return cmd_gen(&a);
  }
  if (!strcmp(argv[1], "_appendloop"))
    return cmd_appendloop_args(argc, argv);
  if (!strcmp(argv[1], "_replica"))
    return cmd_replica_hidden(argc, argv);
  int (*cmd)(const args *) = !strcmp(argv[1], "ingest")      ? cmd_ingest
                             : !strcmp(argv[1], "query")     ? cmd_query_args
                             : !strcmp(argv[1], "live")      ? cmd_live_args
                             : !strcmp(argv[1], "http")      ? cmd_http_args
                             : !strcmp(argv[1], "export")    ? cmd_export_args
                             : !strcmp(argv[1], "replicate") ? cmd_replicate_a
                                                             : NULL;
  if (cmd) {
    parse_args(&a, argc, argv, 0);
    return json_file_start(&a) ? 1 : cmd(&a);
  }
  if (!strcmp(argv[1], "all")) {
    parse_args(&a, argc, argv, 0);
    return cmd_all(&a);
  }
  bad_usage(
      "unknown command '%s' (gen, ingest, query, live, http, export or all)",
      argv[1]);
}
