/*
 * walship.c -- the WAL shipper: durability tier s3 (per handle, or per
 * tenant with es_options.ship_wal, api.c).  Copies every WAL frame of
 * every shard to the object store as chunks, so that es_append in tier s3
 * can answer ES_OK only once its batch is in the store (and tier local's
 * copy follows within seconds), and deletes chunks once the segments
 * holding their events are replicated.
 *
 * Layout (docs/FORMAT.md, "WAL chunks"):
 *   wal/<shard>/<016x first LSN>-<016x last LSN>          a single store
 *   wal/<node>/<shard>/<016x first LSN>-<016x last LSN>   a cluster node
 * (each node of a cluster has its own LSN space, so its own keys: the
 * node is cluster.c's, known when the shipper starts; see the section
 * "Cluster keys" at the end).  A chunk is frames of that shard's WAL, whole and
 * byte for byte as in the local log (header, LSN and checksum included), in LSN
 * order.  Nothing else is in it: each frame's own checksum protects it, and a
 * PUT is atomic (objstore.h, 1).
 *
 * How it works.  The shard writer calls the wal_synced hook
 * (store/commit.h) after the fdatasync of each group's frame and before
 * waking the group's appenders; the hook copies the frame to the shard's
 * pending buffer and wakes one of the shard's shipper threads
 * (es_options.s3_puts_inflight of them, the depth).  A free thread cuts
 * everything pending into a chunk and puts it; frames synced meanwhile
 * wait in pending for the next free thread, so concurrent appenders share
 * one PUT per chunk exactly as they share one fdatasync (group commit
 * across the S3 round trip), and up to depth chunks of a shard are under
 * way at once (pipelining: against a store with 100 ms PUTs a frame does
 * not wait for the PUT before it to return).  The chunks cut and not yet
 * shipped form a queue in LSN order; shipped_lsn moves over its prefix of
 * chunks whose PUT succeeded.  An appender in tier s3 waits
 * (es__walship_wait) until the shard's shipped LSN reaches its frame's.
 * A failed PUT is retried after a backoff with the same key and bytes;
 * while one is failing no new chunk is cut (the retries probe the store),
 * and frames synced meanwhile wait in pending, one chunk when it returns.
 *
 * The backlog is on disk.  Frames not yet in the store are kept in memory
 * only up to a window per shard (es_options.s3_window_bytes).  Past it,
 * during an outage or a slow store, the hook copies nothing more: the
 * shard "spills", and a shipper thread reads the frames back from the
 * shard's WAL files (es__wal_read_frames, store/wal.c) in LSN order when a
 * queue slot is free, until it has caught up with the hook; then the hook
 * copies again.  A WAL file the shard writer is about to delete (its
 * records are all in segments, wal_reclaim hook) while it still holds
 * spilled frames the shipper has not read is held (es__commit_hold) and
 * released once they are read.  Disk use is therefore the WAL files the
 * spill needs, bounded for the store by es_options.s3_backlog_bytes_max;
 * past that bound a file is let go instead and the shard is degraded (a
 * log line, a metric): its frames are in segments of durable local
 * manifests, which the uploader takes to the store, and the shipper
 * replaces them in its queue by a gap that counts as shipped only once an
 * uploader sweep begun after it found everything uploaded.  Nothing is
 * lost, and an acknowledgement in tier s3 still means "in the store".
 *
 * Invariants:
 *  1. A frame is put only after its local fdatasync returned (the hook
 *     runs after it), so the store never holds a frame the local log could
 *     lose, and an LSN is never used for two different frames: a shipped
 *     LSN survives a local crash, and after a node loss the restored log
 *     continues above it.
 *  2. Frames are cut into chunks in the order the hook delivered them:
 *     each chunk holds every delivered frame above the previous chunk's
 *     last LSN up to its own last, so the chunks of a process tile its
 *     LSN range without gap or overlap.  shipped_lsn only grows, and only
 *     to the last LSN of a chunk whose PUT returned ES_OK and every chunk
 *     cut before it did too (the completed prefix of the queue; a chunk
 *     put while an earlier one is under way or failing does not move it).
 *     So every frame at or below shipped_lsn that the hook saw is in the
 *     store: a waiter's "ES_OK" is never a guess.  A PUT in doubt
 *     (ES_EUNAVAIL) is retried whole, same key and bytes: a chunk is in
 *     the store entirely or not at all.  (Restore still keeps each LSN
 *     once, whatever chunks it finds.)
 *  3. A chunk is deleted only when its last LSN is below a bound keep
 *     that the shard writer published (every record below keep is in a
 *     segment a durable local manifest names, db.c writer_reclaim), read
 *     before the start of an uploader sweep that then found every tenant's
 *     newest manifest and its files in the store (replicate.c,
 *     es__replicator_sweeps), and at least replica_grace_us after that
 *     was seen (a restore that listed the chunk still finds it).  So the
 *     events of a deleted chunk are in segments of uploaded manifests.
 *  4. The hook never blocks on the store and does no I/O: it copies (or
 *     not, when the shard spills) and signals under the shard's leaf
 *     mutex.  Memory is bounded: a shard holds at most its window of
 *     frames (pending and queued chunks) plus one frame; frames past it
 *     are read back from the WAL files, at most the window's room at a
 *     time.  Spilled frames are read in LSN order, each chunk starting
 *     right after cut_lsn, so invariant 2 holds for read chunks too.
 *     With every append in tier s3, appends are refused up front
 *     (es__walship_admit) while the store is failing or slow.
 *  5. A duplicate-only (or partly duplicate) append in tier s3 is
 *     acknowledged only when its original is in the store: either a frame
 *     of this process (the wait covers every frame synced before it
 *     returned), or data that was local at open, which api.c flushes into
 *     segments at open and the uploader then replicates; until an uploader
 *     sweep begun after that flush found everything uploaded, such appends
 *     wait (api.c).
 *  6. No chunk is put before the ESDB object (the uploader puts it too,
 *     but maybe later): a restore needs it, so an acknowledged event never
 *     sits in a store that cannot be restored.
 *  (7 is in the section "Cluster keys" at the end.)
 *  8. Every frame the hook saw and that is not in the store is in memory
 *     (pending, a queued chunk) or in a WAL file on disk: a file the
 *     writer announces for deletion is held while the shard spills and
 *     the file's last frame is above what is in memory (pend_last, else
 *     cut_lsn), and released only once cut_lsn reaches that frame (its
 *     bytes are then in a chunk's buffer, retried from memory).  Past
 *     s3_backlog_bytes_max of held files, a file is let go instead: every
 *     record in it is in a segment that a durable local manifest names
 *     (the writer announces nothing else), the range up to its last
 *     frame becomes a gap (skip_to) that moves shipped_lsn only when an
 *     uploader sweep begun after the gap was cut found everything
 *     uploaded (invariant 3's condition: the segments are in the store).
 *  9. A restart ships nothing twice and forgets nothing without a record
 *     of its own: frames on disk at open are sealed into segments by
 *     api.c before the first append (invariant 5), and the uploader's
 *     durable record (replicate.c, 3) carries them to the store; the
 *     shipper starts after the last of them (start_lsn).  Files held by
 *     the last process are deleted by the next open's reclaim.
 */
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/io.h"
#include "base/mem.h"
#include "replicate/lease.h"
#include "replicate/replicate.h"
#include "store/commit.h"
#include "store/wal.h"

#define SHIP_READ_MAX ((size_t)8 << 20) /* a chunk read back from the WAL */
#define SHIP_GAP_POLL_US ((int64_t)100000)
#define SHIP_BACKOFF_MIN_US ((int64_t)100000)
#define SHIP_BACKOFF_MAX_US ((int64_t)5000000)
#define SHIP_GC_EVERY_US ((int64_t)1000000)
#define SHIP_SAFE_MAX 64 /* remembered (keep, since) pairs per shard */

typedef struct ship_chunk {
  uint64_t first, last;
} ship_chunk;

typedef struct ship_safe {
  uint64_t keep;
  int64_t since_us; /* wall time it was established (invariant 3) */
} ship_safe;

enum { SHIP_PUT = 1, SHIP_FAILED, SHIP_DONE, SHIP_GAP };

/* A WAL file held for the spill (invariant 8). */
typedef struct ship_hold {
  char name[40];
  uint64_t last; /* the last LSN it may hold */
  uint64_t bytes;
} ship_hold;

/* A chunk cut from pending and not yet part of the shipped prefix
 * (invariant 2). */
typedef struct ship_q {
  es_buf buf; /* its frames; freed once in the store */
  uint64_t first, last;
  int64_t since_us;   /* when its first frame was synced (monotonic) */
  int64_t start_us;   /* when its current PUT began (monotonic) */
  int state;          /* SHIP_PUT, SHIP_FAILED, SHIP_DONE or SHIP_GAP */
  uint64_t gap_sweep; /* SHIP_GAP: done after a clean sweep above it */
} ship_q;

typedef struct ship_shard {
  struct es_walship *w;
  uint32_t id;
  pthread_t *threads; /* w->depth of them */
  unsigned started;
  /* guarded by mu (a leaf, never held across I/O) */
  pthread_mutex_t mu;
  pthread_cond_t cv;              /* wakes the threads */
  pthread_cond_t done_cv;         /* wakes waiters */
  es_buf pend;                    /* frames synced, not yet cut into a chunk */
  uint64_t pend_first, pend_last; /* their LSNs (0, 0: none) */
  int64_t pend_since_us;          /* when the first of them was synced */
  ship_q *q;                      /* ring of w->depth chunks, LSN order */
  unsigned qhead, qn;
  unsigned nput;        /* of those, PUTs under way */
  unsigned nfailed;     /* of those, failed and not yet retried */
  size_t held;          /* bytes in pend and q (invariant 4) */
  uint64_t synced_lsn;  /* the last frame the hook delivered */
  uint64_t shipped_lsn; /* invariant 2 */
  uint64_t cut_lsn;     /* the last LSN cut into a chunk or a gap */
  int seen;             /* the hook delivered a frame (start_lsn is set) */
  uint64_t start_lsn;   /* the LSN before the first it delivered (9) */
  int spill;            /* frames above pend are only on disk (4) */
  int64_t spill_since_us;
  int reading; /* a thread reads the WAL (cur is its) */
  es_wal_cursor cur;
  int64_t read_retry_us; /* after a failed read, not before */
  ship_hold *holds;      /* WAL files held, LSN order (invariant 8) */
  size_t nholds, holds_cap;
  uint64_t skip_to; /* let go past the bound: a gap up to it (8) */
  int degraded;     /* a gap is not yet shipped */
  int failing;      /* a PUT failed and none succeeded since */
  char why[200];    /* the last failure */
  int64_t retry_mono_us;
  unsigned fails;
  ship_chunk *chunks; /* in the store, sorted by first */
  size_t nchunks, cap;
  int gc_busy; /* a thread runs ship_gc; the fields below are its */
  int listed;
  uint64_t cand_keep, cand_begun;
  int cand;
  ship_safe safe[SHIP_SAFE_MAX];
  size_t nsafe;
  int64_t gc_mono_us;
} ship_shard;

struct es_walship {
  es_db *db;
  es_objstore *os;
  es_replicator *repl;
  es_commit_hooks hooks;
  int64_t grace_us;
  unsigned depth;    /* chunks outstanding per shard (s3_puts_inflight) */
  size_t window;     /* bytes of frames a shard keeps in memory (4) */
  uint64_t hold_max; /* s3_backlog_bytes_max (invariant 8) */
  _Atomic uint64_t hold_bytes; /* WAL bytes held, every shard */
  uint32_t nshards;
  ship_shard *sh;
  pthread_mutex_t mu; /* guards stop, st and esdb_done */
  int stop;
  int esdb_done; /* ESDB is in the store (invariant 6) */
  es_walship_stats st;
  char node[ES_LEASE_NODE_MAX + 1]; /* a cluster node's name, or "" */
};

static int ship_key(const es_walship *w, char *out, size_t cap, uint32_t shard,
                    uint64_t first, uint64_t last);
static int ship_stopping(es_walship *w);
static int ship_owns_key(const es_walship *w, const char *key,
                         uint32_t *shard_out, uint64_t *first_out,
                         uint64_t *last_out);

int es__walship_key(char *out, size_t cap, uint32_t shard, uint64_t first,
                    uint64_t last) {
  int n = snprintf(out, cap, "wal/%u/%016llx-%016llx", shard,
                   (unsigned long long)first, (unsigned long long)last);
  if (n < 0 || (size_t)n >= cap)
    return ES_INVAL_BKPT("WAL chunk key too long");
  return ES_OK;
}

/* 16 lower-case hex digits at p, as written by es__walship_key. */
static int ship_hex16(const char *p, uint64_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    char c = p[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                   : -1;
    if (d < 0)
      return -1;
    v = v << 4 | (uint64_t)d;
  }
  *out = v;
  return 0;
}

int es__walship_parse_key(const char *key, uint32_t *shard_out,
                          uint64_t *first_out, uint64_t *last_out) {
  const char *p = key;
  uint64_t shard = 0, first = 0, last = 0;
  int ok = strncmp(p, "wal/", 4) == 0;
  p += ok ? 4 : 0;
  const char *digits = p;
  while (ok && *p >= '0' && *p <= '9' && p - digits < 10)
    shard = shard * 10 + (uint64_t)(*p++ - '0');
  ok = ok && p > digits && (p - digits == 1 || digits[0] != '0') &&
       shard <= UINT32_MAX && *p == '/' && strlen(p + 1) == 33 &&
       ship_hex16(p + 1, &first) == 0 && p[17] == '-' &&
       ship_hex16(p + 18, &last) == 0 && first != 0 && last >= first;
  if (!ok)
    return ES_INVAL_BKPT("not a WAL chunk key: %.100s", key);
  *shard_out = (uint32_t)shard;
  *first_out = first;
  *last_out = last;
  return ES_OK;
}

/* The hook (invariants 1, 4): copy (or spill), signal; no I/O. */
static void ship_synced(void *ud, uint32_t shard, uint64_t lsn,
                        const uint8_t *frame, size_t len) {
  es_walship *w = ud;
  if (shard >= w->nshards)
    return;
  ship_shard *s = &w->sh[shard];
  pthread_mutex_lock(&s->mu);
  if (!s->seen) { /* frames below were local at open (invariant 9) */
    s->seen = 1;
    s->start_lsn = s->cut_lsn = s->shipped_lsn = lsn - 1;
  }
  s->synced_lsn = lsn;
  if (!s->spill && s->held + len <= s->w->window &&
      es__buf_put(&s->pend, frame, len) == ES_OK) {
    if (s->pend_first == 0) {
      s->pend_first = lsn;
      s->pend_since_us = es__clock_mono_us();
    }
    s->pend_last = lsn;
    s->held += len;
  } else if (!s->spill) { /* the window is full: read it back later */
    es__error_clear();
    s->spill = 1;
    s->spill_since_us = es__clock_mono_us();
  }
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* The first LSN of a WAL file name "<016x>.wal"; 0 if it is not one. */
static uint64_t ship_wal_first(const char *name) {
  uint64_t v = 0;
  if (strlen(name) != 20 || strcmp(name + 16, ".wal") != 0 ||
      ship_hex16(name, &v) < 0)
    return 0;
  return v;
}

/* Decides for one WAL file about to be deleted whether the spill needs it
 * (invariant 8); caller holds s->mu.  Returns 1 when it was let go past
 * the bound (the caller logs). */
static int ship_hold_one(ship_shard *s, const char *dir,
                         const es_commit_file *f, uint64_t last) {
  es_walship *w = s->w;
  uint64_t mem = s->pend.len ? s->pend_last : s->cut_lsn;
  if (!s->spill || last <= mem || last <= s->skip_to)
    return 0; /* its frames are in memory, in the store, or a gap's */
  if (atomic_load(&w->hold_bytes) + f->bytes > w->hold_max) {
    s->skip_to = last;
    int first = !s->degraded;
    s->degraded = 1;
    pthread_mutex_lock(&w->mu);
    w->st.gaps += first;
    pthread_mutex_unlock(&w->mu);
    return first;
  }
  if (s->nholds == s->holds_cap &&
      es__grow((void **)&s->holds, &s->holds_cap, s->nholds + 1,
               sizeof(ship_hold)) < 0) {
    es__error_clear(); /* cannot remember it: let it go as past the bound */
    s->skip_to = last;
    s->degraded = 1;
    return 1;
  }
  if (es__commit_hold(w->db, dir, f->name) < 0) {
    es__error_clear(); /* not pending (cannot happen): nothing to hold */
    return 0;
  }
  ship_hold *h = &s->holds[s->nholds++];
  snprintf(h->name, sizeof(h->name), "%s", f->name);
  h->last = last;
  h->bytes = f->bytes;
  atomic_fetch_add(&w->hold_bytes, f->bytes);
  return 0;
}

/* The wal_reclaim hook, on the shard writer's thread (invariant 8). */
static void ship_reclaim(void *ud, const es_commit_info *info) {
  es_walship *w = ud;
  if (info->shard >= w->nshards)
    return;
  ship_shard *s = &w->sh[info->shard];
  const uint64_t *firsts = NULL;
  uint64_t file_bytes = 0;
  size_t n =
      es__wal_files(w->db->shards[info->shard].wal, &firsts, &file_bytes);
  int let_go = 0;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < info->nremoved; i++) {
    uint64_t first = ship_wal_first(info->removed[i].name), next = 0;
    for (size_t k = 0; k < n && !next; k++) /* its successor, still live */
      if (firsts[k] > first)
        next = firsts[k];
    if (first == 0 || next == 0)
      continue; /* not a log file; the newest file is never removed */
    let_go |= ship_hold_one(s, info->dir, &info->removed[i], next - 1);
  }
  uint64_t skip = s->skip_to;
  pthread_mutex_unlock(&s->mu);
  if (let_go)
    es__db_log(w->db, 1,
               "WAL shipping of shard %u: the WAL files kept for the object "
               "store passed s3_backlog_bytes_max (%llu MiB); frames up to "
               "LSN %llu are let go (they are in local segments, which the "
               "uploader copies); the shard is degraded until that is done",
               info->shard, (unsigned long long)(w->hold_max >> 20),
               (unsigned long long)skip);
}

/* Releases the WAL files whose frames are all cut or skipped (invariant
 * 8).  Caller holds s->mu; released across the calls. */
static void ship_release(ship_shard *s) {
  es_walship *w = s->w;
  uint64_t done = s->cut_lsn > s->skip_to ? s->cut_lsn : s->skip_to;
  while (s->nholds > 0 && (s->holds[0].last <= done || ship_stopping(w))) {
    ship_hold h = s->holds[0];
    memmove(&s->holds[0], &s->holds[1], (s->nholds - 1) * sizeof(ship_hold));
    s->nholds--;
    atomic_fetch_sub(&w->hold_bytes, h.bytes);
    pthread_mutex_unlock(&s->mu);
    if (es__commit_release(w->db, w->db->shards[s->id].dir, h.name) < 0)
      es__error_clear(); /* not held: nothing to do */
    pthread_mutex_lock(&s->mu);
  }
}

static int ship_stopping(es_walship *w) {
  pthread_mutex_lock(&w->mu);
  int stop = w->stop;
  pthread_mutex_unlock(&w->mu);
  return stop;
}

/* Remembers a chunk in the store (caller holds s->mu). */
static int ship_chunk_add(ship_shard *s, uint64_t first, uint64_t last) {
  if (s->nchunks == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 64;
    ship_chunk *nc = es__realloc(s->chunks, cap * sizeof(*nc));
    if (!nc)
      return ES_NOMEM_BKPT();
    s->chunks = nc;
    s->cap = cap;
  }
  size_t i = s->nchunks;
  while (i > 0 && s->chunks[i - 1].first > first) {
    s->chunks[i] = s->chunks[i - 1];
    i--;
  }
  s->chunks[i] = (ship_chunk){first, last};
  s->nchunks++;
  return ES_OK;
}

/* Collects the chunks an earlier process left (for deletion, 3). */
static int ship_list_one(void *ud, const char *key, const es_objinfo *info) {
  ship_shard *s = ud;
  (void)info;
  uint32_t shard = 0;
  uint64_t first = 0, last = 0;
  if (ship_owns_key(s->w, key, &shard, &first, &last) < 0) {
    es__error_clear();
    return 0; /* not ours (another node's, invariant 7) */
  }
  if (shard != s->id)
    return 0;
  pthread_mutex_lock(&s->mu);
  int rc = ship_chunk_add(s, first, last);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* Puts ESDB once per process before the first chunk (invariant 6). */
static int ship_esdb(es_walship *w) {
  pthread_mutex_lock(&w->mu);
  int done = w->esdb_done;
  pthread_mutex_unlock(&w->mu);
  if (done)
    return ES_OK;
  char path[ES_PATH_MAX];
  uint8_t *buf = NULL;
  size_t len = 0;
  ES_TRY(es__path_join(path, sizeof(path), w->db->dir, "ESDB"));
  ES_TRY(es__io_read_all(w->db->vfs, path, &buf, &len));
  int rc = w->os->put(w->os, "ESDB", buf, len, ES_OBJ_PUT_ALWAYS, NULL, NULL);
  es__free(buf);
  if (rc == ES_OK) {
    pthread_mutex_lock(&w->mu);
    w->esdb_done = 1;
    pthread_mutex_unlock(&w->mu);
  }
  return rc;
}

/* The queue entry i places after the head (caller holds s->mu). */
static ship_q *ship_at(ship_shard *s, unsigned i) {
  return &s->q[(s->qhead + i) % s->w->depth];
}

/* Cuts everything pending into a new chunk at the queue's tail (caller
 * holds s->mu; pending is not empty and the queue not full). */
static ship_q *ship_cut(ship_shard *s) {
  ship_q *e = ship_at(s, s->qn++);
  *e = (ship_q){.buf = s->pend,
                .first = s->pend_first,
                .last = s->pend_last,
                .since_us = s->pend_since_us};
  memset(&s->pend, 0, sizeof(s->pend));
  s->cut_lsn = s->pend_last;
  s->pend_first = s->pend_last = 0;
  s->pend_since_us = 0;
  return e;
}

/* Moves shipped_lsn over the completed prefix of the queue (invariant 2;
 * caller holds s->mu). */
static void ship_advance(ship_shard *s) {
  while (s->qn > 0 && ship_at(s, 0)->state == SHIP_DONE) {
    if (ship_at(s, 0)->last > s->shipped_lsn)
      s->shipped_lsn = ship_at(s, 0)->last;
    s->qhead = (s->qhead + 1) % s->w->depth;
    s->qn--;
  }
  if (s->degraded && s->shipped_lsn >= s->skip_to)
    s->degraded = 0;
}

/* Marks the gaps whose segments an uploader sweep found in the store as
 * done (invariant 8; caller holds s->mu).  Returns 1 if a gap waits. */
static int ship_gaps(ship_shard *s) {
  int waiting = 0;
  for (unsigned i = 0; i < s->qn; i++) {
    ship_q *e = ship_at(s, i);
    if (e->state != SHIP_GAP)
      continue;
    uint64_t begun = 0, clean = 0;
    es__replicator_sweeps(s->w->repl, &begun, &clean);
    if (clean > e->gap_sweep)
      e->state = SHIP_DONE;
    else
      waiting = 1;
  }
  ship_advance(s);
  if (s->cut_lsn >= s->synced_lsn)
    s->spill = 0;
  return waiting;
}

/* Cuts the next chunk of a spilled shard from its WAL files, or a gap
 * past frames let go (invariants 4, 8).  Caller holds s->mu (released
 * across the reading), the queue has room, pending is empty.  Returns the
 * chunk to put, or NULL. */
static ship_q *ship_read(ship_shard *s) {
  es_walship *w = s->w;
  if (s->skip_to > s->cut_lsn) {
    uint64_t begun = 0, clean = 0;
    es__replicator_sweeps(w->repl, &begun, &clean);
    *ship_at(s, s->qn++) = (ship_q){.first = s->cut_lsn + 1,
                                    .last = s->skip_to,
                                    .since_us = s->spill_since_us,
                                    .state = SHIP_GAP,
                                    .gap_sweep = begun};
    s->cut_lsn = s->skip_to;
    s->cur = (es_wal_cursor){0}; /* its files are gone */
    (void)ship_gaps(s);
    if (!s->spill || s->qn >= w->depth)
      return NULL;
  }
  s->reading = 1;
  uint64_t after = s->cut_lsn, upto = s->synced_lsn;
  size_t room = w->window > s->held ? w->window - s->held : 1;
  es_wal_cursor cur = s->cur;
  pthread_mutex_unlock(&s->mu);
  es_buf buf = {0};
  uint64_t first = 0, last = 0;
  int rc = es__wal_read_frames(
      w->db->vfs, w->db->shards[s->id].dir, after, upto,
      room < SHIP_READ_MAX ? room : SHIP_READ_MAX, &cur, &buf, &first, &last);
  if (rc < 0) {
    es__db_log(w->db, 1, "WAL shipping of shard %u: %s (retried)", s->id,
               es_errdetail());
    es__error_clear();
  }
  pthread_mutex_lock(&w->mu);
  w->st.reread_chunks += rc == ES_OK && first;
  w->st.reread_bytes += rc == ES_OK ? buf.len : 0;
  w->st.read_errors += rc < 0;
  pthread_mutex_unlock(&w->mu);
  pthread_mutex_lock(&s->mu);
  s->reading = 0;
  s->cur = cur;
  if (rc < 0 || first == 0 || first != after + 1 || s->cut_lsn != after) {
    es__buf_free(&buf); /* a hole would break invariant 2: never cut */
    s->read_retry_us = es__clock_mono_us() + SHIP_BACKOFF_MIN_US;
    return NULL;
  }
  ship_q *e = ship_at(s, s->qn++);
  *e = (ship_q){
      .buf = buf, .first = first, .last = last, .since_us = s->spill_since_us};
  s->held += buf.len;
  s->cut_lsn = last;
  if (s->cut_lsn >= s->synced_lsn)
    s->spill = 0; /* caught up with the hook: it copies again */
  return e;
}

/* One PUT of chunk e (caller holds s->mu; released across the request).
 * e stays where it is meanwhile: only a chunk in state SHIP_DONE leaves
 * the queue. */
static void ship_put(ship_shard *s, ship_q *e) {
  es_walship *w = s->w;
  e->state = SHIP_PUT;
  e->start_us = es__clock_mono_us();
  s->nput++;
  es_buf buf = e->buf; /* read only, and not freed, until SHIP_DONE */
  uint64_t first = e->first, last = e->last;
  pthread_mutex_unlock(&s->mu);

  char key[ES_OBJ_KEY_MAX + 1];
  int64_t t0 = es__clock_mono_us();
  int rc = ship_esdb(w);
  if (rc == ES_OK)
    rc = ship_key(w, key, sizeof(key), s->id, first, last);
  if (rc == ES_OK)
    rc = w->os->put(w->os, key, buf.data, buf.len, ES_OBJ_PUT_ALWAYS, NULL,
                    NULL);
  int64_t dt = es__clock_mono_us() - t0;
  char why[sizeof(s->why)];
  if (rc < 0)
    snprintf(why, sizeof(why), "%s", es_errdetail());
  es__error_clear();

  pthread_mutex_lock(&w->mu);
  w->st.put_requests++;
  w->st.put_us += (uint64_t)(dt > 0 ? dt : 0);
  if (rc == ES_OK) {
    w->st.chunks++;
    w->st.bytes += buf.len;
  } else {
    w->st.put_errors++;
  }
  pthread_mutex_unlock(&w->mu);

  pthread_mutex_lock(&s->mu);
  s->nput--;
  if (rc == ES_OK) {
    if (ship_chunk_add(s, first, last) < 0) /* only deletion forgets it: */
      es__error_clear();                    /* a later open lists it */
    e->state = SHIP_DONE;
    s->held -= e->buf.len;
    es__buf_free(&e->buf);
    s->fails = 0;
    s->retry_mono_us = 0;
    if (s->nfailed == 0)
      s->failing = 0;
    ship_advance(s);
  } else {
    e->state = SHIP_FAILED; /* retried whole: same key, same bytes */
    s->nfailed++;
    s->failing = 1;
    snprintf(s->why, sizeof(s->why), "%s", why);
    s->fails++;
    int64_t wait = SHIP_BACKOFF_MIN_US;
    for (unsigned k = 1; k < s->fails && wait < SHIP_BACKOFF_MAX_US; k++)
      wait *= 2;
    s->retry_mono_us =
        es__clock_mono_us() +
        (wait < SHIP_BACKOFF_MAX_US ? wait : SHIP_BACKOFF_MAX_US);
  }
  pthread_cond_broadcast(&s->done_cv);
  pthread_cond_broadcast(&s->cv); /* a queue slot may be free */
}

/* Deletes the chunks whose events are in replicated segments (invariant
 * 3).  Runs on one of the shard's threads at a time (gc_busy), s->mu not
 * held. */
static void ship_gc(ship_shard *s) {
  es_walship *w = s->w;
  int64_t now = es__clock_now_us();
  if (!s->listed) {
    char prefix[ES_OBJ_KEY_MAX + 1];
    if (es__walship_prefix(prefix, sizeof(prefix), w->node, s->id) == ES_OK &&
        w->os->list(w->os, prefix, NULL, ship_list_one, s) == ES_OK)
      s->listed = 1;
    es__error_clear();
  }
  uint64_t begun = 0, clean = 0;
  es__replicator_sweeps(w->repl, &begun, &clean);
  if (s->cand && clean > s->cand_begun) {
    if (s->nsafe == SHIP_SAFE_MAX) { /* drop the oldest: a later one
                                       covers its chunks, later */
      memmove(&s->safe[0], &s->safe[1],
              (SHIP_SAFE_MAX - 1) * sizeof(ship_safe));
      s->nsafe--;
    }
    s->safe[s->nsafe++] = (ship_safe){s->cand_keep, now};
    s->cand = 0;
  }
  if (!s->cand) { /* keep first, then the sweep number (invariant 3) */
    s->cand_keep = atomic_load(&w->db->shards[s->id].keep_lsn);
    es__replicator_sweeps(w->repl, &begun, &clean);
    s->cand_begun = begun;
    s->cand = 1;
  }
  uint64_t keep = 0;
  size_t drop = 0;
  for (size_t i = 0; i < s->nsafe; i++)
    if (now - s->safe[i].since_us >= w->grace_us) {
      if (s->safe[i].keep > keep)
        keep = s->safe[i].keep;
      drop = i; /* older ones are implied by this one */
    }
  if (drop > 0) {
    memmove(&s->safe[0], &s->safe[drop], (s->nsafe - drop) * sizeof(ship_safe));
    s->nsafe -= drop;
  }
  /* s->chunks grows under s->mu while PUTs complete; only this thread
   * removes from it, so a chunk found below keep is still there after the
   * DELETE, maybe at a higher index. */
  size_t i = 0;
  while (!ship_stopping(w)) {
    pthread_mutex_lock(&s->mu);
    while (i < s->nchunks && s->chunks[i].last >= keep)
      i++;
    ship_chunk c = i < s->nchunks ? s->chunks[i] : (ship_chunk){0, 0};
    pthread_mutex_unlock(&s->mu);
    if (c.first == 0)
      break;
    char key[ES_OBJ_KEY_MAX + 1];
    int rc = ship_key(w, key, sizeof(key), s->id, c.first, c.last);
    if (rc == ES_OK)
      rc = w->os->del(w->os, key);
    pthread_mutex_lock(&w->mu);
    if (rc == ES_OK)
      w->st.deleted++;
    else
      w->st.delete_errors++;
    pthread_mutex_unlock(&w->mu);
    if (rc < 0) {
      es__error_clear();
      break; /* next time */
    }
    pthread_mutex_lock(&s->mu);
    while (i < s->nchunks &&
           (s->chunks[i].first != c.first || s->chunks[i].last != c.last))
      i++;
    if (i < s->nchunks) {
      memmove(&s->chunks[i], &s->chunks[i + 1],
              (s->nchunks - i - 1) * sizeof(ship_chunk));
      s->nchunks--;
    }
    pthread_mutex_unlock(&s->mu);
  }
}

/* What one of a shard's threads does next (caller holds s->mu): retry a
 * failed chunk when the backoff is over, else cut and put a new one when
 * the queue has room and nothing is failing (invariant 2): from pending,
 * else read back from the WAL (a spilled shard); NULL and *until_us when
 * to look again (garbage is collected when due). */
static ship_q *ship_next(ship_shard *s, int64_t now, int64_t *until_us) {
  unsigned depth = s->w->depth;
  int64_t until = s->gc_mono_us;
  if (ship_gaps(s) && now + SHIP_GAP_POLL_US < until)
    until = now + SHIP_GAP_POLL_US;
  if (s->nfailed > 0) {
    if (now >= s->retry_mono_us)
      for (unsigned i = 0; i < s->qn; i++)
        if (ship_at(s, i)->state == SHIP_FAILED) {
          s->nfailed--;
          pthread_mutex_lock(&s->w->mu);
          s->w->st.retries++;
          pthread_mutex_unlock(&s->w->mu);
          return ship_at(s, i);
        }
    if (s->retry_mono_us < until)
      until = s->retry_mono_us;
  } else if (!s->failing && s->qn < depth) {
    if (s->pend.len > 0)
      return ship_cut(s);
    if (s->spill && !s->reading && s->cut_lsn < s->synced_lsn &&
        s->held < s->w->window) {
      if (now >= s->read_retry_us) {
        ship_q *e = ship_read(s);
        ship_release(s);
        if (e)
          return e;
      }
      if (s->read_retry_us > now && s->read_retry_us < until)
        until = s->read_retry_us; /* the read failed: again after it */
    }
  }
  *until_us = until;
  return NULL;
}

static void *ship_main(void *arg) {
  ship_shard *s = arg;
  es_walship *w = s->w;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    if (ship_stopping(w))
      break;
    int64_t now = es__clock_mono_us(), until = 0;
    ship_q *e = ship_next(s, now, &until);
    if (e) {
      ship_put(s, e);
      continue;
    }
    if (now >= s->gc_mono_us && !s->gc_busy) {
      s->gc_busy = 1;
      pthread_mutex_unlock(&s->mu);
      ship_gc(s);
      pthread_mutex_lock(&s->mu);
      s->gc_busy = 0;
      s->gc_mono_us = es__clock_mono_us() + SHIP_GC_EVERY_US;
      continue;
    }
    if (until <= now) /* another thread is collecting */
      until = now + SHIP_GC_EVERY_US;
    struct timespec ts;
    es__clock_deadline(&ts, until - now);
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

int es__walship_start(es_db *db, es_replica *replica, es_replicator *repl,
                      es_walship **out) {
  *out = NULL;
  es_walship *w = es__calloc(1, sizeof(*w));
  if (!w)
    return ES_NOMEM_BKPT();
  w->db = db;
  w->os = replica->os;
  w->repl = repl;
  w->grace_us = db->opts.replica_grace_us >= 0 ? db->opts.replica_grace_us : 0;
  int depth = db->opts.s3_puts_inflight;
  w->depth = depth <= 0                        ? ES_S3_PUTS_INFLIGHT_DEFAULT
             : depth > ES_S3_PUTS_INFLIGHT_MAX ? ES_S3_PUTS_INFLIGHT_MAX
                                               : (unsigned)depth;
  w->window = db->opts.s3_window_bytes > 0 ? (size_t)db->opts.s3_window_bytes
                                           : ES_S3_WINDOW_BYTES_DEFAULT;
  w->hold_max = db->opts.s3_backlog_bytes_max > 0
                    ? (uint64_t)db->opts.s3_backlog_bytes_max
                    : ES_S3_BACKLOG_BYTES_DEFAULT;
  w->nshards = db->nshards;
  es_cluster *cl = atomic_load(&replica->cluster);
  if (cl) /* set before es_open (cluster.c): chunks carry the node */
    snprintf(w->node, sizeof(w->node), "%s", es__cluster_node(cl));
  w->hooks.wal_synced = ship_synced;
  w->hooks.wal_reclaim = ship_reclaim;
  pthread_mutex_init(&w->mu, NULL);
  w->sh = es__calloc(w->nshards, sizeof(ship_shard));
  if (!w->sh) {
    pthread_mutex_destroy(&w->mu);
    es__free(w);
    return ES_NOMEM_BKPT();
  }
  int rc = ES_OK;
  for (uint32_t i = 0; i < w->nshards; i++) {
    ship_shard *s = &w->sh[i];
    s->w = w;
    s->id = i;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    s->q = es__calloc(w->depth, sizeof(ship_q));
    s->threads = es__calloc(w->depth, sizeof(pthread_t));
    if (!s->q || !s->threads)
      rc = ES_NOMEM_BKPT();
  }
  if (rc == ES_OK)
    rc = es__commit_subscribe(db, &w->hooks, w);
  if (rc < 0) {
    es__walship_stop(w);
    return rc;
  }
  for (uint32_t i = 0; i < w->nshards; i++)
    for (unsigned k = 0; k < w->depth; k++) {
      ship_shard *s = &w->sh[i];
      if (pthread_create(&s->threads[k], NULL, ship_main, s) != 0) {
        es__walship_stop(w);
        return ES_ERR(ES_ENOMEM, "cannot start a WAL shipping thread");
      }
      s->started++;
    }
  *out = w;
  return ES_OK;
}

void es__walship_stop(es_walship *w) {
  if (!w)
    return;
  es__commit_unsubscribe(w->db, &w->hooks, w);
  pthread_mutex_lock(&w->mu);
  w->stop = 1;
  pthread_mutex_unlock(&w->mu);
  for (uint32_t i = 0; i < w->nshards; i++) {
    ship_shard *s = &w->sh[i];
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
  }
  for (uint32_t i = 0; i < w->nshards; i++) {
    ship_shard *s = &w->sh[i];
    for (unsigned k = 0; k < s->started; k++)
      pthread_join(s->threads[k], NULL);
    pthread_mutex_lock(&s->mu);
    ship_release(s); /* every hold: the next open reclaims the files */
    pthread_mutex_unlock(&s->mu);
    es__free(s->holds);
    es__buf_free(&s->pend);
    for (unsigned k = 0; s->q && k < w->depth; k++)
      es__buf_free(&s->q[k].buf);
    es__free(s->q);
    es__free(s->threads);
    es__free(s->chunks);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->done_cv);
  }
  es__free(w->sh);
  pthread_mutex_destroy(&w->mu);
  es__free(w);
}

/* The oldest PUT of s under way, its start (caller holds s->mu); 0: none. */
static int64_t ship_oldest_put(ship_shard *s) {
  int64_t t = 0;
  for (unsigned i = 0; i < s->qn; i++) {
    ship_q *e = ship_at(s, i);
    if (e->state == SHIP_PUT && (t == 0 || e->start_us < t))
      t = e->start_us;
  }
  return t;
}

int es__walship_admit(es_walship *w, uint32_t shard) {
  if (shard >= w->nshards)
    return ES_INVAL_BKPT("shard %u out of range", shard);
  ship_shard *s = &w->sh[shard];
  int64_t timeout = w->db->opts.s3_ack_timeout_us;
  int rc = ES_OK;
  pthread_mutex_lock(&s->mu);
  if (s->failing)
    rc = ES_ERR(ES_EUNAVAIL,
                "tier s3: the object store is failing, nothing written: %s",
                s->why);
  else {
    int64_t since = ship_oldest_put(s), now = es__clock_mono_us();
    if (since && now - since > timeout)
      rc = ES_ERR(ES_EUNAVAIL,
                  "tier s3: the object store has not answered a "
                  "PUT for %lld ms, nothing written",
                  (long long)((now - since) / 1000));
  }
  pthread_mutex_unlock(&s->mu);
  if (rc < 0) {
    pthread_mutex_lock(&w->mu);
    w->st.refused++;
    pthread_mutex_unlock(&w->mu);
  }
  return rc;
}

uint64_t es__walship_synced(es_walship *w, uint32_t shard) {
  if (shard >= w->nshards)
    return 0;
  ship_shard *s = &w->sh[shard];
  pthread_mutex_lock(&s->mu);
  uint64_t lsn = s->synced_lsn;
  pthread_mutex_unlock(&s->mu);
  return lsn;
}

int es__walship_wait(es_walship *w, uint32_t shard, uint64_t lsn,
                     int64_t timeout_us) {
  if (shard >= w->nshards)
    return ES_INVAL_BKPT("shard %u out of range", shard);
  ship_shard *s = &w->sh[shard];
  int64_t t0 = es__clock_mono_us(), until = t0 + timeout_us;
  int rc = ES_OK;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    if (s->shipped_lsn >= lsn)
      break;
    if (s->failing) {
      rc = ES_ERR(ES_EUNAVAIL,
                  "tier s3: durable here, not in the object store (it will "
                  "follow; retry with the same messageIds): %s",
                  s->why);
      break;
    }
    if (ship_stopping(w)) {
      rc = ES_ERR(ES_ECLOSED, "the database is closing");
      break;
    }
    int64_t left = until - es__clock_mono_us();
    if (left <= 0) {
      rc = ES_ERR(ES_EUNAVAIL,
                  "tier s3: durable here, not confirmed by the object store "
                  "within %lld ms (retry with the same messageIds)",
                  (long long)(timeout_us / 1000));
      break;
    }
    struct timespec ts;
    es__clock_deadline(&ts, left);
    pthread_cond_timedwait(&s->done_cv, &s->mu, &ts);
  }
  pthread_mutex_unlock(&s->mu);
  int64_t dt = es__clock_mono_us() - t0;
  pthread_mutex_lock(&w->mu);
  w->st.waits++;
  w->st.wait_us += (uint64_t)(dt > 0 ? dt : 0);
  if (rc < 0)
    w->st.wait_failures++;
  pthread_mutex_unlock(&w->mu);
  return rc;
}

/* The age of the oldest frame of s not in the store (caller holds s->mu). */
static int64_t ship_oldest_us(ship_shard *s, int64_t now) {
  int64_t since = s->qn > 0     ? ship_at(s, 0)->since_us
                  : s->pend.len ? s->pend_since_us
                  : s->spill    ? s->spill_since_us
                                : 0;
  return since ? now - since : 0;
}

void es__walship_stats(es_walship *w, es_walship_stats *out) {
  pthread_mutex_lock(&w->mu);
  *out = w->st;
  pthread_mutex_unlock(&w->mu);
  out->shards = w->nshards;
  out->depth = w->depth;
  out->window_bytes = w->window;
  out->held_wal_bytes = atomic_load(&w->hold_bytes);
  int64_t now = es__clock_mono_us();
  for (uint32_t i = 0; i < w->nshards; i++) {
    ship_shard *s = &w->sh[i];
    pthread_mutex_lock(&s->mu);
    out->pending_bytes += s->held;
    out->inflight += s->nput;
    if (s->synced_lsn > s->shipped_lsn)
      out->lag_lsn += s->synced_lsn - s->shipped_lsn;
    int64_t age = ship_oldest_us(s, now);
    if (age > out->oldest_age_us)
      out->oldest_age_us = age;
    out->failing_shards += s->failing != 0;
    out->spilled_shards += s->spill != 0;
    out->degraded_shards += s->degraded != 0;
    pthread_mutex_unlock(&s->mu);
  }
}

/* --- Cluster keys ---------------------------------------------------------
 *
 *  7. A cluster node puts, lists and deletes its own chunks only under
 *     its own name, wal/<node>/; invariant 3 holds per node (its keep and
 *     its uploader's sweeps).  Another node's chunks are read by a node
 *     taking one of its tenants over (cluster.c, invariant 5), which is
 *     why a node may delete a chunk only once every tenant on its disk is
 *     uploaded (a tenant it lost stays on its disk, fenced, so its sweeps
 *     are not clean; docs/SCALING.md: a node that lost or handed over a
 *     tenant keeps its chunks until it restarts on an empty directory),
 *     and deleted by that taker once no tenant's newest manifest needs
 *     them (cluster.c, invariant 7).  A node name belongs to one data
 *     directory: a new, empty directory under an old name would restart
 *     its LSNs under keys the old chunks hold (docs/SCALING.md).
 */

int es__walship_node_key(char *out, size_t cap, const char *node,
                         uint32_t shard, uint64_t first, uint64_t last) {
  if (!node || !node[0])
    return es__walship_key(out, cap, shard, first, last);
  int n = snprintf(out, cap, "wal/%s/%u/%016llx-%016llx", node, shard,
                   (unsigned long long)first, (unsigned long long)last);
  if (n < 0 || (size_t)n >= cap)
    return ES_INVAL_BKPT("WAL chunk key too long");
  return ES_OK;
}

int es__walship_prefix(char *out, size_t cap, const char *node,
                       uint32_t shard) {
  int n = node && node[0] ? snprintf(out, cap, "wal/%s/%u/", node, shard)
                          : snprintf(out, cap, "wal/%u/", shard);
  if (n < 0 || (size_t)n >= cap)
    return ES_INVAL_BKPT("WAL chunk prefix too long");
  return ES_OK;
}

int es__walship_parse_node_key(const char *key, char *node_out,
                               uint32_t *shard_out, uint64_t *first_out,
                               uint64_t *last_out) {
  if (es__walship_parse_key(key, shard_out, first_out, last_out) == ES_OK) {
    node_out[0] = '\0';
    return ES_OK;
  }
  es__error_clear();
  const char *node = key + 4,
             *slash = strncmp(key, "wal/", 4) == 0 ? strchr(node, '/') : NULL;
  size_t n = slash ? (size_t)(slash - node) : 0;
  char one[ES_LEASE_NODE_MAX + 1], rest[64];
  if (n == 0 || n > ES_LEASE_NODE_MAX || strlen(slash) + 4 >= sizeof(rest))
    return ES_INVAL_BKPT("not a WAL chunk key: %.100s", key);
  memcpy(one, node, n);
  one[n] = '\0';
  if (es__lease_node_check(one) < 0) {
    es__error_clear();
    return ES_INVAL_BKPT("not a WAL chunk key: %.100s", key);
  }
  snprintf(rest, sizeof(rest), "wal%s", slash);
  ES_TRY(es__walship_parse_key(rest, shard_out, first_out, last_out));
  memcpy(node_out, one, n + 1);
  return ES_OK;
}

/* Formats a chunk key of this shipper's layout. */
static int ship_key(const es_walship *w, char *out, size_t cap, uint32_t shard,
                    uint64_t first, uint64_t last) {
  return es__walship_node_key(out, cap, w->node, shard, first, last);
}

/* Parses key when it is a chunk of this shipper's layout (invariant 7). */
static int ship_owns_key(const es_walship *w, const char *key,
                         uint32_t *shard_out, uint64_t *first_out,
                         uint64_t *last_out) {
  char node[ES_LEASE_NODE_MAX + 1];
  ES_TRY(es__walship_parse_node_key(key, node, shard_out, first_out, last_out));
  if (strcmp(node, w->node) != 0)
    return ES_INVAL_BKPT("another node's WAL chunk");
  return ES_OK;
}

int es__walship_shards(es_walship *w,
                       int (*fn)(void *ud, const es_walship_shard *s),
                       void *ud) {
  int64_t now = es__clock_mono_us();
  for (uint32_t i = 0; i < w->nshards; i++) {
    ship_shard *s = &w->sh[i];
    es_walship_shard o = {.shard = i};
    pthread_mutex_lock(&s->mu);
    o.synced_lsn = s->synced_lsn;
    o.shipped_lsn = s->shipped_lsn;
    o.inflight = s->nput;
    o.queued = s->qn;
    o.pending_bytes = s->held;
    o.oldest_age_us = ship_oldest_us(s, now);
    o.failing = s->failing != 0;
    o.spilled = s->spill != 0;
    o.degraded = s->degraded != 0;
    for (size_t k = 0; k < s->nholds; k++)
      o.held_wal_bytes += s->holds[k].bytes;
    pthread_mutex_unlock(&s->mu);
    int rc = fn(ud, &o);
    if (rc != 0)
      return rc;
  }
  return ES_OK;
}
