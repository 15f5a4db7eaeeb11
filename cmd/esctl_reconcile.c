/*
 * esctl_reconcile.c -- `esctl reconcile`: per tenant, time bucket and
 * event, this store's counts against the legacy system's
 * (docs/MIGRATION.md, "Reconcile").
 *
 * The legacy side is a CSV with the header tenant,bucket,event,count (any
 * column order; more columns are ignored), as the SQL in MIGRATION.md
 * writes it.  The store's side is es_query per tenant with
 * {"bucket":B,"groupBy":["type","event"]} on a read-only handle (so it
 * runs beside es-ingestd).  "event" means the event name for track
 * events and the type for every other (page, identify, ...): the SQL
 * uses the same rule.
 *
 * A row differs when |store - legacy| > tolerance% of the legacy count
 * (a row missing on one side counts as 0 there, so it always differs
 * unless the other side is 0 too).  Rows differing are printed as CSV
 * (tenant,bucket,event,legacy,store), then a summary; exit 1 if any.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "common/legacy_csv.h"
#include "common/segment_json.h"
#include "esctl_migrate.h"
#include "eventstore.h"

static const char reconcile_usage[] =
    "usage: esctl reconcile --data DIR --legacy counts.csv\n"
    "                       [--tolerance PCT] [--by day|hour]\n"
    "                       [--from TIME] [--to TIME]\n"
    "\n"
    "Compares, per tenant, UTC day (or hour) and event, the number of\n"
    "events in DIR with the legacy system's counts.csv (header\n"
    "tenant,bucket,event,count; bucket an ISO 8601 day or time; event the\n"
    "track event's name, else the type: page, identify, ...).  Tenants of\n"
    "either side are compared; --from/--to (ISO 8601, half-open) limit both\n"
    "sides to a time range.  A row differs when the counts are more than\n"
    "PCT percent (default 0) of the legacy count apart; a row present on\n"
    "one side only differs.  Prints the differing rows as CSV\n"
    "(tenant,bucket,event,legacy,store) and a summary line.  Opens the\n"
    "store read-only: works beside a running es-ingestd.\n"
    "Exit status: 0 all rows agree, 1 some differ (or an error), 2 bad\n"
    "usage or a bad counts.csv.\n";

typedef struct rc_row {
  char *tenant, *event;
  int64_t bucket_us;
  int64_t legacy, store;
} rc_row;

typedef struct rc_run {
  const char *data, *legacy_path, *by, *from, *to;
  double tolerance_pct;
  int64_t bucket_us, from_us, to_us;
  rc_row *rows;
  size_t n, cap;
  char **tenants;
  size_t ntenants, tenants_cap;
} rc_run;

static char *dup_n(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = 0;
  }
  return p;
}

/* Adds count to the row (tenant, bucket, event) of one side. */
static int add_count(rc_run *r, const char *tenant, size_t tn, int64_t bucket,
                     const char *event, size_t en, int64_t count, int legacy) {
  for (size_t i = r->n; i-- > 0;) { /* recent rows first: input is grouped */
    rc_row *w = &r->rows[i];
    if (w->bucket_us == bucket && strlen(w->tenant) == tn &&
        memcmp(w->tenant, tenant, tn) == 0 && strlen(w->event) == en &&
        memcmp(w->event, event, en) == 0) {
      *(legacy ? &w->legacy : &w->store) += count;
      return 0;
    }
    if (r->n - i > 4096)
      break; /* far back: a new row (duplicates are summed when sorting) */
  }
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 1024;
    rc_row *rows = realloc(r->rows, cap * sizeof *rows);
    if (!rows)
      return -1;
    r->rows = rows;
    r->cap = cap;
  }
  rc_row *w = &r->rows[r->n];
  w->tenant = dup_n(tenant, tn);
  w->event = dup_n(event, en);
  w->bucket_us = bucket;
  w->legacy = legacy ? count : 0;
  w->store = legacy ? 0 : count;
  if (!w->tenant || !w->event) {
    free(w->tenant);
    free(w->event);
    return -1;
  }
  r->n++;
  return 0;
}

static int add_tenant(rc_run *r, const char *t, size_t n) {
  for (size_t i = 0; i < r->ntenants; i++)
    if (strlen(r->tenants[i]) == n && memcmp(r->tenants[i], t, n) == 0)
      return 0;
  if (r->ntenants == r->tenants_cap) {
    size_t cap = r->tenants_cap ? r->tenants_cap * 2 : 64;
    char **p = realloc(r->tenants, cap * sizeof *p);
    if (!p)
      return -1;
    r->tenants = p;
    r->tenants_cap = cap;
  }
  if (!(r->tenants[r->ntenants] = dup_n(t, n)))
    return -1;
  r->ntenants++;
  return 0;
}

static int64_t floor_bucket(int64_t us, int64_t b) {
  return us >= 0 ? us - us % b : us - ((us % b) + b) % b;
}

/* --- the legacy CSV ---------------------------------------------------- */

static int find_col(const csv_rec *h, const char *name) {
  for (size_t i = 0; i < h->count; i++)
    if (h->f[i].len == strlen(name) &&
        memcmp(h->text.data + h->f[i].off, name, h->f[i].len) == 0)
      return (int)i;
  return -1;
}

/* One data record of counts.csv into the legacy side.  0, or -1 with
 * why. */
static int legacy_record(rc_run *r, const csv_rec *rec, const int col[4],
                         size_t header_count, char *why, size_t why_size) {
  const char *v[4];
  size_t n[4];
  if (rec->count != header_count) {
    snprintf(why, why_size, "%zu fields where the header has %zu", rec->count,
             header_count);
    return -1;
  }
  for (int k = 0; k < 4; k++) {
    v[k] = rec->text.data + rec->f[col[k]].off;
    n[k] = rec->f[col[k]].len;
  }
  char tmp[64];
  int64_t ts, count;
  snprintf(tmp, sizeof tmp, "%.*s", (int)(n[1] < 63 ? n[1] : 63), v[1]);
  if (n[1] >= 63 || seg_iso8601_parse(tmp, &ts) != 0) {
    snprintf(why, why_size, "bucket '%s' is not an ISO 8601 day or time", tmp);
    return -1;
  }
  snprintf(tmp, sizeof tmp, "%.*s", (int)(n[3] < 63 ? n[3] : 63), v[3]);
  char *end;
  errno = 0;
  count = strtoll(tmp, &end, 10);
  if (n[3] == 0 || n[3] >= 63 || *end || errno || count < 0) {
    snprintf(why, why_size, "count '%s' is not a whole number >= 0", tmp);
    return -1;
  }
  if (n[0] == 0) {
    snprintf(why, why_size, "empty tenant");
    return -1;
  }
  if (floor_bucket(ts, r->bucket_us) != ts) {
    snprintf(why, why_size,
             "bucket '%.*s' is not the start of a UTC %s (--by %s)",
             (int)(n[1] < 40 ? n[1] : 40), v[1], r->by, r->by);
    return -1;
  }
  if (ts < r->from_us || ts >= r->to_us)
    return 0;
  if (add_tenant(r, v[0], n[0]) != 0 ||
      add_count(r, v[0], n[0], floor_bucket(ts, r->bucket_us), v[2], n[2],
                count, 1) != 0) {
    snprintf(why, why_size, "out of memory");
    return -1;
  }
  return 0;
}

/* Reads counts.csv whole.  0, or 2 (printed). */
static int read_legacy(rc_run *r) {
  FILE *f = fopen(r->legacy_path, "rb");
  if (!f)
    return migrate_usage("reconcile", "--legacy %s: %s", r->legacy_path,
                         strerror(errno));
  seg_buf text;
  seg_buf_init(&text);
  char chunk[65536];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
    if (seg_buf_put(&text, chunk, got) != 0)
      break;
  int bad = ferror(f) || !feof(f);
  fclose(f);
  csv_rec header, rec;
  csv_rec_init(&header);
  csv_rec_init(&rec);
  char why[CSV_ERR_SIZE] = "";
  size_t at = 0, used;
  uint64_t line = 1;
  int status = 0, col[4];
  if (bad) {
    snprintf(why, sizeof why, "read error");
  } else if (csv_record(text.data ? text.data : "", text.len, 1, &header, &used,
                        why, sizeof why) != 1) {
    if (!why[0])
      snprintf(why, sizeof why,
               "empty file: want the header "
               "tenant,bucket,event,count");
  } else {
    static const char *const names[4] = {"tenant", "bucket", "event", "count"};
    at = used;
    line += header.lines;
    for (int k = 0; k < 4 && !why[0]; k++)
      if ((col[k] = find_col(&header, names[k])) < 0)
        snprintf(why, sizeof why,
                 "the header has no column '%s' (want "
                 "tenant,bucket,event,count)",
                 names[k]);
  }
  if (why[0]) {
    fprintf(stderr, "esctl reconcile: %s:%" PRIu64 ": %s\n", r->legacy_path,
            line, why);
    status = 2;
  }
  while (status == 0 && at < text.len) {
    int rc = csv_record(text.data + at, text.len - at, 1, &rec, &used, why,
                        sizeof why);
    if (rc == 0)
      break;
    if (rc == 1 && !(rec.count == 1 && rec.f[0].len == 0) &&
        legacy_record(r, &rec, col, header.count, why, sizeof why) != 0)
      rc = -1;
    if (rc < 0) {
      fprintf(stderr, "esctl reconcile: %s:%" PRIu64 ": %s\n", r->legacy_path,
              line, why);
      status = 2;
    }
    for (size_t k = 0; k < used; k++)
      line += text.data[at + k] == '\n';
    at += used;
  }
  csv_rec_free(&header);
  csv_rec_free(&rec);
  seg_buf_free(&text);
  return status;
}

/* --- the store --------------------------------------------------------- */

static int collect_tenant(void *ud, const es_file_info *info) {
  rc_run *r = ud;
  if (info->tenant && add_tenant(r, info->tenant, strlen(info->tenant)) != 0)
    return ES_ENOMEM;
  return 0;
}

/* The store's counts of one tenant.  0 or 1 (printed). */
static int store_counts(rc_run *r, es_db *db, const char *tenant) {
  char spec[256], from[SEG_ISO8601_SIZE] = "", to[SEG_ISO8601_SIZE] = "";
  if (r->from)
    seg_iso8601_format(r->from_us, from, sizeof from);
  if (r->to)
    seg_iso8601_format(r->to_us, to, sizeof to);
  snprintf(spec, sizeof spec,
           "{\"bucket\":\"%s\",\"groupBy\":[\"type\",\"event\"]%s%s%s%s%s%s}",
           r->by, r->from ? ",\"from\":\"" : "", from, r->from ? "\"" : "",
           r->to ? ",\"to\":\"" : "", to, r->to ? "\"" : "");
  char *json = NULL;
  int rc = es_query(db, tenant, spec, &json);
  if (rc == ES_ETENANT)
    return 0; /* a legacy tenant id the store cannot hold: no rows here */
  if (rc != ES_OK)
    return migrate_lib_error(rc);
  char yerr[128];
  yajl_val root = yajl_tree_parse(json, yerr, sizeof yerr);
  es_free(json);
  const char *path_rows[] = {"rows", NULL};
  yajl_val rows = root ? yajl_tree_get(root, path_rows, yajl_t_array) : NULL;
  int status = rows ? 0 : 1;
  for (size_t i = 0; rows && i < rows->u.array.len && status == 0; i++) {
    yajl_val row = rows->u.array.values[i];
    const char *pb[] = {"bucket", NULL}, *pt[] = {"type", NULL},
               *pe[] = {"event", NULL}, *pc[] = {"count", NULL};
    const char *bucket = YAJL_GET_STRING(yajl_tree_get(row, pb, yajl_t_string));
    const char *type = YAJL_GET_STRING(yajl_tree_get(row, pt, yajl_t_string));
    yajl_val ev = yajl_tree_get(row, pe, yajl_t_string);
    yajl_val cnt = yajl_tree_get(row, pc, yajl_t_number);
    int64_t ts;
    if (!bucket || !type || !cnt || seg_iso8601_parse(bucket, &ts) != 0) {
      status = 1;
      break;
    }
    const char *event =
        strcmp(type, "track") == 0 && ev ? YAJL_GET_STRING(ev) : type;
    if (add_count(r, tenant, strlen(tenant), ts, event, strlen(event),
                  YAJL_GET_INTEGER(cnt), 0) != 0)
      status = 1;
  }
  if (status)
    fprintf(stderr, "esctl reconcile: tenant %s: unexpected query result\n",
            tenant);
  yajl_tree_free(root);
  return status;
}

/* --- the comparison ---------------------------------------------------- */

static int row_cmp(const void *a, const void *b) {
  const rc_row *x = a, *y = b;
  int c = strcmp(x->tenant, y->tenant);
  if (c)
    return c;
  if (x->bucket_us != y->bucket_us)
    return x->bucket_us < y->bucket_us ? -1 : 1;
  return strcmp(x->event, y->event);
}

/* A CSV field, quoted when it needs to be. */
static void put_csv(const char *s) {
  if (strpbrk(s, ",\"\r\n") == NULL) {
    fputs(s, stdout);
    return;
  }
  putchar('"');
  for (; *s; s++) {
    if (*s == '"')
      putchar('"');
    putchar(*s);
  }
  putchar('"');
}

static void put_bucket(const rc_run *r, int64_t us) {
  char buf[SEG_ISO8601_SIZE];
  seg_iso8601_format(us, buf, sizeof buf);
  if (r->bucket_us == 86400000000LL)
    buf[10] = 0; /* YYYY-MM-DD */
  else
    strcpy(buf + 19, "Z"); /* YYYY-MM-DDTHH:MM:SSZ */
  fputs(buf, stdout);
}

static int compare(rc_run *r) {
  if (r->n > 1)
    qsort(r->rows, r->n, sizeof *r->rows, row_cmp);
  size_t out = 0; /* merge rows with equal keys (the scan window above) */
  for (size_t i = 0; i < r->n; i++) {
    if (out > 0 && row_cmp(&r->rows[out - 1], &r->rows[i]) == 0) {
      r->rows[out - 1].legacy += r->rows[i].legacy;
      r->rows[out - 1].store += r->rows[i].store;
      free(r->rows[i].tenant);
      free(r->rows[i].event);
    } else {
      r->rows[out++] = r->rows[i];
    }
  }
  r->n = out;
  int64_t legacy_total = 0, store_total = 0;
  size_t differ = 0, only_legacy = 0, only_store = 0;
  for (size_t i = 0; i < r->n; i++) {
    const rc_row *w = &r->rows[i];
    legacy_total += w->legacy;
    store_total += w->store;
    double diff = (double)(w->store > w->legacy ? w->store - w->legacy
                                                : w->legacy - w->store);
    if (diff <= r->tolerance_pct / 100.0 * (double)w->legacy)
      continue;
    if (differ++ == 0)
      puts("tenant,bucket,event,legacy,store");
    only_legacy += w->store == 0;
    only_store += w->legacy == 0;
    put_csv(w->tenant);
    putchar(',');
    put_bucket(r, w->bucket_us);
    putchar(',');
    put_csv(w->event);
    printf(",%" PRId64 ",%" PRId64 "\n", w->legacy, w->store);
  }
  printf("reconcile: %zu tenants, %zu rows (%s, event): %zu differ beyond "
         "%g%% (%zu only in legacy, %zu only in the store); events: legacy "
         "%" PRId64 ", store %" PRId64 "\n",
         r->ntenants, r->n, r->by, differ, r->tolerance_pct, only_legacy,
         only_store, legacy_total, store_total);
  return differ ? 1 : 0;
}

/* --- flags ------------------------------------------------------------- */

static int reconcile_parse(int argc, char **argv, rc_run *r) {
  static const char *const names[] = {"--data", "--legacy", "--tolerance",
                                      "--by",   "--from",   "--to"};
  const char *tol = NULL;
  const char **slots[] = {&r->data, &r->legacy_path, &tol,
                          &r->by,   &r->from,        &r->to};
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      fputs(reconcile_usage, stdout);
      return 0;
    }
    size_t k = 0;
    const char *v = NULL;
    int status = esctl_flag_value("reconcile", argc, argv, &i, names,
                                  sizeof names / sizeof names[0], &k, &v);
    if (status)
      return status;
    *slots[k] = v;
  }
  if (!r->data || !r->legacy_path)
    return migrate_usage("reconcile", "--data and --legacy are required");
  if (!r->by)
    r->by = "day";
  if (strcmp(r->by, "day") != 0 && strcmp(r->by, "hour") != 0)
    return migrate_usage("reconcile", "--by wants day or hour, not '%s'",
                         r->by);
  r->bucket_us = r->by[0] == 'd' ? 86400000000LL : 3600000000LL;
  if (tol) {
    char *end;
    r->tolerance_pct = strtod(tol, &end);
    if (end == tol || *end || !(r->tolerance_pct >= 0) ||
        r->tolerance_pct > 100)
      return migrate_usage("reconcile", "--tolerance wants 0..100, not '%s'",
                           tol);
  }
  r->from_us = INT64_MIN;
  r->to_us = INT64_MAX;
  if ((r->from && seg_iso8601_parse(r->from, &r->from_us) != 0) ||
      (r->to && seg_iso8601_parse(r->to, &r->to_us) != 0))
    return migrate_usage("reconcile", "--from/--to want ISO 8601 times");
  return -1;
}

int esctl_reconcile(int argc, char **argv) {
  rc_run r = {0};
  es_db *db = NULL;
  int status = reconcile_parse(argc, argv, &r);
  if (status >= 0)
    return status;
  status = read_legacy(&r);
  if (status == 0) {
    es_options opts;
    es_options_init(&opts);
    opts.data_dir = r.data;
    opts.read_only = 1;
    opts.must_exist = 1;
    int rc = es_open(&opts, &db);
    if (rc == ES_OK)
      rc = es_inspect(r.data, collect_tenant, &r);
    if (rc != ES_OK)
      status = migrate_lib_error(rc);
  }
  for (size_t i = 0; i < r.ntenants && status == 0; i++)
    status = store_counts(&r, db, r.tenants[i]);
  if (status == 0)
    status = compare(&r);
  if (db)
    es_close(db);
  for (size_t i = 0; i < r.n; i++) {
    free(r.rows[i].tenant);
    free(r.rows[i].event);
  }
  for (size_t i = 0; i < r.ntenants; i++)
    free(r.tenants[i]);
  free(r.rows);
  free(r.tenants);
  return status;
}
