/*
 * fuzz_query_spec.c -- fuzz target: the query spec parser
 * (es__query_spec_parse) and the ISO 8601 times it reads.
 *
 * The input, cut at its first NUL, is parsed as a spec; then as a time.
 *
 * Properties beyond "no crash, no leak":
 *  1. A spec parsed successfully is valid: from <= to, at most three
 *     distinct groupBy keys, at least one aggregate, a known order, a
 *     bucket of none/minute/hour/day, a limit no larger than the cap.
 *  2. A spec that fails sets an error detail that names the spec.
 *  3. A time that parses formats to a text that parses to the same time,
 *     and formatting it again gives the same text (a fixed point).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "engine/query.h"

static void spec_check(const char *text) {
  es_query_spec spec;
  int rc = es__query_spec_parse(text, &spec);
  if (rc != ES_OK) {
    FUZZ_ASSERT(rc == ES_EINVAL || rc == ES_ENOMEM);
    FUZZ_ASSERT(rc != ES_EINVAL || strstr(es_errdetail(), "spec") != NULL);
    return;
  }
  FUZZ_ASSERT(spec.from_us <= spec.to_us);
  FUZZ_ASSERT(spec.nkeys >= 0 && spec.nkeys <= ES_QKEYS_MAX);
  for (int i = 0; i < spec.nkeys; i++) {
    FUZZ_ASSERT(spec.keys[i] >= ES_QKEY_EVENT && spec.keys[i] <= ES_QKEY_TYPE);
    for (int j = 0; j < i; j++)
      FUZZ_ASSERT(spec.keys[i] != spec.keys[j]);
  }
  FUZZ_ASSERT(spec.count || spec.uniques);
  FUZZ_ASSERT(spec.order >= ES_QORDER_KEY && spec.order <= ES_QORDER_ASC);
  FUZZ_ASSERT(spec.bucket_us == 0 || spec.bucket_us == 60000000LL ||
              spec.bucket_us == 3600000000LL ||
              spec.bucket_us == 86400000000LL);
  FUZZ_ASSERT(spec.limit <= ES_QUERY_ROWS_MAX);
  es__query_spec_free(&spec);
}

/* Every time either mode accepts formats back (both ways) to itself;
 * strict accepts nothing the lenient mode refuses. */
static void time_check(const char *text) {
  for (int strict = 0; strict <= 1; strict++)
    for (int micros = 0; micros <= 1; micros++) {
      int64_t us = 0, again = 0;
      if (es__time_parse(text, strict, &us) != 0)
        continue;
      FUZZ_ASSERT(!strict || es__time_parse(text, 0, &again) == 0);
      char a[ES_TIME_TEXT_SIZE], b[ES_TIME_TEXT_SIZE];
      FUZZ_ASSERT(es__time_format(us, micros, a, sizeof(a)) > 0);
      FUZZ_ASSERT(es__time_parse(a, 1, &again) == 0);
      FUZZ_ASSERT(again == us);
      es__time_format(again, micros, b, sizeof(b));
      FUZZ_ASSERT(strcmp(a, b) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  spec_check(text);
  time_check(text);
  free(text);
  return 0;
}
