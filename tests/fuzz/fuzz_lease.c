/*
 * fuzz_lease.c -- fuzz target: the tenant lease object (leases/<tenant>,
 * lib/replicate/lease.c), read from the bucket by every cluster node at
 * every takeover and renewal conflict.
 *
 * Properties beyond "no crash, no leak":
 *  1. The decoder answers ES_OK or ES_ECORRUPT.
 *  2. An accepted lease has a generation above 0, valid node names, and
 *     encodes back to exactly the input bytes (one encoding per lease).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "replicate/lease.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = fuzz_dup(data, size);
  es_lease l;
  memset(&l, 0, sizeof(l));
  int rc = es__lease_decode("fuzz", buf, size, &l);
  FUZZ_ASSERT(rc == ES_OK || rc == ES_ECORRUPT);
  if (rc == ES_OK) {
    FUZZ_ASSERT(l.gen > 0);
    FUZZ_ASSERT(es__lease_node_check(l.owner) == ES_OK);
    FUZZ_ASSERT(l.want[0] == '\0' || es__lease_node_check(l.want) == ES_OK);
    char out[ES_LEASE_BYTES_MAX + 1];
    size_t len = 0;
    FUZZ_ASSERT(es__lease_encode(&l, out, sizeof(out), &len) == ES_OK);
    FUZZ_ASSERT(len == size && memcmp(out, data, size) == 0);
  }
  free(buf);
  return 0;
}
