/*
 * body.h -- an ingest request body -> a batch of es_events.
 *
 * Pure functions (no libuv, no clock, no store) so that they can be unit
 * tested and fuzzed on their own: inflating a gzip/deflate body under a
 * size cap, and parsing the JSON of one Segment call or of a /v1/batch
 * into seg_events with every per-event rule of docs/INGEST.md applied.
 */
#ifndef INGESTD_BODY_H
#define INGESTD_BODY_H

#include <stddef.h>
#include <stdint.h>

#include "common/segment_json.h"

/* Limits of the Segment HTTP API. */
#define ING_EVENT_BYTES_MAX (32 * 1024)
#define ING_REQUEST_BYTES_MAX (500 * 1024)
/* Room for a message naming the problem and the event index. */
#define ING_ERR_SIZE 320

/* A parsed request: the events, and the write key found in the body. */
typedef struct ing_batch {
  seg_event *events; /* owned; count of them */
  size_t count;
  char *write_key;         /* owned, from "writeKey"; NULL when absent */
  char *gen_ids;           /* owned storage of server-generated messageIds */
  size_t bytes;            /* the events' compact JSON + their structs */
  struct ing_block *arena; /* owned: the events' strings (streaming parse) */
  size_t mem_bytes; /* what the batch holds in the heap (for the budget) */
} ing_batch;

/*
 * The most heap a parse of a text of text_len bytes holding at most
 * events_max events takes, with the batch it leaves (arena, event
 * arrays, generated ids, es-ingestd's es_event copy), for admission
 * before a body is parsed: the arena's first block is the text's size
 * (unescaped strings are no longer than their JSON), the scratch buffers
 * of properties and traits hold one event's (32 KB each, doubling).
 * Strings that outgrow the first block (rare: a property path is copied
 * twice) are not in it; the batch's mem_bytes says what was taken, and
 * es-ingestd charges that once parsed.
 */
size_t ing_parse_bytes_max(size_t text_len, size_t events_max);

/*
 * A bound on the events in text[0..len): every event is an object that
 * opens the text or is an element of an array, so the '{' that come
 * first or after '[' or ',' (white space skipped) are counted -- also
 * inside strings, which only makes the bound larger.  A comment between
 * two events (yajl accepts them) hides one: then the bound is short and
 * es-ingestd charges the difference once parsed.
 */
size_t ing_events_max(const char *text, size_t len);

void ing_batch_init(ing_batch *b);
void ing_batch_free(ing_batch *b);

/*
 * Inflates a gzip or zlib ("deflate") body in[0..n) into a new buffer
 * (*out_n bytes plus a NUL; owned by the caller, free()).  More than
 * cap_bytes of output, a truncated stream or trailing garbage fail with
 * -1 and a message in err.
 */
int ing_inflate(const char *in, size_t n, size_t cap_bytes, char **out,
                size_t *out_n, char *err, size_t err_size);

/*
 * Parses the JSON body json[0..len) (json[len] must be NUL).  type is the
 * es_type the endpoint implies (/v1/track: ES_TYPE_TRACK...) or 0 for
 * /v1/batch, whose body is {"batch":[...]}.  now_us is the receive time:
 * every event gets recv_us = now_us, a timestamp is corrected by
 * (now_us - sentAt) when sentAt is given (per event or for the batch), an
 * event without timestamp gets now_us.  Events without messageId get one
 * made from *rng (a xorshift state).  Any bad event fails the whole call
 * (all or nothing) with err naming it ("batch[3]: ..."). 0 or -1.
 */
int ing_batch_parse(ing_batch *b, const char *json, size_t len, int type,
                    int64_t now_us, uint64_t *rng, char *err, size_t err_size);

/*
 * The same contract, through yajl_tree and seg_event_from_tree: the
 * reference that ing_batch_parse (a streaming parse with yajl's callbacks,
 * the strings of all events in one arena) must agree with, byte for byte
 * (tests/fuzz/fuzz_ingest_stream.c checks it).  Not used by the server.
 */
int ing_batch_parse_tree(ing_batch *b, const char *json, size_t len, int type,
                         int64_t now_us, uint64_t *rng, char *err,
                         size_t err_size);

#endif /* INGESTD_BODY_H */
