/*
 * test_hashtab.c -- unit tests of lib/base/hashtab.{h,c}, the one
 * open-addressing table, checked against a plain array model.
 *
 * What must hold (hashtab.h):
 *  1. Every value put is found under its key, nothing else is found, and
 *     growth (many doublings from empty) keeps every value.
 *  2. Keys whose hashes collide -- the same full hash, or the same slot
 *     only -- are told apart by the equality callback.
 *  3. Removal (backward shift) keeps every other value findable, in any
 *     order and across wrap-around at the end of the slot array; removal
 *     in reverse insertion order restores the slots exactly.
 *  4. Iteration visits every value once.
 *  5. A failed reserve (no memory) leaves the table as it was.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashtab.h"
#include "base/mem.h"
#include "unit.h"

/* Entries of the model: value v stands for keys[v - 1]. */
typedef struct model {
  uint64_t keys[8192];
  uint64_t (*hash)(uint64_t key);
} model;

static int key_eq(const void *ctx, uint32_t val, const void *key) {
  const model *m = ctx;
  return m->keys[val - 1] == *(const uint64_t *)key;
}

static uint64_t hash_mix(uint64_t k) {
  k ^= k >> 33;
  k *= UINT64_C(0xff51afd7ed558ccd);
  return k ^ (k >> 33);
}
/* Every key in one of four full hashes: long runs, all equal hashes. */
static uint64_t hash_four(uint64_t k) { return k % 4; }
/* Distinct full hashes that share their low bits: same home slot. */
static uint64_t hash_high(uint64_t k) { return (k << 40) | 7; }
/* Homes at the last slots, so runs wrap round to slot 0. */
static uint64_t hash_last(uint64_t k) { return UINT32_MAX - (k % 3); }

static uint32_t find(const es_htab *t, const model *m, uint64_t key) {
  return es__htab_find(t, m->hash(key), key_eq, m, &key);
}

/* Puts key as value n + 1 unless present; returns its value. */
static uint32_t put(es_htab *t, model *m, size_t *n, uint64_t key) {
  ck_assert_int_eq(es__htab_reserve(t, 1), ES_OK);
  uint64_t h = m->hash(key);
  size_t i = es__htab_probe(t, h, key_eq, m, &key);
  if (t->slots[i].val == 0) {
    m->keys[*n] = key;
    es__htab_set(t, i, h, (uint32_t)++ * n);
  }
  return t->slots[i].val;
}

static void check_all(const es_htab *t, const model *m, size_t n,
                      const char *removed) {
  for (size_t v = 1; v <= n; v++) {
    uint32_t got = find(t, m, m->keys[v - 1]);
    ck_assert_uint_eq(got, removed && removed[v - 1] ? 0 : v);
  }
}

static void run_growth(uint64_t (*hash)(uint64_t), size_t count) {
  static model m;
  m.hash = hash;
  es_htab t = {0};
  size_t n = 0;
  ck_assert_uint_eq(find(&t, &m, 5), 0); /* never reserved */
  for (size_t i = 0; i < count; i++) {
    uint64_t key = i * 7919 + 3;
    ck_assert_uint_eq(put(&t, &m, &n, key), i + 1);
    ck_assert_uint_eq(put(&t, &m, &n, key), i + 1); /* found, not added */
    ck_assert_uint_le(2 * t.n, t.nslots);
    ck_assert_uint_eq(t.nslots & (t.nslots - 1), 0);
  }
  ck_assert_uint_eq(t.n, count);
  check_all(&t, &m, n, NULL);
  for (uint64_t k = 1; k < 2000; k += 7919) /* absent keys */
    ck_assert_uint_eq(find(&t, &m, k * 7919 + 4), 0);
  /* iteration: each value once */
  char *seen = calloc(count + 1, 1);
  size_t pos = 0, visits = 0;
  uint32_t v;
  while (es__htab_next(&t, &pos, &v)) {
    ck_assert_uint_le(v, count);
    ck_assert_int_eq(seen[v], 0);
    seen[v] = 1;
    visits++;
  }
  ck_assert_uint_eq(visits, count);
  free(seen);
  es__htab_clear(&t);
  ck_assert_uint_eq(t.n, 0);
  ck_assert_uint_eq(find(&t, &m, m.keys[0]), 0);
  es__htab_free(&t);
  ck_assert_ptr_null(t.slots);
}

START_TEST(test_growth) { run_growth(hash_mix, 5000); }
END_TEST

START_TEST(test_collisions) {
  run_growth(hash_four, 600);
  run_growth(hash_high, 600);
  run_growth(hash_last, 600);
}
END_TEST

/* Removes the values in a seeded random order, checking the rest after
 * each removal. */
static void run_remove(uint64_t (*hash)(uint64_t), unsigned seed) {
  static model m;
  m.hash = hash;
  es_htab t = {0};
  size_t n = 0, count = 160;
  for (size_t i = 0; i < count; i++)
    put(&t, &m, &n, i * 31 + 1);
  char removed[160] = {0};
  uint32_t order[160];
  for (uint32_t i = 0; i < count; i++)
    order[i] = i + 1;
  srand(seed);
  for (size_t i = count - 1; i > 0; i--) {
    size_t j = (size_t)rand() % (i + 1);
    uint32_t x = order[i];
    order[i] = order[j];
    order[j] = x;
  }
  for (size_t i = 0; i < count; i++) {
    uint64_t key = m.keys[order[i] - 1];
    size_t slot = es__htab_probe(&t, hash(key), key_eq, &m, &key);
    ck_assert_uint_eq(t.slots[slot].val, order[i]);
    es__htab_remove(&t, slot);
    removed[order[i] - 1] = 1;
    ck_assert_uint_eq(t.n, count - i - 1);
    check_all(&t, &m, n, removed);
  }
  es__htab_free(&t);
}

START_TEST(test_remove) {
  for (unsigned seed = 1; seed <= 4; seed++) {
    run_remove(hash_mix, seed);
    run_remove(hash_four, seed);
    run_remove(hash_last, seed);
  }
}
END_TEST

/* Several values per key (es__htab_free_slot), then undone in reverse
 * order: the slots come back byte for byte (invariant 4). */
START_TEST(test_undo_restores) {
  static model m;
  m.hash = hash_last;
  es_htab t = {0};
  size_t n = 0;
  for (size_t i = 0; i < 40; i++)
    put(&t, &m, &n, i);
  ck_assert_int_eq(es__htab_reserve(&t, 20), ES_OK);
  size_t nslots = t.nslots;
  es_hslot *before = malloc(nslots * sizeof(es_hslot));
  memcpy(before, t.slots, nslots * sizeof(es_hslot));
  size_t slots[20];
  for (size_t i = 0; i < 20; i++) {
    uint64_t key = i % 5; /* repeats keys already present */
    m.keys[n] = key;
    slots[i] = es__htab_free_slot(&t, hash_last(key));
    es__htab_set(&t, slots[i], hash_last(key), (uint32_t)++n);
  }
  ck_assert_uint_eq(t.nslots, nslots); /* reserved: no growth */
  for (size_t i = 20; i-- > 0;)
    es__htab_remove(&t, slots[i]);
  ck_assert_uint_eq(t.n, 40);
  ck_assert_mem_eq(t.slots, before, nslots * sizeof(es_hslot));
  free(before);
  es__htab_free(&t);
}
END_TEST

START_TEST(test_reserve_nomem) {
  static model m;
  m.hash = hash_mix;
  es_htab t = {0};
  size_t n = 0;
  for (size_t i = 0; i < 8; i++)
    put(&t, &m, &n, i);
  es_hslot *slots = t.slots;
  size_t nslots = t.nslots;
  es__mem_fail_at(1);
  ck_assert_int_eq(es__htab_reserve(&t, 100), ES_ENOMEM);
  es__mem_fail_at(0);
  ck_assert_ptr_eq(t.slots, slots);
  ck_assert_uint_eq(t.nslots, nslots);
  check_all(&t, &m, n, NULL);
  ck_assert_int_eq(es__htab_reserve(&t, (size_t)1 << 40), ES_ENOMEM);
  ck_assert_int_eq(es__htab_reserve(&t, 0), ES_OK);
  es__htab_free(&t);
}
END_TEST

static Suite *hashtab_suite(void) {
  Suite *s = suite_create("hashtab");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_growth);
  tcase_add_test(tc, test_collisions);
  tcase_add_test(tc, test_remove);
  tcase_add_test(tc, test_undo_restores);
  tcase_add_test(tc, test_reserve_nomem);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(hashtab_suite()); }
