/*
 * memfile.h -- a tiny read-only es_vfs over caller-owned byte buffers, for
 * the fuzz targets.
 *
 * A fuzz iteration should not touch the disk: it is slow, and a parser
 * that reads a file through the library's VFS can then be fed the fuzzer's
 * bytes directly.  memfile serves a handful of files from memory:
 *
 *  1. memfile_put() registers a path with borrowed bytes (not copied): the
 *     caller keeps them alive until the next memfile_put/memfile_clear.
 *  2. open (read-only), read, size, close and list work; every call that
 *     would change something (write, sync, truncate, rename, unlink,
 *     mkdir, sync_dir, lock) and every open with a write flag fails with
 *     ES_EREADONLY, so a parser that tries to write is noticed.
 *  3. Handles are counted: after an iteration memfile_open_handles() must
 *     be 0, or the library leaked a file handle.
 *
 * Not thread-safe: a fuzz target calls the parsers from one thread.
 * Memory comes from plain malloc (not es__malloc), so the library's
 * allocation-failure hook never affects the fixture.
 */
#ifndef MEMFILE_H
#define MEMFILE_H

#include <stddef.h>

#include "base/io.h"

/* Most files one memfile holds at a time. */
#define MEMFILE_FILES_MAX 8

/* A new memfile with no files.  Aborts when out of memory (a fixture). */
es_vfs *memfile_create(void);

/* Frees the memfile (the registered bytes belong to their callers). */
void memfile_destroy(es_vfs *vfs);

/* Registers (or replaces) the file at path with data[0..len), borrowed.
 * Aborts when path is too long or the table is full: both are bugs of the
 * calling fuzz target, never of the input. */
void memfile_put(es_vfs *vfs, const char *path, const void *data, size_t len);

/* Forgets every registered file. */
void memfile_clear(es_vfs *vfs);

/* Handles opened and not yet closed. */
long memfile_open_handles(es_vfs *vfs);

#endif
