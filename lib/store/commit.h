/*
 * commit.h -- the one path by which a tenant's new manifest generation
 * becomes durable and files that no manifest names are removed, with
 * hooks for what must know about it (replication, export, erase).
 * The essay and the invariants are in commit.c.
 *
 * Who calls what:
 *  - flush (tenant.c), rewrite (rewrite.c: compaction, retention, erase):
 *    under tenant->man_mu, es__commit_manifest makes the new generation
 *    durable and installs it in tenant->man; the caller then swaps the
 *    reader-visible state; es__commit_publish tells the subscribers and
 *    removes the files the generation no longer names (unless held).
 *  - the shard writer (db.c) reclaims WAL files with es__commit_wal_reclaim.
 *  - a subscriber registers es_commit_hooks on the es_db and may hold
 *    files announced as about to be removed until it releases them.
 */
#ifndef ES_COMMIT_H
#define ES_COMMIT_H

#include "store/dbint.h"

/* A file a commit added or is about to remove: its name in `dir`. */
typedef struct es_commit_file {
  char name[40];
  uint64_t bytes; /* added: exact; removed segments: as the manifest said;
                     removed rollup files: 0 (their size is not recorded);
                     WAL files: the preallocated size */
} es_commit_file;

/* What one commit (or one WAL reclaim) tells the subscribers. */
typedef struct es_commit_info {
  const char *tenant;  /* NULL for a WAL reclaim */
  uint32_t shard;      /* the tenant's shard, or the WAL's */
  const char *dir;     /* where the files are (tenant or shard WAL dir) */
  uint64_t generation; /* the generation now durable (0 for WAL) */
  uint64_t flushed_lsn;
  const es_commit_file *added; /* new files the generation names */
  size_t nadded;
  const es_commit_file *removed; /* files about to be removed */
  size_t nremoved;
} es_commit_info;

/* A subscriber's callbacks (either may be NULL).  They run on the thread
 * that committed (the flusher, a compaction's caller, a shard writer),
 * with tenant->man_mu held for `committed` (so a tenant's generations
 * arrive one at a time, in order) and on the shard's writer thread for
 * `wal_reclaim` (so WAL files arrive in LSN order).  They must be short,
 * must not block on I/O of the store, and must not call into the store
 * except es__commit_hold/es__commit_release.  A file listed in `removed`
 * is unlinked right after the callbacks return unless one of them called
 * es__commit_hold for it. */
typedef struct es_commit_hooks {
  void (*committed)(void *ud, const es_commit_info *info);
  void (*wal_reclaim)(void *ud, const es_commit_info *info);
  /* On the shard's writer thread, after the fdatasync that made the frame
   * durable and before any appender of its group is woken: the frame's
   * bytes (header included, borrowed for the call only).  Frames of a
   * shard arrive in LSN order, each once. */
  void (*wal_synced)(void *ud, uint32_t shard, uint64_t lsn,
                     const uint8_t *frame, size_t len);
} es_commit_hooks;

/* Registers a subscriber (hooks must outlive it).  At most
 * ES_COMMIT_SUBS_MAX at a time; ES_EINVAL beyond. */
#define ES_COMMIT_SUBS_MAX 8
int es__commit_subscribe(es_db *db, const es_commit_hooks *hooks,
                         void *ud) ES_MUST_CHECK;
/* Removes a subscriber; its holds stay until released. */
void es__commit_unsubscribe(es_db *db, const es_commit_hooks *hooks, void *ud);

/* Keeps dir/name, announced as removed and not yet removed, until as
 * many es__commit_release calls.  ES_ENOTFOUND when it is not pending. */
int es__commit_hold(es_db *db, const char *dir, const char *name) ES_MUST_CHECK;
/* Drops a hold; the last one removes the file (a tenant's file at once,
 * on the caller's thread; a WAL file on its shard writer's next reclaim,
 * which this call requests).  ES_ENOTFOUND when it was not held. */
int es__commit_release(es_db *db, const char *dir,
                       const char *name) ES_MUST_CHECK;
/* Files announced as removed and still on disk (held, or waiting). */
size_t es__commit_pending(es_db *db);

/* A change of a tenant's manifest. */
typedef struct es_commit_edit {
  const es_manifest_entry *drop; /* segments the new generation no longer
                                    names (id and bytes are used) */
  size_t ndrop;
  const es_manifest_entry *add;  /* new segments, in the place of the first
                                    dropped one (else at the end) */
  const uint64_t *add_rlp_bytes; /* their rollup files' sizes (or NULL) */
  size_t nadd;
  uint64_t flushed_lsn; /* the new flushed_lsn: never below the old one */
} es_commit_edit;

/* A committed generation's announcement, prepared (allocated) before the
 * manifest is written so that publishing it cannot fail. */
struct commit_node;
typedef struct es_commit_note {
  es_commit_info info;
  es_commit_file *files;     /* owned: the added, then the removed */
  struct commit_node *nodes; /* owned: one per removed file */
} es_commit_note;

/* Under tenant->man_mu: writes generation t->man.generation + 1 (MANIFEST
 * temp, fdatasync, rename, directory fsync), then installs it as t->man
 * and fills *note for es__commit_publish.  Every dropped id must be named
 * by t->man (ES_EINVAL otherwise, before any I/O).  On failure t->man is
 * unchanged, *note is empty, and the disk may hold either generation: the
 * caller fails the database, as for any write-path I/O error. */
int es__commit_manifest(es_db *db, es_tenant *t, const es_commit_edit *e,
                        es_commit_note *note) ES_MUST_CHECK;
/* Under tenant->man_mu, after the caller made the committed generation
 * the readers' view: tells the subscribers, then removes the dropped
 * segments' files nobody holds, and frees the note.  Removal failures are
 * logged and leave orphans, which the next open deletes. */
void es__commit_publish(es_db *db, es_tenant *t, es_commit_note *note);

/* On a shard's writer thread: removes the WAL files all of whose records
 * are below keep_lsn (in segments), oldest first, after telling the
 * subscribers about the ones not announced before; stops at the first
 * file a subscriber holds. */
int es__commit_wal_reclaim(es_db *db, es_shard *sh,
                           uint64_t keep_lsn) ES_MUST_CHECK;

/* On a shard's writer thread, after the sync covering the frame: tells
 * the subscribers' wal_synced hooks (the WAL shipper, replicate/walship.c). */
void es__commit_wal_synced(es_db *db, es_shard *sh, uint64_t lsn,
                           const uint8_t *frame, size_t len);

/* The commit state of a handle (es__db_open / es_close). */
int es__commit_init(es_db *db) ES_MUST_CHECK;
void es__commit_free(es_db *db);

#endif
