/*
 * dedupe.c -- idempotent append: an event whose (tenant, messageId) the
 * store already holds, with an event time within es_options.
 * dedupe_window_us of the new one's, is a duplicate: it is reported in the
 * receipt and not stored again (not in the WAL, the memtable, the rollups
 * or the rule counters).
 *
 * Where the answer comes from.  A stored event is either in a memtable
 * (its WAL record not yet flushed) or in a segment.  The first kind is
 * held in memory per tenant: a chain of "slabs", each an open-addressing
 * table of (hash, event time, id) with its own copies of the id strings,
 * filled by the shard writer as it accepts events (and by WAL replay), and
 * labelled with the highest LSN it holds.  A slab is dropped as a whole
 * once the tenant's flushed_lsn reaches its label: its events are then in
 * segments.  The second kind is checked through the segments whose time
 * range overlaps [ts - window, ts + window]: their footer's Bloom filter
 * (which holds every message_id, with the person ids) first; on a hit,
 * the segment's fingerprint index: per row group, the sorted 32-bit
 * fingerprints (dd_fp, a hash other than the filter's) of its message
 * ids, made from the segment's message_id columns the first time its
 * filter says maybe, and cached database-wide (DD_FP_BYTES_MAX and an
 * eighth of memtable_budget_bytes; least recently used first out).  Only
 * the row groups whose zone map overlaps and whose fingerprints hold the
 * id's are read: their message_id and time columns, decoded into a table
 * cached database-wide too (DD_CACHE_BYTES_MAX, also at most an eighth of
 * the budget, so that a small budget keeps small caches).  Why the index:
 * the expected rows a new id makes the writer decode are the filter's
 * false-positive rate times the rows in its window, whatever the
 * filters' granularity (per segment or per row group), so at 10M rows a
 * new id read about a segment and the string cache could not hold the
 * tenant (the load fell from 86k to under 9k events/s past 1M rows);
 * fingerprints cost 4 bytes a row in memory and nothing on disk, a
 * false positive now costs one binary search per overlapping row group,
 * and a group is decoded only for a fingerprint match: a true duplicate
 * (its cached table then answers the next ones), or one time in 2^32 /
 * 8192 (about 500,000) groups searched.
 * A segment whose index alone would pass the bound is read group by
 * group as before.  So memory is bounded by the memtables (one entry per
 * unflushed event with an id) plus those two caches.  The slabs count
 * in the memtable budget (db->mem_bytes, es__mem_account): appenders wait
 * for memtables and their ids together, and a slab's bytes leave the
 * budget when it is dropped, by the tenant's next request or by the
 * writer's pass over its tenants (es__dedupe_trim, every 100 ms and under
 * memory pressure), whichever comes first.
 *
 * Invariants:
 *  1. The decision is taken on the shard writer thread, for each append
 *     request in queue order, before its group is framed.  A tenant lives
 *     on one shard, so every append of a tenant is decided one after the
 *     other: two concurrent appends of one id store it once, whichever
 *     the writer takes first, and a duplicate inside one batch is stored
 *     at its first occurrence only.
 *  2. Exact: an event is called a duplicate only after its id was compared
 *     byte for byte with a stored one (a slab entry, or a row read from a
 *     segment); hashes, fingerprints and Bloom filters only narrow where
 *     to look.  A fingerprint index holds every non-empty message_id of
 *     its segment (segments are immutable, so it never goes stale), so a
 *     row group it leaves out cannot hold the id.
 *  3. Complete: when a request is decided, every event of the tenant ever
 *     stored (and not since dropped by retention) is in a slab or in the
 *     segment set taken under tenant->mu, and slabs are dropped by that
 *     set's own flushed_lsn (es_segset, dbint.h): flush_one makes the new
 *     set with the LSN its segment covers and swaps it in as one pointer.
 *     Not by tenant->man.flushed_lsn: the manifest is installed before the
 *     set is swapped, and a decision between the two would drop the slab
 *     of the flushed rows while consulting the set without their segment
 *     (so an id was stored twice: sim seed 68, test_idempotent's
 *     flush_window).  Slab entries carry the LSN of the frame that will
 *     hold them, above every flushed_lsn, so a slab is never dropped
 *     before its rows are in a segment of the set consulted.
 *  4. Only stored events reach the WAL: the writer rebuilds the record of
 *     a request that had duplicates.  So replay needs no decision: it
 *     puts every replayed id in the slabs, and the state after a restart
 *     is the state before it.
 *  5. A request whose decision fails (a segment cannot be read, memory)
 *     leaves no trace: its slab entries are removed (in reverse order,
 *     which undoes linear probing exactly), it is not framed, and only its
 *     appender gets the error.  Likewise a group whose frame is not
 *     written (a rollover that could not make a file degrades the store,
 *     db.c): es__dedupe_group_undo removes the entries of all its
 *     requests, last first, so that a retry is stored, not called a
 *     duplicate of events that were never stored.
 *  6. An event without a messageId (NULL or "") is never a duplicate and
 *     is not recorded.  A window of 0 turns all of this off.
 *
 * Compaction merges segments without losing an id (their rows are kept),
 * and a retention drop forgets ids older than the retention, as it
 * forgets their events.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/event.h"
#include "base/hashtab.h"
#include "base/mem.h"
#include "store/dedupe.h"

/* A slab starts small (a tenant with a few events keeps ~2 KB of table
 * and 4 KB of strings, not 96 KB: 500 quiet tenants held 48 MB) and
 * doubles. */
#define DD_TAB_MIN 64
#define DD_SLAB_ENTRIES_MAX (1u << 18)
#define DD_STR_BLOCK_MIN (4u << 10)
#define DD_STR_BLOCK (64u << 10)
#define DD_CACHE_BYTES_MAX ((size_t)32 << 20)
#define DD_FP_BYTES_MAX ((size_t)64 << 20)
#define DD_FP_SEED 0xf1a9e7d5u

/* --- tables ------------------------------------------------------------ */

/* A table of (id, event time) entries: the entries in insertion order,
 * filed in the library's hash table (base/hashtab.h) by the id's hash,
 * several entries per id (one per time it was stored). */
typedef struct dd_ent {
  int64_t ts;
  const char *id;
  uint32_t len;
} dd_ent;

typedef struct dd_tab {
  es_htab index; /* entry index + 1 by es__segment_key_hash(id) */
  dd_ent *e;
  size_t n, cap;
} dd_tab;

/* What a lookup looks for: the id, with a time in [lo, hi]. */
typedef struct dd_key {
  const char *id;
  uint32_t len;
  int64_t lo, hi;
} dd_key;

static int tab_eq(const void *ctx, uint32_t v, const void *key) {
  const dd_ent *e = &((const dd_tab *)ctx)->e[v - 1];
  const dd_key *k = key;
  return e->len == k->len && e->ts >= k->lo && e->ts <= k->hi &&
         memcmp(e->id, k->id, k->len) == 0;
}

static int tab_find(const dd_tab *tb, uint64_t h, const char *id, uint32_t len,
                    int64_t lo, int64_t hi) {
  dd_key k = {id, len, lo, hi};
  return es__htab_find(&tb->index, h, tab_eq, tb, &k) != 0;
}

/* Puts an entry (room was reserved), beside any of the same id; returns
 * its value (entry index + 1). */
static uint32_t tab_put(dd_tab *tb, uint64_t h, int64_t ts, const char *id,
                        uint32_t len) {
  tb->e[tb->n] = (dd_ent){ts, id, len};
  uint32_t v = (uint32_t)++tb->n;
  es__htab_set(&tb->index, es__htab_free_slot(&tb->index, h), h, v);
  return v;
}

static int val_eq(const void *ctx, uint32_t v, const void *key) {
  (void)ctx;
  return v == *(const uint32_t *)key;
}

/* Takes back the newest entry, whose value is v (invariant 5). */
static void tab_pop(dd_tab *tb, uint32_t v) {
  assert(v == tb->n);
  const dd_ent *e = &tb->e[v - 1];
  uint64_t h = es__segment_key_hash(e->id, e->len);
  es__htab_remove(&tb->index, es__htab_probe(&tb->index, h, val_eq, NULL, &v));
  tb->n--;
}

/* Makes room for `more` entries. */
static int tab_reserve(dd_tab *tb, size_t more) {
  if (tb->index.nslots == 0)
    ES_TRY(es__htab_reserve(&tb->index, DD_TAB_MIN / 2));
  ES_TRY(es__htab_reserve(&tb->index, more));
  return es__grow((void **)&tb->e, &tb->cap, tb->n + more, sizeof(dd_ent));
}

/* What the table holds allocated (for the budget). */
static size_t tab_bytes(const dd_tab *tb) {
  return tb->index.nslots * sizeof(es_hslot) + tb->cap * sizeof(dd_ent);
}

static void tab_free(dd_tab *tb) {
  es__htab_free(&tb->index);
  es__free(tb->e);
}

/* --- slabs: a tenant's unflushed ids ----------------------------------- */

typedef struct dd_slab {
  dd_tab tab;
  uint64_t hi_lsn;    /* every entry's LSN is at or below */
  const void *mt_key; /* the active memtable when it was started */
  char **blocks;      /* id strings; only the last one takes more */
  size_t nblocks, blocks_cap, used, block_bytes;
  size_t mem_bytes; /* counted in db->mem_bytes (es__mem_account) */
  struct dd_slab *older;
} dd_slab;

struct es_dedupe {
  dd_slab *cur; /* newest; ->older down to the oldest */
};

/* Counts a slab's new bytes in the budget and as ids (seal pressure
 * leaves them out of the active memtables' share: db.c). */
static void ids_account(es_db *db, size_t add) {
  atomic_fetch_add(&db->ids_bytes, add);
  es__mem_account(db, add, 0);
}

static void slab_free(es_db *db, dd_slab *s) {
  while (s) {
    dd_slab *older = s->older;
    atomic_fetch_sub(&db->ids_bytes, s->mem_bytes);
    es__mem_account(db, 0, s->mem_bytes);
    for (size_t i = 0; i < s->nblocks; i++)
      es__free(s->blocks[i]);
    es__free(s->blocks);
    tab_free(&s->tab);
    es__free(s);
    s = older;
  }
}

void es__dedupe_tenant_free(es_db *db, struct es_dedupe *dd) {
  if (!dd)
    return;
  slab_free(db, dd->cur);
  es__free(dd);
}

/* Makes the tenant's current slab able to take `count` entries and
 * `bytes` of strings without allocating, starting a new slab after a
 * seal (so that slabs follow memtables and go when they are flushed). */
static int slab_reserve(es_db *db, es_tenant *t, size_t count, size_t bytes) {
  if (!t->dd && !(t->dd = es__calloc(1, sizeof(*t->dd))))
    return ES_NOMEM_BKPT();
  dd_slab *s = t->dd->cur;
  if (!s || s->mt_key != (const void *)t->active ||
      s->tab.n + count > DD_SLAB_ENTRIES_MAX) {
    dd_slab *ns = es__calloc(1, sizeof(*ns));
    if (!ns)
      return ES_NOMEM_BKPT();
    ns->mt_key = t->active;
    ns->older = s;
    ns->hi_lsn = s ? s->hi_lsn : 0; /* labels never decrease down the chain */
    ns->mem_bytes = sizeof(*ns);
    ids_account(db, ns->mem_bytes);
    t->dd->cur = s = ns;
  }
  size_t tab_before = tab_bytes(&s->tab);
  ES_TRY(tab_reserve(&s->tab, count));
  size_t tab_after = tab_bytes(&s->tab);
  s->mem_bytes += tab_after - tab_before;
  ids_account(db, tab_after - tab_before);
  if (s->nblocks && s->used + bytes <= s->block_bytes)
    return ES_OK;
  size_t sz = s->nblocks ? s->block_bytes * 2 : DD_STR_BLOCK_MIN;
  if (sz > DD_STR_BLOCK)
    sz = DD_STR_BLOCK;
  if (sz < bytes)
    sz = bytes;
  ES_TRY(es__grow((void **)&s->blocks, &s->blocks_cap, s->nblocks + 1,
                  sizeof(char *)));
  char *b = es__malloc(sz);
  if (!b)
    return ES_NOMEM_BKPT();
  s->blocks[s->nblocks++] = b;
  s->used = 0;
  s->block_bytes = sz;
  s->mem_bytes += sz;
  ids_account(db, sz);
  return ES_OK;
}

/* Records an id (room reserved); returns its value in the current slab. */
static uint32_t slab_put(es_tenant *t, uint64_t h, int64_t ts, const char *id,
                         uint32_t len, uint64_t lsn) {
  dd_slab *s = t->dd->cur;
  char *copy = s->blocks[s->nblocks - 1] + s->used;
  memcpy(copy, id, len);
  copy[len] = '\0';
  s->used += (size_t)len + 1;
  if (lsn > s->hi_lsn)
    s->hi_lsn = lsn;
  return tab_put(&s->tab, h, ts, copy, len);
}

static int slabs_find(const es_tenant *t, uint64_t h, const char *id,
                      uint32_t len, int64_t lo, int64_t hi) {
  for (dd_slab *s = t->dd ? t->dd->cur : NULL; s; s = s->older)
    if (tab_find(&s->tab, h, id, len, lo, hi))
      return 1;
  return 0;
}

/* Drops the slabs whose every id is in a segment (invariant 3). */
static void slabs_trim(es_db *db, es_tenant *t, uint64_t flushed_lsn) {
  if (!t->dd)
    return;
  dd_slab **link = &t->dd->cur;
  while (*link && (*link)->hi_lsn > flushed_lsn)
    link = &(*link)->older;
  slab_free(db, *link);
  *link = NULL;
}

void es__dedupe_trim(es_db *db, es_tenant *t) {
  if (!t->dd || !t->dd->cur)
    return;
  pthread_mutex_lock(&t->mu);
  uint64_t flushed_lsn = t->segs ? t->segs->flushed_lsn : 0;
  pthread_mutex_unlock(&t->mu);
  slabs_trim(db, t, flushed_lsn);
}

/* --- the segment side: a cache of confirmed row groups ----------------- */

typedef struct dd_group {
  const es_tenant *t;
  uint64_t seg_id;
  uint32_t g;
  uint64_t tick; /* last use */
  dd_tab tab;
  char *strs;
  size_t bytes;
} dd_group;

/* A segment's message-id fingerprints: for each row group g, the
 * fingerprints (dd_fp) of its ids, sorted, in fp[start[g] .. start[g+1]). */
typedef struct dd_fpseg {
  const es_tenant *t;
  uint64_t seg_id;
  uint64_t tick; /* last use */
  uint32_t ngroups;
  uint32_t *start;
  uint32_t *fp;
  size_t bytes;
} dd_fpseg;

struct es_ddcache {
  pthread_mutex_t mu;
  dd_group *v;
  size_t n, cap, bytes, bytes_max;
  uint64_t tick;
  /* the fingerprint indexes, filed by fp_key_hash(t, seg_id) */
  dd_fpseg **fv;
  es_htab fidx; /* index into fv + 1 */
  size_t fn, fcap, fbytes, fbytes_max;
  uint32_t fp_mask; /* all ones but in tests (es__dedupe_test_tune) */
};

int es__dedupe_open(es_db *db) {
  if (db->opts.read_only || db->opts.dedupe_window_us <= 0)
    return ES_OK;
  struct es_ddcache *c = es__calloc(1, sizeof(*c));
  if (!c)
    return ES_NOMEM_BKPT();
  pthread_mutex_init(&c->mu, NULL);
  size_t share = db->opts.memtable_budget_bytes / 8;
  c->bytes_max = share < DD_CACHE_BYTES_MAX ? share : DD_CACHE_BYTES_MAX;
  c->fbytes_max = share < DD_FP_BYTES_MAX ? share : DD_FP_BYTES_MAX;
  c->fp_mask = UINT32_MAX;
  db->ddc = c;
  return ES_OK;
}

static void group_free(dd_group *g) {
  tab_free(&g->tab);
  es__free(g->strs);
}

static void fpseg_free(dd_fpseg *f) {
  if (!f)
    return;
  es__free(f->start);
  es__free(f->fp);
  es__free(f);
}

void es__dedupe_close(es_db *db) {
  struct es_ddcache *c = db->ddc;
  if (!c)
    return;
  for (size_t i = 0; i < c->n; i++)
    group_free(&c->v[i]);
  es__free(c->v);
  for (size_t i = 0; i < c->fn; i++)
    fpseg_free(c->fv[i]);
  es__free(c->fv);
  es__htab_free(&c->fidx);
  pthread_mutex_destroy(&c->mu);
  es__free(c);
  db->ddc = NULL;
}

/* Reads row group g of seg and tables its (message_id, time) pairs. */
static int group_load(es_segment *seg, uint32_t g, dd_group *out) {
  es_seg_rows rows = {0};
  int rc = ES_OK;
  ES_CHECK(es__segment_read_group_cols(seg, g, ES_FIELD_MESSAGE_ID, &rows));
  size_t ids = 0, bytes = 0;
  const char **mid = rows.str[ES_STR_message_id];
  for (size_t i = 0; i < rows.n; i++)
    if (mid[i] && mid[i][0]) {
      ids++;
      bytes += strlen(mid[i]);
    }
  out->strs = es__malloc(bytes ? bytes : 1);
  if (!out->strs)
    ES_CHECK(ES_NOMEM_BKPT());
  ES_CHECK(tab_reserve(&out->tab, ids));
  size_t at = 0;
  for (size_t i = 0; i < rows.n; i++) {
    if (!mid[i] || !mid[i][0])
      continue;
    uint32_t len = (uint32_t)strlen(mid[i]);
    memcpy(out->strs + at, mid[i], len);
    tab_put(&out->tab, es__segment_key_hash(mid[i], len), rows.ts[i],
            out->strs + at, len);
    at += len;
  }
  out->bytes = bytes + es__htab_bytes(&out->tab.index) +
               out->tab.cap * sizeof(dd_ent) + sizeof(*out);
err:
  es__segment_rows_free(&rows);
  if (rc < 0) {
    group_free(out);
    memset(out, 0, sizeof(*out));
  }
  return rc;
}

static dd_group *cache_lookup(struct es_ddcache *c, const es_tenant *t,
                              uint64_t seg_id, uint32_t g) {
  for (size_t i = 0; i < c->n; i++)
    if (c->v[i].t == t && c->v[i].seg_id == seg_id && c->v[i].g == g) {
      c->v[i].tick = ++c->tick;
      return &c->v[i];
    }
  return NULL;
}

/* Adds a loaded group (taking its memory), evicting the least recently
 * used ones beyond the bound; returns the cached copy. */
static dd_group *cache_add(struct es_ddcache *c, dd_group *ng) {
  while (c->n > 0 && c->bytes + ng->bytes > c->bytes_max) {
    size_t old = 0;
    for (size_t i = 1; i < c->n; i++)
      if (c->v[i].tick < c->v[old].tick)
        old = i;
    c->bytes -= c->v[old].bytes;
    group_free(&c->v[old]);
    c->v[old] = c->v[--c->n];
  }
  if (es__grow((void **)&c->v, &c->cap, c->n + 1, sizeof(dd_group)) < 0)
    return NULL; /* the caller keeps ng */
  ng->tick = ++c->tick;
  c->v[c->n] = *ng;
  c->bytes += ng->bytes;
  return &c->v[c->n++];
}

/* Whether row group g of seg holds id with a time in [lo, hi]. */
static int group_has(es_db *db, const es_tenant *t, es_segment *seg, uint32_t g,
                     uint64_t h, const char *id, uint32_t len, int64_t lo,
                     int64_t hi, int *found) {
  struct es_ddcache *c = db->ddc;
  pthread_mutex_lock(&c->mu);
  dd_group *cg = cache_lookup(c, t, seg->id, g);
  if (cg)
    *found = tab_find(&cg->tab, h, id, len, lo, hi);
  pthread_mutex_unlock(&c->mu);
  if (cg)
    return ES_OK;
  dd_group ng = {.t = t, .seg_id = seg->id, .g = g};
  ES_TRY(group_load(seg, g, &ng)); /* outside the lock: I/O */
  *found = tab_find(&ng.tab, h, id, len, lo, hi);
  pthread_mutex_lock(&c->mu);
  if (cache_lookup(c, t, seg->id, g) || !cache_add(c, &ng))
    group_free(&ng); /* another writer was first, or no room to list it */
  pthread_mutex_unlock(&c->mu);
  return ES_OK;
}

/* --- the segment side: fingerprint indexes ---------------------------- */

/* A message id's fingerprint: 32 bits of a hash other than the Bloom
 * filter's, so that a Bloom false positive matches a stored id's
 * fingerprint no more often than one time in 2^32 per id. */
static uint32_t dd_fp(const struct es_ddcache *c, const char *id,
                      uint32_t len) {
  return (uint32_t)es__hash64(id, len, DD_FP_SEED) & c->fp_mask;
}

static int u32_cmp(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* What seg's fingerprint index takes in memory. */
static size_t fpseg_bytes(const es_segment *seg) {
  return sizeof(dd_fpseg) + ((size_t)seg->ngroups + 1) * sizeof(uint32_t) +
         (size_t)seg->rows * sizeof(uint32_t);
}

/* Reads seg's message_id columns and makes its fingerprint index. */
static int fpseg_build(const struct es_ddcache *c, es_segment *seg,
                       const es_tenant *t, dd_fpseg **out) {
  *out = NULL;
  es_seg_rows rows = {0};
  int rc = ES_OK;
  dd_fpseg *f = es__calloc(1, sizeof(*f));
  if (!f)
    return ES_NOMEM_BKPT();
  f->t = t;
  f->seg_id = seg->id;
  f->ngroups = seg->ngroups;
  f->start = es__malloc(((size_t)seg->ngroups + 1) * sizeof(uint32_t));
  f->fp = es__malloc((seg->rows ? (size_t)seg->rows : 1) * sizeof(uint32_t));
  if (!f->start || !f->fp)
    ES_CHECK(ES_NOMEM_BKPT());
  size_t n = 0;
  for (uint32_t g = 0; g < seg->ngroups; g++) {
    f->start[g] = (uint32_t)n;
    ES_CHECK(es__segment_read_group_cols(seg, g, ES_FIELD_MESSAGE_ID, &rows));
    const char **mid = rows.str[ES_STR_message_id];
    for (size_t i = 0; i < rows.n; i++) /* rows.n: the footer's, so n fits */
      if (mid[i] && mid[i][0])
        f->fp[n++] = dd_fp(c, mid[i], (uint32_t)strlen(mid[i]));
    qsort(f->fp + f->start[g], n - f->start[g], sizeof(uint32_t), u32_cmp);
  }
  f->start[seg->ngroups] = (uint32_t)n;
  f->bytes = fpseg_bytes(seg);
  *out = f;
  f = NULL;
err:
  es__segment_rows_free(&rows);
  fpseg_free(f);
  return rc;
}

/* Whether fingerprint fp is among those of row group g (binary search). */
static int fpseg_has(const dd_fpseg *f, uint32_t g, uint32_t fp) {
  size_t lo = f->start[g], hi = f->start[g + 1], end = hi;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (f->fp[mid] < fp)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < end && f->fp[lo] == fp;
}

/* The first row group from g on whose zone map overlaps [lo, hi] and
 * whose fingerprints hold fp, or -1. */
static int64_t fpseg_next(const dd_fpseg *f, const es_segment *seg, uint32_t g,
                          uint32_t fp, int64_t lo, int64_t hi) {
  assert(f->ngroups == seg->ngroups);
  for (; g < f->ngroups; g++)
    if (seg->groups[g].max_ts >= lo && seg->groups[g].min_ts <= hi &&
        fpseg_has(f, g, fp))
      return g;
  return -1;
}

typedef struct fp_key {
  const es_tenant *t;
  uint64_t seg_id;
} fp_key;

static uint64_t fp_key_hash(const es_tenant *t, uint64_t seg_id) {
  uint64_t k[2] = {(uint64_t)(uintptr_t)t, seg_id};
  return es__hash64(k, sizeof(k), 0);
}

static int fp_eq(const void *ctx, uint32_t v, const void *key) {
  const dd_fpseg *f = ((const struct es_ddcache *)ctx)->fv[v - 1];
  const fp_key *k = key;
  return f->t == k->t && f->seg_id == k->seg_id;
}

/* The cached index of (t, seg_id), marked as used, or NULL.  Under c->mu. */
static dd_fpseg *fp_lookup(struct es_ddcache *c, const es_tenant *t,
                           uint64_t seg_id) {
  fp_key k = {t, seg_id};
  uint32_t v = es__htab_find(&c->fidx, fp_key_hash(t, seg_id), fp_eq, c, &k);
  if (!v)
    return NULL;
  c->fv[v - 1]->tick = ++c->tick;
  return c->fv[v - 1];
}

/* Drops cached index i; the last one takes its place.  Under c->mu. */
static void fp_evict(struct es_ddcache *c, size_t i) {
  dd_fpseg *f = c->fv[i];
  uint32_t v = (uint32_t)i + 1, lv = (uint32_t)c->fn;
  es__htab_remove(
      &c->fidx,
      es__htab_probe(&c->fidx, fp_key_hash(f->t, f->seg_id), val_eq, NULL, &v));
  c->fbytes -= f->bytes;
  fpseg_free(f);
  c->fn--;
  if (i == c->fn)
    return;
  dd_fpseg *m = c->fv[c->fn];
  uint64_t h = fp_key_hash(m->t, m->seg_id);
  es__htab_remove(&c->fidx, es__htab_probe(&c->fidx, h, val_eq, NULL, &lv));
  c->fv[i] = m;
  es__htab_set(&c->fidx, es__htab_free_slot(&c->fidx, h), h, v);
}

/* Caches f, evicting the least recently used indexes beyond the bound;
 * 1 when the cache took f, 0 when the caller keeps it.  Under c->mu. */
static int fp_add(struct es_ddcache *c, dd_fpseg *f) {
  while (c->fn > 0 && c->fbytes + f->bytes > c->fbytes_max) {
    size_t old = 0;
    for (size_t i = 1; i < c->fn; i++)
      if (c->fv[i]->tick < c->fv[old]->tick)
        old = i;
    fp_evict(c, old);
  }
  if (c->fbytes + f->bytes > c->fbytes_max ||
      es__grow((void **)&c->fv, &c->fcap, c->fn + 1, sizeof(*c->fv)) < 0 ||
      es__htab_reserve(&c->fidx, 1) < 0)
    return 0;
  uint64_t h = fp_key_hash(f->t, f->seg_id);
  f->tick = ++c->tick;
  c->fv[c->fn++] = f;
  es__htab_set(&c->fidx, es__htab_free_slot(&c->fidx, h), h, (uint32_t)c->fn);
  c->fbytes += f->bytes;
  return 1;
}

/* Whether seg holds id with a time in [lo, hi], the row groups it may be
 * in named by seg's fingerprint index (made on first use and cached), and
 * each of them confirmed byte for byte (group_has: invariant 2).  A
 * segment whose index would not fit the cache's bound is read group by
 * group as before the indexes existed. */
static int seg_find(es_db *db, const es_tenant *t, es_segment *seg, uint64_t h,
                    uint32_t fp, const char *id, uint32_t len, int64_t lo,
                    int64_t hi, int *found) {
  struct es_ddcache *c = db->ddc;
  *found = 0;
  if (fpseg_bytes(seg) > c->fbytes_max || seg->rows > UINT32_MAX) {
    for (uint32_t g = 0; g < seg->ngroups && !*found; g++)
      if (seg->groups[g].max_ts >= lo && seg->groups[g].min_ts <= hi)
        ES_TRY(group_has(db, t, seg, g, h, id, len, lo, hi, found));
    return ES_OK;
  }
  dd_fpseg *own = NULL; /* built here, not (yet) cached */
  int rc = ES_OK;
  for (int64_t g = 0; !*found && g >= 0;) {
    pthread_mutex_lock(&c->mu);
    const dd_fpseg *f = own ? own : fp_lookup(c, t, seg->id);
    int64_t next = f ? fpseg_next(f, seg, (uint32_t)g, fp, lo, hi) : -1;
    pthread_mutex_unlock(&c->mu);
    if (!f) { /* not indexed (or evicted since): index it, then go on */
      ES_CHECK(fpseg_build(c, seg, t, &own));
      continue;
    }
    if (next >= 0)
      ES_CHECK(
          group_has(db, t, seg, (uint32_t)next, h, id, len, lo, hi, found));
    g = next < 0 ? -1 : next + 1;
  }
err:
  if (own) {
    pthread_mutex_lock(&c->mu);
    if (!fp_lookup(c, t, seg->id) && fp_add(c, own))
      own = NULL;
    pthread_mutex_unlock(&c->mu);
    fpseg_free(own);
  }
  return rc;
}

/* --- deciding a request ------------------------------------------------ */

/* The message_id of an encoded row (event.h): after ts, recv delta, type
 * and the event name.  *len 0 when absent or "". */
static const char *row_id(const uint8_t *p, size_t n, uint32_t *len) {
  es_rd r = es__rd(p, n);
  (void)es__rd_svarint(&r);
  (void)es__rd_svarint(&r);
  (void)es__rd_u8(&r);
  uint64_t l = es__rd_varint(&r);
  if (l > 0 && !es__rd_bytes(&r, l)) /* the name and its NUL */
    r.bad = 1;
  l = es__rd_varint(&r);
  *len = 0;
  if (r.bad || l < 2 || (uint64_t)(r.end - r.p) < l)
    return NULL;
  *len = (uint32_t)(l - 1);
  return (const char *)r.p;
}

static void window(int64_t ts, int64_t w, int64_t *lo, int64_t *hi) {
  *lo = ts < INT64_MIN + w ? INT64_MIN : ts - w;
  *hi = ts > INT64_MAX - w ? INT64_MAX : ts + w;
}

/* The size of row i of r (hints give where each row starts). */
static size_t row_len(const es_req *r, uint32_t i) {
  return (i + 1 < r->count ? r->hint[i + 1].off : r->rows_len) - r->hint[i].off;
}

/* Replaces r's rows, hints and record by copies without duplicates. */
static int rebuild(es_db *db, es_req *r) {
  uint32_t keep = r->count - r->ndup;
  r->dd_hint = es__malloc(keep * sizeof(es_row_hint));
  if (!r->dd_hint)
    return ES_NOMEM_BKPT();
  uint32_t k = 0;
  for (uint32_t i = 0; i < r->count; i++) {
    if (r->dup[i])
      continue;
    r->dd_hint[k++] = (es_row_hint){(uint32_t)r->dd_rows.len, r->hint[i].ts_us};
    ES_TRY(es__buf_put(&r->dd_rows, r->rows + r->hint[i].off, row_len(r, i)));
  }
  ES_TRY(es__wal_record_build(&r->dd_rec, r->tenant->name, keep,
                              r->dd_rows.data, r->dd_rows.len,
                              db->opts.wal_compress));
  r->rows = r->dd_rows.data;
  r->rows_len = r->dd_rows.len;
  r->rec = r->dd_rec.data;
  r->rec_len = r->dd_rec.len;
  r->hint = r->dd_hint;
  r->count = keep;
  return ES_OK;
}

/* What decide learns about one event of a request. */
typedef struct dd_ev {
  const char *id; /* NULL: no message id (invariant 6) */
  uint32_t len;
  uint8_t found; /* in a slab before the request, or in a segment */
  uint8_t have_fp;
  uint32_t fp;
  int64_t lo, hi; /* its window */
  uint64_t h;     /* es__segment_key_hash */
} dd_ev;

/* Looks the events of ev not found yet up in the segments of set, one
 * segment at a time (its Bloom filter probed for all of them at once:
 * es__segment_may_contain_many), marking those found.  hs, ix and maybe
 * have room for n. */
static int segs_find(es_db *db, const es_tenant *t, const es_segset *set,
                     dd_ev *ev, size_t n, uint64_t *hs, uint32_t *ix,
                     uint8_t *maybe) {
  for (size_t s = 0; s < set->n; s++) {
    es_segment *seg = set->segs[s];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
      if (ev[i].id && !ev[i].found && seg->max_ts >= ev[i].lo &&
          seg->min_ts <= ev[i].hi) {
        hs[m] = ev[i].h;
        ix[m++] = (uint32_t)i;
      }
    if (m == 0)
      continue;
    es__segment_may_contain_many(seg, hs, m, maybe);
    for (size_t j = 0; j < m; j++) {
      dd_ev *e = &ev[ix[j]];
      if (!maybe[j])
        continue;
      if (!e->have_fp) {
        e->fp = dd_fp(db->ddc, e->id, e->len);
        e->have_fp = 1;
      }
      int found = 0;
      ES_TRY(seg_find(db, t, seg, e->h, e->fp, e->id, e->len, e->lo, e->hi,
                      &found));
      e->found = (uint8_t)found;
    }
  }
  return ES_OK;
}

/* Decides every event of r against the slabs and the segment set `set`,
 * recording the stored ones; vals[] gets their slab values (for undo).
 * Three passes: the slabs as they were before r; the segments, for the
 * events not found there (a segment's filter probed for all of them at
 * once); then, in order, an event not found so far is looked up in the
 * slabs again (an earlier copy in r was put there meanwhile) and put. */
static int decide(es_db *db, es_req *r, const es_segset *set, uint64_t lsn,
                  size_t *vals, size_t *nput) {
  es_tenant *t = r->tenant;
  int64_t w = db->opts.dedupe_window_us;
  size_t n = r->count;
  int rc = ES_OK;
  dd_ev *ev = es__malloc((n ? n : 1) * sizeof(dd_ev));
  uint64_t *hs = es__malloc((n ? n : 1) * sizeof(uint64_t));
  uint32_t *ix = es__malloc((n ? n : 1) * sizeof(uint32_t));
  uint8_t *maybe = es__malloc(n ? n : 1);
  if (!ev || !hs || !ix || !maybe)
    ES_CHECK(ES_NOMEM_BKPT());
  for (uint32_t i = 0; i < n; i++) {
    dd_ev *e = &ev[i];
    memset(e, 0, sizeof(*e));
    e->id = row_id(r->rows + r->hint[i].off, row_len(r, i), &e->len);
    r->dup[i] = 0;
    if (!e->id)
      continue; /* invariant 6 */
    window(r->hint[i].ts_us, w, &e->lo, &e->hi);
    e->h = es__segment_key_hash(e->id, e->len);
    e->found = (uint8_t)slabs_find(t, e->h, e->id, e->len, e->lo, e->hi);
  }
  ES_CHECK(segs_find(db, t, set, ev, n, hs, ix, maybe));
  for (uint32_t i = 0; i < n; i++) {
    const dd_ev *e = &ev[i];
    if (!e->id)
      continue;
    if (e->found || slabs_find(t, e->h, e->id, e->len, e->lo, e->hi)) {
      r->dup[i] = 1;
      r->ndup++;
    } else {
      vals[(*nput)++] = slab_put(t, e->h, r->hint[i].ts_us, e->id, e->len, lsn);
    }
  }
err:
  es__free(ev);
  es__free(hs);
  es__free(ix);
  es__free(maybe);
  return rc;
}

/* Undoes a request's puts (invariant 5): removal in reverse order of
 * insertion takes the slab's newest entries back, and restores its table
 * exactly (hashtab.h, 4).  Entries are found by value, not by a slot
 * remembered at the put: a later request of the same group may have
 * grown the table since. */
static void undo(es_req *r) {
  dd_slab *s = r->dd_slab;
  for (size_t i = r->dd_nput; s && i-- > 0;)
    tab_pop(&s->tab, (uint32_t)r->dd_vals[i]);
  if (s)
    s->used = r->dd_used0;
  r->dd_slab = NULL;
  r->dd_nput = 0;
}

/* Decides a request on the writer thread; see dedupe.h. */
void es__dedupe_request(es_db *db, es_req *r, uint64_t lsn) {
  if (db->opts.dedupe_window_us <= 0 || r->kind != ES_REQ_APPEND || !r->dup)
    return;
  es_tenant *t = r->tenant;
  /* invariant 3: the set and the LSN its segments cover, as one value
   * (t->man.flushed_lsn may already count a flush whose segment is not
   * in t->segs yet: trimming by it lost the ids in between) */
  pthread_mutex_lock(&t->mu);
  es_segset *set = t->segs;
  atomic_fetch_add(&set->refs, 1);
  pthread_mutex_unlock(&t->mu);
  slabs_trim(db, t, set->flushed_lsn);
  int rc = ES_OK;
  r->dd_vals = es__malloc(r->count * sizeof(size_t));
  if (!r->dd_vals)
    ES_CHECK(ES_NOMEM_BKPT());
  size_t bytes = 0;
  for (uint32_t i = 0; i < r->count; i++) {
    uint32_t len = 0;
    if (row_id(r->rows + r->hint[i].off, row_len(r, i), &len))
      bytes += (size_t)len + 1;
  }
  ES_CHECK(slab_reserve(db, t, r->count, bytes));
  r->dd_slab = t->dd->cur;
  r->dd_used0 = t->dd->cur->used;
  rc = decide(db, r, set, lsn, r->dd_vals, &r->dd_nput);
  if (rc == ES_OK && r->ndup == r->count)
    r->kind = ES_REQ_DUP;
  else if (rc == ES_OK && r->ndup > 0)
    rc = rebuild(db, r);
  if (rc < 0)
    undo(r);
err:
  if (rc < 0) {
    r->kind = ES_REQ_DUP;
    r->dd_rc = rc;
    snprintf(r->call_detail, sizeof(r->call_detail), "%s", es_errdetail());
  }
  if (r->dd_nput == 0)
    r->dd_slab = NULL; /* nothing to undo: its slab may go (slabs_trim) */
  es__segset_unref(set);
}

/* Takes back what a group's decisions recorded; see dedupe.h. */
void es__dedupe_group_undo(es_db *db, es_req *reqs) {
  if (db->opts.dedupe_window_us <= 0)
    return;
  /* reverse order (invariant 5), also across the requests of a tenant:
   * reverse the list in place, walk it, and restore it */
  es_req *rev = NULL;
  for (es_req *r = reqs, *next; r; r = next) {
    next = r->next;
    r->next = rev;
    rev = r;
  }
  es_req *fwd = NULL;
  for (es_req *r = rev, *next; r; r = next) {
    next = r->next;
    if (r->kind == ES_REQ_APPEND)
      undo(r);
    r->next = fwd;
    fwd = r;
  }
}

/* Records replayed ids; see dedupe.h. */
int es__dedupe_note(es_db *db, es_tenant *t, const uint8_t *rows,
                    size_t rows_len, uint32_t count, uint64_t lsn) {
  if (db->opts.dedupe_window_us <= 0 || db->opts.read_only)
    return ES_OK;
  size_t bytes = 0;
  for (int pass = 0; pass < 2; pass++) {
    size_t off = 0;
    for (uint32_t i = 0; i < count; i++) {
      es_event ev;
      size_t used = 0;
      ES_TRY(es__event_decode(rows + off, rows_len - off, &ev, &used));
      uint32_t len = 0;
      const char *id = row_id(rows + off, used, &len);
      off += used;
      if (!id)
        continue;
      if (pass == 0)
        bytes += (size_t)len + 1;
      else
        (void)slab_put(t, es__segment_key_hash(id, len), ev.ts_us, id, len,
                       lsn);
    }
    if (pass == 0)
      ES_TRY(slab_reserve(db, t, count, bytes));
  }
  return ES_OK;
}

/* Narrows fingerprints and the indexes' bound, for tests; see dedupe.h. */
void es__dedupe_test_tune(es_db *db, uint32_t fp_mask, size_t fp_bytes_max) {
  struct es_ddcache *c = db->ddc;
  if (!c)
    return;
  pthread_mutex_lock(&c->mu);
  while (c->fn > 0)
    fp_evict(c, c->fn - 1);
  c->fp_mask = fp_mask;
  c->fbytes_max = fp_bytes_max;
  pthread_mutex_unlock(&c->mu);
}

/* Releases the writer's copies; see dedupe.h. */
void es__dedupe_req_free(es_req *r) {
  es__free(r->dd_vals);
  r->dd_vals = NULL;
  es__buf_free(&r->dd_rows);
  es__buf_free(&r->dd_rec);
  es__free(r->dd_hint);
  r->dd_hint = NULL;
}
