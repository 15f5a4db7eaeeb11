/*
 * follow.c -- read-only handles: a reader process beside the writing one
 * (include/eventstore.h, "Read-only handles").
 *
 * The reader takes no lock and writes nothing.  At open it loads every
 * tenant's MANIFEST and segments and reads every WAL file from its start
 * (records at or below a tenant's flushed_lsn are in its segments and are
 * skipped), remembering per shard where it stopped: the file, the offset
 * after the last complete frame, and that frame's LSN.  Then the follower
 * thread, every follow_interval_us:
 *
 *   1. per shard, lists the WAL directory (names only) and reads the
 *      frames added since the remembered point, moving on to newer files;
 *      a file the writer reclaimed meanwhile is skipped (its records are in
 *      segments, which step 2 picks up);
 *   2. per tenant that holds memtable rows (every tenant, once a second),
 *      asks the vfs for the MANIFEST's version (inode, size, mtime) and
 *      re-reads it only when that changed; a new manifest brings new
 *      segments, drops removed ones (compaction), and the memtable rows at
 *      or below the new flushed_lsn are dropped (the rest are carried into
 *      a fresh memtable, with their LSNs: memtable.h, track_lsn);
 *   3. once a second, looks for new tenant directories and changed RULES.
 *
 * Invariants:
 *  1. Only the follower thread (and es_open before it starts) changes the
 *     state of a read-only handle's tenants; readers take snapshots under
 *     tenant->mu as on a writable handle, so each row is seen once: in a
 *     segment listed by the manifest in effect, or in a memtable above its
 *     flushed_lsn.
 *  2. An incomplete frame at the end of the WAL is a frame being written:
 *     the follower stops there and reads it on a later pass.
 *  3. Rows read at open never fire triggers; rows read by the follower do
 *     (rules.h).
 */
#include <stdio.h>

#include "base/clock.h"
#include "base/event.h"
#include "base/mem.h"
#include "store/dbint.h"
#include "store/wal.h"

#define SLOW_EVERY_US INT64_C(1000000) /* all manifests, RULES, new tenants */

/* --- applying a manifest ------------------------------------------------- */

/* The segments a manifest lists, reusing those already open. */
static int ro_segset(es_db *db, es_tenant *t, const es_manifest *m,
                     es_segset **out) {
  es_segset *s = es__malloc(sizeof(*s) + (m->count + 1) * sizeof(es_segment *));
  *out = s;
  if (!s)
    return ES_NOMEM_BKPT();
  atomic_init(&s->refs, 1);
  s->n = 0;
  s->flushed_lsn = m->flushed_lsn;
  for (size_t i = 0; i < m->count; i++) {
    es_segment *seg = NULL;
    for (size_t j = 0; t->segs && j < t->segs->n && !seg; j++)
      if (t->segs->segs[j]->id == m->entries[i].id)
        seg = t->segs->segs[j];
    if (seg) {
      es__segment_ref(seg);
    } else {
      char name[32], path[ES_PATH_MAX];
      es__segment_name(name, sizeof(name), m->entries[i].id);
      int rc = es__path_join(path, sizeof(path), t->dir, name);
      if (rc == ES_OK)
        rc = es__segment_open(db->vfs, path, m->entries[i].id, &seg);
      if (rc < 0) {
        es__segset_unref(s);
        *out = NULL;
        return rc;
      }
    }
    s->segs[s->n++] = seg;
  }
  return ES_OK;
}

/* Copies the rows of src whose records' LSNs are above `flushed` into
 * dst. */
static int ro_carry_one(es_memtable *dst, es_memtable *src, uint64_t flushed) {
  size_t visible = es__memtable_visible(src);
  for (size_t k = 0; k < src->nmarks; k++) {
    uint64_t lsn = src->marks[k].lsn;
    size_t end = k + 1 < src->nmarks ? src->marks[k + 1].first_row : visible;
    if (lsn <= flushed)
      continue;
    for (size_t r = src->marks[k].first_row; r < end && r < visible; r++) {
      const uint8_t *row = es__memtable_row(src, r)->row;
      es_event ev;
      size_t used = 0, added = 0;
      ES_TRY(es__event_decode(row, ES_EVENT_BYTES_MAX, &ev, &used));
      if (!es__memtable_has_room(dst, 1))
        return ES_ERR(ES_ETOOBIG, "read-only memtable full");
      ES_TRY(es__memtable_insert(dst, row, used, 1, lsn, &added));
      es__memtable_publish(dst, lsn);
    }
  }
  return ES_OK;
}

static int same_manifest(const es_manifest *a, const es_manifest *b) {
  if (a->flushed_lsn != b->flushed_lsn || a->count != b->count)
    return 0;
  for (size_t i = 0; i < a->count; i++)
    if (a->entries[i].id != b->entries[i].id)
      return 0;
  return 1;
}

/* Re-reads a tenant's MANIFEST and applies it if it changed (step 2). */
int es__tenant_ro_refresh(es_db *db, es_tenant *t) {
  es_manifest m;
  ES_TRY(es__manifest_read(db->vfs, t->dir, &m));
  if (same_manifest(&m, &t->man)) {
    es__manifest_free(&m);
    return ES_OK;
  }
  es_segset *set = NULL;
  es_memtable *carry = NULL;
  int rc = ro_segset(db, t, &m, &set);
  int rows_move = m.flushed_lsn != t->man.flushed_lsn;
  if (rc == ES_OK && rows_move) {
    rc = es__memtable_new(&carry);
    if (rc == ES_OK) {
      carry->track_lsn = 1;
      for (size_t i = 0; rc == ES_OK && i < t->nimm; i++)
        rc = ro_carry_one(carry, t->imm[i], m.flushed_lsn);
      if (rc == ES_OK && t->active)
        rc = ro_carry_one(carry, t->active, m.flushed_lsn);
    }
  }
  if (rc < 0) {
    es__segset_unref(set);
    es__memtable_unref(carry);
    es__manifest_free(&m);
    return rc;
  }
  es_memtable **old_imm = NULL, *old_active = NULL;
  size_t old_nimm = 0;
  pthread_mutex_lock(&t->mu);
  es_segset *old_set = t->segs;
  t->segs = set;
  if (rows_move) {
    old_imm = t->imm, old_nimm = t->nimm, old_active = t->active;
    t->imm = NULL, t->nimm = t->imm_cap = 0;
    t->active = carry;
  }
  es__manifest_free(&t->man);
  t->man = m;
  pthread_mutex_unlock(&t->mu);
  atomic_fetch_add(&t->id_gen, 1); /* compaction may have dropped links */
  es__segset_unref(old_set);
  for (size_t i = 0; i < old_nimm; i++)
    es__memtable_unref(old_imm[i]);
  es__free(old_imm);
  es__memtable_unref(old_active);
  return ES_OK;
}

/* --- reading the WAL ----------------------------------------------------- */

typedef struct ro_ctx {
  es_db *db;
  uint32_t shard;
  int fire; /* rules fire triggers (not for rows read at open) */
} ro_ctx;

static int ro_record(void *ud, uint64_t lsn, const es_wal_rec *rec,
                     uint64_t frame_off) {
  ro_ctx *c = ud;
  es_db *db = c->db;
  (void)frame_off;
  if (es__tenant_check(rec->tenant) < 0 ||
      es__tenant_shard(db, rec->tenant) != c->shard) {
    es__error_clear();
    return ES_OK; /* the writer's recovery reports it; a reader skips it */
  }
  es_tenant *t = NULL;
  ES_TRY(es__tenant_get(db, rec->tenant, 1, &t));
  if (lsn <= t->man.flushed_lsn)
    return ES_OK;
  size_t before = t->active ? t->active->rows : 0;
  es_memtable *was = t->active;
  ES_TRY(es__tenant_insert(db, t, rec->rows, rec->rows_len, rec->events, lsn,
                           NULL));
  es__memtable_publish(t->active, lsn);
  if (t->active != was) /* a fresh memtable (the old one filled up) */
    before = t->active->rows - rec->events;
  for (size_t i = before; i < t->active->rows; i++) {
    int type = es__event_type(es__memtable_row(t->active, i)->row);
    if (type == ES_TYPE_IDENTIFY || type == ES_TYPE_ALIAS) {
      atomic_fetch_add(&t->id_gen, 1); /* cached identity maps are stale */
      break;
    }
  }
  if (db->hooks->rows(db, t, rec->rows, rec->rows_len, rec->events, lsn,
                      c->fire) < 0)
    es__db_log(db, 1, "tenant %s: rule counters missed a record: %s", t->name,
               es_errdetail());
  atomic_store(&t->ro_hot, 1);
  return ES_OK;
}

/* Reads what was added to a shard's log since the last pass (step 1). */
static int ro_follow_shard(es_db *db, es_shard *sh, int fire) {
  uint64_t *firsts = NULL;
  size_t n = 0;
  ES_TRY(es__wal_list(db->vfs, sh->dir, &firsts, &n));
  ro_ctx ctx = {db, sh->id, fire};
  int rc = ES_OK;
  for (size_t i = 0; rc == ES_OK && i < n; i++) {
    if (firsts[i] < sh->f_first)
      continue;
    char path[ES_PATH_MAX];
    rc = es__wal_path(path, sizeof(path), sh->dir, firsts[i]);
    uint64_t off = firsts[i] == sh->f_first ? sh->f_off : 0;
    es_wal_scan scan;
    if (rc == ES_OK)
      rc =
          es__wal_follow(db->vfs, path, off, sh->f_lsn, ro_record, &ctx, &scan);
    if (rc == ES_ENOTFOUND) { /* reclaimed since the listing */
      es__error_clear();
      rc = ES_OK;
      continue;
    }
    if (rc == ES_OK) {
      sh->f_first = firsts[i];
      sh->f_off = scan.end_off;
      sh->f_lsn = scan.last_lsn;
    }
  }
  es__free(firsts);
  return rc;
}

/* --- tenants ------------------------------------------------------------- */

static int ro_version(es_db *db, es_tenant *t, const char *file,
                      uint64_t *v_out) {
  char path[ES_PATH_MAX];
  *v_out = 0;
  if (!db->vfs->version)
    return 1; /* unknown: look at the file itself */
  ES_TRY(es__path_join(path, sizeof(path), t->dir, file));
  int rc = db->vfs->version(db->vfs, path, v_out);
  if (rc == ES_ENOTFOUND) {
    es__error_clear();
    *v_out = 0;
    rc = ES_OK;
  }
  return rc;
}

/* Looks at one tenant's MANIFEST (and, when slow, RULES). */
static int ro_check_tenant(es_db *db, es_tenant *t, int slow) {
  uint64_t v;
  int rc = ro_version(db, t, "MANIFEST", &v);
  if (rc == 1 || (rc == ES_OK && v != t->man_version)) {
    rc = es__tenant_ro_refresh(db, t);
    if (rc == ES_OK)
      t->man_version = v;
  }
  if (rc == ES_OK) {
    pthread_mutex_lock(&t->mu);
    size_t rows = t->active ? es__memtable_visible(t->active) : 0;
    pthread_mutex_unlock(&t->mu);
    atomic_store(&t->ro_hot, rows > 0 || t->nimm > 0);
  }
  if (rc >= 0 && slow) { /* an unlink appended by the writer */
    int irc = ro_version(db, t, "IDENTITY", &v);
    if (irc == 1 || (irc == ES_OK && v != t->idlog_version)) {
      atomic_fetch_add(&t->id_gen, 1);
      t->idlog_version = v;
    }
  }
  if (rc >= 0 && slow) {
    /* an erase request came or went: the counters again from the rows
     * (readers filter the person at once; this drops them for good) */
    uint64_t ev = 0;
    int erc = ro_version(db, t, "ERASE", &ev);
    uint64_t seen = ev + 1 ? ev + 1 : 1; /* 0: never looked */
    if (erc == ES_OK && t->erase_rules_version == 0) {
      t->erase_rules_version = seen; /* the load filled them already */
    } else if (erc == ES_OK && seen != t->erase_rules_version) {
      erc = db->hooks->tenant_load(db, t, 1);
      if (erc == ES_OK)
        t->erase_rules_version = seen;
      else
        rc = erc;
    }
  }
  if (rc >= 0 && slow) {
    int rrc = ro_version(db, t, "RULES", &v);
    if (rrc == 1 || (rrc == ES_OK && v != t->rules_version)) {
      rrc = db->hooks->tenant_load(db, t, 0);
      if (rrc == ES_OK)
        t->rules_version = v;
    }
    if (rrc < 0)
      rc = rrc;
  }
  return rc < 0 ? rc : ES_OK;
}

static int ro_new_tenant(void *ud, const char *name) {
  es_db *db = ud;
  if (es__tenant_check(name) < 0) {
    es__error_clear();
    return 0;
  }
  es_tenant *t = NULL;
  ES_TRY(es__tenant_get(db, name, 0, &t));
  if (t && t->ro_loaded)
    return 0;
  ES_TRY(es__tenant_get(db, name, 1, &t));
  t->ro_loaded = 1;
  t->man_version = t->rules_version = UINT64_MAX; /* never seen */
  return ro_check_tenant(db, t, 1);
}

/* Every tenant object (they live until the handle closes). */
static int ro_tenants(es_db *db, es_tenant ***out, size_t *n_out) {
  pthread_mutex_lock(&db->tenants_mu);
  size_t n = db->ntenants;
  es_tenant **v = es__malloc((n ? n : 1) * sizeof(es_tenant *));
  size_t k = 0;
  for (size_t i = 0; v && i < n; i++)
    v[k++] = db->tenants[i];
  pthread_mutex_unlock(&db->tenants_mu);
  *out = v;
  *n_out = k;
  return v ? ES_OK : ES_NOMEM_BKPT();
}

/* One pass of the follower (steps 1 to 3).  New tenants first, so that
 * records already in their segments are not read into memtables. */
static int ro_pass(es_db *db, int slow, int fire) {
  if (slow) {
    int rc = db->vfs->list(db->vfs, db->tenants_dir, ro_new_tenant, db);
    if (rc < 0 && rc != ES_ENOTFOUND)
      return rc;
    es__error_clear();
  }
  for (uint32_t s = 0; s < db->nshards; s++)
    ES_TRY(ro_follow_shard(db, &db->shards[s], fire));
  es_tenant **ts;
  size_t n;
  ES_TRY(ro_tenants(db, &ts, &n));
  int rc = ES_OK;
  for (size_t i = 0; rc == ES_OK && i < n; i++) {
    if (!ts[i]->ro_loaded) { /* first seen in the WAL */
      ts[i]->ro_loaded = 1;
      ts[i]->man_version = ts[i]->rules_version = UINT64_MAX;
    }
    if (slow || atomic_load(&ts[i]->ro_hot))
      rc = ro_check_tenant(db, ts[i], slow);
  }
  es__free(ts);
  return rc;
}

static void *follower_main(void *arg) {
  es_db *db = arg;
  int64_t last_slow = es__clock_mono_us();
  pthread_mutex_lock(&db->hk_mu);
  while (!db->hk_stop) {
    pthread_mutex_unlock(&db->hk_mu);
    int64_t now = es__clock_mono_us();
    int slow = now - last_slow >= SLOW_EVERY_US;
    if (slow)
      last_slow = now;
    /* a failed pass is retried: the writer may be mid-rename or reclaim */
    if (ro_pass(db, slow, 1) < 0)
      es__db_log(db, 1, "read-only follower: %s (retrying)", es_errdetail());
    pthread_mutex_lock(&db->hk_mu);
    struct timespec ts;
    es__clock_deadline(&ts, db->opts.follow_interval_us);
    if (!db->hk_stop)
      pthread_cond_timedwait(&db->hk_cv, &db->hk_mu, &ts);
  }
  pthread_mutex_unlock(&db->hk_mu);
  return NULL;
}

/* Loads the store for reading and starts the follower; see dbint.h. */
int es__open_read_only(es_db *db) {
  /* the first pass is the "open": every tenant, every record so far, no
   * triggers; a writer's rename or reclaim racing it is retried */
  int rc = ES_OK;
  for (int attempt = 0; attempt < 5; attempt++) {
    rc = ro_pass(db, 1, 0);
    if (rc != ES_ENOTFOUND)
      break;
  }
  ES_TRY(rc);
  if (pthread_create(&db->housekeeper, NULL, follower_main, db) != 0)
    return ES_ERR(ES_ENOMEM, "cannot start the follower thread");
  db->hk_started = 1;
  (void)pthread_setname_np(db->housekeeper, "es-follow");
  return ES_OK;
}
