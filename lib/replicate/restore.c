/*
 * restore.c -- rebuilding a data directory from the object store copy
 * that replicate.c keeps (layout in replicate.c and docs/FORMAT.md).
 *
 * Per tenant: the newest MANIFEST-<gen> object (the highest gen listed),
 * then every segment and rollup it names, then IDENTITY and RULES, each
 * written to the tenant's directory and checked; the MANIFEST is written
 * last, atomically, so a tenant directory without MANIFEST is an
 * unfinished restore (and holds nothing a store would read as data).
 *
 * Invariants:
 *  1. Nothing is accepted unchecked: the manifest's checksum, each
 *     segment's size (the manifest's) and every block, footer and trailer
 *     checksum and its row count, each rollup's checksums; the first
 *     failure stops the restore with an error naming the object's key.
 *  2. A segment the manifest names that the store lacks is an error
 *     naming it, never a gap.  A missing rollup is not: rollups are
 *     derived data (store/rollup.h) and the uploader skips one a crash
 *     left unwritten.
 *  3. The target is locked (DATA/LOCK) for the whole restore and a
 *     tenant directory that already has a MANIFEST is never touched.
 *  4. WAL chunks (walship.c: tier s3) are listed before any manifest is
 *     read, so every chunk deleted before the listing holds only events of
 *     segments that the manifests read later name (walship.c, 3; the
 *     grace keeps a listed chunk there until it is read).  Every frame of
 *     every chunk is checked (checksum, LSN within the key's range, LSNs
 *     increasing); frames are kept once per LSN (chunks may overlap after
 *     a PUT in doubt), in LSN order, only the records of the tenants
 *     restored, and written as one log file per shard, which the next
 *     es_open replays above each tenant's flushed_lsn like any log.  So
 *     every event acknowledged in tier s3 is restored exactly once: in a
 *     segment, or in the log, not both.  Only chunks of a single store
 *     (wal/<shard>/...) are restored so; a cluster node's chunks
 *     (wal/<node>/<shard>/..., each node its own LSN space) are read per
 *     tenant, by a takeover (cluster.c) or as in 7.
 *  5. es__restore_wal_tenant checks every frame as in 4, keeps each LSN
 *     once and hands over, in LSN order, exactly the records of the
 *     tenant above the LSN asked for, from every chunk of one node's
 *     shard listed.  Its caller lists after the lease is held and the
 *     manifest restored: the old holder, fenced, publishes nothing more,
 *     and deletes only chunks whose records that manifest holds
 *     (walship.c, 3 and 7).
 *  6. Reading is fast without changing what is handed over: the shard is
 *     listed once, only chunks whose last LSN is above the LSN asked for
 *     are read, up to ES_REPLAY_GETS_INFLIGHT of them at once and at most
 *     RS_AHEAD ahead of the one being scanned, and they are scanned in LSN
 *     order as in 5 whatever order their reads end in.  Through a shared
 *     es_chunk_cache, concurrent takeovers of tenants of one shard read a
 *     chunk once (a key names one content for ever: walship.c, 2 and 7);
 *     every takeover still lists for itself, after its lease and manifest
 *     (5), so the cache never decides which chunks a takeover sees; and
 *     the cache bounds the GETs under way over all of them (concurrent
 *     takeovers must not starve the lease renewals of the same node).  A
 *     failed read fails the walk with the object's key and the reader's
 *     detail; a cached entry is made only by a read that succeeded.
 *  7. A full restore (es_restore) of a cluster's bucket brings back every
 *     event acknowledged in tier s3 too: a tenant whose newest manifest
 *     names a node (cluster.c, 5) gets that node's records above its
 *     flushed_lsn (read as in 5), each as a frame of the restored shard's
 *     log numbered above every frame there (single-store chunks' LSNs),
 *     and its restored MANIFEST is rewritten to count that log (node "",
 *     flushed_lsn the LSN before its first such frame): the next es_open
 *     replays them like any log, each exactly once.  A live restore
 *     (cluster.c) does not: the takeover replays them itself.
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/event.h"
#include "base/io.h"
#include "base/mem.h"
#include "replicate/lease.h"
#include "replicate/replicate.h"
#include "store/manifest.h"
#include "store/rollup.h"
#include "store/segment.h"
#include "store/wal.h"

typedef struct rs_tenant {
  char name[ES_TENANT_LEN_MAX + 1];
  uint64_t generation; /* newest MANIFEST-<gen> listed; 0: none */
  int identity, rules;
  int wanted;
} rs_tenant;

typedef struct rs_chunk {
  char key[160]; /* wal/<node, 64>/<shard>/<33> fits */
  uint32_t shard;
  uint64_t first, last;
  uint8_t *buf; /* after download: owned, or borrowed from pin */
  size_t len;
  struct rs_cached *pin; /* the shared cache's entry (invariant 6) */
  int fetched, rc;       /* a parallel read's outcome (invariant 6) */
  char why[256];         /* and its detail */
} rs_chunk;

typedef struct rs_ctx {
  es_objstore *os;
  es_vfs *vfs;
  const char *data_dir;
  char tenants_dir[ES_PATH_MAX];
  rs_tenant *ts;
  size_t n, cap;
  rs_chunk *chunks;
  size_t nchunks, chunks_cap;
  es_restore_progress p;
  void (*progress)(void *, const es_restore_progress *);
  void *ud;
  /* a full restore (not live): cluster nodes' records (invariant 7) */
  int full, existed;
  uint32_t shards;
  es_buf *node_frames; /* per shard: frames made of node records */
  uint64_t *node_next; /* per shard: the last LSN given out */
} rs_ctx;

static rs_tenant *rs_find(rs_ctx *c, const char *name) {
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->ts[i].name, name) == 0)
      return &c->ts[i];
  return NULL;
}

/* A new tenant entry (NULL when out of memory). */
static rs_tenant *rs_add(rs_ctx *c, const char *name) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 16;
    rs_tenant *nt = es__realloc(c->ts, cap * sizeof(*nt));
    if (!nt)
      return NULL;
    c->ts = nt;
    c->cap = cap;
  }
  rs_tenant *rt = &c->ts[c->n++];
  memset(rt, 0, sizeof(*rt));
  memcpy(rt->name, name, strlen(name) + 1);
  return rt;
}

/* Collects tenants and their newest manifest from one listed key. */
static int rs_list_one(void *ud, const char *key, const es_objinfo *info) {
  rs_ctx *c = ud;
  (void)info;
  const char *t = key + strlen("tenants/");
  const char *slash = strchr(t, '/');
  if (!slash || (size_t)(slash - t) > ES_TENANT_LEN_MAX)
    return 0; /* not ours */
  char name[ES_TENANT_LEN_MAX + 1];
  memcpy(name, t, (size_t)(slash - t));
  name[slash - t] = '\0';
  if (es__tenant_check(name) < 0) {
    es__error_clear();
    return 0;
  }
  rs_tenant *rt = rs_find(c, name);
  if (!rt && !(rt = rs_add(c, name)))
    return ES_NOMEM_BKPT();
  const char *file = slash + 1;
  unsigned long long gen = 0;
  char tail = 0;
  if (sscanf(file, "MANIFEST-%16llx%c", &gen, &tail) == 1 &&
      strlen(file) == strlen("MANIFEST-") + 16 && gen > rt->generation)
    rt->generation = gen;
  else if (strcmp(file, "IDENTITY") == 0)
    rt->identity = 1;
  else if (strcmp(file, "RULES") == 0)
    rt->rules = 1;
  return 0;
}

/* An error about the object key, keeping the detail of the failure. */
static int rs_err(int rc, const char *key) {
  char why[512];
  snprintf(why, sizeof(why), "%s", es_errdetail());
  return ES_ERR(rc, "object %s: %s", key, why);
}

/* Gets a whole object; a missing one is an error naming it. */
static int rs_get(rs_ctx *c, const char *key, const char *why, uint8_t **buf,
                  size_t *len) {
  int rc = c->os->get(c->os, key, 0, ES_OBJ_TO_END, buf, len, NULL);
  if (rc == ES_ENOTFOUND)
    return ES_ERR(ES_ENOTFOUND, "object %s is missing (%s)", key, why);
  if (rc < 0)
    return rs_err(rc, key);
  return ES_OK;
}

static void rs_step(rs_ctx *c, const char *tenant, const char *key,
                    uint64_t bytes) {
  c->p.tenant = tenant;
  c->p.key = key;
  c->p.objects_done++;
  c->p.bytes_done += bytes;
  if (c->progress)
    c->progress(c->ud, &c->p);
}

/* ---- reading chunks in parallel, through a shared cache (invariant 6) -- */

typedef struct rs_cached {
  char key[160];
  uint8_t *buf; /* owned */
  size_t len;
  int ready; /* 0: a GET is under way */
  int refs;
  int64_t used_mono_us;
  struct rs_cached *next;
} rs_cached;

struct es_chunk_cache {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* a GET under way ended */
  rs_cached *head;
  size_t bytes, bytes_max;
  unsigned inflight, inflight_max; /* GETs under way, of all walks */
  uint64_t gets, hits;
};

#define RS_CACHE_AGE_US INT64_C(60000000)

int es__chunk_cache_new(size_t bytes_max, unsigned gets_inflight_max,
                        es_chunk_cache **out) {
  es_chunk_cache *cc = es__calloc(1, sizeof(*cc));
  if (!cc)
    return ES_NOMEM_BKPT();
  pthread_mutex_init(&cc->mu, NULL);
  pthread_cond_init(&cc->cv, NULL);
  cc->bytes_max = bytes_max;
  cc->inflight_max = gets_inflight_max ? gets_inflight_max : 1;
  *out = cc;
  return ES_OK;
}

void es__chunk_cache_free(es_chunk_cache *cc) {
  if (!cc)
    return;
  while (cc->head) {
    rs_cached *n = cc->head->next;
    assert(cc->head->refs == 0);
    es__free(cc->head->buf);
    es__free(cc->head);
    cc->head = n;
  }
  pthread_mutex_destroy(&cc->mu);
  pthread_cond_destroy(&cc->cv);
  es__free(cc);
}

void es__chunk_cache_counts(es_chunk_cache *cc, uint64_t *gets_out,
                            uint64_t *hits_out) {
  pthread_mutex_lock(&cc->mu);
  *gets_out = cc->gets;
  *hits_out = cc->hits;
  pthread_mutex_unlock(&cc->mu);
}

/* Drops unpinned entries unused for RS_CACHE_AGE_US, then the least
 * recently used ones while over the budget (caller holds mu). */
static void rs_cache_trim(es_chunk_cache *cc) {
  int64_t now = es__clock_mono_us();
  for (;;) {
    rs_cached **victim = NULL;
    for (rs_cached **pp = &cc->head; *pp; pp = &(*pp)->next) {
      rs_cached *e = *pp;
      if (!e->ready || e->refs > 0)
        continue;
      if (now - e->used_mono_us > RS_CACHE_AGE_US) {
        victim = pp;
        break;
      }
      if (cc->bytes > cc->bytes_max &&
          (!victim || e->used_mono_us < (*victim)->used_mono_us))
        victim = pp;
    }
    if (!victim)
      return;
    rs_cached *e = *victim;
    *victim = e->next;
    cc->bytes -= e->len;
    es__free(e->buf);
    es__free(e);
  }
}

/* Reads chunk ch whole into ch->buf: through the cache when there is one
 * (then ch->pin holds the shared entry and ch->buf is borrowed from it),
 * else a GET of its own (ch->buf owned). */
static int rs_chunk_get(es_objstore *os, es_chunk_cache *cc, rs_chunk *ch) {
  if (!cc) {
    int rc = os->get(os, ch->key, 0, ES_OBJ_TO_END, &ch->buf, &ch->len, NULL);
    return rc == ES_ENOTFOUND
               ? ES_ERR(ES_ENOTFOUND, "object %s is missing (listed)", ch->key)
               : rc;
  }
  pthread_mutex_lock(&cc->mu);
  for (;;) {
    rs_cached *e = cc->head;
    while (e && strcmp(e->key, ch->key) != 0)
      e = e->next;
    if (e && !e->ready) { /* another takeover reads it: wait for it */
      pthread_cond_wait(&cc->cv, &cc->mu);
      continue;
    }
    if (e) {
      e->refs++;
      e->used_mono_us = es__clock_mono_us();
      cc->hits++;
      ch->pin = e;
      ch->buf = e->buf;
      ch->len = e->len;
      pthread_mutex_unlock(&cc->mu);
      return ES_OK;
    }
    break;
  }
  rs_cached *e = es__calloc(1, sizeof(*e));
  if (!e) {
    pthread_mutex_unlock(&cc->mu);
    return ES_NOMEM_BKPT();
  }
  snprintf(e->key, sizeof(e->key), "%s", ch->key);
  e->refs = 1;
  e->next = cc->head;
  cc->head = e;
  cc->gets++;
  while (cc->inflight >= cc->inflight_max) /* bounded over all walks */
    pthread_cond_wait(&cc->cv, &cc->mu);
  cc->inflight++;
  pthread_mutex_unlock(&cc->mu);
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = os->get(os, ch->key, 0, ES_OBJ_TO_END, &buf, &len, NULL);
  if (rc == ES_ENOTFOUND)
    rc = ES_ERR(ES_ENOTFOUND, "object %s is missing (listed)", ch->key);
  pthread_mutex_lock(&cc->mu);
  cc->inflight--;
  if (rc == ES_OK) {
    e->buf = buf;
    e->len = len;
    e->ready = 1;
    e->used_mono_us = es__clock_mono_us();
    cc->bytes += len;
    ch->pin = e;
    ch->buf = buf;
    ch->len = len;
  } else { /* a waiter then reads it itself */
    for (rs_cached **pp = &cc->head; *pp; pp = &(*pp)->next)
      if (*pp == e) {
        *pp = e->next;
        break;
      }
    es__free(e);
  }
  pthread_cond_broadcast(&cc->cv);
  pthread_mutex_unlock(&cc->mu);
  return rc;
}

/* Gives back what rs_chunk_get read. */
static void rs_chunk_put(es_chunk_cache *cc, rs_chunk *ch) {
  if (ch->pin) {
    pthread_mutex_lock(&cc->mu);
    ch->pin->refs--;
    rs_cache_trim(cc);
    pthread_mutex_unlock(&cc->mu);
  } else {
    es__free(ch->buf);
  }
  ch->pin = NULL;
  ch->buf = NULL;
  ch->len = 0;
}

/* The chunks of one walk, read by up to ES_REPLAY_GETS_INFLIGHT threads
 * at most RS_AHEAD chunks ahead of the one being scanned (so memory stays
 * bounded), handed over in order. */
#define RS_AHEAD 32

typedef struct rs_fetch {
  es_objstore *os;
  es_chunk_cache *cc;
  rs_chunk *ch;
  size_t n;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t next;  /* the next chunk to read */
  size_t done;  /* chunks [0, done) scanned */
  size_t ahead; /* read at most this far past done */
  int stop;
} rs_fetch;

/* Reads chunk i (any thread), recording the outcome and its detail. */
static void rs_fetch_one(rs_fetch *f, size_t i) {
  rs_chunk *ch = &f->ch[i];
  int rc = rs_chunk_get(f->os, f->cc, ch);
  pthread_mutex_lock(&f->mu);
  ch->rc = rc;
  if (rc < 0)
    snprintf(ch->why, sizeof(ch->why), "%s", es_errdetail());
  ch->fetched = 1;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  es__error_clear();
}

static void *rs_fetch_main(void *arg) {
  rs_fetch *f = arg;
  pthread_mutex_lock(&f->mu);
  while (!f->stop && f->next < f->n) {
    if (f->next >= f->done + f->ahead) {
      pthread_cond_wait(&f->cv, &f->mu);
      continue;
    }
    size_t i = f->next++;
    pthread_mutex_unlock(&f->mu);
    rs_fetch_one(f, i);
    pthread_mutex_lock(&f->mu);
  }
  pthread_mutex_unlock(&f->mu);
  return NULL;
}

/* Waits for chunk i (reading it on this thread when no reader took it
 * yet): its status, with the reader's detail. */
static int rs_fetch_wait(rs_fetch *f, size_t i) {
  pthread_mutex_lock(&f->mu);
  int mine = f->next == i;
  if (mine)
    f->next++;
  while (!mine && !f->ch[i].fetched)
    pthread_cond_wait(&f->cv, &f->mu);
  pthread_mutex_unlock(&f->mu);
  if (mine)
    rs_fetch_one(f, i);
  rs_chunk *ch = &f->ch[i];
  if (ch->rc < 0)
    return ES_ERR(ch->rc, "object %s: %s", ch->key, ch->why);
  return ES_OK;
}

/* Starts up to ES_REPLAY_GETS_INFLIGHT - 1 readers of f (the caller reads
 * too, rs_fetch_wait); returns how many run. */
static size_t rs_fetch_start(rs_fetch *f, pthread_t *th) {
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cv, NULL);
  size_t nth = 0;
  while (nth + 1 < ES_REPLAY_GETS_INFLIGHT && nth + 1 < f->n &&
         pthread_create(&th[nth], NULL, rs_fetch_main, f) == 0)
    nth++;
  return nth;
}

/* Stops f's readers and gives back what they read and nobody scanned. */
static void rs_fetch_stop(rs_fetch *f, pthread_t *th, size_t nth) {
  pthread_mutex_lock(&f->mu);
  f->stop = 1;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  for (size_t i = 0; i < nth; i++)
    pthread_join(th[i], NULL);
  for (size_t i = 0; i < f->n; i++)
    if (f->ch[i].buf)
      rs_chunk_put(f->cc, &f->ch[i]);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cv);
}

/* Chunk i is scanned: its reader may go on. */
static void rs_fetch_done(rs_fetch *f, size_t i) {
  rs_chunk_put(f->cc, &f->ch[i]);
  pthread_mutex_lock(&f->mu);
  f->done = i + 1;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

/* Writes a downloaded segment (key, buf[0..len)) into tdir and checks it
 * against its manifest entry. */
static int rs_segment_put(rs_ctx *c, const rs_tenant *t, const char *tdir,
                          const char *mkey, const es_manifest_entry *e,
                          const char *key, const uint8_t *buf, size_t len) {
  char name[40], path[ES_PATH_MAX];
  es__segment_name(name, sizeof(name), e->id);
  ES_TRY(es__path_join(path, sizeof(path), tdir, name));
  int rc = len == e->bytes
               ? ES_OK
               : ES_CORRUPT_BKPT("object %s: %zu bytes, %s says "
                                 "%llu",
                                 key, len, mkey, (unsigned long long)e->bytes);
  if (rc == ES_OK)
    rc = es__io_write_file(c->vfs, path, buf, len);
  uint64_t rows = 0;
  if (rc == ES_OK) {
    rc = es__segment_verify(c->vfs, path, NULL, NULL, &rows);
    if (rc == ES_ECORRUPT || rc == ES_EVERSION)
      rc = rs_err(rc, key);
  }
  if (rc == ES_OK && rows != e->rows)
    rc = ES_CORRUPT_BKPT("object %s: %llu rows, %s says %llu", key,
                         (unsigned long long)rows, mkey,
                         (unsigned long long)e->rows);
  ES_TRY(rc);
  rs_step(c, t->name, key, len);
  return ES_OK;
}

/* Writes a downloaded rollup into tdir and checks it. */
static int rs_rollup_put(rs_ctx *c, const rs_tenant *t, const char *tdir,
                         const es_manifest_entry *e, const char *key,
                         const uint8_t *buf, size_t len) {
  char name[40], path[ES_PATH_MAX];
  es__segment_name(name, sizeof(name), e->id);
  memcpy(name + strlen(name) - 4, ".rlp", 5);
  ES_TRY(es__path_join(path, sizeof(path), tdir, name));
  int rc = es__io_write_file(c->vfs, path, buf, len);
  if (rc == ES_OK) {
    rc = es__rollup_verify(c->vfs, path);
    if (rc == ES_ECORRUPT || rc == ES_EVERSION)
      rc = rs_err(rc, key);
  }
  if (rc == ES_OK)
    rs_step(c, t->name, key, len);
  return rc;
}

/* Downloads the manifest's segments and their rollups into tdir, up to
 * ES_REPLAY_GETS_INFLIGHT GETs at once and at most RS_SEG_AHEAD objects
 * ahead, and writes and checks them one at a time, in order, on this
 * thread (invariants 1 and 2; the file system sees what it saw before). */
#define RS_SEG_AHEAD 8
static int rs_segments(rs_ctx *c, const rs_tenant *t, const char *tdir,
                       const char *mkey, const es_manifest *m) {
  if (m->count == 0)
    return ES_OK;
  rs_chunk *obj = es__calloc(2 * m->count, sizeof(*obj));
  if (!obj)
    return ES_NOMEM_BKPT();
  int rc = ES_OK;
  for (size_t i = 0; rc == ES_OK && i < m->count; i++) {
    char name[40];
    es__segment_name(name, sizeof(name), m->entries[i].id);
    rc = es__replica_key(obj[2 * i].key, sizeof(obj[0].key), t->name, name);
    memcpy(name + strlen(name) - 4, ".rlp", 5);
    if (rc == ES_OK)
      rc = es__replica_key(obj[2 * i + 1].key, sizeof(obj[0].key), t->name,
                           name);
  }
  rs_fetch f = {.os = c->os,
                .ch = obj,
                .n = rc == ES_OK ? 2 * m->count : 0,
                .ahead = RS_SEG_AHEAD};
  pthread_t th[ES_REPLAY_GETS_INFLIGHT];
  size_t nth = rs_fetch_start(&f, th);
  for (size_t i = 0; rc == ES_OK && i < f.n; i++) {
    const es_manifest_entry *e = &m->entries[i / 2];
    rs_chunk *o = &obj[i];
    int got = rs_fetch_wait(&f, i);
    if (got == ES_ENOTFOUND && i % 2 == 0)
      rc = ES_ERR(ES_ENOTFOUND, "object %s is missing (%s)", o->key, mkey);
    else if (got == ES_ENOTFOUND) /* a rollup: invariant 2 */
      es__error_clear();
    else if (got < 0)
      rc = got;
    else if (i % 2 == 0)
      rc = rs_segment_put(c, t, tdir, mkey, e, o->key, o->buf, o->len);
    else
      rc = rs_rollup_put(c, t, tdir, e, o->key, o->buf, o->len);
    rs_fetch_done(&f, i);
  }
  rs_fetch_stop(&f, th, nth);
  es__free(obj);
  return rc;
}

/* Copies IDENTITY or RULES when the store has one. */
static int rs_side(rs_ctx *c, const rs_tenant *t, const char *tdir,
                   const char *name) {
  char key[ES_OBJ_KEY_MAX + 1], path[ES_PATH_MAX];
  ES_TRY(es__replica_key(key, sizeof(key), t->name, name));
  ES_TRY(es__path_join(path, sizeof(path), tdir, name));
  uint8_t *buf = NULL;
  size_t len = 0;
  ES_TRY(rs_get(c, key, "listed", &buf, &len));
  int rc = es__io_write_file(c->vfs, path, buf, len);
  es__free(buf);
  if (rc == ES_OK)
    rs_step(c, t->name, key, len);
  return rc;
}

static int rs_node_records(rs_ctx *c, const rs_tenant *t, es_manifest *m);

/* Restores one tenant (invariants 1-3, 7). */
static int rs_tenant_restore(rs_ctx *c, const rs_tenant *t) {
  char tdir[ES_PATH_MAX], mkey[ES_OBJ_KEY_MAX + 1], man[40], path[ES_PATH_MAX];
  ES_TRY(es__path_join(tdir, sizeof(tdir), c->tenants_dir, t->name));
  ES_TRY(es__path_join(path, sizeof(path), tdir, "MANIFEST"));
  uint8_t *mbuf = NULL;
  size_t mlen = 0;
  int rc = es__io_read_all(c->vfs, path, &mbuf, &mlen);
  es__free(mbuf);
  mbuf = NULL;
  if (rc == ES_OK)
    return ES_INVAL_BKPT("%s exists already: not restoring tenant %s over it",
                         path, t->name);
  if (rc != ES_ENOTFOUND)
    return rc;
  es__error_clear();
  rc = ES_OK;
  if (!t->generation && !t->identity && !t->rules)
    return ES_OK; /* only files of a manifest not uploaded yet */
  ES_TRY(c->vfs->mkdir(c->vfs, tdir));
  ES_TRY(c->vfs->sync_dir(c->vfs, c->tenants_dir));
  es_manifest m = {0};
  if (t->generation) {
    snprintf(man, sizeof(man), "MANIFEST-%016llx",
             (unsigned long long)t->generation);
    ES_TRY(es__replica_key(mkey, sizeof(mkey), t->name, man));
    ES_TRY(rs_get(c, mkey, "listed", &mbuf, &mlen));
    rc = es__manifest_decode(mkey, mbuf, mlen, &m);
    if (rc == ES_OK && m.generation != t->generation)
      rc = ES_CORRUPT_BKPT("object %s holds generation %llu", mkey,
                           (unsigned long long)m.generation);
    for (size_t i = 0; rc == ES_OK && i < m.count; i++) {
      c->p.objects_total += 2; /* a rollup counts if it is there */
      c->p.bytes_total += m.entries[i].bytes;
    }
  }
  if (rc == ES_OK)
    rc = rs_segments(c, t, tdir, mkey, &m);
  if (rc == ES_OK && t->identity)
    rc = rs_side(c, t, tdir, "IDENTITY");
  if (rc == ES_OK && t->rules)
    rc = rs_side(c, t, tdir, "RULES");
  int renumbered = 0;
  if (rc == ES_OK && t->generation && c->full && m.lsn_node[0]) {
    rc = rs_node_records(c, t, &m); /* invariant 7 */
    renumbered = 1;
  }
  if (rc == ES_OK)
    rc = c->vfs->sync_dir(c->vfs, tdir);
  if (rc == ES_OK && renumbered) /* the commit point, last */
    rc = es__manifest_write(c->vfs, tdir, &m);
  else if (rc == ES_OK && t->generation)
    rc = es__io_write_atomic(c->vfs, tdir, "MANIFEST", mbuf, mlen);
  if (rc == ES_OK && t->generation)
    rs_step(c, t->name, mkey, mlen);
  es__manifest_free(&m);
  es__free(mbuf);
  return rc;
}

/* ---- WAL chunks (invariant 4) ------------------------------------------ */

static int rs_chunk_add(rs_ctx *c, rs_chunk ch, const char *key,
                        const es_objinfo *info);

static int rs_chunk_list_one(void *ud, const char *key,
                             const es_objinfo *info) {
  rs_ctx *c = ud;
  rs_chunk ch = {0};
  if (es__walship_parse_key(key, &ch.shard, &ch.first, &ch.last) < 0 ||
      strlen(key) >= sizeof(ch.key)) {
    es__error_clear();
    return 0; /* not a chunk (a cluster node's: invariant 4) */
  }
  return rs_chunk_add(c, ch, key, info);
}

/* Files a listed chunk. */
static int rs_chunk_add(rs_ctx *c, rs_chunk ch, const char *key,
                        const es_objinfo *info) {
  snprintf(ch.key, sizeof(ch.key), "%s", key);
  if (c->nchunks == c->chunks_cap) {
    size_t cap = c->chunks_cap ? 2 * c->chunks_cap : 32;
    rs_chunk *nc = es__realloc(c->chunks, cap * sizeof(*nc));
    if (!nc)
      return ES_NOMEM_BKPT();
    c->chunks = nc;
    c->chunks_cap = cap;
  }
  c->chunks[c->nchunks++] = ch;
  c->p.objects_total++;
  c->p.bytes_total += info ? info->size : 0;
  return 0;
}

static int rs_chunk_cmp(const void *a, const void *b) {
  const rs_chunk *x = a, *y = b;
  if (x->shard != y->shard)
    return x->shard < y->shard ? -1 : 1;
  if (x->first != y->first)
    return x->first < y->first ? -1 : 1;
  return x->last < y->last ? -1 : x->last > y->last;
}

typedef struct rs_walk {
  rs_ctx *c;
  const rs_chunk *ch;
  uint64_t prev; /* last LSN kept of this shard */
  es_buf *out;   /* frames to write, or NULL (only check) */
  es_buf recs;   /* the current frame's kept records */
  uint64_t cur;  /* its LSN */
  int all;       /* every record is wanted: copy frames whole */
  int found;     /* a wanted tenant's record was seen */
} rs_walk;

static int rs_walk_frame(void *ud, uint64_t lsn, const uint8_t *frame,
                         size_t len) {
  rs_walk *w = ud;
  if (lsn < w->ch->first || lsn > w->ch->last)
    return ES_CORRUPT_BKPT("object %s: frame LSN %llu outside its name's "
                           "range",
                           w->ch->key, (unsigned long long)lsn);
  w->cur = lsn;
  w->recs.len = 0;
  if (w->out && w->all && lsn > w->prev)
    ES_TRY(es__buf_put(w->out, frame, len));
  return ES_OK;
}

/* Per record: the first pass notes the tenants (one may exist only in the
 * log: nothing of it sealed yet); the second keeps the wanted ones. */
static int rs_walk_rec(void *ud, uint64_t lsn, const es_wal_rec *rec,
                       uint64_t off) {
  rs_walk *w = ud;
  (void)off;
  rs_tenant *t = rs_find(w->c, rec->tenant);
  if (!w->out) { /* first pass: learn the tenants */
    if (!t && es__tenant_check(rec->tenant) == ES_OK &&
        !rs_add(w->c, rec->tenant))
      return ES_NOMEM_BKPT();
    es__error_clear();
    return ES_OK;
  }
  if (!t || !t->wanted || lsn <= w->prev)
    return ES_OK;
  w->found = 1;
  if (w->all)
    return ES_OK;
  if (w->recs.len == 0) {
    ES_TRY(es__buf_reserve(&w->recs, ES_WAL_FRAME_HDR));
    w->recs.len = ES_WAL_FRAME_HDR;
  }
  return es__wal_record_build(&w->recs, rec->tenant, rec->events, rec->rows,
                              rec->rows_len, 1);
}

/* Downloads and checks every chunk, learning the tenants they hold. */
static int rs_chunks_fetch(rs_ctx *c) {
  if (c->nchunks > 1)
    qsort(c->chunks, c->nchunks, sizeof(rs_chunk), rs_chunk_cmp);
  for (size_t i = 0; i < c->nchunks; i++) {
    rs_chunk *ch = &c->chunks[i];
    ES_TRY(rs_get(c, ch->key, "listed", &ch->buf, &ch->len));
    rs_walk w = {.c = c, .ch = ch};
    es_wal_scan scan;
    int rc = es__wal_read_buf(ch->key, ch->buf, ch->len, 0, rs_walk_frame,
                              rs_walk_rec, &w, &scan);
    es__buf_free(&w.recs);
    if (rc == ES_ECORRUPT)
      return rc; /* the detail names the object */
    if (rc < 0)
      return rs_err(rc, ch->key);
    if (scan.frames == 0)
      return ES_CORRUPT_BKPT("object %s holds no frame", ch->key);
    rs_step(c, "(WAL)", ch->key, ch->len);
  }
  return ES_OK;
}

/* Writes one shard's log file DATA/wal/<shard>/<first>.wal. */
static int rs_log_write(rs_ctx *c, uint32_t shard, uint64_t first,
                        const es_buf *out) {
  char sdir[ES_PATH_MAX], name[40], wdir[ES_PATH_MAX];
  snprintf(name, sizeof(name), "%016llx.wal", (unsigned long long)first);
  int n = snprintf(sdir, sizeof(sdir), "%s/wal/%u", c->data_dir, shard);
  if (n < 0 || (size_t)n >= sizeof(sdir))
    return ES_INVAL_BKPT("data_dir too long");
  ES_TRY(es__path_join(wdir, sizeof(wdir), c->data_dir, "wal"));
  ES_TRY(c->vfs->mkdir(c->vfs, wdir));
  ES_TRY(c->vfs->mkdir(c->vfs, sdir));
  ES_TRY(c->vfs->sync_dir(c->vfs, wdir));
  return es__io_write_atomic(c->vfs, sdir, name, out->data, out->len);
}

/* Writes each shard's kept frames as one log file (invariant 4), followed
 * by the frames made of cluster nodes' records (invariant 7).  Into an
 * existing store (named tenants) a log cannot be merged: refused when a
 * restored tenant has records in the chunks. */
static int rs_chunks_write(rs_ctx *c, int existed, int all) {
  uint32_t shards = c->shards;
  es_buf out = {0};
  int rc = ES_OK;
  size_t i = 0;
  if (c->nchunks && c->chunks[c->nchunks - 1].shard >= shards)
    rc = ES_CORRUPT_BKPT("WAL chunks of shard %u, but the store has %u "
                         "shards",
                         c->chunks[c->nchunks - 1].shard, shards);
  for (uint32_t shard = 0; rc == ES_OK && shard < shards; shard++) {
    uint64_t prev = 0, first = 0;
    out.len = 0;
    for (; rc == ES_OK && i < c->nchunks && c->chunks[i].shard == shard; i++) {
      rs_chunk *ch = &c->chunks[i];
      rs_walk w = {.c = c, .ch = ch, .prev = prev, .all = all, .out = &out};
      /* frame by frame, so that prev moves within the chunk */
      es_wal_scan scan;
      uint64_t off = 0;
      while (rc == ES_OK && off < ch->len) {
        uint32_t flen = es__get_le32(ch->buf + off);
        size_t whole = ES_WAL_FRAME_HDR + (size_t)flen;
        uint64_t lsn = es__get_le64(ch->buf + off + 8);
        w.prev = prev;
        size_t before = out.len;
        rc = es__wal_read_buf(ch->key, ch->buf + off, whole, 0, rs_walk_frame,
                              rs_walk_rec, &w, &scan);
        if (rc == ES_OK && !all && w.recs.len > ES_WAL_FRAME_HDR) {
          es__wal_frame_finish(w.recs.data, w.recs.len, lsn);
          rc = es__buf_put(&out, w.recs.data, w.recs.len);
        }
        if (rc == ES_OK && out.len > before && first == 0)
          first = lsn;
        if (lsn > prev)
          prev = lsn;
        off += whole;
      }
      es__buf_free(&w.recs);
      if (rc == ES_OK && w.found && existed)
        rc = ES_INVAL_BKPT("object %s holds events of a tenant restored into "
                           "an existing store, whose log cannot take them: "
                           "restore into a new directory",
                           ch->key);
    }
    const es_buf *nf = c->node_frames ? &c->node_frames[shard] : NULL;
    if (rc == ES_OK && nf && nf->len > 0) {
      if (first == 0)
        first = es__get_le64(nf->data + 8);
      rc = es__buf_put(&out, nf->data, nf->len);
    }
    if (rc == ES_OK && out.len > 0)
      rc = rs_log_write(c, shard, first, &out);
  }
  es__buf_free(&out);
  return rc;
}

/* ---- cluster nodes' records in a full restore (invariant 7) ------------- */

typedef struct rs_node_rec {
  rs_ctx *c;
  uint32_t shard;
  es_buf rec;
} rs_node_rec;

/* One record of the tenant from a node's chunks: a frame of its own in the
 * restored shard's log, numbered after everything before it there. */
static int rs_node_rec_one(void *ud, uint64_t lsn, const es_wal_rec *rec) {
  rs_node_rec *r = ud;
  (void)lsn;
  rs_ctx *c = r->c;
  r->rec.len = 0;
  ES_TRY(es__buf_reserve(&r->rec, ES_WAL_FRAME_HDR));
  r->rec.len = ES_WAL_FRAME_HDR;
  ES_TRY(es__wal_record_build(&r->rec, rec->tenant, rec->events, rec->rows,
                              rec->rows_len, 1));
  es__wal_frame_finish(r->rec.data, r->rec.len, ++c->node_next[r->shard]);
  return es__buf_put(&c->node_frames[r->shard], r->rec.data, r->rec.len);
}

static int rs_wal_tenant(es_objstore *os, es_chunk_cache *cache,
                         const char *node, uint32_t shard, const char *tenant,
                         uint64_t above_lsn, es_restore_rec_fn fn, void *ud,
                         uint64_t *chunks_out);

/* A tenant whose manifest counts a cluster node's LSNs (m->lsn_node): its
 * records above m->flushed_lsn come from that node's chunks, renumbered
 * into the restored store's own log, and m is made to count that log. */
static int rs_node_records(rs_ctx *c, const rs_tenant *t, es_manifest *m) {
  uint32_t shard = es__tenant_shard_n(t->name, c->shards);
  uint64_t base = c->node_next[shard];
  rs_node_rec r = {.c = c, .shard = shard};
  uint64_t chunks = 0;
  int rc = rs_wal_tenant(c->os, NULL, m->lsn_node, shard, t->name,
                         m->flushed_lsn, rs_node_rec_one, &r, &chunks);
  es__buf_free(&r.rec);
  if (rc == ES_OK && c->existed && c->node_next[shard] > base)
    rc = ES_INVAL_BKPT("WAL chunks of node %s hold events of tenant %s, "
                       "restored into an existing store whose log cannot "
                       "take them: restore into a new directory",
                       m->lsn_node, t->name);
  m->flushed_lsn = base; /* its records are the frames above */
  m->lsn_node[0] = '\0';
  return rc;
}

/* Where the frames of node records start in each shard's log: above
 * every single store's chunk of the shard (invariant 7). */
static int rs_node_setup(rs_ctx *c) {
  c->node_frames = es__calloc(c->shards, sizeof(*c->node_frames));
  c->node_next = es__calloc(c->shards, sizeof(*c->node_next));
  if (!c->node_frames || !c->node_next)
    return ES_NOMEM_BKPT();
  for (size_t i = 0; i < c->nchunks; i++) {
    const rs_chunk *ch = &c->chunks[i];
    if (ch->shard < c->shards && ch->last > c->node_next[ch->shard])
      c->node_next[ch->shard] = ch->last;
  }
  return ES_OK;
}

/* Makes data_dir a store with the replica's ESDB, or checks that an
 * existing one is there. */
static int rs_esdb(rs_ctx *c, int *existed_out) {
  uint32_t shards = 0;
  int rc = es__esdb_read(c->vfs, c->data_dir, &shards);
  if (rc == ES_OK) {
    *existed_out = 1;
    return ES_OK;
  }
  if (rc != ES_ENOTFOUND)
    return rc;
  es__error_clear();
  *existed_out = 0;
  uint8_t *buf = NULL;
  size_t len = 0;
  ES_TRY(rs_get(c, "ESDB", "not a replica of a store?", &buf, &len));
  rc = c->vfs->mkdir(c->vfs, c->data_dir);
  if (rc == ES_OK)
    rc = es__io_write_atomic(c->vfs, c->data_dir, "ESDB", buf, len);
  es__free(buf);
  ES_TRY(rc);
  rc = es__esdb_read(c->vfs, c->data_dir, &shards);
  if (rc == ES_ECORRUPT || rc == ES_EVERSION)
    return rs_err(rc, "ESDB");
  return rc;
}

static int restore_run(es_replica *replica, es_vfs *vfs, const char *data_dir,
                       const char *const *tenants, size_t ntenants,
                       void (*progress)(void *, const es_restore_progress *),
                       void *ud, int lock_dir);

int es__restore_vfs(es_replica *replica, es_vfs *vfs, const char *data_dir,
                    const char *const *tenants, size_t ntenants,
                    void (*progress)(void *, const es_restore_progress *),
                    void *ud) {
  return restore_run(replica, vfs, data_dir, tenants, ntenants, progress, ud,
                     1);
}

/* Restores one tenant into the data directory of an open store whose
 * handle holds DATA/LOCK (cluster.c): the caller guarantees the store
 * does not use the tenant until this returns (invariant 3 otherwise). */
int es__restore_tenant_live(es_replica *replica, es_vfs *vfs,
                            const char *data_dir, const char *tenant) {
  const char *one[1] = {tenant};
  return restore_run(replica, vfs, data_dir, one, 1, NULL, NULL, 0);
}

static int restore_run(es_replica *replica, es_vfs *vfs, const char *data_dir,
                       const char *const *tenants, size_t ntenants,
                       void (*progress)(void *, const es_restore_progress *),
                       void *ud, int lock_dir) {
  if (!replica || !vfs || !data_dir || (ntenants && !tenants))
    return ES_INVAL_BKPT("es_restore: NULL argument");
  for (size_t i = 0; i < ntenants; i++)
    ES_TRY(es__tenant_check(tenants[i]));
  rs_ctx c = {.os = replica->os,
              .vfs = vfs,
              .data_dir = data_dir,
              .progress = progress,
              .ud = ud};
  ES_TRY(
      es__path_join(c.tenants_dir, sizeof(c.tenants_dir), data_dir, "tenants"));
  ES_TRY(vfs->mkdir(vfs, data_dir));
  char lockp[ES_PATH_MAX];
  ES_TRY(es__path_join(lockp, sizeof(lockp), data_dir, "LOCK"));
  es_file *lock = NULL;
  if (lock_dir)
    ES_TRY(vfs->lock(vfs, lockp, &lock)); /* invariant 3 */
  int existed = 0;
  int rc = rs_esdb(&c, &existed);
  if (rc == ES_OK && existed && ntenants == 0)
    rc = ES_INVAL_BKPT("%s holds a store: name the tenants to restore into "
                       "it",
                       data_dir);
  if (rc == ES_OK)
    rc = vfs->mkdir(vfs, c.tenants_dir);
  if (rc == ES_OK)
    rc = vfs->sync_dir(vfs, data_dir);
  /* A live restore (cluster.c, into an open store) takes no WAL chunks:
   * their log files would land beside the open store's own WAL; the
   * takeover replays the node's records itself (invariants 5 and 7). */
  if (rc == ES_OK && lock_dir) { /* before any manifest (invariant 4) */
    rc = c.os->list(c.os, "wal/", NULL, rs_chunk_list_one, &c);
    if (rc < 0 && rc != ES_ENOMEM)
      rc = rs_err(rc, "wal/ (listing)");
  }
  /* named tenants: only their own keys, not every tenant's */
  for (size_t i = 0; rc == ES_OK && i < (ntenants ? ntenants : 1); i++) {
    char prefix[ES_OBJ_KEY_MAX + 1] = "tenants/";
    if (ntenants)
      rc = es__replica_key(prefix, sizeof(prefix), tenants[i], "");
    if (rc == ES_OK)
      rc = c.os->list(c.os, prefix, NULL, rs_list_one, &c);
    if (rc < 0 && rc != ES_ENOMEM)
      rc = rs_err(rc, "tenants/ (listing)");
  }
  if (rc == ES_OK && lock_dir)
    rc = rs_chunks_fetch(&c);
  c.full = lock_dir;
  c.existed = existed;
  if (rc == ES_OK && lock_dir)
    rc = es__esdb_read(vfs, data_dir, &c.shards);
  if (rc == ES_OK && lock_dir)
    rc = rs_node_setup(&c);
  for (size_t i = 0; rc == ES_OK && i < ntenants; i++) {
    rs_tenant *t = rs_find(&c, tenants[i]);
    if (!t)
      rc = ES_ERR(ES_ENOTFOUND, "tenant %s is not in the replica", tenants[i]);
    else
      t->wanted = 1;
  }
  for (size_t i = 0; rc == ES_OK && i < c.n; i++) { /* totals, for progress */
    rs_tenant *t = &c.ts[i];
    if (ntenants == 0)
      t->wanted = 1;
    if (t->wanted)
      c.p.objects_total +=
          (t->generation ? 1 : 0) + (size_t)t->identity + (size_t)t->rules;
  }
  for (size_t i = 0; rc == ES_OK && i < c.n; i++)
    if (c.ts[i].wanted)
      rc = rs_tenant_restore(&c, &c.ts[i]);
  if (rc == ES_OK && lock_dir)
    rc = rs_chunks_write(&c, existed, ntenants == 0);
  if (rc == ES_OK)
    rc = vfs->sync_dir(vfs, c.tenants_dir);
  for (size_t i = 0; i < c.nchunks; i++)
    es__free(c.chunks[i].buf);
  es__free(c.chunks);
  es__free(c.ts);
  for (uint32_t i = 0; c.node_frames && i < c.shards; i++)
    es__buf_free(&c.node_frames[i]);
  es__free(c.node_frames);
  es__free(c.node_next);
  int crc = lock ? vfs->close(vfs, lock) : ES_OK;
  return rc < 0 ? rc : crc;
}

/* ---- one node's chunks, for a takeover (invariant 5) -------------------- */

typedef struct rs_node_list {
  rs_ctx *c;
  const char *node;
  uint32_t shard;
} rs_node_list;

static int rs_node_list_one(void *ud, const char *key, const es_objinfo *info) {
  rs_node_list *l = ud;
  char node[ES_LEASE_NODE_MAX + 1];
  rs_chunk ch = {0};
  if (es__walship_parse_node_key(key, node, &ch.shard, &ch.first, &ch.last) <
          0 ||
      strcmp(node, l->node) != 0 || ch.shard != l->shard ||
      strlen(key) >= sizeof(ch.key)) {
    es__error_clear();
    return 0; /* another layout's, node's or shard's */
  }
  return rs_chunk_add(l->c, ch, key, info);
}

typedef struct rs_tenant_walk {
  const rs_chunk *ch;
  const char *tenant;
  uint64_t above; /* hand over records above this LSN */
  es_restore_rec_fn fn;
  void *ud;
  uint64_t last; /* the last frame's LSN seen */
} rs_tenant_walk;

static int rs_tw_frame(void *ud, uint64_t lsn, const uint8_t *frame,
                       size_t len) {
  rs_tenant_walk *w = ud;
  (void)frame;
  (void)len;
  if (lsn < w->ch->first || lsn > w->ch->last)
    return ES_CORRUPT_BKPT("object %s: frame LSN %llu outside its name's "
                           "range",
                           w->ch->key, (unsigned long long)lsn);
  w->last = lsn;
  return ES_OK;
}

static int rs_tw_rec(void *ud, uint64_t lsn, const es_wal_rec *rec,
                     uint64_t off) {
  rs_tenant_walk *w = ud;
  (void)off;
  if (lsn <= w->above || strcmp(rec->tenant, w->tenant) != 0)
    return ES_OK;
  return w->fn(w->ud, lsn, rec);
}

int es__restore_wal_tenant(es_replica *replica, es_chunk_cache *cache,
                           const char *node, uint32_t shard, const char *tenant,
                           uint64_t above_lsn, es_restore_rec_fn fn, void *ud,
                           uint64_t *chunks_out) {
  return rs_wal_tenant(replica->os, cache, node, shard, tenant, above_lsn, fn,
                       ud, chunks_out);
}

/* The first LSN of the first chunk key a listing shows (0: none), and
 * stop there. */
static int rs_first_one(void *ud, const char *key, const es_objinfo *info) {
  (void)info;
  char node[ES_LEASE_NODE_MAX + 1];
  uint32_t shard;
  uint64_t first = 0, last;
  if (es__walship_parse_node_key(key, node, &shard, &first, &last) < 0) {
    es__error_clear();
    first = 0; /* not a chunk key: the caller lists from the start */
  }
  *(uint64_t *)ud = first;
  return 1;
}

/*
 * Where a listing of the chunks under prefix may start (start_after_out,
 * "" for the first key) and still show every chunk whose last LSN is
 * above above_lsn, without the chunks far below it that the old holder
 * has not deleted yet (docs/SCALING.md: ~20,000 after a 10M load).  The
 * chunks of a shard tile its LSNs in key order (walship.c, 2), so when
 * the first chunk at or after LSN x starts at or below above_lsn + 1,
 * every chunk before it ends at or below above_lsn and can be skipped.
 * x = above_lsn + 1 - d for d = 0, 1, 4, 16, ...: one LIST request
 * each, stopped at its first key; "" once x would reach the first LSN.
 */
static int rs_chunks_from(es_objstore *os, const char *prefix,
                          uint64_t above_lsn, char *start_after_out,
                          size_t cap) {
  start_after_out[0] = '\0';
  for (uint64_t d = 0; d < above_lsn; d = d ? d * 4 : 1) {
    char after[ES_OBJ_KEY_MAX + 1];
    int n = snprintf(after, sizeof(after), "%s%016llx", prefix,
                     (unsigned long long)(above_lsn + 1 - d));
    if (n < 0 || (size_t)n >= sizeof(after) || (size_t)n >= cap)
      return ES_OK; /* no room: list from the start */
    uint64_t first = 0;
    int rc = os->list(os, prefix, after, rs_first_one, &first);
    if (rc < 0)
      return rs_err(rc, prefix);
    if (first == 0 && rc == 1)
      return ES_OK; /* something else under the prefix */
    if (first != 0 && first <= above_lsn + 1) {
      memcpy(start_after_out, after, (size_t)n + 1);
      return ES_OK;
    }
    if (d > UINT64_MAX / 4)
      break;
  }
  return ES_OK;
}

static int rs_wal_tenant(es_objstore *os, es_chunk_cache *cache,
                         const char *node, uint32_t shard, const char *tenant,
                         uint64_t above_lsn, es_restore_rec_fn fn, void *ud,
                         uint64_t *chunks_out) {
  rs_ctx c = {.os = os};
  rs_node_list l = {&c, node ? node : "", shard};
  char prefix[ES_OBJ_KEY_MAX + 1];
  *chunks_out = 0;
  char from[ES_OBJ_KEY_MAX + 1];
  ES_TRY(es__walship_prefix(prefix, sizeof(prefix), l.node, shard));
  ES_TRY(rs_chunks_from(c.os, prefix, above_lsn, from, sizeof(from)));
  int rc = c.os->list(c.os, prefix, from, rs_node_list_one, &l);
  if (rc < 0 && rc != ES_ENOMEM)
    rc = rs_err(rc, prefix);
  if (rc == ES_OK && c.nchunks > 1)
    qsort(c.chunks, c.nchunks, sizeof(rs_chunk), rs_chunk_cmp);
  /* only the chunks that reach above above_lsn: the others hold nothing
   * wanted and are not even read */
  size_t keep = 0;
  for (size_t i = 0; i < c.nchunks; i++)
    if (c.chunks[i].last > above_lsn)
      c.chunks[keep++] = c.chunks[i];
  c.nchunks = keep;
  rs_fetch f = {.os = c.os,
                .cc = cache,
                .ch = c.chunks,
                .n = rc == ES_OK ? c.nchunks : 0,
                .ahead = RS_AHEAD};
  pthread_t th[ES_REPLAY_GETS_INFLIGHT];
  size_t nth = rs_fetch_start(&f, th);
  uint64_t prev = above_lsn; /* every LSN at or below: handed over, or not
                                wanted */
  for (size_t i = 0; rc == ES_OK && i < c.nchunks; i++) {
    rs_chunk *ch = &c.chunks[i];
    rc = rs_fetch_wait(&f, i);
    rs_tenant_walk w = {ch, tenant, prev, fn, ud, 0};
    es_wal_scan scan;
    if (rc == ES_OK && ch->last > prev)
      rc = es__wal_read_buf(ch->key, ch->buf, ch->len, 0, rs_tw_frame,
                            rs_tw_rec, &w, &scan);
    else if (rc == ES_OK)
      scan.frames = 1; /* overlapped by the chunks before it */
    if (rc < 0 && rc != ES_ECORRUPT && rc != ES_ENOMEM)
      rc = rs_err(rc, ch->key);
    if (rc == ES_OK && scan.frames == 0)
      rc = ES_CORRUPT_BKPT("object %s holds no frame", ch->key);
    if (rc == ES_OK && w.last > prev)
      prev = w.last;
    rs_fetch_done(&f, i);
    if (rc == ES_OK)
      (*chunks_out)++;
  }
  rs_fetch_stop(&f, th, nth);
  es__free(c.chunks);
  return rc;
}
