/*
 * hashtab.h -- the library's one open-addressing hash table.
 *
 * A table holds non-zero 32-bit values, each filed under a 64-bit hash
 * the caller computed.  What a value means is the caller's: usually the
 * index + 1 of an entry in the caller's own dense array (interned
 * strings, rollup cells, query groups, identity nodes, dictionary
 * entries), sometimes the key itself (a set of non-zero ids).  The table
 * never allocates per entry and never sees a key: equality is a callback
 * given to each lookup, so one table serves every kind of key.
 *
 * Layout: a power-of-two array of slots {32 bits of the hash, value},
 * linear probing from `hash & (nslots - 1)`.  The stored hash bits let a
 * probe skip a slot without looking at the caller's entry, and let the
 * table grow without asking the caller to hash again.
 *
 * Invariants:
 *  1. nslots is 0 or a power of two, and n * 2 <= nslots once a reserve
 *     has succeeded: probing always ends at an empty slot.
 *  2. A slot is empty exactly when its value is 0.
 *  3. Every value lies in the run of full slots that starts at its home
 *     slot (`hash & mask`): es__htab_remove shifts later members of the
 *     run back instead of leaving tombstones, so lookups stay exact and
 *     no slot is ever wasted.
 *  4. Removing values in the reverse order of their insertion (with no
 *     growth in between) restores the table exactly, slot for slot.
 *  5. A slot index from a probe is valid until the next reserve or
 *     remove; values themselves never change.
 *
 * The lookup functions are static inline with the equality callback as a
 * parameter: a caller passing its own static function gets the callback
 * inlined at -O2, so the generic table costs no indirect call per probe.
 */
#ifndef ES_HASHTAB_H
#define ES_HASHTAB_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct es_hslot {
  uint32_t hash; /* the low 32 bits of the value's hash */
  uint32_t val;  /* 0 = empty */
} es_hslot;

typedef struct es_htab {
  es_hslot *slots;
  size_t nslots; /* 0 or a power of two */
  size_t n;      /* values held */
} es_htab;

/* Whether `val` (never 0) is the value `key` stands for. */
typedef int (*es_htab_eq_fn)(const void *ctx, uint32_t val, const void *key);

/* A zeroed es_htab is an empty table. */

/* Makes room for `more` further values at a load of at most 1/2 (doubling,
 * from at least 8 slots), re-filing every value by its stored hash.
 * Slot indices from earlier probes are invalid afterwards when it grew.
 * ES_ENOMEM, the table unchanged, when memory is short or the table would
 * pass 2^31 values. */
int es__htab_reserve(es_htab *t, size_t more) ES_MUST_CHECK;

/* The slot holding the value `eq` accepts for `key` under `hash`, or the
 * empty slot where it would be inserted.  Needs nslots > 0 (a reserve). */
static inline size_t es__htab_probe(const es_htab *t, uint64_t hash,
                                    es_htab_eq_fn eq, const void *ctx,
                                    const void *key) {
  size_t mask = t->nslots - 1, i = (uint32_t)hash & mask;
  for (;; i = (i + 1) & mask) {
    const es_hslot *s = &t->slots[i];
    if (s->val == 0 || (s->hash == (uint32_t)hash && eq(ctx, s->val, key)))
      return i;
  }
}

/* The value `eq` accepts for `key`, or 0 (also on a table never
 * reserved). */
static inline uint32_t es__htab_find(const es_htab *t, uint64_t hash,
                                     es_htab_eq_fn eq, const void *ctx,
                                     const void *key) {
  if (t->nslots == 0)
    return 0;
  return t->slots[es__htab_probe(t, hash, eq, ctx, key)].val;
}

/* The first empty slot of `hash`'s run: where a value goes that must not
 * replace an equal one (a table of several values per key).  Needs
 * nslots > 0. */
static inline size_t es__htab_free_slot(const es_htab *t, uint64_t hash) {
  size_t mask = t->nslots - 1, i = (uint32_t)hash & mask;
  while (t->slots[i].val != 0)
    i = (i + 1) & mask;
  return i;
}

/* Fills an empty slot that a probe (or es__htab_free_slot) of the same
 * hash returned, with no reserve or remove since, with `val` (non-zero).
 * The room must have been reserved. */
static inline void es__htab_set(es_htab *t, size_t slot, uint64_t hash,
                                uint32_t val) {
  assert(val != 0 && t->slots[slot].val == 0 && 2 * (t->n + 1) <= t->nslots);
  t->slots[slot].hash = (uint32_t)hash;
  t->slots[slot].val = val;
  t->n++;
}

/* Removes the value in a full slot (invariant 3: later members of its run
 * move back; other slot indices may change). */
void es__htab_remove(es_htab *t, size_t slot);

/* Iteration in slot order: `*pos` starts at 0; returns 0 at the end, else
 * 1 with the next value in *val_out.  The order is the slots', not the
 * insertion's. */
static inline int es__htab_next(const es_htab *t, size_t *pos,
                                uint32_t *val_out) {
  for (size_t i = *pos; i < t->nslots; i++) {
    if (t->slots[i].val != 0) {
      *val_out = t->slots[i].val;
      *pos = i + 1;
      return 1;
    }
  }
  *pos = t->nslots;
  return 0;
}

/* Empties the table, keeping its slots for reuse. */
void es__htab_clear(es_htab *t);

/* Frees the slots; the table is a zeroed, empty one again. */
void es__htab_free(es_htab *t);

/* Bytes the slots take (for memory accounting). */
static inline size_t es__htab_bytes(const es_htab *t) {
  return t->nslots * sizeof(es_hslot);
}

#endif
