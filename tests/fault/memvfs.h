/*
 * memvfs.h -- an in-memory es_vfs that can fail the N-th I/O call and
 * simulate a power cut, for the fault tests.
 *
 * Modelled on SQLite's test6.c.  Every file is a byte buffer with two
 * versions: its current content (what reads see) and its durable content
 * (the content as of the last sync on it).  Every directory has two
 * versions of its entries: current, and durable (as of the last sync_dir on
 * it).  memvfs_crash() throws the current versions away and keeps the
 * durable ones, exactly what a power cut does to a file system that honours
 * fdatasync and directory fsync and nothing more:
 *
 *  1. A write, truncate or create that was not followed by a sync of the
 *     file (writes) or of its directory (create, rename, unlink, mkdir) is
 *     lost.  A file that was created and synced but whose directory was not
 *     synced vanishes.
 *  2. In torn mode (memvfs_crash_torn) each 512-byte sector holding
 *     unsynced changes independently survives or is lost, chosen by a
 *     seeded generator, as a disk that reorders its writes would do.
 *  3. Handles opened before a crash stay valid memory but every call on them
 *     fails with ES_EIO (close frees them); the new "boot" sees only the
 *     durable state.  Locks are released by a crash.
 *
 * Fault injection counts the calls that change state ("counted calls"):
 * write, sync, truncate, rename, unlink, mkdir, sync_dir, and open with
 * ES_IO_CREATE or ES_IO_TRUNC.  Reads, size, list, lock and close are not
 * counted (reads have their own counter) and never fail by injection.
 *
 * Everything is protected by one mutex: the library calls the vfs from
 * several threads.  Memory comes from plain malloc, so es__mem_fail_at does
 * not affect the vfs.
 */
#ifndef MEMVFS_H
#define MEMVFS_H

#include <stdint.h>

#include "base/io.h"

/* What a failing write leaves behind (memvfs_set_short_write). */
#define MEMVFS_SHORT_NONE 0 /* nothing of the buffer is written */
#define MEMVFS_SHORT_HALF 1 /* the first half is written, then it fails */

/* A new, empty file system holding only the root directory "/".  Never
 * NULL (aborts when out of memory: it is a test fixture). */
es_vfs *memvfs_create(void);

/* Frees the file system.  Handles still open are not freed (they belong
 * to whoever opened them; a leak detector will name the culprit). */
void memvfs_destroy(es_vfs *vfs);

/* Simulates a power cut: every file reverts to its durable content and
 * every directory to its durable entries; old handles go stale and locks
 * are released.  Fault settings are left alone. */
void memvfs_crash(es_vfs *vfs);

/* Like memvfs_crash, but each 512-byte sector of a file that differs from
 * its durable content keeps its current bytes with probability 1/2. */
void memvfs_crash_torn(es_vfs *vfs, uint64_t seed);

/* Arms a fault: the k-th counted call from now (1 = the next) fails with
 * errcode (ES_EIO or ES_ENOSPC), and if persistent every counted call after
 * it too.  Resets the call counter to 0.  k = 0 disarms. */
void memvfs_fail_at(es_vfs *vfs, unsigned long k, int errcode, int persistent);

/* Arms a "power cut at k": from the k-th counted call from now on, every
 * counted call fails with ES_EIO and changes nothing (no short writes), so
 * the durable state is frozen as it was after call k-1; the test then
 * releases the library and calls memvfs_crash.  Resets the counter. */
void memvfs_crash_at(es_vfs *vfs, unsigned long k);

/* Disarms any fault or crash point (the counter keeps running). */
void memvfs_clear_faults(es_vfs *vfs);

/* Chooses what a failing write leaves: MEMVFS_SHORT_NONE (default) or
 * MEMVFS_SHORT_HALF. */
void memvfs_set_short_write(es_vfs *vfs, int mode);

/* A disk of limited size: a write that would make the files of the
 * current namespace hold more than quota bytes in all fails with
 * ES_ENOSPC and writes nothing (it is counted, not an injected fault).
 * 0 (the default) is no limit.  Raise it to "free space". */
void memvfs_set_quota(es_vfs *vfs, uint64_t quota_bytes);

/* Bytes held by the files of the current namespace. */
uint64_t memvfs_used(es_vfs *vfs);

/* Writes refused by the quota since creation. */
unsigned long memvfs_quota_refusals(es_vfs *vfs);

/* Counted calls since creation or the last memvfs_fail_at/crash_at. */
unsigned long memvfs_count(es_vfs *vfs);

/* Read calls (read, list, size) since creation. */
unsigned long memvfs_reads(es_vfs *vfs);

/* How many calls failed by injection since creation. */
unsigned long memvfs_faults_hit(es_vfs *vfs);

/* Handles currently open (files and locks), stale ones included. */
long memvfs_open_handles(es_vfs *vfs);

/* Test helpers that bypass counting and faults. */

/* Creates directory path and makes it and its entry in the parent
 * durable at once (as if mkdir + sync_dir(parent) had happened long ago). */
int memvfs_mkdir_durable(es_vfs *vfs, const char *path);

/* Makes the whole current state durable, as if the operating system had
 * written everything back long ago (a store's "past"). */
void memvfs_sync_all(es_vfs *vfs);

/* XORs the byte at offset of a file with mask, in both its current and its
 * durable content (bit rot).  ES_ENOTFOUND / ES_EINVAL when out of range. */
int memvfs_flip_byte(es_vfs *vfs, const char *path, uint64_t offset,
                     uint8_t mask);

/* Current size of a file; ES_ENOTFOUND when missing. */
int memvfs_file_size(es_vfs *vfs, const char *path, uint64_t *size_out);

/* Copies up to len bytes of a file's current content from offset;
 * *got_out says how many. */
int memvfs_peek(es_vfs *vfs, const char *path, uint64_t offset, void *buf,
                size_t len, size_t *got_out);

/* 1 if path exists (file or directory) in the current namespace. */
int memvfs_exists(es_vfs *vfs, const char *path);

#endif
