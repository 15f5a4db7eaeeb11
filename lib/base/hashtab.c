/*
 * hashtab.c -- growth and removal of the open-addressing table; the
 * lookups are inline in hashtab.h, which states the invariants.
 */
#include <string.h>

#include "base/hashtab.h"
#include "base/mem.h"

#define HTAB_SLOTS_MIN 8
#define HTAB_VALUES_MAX (UINT32_C(1) << 31)

/* Grows the table; see hashtab.h. */
int es__htab_reserve(es_htab *t, size_t more) {
  if (more > HTAB_VALUES_MAX || t->n > HTAB_VALUES_MAX - more)
    return ES_NOMEM_BKPT();
  size_t want = t->n + more;
  if (want * 2 <= t->nslots)
    return ES_OK;
  size_t nslots = t->nslots ? t->nslots * 2 : HTAB_SLOTS_MIN;
  while (want * 2 > nslots)
    nslots *= 2;
  es_hslot *slots = es__calloc(nslots, sizeof(es_hslot));
  if (!slots)
    return ES_NOMEM_BKPT();
  size_t mask = nslots - 1;
  for (size_t i = 0; i < t->nslots; i++) {
    es_hslot s = t->slots[i];
    if (s.val == 0)
      continue;
    size_t j = s.hash & mask;
    while (slots[j].val != 0)
      j = (j + 1) & mask;
    slots[j] = s;
  }
  es__free(t->slots);
  t->slots = slots;
  t->nslots = nslots;
  return ES_OK;
}

/* Backward-shift deletion (invariant 3): walk the run after the hole and
 * move back every value whose home is not between the hole and itself
 * (cyclically), so that no value is left beyond an empty slot. */
void es__htab_remove(es_htab *t, size_t slot) {
  assert(slot < t->nslots && t->slots[slot].val != 0);
  size_t mask = t->nslots - 1, hole = slot;
  for (size_t i = (slot + 1) & mask; t->slots[i].val != 0; i = (i + 1) & mask) {
    size_t home = t->slots[i].hash & mask;
    /* i may stay when its home lies in (hole, i] */
    int stays =
        hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
    if (!stays) {
      t->slots[hole] = t->slots[i];
      hole = i;
    }
  }
  t->slots[hole] = (es_hslot){0, 0};
  t->n--;
}

/* Empties the table, keeping its slots; see hashtab.h. */
void es__htab_clear(es_htab *t) {
  if (t->n > 0) /* no tombstones: an empty table has only empty slots */
    memset(t->slots, 0, t->nslots * sizeof(es_hslot));
  t->n = 0;
}

/* Frees the slots; see hashtab.h. */
void es__htab_free(es_htab *t) {
  es__free(t->slots);
  memset(t, 0, sizeof(*t));
}
