/*
 * strmap.c -- see strmap.h.  Invariants of strmap:
 *  1. slots_cap is 0 or a power of two at least twice count, so probing
 *     always ends at an empty slot;
 *  2. names, parent, min_of and counts have `count` valid entries;
 *  3. min_of is meaningful at roots only.
 */
#include "strmap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbuf_printf(sbuf *b, const char *fmt, ...) {
  if (b->failed)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      b->failed = 1;
      return;
    }
    if (b->s && (size_t)n < room) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + (size_t)n + 1)
      cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
      b->failed = 1;
      return;
    }
    b->s = s;
    b->cap = cap;
    b->s[b->len] = 0;
  }
}

void sbuf_free(sbuf *b) {
  free(b->s);
  memset(b, 0, sizeof *b);
}

/* FNV-1a. */
static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

int64_t strmap_find(const strmap *m, const char *s) {
  if (!m->slots_cap)
    return -1;
  size_t mask = m->slots_cap - 1;
  for (size_t i = hash_str(s) & mask;; i = (i + 1) & mask) {
    uint32_t v = m->slots[i];
    if (!v)
      return -1;
    if (!strcmp(m->names[v - 1], s))
      return v - 1;
  }
}

static int strmap_grow(strmap *m) {
  if (m->count + 1 > m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    char **n = realloc(m->names, cap * sizeof *n);
    if (n)
      m->names = n;
    uint32_t *p = realloc(m->parent, cap * sizeof *p);
    if (p)
      m->parent = p;
    uint32_t *mo = realloc(m->min_of, cap * sizeof *mo);
    if (mo)
      m->min_of = mo;
    int64_t *c = realloc(m->counts, cap * sizeof *c);
    if (c)
      m->counts = c;
    if (!n || !p || !mo || !c)
      return -1;
    m->cap = cap;
  }
  if ((m->count + 1) * 2 > m->slots_cap) {
    size_t cap = m->slots_cap ? m->slots_cap * 2 : 2048;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
      return -1;
    for (size_t i = 0; i < m->count; i++) {
      size_t j = hash_str(m->names[i]) & (cap - 1);
      while (slots[j])
        j = (j + 1) & (cap - 1);
      slots[j] = (uint32_t)i + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->slots_cap = cap;
  }
  return 0;
}

int64_t strmap_get(strmap *m, const char *s) {
  int64_t i = strmap_find(m, s);
  if (i >= 0)
    return i;
  if (strmap_grow(m) != 0)
    return -1;
  char *copy = strdup(s);
  if (!copy)
    return -1;
  uint32_t idx = (uint32_t)m->count++;
  m->names[idx] = copy;
  m->parent[idx] = idx;
  m->min_of[idx] = idx;
  m->counts[idx] = 0;
  size_t j = hash_str(s) & (m->slots_cap - 1);
  while (m->slots[j])
    j = (j + 1) & (m->slots_cap - 1);
  m->slots[j] = idx + 1;
  return idx;
}

uint32_t strmap_root(strmap *m, uint32_t i) {
  while (m->parent[i] != i) {
    m->parent[i] = m->parent[m->parent[i]]; /* path halving */
    i = m->parent[i];
  }
  return i;
}

void strmap_union(strmap *m, uint32_t i, uint32_t j) {
  uint32_t a = strmap_root(m, i), b = strmap_root(m, j);
  if (a == b)
    return;
  uint32_t ma = m->min_of[a], mb = m->min_of[b];
  m->parent[b] = a;
  m->min_of[a] = strcmp(m->names[ma], m->names[mb]) <= 0 ? ma : mb;
}

void strmap_free(strmap *m) {
  for (size_t i = 0; i < m->count; i++)
    free(m->names[i]);
  free(m->names);
  free(m->slots);
  free(m->parent);
  free(m->min_of);
  free(m->counts);
  memset(m, 0, sizeof *m);
}
