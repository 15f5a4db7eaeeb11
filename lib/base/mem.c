/*
 * mem.c -- the only file that calls malloc and free.
 *
 * Funnelling allocation through here gives one seam for the allocation
 * failure tests: es__mem_fail_at(n) makes the n-th allocation from then on
 * (and all later ones) return NULL, and every caller must turn that into
 * ES_ENOMEM.  The counter is atomic: allocations happen on several threads.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/status.h"

static atomic_ulong mem_count;   /* allocations since the last fail_at */
static atomic_ulong mem_fail_at; /* 0 = never fail */

static int mem_should_fail(void) {
  unsigned long at = atomic_load_explicit(&mem_fail_at, memory_order_relaxed);
  unsigned long n = atomic_fetch_add(&mem_count, 1) + 1;
  return at != 0 && n >= at;
}

/* malloc that can be made to fail by the test hook. */
void *es__malloc(size_t size) {
  if (mem_should_fail())
    return NULL;
  return malloc(size ? size : 1);
}

/* calloc that can be made to fail by the test hook. */
void *es__calloc(size_t count, size_t size) {
  if (mem_should_fail())
    return NULL;
  return calloc(count ? count : 1, size ? size : 1);
}

/* realloc that can be made to fail; on failure ptr is untouched. */
void *es__realloc(void *ptr, size_t size) {
  if (mem_should_fail())
    return NULL;
  return realloc(ptr, size ? size : 1);
}

/* free; NULL is fine. */
void es__free(void *ptr) { free(ptr); }

/* strdup through es__malloc; NULL in gives NULL out. */
char *es__strdup(const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  char *p = es__malloc(n);
  if (p)
    memcpy(p, s, n);
  return p;
}

/* Doubling growth of an array; leaves *buf intact on failure. */
int es__grow(void **buf, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return ES_OK;
  size_t ncap = *cap ? *cap : 16;
  while (ncap < need) {
    if (ncap > ((size_t)-1) / 2 / elem)
      return ES_NOMEM_BKPT();
    ncap *= 2;
  }
  void *p = es__realloc(*buf, ncap * elem);
  if (!p)
    return ES_NOMEM_BKPT();
  *buf = p;
  *cap = ncap;
  return ES_OK;
}

/* Test hook; see mem.h. */
unsigned long es__mem_fail_at(unsigned long n) {
  unsigned long was = atomic_exchange(&mem_count, 0);
  atomic_store(&mem_fail_at, n);
  return was;
}
