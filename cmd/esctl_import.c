/*
 * esctl_import.c -- `esctl import`: the legacy pipeline's history into
 * the store (docs/MIGRATION.md, "Backfill").
 *
 * Input: Segment-format NDJSON (one event object per line) or the CSV
 * PostgreSQL's COPY ... CSV HEADER writes, read through a column-mapping
 * file (cmd/common/legacy_csv.h); either plain or gzip (zlib's gzread
 * reads both, so the name does not have to say which).
 *
 * What makes it safe to run again, over overlapping files, beside live
 * traffic, or after a kill:
 *
 *  1. Every event keeps its messageId and its timestamp.  An event without
 *     a messageId gets "imp-" and the XXH3-128 of its line (or CSV record)
 *     bytes, so the same line imported twice carries the same id.  An event
 *     without timestamp (and receivedAt) is rejected: "now" would make a
 *     re-run a different event.
 *  2. The store de-duplicates: es_append stores an id once per tenant
 *     within dedupe_window_us of the event's own time (eventstore.h,
 *     "Idempotent append").  The window is measured between the two copies'
 *     event times, not against the clock, so events of any age are
 *     de-duplicated as long as both copies carry the same timestamp, which
 *     (1) ensures for imports and the live path ensures for live traffic
 *     (timestamp corrected by sentAt, as the legacy Segment API did).
 *  3. Therefore no progress file: a batch is durable when es_append
 *     returns, and an interrupted import is resumed by running it again,
 *     the part already stored being counted as duplicates.
 *
 * Two ways in: with --data the store is opened for writing (the lock: it
 * fails with a hint while es-ingestd runs); with --url the events go to
 * es-ingestd's /v1/batch with the tenant's write key, in batches under its
 * 500 KB limit, without sentAt (so the server keeps every timestamp), and
 * the server de-duplicates them the same way.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <xxhash.h>
#include <zlib.h>

#include "common/legacy_csv.h"
#include "common/segment_json.h"
#include "esctl_migrate.h"
#include "eventstore.h"

#define IMPORT_BATCH_DEFAULT 1000
#define IMPORT_HTTP_BYTES_MAX (400u << 10) /* under es-ingestd's 500 KB */
#define IMPORT_READ_CAP ((size_t)ES_EVENT_BYTES_MAX * 2 + 4)
#define IMPORT_REJECTS_SHOWN 100
#define IMPORT_HTTP_TRIES 8

static const char import_usage[] =
    "usage: esctl import (--data DIR | --url URL --write-key KEY)\n"
    "                    --tenant T [--mapping FILE] [--batch N] [--quiet]\n"
    "                    FILE...\n"
    "\n"
    "Loads historical events into tenant T.  A FILE ending in .csv or\n"
    ".csv.gz is CSV as PostgreSQL's COPY ... CSV HEADER writes it, read\n"
    "through the column mapping of --mapping (docs/MIGRATION.md); any other\n"
    "FILE is Segment-format NDJSON (one event object per line).  Either may\n"
    "be gzip-compressed.  messageIds and timestamps are kept (an event\n"
    "without messageId gets one derived from its line), so running the same\n"
    "or overlapping files again, or beside live traffic, stores each event\n"
    "once: resume an interrupted import by running it again.\n"
    "\n"
    "--data DIR   open the store (it must not be held by es-ingestd)\n"
    "--url URL    send to a running es-ingestd instead (http://HOST:PORT),\n"
    "             with the tenant's write key (--write-key)\n"
    "--batch N    events per append (default 1000)\n"
    "--quiet      no progress line (it is shown only on a terminal)\n"
    "\n"
    "Bad lines are reported as 'FILE:LINE: why' on stderr and skipped; the\n"
    "summary line goes to stdout.  Exit status: 0, 1 on a library, system\n"
    "or server error (what was stored stays stored), 2 on bad usage or\n"
    "when any line was rejected.\n";

/* --- shared helpers ---------------------------------------------------- */

int migrate_usage(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "esctl %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (try 'esctl %s --help')\n", cmd);
  return 2;
}

int esctl_flag_value(const char *cmd, int argc, char **argv, int *i,
                     const char *const *names, size_t nnames, size_t *k_out,
                     const char **value_out) {
  const char *arg = argv[*i];
  size_t n = strcspn(arg, "=");
  for (size_t k = 0; k < nnames; k++)
    if (strncmp(arg, names[k], n) == 0 && names[k][n] == 0) {
      *k_out = k;
      if (arg[n] == '=')
        *value_out = arg + n + 1;
      else if (*i + 1 < argc)
        *value_out = argv[++*i];
      else
        return migrate_usage(cmd, "flag %.*s needs a value", (int)n, arg);
      return 0;
    }
  return migrate_usage(cmd, "unknown flag or argument '%s'", arg);
}

int migrate_lib_error(int status) {
  const char *detail = es_errmsg();
  fprintf(stderr, "esctl: %s%s%s\n", es_strerror(status), detail[0] ? ": " : "",
          detail);
  return 1;
}

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* --- the run's state --------------------------------------------------- */

typedef struct import_run {
  /* flags */
  const char *data, *url, *write_key, *tenant, *mapping_path;
  size_t batch_cap;
  int quiet;
  /* sinks */
  es_db *db;
  CURL *curl;
  char *endpoint;
  /* the batch */
  size_t n;
  seg_event *events;
  es_event *evs;
  char (*ids)[40];
  uint64_t *line_nos;
  uint8_t *dup;
  seg_buf body;
  /* the file being read */
  const char *file;
  csv_map map;
  int have_map;
  /* counts */
  uint64_t read, stored, duplicates, sent, rejected;
  /* progress */
  uint64_t bytes_total, bytes_before; /* before the current file */
  int tty;
  int64_t start_us, shown_us;
  gzFile gz;
} import_run;

static void reject(import_run *r, uint64_t line_no, const char *why) {
  r->rejected++;
  if (r->rejected <= IMPORT_REJECTS_SHOWN)
    fprintf(stderr, "%sesctl import: %s:%" PRIu64 ": %s\n", r->tty ? "\r" : "",
            r->file, line_no, why);
  else if (r->rejected == IMPORT_REJECTS_SHOWN + 1)
    fprintf(stderr, "esctl import: more rejected lines are not shown\n");
}

/* The progress line: bytes, rate, ETA; a terminal only, 4 times a second. */
static void progress(import_run *r, int final) {
  if (!r->tty)
    return;
  int64_t now = mono_us();
  if (!final && now - r->shown_us < 250000)
    return;
  r->shown_us = now;
  uint64_t done = r->bytes_before + (r->gz ? (uint64_t)gzoffset(r->gz) : 0);
  double secs = (double)(now - r->start_us) / 1e6;
  double rate = secs > 0 ? (double)r->read / secs : 0;
  double frac = r->bytes_total ? (double)done / (double)r->bytes_total : 1;
  if (frac > 1)
    frac = 1;
  double eta = frac > 0 ? secs / frac - secs : 0;
  enum { width = 24 };
  char bar[width + 1];
  int fill = (int)(frac * width);
  memset(bar, '#', (size_t)fill);
  memset(bar + fill, '.', (size_t)(width - fill));
  bar[width] = 0;
  fprintf(stderr,
          "\r[%s] %3.0f%%  %.1f/%.1f MiB  %" PRIu64 " events  %.0f/s  ETA "
          "%d:%02d   ",
          bar, frac * 100, (double)done / 1048576.0,
          (double)r->bytes_total / 1048576.0, r->read, rate, (int)(eta / 60),
          (int)eta % 60);
  if (final)
    fputc('\n', stderr);
}

/* --- sinks: the store, or es-ingestd over HTTP ------------------------- */

/* Appends events [from, from+n) to the store; counts them.  0 or 1. */
static int store_append(import_run *r, size_t from, size_t n) {
  es_receipt rc_out;
  int rc = es_append_flagged(r->db, r->tenant, r->evs + from, n, &rc_out,
                             r->dup + from);
  if (rc == ES_ETOOBIG && n > 1) {
    for (size_t i = from; i < from + n; i++)
      if (store_append(r, i, 1) != 0)
        return 1;
    return 0;
  }
  if (rc == ES_ETOOBIG) {
    reject(r, r->line_nos[from], es_strerror(rc));
    return 0;
  }
  if (rc != ES_OK)
    return migrate_lib_error(rc);
  r->stored += rc_out.stored_count;
  r->duplicates += rc_out.duplicates_count;
  return 0;
}

static size_t collect_body(char *p, size_t size, size_t nmemb, void *ud) {
  seg_buf *b = ud;
  size_t n = size * nmemb;
  if (b->len < 4096)
    seg_buf_put(b, p, n < 4096 ? n : 4096);
  return n;
}

/* One POST of body; the HTTP status, or -1 when the server was not
 * reached (reply says why). */
static long http_post(import_run *r, const seg_buf *body, seg_buf *reply) {
  reply->len = 0;
  curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, body->data);
  curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE, (long)body->len);
  curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, reply);
  CURLcode cc = curl_easy_perform(r->curl);
  if (cc != CURLE_OK) {
    seg_buf_put(reply, curl_easy_strerror(cc), strlen(curl_easy_strerror(cc)));
    return -1;
  }
  long code = 0;
  curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &code);
  return code;
}

/* {"batch":[events from..from+n]} into r->body. */
static int http_body(import_run *r, size_t from, size_t n) {
  r->body.len = 0;
  if (seg_buf_put(&r->body, "{\"batch\":[", 10))
    return -1;
  for (size_t i = from; i < from + n; i++)
    if ((i > from && seg_buf_put(&r->body, ",", 1)) ||
        seg_event_write(&r->body, &r->evs[i]))
      return -1;
  return seg_buf_put(&r->body, "]}", 2);
}

/* Sends events [from, from+n): retries 429/5xx and unreachable servers with
 * backoff; a 400 for a batch is split to find the lines it names. */
static int http_send(import_run *r, size_t from, size_t n) {
  seg_buf reply;
  seg_buf_init(&reply);
  int status = 0;
  if (http_body(r, from, n) != 0) {
    fprintf(stderr, "esctl import: out of memory\n");
    return 1;
  }
  for (int attempt = 0;; attempt++) {
    long code = http_post(r, &r->body, &reply);
    if (code == 200) {
      r->sent += n;
      break;
    }
    if (code == 400 && n > 1) {
      size_t half = n / 2;
      status = http_send(r, from, half);
      if (status == 0)
        status = http_send(r, from + half, n - half);
      break;
    }
    if (code == 400) {
      reject(r, r->line_nos[from], reply.len ? reply.data : "refused (400)");
      break;
    }
    int retry = code == -1 || code == 429 || code >= 500;
    if (!retry || attempt + 1 == IMPORT_HTTP_TRIES) {
      fprintf(stderr, "esctl import: %s: %s%ld: %s\n", r->endpoint,
              code == -1 ? "not reached" : "HTTP ", code == -1 ? 0 : code,
              reply.len ? reply.data : "");
      status = 1;
      break;
    }
    /* 0.25 s doubling to 16 s, with jitter: a restarting server is not
     * hit by every importer at once */
    long ms = 250L << (attempt < 6 ? attempt : 6);
    ms = ms / 2 + rand() % (ms / 2 + 1);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  seg_buf_free(&reply);
  return status;
}

/* Sends the gathered batch to the sink and empties it.  0 or 1. */
static int flush_batch(import_run *r) {
  int status = 0;
  for (size_t i = 0; i < r->n; i++)
    r->evs[i] = r->events[i].ev;
  if (r->n > 0)
    status = r->db ? store_append(r, 0, r->n) : http_send(r, 0, r->n);
  for (size_t i = 0; i < r->n; i++)
    seg_event_free(&r->events[i]);
  r->n = 0;
  return status;
}

/* Size of the batch as JSON, for --url (under the server's limit). */
static size_t batch_json_bytes(const import_run *r) {
  size_t total = 0;
  for (size_t i = 0; i < r->n; i++)
    total +=
        r->events[i].ev.properties ? strlen(r->events[i].ev.properties) : 0;
  return total + r->n * 512;
}

/* --- one event --------------------------------------------------------- */

/*
 * Parses one event (Segment JSON json[0..len)) that came from raw[0..
 * raw_n) at line_no, fills in a derived messageId, and adds it to the
 * batch, flushing when full.  0, or 1 on a sink error.
 */
static int take_event(import_run *r, const char *json, size_t len,
                      const char *raw, size_t raw_n, uint64_t line_no) {
  char err[SEG_ERR_SIZE];
  seg_event *se = &r->events[r->n];
  r->read++;
  if (seg_event_parse(se, json, len, -1, err, sizeof err) != 0) {
    reject(r, line_no, err);
    return 0;
  }
  if (se->ev.ts_us == -1) {
    seg_event_free(se);
    reject(r, line_no,
           "no timestamp (nor receivedAt): a backfill keeps the original "
           "event times");
    return 0;
  }
  if (se->ev.message_id == NULL || se->ev.message_id[0] == '\0') {
    XXH128_hash_t h = XXH3_128bits(raw, raw_n);
    snprintf(r->ids[r->n], sizeof r->ids[r->n], "imp-%016" PRIx64 "%016" PRIx64,
             (uint64_t)h.high64, (uint64_t)h.low64);
    se->ev.message_id = r->ids[r->n];
  }
  r->line_nos[r->n++] = line_no;
  if (r->n == r->batch_cap ||
      (r->curl && batch_json_bytes(r) >= IMPORT_HTTP_BYTES_MAX))
    return flush_batch(r);
  return 0;
}

/* --- files ------------------------------------------------------------- */

/* A buffer over gzread. */
typedef struct reader {
  char *buf;
  size_t start, end;
  int eof;
} reader;

/* Reads more; 0, or -1 with errno-like message printed. */
static int fill(import_run *r, reader *rd) {
  if (rd->start > 0) {
    memmove(rd->buf, rd->buf + rd->start, rd->end - rd->start);
    rd->end -= rd->start;
    rd->start = 0;
  }
  if (rd->end == IMPORT_READ_CAP - 1)
    return 0;
  int got = gzread(r->gz, rd->buf + rd->end,
                   (unsigned)(IMPORT_READ_CAP - 1 - rd->end));
  if (got < 0) {
    int zerr;
    fprintf(stderr, "esctl import: %s: %s\n", r->file, gzerror(r->gz, &zerr));
    return -1;
  }
  rd->eof = got == 0;
  rd->end += (size_t)got;
  rd->buf[rd->end] = '\0';
  return 0;
}

static int is_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
      return 0;
  return 1;
}

/* NDJSON: one event per line.  0, 1 (error printed). */
static int import_ndjson(import_run *r, reader *rd) {
  uint64_t line_no = 0;
  for (;;) {
    char *at = rd->buf + rd->start;
    char *nl = memchr(at, '\n', rd->end - rd->start);
    if (nl == NULL && !rd->eof) {
      size_t before = rd->end - rd->start;
      if (fill(r, rd) != 0)
        return 1;
      if (rd->end - rd->start == before && !rd->eof) { /* full: too long */
        line_no++;
        reject(r, line_no, "line longer than the 2 MiB limit; skipped");
        /* drop input up to the next newline */
        do {
          rd->start = rd->end;
          if (fill(r, rd) != 0)
            return 1;
          nl = memchr(rd->buf, '\n', rd->end);
        } while (nl == NULL && !rd->eof);
        rd->start = nl ? (size_t)(nl - rd->buf) + 1 : rd->end;
      }
      continue;
    }
    if (nl == NULL && rd->start == rd->end)
      return 0;
    size_t n = nl ? (size_t)(nl - at) : rd->end - rd->start;
    rd->start += n + (nl != NULL);
    line_no++;
    if (is_blank(at, n))
      continue;
    if (take_event(r, at, n, at, n, line_no) != 0)
      return 1;
    progress(r, 0);
  }
}

/* CSV: the header, then one event per record.  0, 1 or 2 (printed). */
static int import_csv(import_run *r, reader *rd) {
  csv_rec rec, header;
  seg_buf json;
  char err[CSV_ERR_SIZE];
  uint64_t line_no = 1; /* of the record's first line */
  int status = 0, have_header = 0;
  csv_rec_init(&rec);
  csv_rec_init(&header);
  seg_buf_init(&json);
  for (;;) {
    size_t used = 0;
    int rc = csv_record(rd->buf + rd->start, rd->end - rd->start, rd->eof,
                        have_header ? &rec : &header, &used, err, sizeof err);
    if (rc == 0 && rd->eof)
      break;
    if (rc == 0) {
      size_t before = rd->end - rd->start;
      if (fill(r, rd) != 0) {
        status = 1;
        break;
      }
      if (rd->end - rd->start == before && !rd->eof) {
        fprintf(stderr,
                "esctl import: %s:%" PRIu64 ": a record longer than "
                "2 MiB (an unclosed quote?); stopped reading this file\n",
                r->file, line_no);
        r->rejected++;
        break;
      }
      continue;
    }
    const char *raw = rd->buf + rd->start;
    uint64_t this_line = line_no;
    rd->start += used;
    for (size_t k = 0; k < used; k++) /* the lines the record spanned */
      line_no += raw[k] == '\n';
    if (rc < 0 && !have_header) {
      fprintf(stderr, "esctl import: %s:1: header: %s\n", r->file, err);
      status = 2;
      break;
    }
    if (rc < 0) {
      r->read++;
      reject(r, this_line, err);
      continue;
    }
    if (!have_header) {
      if (csv_map_bind(&r->map, &header, err, sizeof err) != 0) {
        fprintf(stderr, "esctl import: %s: %s\n", r->file, err);
        status = 2;
        break;
      }
      have_header = 1;
      continue;
    }
    if (rec.count == 1 && rec.f[0].len == 0 && !rec.f[0].quoted)
      continue; /* a blank line */
    json.len = 0;
    if (csv_map_row(&r->map, &rec, header.count, &json, err, sizeof err)) {
      r->read++;
      reject(r, this_line, err);
      continue;
    }
    if ((status = take_event(r, json.data, json.len, raw, used, this_line)))
      break;
    progress(r, 0);
  }
  csv_rec_free(&rec);
  csv_rec_free(&header);
  seg_buf_free(&json);
  return status;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int import_file(import_run *r, const char *path) {
  int is_csv = ends_with(path, ".csv") || ends_with(path, ".csv.gz");
  r->file = path;
  r->gz = gzopen(path, "rb");
  if (r->gz == NULL) {
    fprintf(stderr, "esctl import: %s: %s\n", path, strerror(errno));
    return 1;
  }
  gzbuffer(r->gz, 256 << 10);
  reader rd = {.buf = malloc(IMPORT_READ_CAP)};
  int status = rd.buf ? 0 : 1;
  if (status == 0 && fill(r, &rd) != 0)
    status = 1;
  if (status == 0)
    status = is_csv ? import_csv(r, &rd) : import_ndjson(r, &rd);
  if (status == 0)
    status = flush_batch(r);
  struct stat st;
  r->bytes_before += stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
  gzclose(r->gz);
  r->gz = NULL;
  free(rd.buf);
  return status;
}

/* --- flags and the run ------------------------------------------------- */

/* Fills r from argv; the files are left in files[0..*nfiles).  -1 to go
 * on, else an exit status (help printed, or a usage error). */
static int import_parse(int argc, char **argv, import_run *r,
                        const char **files, int *nfiles) {
  static const char *const names[] = {"--data",   "--url",     "--write-key",
                                      "--tenant", "--mapping", "--batch"};
  const char **slots[] = {&r->data,   &r->url,          &r->write_key,
                          &r->tenant, &r->mapping_path, NULL};
  const char *batch = NULL;
  slots[5] = &batch;
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      fputs(import_usage, stdout);
      return 0;
    }
    if (strcmp(arg, "--quiet") == 0) {
      r->quiet = 1;
      continue;
    }
    if (arg[0] != '-' || strcmp(arg, "-") == 0) {
      files[(*nfiles)++] = arg;
      continue;
    }
    size_t k = 0;
    const char *v = NULL;
    int status = esctl_flag_value("import", argc, argv, &i, names,
                                  sizeof names / sizeof names[0], &k, &v);
    if (status)
      return status;
    *slots[k] = v;
  }
  if (!r->tenant)
    return migrate_usage("import", "--tenant is required");
  if (!r->data == !r->url)
    return migrate_usage("import", "give either --data DIR or --url URL");
  if (r->url && !r->write_key)
    return migrate_usage("import", "--url needs --write-key KEY");
  if (*nfiles == 0)
    return migrate_usage("import", "no FILE to import");
  r->batch_cap = IMPORT_BATCH_DEFAULT;
  if (batch) {
    char *end;
    unsigned long long v = strtoull(batch, &end, 10);
    if (batch[0] < '0' || batch[0] > '9' || *end || v == 0 || v > 20000)
      return migrate_usage("import", "--batch wants 1..20000, not '%s'", batch);
    r->batch_cap = (size_t)v;
  }
  size_t tn = strlen(r->tenant);
  if (tn == 0 || tn > ES_TENANT_LEN_MAX ||
      strspn(r->tenant, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789_-") != tn)
    return migrate_usage("import",
                         "invalid tenant '%s': want "
                         "[A-Za-z0-9_-]{1,64}",
                         r->tenant);
  for (int i = 0; i < *nfiles; i++) {
    int csv = ends_with(files[i], ".csv") || ends_with(files[i], ".csv.gz");
    if (csv && !r->mapping_path)
      return migrate_usage("import", "%s is CSV: --mapping FILE is required",
                           files[i]);
    struct stat st;
    if (stat(files[i], &st) != 0)
      return migrate_usage("import", "%s: %s", files[i], strerror(errno));
    r->bytes_total += (uint64_t)st.st_size;
  }
  return -1;
}

/* Reads and parses the mapping file into r->map.  0 or 2 (printed). */
static int load_mapping(import_run *r) {
  FILE *f = fopen(r->mapping_path, "rb");
  char text[65536], err[CSV_ERR_SIZE];
  if (!f)
    return migrate_usage("import", "--mapping %s: %s", r->mapping_path,
                         strerror(errno));
  size_t n = fread(text, 1, sizeof text, f);
  int too_long = n == sizeof text, bad = ferror(f);
  fclose(f);
  if (too_long || bad)
    return migrate_usage("import", "--mapping %s: %s", r->mapping_path,
                         bad ? "read error" : "longer than 64 KiB");
  if (csv_map_parse(text, n, &r->map, err, sizeof err) != 0) {
    fprintf(stderr, "esctl import: %s: %s\n", r->mapping_path, err);
    return 2;
  }
  r->have_map = 1;
  return 0;
}

/* Opens the sink: the store, or a curl handle for es-ingestd. */
static int open_sink(import_run *r) {
  if (r->data) {
    es_options opts;
    es_options_init(&opts);
    opts.data_dir = r->data;
    int rc = es_open(&opts, &r->db);
    if (rc == ES_OK)
      return 0;
    int status = migrate_lib_error(rc);
    if (rc == ES_EBUSY)
      fprintf(stderr,
              "esctl import: es-ingestd (or another writer) holds %s: "
              "import through it with --url http://HOST:PORT "
              "--write-key KEY instead (docs/MIGRATION.md)\n",
              r->data);
    return status;
  }
  size_t n = strlen(r->url);
  r->endpoint = malloc(n + 16);
  r->curl = curl_easy_init();
  if (!r->endpoint || !r->curl)
    return fprintf(stderr, "esctl import: out of memory\n"), 1;
  snprintf(r->endpoint, n + 16, "%.*s/v1/batch",
           (int)(n && r->url[n - 1] == '/' ? n - 1 : n), r->url);
  curl_easy_setopt(r->curl, CURLOPT_URL, r->endpoint);
  curl_easy_setopt(r->curl, CURLOPT_USERNAME, r->write_key);
  curl_easy_setopt(r->curl, CURLOPT_PASSWORD, "");
  curl_easy_setopt(r->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
  curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, collect_body);
  curl_easy_setopt(r->curl, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
  static struct curl_slist *headers;
  if (!headers)
    headers = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, headers);
  return 0;
}

static int alloc_batch(import_run *r) {
  r->events = calloc(r->batch_cap, sizeof *r->events);
  r->evs = calloc(r->batch_cap, sizeof *r->evs);
  r->ids = calloc(r->batch_cap, sizeof *r->ids);
  r->line_nos = calloc(r->batch_cap, sizeof *r->line_nos);
  r->dup = calloc(r->batch_cap, 1);
  seg_buf_init(&r->body);
  return r->events && r->evs && r->ids && r->line_nos && r->dup ? 0 : -1;
}

static void free_run(import_run *r) {
  free(r->events);
  free(r->evs);
  free(r->ids);
  free(r->line_nos);
  free(r->dup);
  free(r->endpoint);
  seg_buf_free(&r->body);
  if (r->have_map)
    csv_map_free(&r->map);
  if (r->curl)
    curl_easy_cleanup(r->curl);
}

int esctl_import(int argc, char **argv) {
  import_run r = {0};
  const char **files = calloc((size_t)argc + 1, sizeof *files);
  int nfiles = 0;
  if (!files)
    return 1;
  int status = import_parse(argc, argv, &r, files, &nfiles);
  if (status >= 0) {
    free(files);
    return status;
  }
  status = r.mapping_path ? load_mapping(&r) : 0;
  if (status == 0 && alloc_batch(&r) != 0)
    status = (fprintf(stderr, "esctl import: out of memory\n"), 1);
  if (status == 0)
    status = open_sink(&r);
  r.tty = !r.quiet && isatty(STDERR_FILENO);
  r.start_us = mono_us();
  for (int i = 0; i < nfiles && status == 0; i++)
    status = import_file(&r, files[i]);
  progress(&r, 1);
  if (r.db) {
    int rc = es_close(r.db);
    if (rc != ES_OK && status == 0)
      status = migrate_lib_error(rc);
  }
  double secs = (double)(mono_us() - r.start_us) / 1e6;
  if (r.db || r.curl) {
    if (r.db)
      printf("import: read %" PRIu64 " events from %d file%s: stored %" PRIu64
             ", duplicates skipped %" PRIu64 ", rejected %" PRIu64
             " (%.1f s)\n",
             r.read, nfiles, nfiles == 1 ? "" : "s", r.stored, r.duplicates,
             r.rejected, secs);
    else
      printf("import: read %" PRIu64 " events from %d file%s: accepted by "
             "es-ingestd %" PRIu64 " (stored or duplicates skipped: see its "
             "es_ingest_events_total), rejected %" PRIu64 " (%.1f s)\n",
             r.read, nfiles, nfiles == 1 ? "" : "s", r.sent, r.rejected, secs);
  }
  if (status == 0 && r.rejected > 0)
    status = 2;
  free_run(&r);
  free(files);
  return status;
}
