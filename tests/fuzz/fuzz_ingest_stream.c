/*
 * fuzz_ingest_stream.c -- differential fuzz target: es-ingestd's streaming
 * body parse (ing_batch_parse, yajl callbacks) against the tree path it
 * replaced (ing_batch_parse_tree, yajl_tree + seg_event_from_tree).
 *
 * Input: as fuzz_ingest_body's, without compression: byte 0 picks the
 * endpoint (low 3 bits: 0 = /v1/batch, 1..6 an es_type), the rest is the
 * body.
 *
 * Property: for every input both give the same result: the same status
 * and message, the same rng state after, and when accepted the same write
 * key, memory figure and events, field by field.
 */
#include <stdlib.h>
#include <string.h>

#include "ingest/body.h"
#include "fuzz_util.h"

#define IS_NOW_US INT64_C(1700000000000000)

static void same_str(const char *a, const char *b) {
  FUZZ_ASSERT((a == NULL) == (b == NULL));
  if (a != NULL)
    FUZZ_ASSERT(strcmp(a, b) == 0);
}

static void same_event(const es_event *a, const es_event *b) {
  FUZZ_ASSERT(a->ts_us == b->ts_us && a->recv_us == b->recv_us);
  FUZZ_ASSERT(a->type == b->type);
  same_str(a->event, b->event);
  same_str(a->message_id, b->message_id);
  same_str(a->anonymous_id, b->anonymous_id);
  same_str(a->user_id, b->user_id);
  same_str(a->previous_id, b->previous_id);
  same_str(a->group_id, b->group_id);
  same_str(a->path, b->path);
  same_str(a->url, b->url);
  same_str(a->referrer, b->referrer);
  same_str(a->properties, b->properties);
  same_str(a->user_agent, b->user_agent);
  same_str(a->ip, b->ip);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  int type = data[0] & 7;
  if (type > 6)
    return 0;
  size_t len = size - 1;
  char *body = malloc(len + 1);
  FUZZ_ASSERT(body != NULL);
  memcpy(body, data + 1, len);
  body[len] = '\0';
  char err_t[ING_ERR_SIZE], err_s[ING_ERR_SIZE];
  uint64_t rng_t = 42, rng_s = 42;
  ing_batch bt, bs;
  err_t[0] = err_s[0] = '\0';
  int rc_t = ing_batch_parse_tree(&bt, body, len, type, IS_NOW_US, &rng_t,
                                  err_t, sizeof err_t);
  int rc_s = ing_batch_parse(&bs, body, len, type, IS_NOW_US, &rng_s, err_s,
                             sizeof err_s);
  FUZZ_ASSERT(rc_t == rc_s);
  FUZZ_ASSERT(rng_t == rng_s);
  if (rc_t != 0) {
    FUZZ_ASSERT(strcmp(err_t, err_s) == 0);
    FUZZ_ASSERT(bs.events == NULL && bs.count == 0 && bs.arena == NULL);
  } else {
    FUZZ_ASSERT(bt.count == bs.count && bt.bytes == bs.bytes);
    /* es-ingestd's admission (http.c, invariant 6) charges a parse by
     * a bound of the body's events before it runs (comments aside) */
    FUZZ_ASSERT(memchr(body, '/', len) != NULL ||
                bs.count <= ing_events_max(body, len));
    FUZZ_ASSERT(bs.mem_bytes >= bs.count * (sizeof(seg_event) + 36));
    same_str(bt.write_key, bs.write_key);
    for (size_t i = 0; i < bt.count; i++)
      same_event(&bt.events[i].ev, &bs.events[i].ev);
  }
  ing_batch_free(&bt);
  ing_batch_free(&bs);
  free(body);
  return 0;
}
