/*
 * timeline.c -- es_timeline_open(): the latest N events of one person,
 * newest first, without scanning the whole tenant.
 *
 * A timeline is gathered in one go, then handed out by es_timeline_next:
 *
 *   ids       the person's ids: the id asked for and every id linked to it
 *             by identity stitching (lib/identity.c), at most
 *             ES_IDENTITY_IDS_MAX.
 *   snapshot  under the tenant's lock, like es_scan (lib/cursor.c): the
 *             segment set, the sealed memtables and the active memtable
 *             with its published row count.
 *   gather    the sources newest first (active memtable, sealed ones from
 *             the newest, then segments from the last in manifest order),
 *             keeping the `limit` greatest events in a min-heap keyed by
 *             (time, source, position).  Segments whose Bloom filter
 *             excludes every id are never read; once the heap is full, row
 *             groups (and rows, which a segment stores in time order)
 *             older than the heap's oldest event are skipped.
 *   order     the heap, sorted by key descending.
 *
 * Sources are numbered as es_scan numbers them (segments in manifest
 * order, then sealed memtables, then the active one), and a source's rows
 * by their position in it, so the key (time, source, position) orders
 * events exactly as es_scan does; the timeline is its reverse.
 *
 * Invariants:
 *  1. The heap holds at most `limit` events, and they are the greatest
 *     keys among the matching events seen so far.
 *  2. Every event kept owns a copy of its strings (segment row groups are
 *     released as the gathering moves on), so es_timeline_next hands out
 *     strings valid until es_timeline_close.
 *  3. A failed open releases everything it took: references on the
 *     snapshot, the identity map, the copies.
 *
 * The identity map is built by its own scan of the tenant's events (the
 * per-tenant cache is a later optimization), which is the part of a
 * timeline that still reads every segment; its snapshot is taken just
 * before the timeline's own.
 */
#include <stdlib.h>

#include "base/event.h"
#include "base/mem.h"
#include "engine/identity.h"
#include "store/dbint.h"
#include "store/tomb.h"

/* One kept event, with its strings copied behind it. */
typedef struct tl_item {
  int64_t ts;
  uint32_t src; /* source index, in es_scan's numbering */
  uint64_t pos; /* position in the source (group << 32 | row, or row) */
  es_event ev;  /* strings point into text */
  char text[];
} tl_item;

struct es_timeline {
  tl_item **items; /* newest first */
  size_t n, next;
};

/* What one es_timeline_open holds while it gathers. */
typedef struct tl_run {
  const char *ids[ES_IDENTITY_IDS_MAX]; /* the person's ids */
  size_t nids;
  tl_item **heap;       /* min-heap: the oldest kept event on top */
  size_t n, cap, limit; /* kept, heap capacity (grows to limit), limit */
  es_segset *set;       /* the snapshot */
  es_memtable **mts;    /* sealed memtables (oldest first), then active */
  size_t *mt_visible;   /* rows of each memtable in the snapshot */
  size_t nmts;
  struct es_tomb *tomb; /* pending erase requests (store/tomb.h) */
} tl_run;

/* Orders kept events by (time, source, position). */
static int tl_key_cmp(const tl_item *a, int64_t ts, uint32_t src,
                      uint64_t pos) {
  if (a->ts != ts)
    return a->ts < ts ? -1 : 1;
  if (a->src != src)
    return a->src < src ? -1 : 1;
  return a->pos < pos ? -1 : a->pos > pos;
}

static int tl_less(const tl_item *a, const tl_item *b) {
  return tl_key_cmp(a, b->ts, b->src, b->pos) < 0;
}

static void tl_sift_down(tl_run *r, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < r->n && tl_less(r->heap[l], r->heap[m]))
      m = l;
    if (l + 1 < r->n && tl_less(r->heap[l + 1], r->heap[m]))
      m = l + 1;
    if (m == i)
      return;
    tl_item *t = r->heap[i];
    r->heap[i] = r->heap[m];
    r->heap[m] = t;
    i = m;
  }
}

static void tl_sift_up(tl_run *r, size_t i) {
  while (i > 0 && tl_less(r->heap[i], r->heap[(i - 1) / 2])) {
    tl_item *t = r->heap[i];
    r->heap[i] = r->heap[(i - 1) / 2];
    r->heap[(i - 1) / 2] = t;
    i = (i - 1) / 2;
  }
}

/* Whether nothing at time ts (or older) can enter the full heap. */
static int tl_older_than_kept(const tl_run *r, int64_t ts) {
  return r->n == r->limit && ts < r->heap[0]->ts;
}

/* Whether the event's user_id or anonymous_id is one of the person's. */
static int tl_match(const tl_run *r, const char *anon, const char *user) {
  for (size_t i = 0; i < r->nids; i++)
    if ((anon && strcmp(anon, r->ids[i]) == 0) ||
        (user && strcmp(user, r->ids[i]) == 0))
      return 1;
  return 0;
}

/* A copy of ev with its strings behind it, in one allocation. */
static int tl_item_new(const es_event *ev, uint32_t src, uint64_t pos,
                       tl_item **item_out) {
  size_t bytes = 0;
  for (int f = 0; f < ES_NSTR; f++) {
    const char *s = es__ev_cstr(ev, f);
    bytes += s ? strlen(s) + 1 : 0;
  }
  tl_item *it = es__malloc(sizeof(tl_item) + bytes);
  if (!it)
    return ES_NOMEM_BKPT();
  it->ts = ev->ts_us;
  it->src = src;
  it->pos = pos;
  it->ev = *ev;
  char *p = it->text;
  for (int f = 0; f < ES_NSTR; f++) {
    const char *s = es__ev_cstr(ev, f);
    if (s) {
      size_t len = strlen(s) + 1;
      memcpy(p, s, len);
      *es__ev_str(&it->ev, f) = p;
      p += len;
    }
  }
  *item_out = it;
  return ES_OK;
}

/* Offers a matching event: kept if the heap has room or it is newer than
 * the oldest kept one (which it then replaces). */
static int tl_offer(tl_run *r, const es_event *ev, uint32_t src, uint64_t pos) {
  if (es__tomb_hides(r->tomb, ev->anonymous_id, ev->user_id, ev->previous_id))
    return ES_OK; /* a pending erase request's row */
  if (r->n == r->limit && tl_key_cmp(r->heap[0], ev->ts_us, src, pos) >= 0)
    return ES_OK;
  if (r->n < r->limit)
    ES_TRY(es__grow((void **)&r->heap, &r->cap, r->n + 1, sizeof(tl_item *)));
  tl_item *it = NULL;
  ES_TRY(tl_item_new(ev, src, pos, &it));
  if (r->n == r->limit) {
    es__free(r->heap[0]);
    r->heap[0] = it;
    tl_sift_down(r, 0);
  } else {
    r->heap[r->n++] = it;
    tl_sift_up(r, r->n - 1);
  }
  return ES_OK;
}

/* Gathers from memtable rows [0, visible) of source src. */
static int tl_gather_memtable(tl_run *r, es_memtable *mt, size_t visible,
                              uint32_t src) {
  for (size_t i = visible; i-- > 0;) {
    const es_mrow *row = es__memtable_row(mt, i);
    if (tl_older_than_kept(r, row->ts_us))
      continue; /* memtable rows are in append order, not time order */
    es_event ev;
    size_t used;
    ES_TRY(es__event_decode(row->row, ES_EVENT_BYTES_MAX, &ev, &used));
    if (tl_match(r, ev.anonymous_id, ev.user_id))
      ES_TRY(tl_offer(r, &ev, src, i));
  }
  return ES_OK;
}

/* Whether the segment's Bloom filter admits any of the person's ids. */
static int tl_segment_may_match(const tl_run *r, const es_segment *seg) {
  for (size_t i = 0; i < r->nids; i++)
    if (es__segment_may_contain(seg, r->ids[i]))
      return 1;
  return 0;
}

/* Prepares the person's ids as keys for the id columns of rows as read:
 * keys[2 * j] for the anonymous id, keys[2 * j + 1] for the user id. */
static void tl_keys(const tl_run *r, const es_seg_rows *rows,
                    es_seg_key *keys) {
  for (size_t j = 0; j < r->nids; j++) {
    es__seg_rows_key(rows, ES_STR_anonymous_id, r->ids[j], &keys[2 * j]);
    es__seg_rows_key(rows, ES_STR_user_id, r->ids[j], &keys[2 * j + 1]);
  }
}

/* tl_match for row i of a row group read with packed id columns. */
static int tl_match_row(const tl_run *r, const es_seg_rows *rows, size_t i,
                        const es_seg_key *keys) {
  for (size_t j = 0; j < r->nids; j++)
    if (es__seg_rows_eq(rows, ES_STR_anonymous_id, i, &keys[2 * j]) ||
        es__seg_rows_eq(rows, ES_STR_user_id, i, &keys[2 * j + 1]))
      return 1;
  return 0;
}

/* Gathers from one segment, newest row group first.  Row groups are read
 * with their uuid-like columns packed (segment.h): the ids are compared
 * packed, and only the rows kept are expanded, not every row's ids and
 * message id. */
static int tl_gather_segment(tl_run *r, es_segment *seg, uint32_t src,
                             es_seg_rows *rows, es_seg_key *keys) {
  if (!tl_segment_may_match(r, seg))
    return ES_OK;
  for (uint32_t g = seg->ngroups; g-- > 0;) {
    if (tl_older_than_kept(r, seg->groups[g].max_ts))
      break; /* groups are in time order: every earlier one is older */
    /* the two id columns first: most groups hold none of the person's
     * rows, and then the other columns are never read */
    ES_TRY(es__segment_read_group_packed(
        seg, g, ES_FIELD_ANONYMOUS_ID | ES_FIELD_USER_ID, ES_FIELD_ALL, rows));
    tl_keys(r, rows, keys);
    int any = 0;
    for (size_t i = rows->n; !any && i-- > 0;) {
      if (tl_older_than_kept(r, rows->ts[i]))
        break;
      any = tl_match_row(r, rows, i, keys);
    }
    if (!any)
      continue;
    ES_TRY(es__segment_read_group_add(
        seg, g, ES_FIELD_ALL & ~(ES_FIELD_ANONYMOUS_ID | ES_FIELD_USER_ID),
        ES_FIELD_ALL, rows));
    for (size_t i = rows->n; i-- > 0;) {
      if (tl_older_than_kept(r, rows->ts[i]))
        break;
      if (!tl_match_row(r, rows, i, keys))
        continue;
      /* the packed fields' values, expanded for this row only */
      char text[ES_NSTR][ES_SEG_SHAPE_LEN_MAX + 1];
      es_event ev;
      memset(&ev, 0, sizeof(ev));
      ev.ts_us = rows->ts[i];
      ev.recv_us = rows->recv[i];
      ev.type = rows->type[i];
      for (int f = 0; f < ES_NSTR; f++)
        *es__ev_str(&ev, f) = es__seg_rows_get(rows, f, i, text[f]);
      ES_TRY(tl_offer(r, &ev, src, (uint64_t)g << 32 | i));
    }
  }
  return ES_OK;
}

/* Takes the snapshot of the tenant's sources (see the file comment). */
static int tl_snapshot(tl_run *r, es_tenant *t) {
  int rc = ES_OK;
  pthread_mutex_lock(&t->mu);
  size_t nmem = t->nimm + (t->active ? 1 : 0);
  r->set = t->segs;
  atomic_fetch_add(&r->set->refs, 1);
  r->mts = es__calloc(nmem ? nmem : 1, sizeof(es_memtable *));
  r->mt_visible = es__calloc(nmem ? nmem : 1, sizeof(size_t));
  if (!r->mts || !r->mt_visible) {
    rc = ES_NOMEM_BKPT();
  } else {
    for (size_t i = 0; i < nmem; i++) {
      es_memtable *mt = i < t->nimm ? t->imm[i] : t->active;
      es__memtable_ref(mt);
      r->mts[r->nmts] = mt;
      r->mt_visible[r->nmts++] = es__memtable_visible(mt);
    }
  }
  pthread_mutex_unlock(&t->mu);
  return rc;
}

/* Every source, newest first, into the heap. */
static int tl_gather(tl_run *r) {
  size_t nsegs = r->set->n;
  for (size_t i = r->nmts; i-- > 0;)
    ES_TRY(tl_gather_memtable(r, r->mts[i], r->mt_visible[i],
                              (uint32_t)(nsegs + i)));
  es_seg_rows rows;
  memset(&rows, 0, sizeof(rows));
  es_seg_key *keys = es__calloc(2 * (r->nids ? r->nids : 1), sizeof(*keys));
  if (!keys)
    return ES_NOMEM_BKPT();
  int rc = ES_OK;
  for (size_t i = nsegs; rc == ES_OK && i-- > 0;)
    rc = tl_gather_segment(r, r->set->segs[i], (uint32_t)i, &rows, keys);
  es__segment_rows_free(&rows);
  es__free(keys);
  return rc;
}

/* qsort: newest first. */
static int tl_item_cmp_desc(const void *pa, const void *pb) {
  const tl_item *a = *(tl_item *const *)pa, *b = *(tl_item *const *)pb;
  return -tl_key_cmp(a, b->ts, b->src, b->pos);
}

/* Releases what a run holds (the kept events too, unless taken). */
static void tl_run_free(tl_run *r) {
  for (size_t i = 0; i < r->n; i++)
    es__free(r->heap[i]);
  es__free(r->heap);
  for (size_t i = 0; i < r->nmts; i++)
    es__memtable_unref(r->mts[i]);
  es__free(r->mts);
  es__free(r->mt_visible);
  if (r->set)
    es__segset_unref(r->set);
}

/* Opens a person's timeline; see eventstore.h. */
int es_timeline_open(es_db *db, const char *tenant, const char *person,
                     size_t limit, es_timeline **tl_out) {
  es__error_clear();
  if (!tl_out)
    return ES_INVAL_BKPT("es_timeline_open: tl_out is NULL");
  *tl_out = NULL;
  if (!db || !person)
    return ES_INVAL_BKPT("es_timeline_open: NULL handle or person");
  if (limit == 0)
    return ES_INVAL_BKPT("es_timeline_open: limit must be at least 1");
  ES_TRY(es__tenant_check(tenant));
  if (atomic_load(&db->closing))
    return ES_ERR(ES_ECLOSED, "database is closing");
  tl_run r;
  memset(&r, 0, sizeof(r));
  r.limit = limit > ES_TIMELINE_EVENTS_MAX ? ES_TIMELINE_EVENTS_MAX : limit;
  es_identity *map = NULL;
  es_timeline *tl = NULL;
  es_tenant *t = NULL;
  int rc = ES_OK;
  ES_CHECK(es__identity_load(db, tenant, &map));
  r.nids = es__identity_ids(map, person, r.ids);
  ES_CHECK(es__tenant_get(db, tenant, 0, &t));
  if (t) {
    r.tomb = es__tomb_get(db, t);
    ES_CHECK(tl_snapshot(&r, t));
    ES_CHECK(tl_gather(&r));
  }
  if (!(tl = es__calloc(1, sizeof(*tl))))
    ES_CHECK(ES_NOMEM_BKPT());
  if (r.n > 1)
    qsort(r.heap, r.n, sizeof(tl_item *), tl_item_cmp_desc);
  tl->items = r.heap; /* ownership of the events passes to the handle */
  tl->n = r.n;
  r.heap = NULL;
  r.n = 0;
  *tl_out = tl;
err:
  tl_run_free(&r);
  es__tomb_unref(r.tomb);
  es__identity_free(map);
  return rc;
}

/* The next event, newest first; see eventstore.h. */
int es_timeline_next(es_timeline *tl, es_event *ev_out) {
  if (!tl || !ev_out)
    return ES_INVAL_BKPT("es_timeline_next: NULL argument");
  if (tl->next >= tl->n)
    return 0;
  *ev_out = tl->items[tl->next++]->ev;
  return 1;
}

/* Releases a timeline; see eventstore.h. */
void es_timeline_close(es_timeline *tl) {
  if (!tl)
    return;
  for (size_t i = 0; i < tl->n; i++)
    es__free(tl->items[i]);
  es__free(tl->items);
  es__free(tl);
}
