/*
 * objmem.c -- the in-memory object store (see objmem.h).
 *
 * State: one array of objects sorted by key bytes, a version counter, the
 * fault settings and counters, all under one mutex.  Invariants:
 *  1. objs[0..count) is sorted by strcmp of the keys, without duplicates,
 *     so list() pages in key order by binary search.
 *  2. An object's etag is "<content hash>-<version>" in quotes, the version
 *     taken from a counter that only grows: every successful put gives a
 *     new etag, even of the same bytes (objstore.h invariant 3).
 *  3. A request either applies whole under the mutex or not at all; a
 *     dropped connection decides "applied or not" before the reply is
 *     lost, never halfway.
 *  4. list() copies one page under the mutex and calls the callback
 *     without it, so a callback may call the store.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/codec.h"
#include "base/mem.h"
#include "replicate/objmem.h"

typedef struct objmem_obj {
  char *key;
  uint8_t *data;
  size_t len;
  char etag[ES_OBJ_ETAG_MAX];
} objmem_obj;

typedef struct objmem {
  es_objstore os;
  pthread_mutex_t mu;
  objmem_obj *objs;
  size_t count, cap;
  unsigned page_keys;
  uint64_t version;
  uint64_t rng;
  /* Faults. */
  unsigned long requests;
  unsigned long fail_k;
  int fail_every;
  int fail_kind, fail_status;
  unsigned long failed, applied_in_doubt;
} objmem;

/* The decision for one request: proceed, or fail with rc, and whether a
 * mutation still applies. */
typedef struct objmem_fault {
  int rc;
  int apply;
} objmem_fault;

static uint64_t objmem_rand(objmem *m) {
  /* splitmix64: deterministic from the seed, good enough for coin flips. */
  uint64_t z = (m->rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Counts a request and decides its fate.  Called with the mutex held. */
static objmem_fault objmem_begin(objmem *m, int mutation, const char *what) {
  objmem_fault f = {ES_OK, 1};
  unsigned long n = ++m->requests;
  int hit =
      m->fail_k != 0 && (m->fail_every ? n % m->fail_k == 0 : n == m->fail_k);
  if (!hit)
    return f;
  m->failed++;
  switch (m->fail_kind) {
  case ES_OBJMEM_FAIL_STATUS:
    f.rc = ES_ERR(m->fail_status,
                  "objmem: injected failure of request %lu "
                  "(%s)",
                  n, what);
    f.apply = 0;
    break;
  case ES_OBJMEM_FAIL_TIMEOUT:
    f.rc = ES_ERR(ES_EUNAVAIL, "objmem: request %lu (%s) timed out", n, what);
    f.apply = 0;
    break;
  default:
    f.rc = ES_ERR(ES_EUNAVAIL, "objmem: connection dropped on request %lu (%s)",
                  n, what);
    f.apply = mutation && (objmem_rand(m) & 1);
    if (f.apply)
      m->applied_in_doubt++;
    break;
  }
  return f;
}

/* Index of key, or of where it would go (*found says which). */
static size_t objmem_find(const objmem *m, const char *key, int *found) {
  size_t lo = 0, hi = m->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(m->objs[mid].key, key);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = 0;
  return lo;
}

static void objmem_info(const objmem_obj *o, es_objinfo *info_out) {
  if (info_out == NULL)
    return;
  info_out->size = o->len;
  memcpy(info_out->etag, o->etag, sizeof(o->etag));
}

/* Applies a put under the mutex (condition, then replace or insert). */
static int objmem_apply_put(objmem *m, const char *key, const void *buf,
                            size_t len, int cond, const char *if_etag,
                            es_objinfo *info_out) {
  int found;
  size_t i = objmem_find(m, key, &found);
  if (cond == ES_OBJ_PUT_IF_ABSENT && found)
    return ES_ERR(ES_ECONFLICT, "objmem: %s exists (create-only put)", key);
  if (cond == ES_OBJ_PUT_IF_MATCH &&
      (!found || strcmp(m->objs[i].etag, if_etag) != 0))
    return ES_ERR(ES_ECONFLICT, "objmem: %s %s (replace-if-unchanged put)", key,
                  found ? "has another etag" : "does not exist");
  uint8_t *copy = es__malloc(len ? len : 1);
  if (copy == NULL)
    return ES_NOMEM_BKPT();
  if (len > 0)
    memcpy(copy, buf, len);
  if (!found) {
    char *k = es__strdup(key);
    if (k == NULL || es__grow((void **)&m->objs, &m->cap, m->count + 1,
                              sizeof(*m->objs)) != ES_OK) {
      es__free(k);
      es__free(copy);
      return ES_NOMEM_BKPT();
    }
    memmove(&m->objs[i + 1], &m->objs[i], (m->count - i) * sizeof(*m->objs));
    m->count++;
    m->objs[i].key = k;
  } else {
    es__free(m->objs[i].data);
  }
  objmem_obj *o = &m->objs[i];
  o->data = copy;
  o->len = len;
  snprintf(o->etag, sizeof(o->etag), "\"%016llx-%llu\"",
           (unsigned long long)es__hash64(buf, len, 0),
           (unsigned long long)++m->version);
  objmem_info(o, info_out);
  return ES_OK;
}

static int objmem_put(es_objstore *os, const char *key, const void *buf,
                      size_t len, int cond, const char *if_etag,
                      es_objinfo *info_out) {
  objmem *m = os->ctx;
  ES_TRY(es__objstore_check_key(key));
  if ((buf == NULL && len > 0) || cond < ES_OBJ_PUT_ALWAYS ||
      cond > ES_OBJ_PUT_IF_MATCH ||
      (cond == ES_OBJ_PUT_IF_MATCH && (if_etag == NULL || !*if_etag)))
    return ES_INVAL_BKPT("objmem: bad put of %s", key);
  pthread_mutex_lock(&m->mu);
  objmem_fault f = objmem_begin(m, 1, "put");
  int rc = f.rc;
  if (f.apply) {
    int arc = objmem_apply_put(m, key, buf, len, cond, if_etag,
                               f.rc == ES_OK ? info_out : NULL);
    if (rc == ES_OK)
      rc = arc;
  }
  pthread_mutex_unlock(&m->mu);
  return rc;
}

static int objmem_get(es_objstore *os, const char *key, uint64_t offset,
                      uint64_t len, uint8_t **buf_out, size_t *len_out,
                      es_objinfo *info_out) {
  objmem *m = os->ctx;
  ES_TRY(es__objstore_check_key(key));
  if (buf_out == NULL || len_out == NULL)
    return ES_INVAL_BKPT("objmem: get without an output");
  *buf_out = NULL;
  *len_out = 0;
  pthread_mutex_lock(&m->mu);
  int found, rc = objmem_begin(m, 0, "get").rc;
  size_t i = objmem_find(m, key, &found);
  if (rc == ES_OK && !found)
    rc = ES_ERR(ES_ENOTFOUND, "objmem: no object %s", key);
  if (rc == ES_OK && offset > m->objs[i].len)
    rc = ES_INVAL_BKPT("objmem: offset %llu past the end of %s (%zu bytes)",
                       (unsigned long long)offset, key, m->objs[i].len);
  if (rc == ES_OK) {
    const objmem_obj *o = &m->objs[i];
    uint64_t n = o->len - offset;
    if (len < n)
      n = len;
    if (n > 0) {
      *buf_out = es__malloc(n);
      if (*buf_out == NULL)
        rc = ES_NOMEM_BKPT();
      else {
        memcpy(*buf_out, o->data + offset, n);
        *len_out = n;
      }
    }
    if (rc == ES_OK)
      objmem_info(o, info_out);
  }
  pthread_mutex_unlock(&m->mu);
  return rc;
}

static int objmem_head(es_objstore *os, const char *key, es_objinfo *info) {
  objmem *m = os->ctx;
  ES_TRY(es__objstore_check_key(key));
  if (info == NULL)
    return ES_INVAL_BKPT("objmem: head without an output");
  pthread_mutex_lock(&m->mu);
  int found, rc = objmem_begin(m, 0, "head").rc;
  size_t i = objmem_find(m, key, &found);
  if (rc == ES_OK && !found)
    rc = ES_ERR(ES_ENOTFOUND, "objmem: no object %s", key);
  if (rc == ES_OK)
    objmem_info(&m->objs[i], info);
  pthread_mutex_unlock(&m->mu);
  return rc;
}

static int objmem_del(es_objstore *os, const char *key) {
  objmem *m = os->ctx;
  ES_TRY(es__objstore_check_key(key));
  pthread_mutex_lock(&m->mu);
  objmem_fault f = objmem_begin(m, 1, "delete");
  int found;
  size_t i = objmem_find(m, key, &found);
  if (f.apply && found) {
    es__free(m->objs[i].key);
    es__free(m->objs[i].data);
    memmove(&m->objs[i], &m->objs[i + 1],
            (m->count - i - 1) * sizeof(*m->objs));
    m->count--;
  }
  pthread_mutex_unlock(&m->mu);
  return f.rc;
}

/* One listed entry, copied out of the store for the callback. */
typedef struct objmem_entry {
  char *key;
  es_objinfo info;
} objmem_entry;

static void objmem_entries_free(objmem_entry *e, size_t n) {
  for (size_t i = 0; i < n; i++)
    es__free(e[i].key);
}

/* Copies the page after `after` ("" = from the start) under prefix into
 * page; *more says whether keys remain beyond it (S3's IsTruncated). */
static int objmem_page(objmem *m, const char *prefix, const char *after,
                       objmem_entry *page, size_t *n_out, int *more) {
  size_t plen = strlen(prefix), n = 0;
  int found;
  const char *from = strcmp(after, prefix) > 0 ? after : prefix;
  size_t i = objmem_find(m, from, &found);
  if (found && *after && strcmp(from, after) == 0)
    i++;
  *more = 0;
  for (; i < m->count && strncmp(m->objs[i].key, prefix, plen) == 0; i++) {
    if (n == m->page_keys) {
      *more = 1;
      break;
    }
    page[n].key = es__strdup(m->objs[i].key);
    if (page[n].key == NULL) {
      objmem_entries_free(page, n);
      return ES_NOMEM_BKPT();
    }
    objmem_info(&m->objs[i], &page[n].info);
    n++;
  }
  *n_out = n;
  return ES_OK;
}

static int objmem_list(es_objstore *os, const char *prefix,
                       const char *start_after, es_objlist_fn fn, void *ud) {
  objmem *m = os->ctx;
  if (prefix == NULL || fn == NULL)
    return ES_INVAL_BKPT("objmem: list without prefix or callback");
  objmem_entry *page = es__calloc(m->page_keys, sizeof(*page));
  char *after = es__strdup(start_after ? start_after : "");
  int rc = ES_OK, more = 1;
  if (page == NULL || after == NULL)
    rc = ES_NOMEM_BKPT();
  while (rc == ES_OK && more) {
    size_t n = 0;
    pthread_mutex_lock(&m->mu);
    rc = objmem_begin(m, 0, "list page").rc;
    if (rc == ES_OK)
      rc = objmem_page(m, prefix, after, page, &n, &more);
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; rc == ES_OK && i < n; i++)
      rc = fn(ud, page[i].key, &page[i].info);
    if (rc == ES_OK && n > 0) {
      es__free(after);
      after = page[n - 1].key;
      page[n - 1].key = NULL;
    }
    objmem_entries_free(page, n);
  }
  es__free(after);
  es__free(page);
  return rc;
}

static void objmem_destroy(es_objstore *os) {
  objmem *m = os->ctx;
  for (size_t i = 0; i < m->count; i++) {
    es__free(m->objs[i].key);
    es__free(m->objs[i].data);
  }
  es__free(m->objs);
  pthread_mutex_destroy(&m->mu);
  es__free(m);
}

/* Makes an empty store; see objmem.h. */
int es__objmem_create(unsigned page_keys, uint64_t seed, es_objstore **os_out) {
  *os_out = NULL;
  objmem *m = es__calloc(1, sizeof(*m));
  if (m == NULL)
    return ES_NOMEM_BKPT();
  pthread_mutex_init(&m->mu, NULL);
  m->page_keys = page_keys ? page_keys : 1000;
  m->rng = seed;
  m->os = (es_objstore){.put = objmem_put,
                        .get = objmem_get,
                        .head = objmem_head,
                        .del = objmem_del,
                        .list = objmem_list,
                        .destroy = objmem_destroy,
                        .ctx = m};
  *os_out = &m->os;
  return ES_OK;
}

static void objmem_arm(es_objstore *os, unsigned long k, int every, int kind,
                       int status) {
  objmem *m = os->ctx;
  pthread_mutex_lock(&m->mu);
  m->requests = 0;
  m->fail_k = k;
  m->fail_every = every;
  m->fail_kind = kind;
  m->fail_status = status;
  pthread_mutex_unlock(&m->mu);
}

/* Arms one fault at the k-th request from now. */
void es__objmem_fail_at(es_objstore *os, unsigned long k, int kind,
                        int status) {
  objmem_arm(os, k, 0, kind, status);
}

/* Arms a fault at every k-th request from now. */
void es__objmem_fail_every(es_objstore *os, unsigned long k, int kind,
                           int status) {
  objmem_arm(os, k, 1, kind, status);
}

static unsigned long objmem_counter(es_objstore *os, int which) {
  objmem *m = os->ctx;
  pthread_mutex_lock(&m->mu);
  unsigned long v = which == 0   ? m->requests
                    : which == 1 ? m->failed
                                 : m->applied_in_doubt;
  pthread_mutex_unlock(&m->mu);
  return v;
}

/* Requests counted since creation or the last arming. */
unsigned long es__objmem_requests(es_objstore *os) {
  return objmem_counter(os, 0);
}

/* Requests failed by injection since creation. */
unsigned long es__objmem_failed(es_objstore *os) {
  return objmem_counter(os, 1);
}

/* Dropped mutations that were applied anyway, since creation. */
unsigned long es__objmem_applied_in_doubt(es_objstore *os) {
  return objmem_counter(os, 2);
}
