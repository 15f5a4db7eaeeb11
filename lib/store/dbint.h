/*
 * dbint.h -- the database object's internals, shared by db.c (open,
 * append, flush, close, recovery), tenant.c (tenants, seals, flushes) and
 * cursor.c (scans).  See docs/ARCHITECTURE.md for the picture.
 *
 * Threads: appenders (callers of es_append) encode their batch and queue
 * it on the tenant's shard; one writer thread per shard turns everything
 * queued into one WAL frame, writes it, inserts the rows into memtables,
 * syncs once (group commit), publishes, and wakes the appenders.  One
 * flusher thread per database turns sealed memtables into segments.
 * With es_options.compact_segments, one compactor thread, at a lower
 * priority (nice +10), merges the small segments of tenants the flusher
 * names to it, so that merges never hold up flushes and yield the CPU to
 * appends under load.
 *
 * Locks, in the order they may be nested: tenant->compact_mu,
 * tenant->man_mu, db->tenants_mu, tenant->mu, db->flush_mu, shard->mu,
 * db->mem_mu; db->cmp_mu, db->gate_mu and the commit path's lock (commit.c)
 * are leaves.  No lock is held across I/O except by the writer thread of a
 * shard, which owns its WAL alone.
 */
#ifndef ES_DBINT_H
#define ES_DBINT_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/codec.h"
#include "base/hashtab.h"
#include "base/io.h"
#include "store/manifest.h"
#include "store/memtable.h"
#include "store/segment.h"
#include "store/wal.h"

typedef struct es_shard es_shard;
struct es_tenant;

/* What the layer above the store (lib/engine/: behaviour-segment rules,
 * the identity cache) does when the store loads, feeds or frees a
 * tenant.  The store calls these and knows nothing else of that layer;
 * es_open (lib/api.c) passes the engine's table to es__db_open.
 *  - tenant_init: a new tenant object (no I/O); its engine state.
 *  - tenant_load: after the tenant's files are loaded (RULES: counters
 *    from the persisted rule state, else filled from the segments), and
 *    again when a reader sees RULES change; `rebuild` 1: from the rows
 *    only (an erase: the persisted state may hold the erased ids).
 *  - rows: acknowledged rows of the record at `lsn`, each once, on the
 *    shard's writer thread (or replay / the follower with fire 0: no
 *    triggers).
 *  - tenant_save: persists what tenant_load would otherwise rebuild (a
 *    cache: a failure is logged, never fatal); writable handles only,
 *    after a flush of the tenant and at close.
 *  - tenant_free: frees what tenant_init and the engine attached. */
typedef struct es_engine_hooks {
  int (*tenant_init)(struct es_tenant *t);
  int (*tenant_load)(es_db *db, struct es_tenant *t, int rebuild);
  int (*rows)(es_db *db, struct es_tenant *t, const uint8_t *rows,
              size_t rows_len, uint32_t count, uint64_t lsn, int fire);
  int (*tenant_save)(es_db *db, struct es_tenant *t);
  void (*tenant_free)(struct es_tenant *t);
} es_engine_hooks;

/* An immutable list of a tenant's open segments, shared by readers.
 * flushed_lsn travels with the list it describes: every row of the
 * tenant with an LSN at or below it is in one of these segments (unless
 * retention dropped it).  tenant->man.flushed_lsn may already be ahead
 * of tenant->segs->flushed_lsn (a flush between its manifest commit and
 * its swap of the set), never behind; dedupe.c relies on the pair. */
typedef struct es_segset {
  atomic_int refs;
  size_t n;
  uint64_t flushed_lsn;
  /* The tenant's rollup index: every segment's rollup merged into one,
   * built on first use (es__segset_rollup, rollup.h); replaced ones stay
   * on its `retired` list until the set is freed. */
  struct es_setrollup *_Atomic rollup;
  /* The distinct person ids of its rows (es__segset_persons), built on
   * first use. */
  struct es_strtab *_Atomic persons;
  es_segment *segs[]; /* each holds a reference */
} es_segset;

typedef struct es_tenant {
  char name[ES_TENANT_LEN_MAX + 1];
  char dir[ES_PATH_MAX];
  uint32_t shard;
  pthread_mutex_t mu;  /* guards active, imm, segs */
  es_memtable *active; /* inserted into by the shard writer only */
  es_memtable **imm;   /* sealed, oldest first, awaiting flush */
  size_t nimm, imm_cap;
  es_segset *segs;
  es_manifest man;            /* the durable manifest (flusher's copy) */
  pthread_mutex_t man_mu;     /* held by whoever rewrites man/MANIFEST:
                                 the flusher, and compaction's commit */
  pthread_mutex_t compact_mu; /* one compaction of this tenant at a time */
  pthread_mutex_t id_mu;      /* appends to the identity log (IDENTITY) */
  /* The identity map of the last read that built one, shared while no
   * link changed since: id_gen grows after every append holding identify
   * or alias events, every unlink, every compaction that dropped rows. */
  pthread_mutex_t idc_mu;
  struct es_identity *id_cache;
  int id_cache_gen;
  atomic_int id_gen;
  /* Tenants are loaded (MANIFEST, segments, RULES) on first use, not at
   * open: a store of many tenants opens in the time of a directory
   * listing plus the WAL replay.  load_mu is recursive (loading a
   * tenant's rules scans it). */
  pthread_mutex_t load_mu;
  atomic_int loaded;
  int loading;
  atomic_int dir_durable;   /* tenant directory created and synced */
  int compact_queued;       /* on the compactor's queue (db->cmp_mu) */
  pthread_mutex_t rules_mu; /* guards rules (engine/rules.h, 1) */
  struct es_rules *rules;   /* the engine's (hooks.tenant_init) */
  /* read-only handles (follow.c) */
  atomic_int ro_hot; /* holds memtable rows: check its MANIFEST each pass */
  int ro_loaded;     /* its MANIFEST and RULES were looked at */
  uint64_t man_version, rules_version, idlog_version; /* es_vfs.version
                                                        last seen */
  struct es_dedupe *dd; /* recent messageIds (dedupe.c): writer only */
  /* erase requests (tomb.c): the tombstone readers honour, guarded by
   * tomb_mu (a leaf); tomb_log_mu serialises the log's writers and a
   * reader's reload */
  pthread_mutex_t tomb_mu, tomb_log_mu;
  struct es_tomb *tomb;
  atomic_int tomb_any;           /* tomb != NULL */
  _Atomic uint64_t tomb_version; /* read-only: ERASE's version loaded */
  uint64_t erase_rules_version;  /* read-only: ERASE's version the rule
                                    counters were last refilled for */
  struct es_tenant *shard_next;
} es_tenant;

#define ES_REQ_APPEND 1
#define ES_REQ_SEAL 2
#define ES_REQ_CALL 3 /* run call(call_arg) on the writer thread */
#define ES_REQ_DUP 4  /* was APPEND: nothing left to store (dedupe.c) */

#define ES_SHARD_DONE_CVS 16 /* at most 32: a group's slots are a mask */

typedef struct es_req {
  int kind;
  es_tenant *tenant;  /* SEAL: NULL = every tenant of the shard */
  const uint8_t *rec; /* APPEND: the WAL record */
  size_t rec_len;
  const uint8_t *rows;     /* APPEND: the encoded rows */
  const es_row_hint *hint; /* APPEND: where each row starts, its time */
  size_t rows_len;
  uint32_t count;
  int done, rc;
  int sleeping; /* its appender waits on sh->done_cv[slot] (under sh->mu) */
  uint32_t slot;
  uint64_t lsn;
  int64_t durable_us;
  int (*call)(void *arg); /* CALL */
  void *call_arg;
  int call_rc;
  char call_detail[256]; /* es_errdetail() of a failed call or dedupe */
  /* APPEND, dedupe.c: dup[i] = 1 for a duplicate (NULL: not wanted);
   * when some were, the writer's copies of rows, hint and rec without
   * them (es__dedupe_req_free releases them) */
  uint8_t *dup;
  uint32_t ndup;
  int dd_rc;
  es_buf dd_rows, dd_rec;
  es_row_hint *dd_hint;
  /* what the decision recorded in the tenant's current slab, so that a
   * group that is not written can take it back (es__dedupe_group_undo) */
  void *dd_slab;
  size_t *dd_vals, dd_nput, dd_used0;
  struct es_req *next;
} es_req;

struct es_shard {
  es_db *db;
  uint32_t id;
  char dir[ES_PATH_MAX];
  pthread_mutex_t mu; /* adaptive: held for a few instructions at a time */
  pthread_cond_t work_cv;
  /* Appenders sleep on one of these until their request is done; the
   * writer broadcasts after releasing mu (the cvs live as long as the
   * shard, the requests do not), so a woken appender does not block on
   * mu, and round-robin slots keep appenders not in the group asleep. */
  pthread_cond_t done_cv[ES_SHARD_DONE_CVS];
  uint32_t done_next; /* the next request's slot (under mu) */
  es_req *head, *tail;
  int stop, started;
  atomic_int reclaim;         /* set by the flusher after a manifest commit */
  atomic_int pressure;        /* set by appenders waiting for memory */
  _Atomic uint64_t keep_lsn;  /* the last reclaim's bound: every record
                                 below it is in a segment that a durable
                                 manifest names (for the WAL shipper) */
  es_wal *wal;                /* writer thread only (after open) */
  _Atomic uint64_t wal_bytes; /* es__wal_bytes(wal), published by the
                                 writer for es_stats */
  uint64_t next_lsn;
  es_tenant *tenants; /* list, guarded by db->tenants_mu */
  es_buf frame;
  pthread_t thread;
  uint64_t clean_lsn; /* the CLEAN mark found at open (db.c) */
  /* read-only handles: where the follower stopped in this shard's log */
  uint64_t f_first, f_off, f_lsn;
};

/* An export destination an erasure re-cuts (lib/erase, stage f),
 * registered by a layer above the store (lib/export/stream.c: each running
 * exporter) with es__export_hook_add.  refresh re-cuts the tenant's
 * partitions of the given days (UTC midnights; days NULL: every partition
 * the destination holds of the tenant) from what the store holds now. */
typedef struct es_export_hook {
  int (*refresh)(void *ud, const char *tenant, const int64_t *days_us,
                 size_t ndays);
  void *ud;
  char key[32]; /* its record in DATA/exports (lib/export/xreg.c), "" for
                   none: the erasure re-cuts a recorded destination
                   through its running exporter, never beside it */
} es_export_hook;

typedef struct es_flush_job {
  es_tenant *tenant;
  es_memtable *mt; /* holds a reference */
} es_flush_job;

struct es_db {
  es_options opts;
  const es_engine_hooks *hooks;
  char dir[ES_PATH_MAX];
  char tenants_dir[ES_PATH_MAX];
  es_vfs *vfs;
  es_file *lock;
  uint32_t nshards;
  es_shard *shards;
  pthread_mutex_t tenants_mu;
  /* every tenant in memory, in order of creation (they live until the
   * handle closes), filed by name in tenant_index (index + 1); both under
   * tenants_mu */
  es_tenant **tenants;
  size_t ntenants, tenants_cap;
  es_htab tenant_index;
  atomic_int failed; /* 0, or the status that failed the database */
  atomic_int closing;
  /* the write gate (gate.c): degraded bits, and why (guarded by gate_mu) */
  atomic_int degraded;
  atomic_uint_fast64_t flush_failures;
  pthread_mutex_t gate_mu; /* a leaf */
  char fail_why[384], degraded_why[384];
  /* the flusher */
  pthread_mutex_t flush_mu;
  pthread_cond_t flush_cv, flushed_cv;
  es_flush_job *jobs;
  size_t jobs_head, jobs_len, jobs_cap;
  uint64_t seal_seq, flushed_seq;
  int flusher_stop, flusher_started;
  pthread_t flusher;
  /* the housekeeper: prepares spare WAL files ahead of rollovers */
  pthread_mutex_t hk_mu;
  pthread_cond_t hk_cv;
  int hk_stop, hk_started;
  pthread_t housekeeper;
  /* the compactor (compact.c), when opts.compact_segments > 0 */
  pthread_mutex_t cmp_mu;
  pthread_cond_t cmp_cv, cmp_idle_cv;
  es_tenant **cmp_queue;
  size_t cmp_len, cmp_cap;
  int cmp_busy, cmp_stop, cmp_started;
  pthread_t compactor;
  /* the commit path's subscribers and pending removals (commit.c) */
  struct es_commit_state *commit;
  /* es_stats (stats.c): flushes by the flusher, merges by es__rewrite's
   * callers in compact.c */
  _Atomic uint64_t st_flushes, st_flush_us, st_flush_us_max;
  _Atomic uint64_t st_merges, st_merge_us, st_merge_us_max;
  _Atomic uint64_t st_suppressed; /* appended events suppressed (db.c) */
  /* a layer above the store riding on this handle (lib/api.c: the
   * replicator), stopped first by es_close */
  void (*ext_stop)(es_db *db);
  void *ext;
  /* export destinations (es_export_hook) under exp_mu; exp_ever: one not
   * recorded in DATA/exports (a borrowed destination: tests) was
   * registered on this handle (its erasures wait for it when none is) */
  pthread_mutex_t exp_mu;
  es_export_hook *exp_hooks;
  size_t exp_n, exp_cap;
  int exp_ever;
  /* memory budget */
  struct es_ddcache *ddc;     /* dedupe.c: confirmed row groups */
  atomic_size_t mem_bytes;    /* all memtables */
  atomic_size_t sealed_bytes; /* of those, sealed and awaiting flush */
  atomic_size_t ids_bytes;    /* of those, messageId sets (dedupe.c) */
  pthread_mutex_t mem_mu;
  pthread_cond_t mem_cv;
};

/* Registers / unregisters an export destination (db.c); removal waits for
 * an erasure calling it (exp_mu). */
int es__export_hook_add(es_db *db, const es_export_hook *h) ES_MUST_CHECK;
void es__export_hook_remove(es_db *db, void *ud);

/* --- tenant.c ---------------------------------------------------------- */

/* Finds a tenant, creating its in-memory object when create is set
 * (*t_out NULL and ES_OK when absent and !create), and loads its files
 * on first use (writable handles; follow.c loads a reader's). */
int es__tenant_get(es_db *db, const char *name, int create,
                   es_tenant **t_out) ES_MUST_CHECK;
/* The shard a tenant id maps to. */
uint32_t es__tenant_shard(const es_db *db, const char *name);
/* The same from a shard count (a restore, before any store is open). */
uint32_t es__tenant_shard_n(const char *name, uint32_t nshards);
int es__tenant_known(es_db *db, const char *name);
/* Loads every tenant directory: manifests, segments, orphan clean-up. */
int es__tenants_load(es_db *db) ES_MUST_CHECK;
/* Frees every tenant object. */
void es__tenants_free(es_db *db);

/* Inserts a durable-or-about-to-be record into the tenant's active
 * memtable (writer thread or recovery), sealing first if it is full. */
int es__tenant_insert(es_db *db, es_tenant *t, const uint8_t *rows,
                      size_t rows_len, uint32_t count, uint64_t lsn,
                      const es_row_hint *hint) ES_MUST_CHECK;
/* Makes the tenant's directory exist durably (idempotent). */
int es__tenant_dir_make(es_db *db, es_tenant *t) ES_MUST_CHECK;

/* Runs fn(arg) on the writer thread of a shard, between groups, and
 * returns its status (or why it could not run). */
int es__shard_call(es_db *db, uint32_t shard, int (*fn)(void *arg),
                   void *arg) ES_MUST_CHECK;

/* Seals the active memtable (if it has rows) and queues its flush. */
int es__tenant_seal(es_db *db, es_tenant *t) ES_MUST_CHECK;
/* Adds to / takes from db->mem_bytes, what memtable_budget_bytes bounds:
 * memtables (tenant.c) and the messageId sets of their rows (dedupe.c);
 * a release wakes appenders waiting for memory.  Any thread. */
void es__mem_account(es_db *db, size_t add, size_t sub);

/* Test hook: fn(ud, t) runs on the flusher thread in every flush of a
 * memtable, after its manifest is durable and installed as t->man and
 * before t->segs and t->imm change (tenant.c, flush_one); NULL removes
 * it.  Lets a test act in that window (tests/unit/test_idempotent.c). */
void es__tenant_test_flush_pause(void (*fn)(void *ud, es_tenant *t), void *ud);
/* The oldest LSN the tenant still needs from the WAL (UINT64_MAX: none). */
uint64_t es__tenant_min_unflushed(es_tenant *t);

/* A reader's view of a tenant: its segments and memtables at one moment,
 * each row in exactly one of them (taken under tenant->mu, as scans do). */
typedef struct es_tenant_view {
  es_segset *set;    /* a reference */
  es_memtable **mts; /* sealed ones oldest first, then the active one; */
  size_t nmts;       /* each holds a reference */
} es_tenant_view;

int es__tenant_view(es_tenant *t, es_tenant_view *v) ES_MUST_CHECK;
void es__tenant_view_release(es_tenant_view *v);

/* --- follow.c: read-only handles ----------------------------------------- */

/* Loads a read-only handle's tenants and log (no lock, no writes) and
 * starts its follower thread (in the housekeeper's slot). */
int es__open_read_only(es_db *db) ES_MUST_CHECK;
/* Re-reads a tenant's MANIFEST and applies it when it changed. */
int es__tenant_ro_refresh(es_db *db, es_tenant *t) ES_MUST_CHECK;

/* stats.c: adds one timed operation to a total, a count and a max. */
void es__stats_time(_Atomic uint64_t *count, _Atomic uint64_t *total_us,
                    _Atomic uint64_t *max_us, int64_t took_us);

/* The flusher thread's body and its job queue. */
void *es__flusher_main(void *arg);
/* Records the first failure; later writes return ES_EFAILED (gate.c;
 * write paths report errors through es__gate_io_error, store/gate.h). */
void es__db_fail(es_db *db, int rc);
void es__db_log(es_db *db, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Segment sets: a new one (refs 1, no segments, room for cap). */
es_segset *es__segset_new(size_t cap);
void es__segset_unref(es_segset *set);
/* The tenant's person dictionary: every distinct person id (user id when
 * present and non-empty, else anonymous id; rows with neither have none)
 * of the set's rows, read once from those two columns of every segment
 * and kept with the set (which is immutable: a flush, compaction,
 * retention or erase publishes a new one).  Borrowed while the caller
 * holds a reference to set.  Not persisted. */
int es__segset_persons(es_segset *set,
                       const struct es_strtab **out) ES_MUST_CHECK;

/* Whether a query loaded rollups of t's segments in this process (then a
 * flush or merge attaches the new segment's rollup at once). */
int es__tenant_rollups_hot(es_tenant *t);

/* Whether es_compact with options o would merge s as a small segment:
 * under half of o->target_bytes and (if set) of o->memory_bytes
 * uncompressed. */
int es__compact_small(const es_segment *s, const es_compact_options *o);
/* About the memory a merge holds for s (its rows re-encoded, their sort
 * keys, its share of the output image): what memory_bytes limits. */
uint64_t es__compact_merge_bytes(const es_segment *s);
/* The compactor thread; es__compact_request queues a tenant for it (no
 * I/O, never fails: a tenant that cannot be queued waits for its next
 * flush); es__compact_wait_idle waits until its queue is empty and no
 * merge runs (tests). */
void *es__compactor_main(void *arg);
void es__compact_request(es_db *db, es_tenant *t);
void es__compact_wait_idle(es_db *db);

#endif
