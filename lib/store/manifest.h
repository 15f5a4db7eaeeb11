/*
 * manifest.h -- the list of a tenant's segments, and the database's
 * identity file.
 *
 * The manifest is the commit point of a seal: a segment exists for
 * readers and for recovery exactly when the manifest that lists it is
 * durable.  It is replaced atomically (write MANIFEST.tmp, fdatasync,
 * rename, fsync the directory), so a crash leaves the old or the new one.
 *
 * Invariants:
 *  1. flushed_lsn: every WAL record of this tenant with an LSN at or below
 *     it is in a listed segment; records above it are not.
 *  2. Segment ids only grow (next_segment_id), so a name is never reused.
 *  3. generation grows by exactly one with every MANIFEST written for the
 *     tenant (store/commit.c is the one writer); a missing MANIFEST is
 *     generation 0, a version-1 file (no field) reads as generation 1.
 *  4. lsn_node names the LSN space flushed_lsn counts in: "" is this
 *     store's own WAL (and every file before version 3); a cluster node
 *     (lib/replicate/cluster.c) writes its node name, so a node taking the
 *     tenant over knows whose WAL chunks hold the records above it.  A
 *     commit carries it over unchanged.
 */
#ifndef ES_MANIFEST_H
#define ES_MANIFEST_H

#include <stdint.h>

#include "base/io.h"

/* The longest node name a manifest records (lease.h's ES_LEASE_NODE_MAX
 * is the same). */
#define ES_MANIFEST_NODE_MAX 64

typedef struct es_manifest_entry {
  uint64_t id;
  uint64_t rows;
  uint64_t bytes;
  int64_t min_ts_us, max_ts_us;
} es_manifest_entry;

typedef struct es_manifest {
  uint64_t flushed_lsn;
  uint64_t next_segment_id;
  uint64_t generation; /* commits of this tenant's manifest (invariant 3) */
  char lsn_node[ES_MANIFEST_NODE_MAX + 1]; /* invariant 4; "" own WAL */
  size_t count;
  es_manifest_entry *entries; /* owned */
} es_manifest;

/* Reads tenant_dir/MANIFEST.  A missing file is an empty manifest. */
int es__manifest_read(es_vfs *vfs, const char *tenant_dir,
                      es_manifest *m) ES_MUST_CHECK;
/* Decodes the bytes of a MANIFEST (what names it in errors), checking
 * its checksum and structure: ES_ECORRUPT, ES_EVERSION, ES_ENOMEM. */
int es__manifest_decode(const char *what, const uint8_t *buf, size_t len,
                        es_manifest *m) ES_MUST_CHECK;
/* Writes tenant_dir/MANIFEST atomically and durably. */
int es__manifest_write(es_vfs *vfs, const char *tenant_dir,
                       const es_manifest *m) ES_MUST_CHECK;
void es__manifest_free(es_manifest *m);

/* The segment file name for an id: "<016x id>.seg". */
void es__segment_name(char *buf, size_t cap, uint64_t id);

/* The database identity file DATA/ESDB: format version and shard count,
 * fixed when the directory is created. */
int es__esdb_read(es_vfs *vfs, const char *data_dir,
                  uint32_t *shards_out) ES_MUST_CHECK;
int es__esdb_write(es_vfs *vfs, const char *data_dir,
                   uint32_t shards) ES_MUST_CHECK;

#endif
