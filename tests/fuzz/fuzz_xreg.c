/*
 * fuzz_xreg.c -- fuzz target: a record of an export destination
 * (DATA/exports/dest-*, lib/export/xreg.c), read by every erasure's stage
 * (f).
 *
 * Properties beyond "no crash, no leak":
 *  1. The parser answers ES_OK, ES_ECORRUPT or ES_ENOMEM.
 *  2. An accepted record has a non-empty URL, and encoding its fields
 *     again parses back to the same fields.
 */
#include <stdlib.h>
#include <string.h>

#include "export/xreg.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = fuzz_dup(data, size);
  es_xreg_entry e;
  int rc = es__xreg_parse(buf, size, "fuzz", &e);
  FUZZ_ASSERT(rc == ES_OK || rc == ES_ECORRUPT || rc == ES_ENOMEM);
  if (rc == ES_OK) {
    FUZZ_ASSERT(e.url[0] != '\0');
    es_buf b = {0};
    char name[32];
    if (es__xreg_encode(e.url, e.endpoint, e.region, &b, name) == ES_OK) {
      es_xreg_entry back;
      int brc = es__xreg_parse(b.data, b.len, "fuzz", &back);
      FUZZ_ASSERT(brc == ES_OK || brc == ES_ENOMEM);
      if (brc == ES_OK) {
        FUZZ_ASSERT(strcmp(back.url, e.url) == 0 &&
                    strcmp(back.endpoint, e.endpoint) == 0 &&
                    strcmp(back.region, e.region) == 0);
        es__xreg_entry_free(&back);
      }
      FUZZ_ASSERT(strncmp(name, "dest-", 5) == 0 && strlen(name) == 21);
    }
    es__buf_free(&b);
    es__xreg_entry_free(&e);
  }
  free(buf);
  return 0;
}
