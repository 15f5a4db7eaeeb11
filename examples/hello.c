/*
 * hello.c -- the smallest complete libeventstore program: open a store,
 * append one page view durably, scan it back, close.
 *
 *   cc hello.c $(pkg-config --cflags --libs libeventstore) -o hello
 *   ./hello DATA_DIR
 */
#include <eventstore.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: hello DATA_DIR\n");
    return 2;
  }
  es_options opts;
  es_options_init(&opts);
  opts.data_dir = argv[1];
  es_db *db = NULL;
  int rc = es_open(&opts, &db);
  if (rc != ES_OK) {
    fprintf(stderr, "hello: %s: %s\n", es_strerror(rc), es_errdetail());
    return 1;
  }
  es_event ev = {.ts_us = 1764000000000000, .type = ES_TYPE_PAGE,
                 .event = "Pricing", .message_id = "hello-1",
                 .anonymous_id = "visitor-1", .path = "/pricing"};
  es_receipt receipt;
  rc = es_append(db, "demo", &ev, 1, &receipt); /* returns once durable */
  if (rc == ES_OK) {
    es_scan_spec spec;
    es_scan_spec_init(&spec);
    spec.tenant = "demo";
    es_cursor *cur = NULL;
    rc = es_scan(db, &spec, &cur);
    es_event got;
    int n = 0;
    if (rc == ES_OK)
      while ((rc = es_cursor_next(cur, &got)) == 1) /* 0 at the end */
        n++;
    es_cursor_close(cur);
    if (rc == 0)
      printf("stored durably at lsn %llu; scan sees %d event(s)\n",
             (unsigned long long)receipt.lsn, n);
  }
  int crc = es_close(db);
  if (rc < 0 || crc < 0) {
    fprintf(stderr, "hello: %s: %s\n", es_strerror(rc < 0 ? rc : crc),
            es_errdetail());
    return 1;
  }
  return 0;
}
