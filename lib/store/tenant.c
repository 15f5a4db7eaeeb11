/*
 * tenant.c -- tenants: their registry, their memtables' life from insert
 * to seal to segment, and the flusher thread that writes segments.
 *
 * The life of a memtable (numbers are the states):
 *   1 active   -- the shard writer inserts; readers see published rows
 *   2 sealed   -- in tenant->imm, queued for the flusher; still readable
 *   3 flushed  -- its segment is listed in a durable manifest; it leaves
 *                 tenant->imm in the same critical section that adds the
 *                 segment to tenant->segs, so a reader sees every row
 *                 exactly once: in the memtable or in the segment.  The
 *                 new set carries the flushed_lsn it covers: the manifest
 *                 (tenant->man) is installed a moment earlier, so it is
 *                 not the LSN that matches tenant->segs (dedupe.c, 3).
 *
 * Invariants:
 *  1. Memtables are flushed in the order they were sealed (one FIFO, one
 *     flusher), so a tenant's flushed_lsn only grows.
 *  2. A segment is added to tenant->segs only after the manifest listing
 *     it is durable (es__commit_manifest: the one commit path, commit.c).
 *  3. Files in a tenant directory that no manifest lists (a crash between
 *     rename and manifest write) are deleted at open, never read.
 *  4. A segment's rollup file is written after the segment and before the
 *     manifest; it is a cache of what the rows say (rollup.h), so a
 *     missing one is derived again, never trusted over the rows.
 *  5. A tenant's directory is synced when a writable handle loads it, so
 *     a manifest found renamed but maybe not yet durable (the writer died
 *     or failed before its directory fsync) is durable before anything
 *     relies on it (replay skipping its records, WAL reclaim, CLEAN).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/event.h"
#include "base/mem.h"
#include "base/strtab.h"
#include "store/commit.h"
#include "store/dbint.h"
#include "store/dedupe.h"
#include "store/gate.h"
#include "store/rollup.h"
#include "store/tomb.h"

/* Logs through the user's callback, if any. */
void es__db_log(es_db *db, int level, const char *fmt, ...) {
  if (!db->opts.log.fn)
    return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  db->opts.log.fn(db->opts.log.ud, level, msg);
}

/* Drops a reference to a segment set. */
void es__segset_unref(es_segset *set) {
  if (!set || atomic_fetch_sub(&set->refs, 1) != 1)
    return;
  es__setrollup_chain_free(atomic_load(&set->rollup));
  es_strtab *persons = atomic_load(&set->persons);
  if (persons) {
    es__strtab_free(persons);
    es__free(persons);
  }
  for (size_t i = 0; i < set->n; i++)
    es__segment_unref(set->segs[i]);
  es__free(set);
}

/* A new, empty set; see dbint.h. */
es_segset *es__segset_new(size_t cap) {
  es_segset *s = es__malloc(sizeof(*s) + cap * sizeof(es_segment *));
  if (!s)
    return NULL;
  atomic_init(&s->refs, 1);
  atomic_init(&s->rollup, NULL);
  atomic_init(&s->persons, NULL);
  s->n = 0;
  s->flushed_lsn = 0;
  return s;
}

/* Reads the set's person ids; see dbint.h. */
int es__segset_persons(es_segset *set, const es_strtab **out) {
  es_strtab *cur = atomic_load(&set->persons);
  *out = cur;
  if (cur)
    return ES_OK;
  es_strtab *ids = es__calloc(1, sizeof(*ids));
  if (!ids)
    return ES_NOMEM_BKPT();
  es_seg_rows rows;
  memset(&rows, 0, sizeof(rows));
  int rc = ES_OK;
  for (size_t i = 0; rc == ES_OK && i < set->n; i++) {
    es_segment *seg = set->segs[i];
    for (uint32_t g = 0; rc == ES_OK && g < seg->ngroups; g++) {
      rc = es__segment_read_group_cols(
          seg, g, ES_FIELD_ANONYMOUS_ID | ES_FIELD_USER_ID, &rows);
      for (size_t j = 0; rc == ES_OK && j < rows.n; j++) {
        const char *u = rows.str[ES_STR_user_id][j];
        const char *a = rows.str[ES_STR_anonymous_id][j];
        const char *p = u && u[0] ? u : a && a[0] ? a : NULL;
        uint32_t id;
        rc = es__strtab_intern(ids, p, &id);
      }
    }
  }
  es__segment_rows_free(&rows);
  if (rc < 0) {
    es__strtab_free(ids);
    es__free(ids);
    return rc;
  }
  /* another thread may have built it too: keep theirs */
  if (!atomic_compare_exchange_strong(&set->persons, &cur, ids)) {
    es__strtab_free(ids);
    es__free(ids);
    ids = cur;
  }
  *out = ids;
  return ES_OK;
}

/* A new set: the old one's segments plus `add` (may be NULL). */
static int segset_with(const es_segset *old, es_segment *add, es_segset **out) {
  size_t n = (old ? old->n : 0) + (add ? 1 : 0);
  es_segset *s = es__segset_new(n);
  *out = s;
  if (!s)
    return ES_NOMEM_BKPT();
  s->flushed_lsn = old ? old->flushed_lsn : 0;
  for (size_t i = 0; old && i < old->n; i++) {
    es__segment_ref(old->segs[i]);
    s->segs[s->n++] = old->segs[i];
  }
  if (add) {
    es__segment_ref(add);
    s->segs[s->n++] = add;
  }
  return ES_OK;
}

/* Takes a view of the tenant's sources; see dbint.h. */
int es__tenant_view(es_tenant *t, es_tenant_view *v) {
  memset(v, 0, sizeof(*v));
  pthread_mutex_lock(&t->mu);
  size_t n = t->nimm + (t->active ? 1 : 0);
  v->mts = es__malloc((n ? n : 1) * sizeof(es_memtable *));
  if (v->mts) {
    v->set = t->segs;
    atomic_fetch_add(&v->set->refs, 1);
    for (size_t i = 0; i < n; i++) {
      es_memtable *mt = i < t->nimm ? t->imm[i] : t->active;
      es__memtable_ref(mt);
      v->mts[v->nmts++] = mt;
    }
  }
  pthread_mutex_unlock(&t->mu);
  return v->mts ? ES_OK : ES_NOMEM_BKPT();
}

void es__tenant_view_release(es_tenant_view *v) {
  for (size_t i = 0; i < v->nmts; i++)
    es__memtable_unref(v->mts[i]);
  es__free(v->mts);
  es__segset_unref(v->set);
  memset(v, 0, sizeof(*v));
}

/* xxHash of the id, modulo the shard count fixed at creation. */
uint32_t es__tenant_shard(const es_db *db, const char *name) {
  return es__tenant_shard_n(name, db->nshards);
}

uint32_t es__tenant_shard_n(const char *name, uint32_t nshards) {
  return (uint32_t)(es__hash64(name, strlen(name), 0x7e4a) % nshards);
}

/* Frees a tenant object and what only it references (its memtables are
 * released by the caller). */
static void tenant_destroy(es_db *db, es_tenant *t) {
  es__dedupe_tenant_free(db, t->dd);
  db->hooks->tenant_free(t);
  es__segset_unref(t->segs);
  es__manifest_free(&t->man);
  pthread_mutex_destroy(&t->mu);
  pthread_mutex_destroy(&t->rules_mu);
  pthread_mutex_destroy(&t->man_mu);
  pthread_mutex_destroy(&t->compact_mu);
  pthread_mutex_destroy(&t->id_mu);
  pthread_mutex_destroy(&t->idc_mu);
  pthread_mutex_destroy(&t->load_mu);
  es__tomb_tenant_free(t);
  pthread_mutex_destroy(&t->tomb_mu);
  pthread_mutex_destroy(&t->tomb_log_mu);
  es__free(t);
}

static int tenant_new(es_db *db, const char *name, es_tenant **t_out) {
  es_tenant *t = es__calloc(1, sizeof(*t));
  *t_out = t;
  if (!t)
    return ES_NOMEM_BKPT();
  strcpy(t->name, name);
  t->shard = es__tenant_shard(db, name);
  t->man.next_segment_id = 1;
  pthread_mutex_init(&t->mu, NULL);
  pthread_mutex_init(&t->rules_mu, NULL);
  pthread_mutex_init(&t->man_mu, NULL);
  pthread_mutex_init(&t->compact_mu, NULL);
  pthread_mutex_init(&t->id_mu, NULL);
  pthread_mutex_init(&t->idc_mu, NULL);
  pthread_mutex_init(&t->tomb_mu, NULL);
  pthread_mutex_init(&t->tomb_log_mu, NULL);
  pthread_mutexattr_t recursive;
  pthread_mutexattr_init(&recursive);
  pthread_mutexattr_settype(&recursive, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&t->load_mu, &recursive);
  pthread_mutexattr_destroy(&recursive);
  int rc = es__path_join(t->dir, sizeof(t->dir), db->tenants_dir, name);
  if (rc == ES_OK)
    rc = segset_with(NULL, NULL, &t->segs);
  if (rc == ES_OK)
    rc = db->hooks->tenant_init(t);
  if (rc < 0) {
    tenant_destroy(db, t);
    *t_out = NULL;
  }
  return rc;
}

static int tenant_ensure(es_db *db, es_tenant *t);
static int tenant_lookup(es_db *db, const char *name, int create,
                         es_tenant **t_out);

/* Looks a tenant up by id and loads it; see dbint.h. */
int es__tenant_get(es_db *db, const char *name, int create, es_tenant **t_out) {
  es_tenant *t = NULL;
  int rc = tenant_lookup(db, name, create, &t);
  if (rc == ES_OK && t && !db->opts.read_only)
    rc = tenant_ensure(db, t);
  *t_out = rc == ES_OK ? t : NULL;
  return rc;
}

/* Whether tenant `val` - 1 is named `key`. */
static int tenant_eq(const void *ctx, uint32_t val, const void *key) {
  return strcmp(((const es_db *)ctx)->tenants[val - 1]->name, key) == 0;
}

/* Files a new tenant (under tenants_mu); on failure nothing changed. */
static int tenant_add(es_db *db, es_tenant *t, uint64_t h) {
  ES_TRY(es__htab_reserve(&db->tenant_index, 1));
  ES_TRY(es__grow((void **)&db->tenants, &db->tenants_cap, db->ntenants + 1,
                  sizeof(es_tenant *)));
  db->tenants[db->ntenants++] = t;
  es__htab_set(&db->tenant_index, es__htab_free_slot(&db->tenant_index, h), h,
               (uint32_t)db->ntenants);
  es_shard *sh = &db->shards[t->shard];
  t->shard_next = sh->tenants;
  sh->tenants = t;
  return ES_OK;
}

/* Looks a tenant up by id; creates it (in memory only) when asked. */
static int tenant_lookup(es_db *db, const char *name, int create,
                         es_tenant **t_out) {
  uint64_t h = es__hash64(name, strlen(name), 1);
  pthread_mutex_lock(&db->tenants_mu);
  uint32_t v = es__htab_find(&db->tenant_index, h, tenant_eq, db, name);
  es_tenant *t = v ? db->tenants[v - 1] : NULL;
  int rc = ES_OK;
  if (!t && create) {
    rc = tenant_new(db, name, &t);
    if (rc == ES_OK && (rc = tenant_add(db, t, h)) < 0) {
      tenant_destroy(db, t);
      t = NULL;
    }
  }
  pthread_mutex_unlock(&db->tenants_mu);
  *t_out = t;
  return rc;
}

/* Whether the handle knows the tenant (its directory was listed at open,
 * or it was used since), without loading it: cluster.c restores a tenant
 * only into a store that does not know it. */
int es__tenant_known(es_db *db, const char *name) {
  es_tenant *t = NULL;
  (void)tenant_lookup(db, name, 0, &t); /* cannot fail without create */
  return t != NULL;
}

/* Frees every tenant and what it references. */
void es__tenants_free(es_db *db) {
  for (size_t i = 0; i < db->ntenants; i++) {
    es_tenant *t = db->tenants[i];
    es__memtable_unref(t->active);
    for (size_t k = 0; k < t->nimm; k++)
      es__memtable_unref(t->imm[k]);
    es__free(t->imm);
    tenant_destroy(db, t);
  }
}

typedef struct tenant_clean {
  es_db *db;
  es_tenant *t;
} tenant_clean;

/* Deletes temporaries and segment files the manifest does not list. */
static int tenant_clean_one(void *ud, const char *name) {
  tenant_clean *tc = ud;
  size_t l = strlen(name);
  int orphan = l > 4 && strcmp(name + l - 4, ".tmp") == 0;
  if (!orphan && l == 20 &&
      (strcmp(name + 16, ".seg") == 0 || strcmp(name + 16, ".rlp") == 0)) {
    uint64_t id = strtoull(name, NULL, 16);
    orphan = 1;
    for (size_t i = 0; i < tc->t->man.count; i++)
      if (tc->t->man.entries[i].id == id)
        orphan = 0;
  }
  if (!orphan)
    return 0;
  char path[ES_PATH_MAX];
  ES_TRY(es__path_join(path, sizeof(path), tc->t->dir, name));
  es__db_log(tc->db, 1, "removing orphaned file %s", path);
  int rc = tc->db->vfs->unlink(tc->db->vfs, path);
  return rc == ES_ENOTFOUND ? 0 : rc;
}

/* Loads one tenant directory: manifest, segments, clean-up, rules. */
static int tenant_load(es_db *db, es_tenant *t) {
  es__manifest_free(&t->man);
  ES_TRY(es__manifest_read(db->vfs, t->dir, &t->man));
  /* What this process trusts must be durable before it acts on it (WAL
   * reclaim, CLEAN): the last process may have died, or failed, between
   * renaming the MANIFEST and syncing the directory (invariant 5). */
  if (t->man.flushed_lsn > 0 || t->man.count > 0)
    ES_TRY(db->vfs->sync_dir(db->vfs, t->dir));
  atomic_store(&t->dir_durable, 1);
  for (size_t i = 0; i < t->man.count; i++) {
    char segname[32], path[ES_PATH_MAX];
    es__segment_name(segname, sizeof(segname), t->man.entries[i].id);
    ES_TRY(es__path_join(path, sizeof(path), t->dir, segname));
    es_segment *seg = NULL;
    ES_TRY(es__segment_open(db->vfs, path, t->man.entries[i].id, &seg));
    es_segset *next = NULL;
    int rc = segset_with(t->segs, seg, &next);
    es__segment_unref(seg);
    ES_TRY(rc);
    es__segset_unref(t->segs);
    t->segs = next;
  }
  /* no reader or writer has the set yet: a tenant is used once loaded */
  t->segs->flushed_lsn = t->man.flushed_lsn;
  tenant_clean tc = {db, t};
  int rc = db->vfs->list(db->vfs, t->dir, tenant_clean_one, &tc);
  if (rc == ES_ENOTFOUND) { /* a new tenant: no directory yet */
    es__error_clear();
    atomic_store(&t->dir_durable, 0);
    rc = ES_OK;
  }
  ES_TRY(rc);
  ES_TRY(es__tomb_load(db, t)); /* before any read of the tenant */
  return db->hooks->tenant_load(db, t, 0);
}

/* Loads a tenant's files once, on first use (the same thread may come
 * back here while loading: its rules' scan looks the tenant up). */
static int tenant_ensure(es_db *db, es_tenant *t) {
  if (atomic_load_explicit(&t->loaded, memory_order_acquire))
    return ES_OK;
  pthread_mutex_lock(&t->load_mu);
  int rc = ES_OK;
  if (!atomic_load(&t->loaded) && !t->loading) {
    t->loading = 1;
    rc = tenant_load(db, t);
    t->loading = 0;
    if (rc == ES_OK)
      atomic_store_explicit(&t->loaded, 1, memory_order_release);
  }
  pthread_mutex_unlock(&t->load_mu);
  return rc;
}

static int tenant_load_one(void *ud, const char *name) {
  es_db *db = ud;
  if (es__tenant_check(name) < 0) {
    es__error_clear();
    es__db_log(db, 1, "ignoring %s/%s: not a tenant id", db->tenants_dir, name);
    return 0;
  }
  es_tenant *t = NULL; /* known by name now, loaded on first use */
  return tenant_lookup(db, name, 1, &t);
}

/* Loads every tenant found under DATA/tenants. */
int es__tenants_load(es_db *db) {
  return db->vfs->list(db->vfs, db->tenants_dir, tenant_load_one, db);
}

/* Accounts memory added to or released from memtables and their
 * messageId sets (dedupe.c); see dbint.h. */
void es__mem_account(es_db *db, size_t add, size_t sub) {
  if (add)
    atomic_fetch_add(&db->mem_bytes, add);
  if (sub) {
    atomic_fetch_sub(&db->mem_bytes, sub);
    pthread_mutex_lock(&db->mem_mu);
    pthread_cond_broadcast(&db->mem_cv);
    pthread_mutex_unlock(&db->mem_mu);
  }
}

/* Seals the active memtable; see dbint.h. */
int es__tenant_seal(es_db *db, es_tenant *t) {
  es_memtable *mt = t->active;
  if (!mt || es__memtable_visible(mt) == 0)
    return ES_OK;
  pthread_mutex_lock(&t->mu);
  int rc = es__grow((void **)&t->imm, &t->imm_cap, t->nimm + 1,
                    sizeof(es_memtable *));
  if (rc == ES_OK) {
    t->imm[t->nimm++] = mt;
    t->active = NULL;
  }
  pthread_mutex_unlock(&t->mu);
  ES_TRY(rc);
  if (db->opts.read_only) /* a reader never flushes: the writer does */
    return ES_OK;
  pthread_mutex_lock(&db->flush_mu);
  /* the queue is jobs[head, head + len): compact before growing */
  if (db->jobs_head > 0 && db->jobs_head + db->jobs_len == db->jobs_cap) {
    memmove(db->jobs, db->jobs + db->jobs_head,
            db->jobs_len * sizeof(es_flush_job));
    db->jobs_head = 0;
  }
  rc = es__grow((void **)&db->jobs, &db->jobs_cap,
                db->jobs_head + db->jobs_len + 1, sizeof(es_flush_job));
  if (rc == ES_OK) {
    es__memtable_ref(mt);
    mt->seal_seq = ++db->seal_seq;
    atomic_fetch_add(&db->sealed_bytes, mt->bytes);
    db->jobs[db->jobs_head + db->jobs_len++] = (es_flush_job){t, mt};
    pthread_cond_signal(&db->flush_cv);
  }
  pthread_mutex_unlock(&db->flush_mu);
  return rc;
}

/* Inserts a record's rows into the active memtable; see dbint.h. */
int es__tenant_insert(es_db *db, es_tenant *t, const uint8_t *rows,
                      size_t rows_len, uint32_t count, uint64_t lsn,
                      const es_row_hint *hint) {
  /* Only recovery gets here with a full memtable (every row published);
   * the writer made room before writing its group (db.c). */
  if (t->active && !es__memtable_has_room(t->active, count)) {
    if (t->active->rows != es__memtable_visible(t->active))
      return ES_ERR(ES_ETOOBIG, "memtable full inside a group");
    ES_TRY(es__tenant_seal(db, t));
  }
  if (!t->active) {
    es_memtable *mt = NULL;
    ES_TRY(es__memtable_new(&mt));
    mt->track_lsn = db->opts.read_only; /* follow.c needs row LSNs */
    es__mem_account(db, mt->bytes, 0);
    pthread_mutex_lock(&t->mu);
    t->active = mt;
    pthread_mutex_unlock(&t->mu);
  }
  size_t added = 0;
  int rc = es__memtable_insert_hinted(t->active, rows, rows_len, count, lsn,
                                      hint, &added);
  es__mem_account(db, added, 0);
  return rc;
}

/* Oldest LSN still needed from the WAL by this tenant. */
uint64_t es__tenant_min_unflushed(es_tenant *t) {
  uint64_t lsn = UINT64_MAX;
  pthread_mutex_lock(&t->mu);
  if (t->nimm > 0)
    lsn = t->imm[0]->min_lsn;
  else if (t->active && t->active->rows > 0)
    lsn = t->active->min_lsn;
  pthread_mutex_unlock(&t->mu);
  return lsn;
}

/* --- the flusher -------------------------------------------------------- */

/* Builds the segment image of a memtable: rows sorted by (ts, order). */
static int flush_build(es_memtable *mt, size_t n, es_buf *img) {
  es_time_key *keys = es__malloc(2 * n * sizeof(*keys));
  const es_mrow **rows = es__malloc(n * sizeof(*rows));
  int rc = (keys && rows) ? ES_OK : ES_NOMEM_BKPT();
  if (rc == ES_OK) {
    for (size_t i = 0; i < n; i++)
      keys[i] = (es_time_key){es__memtable_row(mt, i)->ts_us, i};
    es__time_keys_sort(keys, keys + n, n);
    for (size_t i = 0; i < n; i++)
      rows[i] = es__memtable_row(mt, keys[i].idx);
    rc = es__segment_build(img, rows, n);
  }
  es__free(keys);
  es__free(rows);
  return rc;
}

/* Makes the tenant's directory exist durably before its first file. */
int es__tenant_dir_make(es_db *db, es_tenant *t) {
  if (atomic_load(&t->dir_durable))
    return ES_OK;
  ES_TRY(db->vfs->mkdir(db->vfs, t->dir));
  ES_TRY(db->vfs->sync_dir(db->vfs, db->tenants_dir));
  atomic_store(&t->dir_durable, 1);
  return ES_OK;
}

/* Whether a query has loaded rollups of t's segments in this process:
 * then new segments get theirs attached at once, else they are loaded on
 * first use (a server that only appends, es-ingestd, holds none). */
int es__tenant_rollups_hot(es_tenant *t) {
  int hot = 0;
  pthread_mutex_lock(&t->mu);
  for (size_t i = 0; t->segs && i < t->segs->n && !hot; i++)
    hot = atomic_load(&t->segs->segs[i]->rollup) != NULL;
  pthread_mutex_unlock(&t->mu);
  return hot;
}

/* Writes the segment's rollup file (invariant 4) from the memtable's
 * incremental rollup, and attaches the same rollup to the segment when
 * the tenant's rollups are in use (es__tenant_rollups_hot). */
static int flush_rollup(es_db *db, es_tenant *t, es_memtable *mt,
                        es_segment *seg, uint64_t *bytes_out) {
  es_buf img = {0};
  es_rollup *r = es__calloc(1, sizeof(*r));
  int rc = r ? ES_OK : ES_NOMEM_BKPT();
  if (rc == ES_OK) {
    const es_rollup *mr = es__memtable_rollup_begin(mt);
    if (mr)
      rc = es__rollup_encode(mr, &img);
    es__memtable_rollup_end(mt);
    if (rc == ES_OK && !mr) { /* it could not be kept up: derive it */
      rc = es__rollup_derive(seg, r);
      if (rc == ES_OK)
        rc = es__rollup_encode(r, &img);
      es__rollup_free(r);
    }
  }
  char name[32];
  es__segment_name(name, sizeof(name), seg->id);
  memcpy(name + strlen(name) - 4, ".rlp", 5);
  if (rc == ES_OK)
    rc = es__io_write_atomic(db->vfs, t->dir, name, img.data, img.len);
  *bytes_out = img.len;
  if (rc == ES_OK && !es__tenant_rollups_hot(t)) {
    es__free(r);
    es__buf_free(&img);
    return ES_OK;
  }
  if (rc == ES_OK)
    rc = es__rollup_decode(img.data, img.len, name, r);
  if (rc == ES_OK) {
    es__segment_rollup_set(seg, r);
    r = NULL;
  }
  es__free(r);
  es__buf_free(&img);
  return rc;
}

/* Test hook (dbint.h): called by flush_one between the manifest commit
 * and the swap of the reader-visible state. */
static void (*_Atomic flush_pause_fn)(void *ud, es_tenant *t);
static void *_Atomic flush_pause_ud;

void es__tenant_test_flush_pause(void (*fn)(void *ud, es_tenant *t), void *ud) {
  atomic_store(&flush_pause_ud, ud);
  atomic_store(&flush_pause_fn, fn);
}

static void flush_test_pause(es_tenant *t) {
  void (*fn)(void *, es_tenant *) = atomic_load(&flush_pause_fn);
  if (fn)
    fn(atomic_load(&flush_pause_ud), t);
}

/* Writes the segment and the manifest that commits it (through the
 * commit path, commit.c), then swaps the memtable for the segment in the
 * reader-visible state. */
static int flush_one(es_db *db, es_tenant *t, es_memtable *mt) {
  size_t n = es__memtable_visible(mt);
  es_buf img = {0};
  es_segment *seg = NULL;
  es_commit_note note = {0};
  int committed = 0;
  uint64_t id = t->man.next_segment_id, rlp_bytes = 0;
  char name[32], path[ES_PATH_MAX];
  es__segment_name(name, sizeof(name), id);
  int rc = ES_OK;
  if (n > 0) {
    ES_CHECK(flush_build(mt, n, &img));
    ES_CHECK(es__tenant_dir_make(db, t));
    /* temp file, fdatasync, rename, directory fsync; then the manifest */
    ES_CHECK(es__io_write_atomic(db->vfs, t->dir, name, img.data, img.len));
    ES_CHECK(es__path_join(path, sizeof(path), t->dir, name));
    ES_CHECK(es__segment_open(db->vfs, path, id, &seg));
    ES_CHECK(flush_rollup(db, t, mt, seg, &rlp_bytes));
    es_manifest_entry add = {id, seg->rows, seg->bytes, seg->min_ts,
                             seg->max_ts};
    es_commit_edit edit = {.add = &add,
                           .add_rlp_bytes = &rlp_bytes,
                           .nadd = 1,
                           .flushed_lsn = mt->max_lsn};
    ES_CHECK(es__commit_manifest(db, t, &edit, &note));
    committed = 1;
  }
  es_segset *set = NULL;
  ES_CHECK(segset_with(t->segs, seg, &set));
  if (committed) /* the set and the LSN it covers change together */
    set->flushed_lsn = mt->max_lsn;
  flush_test_pause(t);
  pthread_mutex_lock(&t->mu);
  es_segset *old = t->segs;
  t->segs = set;
  /* invariant 1: the flushed memtable is the oldest sealed one */
  if (t->nimm > 0 && t->imm[0] == mt) {
    memmove(t->imm, t->imm + 1, (t->nimm - 1) * sizeof(es_memtable *));
    t->nimm--;
  }
  pthread_mutex_unlock(&t->mu);
  es__segset_unref(old);
  atomic_fetch_sub(&db->sealed_bytes, mt->bytes);
  es__mem_account(db, 0, mt->bytes);
  es__memtable_unref(mt); /* the tenant list's reference */
err:
  if (committed) /* subscribers hear of every durable generation */
    es__commit_publish(db, t, &note);
  es__segment_unref(seg);
  es__buf_free(&img);
  return rc;
}

/* es_options.compact_segments: after a flush, the compactor thread
 * (compact.c) looks at the tenant's small segments. */
static void flush_compact_maybe(es_db *db, es_tenant *t) {
  if (db->opts.compact_segments > 0)
    es__compact_request(db, t);
}

/* Waits out a backoff after a retryable flush failure (gate.c, 4), on
 * the flusher's lock, ignoring the wake-ups of new seals; returns early
 * only when the flusher is told to stop. */
static void flush_backoff(es_db *db, int64_t backoff_us) {
  int64_t until = es__clock_mono_us() + backoff_us;
  while (!db->flusher_stop) {
    int64_t left = until - es__clock_mono_us();
    if (left <= 0)
      break;
    struct timespec ts;
    es__clock_deadline(&ts, left);
    pthread_cond_timedwait(&db->flush_cv, &db->flush_mu, &ts);
  }
}

/* The flusher thread: takes sealed memtables in order and flushes them;
 * after each, asks the tenant's shard to reclaim WAL files.  A flush that
 * fails retryably (a full disk) is retried, same job, after a backoff;
 * at close the jobs left are dropped (their rows are in the WAL). */
void *es__flusher_main(void *arg) {
  es_db *db = arg;
  int64_t backoff_us = 0;
  pthread_mutex_lock(&db->flush_mu);
  for (;;) {
    while (db->jobs_len == 0 && !db->flusher_stop)
      pthread_cond_wait(&db->flush_cv, &db->flush_mu);
    if (db->jobs_len == 0)
      break;
    es_flush_job job = db->jobs[db->jobs_head];
    pthread_mutex_unlock(&db->flush_mu);
    int rc = ES_EFAILED;
    if (!atomic_load(&db->failed)) {
      int64_t t0 = es__clock_mono_us();
      pthread_mutex_lock(&job.tenant->man_mu);
      rc = flush_one(db, job.tenant, job.mt);
      pthread_mutex_unlock(&job.tenant->man_mu);
      if (rc == ES_OK)
        es__stats_time(&db->st_flushes, &db->st_flush_us, &db->st_flush_us_max,
                       es__clock_mono_us() - t0);
    }
    rc = es__gate_io_error(db, ES_GATE_FLUSH, rc);
    if (rc == ES_EDEGRADED) {
      es__error_clear();
      backoff_us = es__gate_backoff_next(backoff_us);
      pthread_mutex_lock(&db->flush_mu);
      flush_backoff(db, backoff_us);
      if (db->flusher_stop)
        break;
      continue;
    }
    backoff_us = 0;
    if (rc == ES_OK) {
      es__gate_recovered(db, ES_DEGRADED_FLUSH);
      flush_compact_maybe(db, job.tenant);
      /* the rule state as of this flush (a cache: rules.h, 2) */
      if (db->hooks->tenant_save(db, job.tenant) < 0) {
        es__db_log(db, 1, "tenant %s: rule state not saved: %s",
                   job.tenant->name, es_errdetail());
        es__error_clear();
      }
    }
    es_shard *sh = &db->shards[job.tenant->shard];
    atomic_store(&sh->reclaim, 1);
    pthread_mutex_lock(&sh->mu);
    pthread_cond_signal(&sh->work_cv);
    pthread_mutex_unlock(&sh->mu);
    pthread_mutex_lock(&db->flush_mu);
    db->jobs_head++;
    db->jobs_len--;
    if (db->jobs_len == 0)
      db->jobs_head = 0;
    db->flushed_seq = job.mt->seal_seq;
    es__memtable_unref(job.mt); /* the job's reference */
    pthread_cond_broadcast(&db->flushed_cv);
  }
  pthread_mutex_unlock(&db->flush_mu);
  return NULL;
}
