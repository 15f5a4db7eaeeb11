/*
 * export.c -- es_export: a store's events, per tenant and day, as files a
 * warehouse loads (Parquet through parquet.c, or gzip NDJSON).
 *
 * A partition is one tenant's one UTC day: the directory
 * <out>/tenant=<T>/date=<YYYY-MM-DD>/ holding part-<NNNNN>.parquet (or
 * .ndjson.gz) files and _manifest.json, which names the part files with
 * their rows, bytes and CRC-32, and the store state the partition was cut
 * from.  The manifest is the partition: a file it does not name is not
 * part of it.
 *
 * Rows come from es_scan over the day (segments and memtables, one
 * snapshot per partition), in event-time order, and go column by column
 * into the writer's buffers: no JSON is rendered for Parquet.  person_id
 * is the identity map's root of the event's id (user_id, else
 * anonymous_id), loaded once per tenant: the stitched person at export
 * time.
 *
 * Invariants:
 *  1. New part files never take a name the current manifest uses: their
 *     numbers continue after the highest number in the directory.
 *  2. Replacement order: part files written as .tmp, synced, renamed,
 *     directory synced; then _manifest.json replaced atomically (temp,
 *     sync, rename, directory sync); only then the old manifest's files
 *     are removed.  A crash anywhere leaves the old manifest with its
 *     files, or the new one with its files; files no manifest names
 *     (orphans of a crash) are removed when the partition is next
 *     exported, before anything is written.
 *  3. The first error stops the export: the partition being written keeps
 *     its old manifest (its new files are orphans, removed next time).
 *  4. JSON columns hold valid JSON: properties or traits that are not one
 *     JSON value are written as a JSON string of their text.  String
 *     columns hold valid UTF-8: a byte that is not is replaced by U+FFFD
 *     (as es__json_put_str does).
 *  5. Partitions are independent: up to es_export_options.threads workers
 *     (the caller's thread and new ones) each take the next (tenant, day)
 *     and write it alone, so a partition directory has one writer.  The
 *     first error stops every worker after its current partition; only
 *     the caller's thread calls the progress callback.  Two exports into
 *     one out_dir at once are not supported (nothing locks it).
 */
#include "export/export.h"
#include "export/xreg.h"

#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>
#include <zlib.h>

#include "base/abi.h"
#include "base/clock.h"
#include "base/event.h"
#include "base/json.h"
#include "base/mem.h"
#include "engine/identity.h"
#include "store/dbint.h"

#define DAY_US INT64_C(86400000000)
#define ES_EXPORT_THREADS_DEFAULT 4
#define ES_EXPORT_THREADS_MAX 64
#define EX_STR_(x) #x
#define EX_STR(x) EX_STR_(x)
#define ES_VERSION_STRING_EXPORT                                               \
  EX_STR(ES_VERSION_MAJOR)                                                     \
  "." EX_STR(ES_VERSION_MINOR) "." EX_STR(ES_VERSION_PATCH)
#define PART_NAME_MAX EX_PART_NAME_MAX
#define ES_EXPORT_FILE_BYTES (UINT64_C(1) << 30)
#define ES_EXPORT_S3_FILE_BYTES (UINT64_C(128) << 20)

/* ---- the schema ------------------------------------------------------- */

#define STR_COL(n, d)                                                          \
  { n, ES_PQ_BYTES, ES_PQ_STRING, 1, d, 1 }
static const es_pq_column columns[EX_COLUMNS] = {
    [EX_MESSAGE_ID] = STR_COL("message_id", 0),
    [EX_TYPE] = {"type", ES_PQ_BYTES, ES_PQ_STRING, 0, 1, 1},
    [EX_EVENT] = STR_COL("event", 1),
    [EX_TIMESTAMP] = {"timestamp", ES_PQ_INT64, ES_PQ_TIMESTAMP_US, 0, 0, 1},
    [EX_RECEIVED_AT] = {"received_at", ES_PQ_INT64, ES_PQ_TIMESTAMP_US, 1, 0,
                        1},
    [EX_SENT_AT] = {"sent_at", ES_PQ_INT64, ES_PQ_TIMESTAMP_US, 1, 0, 1},
    [EX_ANONYMOUS_ID] = STR_COL("anonymous_id", 1),
    [EX_USER_ID] = STR_COL("user_id", 1),
    [EX_PERSON_ID] = STR_COL("person_id", 1),
    [EX_PAGE_PATH] = STR_COL("page_path", 1),
    [EX_PAGE_URL] = STR_COL("page_url", 1),
    [EX_PAGE_REFERRER] = STR_COL("page_referrer", 1),
    [EX_PAGE_TITLE] = STR_COL("page_title", 1),
    [EX_USER_AGENT] = STR_COL("user_agent", 1),
    [EX_IP] = STR_COL("ip", 1),
    [EX_PROPERTIES] = {"properties", ES_PQ_BYTES, ES_PQ_JSON, 1, 0, 0},
    [EX_CONTEXT] = {"context", ES_PQ_BYTES, ES_PQ_JSON, 1, 0, 0},
    [EX_TRAITS] = {"traits", ES_PQ_BYTES, ES_PQ_JSON, 1, 0, 0},
    [EX_PREVIOUS_ID] = STR_COL("previous_id", 1),
    [EX_GROUP_ID] = STR_COL("group_id", 1),
};

const es_pq_column *es__export_columns(void) { return columns; }

/* ---- small helpers ------------------------------------------------------ */

/* yajl's own allocator: yajl does not survive a failed allocation (it
 * dereferences what its allocator returned), so it is not given es__malloc,
 * whose test hook fails allocations on purpose (as segment_json.c and the
 * query parser do). */
int es__export_json_valid(const char *s, size_t n) {
  yajl_handle h = yajl_alloc(NULL, NULL, NULL);
  if (!h)
    return 0;
  int ok = yajl_parse(h, (const unsigned char *)s, n) == yajl_status_ok &&
           yajl_complete_parse(h) == yajl_status_ok;
  yajl_free(h);
  return ok;
}

/* Days since 1970-01-01 -> civil date (H. Hinnant's algorithm). */
static void civil(int64_t days, int *y, int *m, int *d) {
  days += 719468;
  int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  int64_t doe = days - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int64_t floor_div(int64_t a, int64_t b) {
  return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

void es__export_fmt_day(int64_t ts_us, char *buf) {
  int y, m, d;
  civil(floor_div(ts_us, DAY_US), &y, &m, &d);
  snprintf(buf, EX_TS_SIZE, "%04d-%02d-%02d", y, m, d);
}

void es__export_fmt_ts(int64_t ts_us, char *buf) {
  int y, m, d;
  int64_t day = floor_div(ts_us, DAY_US);
  int64_t in = ts_us - day * DAY_US;
  civil(day, &y, &m, &d);
  int64_t s = in / 1000000;
  snprintf(buf, EX_TS_SIZE, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", y, m, d,
           (int)(s / 3600), (int)(s / 60 % 60), (int)(s % 60),
           (int)(in % 1000000));
}

/* s as valid UTF-8: s itself, or a copy in scratch with bad bytes
 * replaced by U+FFFD (invariant 4). */
static int utf8_clean(const char *s, es_buf *scratch, const char **out,
                      size_t *n_out) {
  if (es__json_utf8_valid(s)) {
    *out = s;
    *n_out = strlen(s);
    return ES_OK;
  }
  /* es__json_put_str replaces bad bytes; unescape its output is more work
   * than redoing the walk, so do the walk here. */
  scratch->len = 0;
  const uint8_t *p = (const uint8_t *)s;
  while (*p) {
    size_t len = *p < 0x80         ? 1
                 : (*p >> 5) == 6  ? 2
                 : (*p >> 4) == 14 ? 3
                 : (*p >> 3) == 30 ? 4
                                   : 0;
    int ok = len > 0;
    for (size_t i = 1; ok && i < len; i++)
      ok = (p[i] & 0xc0) == 0x80;
    if (ok && len > 1) {
      char tmp[5] = {0};
      memcpy(tmp, p, len);
      ok = es__json_utf8_valid(tmp); /* overlongs, surrogates, range */
    }
    if (ok) {
      ES_TRY(es__buf_put(scratch, p, len));
      p += len;
    } else {
      ES_TRY(es__buf_put(scratch, "\xef\xbf\xbd", 3));
      p++;
    }
  }
  *out = (const char *)scratch->data;
  *n_out = scratch->len;
  return ES_OK;
}

/* ---- the gzip NDJSON sink ------------------------------------------------ */

typedef struct gz_sink {
  es_vfs *vfs;
  es_file *file;
  z_stream z;
  int z_init;
  uint64_t off;
  uint32_t crc;
  uint8_t out[65536];
} gz_sink;

static voidpf z_alloc(voidpf o, uInt items, uInt size) {
  (void)o;
  return es__calloc(items, size);
}
static void z_free(voidpf o, voidpf p) {
  (void)o;
  es__free(p);
}

static int gz_drain(gz_sink *g, const void *p, size_t n, int flush) {
  g->z.next_in = (Bytef *)(uintptr_t)p;
  g->z.avail_in = (uInt)n;
  int zr;
  do {
    g->z.next_out = g->out;
    g->z.avail_out = sizeof g->out;
    zr = deflate(&g->z, flush);
    if (zr == Z_STREAM_ERROR)
      return ES_ERR(ES_ENOMEM, "zlib deflate failed");
    size_t have = sizeof g->out - g->z.avail_out;
    if (have) {
      ES_TRY(g->vfs->write(g->vfs, g->file, g->out, have, g->off));
      g->off += have;
      g->crc = (uint32_t)crc32_z(g->crc, g->out, have);
    }
  } while (g->z.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
  return ES_OK;
}

static void gz_abort(gz_sink *g) {
  if (g->z_init)
    deflateEnd(&g->z);
  if (g->file)
    (void)g->vfs->close(g->vfs, g->file);
  es__free(g);
}

static int gz_open(es_vfs *vfs, const char *path, gz_sink **g_out) {
  *g_out = NULL;
  gz_sink *g = es__calloc(1, sizeof *g);
  if (!g)
    return ES_NOMEM_BKPT();
  g->vfs = vfs;
  g->z.zalloc = z_alloc;
  g->z.zfree = z_free;
  if (deflateInit2(&g->z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    es__free(g);
    return ES_NOMEM_BKPT();
  }
  g->z_init = 1;
  int rc =
      vfs->open(vfs, path, ES_IO_WRITE | ES_IO_CREATE | ES_IO_TRUNC, &g->file);
  if (rc != ES_OK) {
    gz_abort(g);
    return rc;
  }
  *g_out = g;
  return ES_OK;
}

static int gz_close(gz_sink *g, uint64_t *bytes_out, uint32_t *crc_out) {
  int rc = gz_drain(g, NULL, 0, Z_FINISH);
  if (rc == ES_OK)
    rc = g->vfs->sync(g->vfs, g->file);
  int crc = g->vfs->close(g->vfs, g->file);
  g->file = NULL;
  if (rc == ES_OK)
    rc = crc;
  *bytes_out = rc == ES_OK ? g->off : 0;
  *crc_out = rc == ES_OK ? g->crc : 0;
  gz_abort(g);
  return rc;
}

/* ---- one row --------------------------------------------------------------
 */

/* ex_part (a manifest's file entry) is in export.h. */

/* What the workers of one es_export share (invariant 5). */
typedef struct ex_shared {
  pthread_mutex_t mu;
  size_t next, total; /* partitions handed out / to do (tenant-major) */
  int64_t days;
  char **tenants;       /* the tenants, sorted */
  uint8_t *tenant_used; /* per tenant: a partition directory was made */
  int rc;               /* the first error of any worker */
  char detail[512];     /* its es_errdetail() (thread-local otherwise) */
  es_export_result res; /* finished partitions' totals */
  uint64_t done;        /* partitions finished */
} ex_shared;

/* One worker: a partition at a time. */
typedef struct ex_run {
  es_db *db;
  es_xdest *dest;
  es_xbuf xb; /* the part bound for an object store (dest.h) */
  es_export_options o;
  ex_shared *sh;
  int main_thread;      /* the caller's thread: the one that reports progress */
  es_export_result res; /* this partition's */
  uint64_t rows_seen;   /* for progress every 100,000 rows */
  es_export_progress prog;
  size_t ti; /* index of tenant in sh->tenants; SIZE_MAX = none loaded */
  char tenant[ES_TENANT_LEN_MAX + 1];
  char day[EX_TS_SIZE];
  char prel[ES_PATH_MAX]; /* "tenant=<T>/date=<D>" */
  es_identity *ids;
  /* the part being written */
  es_pq_writer *pq;
  gz_sink *gz;
  char tmp_path[ES_PATH_MAX];
  es_vfs *pvfs; /* where the part is written (dest.h) */
  ex_part cur;
  uint32_t next_no;
  /* the parts written for this partition */
  ex_part *parts;
  size_t nparts, parts_cap;
  es_buf line, scratch, jscratch;
} ex_run;

/* The row's values, as both sinks see them. */
typedef struct ex_row {
  const char *s[EX_COLUMNS]; /* strings (NULL = null) */
  size_t n[EX_COLUMNS];
  int owned[EX_COLUMNS]; /* the string is a copy to free (row_free) */
  int64_t ts, recv;
} ex_row;

static int row_json(ex_run *r, ex_row *row, int col, const char *text) {
  if (!text)
    return ES_OK;
  size_t n;
  ES_TRY(utf8_clean(text, &r->scratch, &text, &n)); /* invariant 4 */
  if (es__export_json_valid(text, n)) {
    if (text != (const char *)r->scratch.data) {
      row->s[col] = text;
      row->n[col] = n;
      return ES_OK;
    }
    r->jscratch.len = 0;
    ES_TRY(es__buf_put(&r->jscratch, text, n));
  } else {
    /* invariant 4: the text as a JSON string */
    r->jscratch.len = 0;
    ES_TRY(es__json_put_str(&r->jscratch, text));
  }
  row->s[col] = (const char *)r->jscratch.data;
  row->n[col] = r->jscratch.len;
  return ES_OK;
}

static int row_build(ex_run *r, const es_event *ev, ex_row *row) {
  memset(row, 0, sizeof *row);
  const char *id = ev->user_id && ev->user_id[0]             ? ev->user_id
                   : ev->anonymous_id && ev->anonymous_id[0] ? ev->anonymous_id
                                                             : NULL;
  const char *v[EX_COLUMNS] = {
      [EX_MESSAGE_ID] = ev->message_id,
      [EX_TYPE] = es_type_name(ev->type),
      [EX_EVENT] = ev->event,
      [EX_ANONYMOUS_ID] = ev->anonymous_id,
      [EX_USER_ID] = ev->user_id,
      [EX_PERSON_ID] = id ? es__identity_root(r->ids, id) : NULL,
      [EX_PAGE_PATH] = ev->path,
      [EX_PAGE_URL] = ev->url,
      [EX_PAGE_REFERRER] = ev->referrer,
      [EX_USER_AGENT] = ev->user_agent,
      [EX_IP] = ev->ip,
      [EX_PREVIOUS_ID] = ev->previous_id,
      [EX_GROUP_ID] = ev->group_id,
  };
  if (!v[EX_TYPE])
    v[EX_TYPE] = "unknown";
  row->ts = ev->ts_us;
  row->recv = ev->recv_us;
  for (int c = 0; c < EX_COLUMNS; c++) {
    if (!v[c])
      continue;
    if (es__json_utf8_valid(v[c])) {
      row->s[c] = v[c];
      row->n[c] = strlen(v[c]);
    } else {
      /* rare: a copy each, kept in the line buffer's tail is not worth
       * it; scratch holds one column, so copy it into a row-owned spot */
      ES_TRY(utf8_clean(v[c], &r->scratch, &row->s[c], &row->n[c]));
      char *copy = es__malloc(row->n[c] + 1);
      if (!copy)
        return ES_NOMEM_BKPT();
      memcpy(copy, row->s[c], row->n[c]);
      copy[row->n[c]] = 0;
      row->s[c] = copy;
      row->owned[c] = 1;
    }
  }
  int traits = ev->type == ES_TYPE_IDENTIFY || ev->type == ES_TYPE_GROUP;
  return row_json(r, row, traits ? EX_TRAITS : EX_PROPERTIES, ev->properties);
}

static void row_free(ex_row *row) {
  for (int c = 0; c < EX_COLUMNS; c++)
    if (row->owned[c])
      es__free((void *)(uintptr_t)row->s[c]);
}

static int row_parquet(ex_run *r, const ex_row *row) {
  for (int c = 0; c < EX_COLUMNS; c++) {
    if (columns[c].kind == ES_PQ_INT64) {
      int64_t v = c == EX_TIMESTAMP ? row->ts : row->recv;
      int present = c == EX_TIMESTAMP || (c == EX_RECEIVED_AT && v != 0);
      ES_TRY(es__pq_put_i64(r->pq, (size_t)c, v, present));
    } else {
      ES_TRY(es__pq_put_bytes(r->pq, (size_t)c, row->s[c], row->n[c]));
    }
  }
  return es__pq_end_row(r->pq);
}

static int row_ndjson(ex_run *r, const ex_row *row) {
  es_buf *b = &r->line;
  b->len = 0;
  for (int c = 0; c < EX_COLUMNS; c++) {
    ES_TRY(es__buf_put(b, c ? ",\"" : "{\"", 2));
    ES_TRY(es__buf_put(b, columns[c].name, strlen(columns[c].name)));
    ES_TRY(es__buf_put(b, "\":", 2));
    if (columns[c].kind == ES_PQ_INT64) {
      if (c == EX_SENT_AT || (c == EX_RECEIVED_AT && row->recv == 0)) {
        ES_TRY(es__buf_put(b, "null", 4));
        continue;
      }
      char ts[EX_TS_SIZE];
      es__export_fmt_ts(c == EX_TIMESTAMP ? row->ts : row->recv, ts);
      ES_TRY(es__buf_put_u8(b, '"'));
      ES_TRY(es__buf_put(b, ts, strlen(ts)));
      ES_TRY(es__buf_put_u8(b, '"'));
    } else if (!row->s[c]) {
      ES_TRY(es__buf_put(b, "null", 4));
    } else if (columns[c].logical == ES_PQ_JSON) {
      /* valid JSON has raw line breaks only as whitespace between tokens:
       * a space keeps it one line (NDJSON) and the same value */
      size_t at = b->len;
      ES_TRY(es__buf_put(b, row->s[c], row->n[c]));
      for (size_t i = at; i < b->len; i++)
        if (b->data[i] == '\n' || b->data[i] == '\r')
          b->data[i] = ' ';
    } else {
      ES_TRY(es__json_put_str(b, row->s[c]));
    }
  }
  ES_TRY(es__buf_put(b, "}\n", 2));
  return gz_drain(r->gz, b->data, b->len, Z_NO_FLUSH);
}

/* ---- part files ------------------------------------------------------------
 */

static const char *part_ext(const ex_run *r) {
  return r->o.format == ES_EXPORT_NDJSON ? ".ndjson.gz" : ".parquet";
}

static int part_open(ex_run *r, const ex_range *range) {
  memset(&r->cur, 0, sizeof r->cur);
  snprintf(r->cur.name, sizeof r->cur.name, "part-%05" PRIu32 "%s",
           r->next_no++, part_ext(r));
  r->cur.from_us = range->from_us;
  r->cur.to_us = range->to_us;
  r->cur.counted = range->counted;
  ES_TRY(es__dest_part_path(r->dest, &r->xb, r->prel, r->cur.name, &r->pvfs,
                            r->tmp_path));
  if (r->o.format == ES_EXPORT_NDJSON)
    return gz_open(r->pvfs, r->tmp_path, &r->gz);
  es_pq_options po;
  es__pq_options_init(&po);
  po.codec = r->o.compression == ES_EXPORT_SNAPPY         ? ES_PQ_SNAPPY
             : r->o.compression == ES_EXPORT_UNCOMPRESSED ? ES_PQ_UNCOMPRESSED
                                                          : ES_PQ_ZSTD;
  if (r->o.row_group_bytes)
    po.row_group_bytes = r->o.row_group_bytes;
  po.created_by = "libeventstore " ES_VERSION_STRING_EXPORT;
  return es__pq_open(r->pvfs, r->tmp_path, columns, EX_COLUMNS, &po, &r->pq);
}

/* Finishes the open part: closed, synced, renamed to its name. */
static int part_close(ex_run *r) {
  int rc;
  if (r->pq) {
    rc = es__pq_close(r->pq, &r->cur.bytes, &r->cur.crc);
    r->pq = NULL;
  } else {
    rc = gz_close(r->gz, &r->cur.bytes, &r->cur.crc);
    r->gz = NULL;
  }
  ES_TRY(rc);
  ES_TRY(
      es__dest_part_commit(r->dest, &r->xb, r->prel, r->cur.name, r->tmp_path));
  ES_TRY(es__grow((void **)&r->parts, &r->parts_cap, r->nparts + 1,
                  sizeof *r->parts));
  r->parts[r->nparts++] = r->cur;
  r->res.files++;
  r->res.bytes += r->cur.bytes;
  return ES_OK;
}

static void part_abort(ex_run *r) {
  es__pq_abort(r->pq);
  r->pq = NULL;
  if (r->gz)
    gz_abort(r->gz);
  r->gz = NULL;
}

static uint64_t part_bytes(const ex_run *r) {
  return r->pq ? es__pq_bytes(r->pq) : r->gz ? r->gz->off : 0;
}

/* ---- the partition as found ------------------------------------------------
 */

/* The partition before it is written: its manifest and the part files
 * no manifest names (orphans of a crash, invariant 2). */
typedef struct old_state {
  ex_manifest man;
  uint32_t max_no; /* highest part number present, + 1 */
  char **others;
  size_t nothers, others_cap;
} old_state;

static void old_free(old_state *o) {
  es__xmanifest_free(&o->man);
  for (size_t i = 0; i < o->nothers; i++)
    es__free(o->others[i]);
  es__free(o->others);
  memset(o, 0, sizeof *o);
}

static int add_name(char ***v, size_t *n, size_t *cap, const char *s) {
  ES_TRY(es__grow((void **)v, cap, *n + 1, sizeof **v));
  (*v)[*n] = es__strdup(s);
  if (!(*v)[*n])
    return ES_NOMEM_BKPT();
  (*n)++;
  return ES_OK;
}

static int old_listed(const old_state *o, const char *name) {
  for (size_t i = 0; i < o->man.n; i++)
    if (strcmp(o->man.files[i].name, name) == 0)
      return 1;
  return 0;
}

static int old_list_fn(void *ud, const char *name) {
  old_state *o = ud;
  if (strncmp(name, "part-", 5) == 0) {
    uint32_t no = (uint32_t)strtoul(name + 5, NULL, 10);
    if (no + 1 > o->max_no)
      o->max_no = no + 1;
    if (!old_listed(o, name))
      return add_name(&o->others, &o->nothers, &o->others_cap, name);
  }
  return ES_OK;
}

/* Reads the partition's manifest (if any) and lists its files. */
static int old_load(ex_run *r, int64_t day_us, old_state *o) {
  ES_TRY(es__xmanifest_load(r->dest, r->prel, day_us, &o->man));
  for (size_t i = 0; i < o->man.n; i++) /* numbers never reused */
    ES_TRY(old_list_fn(o, o->man.files[i].name));
  return es__dest_list(r->dest, r->prel, old_list_fn, o);
}

/* ---- one partition
 * ----------------------------------------------------------- */

/* Calls the progress callback from the caller's thread only, with the
 * totals of every worker. */
static void progress(ex_run *r) {
  if (!r->o.progress_fn || !r->main_thread)
    return;
  ex_shared *sh = r->sh;
  pthread_mutex_lock(&sh->mu);
  r->prog.partitions_done = sh->done;
  r->prog.partitions_total = sh->total;
  r->prog.rows = sh->res.rows + r->res.rows;
  r->prog.bytes = sh->res.bytes + r->res.bytes;
  pthread_mutex_unlock(&sh->mu);
  r->prog.bytes += part_bytes(r);
  r->prog.tenant = r->tenant;
  r->prog.day = r->day;
  r->o.progress_fn(r->o.progress_ud, &r->prog);
}

/* The partition's directory and those above it (mkdir of an existing
 * directory is a no-op; nothing on an object store).  Their entries are
 * synced when the export ends (export_end): a crash before loses whole
 * partitions that the caller was never told were exported, never a part
 * of one (invariant 2 holds inside the partition). */
static int mkdirs(ex_run *r) {
  ES_TRY(es__dest_mkdirs(r->dest, r->prel));
  if (r->sh) {
    pthread_mutex_lock(&r->sh->mu);
    r->sh->tenant_used[r->ti] = 1;
    pthread_mutex_unlock(&r->sh->mu);
  }
  return ES_OK;
}

/* Makes the directories the export made durable: each tenant's entries,
 * the root's, and the root's own entry in its parent (local only). */
static int export_end(es_xdest *d, const ex_shared *sh, size_t ntenants) {
  if (d->os)
    return ES_OK;
  int any = 0;
  for (size_t i = 0; i < ntenants; i++) {
    if (!sh->tenant_used[i])
      continue;
    char sub[ES_PATH_MAX];
    snprintf(sub, sizeof sub, "tenant=%s", sh->tenants[i]);
    ES_TRY(es__dest_sync(d, sub));
    any = 1;
  }
  if (!any)
    return ES_OK;
  es_vfs *vfs = d->vfs;
  ES_TRY(vfs->sync_dir(vfs, d->root));
  char parent[ES_PATH_MAX];
  snprintf(parent, sizeof parent, "%s", d->root);
  char *slash = strrchr(parent, '/');
  if (!slash)
    return vfs->sync_dir(vfs, ".");
  if (slash == parent)
    slash[1] = 0; /* "/x" -> "/" */
  else
    *slash = 0;
  return vfs->sync_dir(vfs, parent);
}

/* Writes the part files of one range from a scan of it. */
static int range_rows(ex_run *r, const ex_range *range, int *any_out) {
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = r->tenant;
  spec.from_us = range->from_us;
  spec.to_us = range->to_us;
  es_cursor *cur = NULL;
  es_event ev;
  ex_row row;
  int rc, got;
  ES_TRY(es_scan(r->db, &spec, &cur));
  while ((got = es_cursor_next(cur, &ev)) == 1) {
    if (!*any_out) {
      *any_out = 1;
      ES_CHECK(mkdirs(r));
    }
    if (!r->pq && !r->gz)
      ES_CHECK(part_open(r, range));
    ES_CHECK(row_build(r, &ev, &row));
    rc = r->pq ? row_parquet(r, &row) : row_ndjson(r, &row);
    row_free(&row);
    ES_CHECK(rc);
    r->cur.rows++;
    r->res.rows++;
    if (++r->rows_seen % 100000 == 0)
      progress(r);
    if (part_bytes(r) >= r->o.file_bytes_max)
      ES_CHECK(part_close(r));
  }
  ES_CHECK(got);
  if (r->pq || r->gz)
    ES_CHECK(part_close(r));
  rc = ES_OK;
err:
  part_abort(r);
  es_cursor_close(cur);
  return rc;
}

static int range_meets(const ex_part *p, const ex_range *rg, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p->from_us < rg[i].to_us && rg[i].from_us < p->to_us)
      return 1;
  return 0;
}

static int cmp_part(const void *a, const void *b) {
  const ex_part *x = a, *y = b;
  if (x->from_us != y->from_us)
    return x->from_us < y->from_us ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* The new manifest: the old files no range meets, then the new parts,
 * in event-time order; then the old files that were replaced go. */
static int partition_commit(ex_run *r, old_state *old, const ex_range *rg,
                            size_t nrg, uint64_t generation, int64_t cut_us) {
  ex_manifest m = {0};
  int rc = ES_OK;
  for (size_t i = 0; i < old->man.n; i++)
    if (!range_meets(&old->man.files[i], rg, nrg))
      ES_CHECK(es__xmanifest_add(&m, &old->man.files[i]));
  for (size_t i = 0; i < r->nparts; i++)
    ES_CHECK(es__xmanifest_add(&m, &r->parts[i]));
  if (m.n > 1)
    qsort(m.files, m.n, sizeof *m.files, cmp_part);
  ES_CHECK(es__xmanifest_render(&r->line, r->tenant, r->day, r->o.format,
                                r->o.compression, cut_us, generation, &m));
  ES_CHECK(es__dest_put_atomic(r->dest, r->prel, "_manifest.json", r->line.data,
                               r->line.len));
  int removed = 0;
  for (size_t i = 0; i < old->man.n; i++)
    if (range_meets(&old->man.files[i], rg, nrg)) {
      ES_CHECK(es__dest_remove(r->dest, r->prel, old->man.files[i].name));
      removed = 1;
    }
  if (removed)
    ES_CHECK(es__dest_sync(r->dest, r->prel));
err:
  es__xmanifest_free(&m);
  return rc;
}

/* One partition: the ranges of day_us cut again (invariant 2). */
static int partition_ranges(ex_run *r, int64_t day_us, const ex_range *rg,
                            size_t nrg) {
  old_state old = {0};
  int rc = ES_OK, any = 0;
  es__export_fmt_day(day_us, r->day);
  ES_TRY(es__export_partition_rel(r->prel, r->tenant, day_us));
  r->nparts = 0;
  ES_CHECK(old_load(r, day_us, &old));
  /* invariant 2: orphans of a crashed export go first */
  for (size_t i = 0; i < old.nothers; i++)
    ES_CHECK(es__dest_remove(r->dest, r->prel, old.others[i]));
  if (old.nothers)
    ES_CHECK(es__dest_sync(r->dest, r->prel));
  r->next_no = old.max_no;
  /* the store state the partition is cut from */
  uint64_t generation = 0;
  es_tenant *t = NULL;
  ES_CHECK(es__tenant_get(r->db, r->tenant, 0, &t));
  if (t) {
    pthread_mutex_lock(&t->man_mu);
    generation = t->man.generation;
    pthread_mutex_unlock(&t->man_mu);
  }
  int64_t cut_us = es__clock_now_us();
  for (size_t i = 0; i < nrg; i++)
    ES_CHECK(range_rows(r, &rg[i], &any));
  if (any || old.man.present) {
    if (r->nparts)
      ES_CHECK(es__dest_sync(r->dest, r->prel)); /* the renames */
    ES_CHECK(partition_commit(r, &old, rg, nrg, generation, cut_us));
    r->res.partitions++;
  }
err:
  old_free(&old);
  return rc;
}

static int partition_export(ex_run *r, int64_t day_us) {
  ex_range whole = {day_us, day_us + DAY_US, -1};
  return partition_ranges(r, day_us, &whole, 1);
}

/* ---- tenants
 * ----------------------------------------------------------------- */

typedef struct name_list {
  char **v;
  size_t n, cap;
} name_list;

static int names_add_unique(name_list *l, const char *s) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i], s) == 0)
      return ES_OK;
  return add_name(&l->v, &l->n, &l->cap, s);
}

static int tenants_list_fn(void *ud, const char *name) {
  if (name[0] == '.' || strlen(name) > ES_TENANT_LEN_MAX)
    return ES_OK;
  for (const char *p = name; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
      return ES_OK;
  return names_add_unique(ud, name);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every tenant: the tenant directories and the tenants in memory (rows
 * still only in the WAL), sorted. */
static int tenants_all(es_db *db, name_list *l) {
  int rc = db->vfs->list(db->vfs, db->tenants_dir, tenants_list_fn, l);
  if (rc != ES_OK && rc != ES_ENOTFOUND)
    return rc;
  pthread_mutex_lock(&db->tenants_mu);
  rc = ES_OK;
  for (size_t i = 0; i < db->ntenants && rc == ES_OK; i++)
    rc = names_add_unique(l, db->tenants[i]->name);
  pthread_mutex_unlock(&db->tenants_mu);
  ES_TRY(rc);
  if (l->n > 1)
    qsort(l->v, l->n, sizeof *l->v, cmp_str);
  return ES_OK;
}

/* ---- es_export
 * ---------------------------------------------------------------- */

/* The options of release 0.1 (before s3_endpoint and s3_region). */
#define EXPORT_OPTS_SIZE_MIN                                                   \
  (offsetof(es_export_options, threads) + sizeof(int))

void es_export_options_init_sized(es_export_options *opts, size_t struct_size) {
  es_export_options o;
  memset(&o, 0, sizeof o);
  o.format = ES_EXPORT_PARQUET;
  o.compression = ES_EXPORT_ZSTD;
  o.file_bytes_max = ES_EXPORT_FILE_BYTES;
  memset(opts, 0, struct_size);
  memcpy(opts, &o, struct_size < sizeof o ? struct_size : sizeof o);
  opts->struct_size = struct_size;
}

static int export_check(const es_export_options *o) {
  if (!o->out_dir || !o->out_dir[0])
    return ES_INVAL_BKPT("es_export: out_dir is required");
  if (o->format != ES_EXPORT_PARQUET && o->format != ES_EXPORT_NDJSON)
    return ES_INVAL_BKPT("es_export: unknown format %d", o->format);
  if (o->compression < ES_EXPORT_ZSTD ||
      o->compression > ES_EXPORT_UNCOMPRESSED)
    return ES_INVAL_BKPT("es_export: unknown compression %d", o->compression);
  if (o->from_us % DAY_US != 0 || o->to_us % DAY_US != 0 ||
      o->from_us >= o->to_us)
    return ES_INVAL_BKPT("es_export: from/to must be UTC midnights, from "
                         "before to");
  if ((o->to_us - o->from_us) / DAY_US > 36600)
    return ES_INVAL_BKPT("es_export: more than 100 years of days");
  if (o->threads < 0 || o->threads > ES_EXPORT_THREADS_MAX)
    return ES_INVAL_BKPT("es_export: threads %d (0 = default, at most %d)",
                         o->threads, ES_EXPORT_THREADS_MAX);
  if (o->tenants_count && !o->tenants)
    return ES_INVAL_BKPT("es_export: tenants_count without tenants");
  for (size_t i = 0; i < o->tenants_count; i++) {
    name_list probe = {0};
    if (!o->tenants[i] || tenants_list_fn(&probe, o->tenants[i]) != ES_OK ||
        probe.n != 1) {
      for (size_t k = 0; k < probe.n; k++)
        es__free(probe.v[k]);
      es__free(probe.v);
      return ES_ERR(ES_ETENANT, "es_export: bad tenant id");
    }
    es__free(probe.v[0]);
    es__free(probe.v);
  }
  return ES_OK;
}

/* Records a worker's error (the first one wins, with its detail). */
static void worker_fail(ex_shared *sh, int rc) {
  pthread_mutex_lock(&sh->mu);
  if (sh->rc == 0) {
    sh->rc = rc;
    snprintf(sh->detail, sizeof sh->detail, "%s", es_errdetail());
  }
  pthread_mutex_unlock(&sh->mu);
}

static void worker_free(ex_run *r) {
  part_abort(r);
  es__identity_free(r->ids);
  r->ids = NULL;
  es__free(r->parts);
  r->parts = NULL;
  es__buf_free(&r->line);
  es__buf_free(&r->scratch);
  es__buf_free(&r->jscratch);
  es__xbuf_free(&r->xb);
}

/* Takes partitions (tenant-major) until none is left or any worker
 * failed (invariant 5). */
static void worker_run(ex_run *r) {
  ex_shared *sh = r->sh;
  for (;;) {
    pthread_mutex_lock(&sh->mu);
    int stop = sh->rc != 0 || sh->next >= sh->total;
    size_t item = sh->next++;
    pthread_mutex_unlock(&sh->mu);
    if (stop)
      break;
    size_t ti = item / (size_t)sh->days;
    int64_t d = (int64_t)(item % (size_t)sh->days);
    int rc = ES_OK;
    if (ti != r->ti) {
      es__identity_free(r->ids);
      r->ids = NULL;
      r->ti = ti;
      snprintf(r->tenant, sizeof r->tenant, "%s", sh->tenants[ti]);
      rc = es__identity_load(r->db, r->tenant, &r->ids);
    }
    memset(&r->res, 0, sizeof r->res);
    if (rc == ES_OK)
      rc = partition_export(r, r->o.from_us + d * DAY_US);
    if (rc != ES_OK) {
      worker_fail(sh, rc);
      break;
    }
    pthread_mutex_lock(&sh->mu);
    sh->done++;
    sh->res.partitions += r->res.partitions;
    sh->res.files += r->res.files;
    sh->res.rows += r->res.rows;
    sh->res.bytes += r->res.bytes;
    pthread_mutex_unlock(&sh->mu);
    memset(&r->res, 0, sizeof r->res);
    progress(r);
  }
  worker_free(r);
}

static void *worker_main(void *arg) {
  worker_run(arg);
  return NULL;
}

/* Runs the workers: threads - 1 new ones and the caller's thread. */
static void workers_run(ex_run *w, int threads) {
  pthread_t tid[ES_EXPORT_THREADS_MAX];
  int started[ES_EXPORT_THREADS_MAX] = {0};
  for (int i = 1; i < threads; i++) /* fewer workers if one cannot start */
    started[i] = pthread_create(&tid[i], NULL, worker_main, &w[i]) == 0;
  worker_run(&w[0]);
  for (int i = 1; i < threads; i++)
    if (started[i])
      pthread_join(tid[i], NULL);
    else
      worker_free(&w[i]);
}

/* Exports into dest (es_export, after its checks; tests: objmem). */
int es__export_dest(es_db *db, es_xdest *dest, const es_export_options *opts,
                    es_export_result *result_out) {
  if (result_out)
    memset(result_out, 0, sizeof *result_out);
  es_export_options o = *opts;
  if (o.file_bytes_max == 0 || o.file_bytes_max == ES_EXPORT_FILE_BYTES)
    o.file_bytes_max = dest->os ? ES_EXPORT_S3_FILE_BYTES /* in memory */
                                : ES_EXPORT_FILE_BYTES;
  int threads = o.threads > 0 ? o.threads : ES_EXPORT_THREADS_DEFAULT;
  name_list tenants = {0};
  ex_shared sh;
  memset(&sh, 0, sizeof sh);
  pthread_mutex_init(&sh.mu, NULL);
  ex_run *w = es__calloc((size_t)threads, sizeof *w);
  int rc = ES_OK;
  if (!w)
    ES_CHECK(ES_NOMEM_BKPT());
  if (o.tenants_count) {
    for (size_t i = 0; i < o.tenants_count; i++)
      ES_CHECK(names_add_unique(&tenants, o.tenants[i]));
  } else {
    ES_CHECK(tenants_all(db, &tenants));
  }
  sh.days = (o.to_us - o.from_us) / DAY_US;
  sh.total = (size_t)sh.days * tenants.n;
  sh.tenants = tenants.v;
  sh.tenant_used = es__calloc(tenants.n + 1, 1);
  if (!sh.tenant_used)
    ES_CHECK(ES_NOMEM_BKPT());
  if ((size_t)threads > sh.total)
    threads = sh.total ? (int)sh.total : 1;
  for (int i = 0; i < threads; i++) {
    w[i].db = db;
    w[i].dest = dest;
    es__xbuf_init(&w[i].xb);
    w[i].o = o;
    w[i].sh = &sh;
    w[i].main_thread = i == 0;
    w[i].ti = SIZE_MAX;
  }
  workers_run(w, threads);
  if (sh.rc != ES_OK)
    ES_CHECK(ES_ERR(sh.rc, "%s", sh.detail));
  ES_CHECK(export_end(dest, &sh, tenants.n));
  if (result_out)
    *result_out = sh.res;
err:
  for (size_t i = 0; i < tenants.n; i++)
    es__free(tenants.v[i]);
  es__free(tenants.v);
  es__free(sh.tenant_used);
  es__free(w);
  pthread_mutex_destroy(&sh.mu);
  return rc;
}

/* Exports tenants x days (eventstore.h). */
int es_export(es_db *db, const es_export_options *opts,
              es_export_result *result_out) {
  if (result_out)
    memset(result_out, 0, sizeof *result_out);
  if (!db || !opts)
    return ES_INVAL_BKPT("es_export: NULL argument");
  es_export_options o;
  es_export_options_init(&o);
  ES_TRY(es__abi_options_in(opts, &o, sizeof o, EXPORT_OPTS_SIZE_MIN,
                            "es_export_options"));
  ES_TRY(export_check(&o));
  /* recorded first (xreg.c, 1): an erasure re-cuts its partitions too */
  ES_TRY(es__xreg_add(db, o.out_dir, o.s3_endpoint, o.s3_region));
  es_xdest *dest = NULL;
  /* tests inject faults through db->vfs */
  ES_TRY(es__dest_open(o.out_dir, o.s3_endpoint, o.s3_region, db->vfs, &dest));
  int rc = es__export_dest(db, dest, &o, result_out);
  es__dest_close(dest);
  return rc;
}

/* ---- one tenant's partitions (stream.c, erase) --------------------------- */

/* A lone worker for one tenant (no shared state, no progress). */
static int single_init(ex_run *r, es_db *db, es_xdest *dest,
                       const es_export_options *o, const char *tenant) {
  memset(r, 0, sizeof *r);
  r->db = db;
  r->dest = dest;
  es__xbuf_init(&r->xb);
  r->o = *o;
  if (r->o.file_bytes_max == 0 || r->o.file_bytes_max == ES_EXPORT_FILE_BYTES)
    r->o.file_bytes_max =
        dest->os ? ES_EXPORT_S3_FILE_BYTES : ES_EXPORT_FILE_BYTES;
  r->ti = 0;
  snprintf(r->tenant, sizeof r->tenant, "%s", tenant);
  ES_TRY(es__tenant_check(tenant));
  return es__identity_load(db, tenant, &r->ids);
}

static void single_done(ex_run *r, es_export_result *res) {
  if (res) {
    res->partitions += r->res.partitions;
    res->files += r->res.files;
    res->rows += r->res.rows;
    res->bytes += r->res.bytes;
  }
  worker_free(r);
}

int es__export_ranges(es_db *db, es_xdest *dest, const es_export_options *o,
                      const char *tenant, int64_t day_us,
                      const ex_range *ranges, size_t nranges,
                      es_export_result *result_out) {
  ex_run r;
  int rc = single_init(&r, db, dest, o, tenant);
  if (rc == ES_OK)
    rc = partition_ranges(&r, day_us, ranges, nranges);
  single_done(&r, result_out);
  return rc;
}

/* The distinct ranges of a manifest's files, in order. */
static int refresh_ranges(const ex_manifest *m, ex_range **out, size_t *n) {
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  for (size_t i = 0; i < m->n; i++) {
    const ex_part *p = &m->files[i];
    int seen = 0;
    for (size_t k = 0; k < *n && !seen; k++)
      seen = (*out)[k].from_us == p->from_us && (*out)[k].to_us == p->to_us;
    if (seen)
      continue;
    ES_TRY(es__grow((void **)out, &cap, *n + 1, sizeof **out));
    (*out)[(*n)++] = (ex_range){p->from_us, p->to_us, -1};
  }
  return ES_OK;
}

int es__export_refresh(es_db *db, es_xdest *dest, const char *tenant,
                       const int64_t *days_us, size_t ndays,
                       es_export_result *result_out) {
  if (result_out)
    memset(result_out, 0, sizeof *result_out);
  if (!db || !dest || !tenant || (ndays && !days_us))
    return ES_INVAL_BKPT("es__export_refresh: NULL argument");
  es_export_options o;
  es_export_options_init(&o);
  int rc = ES_OK;
  for (size_t i = 0; i < ndays && rc == ES_OK; i++) {
    if (days_us[i] % DAY_US != 0)
      return ES_INVAL_BKPT("es__export_refresh: a day is not a midnight");
    char rel[ES_PATH_MAX];
    ex_manifest m;
    ES_TRY(es__export_partition_rel(rel, tenant, days_us[i]));
    ES_TRY(es__xmanifest_load(dest, rel, days_us[i], &m));
    ex_range *rg = NULL;
    size_t nrg = 0;
    rc = refresh_ranges(&m, &rg, &nrg);
    o.format = m.format;
    o.compression = m.compression;
    if (rc == ES_OK && m.present && nrg)
      rc = es__export_ranges(db, dest, &o, tenant, days_us[i], rg, nrg,
                             result_out);
    es__free(rg);
    es__xmanifest_free(&m);
  }
  return rc;
}

/* Every tenant of the store, sorted (es__free each name and the array). */
int es__export_tenants(es_db *db, char ***names_out, size_t *n_out) {
  name_list l = {0};
  int rc = tenants_all(db, &l);
  if (rc != ES_OK) {
    for (size_t i = 0; i < l.n; i++)
      es__free(l.v[i]);
    es__free(l.v);
    l.v = NULL;
    l.n = 0;
  }
  *names_out = l.v;
  *n_out = l.n;
  return rc;
}
