/*
 * tomb.c -- a tenant's erase log (ERASE) and the tombstone built from it.
 *
 * An erase request (lib/erase/erase.c) names a person by every id linked
 * to them at request time.  Its first stage is this file's: a record
 * holding those ids appended to ERASE and synced before the request is
 * acknowledged.  From then on every read path asks es__tomb_get for the
 * tenant's tombstone (the ids of all pending requests) and skips rows that
 * carry one of them in anonymousId, userId or previousId: scans (and so
 * queries by rows, identity maps, rule fills, exports, the live stream),
 * timelines, rule members; queries do not answer from rollups while a
 * request is before stage (c).  Later stages remove the rows for good and
 * append a stage record each; when the last is done the log is rewritten
 * without the ids (es__tomb_log_compact), leaving a receipt.
 *
 * Record: u32 len | u64 checksum (es__hash64 of the payload, TOMB_SEED) |
 * payload; payload: u8 kind, then
 *   SALT    16 random bytes (the first record of a log)
 *   REQ     varint id | svarint submitted_us | varint flags | 16-byte
 *           subject hash | varint nids | (varint len | bytes) per id
 *   STAGE   varint id | u8 stage | u8 state | svarint at_us | varint count
 *           (state 3, "begun", for stage (b) only: written before its
 *           rewrite, so a resumed run knows an earlier one may have
 *           removed rows whose days it cannot know)
 *   RECEIPT a completed request without ids: varint id | svarint
 *           submitted_us | varint flags | 16-byte hash | per stage: u8
 *           state | svarint at_us | varint count
 *   SUPPRESS varint n | n 16-byte salted id hashes: one person's ids,
 *           of a completed request that asked for suppression (written
 *           by the compaction that drops the ids in clear)
 *
 * Invariants:
 *  1. A request is acknowledged only after its REQ record's fdatasync
 *     (and its directory's for a new file); the tombstone is installed
 *     before the acknowledgement, so a read after it excludes the person.
 *  2. Reading stops at a record that does not check only when nothing
 *     valid follows (a torn append, never acknowledged; the next append
 *     writes over it).  A damaged record followed by a valid one is
 *     ES_ECORRUPT naming file and offset: an acknowledged request is
 *     never dropped silently.
 *  3. Stage records only ever move a request forward; a request's ids
 *     leave the disk only in a compaction after its last stage (an atomic
 *     rewrite: the old log or the new one, never a mix).
 *  4. The tombstone is immutable once built; readers hold a reference.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/clock.h"
#include "base/codec.h"
#include "base/mem.h"
#include "store/gate.h"
#include "store/tomb.h"

#define TOMB_SEED UINT64_C(0x7e4a5e)
#define TOMB_HDR 12
enum { K_SALT = 1, K_REQ = 2, K_STAGE = 3, K_RECEIPT = 4, K_SUPPRESS = 5 };

/* --- the log ------------------------------------------------------------- */

static void req_free_ids(es_tomb_req *r) {
  for (size_t i = 0; i < r->nids; i++)
    es__free(r->ids[i]);
  es__free(r->ids);
  r->ids = NULL;
  r->nids = 0;
}

void es__tomb_log_free(es_tomb_log *log) {
  for (size_t i = 0; i < log->n; i++)
    req_free_ids(&log->v[i]);
  es__free(log->v);
  es__free(log->suppress);
  es__free(log->sup_ends);
  memset(log, 0, sizeof(*log));
}

int es__tomb_req_done(const es_tomb_req *r) {
  for (int s = 0; s < ES_TOMB_STAGES; s++)
    if (r->state[s] == ES_TOMB_PENDING || r->state[s] == ES_TOMB_BEGUN)
      return 0;
  return 1;
}

es_tomb_req *es__tomb_log_find(es_tomb_log *log, uint64_t id) {
  for (size_t i = 0; i < log->n; i++)
    if (log->v[i].id == id)
      return &log->v[i];
  return NULL;
}

static void tomb_hash_salt(const uint8_t salt[16], const char *id,
                           uint8_t out[16]) {
  size_t len = strlen(id);
  uint64_t a = es__hash64(id, len, es__get_le64(salt));
  uint64_t b = es__hash64(id, len, es__get_le64(salt + 8) ^ a);
  es__le64(out, a);
  es__le64(out + 8, b);
}

void es__tomb_hash(const es_tomb_log *log, const char *id, uint8_t out[16]) {
  tomb_hash_salt(log->salt, id, out);
}

/* Whether a whole record that checks starts at off. */
static int tomb_record_at(const uint8_t *p, size_t n, size_t off) {
  if (n - off < TOMB_HDR)
    return 0;
  uint32_t len = es__get_le32(p + off);
  return len != 0 && len <= n - off - TOMB_HDR &&
         es__get_le64(p + off + 4) ==
             es__hash64(p + off + TOMB_HDR, len, TOMB_SEED);
}

static int log_add(es_tomb_log *log, es_tomb_req **r_out) {
  ES_TRY(
      es__grow((void **)&log->v, &log->cap, log->n + 1, sizeof(es_tomb_req)));
  *r_out = &log->v[log->n++];
  memset(*r_out, 0, sizeof(**r_out));
  return ES_OK;
}

/* Decodes a REQ or RECEIPT payload (after its kind). */
static int parse_req(es_rd *rd, es_tomb_log *log, int receipt) {
  uint64_t id = es__rd_varint(rd);
  if (rd->bad || es__tomb_log_find(log, id))
    return ES_ECORRUPT;
  es_tomb_req *r;
  ES_TRY(log_add(log, &r));
  r->id = id;
  if (id >= log->next_id)
    log->next_id = id + 1;
  r->submitted_us = es__rd_svarint(rd);
  r->flags = (uint32_t)es__rd_varint(rd);
  const uint8_t *h = es__rd_bytes(rd, 16);
  if (h)
    memcpy(r->subject_hash, h, 16);
  if (receipt) {
    for (int s = 0; s < ES_TOMB_STAGES; s++) {
      r->state[s] = es__rd_u8(rd);
      r->stage_us[s] = es__rd_svarint(rd);
      r->stage_count[s] = es__rd_varint(rd);
    }
    return rd->bad ? ES_ECORRUPT : ES_OK;
  }
  uint64_t nids = es__rd_varint(rd);
  if (rd->bad || nids == 0 || nids > ES_TOMB_IDS_MAX)
    return ES_ECORRUPT;
  if (!(r->ids = es__calloc(nids, sizeof(char *))))
    return ES_NOMEM_BKPT();
  for (uint64_t i = 0; i < nids; i++) {
    uint64_t len = es__rd_varint(rd);
    const uint8_t *b =
        len <= ES_TOMB_ID_BYTES_MAX ? es__rd_bytes(rd, len) : NULL;
    if (!b)
      return ES_ECORRUPT;
    if (!(r->ids[i] = es__malloc(len + 1)))
      return ES_NOMEM_BKPT();
    memcpy(r->ids[i], b, len);
    r->ids[i][len] = '\0';
    r->nids++;
  }
  r->state[ES_TOMB_HIDDEN] = ES_TOMB_DONE; /* the record is stage (a) */
  r->stage_us[ES_TOMB_HIDDEN] = r->submitted_us;
  r->stage_count[ES_TOMB_HIDDEN] = r->nids;
  return ES_OK;
}

/* Decodes one record's payload into log: ES_ECORRUPT (no detail) when it
 * does not decode. */
static int parse_one(const uint8_t *p, size_t len, es_tomb_log *log) {
  es_rd rd = es__rd(p, len);
  int kind = es__rd_u8(&rd), rc = ES_OK;
  if (kind == K_SALT) {
    const uint8_t *s = es__rd_bytes(&rd, 16);
    if (s) {
      memcpy(log->salt, s, 16);
      log->has_salt = 1;
    }
  } else if (kind == K_REQ || kind == K_RECEIPT) {
    rc = parse_req(&rd, log, kind == K_RECEIPT);
  } else if (kind == K_STAGE) {
    uint64_t id = es__rd_varint(&rd);
    int stage = es__rd_u8(&rd), state = es__rd_u8(&rd);
    int64_t at = es__rd_svarint(&rd);
    uint64_t count = es__rd_varint(&rd);
    es_tomb_req *r = es__tomb_log_find(log, id);
    if (rd.bad || !r || stage >= ES_TOMB_STAGES || state == ES_TOMB_PENDING ||
        state > ES_TOMB_BEGUN ||
        (state == ES_TOMB_BEGUN && stage != ES_TOMB_SEGMENTS))
      return ES_ECORRUPT;
    r->state[stage] = (uint8_t)state;
    r->stage_us[stage] = at;
    r->stage_count[stage] = count;
  } else if (kind == K_SUPPRESS) {
    uint64_t n = es__rd_varint(&rd);
    const uint8_t *h = n <= (1u << 20) ? es__rd_bytes(&rd, n * 16) : NULL;
    if (!h)
      return ES_ECORRUPT;
    ES_TRY(es__grow((void **)&log->suppress, &log->suppress_cap,
                    log->nsuppress + n, 16));
    memcpy(log->suppress + 16 * log->nsuppress, h, n * 16);
    log->nsuppress += n;
    ES_TRY(es__grow((void **)&log->sup_ends, &log->sup_groups_cap,
                    log->nsup_groups + 1, sizeof(size_t)));
    log->sup_ends[log->nsup_groups++] = log->nsuppress;
  } else {
    return ES_ECORRUPT;
  }
  return rc < 0 ? rc : rd.bad || rd.p != rd.end ? ES_ECORRUPT : ES_OK;
}

int es__tomb_log_parse(const uint8_t *p, size_t n, const char *path,
                       es_tomb_log *log, size_t *end_out) {
  size_t off = 0;
  *end_out = 0;
  while (n - off >= TOMB_HDR && tomb_record_at(p, n, off)) {
    uint32_t len = es__get_le32(p + off);
    int rc = parse_one(p + off + TOMB_HDR, len, log);
    if (rc == ES_ECORRUPT)
      return ES_CORRUPT_BKPT("%s: offset %zu: malformed erase record", path,
                             off);
    ES_TRY(rc);
    off += TOMB_HDR + len;
  }
  for (size_t o = off + 1; o + TOMB_HDR <= n; o++)
    if (tomb_record_at(p, n, o))
      return ES_CORRUPT_BKPT("%s: damaged record at offset %zu followed by "
                             "a valid record at offset %zu",
                             path, off, o);
  *end_out = off;
  return ES_OK;
}

int es__tomb_log_read(es_vfs *vfs, const char *tenant_dir, es_tomb_log *log,
                      size_t *end_out) {
  char path[ES_PATH_MAX];
  memset(log, 0, sizeof(*log));
  *end_out = 0;
  ES_TRY(es__path_join(path, sizeof(path), tenant_dir, ES_TOMB_LOG));
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = es__io_read_all(vfs, path, &buf, &len);
  if (rc == ES_ENOTFOUND) {
    es__error_clear();
    return ES_OK;
  }
  ES_TRY(rc);
  rc = es__tomb_log_parse(buf, len, path, log, end_out);
  es__free(buf);
  if (rc < 0)
    es__tomb_log_free(log);
  return rc;
}

/* --- writing ------------------------------------------------------------- */

/* Starts a record of `kind` in b (header reserved). */
static int rec_begin(es_buf *b, int kind) {
  ES_TRY(es__buf_put_u32(b, 0));
  ES_TRY(es__buf_put_u64(b, 0));
  return es__buf_put_u8(b, (uint8_t)kind);
}

/* Fills the header of the record that starts at `start` of b. */
static void rec_finish(es_buf *b, size_t start) {
  size_t len = b->len - start - TOMB_HDR;
  es__le32(b->data + start, (uint32_t)len);
  es__le64(b->data + start + 4,
           es__hash64(b->data + start + TOMB_HDR, len, TOMB_SEED));
}

static int put_str(es_buf *b, const char *s) {
  ES_TRY(es__buf_put_varint(b, strlen(s)));
  return es__buf_put(b, s, strlen(s));
}

static int put_salt(es_buf *b, const uint8_t salt[16]) {
  size_t at = b->len;
  ES_TRY(rec_begin(b, K_SALT));
  ES_TRY(es__buf_put(b, salt, 16));
  rec_finish(b, at);
  return ES_OK;
}

static int put_req(es_buf *b, const es_tomb_req *r) {
  size_t at = b->len;
  int receipt = r->ids == NULL;
  ES_TRY(rec_begin(b, receipt ? K_RECEIPT : K_REQ));
  ES_TRY(es__buf_put_varint(b, r->id));
  ES_TRY(es__buf_put_svarint(b, r->submitted_us));
  ES_TRY(es__buf_put_varint(b, r->flags));
  ES_TRY(es__buf_put(b, r->subject_hash, 16));
  if (receipt) {
    for (int s = 0; s < ES_TOMB_STAGES; s++) {
      ES_TRY(es__buf_put_u8(b, r->state[s]));
      ES_TRY(es__buf_put_svarint(b, r->stage_us[s]));
      ES_TRY(es__buf_put_varint(b, r->stage_count[s]));
    }
  } else {
    ES_TRY(es__buf_put_varint(b, r->nids));
    for (size_t i = 0; i < r->nids; i++)
      ES_TRY(put_str(b, r->ids[i]));
  }
  rec_finish(b, at);
  return ES_OK;
}

static int put_stage(es_buf *b, uint64_t id, int stage, int state,
                     int64_t at_us, uint64_t count) {
  size_t at = b->len;
  ES_TRY(rec_begin(b, K_STAGE));
  ES_TRY(es__buf_put_varint(b, id));
  ES_TRY(es__buf_put_u8(b, (uint8_t)stage));
  ES_TRY(es__buf_put_u8(b, (uint8_t)state));
  ES_TRY(es__buf_put_svarint(b, at_us));
  ES_TRY(es__buf_put_varint(b, count));
  rec_finish(b, at);
  return ES_OK;
}

/* Appends b's records to ERASE at its valid end and makes them durable
 * (invariant 1): a failed write is the caller's to retry, a failed sync
 * fails stop (the page cache may say it is there). */
static int tomb_write(es_db *db, es_tenant *t, const es_buf *b) {
  char path[ES_PATH_MAX];
  es_tomb_log cur;
  size_t end = 0;
  ES_TRY(es__path_join(path, sizeof(path), t->dir, ES_TOMB_LOG));
  ES_TRY(es__tomb_log_read(db->vfs, t->dir, &cur, &end)); /* over a torn tail */
  es__tomb_log_free(&cur);
  return es__gate_log_append(db, path, t->dir, b->data, b->len, end);
}

int es__tomb_append_req(es_db *db, es_tenant *t, es_tomb_log *log,
                        const es_tomb_req *r) {
  es_buf b = {0};
  int rc = ES_OK;
  if (!log->has_salt)
    return ES_INVAL_BKPT("erase log: no salt (es__tomb_salt_ensure)");
  if (log->salt_new)
    rc = put_salt(&b, log->salt);
  if (rc == ES_OK)
    rc = put_req(&b, r);
  if (rc == ES_OK)
    rc = tomb_write(db, t, &b);
  es__buf_free(&b);
  if (rc == ES_OK)
    log->salt_new = 0;
  return rc;
}

int es__tomb_salt_ensure(es_tomb_log *log) {
  if (log->has_salt)
    return ES_OK;
  if (getrandom(log->salt, sizeof(log->salt), 0) != (ssize_t)sizeof(log->salt))
    return ES_ERR(ES_EIO, "no random bytes for the erase log's salt");
  log->has_salt = log->salt_new = 1;
  return ES_OK;
}

int es__tomb_append_stage(es_db *db, es_tenant *t, es_tomb_log *log,
                          uint64_t id, int stage, int state, uint64_t count) {
  es_tomb_req *r = es__tomb_log_find(log, id);
  if (!r || stage < 0 || stage >= ES_TOMB_STAGES)
    return ES_INVAL_BKPT("erase: no request %llu or stage %d",
                         (unsigned long long)id, stage);
  int64_t now = es__clock_now_us();
  es_buf b = {0};
  int rc = put_stage(&b, id, stage, state, now, count);
  if (rc == ES_OK)
    rc = tomb_write(db, t, &b);
  es__buf_free(&b);
  if (rc == ES_OK) {
    r->state[stage] = (uint8_t)state;
    r->stage_us[stage] = now;
    r->stage_count[stage] = count;
  }
  return rc;
}

int es__tomb_log_encode(const es_tomb_log *log, es_buf *b) {
  int rc = log->has_salt ? put_salt(b, log->salt) : ES_OK;
  for (size_t i = 0; rc == ES_OK && i < log->n; i++) {
    es_tomb_req r = log->v[i];
    int done = es__tomb_req_done(&r);
    if (done || r.nids == 0) { /* a receipt: no ids */
      r.ids = NULL;
      r.nids = 0;
    }
    rc = put_req(b, &r);
    for (int s = 0; rc == ES_OK && r.ids && s < ES_TOMB_STAGES; s++)
      if (s != ES_TOMB_HIDDEN && r.state[s] != ES_TOMB_PENDING)
        rc = put_stage(b, r.id, s, r.state[s], r.stage_us[s], r.stage_count[s]);
  }
  size_t from = 0; /* one SUPPRESS record per person */
  for (size_t g = 0; rc == ES_OK && from < log->nsuppress; g++) {
    size_t to = g < log->nsup_groups ? log->sup_ends[g] : log->nsuppress;
    if (to <= from || to > log->nsuppress)
      to = log->nsuppress;
    size_t at = b->len;
    rc = rec_begin(b, K_SUPPRESS);
    if (rc == ES_OK)
      rc = es__buf_put_varint(b, to - from);
    if (rc == ES_OK)
      rc = es__buf_put(b, log->suppress + 16 * from, 16 * (to - from));
    if (rc == ES_OK)
      rec_finish(b, at);
    from = to;
  }
  return rc;
}

int es__tomb_log_suppress_add(es_tomb_log *log, char *const *ids, size_t nids) {
  if (nids == 0)
    return ES_OK;
  if (log->nsup_groups == 0 && log->nsuppress > 0) { /* one group so far */
    ES_TRY(es__grow((void **)&log->sup_ends, &log->sup_groups_cap, 1,
                    sizeof(size_t)));
    log->sup_ends[log->nsup_groups++] = log->nsuppress;
  }
  ES_TRY(es__grow((void **)&log->suppress, &log->suppress_cap,
                  log->nsuppress + nids, 16));
  ES_TRY(es__grow((void **)&log->sup_ends, &log->sup_groups_cap,
                  log->nsup_groups + 1, sizeof(size_t)));
  for (size_t i = 0; i < nids; i++)
    tomb_hash_salt(log->salt, ids[i], log->suppress + 16 * log->nsuppress++);
  log->sup_ends[log->nsup_groups++] = log->nsuppress;
  return ES_OK;
}

int es__tomb_log_unsuppress(es_tomb_log *log, const char *id,
                            size_t *lifted_out) {
  uint8_t h[16];
  tomb_hash_salt(log->salt, id, h);
  *lifted_out = 0;
  for (size_t i = 0; i < log->n; i++) { /* pending: the flag goes */
    es_tomb_req *r = &log->v[i];
    for (size_t k = 0; (r->flags & ES_TOMB_SUPPRESS) && k < r->nids; k++)
      if (strcmp(r->ids[k], id) == 0) {
        r->flags &= ~ES_TOMB_SUPPRESS;
        *lifted_out += r->nids;
      }
  }
  if (log->nsup_groups == 0 && log->nsuppress > 0) { /* one group */
    ES_TRY(es__grow((void **)&log->sup_ends, &log->sup_groups_cap, 1,
                    sizeof(size_t)));
    log->sup_ends[log->nsup_groups++] = log->nsuppress;
  }
  size_t from = 0, out = 0, gout = 0;
  for (size_t g = 0; g < log->nsup_groups; g++) {
    size_t to = log->sup_ends[g];
    int hit = 0;
    for (size_t i = from; i < to; i++)
      hit |= memcmp(log->suppress + 16 * i, h, 16) == 0;
    if (hit) {
      *lifted_out += to - from;
    } else {
      memmove(log->suppress + 16 * out, log->suppress + 16 * from,
              16 * (to - from));
      out += to - from;
      log->sup_ends[gout++] = out;
    }
    from = to;
  }
  log->nsuppress = out;
  log->nsup_groups = gout;
  return ES_OK;
}

int es__tomb_log_compact(es_db *db, es_tenant *t, const es_tomb_log *log) {
  es_buf b = {0};
  int rc = es__tomb_log_encode(log, &b);
  if (rc == ES_OK) {
    rc = es__io_write_atomic(db->vfs, t->dir, ES_TOMB_LOG, b.data, b.len);
    if (rc < 0)
      rc = es__gate_io_error(
          db, es__io_failed_committing() ? ES_GATE_STOP : ES_GATE_CALL, rc);
  }
  es__buf_free(&b);
  return rc;
}

void es__tomb_lock(es_tenant *t) { pthread_mutex_lock(&t->tomb_log_mu); }
void es__tomb_unlock(es_tenant *t) { pthread_mutex_unlock(&t->tomb_log_mu); }

/* --- the tombstone ------------------------------------------------------- */

void es__tomb_unref(es_tomb *tb) {
  if (!tb || atomic_fetch_sub(&tb->refs, 1) != 1)
    return;
  for (size_t i = 0; i < tb->nids; i++)
    es__free(tb->ids[i]);
  es__free(tb->ids);
  es__free(tb->hashes);
  es__free(tb->sup);
  es__free(tb->suppress);
  es__free(tb);
}

static int tomb_hash_cmp(const void *a, const void *b) {
  return memcmp(a, b, 16);
}

/* A tombstone of log's pending requests (NULL when there is nothing). */
static int tomb_build(const es_tomb_log *log, es_tomb **tb_out) {
  *tb_out = NULL;
  size_t n = 0;
  for (size_t i = 0; i < log->n; i++)
    if (!es__tomb_req_done(&log->v[i]))
      n += log->v[i].nids;
  if (n == 0 && log->nsuppress == 0)
    return ES_OK;
  es_tomb *tb = es__calloc(1, sizeof(*tb));
  if (!tb)
    return ES_NOMEM_BKPT();
  atomic_init(&tb->refs, 1);
  memcpy(tb->salt, log->salt, 16);
  tb->ids = es__calloc(n ? n : 1, sizeof(char *));
  tb->hashes = es__calloc(n ? n : 1, sizeof(uint64_t));
  tb->sup = es__calloc(n ? n : 1, 1);
  tb->suppress = es__malloc(log->nsuppress ? 16 * log->nsuppress : 1);
  int rc = tb->ids && tb->hashes && tb->sup && tb->suppress ? ES_OK
                                                            : ES_NOMEM_BKPT();
  for (size_t i = 0; rc == ES_OK && i < log->n; i++) {
    const es_tomb_req *r = &log->v[i];
    if (es__tomb_req_done(r))
      continue;
    if (r->state[ES_TOMB_ROLLUPS] == ES_TOMB_PENDING)
      tb->rollups_stale = 1;
    for (size_t k = 0; rc == ES_OK && k < r->nids; k++) {
      if (!(tb->ids[tb->nids] = es__strdup(r->ids[k]))) {
        rc = ES_NOMEM_BKPT();
      } else {
        tb->sup[tb->nids] = (r->flags & ES_TOMB_SUPPRESS) != 0;
        tb->suppressing |= tb->sup[tb->nids];
        tb->hashes[tb->nids++] = es__hash64(r->ids[k], strlen(r->ids[k]), 0);
      }
    }
  }
  if (rc == ES_OK && log->nsuppress) {
    memcpy(tb->suppress, log->suppress, 16 * log->nsuppress);
    qsort(tb->suppress, log->nsuppress, 16, tomb_hash_cmp); /* bsearch */
    tb->nsuppress = log->nsuppress;
    tb->suppressing = 1;
  }
  if (rc < 0) {
    es__tomb_unref(tb);
    return rc;
  }
  *tb_out = tb;
  return ES_OK;
}

int es__tomb_install(es_tenant *t, const es_tomb_log *log) {
  es_tomb *tb;
  ES_TRY(tomb_build(log, &tb));
  pthread_mutex_lock(&t->tomb_mu);
  es_tomb *old = t->tomb;
  t->tomb = tb;
  atomic_store(&t->tomb_any, tb != NULL);
  pthread_mutex_unlock(&t->tomb_mu);
  es__tomb_unref(old);
  atomic_fetch_add(&t->id_gen, 1); /* cached identity maps linked them */
  return ES_OK;
}

int es__tomb_load(es_db *db, es_tenant *t) {
  es_tomb_log log;
  size_t end;
  ES_TRY(es__tomb_log_read(db->vfs, t->dir, &log, &end));
  int rc = es__tomb_install(t, &log);
  es__tomb_log_free(&log);
  return rc;
}

/* A reader's check of ERASE: reloads it when its version changed. */
static void tomb_ro_refresh(es_db *db, es_tenant *t) {
  char path[ES_PATH_MAX];
  uint64_t v = 0;
  if (!db->vfs->version ||
      es__path_join(path, sizeof(path), t->dir, ES_TOMB_LOG) < 0)
    return;
  int rc = db->vfs->version(db->vfs, path, &v);
  if (rc == ES_ENOTFOUND)
    v = 0, rc = ES_OK;
  es__error_clear();
  if (rc < 0 || v == atomic_load(&t->tomb_version))
    return;
  pthread_mutex_lock(&t->tomb_log_mu); /* one reload at a time */
  if (v != atomic_load(&t->tomb_version)) {
    if (es__tomb_load(db, t) == ES_OK)
      atomic_store(&t->tomb_version, v);
    else /* mid-rename: the next read retries */
      es__db_log(db, 1, "%s: %s (retrying)", path, es_errdetail());
  }
  pthread_mutex_unlock(&t->tomb_log_mu);
}

es_tomb *es__tomb_get(es_db *db, es_tenant *t) {
  if (!t)
    return NULL;
  if (db->opts.read_only)
    tomb_ro_refresh(db, t);
  if (!atomic_load(&t->tomb_any))
    return NULL;
  pthread_mutex_lock(&t->tomb_mu);
  es_tomb *tb = t->tomb;
  if (tb)
    atomic_fetch_add(&tb->refs, 1);
  pthread_mutex_unlock(&t->tomb_mu);
  return tb;
}

void es__tomb_tenant_free(es_tenant *t) {
  es__tomb_unref(t->tomb);
  t->tomb = NULL;
}

int es__tomb_hides_id(const es_tomb *tb, const char *id) {
  if (!tb || !id || tb->nids == 0)
    return 0;
  uint64_t h = es__hash64(id, strlen(id), 0);
  for (size_t i = 0; i < tb->nids; i++)
    if (tb->hashes[i] == h && strcmp(tb->ids[i], id) == 0)
      return 1;
  return 0;
}

int es__tomb_hides(const es_tomb *tb, const char *anon, const char *user,
                   const char *prev) {
  return es__tomb_hides_id(tb, anon) || es__tomb_hides_id(tb, user) ||
         es__tomb_hides_id(tb, prev);
}

int es__tomb_may_touch(const es_tomb *tb, const es_segment *seg) {
  for (size_t i = 0; tb && i < tb->nids; i++)
    if (es__segment_may_contain(seg, tb->ids[i]))
      return 1;
  return 0;
}

static int tomb_suppressed_id(const es_tomb *tb, const char *id) {
  if (!id)
    return 0;
  uint64_t h64 = es__hash64(id, strlen(id), 0);
  for (size_t i = 0; i < tb->nids; i++) /* pending, with suppression */
    if (tb->sup[i] && tb->hashes[i] == h64 && strcmp(tb->ids[i], id) == 0)
      return 1;
  if (tb->nsuppress == 0)
    return 0;
  uint8_t h[16];
  tomb_hash_salt(tb->salt, id, h);
  return bsearch(h, tb->suppress, tb->nsuppress, 16, tomb_hash_cmp) != NULL;
}

int es__tomb_suppresses(const es_tomb *tb, const char *anon, const char *user,
                        const char *prev) {
  if (!tb || !tb->suppressing)
    return 0;
  return tomb_suppressed_id(tb, anon) || tomb_suppressed_id(tb, user) ||
         tomb_suppressed_id(tb, prev);
}
