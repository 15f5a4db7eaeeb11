/*
 * replica_driver.c -- a store replicating to S3, through the public API
 * only, driven by replica.test.mjs:
 *
 *   replica_driver load   DIR s3://BUCKET/PREFIX ENDPOINT EVENTS
 *   replica_driver outage DIR s3://BUCKET/PREFIX ENDPOINT MILLISECONDS
 *
 * load: appends EVENTS events to each of two tenants in four flushed
 * parts, compacts, waits until the replica has caught up (30 s at most)
 * and prints the replica's counters as JSON.
 * outage: appends and flushes for MILLISECONDS while the test makes S3
 * fail; every append must succeed and take under a second (ingest never
 * waits for S3); then waits for the backlog to drain and prints the
 * counters, the number of events appended and the slowest append.
 * Credentials and region come from the environment (AWS conventions).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eventstore.h"

static const char *const TENANTS[] = {"acme", "Shop_2-x"};

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "replica_driver: %s: %s: %s\n", what, es_strerror(rc),
          es_errdetail());
  exit(1);
}

/* Appends events first..first+n-1 to every tenant; the slowest call. */
static int64_t append(es_db *db, int first, int n) {
  int64_t slowest = 0;
  for (int t = 0; t < 2; t++)
    for (int i = first; i < first + n; i++) {
      char mid[32], anon[32], props[64];
      snprintf(mid, sizeof(mid), "m-%d-%d", t, i);
      snprintf(anon, sizeof(anon), "visitor-%d", i % 13);
      snprintf(props, sizeof(props), "{\"i\":%d}", i);
      es_event ev = {.ts_us = 1764000000000000LL + (int64_t)i * 1000,
                     .type = i % 3 ? ES_TYPE_PAGE : ES_TYPE_TRACK,
                     .event = i % 3 ? "Home" : "Signed Up",
                     .message_id = mid,
                     .anonymous_id = anon,
                     .path = i % 2 ? "/pricing" : "/",
                     .properties = props};
      int64_t t0 = now_us();
      int rc = es_append(db, TENANTS[t], &ev, 1, NULL);
      if (rc != ES_OK)
        die("append", rc);
      if (now_us() - t0 > slowest)
        slowest = now_us() - t0;
    }
  return slowest;
}

static void print_stats(es_db *db, int events, int64_t slowest_us) {
  es_replica_stats st;
  int rc = es_replica_stats_get(db, &st);
  if (rc != ES_OK)
    die("stats", rc);
  printf("{\"events\": %d, \"slowest_append_us\": %" PRId64
         ", \"backlog_objects\": %" PRIu64 ", \"uploaded_objects\": %" PRIu64
         ", \"uploaded_bytes\": %" PRIu64 ", \"deleted_objects\": %" PRIu64
         ", \"errors\": %" PRIu64 ", \"requests\": %" PRIu64
         ", \"request_us\": %" PRIu64 "}\n",
         events, slowest_us, st.backlog_objects, st.uploaded_objects,
         st.uploaded_bytes, st.deleted_objects, st.errors, st.requests,
         st.request_us);
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: replica_driver load|outage DIR URL ENDPOINT N\n");
    return 2;
  }
  es_replica_config cfg;
  es_replica_config_init(&cfg);
  cfg.url = argv[3];
  cfg.endpoint = argv[4];
  cfg.attempts_max = 2;
  es_replica *rep = NULL;
  int rc = es_replica_s3_new(&cfg, &rep);
  if (rc != ES_OK)
    die("es_replica_s3_new", rc);
  es_options o;
  es_options_init(&o);
  o.data_dir = argv[2];
  o.shards = 2;
  o.replica = rep;
  o.replica_interval_us = 50000;
  o.replica_grace_us = 0;
  es_db *db = NULL;
  if ((rc = es_open(&o, &db)) != ES_OK)
    die("es_open", rc);
  int n = atoi(argv[5]), events = 0;
  int64_t slowest = 0;
  if (strcmp(argv[1], "load") == 0) {
    for (int part = 0; part < 4; part++) {
      append(db, events, n / 4);
      events += n / 4;
      if ((rc = es_flush(db, NULL)) != ES_OK)
        die("flush", rc);
    }
    if ((rc = es_compact(db, NULL, NULL, NULL)) != ES_OK)
      die("compact", rc);
  } else {
    int64_t until = now_us() + (int64_t)n * 1000;
    while (now_us() < until) {
      int64_t s = append(db, 100000 + events, 20);
      slowest = s > slowest ? s : slowest;
      events += 20;
      if (events % 200 == 0 && (rc = es_flush(db, NULL)) != ES_OK)
        die("flush", rc);
    }
    if ((rc = es_flush(db, NULL)) != ES_OK)
      die("flush", rc);
  }
  if ((rc = es_replica_drain(db, 30000000)) != ES_OK)
    die("drain", rc);
  print_stats(db, events, slowest);
  if ((rc = es_close(db)) != ES_OK)
    die("close", rc);
  es_replica_free(rep);
  return 0;
}
