/*
 * objmem.h -- an in-memory es_objstore with fault injection, for the unit,
 * fault and simulation tests of everything built on the object store.
 *
 * It keeps the contract of objstore.h exactly (whole-object puts, etags,
 * conditions, ordered listing in pages) and adds what S3 does to a client
 * on a bad day, chosen by the test:
 *  - fail the k-th request with a status (ES_EUNAVAIL, ES_EREMOTE, ...),
 *    the request having no effect;
 *  - time out the k-th request: ES_EUNAVAIL, no effect;
 *  - drop the connection on the k-th request: ES_EUNAVAIL, and a mutation
 *    (put, delete) took effect or not, chosen by a seeded generator --
 *    the "in doubt" outcome of objstore.h invariant 2.
 * A "request" is one put, get, head or delete, or one page of a listing
 * (as one HTTP request would be), counted in order from 1.
 */
#ifndef ES_OBJMEM_H
#define ES_OBJMEM_H

#include "replicate/objstore.h"

/* Fault kinds of es__objmem_fail_at / es__objmem_fail_every. */
#define ES_OBJMEM_FAIL_STATUS 1  /* return the given status, no effect */
#define ES_OBJMEM_FAIL_TIMEOUT 2 /* ES_EUNAVAIL, no effect */
#define ES_OBJMEM_FAIL_DROP 3    /* ES_EUNAVAIL, a mutation maybe applied */

/* A new, empty store listing page_keys keys per page (0: 1000, as S3).
 * seed drives the "maybe applied" choice of dropped connections.
 * ES_ENOMEM or ES_OK with *os_out set. */
int es__objmem_create(unsigned page_keys, uint64_t seed,
                      es_objstore **os_out) ES_MUST_CHECK;

/* Arms one fault: the k-th request from now (1 = the next) fails as kind
 * says (status is the returned code for ES_OBJMEM_FAIL_STATUS).  Resets
 * the request counter.  k = 0 disarms every fault. */
void es__objmem_fail_at(es_objstore *os, unsigned long k, int kind, int status);

/* Arms a periodic fault: every k-th request from now (k, 2k, ...) fails as
 * kind says.  Resets the request counter.  k = 0 disarms. */
void es__objmem_fail_every(es_objstore *os, unsigned long k, int kind,
                           int status);

/* Requests since creation or the last fail_at/fail_every. */
unsigned long es__objmem_requests(es_objstore *os);

/* Requests that failed by injection, and how many of those were dropped
 * mutations that were applied anyway, since creation. */
unsigned long es__objmem_failed(es_objstore *os);
unsigned long es__objmem_applied_in_doubt(es_objstore *os);

#endif
