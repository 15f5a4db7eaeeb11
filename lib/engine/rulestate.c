/*
 * rulestate.c -- the tenant's rule state file, RSTATE: every rule's
 * counters and membership series as of an LSN, so that an open loads them
 * instead of counting the rule's window again from the segments (rules.h,
 * invariant 2; docs/FORMAT.md, "RSTATE").
 *
 * Layout, little-endian:
 *   "ESRSTAT1" | u32 version (1) | u64 lsn | u32 count |
 *   count x rule:
 *     varint length, the rule's canonical JSON |
 *     u32 points | points x (i64 hour_us, u32 members) |
 *     varint visitors | visitors x (varint length, id |
 *                                   varint n | svarint ts[0] |
 *                                   (n - 1) x varint ts[i] - ts[i-1]) |
 *   u64 XXH3 of everything before (seed 0)
 */
#include <stdlib.h>

#include "base/mem.h"
#include "engine/rules.h"

#define RSTATE_MAGIC "ESRSTAT1"
#define RSTATE_VERSION 1

static int rstate_put_rule(es_buf *b, const es_rule *r,
                           int (*hide)(const void *ud, const char *id),
                           const void *ud) {
  size_t len = strlen(r->json), live = 0;
  ES_TRY(es__buf_put_varint(b, len));
  ES_TRY(es__buf_put(b, r->json, len));
  ES_TRY(es__buf_put_u32(b, (uint32_t)r->nseries));
  for (size_t i = 0; i < r->nseries; i++) {
    ES_TRY(es__buf_put_u64(b, (uint64_t)r->series[i].hour_us));
    ES_TRY(es__buf_put_u32(b, r->series[i].members));
  }
  for (size_t i = 0; i < r->n; i++) {
    const es_rvisitor *v = es__rule_visitor(r, i);
    live += v->n > 0 && !(hide && hide(ud, v->id));
  }
  ES_TRY(es__buf_put_varint(b, live));
  for (size_t i = 0; i < r->n; i++) {
    const es_rvisitor *v = es__rule_visitor(r, i);
    if (v->n == 0 || (hide && hide(ud, v->id)))
      continue;
    size_t idlen = strlen(v->id);
    ES_TRY(es__buf_put_varint(b, idlen));
    ES_TRY(es__buf_put(b, v->id, idlen));
    ES_TRY(es__buf_put_varint(b, v->n));
    ES_TRY(es__buf_put_svarint(b, v->ts[0]));
    for (uint32_t k = 1; k < v->n; k++)
      ES_TRY(
          es__buf_put_varint(b, (uint64_t)v->ts[k] - (uint64_t)v->ts[k - 1]));
  }
  return ES_OK;
}

/* Serialises the rules; see rules.h. */
int es__rstate_encode(es_buf *b, uint64_t lsn, const es_rules *rules,
                      int (*hide)(const void *ud, const char *id),
                      const void *ud) {
  ES_TRY(es__buf_put(b, RSTATE_MAGIC, 8));
  ES_TRY(es__buf_put_u32(b, RSTATE_VERSION));
  ES_TRY(es__buf_put_u64(b, lsn));
  ES_TRY(es__buf_put_u32(b, (uint32_t)rules->n));
  for (size_t i = 0; i < rules->n; i++)
    ES_TRY(rstate_put_rule(b, rules->v[i], hide, ud));
  return es__buf_put_u64(b, es__hash64(b->data, b->len, 0));
}

/* One rule's section into *r_out (owned). */
static int rstate_rule(es_rd *rd, const uint8_t *base, const char *path,
                       uint32_t idx, es_rule **r_out) {
  size_t at = (size_t)(rd->p - base);
  uint64_t len = es__rd_varint(rd);
  const uint8_t *text = rd->bad ? NULL : es__rd_bytes(rd, len);
  if (!text)
    return ES_CORRUPT_BKPT("%s: offset %zu: rule %u runs past the end", path,
                           at, idx);
  char *json = es__malloc(len + 1);
  if (!json)
    return ES_NOMEM_BKPT();
  memcpy(json, text, len);
  json[len] = '\0';
  int rc = es__rule_parse(json, r_out);
  if (rc == ES_OK && strcmp((*r_out)->json, json) != 0)
    rc = ES_CORRUPT_BKPT("%s: offset %zu: rule %u is not in canonical form",
                         path, at, idx);
  es__free(json);
  if (rc == ES_EINVAL)
    return ES_CORRUPT_BKPT("%s: offset %zu: rule %u does not parse: %s", path,
                           at, idx, es_errdetail());
  ES_TRY(rc);
  es_rule *r = *r_out;
  at = (size_t)(rd->p - base);
  uint32_t np = es__rd_u32(rd);
  if (rd->bad || np > ES_RULE_SERIES_MAX || (size_t)(rd->end - rd->p) / 12 < np)
    return ES_CORRUPT_BKPT("%s: offset %zu: rule %u: bad series length", path,
                           at, idx);
  if (np > 0 && !(r->series = es__malloc(np * sizeof(es_rpoint))))
    return ES_NOMEM_BKPT();
  for (uint32_t i = 0; i < np; i++) {
    r->series[i].hour_us = (int64_t)es__rd_u64(rd);
    r->series[i].members = es__rd_u32(rd);
    if (i > 0 && r->series[i].hour_us <= r->series[i - 1].hour_us)
      return ES_CORRUPT_BKPT("%s: offset %zu: rule %u: series out of order",
                             path, at, idx);
    r->nseries++;
  }
  at = (size_t)(rd->p - base);
  uint64_t nvis = es__rd_varint(rd);
  if (rd->bad || nvis > (size_t)(rd->end - rd->p) / 3)
    return ES_CORRUPT_BKPT("%s: offset %zu: rule %u: bad visitor count", path,
                           at, idx);
  int64_t *ts = es__malloc(r->at_least * sizeof(int64_t));
  if (!ts)
    return ES_NOMEM_BKPT();
  rc = ES_OK;
  for (uint64_t i = 0; rc == ES_OK && i < nvis; i++) {
    at = (size_t)(rd->p - base);
    uint64_t idlen = es__rd_varint(rd);
    const uint8_t *id = rd->bad ? NULL : es__rd_bytes(rd, idlen);
    uint64_t n = es__rd_varint(rd);
    if (!id || rd->bad || idlen == 0 || memchr(id, 0, idlen) ||
        n > r->at_least || n == 0) {
      rc = ES_CORRUPT_BKPT("%s: offset %zu: rule %u: bad visitor %llu", path,
                           at, idx, (unsigned long long)i);
      break;
    }
    ts[0] = es__rd_svarint(rd);
    for (uint64_t k = 1; k < n; k++) {
      uint64_t d = es__rd_varint(rd);
      if (d > (uint64_t)INT64_MAX ||
          __builtin_add_overflow(ts[k - 1], (int64_t)d, &ts[k]))
        rd->bad = 1;
    }
    char *copy = rd->bad ? NULL : es__malloc(idlen + 1);
    if (rd->bad) {
      rc = ES_CORRUPT_BKPT("%s: offset %zu: rule %u: visitor %llu runs past "
                           "the end",
                           path, at, idx, (unsigned long long)i);
      break;
    }
    if (!copy) {
      rc = ES_NOMEM_BKPT();
      break;
    }
    memcpy(copy, id, idlen);
    copy[idlen] = '\0';
    rc = es__rule_visitor_add(r, copy, ts, (uint32_t)n);
    es__free(copy);
    if (rc == ES_EINVAL)
      rc = ES_CORRUPT_BKPT("%s: offset %zu: rule %u: %s", path, at, idx,
                           es_errdetail());
  }
  es__free(ts);
  r->prune_at = 2 * r->n + 1024;
  return rc;
}

/* Parses an RSTATE image; see rules.h. */
int es__rstate_parse(const uint8_t *p, size_t n, const char *path,
                     es_rstate *st) {
  memset(st, 0, sizeof(*st));
  if (n < 32 || memcmp(p, RSTATE_MAGIC, 8) != 0 ||
      es__get_le64(p + n - 8) != es__hash64(p, n - 8, 0))
    return ES_CORRUPT_BKPT("%s: offset 0: bad RSTATE header or checksum", path);
  if (es__get_le32(p + 8) > RSTATE_VERSION)
    return ES_ERR(ES_EVERSION, "%s: RSTATE version %u is newer than %u", path,
                  es__get_le32(p + 8), RSTATE_VERSION);
  st->lsn = es__get_le64(p + 12);
  uint32_t count = es__get_le32(p + 20);
  if (count > ES_RULES_MAX)
    return ES_CORRUPT_BKPT("%s: offset 20: %u rules", path, count);
  st->rules.v = es__calloc(count ? count : 1, sizeof(es_rule *));
  if (!st->rules.v)
    return ES_NOMEM_BKPT();
  es_rd rd = es__rd(p + 24, n - 32);
  for (uint32_t i = 0; i < count; i++) {
    es_rule *r = NULL;
    int rc = rstate_rule(&rd, p, path, i, &r);
    if (r)
      st->rules.v[st->rules.n++] = r;
    ES_TRY(rc);
  }
  if (rd.p != rd.end)
    return ES_CORRUPT_BKPT("%s: offset %zu: bytes after the last rule", path,
                           (size_t)(rd.p - p));
  return ES_OK;
}
