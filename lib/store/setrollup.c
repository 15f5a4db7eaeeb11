/*
 * setrollup.c -- the tenant's rollup index (rollup.h): built from the
 * segments' rollups, or taken from the tenant's ROLLIDX file, which a
 * writable handle writes once it built the index.
 *
 * ROLLIDX layout (docs/FORMAT.md, "ROLLIDX"), little-endian:
 *   0  "ESRLIDX1"              8 bytes
 *   8  u32 version (1)         u32 segment count N
 *   16 N x (u64 segment id, u64 header checksum of its .rlp file)
 *   .. u64 length of level 0   u64 length of level 1
 *   .. u64 XXH3 of every byte before (seed ES_RIX_SEED)
 *   .. level 0, then level 1: each a complete .rlp image (its own
 *      checksums) of the level's cells, all at minute 0.
 *
 * Why it cannot go stale: the key names every segment of the set in
 * order and the exact .rlp image each segment's rollup comes from; a
 * reader compares it with the set's segment ids and with the headers of
 * the .rlp files on disk (or the file_hash of the rollups already
 * loaded).  A flush, compaction, retention or erase changes the ids; an
 * es_rollup_rebuild that rewrites a .rlp changes its checksum.  Any
 * mismatch, damage or I/O error: the index is built from the .rlp files.
 */
#include <stdlib.h>

#include "base/mem.h"
#include "store/dbint.h"
#include "store/rollup.h"
#include "store/segment.h"

#define ES_RIX_MAGIC "ESRLIDX1"
#define ES_RIX_VERSION 1
#define ES_RIX_SEED UINT64_C(0x726978)
#define ES_RIX_SEGS_MAX (UINT32_C(1) << 24)

static _Atomic uint64_t rix_loaded, rix_built, rix_written;

void es__rollidx_stats(es_rollidx_stats *out) {
  out->loaded = atomic_load(&rix_loaded);
  out->built = atomic_load(&rix_built);
  out->written = atomic_load(&rix_written);
}

/* --- the file ------------------------------------------------------------ */

int es__rollidx_parse(const uint8_t *p, size_t n, const char *path,
                      es_rollidx_head *h) {
  memset(h, 0, sizeof(*h));
  if (n < 16 || memcmp(p, ES_RIX_MAGIC, 8) != 0)
    return ES_CORRUPT_BKPT("%s: offset 0: bad ROLLIDX header", path);
  if (es__get_le32(p + 8) > ES_RIX_VERSION)
    return ES_ERR(ES_EVERSION, "%s: ROLLIDX version %u is newer than %u", path,
                  es__get_le32(p + 8), ES_RIX_VERSION);
  uint32_t nsegs = es__get_le32(p + 12);
  size_t head = 16 + (size_t)nsegs * 16; /* then two lengths, checksum */
  if (nsegs > ES_RIX_SEGS_MAX || n < head + 24 ||
      es__get_le64(p + head + 16) != es__hash64(p, head + 16, ES_RIX_SEED))
    return ES_CORRUPT_BKPT("%s: offset 0: ROLLIDX header checksum mismatch",
                           path);
  uint64_t len0 = es__get_le64(p + head), len1 = es__get_le64(p + head + 8);
  size_t body = head + 24;
  if (len0 > n - body || len1 != n - body - len0)
    return ES_CORRUPT_BKPT("%s: offset %zu: ROLLIDX level lengths do not "
                           "match the file's",
                           path, head);
  h->nsegs = nsegs;
  h->key = p + 16;
  h->lvl_off[0] = body;
  h->lvl_len[0] = (size_t)len0;
  h->lvl_off[1] = body + (size_t)len0;
  h->lvl_len[1] = (size_t)len1;
  return ES_OK;
}

/* Decodes level k of a parsed image; every cell must be at minute 0 and
 * level 1's have no event or path. */
static int rollidx_level(const uint8_t *p, const es_rollidx_head *h, int k,
                         const char *path, es_rollup *r) {
  ES_TRY(es__rollup_decode(p + h->lvl_off[k], h->lvl_len[k], path, r));
  for (size_t i = 0; i < r->n; i++) {
    if (r->cells[i].minute != 0 ||
        (k == 1 && (r->cells[i].event || r->cells[i].path))) {
      es__rollup_free(r);
      return ES_CORRUPT_BKPT("%s: offset %zu: ROLLIDX level %d has a cell "
                             "that is not an all-time one",
                             path, h->lvl_off[k], k);
    }
  }
  r->file_hash = 0; /* a level, not a segment's file */
  return ES_OK;
}

int es__rollidx_check(const uint8_t *p, size_t n, const char *path) {
  es_rollidx_head h;
  ES_TRY(es__rollidx_parse(p, n, path, &h));
  for (int k = 0; k < 2; k++) {
    es_rollup r;
    ES_TRY(rollidx_level(p, &h, k, path, &r));
    es__rollup_free(&r);
  }
  return ES_OK;
}

/* The image of an index whose src rollups all came from files. */
static int rollidx_encode(const es_setrollup *sr, const es_segset *set,
                          es_buf *b) {
  ES_TRY(es__buf_put(b, ES_RIX_MAGIC, 8));
  ES_TRY(es__buf_put_u32(b, ES_RIX_VERSION));
  ES_TRY(es__buf_put_u32(b, (uint32_t)set->n));
  for (size_t i = 0; i < set->n; i++) {
    ES_TRY(es__buf_put_u64(b, set->segs[i]->id));
    ES_TRY(es__buf_put_u64(b, sr->src[i]->file_hash));
  }
  size_t lens = b->len;
  ES_TRY(es__buf_put_u64(b, 0));
  ES_TRY(es__buf_put_u64(b, 0));
  ES_TRY(es__buf_put_u64(b, es__hash64(b->data, b->len, ES_RIX_SEED)));
  size_t at = b->len;
  ES_TRY(es__rollup_encode(atomic_load(&sr->all[0]), b));
  size_t len0 = b->len - at;
  ES_TRY(es__rollup_encode(atomic_load(&sr->all[1]), b));
  es__le64(b->data + lens, len0);
  es__le64(b->data + lens + 8, b->len - at - len0);
  es__le64(b->data + lens + 16, es__hash64(b->data, lens + 16, ES_RIX_SEED));
  return ES_OK;
}

int es__rollidx_remove(es_db *db, es_tenant *t) {
  char path[ES_PATH_MAX];
  ES_TRY(es__path_join(path, sizeof(path), t->dir, ES_ROLLIDX_NAME));
  int rc = db->vfs->unlink(db->vfs, path);
  if (rc == ES_ENOTFOUND) {
    es__error_clear();
    rc = ES_OK;
  }
  return rc;
}

/* Writes t's ROLLIDX for set when set is still t's (under t->man_mu,
 * which a commit dropping segments holds while it removes the file: an
 * index of a replaced set is never written after that removal).  Written
 * as every file of the store is (temp, fdatasync, rename, directory
 * fsync), so a power cut leaves the old file or the new one, never a torn
 * one; a cache, so a failure is logged, never returned. */
static void rollidx_save(es_db *db, es_tenant *t, es_segset *set,
                         const es_setrollup *sr) {
  es_buf b = {0};
  int rc = rollidx_encode(sr, set, &b);
  pthread_mutex_lock(&t->man_mu);
  pthread_mutex_lock(&t->mu);
  int current = t->segs == set;
  pthread_mutex_unlock(&t->mu);
  if (rc == ES_OK && current)
    rc = es__io_write_atomic(db->vfs, t->dir, ES_ROLLIDX_NAME, b.data, b.len);
  if (rc < 0) {
    es__db_log(db, 1,
               "%s/%s: not written (%s); the index is built again "
               "after a reopen",
               t->dir, ES_ROLLIDX_NAME, es_errmsg());
    (void)es__io_failed_committing(); /* a cache: nothing is in doubt */
  } else if (current) {
    atomic_fetch_add(&rix_written, 1);
  }
  pthread_mutex_unlock(&t->man_mu);
  es__error_clear();
  es__buf_free(&b);
}

/* The index from t's ROLLIDX when its key matches set; *out NULL when
 * there is none or it does not match (a damaged one is logged). */
static int rollidx_load(es_db *db, es_tenant *t, es_segset *set,
                        es_setrollup **out) {
  *out = NULL;
  char path[ES_PATH_MAX];
  ES_TRY(es__path_join(path, sizeof(path), t->dir, ES_ROLLIDX_NAME));
  es_setrollup *sr = es__calloc(1, sizeof(*sr));
  if (!sr)
    return ES_NOMEM_BKPT();
  sr->nsrc = set->n;
  sr->src = es__calloc(set->n, sizeof(*sr->src));
  sr->gen = es__calloc(set->n, sizeof(*sr->gen));
  size_t len = 0;
  es_rollidx_head h;
  int rc = sr->src && sr->gen ? ES_OK : ES_NOMEM_BKPT();
  if (rc == ES_OK)
    rc = es__io_read_all(db->vfs, path, &sr->img, &len);
  if (rc == ES_OK)
    rc = es__rollidx_parse(sr->img, len, path, &h);
  int match = rc == ES_OK && h.nsegs == set->n;
  for (size_t i = 0; match && i < set->n; i++) /* the ids: no I/O */
    match = es__get_le64(h.key + i * 16) == set->segs[i]->id;
  for (size_t i = 0; match && i < set->n; i++) {
    es_segment *seg = set->segs[i];
    sr->gen[i] = atomic_load(&seg->rollup_gen); /* before its rollup */
    const es_rollup *ro = atomic_load(&seg->rollup);
    uint64_t want = ro ? ro->file_hash : 0;
    if (!ro) { /* not loaded: its file's header says */
      char rlp[ES_PATH_MAX];
      rc = es__rollup_path(seg->path, rlp, sizeof(rlp));
      if (rc == ES_OK)
        rc = es__rollup_file_hash(seg->vfs, rlp, &want);
      if (rc < 0) /* missing, damaged: building it derives it */
        break;
    }
    match = es__get_le64(h.key + i * 16 + 8) == want && want != 0;
  }
  for (int k = 0; rc == ES_OK && match && k < 2; k++) /* decoded later */
    rc = es__rollup_image_check(sr->img + h.lvl_off[k], h.lvl_len[k], path);
  if (rc == ES_OK && match) {
    memcpy(sr->lvl_off, h.lvl_off, sizeof(h.lvl_off));
    memcpy(sr->lvl_len, h.lvl_len, sizeof(h.lvl_len));
    *out = sr;
    atomic_fetch_add(&rix_loaded, 1);
    return ES_OK;
  }
  if (rc == ES_ECORRUPT || rc == ES_EVERSION)
    es__db_log(db, 1, "%s: %s; the index is built from the rollup files", path,
               es_errmsg());
  es__setrollup_chain_free(sr);
  if (rc == ES_ENOMEM)
    return rc;
  es__error_clear(); /* not usable: built from the segments instead */
  return ES_OK;
}

/* --- the index ----------------------------------------------------------- */

/* Frees a heap rollup (NULL is fine). */
static void rollup_drop(es_rollup *r) {
  if (r) {
    es__rollup_free(r);
    es__free(r);
  }
}

void es__setrollup_chain_free(es_setrollup *sr) {
  while (sr) {
    es_setrollup *next = sr->retired;
    rollup_drop(atomic_load(&sr->all[0]));
    rollup_drop(atomic_load(&sr->all[1]));
    es__free(sr->src);
    es__free(sr->gen);
    es__free(sr->img);
    es__free(sr);
    sr = next;
  }
}

/* Whether sr counts exactly the current rollups of set's segments. */
static int setrollup_fresh(const es_setrollup *sr, const es_segset *set) {
  if (sr->nsrc != set->n)
    return 0;
  for (size_t i = 0; i < set->n; i++)
    if (sr->gen[i] != atomic_load(&set->segs[i]->rollup_gen))
      return 0;
  return 1;
}

/* Loads every segment's rollup into a new index (its levels are summed
 * when first asked for). */
static int setrollup_build(es_db *db, es_segset *set, es_setrollup **out,
                           size_t *derived) {
  *out = NULL;
  es_setrollup *sr = es__calloc(1, sizeof(*sr));
  if (!sr)
    return ES_NOMEM_BKPT();
  sr->src = es__calloc(set->n ? set->n : 1, sizeof(*sr->src));
  sr->gen = es__calloc(set->n ? set->n : 1, sizeof(*sr->gen));
  int rc = sr->src && sr->gen ? ES_OK : ES_NOMEM_BKPT();
  for (size_t i = 0; rc == ES_OK && i < set->n; i++) {
    es_segment *seg = set->segs[i];
    const es_rollup *ro = NULL;
    int d = 0;
    sr->gen[i] = atomic_load(&seg->rollup_gen); /* before its rollup */
    rc = es__segment_rollup(seg, &ro, &d);
    if (rc < 0)
      break;
    if (d) {
      es__db_log(db, 1, "%s: rollup file %s; derived from the rows", seg->path,
                 d == 1 ? "missing" : "damaged");
      if (derived)
        (*derived)++;
    }
    sr->src[sr->nsrc++] = ro;
  }
  if (rc < 0) {
    es__setrollup_chain_free(sr);
    return rc;
  }
  atomic_fetch_add(&rix_built, 1);
  *out = sr;
  return ES_OK;
}

/* Whether every rollup sr summed was decoded from its segment's file (so
 * the key names exactly what the levels count). */
static int setrollup_keyed(const es_setrollup *sr) {
  for (size_t i = 0; i < sr->nsrc; i++)
    if (!sr->src[i] || !sr->src[i]->file_hash)
      return 0;
  return sr->nsrc > 0;
}

/* The set's index, taken from ROLLIDX, built or rebuilt when needed; see
 * rollup.h. */
int es__segset_rollup(es_db *db, es_tenant *t, es_segset *set,
                      const es_setrollup **sr_out, size_t *derived) {
  es_setrollup *cur = atomic_load(&set->rollup);
  *sr_out = NULL;
  if (cur && setrollup_fresh(cur, set)) {
    *sr_out = cur;
    return ES_OK;
  }
  es_setrollup *sr = NULL;
  if (!cur && set->n > 0)
    ES_TRY(rollidx_load(db, t, set, &sr));
  int save = 0;
  if (!sr) {
    ES_TRY(setrollup_build(db, set, &sr, derived));
    save = !db->opts.read_only && setrollup_keyed(sr);
  }
  if (save) { /* both levels now, so the file holds them */
    const es_rollup *lvl = NULL;
    int rc = es__setrollup_level(sr, 1, &lvl);
    if (rc < 0) {
      es__setrollup_chain_free(sr);
      return rc;
    }
  }
  /* install it unless another thread installed a fresh one meanwhile */
  for (;;) {
    sr->retired = cur;
    if (atomic_compare_exchange_weak(&set->rollup, &cur, sr))
      break;
    if (cur && setrollup_fresh(cur, set)) {
      sr->retired = NULL;
      es__setrollup_chain_free(sr);
      *sr_out = cur;
      return ES_OK;
    }
  }
  if (save)
    rollidx_save(db, t, set, sr);
  *sr_out = sr;
  return ES_OK;
}

/* The cells of from[0..nfrom) summed into minute 0, with event and path
 * dropped when bytype, dimension cells left out. */
static int rollup_sum_all(const es_rollup *const *from, size_t nfrom,
                          int bytype, es_rollup **out) {
  *out = NULL;
  es_rollup *h = es__calloc(1, sizeof(*h));
  if (!h)
    return ES_NOMEM_BKPT();
  int rc = ES_OK;
  for (size_t f = 0; f < nfrom; f++) {
    for (size_t i = 0; rc == ES_OK && i < from[f]->n; i++) {
      es_rcell c = from[f]->cells[i]; /* a shallow copy: its keys change */
      if (c.dim)
        continue; /* not indexed: an encoded level would fold their values
                     (rollup.h), so a loaded ROLLIDX would answer otherwise
                     than a built one; query.c reads them per segment */
      if (bytype)
        c.event = c.path = 0;
      rc = es__rollup_add_cell(h, from[f], &c, 0);
    }
  }
  if (rc < 0) {
    rollup_drop(h);
    return rc;
  }
  es__htab_free(&h->index); /* built: the index is not needed any more */
  h->sorted = 1;            /* one minute */
  *out = h;
  return ES_OK;
}

/* One level of the index; see rollup.h. */
int es__setrollup_level(const es_setrollup *sr, int bytype,
                        const es_rollup **out) {
  es_setrollup *m = (es_setrollup *)sr; /* levels are filled in once */
  int k = bytype != 0;
  *out = atomic_load(&m->all[k]);
  if (*out)
    return ES_OK;
  es_rollup *h = NULL;
  if (sr->img) { /* from ROLLIDX: its image of this level */
    es_rollidx_head head = {.lvl_off = {sr->lvl_off[0], sr->lvl_off[1]},
                            .lvl_len = {sr->lvl_len[0], sr->lvl_len[1]}};
    if (!(h = es__calloc(1, sizeof(*h))))
      return ES_NOMEM_BKPT();
    int rc = rollidx_level(sr->img, &head, k, ES_ROLLIDX_NAME, h);
    if (rc < 0) {
      es__free(h);
      return rc;
    }
  } else if (!k) {
    ES_TRY(rollup_sum_all(sr->src, sr->nsrc, 0, &h));
  } else {
    const es_rollup *full = NULL; /* fewer cells to sum than the segments' */
    ES_TRY(es__setrollup_level(sr, 0, &full));
    ES_TRY(rollup_sum_all(&full, 1, 1, &h));
  }
  es_rollup *none = NULL; /* another thread may have built it too */
  if (!atomic_compare_exchange_strong(&m->all[k], &none, h)) {
    rollup_drop(h);
    h = none;
  }
  *out = h;
  return ES_OK;
}
