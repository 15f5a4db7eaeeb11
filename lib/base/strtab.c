/*
 * strtab.c -- interned strings; see strtab.h.  The ids are filed in the
 * library's hash table (base/hashtab.h) under their strings' xxHash.
 */
#include <string.h>

#include "base/codec.h"
#include "base/mem.h"
#include "base/strtab.h"

/* Whether id `val` is the string `key`. */
static int strtab_eq(const void *ctx, uint32_t val, const void *key) {
  const es_strtab *t = ctx;
  return strcmp(t->strs[val], key) == 0;
}

/* Interns s; see strtab.h. */
int es__strtab_intern(es_strtab *t, const char *s, uint32_t *id_out) {
  *id_out = 0;
  if (!s)
    return ES_OK;
  if (t->n == 0)
    t->n = 1; /* id 0 stands for "absent" */
  ES_TRY(es__htab_reserve(&t->ids, 1));
  size_t len = strlen(s);
  uint64_t h = es__hash64(s, len, 0);
  size_t i = es__htab_probe(&t->ids, h, strtab_eq, t, s);
  if (t->ids.slots[i].val == 0) {
    if (t->n >= UINT32_MAX)
      return ES_NOMEM_BKPT();
    ES_TRY(es__grow((void **)&t->strs, &t->cap, t->n + 1, sizeof(char *)));
    char *copy = es__malloc(len + 1);
    if (!copy)
      return ES_NOMEM_BKPT();
    memcpy(copy, s, len + 1);
    t->strs[t->n] = copy;
    es__htab_set(&t->ids, i, h, (uint32_t)t->n++);
  }
  *id_out = t->ids.slots[i].val;
  return ES_OK;
}

/* Looks s up without adding it; see strtab.h. */
uint32_t es__strtab_find(const es_strtab *t, const char *s) {
  if (!s)
    return 0;
  return es__htab_find(&t->ids, es__hash64(s, strlen(s), 0), strtab_eq, t, s);
}

void es__strtab_free(es_strtab *t) {
  for (size_t id = 1; id < t->n; id++)
    es__free(t->strs[id]);
  es__free(t->strs);
  es__htab_free(&t->ids);
  memset(t, 0, sizeof(*t));
}
