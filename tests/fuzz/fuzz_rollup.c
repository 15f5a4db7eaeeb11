/*
 * fuzz_rollup.c -- fuzz target: rollup files (lib/rollup.c, .rlp).
 *
 * The input is decoded three times: as a whole file image, and as a body
 * that this target wraps in a valid header (compressed, checksums
 * computed as docs/FORMAT.md says) of version 1 and of version 2 (with
 * dimension cells), so the fuzzer reaches both body parsers past the
 * checksums.
 *
 * Properties beyond "no crash, no leak":
 *  1. A decoded rollup is sorted by minute, its cells have counts >= 1,
 *     types 1..6, a dimension 0..6 (above 0 only in version 2), string ids
 *     within its table; a dimension cell has no event or path.
 *  2. Canonical form: encoding a decoded rollup and decoding that again
 *     gives the same bytes when encoded a second time.
 */
#include <stdlib.h>

#include "base/codec.h"
#include "fuzz_util.h"
#include "store/dims.h"
#include "store/rollup.h"

static void rollup_check(const uint8_t *img, size_t size) {
  es_rollup r;
  if (es__rollup_decode(img, size, "fuzz.rlp", &r) != ES_OK)
    return;
  size_t nstr = es__strtab_count(&r.strs);
  for (size_t i = 0; i < r.n; i++) {
    const es_rcell *c = &r.cells[i];
    FUZZ_ASSERT(c->count >= 1 && c->type >= 1 && c->type <= 6);
    FUZZ_ASSERT(c->event < nstr && c->path < nstr && c->value < nstr);
    FUZZ_ASSERT(c->dim < ES_DIM_COUNT && (r.version >= 2 || c->dim == 0));
    FUZZ_ASSERT(c->dim == 0 ? c->value == 0 : !c->event && !c->path);
    FUZZ_ASSERT(i == 0 || r.cells[i - 1].minute <= c->minute);
  }
  es_buf a = {0}, b = {0};
  if (es__rollup_encode(&r, &a) == ES_OK) {
    es_rollup again;
    FUZZ_ASSERT(es__rollup_decode(a.data, a.len, "a.rlp", &again) == ES_OK);
    FUZZ_ASSERT(es__rollup_encode(&again, &b) == ES_OK);
    FUZZ_ASSERT(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    es__rollup_free(&again);
  }
  es__buf_free(&a);
  es__buf_free(&b);
  es__rollup_free(&r);
}

/* Wraps a body in a header whose lengths and checksums are right. */
static void body_check(const uint8_t *body, size_t size, uint32_t version) {
  size_t bound = es__lz4_bound(size);
  uint8_t *img = malloc(48 + bound);
  if (!img)
    return;
  size_t clen = es__lz4_compress(body, size, img + 48, bound);
  if (clen > 0 || size == 0) {
    memcpy(img, "ESROLLUP", 8);
    es__le32(img + 8, version);
    es__le32(img + 12, 0);
    es__le64(img + 16, size);
    es__le64(img + 24, clen);
    es__le64(img + 32, es__hash64(img + 48, clen, 0x726c70));
    es__le64(img + 40, es__hash64(img, 40, 0x726c70));
    rollup_check(img, 48 + clen);
  }
  free(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rollup_check(data, size);
  body_check(data, size, 1);
  body_check(data, size, 2);
  return 0;
}
