/*
 * memtable.h -- the in-memory tail of one tenant: rows appended since the
 * last seal, readable by scans while the shard writer keeps appending.
 *
 * Rows are kept in their encoded form (event.h) in an arena of blocks that
 * never move, with an index of (event time, row pointer) in fixed chunks
 * that never move either.  That makes an insert a memcpy of the bytes that
 * were just written to the WAL, and lets readers work without a lock:
 *
 *  1. Only the shard writer thread inserts and publishes.
 *  2. Rows [0, visible) are immutable; `visible` only grows, and is
 *     published (release) after the WAL frame holding the rows is durable,
 *     so a reader (acquire) never sees an unacknowledged row.
 *  3. A sealed memtable takes no more inserts; it is freed when the last
 *     reference (tenant list, cursors, the flusher) is dropped.
 *  4. The rollup (rollup.h) counts exactly rows [0, visible): publish
 *     grows it and moves `visible` inside one critical section of
 *     rollup_mu, so a query reading it under that lock never counts an
 *     unacknowledged row.
 *
 * Why rows and not columns here: the memtable is small (a few MB per
 * tenant), short-lived, and written far more often than scanned; columns
 * are built once, at seal, where they pay off (segment.c).
 */
#ifndef ES_MEMTABLE_H
#define ES_MEMTABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "store/rollup.h"

typedef struct es_mrow {
  int64_t ts_us;
  const uint8_t *row; /* encoded event, NUL-terminated strings inside */
} es_mrow;

#define ES_MT_CHUNK_ROWS 1024
#define ES_MT_CHUNKS_MAX 2048 /* so at most 2,097,152 rows per memtable */

typedef struct es_mt_block es_mt_block;

/* Where a record's rows start (read-only handles keep these: rules.h). */
typedef struct es_mt_mark {
  uint64_t lsn;
  size_t first_row;
} es_mt_mark;

typedef struct es_memtable {
  atomic_int refs;
  atomic_size_t visible; /* rows published to readers */
  size_t rows;           /* rows inserted (writer only) */
  es_mrow *chunks[ES_MT_CHUNKS_MAX];
  es_mt_block *blocks;          /* arena, newest first */
  size_t bytes;                 /* arena + index memory */
  uint64_t min_lsn;             /* LSN of the first record inserted (0: none) */
  uint64_t max_lsn;             /* LSN of the last published record */
  int64_t first_insert_mono_us; /* for sealing by age */
  uint64_t seal_seq;            /* set when sealed (db.c) */
  /* The rollup of rows [0, visible), grown at each publish (4: readers
   * hold rollup_mu while they read it).  rollup_bad is set, for good,
   * when growing it failed (out of memory): queries then scan this
   * memtable and its flush derives the rollup from the rows instead. */
  pthread_mutex_t rollup_mu;
  es_rollup rollup;
  size_t rolled; /* rows counted into rollup (writer only) */
  int rollup_bad;
  /* With track_lsn (read-only handles), one mark per record inserted, so
   * rows can be told apart by LSN when a new manifest covers some. */
  int track_lsn;
  es_mt_mark *marks;
  size_t nmarks, marks_cap;
} es_memtable;

/* A new empty memtable with one reference. */
int es__memtable_new(es_memtable **mt_out) ES_MUST_CHECK;
void es__memtable_ref(es_memtable *mt);
/* Drops a reference; frees on the last.  NULL is fine. */
void es__memtable_unref(es_memtable *mt);

/* Appends `count` encoded rows (rows_len bytes) of the record at `lsn`,
 * invisible until published.  Adds the memory used to *bytes_added.
 * ES_ECORRUPT if the rows do not parse; ES_ETOOBIG when the memtable is
 * out of index space (the caller seals and retries on a new one). */
int es__memtable_insert(es_memtable *mt, const uint8_t *rows, size_t rows_len,
                        uint32_t count, uint64_t lsn,
                        size_t *bytes_added) ES_MUST_CHECK;

/* Where a row starts in a record and its event time, as the appender knows
 * them from encoding (saves the writer thread a decode per row). */
typedef struct es_row_hint {
  uint32_t off;
  int64_t ts_us;
} es_row_hint;

int es__memtable_insert_hinted(es_memtable *mt, const uint8_t *rows,
                               size_t rows_len, uint32_t count, uint64_t lsn,
                               const es_row_hint *hint,
                               size_t *bytes_added) ES_MUST_CHECK;

/* With track_lsn: the index of the first row whose record's LSN is above
 * lsn (rows if none). */
size_t es__memtable_first_after(const es_memtable *mt, uint64_t lsn);

/* Whether count more rows fit in the index. */
int es__memtable_has_room(const es_memtable *mt, size_t count);

/* Makes every inserted row visible (writer, after the WAL sync), and
 * counts it into the rollup first (invariant 4). */
void es__memtable_publish(es_memtable *mt, uint64_t lsn);

/* Locks the rollup for reading and returns it (NULL when rollup_bad: the
 * caller must scan instead).  Always pair with es__memtable_rollup_end. */
const es_rollup *es__memtable_rollup_begin(es_memtable *mt);
void es__memtable_rollup_end(es_memtable *mt);

/* Rows a reader may see now. */
static inline size_t es__memtable_visible(es_memtable *mt) {
  return atomic_load_explicit(&mt->visible, memory_order_acquire);
}

/* The i-th row (i < a visible count read earlier). */
static inline const es_mrow *es__memtable_row(const es_memtable *mt, size_t i) {
  return &mt->chunks[i / ES_MT_CHUNK_ROWS][i % ES_MT_CHUNK_ROWS];
}

#endif
