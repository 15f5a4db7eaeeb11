/*
 * db.h -- internal entry points of the database object that tests use.
 */
#ifndef ES_DB_H
#define ES_DB_H

#include "base/io.h"
#include "eventstore.h"

struct es_engine_hooks;

/* es_open's body: with a chosen file system and the hooks of the layer
 * above the store (store/dbint.h).  lib/api.c calls it. */
int es__db_open(const es_options *opts, es_vfs *vfs,
                const struct es_engine_hooks *hooks, es_db **db_out);

/* es_verify / es_inspect with a chosen file system. */
int es__verify_vfs(es_vfs *vfs, const char *data_dir,
                   void (*problem_fn)(void *, const char *, uint64_t,
                                      const char *),
                   void *ud);
int es__inspect_vfs(es_vfs *vfs, const char *data_dir,
                    int (*fn)(void *ud, const es_file_info *info), void *ud);

#endif
