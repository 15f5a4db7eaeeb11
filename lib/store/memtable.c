/*
 * memtable.c -- arena, index and publication of memtable rows.  The
 * invariants are in memtable.h.
 */
#include "store/memtable.h"
#include "base/clock.h"
#include "base/event.h"
#include "base/mem.h"

/* Arena blocks start small and double up to 1 MiB, so that the hundreds
 * of quiet tenants of a store cost kilobytes each, not megabytes. */
#define MT_BLOCK_BYTES_MIN (16u << 10)
#define MT_BLOCK_BYTES_MAX (1u << 20)

struct es_mt_block {
  es_mt_block *next;
  size_t used, cap;
  uint8_t data[];
};

/* Creates an empty memtable holding one reference. */
int es__memtable_new(es_memtable **mt_out) {
  es_memtable *mt = es__calloc(1, sizeof(*mt));
  *mt_out = mt;
  if (!mt)
    return ES_NOMEM_BKPT();
  atomic_init(&mt->refs, 1);
  atomic_init(&mt->visible, 0);
  pthread_mutex_init(&mt->rollup_mu, NULL);
  mt->bytes = sizeof(*mt);
  return ES_OK;
}

/* Takes a reference. */
void es__memtable_ref(es_memtable *mt) {
  atomic_fetch_add_explicit(&mt->refs, 1, memory_order_relaxed);
}

/* Drops a reference and frees the memtable with the last one. */
void es__memtable_unref(es_memtable *mt) {
  if (!mt || atomic_fetch_sub_explicit(&mt->refs, 1, memory_order_acq_rel) != 1)
    return;
  for (size_t c = 0; c < ES_MT_CHUNKS_MAX && mt->chunks[c]; c++)
    es__free(mt->chunks[c]);
  es_mt_block *b = mt->blocks;
  while (b) {
    es_mt_block *next = b->next;
    es__free(b);
    b = next;
  }
  es__rollup_free(&mt->rollup);
  es__free(mt->marks);
  pthread_mutex_destroy(&mt->rollup_mu);
  es__free(mt);
}

/* Whether the index can take count more rows. */
int es__memtable_has_room(const es_memtable *mt, size_t count) {
  return mt->rows + count <= (size_t)ES_MT_CHUNK_ROWS * ES_MT_CHUNKS_MAX;
}

/* Copies the rows into the arena, in one block so a row never straddles. */
static int memtable_copy(es_memtable *mt, const uint8_t *rows, size_t len,
                         uint8_t **at_out) {
  es_mt_block *b = mt->blocks;
  if (!b || b->cap - b->used < len) {
    size_t cap = b ? b->cap * 2 : MT_BLOCK_BYTES_MIN;
    if (cap > MT_BLOCK_BYTES_MAX)
      cap = MT_BLOCK_BYTES_MAX;
    if (cap < len)
      cap = len;
    b = es__malloc(sizeof(*b) + cap);
    if (!b)
      return ES_NOMEM_BKPT();
    b->next = mt->blocks;
    b->used = 0;
    b->cap = cap;
    mt->blocks = b;
    mt->bytes += sizeof(*b) + cap;
  }
  *at_out = b->data + b->used;
  memcpy(*at_out, rows, len);
  b->used += len;
  return ES_OK;
}

/* Indexes the rows just copied to `at`; fails without touching the index
 * when they do not parse. */
static int memtable_index(es_memtable *mt, const uint8_t *at, size_t len,
                          uint32_t count) {
  size_t off = 0;
  for (uint32_t i = 0; i < count; i++) {
    es_event ev;
    size_t used = 0;
    ES_TRY(es__event_decode(at + off, len - off, &ev, &used));
    es_mrow *r = &mt->chunks[(mt->rows + i) / ES_MT_CHUNK_ROWS]
                            [(mt->rows + i) % ES_MT_CHUNK_ROWS];
    r->ts_us = ev.ts_us;
    r->row = at + off;
    off += used;
  }
  if (off != len)
    return ES_CORRUPT_BKPT("record holds %zu bytes after its %u rows",
                           len - off, count);
  return ES_OK;
}

/* Indexes rows whose offsets and times the appender already knows. */
static int memtable_index_known(es_memtable *mt, const uint8_t *at, size_t len,
                                uint32_t count, const es_row_hint *hint) {
  for (uint32_t i = 0; i < count; i++) {
    if (hint[i].off >= len)
      return ES_CORRUPT_BKPT("row hint %u past the record", i);
    es_mrow *r = &mt->chunks[(mt->rows + i) / ES_MT_CHUNK_ROWS]
                            [(mt->rows + i) % ES_MT_CHUNK_ROWS];
    r->ts_us = hint[i].ts_us;
    r->row = at + hint[i].off;
  }
  return ES_OK;
}

/* Inserts a record's rows, unpublished; see memtable.h.  Memory taken is
 * reported in *bytes_added even when the insert fails. */
int es__memtable_insert(es_memtable *mt, const uint8_t *rows, size_t rows_len,
                        uint32_t count, uint64_t lsn, size_t *bytes_added) {
  return es__memtable_insert_hinted(mt, rows, rows_len, count, lsn, NULL,
                                    bytes_added);
}

/* es__memtable_insert with the rows' offsets and times given (hint may be
 * NULL: then the rows are decoded to find them). */
int es__memtable_insert_hinted(es_memtable *mt, const uint8_t *rows,
                               size_t rows_len, uint32_t count, uint64_t lsn,
                               const es_row_hint *hint, size_t *bytes_added) {
  size_t before = mt->bytes;
  if (!es__memtable_has_room(mt, count))
    return ES_ERR(ES_ETOOBIG, "memtable index full");
  int rc = ES_OK;
  /* Every chunk exists before any row is indexed, so a failure leaves
   * nothing half inserted. */
  size_t last = mt->rows + count;
  for (size_t c = mt->rows / ES_MT_CHUNK_ROWS;
       count > 0 && c <= (last - 1) / ES_MT_CHUNK_ROWS; c++) {
    if (mt->chunks[c])
      continue;
    mt->chunks[c] = es__malloc(ES_MT_CHUNK_ROWS * sizeof(es_mrow));
    if (!mt->chunks[c])
      ES_CHECK(ES_NOMEM_BKPT());
    mt->bytes += ES_MT_CHUNK_ROWS * sizeof(es_mrow);
  }
  if (mt->track_lsn &&
      (mt->nmarks == 0 || mt->marks[mt->nmarks - 1].lsn != lsn))
    ES_CHECK(es__grow((void **)&mt->marks, &mt->marks_cap, mt->nmarks + 1,
                      sizeof(es_mt_mark)));
  uint8_t *at = NULL;
  ES_CHECK(memtable_copy(mt, rows, rows_len, &at));
  ES_CHECK(hint ? memtable_index_known(mt, at, rows_len, count, hint)
                : memtable_index(mt, at, rows_len, count));
  if (mt->rows == 0 && mt->min_lsn == 0) {
    mt->min_lsn = lsn;
    mt->first_insert_mono_us = es__clock_mono_us();
  }
  if (mt->track_lsn &&
      (mt->nmarks == 0 || mt->marks[mt->nmarks - 1].lsn != lsn))
    mt->marks[mt->nmarks++] = (es_mt_mark){lsn, mt->rows};
  mt->rows += count;
err:
  *bytes_added += mt->bytes - before;
  return rc;
}

/* Publishes everything inserted so far (release pairs with readers'
 * acquire in es__memtable_visible). */
void es__memtable_publish(es_memtable *mt, uint64_t lsn) {
  if (lsn > mt->max_lsn && mt->rows > 0)
    mt->max_lsn = lsn;
  pthread_mutex_lock(&mt->rollup_mu);
  for (; !mt->rollup_bad && mt->rolled < mt->rows; mt->rolled++) {
    es_event ev;
    size_t used;
    /* rows were checked at insert; a failure here is memory */
    if (es__event_decode(es__memtable_row(mt, mt->rolled)->row,
                         ES_EVENT_BYTES_MAX, &ev, &used) < 0 ||
        es__rollup_add(&mt->rollup, &ev) < 0) {
      mt->rollup_bad = 1;
      es__rollup_free(&mt->rollup);
    }
  }
  atomic_store_explicit(&mt->visible, mt->rows, memory_order_release);
  pthread_mutex_unlock(&mt->rollup_mu);
}

const es_rollup *es__memtable_rollup_begin(es_memtable *mt) {
  pthread_mutex_lock(&mt->rollup_mu);
  return mt->rollup_bad ? NULL : &mt->rollup;
}

void es__memtable_rollup_end(es_memtable *mt) {
  pthread_mutex_unlock(&mt->rollup_mu);
}

/* The first row whose record's LSN is above lsn; see memtable.h. */
size_t es__memtable_first_after(const es_memtable *mt, uint64_t lsn) {
  size_t lo = 0, hi = mt->nmarks; /* first mark with lsn > the given */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (mt->marks[mid].lsn <= lsn)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < mt->nmarks ? mt->marks[lo].first_row : mt->rows;
}
