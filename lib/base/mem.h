/*
 * mem.h -- the one place that allocates.
 *
 * Every allocation in the library goes through these functions, so that a
 * test can make the N-th allocation fail (es__mem_fail_at) and check that
 * every caller turns it into ES_ENOMEM without leaking or corrupting.
 */
#ifndef ES_MEM_H
#define ES_MEM_H

#include <stddef.h>

void *es__malloc(size_t size);
void *es__calloc(size_t count, size_t size);
void *es__realloc(void *ptr, size_t size);
void es__free(void *ptr);
char *es__strdup(const char *s);

/* Grows *buf (capacity *cap, element size elem) to hold at least need
 * elements, doubling.  Returns ES_OK or ES_ENOMEM (buffer unchanged). */
int es__grow(void **buf, size_t *cap, size_t need, size_t elem);

/* Test hook: the n-th allocation from now (1 = the next) and every one
 * after it fail, until es__mem_fail_at(0).  Returns allocations counted
 * since the last call. */
unsigned long es__mem_fail_at(unsigned long n);

#endif
