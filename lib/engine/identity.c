/*
 * identity.c -- identity stitching at read time: a union-find over the
 * ids of one tenant, built from its identify and alias events.
 *
 * Visitors show up under several ids: an anonymousId per browser before
 * they sign in, a userId after.  An identify event carrying both, or an
 * alias event (previousId -> userId), says they are one person.  The map
 * is rebuilt from the stored events each time a read needs it (es_query,
 * es_timeline_open), so an anonymous visitor's earlier events count for
 * the person as soon as the linking event is stored.  Links can be undone
 * by unlink records, kept in the tenant's append-only identity log
 * (IDENTITY; see es_identity_unlink): a link event joining exactly the two
 * ids of an unlink record, at or before its time, is ignored.  Caching the
 * map per tenant comes later.
 *
 * Representation: ids are interned into nodes (filed by their hash in
 * the library's table, base/hashtab.h); each node has a union-find parent, the
 * size of its set (valid at roots) and a `next` link that chains every set into
 * a cycle, so the ids of a person can be listed without scanning the map.
 *
 * Invariants:
 *  1. Guardrail values never link: NULL, "", "null", "undefined", "0" and
 *     "anonymous" (any case).  A link naming one is ignored.
 *  2. No set ever holds more than ES_IDENTITY_IDS_MAX ids: a link that
 *     would merge two sets beyond it is ignored, whole.  Links are applied
 *     in event-time order (ties in append order), so which links win is
 *     deterministic for the same stored events.
 *  3. Following `next` from any node visits exactly the nodes of its set
 *     and comes back (the cycles are spliced on every union).
 *  4. A failed call (ES_ENOMEM) makes no link: at worst an id was interned
 *     as a set of its own, which is what an unknown id means anyway.
 *  5. The identity log is append-only; each record carries its own length
 *     and checksum.  Reading stops at the first record that does not
 *     check when nothing valid follows it (a torn append, never
 *     acknowledged; the next append writes over it); a record that does
 *     not check followed by one that does is damage in the middle, which
 *     may hide an acknowledged unlink: ES_ECORRUPT naming file and offset,
 *     never a silent stop.
 *  6. An unlink is acknowledged only after its record's fdatasync (and,
 *     for a new file, its directory's).  A failed write is a torn tail
 *     (returned to the caller, who may retry); a failed sync fails the
 *     handle (store/gate.c, 2): the page cache may say the record is
 *     there while the disk does not, and a later unlink written after it
 *     would then follow damage.
 */
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/codec.h"
#include "base/hashtab.h"
#include "base/mem.h"
#include "engine/identity.h"
#include "engine/rules.h"
#include "store/dbint.h"
#include "store/gate.h"

#define IDLOG_NAME "IDENTITY"
#define IDLOG_SEED UINT64_C(0x1d10)

/* An unlink record of the identity log. */
typedef struct id_unlink {
  int64_t ts_us;
  char *a, *b;
} id_unlink;

typedef struct id_node {
  char *id;        /* owned, NUL-terminated */
  uint32_t parent; /* union-find parent; itself at a root */
  uint32_t size;   /* ids in the set (valid at a root) */
  uint32_t next;   /* the next node of the same set (a cycle) */
} id_node;

struct es_identity {
  id_node *nodes;
  size_t n, cap;
  es_htab index;      /* node index + 1 by id */
  id_unlink *unlinks; /* from the identity log */
  size_t nunlinks, unlinks_cap;
  atomic_int refs; /* a loaded map is shared (the tenant's cache) */
  int frozen;      /* every parent is a root: reads no longer write */
};

/* Creates an empty map; see identity.h. */
int es__identity_new(es_identity **map_out) {
  *map_out = NULL;
  es_identity *m = es__calloc(1, sizeof(*m));
  if (!m)
    return ES_NOMEM_BKPT();
  atomic_init(&m->refs, 1);
  *map_out = m;
  return ES_OK;
}

/* Frees the map; see identity.h. */
void es__identity_free(es_identity *m) {
  if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
    return;
  for (size_t i = 0; i < m->n; i++)
    es__free(m->nodes[i].id);
  es__free(m->nodes);
  es__htab_free(&m->index);
  for (size_t i = 0; i < m->nunlinks; i++) {
    es__free(m->unlinks[i].a);
    es__free(m->unlinks[i].b);
  }
  es__free(m->unlinks);
  es__free(m);
}

/* Guardrail check; see identity.h. */
int es__identity_linkable(const char *id) {
  static const char *const never[] = {"null", "undefined", "0", "anonymous"};
  if (!id || id[0] == '\0')
    return 0;
  for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
    if (strcasecmp(id, never[i]) == 0)
      return 0;
  return 1;
}

/* Whether node `val` - 1 is the id `key`. */
static int map_eq(const void *ctx, uint32_t val, const void *key) {
  return strcmp(((const es_identity *)ctx)->nodes[val - 1].id, key) == 0;
}

/* The node index of id, or -1 when the map does not know it. */
static long map_find_node(const es_identity *m, const char *id) {
  uint32_t v =
      es__htab_find(&m->index, es__hash64(id, strlen(id), 0), map_eq, m, id);
  return v ? (long)v - 1 : -1;
}

/* The node index of id, interning it as a set of its own when new. */
static int map_intern(es_identity *m, const char *id, uint32_t *idx_out) {
  ES_TRY(es__htab_reserve(&m->index, 1));
  uint64_t h = es__hash64(id, strlen(id), 0);
  size_t slot = es__htab_probe(&m->index, h, map_eq, m, id);
  if (m->index.slots[slot].val == 0) {
    ES_TRY(es__grow((void **)&m->nodes, &m->cap, m->n + 1, sizeof(id_node)));
    char *copy = es__strdup(id);
    if (!copy)
      return ES_NOMEM_BKPT();
    uint32_t idx = (uint32_t)m->n++;
    m->nodes[idx] = (id_node){copy, idx, 1, idx};
    es__htab_set(&m->index, slot, h, idx + 1);
  }
  *idx_out = m->index.slots[slot].val - 1;
  return ES_OK;
}

/* The root of node i, halving the path on the way. */
static uint32_t map_root(es_identity *m, uint32_t i) {
  if (m->frozen) /* shared by readers: no path halving (writes) */
    return m->nodes[i].parent;
  while (m->nodes[i].parent != i) {
    m->nodes[i].parent = m->nodes[m->nodes[i].parent].parent;
    i = m->nodes[i].parent;
  }
  return i;
}

/* Links two ids; see identity.h. */
int es__identity_link(es_identity *m, const char *a, const char *b,
                      int *linked_out) {
  *linked_out = 0;
  if (!es__identity_linkable(a) || !es__identity_linkable(b))
    return ES_OK;
  if (strcmp(a, b) == 0) {
    *linked_out = 1;
    return ES_OK;
  }
  uint32_t ia, ib;
  ES_TRY(map_intern(m, a, &ia));
  ES_TRY(map_intern(m, b, &ib));
  uint32_t ra = map_root(m, ia), rb = map_root(m, ib);
  if (ra == rb) {
    *linked_out = 1;
    return ES_OK;
  }
  if ((size_t)m->nodes[ra].size + m->nodes[rb].size > ES_IDENTITY_IDS_MAX)
    return ES_OK; /* the cap: the whole link is ignored */
  /* union by size; on a tie the older node stays the root */
  if (m->nodes[ra].size < m->nodes[rb].size ||
      (m->nodes[ra].size == m->nodes[rb].size && rb < ra)) {
    uint32_t t = ra;
    ra = rb;
    rb = t;
  }
  m->nodes[rb].parent = ra;
  m->nodes[ra].size += m->nodes[rb].size;
  uint32_t t = m->nodes[ra].next; /* splice the two cycles */
  m->nodes[ra].next = m->nodes[rb].next;
  m->nodes[rb].next = t;
  *linked_out = 1;
  return ES_OK;
}

/* Applies one identify or alias event; see identity.h. */
/* Whether an unlink record undoes a link of a and b made at ts. */
int es__identity_unlinked(const es_identity *m, const char *a, const char *b,
                          int64_t ts) {
  for (size_t i = 0; a && b && i < m->nunlinks; i++) {
    const id_unlink *u = &m->unlinks[i];
    if (ts <= u->ts_us && ((strcmp(u->a, a) == 0 && strcmp(u->b, b) == 0) ||
                           (strcmp(u->a, b) == 0 && strcmp(u->b, a) == 0)))
      return 1;
  }
  return 0;
}

int es__identity_apply(es_identity *m, const es_event *ev) {
  int linked;
  const char *a = NULL, *b = NULL;
  if (ev->type == ES_TYPE_IDENTIFY)
    a = ev->user_id, b = ev->anonymous_id;
  else if (ev->type == ES_TYPE_ALIAS)
    a = ev->previous_id, b = ev->user_id;
  else
    return ES_OK;
  if (es__identity_unlinked(m, a, b, ev->ts_us))
    return ES_OK;
  return es__identity_link(m, a, b, &linked);
}

/* --- the identity log ---------------------------------------------------- */

/* Whether a whole record that checks starts at off. */
static int idlog_record_at(const uint8_t *p, size_t n, size_t off) {
  if (n - off < 12)
    return 0;
  uint32_t len = es__get_le32(p + off);
  return len != 0 && len <= n - off - 12 &&
         es__get_le64(p + off + 4) == es__hash64(p + off + 12, len, IDLOG_SEED);
}

/* Parses the log; stops at the first record that does not check, which
 * must be a torn tail (invariant 5).  *end_out: where the valid records
 * end. */
int es__identity_log_parse(es_identity *m, const uint8_t *p, size_t n,
                           const char *path, size_t *end_out) {
  size_t off = 0;
  *end_out = 0;
  while (n - off >= 12) {
    if (!idlog_record_at(p, n, off))
      break;
    uint32_t len = es__get_le32(p + off);
    es_rd rd = es__rd(p + off + 12, len);
    int64_t ts = es__rd_svarint(&rd);
    uint64_t la = es__rd_varint(&rd);
    const uint8_t *a = es__rd_bytes(&rd, la);
    uint64_t lb = es__rd_varint(&rd);
    const uint8_t *b = es__rd_bytes(&rd, lb);
    if (rd.bad || rd.p != rd.end) /* checks, yet malformed: not torn */
      return ES_CORRUPT_BKPT("%s: offset %zu: malformed unlink record", path,
                             off);
    if (m) {
      ES_TRY(es__grow((void **)&m->unlinks, &m->unlinks_cap, m->nunlinks + 1,
                      sizeof(id_unlink)));
      id_unlink *u = &m->unlinks[m->nunlinks];
      u->ts_us = ts;
      u->a = es__malloc(la + 1);
      u->b = es__malloc(lb + 1);
      if (!u->a || !u->b) {
        es__free(u->a);
        es__free(u->b);
        return ES_NOMEM_BKPT();
      }
      memcpy(u->a, a, la);
      u->a[la] = '\0';
      memcpy(u->b, b, lb);
      u->b[lb] = '\0';
      m->nunlinks++;
    }
    off += 12 + len;
  }
  for (size_t o = off + 1; o + 12 <= n; o++)
    if (idlog_record_at(p, n, o))
      return ES_CORRUPT_BKPT("%s: damaged record at offset %zu followed by "
                             "a valid record at offset %zu",
                             path, off, o);
  *end_out = off;
  return ES_OK;
}

/* Reads the tenant's identity log into m (none is fine). */
static int idlog_read(es_db *db, const char *tenant, es_identity *m,
                      size_t *end_out) {
  char dir[ES_PATH_MAX], path[ES_PATH_MAX];
  *end_out = 0;
  ES_TRY(es__path_join(dir, sizeof(dir), db->tenants_dir, tenant));
  ES_TRY(es__path_join(path, sizeof(path), dir, IDLOG_NAME));
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = es__io_read_all(db->vfs, path, &buf, &len);
  if (rc == ES_ENOTFOUND) {
    es__error_clear();
    return ES_OK;
  }
  ES_TRY(rc);
  rc = es__identity_log_parse(m, buf, len, path, end_out);
  es__free(buf);
  return rc;
}

/* Appends an unlink record; see eventstore.h. */
int es_identity_unlink(es_db *db, const char *tenant, const char *id_a,
                       const char *id_b, int64_t ts_us) {
  es__error_clear();
  if (!db || !id_a || !id_b)
    return ES_INVAL_BKPT("es_identity_unlink: NULL argument");
  ES_TRY(es__tenant_check(tenant));
  if (!es__identity_linkable(id_a) || !es__identity_linkable(id_b) ||
      strlen(id_a) > 1024 || strlen(id_b) > 1024)
    return ES_INVAL_BKPT("es_identity_unlink: \"%s\" and \"%s\" are not "
                         "ids that can link",
                         id_a, id_b);
  ES_TRY(es__gate_enter(db, "es_identity_unlink"));
  if (ts_us == 0)
    ts_us = es__clock_now_us();
  es_buf rec = {0};
  int rc = es__buf_put_u32(&rec, 0);
  if (rc == ES_OK)
    rc = es__buf_put_u64(&rec, 0);
  if (rc == ES_OK)
    rc = es__buf_put_svarint(&rec, ts_us);
  const char *ids[2] = {id_a, id_b};
  for (int i = 0; rc == ES_OK && i < 2; i++) {
    rc = es__buf_put_varint(&rec, strlen(ids[i]));
    if (rc == ES_OK)
      rc = es__buf_put(&rec, ids[i], strlen(ids[i]));
  }
  es_tenant *t = NULL;
  if (rc == ES_OK)
    rc = es__tenant_get(db, tenant, 1, &t);
  if (rc == ES_OK)
    rc = es__tenant_dir_make(db, t);
  if (rc < 0) {
    es__buf_free(&rec);
    return rc;
  }
  es__le32(rec.data, (uint32_t)(rec.len - 12));
  es__le64(rec.data + 4, es__hash64(rec.data + 12, rec.len - 12, IDLOG_SEED));
  pthread_mutex_lock(&t->id_mu);
  size_t end = 0;
  char path[ES_PATH_MAX];
  rc = idlog_read(db, tenant, NULL, &end); /* writes over a torn tail */
  if (rc == ES_OK)
    rc = es__path_join(path, sizeof(path), t->dir, IDLOG_NAME);
  if (rc == ES_OK)
    rc = es__gate_log_append(db, path, t->dir, rec.data, rec.len, end);
  if (rc == ES_OK) {
    atomic_fetch_add(&t->id_gen, 1);       /* cached maps are stale */
    atomic_store(&t->rules->ids_stale, 1); /* and the rules' own */
  }
  pthread_mutex_unlock(&t->id_mu);
  es__buf_free(&rec);
  return rc;
}

/* Builds a tenant's map from its stored events; see identity.h. */
/* Makes every parent a root, so that reads of a shared map never write. */
static void map_freeze(es_identity *m) {
  for (uint32_t i = 0; i < m->n; i++)
    m->nodes[i].parent = map_root(m, i);
  m->frozen = 1;
}

/* Builds a tenant's map from its stored events and identity log; see
 * identity.h (es__identity_build). */
int es__identity_build(es_db *db, const char *tenant, es_identity **map_out) {
  *map_out = NULL;
  es_identity *m = NULL;
  es_cursor *cur = NULL;
  es_scan_spec spec;
  es_event ev;
  int rc;
  size_t end;
  ES_TRY(es__identity_new(&m));
  ES_CHECK(idlog_read(db, tenant, m, &end));
  es_scan_spec_init(&spec);
  spec.tenant = tenant;
  spec.fields = ES_FIELD_ANONYMOUS_ID | ES_FIELD_USER_ID | ES_FIELD_PREVIOUS_ID;
  ES_CHECK(es_scan(db, &spec, &cur));
  while ((rc = es_cursor_next(cur, &ev)) == 1)
    ES_CHECK(es__identity_apply(m, &ev));
  if (rc < 0)
    goto err;
  es_cursor_close(cur);
  *map_out = m;
  return ES_OK;
err:
  es_cursor_close(cur);
  es__identity_free(m);
  return rc;
}

/* The tenant's map: the cached one while no link changed, else built
 * (and cached); see identity.h.  On a read-only handle the follower
 * bumps id_gen for links it reads (follow.c). */
int es__identity_load(es_db *db, const char *tenant, es_identity **map_out) {
  *map_out = NULL;
  es_tenant *t = NULL;
  ES_TRY(es__tenant_get(db, tenant, 0, &t));
  if (!t) {
    ES_TRY(es__identity_build(db, tenant, map_out));
    map_freeze(*map_out);
    return ES_OK;
  }
  int gen = atomic_load(&t->id_gen); /* read before the scan: see dbint.h */
  pthread_mutex_lock(&t->idc_mu);
  es_identity *m = t->id_cache;
  if (m && t->id_cache_gen == gen)
    atomic_fetch_add(&m->refs, 1);
  else
    m = NULL;
  pthread_mutex_unlock(&t->idc_mu);
  if (!m) {
    ES_TRY(es__identity_build(db, tenant, &m));
    map_freeze(m);
    atomic_fetch_add(&m->refs, 1); /* the cache's reference */
    pthread_mutex_lock(&t->idc_mu);
    es_identity *old = t->id_cache;
    t->id_cache = m;
    t->id_cache_gen = gen;
    pthread_mutex_unlock(&t->idc_mu);
    es__identity_free(old);
  }
  *map_out = m;
  return ES_OK;
}

/* The canonical id of a person; see identity.h. */
const char *es__identity_root(es_identity *m, const char *id) {
  long i = id ? map_find_node(m, id) : -1;
  return i < 0 ? id : m->nodes[map_root(m, (uint32_t)i)].id;
}

/* Every id of a person; see identity.h. */
size_t es__identity_ids(const es_identity *m, const char *id,
                        const char **buf) {
  long i = id ? map_find_node(m, id) : -1;
  size_t n = 0;
  if (i < 0) {
    buf[n++] = id;
  } else {
    uint32_t j = (uint32_t)i;
    do {
      buf[n++] = m->nodes[j].id;
      j = m->nodes[j].next;
    } while (j != (uint32_t)i && n < ES_IDENTITY_IDS_MAX);
  }
  return id ? n : 0;
}

/* Whether an unlink record's payload names one of ids. */
static int idlog_names(const uint8_t *p, size_t len, const char *const *ids,
                       size_t nids) {
  es_rd rd = es__rd(p, len);
  (void)es__rd_svarint(&rd);
  for (int k = 0; k < 2; k++) {
    uint64_t l = es__rd_varint(&rd);
    const uint8_t *s = es__rd_bytes(&rd, l);
    for (size_t i = 0; s && i < nids; i++)
      if (strlen(ids[i]) == l && memcmp(ids[i], s, l) == 0)
        return 1;
  }
  return 0;
}

/* Drops a person's unlink records; see identity.h. */
int es__identity_log_forget(es_db *db, es_tenant *t, const char *const *ids,
                            size_t nids, size_t *dropped_out) {
  *dropped_out = 0;
  char path[ES_PATH_MAX];
  ES_TRY(es__path_join(path, sizeof(path), t->dir, IDLOG_NAME));
  pthread_mutex_lock(&t->id_mu);
  uint8_t *buf = NULL;
  size_t len = 0, end = 0, dropped = 0;
  es_buf keep = {0};
  int rc = es__io_read_all(db->vfs, path, &buf, &len);
  if (rc == ES_ENOTFOUND) {
    es__error_clear();
    pthread_mutex_unlock(&t->id_mu);
    return ES_OK;
  }
  if (rc == ES_OK)
    rc = es__identity_log_parse(NULL, buf, len, path, &end);
  for (size_t off = 0; rc == ES_OK && off < end;) {
    uint32_t l = es__get_le32(buf + off);
    if (idlog_names(buf + off + 12, l, ids, nids))
      dropped++;
    else
      rc = es__buf_put(&keep, buf + off, 12 + l);
    off += 12 + (size_t)l;
  }
  if (rc == ES_OK && dropped > 0) {
    rc = es__io_write_atomic(db->vfs, t->dir, IDLOG_NAME, keep.data, keep.len);
    if (rc < 0)
      rc = es__gate_io_error(
          db, es__io_failed_committing() ? ES_GATE_STOP : ES_GATE_CALL, rc);
    if (rc == ES_OK)
      atomic_fetch_add(&t->id_gen, 1);
  }
  pthread_mutex_unlock(&t->id_mu);
  es__free(buf);
  es__buf_free(&keep);
  if (rc == ES_OK)
    *dropped_out = dropped;
  return rc;
}
