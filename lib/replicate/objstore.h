/*
 * objstore.h -- the object-store interface: the only door to S3 (or to any
 * store of whole, named, immutable-until-replaced objects).
 *
 * Replication, restore and export speak to an es_objstore, never to S3
 * directly, as the store speaks to an es_vfs and never to POSIX.  Two
 * implementations exist: objmem.c (in memory, with fault injection, for
 * tests and simulations) and s3.c (S3 over libcurl, built when libcurl is
 * found).
 *
 * Invariants every implementation keeps:
 *  1. An object is written whole or not at all: a reader never sees part
 *     of a put.  A put that returned ES_OK is durable in the store (S3
 *     answers 200 only after that).
 *  2. Every failure is one of three kinds, told apart by the status:
 *       - ES_EUNAVAIL: transient (timeout, dropped connection, 5xx,
 *         throttling) after the implementation's own retries.  A mutation
 *         (put, delete) that failed so is IN DOUBT: it may or may not have
 *         taken effect.  Retrying later is right; a conditional put retried
 *         may then see its own earlier write as a conflict.
 *       - ES_ECONFLICT: a conditional put's condition did not hold; nothing
 *         was written.
 *       - anything else is permanent for this request (ES_EREMOTE: the
 *         store refused it, e.g. denied or malformed; ES_EINVAL: a bad key
 *         or argument; ES_ENOTFOUND: no such object; ES_ENOMEM): retrying
 *         the same request will not help.
 *     es__objstore_transient() is the one test for "retry later".
 *  3. An etag names one version of one object's content: two puts of the
 *     same key give two different etags unless the store says otherwise
 *     (S3 gives the content MD5 for single puts, so equal content may give
 *     equal etags; the in-memory store adds a version number).  Etags are
 *     opaque strings, kept exactly as the store sent them (quotes
 *     included), to be passed back in ES_OBJ_PUT_IF_MATCH.
 *  4. list() calls fn once per key under the prefix (and after
 *     start_after, when given), in ascending byte order of the key,
 *     following continuation pages itself.  Keys written or deleted during
 *     a listing may or may not be seen.
 *  5. Keys are 1..ES_OBJ_KEY_MAX bytes of UTF-8 without NUL; '/' is an
 *     ordinary byte (prefixes are plain byte prefixes).
 *
 * Methods are thread-safe: one es_objstore is shared by all threads.
 * Memory handed out (get's buffer) comes from es__malloc and is owned by
 * the caller (es__free).
 */
#ifndef ES_OBJSTORE_H
#define ES_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* S3's limit on a key, in bytes. */
#define ES_OBJ_KEY_MAX 1024
/* Room for an etag with its quotes and a terminating NUL.  S3's are
 * "<32 hex>" or "<32 hex>-<parts>". */
#define ES_OBJ_ETAG_MAX 80

/* get(): read to the end of the object. */
#define ES_OBJ_TO_END UINT64_MAX

/* Conditions of put(). */
#define ES_OBJ_PUT_ALWAYS 0    /* create or replace */
#define ES_OBJ_PUT_IF_ABSENT 1 /* create only (If-None-Match: *) */
#define ES_OBJ_PUT_IF_MATCH 2  /* replace only that etag (If-Match) */

typedef struct es_objinfo {
  uint64_t size;
  char etag[ES_OBJ_ETAG_MAX]; /* NUL-terminated, "" if the store sent none */
} es_objinfo;

typedef struct es_objstore es_objstore;

/* Called once per listed key.  A non-zero return stops the listing and is
 * what list() returns. */
typedef int (*es_objlist_fn)(void *ud, const char *key, const es_objinfo *info);

struct es_objstore {
  /* Stores buf[0..len) as the whole object key.  cond is one of the
   * ES_OBJ_PUT_* conditions; if_etag is the etag that must be current for
   * ES_OBJ_PUT_IF_MATCH (ignored otherwise).  A failed condition (the key
   * exists for IF_ABSENT; is missing or has another etag for IF_MATCH) is
   * ES_ECONFLICT.  info_out (may be NULL) receives the new size and etag. */
  int (*put)(es_objstore *os, const char *key, const void *buf, size_t len,
             int cond, const char *if_etag, es_objinfo *info_out);
  /* Reads bytes [offset, offset + len) of key, clamped to the object's end
   * (len ES_OBJ_TO_END: to the end), into a new es__malloc'ed buffer
   * (*buf_out, owned by the caller; NULL when *len_out is 0).  offset past
   * the end is ES_EINVAL.  info_out (may be NULL) receives the object's
   * whole size and etag.  ES_ENOTFOUND if there is no such key. */
  int (*get)(es_objstore *os, const char *key, uint64_t offset, uint64_t len,
             uint8_t **buf_out, size_t *len_out, es_objinfo *info_out);
  /* Size and etag of key; ES_ENOTFOUND if there is none. */
  int (*head)(es_objstore *os, const char *key, es_objinfo *info_out);
  /* Deletes key.  Deleting a missing key is ES_OK (as in S3), so a
   * delete retried after ES_EUNAVAIL is safe. */
  int (*del)(es_objstore *os, const char *key);
  /* Lists every key starting with prefix ("" for all) that sorts after
   * start_after (NULL or "": from the first; S3's start-after, so a
   * listing need not page through keys it would skip); see invariant 4. */
  int (*list)(es_objstore *os, const char *prefix, const char *start_after,
              es_objlist_fn fn, void *ud);
  /* May be NULL.  With on = 1, requests under way end soon (within about
   * a second: no further attempt, no backoff wait) with ES_EUNAVAIL, and
   * new ones fail so, until a call with on = 0.  es_close uses it so that
   * it never waits for a slow or unreachable store (docs/REPLICATION.md). */
  void (*cancel)(es_objstore *os, int on);
  /* Frees the store.  No call may be running. */
  void (*destroy)(es_objstore *os);
  void *ctx; /* the implementation's own state */
};

/* True for the statuses after which the same request may succeed later
 * (invariant 2). */
static inline int es__objstore_transient(int rc) { return rc == ES_EUNAVAIL; }

/* Checks a key against invariant 5: ES_OK or ES_EINVAL with a detail. */
int es__objstore_check_key(const char *key) ES_MUST_CHECK;

/* Frees os through its destroy method; NULL is accepted. */
void es__objstore_destroy(es_objstore *os);

#endif
