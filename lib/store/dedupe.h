/*
 * dedupe.h -- idempotent append: which events of a batch carry a
 * (tenant, messageId) the store already holds (see the essay of dedupe.c).
 */
#ifndef ES_DEDUPE_H
#define ES_DEDUPE_H

#include "store/dbint.h"

/* The database-wide cache of confirmed row groups; es__db_open creates it
 * (writable handles, window > 0), es_close frees it.  NULL is fine. */
int es__dedupe_open(es_db *db) ES_MUST_CHECK;
void es__dedupe_close(es_db *db);

/* Frees a tenant's recent-id set (tenant.c), giving its bytes back to
 * the memory budget.  NULL is fine. */
void es__dedupe_tenant_free(es_db *db, struct es_dedupe *dd);

/* On the shard writer: drops the tenant's slabs whose ids are all in
 * segments now (as a request of the tenant would), so that a tenant
 * that went quiet after a flush does not keep them in the budget. */
void es__dedupe_trim(es_db *db, es_tenant *t);

/* On the shard writer, for an append request about to be framed with
 * `lsn`: decides which of its events are duplicates, records the others
 * as stored, and when some are duplicates replaces r's rows, hints and
 * WAL record by writer-made copies without them (or sets r->kind to
 * ES_REQ_DUP when nothing is left).  Fails only for this request (a
 * segment that cannot be read, out of memory): then nothing was
 * recorded, r->kind is ES_REQ_DUP and r->dd_rc says why.  What it
 * recorded stays listed in r until es__dedupe_req_free. */
void es__dedupe_request(es_db *db, es_req *r, uint64_t lsn);

/* On the shard writer, when a group whose requests were decided is not
 * written after all (its frame never reached the log): removes the ids
 * their decisions recorded, so that the appenders' retries are stored.
 * Cannot fail. */
void es__dedupe_group_undo(es_db *db, es_req *reqs);

/* Records a replayed WAL record's ids as stored at `lsn` (recovery). */
int es__dedupe_note(es_db *db, es_tenant *t, const uint8_t *rows,
                    size_t rows_len, uint32_t count,
                    uint64_t lsn) ES_MUST_CHECK;

/* Tests only: keeps only the bits of fp_mask of each message-id
 * fingerprint (so that distinct ids share fingerprints often) and bounds
 * the segments' fingerprint indexes at fp_bytes_max bytes (so that they
 * are evicted and rebuilt, or, for a segment whose index alone is larger,
 * not made at all).  Drops the indexes made so far. */
void es__dedupe_test_tune(es_db *db, uint32_t fp_mask, size_t fp_bytes_max);

/* Releases what es__dedupe_request attached to r (appender, after). */
void es__dedupe_req_free(es_req *r);

#endif
