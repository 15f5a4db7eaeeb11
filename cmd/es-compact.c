/*
 * es-compact -- compaction and retention of a data directory: merges
 * small segments and drops events past retention (es_compact), showing
 * progress on a terminal.
 *
 *   es-compact --data DIR [--tenant T] [--retain 90d] [--target-mb N]
 *
 * It opens the store itself, so it runs while no other process has the
 * directory open (es_open's lock); a server that keeps the store open
 * compacts through es_compact in its own process, alongside its appends.
 * Exit status: 0 done, 1 library or system error, 2 bad usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eventstore.h"

static const char usage[] =
    "usage: es-compact --data DIR [--tenant T] [--retain AGE] [--target-mb N]\n"
    "\n"
    "Merges runs of small segments of every tenant (or of T) into segments\n"
    "of about N MiB (default 64), and with --retain drops the events whose\n"
    "event time is older than AGE (e.g. 90d, 12h; units s m h d).  Every\n"
    "merge is committed by one atomic manifest write: a crash leaves the\n"
    "old segments or the new one, never a mix.  Rollups of the new segments\n"
    "equal what the rows kept give.  Needs the directory's lock (no other\n"
    "process may have it open).  A DIR without a store is an error (nothing\n"
    "is created).  Progress goes to stderr on a terminal.\n"
    "Exit status: 0 done, 1 library or system error, 2 bad usage.\n";

static int bad_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "es-compact: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, " (try 'es-compact --help')\n");
  return 2;
}

/* "90d" -> microseconds, or -1. */
static int64_t parse_age(const char *s) {
  char *end;
  long long n = strtoll(s, &end, 10);
  int64_t unit = *end == 's'   ? 1
                 : *end == 'm' ? 60
                 : *end == 'h' ? 3600
                 : *end == 'd' ? 86400
                               : 0;
  if (end == s || n <= 0 || unit == 0 || end[1] != '\0' ||
      n > INT64_MAX / 1000000 / unit)
    return -1;
  return (int64_t)n * unit * 1000000;
}

typedef struct progress {
  int tty;
  char tenant[ES_TENANT_LEN_MAX + 1];
} progress;

static void on_progress(void *ud, const char *tenant, uint64_t done,
                        uint64_t total) {
  progress *p = ud;
  if (!p->tty)
    return;
  snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
  fprintf(stderr, "\r\033[K%s: %3d%% (%.1f of %.1f MB)", tenant,
          total ? (int)(100 * done / total) : 100, done / 1e6, total / 1e6);
  fflush(stderr);
}

int main(int argc, char **argv) {
  const char *data = NULL, *tenant = NULL;
  es_compact_options o;
  es_compact_options_init(&o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    if (i + 1 >= argc)
      return bad_usage("'%s' needs a value", a);
    const char *v = argv[++i];
    if (strcmp(a, "--data") == 0) {
      data = v;
    } else if (strcmp(a, "--tenant") == 0) {
      tenant = v;
    } else if (strcmp(a, "--retain") == 0) {
      if ((o.retain_us = parse_age(v)) < 0)
        return bad_usage("--retain: bad age '%s' (want e.g. 90d, 12h)", v);
    } else if (strcmp(a, "--target-mb") == 0) {
      char *end;
      unsigned long long mb = strtoull(v, &end, 10);
      if (*end || mb == 0 || mb > 65536)
        return bad_usage("--target-mb: want 1..65536, not '%s'", v);
      o.target_bytes = (uint64_t)mb << 20;
    } else {
      return bad_usage("unknown flag '%s'", a);
    }
  }
  if (!data)
    return bad_usage("%s", "--data DIR is required");
  progress p = {isatty(2), ""};
  o.progress = on_progress;
  o.ud = &p;
  es_options opts;
  es_options_init(&opts);
  opts.data_dir = data;
  opts.must_exist = 1; /* a mistyped --data must not become a store */
  es_db *db = NULL;
  int rc = es_open(&opts, &db);
  if (rc != ES_OK) {
    fprintf(stderr, "es-compact: %s: %s\n", es_strerror(rc), es_errmsg());
    if (rc == ES_EBUSY)
      fprintf(stderr, "es-compact: es-ingestd compacts the store it holds "
                      "by itself (--compact N); stop it to run es-compact "
                      "(e.g. for --retain)\n");
    return 1;
  }
  es_compact_report rep;
  rc = es_compact(db, tenant, &o, &rep);
  if (p.tty && p.tenant[0])
    fputc('\n', stderr);
  if (rc != ES_OK) {
    fprintf(stderr, "es-compact: %s: %s\n", es_strerror(rc), es_errmsg());
    (void)es_close(db);
    return rc == ES_EINVAL || rc == ES_ETENANT ? 2 : 1;
  }
  rc = es_close(db);
  printf("compacted %" PRIu64 " tenants: %" PRIu64 " segments -> %" PRIu64
         ", %" PRIu64 " rows kept, %" PRIu64 " dropped past retention, %.1f "
         "MB -> %.1f MB\n",
         rep.tenants, rep.segments_in, rep.segments_out, rep.rows_out,
         rep.rows_dropped, rep.bytes_in / 1e6, rep.bytes_out / 1e6);
  if (rc != ES_OK) {
    fprintf(stderr, "es-compact: close: %s: %s\n", es_strerror(rc),
            es_errmsg());
    return 1;
  }
  return fflush(stdout) == 0 ? 0 : 1;
}
