/*
 * replicate.c -- the uploader: copies each tenant's files to an object
 * store (S3) in the background so that a node that loses its disk can be
 * rebuilt from the copy (restore.c), without ever slowing ingest.
 *
 * Layout under the store's prefix (docs/FORMAT.md, "Replica layout"):
 *   ESDB                                the data directory's identity
 *   tenants/<t>/<016x id>.seg, .rlp      segments and rollups, same bytes
 *   tenants/<t>/MANIFEST-<016x gen>      the manifest of generation gen
 *   tenants/<t>/IDENTITY, RULES          the newest copy of each
 * A reader (restore) takes, per tenant, the MANIFEST-<gen> with the
 * highest gen and the files it names.
 *
 * How it works.  The uploader subscribes to the commit path
 * (store/commit.h): each commit marks its tenant dirty and wakes the one
 * uploader thread.  A tenant's pass reads the tenant's local MANIFEST (one
 * whole generation: it is replaced by rename), uploads every file it names
 * that the tenant's record (replrec.c, tenants/<t>/REPLICA) does not list
 * as confirmed, saving the record after each, then uploads the manifest's
 * bytes as MANIFEST-<gen>; objects the new manifest no longer names are
 * marked superseded and deleted after the grace period.  IDENTITY and RULES
 * are uploaded whole when their content differs from what the record says
 * went up.  Every tenant is also looked at every replica_interval_us (for
 * IDENTITY/RULES changes, and after a restart), and a failed pass is
 * retried with exponential backoff.
 *
 * Why it holds no files (es__commit_hold): the pass always works from the
 * newest local manifest.  If a file it is about to upload is removed by a
 * newer commit, the newer manifest does not need it (a compaction's output
 * holds its rows; retention or erase meant to drop them), so the pass
 * simply starts over from the newer manifest; objects already uploaded
 * stay valid because segment ids are never reused.  Files the newest
 * uploaded manifest names are in the store already, so removing them
 * locally loses nothing.
 *
 * Invariants:
 *  1. A MANIFEST-<gen> object is put only after every segment it names
 *     (and every rollup that existed locally) is confirmed in the store,
 *     so the newest manifest in the store never names a missing object.
 *  2. An object is deleted only after a manifest that does not name it
 *     was confirmed in the store, and at least replica_grace_us after
 *     that (a restore that read the older manifest just before still
 *     finds its files).  The newest uploaded manifest is never deleted.
 *  3. The record (tenants/<t>/REPLICA) lists only objects whose put
 *     returned ES_OK (replrec.c, 1); it is saved before the next object
 *     of the tenant is put, so a restart re-uploads at most one object per
 *     tenant and forgets none: what the record does not list is uploaded.
 *  4. Ingest never waits for the store: the commit hook only marks a
 *     tenant dirty under a leaf mutex that no one holds across I/O; every
 *     request to the store is made by the uploader thread with no lock of
 *     the store or of the uploader held.  The backlog lives in files, not
 *     memory: per tenant only counters are kept.
 *  5. Generations go up in the store: a manifest is uploaded only when its
 *     generation exceeds the record's.
 */
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/codec.h"
#include "base/event.h"
#include "base/io.h"
#include "base/mem.h"
#include "replicate/replicate.h"
#include "store/commit.h"
#include "store/manifest.h"

#define RETRY_MAX_US ((int64_t)30 * 1000000)
#define RESCAN_EVERY 10 /* sweeps between listings of tenants/ */

typedef struct repl_tenant {
  char name[ES_TENANT_LEN_MAX + 1];
  char dir[ES_PATH_MAX];
  /* guarded by es_replicator.mu */
  int dirty;
  int64_t oldest_us; /* wall time of the first commit not uploaded; 0 */
  uint64_t pend_objects, pend_bytes;
  int64_t retry_mono_us; /* no pass before this (backoff) */
  int64_t check_mono_us; /* a pass is due by then even if not dirty */
  unsigned fails;
  /* the uploader thread's own */
  int loaded;
  es_replrec rec;
  uint64_t ident_ver, rules_ver; /* vfs versions last found uploaded */
} repl_tenant;

struct es_replicator {
  es_db *db;
  es_objstore *os;
  es_commit_hooks hooks;
  int64_t interval_us, grace_us;
  pthread_t thread;
  int started;
  pthread_mutex_t mu; /* a leaf: never held across I/O (invariant 4) */
  pthread_cond_t cv, swept_cv;
  int stop, rescan, wake;
  repl_tenant **ts;
  size_t nts, cap;
  uint64_t sweeps_begun, clean_sweep; /* clean_sweep: the number of the
                                         last sweep that found all done */
  uint64_t drain_wanted;              /* sweep numbers a drain waits for */
  uint64_t clean_any; /* the number of the last sweep, drained or not,
                         that found every tenant uploaded (walship.c) */
  int esdb_done;
  es_replica_stats st;
  char last_why[256];
};

int es__replica_key(char *out, size_t cap, const char *tenant,
                    const char *name) {
  int n = snprintf(out, cap, "tenants/%s/%s", tenant, name);
  if (n < 0 || (size_t)n >= cap)
    return ES_INVAL_BKPT("object key for %s/%s too long", tenant, name);
  return ES_OK;
}

/* The tenant named name (caller holds mu), created when missing.  NULL
 * only when out of memory. */
static repl_tenant *repl_tenant_get(es_replicator *r, const char *name) {
  for (size_t i = 0; i < r->nts; i++)
    if (strcmp(r->ts[i]->name, name) == 0)
      return r->ts[i];
  if (es__tenant_check(name) < 0) {
    es__error_clear();
    return NULL;
  }
  if (r->nts == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 16;
    repl_tenant **nt = es__realloc(r->ts, cap * sizeof(*nt));
    if (!nt)
      return NULL;
    r->ts = nt;
    r->cap = cap;
  }
  repl_tenant *t = es__calloc(1, sizeof(*t));
  if (!t || es__path_join(t->dir, sizeof(t->dir), r->db->tenants_dir, name)) {
    es__free(t);
    es__error_clear();
    return NULL;
  }
  snprintf(t->name, sizeof(t->name), "%s", name);
  t->dirty = 1;
  r->ts[r->nts++] = t;
  return t;
}

/* The commit hook (invariant 4): mark, count, wake; no I/O. */
static void repl_committed(void *ud, const es_commit_info *info) {
  es_replicator *r = ud;
  pthread_mutex_lock(&r->mu);
  repl_tenant *t = repl_tenant_get(r, info->tenant);
  if (t) {
    t->dirty = 1;
    if (t->oldest_us == 0)
      t->oldest_us = es__clock_now_us();
    for (size_t i = 0; i < info->nadded; i++) {
      t->pend_objects++;
      t->pend_bytes += info->added[i].bytes;
    }
    t->pend_objects++; /* the manifest */
  } else {
    r->rescan = 1; /* out of memory: find it by listing */
  }
  r->wake = 1;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

/* One request's bookkeeping. */
static void repl_count(es_replicator *r, int64_t t0, int rc, const char *key) {
  int64_t dt = es__clock_mono_us() - t0;
  pthread_mutex_lock(&r->mu);
  r->st.requests++;
  r->st.request_us += (uint64_t)(dt > 0 ? dt : 0);
  if (rc < 0 && rc != ES_ENOTFOUND) {
    r->st.errors++;
    r->st.last_error = rc;
    /* truncated to fit: the key first, as much of the detail as fits */
    int n = snprintf(r->last_why, sizeof(r->last_why), "%.200s: ", key);
    if (n > 0 && (size_t)n < sizeof(r->last_why))
      snprintf(r->last_why + n, sizeof(r->last_why) - (size_t)n, "%.*s",
               (int)(sizeof(r->last_why) - (size_t)n - 1), es_errdetail());
  }
  pthread_mutex_unlock(&r->mu);
}

static int repl_put(es_replicator *r, const char *key, const void *buf,
                    size_t len) {
  int64_t t0 = es__clock_mono_us();
  int rc = r->os->put(r->os, key, buf, len, ES_OBJ_PUT_ALWAYS, NULL, NULL);
  repl_count(r, t0, rc, key);
  if (rc == ES_OK) {
    pthread_mutex_lock(&r->mu);
    r->st.uploaded_objects++;
    r->st.uploaded_bytes += len;
    pthread_mutex_unlock(&r->mu);
  }
  return rc;
}

static int repl_del(es_replicator *r, const char *key) {
  int64_t t0 = es__clock_mono_us();
  int rc = r->os->del(r->os, key);
  repl_count(r, t0, rc, key);
  if (rc == ES_OK) {
    pthread_mutex_lock(&r->mu);
    r->st.deleted_objects++;
    pthread_mutex_unlock(&r->mu);
  }
  return rc;
}

/* Reads dir/name whole; ES_ENOTFOUND when it is gone. */
static int repl_read(es_replicator *r, const char *dir, const char *name,
                     uint8_t **buf, size_t *len) {
  char path[ES_PATH_MAX];
  ES_TRY(es__path_join(path, sizeof(path), dir, name));
  return es__io_read_all(r->db->vfs, path, buf, len);
}

/* Uploads one file the manifest names unless the record has it.
 * *gone_out is set when the file was removed meanwhile. */
static int repl_file(es_replicator *r, repl_tenant *t, const char *name,
                     int *gone_out) {
  if (es__replrec_find(&t->rec, name))
    return ES_OK;
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = repl_read(r, t->dir, name, &buf, &len);
  if (rc == ES_ENOTFOUND) {
    es__error_clear();
    *gone_out = 1;
    return ES_OK;
  }
  ES_TRY(rc);
  char key[ES_OBJ_KEY_MAX + 1];
  rc = es__replica_key(key, sizeof(key), t->name, name);
  if (rc == ES_OK)
    rc = repl_put(r, key, buf, len);
  es__free(buf);
  if (rc == ES_OK) /* invariant 3 */
    rc = es__replrec_put(&t->rec, name, len, 0);
  if (rc == ES_OK)
    rc = es__replrec_save(r->db->vfs, t->dir, &t->rec);
  return rc;
}

/* Whether name is a segment/rollup of m or the manifest of generation. */
static int repl_named(const es_manifest *m, const char *name) {
  for (size_t i = 0; i < m->count; i++) {
    char seg[40];
    es__segment_name(seg, sizeof(seg), m->entries[i].id);
    size_t stem = strlen(seg) - 4; /* without ".seg" */
    if (strncmp(name, seg, stem) == 0 &&
        (strcmp(name + stem, ".seg") == 0 || strcmp(name + stem, ".rlp") == 0))
      return 1;
  }
  char man[40];
  snprintf(man, sizeof(man), "MANIFEST-%016llx",
           (unsigned long long)m->generation);
  return strcmp(name, man) == 0;
}

/* Uploads the newest local manifest of t and what it names (invariants 1,
 * 5).  *again_out is set when a file vanished under a newer commit. */
static int repl_manifest(es_replicator *r, repl_tenant *t, int *again_out) {
  uint8_t *mbuf = NULL;
  size_t mlen = 0;
  int rc = repl_read(r, t->dir, "MANIFEST", &mbuf, &mlen);
  if (rc == ES_ENOTFOUND) { /* nothing sealed yet */
    es__error_clear();
    return ES_OK;
  }
  ES_TRY(rc);
  es_manifest m;
  rc = es__manifest_decode(t->dir, mbuf, mlen, &m);
  if (rc < 0 || m.generation <= t->rec.generation) {
    es__free(mbuf);
    if (rc == ES_OK)
      es__manifest_free(&m);
    return rc;
  }
  uint64_t pend_o = 1, pend_b = mlen;
  for (size_t i = 0; i < m.count; i++) {
    char name[40];
    es__segment_name(name, sizeof(name), m.entries[i].id);
    if (!es__replrec_find(&t->rec, name)) {
      pend_o += 2;
      pend_b += m.entries[i].bytes;
    }
  }
  pthread_mutex_lock(&r->mu);
  t->pend_objects = pend_o;
  t->pend_bytes = pend_b;
  if (t->oldest_us == 0)
    t->oldest_us = es__clock_now_us();
  pthread_mutex_unlock(&r->mu);
  int gone = 0;
  for (size_t i = 0; rc == ES_OK && !gone && i < m.count; i++) {
    char name[40];
    es__segment_name(name, sizeof(name), m.entries[i].id);
    rc = repl_file(r, t, name, &gone);
    if (rc == ES_OK && !gone) {
      memcpy(name + strlen(name) - 4, ".rlp", 5);
      int rlp_gone = 0; /* a rollup may be absent: it is derived data */
      rc = repl_file(r, t, name, &rlp_gone);
    }
    pthread_mutex_lock(&r->mu);
    if (t->pend_objects > 2)
      t->pend_objects -= 2;
    t->pend_bytes -=
        t->pend_bytes > m.entries[i].bytes ? m.entries[i].bytes : t->pend_bytes;
    pthread_mutex_unlock(&r->mu);
  }
  char man[40], key[ES_OBJ_KEY_MAX + 1];
  snprintf(man, sizeof(man), "MANIFEST-%016llx",
           (unsigned long long)m.generation);
  if (rc == ES_OK && !gone)
    rc = es__replica_key(key, sizeof(key), t->name, man);
  if (rc == ES_OK && !gone)
    rc = repl_put(r, key, mbuf, mlen);
  if (rc == ES_OK && !gone) {
    int64_t now = es__clock_now_us();
    for (size_t i = 0; i < t->rec.n; i++)
      if (t->rec.e[i].superseded_us == 0 && !repl_named(&m, t->rec.e[i].name))
        t->rec.e[i].superseded_us = now;
    t->rec.generation = m.generation;
    rc = es__replrec_put(&t->rec, man, mlen, 0);
    if (rc == ES_OK)
      rc = es__replrec_save(r->db->vfs, t->dir, &t->rec);
  }
  *again_out = gone;
  es__manifest_free(&m);
  es__free(mbuf);
  return rc;
}

/* Uploads IDENTITY or RULES when its content is not what went up. */
static int repl_side(es_replicator *r, repl_tenant *t, const char *name,
                     uint64_t *hash, uint64_t *ver) {
  char path[ES_PATH_MAX];
  ES_TRY(es__path_join(path, sizeof(path), t->dir, name));
  uint64_t v = 0;
  if (r->db->vfs->version) {
    int rc = r->db->vfs->version(r->db->vfs, path, &v);
    if (rc == ES_ENOTFOUND) {
      es__error_clear();
      return ES_OK;
    }
    ES_TRY(rc);
    if (v != 0 && v == *ver)
      return ES_OK;
  }
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = es__io_read_all(r->db->vfs, path, &buf, &len);
  if (rc == ES_ENOTFOUND) {
    es__error_clear();
    return ES_OK;
  }
  ES_TRY(rc);
  uint64_t h = es__hash64(buf, len, 0) | 1; /* never 0 ("none") */
  char key[ES_OBJ_KEY_MAX + 1];
  if (h != *hash) {
    rc = es__replica_key(key, sizeof(key), t->name, name);
    if (rc == ES_OK)
      rc = repl_put(r, key, buf, len);
    if (rc == ES_OK) {
      *hash = h;
      rc = es__replrec_save(r->db->vfs, t->dir, &t->rec);
    }
  }
  es__free(buf);
  if (rc == ES_OK)
    *ver = v;
  return rc;
}

/* Deletes the superseded objects past their grace (invariant 2). */
static int repl_expire(es_replicator *r, repl_tenant *t) {
  int64_t now = es__clock_now_us();
  int changed = 0, rc = ES_OK;
  for (size_t i = 0; rc == ES_OK && i < t->rec.n;) {
    es_replrec_entry *e = &t->rec.e[i];
    if (e->superseded_us == 0 || now - e->superseded_us < r->grace_us) {
      i++;
      continue;
    }
    char key[ES_OBJ_KEY_MAX + 1];
    rc = es__replica_key(key, sizeof(key), t->name, e->name);
    if (rc == ES_OK)
      rc = repl_del(r, key);
    if (rc == ES_OK) {
      es__replrec_remove(&t->rec, e->name); /* moves the last into i */
      changed = 1;
    }
  }
  if (changed) {
    int src = es__replrec_save(r->db->vfs, t->dir, &t->rec);
    if (rc == ES_OK)
      rc = src;
  }
  return rc;
}

/* One pass over a tenant; *again_out when it must run again at once. */
static int repl_tenant_pass(es_replicator *r, repl_tenant *t, int *again_out) {
  *again_out = 0;
  if (!t->loaded) {
    ES_TRY(es__replrec_load(r->db->vfs, t->dir, &t->rec));
    t->loaded = 1;
  }
  ES_TRY(repl_manifest(r, t, again_out));
  if (*again_out)
    return ES_OK;
  ES_TRY(repl_side(r, t, "IDENTITY", &t->rec.identity_hash, &t->ident_ver));
  ES_TRY(repl_side(r, t, "RULES", &t->rec.rules_hash, &t->rules_ver));
  return repl_expire(r, t);
}

static int repl_list_one(void *ud, const char *name) {
  es_replicator *r = ud;
  if (es__tenant_check(name) < 0) {
    es__error_clear();
    return 0;
  }
  pthread_mutex_lock(&r->mu);
  (void)repl_tenant_get(r, name);
  pthread_mutex_unlock(&r->mu);
  return 0;
}

/* Uploads the data directory's identity once per start. */
static int repl_esdb(es_replicator *r) {
  uint8_t *buf = NULL;
  size_t len = 0;
  ES_TRY(repl_read(r, r->db->dir, "ESDB", &buf, &len));
  int rc = repl_put(r, "ESDB", buf, len);
  es__free(buf);
  return rc;
}

/* One sweep: every tenant due (all of them when a drain waits).  Returns
 * 1 when every tenant is caught up. */
static int repl_sweep(es_replicator *r, int all) {
  int clean = 1;
  if (!r->esdb_done) {
    if (repl_esdb(r) == ES_OK)
      r->esdb_done = 1;
    else
      clean = 0;
  }
  for (size_t i = 0;; i++) {
    pthread_mutex_lock(&r->mu);
    if (i >= r->nts || r->stop) {
      pthread_mutex_unlock(&r->mu);
      break;
    }
    repl_tenant *t = r->ts[i];
    int64_t now = es__clock_mono_us();
    int due = all || (now >= t->retry_mono_us &&
                      (t->dirty || now >= t->check_mono_us));
    if (!due && t->dirty)
      clean = 0; /* in backoff, or woken during this sweep */
    if (due)
      t->dirty = 0;
    pthread_mutex_unlock(&r->mu);
    if (!due)
      continue; /* a drain sweeps all anyway */
    int again = 0, rc = ES_OK;
    for (int tries = 0; rc == ES_OK && tries < 8; tries++) {
      rc = repl_tenant_pass(r, t, &again);
      if (!again)
        break;
    }
    pthread_mutex_lock(&r->mu);
    if (rc < 0 || again) {
      clean = 0;
      t->dirty = 1;
      t->fails++;
      r->st.retries++;
      int64_t wait = r->interval_us;
      for (unsigned k = 1; k < t->fails && wait < RETRY_MAX_US; k++)
        wait *= 2;
      t->retry_mono_us =
          es__clock_mono_us() + (wait < RETRY_MAX_US ? wait : RETRY_MAX_US);
    } else {
      t->fails = 0;
      t->retry_mono_us = 0;
      t->check_mono_us = es__clock_mono_us() + r->interval_us;
      if (!t->dirty) {
        t->pend_objects = t->pend_bytes = 0;
        t->oldest_us = 0;
      } else {
        clean = 0;
      }
    }
    pthread_mutex_unlock(&r->mu);
    es__error_clear();
  }
  return clean;
}

static void *repl_main(void *arg) {
  es_replicator *r = arg;
  pthread_mutex_lock(&r->mu);
  while (!r->stop) {
    uint64_t sweep = ++r->sweeps_begun;
    int all = r->drain_wanted >= sweep || r->rescan;
    int rescan = r->rescan || sweep % RESCAN_EVERY == 1;
    r->rescan = 0;
    r->wake = 0;
    pthread_mutex_unlock(&r->mu);
    if (rescan &&
        r->db->vfs->list(r->db->vfs, r->db->tenants_dir, repl_list_one, r) < 0)
      es__error_clear(); /* no tenants/ yet */
    int clean = repl_sweep(r, all);
    pthread_mutex_lock(&r->mu);
    if (clean)
      r->clean_any = sweep;
    if (clean && all) {
      r->clean_sweep = sweep;
      r->st.sweeps_clean++;
    }
    pthread_cond_broadcast(&r->swept_cv);
    if (r->stop || r->wake || (r->drain_wanted > sweep && clean))
      continue;
    struct timespec ts;
    es__clock_deadline(&ts, r->interval_us);
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

int es__replicator_start(es_db *db, es_replica *replica, es_replicator **out) {
  *out = NULL;
  es_replicator *r = es__calloc(1, sizeof(*r));
  if (!r)
    return ES_NOMEM_BKPT();
  r->db = db;
  r->os = replica->os;
  r->interval_us =
      db->opts.replica_interval_us > 0 ? db->opts.replica_interval_us : 1000000;
  r->grace_us = db->opts.replica_grace_us >= 0 ? db->opts.replica_grace_us : 0;
  r->hooks.committed = repl_committed;
  r->rescan = 1;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  pthread_cond_init(&r->swept_cv, NULL);
  int rc = es__commit_subscribe(db, &r->hooks, r);
  if (rc == ES_OK && pthread_create(&r->thread, NULL, repl_main, r) != 0) {
    es__commit_unsubscribe(db, &r->hooks, r);
    rc = ES_ERR(ES_ENOMEM, "cannot start the replication thread");
  }
  if (rc < 0) {
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    pthread_cond_destroy(&r->swept_cv);
    es__free(r);
    return rc;
  }
  r->started = 1;
  *out = r;
  return ES_OK;
}

void es__replicator_stop(es_replicator *r) {
  if (!r)
    return;
  es__commit_unsubscribe(r->db, &r->hooks, r);
  pthread_mutex_lock(&r->mu);
  r->stop = 1;
  pthread_cond_broadcast(&r->cv);
  pthread_cond_broadcast(&r->swept_cv);
  pthread_mutex_unlock(&r->mu);
  if (r->started)
    pthread_join(r->thread, NULL);
  for (size_t i = 0; i < r->nts; i++) {
    es__replrec_free(&r->ts[i]->rec);
    es__free(r->ts[i]);
  }
  es__free(r->ts);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  pthread_cond_destroy(&r->swept_cv);
  es__free(r);
}

void es__replicator_stats(es_replicator *r, es_replica_stats *out) {
  pthread_mutex_lock(&r->mu);
  *out = r->st;
  int64_t now = es__clock_now_us(), oldest = 0;
  for (size_t i = 0; i < r->nts; i++) {
    const repl_tenant *t = r->ts[i];
    out->backlog_objects += t->pend_objects;
    out->backlog_bytes += t->pend_bytes;
    if (t->oldest_us && (oldest == 0 || t->oldest_us < oldest))
      oldest = t->oldest_us;
  }
  out->oldest_age_us = oldest && now > oldest ? now - oldest : 0;
  pthread_mutex_unlock(&r->mu);
}

/* Sweep numbers for the WAL shipper's deletions (walship.c, 3). */
void es__replicator_sweeps(es_replicator *r, uint64_t *begun_out,
                           uint64_t *clean_out) {
  pthread_mutex_lock(&r->mu);
  *begun_out = r->sweeps_begun;
  *clean_out = r->clean_any;
  pthread_mutex_unlock(&r->mu);
}

int es__replicator_drain(es_replicator *r, int64_t timeout_us) {
  int64_t until = es__clock_mono_us() + (timeout_us > 0 ? timeout_us : 0);
  pthread_mutex_lock(&r->mu);
  uint64_t want = r->sweeps_begun + 1; /* a sweep that begins after now */
  if (r->drain_wanted < want)
    r->drain_wanted = want;
  r->wake = 1;
  pthread_cond_signal(&r->cv);
  int rc = ES_OK;
  while (!r->stop && r->clean_sweep < want) {
    int64_t left = until - es__clock_mono_us();
    if (left <= 0) {
      rc = ES_ERR(ES_EUNAVAIL, "replica not caught up in time; last error: %s",
                  r->last_why[0] ? r->last_why : "none");
      break;
    }
    if (r->drain_wanted < r->sweeps_begun + 1) /* keep sweeping everything */
      r->drain_wanted = r->sweeps_begun + 1;
    struct timespec ts;
    es__clock_deadline(&ts, left < 100000 ? left : 100000);
    pthread_cond_timedwait(&r->swept_cv, &r->mu, &ts);
  }
  if (rc == ES_OK && r->stop)
    rc = ES_ERR(ES_ECLOSED, "the database is closing");
  pthread_mutex_unlock(&r->mu);
  return rc;
}
