/*
 * rewrite.c -- es__rewrite(): some segments of a tenant rewritten into
 * new ones holding only the rows a predicate keeps, committed as one
 * manifest generation through the commit path (commit.c).  Compaction
 * merges with a predicate that keeps every row (or every row after the
 * retention cut-off); an erasure keeps the rows that carry none of a
 * person's ids.
 *
 * The inputs are cut into parts, in order, each part's inputs together
 * under spec->memory_bytes of es__compact_merge_bytes (a part holds at
 * least one input), and each part makes one output:
 *   1. read  every row group of the part's inputs (checksums checked;
 *            groups spec->drop_all refuses whole are skipped unread), keep
 *            the rows spec->keep accepts, re-encode them, sort them by
 *            (event time, input order), count them into their rollup
 *            (an input spec->keep_all keeps whole adds its rollup's
 *            cells instead, when they are exactly its rows': 5);
 *   2. write the new segment and its rollup file (temp, fdatasync,
 *            rename, directory fsync) under a fresh segment id; the
 *            part's rows are freed before the next part is read;
 *   3. commit: once every part is written, under tenant->man_mu, one
 *            es__commit_manifest names all outputs in place of all
 *            inputs; the reader-visible set is swapped under tenant->mu;
 *            es__commit_publish announces the generation and removes the
 *            inputs' files (unless a subscriber holds them).
 *
 * Invariants:
 *  1. The manifest write is the only commit point: before it the inputs
 *     are the store's, after it the outputs are; a crash or failure
 *     before it leaves the outputs as orphans (removed here on a failure,
 *     else at the next open: tenant.c, 3).  So a reader or a reopen sees
 *     all the old rows or exactly the kept rows, never a mix.
 *  2. A rewrite never changes flushed_lsn and never touches memtables, so
 *     WAL recovery is unaffected.
 *  3. The caller holds tenant->compact_mu: one rewrite per tenant at a
 *     time, so the inputs are still in the manifest at the commit (the
 *     flusher only appends); the commit path refuses one that is not.
 *  4. Memory: one part's kept rows, keys and image at a time (about
 *     spec->memory_bytes), plus an open handle per output.
 *  5. An output's rollup is the one exactly the rows it holds give
 *     (counted, or added as input_rollup says), so es_rollup_rebuild
 *     finds nothing to correct after a rewrite.
 *  6. When rows were dropped, tenant->id_gen grows (identity links may
 *     have gone with them; the cached identity map is stale).
 */
#include <stdlib.h>

#include "base/event.h"
#include "base/mem.h"
#include "store/commit.h"
#include "store/rewrite.h"
#include "store/rollup.h"

/* One part: the kept rows of some inputs, before they are written. */
typedef struct rpart {
  es_buf rows;       /* the kept rows, encoded */
  es_time_key *keys; /* (time, offset in rows) of each */
  size_t nkeys, keys_cap;
  es_rollup rollup;
} rpart;

static void rpart_free(rpart *p) {
  es__buf_free(&p->rows);
  es__free(p->keys);
  es__rollup_free(&p->rollup);
  memset(p, 0, sizeof(*p));
}

/* Keeps one row if the predicate says so, and counts it in the part's
 * rollup unless `counted` (its input's cells are added whole). */
static int rpart_add(rpart *p, const es_rewrite_spec *spec,
                     const es_seg_rows *rows, size_t i, int counted) {
  es_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.ts_us = rows->ts[i];
  ev.recv_us = rows->recv[i];
  ev.type = rows->type[i];
  for (int f = 0; f < ES_NSTR; f++)
    *es__ev_str(&ev, f) = rows->str[f][i];
  if (!spec->keep(spec->ud, &ev))
    return ES_OK;
  ES_TRY(es__grow((void **)&p->keys, &p->keys_cap, p->nkeys + 1,
                  sizeof(es_time_key)));
  p->keys[p->nkeys++] = (es_time_key){ev.ts_us, p->rows.len};
  /* stored rows were checked when appended: keep them as they are (full
   * ip: it was truncated, or not, then) */
  ES_TRY(es__event_encode(&p->rows, &ev, ev.recv_us, 1));
  return counted ? ES_OK : es__rollup_add(&p->rollup, &ev);
}

/*
 * The rollup of an input all of whose rows stay, when adding its cells
 * to the part's gives exactly what counting its rows would (invariant
 * 5), else NULL (count the rows): the one attached to the segment, or its
 * file's decoded into *own (never derived: that reads every row, as
 * counting does, and attaching would keep it in memory), of a version
 * with dimension cells and with no value folded into ES_ROLLUP_DIM_OTHER
 * (the fold ranks values over the whole rollup, which the merge
 * changes).  Counts add and sketches merge to the same registers
 * (hll.h, 1), so the output's encoding is the same bytes either way.
 */
static const es_rollup *input_rollup(es_segment *seg, es_rollup *own) {
  const es_rollup *r = atomic_load(&seg->rollup);
  char path[ES_PATH_MAX];
  if (r == NULL) {
    if (es__rollup_path(seg->path, path, sizeof(path)) != ES_OK ||
        es__rollup_read(seg->vfs, path, own) != ES_OK) {
      es__error_clear(); /* counting the rows is always right */
      return NULL;
    }
    r = own;
  }
  if (r->version != 0 && r->version < ES_ROLLUP_DIMS_VERSION)
    return NULL;
  return es__strtab_find(&r->strs, ES_ROLLUP_DIM_OTHER) ? NULL : r;
}

/* Step 1: reads inputs, keeping what spec keeps, into p sorted by
 * (time, input order).  The rows and keys are sized for every input row
 * at once (the footers say how many and how big), so they do not grow by
 * copying through the read. */
static int rpart_read(rpart *p, const es_rewrite_spec *spec,
                      es_segment *const *in, size_t nin) {
  uint64_t nrows = 0, row_bytes = 0;
  for (size_t s = 0; s < nin; s++) {
    nrows += in[s]->rows;
    row_bytes += in[s]->row_bytes ? in[s]->row_bytes : in[s]->raw_bytes;
  }
  ES_TRY(es__grow((void **)&p->keys, &p->keys_cap, (size_t)nrows,
                  sizeof(es_time_key)));
  ES_TRY(es__buf_reserve(&p->rows, (size_t)row_bytes));
  es_seg_rows rows;
  memset(&rows, 0, sizeof(rows));
  int rc = ES_OK;
  for (size_t s = 0; rc == ES_OK && s < nin; s++) {
    es_segment *seg = in[s];
    es_rollup own;
    memset(&own, 0, sizeof(own));
    const es_rollup *whole =
        spec->keep_all && spec->keep_all(spec->ud, seg->min_ts, seg->max_ts)
            ? input_rollup(seg, &own)
            : NULL;
    size_t kept = p->nkeys;
    for (uint32_t g = 0; rc == ES_OK && g < seg->ngroups; g++) {
      if (spec->drop_all && spec->drop_all(spec->ud, seg->groups[g].min_ts,
                                           seg->groups[g].max_ts))
        continue; /* nothing kept: no need to read it */
      rc = es__segment_read_group(seg, g, &rows);
      for (size_t i = 0; rc == ES_OK && i < rows.n; i++)
        rc = rpart_add(p, spec, &rows, i, whole != NULL);
    }
    /* its cells are the rows' only if every row stayed (keep_all's
     * promise) and the groups held the rows the footer counts */
    if (rc == ES_OK && whole && p->nkeys - kept != seg->rows)
      rc = ES_CORRUPT_BKPT("%s: %zu rows read, its footer counts %llu",
                           seg->path, p->nkeys - kept,
                           (unsigned long long)seg->rows);
    for (size_t c = 0; rc == ES_OK && whole && c < whole->n; c++)
      rc = es__rollup_add_cell(&p->rollup, whole, &whole->cells[c],
                               whole->cells[c].minute);
    es__rollup_free(&own);
  }
  es__segment_rows_free(&rows);
  if (rc == ES_OK && p->nkeys > 1) {
    es_time_key *tmp = es__malloc(p->nkeys * sizeof(*tmp));
    if (tmp == NULL)
      return ES_NOMEM_BKPT();
    es__time_keys_sort(p->keys, tmp, p->nkeys);
    es__free(tmp);
  }
  return rc;
}

/* Step 2: writes the part's segment and rollup under a fresh id;
 * *seg_out is the opened segment (its rollup attached when the tenant's
 * rollups are in use), *rlp_bytes_out its rollup file's size. */
static int rpart_write(es_db *db, es_tenant *t, rpart *p, es_segment **seg_out,
                       uint64_t *rlp_bytes_out) {
  *seg_out = NULL;
  pthread_mutex_lock(&t->man_mu);
  uint64_t id = t->man.next_segment_id++; /* persisted by the next write */
  pthread_mutex_unlock(&t->man_mu);
  es_mrow *mrows = es__malloc(p->nkeys * sizeof(es_mrow));
  const es_mrow **ptrs = es__malloc(p->nkeys * sizeof(es_mrow *));
  es_buf img = {0}, rimg = {0};
  es_rollup *attach = es__calloc(1, sizeof(*attach));
  char name[32], path[ES_PATH_MAX];
  es__segment_name(name, sizeof(name), id);
  int rc = mrows && ptrs && attach ? ES_OK : ES_NOMEM_BKPT();
  for (size_t i = 0; rc == ES_OK && i < p->nkeys; i++) {
    mrows[i] = (es_mrow){p->keys[i].ts, p->rows.data + p->keys[i].idx};
    ptrs[i] = &mrows[i];
  }
  if (rc == ES_OK)
    rc = es__segment_build(&img, ptrs, p->nkeys);
  if (rc == ES_OK)
    rc = es__rollup_encode(&p->rollup, &rimg);
  *rlp_bytes_out = rimg.len;
  if (rc == ES_OK)
    rc = es__io_write_atomic(db->vfs, t->dir, name, img.data, img.len);
  memcpy(name + 16, ".rlp", 5);
  if (rc == ES_OK)
    rc = es__io_write_atomic(db->vfs, t->dir, name, rimg.data, rimg.len);
  memcpy(name + 16, ".seg", 5);
  if (rc == ES_OK)
    rc = es__path_join(path, sizeof(path), t->dir, name);
  if (rc == ES_OK)
    rc = es__segment_open(db->vfs, path, id, seg_out);
  if (rc == ES_OK && es__tenant_rollups_hot(t)) {
    rc = es__rollup_decode(rimg.data, rimg.len, name, attach);
    if (rc == ES_OK) {
      es__segment_rollup_set(*seg_out, attach);
      attach = NULL;
    }
  }
  es__free(attach);
  es__free(mrows);
  es__free(ptrs);
  es__buf_free(&img);
  es__buf_free(&rimg);
  return rc;
}

/* The readers' set after the commit: old's segments with out[0..nout) in
 * the place of the first of in[0..nin) and the others of in removed (the
 * manifest's order, commit.c). */
static int rewrite_segset(const es_segset *old, es_segment *const *in,
                          size_t nin, es_segment **out, size_t nout,
                          es_segset **set_out) {
  es_segset *s = es__segset_new(old->n + nout);
  *set_out = s;
  if (!s)
    return ES_NOMEM_BKPT();
  s->flushed_lsn = old->flushed_lsn; /* rows move, none come or go */
  int placed = 0;
  for (size_t i = 0; i < old->n; i++) {
    size_t k = 0;
    while (k < nin && in[k] != old->segs[i])
      k++;
    if (k < nin && !placed) {
      for (size_t j = 0; j < nout; j++) {
        es__segment_ref(out[j]);
        s->segs[s->n++] = out[j];
      }
      placed = 1;
    }
    if (k == nin) {
      es__segment_ref(old->segs[i]);
      s->segs[s->n++] = old->segs[i];
    }
  }
  return ES_OK;
}

/* Step 3: one generation names the outputs instead of the inputs; then
 * the readers' view, then the announcement and the inputs' removal. */
static int rewrite_commit(es_db *db, es_tenant *t, es_segment *const *in,
                          size_t nin, es_segment **out,
                          const uint64_t *rlp_bytes, size_t nout) {
  es_manifest_entry *drop = es__malloc((nin + nout + 1) * sizeof(*drop));
  if (!drop)
    return ES_NOMEM_BKPT();
  es_manifest_entry *add = drop + nin;
  for (size_t i = 0; i < nin; i++)
    drop[i] = (es_manifest_entry){in[i]->id, in[i]->rows, in[i]->bytes,
                                  in[i]->min_ts, in[i]->max_ts};
  for (size_t i = 0; i < nout; i++)
    add[i] = (es_manifest_entry){out[i]->id, out[i]->rows, out[i]->bytes,
                                 out[i]->min_ts, out[i]->max_ts};
  es_segset *set = NULL;
  es_commit_note note;
  pthread_mutex_lock(&t->man_mu);
  es_commit_edit edit = {.drop = drop,
                         .ndrop = nin,
                         .add = add,
                         .add_rlp_bytes = rlp_bytes,
                         .nadd = nout,
                         .flushed_lsn = t->man.flushed_lsn}; /* 2 */
  int rc = es__commit_manifest(db, t, &edit, &note);
  /* committed (invariant 1): now the readers' view */
  if (rc == ES_OK)
    rc = rewrite_segset(t->segs, in, nin, out, nout, &set);
  if (rc == ES_OK) {
    pthread_mutex_lock(&t->mu);
    es_segset *old = t->segs;
    t->segs = set;
    pthread_mutex_unlock(&t->mu);
    es__segset_unref(old);
  }
  if (note.files) /* durable: announced whatever happened after */
    es__commit_publish(db, t, &note);
  pthread_mutex_unlock(&t->man_mu);
  es__free(drop);
  return rc;
}

/* Removes the outputs of a rewrite that did not commit (else they are
 * orphans until the next open). */
static void rewrite_discard(es_db *db, es_tenant *t, es_segment **out,
                            size_t nout) {
  for (size_t i = 0; i < nout; i++) {
    char name[32], path[ES_PATH_MAX];
    es__segment_name(name, sizeof(name), out[i]->id);
    for (int k = 0; k < 2; k++) {
      if (k == 1)
        memcpy(name + 16, ".rlp", 5);
      if (es__path_join(path, sizeof(path), t->dir, name) == ES_OK)
        (void)db->vfs->unlink(db->vfs, path);
    }
  }
  es__error_clear();
}

/* The end of the part that starts at segs[i]: inputs while their merge
 * memory stays under the bound (at least one). */
static size_t rewrite_part_end(es_segment *const *segs, size_t n, size_t i,
                               uint64_t memory_bytes) {
  uint64_t mem = es__compact_merge_bytes(segs[i]);
  size_t j = i + 1;
  while (j < n && (memory_bytes == 0 ||
                   mem + es__compact_merge_bytes(segs[j]) <= memory_bytes))
    mem += es__compact_merge_bytes(segs[j++]);
  return j;
}

/* Rewrites segments keeping what spec keeps; see rewrite.h. */
int es__rewrite(es_db *db, es_tenant *t, es_segment *const *segs, size_t n,
                const es_rewrite_spec *spec, es_rewrite_stats *stats_out) {
  if (!spec || !spec->keep || n == 0)
    return ES_INVAL_BKPT("es__rewrite: no predicate or no segments");
  es_rewrite_stats st;
  memset(&st, 0, sizeof(st));
  es_segment **out = es__calloc(n, sizeof(*out));
  uint64_t *rlp = es__calloc(n, sizeof(*rlp));
  int rc = out && rlp ? ES_OK : ES_NOMEM_BKPT();
  size_t nout = 0;
  for (size_t i = 0; rc == ES_OK && i < n;) {
    size_t end = rewrite_part_end(segs, n, i, spec->memory_bytes);
    rpart p;
    memset(&p, 0, sizeof(p));
    rc = rpart_read(&p, spec, segs + i, end - i);
    if (rc == ES_OK && p.nkeys > 0) {
      rc = rpart_write(db, t, &p, &out[nout], &rlp[nout]);
      if (out[nout])
        nout++;
    }
    st.rows_out += p.nkeys;
    rpart_free(&p);
    i = end;
  }
  if (rc == ES_OK)
    rc = rewrite_commit(db, t, segs, n, out, rlp, nout);
  else
    rewrite_discard(db, t, out, nout);
  for (size_t i = 0; i < n; i++) {
    st.rows_in += segs[i]->rows;
    st.bytes_in += segs[i]->bytes;
  }
  for (size_t i = 0; out && i < nout; i++) {
    st.bytes_out += out[i]->bytes;
    es__segment_unref(out[i]);
  }
  st.segments_in = n;
  st.segments_out = nout;
  es__free(out);
  es__free(rlp);
  if (rc == ES_OK && st.rows_out < st.rows_in) /* invariant 6 */
    atomic_fetch_add(&t->id_gen, 1);
  if (rc == ES_OK && stats_out)
    *stats_out = st;
  return rc;
}
