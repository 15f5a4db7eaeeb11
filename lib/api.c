/*
 * api.c -- the library's top layer.  The store (lib/store/) knows nothing
 * of the engine (lib/engine/); opening a handle is where the two meet:
 * es_open gives the store the engine's hooks (engine/engine.h).
 */
#include "api.h"
#include "engine/engine.h"
#include "replicate/replicate.h"
#include "store/db.h"

/* es_close's first step when a replicator rides on the handle. */
static void api_replica_stop(es_db *db) {
  es__replicator_stop(db->ext);
  db->ext = NULL;
  db->ext_stop = NULL;
}

/* Opens with a chosen vfs; see api.h.  A writable handle with a replica
 * starts its uploader once the store is open (recovered). */
int es__open_vfs(const es_options *opts, es_vfs *vfs, es_db **db_out) {
  ES_TRY(es__db_open(opts, vfs, &es__engine_hooks, db_out));
  es_db *db = *db_out;
  if (!db->opts.replica || db->opts.read_only)
    return ES_OK;
  es_replicator *r = NULL;
  int rc = es__replicator_start(db, db->opts.replica, &r);
  if (rc < 0) {
    (void)es_close(db);
    *db_out = NULL;
    return rc;
  }
  db->ext = r;
  db->ext_stop = api_replica_stop;
  return ES_OK;
}

/* The uploader's counters; see eventstore.h. */
int es_replica_stats_get(es_db *db, es_replica_stats *out) {
  if (!db || !out)
    return ES_INVAL_BKPT("es_replica_stats_get: NULL argument");
  memset(out, 0, sizeof(*out));
  if (!db->ext)
    return ES_INVAL_BKPT("this handle has no replica");
  es__replicator_stats(db->ext, out);
  return ES_OK;
}

/* Waits for a clean sweep; see eventstore.h. */
int es_replica_drain(es_db *db, int64_t timeout_us) {
  if (!db)
    return ES_INVAL_BKPT("es_replica_drain: NULL db");
  if (!db->ext)
    return ES_INVAL_BKPT("this handle has no replica");
  return es__replicator_drain(db->ext, timeout_us);
}

/* Opens the store on the real file system; see eventstore.h. */
int es_open(const es_options *opts, es_db **db_out) {
  return es__open_vfs(opts, es__vfs_posix(), db_out);
}
