/*
 * cursor.c -- scans: a snapshot of a tenant's segments and memtables,
 * merged into one stream in (event time, append order) order.
 *
 * A scan takes, under the tenant's lock, references to the segment set,
 * the sealed memtables and the active memtable with its published row
 * count.  Because a flush swaps a memtable for its segment inside that
 * same lock, the snapshot holds every acknowledged row exactly once.
 *
 * Sources, oldest first: segments in manifest order, then sealed
 * memtables, then the active one.  Each yields its rows in time order;
 * a binary heap keyed by (time, source index) merges them, so rows with
 * equal times come out in append order.
 *
 * Invariants:
 *  1. Segment row groups outside [from, to) are never read (zone maps);
 *     segments whose Bloom filter excludes the person are never read.
 *  2. Strings handed out point into the source that produced the row and
 *     stay valid until the next es_cursor_next on this cursor.
 *  3. A cursor that met an error returns that error from then on.
 *  4. Rows carrying an id of a pending erase request (the tenant's
 *     tombstone when the scan started, tomb.h) are never returned; only
 *     segments whose Bloom filter admits such an id are checked row by
 *     row.
 */
#include <stdlib.h>

#include "base/abi.h"
#include "base/event.h"
#include "base/mem.h"
#include "store/dbint.h"
#include "store/tomb.h"

typedef struct cur_key {
  int64_t ts;
  size_t idx;
} cur_key;

typedef struct cur_src {
  es_segment *seg;  /* segment source, or NULL */
  uint32_t group;   /* next row group to load */
  es_seg_rows rows; /* the loaded row group */
  size_t pos;       /* current row in rows */
  es_memtable *mt;  /* memtable source, or NULL */
  cur_key *keys;    /* memtable rows that match, sorted */
  size_t nkeys;
  int64_t ts; /* time of the current row */
  int done;
  int tomb_check; /* rows may carry a hidden id (invariant 4) */
} cur_src;

struct es_cursor {
  es_segset *set;
  cur_src *srcs;
  size_t nsrcs;
  size_t *heap;
  size_t nheap;
  int64_t from_us, to_us;
  char *person;
  uint32_t fields; /* ES_FIELD_* read (person ids added when filtering) */
  uint32_t want;   /* ES_FIELD_* the caller asked for */
  es_tomb *tomb;   /* pending erase requests (a reference), or NULL */
  int err;
  int started;
};

#define CUR_SPEC_SIZE_MIN (offsetof(es_scan_spec, fields) + sizeof(uint32_t))

/* Defaults: everything of the tenant.  Writes struct_size bytes only
 * (eventstore.h, convention 9). */
void es_scan_spec_init_sized(es_scan_spec *spec, size_t struct_size) {
  es_scan_spec s;
  memset(&s, 0, sizeof(s));
  s.from_us = INT64_MIN;
  s.to_us = INT64_MAX;
  memset(spec, 0, struct_size);
  memcpy(spec, &s, struct_size < sizeof(s) ? struct_size : sizeof(s));
  spec->struct_size = struct_size;
}

static int cur_person_match(const es_cursor *c, const char *anon,
                            const char *user) {
  if (!c->person)
    return 1;
  return (anon && strcmp(anon, c->person) == 0) ||
         (user && strcmp(user, c->person) == 0);
}

/* Moves a segment source to its next row in range; done at the end. */
static int cur_seg_advance(es_cursor *c, cur_src *s) {
  for (;;) {
    while (s->pos < s->rows.n) {
      size_t i = s->pos;
      int64_t ts = s->rows.ts[i];
      if (ts >= c->to_us) {
        s->done = 1;
        return ES_OK;
      }
      if (ts >= c->from_us &&
          cur_person_match(c, s->rows.str[ES_STR_anonymous_id][i],
                           s->rows.str[ES_STR_user_id][i]) &&
          !(s->tomb_check &&
            es__tomb_hides(c->tomb, s->rows.str[ES_STR_anonymous_id][i],
                           s->rows.str[ES_STR_user_id][i],
                           s->rows.str[ES_STR_previous_id][i]))) {
        s->ts = ts;
        return ES_OK;
      }
      s->pos++;
    }
    /* next row group that overlaps [from, to) */
    while (s->group < s->seg->ngroups &&
           s->seg->groups[s->group].max_ts < c->from_us)
      s->group++;
    if (s->group >= s->seg->ngroups ||
        s->seg->groups[s->group].min_ts >= c->to_us) {
      s->done = 1;
      return ES_OK;
    }
    ES_TRY(
        es__segment_read_group_cols(s->seg, s->group++, c->fields, &s->rows));
    s->pos = 0;
  }
}

/* Moves a source to its next row (after the current one if `step`). */
static int cur_advance(es_cursor *c, cur_src *s, int step) {
  if (s->mt) {
    if (step)
      s->pos++;
    if (s->pos >= s->nkeys)
      s->done = 1;
    else
      s->ts = s->keys[s->pos].ts;
    return ES_OK;
  }
  if (step)
    s->pos++;
  return cur_seg_advance(c, s);
}

static int cur_key_cmp(const void *a, const void *b) {
  const cur_key *x = a, *y = b;
  if (x->ts != y->ts)
    return x->ts < y->ts ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Collects and sorts the memtable rows [0, visible) that match. */
static int cur_mem_init(es_cursor *c, cur_src *s, size_t visible) {
  s->keys = es__malloc((visible ? visible : 1) * sizeof(cur_key));
  if (!s->keys)
    return ES_NOMEM_BKPT();
  for (size_t i = 0; i < visible; i++) {
    const es_mrow *r = es__memtable_row(s->mt, i);
    if (r->ts_us < c->from_us || r->ts_us >= c->to_us)
      continue;
    if (c->person || c->tomb) {
      es_event ev;
      size_t used;
      ES_TRY(es__event_decode(r->row, ES_EVENT_BYTES_MAX, &ev, &used));
      if (!cur_person_match(c, ev.anonymous_id, ev.user_id) ||
          es__tomb_hides(c->tomb, ev.anonymous_id, ev.user_id, ev.previous_id))
        continue;
    }
    s->keys[s->nkeys++] = (cur_key){r->ts_us, i};
  }
  qsort(s->keys, s->nkeys, sizeof(cur_key), cur_key_cmp);
  return ES_OK;
}

/* heap order: smaller time first, then older source */
static int cur_less(const es_cursor *c, size_t a, size_t b) {
  const cur_src *x = &c->srcs[a], *y = &c->srcs[b];
  return x->ts < y->ts || (x->ts == y->ts && a < b);
}

static void cur_sift_down(es_cursor *c, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < c->nheap && cur_less(c, c->heap[l], c->heap[m]))
      m = l;
    if (l + 1 < c->nheap && cur_less(c, c->heap[l + 1], c->heap[m]))
      m = l + 1;
    if (m == i)
      return;
    size_t t = c->heap[i];
    c->heap[i] = c->heap[m];
    c->heap[m] = t;
    i = m;
  }
}

/* Takes the snapshot of a tenant's sources; see the file comment. */
static int cur_snapshot(es_cursor *c, es_tenant *t) {
  pthread_mutex_lock(&t->mu);
  size_t nmem = t->nimm + (t->active ? 1 : 0);
  c->set = t->segs;
  atomic_fetch_add(&c->set->refs, 1);
  size_t total = c->set->n + nmem;
  c->srcs = es__calloc(total ? total : 1, sizeof(cur_src));
  size_t visible_active = t->active ? es__memtable_visible(t->active) : 0;
  int rc = c->srcs ? ES_OK : ES_NOMEM_BKPT();
  if (rc == ES_OK) {
    for (size_t i = 0; i < c->set->n; i++)
      c->srcs[c->nsrcs++].seg = c->set->segs[i];
    for (size_t i = 0; i < nmem; i++) {
      es_memtable *mt = i < t->nimm ? t->imm[i] : t->active;
      es__memtable_ref(mt);
      c->srcs[c->nsrcs++].mt = mt;
    }
  }
  pthread_mutex_unlock(&t->mu);
  for (size_t i = 0; rc == ES_OK && i < c->nsrcs; i++) {
    cur_src *s = &c->srcs[i];
    if (s->mt) {
      size_t vis = s->mt == t->active && i + 1 == c->nsrcs
                       ? visible_active
                       : es__memtable_visible(s->mt);
      rc = cur_mem_init(c, s, vis);
    } else if (s->seg->max_ts < c->from_us || s->seg->min_ts >= c->to_us ||
               (c->person && !es__segment_may_contain(s->seg, c->person))) {
      s->done = 1;
    } else {
      s->tomb_check = es__tomb_may_touch(c->tomb, s->seg);
    }
  }
  return rc;
}

/* Starts a scan; see eventstore.h. */
int es_scan(es_db *db, const es_scan_spec *spec_in, es_cursor **cur_out) {
  es__error_clear();
  if (!cur_out)
    return ES_INVAL_BKPT("cur_out is NULL");
  *cur_out = NULL;
  if (!db || !spec_in)
    return ES_INVAL_BKPT("es_scan: NULL handle or spec");
  es_scan_spec full, *spec = &full;
  es_scan_spec_init(&full);
  ES_TRY(es__abi_options_in(spec_in, &full, sizeof(full), CUR_SPEC_SIZE_MIN,
                            "es_scan_spec"));
  ES_TRY(es__tenant_check(spec->tenant));
  if (atomic_load(&db->closing))
    return ES_ERR(ES_ECLOSED, "database is closing");
  es_cursor *c = es__calloc(1, sizeof(*c));
  if (!c)
    return ES_NOMEM_BKPT();
  c->from_us = spec->from_us;
  c->to_us = spec->to_us;
  c->fields = spec->fields ? spec->fields & ES_FIELD_ALL : ES_FIELD_ALL;
  if (spec->person)
    c->fields |= ES_FIELD_ANONYMOUS_ID | ES_FIELD_USER_ID;
  c->want = c->fields;
  int rc = ES_OK;
  if (spec->person && !(c->person = es__strdup(spec->person)))
    ES_CHECK(ES_NOMEM_BKPT());
  es_tenant *t = NULL;
  ES_CHECK(es__tenant_get(db, spec->tenant, 0, &t));
  if (t && (c->tomb = es__tomb_get(db, t)))
    c->fields |=
        ES_FIELD_ANONYMOUS_ID | ES_FIELD_USER_ID | ES_FIELD_PREVIOUS_ID;
  if (t)
    ES_CHECK(cur_snapshot(c, t));
  c->heap = es__malloc((c->nsrcs ? c->nsrcs : 1) * sizeof(size_t));
  if (!c->heap)
    ES_CHECK(ES_NOMEM_BKPT());
  *cur_out = c;
  return ES_OK;
err:
  es_cursor_close(c);
  return rc;
}

/* Loads every source's first row and builds the heap. */
static int cur_start(es_cursor *c) {
  for (size_t i = 0; i < c->nsrcs; i++) {
    cur_src *s = &c->srcs[i];
    if (!s->done)
      ES_TRY(cur_advance(c, s, 0));
    if (!s->done)
      c->heap[c->nheap++] = i;
  }
  for (size_t i = c->nheap; i-- > 0;)
    cur_sift_down(c, i);
  return ES_OK;
}

_Static_assert(ES_FIELD_EVENT == 1u << ES_STR_event &&
                   ES_FIELD_PATH == 1u << ES_STR_path &&
                   ES_FIELD_IP == 1u << ES_STR_ip && ES_NSTR == 12,
               "ES_FIELD_* bits follow the string columns");

/* Fills ev from the current row of source s (unwanted strings NULL, as a
 * segment source leaves them). */
static int cur_emit(const es_cursor *c, cur_src *s, es_event *ev) {
  if (s->mt) {
    size_t used;
    ES_TRY(es__event_decode(es__memtable_row(s->mt, s->keys[s->pos].idx)->row,
                            ES_EVENT_BYTES_MAX, ev, &used));
    for (int f = 0; c->want != ES_FIELD_ALL && f < ES_NSTR; f++)
      if (!(c->want >> f & 1))
        *es__ev_str(ev, f) = NULL;
    return ES_OK;
  }
  size_t i = s->pos;
  memset(ev, 0, sizeof(*ev));
  ev->ts_us = s->rows.ts[i];
  ev->recv_us = s->rows.recv[i];
  ev->type = s->rows.type[i];
  for (int f = 0; f < ES_NSTR; f++)
    *es__ev_str(ev, f) = c->want >> f & 1 ? s->rows.str[f][i] : NULL;
  return ES_OK;
}

/* Returns the next event; see eventstore.h. */
int es_cursor_next(es_cursor *c, es_event *ev_out) {
  if (!c || !ev_out)
    return ES_INVAL_BKPT("es_cursor_next: NULL argument");
  if (c->err)
    return c->err;
  int rc = ES_OK;
  if (!c->started) {
    c->started = 1;
    ES_CHECK(cur_start(c));
  } else if (c->nheap > 0) {
    size_t top = c->heap[0];
    ES_CHECK(cur_advance(c, &c->srcs[top], 1));
    if (c->srcs[top].done)
      c->heap[0] = c->heap[--c->nheap];
    cur_sift_down(c, 0);
  }
  if (c->nheap == 0)
    return 0;
  ES_CHECK(cur_emit(c, &c->srcs[c->heap[0]], ev_out));
  return 1;
err:
  c->err = rc;
  return rc;
}

/* Releases the cursor and its snapshot. */
void es_cursor_close(es_cursor *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->nsrcs; i++) {
    es__segment_rows_free(&c->srcs[i].rows);
    es__memtable_unref(c->srcs[i].mt);
    es__free(c->srcs[i].keys);
  }
  es__segset_unref(c->set);
  es__tomb_unref(c->tomb);
  es__free(c->srcs);
  es__free(c->heap);
  es__free(c->person);
  es__free(c);
}
