/*
 * export.c -- `es-bench export`: the same events exported to Parquet by
 * libeventstore (es_export, ZSTD pages) and by DuckDB (COPY ... TO
 * (FORMAT parquet, COMPRESSION zstd)) in the same run (issue 13's
 * figures: rows per second and file size, each as a ratio to DuckDB).
 *
 *  1. The workload (gen.c) is loaded into libeventstore (es_append of
 *     every batch, es_flush) and, from the same batches, into DuckDB's
 *     table (bench/duckdb/peer.mjs ingest, bulk).  Loading is not timed.
 *  2. libeventstore: `runs` times es_export of every tenant and every day
 *     of the workload into a fresh directory (the layout of
 *     docs/EXPORT.md), timed in this process; bytes are the files' sizes.
 *  3. DuckDB: `runs` times COPY (SELECT <the same columns>) TO a directory
 *     PARTITION_BY (tenant, date) -- the same files -- and to one file,
 *     timed inside the peer (peer.mjs export).
 *  4. Rows must equal the workload's events on both sides.
 *
 * Differences that remain: es_export stitches person_id through the
 * identity map (DuckDB's side takes user_id, else anonymous_id); es_export
 * syncs every file and directory (DuckDB's COPY syncs nothing); es_export
 * runs its default 4 partition threads, DuckDB its default thread count
 * (the report names it).  Rows per CPU-second (user + system time of
 * all threads) are the figure the other work on a shared machine cannot
 * inflate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"

#define RUNS_MAX 20
#define DAY_US INT64_C(86400000000)

typedef struct xbench {
  const bench_common *a;
  workload w;
  char dir[4096], es_dir[4200], out[4200], duck_db[4200], batches[4200];
  double es_s[RUNS_MAX], es_cpu_s[RUNS_MAX];
  double es_bytes, es_files, es_rows;
  double duck_part_s[RUNS_MAX], duck_single_s[RUNS_MAX];
  double duck_part_cpu_s[RUNS_MAX], duck_single_cpu_s[RUNS_MAX];
  double duck_part_bytes, duck_single_bytes, duck_rows, duck_threads;
  int64_t from_us, to_us;
} xbench;

/* CPU seconds (user + system) of this process so far: the figures the
 * other processes on a shared machine cannot inflate. */
static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int export_es(xbench *x) {
  es_db *db;
  if (bench_es_load(&x->w, x->es_dir, &db) != 0)
    return -1;
  int rc = 0;
  for (int r = 0; r < x->a->runs && rc == 0; r++) {
    bench_progress("export: libeventstore", (size_t)r, (size_t)x->a->runs);
    rm_rf(x->out);
    es_export_options o;
    es_export_options_init(&o);
    o.out_dir = x->out;
    o.from_us = x->from_us;
    o.to_us = x->to_us;
    es_export_result res;
    double t0 = now_s(), c0 = cpu_s();
    int erc = es_export(db, &o, &res);
    x->es_s[r] = now_s() - t0;
    x->es_cpu_s[r] = cpu_s() - c0;
    if (erc != ES_OK) {
      bench_fail("es_export: %s: %s", es_strerror(erc), es_errdetail());
      rc = -1;
      break;
    }
    x->es_bytes = apparent_bytes(x->out, ".parquet");
    x->es_files = (double)res.files;
    x->es_rows = (double)res.rows;
  }
  bench_progress_clear();
  es_close(db);
  rm_rf(x->out);
  if (rc == 0 && x->es_rows != (double)x->w.events_count) {
    bench_fail("es_export wrote %.0f rows, not %zu", x->es_rows,
               x->w.events_count);
    rc = -1;
  }
  return rc;
}

static int export_duckdb(xbench *x) {
  char total[32], runs[16];
  snprintf(total, sizeof total, "%zu", x->w.events_count);
  snprintf(runs, sizeof runs, "%d", x->a->runs);
  if (duckdb_write_batches(&x->w, x->batches) != 0)
    return -1;
  const char *load[] = {"ingest",   "--db",    x->duck_db, "--input",
                        x->batches, "--total", total,      "--commit-rows",
                        "100000",   NULL};
  peer_proc p;
  char *json = NULL;
  if (peer_start(&p, load) != 0 || peer_finish(&p, "load duckdb", &json) != 0)
    return -1;
  free(json);
  unlink(x->batches);
  const char *exp[] = {"export", "--db",   x->duck_db, "--out",
                       x->out,   "--runs", runs,       NULL};
  if (peer_start(&p, exp) != 0 || peer_finish(&p, "export: duckdb", &json) != 0)
    return -1;
  for (int r = 0; r < x->a->runs; r++) {
    x->duck_part_s[r] = json_num(json, "partitioned_s", r);
    x->duck_single_s[r] = json_num(json, "single_s", r);
    x->duck_part_cpu_s[r] = json_num(json, "partitioned_cpu_s", r);
    x->duck_single_cpu_s[r] = json_num(json, "single_cpu_s", r);
  }
  x->duck_part_bytes = json_num(json, "partitioned_bytes", 0);
  x->duck_single_bytes = json_num(json, "single_bytes", 0);
  x->duck_rows = json_num(json, "rows", 0);
  x->duck_threads = json_num(json, "threads", 0);
  free(json);
  rm_rf(x->out);
  if (x->duck_rows != (double)x->w.events_count) {
    bench_fail("DuckDB holds %.0f rows, not %zu", x->duck_rows,
               x->w.events_count);
    return -1;
  }
  return 0;
}

static stat3 rate_of(const double *secs, int runs, double rows) {
  double v[RUNS_MAX];
  for (int r = 0; r < runs; r++)
    v[r] = secs[r] > 0 ? rows / secs[r] : -1;
  return stat3_of(v, runs);
}

static void print_table(const xbench *x) {
  int runs = x->a->runs;
  double n = (double)x->w.events_count;
  stat3 es = rate_of(x->es_s, runs, n);
  printf("export: %zu events, %d tenants, %d days, %d run(s); Parquet with "
         "ZSTD pages\n",
         x->w.events_count, x->w.tenants_seen, x->a->days, runs);
  stat3 esc = rate_of(x->es_cpu_s, runs, n);
  printf("  %-34s %12s %14s %12s %8s\n", "system", "rows/s (med)", "rows/CPU-s",
         "bytes", "files");
  printf("  %-34s %12.0f %14.0f %12.0f %8.0f\n",
         "libeventstore es_export (4 thr)", es.med, esc.med, x->es_bytes,
         x->es_files);
  if (x->a->use_duckdb) {
    stat3 dp = rate_of(x->duck_part_s, runs, n);
    stat3 ds = rate_of(x->duck_single_s, runs, n);
    stat3 dpc = rate_of(x->duck_part_cpu_s, runs, n);
    stat3 dsc = rate_of(x->duck_single_cpu_s, runs, n);
    char label[64];
    snprintf(label, sizeof label, "duckdb COPY PARTITION_BY (%.0f thr)",
             x->duck_threads);
    printf("  %-34s %12.0f %14.0f %12.0f %8s\n", label, dp.med, dpc.med,
           x->duck_part_bytes, "");
    snprintf(label, sizeof label, "duckdb COPY one file (%.0f thr)",
             x->duck_threads);
    printf("  %-34s %12.0f %14.0f %12.0f %8s\n", label, ds.med, dsc.med,
           x->duck_single_bytes, "1");
    printf("  libeventstore / duckdb partitioned: rows/s %.2fx, rows/CPU-s "
           "%.2fx, bytes %.2fx\n",
           es.med / dp.med, esc.med / dpc.med,
           x->es_bytes / x->duck_part_bytes);
    printf("  libeventstore / duckdb one file:    rows/s %.2fx, rows/CPU-s "
           "%.2fx, bytes %.2fx\n",
           es.med / ds.med, esc.med / dsc.med,
           x->es_bytes / x->duck_single_bytes);
  }
}

static void print_json(const xbench *x) {
  int runs = x->a->runs;
  double n = (double)x->w.events_count;
  printf("{\"bench\":\"export\",\"events\":%zu,\"tenants\":%d,\"days\":%d,"
         "\"runs\":%d,\"es\":{",
         x->w.events_count, x->w.tenants_seen, x->a->days, runs);
  bench_json_stat3("rows_per_s", rate_of(x->es_s, runs, n));
  printf(",");
  bench_json_stat3("rows_per_cpu_s", rate_of(x->es_cpu_s, runs, n));
  printf(",\"bytes\":%.0f,\"files\":%.0f}", x->es_bytes, x->es_files);
  if (x->a->use_duckdb) {
    printf(",\"duckdb\":{\"threads\":%.0f,", x->duck_threads);
    bench_json_stat3("partitioned_rows_per_s",
                     rate_of(x->duck_part_s, runs, n));
    printf(",");
    bench_json_stat3("partitioned_rows_per_cpu_s",
                     rate_of(x->duck_part_cpu_s, runs, n));
    printf(",\"partitioned_bytes\":%.0f,", x->duck_part_bytes);
    bench_json_stat3("single_rows_per_s", rate_of(x->duck_single_s, runs, n));
    printf(",");
    bench_json_stat3("single_rows_per_cpu_s",
                     rate_of(x->duck_single_cpu_s, runs, n));
    printf(",\"single_bytes\":%.0f}", x->duck_single_bytes);
  }
  printf("}\n");
}

int cmd_export(const bench_common *a) {
  xbench *x = calloc(1, sizeof *x);
  if (!x) {
    fprintf(stderr, "es-bench: out of memory\n");
    return 1;
  }
  x->a = a;
  int made_base = 0, rc = -1;
  if (a->runs > RUNS_MAX ||
      make_base_dir(a->dir, x->dir, sizeof x->dir, &made_base) != 0) {
    free(x);
    return 1;
  }
  snprintf(x->es_dir, sizeof x->es_dir, "%s/es", x->dir);
  snprintf(x->out, sizeof x->out, "%s/out", x->dir);
  snprintf(x->duck_db, sizeof x->duck_db, "%s/events.duckdb", x->dir);
  snprintf(x->batches, sizeof x->batches, "%s/batches.jsonl", x->dir);
  if (workload_build(&x->w, a->events, a->seed, a->days, 100) != 0) {
    fprintf(stderr, "es-bench: out of memory generating the workload\n");
    goto out;
  }
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (size_t i = 0; i < x->w.events_count; i++) {
    int64_t t = x->w.events[i].ts_us;
    lo = t < lo ? t : lo;
    hi = t > hi ? t : hi;
  }
  x->from_us = lo / DAY_US * DAY_US;
  x->to_us = (hi / DAY_US + 1) * DAY_US;
  bench_fail_reset();
  rc = a->use_es ? export_es(x) : 0;
  if (rc == 0 && a->use_duckdb)
    rc = export_duckdb(x);
  if (rc != 0) {
    bench_progress_clear();
    fprintf(stderr, "es-bench export: %s\n", bench_last_error());
    goto out;
  }
  if (a->json) {
    print_json(x);
  } else {
    print_table(x);
    if (a->json_file)
      bench_print_to_file(a->json_file, (void (*)(const void *))print_json, x);
  }
out:
  workload_free(&x->w);
  remove_base_dir(a->dir, x->dir, made_base);
  free(x);
  return rc == 0 ? 0 : 1;
}
