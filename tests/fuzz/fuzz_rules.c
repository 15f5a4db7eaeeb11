/*
 * fuzz_rules.c -- fuzz target: the small per-tenant metadata that is not
 * covered elsewhere: RULES files and rule JSON (lib/rules.c), and the
 * identity log of unlink records (lib/identity.c).
 *
 * The input is parsed as a RULES image, as the JSON of one rule (cut at
 * its first NUL), and as an identity log.
 *
 * Properties beyond "no crash, no leak":
 *  1. A RULES image that parses holds at most ES_RULES_MAX rules, each
 *     valid (name, atLeast 1..1000, within > 0) and canonical: parsing a
 *     rule's JSON again gives the same JSON.
 *  2. A rule JSON that parses has a canonical form that parses to itself.
 *  3. The identity log parse stops within the input, and parsing the
 *     valid prefix again yields the same records and the same end.
 */
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "engine/identity.h"
#include "engine/rules.h"
#include "fuzz_util.h"

static void rule_json_check(const char *json) {
  es_rule *r = NULL;
  if (es__rule_parse(json, &r) != ES_OK) {
    FUZZ_ASSERT(r == NULL);
    return;
  }
  FUZZ_ASSERT(r->at_least >= 1 && r->at_least <= ES_RULE_AT_LEAST_MAX);
  FUZZ_ASSERT(r->within_us > 0);
  es_rule *again = NULL;
  FUZZ_ASSERT(es__rule_parse(r->json, &again) == ES_OK);
  FUZZ_ASSERT(strcmp(again->json, r->json) == 0);
  es__rule_free(again);
  es__rule_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  es_rules rules;
  memset(&rules, 0, sizeof(rules));
  if (es__rules_parse(data, size, "RULES", &rules) == ES_OK) {
    FUZZ_ASSERT(rules.n <= ES_RULES_MAX);
    for (size_t i = 0; i < rules.n; i++)
      rule_json_check(rules.v[i]->json);
  }
  es__rules_free(&rules);

  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  rule_json_check(text);
  free(text);

  es_identity *m = NULL, *m2 = NULL;
  if (es__identity_new(&m) == ES_OK && es__identity_new(&m2) == ES_OK) {
    size_t end = 0, end2 = 0;
    if (es__identity_log_parse(m, data, size, "fuzz", &end) == ES_OK) {
      FUZZ_ASSERT(end <= size);
      FUZZ_ASSERT(es__identity_log_parse(m2, data, end, "fuzz", &end2) ==
                  ES_OK);
      FUZZ_ASSERT(end2 == end);
    }
  }
  es__identity_free(m);
  es__identity_free(m2);

  /* the input as one record's payload, with its length and checksum
   * right, so the fuzzer reaches the payload parser */
  uint8_t *rec = malloc(size + 12);
  if (rec && es__identity_new(&m) == ES_OK) {
    es__le32(rec, (uint32_t)size);
    es__le64(rec + 4, es__hash64(data, size, 0x1d10));
    memcpy(rec + 12, data, size);
    size_t end = 0;
    if (es__identity_log_parse(m, rec, size + 12, "fuzz", &end) == ES_OK)
      FUZZ_ASSERT(end == 0 || end == size + 12);
    es__identity_free(m);
  }
  free(rec);
  return 0;
}
