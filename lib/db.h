/*
 * db.h -- internal entry points of the database object that tests use.
 */
#ifndef ES_DB_H
#define ES_DB_H

#include "eventstore.h"
#include "io.h"

/* es_open with a chosen file system (tests: fault injection, crash
 * simulation).  The vfs must outlive the handle. */
int es__open_vfs(const es_options *opts, es_vfs *vfs, es_db **db_out);

/* es_verify / es_inspect with a chosen file system. */
int es__verify_vfs(es_vfs *vfs, const char *data_dir,
                   void (*problem_fn)(void *, const char *, uint64_t,
                                      const char *),
                   void *ud);
int es__inspect_vfs(es_vfs *vfs, const char *data_dir,
                    int (*fn)(void *ud, const es_file_info *info), void *ud);

#endif
