/*
 * util.c -- the driver that times a system under test, progress on the
 * terminal, the first-error-wins failure note, clocks, and the small file
 * system helpers (du, rm -rf, statfs type) that the runners share.
 *
 * The driver's contract:
 *  1. The clock starts when every thread has run thread_begin and stops
 *     when the last thread has had its last batch acknowledged: setup
 *     (connections, prepared statements) is outside the figure.
 *  2. Batches are claimed with one atomic counter, in workload order, so
 *     with one thread the system sees exactly the server's cut order.
 *  3. After the first failure every thread stops claiming batches.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

int bench_progress_enabled;

/* ------------------------------------------------------------------ */
/* First error wins                                                    */
/* ------------------------------------------------------------------ */

static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;
static char fail_msg[512];
static atomic_int fail_set;

void bench_fail(const char *fmt, ...) {
  pthread_mutex_lock(&fail_mu);
  if (!fail_msg[0]) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fail_msg, sizeof fail_msg, fmt, ap);
    va_end(ap);
    if (!fail_msg[0])
      strcpy(fail_msg, "unknown failure");
  }
  atomic_store(&fail_set, 1);
  pthread_mutex_unlock(&fail_mu);
}

const char *bench_last_error(void) { return fail_msg; }

void bench_fail_reset(void) {
  pthread_mutex_lock(&fail_mu);
  fail_msg[0] = 0;
  atomic_store(&fail_set, 0);
  pthread_mutex_unlock(&fail_mu);
}

/* ------------------------------------------------------------------ */
/* Clocks                                                              */
/* ------------------------------------------------------------------ */

double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void run_result_clear(run_result *r) {
  r->ingest_s = r->du_close_bytes = r->du_flush_bytes = r->du_data_bytes = -1;
  r->recover_s = r->recover_events = r->recover_file_bytes = -1;
  r->recover_payload_bytes = r->stored_events = -1;
  r->ctx_switches = -1;
}

/* ------------------------------------------------------------------ */
/* Driver                                                              */
/* ------------------------------------------------------------------ */

typedef struct drive_state {
  const workload *w;
  const driver_ops *ops;
  pthread_barrier_t ready;
  atomic_size_t next; /* next unclaimed batch */
  atomic_size_t events_done;
  atomic_int threads_done;
} drive_state;

typedef struct drive_thread {
  drive_state *st;
  int tid;
  int begun;      /* thread_begin succeeded */
  double start_s; /* when it passed the start barrier */
  double end_s;   /* when its last batch was acknowledged */
} drive_thread;

double bench_drive_ctx_switches = -1;

static double ctx_switches_now(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1;
  return (double)ru.ru_nvcsw + (double)ru.ru_nivcsw;
}

static void *drive_main(void *arg) {
  drive_thread *t = arg;
  drive_state *st = t->st;
  const driver_ops *ops = st->ops;
  t->begun = !ops->thread_begin || ops->thread_begin(ops->ctx, t->tid) == 0;
  if (!t->begun)
    bench_fail("thread %d could not start", t->tid);
  pthread_barrier_wait(&st->ready);
  t->start_s = now_s();
  while (t->begun && !atomic_load(&fail_set)) {
    size_t i = atomic_fetch_add(&st->next, 1);
    if (i >= st->w->batches_count)
      break;
    const batch *b = &st->w->batches[i];
    if (ops->append(ops->ctx, t->tid, b) != 0)
      break;
    atomic_fetch_add(&st->events_done, b->count);
  }
  t->end_s = now_s();
  atomic_fetch_add(&st->threads_done, 1);
  return NULL;
}

void bench_progress(const char *label, size_t done, size_t total) {
  if (!bench_progress_enabled)
    return;
  int pct = total ? (int)(done * 100 / total) : 100;
  char bar[21];
  for (int i = 0; i < 20; i++)
    bar[i] = i < pct / 5 ? '#' : ' ';
  bar[20] = 0;
  fprintf(stderr, "\r\033[K%s [%s] %3d%%", label, bar, pct);
  fflush(stderr);
}

void bench_progress_clear(void) {
  if (!bench_progress_enabled)
    return;
  fputs("\r\033[K", stderr);
  fflush(stderr);
}

int drive(const workload *w, int threads, const driver_ops *ops,
          const char *label, double *seconds_out) {
  drive_state st;
  memset(&st, 0, sizeof st);
  st.w = w;
  st.ops = ops;
  atomic_init(&st.next, 0);
  atomic_init(&st.events_done, 0);
  atomic_init(&st.threads_done, 0);
  *seconds_out = -1;
  drive_thread *ts = calloc((size_t)threads, sizeof *ts);
  pthread_t *tids = calloc((size_t)threads, sizeof *tids);
  if (!ts || !tids ||
      pthread_barrier_init(&st.ready, NULL, (unsigned)threads + 1) != 0) {
    free(ts);
    free(tids);
    bench_fail("out of memory starting threads");
    return -1;
  }
  int started = 0;
  for (; started < threads; started++) {
    ts[started] = (drive_thread){&st, started, 0, 0, 0};
    if (pthread_create(&tids[started], NULL, drive_main, &ts[started]) != 0)
      break;
  }
  if (started < threads) {
    /* The barrier can never fill: we cannot recover cleanly. */
    fprintf(stderr, "es-bench: pthread_create failed\n");
    abort();
  }
  bench_progress(label, 0, w->events_count);
  bench_drive_ctx_switches = -1;
  double cs0 = ctx_switches_now();
  pthread_barrier_wait(&st.ready);
  double t0 = now_s();
  while (atomic_load(&st.threads_done) < threads) {
    struct timespec nap = {0, 50 * 1000 * 1000};
    nanosleep(&nap, NULL);
    bench_progress(label, atomic_load(&st.events_done), w->events_count);
  }
  /* The interval runs from the first thread's start to the last thread's
   * end, by their own stamps: the polling above is coarse, and this thread
   * may have been scheduled late after the barrier. */
  double t1 = t0;
  for (int i = 0; i < threads; i++) {
    pthread_join(tids[i], NULL);
    if (ts[i].start_s > 0 && ts[i].start_s < t0)
      t0 = ts[i].start_s;
    if (ts[i].end_s > t1)
      t1 = ts[i].end_s;
  }
  double cs1 = ctx_switches_now();
  if (cs0 >= 0 && cs1 >= cs0)
    bench_drive_ctx_switches = cs1 - cs0;
  for (int i = 0; i < threads; i++)
    if (ts[i].begun && ops->thread_end)
      ops->thread_end(ops->ctx, i);
  bench_progress_clear();
  pthread_barrier_destroy(&st.ready);
  free(ts);
  free(tids);
  if (atomic_load(&fail_set))
    return -1;
  *seconds_out = t1 - t0;
  return 0;
}

/* ------------------------------------------------------------------ */
/* File-system helpers                                                 */
/* ------------------------------------------------------------------ */

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Adds the allocated (or, when apparent, the st_size) bytes under path to
 * *sum; -1 on error. */
static int du_walk(const char *path, const char *suffix, int apparent,
                   double *sum) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return -1;
  if (!S_ISDIR(st.st_mode)) {
    if (!suffix || ends_with(path, suffix))
      *sum += apparent ? (double)st.st_size : (double)st.st_blocks * 512.0;
    return 0;
  }
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char sub[4096];
    if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub)
      rc = -1;
    else
      rc = du_walk(sub, suffix, apparent, sum);
  }
  closedir(d);
  return rc;
}

double du_bytes(const char *path, const char *suffix) {
  double sum = 0;
  return du_walk(path, suffix, 0, &sum) == 0 ? sum : -1;
}

double apparent_bytes(const char *path, const char *suffix) {
  double sum = 0;
  return du_walk(path, suffix, 1, &sum) == 0 ? sum : -1;
}

int rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return errno == ENOENT ? 0 : -1;
  if (!S_ISDIR(st.st_mode))
    return unlink(path);
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char sub[4096];
    if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub)
      rc = -1;
    else if (rm_rf(sub) != 0)
      rc = -1;
  }
  closedir(d);
  if (rmdir(path) != 0)
    rc = -1;
  return rc;
}

const char *fs_type_name(const char *path) {
  struct statfs sf;
  if (statfs(path, &sf) != 0)
    return "unknown";
  switch ((unsigned long)sf.f_type) {
  case 0xEF53:
    return "ext4"; /* ext2/3/4 share the magic */
  case 0x01021994:
    return "tmpfs";
  case 0x58465342:
    return "xfs";
  case 0x9123683E:
    return "btrfs";
  case 0x794c7630:
    return "overlayfs";
  case 0x2fc12fc1:
    return "zfs";
  case 0xF2F52010:
    return "f2fs";
  case 0x6969:
    return "nfs";
  case 0x65735546:
    return "fuse";
  case 0x858458f6:
    return "ramfs";
  default:
    return "other";
  }
}

/* ------------------------------------------------------------------ */
/* Figures and JSON                                                    */
/* ------------------------------------------------------------------ */

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

void bench_json_stat3(const char *key, stat3 s) {
  printf("\"%s\":{", key);
  const char *k[3] = {"min", "median", "max"};
  double v[3] = {s.min, s.med, s.max};
  for (int i = 0; i < 3; i++) {
    if (v[i] < 0)
      printf("\"%s\":null", k[i]);
    else
      printf("\"%s\":%.6g", k[i], v[i]);
    printf(i < 2 ? "," : "}");
  }
}

stat3 stat3_of(double *v, int n) {
  stat3 s = {-1, -1, -1};
  if (n <= 0)
    return s;
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  s.min = v[0];
  s.max = v[n - 1];
  s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return s;
}

void remove_base_dir(const char *dir, const char *made, int made_base) {
  rm_rf(made);
  if (made_base)
    rmdir(dir ? dir : "bench-data"); /* only if now empty */
}

int make_base_dir(const char *dir, char *out, size_t cap, int *made_base) {
  const char *base = dir ? dir : "bench-data";
  *made_base = mkdir(base, 0755) == 0;
  if (!*made_base && errno != EEXIST) {
    fprintf(stderr, "es-bench: cannot create %s: %s\n", base, strerror(errno));
    return -1;
  }
  char tmpl[4096];
  snprintf(tmpl, sizeof tmpl, "%s/es-bench-XXXXXX", base);
  if (!mkdtemp(tmpl)) {
    fprintf(stderr, "es-bench: cannot create a directory in %s: %s\n", base,
            strerror(errno));
    return -1;
  }
  char *abs = realpath(tmpl, NULL);
  snprintf(out, cap, "%s", abs ? abs : tmpl);
  free(abs);
  return 0;
}

void bench_print_to_file(const char *path, void (*print)(const void *),
                         const void *arg) {
  fflush(stdout);
  int saved = dup(STDOUT_FILENO);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (saved < 0 || fd < 0 || dup2(fd, STDOUT_FILENO) < 0) {
    fprintf(stderr, "es-bench: cannot write %s: %s\n", path, strerror(errno));
  } else {
    print(arg);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
  }
  if (fd >= 0)
    close(fd);
  if (saved >= 0)
    close(saved);
}
