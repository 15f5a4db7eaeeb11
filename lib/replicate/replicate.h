/*
 * replicate.h -- copying a store's files to an object store (replicate.c),
 * the per-tenant record of what is confirmed uploaded (replrec.c), and
 * restoring a data directory from the copy (restore.c).  The essay and
 * the invariants are in replicate.c.
 */
#ifndef ES_REPLICATE_H
#define ES_REPLICATE_H

#include "eventstore.h"
#include "replicate/objstore.h"
#include "store/dbint.h"
#include "store/wal.h"

/* What es_replica (the public handle) is: an object store. */
struct es_cluster;
struct es_replica {
  es_objstore *os;
  int owns; /* destroy os with the replica */
  /* Set by es_cluster_new: the uploader then publishes a tenant only
   * under its lease (cluster.c, es__cluster_fence). */
  struct es_cluster *_Atomic cluster;
};

/* ES_OK when this node holds the tenant's lease, valid now, and
 * generation (0: any) was made under it; else ES_EUNAVAIL saying why
 * (cluster.c). */
int es__cluster_fence(struct es_cluster *c, const char *tenant,
                      uint64_t generation) ES_MUST_CHECK;
/* The node's name (borrowed for the cluster's life). */
const char *es__cluster_node(const struct es_cluster *c);
/* Chunk GETs its takeovers made, and chunk reads its cache answered
 * (restore.c, 6). */
void es__cluster_chunk_counts(struct es_cluster *c, uint64_t *gets_out,
                              uint64_t *hits_out);
/* How often the collector of dead nodes' chunks passes, and how old a
 * bound must be before chunks under it are deleted (cluster.c, 7; tests
 * shorten both; before es_cluster_start). */
void es__cluster_gc_timing(struct es_cluster *c, int64_t every_us,
                           int64_t grace_us);
/* Collector passes over a node's chunks that ended without an error. */
uint64_t es__cluster_gc_passes(struct es_cluster *c);
int es__restore_tenant_live(es_replica *replica, es_vfs *vfs,
                            const char *data_dir,
                            const char *tenant) ES_MUST_CHECK;

/* A replica over an existing object store (tests: objmem).  With owns,
 * es_replica_free destroys os too. */
int es__replica_wrap(es_objstore *os, int owns, es_replica **out) ES_MUST_CHECK;

/* ---- replrec.c: tenants/<t>/REPLICA ----------------------------------- */

/* One object of the tenant confirmed in the store. */
typedef struct es_replrec_entry {
  char name[40]; /* "<016x>.seg", "<016x>.rlp", "MANIFEST-<016x>" */
  uint64_t bytes;
  int64_t superseded_us; /* 0: named by the newest uploaded manifest; else
                            when the first manifest without it went up */
} es_replrec_entry;

typedef struct es_replrec {
  uint64_t generation;    /* of the newest manifest uploaded; 0 none */
  uint64_t identity_hash; /* XXH3 of the IDENTITY bytes uploaded; 0 none */
  uint64_t rules_hash;    /* XXH3 of the RULES bytes uploaded; 0 none */
  size_t n, cap;
  es_replrec_entry *e; /* owned */
} es_replrec;

#define ES_REPLREC_NAME "REPLICA"

/* Encodes rec into an es__malloc'ed buffer (owned by the caller). */
int es__replrec_encode(const es_replrec *rec, uint8_t **buf_out,
                       size_t *len_out) ES_MUST_CHECK;
/* Decodes a REPLICA file (what names it in errors): ES_ECORRUPT on any
 * structural or checksum problem, ES_EVERSION, ES_ENOMEM. */
int es__replrec_decode(const char *what, const uint8_t *buf, size_t len,
                       es_replrec *rec) ES_MUST_CHECK;
/* Reads dir/REPLICA (a missing one is an empty record). */
int es__replrec_load(es_vfs *vfs, const char *dir,
                     es_replrec *rec) ES_MUST_CHECK;
/* Writes dir/REPLICA atomically and durably. */
int es__replrec_save(es_vfs *vfs, const char *dir,
                     const es_replrec *rec) ES_MUST_CHECK;
/* The entry named name, or NULL. */
es_replrec_entry *es__replrec_find(es_replrec *rec, const char *name);
/* Adds (or updates) an entry. */
int es__replrec_put(es_replrec *rec, const char *name, uint64_t bytes,
                    int64_t superseded_us) ES_MUST_CHECK;
/* Removes the entry named name, if any. */
void es__replrec_remove(es_replrec *rec, const char *name);
void es__replrec_free(es_replrec *rec);

/* ---- replicate.c: the uploader ----------------------------------------- */

typedef struct es_replicator es_replicator;

/* Starts the uploader of db into replica's store (a writable handle).
 * It subscribes to the commit path and runs one thread. */
int es__replicator_start(es_db *db, es_replica *replica,
                         es_replicator **out) ES_MUST_CHECK;
/* Stops the thread and unsubscribes; what is not uploaded stays in the
 * record's backlog for the next open. */
void es__replicator_stop(es_replicator *r);
void es__replicator_stats(es_replicator *r, es_replica_stats *out);
int es__replicator_drain(es_replicator *r, int64_t timeout_us) ES_MUST_CHECK;

/* The number of the last sweep begun, and of the last one that found
 * every tenant's newest manifest and files uploaded (walship.c, 3). */
void es__replicator_sweeps(es_replicator *r, uint64_t *begun_out,
                           uint64_t *clean_out);

/* The object key of a tenant's file: "tenants/<tenant>/<name>". */
int es__replica_key(char *out, size_t cap, const char *tenant,
                    const char *name) ES_MUST_CHECK;

/* ---- walship.c: the WAL shipper (durability tier s3) ------------------- */

typedef struct es_walship es_walship;

/* Starts shipping db's WAL to replica's store: s3_puts_inflight threads
 * per shard, subscribed to every synced frame.  repl is the uploader (for chunk
 * deletion, invariant 3). */
int es__walship_start(es_db *db, es_replica *replica, es_replicator *repl,
                      es_walship **out) ES_MUST_CHECK;
/* Stops the threads; waiters get ES_ECLOSED.  Frames not shipped stay in
 * the local log (they were never acknowledged in tier s3). */
void es__walship_stop(es_walship *w);
/* Before a tier-s3 append: ES_EUNAVAIL (nothing written) when the shard's
 * shipping is failing, stuck past s3_ack_timeout_us, or broken. */
int es__walship_admit(es_walship *w, uint32_t shard) ES_MUST_CHECK;
/* The LSN of the last frame of shard synced (and handed to the shipper). */
uint64_t es__walship_synced(es_walship *w, uint32_t shard);
/* Waits until every frame of shard up to lsn is in the store: ES_OK,
 * ES_EUNAVAIL (failing, broken, or not within timeout_us), ES_ECLOSED. */
int es__walship_wait(es_walship *w, uint32_t shard, uint64_t lsn,
                     int64_t timeout_us) ES_MUST_CHECK;
/* es_walship_stats_get and es_walship_shards (eventstore.h). */
void es__walship_stats(es_walship *w, es_walship_stats *out);
int es__walship_shards(es_walship *w,
                       int (*fn)(void *ud, const es_walship_shard *s),
                       void *ud);
/* "wal/<shard>/<016x first>-<016x last>", and back (ES_EINVAL if key is
 * not one). */
int es__walship_key(char *out, size_t cap, uint32_t shard, uint64_t first,
                    uint64_t last) ES_MUST_CHECK;
int es__walship_parse_key(const char *key, uint32_t *shard_out,
                          uint64_t *first_out,
                          uint64_t *last_out) ES_MUST_CHECK;
/* A cluster node's chunk key, "wal/<node>/<shard>/<016x>-<016x>" (node ""
 * is es__walship_key's layout), the listing prefix of one node's shard,
 * and back: node_out (ES_LEASE_NODE_MAX + 1 bytes) gets the node, "" for
 * a single store's key. */
int es__walship_node_key(char *out, size_t cap, const char *node,
                         uint32_t shard, uint64_t first,
                         uint64_t last) ES_MUST_CHECK;
int es__walship_prefix(char *out, size_t cap, const char *node,
                       uint32_t shard) ES_MUST_CHECK;
int es__walship_parse_node_key(const char *key, char *node_out,
                               uint32_t *shard_out, uint64_t *first_out,
                               uint64_t *last_out) ES_MUST_CHECK;

/* ---- restore.c ---------------------------------------------------------- */

/* Called per WAL record handed over by es__restore_wal_tenant: rec and
 * its rows are borrowed for the call.  Non-zero stops the walk. */
typedef int (*es_restore_rec_fn)(void *ud, uint64_t lsn, const es_wal_rec *rec);

/* Chunks read by takeovers, shared between them (restore.c, invariant 6):
 * a chunk key names one content for ever (walship.c, 2 and 7), so
 * takeovers of several tenants of one dead node's shard read each chunk
 * once.  Thread-safe.  bytes_max bounds what is kept unpinned; entries
 * unused for a minute are dropped; at most gets_inflight_max GETs are
 * under way through it at once, over all walks. */
typedef struct es_chunk_cache es_chunk_cache;
int es__chunk_cache_new(size_t bytes_max, unsigned gets_inflight_max,
                        es_chunk_cache **out) ES_MUST_CHECK;
/* No walk may be using it.  NULL is fine. */
void es__chunk_cache_free(es_chunk_cache *cc);
/* GETs made through the cache, and reads it answered without one. */
void es__chunk_cache_counts(es_chunk_cache *cc, uint64_t *gets_out,
                            uint64_t *hits_out);

/* Chunk GETs of one es__restore_wal_tenant in flight at most. */
#define ES_REPLAY_GETS_INFLIGHT 8

/* Lists the WAL chunks of node ("" : a single store's layout) and shard
 * in the replica once, reads those whose last LSN is above above_lsn (up
 * to ES_REPLAY_GETS_INFLIGHT at once, through cache when not NULL),
 * checks them, and calls fn for each record of tenant with an LSN above
 * above_lsn, once per LSN, in LSN order (restore.c, invariants 5 and 6).
 * *chunks_out counts the chunks read. */
int es__restore_wal_tenant(es_replica *replica, es_chunk_cache *cache,
                           const char *node, uint32_t shard, const char *tenant,
                           uint64_t above_lsn, es_restore_rec_fn fn, void *ud,
                           uint64_t *chunks_out) ES_MUST_CHECK;

/* es_restore with a chosen file system. */
int es__restore_vfs(es_replica *replica, es_vfs *vfs, const char *data_dir,
                    const char *const *tenants, size_t ntenants,
                    void (*progress)(void *, const es_restore_progress *),
                    void *ud) ES_MUST_CHECK;

#endif
