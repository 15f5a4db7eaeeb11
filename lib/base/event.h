/*
 * event.h -- the encoded row: how one es_event is laid out as bytes in a
 * WAL record and in the memtable, and the checks every event passes.
 *
 * Row layout (docs/FORMAT.md, "Row encoding"):
 *   svarint ts_us | svarint (recv_us - ts_us) | u8 type |
 *   ES_NSTR times: varint (len + 1), or 0 for NULL; then len bytes; then
 *   a NUL byte (present only when the string is)
 * The trailing NUL lets a decoded event point straight into the bytes.
 */
#ifndef ES_EVENT_H
#define ES_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "base/codec.h"
#include "eventstore.h"

/* The string fields of es_event, in their on-disk column order. */
#define ES_STR_FIELDS(X)                                                       \
  X(event)                                                                     \
  X(message_id)                                                                \
  X(anonymous_id)                                                              \
  X(user_id)                                                                   \
  X(previous_id)                                                               \
  X(group_id)                                                                  \
  X(path)                                                                      \
  X(url)                                                                       \
  X(referrer)                                                                  \
  X(properties)                                                                \
  X(user_agent)                                                                \
  X(ip)

enum {
#define ES_STR_ENUM(name) ES_STR_##name,
  ES_STR_FIELDS(ES_STR_ENUM)
#undef ES_STR_ENUM
      ES_NSTR
};

/* Byte offsets of the string fields inside es_event, by column. */
extern const size_t es__str_offset[ES_NSTR];
/* Names of the string fields, by column ("event", "message_id", ...). */
extern const char *const es__str_name[ES_NSTR];

static inline const char **es__ev_str(es_event *ev, int i) {
  return (const char **)((char *)ev + es__str_offset[i]);
}
static inline const char *es__ev_cstr(const es_event *ev, int i) {
  return *(const char *const *)((const char *)ev + es__str_offset[i]);
}

/* ES_OK if tenant matches [A-Za-z0-9_-]{1,64}, else ES_ETENANT. */
int es__tenant_check(const char *tenant) ES_MUST_CHECK;

/* Appends the row encoding of ev to b.  recv_us 0 becomes now_us; the ip
 * is truncated unless keep_full_ip.  Checks type, ts and size limits. */
int es__event_encode(es_buf *b, const es_event *ev, int64_t now_us,
                     int keep_full_ip) ES_MUST_CHECK;

/* Decodes the row at p (at most n bytes) into *ev, whose strings then
 * point into p.  Sets *used to the row's size.  ES_ECORRUPT if malformed. */
int es__event_decode(const uint8_t *p, size_t n, es_event *ev,
                     size_t *used) ES_MUST_CHECK;

/* es__event_decode that also sets lens[i] to the length of string i
 * (0 for NULL), so that callers need no strlen. */
int es__event_decode_lens(const uint8_t *p, size_t n, es_event *ev,
                          uint32_t *lens, size_t *used) ES_MUST_CHECK;

/* Reads only the event time of the row at p (rows are well formed). */
int64_t es__event_ts(const uint8_t *p);

/* Reads only the type of the row at p (rows are well formed). */
int es__event_type(const uint8_t *p);

#endif
