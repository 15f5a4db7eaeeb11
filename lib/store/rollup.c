/*
 * rollup.c -- building, encoding and reading rollups; see rollup.h.
 *
 * File layout (docs/FORMAT.md, "Rollup files"), little-endian:
 *   0  "ESROLLUP"            8 bytes
 *   8  u32 version (3; 1, 2 read) u32 flags (0)
 *   16 u64 raw length        u64 compressed length
 *   32 u64 XXH3 of the compressed body (seed ES_RLP_SEED)
 *   40 u64 XXH3 of bytes 0..39 (seed ES_RLP_SEED)
 *   48 the body, LZ4-compressed
 * Body: varint nstrs, then each string as varint length + bytes, sorted
 * by bytes (id i + 1 is the i-th); varint ncells, then per cell:
 * svarint minute delta (from the previous cell; the first from 0), u8
 * type, [version 2 on: u8 dim, and when dim != 0 varint value id instead
 * of the next two], varint event id, varint path id, varint count, the
 * sketch (hll.h; version 3 writes the packed sparse kinds).
 */
#include <assert.h>
#include <stdlib.h>

#include "base/event.h"
#include "base/mem.h"
#include "store/dbint.h"
#include "store/dims.h"
#include "store/gate.h"
#include "store/rollup.h"
#include "store/segment.h"

#define ES_RLP_MAGIC "ESROLLUP"
#define ES_RLP_VERSION ES_ROLLUP_VERSION
#define ES_RLP_HEADER 48
#define ES_RLP_SEED UINT64_C(0x726c70)
#define ES_RLP_RAW_MAX (UINT64_C(1) << 32)

static int64_t rollup_minute(int64_t ts) {
  int64_t m = ts / ES_MINUTE_US;
  return (ts % ES_MINUTE_US < 0) ? m - 1 : m;
}

uint64_t es__rollup_person_hash(const es_event *ev) {
  const char *p = ev->anonymous_id && ev->anonymous_id[0] ? ev->anonymous_id
                  : ev->user_id && ev->user_id[0]         ? ev->user_id
                                                          : NULL;
  if (!p)
    return 0;
  uint64_t h = es__hash64(p, strlen(p), UINT64_C(0x9e3779b97f4a7c15));
  return h ? h : 1;
}

/* Hashed as bytes: no padding (the explicit zero `pad` fills it). */
typedef struct rcell_key {
  int64_t minute;
  uint32_t event, path, value, typedim; /* type | dim << 8 */
} rcell_key;
_Static_assert(sizeof(rcell_key) == 24, "rcell_key has padding");

/* Whether cell `val` - 1 has the key `key`. */
static int rollup_cell_eq(const void *ctx, uint32_t val, const void *key) {
  const es_rcell *c = &((const es_rollup *)ctx)->cells[val - 1];
  const rcell_key *k = key;
  return c->minute == k->minute && c->event == k->event && c->path == k->path &&
         c->value == k->value &&
         (c->type | (uint32_t)c->dim << 8) == k->typedim;
}

/* The cell of key k, created (empty) when new.  The pointer is valid
 * until the next call. */
static int rollup_cell(es_rollup *r, const rcell_key *k, es_rcell **c_out) {
  ES_TRY(es__htab_reserve(&r->index, 1));
  uint64_t h = es__hash64(k, sizeof(*k), 3);
  size_t i = es__htab_probe(&r->index, h, rollup_cell_eq, r, k);
  if (r->index.slots[i].val == 0) {
    ES_TRY(es__grow((void **)&r->cells, &r->cap, r->n + 1, sizeof(es_rcell)));
    es_rcell *c = &r->cells[r->n];
    memset(c, 0, sizeof(*c));
    c->minute = k->minute;
    c->event = k->event;
    c->path = k->path;
    c->value = k->value;
    c->type = (uint8_t)(k->typedim & 0xff);
    c->dim = (uint8_t)(k->typedim >> 8);
    es__htab_set(&r->index, i, h, (uint32_t)++r->n);
    r->sorted = 0;
  }
  *c_out = &r->cells[r->index.slots[i].val - 1];
  return ES_OK;
}

/* s interned in r, memoised in slot `slot` of r->last_id: an equal
 * string repeats the id without hashing it (ids are unique per string,
 * so the answer is the same). */
static int rollup_intern(es_rollup *r, int slot, const char *s,
                         uint32_t *id_out) {
  uint32_t id = r->last_id[slot];
  if (!s) { /* absent: id 0 (es__strtab_intern's answer too) */
    *id_out = 0;
    return ES_OK;
  }
  if (id && id < r->strs.n && strcmp(r->strs.strs[id], s) == 0) {
    *id_out = id;
    return ES_OK;
  }
  ES_TRY(es__strtab_intern(&r->strs, s, id_out));
  r->last_id[slot] = *id_out;
  return ES_OK;
}

/* Counts a person hash (0: none) into the cell of key k; `slot` names
 * the memo of r->last_cell to try first (keys are unique, so a cell
 * whose key equals k is k's cell). */
static int rollup_count(es_rollup *r, int slot, const rcell_key *k,
                        uint64_t h) {
  es_rcell *c;
  uint32_t last = r->last_cell[slot];
  if (last && last <= r->n && rollup_cell_eq(r, last, k)) {
    c = &r->cells[last - 1];
  } else {
    ES_TRY(rollup_cell(r, k, &c));
    r->last_cell[slot] = (uint32_t)(c - r->cells) + 1;
  }
  if (h)
    ES_TRY(es__hll_add(&c->persons, h));
  c->count++;
  return ES_OK;
}

/* Counts one event into its cell and its dimension cells; see rollup.h. */
int es__rollup_add(es_rollup *r, const es_event *ev) {
  int64_t minute = rollup_minute(ev->ts_us);
  rcell_key k = {minute, 0, 0, 0, (uint32_t)ev->type};
  ES_TRY(rollup_intern(r, 0, ev->event, &k.event));
  ES_TRY(rollup_intern(r, 1, ev->path, &k.path));
  uint64_t h = es__rollup_person_hash(ev);
  ES_TRY(rollup_count(r, 0, &k, h));
  es_dims dims;
  es__dims_of(ev, &dims);
  int64_t block = minute - minute % ES_ROLLUP_DIM_MINUTES; /* minute >= 0 */
  for (uint32_t d = 1; d < ES_DIM_COUNT; d++) {
    if (ES_DIM_PAGE_ONLY(d) && ev->type != ES_TYPE_PAGE)
      continue; /* no value: not counted (rollup.h) */
    rcell_key dk = {block, 0, 0, 0, (uint32_t)ev->type | d << 8};
    ES_TRY(rollup_intern(r, 1 + (int)d, dims.v[d], &dk.value));
    ES_TRY(rollup_count(r, (int)d, &dk, h));
  }
  return ES_OK;
}

void es__rollup_free(es_rollup *r) {
  es_rollup *coarse[3] = {atomic_load(&r->hours), atomic_load(&r->days),
                          atomic_load(&r->types)};
  for (int i = 0; i < 3; i++) {
    if (coarse[i]) {
      es__rollup_free(coarse[i]);
      es__free(coarse[i]);
    }
  }
  for (size_t i = 0; i < r->n; i++)
    es__hll_free(&r->cells[i].persons);
  es__free(r->cells);
  es__htab_free(&r->index);
  es__strtab_free(&r->strs);
  memset(r, 0, sizeof(*r));
}

/* Adds a cell of another rollup (strings re-interned) into r, keyed at
 * `minute`, its dimension value replaced by value_as unless NULL. */
static int rollup_add_cell_as(es_rollup *r, const es_rollup *from,
                              const es_rcell *c, int64_t minute,
                              const char *value_as) {
  rcell_key k = {minute, 0, 0, 0, c->type | (uint32_t)c->dim << 8};
  if (c->value)
    ES_TRY(es__strtab_intern(
        &r->strs, value_as ? value_as : es__strtab_str(&from->strs, c->value),
        &k.value));
  if (c->event)
    ES_TRY(es__strtab_intern(&r->strs, es__strtab_str(&from->strs, c->event),
                             &k.event));
  if (c->path)
    ES_TRY(es__strtab_intern(&r->strs, es__strtab_str(&from->strs, c->path),
                             &k.path));
  es_rcell *d;
  ES_TRY(rollup_cell(r, &k, &d));
  d->count += c->count;
  return es__hll_merge(&d->persons, &c->persons);
}

/* Adds a cell of another rollup keyed at `minute`; see rollup.h. */
int es__rollup_add_cell(es_rollup *r, const es_rollup *from, const es_rcell *c,
                        int64_t minute) {
  return rollup_add_cell_as(r, from, c, minute, NULL);
}

/* --- bounding the dimensions' values -------------------------------------
 *
 * Per dimension, the values other than ES_ROLLUP_DIM_OTHER itself are
 * ranked by their count over the whole rollup (ties by bytes); beyond
 * the first ES_ROLLUP_DIM_TOP they are counted as ES_ROLLUP_DIM_OTHER.  A
 * pure function of the cells (invariant 2), and idempotent: a bounded
 * rollup has at most ES_ROLLUP_DIM_TOP values besides "(other)". */

typedef struct bound_ctx {
  const es_strtab *strs;
  const uint64_t *total; /* by value id, of the dimension being ranked */
} bound_ctx;

static int cmp_value_rank(const void *pa, const void *pb, void *ud) {
  const bound_ctx *b = ud;
  uint32_t x = *(const uint32_t *)pa, y = *(const uint32_t *)pb;
  if (b->total[x] != b->total[y])
    return b->total[x] > b->total[y] ? -1 : 1;
  return strcmp(es__strtab_str(b->strs, x), es__strtab_str(b->strs, y));
}

/* *out = r with the values beyond the top folded (heap, sorted as r
 * was), or NULL when no dimension has too many. */
static int rollup_bounded(const es_rollup *r, es_rollup **out) {
  *out = NULL;
  size_t nstr = es__strtab_count(&r->strs);
  uint32_t other = es__strtab_find(&r->strs, ES_ROLLUP_DIM_OTHER);
  uint64_t *total = es__calloc(nstr * ES_DIM_COUNT, sizeof(uint64_t));
  uint8_t *fold = es__calloc(nstr * ES_DIM_COUNT, 1);
  uint32_t *ids = es__malloc(nstr * sizeof(uint32_t));
  int rc = total && fold && ids ? ES_OK : ES_NOMEM_BKPT(), any = 0;
  for (size_t i = 0; rc == ES_OK && i < r->n; i++) {
    const es_rcell *c = &r->cells[i];
    if (c->dim && c->value && c->value != other)
      total[c->dim * nstr + c->value] += c->count;
  }
  for (int d = 1; rc == ES_OK && d < ES_DIM_COUNT; d++) {
    size_t n = 0;
    for (uint32_t v = 1; v < nstr; v++)
      if (total[d * nstr + v])
        ids[n++] = v;
    if (n <= ES_ROLLUP_DIM_TOP)
      continue;
    bound_ctx ctx = {&r->strs, total + d * nstr};
    qsort_r(ids, n, sizeof(uint32_t), cmp_value_rank, &ctx);
    for (size_t j = ES_ROLLUP_DIM_TOP; j < n; j++)
      fold[d * nstr + ids[j]] = 1;
    any = 1;
  }
  es_rollup *h = NULL;
  if (rc == ES_OK && any && !(h = es__calloc(1, sizeof(*h))))
    rc = ES_NOMEM_BKPT();
  for (size_t i = 0; rc == ES_OK && h && i < r->n; i++) {
    const es_rcell *c = &r->cells[i];
    rc = rollup_add_cell_as(
        h, r, c, c->minute,
        c->dim && fold[c->dim * nstr + c->value] ? ES_ROLLUP_DIM_OTHER : NULL);
  }
  es__free(total);
  es__free(fold);
  es__free(ids);
  if (rc < 0 && h) {
    es__rollup_free(h);
    es__free(h);
    return rc;
  }
  *out = h;
  return rc;
}

/* By minute, then dimension (invariant 3's order, as far as queries
 * use it: run_cells skips a minute's cells of other dimensions). */
static int cell_minute_cmp(const void *a, const void *b) {
  const es_rcell *x = a, *y = b;
  if (x->minute != y->minute)
    return x->minute < y->minute ? -1 : 1;
  return x->dim < y->dim ? -1 : x->dim > y->dim;
}

int es__rollup_coarse(const es_rollup *r, int period, const es_rollup **out) {
  es_rollup *_Atomic *slot =
      (es_rollup * _Atomic *)(period == 60 ? &r->hours : &r->days);
  es_rollup *h = atomic_load(slot);
  *out = NULL;
  if (h) {
    *out = h;
    return ES_OK;
  }
  const es_rollup *from = r; /* days are summed from the hours */
  if (period != 60)
    ES_TRY(es__rollup_coarse(r, 60, &from));
  if (!(h = es__calloc(1, sizeof(*h))))
    return ES_NOMEM_BKPT();
  int rc = ES_OK;
  for (size_t i = 0; rc == ES_OK && i < from->n; i++) {
    int64_t m = from->cells[i].minute; /* >= 0 (event times are) */
    rc = es__rollup_add_cell(h, from, &from->cells[i], m - m % period);
  }
  if (rc < 0) {
    es__rollup_free(h);
    es__free(h);
    return rc;
  }
  es__htab_free(&h->index); /* built: the index is not needed any more */
  qsort(h->cells, h->n, sizeof(es_rcell), cell_minute_cmp);
  h->sorted = 1;
  es_rollup *none = NULL; /* another thread may have built it too */
  if (!atomic_compare_exchange_strong(slot, &none, h)) {
    es__rollup_free(h);
    es__free(h);
    h = none;
  }
  *out = h;
  return ES_OK;
}

/* Appends the non-zero counts of acc (by type) as cells of `minute`,
 * zeroing acc. */
static int type_counts_flush(es_rollup *h, int64_t minute, uint64_t *acc) {
  for (int type = 0; type < 256; type++) {
    if (!acc[type])
      continue;
    ES_TRY(es__grow((void **)&h->cells, &h->cap, h->n + 1, sizeof(es_rcell)));
    memset(&h->cells[h->n], 0, sizeof(es_rcell));
    h->cells[h->n].minute = minute;
    h->cells[h->n].type = (uint8_t)type;
    h->cells[h->n++].count = acc[type];
    acc[type] = 0;
  }
  return ES_OK;
}

int es__rollup_type_counts(const es_rollup *r, const es_rollup **out) {
  es_rollup *_Atomic *slot = (es_rollup * _Atomic *)&r->types;
  es_rollup *h = atomic_load(slot);
  *out = h;
  if (h)
    return ES_OK;
  assert(r->sorted);
  if (!(h = es__calloc(1, sizeof(*h))))
    return ES_NOMEM_BKPT();
  uint64_t acc[256] = {0}; /* the minute's counts by type */
  int rc = ES_OK;
  for (size_t i = 0; rc == ES_OK && i < r->n; i++) {
    const es_rcell *c = &r->cells[i];
    if (i > 0 && c->minute != r->cells[i - 1].minute) /* minutes ascend */
      rc = type_counts_flush(h, r->cells[i - 1].minute, acc);
    if (!c->dim)
      acc[c->type] += c->count;
  }
  if (rc == ES_OK && r->n > 0)
    rc = type_counts_flush(h, r->cells[r->n - 1].minute, acc);
  h->sorted = 1;
  es_rollup *none = NULL; /* another thread may have built it too */
  if (rc < 0 || !atomic_compare_exchange_strong(slot, &none, h)) {
    es__rollup_free(h);
    es__free(h);
    h = none;
  }
  *out = h;
  return rc;
}

size_t es__rollup_seek(const es_rollup *r, int64_t minute) {
  size_t lo = 0, hi = r->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->cells[mid].minute < minute)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* --- canonical encoding -------------------------------------------------- */

typedef struct enc_ctx {
  const es_rollup *r;
  uint32_t *rank; /* by string id: position in sorted order + 1 */
} enc_ctx;

static int cmp_str_id(const void *a, const void *b, void *ud) {
  const es_strtab *t = ud;
  return strcmp(t->strs[*(const uint32_t *)a], t->strs[*(const uint32_t *)b]);
}

static int cmp_cell_idx(const void *pa, const void *pb, void *ud) {
  const enc_ctx *ctx = ud;
  const es_rcell *a = &ctx->r->cells[*(const uint32_t *)pa];
  const es_rcell *b = &ctx->r->cells[*(const uint32_t *)pb];
  const uint32_t *rank = ctx->rank;
  if (a->minute != b->minute)
    return a->minute < b->minute ? -1 : 1;
  if (a->dim != b->dim)
    return a->dim < b->dim ? -1 : 1;
  if (a->type != b->type)
    return a->type < b->type ? -1 : 1;
  if (rank[a->event] != rank[b->event])
    return rank[a->event] < rank[b->event] ? -1 : 1;
  if (rank[a->path] != rank[b->path])
    return rank[a->path] < rank[b->path] ? -1 : 1;
  return rank[a->value] < rank[b->value] ? -1 : rank[a->value] > rank[b->value];
}

/* The body: strings in sorted order, then cells in sorted order. */
static int rollup_body(const es_rollup *r, es_buf *b) {
  size_t nstrs = es__strtab_count(&r->strs) - 1;
  uint32_t *order = es__malloc((nstrs + 1) * sizeof(uint32_t));
  uint32_t *rank = es__calloc(nstrs + 1, sizeof(uint32_t));
  uint32_t *cells = es__malloc((r->n ? r->n : 1) * sizeof(uint32_t));
  int rc = order && rank && cells ? ES_OK : ES_NOMEM_BKPT();
  if (rc == ES_OK) {
    for (size_t i = 0; i < nstrs; i++)
      order[i] = (uint32_t)(i + 1);
    for (size_t i = 0; i < r->n; i++)
      cells[i] = (uint32_t)i;
    enc_ctx ctx = {r, rank};
    qsort_r(order, nstrs, sizeof(uint32_t), cmp_str_id, (void *)&r->strs);
    for (size_t i = 0; i < nstrs; i++)
      rank[order[i]] = (uint32_t)(i + 1);
    qsort_r(cells, r->n, sizeof(uint32_t), cmp_cell_idx, &ctx);
    rc = es__buf_put_varint(b, nstrs);
  }
  for (size_t i = 0; rc == ES_OK && i < nstrs; i++) {
    const char *s = r->strs.strs[order[i]];
    size_t len = strlen(s);
    rc = es__buf_put_varint(b, len);
    if (rc == ES_OK)
      rc = es__buf_put(b, s, len);
  }
  if (rc == ES_OK)
    rc = es__buf_put_varint(b, r->n);
  int64_t prev = 0;
  for (size_t i = 0; rc == ES_OK && i < r->n; i++) {
    const es_rcell *c = &r->cells[cells[i]];
    rc = es__buf_put_svarint(b, c->minute - prev);
    prev = c->minute;
    if (rc == ES_OK)
      rc = es__buf_put_u8(b, c->type);
    if (rc == ES_OK)
      rc = es__buf_put_u8(b, c->dim);
    if (rc == ES_OK && c->dim)
      rc = es__buf_put_varint(b, rank[c->value]);
    if (rc == ES_OK && !c->dim)
      rc = es__buf_put_varint(b, rank[c->event]);
    if (rc == ES_OK && !c->dim)
      rc = es__buf_put_varint(b, rank[c->path]);
    if (rc == ES_OK)
      rc = es__buf_put_varint(b, c->count);
    if (rc == ES_OK)
      rc = es__hll_put(b, &c->persons);
  }
  es__free(order);
  es__free(rank);
  es__free(cells);
  return rc;
}

/* Encodes the whole file; see rollup.h. */
int es__rollup_encode(const es_rollup *r, es_buf *out) {
  es_buf body = {0};
  es_rollup *bounded = NULL;
  int rc = rollup_bounded(r, &bounded);
  if (rc == ES_OK)
    rc = rollup_body(bounded ? bounded : r, &body);
  if (bounded) {
    es__rollup_free(bounded);
    es__free(bounded);
  }
  size_t bound = es__lz4_bound(body.len);
  if (rc == ES_OK)
    rc = es__buf_reserve(out, ES_RLP_HEADER + bound);
  if (rc == ES_OK) {
    uint8_t *h = out->data + out->len;
    size_t clen =
        es__lz4_compress(body.data, body.len, h + ES_RLP_HEADER, bound);
    if (clen == 0 && body.len > 0) {
      rc = ES_ERR(ES_EIO, "rollup: LZ4 compression failed");
    } else {
      memcpy(h, ES_RLP_MAGIC, 8);
      es__le32(h + 8, ES_RLP_VERSION);
      es__le32(h + 12, 0);
      es__le64(h + 16, body.len);
      es__le64(h + 24, clen);
      es__le64(h + 32, es__hash64(h + ES_RLP_HEADER, clen, ES_RLP_SEED));
      es__le64(h + 40, es__hash64(h, 40, ES_RLP_SEED));
      out->len += ES_RLP_HEADER + clen;
    }
  }
  es__buf_free(&body);
  return rc;
}

/* --- decoding ------------------------------------------------------------ */

static int rollup_parse(es_rd *rd, uint32_t version, es_rollup *r) {
  uint64_t nstrs = es__rd_varint(rd);
  if (nstrs > (uint64_t)(rd->end - rd->p))
    rd->bad = 1;
  const char *prev = NULL;
  for (uint64_t i = 0; i < nstrs && !rd->bad; i++) {
    uint64_t len = es__rd_varint(rd);
    const uint8_t *p = es__rd_bytes(rd, len);
    if (!p)
      break;
    char *s = es__malloc(len + 1);
    if (!s)
      return ES_NOMEM_BKPT();
    memcpy(s, p, len);
    s[len] = '\0';
    uint32_t id = 0;
    int rc = es__strtab_intern(&r->strs, s, &id);
    /* sorted, distinct, no NUL inside */
    if (rc == ES_OK &&
        (id != i + 1 || strlen(s) != len || (prev && strcmp(prev, s) >= 0)))
      rd->bad = 1;
    es__free(s);
    ES_TRY(rc);
    prev = es__strtab_str(&r->strs, id);
  }
  uint64_t ncells = es__rd_varint(rd);
  if (ncells > (uint64_t)(rd->end - rd->p))
    rd->bad = 1;
  if (!rd->bad && ncells > 0) {
    r->cells = es__calloc(ncells, sizeof(es_rcell));
    if (!r->cells)
      return ES_NOMEM_BKPT();
    r->cap = ncells;
  }
  int64_t minute = 0;
  for (uint64_t i = 0; i < ncells && !rd->bad; i++) {
    es_rcell *c = &r->cells[r->n++];
    /* event times are >= 0, so minutes are in [0, INT64_MAX / minute] */
    if (__builtin_add_overflow(minute, es__rd_svarint(rd), &minute) ||
        minute < 0 || minute > INT64_MAX / ES_MINUTE_US)
      rd->bad = 1;
    c->minute = minute;
    c->type = es__rd_u8(rd);
    c->dim = version >= 2 ? es__rd_u8(rd) : 0;
    uint64_t value = c->dim ? es__rd_varint(rd) : 0;
    uint64_t ev = c->dim ? 0 : es__rd_varint(rd);
    uint64_t path = c->dim ? 0 : es__rd_varint(rd);
    c->count = es__rd_varint(rd);
    if (ev > nstrs || path > nstrs || value > nstrs || c->count == 0 ||
        c->type == 0 || c->type > ES_TYPE_GROUP || c->dim >= ES_DIM_COUNT ||
        (c->dim && c->minute % ES_ROLLUP_DIM_MINUTES != 0) ||
        (i > 0 && c[-1].minute > c->minute))
      rd->bad = 1;
    c->event = (uint32_t)ev;
    c->path = (uint32_t)path;
    c->value = (uint32_t)value;
    ES_TRY(es__hll_get(rd, &c->persons));
  }
  if (rd->p != rd->end)
    rd->bad = 1;
  r->sorted = 1;
  r->version = (int)version;
  return ES_OK;
}

/* Checks an image's header and body checksums; see rollup.h. */
int es__rollup_image_check(const uint8_t *p, size_t n, const char *path) {
  if (n < ES_RLP_HEADER || memcmp(p, ES_RLP_MAGIC, 8) != 0 ||
      es__get_le64(p + 40) != es__hash64(p, 40, ES_RLP_SEED))
    return ES_CORRUPT_BKPT("%s: offset 0: bad rollup header", path);
  uint32_t version = es__get_le32(p + 8);
  if (version > ES_RLP_VERSION)
    return ES_ERR(ES_EVERSION, "%s: rollup version %u is newer than %u", path,
                  version, ES_RLP_VERSION);
  if (version == 0)
    return ES_CORRUPT_BKPT("%s: offset 8: rollup version 0", path);
  uint64_t raw = es__get_le64(p + 16), clen = es__get_le64(p + 24);
  if (clen != n - ES_RLP_HEADER || raw > ES_RLP_RAW_MAX ||
      es__get_le64(p + 32) != es__hash64(p + ES_RLP_HEADER, clen, ES_RLP_SEED))
    return ES_CORRUPT_BKPT("%s: offset %d: rollup body checksum mismatch", path,
                           ES_RLP_HEADER);
  return ES_OK;
}

/* Decodes a file image; see rollup.h. */
int es__rollup_decode(const uint8_t *p, size_t n, const char *path,
                      es_rollup *r) {
  memset(r, 0, sizeof(*r));
  ES_TRY(es__rollup_image_check(p, n, path));
  uint32_t version = es__get_le32(p + 8);
  uint64_t raw = es__get_le64(p + 16), clen = es__get_le64(p + 24);
  uint8_t *body = es__malloc(raw ? raw : 1);
  if (!body)
    return ES_NOMEM_BKPT();
  int rc = es__lz4_decompress(p + ES_RLP_HEADER, clen, body, raw);
  if (rc == ES_OK) {
    es_rd rd = es__rd(body, raw);
    rc = rollup_parse(&rd, version, r);
    if (rc == ES_OK && rd.bad)
      rc = ES_CORRUPT_BKPT("%s: offset %d: malformed rollup body", path,
                           ES_RLP_HEADER);
  } else {
    rc = ES_CORRUPT_BKPT("%s: offset %d: rollup body does not decompress", path,
                         ES_RLP_HEADER);
  }
  es__free(body);
  if (rc < 0)
    es__rollup_free(r);
  else
    r->file_hash = es__get_le64(p + 40);
  return rc;
}

int es__rollup_path(const char *seg_path, char *out, size_t cap) {
  size_t len = strlen(seg_path);
  if (len < 4 || len >= cap || strcmp(seg_path + len - 4, ".seg") != 0)
    return ES_INVAL_BKPT("not a segment path: %s", seg_path);
  memcpy(out, seg_path, len - 4);
  memcpy(out + len - 4, ".rlp", 5);
  return ES_OK;
}

int es__rollup_read(es_vfs *vfs, const char *path, es_rollup *r) {
  memset(r, 0, sizeof(*r));
  uint8_t *buf = NULL;
  size_t len = 0;
  ES_TRY(es__io_read_all(vfs, path, &buf, &len));
  int rc = es__rollup_decode(buf, len, path, r);
  es__free(buf);
  return rc;
}

int es__rollup_file_hash(es_vfs *vfs, const char *path, uint64_t *hash_out) {
  *hash_out = 0;
  es_file *f = NULL;
  ES_TRY(vfs->open(vfs, path, ES_IO_READ, &f));
  uint8_t h[ES_RLP_HEADER];
  int rc = es__io_read_exact(vfs, f, h, sizeof(h), 0, path);
  (void)vfs->close(vfs, f);
  ES_TRY(rc);
  if (memcmp(h, ES_RLP_MAGIC, 8) != 0 ||
      es__get_le64(h + 40) != es__hash64(h, 40, ES_RLP_SEED))
    return ES_CORRUPT_BKPT("%s: offset 0: bad rollup header", path);
  *hash_out = es__get_le64(h + 40);
  return ES_OK;
}

int es__rollup_verify(es_vfs *vfs, const char *path) {
  es_rollup r;
  int rc = es__rollup_read(vfs, path, &r);
  if (rc == ES_OK)
    es__rollup_free(&r);
  return rc;
}

/* --- rollups of segments ------------------------------------------------- */

/* Derives a segment's rollup from its rows; see rollup.h. */
int es__rollup_derive(es_segment *seg, es_rollup *r) {
  memset(r, 0, sizeof(*r));
  es_seg_rows rows;
  memset(&rows, 0, sizeof(rows));
  int rc = ES_OK;
  for (uint32_t g = 0; rc == ES_OK && g < seg->ngroups; g++) {
    rc = es__segment_read_group_cols(
        seg, g,
        ES_FIELD_EVENT | ES_FIELD_PATH | ES_FIELD_ANONYMOUS_ID |
            ES_FIELD_USER_ID | ES_FIELD_URL | ES_FIELD_REFERRER |
            ES_FIELD_USER_AGENT,
        &rows);
    for (size_t i = 0; rc == ES_OK && i < rows.n; i++) {
      es_event ev;
      memset(&ev, 0, sizeof(ev));
      ev.ts_us = rows.ts[i];
      ev.type = rows.type[i];
      ev.event = rows.str[ES_STR_event][i];
      ev.path = rows.str[ES_STR_path][i];
      ev.anonymous_id = rows.str[ES_STR_anonymous_id][i];
      ev.user_id = rows.str[ES_STR_user_id][i];
      ev.url = rows.str[ES_STR_url][i];
      ev.referrer = rows.str[ES_STR_referrer][i];
      ev.user_agent = rows.str[ES_STR_user_agent][i];
      rc = es__rollup_add(r, &ev);
    }
  }
  es__segment_rows_free(&rows);
  es_rollup *bounded = NULL; /* as the file holds it (invariant 2) */
  if (rc == ES_OK)
    rc = rollup_bounded(r, &bounded);
  if (rc == ES_OK && bounded) {
    es__rollup_free(r);
    *r = *bounded;
    es__free(bounded);
  }
  if (rc < 0)
    es__rollup_free(r);
  return rc;
}

const char *es__rollup_derived_why(int derived) {
  return derived == 1   ? "missing"
         : derived == 3 ? "of version 1 (no dimensions; esctl rollup rebuild "
                          "rewrites it)"
                        : "damaged";
}

void es__rollup_chain_free(es_rollup *r) {
  while (r) {
    es_rollup *next = r->retired;
    es__rollup_free(r);
    es__free(r);
    r = next;
  }
}

void es__segment_rollup_set(es_segment *seg, es_rollup *r) {
  es_rollup *old = atomic_load(&seg->rollup);
  do
    r->retired = old;
  while (!atomic_compare_exchange_weak(&seg->rollup, &old, r));
  /* after the swap: an index reads the generation, then the rollup, so
   * one that saw the new generation summed the new rollup (setrollup.c) */
  atomic_fetch_add(&seg->rollup_gen, 1);
}

/* Loads (or derives) the rollup once; see rollup.h. */
int es__segment_rollup(es_segment *seg, const es_rollup **r_out,
                       int *derived_out) {
  if (derived_out)
    *derived_out = 0;
  es_rollup *cur = atomic_load(&seg->rollup);
  if (cur) {
    *r_out = cur;
    return ES_OK;
  }
  *r_out = NULL;
  es_rollup *r = es__malloc(sizeof(*r));
  if (!r)
    return ES_NOMEM_BKPT();
  char path[ES_PATH_MAX];
  int rc = es__rollup_path(seg->path, path, sizeof(path));
  if (rc == ES_OK)
    rc = es__rollup_read(seg->vfs, path, r);
  int old = rc == ES_OK && r->version < ES_ROLLUP_DIMS_VERSION;
  if (old) /* no dimension cells: derive them (rollup rebuild rewrites) */
    es__rollup_free(r);
  if (old || rc == ES_ENOTFOUND || rc == ES_ECORRUPT || rc == ES_EVERSION) {
    es__error_clear();
    if (derived_out)
      *derived_out = old ? 3 : rc == ES_ENOTFOUND ? 1 : 2;
    rc = es__rollup_derive(seg, r);
  }
  if (rc < 0) {
    es__free(r);
    return rc;
  }
  r->retired = NULL;
  /* another thread may have won the race: keep theirs */
  if (!atomic_compare_exchange_strong(&seg->rollup, &cur, r)) {
    es__rollup_chain_free(r);
    *r_out = cur;
    return ES_OK;
  }
  *r_out = r;
  return ES_OK;
}

/* --- rebuilding ---------------------------------------------------------- */

/* Derives one segment's rollup again and rewrites its file unless the
 * file already holds exactly that (encodings are canonical: invariant 2,
 * so equal rollups are equal bytes). */
static int rollup_rebuild_one(es_db *db, es_segment *seg,
                              es_rollup_report *rep) {
  char path[ES_PATH_MAX], dir[ES_PATH_MAX];
  ES_TRY(es__rollup_path(seg->path, path, sizeof(path)));
  es_rollup *r = es__calloc(1, sizeof(*r));
  if (!r)
    return ES_NOMEM_BKPT();
  es_buf img = {0};
  uint8_t *old = NULL;
  size_t old_len = 0;
  int rc = es__rollup_derive(seg, r);
  if (rc == ES_OK)
    rc = es__rollup_encode(r, &img);
  es__rollup_free(r);
  if (rc == ES_OK) {
    int rrc = es__io_read_all(db->vfs, path, &old, &old_len);
    es_rollup check;
    int sound =
        rrc == ES_OK && es__rollup_decode(old, old_len, path, &check) == ES_OK;
    if (sound)
      es__rollup_free(&check);
    else
      es__error_clear();
    if (rrc < 0 && rrc != ES_ENOTFOUND && rrc != ES_ECORRUPT)
      rc = rrc; /* an I/O error reading it is not "missing" */
    else if (!sound || old_len != img.len ||
             memcmp(old, img.data, img.len) != 0) {
      rep->missing += !sound;
      rep->differing += sound;
      const char *slash = strrchr(path, '/');
      size_t dlen = slash ? (size_t)(slash - path) : 0;
      memcpy(dir, path, dlen);
      dir[dlen] = '\0';
      rc = es__io_write_atomic(db->vfs, dlen ? dir : ".",
                               slash ? slash + 1 : path, img.data, img.len);
      if (rc == ES_OK)
        rc = es__rollup_decode(img.data, img.len, path, r);
      if (rc == ES_OK) {
        es__segment_rollup_set(seg, r);
        r = NULL;
        rep->rewritten++;
      }
    }
  }
  rep->segments++;
  es__free(r);
  es__free(old);
  es__buf_free(&img);
  return rc;
}

/* Rebuilds a tenant's segment rollups over a range; see eventstore.h. */
int es_rollup_rebuild(es_db *db, const char *tenant, int64_t from_us,
                      int64_t to_us, es_rollup_report *report_out) {
  es__error_clear();
  es_rollup_report rep;
  memset(&rep, 0, sizeof(rep));
  if (report_out)
    *report_out = rep;
  if (!db)
    return ES_INVAL_BKPT("es_rollup_rebuild: NULL handle");
  ES_TRY(es__tenant_check(tenant));
  if (from_us > to_us)
    return ES_INVAL_BKPT("es_rollup_rebuild: from_us after to_us");
  ES_TRY(es__gate_enter(db, "es_rollup_rebuild"));
  es_tenant *t = NULL;
  ES_TRY(es__tenant_get(db, tenant, 0, &t));
  if (!t)
    return ES_OK;
  es_tenant_view v;
  ES_TRY(es__tenant_view(t, &v));
  int rc = ES_OK;
  for (size_t i = 0; rc == ES_OK && i < v.set->n; i++) {
    es_segment *seg = v.set->segs[i];
    if (seg->max_ts >= from_us && seg->min_ts < to_us)
      rc = rollup_rebuild_one(db, seg, &rep);
  }
  es__tenant_view_release(&v);
  if (report_out)
    *report_out = rep;
  return es__gate_io_error(db, ES_GATE_CALL, rc);
}
