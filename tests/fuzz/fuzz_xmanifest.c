/*
 * fuzz_xmanifest.c -- fuzz target: a partition's _manifest.json as the
 * export reads it back (lib/export/xmanifest.c): at every re-export, and
 * by the continuous exporter at start (the destination is its record),
 * from a directory or an S3 prefix anybody with write access may touch.
 *
 * Properties beyond "no crash, no leak":
 *  1. The parser answers ES_OK, ES_ECORRUPT or ES_ENOMEM.
 *  2. An accepted manifest's files have safe names (no '/', nothing to
 *     escape) and ranges inside the partition's day.
 *  3. Rendering an accepted manifest and parsing it again gives the same
 *     files (name, rows, bytes, CRC-32, range, count).
 */
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "export/export.h"
#include "fuzz_util.h"

#define DAY_US (INT64_C(20412) * EX_DAY_US) /* 2025-11-20 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ex_manifest m;
  int rc = es__xmanifest_parse(data, size, DAY_US, &m);
  FUZZ_ASSERT(rc == ES_OK || rc == ES_ECORRUPT || rc == ES_ENOMEM);
  if (rc != ES_OK)
    return 0;
  for (size_t i = 0; i < m.n; i++) {
    const ex_part *p = &m.files[i];
    FUZZ_ASSERT(p->name[0] && !strchr(p->name, '/') && !strchr(p->name, '"'));
    FUZZ_ASSERT(p->from_us >= DAY_US && p->to_us <= DAY_US + EX_DAY_US &&
                p->from_us < p->to_us);
  }
  es_buf b = {0};
  if (es__xmanifest_render(&b, "t", "2025-11-20", m.format, m.compression, 0,
                           1, &m) == ES_OK) {
    ex_manifest m2;
    rc = es__xmanifest_parse(b.data, b.len, DAY_US, &m2);
    FUZZ_ASSERT(rc == ES_OK || rc == ES_ENOMEM);
    if (rc == ES_OK) {
      FUZZ_ASSERT(m2.n == m.n && m2.format == m.format);
      for (size_t i = 0; i < m.n; i++) {
        const ex_part *x = &m.files[i], *y = &m2.files[i];
        FUZZ_ASSERT(strcmp(x->name, y->name) == 0 && x->rows == y->rows &&
                    x->bytes == y->bytes && x->crc == y->crc &&
                    x->from_us == y->from_us && x->to_us == y->to_us &&
                    x->counted == y->counted);
      }
      es__xmanifest_free(&m2);
    }
  }
  es__buf_free(&b);
  es__xmanifest_free(&m);
  return 0;
}
