/*
 * bench_body.c -- CPU per request of es-ingestd's body parse: the
 * streaming path (ing_batch_parse) against the yajl_tree reference
 * (ing_batch_parse_tree), on one /v1/batch body.
 *
 *   es-bench gen --events 100 > ev.ndjson
 *   ingest-body-bench ev.ndjson [iterations [tree|stream]]
 *
 * The body is {"batch":[...]} around the file's lines (one event each).
 * Prints, for each path, the process CPU time per parse and events/s of
 * one core.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "body.h"

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The lines of path wrapped as a batch body; NULL on error. */
static char *read_body(const char *path, size_t *len_out, size_t *events) {
  FILE *f = fopen(path, "r");
  char line[65536];
  seg_buf b;
  *events = 0;
  if (f == NULL)
    return NULL;
  seg_buf_init(&b);
  seg_buf_put(&b, "{\"batch\":[", 10);
  while (fgets(line, sizeof line, f) != NULL) {
    size_t n = strcspn(line, "\r\n");
    if (n == 0)
      continue;
    if ((*events > 0 && seg_buf_put(&b, ",", 1)) || seg_buf_put(&b, line, n))
      break;
    ++*events;
  }
  fclose(f);
  if (seg_buf_put(&b, "]}", 2)) {
    seg_buf_free(&b);
    return NULL;
  }
  *len_out = b.len;
  return b.data;
}

int main(int argc, char **argv) {
  size_t len, events;
  long iters = argc > 2 ? atol(argv[2]) : 10000;
  if (argc < 2 || iters <= 0) {
    fprintf(stderr, "usage: ingest-body-bench events.ndjson [iterations "
                    "[tree|stream]]\n");
    return 2;
  }
  char *body = read_body(argv[1], &len, &events);
  if (body == NULL) {
    fprintf(stderr, "ingest-body-bench: cannot read %s\n", argv[1]);
    return 1;
  }
  printf("body: %zu bytes, %zu events, %ld parses per path\n", len, events,
         iters);
  const char *only = argc > 3 ? argv[3] : ""; /* "tree" or "stream" */
  for (int tree = 1; tree >= 0; tree--) {
    if (only[0] != '\0' && strcmp(only, tree ? "tree" : "stream") != 0)
      continue;
    uint64_t rng = 1;
    double t0 = cpu_seconds();
    for (long i = 0; i < iters; i++) {
      ing_batch b;
      char err[ING_ERR_SIZE];
      int rc =
          tree ? ing_batch_parse_tree(&b, body, len, 0,
                                      INT64_C(1700000000000000), &rng, err,
                                      sizeof err)
               : ing_batch_parse(&b, body, len, 0, INT64_C(1700000000000000),
                                 &rng, err, sizeof err);
      if (rc) {
        fprintf(stderr, "ingest-body-bench: %s\n", err);
        return 1;
      }
      ing_batch_free(&b);
    }
    double us = (cpu_seconds() - t0) * 1e6 / (double)iters;
    printf("%-6s %8.1f us CPU per request, %6.2f us per event, %8.0f "
           "events/s per core\n",
           tree ? "tree" : "stream", us, us / (double)events,
           (double)events * 1e6 / us);
  }
  free(body);
  return 0;
}
