/*
 * duckdb.c -- DuckDB as a peer.  DuckDB's supported embedding for this
 * project is the npm package @duckdb/node-api, so the peer is a node
 * script (bench/duckdb/peer.mjs) that es-bench runs as a child process
 * on a file of the very batches the other systems get.
 *
 * What this file owns:
 *  1. the batch file (duckdb_write_batches): one JSON line per batch, in
 *     workload order, with every field of every event;
 *  2. the child process: spawn `node peer.mjs ...`, read its line
 *     protocol (P progress, A acknowledged events, R result), reap it and
 *     turn any failure -- node missing, the npm package not installed, a
 *     DuckDB error, a non-zero exit -- into a bench_fail reason, never a
 *     silent skip;
 *  3. the ingest runner (run_duckdb), the DuckDB row of `es-bench ingest`.
 *
 * Durability of the peer's ingest: every batch is one autocommit
 * transaction (appender.flushSync()), and DuckDB fsyncs its WAL at every
 * commit (bench/README.md says how that was checked).  At close DuckDB
 * checkpoints: the WAL is folded into the database file and removed.
 */
#include "bench.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#ifndef ES_BENCH_DUCKDB_DIR
#define ES_BENCH_DUCKDB_DIR "bench/duckdb"
#endif

extern char **environ;

/* ------------------------------------------------------------------ */
/* The batch file                                                      */
/* ------------------------------------------------------------------ */

static void put_str_or_null(FILE *f, const char *s) {
  if (s)
    json_string_to(f, s);
  else
    fputs("null", f);
}

int duckdb_write_batches(const workload *w, const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) {
    bench_fail("cannot write %s: %s", path, strerror(errno));
    return -1;
  }
  static char buf[1 << 16];
  setvbuf(f, buf, _IOFBF, sizeof buf);
  int64_t recv_default = wall_us();
  for (size_t i = 0; i < w->batches_count; i++) {
    const batch *b = &w->batches[i];
    fprintf(f, "[\"%s\",[", b->tenant);
    for (size_t j = 0; j < b->count; j++) {
      const es_event *e = &b->events[j];
      fprintf(f, "%s[%lld,%lld,%d", j ? "," : "", (long long)e->ts_us,
              (long long)(e->recv_us ? e->recv_us : recv_default), e->type);
      const char *s[12] = {e->event,      e->message_id,  e->anonymous_id,
                           e->user_id,    e->previous_id, e->group_id,
                           e->path,       e->url,         e->referrer,
                           e->properties, e->user_agent,  e->ip};
      for (int k = 0; k < 12; k++) {
        putc(',', f);
        put_str_or_null(f, s[k]);
      }
      putc(']', f);
    }
    fputs("]]\n", f);
  }
  int bad = ferror(f);
  if (fclose(f) != 0 || bad) {
    bench_fail("writing %s failed", path);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* The child process                                                   */
/* ------------------------------------------------------------------ */

static const char *peer_dir(void) {
  const char *d = getenv("ES_BENCH_DUCKDB_DIR");
  return d && *d ? d : ES_BENCH_DUCKDB_DIR;
}

/* Starts argv (argv[0] looked up in PATH when `path_search`) with its
 * stdout on a pipe we read; stderr is shared.  0 or -1 (bench_fail). */
static int spawn_piped(peer_proc *p, const char *const *argv, int path_search) {
  int fds[2];
  if (pipe(fds) != 0) {
    bench_fail("pipe: %s", strerror(errno));
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  pid_t pid;
  int rc = (path_search ? posix_spawnp : posix_spawn)(
      &pid, argv[0], &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    bench_fail("cannot run %s: %s", argv[0], strerror(rc));
    return -1;
  }
  p->pid = pid;
  p->out = fdopen(fds[0], "r");
  if (!p->out) {
    close(fds[0]);
    peer_kill(p);
    bench_fail("fdopen: %s", strerror(errno));
    return -1;
  }
  return 0;
}

int peer_start(peer_proc *p, const char *const *args) {
  p->pid = -1;
  p->out = NULL;
  p->name = "the DuckDB peer";
  char script[4096], module[4096];
  snprintf(script, sizeof script, "%s/peer.mjs", peer_dir());
  snprintf(module, sizeof module, "%s/node_modules/@duckdb/node-api",
           peer_dir());
  struct stat st;
  if (stat(script, &st) != 0 || stat(module, &st) != 0) {
    bench_fail("the DuckDB peer is not installed (%s: %s); run "
               "bench/duckdb/install.sh (scripts/deps.sh does)",
               stat(script, &st) != 0 ? script : module, strerror(errno));
    return -1;
  }
  const char *argv[32];
  int n = 0;
  argv[n++] = "node";
  argv[n++] = "--max-old-space-size=12288";
  argv[n++] = script;
  for (int i = 0; args[i] && n < 31; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  return spawn_piped(p, argv, 1); /* "cannot run node: ..." if absent */
}

int exe_start(peer_proc *p, const char *name, const char *const *argv) {
  p->pid = -1;
  p->out = NULL;
  p->name = name;
  return spawn_piped(p, argv, 0);
}

int self_start(peer_proc *p, const char *const *args) {
  p->name = "es-bench's child";
  const char *argv[32];
  int n = 0;
  argv[n++] = "/proc/self/exe";
  for (int i = 0; args[i] && n < 31; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  return spawn_piped(p, argv, 0);
}

int node_start(peer_proc *p, const char *name, const char *script,
               const char *const *args) {
  p->pid = -1;
  p->out = NULL;
  p->name = name;
  const char *argv[40];
  int n = 0;
  argv[n++] = "node";
  argv[n++] = script;
  for (int i = 0; args[i] && n < 39; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  return spawn_piped(p, argv, 1);
}

int peer_line(peer_proc *p, char *buf, size_t cap) {
  if (!p->out || !fgets(buf, (int)cap, p->out))
    return 0;
  size_t n = strlen(buf);
  if (n && buf[n - 1] == '\n')
    buf[n - 1] = 0;
  else if (n == cap - 1) { /* longer than buf: skip the rest of it */
    int c;
    while ((c = getc(p->out)) != EOF && c != '\n')
      ;
  }
  return 1;
}

/* Waits for the child and says how it ended; see bench.h. */
int peer_reap(peer_proc *p) {
  if (p->out)
    fclose(p->out);
  p->out = NULL;
  if (p->pid <= 0)
    return -1;
  int status = 0;
  while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
    ;
  p->pid = -1;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  if (WIFEXITED(status))
    bench_fail("%s exited with status %d (its message is above)", p->name,
               WEXITSTATUS(status));
  else
    bench_fail("%s died of signal %d", p->name, WTERMSIG(status));
  return -1;
}

int peer_finish(peer_proc *p, const char *label, char **json_out) {
  *json_out = NULL;
  size_t cap = 1 << 20;
  char *line = malloc(cap * 64); /* answers can be long: 64 MiB */
  if (!line) {
    peer_kill(p);
    bench_fail("out of memory");
    return -1;
  }
  cap *= 64;
  while (peer_line(p, line, cap)) {
    unsigned long long done, total;
    if (line[0] == 'P' && sscanf(line, "P %llu %llu", &done, &total) == 2)
      bench_progress(label, (size_t)done, (size_t)total);
    else if (line[0] == 'R' && line[1] == ' ' && !*json_out)
      *json_out = strdup(line + 2);
  }
  bench_progress_clear();
  free(line);
  int rc = peer_reap(p);
  if (rc == 0 && !*json_out) {
    bench_fail("%s ended without a result", p->name);
    rc = -1;
  }
  if (rc != 0) {
    free(*json_out);
    *json_out = NULL;
  }
  return rc;
}

void peer_kill(peer_proc *p) {
  if (p->pid > 0) {
    kill(p->pid, SIGKILL);
    int status;
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
      ;
  }
  p->pid = -1;
  if (p->out)
    fclose(p->out);
  p->out = NULL;
}

double json_num(const char *json, const char *key, int i) {
  char err[128];
  yajl_val root = yajl_tree_parse(json, err, sizeof err);
  if (!root)
    return -1;
  const char *path[] = {key, NULL};
  yajl_val v = yajl_tree_get(root, path, yajl_t_any);
  double x = -1;
  if (v && YAJL_IS_NUMBER(v))
    x = YAJL_GET_DOUBLE(v);
  else if (v && YAJL_IS_ARRAY(v) && i >= 0 && (size_t)i < v->u.array.len &&
           YAJL_IS_NUMBER(v->u.array.values[i]))
    x = YAJL_GET_DOUBLE(v->u.array.values[i]);
  yajl_tree_free(root);
  return x;
}

/* ------------------------------------------------------------------ */
/* Ingest                                                              */
/* ------------------------------------------------------------------ */

int run_duckdb(const workload *w, const char *dir, const char *batches_path,
               const char *label, run_result *out) {
  run_result_clear(out);
  if (rm_rf(dir) != 0 || mkdir(dir, 0755) != 0) {
    bench_fail("cannot create %s", dir);
    return -1;
  }
  char db[4096 + 32], total[32];
  snprintf(db, sizeof db, "%s/events.duckdb", dir);
  snprintf(total, sizeof total, "%zu", w->events_count);
  const char *args[] = {"ingest",     "--db",    db,    "--input",
                        batches_path, "--total", total, NULL};
  peer_proc p;
  char *json = NULL;
  if (peer_start(&p, args) != 0 || peer_finish(&p, label, &json) != 0)
    return -1;
  out->ingest_s = json_num(json, "ingest_s", 0);
  out->stored_events = json_num(json, "events", 0);
  free(json);
  if (out->stored_events != (double)w->events_count) {
    bench_fail("the DuckDB peer appended %.0f events, not %zu",
               out->stored_events, w->events_count);
    return -1;
  }
  out->du_close_bytes = du_bytes(dir, NULL);
  out->du_data_bytes = du_bytes(db, NULL);
  return 0;
}
