/*
 * fuzz_segment_json.c -- fuzz target: the Segment event JSON parser of
 * the tools (cmd/segment_json.h), on arbitrary bytes.
 *
 * The input is one candidate JSON object for seg_event_parse.  What it
 * accepts is written back with seg_event_write and parsed again.
 *
 * Properties beyond "no crash, no leak":
 *  1. A refused input leaves the seg_event empty and a NUL-terminated
 *     message in the error buffer.
 *  2. An accepted one has a valid type, ts_us >= 0, every string inside
 *     its storage block.
 *  3. The writer's output is valid JSON, the parser accepts it, and
 *     writing what it gives yields the same bytes: parse and write agree
 *     on one canonical form (esctl's export is re-importable).
 */
#include <stdlib.h>
#include <string.h>

#include <yajl_tree.h>

#include "fuzz_util.h"
#include "common/segment_json.h"

#define SJ_NOW_US INT64_C(1700000000000000)

/* The string fields of es_event, to walk them without lib/event.h. */
static const char *sj_field(const es_event *ev, int i) {
  const char *const f[] = {ev->event,      ev->message_id,  ev->anonymous_id,
                           ev->user_id,    ev->previous_id, ev->group_id,
                           ev->path,       ev->url,         ev->referrer,
                           ev->properties, ev->user_agent,  ev->ip};
  return i < (int)(sizeof(f) / sizeof(f[0])) ? f[i] : NULL;
}
#define SJ_NFIELDS 12

static void sj_assert_empty(const seg_event *se) {
  FUZZ_ASSERT(se->storage == NULL);
  for (int i = 0; i < SJ_NFIELDS; i++)
    FUZZ_ASSERT(sj_field(&se->ev, i) == NULL);
}

/* Property 2. */
static void sj_assert_sane(const seg_event *se) {
  FUZZ_ASSERT(es_type_name(se->ev.type) != NULL);
  FUZZ_ASSERT(se->ev.ts_us >= 0);
  for (int i = 0; i < SJ_NFIELDS; i++)
    fuzz_touch(sj_field(&se->ev, i));
}

/* Property 3, for an accepted event. */
static void sj_round_trip(const seg_event *se) {
  seg_buf out1, out2;
  seg_buf_init(&out1);
  seg_buf_init(&out2);
  if (seg_event_write(&out1, &se->ev) != 0)
    goto out; /* out of memory */
  char yerr[128];
  yajl_val tree = yajl_tree_parse(out1.data, yerr, sizeof(yerr));
  if (!tree)
    FUZZ_FAIL("writer emitted invalid JSON (%s): %s", yerr, out1.data);
  yajl_tree_free(tree);
  seg_event again;
  char err[SEG_ERR_SIZE];
  if (seg_event_parse(&again, out1.data, out1.len, SJ_NOW_US, err,
                      sizeof(err)) != 0)
    FUZZ_FAIL("writer output refused by the parser (%s): %s", err, out1.data);
  int rc = seg_event_write(&out2, &again.ev);
  seg_event_free(&again);
  if (rc == 0 &&
      (out1.len != out2.len || memcmp(out1.data, out2.data, out1.len) != 0))
    FUZZ_FAIL("write(parse(write(e))) != write(e):\n  %s\n  %s", out1.data,
              out2.data);
out:
  seg_buf_free(&out1);
  seg_buf_free(&out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  seg_event se;
  char err[SEG_ERR_SIZE];
  memset(err, 'x', sizeof(err));
  if (seg_event_parse(&se, (const char *)data, size, SJ_NOW_US, err,
                      sizeof(err)) != 0) {
    FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL);
    sj_assert_empty(&se);
    return 0;
  }
  sj_assert_sane(&se);
  sj_round_trip(&se);
  seg_event_free(&se);
  return 0;
}
