/*
 * esctl.c -- the command-line tool of libeventstore.
 *
 * esctl is thin: it parses flags, turns Segment JSON into es_events (via
 * segment_json), calls the public API and prints what comes back.  It owns
 * no storage logic; if it needs some, the library grows an API for it.
 *
 * Its output is a contract that scripts and tests drive:
 *
 *  1. `append` prints "durable N" (N = events made durable so far by this
 *     process) after every es_append that returned ES_OK, and flushes
 *     stdout at once, so a reader knows exactly what survives a crash.
 *  2. A bad input line stops `append`: the events gathered before it are
 *     appended (and acknowledged) first, then "esctl: line K: why" goes to
 *     stderr and the exit status is 2.
 *  3. Exit status: 0 success; 1 an error from the library or the system
 *     ("esctl: <es_strerror>: <es_errmsg>"); 2 bad usage or bad input
 *     (one line saying why).
 *
 * Batching in `append`: a batch is appended when it is full (--batch) or
 * when stdin has nothing more to read right now, so a slow producer (a
 * pipe from `tail -f`) gets its events acknowledged promptly instead of
 * waiting for a full batch.  That is why stdin is read with read(2) into
 * our own buffer: stdio would hide whether a complete line is pending.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <yajl/yajl_tree.h>

#include "common/segment_json.h"
#include "esctl_migrate.h"
#include "eventstore.h"

#define EXIT_LIB 1
#define EXIT_USAGE 2

#define APPEND_BATCH_DEFAULT 100
/* Longest input line, without its line ending: one maximal event. */
#define LINE_BYTES_MAX ES_EVENT_BYTES_MAX

static const char *const top_usage =
    "usage: esctl <command> [flags]\n"
    "\n"
    "Commands:\n"
    "  append   append Segment JSON events (one object per line) from stdin\n"
    "  scan     print a tenant's events as JSON lines, in event-time order\n"
    "  query    answer a JSON query spec (counts, uniques) for a tenant\n"
    "  timeline print a person's latest events, newest first\n"
    "  flush    seal memtables into segments (es_flush)\n"
    "  rollup-rebuild  derive a tenant's rollups again from its rows\n"
    "  rules    list a tenant's rules (behaviour segments) and their sizes\n"
    "  rule-put / rule-delete  create, replace or delete a rule\n"
    "  members  list a rule's members, or check one visitor\n"
    "  verify   check every checksum of a data directory\n"
    "  inspect  describe the segments and WAL files of a data directory\n"
    "  export   write tenants' days as Parquet or NDJSON.gz for warehouses\n"
    "  restore  rebuild a data directory from its S3 replica\n"
    "  cluster status  which node holds which tenant (the bucket's leases)\n"
    "  cluster drain   make a running node hand every tenant over\n"
    "  erase    erase a person (GDPR/CCPA) and print the receipt\n"
    "  import   load the legacy pipeline's history (NDJSON, CSV; .gz)\n"
    "  reconcile  compare per-bucket event counts with the legacy system's\n"
    "\n"
    "scan, query, timeline, rules, members, verify and inspect only read\n"
    "(no lock: they work beside a running es-ingestd).  append and\n"
    "rule-put create a store in an empty DIR; every other command says\n"
    "'no store in DIR' there and creates nothing.\n"
    "\n"
    "Run 'esctl <command> --help' for the flags of a command.\n"
    "Other flags: --help, --version.\n"
    "Exit status: 0 success, 1 library or system error, 2 bad usage or "
    "input.\n";

/* ----------------------------------------------------------------------
 * Flags and errors
 * ---------------------------------------------------------------------- */

/* One --flag VALUE (or --flag=VALUE) a command accepts. */
typedef struct flag {
  const char *name; /* "--data" */
  int required;
  const char *value; /* NULL until given (the last one, if repeated) */
  int repeat;        /* may be given again: every value is in g_repeated */
} flag;

/* The values of the one repeatable flag a command has (--tenant T ...). */
#define REPEAT_MAX 256
static const char *g_repeated[REPEAT_MAX];
static size_t g_nrepeated;

/* A subcommand: its name, its help text and its flags. */
typedef struct command {
  const char *name;
  const char *usage;
  int (*run)(flag *flags);
  flag flags[6]; /* terminated by name NULL */
  /* instead of run and flags: a command that parses its own arguments
   * (a repeated flag, a switch) */
  int (*run_argv)(int argc, char **argv);
} command;

/* "esctl: <es_strerror>: <es_errmsg>", for a failed library call (the
 * message without the library's source locations: ESCTL_DEBUG=1 prints
 * es_errdetail() with them). */
static int lib_error(int status) {
  const char *debug = getenv("ESCTL_DEBUG");
  const char *detail =
      debug && strcmp(debug, "1") == 0 ? es_errdetail() : es_errmsg();
  fprintf(stderr, "esctl: %s%s%s\n", es_strerror(status), detail[0] ? ": " : "",
          detail);
  return EXIT_LIB;
}

/* A usage error: one line on stderr, exit status 2. */
__attribute__((format(printf, 2, 3))) static int
usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "esctl%s%s: ", cmd ? " " : "", cmd ? cmd : "");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (try 'esctl%s%s --help')\n", cmd ? " " : "",
          cmd ? cmd : "");
  return EXIT_USAGE;
}

/* The value of a flag by name (NULL when not given). */
static const char *flag_value(const flag *flags, const char *name) {
  for (; flags->name != NULL; flags++)
    if (strcmp(flags->name, name) == 0)
      return flags->value;
  return NULL;
}

/*
 * Fills cmd->flags from argv.  Returns -1 to go on, or an exit status:
 * 0 after printing --help, EXIT_USAGE after printing why.
 */
static int parse_flags(command *cmd, int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      fputs(cmd->usage, stdout);
      return 0;
    }
    size_t name_len = strcspn(arg, "=");
    flag *f = cmd->flags;
    while (f->name != NULL &&
           (strncmp(f->name, arg, name_len) != 0 || f->name[name_len] != 0))
      f++;
    if (arg[0] != '-')
      return usage_error(cmd->name, "unexpected argument '%s'", arg);
    if (f->name == NULL)
      return usage_error(cmd->name, "unknown flag '%s'", arg);
    if (arg[name_len] == '=')
      f->value = arg + name_len + 1;
    else if (i + 1 < argc)
      f->value = argv[++i];
    else
      return usage_error(cmd->name, "flag %s needs a value", f->name);
    if (f->repeat) {
      if (g_nrepeated == REPEAT_MAX)
        return usage_error(cmd->name, "more than %d %s flags", REPEAT_MAX,
                           f->name);
      g_repeated[g_nrepeated++] = f->value;
    }
  }
  for (flag *f = cmd->flags; f->name != NULL; f++)
    if (f->required && f->value == NULL)
      return usage_error(cmd->name, "%s is required", f->name);
  return -1;
}

/* The documented tenant rule ([A-Za-z0-9_-]{1,64}), checked before use. */
static int check_tenant(const char *cmd, const char *tenant) {
  size_t n = strlen(tenant);
  if (n == 0 || n > ES_TENANT_LEN_MAX ||
      strspn(tenant, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789_-") != n)
    return usage_error(cmd, "invalid tenant '%s': want [A-Za-z0-9_-]{1,64}",
                       tenant);
  return 0;
}

/* How a command opens the store (docs/OPERATIONS.md, "Running"). */
typedef enum open_mode {
  OPEN_READ,   /* read-only handle: no lock, works beside es-ingestd */
  OPEN_WRITE,  /* the lock; the store must exist */
  OPEN_CREATE, /* the lock; a new store when the directory has none */
} open_mode;

/*
 * Opens the store in dir.  Only `append` and `rule-put` (which set a
 * store up) create one: every other command says "no store in DIR" for a
 * mistyped path instead of leaving a new store behind.  Read commands take a
 * read-only handle, so they run beside the process that holds the lock; a
 * writer refused the lock is told which process holds it and what to use
 * instead.
 */
static int open_store(const char *dir, open_mode mode, es_db **db_out) {
  es_options opts;
  es_options_init(&opts);
  opts.data_dir = dir;
  opts.read_only = mode == OPEN_READ;
  opts.must_exist = mode == OPEN_WRITE;
  int rc = es_open(&opts, db_out);
  if (rc == ES_OK)
    return 0;
  int status = lib_error(rc);
  if (rc == ES_EBUSY)
    fprintf(stderr,
            "esctl: a server (es-ingestd) or another esctl holds the store.  "
            "Read commands (scan, query, timeline, rules, members, inspect, "
            "verify) work beside it; change rules through es-ingestd's admin "
            "API (PUT/DELETE /v1/admin/tenants/T/rules/NAME, docs/INGEST.md) "
            "and append over HTTP, or stop the holder first.\n");
  return status;
}

/* Closes the store; an error is reported only if none was before. */
static int close_store(es_db *db, int status) {
  int rc = es_close(db);
  if (rc != ES_OK && status == 0)
    return lib_error(rc);
  return status;
}

/* Flushes stdout and reports a failure to write it (exit status 1). */
static int finish_stdout(int status) {
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "esctl: writing standard output: %s\n", strerror(errno));
    return status ? status : EXIT_LIB;
  }
  return status;
}

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ----------------------------------------------------------------------
 * append: reading lines
 * ---------------------------------------------------------------------- */

/* Lines of stdin, read with read(2) so that we know what is pending. */
typedef struct line_reader {
  int fd;
  char *buf;         /* LINE_BYTES_MAX + 3: line, "\r\n", NUL */
  size_t start, end; /* unread bytes are buf[start..end) */
  int eof;
  uint64_t line_no; /* of the line last returned */
} line_reader;

#define READER_CAP (LINE_BYTES_MAX + 3)

/*
 * The next line, NUL-terminated, without "\n" or "\r\n".  Returns 1 and
 * the line, 0 at the end of input, -1 when the line is longer than
 * LINE_BYTES_MAX (r->line_no names it), -2 on a read error (errno).
 */
static int reader_next(line_reader *r, char **line_out, size_t *len_out) {
  for (;;) {
    char *at = r->buf + r->start;
    char *nl = memchr(at, '\n', r->end - r->start);
    if (nl != NULL || (r->eof && r->end > r->start)) {
      size_t n = nl != NULL ? (size_t)(nl - at) : r->end - r->start;
      r->start += n + (nl != NULL);
      r->line_no++;
      if (n > 0 && at[n - 1] == '\r')
        n--;
      if (n > LINE_BYTES_MAX)
        return -1;
      at[n] = '\0'; /* over the "\r" or "\n", or the spare byte at EOF */
      *line_out = at;
      *len_out = n;
      return 1;
    }
    if (r->eof)
      return 0;
    if (r->end - r->start >= READER_CAP - 1) { /* full, and no newline */
      r->line_no++;
      return -1;
    }
    if (r->start > 0) {
      memmove(r->buf, r->buf + r->start, r->end - r->start);
      r->end -= r->start;
      r->start = 0;
    }
    ssize_t got = read(r->fd, r->buf + r->end, READER_CAP - 1 - r->end);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0)
      return -2;
    r->eof = got == 0;
    r->end += (size_t)got;
  }
}

/* Whether the next reader_next() would have to wait for input. */
static int reader_would_block(const line_reader *r) {
  if (r->eof || memchr(r->buf + r->start, '\n', r->end - r->start) != NULL)
    return 0;
  struct pollfd p = {.fd = r->fd, .events = POLLIN};
  return poll(&p, 1, 0) == 0;
}

/* ----------------------------------------------------------------------
 * append: batches
 * ---------------------------------------------------------------------- */

/* A batch being gathered, and what has been acknowledged so far. */
typedef struct batch {
  es_db *db;
  const char *tenant;
  size_t cap, n;
  seg_event *events; /* parsed, owned */
  es_event *evs;     /* copies of events[i].ev, for es_append */
  uint64_t *line_nos;
  uint64_t durable_count;
} batch;

/* Prints the acknowledgement line; 0, or EXIT_LIB if stdout failed. */
static int acknowledge(batch *b, size_t count) {
  b->durable_count += count;
  printf("durable %" PRIu64 "\n", b->durable_count);
  return finish_stdout(0);
}

/*
 * Appends the gathered events, acknowledges them, and empties the batch.
 * If the library finds the batch too big, the events are retried one by
 * one, so that the event that is too big on its own is named by its line.
 * Returns 0, EXIT_LIB or EXIT_USAGE (message printed).
 */
static int batch_commit(batch *b) {
  int status = 0;
  for (size_t i = 0; i < b->n; i++)
    b->evs[i] = b->events[i].ev;
  int rc = b->n ? es_append(b->db, b->tenant, b->evs, b->n, NULL) : ES_OK;
  if (rc == ES_OK) {
    status = b->n ? acknowledge(b, b->n) : 0;
  } else if (rc == ES_ETOOBIG) {
    for (size_t i = 0; i < b->n && status == 0; i++) {
      rc = es_append(b->db, b->tenant, &b->evs[i], 1, NULL);
      if (rc == ES_ETOOBIG) {
        fprintf(stderr, "esctl: line %" PRIu64 ": %s\n", b->line_nos[i],
                es_strerror(rc));
        status = EXIT_USAGE;
      } else {
        status = rc == ES_OK ? acknowledge(b, 1) : lib_error(rc);
      }
    }
  } else {
    status = lib_error(rc);
  }
  for (size_t i = 0; i < b->n; i++)
    seg_event_free(&b->events[i]);
  b->n = 0;
  return status;
}

/* Parses a --batch value: 1..ES_BATCH_EVENTS_MAX. */
static int parse_batch_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v == 0 ||
      v > ES_BATCH_EVENTS_MAX)
    return -1;
  *out = (size_t)v;
  return 0;
}

static int is_blank(const char *s) { return s[strspn(s, " \t")] == '\0'; }

/*
 * Reads lines, gathers and commits batches until the end of input or a bad
 * line.  Returns the exit status.
 */
static int append_loop(batch *b, line_reader *r) {
  char err[SEG_ERR_SIZE];
  for (;;) {
    if (b->n > 0 && (b->n == b->cap || reader_would_block(r))) {
      int status = batch_commit(b);
      if (status != 0)
        return status;
    }
    char *line;
    size_t len;
    int rc = reader_next(r, &line, &len);
    if (rc == 0)
      return batch_commit(b);
    if (rc == -2) {
      int saved = errno, status = batch_commit(b);
      fprintf(stderr, "esctl: reading standard input: %s\n", strerror(saved));
      return status ? status : EXIT_LIB;
    }
    if (rc == 1 && is_blank(line))
      continue;
    if (rc == -1)
      snprintf(err, sizeof err, "longer than %d bytes", LINE_BYTES_MAX);
    if (rc == -1 || seg_event_parse(&b->events[b->n], line, len, now_us(), err,
                                    sizeof err) != 0) {
      int status = batch_commit(b);
      fprintf(stderr, "esctl: line %" PRIu64 ": %s\n", r->line_no, err);
      return status ? status : EXIT_USAGE;
    }
    b->line_nos[b->n++] = r->line_no;
  }
}

/* esctl append: stdin -> es_append, acknowledging durable batches. */
static int cmd_append(flag *flags) {
  const char *tenant = flag_value(flags, "--tenant");
  const char *batch_arg = flag_value(flags, "--batch");
  batch b = {.tenant = tenant, .cap = APPEND_BATCH_DEFAULT};
  line_reader r = {.fd = STDIN_FILENO};
  int status;
  if ((status = check_tenant("append", tenant)) != 0)
    return status;
  if (batch_arg && parse_batch_size(batch_arg, &b.cap))
    return usage_error("append", "--batch wants 1..100000, not '%s'",
                       batch_arg);
  b.events = calloc(b.cap, sizeof *b.events);
  b.evs = calloc(b.cap, sizeof *b.evs);
  b.line_nos = calloc(b.cap, sizeof *b.line_nos);
  r.buf = malloc(READER_CAP);
  if (!b.events || !b.evs || !b.line_nos || !r.buf) {
    fprintf(stderr, "esctl: out of memory\n");
    status = EXIT_LIB;
  } else if ((status = open_store(flag_value(flags, "--data"), OPEN_CREATE,
                                  &b.db)) == 0) {
    status = append_loop(&b, &r);
    status = close_store(b.db, status);
  }
  free(b.events);
  free(b.evs);
  free(b.line_nos);
  free(r.buf);
  return status;
}

/* ----------------------------------------------------------------------
 * scan, flush
 * ---------------------------------------------------------------------- */

/* Parses an optional --from/--to value into *us. */
static int parse_time_flag(const flag *flags, const char *name, int64_t *us) {
  const char *s = flag_value(flags, name);
  if (s != NULL && seg_iso8601_parse(s, us) != 0) {
    fprintf(stderr,
            "esctl: %s: bad time '%s' (want ISO 8601, e.g. "
            "2026-11-24T10:00:00Z)\n",
            name, s);
    return EXIT_USAGE;
  }
  return 0;
}

/* Writes every event of an open cursor as a JSON line. */
static int scan_print(es_cursor *cur) {
  seg_buf out;
  es_event ev;
  int rc, status = 0;
  seg_buf_init(&out);
  while ((rc = es_cursor_next(cur, &ev)) == 1) {
    out.len = 0;
    if (seg_event_write(&out, &ev) || seg_buf_put(&out, "\n", 1)) {
      fprintf(stderr, "esctl: out of memory\n");
      status = EXIT_LIB;
      break;
    }
    if (fwrite(out.data, 1, out.len, stdout) != out.len)
      break; /* finish_stdout reports it */
  }
  if (rc < 0) {
    fflush(stdout); /* what was read before the error goes out first */
    status = lib_error(rc);
  }
  seg_buf_free(&out);
  return finish_stdout(status);
}

/* esctl scan: a tenant's events, in time order, as JSON lines. */
static int cmd_scan(flag *flags) {
  es_scan_spec spec;
  es_db *db;
  es_cursor *cur;
  int status;
  es_scan_spec_init(&spec);
  spec.tenant = flag_value(flags, "--tenant");
  spec.person = flag_value(flags, "--person");
  if ((status = check_tenant("scan", spec.tenant)) != 0 ||
      (status = parse_time_flag(flags, "--from", &spec.from_us)) != 0 ||
      (status = parse_time_flag(flags, "--to", &spec.to_us)) != 0)
    return status;
  if ((status = open_store(flag_value(flags, "--data"), OPEN_READ, &db)) != 0)
    return status;
  int rc = es_scan(db, &spec, &cur);
  if (rc != ES_OK) {
    status = lib_error(rc);
  } else {
    status = scan_print(cur);
    es_cursor_close(cur);
  }
  return close_store(db, status);
}

/* Default and largest --limit of esctl timeline. */
#define TIMELINE_LIMIT_DEFAULT 20

/* esctl timeline: a person's latest events (all linked ids), newest first,
 * as JSON lines in the shape of esctl scan. */
static int cmd_timeline(flag *flags) {
  const char *tenant = flag_value(flags, "--tenant");
  const char *person = flag_value(flags, "--person");
  const char *limit_s = flag_value(flags, "--limit");
  size_t limit = TIMELINE_LIMIT_DEFAULT;
  es_db *db;
  es_timeline *tl;
  int status;
  if ((status = check_tenant("timeline", tenant)) != 0)
    return status;
  if (limit_s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(limit_s, &end, 10);
    if (errno || end == limit_s || *end || limit_s[0] == '-' || v < 1 ||
        v > ES_TIMELINE_EVENTS_MAX)
      return usage_error("timeline", "--limit wants 1..%d, not '%s'",
                         ES_TIMELINE_EVENTS_MAX, limit_s);
    limit = (size_t)v;
  }
  if ((status = open_store(flag_value(flags, "--data"), OPEN_READ, &db)) != 0)
    return status;
  int rc = es_timeline_open(db, tenant, person, limit, &tl);
  if (rc != ES_OK)
    return finish_stdout(close_store(db, lib_error(rc)));
  seg_buf out;
  es_event ev;
  seg_buf_init(&out);
  while (es_timeline_next(tl, &ev) == 1) {
    out.len = 0;
    if (seg_event_write(&out, &ev) || seg_buf_put(&out, "\n", 1)) {
      fprintf(stderr, "esctl: out of memory\n");
      status = EXIT_LIB;
      break;
    }
    if (fwrite(out.data, 1, out.len, stdout) != out.len)
      break; /* finish_stdout reports it */
  }
  seg_buf_free(&out);
  es_timeline_close(tl);
  return finish_stdout(close_store(db, status));
}

/* Longest query spec accepted from a file or stdin. */
#define SPEC_BYTES_MAX (1024 * 1024)

/*
 * Reads the whole spec from path ("-" = stdin) into a malloc'ed,
 * NUL-terminated buffer.  Returns 0, or an exit status after saying why.
 */
static int read_spec(const char *path, char **spec_out) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  *spec_out = NULL;
  if (f == NULL) {
    fprintf(stderr, "esctl: %s: %s\n", path, strerror(errno));
    return EXIT_USAGE;
  }
  char *buf = malloc(SPEC_BYTES_MAX + 2);
  size_t n = buf ? fread(buf, 1, SPEC_BYTES_MAX + 1, f) : 0;
  int status = 0;
  if (buf == NULL) {
    fprintf(stderr, "esctl: out of memory\n");
    status = EXIT_LIB;
  } else if (ferror(f)) {
    fprintf(stderr, "esctl: reading %s: %s\n", path, strerror(errno));
    status = EXIT_LIB;
  } else if (n > SPEC_BYTES_MAX) {
    fprintf(stderr, "esctl: %s: longer than %d bytes\n", path, SPEC_BYTES_MAX);
    status = EXIT_USAGE;
  }
  if (f != stdin)
    fclose(f);
  if (status != 0) {
    free(buf);
    return status;
  }
  buf[n] = '\0';
  *spec_out = buf;
  return 0;
}

/* ----------------------------------------------------------------------
 * rules, rule-put, rule-delete, members
 * ---------------------------------------------------------------------- */

/* Prints the ids of an es_rule_members result, one per line. */
static int print_members(const char *json) {
  char why[128];
  yajl_val root = yajl_tree_parse(json, why, sizeof(why));
  const char *path[] = {"members", NULL};
  yajl_val ids = root ? yajl_tree_get(root, path, yajl_t_array) : NULL;
  if (!ids) {
    yajl_tree_free(root);
    fprintf(stderr, "esctl members: unexpected result from the library\n");
    return ES_ECORRUPT;
  }
  for (size_t i = 0; i < ids->u.array.len; i++)
    if (YAJL_IS_STRING(ids->u.array.values[i]))
      printf("%s\n", YAJL_GET_STRING(ids->u.array.values[i]));
  yajl_tree_free(root);
  return ES_OK;
}

/* Prints an owned JSON result and frees it. */
static int print_json(int rc, char *json, const char *cmd) {
  if (rc == ES_EINVAL) {
    fprintf(stderr, "esctl %s: %s\n", cmd, es_errmsg());
    return EXIT_USAGE;
  }
  if (rc != ES_OK)
    return lib_error(rc);
  printf("%s\n", json);
  es_free(json);
  return 0;
}

/* esctl rules: es_rules_list. */
static int cmd_rules(flag *flags) {
  const char *tenant = flag_value(flags, "--tenant");
  int64_t at = 0;
  es_db *db;
  int status;
  if ((status = check_tenant("rules", tenant)) != 0 ||
      (status = parse_time_flag(flags, "--at", &at)) != 0 ||
      (status = open_store(flag_value(flags, "--data"), OPEN_READ, &db)) != 0)
    return status;
  char *json = NULL;
  int rc = es_rules_list(db, tenant, at, &json);
  return finish_stdout(close_store(db, print_json(rc, json, "rules")));
}

/* esctl rule-put: es_rule_put of a rule file. */
static int cmd_rule_put(flag *flags) {
  const char *tenant = flag_value(flags, "--tenant");
  char *rule;
  es_db *db;
  int status;
  if ((status = check_tenant("rule-put", tenant)) != 0 ||
      (status = read_spec(flag_value(flags, "--rule"), &rule)) != 0)
    return status;
  if ((status = open_store(flag_value(flags, "--data"), OPEN_CREATE, &db)) !=
      0) {
    free(rule);
    return status;
  }
  int rc = es_rule_put(db, tenant, rule);
  if (rc == ES_EINVAL) {
    fprintf(stderr, "esctl rule-put: %s\n", es_errmsg());
    status = EXIT_USAGE;
  } else if (rc != ES_OK) {
    status = lib_error(rc);
  }
  free(rule);
  return close_store(db, status);
}

/* esctl rule-delete: es_rule_delete. */
static int cmd_rule_delete(flag *flags) {
  const char *tenant = flag_value(flags, "--tenant");
  es_db *db;
  int status;
  if ((status = check_tenant("rule-delete", tenant)) != 0 ||
      (status = open_store(flag_value(flags, "--data"), OPEN_WRITE, &db)) != 0)
    return status;
  int rc = es_rule_delete(db, tenant, flag_value(flags, "--rule"));
  return close_store(db, rc == ES_OK ? 0 : lib_error(rc));
}

/* esctl members: a rule's members, one id per line; with --person, "yes"
 * or "no" for that visitor (exit 0 either way). */
static int cmd_members(flag *flags) {
  const char *tenant = flag_value(flags, "--tenant");
  const char *rule = flag_value(flags, "--rule");
  const char *person = flag_value(flags, "--person");
  int64_t at = 0;
  es_db *db;
  int status;
  if ((status = check_tenant("members", tenant)) != 0 ||
      (status = parse_time_flag(flags, "--at", &at)) != 0 ||
      (status = open_store(flag_value(flags, "--data"), OPEN_READ, &db)) != 0)
    return status;
  int rc;
  if (person) {
    int member = 0;
    rc = es_rule_check(db, tenant, rule, person, at, &member);
    if (rc == ES_OK)
      printf("%s\n", member ? "yes" : "no");
  } else {
    char *json = NULL;
    rc = es_rule_members(db, tenant, rule, at, &json);
    if (rc == ES_OK)
      rc = print_members(json);
    es_free(json);
  }
  status = rc == ES_OK ? 0 : lib_error(rc);
  return finish_stdout(close_store(db, status));
}

/* esctl query: es_query of a spec file; the result JSON on one line. */
static int cmd_query(flag *flags) {
  const char *tenant = flag_value(flags, "--tenant");
  char *spec, *result;
  es_db *db;
  int status;
  if ((status = check_tenant("query", tenant)) != 0 ||
      (status = read_spec(flag_value(flags, "--spec"), &spec)) != 0)
    return status;
  if ((status = open_store(flag_value(flags, "--data"), OPEN_READ, &db)) != 0) {
    free(spec);
    return status;
  }
  int rc = es_query(db, tenant, spec, &result);
  if (rc == ES_EINVAL) { /* a bad spec: the detail names the field */
    fprintf(stderr, "esctl query: %s\n", es_errmsg());
    status = EXIT_USAGE;
  } else if (rc != ES_OK) {
    status = lib_error(rc);
  } else {
    printf("%s\n", result);
    es_free(result);
  }
  free(spec);
  return finish_stdout(close_store(db, status));
}

/* esctl rollup-rebuild: es_rollup_rebuild over a range; one summary line. */
static int cmd_rollup_rebuild(flag *flags) {
  const char *tenant = flag_value(flags, "--tenant");
  int64_t from = INT64_MIN, to = INT64_MAX;
  es_db *db;
  int status;
  if ((status = check_tenant("rollup-rebuild", tenant)) != 0 ||
      (status = parse_time_flag(flags, "--from", &from)) != 0 ||
      (status = parse_time_flag(flags, "--to", &to)) != 0)
    return status;
  if (from > to)
    return usage_error("rollup-rebuild", "--from is after --to");
  if ((status = open_store(flag_value(flags, "--data"), OPEN_WRITE, &db)) != 0)
    return status;
  es_rollup_report rep;
  int rc = es_rollup_rebuild(db, tenant, from, to, &rep);
  if (rc != ES_OK)
    status = lib_error(rc);
  else
    printf("rebuilt: %" PRIu64 " segments checked, %" PRIu64
           " rollup files rewritten (%" PRIu64 " missing or damaged, %" PRIu64
           " differing)\n",
           rep.segments, rep.rewritten, rep.missing, rep.differing);
  return finish_stdout(close_store(db, status));
}

/* esctl flush: es_flush of one tenant or of all. */
static int cmd_flush(flag *flags) {
  const char *tenant = flag_value(flags, "--tenant");
  es_db *db;
  int status;
  if (tenant != NULL && (status = check_tenant("flush", tenant)) != 0)
    return status;
  if ((status = open_store(flag_value(flags, "--data"), OPEN_WRITE, &db)) != 0)
    return status;
  int rc = es_flush(db, tenant);
  status = rc == ES_OK ? 0 : lib_error(rc);
  return close_store(db, status);
}

/* ----------------------------------------------------------------------
 * verify, inspect
 * ---------------------------------------------------------------------- */

typedef struct verify_state {
  uint64_t problems;
} verify_state;

static void verify_problem(void *ud, const char *path, uint64_t offset,
                           const char *what) {
  verify_state *st = ud;
  st->problems++;
  printf("%s:%" PRIu64 ": %s\n", path, offset, what);
}

typedef struct file_count {
  uint64_t segments, wals;
} file_count;

static int count_file(void *ud, const es_file_info *info) {
  file_count *fc = ud;
  if (info->kind == ES_FILE_WAL)
    fc->wals++;
  else if (info->kind == ES_FILE_SEGMENT)
    fc->segments++;
  return 0;
}

/* esctl verify: every checksum; problems as PATH:OFFSET: what. */
static int cmd_verify(flag *flags) {
  const char *dir = flag_value(flags, "--data");
  verify_state st = {0};
  file_count fc = {0};
  int rc = es_verify(dir, verify_problem, &st);
  fflush(stdout);
  if (rc == ES_OK && st.problems > 0)
    rc = ES_ECORRUPT; /* a reported problem is never "sound" */
  if (rc == ES_ECORRUPT) {
    fprintf(stderr, "esctl: %s: %" PRIu64 " problem%s found in %s\n",
            es_strerror(rc), st.problems, st.problems == 1 ? "" : "s", dir);
    if (st.problems == 0)
      lib_error(rc);
    return finish_stdout(EXIT_LIB);
  }
  if (rc != ES_OK)
    return finish_stdout(lib_error(rc));
  rc = es_inspect(dir, count_file, &fc);
  if (rc != ES_OK)
    return finish_stdout(lib_error(rc));
  printf("ok: %" PRIu64 " file%s checked (segments: %" PRIu64
         ", WAL files: %" PRIu64 ")\n",
         fc.segments + fc.wals, fc.segments + fc.wals == 1 ? "" : "s",
         fc.segments, fc.wals);
  return finish_stdout(0);
}

/* ----------------------------------------------------------------------
 * restore
 * ---------------------------------------------------------------------- */

typedef struct restore_view {
  int tty;
  int64_t last_ns;
} restore_view;

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Progress on a terminal: one line rewritten at most 10 times a second. */
static void restore_progress(void *ud, const es_restore_progress *p) {
  restore_view *v = ud;
  if (!v->tty)
    return;
  int64_t now = mono_ns();
  if (now - v->last_ns < 100000000 && p->objects_done < p->objects_total)
    return;
  v->last_ns = now;
  fprintf(stderr, "\r%s: %" PRIu64 "/%" PRIu64 " objects, %.1f/%.1f MiB   ",
          p->tenant, p->objects_done, p->objects_total,
          (double)p->bytes_done / 1048576.0,
          (double)p->bytes_total / 1048576.0);
}

/* esctl restore: rebuild DIR from s3://BUCKET/PREFIX, then verify it. */
static int cmd_restore(flag *flags) {
  const char *from = flag_value(flags, "--from");
  const char *dir = flag_value(flags, "--data");
  for (size_t i = 0; i < g_nrepeated; i++)
    if (check_tenant("restore", g_repeated[i]))
      return EXIT_USAGE;
  if (strncmp(from, "s3://", 5) != 0 || from[5] == '\0' || from[5] == '/')
    return usage_error("restore", "--from wants s3://BUCKET[/PREFIX], not '%s'",
                       from);
  es_replica_config cfg;
  es_replica_config_init(&cfg);
  cfg.url = from;
  cfg.endpoint = flag_value(flags, "--s3-endpoint");
  cfg.region = flag_value(flags, "--s3-region");
  es_replica *rep = NULL;
  int rc = es_replica_s3_new(&cfg, &rep);
  if (rc != ES_OK)
    return lib_error(rc);
  restore_view v = {.tty = isatty(STDERR_FILENO)};
  int64_t t0 = mono_ns();
  rc = es_restore(rep, dir, g_nrepeated ? g_repeated : NULL, g_nrepeated,
                  restore_progress, &v);
  if (v.tty)
    fputc('\n', stderr);
  es_replica_free(rep);
  if (rc != ES_OK)
    return lib_error(rc);
  verify_state st = {0};
  rc = es_verify(dir, verify_problem, &st);
  fflush(stdout);
  if (rc == ES_OK && st.problems > 0)
    rc = ES_ECORRUPT;
  if (rc != ES_OK) {
    fprintf(stderr, "esctl: restored %s does not verify\n", dir);
    return finish_stdout(lib_error(rc));
  }
  file_count fc = {0};
  rc = es_inspect(dir, count_file, &fc);
  if (rc != ES_OK)
    return finish_stdout(lib_error(rc));
  printf("restored: %" PRIu64 " segment%s into %s in %.1f s; verify ok\n",
         fc.segments, fc.segments == 1 ? "" : "s", dir,
         (double)(mono_ns() - t0) / 1e9);
  return finish_stdout(0);
}

/* What es_inspect reported, copied (its strings live during the call). */
typedef struct inspect_list {
  es_file_info *files;
  size_t n, cap;
  int oom;
} inspect_list;

static int collect_file(void *ud, const es_file_info *info) {
  inspect_list *l = ud;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    es_file_info *files = realloc(l->files, cap * sizeof *files);
    if (files == NULL)
      return l->oom = 1;
    l->files = files;
    l->cap = cap;
  }
  es_file_info *f = &l->files[l->n];
  *f = *info;
  f->path = strdup(info->path ? info->path : "");
  f->tenant = info->tenant ? strdup(info->tenant) : NULL;
  if (f->path == NULL || (info->tenant && f->tenant == NULL)) {
    free((char *)f->path);
    free((char *)f->tenant);
    return l->oom = 1;
  }
  l->n++;
  return 0;
}

/* "FROM .. TO" in ISO 8601, or "-" for an empty file. */
static void print_range(const es_file_info *f) {
  char a[SEG_ISO8601_SIZE], b[SEG_ISO8601_SIZE];
  if (f->rows == 0 && f->min_ts_us == 0 && f->max_ts_us == 0) {
    printf("  time -\n");
    return;
  }
  seg_iso8601_format(f->min_ts_us, a, sizeof a);
  seg_iso8601_format(f->max_ts_us, b, sizeof b);
  printf("  time %s .. %s\n", a, b);
}

/* The segments of the tenant of files[i..], then its totals; next index. */
static const char *g_inspect_dir;

/* The tenant's replica record, when it has one (es_replica_record_read). */
static void print_replica(const char *tenant) {
  es_replica_record r;
  int rc = es_replica_record_read(g_inspect_dir, tenant, &r);
  if (rc == ES_ENOTFOUND)
    return;
  if (rc != ES_OK) {
    printf("  replica: unreadable record: %s\n", es_errdetail());
    return;
  }
  printf("  replica: manifest generation %" PRIu64 " of %" PRIu64
         " (%s), %" PRIu64 " objects, %" PRIu64 " bytes, %" PRIu64
         " awaiting deletion; identity %s, rules %s\n",
         r.generation, r.local_generation,
         r.generation >= r.local_generation ? "up to date" : "behind",
         r.objects, r.bytes, r.superseded, r.identity ? "copied" : "none",
         r.rules ? "copied" : "none");
}

static size_t print_tenant(const inspect_list *l, size_t i) {
  const char *tenant = l->files[i].tenant;
  uint64_t segs = 0, rows = 0, bytes = 0, unflushed = 0;
  printf("tenant %s\n", tenant);
  for (; i < l->n; i++) {
    const es_file_info *f = &l->files[i];
    if (f->kind == ES_FILE_WAL || !f->tenant || strcmp(f->tenant, tenant) != 0)
      break;
    if (f->kind == ES_FILE_UNFLUSHED) {
      printf("  unflushed (durable in %s, not yet in a segment)  rows %" PRIu64,
             f->path, f->rows);
      print_range(f);
      unflushed += f->rows;
      continue;
    }
    printf("  segment %s  rows %" PRIu64 "  bytes %" PRIu64, f->path, f->rows,
           f->bytes);
    print_range(f);
    segs++, rows += f->rows, bytes += f->bytes;
  }
  printf("  total: %" PRIu64 " rows (%" PRIu64 " in %" PRIu64
         " segment%s, %" PRIu64 " bytes, %.1f bytes/row; %" PRIu64
         " unflushed)\n",
         rows + unflushed, rows, segs, segs == 1 ? "" : "s", bytes,
         rows ? (double)bytes / (double)rows : 0.0, unflushed);
  print_replica(tenant);
  return i;
}

/* esctl inspect: segments per tenant with totals, then the WAL files. */
static int cmd_inspect(flag *flags) {
  inspect_list l = {0};
  uint64_t wals = 0;
  int status = 0;
  g_inspect_dir = flag_value(flags, "--data");
  int rc = es_inspect(g_inspect_dir, collect_file, &l);
  if (l.oom) {
    fprintf(stderr, "esctl: out of memory\n");
    status = EXIT_LIB;
  } else if (rc != ES_OK) {
    status = lib_error(rc);
  } else {
    for (size_t i = 0; i < l.n;) {
      if (l.files[i].kind != ES_FILE_WAL && l.files[i].tenant != NULL)
        i = print_tenant(&l, i);
      else
        i++;
    }
    for (size_t i = 0; i < l.n; i++) {
      const es_file_info *f = &l.files[i];
      if (f->kind != ES_FILE_WAL)
        continue;
      if (wals++ == 0)
        printf("wal\n");
      printf("  shard %" PRIu32 "  %s  records %" PRIu64 "  events %" PRIu64
             "  bytes %" PRIu64 "\n",
             f->shard, f->path, f->rows, f->events, f->bytes);
    }
    if (wals == 0)
      printf("wal: no files\n");
  }
  for (size_t i = 0; i < l.n; i++) {
    free((char *)l.files[i].path);
    free((char *)l.files[i].tenant);
  }
  free(l.files);
  return finish_stdout(status);
}

/* ----------------------------------------------------------------------
 * main
 * ---------------------------------------------------------------------- */

/* ----------------------------------------------------------------------
 * export
 * ---------------------------------------------------------------------- */

static const char export_usage[] =
    "usage: esctl export --data DIR (--tenant T ... | --all)\n"
    "                    --from YYYY-MM-DD --to YYYY-MM-DD\n"
    "                    [--format parquet|ndjson]\n"
    "                    [--compression zstd|snappy|none] [--threads N]\n"
    "                    --out DIR|s3://BUCKET[/PREFIX]\n"
    "                    [--s3-endpoint URL] [--s3-region R]\n"
    "\n"
    "Writes every event of the tenants (--tenant may repeat; --all: every\n"
    "tenant) whose time falls on the UTC days FROM..TO (both included) as\n"
    "  DIR/tenant=T/date=YYYY-MM-DD/part-NNNNN.parquet (or .ndjson.gz)\n"
    "with a _manifest.json per partition (docs/EXPORT.md).  Parquet pages\n"
    "are ZSTD-compressed unless --compression says otherwise; NDJSON is\n"
    "gzip.  Exporting a day again replaces its partition atomically.  The\n"
    "store is opened read-only, so this works beside a running es-ingestd.\n"
    "--threads: partitions written at once (default 4).  Shows progress\n"
    "on a terminal; prints a summary line at the end.\n"
    "--out s3://BUCKET/PREFIX writes the same layout as objects under\n"
    "PREFIX/ (credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
    "AWS_SESSION_TOKEN; --s3-endpoint defaults to AWS_ENDPOINT_URL_S3, else\n"
    "AWS_ENDPOINT_URL, else AWS's; --s3-region to AWS_REGION, else\n"
    "us-east-1).\n"
    "The destination (the directory made absolute, or the URL with the\n"
    "--s3-* flags given; no credentials) is recorded first in exports/ of\n"
    "the --data directory, so that a person's erasure re-cuts their\n"
    "partitions there too (docs/PRIVACY.md).\n";

/* "YYYY-MM-DD" -> days since 1970-01-01 (proleptic Gregorian). */
static int parse_day(const char *s, int64_t *days_out) {
  int y, m, d;
  char tail;
  if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 ||
      y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31)
    return -1;
  static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > mdays[m - 1] || (m == 2 && d == 29 && !leap))
    return -1;
  int64_t yy = m <= 2 ? y - 1 : y;
  int64_t era = yy / 400;
  int64_t yoe = yy - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  *days_out = era * 146097 + doe - 719468;
  return 0;
}

typedef struct export_ui {
  int tty;
  int64_t start_us, last_us;
} export_ui;

/* The progress bar (a terminal on stderr only), at most 10 times a second. */
static void export_progress(void *ud, const es_export_progress *p) {
  export_ui *ui = ud;
  int64_t now = now_us();
  if (!ui->tty ||
      (now - ui->last_us < 100000 && p->partitions_done < p->partitions_total))
    return;
  ui->last_us = now;
  enum { width = 30 };
  int fill =
      p->partitions_total
          ? (int)(p->partitions_done * (uint64_t)width / p->partitions_total)
          : width;
  char bar[width + 1];
  memset(bar, '#', (size_t)fill);
  memset(bar + fill, '.', (size_t)(width - fill));
  bar[width] = 0;
  fprintf(stderr,
          "\r[%s] %" PRIu64 "/%" PRIu64 " partitions  %" PRIu64
          " rows  %.1f MB  %s %s   ",
          bar, p->partitions_done, p->partitions_total, p->rows,
          (double)p->bytes / 1e6, p->tenant, p->day);
}

/* Flags of esctl export: repeated --tenant, the --all switch. */
typedef struct export_args {
  const char *data, *from, *to, *out, *format, *comp, *threads;
  const char *s3_endpoint, *s3_region;
  const char **tenants;
  size_t ntenants;
  int all;
} export_args;

static int export_parse(int argc, char **argv, export_args *a) {
  static const char *const names[] = {
      "--data",        "--from",    "--to",          "--out",       "--format",
      "--compression", "--threads", "--s3-endpoint", "--s3-region", "--tenant"};
  const char **slots[] = {&a->data,      &a->from, &a->to,      &a->out,
                          &a->format,    &a->comp, &a->threads, &a->s3_endpoint,
                          &a->s3_region, NULL};
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    const char **dst = NULL;
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      fputs(export_usage, stdout);
      return 0;
    }
    if (strcmp(arg, "--all") == 0) {
      a->all = 1;
      continue;
    }
    size_t k = 0;
    const char *v = NULL;
    int status = esctl_flag_value("export", argc, argv, &i, names,
                                  sizeof names / sizeof names[0], &k, &v);
    if (status)
      return status;
    dst = slots[k] ? slots[k] : &a->tenants[a->ntenants];
    *dst = v;
    if (dst == &a->tenants[a->ntenants]) {
      int status = check_tenant("export", *dst);
      if (status)
        return status;
      a->ntenants++;
    }
  }
  return -1;
}

/* Checks the flags together; 0 when they make an export. */
static int export_check(const export_args *a, int64_t *from_day,
                        int64_t *to_day) {
  if (!a->data || !a->from || !a->to || !a->out)
    return usage_error("export", "--data, --from, --to and --out are "
                                 "required");
  if (!a->all == !a->ntenants)
    return usage_error("export", "give --tenant T (one or more) or --all");
  if (parse_day(a->from, from_day) || parse_day(a->to, to_day))
    return usage_error("export", "--from/--to: want a day YYYY-MM-DD");
  if (*to_day < *from_day)
    return usage_error("export", "--to is before --from");
  if (strcmp(a->format, "parquet") != 0 && strcmp(a->format, "ndjson") != 0)
    return usage_error("export", "--format: parquet or ndjson");
  if (a->comp && strcmp(a->comp, "zstd") != 0 &&
      strcmp(a->comp, "snappy") != 0 && strcmp(a->comp, "none") != 0)
    return usage_error("export", "--compression: zstd, snappy or none");
  if (a->comp && strcmp(a->format, "ndjson") == 0)
    return usage_error("export", "--compression is for parquet (NDJSON is "
                                 "always gzip)");
  if (a->threads && (strspn(a->threads, "0123456789") != strlen(a->threads) ||
                     atoi(a->threads) < 1 || atoi(a->threads) > 64))
    return usage_error("export", "--threads: a number from 1 to 64");
  int s3 = strncmp(a->out, "s3://", 5) == 0;
  if (s3 && (a->out[5] == '\0' || a->out[5] == '/'))
    return usage_error("export", "--out wants s3://BUCKET[/PREFIX], not '%s'",
                       a->out);
  if (!s3 && (a->s3_endpoint || a->s3_region))
    return usage_error("export", "--s3-endpoint and --s3-region are for an "
                                 "s3:// --out");
  return 0;
}

static int export_run(const export_args *a, int64_t from_day, int64_t to_day) {
  es_options opts;
  es_options_init(&opts);
  opts.data_dir = a->data;
  opts.read_only = 1; /* beside a running es-ingestd */
  es_db *db = NULL;
  int rc = es_open(&opts, &db);
  if (rc != ES_OK)
    return lib_error(rc);
  es_export_options eo;
  es_export_options_init(&eo);
  eo.out_dir = a->out;
  eo.s3_endpoint = a->s3_endpoint;
  eo.s3_region = a->s3_region;
  eo.tenants = a->ntenants ? a->tenants : NULL;
  eo.tenants_count = a->ntenants;
  eo.from_us = from_day * INT64_C(86400000000);
  eo.to_us = (to_day + 1) * INT64_C(86400000000);
  eo.format =
      strcmp(a->format, "ndjson") == 0 ? ES_EXPORT_NDJSON : ES_EXPORT_PARQUET;
  eo.compression = !a->comp || strcmp(a->comp, "zstd") == 0 ? ES_EXPORT_ZSTD
                   : strcmp(a->comp, "snappy") == 0         ? ES_EXPORT_SNAPPY
                                                    : ES_EXPORT_UNCOMPRESSED;
  export_ui ui = {isatty(2), now_us(), 0};
  eo.threads = a->threads ? atoi(a->threads) : 0;
  eo.progress_fn = export_progress;
  eo.progress_ud = &ui;
  es_export_result res;
  int status = 0;
  rc = es_export(db, &eo, &res);
  if (ui.tty)
    fputs("\n", stderr);
  if (rc != ES_OK) {
    status = lib_error(rc);
  } else {
    double secs = (double)(now_us() - ui.start_us) / 1e6;
    printf("exported %" PRIu64 " rows, %" PRIu64 " files, %" PRIu64
           " bytes, %" PRIu64 " partitions in %.2f s\n",
           res.rows, res.files, res.bytes, res.partitions, secs);
  }
  return close_store(db, status);
}

/* esctl export: see export_usage. */
static int cmd_export(int argc, char **argv) {
  export_args a = {.format = "parquet"};
  a.tenants = calloc((size_t)argc + 1, sizeof *a.tenants);
  if (!a.tenants) {
    fprintf(stderr, "esctl: out of memory\n");
    return EXIT_LIB;
  }
  int64_t from_day = 0, to_day = 0;
  int status = export_parse(argc, argv, &a); /* >= 0: done (--help) */
  if (status < 0) {
    status = export_check(&a, &from_day, &to_day);
    if (status == 0)
      status = export_run(&a, from_day, to_day);
  }
  free(a.tenants);
  return status;
}

/* ----------------------------------------------------------------------
 * esctl erase
 * ---------------------------------------------------------------------- */

static const char erase_usage[] =
    "usage: esctl erase --data DIR --tenant T (--user-id U | --anonymous-id A)"
    " [--suppress] [--wait]\n"
    "       esctl erase --data DIR --status ID\n"
    "       esctl erase --data DIR --tenant T (--user-id U | --anonymous-id A)"
    " --unsuppress\n"
    "\n"
    "Erases a person (GDPR Art. 17 / CCPA): every event carrying U or A, or\n"
    "any id linked to it by identify or alias, is hidden from every read at\n"
    "once, then removed from segments, rollups, the WAL and the identity\n"
    "log.  Prints the request's state as JSON; with --wait, runs every stage\n"
    "to the end first and prints the receipt (which names the person only\n"
    "by a salted hash).  Without --wait the remaining stages run the next\n"
    "time a writer runs them (es-ingestd does at start, or 'esctl erase\n"
    "--wait' for another person).  --status ID prints a request's state\n"
    "(read-only: works beside a running es-ingestd).  Needs the store's\n"
    "lock otherwise: stop es-ingestd, or use its POST /v1/privacy/erase.\n"
    "An unknown tenant or id completes with zero events removed.\n"
    "\n"
    "--suppress also drops every later event carrying one of the person's\n"
    "ids (acknowledged, not stored, counted), for good; without it later\n"
    "events are new data and are kept.  --unsuppress lifts the suppression\n"
    "of the person one of whose ids is U or A, and prints {\"lifted\":N}.\n";

typedef struct erase_args {
  const char *data, *tenant, *user_id, *anonymous_id, *status;
  int wait, suppress, unsuppress;
} erase_args;

static int erase_parse(int argc, char **argv, erase_args *a) {
  static const char *const names[] = {"--data", "--tenant", "--user-id",
                                      "--anonymous-id", "--status"};
  const char **slots[] = {&a->data, &a->tenant, &a->user_id, &a->anonymous_id,
                          &a->status};
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      fputs(erase_usage, stdout);
      return 0;
    }
    if (strcmp(arg, "--wait") == 0 || strcmp(arg, "--suppress") == 0 ||
        strcmp(arg, "--unsuppress") == 0) {
      *(arg[2] == 'w'   ? &a->wait
        : arg[2] == 's' ? &a->suppress
                        : &a->unsuppress) = 1;
      continue;
    }
    size_t k = 0;
    const char *v = NULL;
    int status = esctl_flag_value("erase", argc, argv, &i, names,
                                  sizeof names / sizeof names[0], &k, &v);
    if (status)
      return status;
    *slots[k] = v;
  }
  if (!a->data)
    return usage_error("erase", "--data is required");
  if (a->status)
    return a->tenant || a->user_id || a->anonymous_id || a->wait ||
                   a->suppress || a->unsuppress
               ? usage_error("erase", "--status takes only --data")
               : -1;
  if (!a->tenant)
    return usage_error("erase", "--tenant is required");
  if (!a->user_id == !a->anonymous_id)
    return usage_error("erase", "give exactly one of --user-id and "
                                "--anonymous-id");
  if (a->unsuppress && (a->suppress || a->wait))
    return usage_error("erase", "--unsuppress takes no --suppress or --wait");
  return check_tenant("erase", a->tenant) ? EXIT_USAGE : -1;
}

/* esctl erase: es_erase_submit (and es_erase_run with --wait), then the
 * request's state; or the state of --status ID. */
static int cmd_erase(int argc, char **argv) {
  erase_args a;
  memset(&a, 0, sizeof(a));
  int status = erase_parse(argc, argv, &a);
  if (status >= 0)
    return status;
  es_db *db;
  if ((status = open_store(a.data, a.status ? OPEN_READ : OPEN_WRITE, &db)) !=
      0)
    return status;
  char id[ES_ERASE_ID_MAX];
  int rc = ES_OK;
  if (a.unsuppress) {
    es_erase_options o;
    es_erase_options_init(&o);
    o.tenant = a.tenant;
    o.user_id = a.user_id;
    o.anonymous_id = a.anonymous_id;
    size_t lifted = 0;
    rc = es_erase_unsuppress(db, &o, &lifted);
    if (rc == ES_OK)
      printf("{\"lifted\":%zu}\n", lifted);
    status = rc == ES_OK       ? 0
             : rc == ES_EINVAL ? print_json(rc, NULL, "erase")
                               : lib_error(rc);
    return finish_stdout(close_store(db, status));
  }
  if (!a.status) {
    es_erase_options o;
    es_erase_options_init(&o);
    o.tenant = a.tenant;
    o.user_id = a.user_id;
    o.anonymous_id = a.anonymous_id;
    o.suppress = a.suppress;
    rc = es_erase_submit(db, &o, id);
    if (rc == ES_OK && a.wait)
      rc = es_erase_run(db, a.tenant);
  }
  char *json = NULL;
  if (rc == ES_OK)
    rc = es_erase_status(db, a.status ? a.status : id, &json);
  status = print_json(rc, json, "erase");
  return finish_stdout(close_store(db, status));
}

/* ----------------------------------------------------------------------
 * cluster status, cluster drain
 * ---------------------------------------------------------------------- */

static const char *const cluster_usage =
    "usage: esctl cluster status --from s3://BUCKET[/PREFIX]\n"
    "                     [--s3-endpoint URL] [--s3-region R]\n"
    "       esctl cluster drain --url http://NODE:PORT --admin-token-file F\n"
    "\n"
    "status reads every tenant lease of a cluster's bucket (the --replica of\n"
    "its es-ingestd --node nodes; docs/SCALING.md) and prints one line per\n"
    "tenant: tenant, node, lease generation, state (held: the lease runs\n"
    "for the given seconds; expired: its holder stopped renewing, the next\n"
    "node sent the tenant takes it; released: handed over), and the node\n"
    "that asked for it, if any.  Needs no node to be running.\n"
    "\n"
    "drain hands every tenant of one running node over, for a planned\n"
    "removal: it calls the node's POST /v1/admin/cluster/drain (F holds one\n"
    "of its --admin-tokens on its first line).  The node takes no tenant\n"
    "from then on (503 + Retry-After: the balancer and SDKs retry\n"
    "elsewhere), seals, uploads and releases each tenant it holds, and the\n"
    "next node the balancer sends a tenant to takes it.  Prints 'released\n"
    "TENANT' per tenant and 'failed TENANT: WHY' per failure; exit 0 only if\n"
    "every tenant was released.  Set the node to maintenance in HAProxy\n"
    "first, so that no new request reaches it:\n"
    "  echo 'set server ingest_nodes/NODE state maint' | \\\n"
    "    socat stdio /run/haproxy/admin.sock\n"
    "then stop its processes.  scripts/cluster.sh drain DIR NODE does all\n"
    "three on the loopback cluster.\n";

static int cluster_line(void *ud, const es_cluster_lease *l) {
  int64_t now = *(const int64_t *)ud;
  if (l->expires_us == 0)
    printf("%s %s generation=%" PRIu64 " released", l->tenant, l->owner,
           l->generation);
  else if (l->expires_us > now)
    printf("%s %s generation=%" PRIu64 " held %.1fs", l->tenant, l->owner,
           l->generation, (double)(l->expires_us - now) / 1e6);
  else
    printf("%s %s generation=%" PRIu64 " expired %.1fs ago", l->tenant,
           l->owner, l->generation, (double)(now - l->expires_us) / 1e6);
  if (l->want[0])
    printf(" wanted-by=%s", l->want);
  putchar('\n');
  return 0;
}

static size_t drain_body(char *p, size_t size, size_t n, void *ud) {
  return seg_buf_put(ud, p, size * n) ? 0 : size * n;
}

/* Prints a drain answer's released and failed tenants; 0 when it was
 * {"success":true...}. */
static int drain_print(const seg_buf *b) {
  char *text = malloc(b->len + 1);
  if (!text)
    return -1;
  memcpy(text, b->data, b->len);
  text[b->len] = '\0';
  yajl_val root = yajl_tree_parse(text, NULL, 0);
  free(text);
  static const char *rel[] = {"released", NULL}, *bad[] = {"failed", NULL},
                    *ok[] = {"success", NULL}, *err[] = {"error", NULL},
                    *tn[] = {"tenant", NULL}, *tk[] = {"still_taking", NULL};
  yajl_val r = yajl_tree_get(root, rel, yajl_t_array);
  yajl_val f = yajl_tree_get(root, bad, yajl_t_array);
  yajl_val e = yajl_tree_get(root, err, yajl_t_string);
  yajl_val t = yajl_tree_get(root, tk, yajl_t_number);
  for (size_t i = 0; r && i < r->u.array.len; i++)
    if (YAJL_IS_STRING(r->u.array.values[i]))
      printf("released %s\n", YAJL_GET_STRING(r->u.array.values[i]));
  for (size_t i = 0; f && i < f->u.array.len; i++) {
    yajl_val ft = yajl_tree_get(f->u.array.values[i], tn, yajl_t_string);
    yajl_val fe = yajl_tree_get(f->u.array.values[i], err, yajl_t_string);
    printf("failed %s: %s\n", ft ? YAJL_GET_STRING(ft) : "?",
           fe ? YAJL_GET_STRING(fe) : "?");
  }
  if (t && YAJL_IS_INTEGER(t) && YAJL_GET_INTEGER(t) > 0)
    printf("failed: %lld tenant(s) were still being taken\n",
           (long long)YAJL_GET_INTEGER(t));
  if (e)
    fprintf(stderr, "esctl cluster drain: %s\n", YAJL_GET_STRING(e));
  int good = YAJL_IS_TRUE(yajl_tree_get(root, ok, yajl_t_true));
  int parsed = root != NULL;
  yajl_tree_free(root);
  return parsed ? !good : -1;
}

/* esctl cluster drain: POST /v1/admin/cluster/drain on one node. */
static int cluster_drain(int argc, char **argv) {
  const char *url = NULL, *token_file = NULL;
  for (int i = 1; i < argc; i++) {
    const char **to = strcmp(argv[i], "--url") == 0                ? &url
                      : strcmp(argv[i], "--admin-token-file") == 0 ? &token_file
                                                                   : NULL;
    if (strcmp(argv[i], "--help") == 0) {
      fputs(cluster_usage, stdout);
      return 0;
    }
    if (!to)
      return usage_error("cluster", "unknown flag '%s'", argv[i]);
    if (i + 1 >= argc)
      return usage_error("cluster", "%s wants a value", argv[i]);
    *to = argv[++i];
  }
  if (!url || !token_file)
    return usage_error("cluster", "drain wants --url http://NODE:PORT and "
                                  "--admin-token-file F");
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
    return usage_error("cluster", "--url wants http://HOST:PORT, not '%s'",
                       url);
  char token[256] = "";
  FILE *tf = fopen(token_file, "r");
  if (!tf || !fgets(token, sizeof token, tf)) {
    fprintf(stderr, "esctl cluster drain: cannot read %s: %s\n", token_file,
            tf ? "empty" : strerror(errno));
    if (tf)
      fclose(tf);
    return EXIT_LIB;
  }
  fclose(tf);
  token[strcspn(token, "\r\n")] = '\0';
  if (token[0] == '\0') {
    fprintf(stderr, "esctl cluster drain: %s: no token on its first line\n",
            token_file);
    return EXIT_LIB;
  }
  size_t n = strlen(url);
  char endpoint[2048], auth[300];
  snprintf(endpoint, sizeof endpoint, "%.*s/v1/admin/cluster/drain",
           (int)(n && url[n - 1] == '/' ? n - 1 : n), url);
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
  CURL *curl = curl_easy_init();
  struct curl_slist *headers = curl_slist_append(NULL, auth);
  seg_buf body;
  seg_buf_init(&body);
  if (!curl || !headers) {
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);
    return fprintf(stderr, "esctl cluster drain: out of memory\n"), EXIT_LIB;
  }
  curl_easy_setopt(curl, CURLOPT_URL, endpoint);
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, drain_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 3600L); /* 30 s per tenant max */
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  CURLcode cc = curl_easy_perform(curl);
  long code = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  int status = EXIT_LIB;
  if (cc != CURLE_OK) {
    fprintf(stderr, "esctl cluster drain: %s: %s\n", endpoint,
            curl_easy_strerror(cc));
  } else {
    int r = drain_print(&body);
    if (r < 0)
      fprintf(stderr, "esctl cluster drain: HTTP %ld, not a drain answer\n",
              code);
    else if (code == 200 && r == 0)
      status = 0;
    else if (code == 401)
      fprintf(stderr, "esctl cluster drain: HTTP 401: the node refused the "
                      "admin token\n");
    else
      fprintf(stderr,
              "esctl cluster drain: HTTP %ld: not every tenant was "
              "released\n",
              code);
  }
  seg_buf_free(&body);
  return finish_stdout(status);
}

static int cmd_cluster(int argc, char **argv) {
  if (argc >= 1 &&
      (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
    fputs(cluster_usage, stdout);
    return 0;
  }
  if (argc >= 1 && strcmp(argv[0], "drain") == 0)
    return cluster_drain(argc, argv);
  if (argc < 1 || strcmp(argv[0], "status") != 0)
    return usage_error("cluster", "wants 'status' or 'drain', not '%s'",
                       argc ? argv[0] : "");
  const char *from = NULL, *endpoint = NULL, *region = NULL;
  for (int i = 1; i < argc; i++) {
    const char **to = strcmp(argv[i], "--from") == 0          ? &from
                      : strcmp(argv[i], "--s3-endpoint") == 0 ? &endpoint
                      : strcmp(argv[i], "--s3-region") == 0   ? &region
                                                              : NULL;
    if (strcmp(argv[i], "--help") == 0) {
      fputs(cluster_usage, stdout);
      return 0;
    }
    if (!to)
      return usage_error("cluster", "unknown flag '%s'", argv[i]);
    if (i + 1 >= argc)
      return usage_error("cluster", "%s wants a value", argv[i]);
    *to = argv[++i];
  }
  if (!from)
    return usage_error("cluster", "--from s3://BUCKET[/PREFIX] is required");
  if (strncmp(from, "s3://", 5) != 0 || from[5] == '\0' || from[5] == '/')
    return usage_error("cluster", "--from wants s3://BUCKET[/PREFIX], not '%s'",
                       from);
  es_replica_config cfg;
  es_replica_config_init(&cfg);
  cfg.url = from;
  cfg.endpoint = endpoint;
  cfg.region = region;
  es_replica *rep = NULL;
  int rc = es_replica_s3_new(&cfg, &rep);
  if (rc != ES_OK)
    return lib_error(rc);
  int64_t now = now_us();
  rc = es_cluster_leases(rep, cluster_line, &now);
  es_replica_free(rep);
  return rc == ES_OK ? 0 : lib_error(rc);
}

static command commands[] = {
    {"append",
     "usage: esctl append --data DIR --tenant T [--batch N]\n"
     "\n"
     "Reads Segment events, one JSON object per line, from stdin and\n"
     "appends them in batches of N (default 100; a partial batch goes as\n"
     "soon as stdin has nothing more to read).  After each batch is\n"
     "durable, prints 'durable <events so far>'.  Blank lines are skipped.\n"
     "A bad line (invalid JSON or event, or longer than 1 MiB) stops the\n"
     "run with exit status 2 and 'line K: why' on stderr; the events\n"
     "before it are appended first.\n",
     cmd_append,
     {{"--data", 1, NULL}, {"--tenant", 1, NULL}, {"--batch", 0, NULL}}},
    {"scan",
     "usage: esctl scan --data DIR --tenant T [--from TIME] [--to TIME]\n"
     "                  [--person ID]\n"
     "\n"
     "Prints the tenant's events, one JSON object per line, in event-time\n"
     "order.  TIME is ISO 8601 (2026-11-24, 2026-11-24T10:00:00.5Z,\n"
     "...+02:00); the range is half-open: FROM <= timestamp < TO.\n"
     "--person keeps events whose userId or anonymousId is ID.\n",
     cmd_scan,
     {{"--data", 1, NULL},
      {"--tenant", 1, NULL},
      {"--from", 0, NULL},
      {"--to", 0, NULL},
      {"--person", 0, NULL}}},
    {"query",
     "usage: esctl query --data DIR --tenant T --spec FILE\n"
     "\n"
     "Answers the JSON query spec in FILE ('-' for stdin) over tenant T's\n"
     "events and prints the result JSON on one line, e.g.\n"
     "  {\"from\":\"2026-11-24T00:00:00Z\",\"bucket\":\"hour\",\n"
     "   \"groupBy\":[\"path\"],\"aggregate\":[\"count\",\"uniques\"]}\n"
     "docs/QUERY.md describes every field.  A bad spec exits with status 2\n"
     "and a message naming the field.\n",
     cmd_query,
     {{"--data", 1, NULL}, {"--tenant", 1, NULL}, {"--spec", 1, NULL}}},
    {"timeline",
     "usage: esctl timeline --data DIR --tenant T --person ID [--limit N]\n"
     "\n"
     "Prints the latest N events (default 20, at most 100000) of the person\n"
     "ID, newest first, one JSON object per line as esctl scan prints them.\n"
     "The person's events are those whose userId or anonymousId is ID or an\n"
     "id linked to it by identify and alias events (docs/QUERY.md).\n",
     cmd_timeline,
     {{"--data", 1, NULL},
      {"--tenant", 1, NULL},
      {"--person", 1, NULL},
      {"--limit", 0, NULL}}},
    {"flush",
     "usage: esctl flush --data DIR [--tenant T]\n"
     "\n"
     "Seals the memtable of tenant T (of every tenant without --tenant)\n"
     "into segments, so the rows no longer need the WAL.\n",
     cmd_flush,
     {{"--data", 1, NULL}, {"--tenant", 0, NULL}}},
    {"rules",
     "usage: esctl rules --data DIR --tenant T [--at TIME]\n"
     "\n"
     "Prints the tenant's rules (behaviour segments) as JSON, each with its\n"
     "number of members at TIME (default: now).\n",
     cmd_rules,
     {{"--data", 1, NULL}, {"--tenant", 1, NULL}, {"--at", 0, NULL}}},
    {"rule-put",
     "usage: esctl rule-put --data DIR --tenant T --rule FILE\n"
     "\n"
     "Creates or replaces the rule in FILE ('-' for stdin), e.g.\n"
     "  {\"name\":\"pricing-3x\",\"match\":{\"type\":\"page\",\n"
     "   \"path\":\"/pricing\"},\"atLeast\":3,\"within\":\"7d\"}\n"
     "Its counters start from the events already stored.  A bad rule\n"
     "exits with status 2 and a message naming the field.\n",
     cmd_rule_put,
     {{"--data", 1, NULL}, {"--tenant", 1, NULL}, {"--rule", 1, NULL}}},
    {"rule-delete",
     "usage: esctl rule-delete --data DIR --tenant T --rule NAME\n"
     "\n"
     "Deletes the rule NAME.\n",
     cmd_rule_delete,
     {{"--data", 1, NULL}, {"--tenant", 1, NULL}, {"--rule", 1, NULL}}},
    {"members",
     "usage: esctl members --data DIR --tenant T --rule NAME [--at TIME]\n"
     "                     [--person ID]\n"
     "\n"
     "Prints the members of rule NAME at TIME (default: now), one visitor\n"
     "id per line, sorted.  With --person, prints 'yes' or 'no' for ID.\n",
     cmd_members,
     {{"--data", 1, NULL},
      {"--tenant", 1, NULL},
      {"--rule", 1, NULL},
      {"--at", 0, NULL},
      {"--person", 0, NULL}}},
    {"rollup-rebuild",
     "usage: esctl rollup-rebuild --data DIR --tenant T [--from TIME]\n"
     "                            [--to TIME]\n"
     "\n"
     "Derives the rollups (per-minute counts and sketches) of every segment\n"
     "of T holding events in [FROM, TO) again from the stored rows, and\n"
     "rewrites the rollup files that are missing, damaged or different.\n"
     "Prints what it found; 'differing' should always be 0.\n",
     cmd_rollup_rebuild,
     {{"--data", 1, NULL},
      {"--tenant", 1, NULL},
      {"--from", 0, NULL},
      {"--to", 0, NULL}}},
    {"verify",
     "usage: esctl verify --data DIR\n"
     "\n"
     "Checks every checksum of every file.  Prints each problem as\n"
     "'PATH:OFFSET: what' and exits 1 if there is any; else prints a\n"
     "summary line starting with 'ok:'.  Needs no lock on DIR.\n",
     cmd_verify,
     {{"--data", 1, NULL}}},
    {"inspect",
     "usage: esctl inspect --data DIR\n"
     "\n"
     "Lists each tenant's segments (file, rows, bytes, time range) with\n"
     "totals and, when it is replicated, what its REPLICA record says is\n"
     "in S3, then the WAL files (shard, records, events, bytes).  Rows\n"
     "not yet flushed appear only in the WAL.  Needs no lock on DIR.\n",
     cmd_inspect,
     {{"--data", 1, NULL}}},
    {"export", export_usage, NULL, {{NULL, 0, NULL}}, cmd_export},
    {"erase", erase_usage, NULL, {{NULL, 0, NULL}}, cmd_erase},
    {"cluster", cluster_usage, NULL, {{NULL, 0, NULL}}, cmd_cluster},
    {"import", NULL, NULL, {{NULL, 0, NULL}}, esctl_import},
    {"reconcile", NULL, NULL, {{NULL, 0, NULL}}, esctl_reconcile},
    {"restore",
     "usage: esctl restore --from s3://BUCKET[/PREFIX] --data DIR\n"
     "                     [--tenant T ...] [--s3-endpoint URL]\n"
     "                     [--s3-region R]\n"
     "\n"
     "Rebuilds DIR from the replica an es-ingestd --replica (or any store\n"
     "opened with es_options.replica) keeps: every tenant into a new DIR,\n"
     "or the named tenants (each --tenant once) into a new or existing\n"
     "store that no process has open.  Downloads each tenant's newest\n"
     "manifest and the files it names, checks every size and checksum,\n"
     "then runs 'esctl verify' on DIR.  Shows progress on a terminal.\n"
     "Credentials, region and endpoint follow the AWS conventions\n"
     "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,\n"
     "AWS_REGION, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL); the flags win.\n"
     "A missing or damaged object is an error naming its key.  Exit 0 only\n"
     "when DIR passes verify.  Events that were only in the WAL of the\n"
     "lost node are not in the replica (see docs/REPLICATION.md).\n",
     cmd_restore,
     {{"--from", 1, NULL, 0},
      {"--data", 1, NULL, 0},
      {"--tenant", 0, NULL, 1},
      {"--s3-endpoint", 0, NULL, 0},
      {"--s3-region", 0, NULL, 0}}},
};

/* Dispatches to the subcommand; see top_usage. */
int main(int argc, char **argv) {
  if (argc < 2)
    return usage_error(NULL, "missing command");
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    fputs(top_usage, stdout);
    return finish_stdout(0);
  }
  if (strcmp(argv[1], "--version") == 0) {
    int v = es_version();
    printf("esctl %d.%d.%d (libeventstore %d.%d.%d, format %d)\n",
           ES_VERSION_MAJOR, ES_VERSION_MINOR, ES_VERSION_PATCH, v / 10000,
           v / 100 % 100, v % 100, ES_FORMAT_VERSION);
    return finish_stdout(0);
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    command *cmd = &commands[i];
    if (strcmp(argv[1], cmd->name) != 0)
      continue;
    if (cmd->run_argv)
      return finish_stdout(cmd->run_argv(argc - 2, argv + 2));
    int status = parse_flags(cmd, argc - 2, argv + 2);
    if (status >= 0)
      return finish_stdout(status);
    return cmd->run(cmd->flags);
  }
  if (argv[1][0] == '-')
    return usage_error(NULL, "unknown flag '%s'", argv[1]);
  return usage_error(NULL, "unknown command '%s'", argv[1]);
}
