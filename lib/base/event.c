/*
 * event.c -- encoding, decoding and validation of one event row.
 *
 * The same bytes travel from the appending thread into the WAL record and
 * into the memtable arena, so an event is encoded exactly once.  Decoding
 * is zero-copy: strings point into the row (each is NUL-terminated there).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "base/event.h"

const size_t es__str_offset[ES_NSTR] = {
#define ES_STR_OFF(name) offsetof(es_event, name),
    ES_STR_FIELDS(ES_STR_OFF)
#undef ES_STR_OFF
};

const char *const es__str_name[ES_NSTR] = {
#define ES_STR_NAME(name) #name,
    ES_STR_FIELDS(ES_STR_NAME)
#undef ES_STR_NAME
};

static const char *const event_type_names[] = {
    NULL, "track", "page", "screen", "identify", "alias", "group"};

/* The wire name of an event type. */
const char *es_type_name(int type) {
  if (type < ES_TYPE_TRACK || type > ES_TYPE_GROUP)
    return NULL;
  return event_type_names[type];
}

/* The event type of a wire name, or 0. */
int es_type_from_name(const char *name) {
  if (!name)
    return 0;
  for (int t = ES_TYPE_TRACK; t <= ES_TYPE_GROUP; t++)
    if (strcmp(name, event_type_names[t]) == 0)
      return t;
  return 0;
}

/* Tenant ids become directory names: only a safe alphabet, so that no id
 * can climb out of the data directory or collide after case folding on a
 * case-insensitive file system... (they are case-sensitive here). */
int es__tenant_check(const char *tenant) {
  if (!tenant)
    return ES_ERR(ES_ETENANT, "tenant is NULL");
  size_t n = 0;
  for (const char *p = tenant; *p; p++, n++) {
    char c = *p;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok || n >= ES_TENANT_LEN_MAX)
      return ES_ERR(ES_ETENANT, "invalid tenant id \"%.70s\"", tenant);
  }
  if (n == 0)
    return ES_ERR(ES_ETENANT, "empty tenant id");
  return ES_OK;
}

/* Truncates an address to /24 (IPv4) or /48 (IPv6) so that a stored event
 * does not identify a household; unparsable text is dropped, not stored. */
static const char *event_ip_truncate(const char *ip, char *out, size_t cap) {
  unsigned char a[16];
  if (inet_pton(AF_INET, ip, a) == 1) {
    /* inet_pton takes only the canonical dotted quad (no leading zeros,
     * no spaces), so the text up to its last dot plus "0" is what
     * inet_ntop would print -- without its printf (1% of es-ingestd) */
    size_t keep = (size_t)(strrchr(ip, '.') - ip) + 1;
    if (keep + 2 > cap)
      return NULL;
    memcpy(out, ip, keep);
    memcpy(out + keep, "0", 2);
    return out;
  }
  if (inet_pton(AF_INET6, ip, a) == 1) {
    memset(a + 6, 0, 10);
    return inet_ntop(AF_INET6, a, out, (socklen_t)cap);
  }
  return NULL;
}

static int event_put_str(es_buf *b, const char *s) {
  if (!s)
    return es__buf_put_u8(b, 0);
  size_t n = strlen(s);
  ES_TRY(es__buf_reserve(b, n + 11));
  b->len += es__varint_put(b->data + b->len, (uint64_t)n + 1);
  memcpy(b->data + b->len, s, n + 1);
  b->len += n + 1;
  return ES_OK;
}

/* Encodes one event (see event.h); refuses what the store cannot keep. */
int es__event_encode(es_buf *b, const es_event *ev, int64_t now_us,
                     int keep_full_ip) {
  if (ev->type < ES_TYPE_TRACK || ev->type > ES_TYPE_GROUP)
    return ES_INVAL_BKPT("event type %d is not an es_type", ev->type);
  if (ev->ts_us < 0 || ev->ts_us == INT64_MAX)
    return ES_INVAL_BKPT("event time %lld is outside [1970, INT64_MAX)",
                         (long long)ev->ts_us);
  int64_t recv = ev->recv_us ? ev->recv_us : now_us;
  size_t start = b->len;
  ES_TRY(es__buf_reserve(b, 21));
  b->len += es__varint_put(b->data + b->len, es__zigzag(ev->ts_us));
  b->len += es__varint_put(
      b->data + b->len,
      es__zigzag((int64_t)((uint64_t)recv - (uint64_t)ev->ts_us)));
  b->data[b->len++] = (uint8_t)ev->type;
  char ipbuf[INET6_ADDRSTRLEN];
  for (int i = 0; i < ES_NSTR; i++) {
    const char *s = es__ev_cstr(ev, i);
    if (i == ES_STR_ip && s && !keep_full_ip)
      s = event_ip_truncate(s, ipbuf, sizeof(ipbuf));
    ES_TRY(event_put_str(b, s));
  }
  if (b->len - start > ES_EVENT_BYTES_MAX) {
    b->len = start;
    return ES_ERR(ES_ETOOBIG, "event encodes to more than %d bytes",
                  ES_EVENT_BYTES_MAX);
  }
  return ES_OK;
}

/* Decodes a row; the strings of *ev borrow from p. */
int es__event_decode(const uint8_t *p, size_t n, es_event *ev, size_t *used) {
  return es__event_decode_lens(p, n, ev, NULL, used);
}

/* The same, also giving each string's length (the row stores it). */
int es__event_decode_lens(const uint8_t *p, size_t n, es_event *ev,
                          uint32_t *lens, size_t *used) {
  es_rd r = es__rd(p, n);
  memset(ev, 0, sizeof(*ev));
  ev->ts_us = es__rd_svarint(&r);
  ev->recv_us = (int64_t)((uint64_t)ev->ts_us + (uint64_t)es__rd_svarint(&r));
  ev->type = es__rd_u8(&r);
  for (int i = 0; i < ES_NSTR && !r.bad; i++) {
    uint64_t l = es__rd_varint(&r);
    if (lens)
      lens[i] = 0;
    if (l == 0)
      continue;
    const uint8_t *s = es__rd_bytes(&r, (size_t)l);
    if (!s || l > n || s[l - 1] != '\0')
      return ES_CORRUPT_BKPT("row: string %s malformed", es__str_name[i]);
    *es__ev_str(ev, i) = (const char *)s;
    if (lens)
      lens[i] = (uint32_t)(l - 1);
  }
  if (r.bad)
    return ES_CORRUPT_BKPT("row: truncated");
  if (ev->type < ES_TYPE_TRACK || ev->type > ES_TYPE_GROUP)
    return ES_CORRUPT_BKPT("row: bad event type %d", ev->type);
  *used = (size_t)(r.p - p);
  return ES_OK;
}

/* The event time of a well-formed row (the memtable index uses it). */
int64_t es__event_ts(const uint8_t *p) {
  es_rd r = es__rd(p, 10);
  return es__rd_svarint(&r);
}

int es__event_type(const uint8_t *p) {
  es_rd r = es__rd(p, 21); /* two varints of at most 10 bytes, the type */
  (void)es__rd_svarint(&r);
  (void)es__rd_svarint(&r);
  return es__rd_u8(&r);
}
