/*
 * fuzz_replrec.c -- fuzz target: the uploader's record of what is
 * confirmed in the object store (tenants/<t>/REPLICA,
 * lib/replicate/replrec.c), read at every start of a replicated store.
 *
 * Properties beyond "no crash, no leak":
 *  1. The decoder answers ES_OK, ES_ECORRUPT, ES_EVERSION or ES_ENOMEM.
 *  2. An accepted record has distinct, non-empty names without '/', and
 *     encodes back to exactly the input bytes (one encoding per record).
 */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "fuzz_util.h"
#include "replicate/replicate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = fuzz_dup(data, size);
  es_replrec rec;
  int rc = es__replrec_decode("fuzz", buf, size, &rec);
  FUZZ_ASSERT(rc == ES_OK || rc == ES_ECORRUPT || rc == ES_EVERSION ||
              rc == ES_ENOMEM);
  if (rc == ES_OK) {
    for (size_t i = 0; i < rec.n; i++) {
      FUZZ_ASSERT(rec.e[i].name[0] != '\0');
      FUZZ_ASSERT(strchr(rec.e[i].name, '/') == NULL);
      for (size_t j = i + 1; j < rec.n; j++)
        FUZZ_ASSERT(strcmp(rec.e[i].name, rec.e[j].name) != 0);
    }
    uint8_t *out = NULL;
    size_t len = 0;
    if (es__replrec_encode(&rec, &out, &len) == ES_OK) {
      /* entries come back in their order of first appearance */
      FUZZ_ASSERT(len == size && memcmp(out, data, size) == 0);
      es__free(out);
    }
    es__replrec_free(&rec);
  }
  free(buf);
  return 0;
}
