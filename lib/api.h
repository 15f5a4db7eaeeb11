/*
 * api.h -- the top of the library: es_open wires the store to the engine
 * above it.  Tests that open a store on a chosen file system come here.
 */
#ifndef ES_API_H
#define ES_API_H

#include "base/io.h"
#include "eventstore.h"

/* es_open with a chosen file system (tests: fault injection, crash
 * simulation).  The vfs must outlive the handle. */
int es__open_vfs(const es_options *opts, es_vfs *vfs, es_db **db_out);

#endif
