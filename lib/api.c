/*
 * api.c -- the library's top layer.  The store (lib/store/) knows nothing
 * of the engine (lib/engine/); opening a handle is where the two meet:
 * es_open gives the store the engine's hooks (engine/engine.h).
 */
#include "api.h"
#include "engine/engine.h"
#include "store/db.h"

/* Opens with a chosen vfs; see api.h. */
int es__open_vfs(const es_options *opts, es_vfs *vfs, es_db **db_out) {
  return es__db_open(opts, vfs, &es__engine_hooks, db_out);
}

/* Opens the store on the real file system; see eventstore.h. */
int es_open(const es_options *opts, es_db **db_out) {
  return es__open_vfs(opts, es__vfs_posix(), db_out);
}
