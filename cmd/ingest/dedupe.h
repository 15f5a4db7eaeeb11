/*
 * dedupe.h -- a bounded set of recent messageId hashes, one per tenant.
 *
 * Holds 64-bit hashes (XXH3) of the most recent ids_max messageIds a
 * tenant sent: an open-addressing table for lookups and a FIFO ring that
 * says which hash to forget when the set is full.  Owned and used by the
 * event-loop thread only: no locking.  Memory: about 24 bytes per id.
 *
 * The sets of all tenants may share a pool, a bound on their memory
 * together: a set doubles (its ring and, ahead of need, its table) only
 * while the pool has room for that; otherwise it stays as it is and
 * forgets its oldest id for each new one, as at ids_max.  So the sets'
 * memory is at most the pool's plus each set's first ring and table
 * (12 KiB, always allowed), and a tenant that grows after the pool
 * filled up keeps a shorter window (down to 512 ids).
 */
#ifndef INGESTD_DEDUPE_H
#define INGESTD_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ing_dedupe_pool {
  size_t bytes, bytes_max; /* held by the sets; their bound */
  size_t refused;          /* growths refused for want of room */
} ing_dedupe_pool;

typedef struct ing_dedupe {
  uint64_t *table; /* 0 = empty slot; hashes are never 0 (see hash) */
  size_t mask;     /* table size - 1 (a power of two) */
  size_t used;
  uint64_t *ring; /* insertion order, oldest at ring[head] */
  size_t ring_cap, head, len;
  size_t ids_max;
  size_t bytes;          /* ring and table, reserved in the pool */
  ing_dedupe_pool *pool; /* may be NULL: no shared bound */
} ing_dedupe;

/* pool may be NULL. */
void ing_dedupe_init(ing_dedupe *d, size_t ids_max, ing_dedupe_pool *pool);
void ing_dedupe_free(ing_dedupe *d);
/* The set's hash of a messageId (never 0). */
uint64_t ing_dedupe_hash(const char *message_id);
int ing_dedupe_has(const ing_dedupe *d, uint64_t h);
/* Adds h (forgetting the oldest id when full): 0 added, 1 already there
 * (nothing changed), -1 out of memory.  One probe: callers that would
 * ask ing_dedupe_has first need not. */
int ing_dedupe_add(ing_dedupe *d, uint64_t h);
/* Forgets h (an append failed); its ring slot is left to age out. */
void ing_dedupe_remove(ing_dedupe *d, uint64_t h);

#endif /* INGESTD_DEDUPE_H */
