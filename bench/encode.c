/*
 * encode.c -- the shared peer encoding of an event (layout in encode.h).
 *
 * Invariant: enc_event_size() and enc_event() agree to the byte, and
 * enc_decode(enc_event(ev)) gives back every field of ev (strings equal,
 * NULL kept distinct from "").
 */
#include "encode.h"

#include <stddef.h>
#include <string.h>

const char **enc_str_field(es_event *ev, int i) {
  switch (i) {
  case 0:
    return &ev->event;
  case 1:
    return &ev->message_id;
  case 2:
    return &ev->anonymous_id;
  case 3:
    return &ev->user_id;
  case 4:
    return &ev->previous_id;
  case 5:
    return &ev->group_id;
  case 6:
    return &ev->path;
  case 7:
    return &ev->url;
  case 8:
    return &ev->referrer;
  case 9:
    return &ev->properties;
  case 10:
    return &ev->user_agent;
  default:
    return &ev->ip;
  }
}

static const char *str_at(const es_event *ev, int i) {
  return *enc_str_field((es_event *)ev, i);
}

static size_t varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static size_t varint_put(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

static uint64_t zigzag(int64_t v) {
  return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

size_t enc_event_size(const es_event *ev) {
  size_t n = varint_len(zigzag(ev->ts_us)) +
             varint_len(zigzag(ev->recv_us - ev->ts_us)) + 1;
  for (int i = 0; i < ENC_NSTR; i++) {
    const char *s = str_at(ev, i);
    size_t len = s ? strlen(s) : 0;
    n += s ? varint_len(len + 1) + len : 1;
  }
  return n;
}

size_t enc_event(const es_event *ev, uint8_t *out) {
  size_t n = varint_put(out, zigzag(ev->ts_us));
  n += varint_put(out + n, zigzag(ev->recv_us - ev->ts_us));
  out[n++] = (uint8_t)ev->type;
  for (int i = 0; i < ENC_NSTR; i++) {
    const char *s = str_at(ev, i);
    if (!s) {
      out[n++] = 0;
      continue;
    }
    size_t len = strlen(s);
    n += varint_put(out + n, len + 1);
    memcpy(out + n, s, len);
    n += len;
  }
  return n;
}

/* Reads a varint at *p (before end); -1 when truncated or over-long. */
static int varint_get(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t x = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*p >= end)
      return -1;
    uint8_t b = *(*p)++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

int enc_decode(const uint8_t *p, size_t n, es_event *ev, char *scratch) {
  const uint8_t *end = p + n;
  uint64_t ts, dr;
  memset(ev, 0, sizeof *ev);
  if (varint_get(&p, end, &ts) || varint_get(&p, end, &dr) || p >= end)
    return -1;
  ev->ts_us = (int64_t)(ts >> 1) ^ -(int64_t)(ts & 1);
  ev->recv_us = ev->ts_us + ((int64_t)(dr >> 1) ^ -(int64_t)(dr & 1));
  ev->type = *p++;
  for (int i = 0; i < ENC_NSTR; i++) {
    uint64_t len1;
    if (varint_get(&p, end, &len1))
      return -1;
    if (len1 == 0)
      continue;
    if (len1 - 1 > (uint64_t)(end - p))
      return -1;
    size_t len = (size_t)(len1 - 1);
    memcpy(scratch, p, len);
    scratch[len] = 0;
    *enc_str_field(ev, i) = scratch;
    scratch += len + 1;
    p += len;
  }
  return p == end ? 0 : -1;
}
