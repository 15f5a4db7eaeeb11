/*
 * firstack.c -- es-bench-firstack DIR: the child of `es-bench live`'s
 * first-acknowledgement figure.  Opens DIR (creating the store when it is
 * new), appends one event durably and prints
 *   {"ack_s":<CLOCK_MONOTONIC at the ack>,"open_s":<es_open's seconds>}
 * so that the parent, which read the same clock before fork+exec, knows
 * how long a new process took to its first durable acknowledgement.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "eventstore.h"

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: es-bench-firstack DIR\n");
    return 2;
  }
  double t0 = mono_s();
  es_options o;
  es_options_init(&o);
  o.data_dir = argv[1];
  es_db *db;
  if (es_open(&o, &db) != ES_OK) {
    fprintf(stderr, "es-bench-firstack: es_open: %s\n", es_errdetail());
    return 1;
  }
  double t1 = mono_s();
  /* a messageId of its own: a repeated one would be acknowledged as a
   * duplicate without a write (idempotent append) */
  char id[64];
  snprintf(id, sizeof id, "first-ack-%ld-%.0f", (long)getpid(), t1 * 1e9);
  es_event ev = {.ts_us = (int64_t)1700000000 * 1000000,
                 .type = ES_TYPE_TRACK,
                 .event = "First Ack",
                 .message_id = id,
                 .anonymous_id = "a1"};
  es_receipt rec;
  int rc = es_append(db, "first", &ev, 1, &rec);
  if (rc == ES_OK && rec.stored_count != 1) {
    fprintf(stderr, "es-bench-firstack: the event was not stored\n");
    (void)es_close(db);
    return 1;
  }
  double t2 = mono_s();
  if (rc != ES_OK) {
    fprintf(stderr, "es-bench-firstack: es_append: %s\n", es_errdetail());
    (void)es_close(db);
    return 1;
  }
  printf("{\"ack_s\":%.9f,\"open_s\":%.9f}\n", t2, t1 - t0);
  fflush(stdout);
  return es_close(db) == ES_OK ? 0 : 1;
}
