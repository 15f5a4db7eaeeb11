/*
 * cluster.c -- a node of a cluster: which tenants it holds, taking a
 * tenant over from the replica, renewing and handing over its leases
 * (lease.c), and the fence the uploader asks before it publishes
 * (replicate.c).  docs/SCALING.md tells the whole story.
 *
 * A tenant's life on a node (the states of es_cluster_status):
 *   taking    -- the worker thread takes the lease, restores the tenant
 *                from the replica into the open store and claims it;
 *   held      -- appends admitted while the lease is valid (lease.c, 3);
 *   releasing -- handing over: appends refused, sealed, uploaded, released;
 *   released  -- handed over cleanly; the local copy equals the replica's;
 *   waiting   -- another node holds the lease (this node asked for it);
 *   lost      -- a renewal found another node's generation;
 *   stale     -- this node has the tenant loaded but the replica moved on
 *                (another node wrote it): the store cannot drop a loaded
 *                tenant, so the node must restart with an empty directory;
 *   failed    -- the last takeover failed (retried after a pause).
 *
 * Taking a tenant the store does not know: restore it into DATA/tenants/
 * <t>/ (restore.c, es__restore_tenant_live: the store does not look at a
 * tenant it does not know), read the WAL records its manifest does not
 * hold from the chunks of the node the manifest names (invariant 5),
 * then CLAIM it: rewrite its MANIFEST with
 * generation (g << 40) and next_segment_id above (g << 40) (lease.c, 4),
 * flushed_lsn set to this node's shard LSN (the restored one counted
 * another node's WAL: replay and dedupe compare it with this node's
 * LSNs), and a REPLICA record listing the restored objects as uploaded,
 * so the uploader publishes the claimed manifest without uploading the
 * segments again.  Then the tenant is loaded, the records are appended
 * into it, the claimed manifest is put, and only then is it admitted.
 *
 * Invariants:
 *  1. es_cluster_admit says ES_OK only for a tenant in state held whose
 *     lease deadline (lease.c, 3) is in the future; es_cluster_owns is
 *     the same test, made again after the append and before the caller
 *     acknowledges, so nothing is acknowledged past the deadline.
 *  2. The uploader publishes (puts or deletes) a tenant's objects only
 *     while its lease is held or being released and valid, and puts a
 *     manifest only when its generation was made under the lease held.
 *  3. A tenant is restored only into a store that does not know it, and
 *     loaded only after its claimed MANIFEST is durable.  A tenant the
 *     store knows is kept only when the replica's newest manifest is the
 *     local one, or an older one this node made (it names this node,
 *     invariant 5; the uploader has not caught up): no other node
 *     published since, and none admitted anything (invariant 5); else it
 *     is stale.
 *  4. Lease I/O on one tenant is made by one thread at a time (io_mu;
 *     a renewal pass runs on up to CL_RENEWERS threads, each tenant
 *     renewed by one of them);
 *     the cluster mutex is never held across I/O.  A tenant's takeover or
 *     hand-over runs on one worker at a time (busy); different tenants'
 *     run at once on CL_WORKERS threads, sharing the chunks they read
 *     (restore.c, 6).
 *  5. A manifest this node writes names it as the node whose LSNs its
 *     flushed_lsn counts (store/manifest.h, 4), and its WAL chunks are
 *     wal/<node>/... (walship.c, 7).  So every event a holder
 *     acknowledged is in a segment of the newest published manifest, or
 *     in the chunks of the node that manifest names, above its
 *     flushed_lsn: a takeover restores that manifest, reads those records
 *     (restore.c, 5), and appends them into the running store (in tier
 *     s3 each append returns once in this node's chunks) BEFORE it puts
 *     its claimed manifest (naming this node, flushed_lsn the LSN before
 *     the replay), and admits nothing before that put returned.  Until the
 *     put, the newest manifest still names the previous holder, whose
 *     chunks are kept (walship.c, 7); after it, this node's chunks hold
 *     the replayed records.  A node that dies mid-takeover admitted
 *     nothing.
 *  6. A takeover that fails after the restore keeps its lease (renewed)
 *     and its state (what to replay, the claimed bytes) and resumes from
 *     where it stopped; appending the records again is harmless (each
 *     event's messageId dedupes it).  If the lease lapsed meanwhile, the
 *     half-made copy is stale.
 *  7. Another node's chunks (wal/<N>/...) are deleted by a node that
 *     replayed them in a takeover, and only chunks no tenant can need:
 *     by 5, tenant T needs N's chunks above its newest manifest's
 *     flushed_lsn when that manifest names N, and none otherwise.  A pass
 *     lists N's chunks FIRST, then reads every leased tenant's newest
 *     manifest; bound[s] = the least flushed_lsn of the shard-s tenants
 *     naming N, capped at the highest last LSN listed.  Manifests only
 *     move forward (a later one names N with a higher flushed_lsn, or
 *     another node), and a tenant N claims after the listing gets a
 *     flushed_lsn at least N's LSN then, above every chunk listed: so a
 *     chunk under a bound stays garbage for ever.  Chunks are deleted
 *     only under a bound at least gc_grace_us old (a restore or takeover
 *     that listed them a moment before still reads them).  A pass that
 *     fails deletes nothing more and is made again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/abi.h"
#include "base/clock.h"
#include "base/codec.h"
#include "base/event.h"
#include "base/io.h"
#include "base/mem.h"
#include "replicate/lease.h"
#include "replicate/replicate.h"
#include "store/manifest.h"

enum {
  CL_NEW,
  CL_TAKING,
  CL_HELD,
  CL_RELEASING,
  CL_RELEASED,
  CL_WAITING,
  CL_LOST,
  CL_STALE,
  CL_FAILED
};
static const char *const cl_state_name[] = {"new",       "taking",   "held",
                                            "releasing", "released", "waiting",
                                            "lost",      "stale",    "failed"};

#define RETRY_US INT64_C(300000) /* a refused or failed take, again */
/* Takeovers and hand-overs run at once, one per worker thread: after a
 * node's death each of its tenants waits for its own takeover only. */
#define CL_WORKERS 4
#define CL_RENEWERS 4 /* lease renewals in flight at once */
/* Chunks kept for takeovers of the same dead node's shard (restore.c, 6). */
#define CL_CHUNK_CACHE_BYTES ((size_t)64 << 20)
/* Replayed events per es_append (one WAL record, one chunk PUT). */
#define CL_REPLAY_BATCH_EVENTS 10000
#define CL_REPLAY_BATCH_BYTES ((size_t)8 << 20)
/* Collecting a dead node's chunks (invariant 7): a pass every 30 s, and
 * a chunk deleted only under a bound at least a minute old. */
#define CL_GC_EVERY_US INT64_C(30000000)
#define CL_GC_GRACE_US INT64_C(60000000)
#define UPLOAD_POLL_US INT64_C(20000)

/* The records to replay: per record u32 events, u32 bytes, then its rows,
 * back to back. */
typedef struct cl_replay {
  es_buf recs;
  uint64_t records, events, chunks;
  char node[ES_MANIFEST_NODE_MAX + 1]; /* whose chunks they came from */
} cl_replay;

/* A node whose chunks this node replayed in a takeover: its chunks of
 * shard s whose last LSN is at most bound[s] are garbage once the bound
 * is gc_grace_us old. */
typedef struct cl_gc_node {
  char node[ES_LEASE_NODE_MAX + 1];
  uint64_t *bound;       /* per shard, from the pass at bound_mono_us */
  int64_t bound_mono_us; /* 0: no pass made one yet */
  struct cl_gc_node *next;
} cl_gc_node;

typedef struct cl_tenant {
  char name[ES_TENANT_LEN_MAX + 1];
  pthread_mutex_t io_mu; /* invariant 4 */
  /* guarded by es_cluster.mu */
  int state;
  int queued;            /* a take or a hand-over waits for a worker */
  int handoff;           /* the queued job is a hand-over */
  int busy;              /* a worker runs its job (invariant 4) */
  es_lease lease;        /* held, or last seen */
  int64_t valid_mono_us; /* lease.c, 3 */
  int64_t retry_mono_us;
  int64_t took_us;
  uint64_t restored_rows;
  uint64_t replayed_events;
  int64_t lease_us, restore_us, replay_us; /* the last takeover's steps */
  /* a takeover under way, the worker's own (invariant 6) */
  atomic_int resume;  /* it failed under the lease: go on under it */
  int restored;       /* the replica's copy is in the tenant directory */
  int rp_ready;       /* rp holds what to replay */
  cl_replay rp;       /* the previous holder's records above the manifest */
  uint8_t *claim_man; /* the claimed MANIFEST's bytes, once written */
  size_t claim_len;
  struct cl_tenant *next;
} cl_tenant;

struct es_cluster {
  es_replica *replica;
  es_objstore *os;
  es_db *db;
  char node[ES_LEASE_NODE_MAX + 1];
  es_lease_clock clk;
  pthread_mutex_t mu;
  pthread_cond_t cv;  /* wakes the worker */
  pthread_cond_t rcv; /* wakes the renewer (stop) */
  cl_tenant *ts;
  es_chunk_cache *cache; /* restore.c, 6 */
  cl_gc_node *gc;        /* nodes whose chunks to collect (7), under mu */
  int64_t gc_every_us, gc_grace_us;
  uint64_t gc_passes; /* passes that ended without an error */
  pthread_t workers[CL_WORKERS], renewer, collector;
  int nworkers, started, stop;
};

void es_cluster_config_init_sized(es_cluster_config *cfg, size_t struct_size) {
  es_cluster_config c;
  memset(&c, 0, sizeof(c));
  memset(cfg, 0, struct_size);
  memcpy(cfg, &c, struct_size < sizeof(c) ? struct_size : sizeof(c));
  cfg->struct_size = struct_size;
}

int es_cluster_new(es_replica *replica, const es_cluster_config *cfg_in,
                   es_cluster **out) {
  if (!out)
    return ES_INVAL_BKPT("es_cluster_new: NULL out");
  *out = NULL;
  if (!replica || !cfg_in)
    return ES_INVAL_BKPT("es_cluster_new: NULL argument");
  es_cluster_config cfg;
  es_cluster_config_init(&cfg);
  ES_TRY(es__abi_options_in(cfg_in, &cfg, sizeof(cfg), sizeof(cfg),
                            "es_cluster_config"));
  ES_TRY(es__lease_node_check(cfg.node));
  es_lease_clock clk = {
      .ttl_us = cfg.lease_ttl_us > 0 ? cfg.lease_ttl_us : INT64_C(10000000),
      .skew_us = cfg.clock_skew_us > 0 ? cfg.clock_skew_us : INT64_C(500000)};
  if (clk.ttl_us <= 4 * clk.skew_us)
    return ES_INVAL_BKPT("lease ttl %" PRId64 " us must exceed 4 x the clock "
                         "skew %" PRId64 " us",
                         clk.ttl_us, clk.skew_us);
  es_cluster *c = es__calloc(1, sizeof(*c));
  if (!c)
    return ES_NOMEM_BKPT();
  int rc = es__chunk_cache_new(CL_CHUNK_CACHE_BYTES, ES_REPLAY_GETS_INFLIGHT,
                               &c->cache);
  if (rc < 0) {
    es__free(c);
    return rc;
  }
  c->replica = replica;
  c->os = replica->os;
  c->gc_every_us = CL_GC_EVERY_US;
  c->gc_grace_us = CL_GC_GRACE_US;
  c->clk = clk;
  snprintf(c->node, sizeof(c->node), "%s", cfg.node);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  pthread_cond_init(&c->rcv, NULL);
  es_cluster *none = NULL;
  if (!atomic_compare_exchange_strong(&replica->cluster, &none, c)) {
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->rcv);
    es__chunk_cache_free(c->cache);
    es__free(c);
    return ES_ERR(ES_EBUSY, "this replica has a cluster node already");
  }
  *out = c;
  return ES_OK;
}

const char *es__cluster_node(const es_cluster *c) { return c->node; }

void es__cluster_chunk_counts(es_cluster *c, uint64_t *gets_out,
                              uint64_t *hits_out) {
  es__chunk_cache_counts(c->cache, gets_out, hits_out);
}

static void cl_gc_note(es_cluster *c, const char *node);

uint64_t es__cluster_gc_passes(es_cluster *c) {
  pthread_mutex_lock(&c->mu);
  uint64_t n = c->gc_passes;
  pthread_mutex_unlock(&c->mu);
  return n;
}

void es__cluster_gc_timing(es_cluster *c, int64_t every_us, int64_t grace_us) {
  pthread_mutex_lock(&c->mu);
  c->gc_every_us = every_us;
  c->gc_grace_us = grace_us;
  pthread_cond_broadcast(&c->rcv); /* the collector waits anew */
  pthread_mutex_unlock(&c->mu);
}

/* The tenant named name (caller holds mu), created when missing; NULL
 * when out of memory. */
static cl_tenant *cl_get(es_cluster *c, const char *name) {
  for (cl_tenant *t = c->ts; t; t = t->next)
    if (strcmp(t->name, name) == 0)
      return t;
  cl_tenant *t = es__calloc(1, sizeof(*t));
  if (!t)
    return NULL;
  snprintf(t->name, sizeof(t->name), "%s", name);
  pthread_mutex_init(&t->io_mu, NULL);
  t->next = c->ts;
  c->ts = t;
  return t;
}

static cl_tenant *cl_find(es_cluster *c, const char *name) {
  for (cl_tenant *t = c->ts; t; t = t->next)
    if (strcmp(t->name, name) == 0)
      return t;
  return NULL;
}

/* The deadline of a lease whose put was sent at sent_mono (lease.c, 3). */
static int64_t cl_deadline(const es_cluster *c, int64_t sent_mono) {
  return sent_mono + c->clk.ttl_us - c->clk.skew_us;
}

static int cl_valid(const cl_tenant *t) {
  return t->lease.gen != 0 && es__clock_mono_us() < t->valid_mono_us;
}

int es__cluster_fence(es_cluster *c, const char *tenant, uint64_t generation) {
  pthread_mutex_lock(&c->mu);
  cl_tenant *t = cl_find(c, tenant);
  int ok =
      t && (t->state == CL_HELD || t->state == CL_RELEASING) && cl_valid(t);
  uint64_t gen = t ? t->lease.gen : 0;
  pthread_mutex_unlock(&c->mu);
  if (!ok)
    return ES_ERR(ES_EUNAVAIL,
                  "tenant %s: this node does not hold its lease: "
                  "not publishing",
                  tenant);
  if (generation && (generation >> ES_LEASE_GEN_SHIFT) != gen)
    return ES_ERR(ES_EUNAVAIL,
                  "tenant %s: manifest generation %" PRIx64
                  " was not made under lease generation %" PRIu64,
                  tenant, generation, gen);
  return ES_OK;
}

/* --- taking a tenant ------------------------------------------------------ */

typedef struct cl_lsn {
  es_db *db;
  uint32_t shard;
  uint64_t lsn;
} cl_lsn;

/* On the shard's writer thread: the last LSN it assigned. */
static int cl_lsn_read(void *arg) {
  cl_lsn *l = arg;
  uint64_t next = l->db->shards[l->shard].next_lsn;
  l->lsn = next ? next - 1 : 0;
  return ES_OK;
}

typedef struct cl_newest {
  uint64_t gen;
} cl_newest;

static int cl_newest_one(void *ud, const char *key, const es_objinfo *info) {
  cl_newest *n = ud;
  (void)info;
  const char *m = strrchr(key, '/');
  unsigned long long g = 0;
  char tail = 0;
  if (m && sscanf(m + 1, "MANIFEST-%16llx%c", &g, &tail) == 1 &&
      strlen(m + 1) == strlen("MANIFEST-") + 16 && g > n->gen)
    n->gen = g;
  return 0;
}

/* The generation of the tenant's newest manifest in the replica (0). */
static int cl_replica_gen(es_cluster *c, const char *tenant, uint64_t *out) {
  char prefix[ES_OBJ_KEY_MAX + 1];
  ES_TRY(es__replica_key(prefix, sizeof(prefix), tenant, "MANIFEST-"));
  cl_newest n = {0};
  ES_TRY(c->os->list(c->os, prefix, NULL, cl_newest_one, &n));
  *out = n.gen;
  return ES_OK;
}

/* The replica's newest manifest of the tenant: its generation (0: none)
 * and the node whose LSNs it counts (invariant 5: the node that made it). */
static int cl_replica_head(es_cluster *c, const char *tenant, uint64_t *gen,
                           char node[ES_MANIFEST_NODE_MAX + 1]) {
  node[0] = '\0';
  ES_TRY(cl_replica_gen(c, tenant, gen));
  if (*gen == 0)
    return ES_OK;
  char man[40], key[ES_OBJ_KEY_MAX + 1];
  snprintf(man, sizeof(man), "MANIFEST-%016llx", (unsigned long long)*gen);
  ES_TRY(es__replica_key(key, sizeof(key), tenant, man));
  uint8_t *buf = NULL;
  size_t len = 0;
  ES_TRY(c->os->get(c->os, key, 0, ES_OBJ_TO_END, &buf, &len, NULL));
  es_manifest m;
  int rc = es__manifest_decode(key, buf, len, &m);
  es__free(buf);
  if (rc == ES_OK) {
    snprintf(node, ES_MANIFEST_NODE_MAX + 1, "%s", m.lsn_node);
    es__manifest_free(&m);
  }
  return rc;
}

/* Writes the claimed MANIFEST and the REPLICA record of a tenant just
 * restored (or new): see the essay. */
static int cl_claim_files(es_cluster *c, const char *tenant, uint64_t lgen,
                          uint64_t *rows_out) {
  es_db *db = c->db;
  char tdir[ES_PATH_MAX];
  ES_TRY(es__path_join(tdir, sizeof(tdir), db->tenants_dir, tenant));
  ES_TRY(db->vfs->mkdir(db->vfs, tdir));
  ES_TRY(db->vfs->sync_dir(db->vfs, db->tenants_dir));
  es_manifest m;
  ES_TRY(es__manifest_read(db->vfs, tdir, &m));
  cl_lsn l = {db, es__tenant_shard(db, tenant), 0};
  int rc = es__shard_call(db, l.shard, cl_lsn_read, &l);
  es_replrec rec;
  memset(&rec, 0, sizeof(rec));
  uint64_t base = lgen << ES_LEASE_GEN_SHIFT;
  uint64_t rows = 0;
  for (size_t i = 0; rc == ES_OK && i < m.count; i++) {
    char name[40];
    es__segment_name(name, sizeof(name), m.entries[i].id);
    rows += m.entries[i].rows;
    rc = es__replrec_put(&rec, name, m.entries[i].bytes, 0);
    uint64_t sz = 0;
    memcpy(name + strlen(name) - 4, ".rlp", 5);
    char path[ES_PATH_MAX];
    if (rc == ES_OK)
      rc = es__path_join(path, sizeof(path), tdir, name);
    if (rc == ES_OK) {
      uint8_t *buf = NULL;
      size_t len = 0;
      int r2 = es__io_read_all(db->vfs, path, &buf, &len);
      es__free(buf);
      if (r2 == ES_OK) {
        sz = len;
        rc = es__replrec_put(&rec, name, sz, 0);
      } else if (r2 == ES_ENOTFOUND) {
        es__error_clear();
      } else {
        rc = r2;
      }
    }
  }
  if (rc == ES_OK) {
    m.generation = base;
    if (m.next_segment_id <= base)
      m.next_segment_id = base + 1;
    m.flushed_lsn = l.lsn;
    snprintf(m.lsn_node, sizeof(m.lsn_node), "%s", c->node); /* 5 */
    rc = es__replrec_save(db->vfs, tdir, &rec); /* before the MANIFEST */
  }
  if (rc == ES_OK)
    rc = es__manifest_write(db->vfs, tdir, &m);
  es__replrec_free(&rec);
  es__manifest_free(&m);
  *rows_out = rows;
  return rc;
}

/* Claims a tenant the store has loaded already and the replica has not
 * moved past (invariant 3): the next manifest and segment it commits
 * carry the new lease generation. */
static int cl_claim_loaded(es_cluster *c, const char *tenant, uint64_t lgen) {
  es_tenant *t = NULL;
  ES_TRY(es__tenant_get(c->db, tenant, 1, &t));
  uint64_t base = lgen << ES_LEASE_GEN_SHIFT;
  pthread_mutex_lock(&t->man_mu);
  if (strcmp(t->man.lsn_node, c->node) != 0 && t->man.generation > 0) {
    pthread_mutex_unlock(&t->man_mu);
    return ES_ERR(ES_EFAILED,
                  "tenant %s: its local manifest counts LSNs of \"%s\", not "
                  "of this node (a single store's directory?): start the "
                  "node with an empty data directory",
                  tenant, t->man.lsn_node);
  }
  if (t->man.generation < base)
    t->man.generation = base; /* the next commit is base + 1 */
  if (t->man.next_segment_id <= base)
    t->man.next_segment_id = base + 1;
  pthread_mutex_unlock(&t->man_mu);
  return ES_OK;
}

/* The local MANIFEST's generation of a tenant the store knows. */
static int cl_local_gen(es_cluster *c, const char *tenant, uint64_t *out) {
  char tdir[ES_PATH_MAX];
  ES_TRY(es__path_join(tdir, sizeof(tdir), c->db->tenants_dir, tenant));
  es_manifest m;
  ES_TRY(es__manifest_read(c->db->vfs, tdir, &m));
  *out = m.count || m.flushed_lsn || m.generation > 1 ? m.generation : 0;
  es__manifest_free(&m);
  return ES_OK;
}

/* --- replaying the previous holder's WAL (invariant 5) -------------------- */

static int cl_replay_keep(void *ud, uint64_t lsn, const es_wal_rec *rec) {
  cl_replay *r = ud;
  (void)lsn;
  if (rec->rows_len > UINT32_MAX)
    return ES_CORRUPT_BKPT("a WAL record of %zu bytes", rec->rows_len);
  ES_TRY(es__buf_put_u32(&r->recs, rec->events));
  ES_TRY(es__buf_put_u32(&r->recs, (uint32_t)rec->rows_len));
  ES_TRY(es__buf_put(&r->recs, rec->rows, rec->rows_len));
  r->records++;
  r->events += rec->events;
  return ES_OK;
}

/* After the restore of tenant: reads the records its newest manifest
 * does not hold from the WAL chunks of the node whose LSNs it counts. */
static int cl_replay_read(es_cluster *c, const char *tenant, cl_replay *r) {
  char tdir[ES_PATH_MAX];
  ES_TRY(es__path_join(tdir, sizeof(tdir), c->db->tenants_dir, tenant));
  es_manifest m;
  ES_TRY(es__manifest_read(c->db->vfs, tdir, &m));
  snprintf(r->node, sizeof(r->node), "%s", m.lsn_node);
  int rc = es__restore_wal_tenant(c->replica, c->cache, m.lsn_node,
                                  es__tenant_shard(c->db, tenant), tenant,
                                  m.flushed_lsn, cl_replay_keep, r, &r->chunks);
  es__manifest_free(&m);
  return rc;
}

/* Appends the records read into the running store under tenant, in
 * batches of up to CL_REPLAY_BATCH_EVENTS events (each batch one WAL
 * record, in tier s3 one wait for this node's chunk PUT, not one per
 * record read).  messageId dedupes an event present twice (an SDK's retry
 * the old holder stored once already; a duplicate inside one batch is
 * stored once too: dedupe.c, 1). */
static int cl_replay_append(es_cluster *c, const char *tenant,
                            const cl_replay *r) {
  size_t cap = r->events < CL_REPLAY_BATCH_EVENTS ? (size_t)r->events
                                                  : CL_REPLAY_BATCH_EVENTS;
  if (cap == 0)
    return ES_OK;
  es_event *evs = es__calloc(cap, sizeof(*evs));
  if (!evs)
    return ES_NOMEM_BKPT();
  int rc = ES_OK;
  size_t n = 0, bytes = 0;
  for (size_t off = 0; rc == ES_OK && off < r->recs.len;) {
    uint32_t count = es__get_le32(r->recs.data + off);
    uint32_t len = es__get_le32(r->recs.data + off + 4);
    const uint8_t *p = r->recs.data + off + 8;
    off += 8 + (size_t)len;
    size_t at = 0;
    for (uint32_t i = 0; rc == ES_OK && i < count; i++) {
      if (n == cap || bytes >= CL_REPLAY_BATCH_BYTES) {
        rc = es_append(c->db, tenant, evs, n, NULL);
        n = bytes = 0;
      }
      size_t used = 0;
      if (rc == ES_OK)
        rc = es__event_decode(p + at, len - at, &evs[n++], &used);
      at += used;
      bytes += used;
    }
  }
  if (rc == ES_OK && n > 0)
    rc = es_append(c->db, tenant, evs, n, NULL);
  es__free(evs);
  return rc;
}

/* Puts the claimed manifest (mbuf, generation gen) while the lease is
 * valid, and records it as uploaded: from then on a takeover replays
 * this node's chunks (invariant 5). */
static int cl_publish_claim(es_cluster *c, cl_tenant *t, const uint8_t *mbuf,
                            size_t mlen, uint64_t gen) {
  char man[40], key[ES_OBJ_KEY_MAX + 1], tdir[ES_PATH_MAX];
  snprintf(man, sizeof(man), "MANIFEST-%016llx", (unsigned long long)gen);
  ES_TRY(es__replica_key(key, sizeof(key), t->name, man));
  ES_TRY(es__path_join(tdir, sizeof(tdir), c->db->tenants_dir, t->name));
  pthread_mutex_lock(&c->mu);
  int valid = cl_valid(t);
  pthread_mutex_unlock(&c->mu);
  if (!valid) /* invariant 2 */
    return ES_ERR(ES_EUNAVAIL,
                  "tenant %s: the lease expired during the "
                  "takeover",
                  t->name);
  ES_TRY(c->os->put(c->os, key, mbuf, mlen, ES_OBJ_PUT_ALWAYS, NULL, NULL));
  es_replrec rec;
  ES_TRY(es__replrec_load(c->db->vfs, tdir, &rec));
  int rc = es__replrec_put(&rec, man, mlen, 0);
  if (rc == ES_OK && rec.generation < gen)
    rec.generation = gen;
  if (rc == ES_OK)
    rc = es__replrec_save(c->db->vfs, tdir, &rec);
  es__replrec_free(&rec);
  return rc;
}

/* Forgets a takeover's state (done, or given up). */
static void cl_take_reset(cl_tenant *t) {
  es__buf_free(&t->rp.recs);
  memset(&t->rp, 0, sizeof(t->rp));
  es__free(t->claim_man);
  t->claim_man = NULL;
  t->claim_len = 0;
  t->resume = t->restored = t->rp_ready = 0;
}

/* A new takeover's step times start at zero; a resumed one adds to them. */
static void cl_take_clock_reset(cl_tenant *t) {
  t->lease_us = t->restore_us = t->replay_us = 0;
}

/* Restores and claims a tenant the store does not know (see the essay),
 * going on from where a failed attempt under the same lease stopped. */
static int cl_take_claim(es_cluster *c, cl_tenant *t, uint64_t lgen,
                         uint64_t *rows_out) {
  int rc = ES_OK;
  if (!t->restored) {
    int64_t t0 = es__clock_mono_us();
    rc = es__restore_tenant_live(c->replica, c->db->vfs, c->db->dir, t->name);
    t->restore_us += es__clock_mono_us() - t0;
    if (rc == ES_ENOTFOUND) { /* a new tenant: nothing in the replica */
      es__error_clear();
      rc = ES_OK;
      t->rp_ready = 1; /* nothing to replay (invariant 5) */
    }
    t->restored = rc == ES_OK;
  }
  if (rc == ES_OK && !t->rp_ready) {
    int64_t t0 = es__clock_mono_us();
    rc = cl_replay_read(c, t->name, &t->rp);
    t->replay_us += es__clock_mono_us() - t0;
    if (rc < 0) {
      es__buf_free(&t->rp.recs);
      memset(&t->rp, 0, sizeof(t->rp));
    }
    t->rp_ready = rc == ES_OK;
  }
  if (rc == ES_OK)
    rc = cl_claim_files(c, t->name, lgen, rows_out);
  char tdir[ES_PATH_MAX], mpath[ES_PATH_MAX];
  if (rc == ES_OK)
    rc = es__path_join(tdir, sizeof(tdir), c->db->tenants_dir, t->name);
  if (rc == ES_OK)
    rc = es__path_join(mpath, sizeof(mpath), tdir, "MANIFEST");
  if (rc == ES_OK)
    rc = es__io_read_all(c->db->vfs, mpath, &t->claim_man, &t->claim_len);
  return rc;
}

/* A tenant the store does not know: restore, read what to replay, claim,
 * load, replay, publish the claim; only then may it be admitted. */
static int cl_take_new(es_cluster *c, cl_tenant *t, uint64_t lgen,
                       uint64_t *rows_out, uint64_t *replayed_out) {
  int rc = t->claim_man ? ES_OK : cl_take_claim(c, t, lgen, rows_out);
  es_tenant *et = NULL;
  if (rc == ES_OK)
    rc = es__tenant_get(c->db, t->name, 1, &et);
  int64_t t0 = es__clock_mono_us();
  if (rc == ES_OK) /* again after a failure: messageIds dedupe */
    rc = cl_replay_append(c, t->name, &t->rp);
  t->replay_us += es__clock_mono_us() - t0;
  if (rc == ES_OK)
    rc = cl_publish_claim(c, t, t->claim_man, t->claim_len,
                          lgen << ES_LEASE_GEN_SHIFT);
  *replayed_out = t->rp.events;
  if (t->rp.records)
    es__db_log(c->db, 2,
               "tenant %s: replayed %" PRIu64 " events (%" PRIu64
               " records) from %" PRIu64 " WAL chunks: %s",
               t->name, t->rp.events, t->rp.records, t->rp.chunks,
               rc == ES_OK ? "ok" : "failed");
  return rc;
}

static void cl_set(es_cluster *c, cl_tenant *t, int state, int64_t retry_us) {
  pthread_mutex_lock(&c->mu);
  t->state = state;
  t->retry_mono_us = es__clock_mono_us() + retry_us;
  pthread_mutex_unlock(&c->mu);
}

/* The worker's takeover of t (see the essay). */
static void cl_take(es_cluster *c, cl_tenant *t) {
  int64_t t0 = es__clock_mono_us();
  es_lease l;
  pthread_mutex_lock(&c->mu);
  int resume = t->resume && cl_valid(t);
  l = t->lease;
  pthread_mutex_unlock(&c->mu);
  if (t->resume && !resume && t->restored) {
    es__db_log(c->db, 1,
               "tenant %s: the lease lapsed during a takeover; its half-made "
               "copy is stale: restart this node with an empty data "
               "directory",
               t->name);
    cl_take_reset(t);
    cl_set(c, t, CL_STALE, RETRY_US);
    return;
  }
  if (!resume) {
    cl_take_reset(t);
    cl_take_clock_reset(t);
  }
  pthread_mutex_lock(&t->io_mu);
  int64_t sent = es__clock_mono_us();
  int rc = resume ? ES_OK
                  : es__lease_acquire(c->os, t->name, c->node,
                                      es__clock_now_us(), &c->clk, &l);
  if (rc == ES_EBUSY && l.gen) {
    if (es__lease_ask(c->os, t->name, &l, c->node) != ES_OK)
      es__error_clear();
    pthread_mutex_unlock(&t->io_mu);
    pthread_mutex_lock(&c->mu);
    t->lease = l;
    pthread_mutex_unlock(&c->mu);
    cl_set(c, t, CL_WAITING, RETRY_US);
    return;
  }
  if (rc < 0) {
    pthread_mutex_unlock(&t->io_mu);
    cl_set(c, t, CL_FAILED, RETRY_US);
    return;
  }
  pthread_mutex_lock(&c->mu);
  if (!resume) {
    t->lease = l;
    t->valid_mono_us = cl_deadline(c, sent);
    t->lease_us = es__clock_mono_us() - t0;
  }
  pthread_mutex_unlock(&c->mu);
  pthread_mutex_unlock(&t->io_mu);

  uint64_t rows = 0, replayed = 0;
  int state = CL_HELD;
  if (!resume && es__tenant_known(c->db, t->name)) {
    uint64_t local = 0, remote = 0;
    char rnode[ES_MANIFEST_NODE_MAX + 1];
    rc = cl_local_gen(c, t->name, &local);
    if (rc == ES_OK)
      rc = cl_replica_head(c, t->name, &remote, rnode);
    /* ours: nobody published since (the newest is the local one, or one
     * this node made that its uploader has not caught up with) */
    int ours = remote == local ||
               (remote && strcmp(rnode, c->node) == 0 && remote < local);
    if (rc == ES_OK && !ours) {
      es__db_log(c->db, 1,
                 "tenant %s: local copy at generation %" PRIx64
                 ", the replica at %" PRIx64 ": stale, restart this node "
                 "with an empty data directory",
                 t->name, local, remote);
      state = CL_STALE;
    } else if (rc == ES_OK) {
      rc = cl_claim_loaded(c, t->name, l.gen);
    }
  } else {
    rc = cl_take_new(c, t, l.gen, &rows, &replayed);
  }
  if (rc < 0 && t->restored) { /* keep the lease, go on later (6) */
    es__db_log(c->db, 1, "tenant %s: takeover failed (resumed later): %s",
               t->name, es_errdetail());
    t->resume = 1;
    cl_set(c, t, CL_FAILED, RETRY_US);
    return;
  }
  if (rc < 0 || state == CL_STALE) {
    if (rc < 0)
      es__db_log(c->db, 1, "tenant %s: takeover failed: %s", t->name,
                 es_errdetail());
    cl_take_reset(t);
    pthread_mutex_lock(&t->io_mu); /* let another node have it at once */
    pthread_mutex_lock(&c->mu);
    es_lease cur = t->lease;
    t->valid_mono_us = 0;
    pthread_mutex_unlock(&c->mu);
    if (es__lease_release(c->os, t->name, &cur) != ES_OK)
      es__error_clear();
    pthread_mutex_unlock(&t->io_mu);
    cl_set(c, t, rc < 0 ? CL_FAILED : CL_STALE, RETRY_US);
    return;
  }
  if (t->rp.node[0] && strcmp(t->rp.node, c->node) != 0)
    cl_gc_note(c, t->rp.node); /* its chunks are garbage for t now (7) */
  cl_take_reset(t);
  pthread_mutex_lock(&c->mu);
  t->state = state;
  t->took_us = es__clock_mono_us() - t0;
  t->restored_rows = rows;
  t->replayed_events = replayed;
  pthread_mutex_unlock(&c->mu);
  es__db_log(c->db, 2,
             "tenant %s: taken over (lease generation %" PRIu64 ", %" PRIu64
             " rows restored, %" PRIu64 " events replayed) in %" PRId64
             " ms (lease %" PRId64 ", restore %" PRId64 ", replay %" PRId64 ")",
             t->name, l.gen, rows, replayed, t->took_us / 1000,
             t->lease_us / 1000, t->restore_us / 1000, t->replay_us / 1000);
}

/* --- handing over --------------------------------------------------------- */

/* Whether the replica has the tenant's local manifest (its record). */
static int cl_uploaded(es_cluster *c, const char *tenant) {
  uint64_t local = 0;
  if (cl_local_gen(c, tenant, &local) != ES_OK) {
    es__error_clear();
    return 0;
  }
  es_replica_record r;
  if (es_replica_record_read(c->db->dir, tenant, &r) != ES_OK) {
    es__error_clear();
    return local == 0;
  }
  return r.generation >= local;
}

/* Waits us microseconds (less when the node stops). */
static void cl_sleep(es_cluster *c, int64_t us) {
  struct timespec ts;
  es__clock_deadline(&ts, us);
  pthread_mutex_lock(&c->mu);
  if (!c->stop)
    pthread_cond_timedwait(&c->rcv, &c->mu, &ts);
  pthread_mutex_unlock(&c->mu);
}

static int cl_release_one(es_cluster *c, cl_tenant *t, int64_t timeout_us) {
  pthread_mutex_lock(&c->mu);
  int held = t->state == CL_HELD;
  if (held)
    t->state = CL_RELEASING; /* admit and owns say no from now */
  pthread_mutex_unlock(&c->mu);
  if (!held)
    return ES_OK;
  cl_sleep(c, UPLOAD_POLL_US); /* appends admitted just before */
  int rc = es_flush(c->db, t->name);
  int64_t end = es__clock_mono_us() + timeout_us;
  while (rc == ES_OK && !cl_uploaded(c, t->name)) {
    if (es__clock_mono_us() > end) {
      rc = ES_ERR(ES_EUNAVAIL, "tenant %s: not uploaded within %" PRId64 " ms",
                  t->name, timeout_us / 1000);
      break;
    }
    cl_sleep(c, UPLOAD_POLL_US);
  }
  if (rc < 0) {
    cl_set(c, t, CL_HELD, 0);
    return rc;
  }
  pthread_mutex_lock(&t->io_mu);
  pthread_mutex_lock(&c->mu);
  es_lease cur = t->lease;
  t->valid_mono_us = 0; /* nothing published past this point */
  t->state = CL_RELEASED;
  pthread_mutex_unlock(&c->mu);
  rc = es__lease_release(c->os, t->name, &cur);
  pthread_mutex_unlock(&t->io_mu);
  return rc; /* a failed release expires by itself */
}

int es_cluster_release(es_cluster *c, const char *tenant, int64_t timeout_us) {
  if (!c || !c->db)
    return ES_INVAL_BKPT("es_cluster_release: no started cluster");
  int first = ES_OK;
  for (;;) {
    cl_tenant *t = NULL;
    pthread_mutex_lock(&c->mu);
    for (cl_tenant *x = c->ts; x && !t; x = x->next)
      if ((!tenant || strcmp(x->name, tenant) == 0) && x->state == CL_HELD)
        t = x;
    pthread_mutex_unlock(&c->mu);
    if (!t)
      return first;
    int rc = cl_release_one(c, t, timeout_us);
    if (rc < 0 && first == ES_OK)
      first = rc;
    if (tenant || rc < 0)
      return first;
  }
}

/* --- threads -------------------------------------------------------------- */

static void *cl_gc_main(void *arg);

/* One of CL_WORKERS threads: runs the queued jobs, one tenant's at a
 * time (busy), so several tenants are taken over at once. */
static void *cl_worker(void *arg) {
  es_cluster *c = arg;
  pthread_mutex_lock(&c->mu);
  while (!c->stop) {
    cl_tenant *t = c->ts;
    while (t && (!t->queued || t->busy))
      t = t->next;
    if (!t) {
      pthread_cond_wait(&c->cv, &c->mu);
      continue;
    }
    t->queued = 0;
    t->busy = 1;
    int handoff = t->handoff;
    t->handoff = 0;
    pthread_mutex_unlock(&c->mu);
    if (handoff) {
      if (cl_release_one(c, t, INT64_C(60000000)) != ES_OK)
        es__error_clear();
    } else {
      cl_take(c, t);
    }
    pthread_mutex_lock(&c->mu);
    t->busy = 0;
    if (t->queued) /* queued again meanwhile: another worker may take it */
      pthread_cond_broadcast(&c->cv);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* Renews one lease; queues a hand-over when another node asked. */
static void cl_renew(es_cluster *c, cl_tenant *t) {
  pthread_mutex_lock(&t->io_mu);
  pthread_mutex_lock(&c->mu);
  int live = (t->state == CL_HELD || t->state == CL_RELEASING ||
              t->state == CL_TAKING || (t->state == CL_FAILED && t->resume)) &&
             t->lease.gen != 0 && t->valid_mono_us != 0;
  es_lease l = t->lease;
  pthread_mutex_unlock(&c->mu);
  if (!live) {
    pthread_mutex_unlock(&t->io_mu);
    return;
  }
  int64_t sent = es__clock_mono_us();
  int rc = es__lease_renew(c->os, t->name, &l, es__clock_now_us(), &c->clk);
  pthread_mutex_lock(&c->mu);
  if (rc == ES_OK && t->lease.gen == l.gen) {
    t->lease = l;
    t->valid_mono_us = cl_deadline(c, sent);
    if (l.want[0] && strcmp(l.want, c->node) != 0 && t->state == CL_HELD &&
        !t->queued) {
      t->queued = t->handoff = 1;
      pthread_cond_signal(&c->cv);
    }
  } else if (rc == ES_ECONFLICT) {
    t->valid_mono_us = 0;
    if (t->state == CL_HELD || t->state == CL_RELEASING)
      t->state = CL_LOST;
    es__db_log(c->db, 1, "tenant %s: %s", t->name, es_errdetail());
  } /* in doubt: the deadline keeps running (lease.c, 3) */
  pthread_mutex_unlock(&c->mu);
  pthread_mutex_unlock(&t->io_mu);
  es__error_clear();
}

/* One pass of renewals shared by up to CL_RENEWERS threads: each takes
 * the next tenant off the list (under mu) and renews it.  A renewal is a
 * round trip to the bucket (0.5-1.5 s through a loaded loopback proxy);
 * one after another, a node with a handful of tenants let the first
 * ones lapse before the pass came back to them. */
typedef struct {
  es_cluster *c;
  cl_tenant *next; /* guarded by c->mu */
} cl_pass;

static void *cl_renew_some(void *arg) {
  cl_pass *p = arg;
  for (;;) {
    pthread_mutex_lock(&p->c->mu);
    cl_tenant *t = p->next;
    if (t)
      p->next = t->next;
    pthread_mutex_unlock(&p->c->mu);
    if (!t)
      return NULL;
    cl_renew(p->c, t);
  }
}

static void *cl_renewer(void *arg) {
  es_cluster *c = arg;
  int64_t every = c->clk.ttl_us / 4;
  pthread_mutex_lock(&c->mu);
  while (!c->stop) {
    /* tenants are never removed while the node runs: the pass walks the
     * list taking mu only to step it */
    cl_pass pass = {c, c->ts};
    int want = -1; /* helpers: one per tenant past the first */
    for (cl_tenant *t = c->ts; t && want < CL_RENEWERS - 1; t = t->next)
      want++;
    pthread_mutex_unlock(&c->mu);
    pthread_t th[CL_RENEWERS];
    int n = 0;
    while (n < want && pthread_create(&th[n], NULL, cl_renew_some, &pass) == 0)
      n++;
    cl_renew_some(&pass); /* if no helper started, all of them here */
    while (n > 0)
      pthread_join(th[--n], NULL);
    pthread_mutex_lock(&c->mu);
    if (c->stop)
      break;
    struct timespec ts;
    es__clock_deadline(&ts, every);
    pthread_cond_timedwait(&c->rcv, &c->mu, &ts);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

int es_cluster_start(es_cluster *c, es_db *db) {
  if (!c || !db)
    return ES_INVAL_BKPT("es_cluster_start: NULL argument");
  if (db->opts.read_only || db->opts.replica != c->replica)
    return ES_INVAL_BKPT("es_cluster_start: the handle must be writable and "
                         "opened with the cluster's replica");
  if (c->started)
    return ES_INVAL_BKPT("es_cluster_start: started already");
  c->db = db;
  c->nworkers = 0;
  while (c->nworkers < CL_WORKERS &&
         pthread_create(&c->workers[c->nworkers], NULL, cl_worker, c) == 0)
    c->nworkers++;
  int renewer =
      c->nworkers > 0 && pthread_create(&c->renewer, NULL, cl_renewer, c) == 0;
  if (!renewer || pthread_create(&c->collector, NULL, cl_gc_main, c) != 0) {
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_cond_broadcast(&c->rcv);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < c->nworkers; i++)
      pthread_join(c->workers[i], NULL);
    if (renewer)
      pthread_join(c->renewer, NULL);
    c->stop = 0;
    return ES_NOMEM_BKPT();
  }
  c->started = 1;
  return ES_OK;
}

int es_cluster_admit(es_cluster *c, const char *tenant) {
  if (!c || !c->started)
    return ES_INVAL_BKPT("es_cluster_admit: no started cluster");
  ES_TRY(es__tenant_check(tenant));
  pthread_mutex_lock(&c->mu);
  cl_tenant *t = cl_get(c, tenant);
  if (!t) {
    pthread_mutex_unlock(&c->mu);
    return ES_NOMEM_BKPT();
  }
  int rc;
  if (t->state == CL_HELD && cl_valid(t)) {
    rc = ES_OK;
  } else if (t->state == CL_STALE) {
    rc = ES_ERR(ES_EFAILED,
                "tenant %s: this node holds a stale copy; "
                "restart it with an empty data directory",
                tenant);
  } else {
    if (t->state == CL_HELD) /* its deadline passed unrenewed */
      t->state = CL_LOST;
    if (t->state != CL_TAKING && t->state != CL_RELEASING && !t->queued &&
        es__clock_mono_us() >= t->retry_mono_us) {
      t->state = CL_TAKING;
      t->queued = 1;
      pthread_cond_signal(&c->cv);
    }
    rc = ES_ERR(ES_EUNAVAIL, "tenant %s: %s on this node; retry shortly",
                tenant, cl_state_name[t->state]);
  }
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int es_cluster_owns(es_cluster *c, const char *tenant) {
  if (!c || !tenant)
    return 0;
  pthread_mutex_lock(&c->mu);
  cl_tenant *t = cl_find(c, tenant);
  int own = t && t->state == CL_HELD && cl_valid(t);
  pthread_mutex_unlock(&c->mu);
  return own;
}

int es_cluster_status(es_cluster *c,
                      int (*fn)(void *ud, const es_cluster_tenant *t),
                      void *ud) {
  if (!c || !fn)
    return ES_INVAL_BKPT("es_cluster_status: NULL argument");
  pthread_mutex_lock(&c->mu);
  cl_tenant *t = c->ts;
  pthread_mutex_unlock(&c->mu);
  for (; t; t = t->next) { /* never removed while the node runs */
    es_cluster_tenant ct;
    char name[ES_TENANT_LEN_MAX + 1];
    pthread_mutex_lock(&c->mu);
    snprintf(name, sizeof(name), "%s", t->name);
    int st = t->state;
    if (st == CL_HELD && !cl_valid(t))
      st = CL_LOST;
    ct.tenant = name;
    ct.state = cl_state_name[st];
    ct.lease_gen = t->lease.gen;
    ct.took_us = t->took_us;
    ct.restored_rows = t->restored_rows;
    ct.lease_us = t->lease_us;
    ct.restore_us = t->restore_us;
    ct.replay_us = t->replay_us;
    ct.replayed_events = t->replayed_events;
    pthread_mutex_unlock(&c->mu);
    int rc = fn(ud, &ct);
    if (rc)
      return rc;
  }
  return ES_OK;
}

void es_cluster_stop(es_cluster *c) {
  if (!c || !c->started)
    return;
  pthread_mutex_lock(&c->mu);
  c->stop = 1;
  pthread_cond_broadcast(&c->cv);
  pthread_cond_broadcast(&c->rcv);
  pthread_mutex_unlock(&c->mu);
  for (int i = 0; i < c->nworkers; i++)
    pthread_join(c->workers[i], NULL);
  pthread_join(c->renewer, NULL);
  pthread_join(c->collector, NULL);
  c->started = 0;
}

void es_cluster_free(es_cluster *c) {
  if (!c)
    return;
  es_cluster_stop(c);
  es_cluster *self = c;
  (void)atomic_compare_exchange_strong(&c->replica->cluster, &self, NULL);
  while (c->ts) {
    cl_tenant *n = c->ts->next;
    pthread_mutex_destroy(&c->ts->io_mu);
    cl_take_reset(c->ts);
    es__free(c->ts);
    c->ts = n;
  }
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  pthread_cond_destroy(&c->rcv);
  es__chunk_cache_free(c->cache);
  while (c->gc) {
    cl_gc_node *n = c->gc->next;
    es__free(c->gc->bound);
    es__free(c->gc);
    c->gc = n;
  }
  es__free(c);
}

/* --- the bucket's leases, for tools --------------------------------------- */

typedef struct cl_names {
  char (*name)[ES_TENANT_LEN_MAX + 1];
  size_t n, cap;
} cl_names;

static int cl_lease_listed(void *ud, const char *key, const es_objinfo *info) {
  cl_names *l = ud;
  (void)info;
  const char *t = key + strlen("leases/");
  if (strncmp(key, "leases/", 7) != 0 || es__tenant_check(t) < 0) {
    es__error_clear();
    return 0; /* not a lease */
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    void *nn = es__realloc(l->name, cap * sizeof(*l->name));
    if (!nn)
      return ES_NOMEM_BKPT();
    l->name = nn;
    l->cap = cap;
  }
  snprintf(l->name[l->n++], sizeof(l->name[0]), "%s", t);
  return 0;
}

int es_cluster_leases(es_replica *replica,
                      int (*fn)(void *ud, const es_cluster_lease *l),
                      void *ud) {
  if (!replica || !fn)
    return ES_INVAL_BKPT("es_cluster_leases: NULL argument");
  cl_names l = {0};
  int rc = replica->os->list(replica->os, "leases/", NULL, cl_lease_listed, &l);
  for (size_t i = 0; rc == ES_OK && i < l.n; i++) {
    es_lease le;
    rc = es__lease_read(replica->os, l.name[i], &le);
    if (rc == ES_OK && le.gen == 0)
      continue; /* deleted since the listing */
    es_cluster_lease out = {.tenant = l.name[i],
                            .owner = le.owner,
                            .want = le.want,
                            .generation = le.gen,
                            .expires_us = le.expires_us};
    if (rc == ES_OK)
      rc = fn(ud, &out);
  }
  es__free(l.name);
  return rc;
}

/* --- collecting a dead node's chunks (invariant 7) ------------------------ */

/* Notes that node's chunks may become garbage (after a takeover from it). */
static void cl_gc_note(es_cluster *c, const char *node) {
  pthread_mutex_lock(&c->mu);
  cl_gc_node **pp = &c->gc; /* appended: cl_gc_main may hold a link */
  while (*pp && strcmp((*pp)->node, node) != 0)
    pp = &(*pp)->next;
  if (!*pp && (*pp = es__calloc(1, sizeof(**pp))) != NULL)
    snprintf((*pp)->node, sizeof((*pp)->node), "%s", node);
  pthread_mutex_unlock(&c->mu);
}

typedef struct cl_gc_list {
  const char *node;
  uint32_t nshards;
  uint64_t *maxlast; /* per shard: the highest last LSN listed */
  char (*key)[ES_OBJ_KEY_MAX + 1];
  uint32_t *shard;
  uint64_t *last;
  size_t n, cap;
} cl_gc_list;

static int cl_gc_listed(void *ud, const char *key, const es_objinfo *info) {
  cl_gc_list *l = ud;
  (void)info;
  char node[ES_LEASE_NODE_MAX + 1];
  uint32_t shard = 0;
  uint64_t first = 0, last = 0;
  if (es__walship_parse_node_key(key, node, &shard, &first, &last) < 0 ||
      strcmp(node, l->node) != 0 || shard >= l->nshards) {
    es__error_clear();
    return 0; /* not one of its chunks */
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    void *k = es__realloc(l->key, cap * sizeof(*l->key));
    if (k)
      l->key = k;
    void *s = es__realloc(l->shard, cap * sizeof(*l->shard));
    if (s)
      l->shard = s;
    void *la = es__realloc(l->last, cap * sizeof(*l->last));
    if (la)
      l->last = la;
    if (!k || !s || !la)
      return ES_NOMEM_BKPT();
    l->cap = cap;
  }
  snprintf(l->key[l->n], sizeof(l->key[0]), "%s", key);
  l->shard[l->n] = shard;
  l->last[l->n++] = last;
  if (last > l->maxlast[shard])
    l->maxlast[shard] = last;
  return 0;
}

/* Lowers bound[shard of t] to t's flushed_lsn when t's newest manifest
 * names node (its records above are in node's chunks). */
static int cl_gc_tenant(es_cluster *c, const char *node, const char *tenant,
                        uint64_t *bound) {
  uint64_t gen = 0;
  ES_TRY(cl_replica_gen(c, tenant, &gen));
  if (gen == 0)
    return ES_OK; /* nothing published: nothing acknowledged (5) */
  char man[40], key[ES_OBJ_KEY_MAX + 1];
  snprintf(man, sizeof(man), "MANIFEST-%016llx", (unsigned long long)gen);
  ES_TRY(es__replica_key(key, sizeof(key), tenant, man));
  uint8_t *buf = NULL;
  size_t len = 0;
  ES_TRY(c->os->get(c->os, key, 0, ES_OBJ_TO_END, &buf, &len, NULL));
  es_manifest m;
  int rc = es__manifest_decode(key, buf, len, &m);
  es__free(buf);
  ES_TRY(rc);
  uint32_t s = es__tenant_shard(c->db, tenant);
  if (strcmp(m.lsn_node, node) == 0 && m.flushed_lsn < bound[s])
    bound[s] = m.flushed_lsn;
  es__manifest_free(&m);
  return ES_OK;
}

/* One pass over g (see invariant 7): lists its chunks, then reads every
 * tenant's newest manifest; deletes the chunks under the bound of a pass
 * at least gc_grace_us old, then keeps this pass's bound.  *empty_out: it
 * has no chunk left. */
static int cl_gc_pass(es_cluster *c, cl_gc_node *g, int64_t grace_us,
                      int *empty_out) {
  uint32_t ns = c->db->nshards;
  cl_gc_list l = {.node = g->node, .nshards = ns};
  uint64_t *bound = es__calloc(ns, sizeof(*bound));
  l.maxlast = es__calloc(ns, sizeof(*l.maxlast));
  cl_names names = {0};
  char prefix[ES_OBJ_KEY_MAX + 1];
  int rc = bound && l.maxlast ? ES_OK : ES_NOMEM_BKPT();
  snprintf(prefix, sizeof(prefix), "wal/%s/", g->node); /* a node name */
  if (rc == ES_OK)
    rc = c->os->list(c->os, prefix, NULL, cl_gc_listed, &l); /* first: 7 */
  if (rc == ES_OK)
    rc = c->os->list(c->os, "leases/", NULL, cl_lease_listed, &names);
  for (uint32_t s = 0; rc == ES_OK && s < ns; s++)
    bound[s] = l.maxlast[s];
  for (size_t i = 0; rc == ES_OK && i < names.n; i++)
    rc = cl_gc_tenant(c, g->node, names.name[i], bound);
  int64_t now = es__clock_mono_us();
  int ripe = g->bound && now - g->bound_mono_us >= grace_us;
  size_t deleted = 0;
  for (size_t i = 0; rc == ES_OK && ripe && i < l.n; i++)
    if (l.last[i] <= g->bound[l.shard[i]]) {
      rc = c->os->del(c->os, l.key[i]);
      deleted += rc == ES_OK;
    }
  if (rc == ES_OK && (!g->bound || ripe)) {
    es__free(g->bound);
    g->bound = bound;
    g->bound_mono_us = now;
    bound = NULL;
  }
  if (deleted)
    es__db_log(c->db, 2, "deleted %zu WAL chunks of node %s", deleted, g->node);
  *empty_out = rc == ES_OK && l.n == deleted;
  es__free(bound);
  es__free(l.maxlast);
  es__free(l.key);
  es__free(l.shard);
  es__free(l.last);
  es__free(names.name);
  return rc;
}

/* The collector thread: a pass over each noted node every gc_every_us;
 * a node with no chunk left is forgotten. */
static void *cl_gc_main(void *arg) {
  es_cluster *c = arg;
  pthread_mutex_lock(&c->mu);
  while (!c->stop) {
    struct timespec ts;
    es__clock_deadline(&ts, c->gc_every_us);
    pthread_cond_timedwait(&c->rcv, &c->mu, &ts);
    /* only this thread removes nodes from the list */
    for (cl_gc_node **pp = &c->gc; *pp && !c->stop;) {
      cl_gc_node *g = *pp;
      int64_t grace = c->gc_grace_us;
      pthread_mutex_unlock(&c->mu);
      int empty = 0;
      int rc = cl_gc_pass(c, g, grace, &empty);
      if (rc != ES_OK) {
        es__db_log(c->db, 1, "collecting node %s's WAL chunks: %s", g->node,
                   es_errdetail());
        es__error_clear();
      }
      pthread_mutex_lock(&c->mu);
      c->gc_passes += rc == ES_OK;
      if (empty) {
        *pp = g->next;
        es__free(g->bound);
        es__free(g);
      } else {
        pp = &g->next;
      }
    }
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}
