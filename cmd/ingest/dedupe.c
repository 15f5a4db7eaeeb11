/*
 * dedupe.c -- a bounded set of recent messageId hashes (see dedupe.h).
 *
 * Linear probing with backward-shift deletion (no tombstones), load kept
 * at or under one half.  Invariants:
 *
 *  1. Every hash in ring[] that was not removed is in table[]; table[]
 *     holds nothing else.
 *  2. len <= ids_max, and used <= len.
 *  3. A 64-bit hash stands for the id: two different ids of one tenant
 *     collide with odds of about ids_max / 2^64 per new id (1e-13 at a
 *     million ids), and a collision would drop the newer event as a
 *     duplicate.  That is the price of 24 bytes per id instead of 100+.
 *  4. bytes = (ring_cap + table_slots_for(ring_cap)) words, reserved in
 *     the pool when the ring grew: the table, kept at load 1/2 with at
 *     most ring_cap ids, never outgrows what was reserved for it.
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "dedupe.h"

#define TABLE_SLOTS_MIN 1024

void ing_dedupe_init(ing_dedupe *d, size_t ids_max, ing_dedupe_pool *pool) {
  memset(d, 0, sizeof *d);
  d->ids_max = ids_max ? ids_max : 1;
  d->pool = pool;
}

void ing_dedupe_free(ing_dedupe *d) {
  free(d->table);
  free(d->ring);
  if (d->pool)
    d->pool->bytes -= d->bytes;
  ing_dedupe_init(d, d->ids_max, d->pool);
}

uint64_t ing_dedupe_hash(const char *message_id) {
  uint64_t h = XXH3_64bits(message_id, strlen(message_id));
  return h ? h : 1;
}

int ing_dedupe_has(const ing_dedupe *d, uint64_t h) {
  if (d->table == NULL)
    return 0;
  for (size_t i = h & d->mask; d->table[i] != 0; i = (i + 1) & d->mask)
    if (d->table[i] == h)
      return 1;
  return 0;
}

static void table_put(uint64_t *table, size_t mask, uint64_t h) {
  size_t i = h & mask;
  while (table[i] != 0)
    i = (i + 1) & mask;
  table[i] = h;
}

/* Doubles the table (or makes the first one). */
static int table_grow(ing_dedupe *d) {
  size_t slots = d->table ? (d->mask + 1) * 2 : TABLE_SLOTS_MIN;
  uint64_t *t = calloc(slots, sizeof *t);
  if (t == NULL)
    return -1;
  if (d->table != NULL)
    for (size_t i = 0; i <= d->mask; i++)
      if (d->table[i] != 0)
        table_put(t, slots - 1, d->table[i]);
  free(d->table);
  d->table = t;
  d->mask = slots - 1;
  return 0;
}

/* The table size for a ring of cap ids at load one half at most. */
static size_t table_slots_for(size_t cap) {
  size_t slots = TABLE_SLOTS_MIN;
  while (slots < cap * 2)
    slots *= 2;
  return slots;
}

/* Doubles the ring (up to ids_max), unrolling it so head becomes 0, when
 * the pool has room for it and for the table it will need; 1 when there
 * is no room (the set stays as it is), -1 when out of memory.  The first
 * ring and table are always allowed. */
static int ring_grow(ing_dedupe *d) {
  size_t cap = d->ring_cap ? d->ring_cap * 2 : TABLE_SLOTS_MIN / 2;
  if (cap > d->ids_max)
    cap = d->ids_max;
  size_t bytes = (cap + table_slots_for(cap)) * sizeof(uint64_t);
  if (d->pool && d->ring_cap != 0 &&
      d->pool->bytes - d->bytes + bytes > d->pool->bytes_max) {
    d->pool->refused++;
    return 1;
  }
  uint64_t *r = malloc(cap * sizeof *r);
  if (r == NULL)
    return -1;
  for (size_t i = 0; i < d->len; i++)
    r[i] = d->ring[(d->head + i) % d->ring_cap];
  free(d->ring);
  d->ring = r;
  d->ring_cap = cap;
  d->head = 0;
  if (d->pool)
    d->pool->bytes += bytes - d->bytes;
  d->bytes = bytes;
  return 0;
}

void ing_dedupe_remove(ing_dedupe *d, uint64_t h) {
  if (d->table == NULL)
    return;
  size_t i = h & d->mask;
  while (d->table[i] != h) {
    if (d->table[i] == 0)
      return;
    i = (i + 1) & d->mask;
  }
  /* Backward shift: move later members of the cluster into the hole
   * unless their home slot lies cyclically in (hole, j]. */
  for (size_t j = i;;) {
    j = (j + 1) & d->mask;
    if (d->table[j] == 0)
      break;
    size_t k = d->table[j] & d->mask;
    int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (stays)
      continue;
    d->table[i] = d->table[j];
    i = j;
  }
  d->table[i] = 0;
  d->used--;
}

int ing_dedupe_add(ing_dedupe *d, uint64_t h) {
  if (ing_dedupe_has(d, h))
    return 1;
  if (d->len == d->ring_cap && d->ring_cap < d->ids_max && ring_grow(d) < 0)
    return -1;
  if (d->len == d->ring_cap) { /* full: forget the oldest */
    ing_dedupe_remove(d, d->ring[d->head]);
    d->head = (d->head + 1) % d->ring_cap;
    d->len--;
  }
  if ((d->used + 1) * 2 > d->mask + 1 && table_grow(d))
    return -1;
  table_put(d->table, d->mask, h);
  d->used++;
  d->ring[(d->head + d->len) % d->ring_cap] = h;
  d->len++;
  return 0;
}
