/*
 * io.h -- the virtual file system: the only door to the operating system's
 * files.
 *
 * Every open, read, write, fdatasync, rename, unlink and directory listing
 * of the library goes through an es_vfs.  The default one (es__vfs_posix)
 * calls POSIX directly; tests substitute their own to fail the N-th call
 * with EIO or ENOSPC, or to simulate a power cut that loses every write
 * and every directory change that was not synced.
 *
 * Contract of every method: returns ES_OK or a negative status (ES_EIO,
 * ES_ENOSPC, ES_ENOTFOUND for a missing path, ...) with es_errdetail() set
 * to a sentence naming the path.  Short writes do not exist at this level:
 * write either writes all bytes or fails.  read returns fewer bytes than
 * asked only at end of file.  A directory change (create, rename, unlink)
 * is durable only after sync_dir on the directory that holds it.
 */
#ifndef ES_IO_H
#define ES_IO_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct es_vfs es_vfs;
typedef struct es_file es_file; /* defined by each vfs */

#define ES_IO_READ 0x0
#define ES_IO_WRITE 0x1  /* read and write */
#define ES_IO_CREATE 0x2 /* create if missing */
#define ES_IO_EXCL 0x4   /* with CREATE: fail with ES_EINVAL if it exists */
#define ES_IO_TRUNC 0x8  /* truncate to zero length */

/* Callback for list: called with each entry name (not "." or ".."). */
typedef int (*es_list_fn)(void *ud, const char *name);

struct es_vfs {
  int (*open)(es_vfs *vfs, const char *path, int flags, es_file **file_out);
  int (*close)(es_vfs *vfs, es_file *file);
  int (*read)(es_vfs *vfs, es_file *file, void *buf, size_t len,
              uint64_t offset, size_t *got_out);
  int (*write)(es_vfs *vfs, es_file *file, const void *buf, size_t len,
               uint64_t offset);
  int (*sync)(es_vfs *vfs, es_file *file); /* data durable (fdatasync) */
  int (*truncate)(es_vfs *vfs, es_file *file, uint64_t size);
  int (*size)(es_vfs *vfs, es_file *file, uint64_t *size_out);
  int (*rename)(es_vfs *vfs, const char *from, const char *to);
  int (*unlink)(es_vfs *vfs, const char *path);
  int (*mkdir)(es_vfs *vfs, const char *path); /* ES_OK if it exists */
  int (*sync_dir)(es_vfs *vfs, const char *path);
  /* Lists a directory; ES_ENOTFOUND if missing.  A non-zero return of fn
   * stops the listing and is returned. */
  int (*list)(es_vfs *vfs, const char *path, es_list_fn fn, void *ud);
  /* Takes an exclusive advisory lock on path (created if missing), held
   * until close; ES_EBUSY if another process holds it. */
  int (*lock)(es_vfs *vfs, const char *path, es_file **file_out);
  void *ctx; /* the vfs's own state */
  /* Optional (may be NULL): a number that changes whenever the file at
   * path is replaced or changed (inode, size, modification time);
   * ES_ENOTFOUND if there is none.  Read-only handles use it to notice a
   * new MANIFEST without reading it. */
  int (*version)(es_vfs *vfs, const char *path, uint64_t *version_out);
};

/* The POSIX file system.  Stateless and shared. */
es_vfs *es__vfs_posix(void);

/* Helpers on top of a vfs (io.c). */

/* Reads exactly len bytes at offset; ES_ECORRUPT on a short read. */
int es__io_read_exact(es_vfs *vfs, es_file *f, void *buf, size_t len,
                      uint64_t offset, const char *what) ES_MUST_CHECK;

/* Writes path atomically: path.tmp, write, sync, rename, sync_dir(dir).
 * A failure before the rename removes path.tmp (nothing depends on it, and
 * on a full disk its blocks are what a retry needs); a failure at or after
 * the rename leaves the name in doubt, which es__io_failed_committing()
 * tells the caller's error handling (store/gate.c). */
int es__io_write_atomic(es_vfs *vfs, const char *dir, const char *name,
                        const void *buf, size_t len) ES_MUST_CHECK;
/* 1 if this thread's last failed es__io_write_atomic failed at or after
 * its rename (a commit point), else 0; reading clears it. */
int es__io_failed_committing(void);

/* Creates (or truncates) path, writes buf and syncs it; the directory
 * entry is not synced. */
int es__io_write_file(es_vfs *vfs, const char *path, const void *buf,
                      size_t len) ES_MUST_CHECK;

/* Opens path for writing (ES_IO_WRITE | flags), writes len bytes at off,
 * syncs and closes it. */
int es__io_write_at(es_vfs *vfs, const char *path, int flags, const void *buf,
                    size_t len, uint64_t off) ES_MUST_CHECK;

/* Reads a whole (small) file into an es__malloc'ed buffer (owned). */
int es__io_read_all(es_vfs *vfs, const char *path, uint8_t **buf_out,
                    size_t *len_out) ES_MUST_CHECK;

/* Formats dir + "/" + name into buf (cap bytes); ES_EINVAL if too long. */
int es__path_join(char *buf, size_t cap, const char *dir,
                  const char *name) ES_MUST_CHECK;

#define ES_PATH_MAX 4096

#endif
