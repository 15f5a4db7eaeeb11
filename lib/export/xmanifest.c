/*
 * xmanifest.c -- a partition's _manifest.json: read (what the partition
 * is, for a re-export and for the continuous exporter's record) and
 * rendered.  docs/EXPORT.md shows the document.
 *
 * Each file entry names a part file with its rows, bytes and CRC-32, the
 * event-time range [from, to) it was cut from, and (continuous export)
 * "counted": the store's count of that range taken just before the cut,
 * which the exporter compares with the store's count later to find late
 * events.  Manifests written before ranges existed name none: their files
 * hold the whole day.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "base/isotime.h"
#include "base/mem.h"
#include "export/export.h"

#define EX_STR_(x) #x
#define EX_STR(x) EX_STR_(x)
#define LIB_VERSION                                                            \
  EX_STR(ES_VERSION_MAJOR)                                                     \
  "." EX_STR(ES_VERSION_MINOR) "." EX_STR(ES_VERSION_PATCH)

void es__xmanifest_free(ex_manifest *m) {
  es__free(m->files);
  memset(m, 0, sizeof *m);
}

int es__xmanifest_add(ex_manifest *m, const ex_part *p) {
  ES_TRY(es__grow((void **)&m->files, &m->cap, m->n + 1, sizeof *m->files));
  m->files[m->n++] = *p;
  return ES_OK;
}

static const char *str_at(yajl_val v, const char *key) {
  const char *path[] = {key, NULL};
  yajl_val s = yajl_tree_get(v, path, yajl_t_string);
  return s ? s->u.string : NULL;
}

static int num_at(yajl_val v, const char *key, int64_t *out) {
  const char *path[] = {key, NULL};
  yajl_val n = yajl_tree_get(v, path, yajl_t_number);
  if (!n || !YAJL_IS_INTEGER(n))
    return 0;
  *out = YAJL_GET_INTEGER(n);
  return 1;
}

/* What a part's name may hold (ours are part-NNNNN.parquet): nothing a
 * path or the rendered JSON would have to escape. */
#define NAME_CHARS                                                             \
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

/* One "files" entry; day_us is the range of an entry without one. */
static int parse_file(yajl_val f, int64_t day_us, ex_part *p) {
  memset(p, 0, sizeof *p);
  const char *name = str_at(f, "name"), *crc = str_at(f, "crc32");
  const char *from = str_at(f, "from"), *to = str_at(f, "to");
  int64_t rows = -1, bytes = -1;
  if (!name || !name[0] || strlen(name) >= sizeof p->name ||
      strspn(name, NAME_CHARS) != strlen(name) || name[0] == '.' ||
      strcmp(name, "_manifest.json") == 0 || !num_at(f, "rows", &rows) ||
      rows < 0 || !num_at(f, "bytes", &bytes) || bytes < 0)
    return ES_CORRUPT_BKPT("export: _manifest.json has a bad file entry");
  memcpy(p->name, name, strlen(name) + 1);
  p->rows = (uint64_t)rows;
  p->bytes = (uint64_t)bytes;
  p->crc = crc ? (uint32_t)strtoul(crc, NULL, 16) : 0;
  p->from_us = day_us;
  p->to_us = day_us + EX_DAY_US;
  if (from || to) {
    if (!from || !to || es__time_parse(from, 1, &p->from_us) != 0 ||
        es__time_parse(to, 1, &p->to_us) != 0 || p->from_us >= p->to_us ||
        p->from_us < day_us || p->to_us > day_us + EX_DAY_US)
      return ES_CORRUPT_BKPT("export: _manifest.json: file %s has a bad "
                             "range",
                             name);
  }
  p->counted = -1;
  int64_t c;
  if (num_at(f, "counted", &c) && c >= 0)
    p->counted = c;
  return ES_OK;
}

int es__xmanifest_parse(const uint8_t *buf, size_t len, int64_t day_us,
                        ex_manifest *m) {
  memset(m, 0, sizeof *m);
  char *text = es__malloc(len + 1);
  if (!text)
    return ES_NOMEM_BKPT();
  memcpy(text, buf, len);
  text[len] = 0;
  char err[128];
  yajl_val root = yajl_tree_parse(text, err, sizeof err);
  es__free(text);
  const char *files_path[] = {"files", NULL};
  yajl_val files = root ? yajl_tree_get(root, files_path, yajl_t_array) : NULL;
  int rc = ES_OK;
  if (!files) {
    rc = ES_CORRUPT_BKPT("export: _manifest.json has no files array");
    goto done;
  }
  const char *fmt = str_at(root, "format"), *comp = str_at(root, "compression");
  m->format =
      fmt && strcmp(fmt, "ndjson") == 0 ? ES_EXPORT_NDJSON : ES_EXPORT_PARQUET;
  m->compression = comp && strcmp(comp, "snappy") == 0 ? ES_EXPORT_SNAPPY
                   : comp && strcmp(comp, "none") == 0 ? ES_EXPORT_UNCOMPRESSED
                                                       : ES_EXPORT_ZSTD;
  for (size_t i = 0; i < files->u.array.len && rc == ES_OK; i++) {
    ex_part p;
    rc = parse_file(files->u.array.values[i], day_us, &p);
    if (rc == ES_OK)
      rc = es__xmanifest_add(m, &p);
  }
  m->present = 1;
done:
  yajl_tree_free(root);
  if (rc != ES_OK)
    es__xmanifest_free(m);
  return rc;
}

int es__xmanifest_load(es_xdest *d, const char *rel, int64_t day_us,
                       ex_manifest *m) {
  memset(m, 0, sizeof *m);
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = es__dest_read(d, rel, "_manifest.json", &buf, &len);
  if (rc == ES_ENOTFOUND)
    return ES_OK;
  ES_TRY(rc);
  rc = es__xmanifest_parse(buf, len, day_us, m);
  es__free(buf);
  return rc;
}

int es__xmanifest_render(es_buf *b, const char *tenant, const char *day,
                         int format, int compression, int64_t cut_us,
                         uint64_t generation, const ex_manifest *m) {
  char ts[EX_TS_SIZE], from[EX_TS_SIZE], to[EX_TS_SIZE];
  b->len = 0;
  es__export_fmt_ts(cut_us, ts);
  uint64_t rows = 0, bytes = 0;
  for (size_t i = 0; i < m->n; i++) {
    rows += m->files[i].rows;
    bytes += m->files[i].bytes;
  }
  char head[1024 + 2 * EX_TS_SIZE];
  snprintf(head, sizeof head,
           "{\"version\":1,\"tenant\":\"%s\",\"date\":\"%s\","
           "\"format\":\"%s\",\"compression\":\"%s\",\"rows\":%" PRIu64
           ",\"bytes\":%" PRIu64 ",\"source\":{\"cut_at\":\"%s\","
           "\"tenant_manifest_generation\":%" PRIu64
           ",\"library\":\"%s\"},\"files\":[",
           tenant, day, format == ES_EXPORT_NDJSON ? "ndjson" : "parquet",
           format == ES_EXPORT_NDJSON              ? "gzip"
           : compression == ES_EXPORT_SNAPPY       ? "snappy"
           : compression == ES_EXPORT_UNCOMPRESSED ? "none"
                                                   : "zstd",
           rows, bytes, ts, generation, LIB_VERSION);
  ES_TRY(es__buf_put(b, head, strlen(head)));
  for (size_t i = 0; i < m->n; i++) {
    const ex_part *p = &m->files[i];
    char f[512], counted[48] = "";
    es__export_fmt_ts(p->from_us, from);
    es__export_fmt_ts(p->to_us, to);
    if (p->counted >= 0)
      snprintf(counted, sizeof counted, ",\"counted\":%" PRId64, p->counted);
    snprintf(f, sizeof f,
             "%s{\"name\":\"%s\",\"rows\":%" PRIu64 ",\"bytes\":%" PRIu64
             ",\"crc32\":\"%08" PRIx32 "\",\"from\":\"%s\",\"to\":\"%s\"%s}",
             i ? "," : "", p->name, p->rows, p->bytes, p->crc, from, to,
             counted);
    ES_TRY(es__buf_put(b, f, strlen(f)));
  }
  return es__buf_put(b, "]}\n", 3);
}

int es__export_partition_rel(char *out, const char *tenant, int64_t day_us) {
  char day[EX_TS_SIZE];
  es__export_fmt_day(day_us, day);
  int n = snprintf(out, ES_PATH_MAX, "tenant=%s/date=%s", tenant, day);
  return n > 0 && n < ES_PATH_MAX ? ES_OK
                                  : ES_INVAL_BKPT("export: tenant too long");
}
