/*
 * strtab.h -- interned strings: each distinct string gets a small integer
 * id (0 stands for "absent", NULL), so that tables keyed by strings can be
 * keyed by integers.  Used by the query engine and by rollups.
 *
 * Invariants:
 *  1. Ids are dense, 1..n-1, in order of first intern, never reused.
 *  2. A string's bytes never move once interned: es__strtab_str() stays
 *     valid until es__strtab_free().
 */
#ifndef ES_STRTAB_H
#define ES_STRTAB_H

#include <stddef.h>
#include <stdint.h>

#include "base/hashtab.h"
#include "base/status.h"

typedef struct es_strtab {
  char **strs;   /* by id; strs[0] unused */
  size_t n, cap; /* ids in use (including 0), capacity */
  es_htab ids;   /* the ids, filed by their strings' hashes */
} es_strtab;

/* The id of s (0 for NULL), adding it when new.  A zeroed table is an
 * empty one. */
int es__strtab_intern(es_strtab *t, const char *s,
                      uint32_t *id_out) ES_MUST_CHECK;

/* The id of s, or 0 when it was never interned (or s is NULL). */
uint32_t es__strtab_find(const es_strtab *t, const char *s);

/* The string of an id (NULL for 0). */
static inline const char *es__strtab_str(const es_strtab *t, uint32_t id) {
  return id ? t->strs[id] : NULL;
}

/* Ids in use, plus one (the absent id 0). */
static inline size_t es__strtab_count(const es_strtab *t) {
  return t->n ? t->n : 1;
}

void es__strtab_free(es_strtab *t);

#endif
