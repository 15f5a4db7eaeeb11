/*
 * dest.h -- where an export's files go: a local directory (through an
 * es_vfs) or an object store (through an es_objstore: S3, or objmem in
 * tests).  export.c speaks only to this interface, so the partition
 * protocol (docs/EXPORT.md, "Idempotence and atomic replacement") is
 * written once for both.
 *
 * Layering: lib/export ranks above lib/replicate (scripts/check.sh), and
 * uses of it only the object-store interface (replicate/objstore.h) and
 * es_replica_s3_new (the one place an "s3://BUCKET/PREFIX" URL becomes an
 * S3 client), never the replicator.
 *
 * A partition is addressed by its path relative to the destination's
 * root, "tenant=<T>/date=<YYYY-MM-DD>"; files by their name in it.
 * Invariants:
 *  1. A part file is visible under its name only whole: locally it is
 *     written as <name>.tmp, synced and renamed; on an object store it is
 *     built in memory (es_xbuf) and put whole (objstore.h invariant 1).
 *  2. es__dest_put_atomic replaces a small file whole (the manifest):
 *     temp + sync + rename + directory sync locally, one put on a store.
 *  3. Directory syncs and mkdirs are no-ops on an object store (it has
 *     no directories; a put that returned is durable).
 */
#ifndef ES_EXPORT_DEST_H
#define ES_EXPORT_DEST_H

#include <stddef.h>
#include <stdint.h>

#include "base/codec.h"
#include "base/io.h"
#include "replicate/objstore.h"

typedef struct es_xdest {
  es_vfs *vfs;             /* local destination's file system, or NULL */
  es_objstore *os;         /* object-store destination, or NULL */
  char root[ES_PATH_MAX];  /* local: the directory; store: key prefix
                              ("" or ending in '/') */
  struct es_replica *owns; /* made from an s3:// URL: freed with the dest */
} es_xdest;

/* A memory file for a part bound for an object store: an es_vfs whose
 * one file is buf (open truncates it).  One per writing thread. */
typedef struct es_xbuf {
  es_vfs vfs;
  es_buf buf;
} es_xbuf;

void es__xbuf_init(es_xbuf *x);
void es__xbuf_free(es_xbuf *x);

/* A destination from a URL: "s3://BUCKET[/PREFIX]" (an S3 client made by
 * es_replica_s3_new with endpoint and region, NULL: the environment's) or
 * a local directory on vfs.  *d_out is es__free'd by es__dest_close. */
int es__dest_open(const char *url, const char *endpoint, const char *region,
                  es_vfs *vfs, es_xdest **d_out) ES_MUST_CHECK;
/* A destination on an existing object store (borrowed) under prefix
 * ("" or a folder; a '/' is added): tests with objmem. */
int es__dest_wrap(es_objstore *os, const char *prefix,
                  es_xdest **d_out) ES_MUST_CHECK;
void es__dest_close(es_xdest *d);

/* Whole file rel/name into an es__malloc'ed buffer; ES_ENOTFOUND. */
int es__dest_read(es_xdest *d, const char *rel, const char *name,
                  uint8_t **buf_out, size_t *len_out) ES_MUST_CHECK;
/* Calls fn with each file name directly in rel (none: ES_OK). */
int es__dest_list(es_xdest *d, const char *rel, es_list_fn fn,
                  void *ud) ES_MUST_CHECK;
/* Calls fn with each name under rel: locally the entries directly in it
 * (files and directories), on a store every key below it, relative to
 * rel ("date=2026-12-01/_manifest.json").  None: ES_OK. */
int es__dest_list_deep(es_xdest *d, const char *rel, es_list_fn fn,
                       void *ud) ES_MUST_CHECK;
/* Makes rel's directories (local; no-op on a store). */
int es__dest_mkdirs(es_xdest *d, const char *rel) ES_MUST_CHECK;
/* Where a part is written before es__dest_part_commit: *vfs_out and
 * path (ES_PATH_MAX) to open with ES_IO_CREATE|ES_IO_TRUNC.  x is the
 * thread's memory file (used for object stores). */
int es__dest_part_path(es_xdest *d, es_xbuf *x, const char *rel,
                       const char *name, es_vfs **vfs_out,
                       char *path) ES_MUST_CHECK;
/* Makes a written (closed, synced) part visible as rel/name
 * (invariant 1). */
int es__dest_part_commit(es_xdest *d, es_xbuf *x, const char *rel,
                         const char *name, const char *path) ES_MUST_CHECK;
/* Makes earlier commits in rel durable (directory sync; store: no-op). */
int es__dest_sync(es_xdest *d, const char *rel) ES_MUST_CHECK;
/* Replaces rel/name with buf whole (invariant 2). */
int es__dest_put_atomic(es_xdest *d, const char *rel, const char *name,
                        const void *buf, size_t len) ES_MUST_CHECK;
/* Removes rel/name (missing is fine). */
int es__dest_remove(es_xdest *d, const char *rel,
                    const char *name) ES_MUST_CHECK;

#endif
