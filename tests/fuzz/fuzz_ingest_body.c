/*
 * fuzz_ingest_body.c -- fuzz target: es-ingestd's request body path
 * (cmd/ingestd/body.h): inflate under a cap, then the JSON of one Segment
 * call or of a /v1/batch, mapped to es_events; plus the dedupe set.
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
 *  4. The dedupe set agrees with a plain list over the batch's ids.
 */
#include <stdlib.h>
#include <string.h>

#include "ingest/body.h"
#include "ingest/dedupe.h"
#include "fuzz_util.h"

#define IB_NOW_US INT64_C(1700000000000000)
#define IB_IDS_MAX 7 /* small, so that the ring wraps and forgets */

/* A plain model of ing_dedupe: a FIFO of what was added (removed ids
 * keep their slot, as in dedupe.c) and the set of ids it holds. */
typedef struct ib_model {
  uint64_t fifo[IB_IDS_MAX], set[IB_IDS_MAX];
  size_t fifo_len, set_len;
} ib_model;

static int ib_has(const ib_model *m, uint64_t h) {
  for (size_t k = 0; k < m->set_len; k++)
    if (m->set[k] == h)
      return 1;
  return 0;
}

static void ib_forget(ib_model *m, uint64_t h) {
  for (size_t k = 0; k < m->set_len; k++)
    if (m->set[k] == h) {
      m->set[k] = m->set[--m->set_len];
      return;
    }
}

static void ib_add(ib_model *m, uint64_t h) {
  if (m->fifo_len == IB_IDS_MAX) {
    ib_forget(m, m->fifo[0]);
    memmove(m->fifo, m->fifo + 1, (IB_IDS_MAX - 1) * sizeof m->fifo[0]);
    m->fifo_len--;
  }
  m->fifo[m->fifo_len++] = h;
  m->set[m->set_len++] = h;
}

/* Property 4: the set against the model over the batch's ids, with a
 * removal (a failed append) now and then; a small ids_max makes it wrap.
 * Hash collisions are simulated by folding the hashes to a few bits, so
 * that the table's probing and backward-shift deletion are exercised. */
static void ib_dedupe(const ing_batch *b) {
  ing_dedupe d;
  ib_model m = {0};
  ing_dedupe_init(&d, IB_IDS_MAX, NULL);
  for (size_t i = 0; i < b->count; i++) {
    uint64_t h = ing_dedupe_hash(b->events[i].ev.message_id);
    h = (h & 0x3ff) * 1024 + 1 + (h >> 60); /* same home slot often */
    FUZZ_ASSERT(ing_dedupe_has(&d, h) == ib_has(&m, h));
    if (ib_has(&m, h)) {
      FUZZ_ASSERT(ing_dedupe_add(&d, h) == 1);
      continue;
    }
    FUZZ_ASSERT(ing_dedupe_add(&d, h) == 0);
    ib_add(&m, h);
    if (i % 3 == 2) {
      ing_dedupe_remove(&d, h);
      ib_forget(&m, h);
    }
    for (size_t k = 0; k < m.set_len; k++)
      FUZZ_ASSERT(ing_dedupe_has(&d, m.set[k]));
    FUZZ_ASSERT(d.used == m.set_len);
  }
  ing_dedupe_free(&d);
}

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
    ib_dedupe(&b);
  }
  ing_batch_free(&b);
  free(body);
  return 0;
}
