/*
 * fuzz_rollidx.c -- fuzz target: the tenant's rollup index file, ROLLIDX
 * (lib/store/setrollup.c; docs/FORMAT.md, "ROLLIDX"), which a query's
 * first use of a tenant reads instead of every segment's rollup.
 *
 * The input is checked twice: as it is, and with its header checksum made
 * right (so the fuzzer reaches the key and the two levels).
 *
 * Properties beyond "no crash, no leak":
 *  1. A parsed head's key and levels lie inside the image, one after the
 *     other, up to its end.
 *  2. An image that checks decodes to two levels whose cells are all at
 *     minute 0, level 1's without event or path.
 */
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "fuzz_util.h"
#include "store/rollup.h"

static void check(const uint8_t *p, size_t n) {
  es_rollidx_head h;
  if (es__rollidx_parse(p, n, "ROLLIDX", &h) != ES_OK)
    return;
  FUZZ_ASSERT(h.key == p + 16);
  FUZZ_ASSERT(h.lvl_off[0] == 16 + (size_t)h.nsegs * 16 + 24);
  FUZZ_ASSERT(h.lvl_off[1] == h.lvl_off[0] + h.lvl_len[0]);
  FUZZ_ASSERT(h.lvl_off[1] + h.lvl_len[1] == n);
  if (es__rollidx_check(p, n, "ROLLIDX") != ES_OK)
    return;
  for (int k = 0; k < 2; k++) {
    es_rollup r;
    FUZZ_ASSERT(es__rollup_decode(p + h.lvl_off[k], h.lvl_len[k], "ROLLIDX",
                                  &r) == ES_OK);
    for (size_t i = 0; i < r.n; i++) {
      const es_rcell *c = &r.cells[i];
      FUZZ_ASSERT(c->minute == 0);
      FUZZ_ASSERT(k == 0 || (c->event == 0 && c->path == 0));
    }
    es__rollup_free(&r);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check(data, size);
  if (size < 16 + 24 || size > (1u << 20))
    return 0;
  uint32_t nsegs = es__get_le32(data + 12);
  if (nsegs > (size - 40) / 16)
    return 0;
  size_t head = 16 + (size_t)nsegs * 16;
  uint8_t *img = malloc(size);
  if (!img)
    return 0;
  memcpy(img, data, size);
  memcpy(img, "ESRLIDX1", 8);
  es__le64(img + head + 16, es__hash64(img, head + 16, 0x726978));
  check(img, size);
  free(img);
  return 0;
}
