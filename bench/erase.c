/*
 * erase.c -- es-bench-erase: how long a person's erasure takes on a
 * tenant of N events, and how much it slows concurrent ingest
 * (issue 14's deadline figures; docs/PRIVACY.md quotes them).
 *
 *  1. Loads tenant "big": N page views of 20,000 visitors over 7 days,
 *     the person to erase among them (one event in 10,000, spread over the
 *     whole range, so every segment may hold them: the worst case), in
 *     batches of 1,000 (ES_SYNC_FULL, messageIds de-duplicated as in
 *     any append), then es_flush.  The load rate of each million events
 *     is printed (stderr) as the tenant grows.
 *  2. Per run (a fresh person each: person-<r>): es_erase_submit (stage a,
 *     the latency an HTTP caller waits for) and es_erase_run (every other
 *     stage) timed, and each stage's time from the status JSON.
 *     es_erase_run runs on a thread at nice +10, as es-ingestd runs it.
 *  3. Meanwhile a thread appends batches of 100 events to tenant "live"
 *     (ES_SYNC_FULL, one fdatasync per batch); its events per second
 *     during the erase are compared with its rate over --window seconds
 *     (default 3) just before the erase and as many just after it.
 *
 *   es-bench-erase [--events N] [--runs R] [--window S] [--dir DIR]
 *
 * Prints one JSON object: medians over the runs and the per-run figures.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "eventstore.h"

#define RUNS_MAX 10
#define T0 INT64_C(1764000000000000)
#define SPAN_US (INT64_C(7) * 86400 * 1000000)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "es-bench-erase: %s: %s (%s)\n", what, es_strerror(rc),
          es_errmsg());
  exit(1);
}

static void load(es_db *db, uint64_t n, int runs) {
  enum { B = 1000 };
  static es_event evs[B];
  static char mids[B][32], anons[B][32];
  uint64_t i = 0;
  double t0 = now_s(), tstep = t0;
  while (i < n) {
    int m = 0;
    for (; m < B && i < n; m++, i++) {
      es_event *e = &evs[m];
      memset(e, 0, sizeof(*e));
      e->ts_us = T0 + (int64_t)(i * (uint64_t)SPAN_US / n);
      e->type = ES_TYPE_PAGE;
      e->path = i % 3 ? "/pricing" : "/docs";
      snprintf(mids[m], sizeof(mids[m]), "m-%llu", (unsigned long long)i);
      e->message_id = mids[m];
      if (i % 10000 == 7) /* the people to erase, one per run */
        snprintf(anons[m], sizeof(anons[m]), "person-%llu",
                 (unsigned long long)(i / 10000 % (uint64_t)runs));
      else
        snprintf(anons[m], sizeof(anons[m]), "v-%llu",
                 (unsigned long long)(i * 2654435761u % 20000));
      e->anonymous_id = anons[m];
      e->properties = "{\"email\":\"someone@example.com\",\"plan\":\"pro\"}";
    }
    int rc = es_append(db, "big", evs, (size_t)m, NULL);
    if (rc)
      die("append", rc);
    if (i % 1000000 == 0 || i == n) { /* the load rate as the tenant grows */
      double t = now_s();
      uint64_t step = i % 1000000 ? i % 1000000 : 1000000;
      fprintf(stderr,
              "es-bench-erase: %llu events in the tenant after %.1f s; the "
              "last %llu at %.0f events/s\n",
              (unsigned long long)i, t - t0, (unsigned long long)step,
              (double)step / (t - tstep));
      tstep = t;
    }
  }
  int rc = es_flush(db, NULL);
  if (rc)
    die("flush", rc);
}

/* The concurrent ingest: batches of 100 to "live" until stopped. */
typedef struct feeder {
  es_db *db;
  atomic_int stop;
  atomic_ullong events;
} feeder;

static void *feed(void *arg) {
  feeder *f = arg;
  es_event evs[100];
  char mids[100][32];
  unsigned long long k = 0;
  while (!atomic_load(&f->stop)) {
    for (int m = 0; m < 100; m++, k++) {
      memset(&evs[m], 0, sizeof(evs[m]));
      evs[m].ts_us = T0 + (int64_t)k;
      evs[m].type = ES_TYPE_TRACK;
      evs[m].event = "Clicked";
      snprintf(mids[m], sizeof(mids[m]), "l-%llu", k);
      evs[m].message_id = mids[m];
      evs[m].anonymous_id = "live-visitor";
    }
    if (es_append(f->db, "live", evs, 100, NULL) == ES_OK)
      atomic_fetch_add(&f->events, 100);
  }
  return NULL;
}

/* es_erase_run on a thread at nice +10, as es-ingestd's eraser thread
 * runs it (cmd/ingest/admin.c). */
typedef struct runner {
  es_db *db;
  int rc;
} runner;

static void *run_erase(void *arg) {
  runner *r = arg;
  (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
  r->rc = es_erase_run(r->db, "big");
  return NULL;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  double c[RUNS_MAX];
  memcpy(c, v, (size_t)n * sizeof(double));
  qsort(c, (size_t)n, sizeof(double), cmp_d);
  return n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2;
}

/* A stage's "at" time (µs) from the status JSON, parsed crudely. */
static long long stage_us(const char *json, const char *stage) {
  char key[64];
  snprintf(key, sizeof(key), "\"stage\":\"%s\"", stage);
  const char *p = strstr(json, key);
  p = p ? strstr(p, "\"at\":\"") : NULL;
  int64_t us = 0;
  char text[40];
  if (!p || sscanf(p + 6, "%39[^\"]", text) != 1 ||
      es_time_parse(text, 0, &us) != ES_OK)
    return 0;
  return (long long)us;
}

int main(int argc, char **argv) {
  uint64_t n = 1000000;
  int runs = 3;
  double window_s = 3;
  const char *dir = "bench-erase-data";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help")) {
      puts("usage: es-bench-erase [--events N] [--runs R] [--window S] "
           "[--dir DIR]\n"
           "Times a person's erasure on a tenant of N events (default 1M)\n"
           "and the slowdown of concurrent ingest (its rate during the "
           "erase\nagainst S seconds before and S after, default 3); "
           "prints JSON.");
      return 0;
    } else if (i + 1 < argc && !strcmp(argv[i], "--events")) {
      n = strtoull(argv[++i], NULL, 10);
    } else if (i + 1 < argc && !strcmp(argv[i], "--runs")) {
      runs = atoi(argv[++i]);
    } else if (i + 1 < argc && !strcmp(argv[i], "--window")) {
      window_s = atof(argv[++i]);
    } else if (i + 1 < argc && !strcmp(argv[i], "--dir")) {
      dir = argv[++i];
    } else {
      fprintf(stderr, "es-bench-erase: unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (n < 20000 || runs < 1 || runs > RUNS_MAX || !(window_s >= 0.1) ||
      window_s > 600) {
    fprintf(stderr,
            "es-bench-erase: --events >= 20000, --runs 1..%d, --window "
            "0.1..600\n",
            RUNS_MAX);
    return 2;
  }
  char cmd[4200];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    return 1;
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.sync_mode = ES_SYNC_FULL;
  es_db *db = NULL;
  int rc = es_open(&o, &db);
  if (rc)
    die("open", rc);
  double t = now_s();
  load(db, n, runs);
  fprintf(stderr, "es-bench-erase: loaded %llu events in %.1f s\n",
          (unsigned long long)n, now_s() - t);
  double submit_ms[RUNS_MAX], run_s[RUNS_MAX], ratio[RUNS_MAX];
  double seg_s[RUNS_MAX], wal_s[RUNS_MAX], roll_s[RUNS_MAX];
  double before_eps[RUNS_MAX], during_eps[RUNS_MAX];
  for (int r = 0; r < runs; r++) {
    feeder f = {.db = db};
    pthread_t th;
    pthread_create(&th, NULL, feed, &f);
    usleep(300000); /* warm up */
    unsigned long long e0 = atomic_load(&f.events);
    double w0 = now_s();
    char person[32], id[ES_ERASE_ID_MAX];
    snprintf(person, sizeof(person), "person-%d", r);
    es_erase_options eo;
    es_erase_options_init(&eo);
    eo.tenant = "big";
    eo.anonymous_id = person;
    /* the windows without the erase: window_s before it and after it */
    usleep((useconds_t)(window_s * 1e6));
    unsigned long long e1 = atomic_load(&f.events);
    double w1 = now_s();
    double a = now_s();
    if ((rc = es_erase_submit(db, &eo, id)))
      die("submit", rc);
    double b = now_s();
    runner ru = {db, 0};
    pthread_t rt;
    pthread_create(&rt, NULL, run_erase, &ru);
    pthread_join(rt, NULL);
    if ((rc = ru.rc))
      die("run", rc);
    double c = now_s();
    unsigned long long e2 = atomic_load(&f.events);
    usleep((useconds_t)(window_s * 1e6));
    unsigned long long e3 = atomic_load(&f.events);
    double d = now_s();
    atomic_store(&f.stop, 1);
    pthread_join(th, NULL);
    char *st = NULL;
    if ((rc = es_erase_status(db, id, &st)))
      die("status", rc);
    if (!strstr(st, "\"events_removed\":")) {
      fprintf(stderr, "es-bench-erase: no receipt: %s\n", st);
      return 1;
    }
    long long h = stage_us(st, "hidden"), s1 = stage_us(st, "segments");
    long long s3 = stage_us(st, "rollups"), s4 = stage_us(st, "wal");
    submit_ms[r] = (b - a) * 1e3;
    run_s[r] = c - b;
    seg_s[r] = (double)(s1 - h) / 1e6;
    roll_s[r] = (double)(s3 - s1) / 1e6;
    wal_s[r] = (double)(s4 - s3) / 1e6;
    double before = (double)(e1 - e0 + e3 - e2) / (w1 - w0 + d - c);
    double during = (double)(e2 - e1) / (c - w1);
    ratio[r] = during / before;
    before_eps[r] = before;
    during_eps[r] = during;
    fprintf(stderr,
            "run %d: submit %.1f ms, stages %.2f s (segments %.2f s, wal "
            "%.2f s); ingest %.0f ev/s without (before %.0f, after %.0f), "
            "%.0f during (x%.2f)\n%s\n",
            r, submit_ms[r], run_s[r], seg_s[r], wal_s[r], before,
            (double)(e1 - e0) / (w1 - w0), (double)(e3 - e2) / (d - c), during,
            ratio[r], st);
    es_free(st);
  }
  printf("{\"events\":%llu,\"runs\":%d,\"submit_ms_median\":%.2f,"
         "\"erase_s_median\":%.3f,\"segments_s_median\":%.3f,"
         "\"rollups_s_median\":%.3f,\"wal_s_median\":%.3f,"
         "\"ingest_without_eps_median\":%.0f,"
         "\"ingest_during_eps_median\":%.0f,"
         "\"ingest_during_over_before_median\":%.3f}\n",
         (unsigned long long)n, runs, median(submit_ms, runs),
         median(run_s, runs), median(seg_s, runs), median(roll_s, runs),
         median(wal_s, runs), median(before_eps, runs),
         median(during_eps, runs), median(ratio, runs));
  rc = es_close(db);
  if (rc)
    die("close", rc);
  if (system(cmd) != 0)
    return 1;
  return 0;
}
