/*
 * replica.c -- `es-bench replicate`: the replication figures (issue 12).
 *
 * bench/replicate/run.mjs (node) runs the measurement: it starts s3rver
 * (npm) on loopback and compares, in the same run,
 *  1. upload: the replicator (es_replica_drain of a store of sealed
 *     segments) against @aws-sdk/client-s3 putting the same files;
 *  2. restore: es_restore of that replica against the SDK getting the
 *     same segment objects (the server's GET throughput);
 *  3. HTTP ingest through es-ingestd --replica in tier local and tier s3:
 *     requests/s with concurrent clients, and one client's ack latency.
 * This file is the library's side, as hidden commands the script calls:
 *   es-bench _replica load DIR EVENTS      a store of sealed segments
 *   es-bench _replica upload DIR URL EP    its upload, timed
 *   es-bench _replica restore URL EP DIR   es_restore, timed
 * each printing one JSON object; and `es-bench replicate`, which runs the
 * script (node, with bench/replicate/node_modules from npm).
 */
#include "bench.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef ES_BENCH_REPLICATE_DIR
#define ES_BENCH_REPLICATE_DIR "bench/replicate"
#endif

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int fail(const char *what, int rc) {
  fprintf(stderr, "es-bench _replica: %s: %s: %s\n", what, es_strerror(rc),
          es_errdetail());
  return 1;
}

static int replica_new(const char *url, const char *endpoint,
                       es_replica **out) {
  es_replica_config cfg;
  es_replica_config_init(&cfg);
  cfg.url = url;
  cfg.endpoint = endpoint;
  return es_replica_s3_new(&cfg, out);
}

/* Four tenants, EVENTS events with random properties (LZ4 does not
 * shrink them to nothing), sealed into segments. */
static int repl_load(const char *dir, long events) {
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.sync_mode = ES_SYNC_NONE;
  o.seal_bytes = (size_t)8 << 20;
  es_db *db = NULL;
  int rc = es_open(&o, &db);
  if (rc)
    return fail("es_open", rc);
  static const char *const tenants[] = {"acme", "globex", "initech",
                                        "umbrella"};
  static const char *const paths[] = {"/", "/pricing", "/docs", "/blog/a",
                                      "/signup"};
  uint64_t x = 0x9e3779b97f4a7c15ull;
  enum { B = 500 };
  es_event ev[B];
  char mid[B][24], anon[B][24], props[B][96];
  for (long i = 0; i < events && rc == ES_OK;) {
    int n = 0;
    for (; n < B && i < events; n++, i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      snprintf(mid[n], sizeof mid[n], "m%ld", i);
      snprintf(anon[n], sizeof anon[n], "a%llu",
               (unsigned long long)(x % 50000));
      snprintf(props[n], sizeof props[n], "{\"r\":\"%016llx%08llx\",\"i\":%ld}",
               (unsigned long long)x,
               (unsigned long long)(x >> 17) & 0xffffffff, i);
      ev[n] = (es_event){.ts_us = 1764000000000000LL + i * 1000,
                         .type = ES_TYPE_TRACK,
                         .event = "Clicked",
                         .message_id = mid[n],
                         .anonymous_id = anon[n],
                         .path = paths[x % 5],
                         .properties = props[n]};
    }
    rc = es_append(db, tenants[(i / B) % 4], ev, (size_t)n, NULL);
  }
  if (rc == ES_OK)
    rc = es_flush(db, NULL);
  es_stats st;
  if (rc == ES_OK)
    rc = es_stats_get(db, &st);
  int crc = es_close(db);
  if (rc || crc)
    return fail("load", rc ? rc : crc);
  printf("{\"events\":%ld,\"segment_bytes\":%llu}\n", events,
         (unsigned long long)st.segment_bytes);
  return 0;
}

static int repl_upload(const char *dir, const char *url, const char *ep) {
  es_replica *rep = NULL;
  int rc = replica_new(url, ep, &rep);
  if (rc)
    return fail("es_replica_s3_new", rc);
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.must_exist = 1;
  o.replica = rep;
  o.replica_interval_us = 1000;
  es_db *db = NULL;
  int64_t t0 = now_us();
  rc = es_open(&o, &db);
  if (rc == ES_OK)
    rc = es_replica_drain(db, (int64_t)600 * 1000000);
  int64_t dt = now_us() - t0;
  es_replica_stats st;
  if (rc == ES_OK)
    rc = es_replica_stats_get(db, &st);
  int crc = db ? es_close(db) : ES_OK;
  es_replica_free(rep);
  if (rc || crc)
    return fail("upload", rc ? rc : crc);
  printf("{\"objects\":%llu,\"bytes\":%llu,\"us\":%lld,\"requests\":%llu}\n",
         (unsigned long long)st.uploaded_objects,
         (unsigned long long)st.uploaded_bytes, (long long)dt,
         (unsigned long long)st.requests);
  return 0;
}

static int repl_restore(const char *url, const char *ep, const char *dir) {
  es_replica *rep = NULL;
  int rc = replica_new(url, ep, &rep);
  if (rc)
    return fail("es_replica_s3_new", rc);
  int64_t t0 = now_us();
  rc = es_restore(rep, dir, NULL, 0, NULL, NULL);
  int64_t dt = now_us() - t0;
  es_replica_free(rep);
  if (rc)
    return fail("es_restore", rc);
  printf("{\"us\":%lld}\n", (long long)dt);
  return 0;
}

int cmd_replica_hidden(int argc, char **argv) {
  if (argc == 5 && !strcmp(argv[2], "load"))
    return repl_load(argv[3], atol(argv[4]));
  if (argc == 6 && !strcmp(argv[2], "upload"))
    return repl_upload(argv[3], argv[4], argv[5]);
  if (argc == 6 && !strcmp(argv[2], "restore"))
    return repl_restore(argv[3], argv[4], argv[5]);
  fprintf(stderr, "usage: es-bench _replica load DIR EVENTS | upload DIR URL "
                  "ENDPOINT | restore URL ENDPOINT DIR\n");
  return 2;
}

/* `es-bench replicate`: runs bench/replicate/run.mjs with this program
 * and es-ingestd (found beside it, or ES_BENCH_INGESTD). */
int cmd_replicate_args(const bench_common *a) {
  char self[4096], ingestd[4200], script[4200];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    fprintf(stderr, "es-bench: readlink /proc/self/exe: %s\n", strerror(errno));
    return 1;
  }
  self[n] = 0;
  char selfdir[4096];
  snprintf(selfdir, sizeof selfdir, "%s", self);
  const char *env = getenv("ES_BENCH_INGESTD");
  if (env && *env)
    snprintf(ingestd, sizeof ingestd, "%s", env);
  else
    snprintf(ingestd, sizeof ingestd, "%s/../cmd/ingestd/es-ingestd",
             dirname(selfdir));
  const char *d = getenv("ES_BENCH_REPLICATE_DIR");
  d = d && *d ? d : ES_BENCH_REPLICATE_DIR;
  snprintf(script, sizeof script, "%s/run.mjs", d);
  if (access(ingestd, X_OK) != 0 || access(script, R_OK) != 0) {
    fprintf(stderr,
            "es-bench replicate: needs %s and %s (set "
            "ES_BENCH_INGESTD / ES_BENCH_REPLICATE_DIR)\n",
            ingestd, script);
    return 1;
  }
  char events[32], runs[16];
  snprintf(events, sizeof events, "%llu",
           (unsigned long long)(a->events  ? a->events
                                : a->quick ? 50000
                                           : 1000000));
  snprintf(runs, sizeof runs, "%d", a->runs ? a->runs : a->quick ? 1 : 3);
  char *args[] = {"node",
                  script,
                  "--es-bench",
                  self,
                  "--ingestd",
                  ingestd,
                  "--dir",
                  (char *)(a->dir ? a->dir : "bench-data"),
                  "--events",
                  events,
                  "--runs",
                  runs,
                  a->quick ? "--quick" : "--full",
                  a->json ? "--json" : "--table",
                  NULL};
  execvp("node", args);
  fprintf(stderr, "es-bench replicate: cannot run node: %s\n", strerror(errno));
  return 1;
}
