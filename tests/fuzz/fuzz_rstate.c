/*
 * fuzz_rstate.c -- fuzz target: the rule state file, RSTATE
 * (lib/engine/rulestate.c; docs/FORMAT.md, "RSTATE"), which an open reads
 * to take rule counters without a scan.
 *
 * The input is parsed as an RSTATE image twice: as it is, and with its
 * trailing checksum made right (so the fuzzer reaches the sections).
 *
 * Properties beyond "no crash, no leak":
 *  1. An image that parses holds at most ES_RULES_MAX rules, each in
 *     canonical form, with at most ES_RULE_SERIES_MAX points in ascending
 *     hours and visitors whose 1..atLeast times ascend.
 *  2. It encodes again to an image that parses and encodes to itself
 *     (varints need not be minimal in the input, so not to the input).
 */
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "base/mem.h"
#include "engine/rules.h"
#include "fuzz_util.h"

static void check(const uint8_t *p, size_t n, int again) {
  es_rstate st;
  if (es__rstate_parse(p, n, "RSTATE", &st) == ES_OK) {
    FUZZ_ASSERT(st.rules.n <= ES_RULES_MAX);
    for (size_t i = 0; i < st.rules.n; i++) {
      const es_rule *r = st.rules.v[i];
      FUZZ_ASSERT(r->nseries <= ES_RULE_SERIES_MAX);
      for (size_t k = 1; k < r->nseries; k++)
        FUZZ_ASSERT(r->series[k].hour_us > r->series[k - 1].hour_us);
      for (size_t k = 0; k < r->n; k++) {
        const es_rvisitor *v = es__rule_visitor(r, k);
        FUZZ_ASSERT(v->n >= 1 && v->n <= r->at_least && v->id[0]);
        for (uint32_t j = 1; j < v->n; j++)
          FUZZ_ASSERT(v->ts[j] >= v->ts[j - 1]);
      }
    }
    es_buf b = {0};
    if (es__rstate_encode(&b, st.lsn, &st.rules, NULL, NULL) == ES_OK) {
      if (again) /* an encoder's image: visitors in the order filed */
        FUZZ_ASSERT(b.len == n && memcmp(b.data, p, n) == 0);
      else
        check(b.data, b.len, 1);
    }
    es__buf_free(&b);
  }
  else
    FUZZ_ASSERT(!again);
  es__rules_free(&st.rules);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check(data, size, 0);
  if (size >= 32) {
    uint8_t *fixed = malloc(size);
    if (!fixed)
      return 0;
    memcpy(fixed, data, size);
    es__le64(fixed + size - 8, es__hash64(fixed, size - 8, 0));
    check(fixed, size, 0);
    free(fixed);
  }
  return 0;
}
