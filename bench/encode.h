/*
 * encode.h -- the compact byte encoding of one es_event that the peer
 * systems (RocksDB values; later others) store, written once so that every
 * peer stores exactly the same bytes per event.
 *
 * Layout (the same shape as libeventstore's row encoding, so that "bytes
 * per event" compares storage engines rather than encodings):
 *   svarint ts_us | svarint (recv_us - ts_us) | u8 type |
 *   12 strings in es_event order (event, message_id, anonymous_id,
 *   user_id, previous_id, group_id, path, url, referrer, properties,
 *   user_agent, ip): varint 0 for NULL, else varint (len + 1) and the bytes
 * svarint is LEB128 of the zigzagged value.
 */
#ifndef ES_BENCH_ENCODE_H
#define ES_BENCH_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "eventstore.h"

#define ENC_NSTR 12

/* The exact number of bytes enc_event() writes for ev. */
size_t enc_event_size(const es_event *ev);

/* Encodes ev into out (at least enc_event_size(ev) bytes); returns the
 * number of bytes written. */
size_t enc_event(const es_event *ev, uint8_t *out);

/*
 * Decodes n bytes at p into *ev.  The strings are copied, NUL-terminated,
 * into scratch (at least n + ENC_NSTR bytes), and ev points into it.
 * Returns 0, or -1 when the bytes are malformed or trail garbage.
 */
int enc_decode(const uint8_t *p, size_t n, es_event *ev, char *scratch);

/* Pointers to the 12 string fields of ev, in encoding order. */
const char **enc_str_field(es_event *ev, int i);

#endif
