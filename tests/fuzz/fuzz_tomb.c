/*
 * fuzz_tomb.c -- fuzz target: a tenant's erase log (ERASE,
 * lib/store/tomb.c), read at every load of a tenant and by read-only
 * handles whenever it changes.
 *
 * Properties beyond "no crash, no leak":
 *  1. The parser answers ES_OK, ES_ECORRUPT or ES_ENOMEM, and the valid
 *     end it reports is within the input.
 *  2. An accepted log has distinct request ids, at most ES_TOMB_IDS_MAX
 *     ids per pending request, and stage states that are known.
 *  3. Its compacted image (what a completed request leaves) parses back
 *     to the same requests, states and ids (completed ones without ids),
 *     and the same suppression hashes in the same groups.
 */
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "fuzz_util.h"
#include "store/tomb.h"

static void same_req(const es_tomb_req *a, const es_tomb_req *b) {
  FUZZ_ASSERT(a->id == b->id && a->submitted_us == b->submitted_us &&
              a->flags == b->flags);
  FUZZ_ASSERT(memcmp(a->subject_hash, b->subject_hash, 16) == 0);
  FUZZ_ASSERT(memcmp(a->state, b->state, sizeof(a->state)) == 0);
  int done = es__tomb_req_done(a);
  FUZZ_ASSERT(b->nids == (done ? 0 : a->nids));
  for (size_t k = 0; k < b->nids; k++)
    FUZZ_ASSERT(strcmp(a->ids[k], b->ids[k]) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = fuzz_dup(data, size);
  es_tomb_log log;
  memset(&log, 0, sizeof(log));
  size_t end = 0;
  int rc = es__tomb_log_parse(buf, size, "fuzz", &log, &end);
  FUZZ_ASSERT(rc == ES_OK || rc == ES_ECORRUPT || rc == ES_ENOMEM);
  if (rc == ES_OK) {
    FUZZ_ASSERT(end <= size);
    for (size_t i = 0; i < log.n; i++) {
      FUZZ_ASSERT(log.v[i].nids <= ES_TOMB_IDS_MAX);
      for (int s = 0; s < ES_TOMB_STAGES; s++)
        FUZZ_ASSERT(log.v[i].state[s] <= ES_TOMB_BEGUN);
      for (size_t j = i + 1; j < log.n; j++)
        FUZZ_ASSERT(log.v[i].id != log.v[j].id);
    }
    es_buf img = {0};
    if (es__tomb_log_encode(&log, &img) == ES_OK) {
      es_tomb_log back;
      memset(&back, 0, sizeof(back));
      size_t bend = 0;
      int brc = es__tomb_log_parse(img.data, img.len, "fuzz", &back, &bend);
      FUZZ_ASSERT(brc == ES_OK || brc == ES_ENOMEM);
      if (brc == ES_OK) {
        FUZZ_ASSERT(bend == img.len && back.n == log.n);
        FUZZ_ASSERT(back.has_salt == log.has_salt);
        for (size_t i = 0; i < log.n; i++)
          same_req(&log.v[i], &back.v[i]);
        /* the suppression hashes, in the same groups (persons) */
        FUZZ_ASSERT(back.nsuppress == log.nsuppress);
        FUZZ_ASSERT(log.nsuppress == 0 || memcmp(back.suppress, log.suppress,
                                                 16 * log.nsuppress) == 0);
        FUZZ_ASSERT(back.nsup_groups == log.nsup_groups);
      }
      es__tomb_log_free(&back);
    }
    es__buf_free(&img);
  }
  es__tomb_log_free(&log);
  free(buf);
  return 0;
}
