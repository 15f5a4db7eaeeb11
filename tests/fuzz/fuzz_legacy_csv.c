/*
 * fuzz_legacy_csv.c -- fuzz target: `esctl import`'s CSV path
 * (cmd/common/legacy_csv.c): the column-mapping file, CSV records as
 * PostgreSQL's COPY CSV writes them, and a mapped row as Segment JSON.
 *
 * Input: the mapping file, a NUL byte, then the CSV (header first).
 * Without a NUL the whole input is the CSV and a fixed mapping is used.
 *
 * Properties beyond "no crash, no leak":
 *  1. csv_record consumes at least one byte whenever it returns a record
 *     or an error, never more than it was given, and at the end of input
 *     with bytes left it never asks for more.
 *  2. Fed the same bytes in growing prefixes (as the importer reads a
 *     file), it returns the same records as over the whole input: a
 *     record returned before the end of input is never cut short.
 *  3. A decoded record written back as CSV (every field quoted, or left
 *     empty and unquoted for a NULL) decodes to the same fields.
 *  4. A row csv_map_row accepts is one JSON object yajl parses, and
 *     seg_event_parse either takes it or names why not.
 */
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "common/legacy_csv.h"
#include "fuzz_util.h"

#define FUZZ_CSV_BYTES_MAX 4096 /* property 2 is quadratic */

static const char default_map[] =
    "messageId = id\ntype = kind\nevent = name\nuserId = user\n"
    "anonymousId = anon\ntimestamp = at\nproperties = props\n"
    "context.page.path = path\ncontext.ip = \"127.0.0.1\"\n";

/* Property 3: re-encode r and decode it again. */
static void check_roundtrip(const csv_rec *r) {
  seg_buf b;
  seg_buf_init(&b);
  for (size_t i = 0; i < r->count; i++) {
    const csv_field *f = &r->f[i];
    if (i)
      FUZZ_ASSERT(seg_buf_put(&b, ",", 1) == 0);
    if (f->len == 0 && !f->quoted)
      continue;
    FUZZ_ASSERT(seg_buf_put(&b, "\"", 1) == 0);
    for (size_t k = 0; k < f->len; k++) {
      char c = r->text.data[f->off + k];
      FUZZ_ASSERT(seg_buf_put(&b, &c, 1) == 0);
      if (c == '"')
        FUZZ_ASSERT(seg_buf_put(&b, "\"", 1) == 0);
    }
    FUZZ_ASSERT(seg_buf_put(&b, "\"", 1) == 0);
  }
  FUZZ_ASSERT(seg_buf_put(&b, "\n", 1) == 0);
  csv_rec again;
  csv_rec_init(&again);
  size_t used;
  char err[CSV_ERR_SIZE];
  FUZZ_ASSERT(csv_record(b.data, b.len, 1, &again, &used, err, sizeof err) ==
              1);
  FUZZ_ASSERT(used == b.len && again.count == r->count);
  for (size_t i = 0; i < r->count; i++) {
    FUZZ_ASSERT(again.f[i].len == r->f[i].len);
    FUZZ_ASSERT(memcmp(again.text.data + again.f[i].off,
                       r->text.data + r->f[i].off, r->f[i].len) == 0);
  }
  csv_rec_free(&again);
  seg_buf_free(&b);
}

/* Property 2: the record at csv[0..] decoded from growing prefixes. */
static void check_prefixes(const char *csv, size_t len, int rc_full,
                           const csv_rec *full, size_t used_full) {
  csv_rec r;
  csv_rec_init(&r);
  char err[CSV_ERR_SIZE];
  for (size_t k = 1; k < len; k++) {
    size_t used;
    int rc = csv_record(csv, k, 0, &r, &used, err, sizeof err);
    if (rc == 0)
      continue;
    FUZZ_ASSERT(rc == rc_full && used == used_full);
    if (rc == 1) {
      FUZZ_ASSERT(r.count == full->count && r.text.len == full->text.len);
      FUZZ_ASSERT(memcmp(r.text.data, full->text.data, r.text.len) == 0);
    }
    break;
  }
  csv_rec_free(&r);
}

/* Property 4 for one record through a bound mapping. */
static void check_row(const csv_map *m, const csv_rec *r, size_t header_n) {
  seg_buf out;
  seg_buf_init(&out);
  char err[CSV_ERR_SIZE];
  if (csv_map_row(m, r, header_n, &out, err, sizeof err) == 0) {
    FUZZ_ASSERT(out.data != NULL);
    yajl_val v = memchr(out.data, 0, out.len)
                     ? NULL
                     : yajl_tree_parse(out.data, NULL, 0);
    /* a NUL byte is escaped, so the text never holds one */
    FUZZ_ASSERT(v != NULL && YAJL_IS_OBJECT(v));
    yajl_tree_free(v);
    seg_event se;
    char serr[SEG_ERR_SIZE];
    if (seg_event_parse(&se, out.data, out.len, -1, serr, sizeof serr) == 0)
      seg_event_free(&se);
    else
      FUZZ_ASSERT(serr[0] != '\0');
  } else {
    FUZZ_ASSERT(err[0] != '\0');
  }
  seg_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  const char *nul = memchr(in, '\0', size);
  const char *map_text = nul ? in : default_map;
  size_t map_len = nul ? (size_t)(nul - in) : strlen(default_map);
  const char *csv = nul ? nul + 1 : in;
  size_t len = nul ? size - map_len - 1 : size;
  if (len > FUZZ_CSV_BYTES_MAX)
    return 0;
  csv_map m;
  char err[CSV_ERR_SIZE];
  int have_map = csv_map_parse(map_text, map_len, &m, err, sizeof err) == 0;
  if (!have_map)
    FUZZ_ASSERT(err[0] != '\0' && m.count == 0);
  csv_rec header, rec;
  csv_rec_init(&header);
  csv_rec_init(&rec);
  int bound = 0, first = 1;
  size_t at = 0;
  while (at < len) {
    csv_rec *r = first ? &header : &rec;
    size_t used;
    int rc = csv_record(csv + at, len - at, 1, r, &used, err, sizeof err);
    FUZZ_ASSERT(rc != 0); /* property 1: bytes left at EOF */
    FUZZ_ASSERT(used > 0 && used <= len - at);
    check_prefixes(csv + at, len - at, rc, r, used);
    if (rc == 1) {
      check_roundtrip(r);
      if (first && have_map)
        bound = csv_map_bind(&m, &header, err, sizeof err) == 0;
      else if (bound)
        check_row(&m, &rec, header.count);
      first = 0;
    } else {
      FUZZ_ASSERT(err[0] != '\0');
    }
    at += used;
  }
  if (have_map)
    csv_map_free(&m);
  csv_rec_free(&header);
  csv_rec_free(&rec);
  return 0;
}
