/*
 * fuzz_ingest_body.c -- fuzz target: es-ingestd's request body path
 * (cmd/ingestd/body.h): inflate under a cap, then the JSON of one Segment
 * call or of a /v1/batch, mapped to es_events.
 *
 * Input: byte 0 picks the endpoint (low 3 bits: 0 = /v1/batch, 1..6 an
 * es_type) and whether the rest is a compressed body (bit 7); the rest is
 * the body.
 *
 * Properties beyond "no crash, no leak":
 *  1. A refused body leaves the batch empty and a non-empty message.
 *  2. An accepted one has, for every event: a valid type, a messageId
 *     (generated when absent) of at most 100 characters' worth of bytes
 *     checked by segment_json, recv_us = the receive time, ts_us >= 0.
 *  3. Inflating never yields more than the cap.
 */
#include <stdlib.h>
#include <string.h>

#include "ingest/body.h"
#include "fuzz_util.h"

#define IB_NOW_US INT64_C(1700000000000000)
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  int type = data[0] & 7, compressed = data[0] & 0x80;
  char err[ING_ERR_SIZE];
  char *body = NULL;
  size_t len = size - 1;
  uint64_t rng = 42;
  if (type > 6)
    return 0;
  if (compressed) {
    err[0] = '\0';
    if (ing_inflate((const char *)data + 1, len, 4096, &body, &len, err,
                    sizeof err)) {
      FUZZ_ASSERT(body == NULL && err[0] != '\0');
      return 0;
    }
    FUZZ_ASSERT(len <= 4096 && body[len] == '\0'); /* property 3 */
  } else {
    body = (char *)fuzz_dup(data + 1, len); /* NUL-terminated below */
    body = realloc(body, len + 1);
    FUZZ_ASSERT(body != NULL);
    body[len] = '\0';
  }
  ing_batch b;
  err[0] = '\0';
  if (ing_batch_parse(&b, body, len, type, IB_NOW_US, &rng, err, sizeof err)) {
    FUZZ_ASSERT(b.events == NULL && b.count == 0 && err[0] != '\0');
  } else {
    for (size_t i = 0; i < b.count; i++) {
      const es_event *ev = &b.events[i].ev;
      FUZZ_ASSERT(es_type_name(ev->type) != NULL);
      FUZZ_ASSERT(ev->message_id != NULL && ev->recv_us == IB_NOW_US);
      FUZZ_ASSERT(ev->ts_us >= 0);
      fuzz_touch(ev->message_id);
      fuzz_touch(ev->properties);
    }
    fuzz_touch(b.write_key);
  }
  ing_batch_free(&b);
  free(body);
  return 0;
}
