/*
 * strmap.h -- the two small data structures the query benchmark needs on
 * libeventstore's side: a growable text buffer, and a map of strings to
 * dense indexes with a union-find over them (identity stitching done by
 * the client, for the stitched-persons variant of the behaviour-segment
 * query, which no library call answers).
 */
#ifndef ES_BENCH_STRMAP_H
#define ES_BENCH_STRMAP_H

#include <stddef.h>
#include <stdint.h>

/* A NUL-terminated growable string; zero-initialise, free with sbuf_free.
 * On out of memory `failed` is set and further appends do nothing. */
typedef struct sbuf {
  char *s;
  size_t len, cap;
  int failed;
} sbuf;

void sbuf_printf(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sbuf_free(sbuf *b);

/*
 * Strings -> indexes 0..count-1 in order of first insertion (the strings
 * are copied), each index also a union-find node whose root knows the
 * smallest string (strcmp) of its set.  Zero-initialise; strmap_free.
 */
typedef struct strmap {
  char **names;     /* by index */
  uint32_t *slots;  /* open addressing: index + 1, 0 = empty */
  uint32_t *parent; /* union-find */
  uint32_t *min_of; /* at a root: index of the set's smallest name */
  int64_t *counts;  /* a counter per index for the caller */
  size_t count, slots_cap, cap;
} strmap;

/* The index of s, inserted if new; -1 when out of memory. */
int64_t strmap_get(strmap *m, const char *s);
/* The index of s, or -1 when absent. */
int64_t strmap_find(const strmap *m, const char *s);
/* The root of i's set. */
uint32_t strmap_root(strmap *m, uint32_t i);
/* Joins the sets of i and j. */
void strmap_union(strmap *m, uint32_t i, uint32_t j);
void strmap_free(strmap *m);

#endif
