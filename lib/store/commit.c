/*
 * commit.c -- the commit path: the one place where a tenant's new
 * manifest generation becomes durable, where files that no manifest
 * names any more are removed, and where WAL files whose records are all
 * in segments are reclaimed; and the hooks through which later features
 * (replication, export, erase) learn of each step and delay removals.
 *
 * A tenant commit, in order (flush in tenant.c, rewrite in rewrite.c):
 *   1. the new files (segments, rollups) are written and durable (temp,
 *      fdatasync, rename, directory fsync) under ids no manifest names;
 *   2. es__commit_manifest, under tenant->man_mu: MANIFEST.tmp written
 *      and fdatasync'ed, renamed over MANIFEST, the directory fsync'ed
 *      (es__manifest_write); only then is it installed as tenant->man;
 *   3. the caller swaps the reader-visible state (segment set, memtables);
 *   4. es__commit_publish, still under man_mu: every subscriber's
 *      `committed` hook hears "tenant T, generation N is durable; these
 *      files are new; these are no longer named and about to go", and
 *      may hold some of the latter; then the unheld ones are unlinked.
 *      A held file is unlinked by its last es__commit_release.
 * A WAL reclaim (es__commit_wal_reclaim, on the shard's writer thread)
 * announces the files about to go through `wal_reclaim`, then deletes
 * the oldest files up to the first one held.  A release of a held WAL
 * file asks the shard writer to reclaim again.
 *
 * Invariants:
 *  1. A file is unlinked only after a durable manifest that does not name
 *     it (the directory fsync of step 2 returned), so a power cut at any
 *     point leaves every file the durable manifest names.  Files left
 *     behind by a crash between steps 2 and 4, or held when the process
 *     ended, are orphans: the next open deletes them (tenant.c, 3).
 *  2. Generations of a tenant are consecutive: each commit writes the
 *     durable one plus one (manifest.h, 3), and subscribers hear each
 *     exactly once, in order, since steps 2-4 run under tenant->man_mu.
 *  3. A subscriber hears of a file's removal before it is removed, and a
 *     held file is not removed before its holds are released (in this
 *     process: holds are not persistent, see invariant 1).
 *  4. WAL files go oldest first (the log stays a contiguous run of files)
 *     and only when every record in them is at or below the flushed_lsn
 *     of a durable manifest (db.c computes keep_lsn; tenant.c, 5 makes a
 *     manifest found at open durable before reclaim relies on it).
 *  5. Announcing a commit cannot fail: everything it needs is allocated
 *     before the manifest is written (es_commit_note).
 *  6. The commit path keeps tenant->man equal to the durable MANIFEST: it
 *     is replaced only after the write returned success.  A failed write
 *     leaves the disk at either generation; the caller then fails the
 *     database (sticky, db.c 2), so the two never diverge in use.
 */
#include <stdio.h>

#include "base/mem.h"
#include "store/commit.h"
#include "store/rollup.h"

typedef struct commit_sub {
  const es_commit_hooks *hooks;
  void *ud;
} commit_sub;

typedef struct es_commit_state es_commit_state;

/* A file announced as about to be removed and still on disk. */
typedef struct commit_node {
  const char *dir; /* tenant->dir or shard->dir: live as long as the db */
  char name[40];
  int holds;
  int ready; /* the subscribers have been told */
  int wal;   /* a WAL file of shard `shard`, first LSN `first` */
  uint32_t shard;
  uint64_t first;
  struct commit_node *next;
} commit_node;

struct es_commit_state {
  pthread_mutex_t mu; /* guards subs and pending; a leaf lock */
  commit_sub subs[ES_COMMIT_SUBS_MAX];
  size_t nsubs;
  commit_node *pending;
};

int es__commit_init(es_db *db) {
  db->commit = es__calloc(1, sizeof(*db->commit));
  if (!db->commit)
    return ES_NOMEM_BKPT();
  pthread_mutex_init(&db->commit->mu, NULL);
  return ES_OK;
}

void es__commit_free(es_db *db) {
  es_commit_state *cs = db->commit;
  if (!cs)
    return;
  for (commit_node *n = cs->pending, *next; n; n = next) {
    next = n->next; /* held at close: orphans for the next open */
    es__free(n);
  }
  pthread_mutex_destroy(&cs->mu);
  es__free(cs);
  db->commit = NULL;
}

/* Registers a subscriber; see commit.h. */
int es__commit_subscribe(es_db *db, const es_commit_hooks *hooks, void *ud) {
  es_commit_state *cs = db->commit;
  int rc = ES_OK;
  pthread_mutex_lock(&cs->mu);
  if (cs->nsubs == ES_COMMIT_SUBS_MAX)
    rc = ES_INVAL_BKPT("more than %d commit subscribers", ES_COMMIT_SUBS_MAX);
  else
    cs->subs[cs->nsubs++] = (commit_sub){hooks, ud};
  pthread_mutex_unlock(&cs->mu);
  return rc;
}

void es__commit_unsubscribe(es_db *db, const es_commit_hooks *hooks, void *ud) {
  es_commit_state *cs = db->commit;
  pthread_mutex_lock(&cs->mu);
  for (size_t i = 0; i < cs->nsubs; i++)
    if (cs->subs[i].hooks == hooks && cs->subs[i].ud == ud) {
      cs->subs[i] = cs->subs[--cs->nsubs];
      break;
    }
  pthread_mutex_unlock(&cs->mu);
}

/* The pending node for dir/name (caller holds mu), or NULL. */
static commit_node **commit_find(es_commit_state *cs, const char *dir,
                                 const char *name) {
  for (commit_node **p = &cs->pending; *p; p = &(*p)->next)
    if (strcmp((*p)->name, name) == 0 && strcmp((*p)->dir, dir) == 0)
      return p;
  return NULL;
}

/* Unlinks one file no manifest names; a failure only leaves an orphan. */
static void commit_unlink(es_db *db, const char *dir, const char *name) {
  char path[ES_PATH_MAX];
  int rc = es__path_join(path, sizeof(path), dir, name);
  if (rc == ES_OK)
    rc = db->vfs->unlink(db->vfs, path);
  if (rc < 0 && rc != ES_ENOTFOUND)
    es__db_log(db, 1, "could not remove %s/%s (left for the next open): %s",
               dir, name, es_errdetail());
  es__error_clear();
}

/* Asks a shard's writer to run its WAL reclaim again. */
static void commit_wake_reclaim(es_db *db, uint32_t shard) {
  es_shard *sh = &db->shards[shard];
  atomic_store(&sh->reclaim, 1);
  pthread_mutex_lock(&sh->mu);
  pthread_cond_signal(&sh->work_cv);
  pthread_mutex_unlock(&sh->mu);
}

int es__commit_hold(es_db *db, const char *dir, const char *name) {
  es_commit_state *cs = db->commit;
  pthread_mutex_lock(&cs->mu);
  commit_node **p = commit_find(cs, dir, name);
  if (p)
    (*p)->holds++;
  pthread_mutex_unlock(&cs->mu);
  return p ? ES_OK
           : ES_ERR(ES_ENOTFOUND, "%s/%s is not about to be removed", dir,
                    name);
}

int es__commit_release(es_db *db, const char *dir, const char *name) {
  es_commit_state *cs = db->commit;
  commit_node *gone = NULL;
  int wake = -1;
  pthread_mutex_lock(&cs->mu);
  commit_node **p = commit_find(cs, dir, name);
  int held = p && (*p)->holds > 0;
  if (held && --(*p)->holds == 0 && (*p)->ready) {
    if ((*p)->wal) {
      wake = (int)(*p)->shard; /* the writer owns the log: it deletes */
    } else {
      gone = *p;
      *p = gone->next;
    }
  }
  pthread_mutex_unlock(&cs->mu);
  if (!held)
    return ES_ERR(ES_ENOTFOUND, "%s/%s is not held", dir, name);
  if (gone) {
    commit_unlink(db, gone->dir, gone->name);
    es__free(gone);
  }
  if (wake >= 0)
    commit_wake_reclaim(db, (uint32_t)wake);
  return ES_OK;
}

size_t es__commit_pending(es_db *db) {
  es_commit_state *cs = db->commit;
  size_t n = 0;
  pthread_mutex_lock(&cs->mu);
  for (commit_node *p = cs->pending; p; p = p->next)
    n++;
  pthread_mutex_unlock(&cs->mu);
  return n;
}

/* Calls one hook of every subscriber (a copy of the list: hooks may call
 * es__commit_hold, which takes mu). */
static void commit_notify(es_db *db, int wal, const es_commit_info *info) {
  es_commit_state *cs = db->commit;
  commit_sub subs[ES_COMMIT_SUBS_MAX];
  pthread_mutex_lock(&cs->mu);
  size_t n = cs->nsubs;
  memcpy(subs, cs->subs, n * sizeof(*subs));
  pthread_mutex_unlock(&cs->mu);
  for (size_t i = 0; i < n; i++) {
    void (*fn)(void *, const es_commit_info *) =
        wal ? subs[i].hooks->wal_reclaim : subs[i].hooks->committed;
    if (fn)
      fn(subs[i].ud, info);
  }
}

/* Tells the wal_synced hooks about a durable frame; see commit.h.  A
 * shard writer with no subscriber pays one uncontended lock. */
void es__commit_wal_synced(es_db *db, es_shard *sh, uint64_t lsn,
                           const uint8_t *frame, size_t len) {
  es_commit_state *cs = db->commit;
  commit_sub subs[ES_COMMIT_SUBS_MAX];
  pthread_mutex_lock(&cs->mu);
  size_t n = cs->nsubs;
  memcpy(subs, cs->subs, n * sizeof(*subs));
  pthread_mutex_unlock(&cs->mu);
  for (size_t i = 0; i < n; i++)
    if (subs[i].hooks->wal_synced)
      subs[i].hooks->wal_synced(subs[i].ud, sh->id, lsn, frame, len);
}

/* --- tenant commits ------------------------------------------------------ */

static void commit_file_name(es_commit_file *f, uint64_t id, int rollup,
                             uint64_t bytes) {
  es__segment_name(f->name, sizeof(f->name), id);
  if (rollup)
    memcpy(f->name + strlen(f->name) - 4, ".rlp", 5);
  f->bytes = bytes;
}

/* Allocates and fills the announcement of a commit (invariant 5). */
static int commit_note_prepare(es_tenant *t, const es_commit_edit *e,
                               es_commit_note *note) {
  size_t nfiles = 2 * (e->nadd + e->ndrop);
  note->files = es__calloc(nfiles ? nfiles : 1, sizeof(es_commit_file));
  note->nodes = es__calloc(e->ndrop ? 2 * e->ndrop : 1, sizeof(commit_node));
  if (!note->files || !note->nodes)
    return ES_NOMEM_BKPT();
  es_commit_file *f = note->files;
  for (size_t i = 0; i < e->nadd; i++) {
    commit_file_name(f++, e->add[i].id, 0, e->add[i].bytes);
    commit_file_name(f++, e->add[i].id, 1,
                     e->add_rlp_bytes ? e->add_rlp_bytes[i] : 0);
  }
  for (size_t i = 0; i < e->ndrop; i++) {
    commit_file_name(f++, e->drop[i].id, 0, e->drop[i].bytes);
    commit_file_name(f++, e->drop[i].id, 1, 0);
  }
  for (size_t i = 0; i < 2 * e->ndrop; i++) {
    note->nodes[i].dir = t->dir;
    strcpy(note->nodes[i].name, note->files[2 * e->nadd + i].name);
  }
  note->info = (es_commit_info){.tenant = t->name,
                                .shard = t->shard,
                                .dir = t->dir,
                                .added = note->files,
                                .nadded = 2 * e->nadd,
                                .removed = note->files + 2 * e->nadd,
                                .nremoved = 2 * e->ndrop};
  return ES_OK;
}

static void commit_note_free(es_commit_note *note) {
  es__free(note->files);
  es__free(note->nodes);
  memset(note, 0, sizeof(*note));
}

static int commit_dropped(const es_commit_edit *e, uint64_t id) {
  for (size_t k = 0; k < e->ndrop; k++)
    if (e->drop[k].id == id)
      return 1;
  return 0;
}

/* The next generation's manifest: t->man without the dropped entries,
 * with the added ones where the first dropped one was (else at the end). */
static int commit_next(const es_manifest *cur, const es_commit_edit *e,
                       es_manifest *next) {
  size_t found = 0;
  for (size_t i = 0; i < cur->count; i++)
    found += commit_dropped(e, cur->entries[i].id);
  if (found != e->ndrop)
    return ES_INVAL_BKPT("commit drops %zu segments, the manifest names %zu "
                         "of them",
                         e->ndrop, found);
  if (e->flushed_lsn < cur->flushed_lsn)
    return ES_INVAL_BKPT("commit would move flushed_lsn back");
  *next = *cur;
  next->count = 0;
  next->entries =
      es__malloc((cur->count + e->nadd + 1) * sizeof(es_manifest_entry));
  if (!next->entries)
    return ES_NOMEM_BKPT();
  int placed = 0;
  for (size_t i = 0; i <= cur->count; i++) {
    int last = i == cur->count;
    int drop = !last && commit_dropped(e, cur->entries[i].id);
    if (!placed && (drop || last)) {
      memcpy(next->entries + next->count, e->add, e->nadd * sizeof(*e->add));
      next->count += e->nadd;
      placed = 1;
    }
    if (!last && !drop)
      next->entries[next->count++] = cur->entries[i];
  }
  for (size_t i = 0; i < e->nadd; i++)
    if (e->add[i].id >= next->next_segment_id)
      next->next_segment_id = e->add[i].id + 1;
  next->flushed_lsn = e->flushed_lsn;
  next->generation = cur->generation + 1;
  return ES_OK;
}

/* Makes the next generation durable; see commit.h. */
int es__commit_manifest(es_db *db, es_tenant *t, const es_commit_edit *e,
                        es_commit_note *note) {
  memset(note, 0, sizeof(*note));
  es_manifest next = {0};
  int rc = commit_next(&t->man, e, &next);
  if (rc == ES_OK)
    rc = commit_note_prepare(t, e, note);
  /* The tenant's rollup index file may hold strings (paths) of rows the
   * dropped segments hold (an erasure's): gone before they are, made
   * durable by the manifest's directory fsync (rollup.h). */
  if (rc == ES_OK && e->ndrop > 0)
    rc = es__rollidx_remove(db, t);
  if (rc == ES_OK) /* temp, fdatasync, rename, directory fsync */
    rc = es__manifest_write(db->vfs, t->dir, &next);
  if (rc < 0) {
    es__manifest_free(&next);
    commit_note_free(note);
    return rc;
  }
  note->info.generation = next.generation;
  note->info.flushed_lsn = next.flushed_lsn;
  pthread_mutex_lock(&t->mu); /* durable: now the store's (invariant 6) */
  es__manifest_free(&t->man);
  t->man = next;
  pthread_mutex_unlock(&t->mu);
  return ES_OK;
}

/* Tells the subscribers, then removes what nobody holds; see commit.h. */
void es__commit_publish(es_db *db, es_tenant *t, es_commit_note *note) {
  es_commit_state *cs = db->commit;
  size_t n = note->info.nremoved;
  (void)t;
  pthread_mutex_lock(&cs->mu);
  int subs = cs->nsubs > 0;
  for (size_t i = 0; subs && i < n; i++) { /* holdable from now on */
    note->nodes[i].next = cs->pending;
    cs->pending = &note->nodes[i];
  }
  pthread_mutex_unlock(&cs->mu);
  if (subs)
    commit_notify(db, 0, &note->info);
  for (size_t i = 0; i < n; i++) {
    int held = 0;
    if (subs) {
      pthread_mutex_lock(&cs->mu);
      commit_node **p =
          commit_find(cs, note->nodes[i].dir, note->nodes[i].name);
      *p = note->nodes[i].next; /* ours: found */
      held = note->nodes[i].holds > 0;
      if (held) { /* a heap copy waits for the last release */
        commit_node *copy = es__malloc(sizeof(*copy));
        if (copy) {
          *copy = note->nodes[i];
          copy->ready = 1;
          copy->next = cs->pending;
          cs->pending = copy;
        } else { /* cannot keep it: left on disk, an orphan at next open */
          es__db_log(db, 1, "no memory to track a held file: %s/%s kept",
                     note->nodes[i].dir, note->nodes[i].name);
        }
      }
      pthread_mutex_unlock(&cs->mu);
    }
    if (!held)
      commit_unlink(db, note->nodes[i].dir, note->nodes[i].name);
  }
  commit_note_free(note);
}

/* --- WAL reclaim --------------------------------------------------------- */

/* Adds the reclaimable WAL files not yet announced to the pending list
 * and announces them. */
static int commit_wal_announce(es_db *db, es_shard *sh, const uint64_t *firsts,
                               size_t drop, uint64_t file_bytes) {
  es_commit_state *cs = db->commit;
  es_commit_file *files = es__calloc(drop, sizeof(*files));
  int rc = files ? ES_OK : ES_NOMEM_BKPT();
  size_t nnew = 0;
  pthread_mutex_lock(&cs->mu);
  for (size_t i = 0; rc == ES_OK && i < drop; i++) {
    char name[40];
    snprintf(name, sizeof(name), "%016llx.wal", (unsigned long long)firsts[i]);
    if (commit_find(cs, sh->dir, name))
      continue;
    commit_node *node = es__malloc(sizeof(*node));
    if (!node) {
      rc = ES_NOMEM_BKPT();
      break;
    }
    *node = (commit_node){.dir = sh->dir,
                          .wal = 1,
                          .shard = sh->id,
                          .first = firsts[i],
                          .next = cs->pending};
    strcpy(node->name, name);
    cs->pending = node;
    strcpy(files[nnew].name, name);
    files[nnew++].bytes = file_bytes;
  }
  pthread_mutex_unlock(&cs->mu);
  if (nnew > 0) {
    es_commit_info info = {
        .shard = sh->id, .dir = sh->dir, .removed = files, .nremoved = nnew};
    commit_notify(db, 1, &info);
  }
  pthread_mutex_lock(&cs->mu);
  for (commit_node *p = cs->pending; p; p = p->next)
    if (p->wal && p->shard == sh->id)
      p->ready = 1;
  pthread_mutex_unlock(&cs->mu);
  es__free(files);
  return rc;
}

/* Reclaims WAL files; see commit.h. */
int es__commit_wal_reclaim(es_db *db, es_shard *sh, uint64_t keep_lsn) {
  es_commit_state *cs = db->commit;
  const uint64_t *firsts = NULL;
  uint64_t file_bytes = 0;
  size_t n = es__wal_files(sh->wal, &firsts, &file_bytes);
  size_t drop = 0;
  while (drop + 1 < n && firsts[drop + 1] <= keep_lsn)
    drop++;
  if (drop == 0)
    return ES_OK;
  pthread_mutex_lock(&cs->mu);
  int track = cs->nsubs > 0;
  for (commit_node *p = cs->pending; p && !track; p = p->next)
    track = p->wal && p->shard == sh->id;
  pthread_mutex_unlock(&cs->mu);
  if (!track)
    return es__wal_reclaim(sh->wal, keep_lsn);
  ES_TRY(commit_wal_announce(db, sh, firsts, drop, file_bytes));
  /* oldest first, up to the first file held (invariant 4) */
  size_t upto = drop;
  pthread_mutex_lock(&cs->mu);
  for (commit_node *p = cs->pending; p; p = p->next)
    if (p->wal && p->shard == sh->id && p->holds > 0)
      for (size_t i = 0; i < upto; i++)
        if (firsts[i] == p->first)
          upto = i;
  pthread_mutex_unlock(&cs->mu);
  int rc = upto == 0 ? ES_OK : es__wal_reclaim(sh->wal, firsts[upto]);
  n = es__wal_files(sh->wal, &firsts, &file_bytes);
  uint64_t oldest = n > 0 ? firsts[0] : UINT64_MAX;
  pthread_mutex_lock(&cs->mu);
  for (commit_node **p = &cs->pending; *p;) {
    commit_node *node = *p;
    if (node->wal && node->shard == sh->id && node->first < oldest) {
      *p = node->next; /* deleted */
      es__free(node);
    } else {
      p = &node->next;
    }
  }
  pthread_mutex_unlock(&cs->mu);
  return rc;
}
