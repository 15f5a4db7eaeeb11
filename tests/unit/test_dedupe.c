/*
 * test_dedupe.c -- unit tests of es-ingestd's messageId sets
 * (cmd/ingestd/dedupe.c); the fuzz target fuzz_ingest_body checks the set
 * against a model on arbitrary ids.
 *
 * What must hold:
 *  1. add says whether the id was new (0) or there already (1); remove
 *     forgets it.
 *  2. A set remembers exactly its last ids_max ids.
 *  3. Sets sharing a pool never hold more than the pool allows (beyond
 *     each one's first, always allowed, allocation): a set that cannot
 *     grow remembers its last ring_cap ids instead, the refusals are
 *     counted, and memory freed by one set lets another grow.
 */
#include <stdint.h>
#include <stdlib.h>

#include <check.h>

#include "ingest/dedupe.h"
#include "unit.h"

static uint64_t id(uint64_t set, uint64_t i) {
  return ing_dedupe_hash((char[32]){0}) ^ (set << 40) ^ (i * 2 + 1);
}

START_TEST(test_add_remove) {
  ing_dedupe d;
  ing_dedupe_init(&d, 100, NULL);
  ck_assert_int_eq(ing_dedupe_has(&d, 7), 0);
  ck_assert_int_eq(ing_dedupe_add(&d, 7), 0);
  ck_assert_int_eq(ing_dedupe_add(&d, 7), 1);
  ck_assert_int_eq(ing_dedupe_has(&d, 7), 1);
  ing_dedupe_remove(&d, 7);
  ck_assert_int_eq(ing_dedupe_has(&d, 7), 0);
  ck_assert_int_eq(ing_dedupe_add(&d, 7), 0);
  ck_assert_uint_ne(ing_dedupe_hash("a"), 0);
  ck_assert_uint_ne(ing_dedupe_hash("a"), ing_dedupe_hash("b"));
  ing_dedupe_free(&d);
}
END_TEST

START_TEST(test_window) {
  ing_dedupe d;
  ing_dedupe_init(&d, 1000, NULL);
  for (uint64_t i = 0; i < 3000; i++)
    ck_assert_int_eq(ing_dedupe_add(&d, id(0, i)), 0);
  for (uint64_t i = 0; i < 3000; i++)
    ck_assert_int_eq(ing_dedupe_has(&d, id(0, i)), i >= 2000);
  ck_assert_uint_eq(d.len, 1000);
  ing_dedupe_free(&d);
}
END_TEST

START_TEST(test_pool) {
  ing_dedupe_pool pool = {.bytes_max = 70000}; /* a: 48 KiB, b: 12 KiB */
  ing_dedupe a, b;
  ing_dedupe_init(&a, 1000000, &pool);
  ing_dedupe_init(&b, 1000000, &pool);
  ck_assert_int_eq(ing_dedupe_add(&b, id(1, 0)), 0);
  size_t b_first = b.bytes; /* 512 ids: ring and table */
  ck_assert_uint_gt(b_first, 0);
  for (uint64_t i = 0; i < 20000; i++)
    ck_assert_int_eq(ing_dedupe_add(&a, id(0, i)), 0);
  ck_assert_uint_eq(pool.bytes, a.bytes + b.bytes);
  ck_assert_uint_le(pool.bytes, pool.bytes_max);
  ck_assert_uint_gt(pool.refused, 0);
  /* a kept its last ring_cap ids, forgot the older */
  ck_assert_uint_lt(a.ring_cap, 20000);
  ck_assert_uint_eq(a.len, a.ring_cap);
  for (uint64_t i = 0; i < 20000; i++)
    ck_assert_int_eq(ing_dedupe_has(&a, id(0, i)), i >= 20000 - a.ring_cap);
  /* b cannot grow past its first allocation now, but keeps working */
  for (uint64_t i = 1; i < 2000; i++)
    ck_assert_int_eq(ing_dedupe_add(&b, id(1, i)), 0);
  ck_assert_uint_eq(b.bytes, b_first);
  ck_assert_int_eq(ing_dedupe_has(&b, id(1, 1999)), 1);
  ck_assert_int_eq(ing_dedupe_has(&b, id(1, 0)), 0);
  /* a's memory back in the pool: b grows again */
  ing_dedupe_free(&a);
  ck_assert_uint_eq(pool.bytes, b.bytes);
  for (uint64_t i = 2000; i < 4000; i++)
    ck_assert_int_eq(ing_dedupe_add(&b, id(1, i)), 0);
  ck_assert_uint_gt(b.bytes, b_first);
  for (uint64_t i = 2000; i < 4000; i++)
    ck_assert_int_eq(ing_dedupe_has(&b, id(1, i)), 1);
  ing_dedupe_free(&b);
  ck_assert_uint_eq(pool.bytes, 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("dedupe");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_add_remove);
  tcase_add_test(tc, test_window);
  tcase_add_test(tc, test_pool);
  suite_add_tcase(s, tc);
  return ut_main(s);
}
