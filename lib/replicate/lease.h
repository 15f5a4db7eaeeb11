/*
 * lease.h -- per-tenant leases in the object store (lease.c): which node
 * may write a tenant, fenced by a generation number.
 */
#ifndef ES_LEASE_H
#define ES_LEASE_H

#include <stdint.h>

#include "replicate/objstore.h"

/* A node name: [A-Za-z0-9._-]{1,64}. */
#define ES_LEASE_NODE_MAX 64
/* The lease object's longest encoding (lease.c, "The object"). */
#define ES_LEASE_BYTES_MAX 256
/* A manifest generation published under lease generation g is
 * (g << ES_LEASE_GEN_SHIFT) | n; so are segment ids (lease.c, 4). */
#define ES_LEASE_GEN_SHIFT 40

typedef struct es_lease {
  uint64_t gen;       /* 0: there is no lease object */
  int64_t expires_us; /* wall clock; 0: released */
  char owner[ES_LEASE_NODE_MAX + 1];
  char want[ES_LEASE_NODE_MAX + 1]; /* a node asking for it; "" none */
  char etag[ES_OBJ_ETAG_MAX];       /* of the object read or written */
} es_lease;

/* Timing of one node's leases. */
typedef struct es_lease_clock {
  int64_t ttl_us;  /* how long a put lease lasts */
  int64_t skew_us; /* most two nodes' wall clocks may differ */
} es_lease_clock;

/* "leases/<tenant>". */
int es__lease_key(char *out, size_t cap, const char *tenant) ES_MUST_CHECK;
/* Checks a node name: ES_OK or ES_EINVAL with a detail. */
int es__lease_node_check(const char *node) ES_MUST_CHECK;

int es__lease_encode(const es_lease *l, char *out, size_t cap,
                     size_t *len_out) ES_MUST_CHECK;
/* Decodes a lease object: ES_OK or ES_ECORRUPT naming `what`.  The etag
 * is left as it was. */
int es__lease_decode(const char *what, const uint8_t *buf, size_t len,
                     es_lease *l) ES_MUST_CHECK;

/* Reads the tenant's lease: gen 0 when there is none. */
int es__lease_read(es_objstore *os, const char *tenant,
                   es_lease *out) ES_MUST_CHECK;

/* Takes the tenant's lease for node at wall time now_us: ES_OK with
 * *out the lease held (a generation above every earlier one); ES_EBUSY
 * when another node holds it unexpired (*out is its lease); ES_EUNAVAIL
 * and the other object-store failures otherwise (then nothing is held,
 * though an in-doubt put may have taken it: a later call, taking it again,
 * bumps the generation past it). */
int es__lease_acquire(es_objstore *os, const char *tenant, const char *node,
                      int64_t now_us, const es_lease_clock *clk,
                      es_lease *out) ES_MUST_CHECK;

/* Extends a held lease to now_us + ttl.  ES_OK: still held (l updated;
 * l->want says whether another node asked for it).  ES_ECONFLICT: lost to
 * another node or generation (l unchanged).  ES_EUNAVAIL: in doubt; the
 * holder's own deadline keeps running. */
int es__lease_renew(es_objstore *os, const char *tenant, es_lease *l,
                    int64_t now_us, const es_lease_clock *clk) ES_MUST_CHECK;

/* Gives a held lease up (expires_us 0) so the next node takes it at once.
 * A lease lost meanwhile is ES_OK: it is not held either way. */
int es__lease_release(es_objstore *os, const char *tenant,
                      es_lease *l) ES_MUST_CHECK;

/* Asks the holder of l (as read) to hand it to node: ES_OK, or
 * ES_ECONFLICT when the lease changed since it was read. */
int es__lease_ask(es_objstore *os, const char *tenant, es_lease *l,
                  const char *node) ES_MUST_CHECK;

#endif
