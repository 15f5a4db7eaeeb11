/*
 * identity.c -- identity stitching at read time: a union-find over the
 * ids of one tenant, built from its identify and alias events.
 *
 * Visitors show up under several ids: an anonymousId per browser before
 * they sign in, a userId after.  An identify event carrying both, or an
 * alias event (previousId -> userId), says they are one person.  The map
 * is rebuilt from the stored events each time a read needs it (es_query,
 * es_timeline_open), so an anonymous visitor's earlier events count for
 * the person as soon as the linking event is stored.  Caching the map per
 * tenant (and an append-only identity log with unlink records) comes
 * later.
 *
 * Representation: ids are interned into nodes (open addressing on their
 * hash); each node has a union-find parent, the size of its set (valid at
 * roots) and a `next` link that chains every set into a cycle, so the ids
 * of a person can be listed without scanning the map.
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
 */
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "identity.h"
#include "mem.h"

typedef struct id_node {
  char *id;        /* owned, NUL-terminated */
  uint32_t parent; /* union-find parent; itself at a root */
  uint32_t size;   /* ids in the set (valid at a root) */
  uint32_t next;   /* the next node of the same set (a cycle) */
} id_node;

struct es_identity {
  id_node *nodes;
  size_t n, cap;
  uint32_t *slots;      /* open addressing: node index + 1, 0 = empty */
  size_t nslots;        /* a power of two, more than 2 * n */
  const char **scratch; /* ES_IDENTITY_IDS_MAX entries for identity_ids */
};

/* Creates an empty map; see identity.h. */
int es__identity_new(es_identity **map_out) {
  *map_out = NULL;
  es_identity *m = es__calloc(1, sizeof(*m));
  if (!m)
    return ES_NOMEM_BKPT();
  m->scratch = es__malloc(ES_IDENTITY_IDS_MAX * sizeof(const char *));
  if (!m->scratch) {
    es__free(m);
    return ES_NOMEM_BKPT();
  }
  *map_out = m;
  return ES_OK;
}

/* Frees the map; see identity.h. */
void es__identity_free(es_identity *m) {
  if (!m)
    return;
  for (size_t i = 0; i < m->n; i++)
    es__free(m->nodes[i].id);
  es__free(m->nodes);
  es__free(m->slots);
  es__free(m->scratch);
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

/* The slot holding id, or the empty slot where it would go. */
static size_t map_slot(const es_identity *m, const char *id) {
  size_t mask = m->nslots - 1;
  size_t i = (size_t)es__hash64(id, strlen(id), 0) & mask;
  while (m->slots[i] != 0 && strcmp(m->nodes[m->slots[i] - 1].id, id) != 0)
    i = (i + 1) & mask;
  return i;
}

/* The node index of id, or -1 when the map does not know it. */
static long map_find_node(const es_identity *m, const char *id) {
  if (m->nslots == 0)
    return -1;
  size_t i = map_slot(m, id);
  return m->slots[i] ? (long)m->slots[i] - 1 : -1;
}

/* Doubles the slot array and re-inserts every node. */
static int map_rehash(es_identity *m) {
  size_t nslots = m->nslots ? m->nslots * 2 : 64;
  uint32_t *slots = es__calloc(nslots, sizeof(uint32_t));
  if (!slots)
    return ES_NOMEM_BKPT();
  es__free(m->slots);
  m->slots = slots;
  m->nslots = nslots;
  for (size_t i = 0; i < m->n; i++)
    m->slots[map_slot(m, m->nodes[i].id)] = (uint32_t)(i + 1);
  return ES_OK;
}

/* The node index of id, interning it as a set of its own when new. */
static int map_intern(es_identity *m, const char *id, uint32_t *idx_out) {
  if (2 * (m->n + 1) > m->nslots)
    ES_TRY(map_rehash(m));
  size_t slot = map_slot(m, id);
  if (m->slots[slot] == 0) {
    if (m->n >= UINT32_MAX - 1)
      return ES_NOMEM_BKPT();
    ES_TRY(es__grow((void **)&m->nodes, &m->cap, m->n + 1, sizeof(id_node)));
    char *copy = es__strdup(id);
    if (!copy)
      return ES_NOMEM_BKPT();
    uint32_t idx = (uint32_t)m->n++;
    m->nodes[idx] = (id_node){copy, idx, 1, idx};
    m->slots[slot] = idx + 1;
  }
  *idx_out = m->slots[slot] - 1;
  return ES_OK;
}

/* The root of node i, halving the path on the way. */
static uint32_t map_root(es_identity *m, uint32_t i) {
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
int es__identity_apply(es_identity *m, const es_event *ev) {
  int linked;
  if (ev->type == ES_TYPE_IDENTIFY)
    return es__identity_link(m, ev->user_id, ev->anonymous_id, &linked);
  if (ev->type == ES_TYPE_ALIAS)
    return es__identity_link(m, ev->previous_id, ev->user_id, &linked);
  return ES_OK;
}

/* Builds a tenant's map from its stored events; see identity.h. */
int es__identity_load(es_db *db, const char *tenant, es_identity **map_out) {
  *map_out = NULL;
  es_identity *m = NULL;
  es_cursor *cur = NULL;
  es_scan_spec spec;
  es_event ev;
  int rc;
  ES_TRY(es__identity_new(&m));
  es_scan_spec_init(&spec);
  spec.tenant = tenant;
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

/* The canonical id of a person; see identity.h. */
const char *es__identity_root(es_identity *m, const char *id) {
  long i = id ? map_find_node(m, id) : -1;
  return i < 0 ? id : m->nodes[map_root(m, (uint32_t)i)].id;
}

/* Every id of a person; see identity.h. */
size_t es__identity_ids(es_identity *m, const char *id,
                        const char *const **ids_out) {
  long i = id ? map_find_node(m, id) : -1;
  size_t n = 0;
  if (i < 0) {
    m->scratch[n++] = id;
  } else {
    uint32_t j = (uint32_t)i;
    do {
      m->scratch[n++] = m->nodes[j].id;
      j = m->nodes[j].next;
    } while (j != (uint32_t)i && n < ES_IDENTITY_IDS_MAX);
  }
  *ids_out = m->scratch;
  return id ? n : 0;
}
