/*
 * bf_identity.h -- a brute-force model of identity stitching for the unit
 * suites (test_query.c, test_timeline.c), written from the rules of
 * docs/QUERY.md without looking at lib/identity.c: every known id carries
 * a component label, a link relabels a whole component, sizes are counted
 * by scanning.  Slow and obviously right, which is the point.
 *
 * Rules modelled: identify links userId and anonymousId, alias links
 * previousId and userId, applied in the order given (the tests give scan
 * order: event time, then append order); NULL, "", "null", "undefined",
 * "0", "anonymous" (any case) never link; a link that would make a
 * component larger than ES_IDENTITY_IDS_MAX ids is ignored.
 */
#ifndef BF_IDENTITY_H
#define BF_IDENTITY_H

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "eventstore.h"

typedef struct bf_ids {
  char **names;
  int *label;
  int n, cap;
} bf_ids;

static int bf_linkable(const char *id) {
  return id && id[0] && strcasecmp(id, "null") != 0 &&
         strcasecmp(id, "undefined") != 0 && strcmp(id, "0") != 0 &&
         strcasecmp(id, "anonymous") != 0;
}

/* The index of a known id, or -1. */
static int bf_find(const bf_ids *m, const char *id) {
  for (int i = 0; id && i < m->n; i++)
    if (strcmp(m->names[i], id) == 0)
      return i;
  return -1;
}

static int bf_add(bf_ids *m, const char *id) {
  int i = bf_find(m, id);
  if (i >= 0)
    return i;
  if (m->n == m->cap) {
    m->cap = m->cap * 2 + 16;
    m->names = realloc(m->names, (size_t)m->cap * sizeof(char *));
    m->label = realloc(m->label, (size_t)m->cap * sizeof(int));
  }
  m->names[m->n] = strdup(id);
  m->label[m->n] = m->n;
  return m->n++;
}

static int bf_size(const bf_ids *m, int label) {
  int k = 0;
  for (int i = 0; i < m->n; i++)
    k += m->label[i] == label;
  return k;
}

static void bf_link(bf_ids *m, const char *a, const char *b) {
  if (!bf_linkable(a) || !bf_linkable(b) || strcmp(a, b) == 0)
    return;
  int ia = bf_add(m, a), ib = bf_add(m, b); /* may move m->label */
  int la = m->label[ia], lb = m->label[ib];
  if (la == lb || bf_size(m, la) + bf_size(m, lb) > ES_IDENTITY_IDS_MAX)
    return;
  for (int i = 0; i < m->n; i++)
    if (m->label[i] == lb)
      m->label[i] = la;
}

/* Applies one event (identify or alias; others do nothing). */
static void bf_apply(bf_ids *m, int type, const char *user, const char *anon,
                     const char *prev) {
  if (type == ES_TYPE_IDENTIFY)
    bf_link(m, user, anon);
  else if (type == ES_TYPE_ALIAS)
    bf_link(m, prev, user);
}

/* A name standing for id's person: the first-added id of its component,
 * or id itself when it was never linked. */
static const char *bf_person(const bf_ids *m, const char *id) {
  int i = bf_find(m, id);
  if (i < 0)
    return id;
  for (int j = 0; j < m->n; j++)
    if (m->label[j] == m->label[i])
      return m->names[j];
  return id;
}

/* Whether ids a and b are the same person (NULL never is). */
static int bf_same(const bf_ids *m, const char *a, const char *b) {
  if (!a || !b)
    return 0;
  return strcmp(bf_person(m, a), bf_person(m, b)) == 0;
}

static void bf_free(bf_ids *m) {
  for (int i = 0; i < m->n; i++)
    free(m->names[i]);
  free(m->names);
  free(m->label);
  memset(m, 0, sizeof(*m));
}

#endif
