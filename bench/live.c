/*
 * live.c -- `es-bench live`: how soon an appended event is visible to a
 * query (freshness), and how long a store takes to come back after the
 * process appending to it was killed (recovery), for libeventstore and
 * DuckDB.
 *
 * Freshness: `n` times, one event with a marker id is appended durably
 * to a tenant of its own ("fresh"), then the store is queried until the
 * event shows up: libeventstore es_append then es_query
 * {"filter":{"person":<marker>}}; DuckDB appender + commit, then SELECT
 * ... WHERE message_id = <marker>.  The figure is the time from the
 * append call to the first answer that holds the event (so it includes
 * the durable append: fdatasync / DuckDB's WAL fsync).
 *
 * Recovery after a kill: a child process (es-bench _appendloop for
 * libeventstore, peer.mjs appendloop for DuckDB) appends the workload's
 * batches durably, one batch at a time, reporting every acknowledged
 * batch on its stdout; once `events` events are acknowledged it gets
 * SIGKILL.  Then the store is opened (timed: es_open replays the WAL) and
 * asked a first query (timed: a count over the hot tenant), and the
 * events it holds are counted: fewer than acknowledged is a failure
 * (a lost acknowledged event), more than acknowledged + one batch too
 * (invented events).
 *
 * First acknowledgement: how long a new process takes from its start to
 * its first durable append, on a fresh directory (es_open creates the
 * store) and on the store it left (a restart, as of es-ingestd).  The
 * parent reads CLOCK_MONOTONIC and posix_spawns es-bench-firstack
 * (firstack.c: a small program linking only libeventstore, as a server
 * would, not es-bench with its peers' libraries; not fork, whose copy of
 * es-bench's page tables took ~50 ms in `es-bench all`, where es-bench
 * holds the query phase's gigabytes), which opens, appends
 * one event durably and prints CLOCK_MONOTONIC at the acknowledgement:
 * so the figure includes exec, the dynamic loader and es_open, not only
 * the append.
 */
#include "bench.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define LIVE_RUNS_MAX 100
#define FRESH_MAX 1000

typedef struct kill_run {
  double acked, recovered, open_s, first_s;
} kill_run;

typedef struct first_ack {
  double fresh_s, restart_s;           /* process start -> first ack */
  double fresh_open_s, restart_open_s; /* of which es_open */
} first_ack;

typedef struct live {
  const bench_common *a;
  workload w;
  char dir[4096];
  char batches[4200];
  int fresh_n;
  double es_fresh_s[FRESH_MAX], es_append_s[FRESH_MAX];
  double duck_fresh_s[FRESH_MAX];
  kill_run es_kill[LIVE_RUNS_MAX], duck_kill[LIVE_RUNS_MAX];
  first_ack first[LIVE_RUNS_MAX];
} live;

/* ------------------------------------------------------------------ */
/* First acknowledgement of a new process                              */
/* ------------------------------------------------------------------ */

/* Runs the child on dir; *total_s = process start to ack. */
static int first_ack_once(const char *dir, double *total_s, double *open_s) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 32);
  if (n <= 0) {
    bench_fail("readlink /proc/self/exe failed");
    return -1;
  }
  self[n] = '\0';
  char *slash = strrchr(self, '/'); /* es-bench-firstack beside es-bench */
  strcpy(slash ? slash + 1 : self, "es-bench-firstack");
  const char *argv[] = {self, dir, NULL};
  peer_proc p;
  double t0 = now_s();
  if (exe_start(&p, "es-bench-firstack", argv) != 0)
    return -1;
  char buf[256] = "";
  int got = peer_line(&p, buf, sizeof buf);
  if (peer_reap(&p) != 0 || !got) {
    bench_fail("%s %s failed", self, dir);
    return -1;
  }
  double ack = json_num(buf, "ack_s", 0);
  *open_s = json_num(buf, "open_s", 0);
  *total_s = ack - t0;
  if (ack <= 0 || *total_s <= 0) {
    bench_fail("%s printed '%s'", self, buf);
    return -1;
  }
  return 0;
}

static int es_first_ack(live *lv, int run, first_ack *f) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/es-first-%d", lv->dir, run);
  rm_rf(dir);
  int rc = first_ack_once(dir, &f->fresh_s, &f->fresh_open_s);
  if (rc == 0)
    rc = first_ack_once(dir, &f->restart_s, &f->restart_open_s);
  rm_rf(dir);
  return rc;
}

/* ------------------------------------------------------------------ */
/* The appending child (es-bench _appendloop)                          */
/* ------------------------------------------------------------------ */

int cmd_appendloop(const char *dir, uint64_t events, uint64_t seed, int days) {
  workload w;
  if (workload_build(&w, events, seed, days, 100) != 0) {
    fprintf(stderr, "es-bench _appendloop: out of memory\n");
    return 1;
  }
  es_db *db;
  /* every acknowledged event must be a row (the check after the kill),
   * and the loop sends the workload again: no idempotent append here */
  bench_es_dedupe_window_us = 0;
  if (bench_es_open(dir, &db) != 0) {
    fprintf(stderr, "es-bench _appendloop: %s\n", bench_last_error());
    return 1;
  }
  unsigned long long acked = 0;
  for (;;) /* until killed: the parent stops us */
    for (size_t i = 0; i < w.batches_count; i++) {
      const batch *b = &w.batches[i];
      int rc = es_append(db, b->tenant, b->events, b->count, NULL);
      if (rc != ES_OK) {
        fprintf(stderr, "es-bench _appendloop: es_append: %s: %s\n",
                es_strerror(rc), es_errdetail());
        return 1;
      }
      acked += b->count;
      char line[64];
      int n = snprintf(line, sizeof line, "A %llu\n", acked);
      if (write(STDOUT_FILENO, line, (size_t)n) != n)
        return 1; /* the parent is gone */
    }
}

/* ------------------------------------------------------------------ */
/* Kill and recover                                                    */
/* ------------------------------------------------------------------ */

/* Reads "A n" lines until n >= target, then SIGKILLs the child.  Returns
 * the last acknowledged count, or -1 when the child ended first. */
static double run_until_acked(peer_proc *p, double target, const char *label) {
  char line[256];
  double acked = 0;
  while (peer_line(p, line, sizeof line)) {
    unsigned long long n;
    if (sscanf(line, "A %llu", &n) == 1) {
      acked = (double)n;
      bench_progress(label, (size_t)n, (size_t)target);
      if (acked >= target) {
        /* Kill, then read what the child wrote before it died: on a
         * loaded machine it may have acknowledged more batches than this
         * loop had read when it decided to kill. */
        if (p->pid > 0)
          kill(p->pid, SIGKILL);
        while (peer_line(p, line, sizeof line))
          if (sscanf(line, "A %llu", &n) == 1 && (double)n > acked)
            acked = (double)n;
        peer_kill(p);
        bench_progress_clear();
        return acked;
      }
    }
  }
  peer_kill(p);
  bench_progress_clear();
  bench_fail("%s: the appending child ended before it was killed", label);
  return -1;
}

/* Count of the tenant's events through es_query; -1 on error. */
static double count_of(es_db *db, const char *tenant) {
  char *res;
  if (es_query(db, tenant, "{}", &res) != ES_OK) {
    bench_fail("es_query(%s): %s", tenant, es_errdetail());
    return -1;
  }
  char err[128];
  yajl_val root = yajl_tree_parse(res, err, sizeof err);
  es_free(res);
  const char *rp[] = {"rows", NULL}, *cp[] = {"count", NULL};
  yajl_val rows = root ? yajl_tree_get(root, rp, yajl_t_array) : NULL;
  double n = -1;
  if (rows && rows->u.array.len == 0)
    n = 0;
  else if (rows) {
    yajl_val c = yajl_tree_get(rows->u.array.values[0], cp, yajl_t_number);
    n = c ? (double)YAJL_GET_INTEGER(c) : -1;
  }
  if (root)
    yajl_tree_free(root);
  if (n < 0)
    bench_fail("es_query(%s): unexpected result", tenant);
  return n;
}

static int check_recovered(const char *sys, const kill_run *k) {
  if (k->recovered < k->acked) {
    bench_fail("%s lost acknowledged events after SIGKILL: %.0f "
               "acknowledged, %.0f recovered",
               sys, k->acked, k->recovered);
    return -1;
  }
  if (k->recovered > k->acked + 100) {
    bench_fail("%s recovered %.0f events, more than the %.0f acknowledged "
               "plus one batch in flight",
               sys, k->recovered, k->acked);
    return -1;
  }
  return 0;
}

static int es_kill_run(live *lv, int run, kill_run *k) {
  char dir[4200], ev[32], seed[32], days[16], label[64];
  snprintf(dir, sizeof dir, "%s/es-kill-%d", lv->dir, run);
  snprintf(ev, sizeof ev, "%llu", (unsigned long long)lv->a->events);
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)lv->a->seed);
  snprintf(days, sizeof days, "%d", lv->a->days);
  snprintf(label, sizeof label, "kill run %d libeventstore", run + 1);
  const char *args[] = {"_appendloop", "--dir", dir,      "--events", ev,
                        "--seed",      seed,    "--days", days,       NULL};
  peer_proc p;
  if (self_start(&p, args) != 0)
    return -1;
  if ((k->acked = run_until_acked(&p, (double)lv->a->events, label)) < 0)
    return -1;
  es_db *db;
  double t0 = now_s();
  if (bench_es_open(dir, &db) != 0)
    return -1;
  k->open_s = now_s() - t0;
  double first = count_of(db, lv->w.batches[0].tenant);
  k->first_s = now_s() - t0;
  /* Every tenant the child appended to (the workload's), counted. */
  k->recovered = first < 0 ? -1 : 0;
  char *seen = calloc(10000, 1);
  if (!seen)
    k->recovered = -1;
  for (size_t i = 0; i < lv->w.batches_count && k->recovered >= 0; i++) {
    const char *t = lv->w.batches[i].tenant;
    int idx = atoi(t + 1);
    if (idx < 0 || idx >= 10000 || seen[idx])
      continue;
    seen[idx] = 1;
    double n = count_of(db, t);
    k->recovered = n < 0 ? -1 : k->recovered + n;
  }
  free(seen);
  int rc = es_close(db);
  rm_rf(dir);
  if (k->recovered < 0 || rc != ES_OK)
    return -1;
  return check_recovered("libeventstore", k);
}

static int duck_kill_run(live *lv, int run, kill_run *k) {
  char db[4200], label[64];
  snprintf(db, sizeof db, "%s/duck-kill-%d.duckdb", lv->dir, run);
  snprintf(label, sizeof label, "kill run %d duckdb", run + 1);
  const char *args[] = {"appendloop", "--db", db, "--input", lv->batches, NULL};
  peer_proc p;
  if (peer_start(&p, args) != 0)
    return -1;
  if ((k->acked = run_until_acked(&p, (double)lv->a->events, label)) < 0)
    return -1;
  const char *rargs[] = {"recover", "--db", db, NULL};
  char *json;
  if (peer_start(&p, rargs) != 0 || peer_finish(&p, label, &json) != 0)
    return -1;
  k->open_s = json_num(json, "open_s", 0);
  k->first_s = json_num(json, "first_query_s", 0);
  k->recovered = json_num(json, "rows", 0);
  free(json);
  char wal[4300];
  snprintf(wal, sizeof wal, "%s.wal", db);
  unlink(db);
  unlink(wal);
  return check_recovered("duckdb", k);
}

/* ------------------------------------------------------------------ */
/* Freshness                                                           */
/* ------------------------------------------------------------------ */

static int es_fresh(live *lv) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/es-fresh", lv->dir);
  es_db *db;
  if (bench_es_open(dir, &db) != 0)
    return -1;
  int rc = 0;
  for (int i = 0; i < lv->fresh_n && rc == 0; i++) {
    es_event ev = lv->w.events[(size_t)i % lv->w.events_count];
    char marker[64], spec[128];
    snprintf(marker, sizeof marker, "fresh-%d", i);
    snprintf(spec, sizeof spec, "{\"filter\":{\"person\":\"%s\"}}", marker);
    ev.anonymous_id = marker;
    ev.user_id = NULL;
    ev.message_id = marker;
    double t0 = now_s();
    int st = es_append(db, "fresh", &ev, 1, NULL);
    lv->es_append_s[i] = now_s() - t0;
    if (st != ES_OK) {
      bench_fail("es_append: %s: %s", es_strerror(st), es_errdetail());
      rc = -1;
      break;
    }
    for (int tries = 0;; tries++) {
      char *res;
      if (es_query(db, "fresh", spec, &res) != ES_OK) {
        bench_fail("es_query: %s", es_errdetail());
        rc = -1;
        break;
      }
      int seen = strstr(res, "\"count\":1") != NULL;
      es_free(res);
      if (seen)
        break;
      if (tries > 100000) {
        bench_fail("an appended event stayed invisible");
        rc = -1;
        break;
      }
    }
    lv->es_fresh_s[i] = now_s() - t0;
    bench_progress("freshness libeventstore", (size_t)i + 1,
                   (size_t)lv->fresh_n);
  }
  bench_progress_clear();
  if (es_close(db) != ES_OK && rc == 0) {
    bench_fail("es_close: %s", es_errdetail());
    rc = -1;
  }
  return rc;
}

static int duck_fresh(live *lv) {
  char db[4200], n[16];
  snprintf(db, sizeof db, "%s/duck-fresh.duckdb", lv->dir);
  snprintf(n, sizeof n, "%d", lv->fresh_n);
  const char *args[] = {"fresh",     "--db", db, "--input",
                        lv->batches, "--n",  n,  NULL};
  peer_proc p;
  char *json;
  if (peer_start(&p, args) != 0 ||
      peer_finish(&p, "freshness duckdb", &json) != 0)
    return -1;
  int ok = 1;
  for (int i = 0; i < lv->fresh_n; i++)
    ok &= (lv->duck_fresh_s[i] = json_num(json, "fresh_s", i)) >= 0;
  free(json);
  if (!ok)
    bench_fail("the DuckDB peer's freshness result is short");
  return ok ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Report                                                              */
/* ------------------------------------------------------------------ */

static stat3 ms3(const double *v, int n) {
  double x[FRESH_MAX];
  for (int i = 0; i < n; i++)
    x[i] = v[i] * 1e3;
  return stat3_of(x, n);
}

static stat3 kill3(const kill_run *k, int n, size_t off, double scale) {
  double x[LIVE_RUNS_MAX];
  for (int i = 0; i < n; i++)
    x[i] = *(const double *)((const char *)&k[i] + off) * scale;
  return stat3_of(x, n);
}

static stat3 first3(const first_ack *f, int n, size_t off) {
  double x[LIVE_RUNS_MAX];
  for (int i = 0; i < n; i++)
    x[i] = *(const double *)((const char *)&f[i] + off) * 1e3;
  return stat3_of(x, n);
}

static void print_table(const live *lv) {
  const bench_common *a = lv->a;
  int R = a->runs;
  printf("es-bench live: freshness over %d appends; recovery after SIGKILL "
         "of a process appending batches of 100 durably, killed once %llu "
         "events are acknowledged; %d runs\n\n",
         lv->fresh_n, (unsigned long long)a->events, R);
  printf("  %-22s %-13s %9s %9s %9s %16s %9s\n", "freshness", "system",
         "ms min", "median", "max", "append ms median", "peer/ours");
  stat3 ef = ms3(lv->es_fresh_s, lv->fresh_n);
  stat3 ea = ms3(lv->es_append_s, lv->fresh_n);
  if (a->use_es)
    printf("  %-22s %-13s %9.3f %9.3f %9.3f %16.3f %9s\n", "append -> visible",
           "libeventstore", ef.min, ef.med, ef.max, ea.med, "-");
  if (a->use_duckdb) {
    stat3 df = ms3(lv->duck_fresh_s, lv->fresh_n);
    char r[16] = "-";
    if (a->use_es && ef.med > 0)
      snprintf(r, sizeof r, "%.2fx", df.med / ef.med);
    printf("  %-22s %-13s %9.3f %9.3f %9.3f %16s %9s\n", "append -> visible",
           "duckdb", df.min, df.med, df.max, "-", r);
  }
  printf("  (libeventstore: es_append (fdatasync) then es_query "
         "filter.person until it counts the event;\n   duckdb: appender + "
         "commit (WAL fsync) then SELECT by message id; a tenant of its "
         "own.)\n\n");
  if (a->use_es) {
    const first_ack *f = lv->first;
    size_t o1 = offsetof(first_ack, fresh_s),
           o2 = offsetof(first_ack, restart_s);
    size_t p1 = offsetof(first_ack, fresh_open_s),
           p2 = offsetof(first_ack, restart_open_s);
    printf("  %-22s %-13s %9s %9s %9s %16s\n", "first ack", "store", "ms min",
           "median", "max", "es_open ms med");
    for (int k = 0; k < 2; k++) {
      stat3 t = first3(f, R, k ? o2 : o1), op = first3(f, R, k ? p2 : p1);
      printf("  %-22s %-13s %9.2f %9.2f %9.2f %16.2f\n", "process -> 1st ack",
             k ? "restart" : "fresh dir", t.min, t.med, t.max, op.med);
    }
    printf("  (from posix_spawn of a process that opens the store and appends "
           "one event durably to\n   that event's acknowledgement: fresh dir "
           "= es_open creates the store; restart = the\n   same directory "
           "reopened, as a restarted es-ingestd does.)\n\n");
  }
  printf("  %-22s %-13s %9s %9s %9s %9s %9s %9s %9s\n", "recovery after kill",
         "system", "acked", "recovered", "open ms", "median", "max",
         "+1st query", "peer/ours");
  for (int s = 0; s < 2; s++) {
    if (!(s ? a->use_duckdb : a->use_es))
      continue;
    const kill_run *k = s ? lv->duck_kill : lv->es_kill;
    stat3 op = kill3(k, R, offsetof(kill_run, open_s), 1e3);
    stat3 fq = kill3(k, R, offsetof(kill_run, first_s), 1e3);
    stat3 ac = kill3(k, R, offsetof(kill_run, acked), 1);
    stat3 rc = kill3(k, R, offsetof(kill_run, recovered), 1);
    char r[16] = "-";
    if (s && a->use_es) {
      stat3 of = kill3(lv->es_kill, R, offsetof(kill_run, first_s), 1e3);
      if (of.med > 0)
        snprintf(r, sizeof r, "%.2fx", fq.med / of.med);
    }
    printf("  %-22s %-13s %9.0f %9.0f %9.1f %9.1f %9.1f %9.1f %9s\n",
           "open + first query", s ? "duckdb" : "libeventstore", ac.med, rc.med,
           op.min, op.med, op.max, fq.med, r);
  }
  printf("  (acked / recovered: medians of events acknowledged before the "
         "kill and found after reopening;\n   every run checks recovered >= "
         "acked.  open ms: es_open (WAL replay) / DuckDBInstance.create +\n"
         "   connect; +1st query: open plus a count of the hot tenant "
         "(libeventstore) / of the table (duckdb).\n   DuckDB checkpoints "
         "its WAL into the database file by itself (default threshold "
         "16 MB), so\n   it replays at most that much.)\n");
}

static void print_json(const live *lv) {
  const bench_common *a = lv->a;
  int R = a->runs;
  printf("{\"bench\":\"live\",\"fresh_appends\":%d,\"kill_after_events\":%llu,"
         "\"runs\":%d,\"systems\":[",
         lv->fresh_n, (unsigned long long)a->events, R);
  for (int s = 0, first = 1; s < 2; s++) {
    if (!(s ? a->use_duckdb : a->use_es))
      continue;
    const kill_run *k = s ? lv->duck_kill : lv->es_kill;
    printf("%s{\"system\":\"%s\",", first ? "" : ",",
           s ? "duckdb" : "libeventstore");
    first = 0;
    bench_json_stat3("fresh_ms",
                     ms3(s ? lv->duck_fresh_s : lv->es_fresh_s, lv->fresh_n));
    putchar(',');
    bench_json_stat3("recovery_open_ms",
                     kill3(k, R, offsetof(kill_run, open_s), 1e3));
    putchar(',');
    bench_json_stat3("recovery_first_query_ms",
                     kill3(k, R, offsetof(kill_run, first_s), 1e3));
    putchar(',');
    bench_json_stat3("acked_events", kill3(k, R, offsetof(kill_run, acked), 1));
    putchar(',');
    bench_json_stat3("recovered_events",
                     kill3(k, R, offsetof(kill_run, recovered), 1));
    if (!s) {
      putchar(',');
      bench_json_stat3("first_ack_fresh_ms",
                       first3(lv->first, R, offsetof(first_ack, fresh_s)));
      putchar(',');
      bench_json_stat3("first_ack_restart_ms",
                       first3(lv->first, R, offsetof(first_ack, restart_s)));
    }
    putchar('}');
  }
  printf("]}\n");
}

/* ------------------------------------------------------------------ */
/* The command                                                         */
/* ------------------------------------------------------------------ */

static int live_run(live *lv) {
  const bench_common *a = lv->a;
  if (workload_build(&lv->w, a->events, a->seed, a->days, 100) != 0) {
    bench_fail("out of memory generating the workload");
    return -1;
  }
  if (a->use_duckdb && duckdb_write_batches(&lv->w, lv->batches) != 0)
    return -1;
  if (a->use_es && es_fresh(lv) != 0)
    return -1;
  if (a->use_duckdb && duck_fresh(lv) != 0)
    return -1;
  for (int r = 0; a->use_es && r < a->runs; r++)
    if (es_first_ack(lv, r, &lv->first[r]) != 0)
      return -1;
  for (int r = 0; r < a->runs; r++) { /* interleaved, like ingest */
    if (a->use_es && es_kill_run(lv, r, &lv->es_kill[r]) != 0)
      return -1;
    if (a->use_duckdb && duck_kill_run(lv, r, &lv->duck_kill[r]) != 0)
      return -1;
  }
  return 0;
}

int cmd_live(const bench_common *a) {
  live *lv = calloc(1, sizeof *lv);
  if (!lv || a->runs > LIVE_RUNS_MAX) {
    free(lv);
    fprintf(stderr, "es-bench live: out of memory or too many runs\n");
    return 1;
  }
  lv->a = a;
  lv->fresh_n = a->quick ? 10 : 100;
  int made_base = 0;
  if (make_base_dir(a->dir, lv->dir, sizeof lv->dir, &made_base) != 0) {
    free(lv);
    return 1;
  }
  snprintf(lv->batches, sizeof lv->batches, "%s/batches.jsonl", lv->dir);
  bench_fail_reset();
  int rc = live_run(lv);
  if (rc != 0)
    fprintf(stderr, "es-bench live: %s\n", bench_last_error());
  else if (a->json)
    print_json(lv);
  else {
    print_table(lv);
    if (a->json_file)
      bench_print_to_file(a->json_file, (void (*)(const void *))print_json, lv);
  }
  workload_free(&lv->w);
  remove_base_dir(a->dir, lv->dir, made_base);
  free(lv);
  return rc == 0 ? 0 : 1;
}
