/*
 * strtab.c -- interned strings; see strtab.h.  Open addressing with
 * linear probing over xxHash; the table doubles at half load.
 */
#include <string.h>

#include "base/codec.h"
#include "base/mem.h"
#include "base/strtab.h"

static size_t strtab_slot(const es_strtab *t, const char *s, size_t len) {
  size_t mask = t->nslots - 1, i = (size_t)es__hash64(s, len, 0) & mask;
  while (t->slots[i] != 0 && strcmp(t->strs[t->slots[i]], s) != 0)
    i = (i + 1) & mask;
  return i;
}

/* Doubles the slot array and re-inserts every string. */
static int strtab_rehash(es_strtab *t) {
  size_t nslots = t->nslots ? t->nslots * 2 : 64;
  uint32_t *slots = es__calloc(nslots, sizeof(uint32_t));
  if (!slots)
    return ES_NOMEM_BKPT();
  es__free(t->slots);
  t->slots = slots;
  t->nslots = nslots;
  for (size_t id = 1; id < t->n; id++)
    t->slots[strtab_slot(t, t->strs[id], strlen(t->strs[id]))] = (uint32_t)id;
  return ES_OK;
}

/* Interns s; see strtab.h. */
int es__strtab_intern(es_strtab *t, const char *s, uint32_t *id_out) {
  *id_out = 0;
  if (!s)
    return ES_OK;
  if (t->n == 0)
    t->n = 1; /* id 0 stands for "absent" */
  if (2 * (t->n + 1) > t->nslots)
    ES_TRY(strtab_rehash(t));
  size_t len = strlen(s), i = strtab_slot(t, s, len);
  if (t->slots[i] == 0) {
    if (t->n >= UINT32_MAX)
      return ES_NOMEM_BKPT();
    ES_TRY(es__grow((void **)&t->strs, &t->cap, t->n + 1, sizeof(char *)));
    char *copy = es__malloc(len + 1);
    if (!copy)
      return ES_NOMEM_BKPT();
    memcpy(copy, s, len + 1);
    t->strs[t->n] = copy;
    t->slots[i] = (uint32_t)t->n++;
  }
  *id_out = t->slots[i];
  return ES_OK;
}

/* Looks s up without adding it; see strtab.h. */
uint32_t es__strtab_find(const es_strtab *t, const char *s) {
  if (!s || t->nslots == 0)
    return 0;
  return t->slots[strtab_slot(t, s, strlen(s))];
}

void es__strtab_free(es_strtab *t) {
  for (size_t id = 1; id < t->n; id++)
    es__free(t->strs[id]);
  es__free(t->strs);
  es__free(t->slots);
  memset(t, 0, sizeof(*t));
}
