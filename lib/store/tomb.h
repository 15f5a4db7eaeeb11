/*
 * tomb.h -- erase requests of a tenant: their durable log (ERASE, in the
 * tenant's directory) and the tombstone every read path honours while a
 * request is pending.  The essay and the invariants are in tomb.c; the
 * stages are run by lib/erase/erase.c.
 */
#ifndef ES_TOMB_H
#define ES_TOMB_H

#include <stdatomic.h>

#include "store/dbint.h"

#define ES_TOMB_LOG "ERASE"
/* Stages of a request, in order (their numbers are on disk). */
#define ES_TOMB_HIDDEN 0   /* (a) the tombstone is durable */
#define ES_TOMB_SEGMENTS 1 /* (b) segments rewritten without the rows */
#define ES_TOMB_ROLLUPS 2  /* (c) rollups of affected buckets re-derived */
#define ES_TOMB_WAL 3      /* (d) WAL files, identity log, rule counters */
#define ES_TOMB_REPLICA 4  /* (e) S3 objects replaced and deleted */
#define ES_TOMB_EXPORTS 5  /* (f) export partitions re-exported */
#define ES_TOMB_STAGES 6
/* A stage's state. */
#define ES_TOMB_PENDING 0
#define ES_TOMB_DONE 1
#define ES_TOMB_SKIPPED 2 /* nothing to do there (no replica, no export) */
#define ES_TOMB_BEGUN                                                          \
  3 /* stage (b) only: started by an earlier run, which                        \
       may have removed rows before a crash (so a                              \
       later run finding none does not know their                              \
       days, and (f) re-cuts every partition) */

#define ES_TOMB_SUPPRESS 1u /* flags: drop later events with these ids */
#define ES_TOMB_IDS_MAX 100 /* ids of one person (ES_IDENTITY_IDS_MAX) */
#define ES_TOMB_ID_BYTES_MAX 1024

/* One request, as the log tells it. */
typedef struct es_tomb_req {
  uint64_t id;
  int64_t submitted_us;
  uint32_t flags;
  uint8_t subject_hash[16]; /* salted hash of the id the request named */
  char **ids;               /* owned; only while pending (else NULL) */
  size_t nids;
  uint8_t state[ES_TOMB_STAGES];
  int64_t stage_us[ES_TOMB_STAGES];
  uint64_t stage_count[ES_TOMB_STAGES]; /* rows, files or objects */
} es_tomb_req;

/* The whole log. */
typedef struct es_tomb_log {
  uint8_t salt[16];
  int has_salt, salt_new; /* salt_new: made here, not yet in the file */
  es_tomb_req *v;
  size_t n, cap;
  uint64_t next_id;
  /* salted hashes of the ids of completed requests that asked for
   * suppression (16 bytes each) */
  uint8_t *suppress;
  size_t nsuppress, suppress_cap;
  /* one group per person (a SUPPRESS record): where each ends in
   * suppress; none with nsuppress > 0 reads as one group */
  size_t *sup_ends;
  size_t nsup_groups, sup_groups_cap;
} es_tomb_log;

void es__tomb_log_free(es_tomb_log *log);
/* Whether every stage of r is done or skipped. */
int es__tomb_req_done(const es_tomb_req *r);
/* The request with this id, or NULL. */
es_tomb_req *es__tomb_log_find(es_tomb_log *log, uint64_t id);
/* The salted hash of an id (16 bytes). */
void es__tomb_hash(const es_tomb_log *log, const char *id, uint8_t out[16]);

/* Parses a log image (named path in errors) into *log; stops at the first
 * record that does not check when nothing valid follows (a torn append,
 * never acknowledged), *end_out is where the valid records end.
 * ES_ECORRUPT naming file and offset when a valid record follows a
 * damaged one, or a record checks but does not decode. */
int es__tomb_log_parse(const uint8_t *p, size_t n, const char *path,
                       es_tomb_log *log, size_t *end_out) ES_MUST_CHECK;
/* Reads the tenant's log (none: an empty log). */
int es__tomb_log_read(es_vfs *vfs, const char *tenant_dir, es_tomb_log *log,
                      size_t *end_out) ES_MUST_CHECK;

/* Gives a log without one a random salt (written by the next
 * es__tomb_append_req). */
int es__tomb_salt_ensure(es_tomb_log *log) ES_MUST_CHECK;

/* Durable appends, under the caller's es__tomb_lock: a new request (a
 * salt record first when the log has none); a stage's end.  Each returns
 * after the fdatasync (and directory sync for a new file).  A failed
 * write is returned (retryable); a failed sync fails the handle. */
int es__tomb_append_req(es_db *db, es_tenant *t, es_tomb_log *log,
                        const es_tomb_req *r) ES_MUST_CHECK;
int es__tomb_append_stage(es_db *db, es_tenant *t, es_tomb_log *log,
                          uint64_t id, int stage, int state,
                          uint64_t count) ES_MUST_CHECK;
/* Rewrites the log atomically with only what it must keep: the salt,
 * pending requests with their ids, completed ones as receipts without
 * ids, and the suppression hashes.  Called when a request completes, so
 * that its ids leave the disk. */
int es__tomb_log_compact(es_db *db, es_tenant *t,
                         const es_tomb_log *log) ES_MUST_CHECK;
/* The image es__tomb_log_compact writes, appended to b (the fuzz target
 * checks that it parses back to the same log). */
int es__tomb_log_encode(const es_tomb_log *log, es_buf *b) ES_MUST_CHECK;

/* Adds the salted hashes of ids to log's suppression list as one group
 * (a person), in memory: es__tomb_log_compact makes it durable. */
int es__tomb_log_suppress_add(es_tomb_log *log, char *const *ids,
                              size_t nids) ES_MUST_CHECK;
/* Lifts the suppression of every person one of whose ids is `id`: their
 * groups leave log's list, and pending requests naming id lose their
 * suppress flag (in memory: compact after); *lifted_out: ids lifted. */
int es__tomb_log_unsuppress(es_tomb_log *log, const char *id,
                            size_t *lifted_out) ES_MUST_CHECK;

/* Serialises the appends and compactions of a tenant's log. */
void es__tomb_lock(es_tenant *t);
void es__tomb_unlock(es_tenant *t);

/* --- the tombstone readers honour ---------------------------------------- */

/* An immutable snapshot: every id of every pending request. */
typedef struct es_tomb {
  atomic_int refs;
  int rollups_stale; /* some pending request is before stage (c) */
  size_t nids;
  char **ids;
  uint64_t *hashes; /* es__hash64 of each id */
  uint8_t *sup;     /* per id: its request asked for suppression */
  int suppressing;  /* some id is suppressed: appends must look */
  size_t nsuppress;
  uint8_t *suppress; /* 16-byte salted hashes */
  uint8_t salt[16];
} es_tomb;

/* The tenant's tombstone, a reference (NULL when no request is pending
 * and nothing is suppressed: the common case costs one atomic load).  A
 * read-only handle first looks whether ERASE changed (one stat), so a
 * reader process sees a new request as soon as it is acknowledged. */
es_tomb *es__tomb_get(es_db *db, es_tenant *t);
void es__tomb_unref(es_tomb *tb);
/* Whether a row with these ids is hidden (any may be NULL). */
int es__tomb_hides(const es_tomb *tb, const char *anon, const char *user,
                   const char *prev);
/* Whether one id is hidden. */
int es__tomb_hides_id(const es_tomb *tb, const char *id);
/* Whether the segment's Bloom filter admits any hidden id. */
int es__tomb_may_touch(const es_tomb *tb, const es_segment *seg);
/* Whether an event with these ids is to be dropped at ingest (acknowledged,
 * not stored): an id of a pending request that asked for suppression, or
 * one whose salted hash is in the suppression list of completed ones.  A
 * pending request without suppression drops nothing: later events are
 * new data (hidden until it completes, then kept). */
int es__tomb_suppresses(const es_tomb *tb, const char *anon, const char *user,
                        const char *prev);
/* Makes log the tenant's tombstone (a writer, after each change). */
int es__tomb_install(es_tenant *t, const es_tomb_log *log) ES_MUST_CHECK;
/* Loads ERASE into the tombstone (tenant load, or a reader's refresh). */
int es__tomb_load(es_db *db, es_tenant *t) ES_MUST_CHECK;
/* Frees the tenant's tombstone (tenant destruction). */
void es__tomb_tenant_free(es_tenant *t);

#endif
