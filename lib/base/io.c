/*
 * io.c -- the POSIX file system behind es_vfs, and helpers on any vfs.
 *
 * This is the only file of the library that calls open, pread, pwrite,
 * fdatasync, rename, unlink, mkdir or readdir.  Everything above it sees
 * an es_vfs, which is what lets the fault tests fail the N-th call or
 * simulate a power cut (tests/fault/memvfs.c).
 *
 * Invariants:
 *  1. Every failure sets an error detail naming the path and errno.
 *  2. write() loops over short writes and EINTR: a caller never sees a
 *     partial success.
 *  3. sync() is fdatasync(): file data plus the metadata needed to read it
 *     back (size).  Directory entries need sync_dir() on the directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/codec.h"
#include "base/io.h"
#include "base/mem.h"

struct es_file {
  int fd;
  char path[ES_PATH_MAX];
};

#define IO_ERR(errno_value, ...)                                               \
  es__error_errno(es__status_from_errno(errno_value), (errno_value), __FILE__, \
                  __LINE__, __VA_ARGS__)

static int posix_open(es_vfs *vfs, const char *path, int flags,
                      es_file **file_out) {
  (void)vfs;
  *file_out = NULL;
  int oflags = O_CLOEXEC;
  oflags |= (flags & ES_IO_WRITE) ? O_RDWR : O_RDONLY;
  if (flags & ES_IO_CREATE)
    oflags |= O_CREAT;
  if (flags & ES_IO_EXCL)
    oflags |= O_EXCL;
  if (flags & ES_IO_TRUNC)
    oflags |= O_TRUNC;
  es_file *f = es__malloc(sizeof(*f));
  if (!f)
    return ES_NOMEM_BKPT();
  if (strlen(path) >= sizeof(f->path)) {
    es__free(f);
    return ES_INVAL_BKPT("path too long: %.64s...", path);
  }
  int fd;
  do
    fd = open(path, oflags, 0644);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    int e = errno;
    es__free(f);
    if (e == EEXIST)
      return ES_ERR(ES_EINVAL, "open %s: exists", path);
    return IO_ERR(e, "open %s", path);
  }
  f->fd = fd;
  strcpy(f->path, path);
  *file_out = f;
  return ES_OK;
}

static int posix_close(es_vfs *vfs, es_file *f) {
  (void)vfs;
  if (!f)
    return ES_OK;
  int rc = ES_OK;
  if (close(f->fd) != 0 && errno != EINTR)
    rc = IO_ERR(errno, "close %s", f->path);
  es__free(f);
  return rc;
}

static int posix_read(es_vfs *vfs, es_file *f, void *buf, size_t len,
                      uint64_t offset, size_t *got_out) {
  (void)vfs;
  size_t done = 0;
  while (done < len) {
    ssize_t n =
        pread(f->fd, (char *)buf + done, len - done, (off_t)(offset + done));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      *got_out = done;
      return IO_ERR(errno, "read %s at %llu", f->path,
                    (unsigned long long)(offset + done));
    }
    if (n == 0)
      break;
    done += (size_t)n;
  }
  *got_out = done;
  return ES_OK;
}

static int posix_write(es_vfs *vfs, es_file *f, const void *buf, size_t len,
                       uint64_t offset) {
  (void)vfs;
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(f->fd, (const char *)buf + done, len - done,
                       (off_t)(offset + done));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return IO_ERR(errno, "write %s at %llu", f->path,
                    (unsigned long long)(offset + done));
    }
    done += (size_t)n;
  }
  return ES_OK;
}

static int posix_sync(es_vfs *vfs, es_file *f) {
  (void)vfs;
  if (fdatasync(f->fd) != 0)
    return IO_ERR(errno, "fdatasync %s", f->path);
  return ES_OK;
}

static int posix_truncate(es_vfs *vfs, es_file *f, uint64_t size) {
  (void)vfs;
  if (ftruncate(f->fd, (off_t)size) != 0)
    return IO_ERR(errno, "truncate %s", f->path);
  return ES_OK;
}

static int posix_size(es_vfs *vfs, es_file *f, uint64_t *size_out) {
  (void)vfs;
  struct stat st;
  if (fstat(f->fd, &st) != 0)
    return IO_ERR(errno, "stat %s", f->path);
  *size_out = (uint64_t)st.st_size;
  return ES_OK;
}

static int posix_version(es_vfs *vfs, const char *path, uint64_t *out) {
  (void)vfs;
  struct stat st;
  if (stat(path, &st) != 0)
    return IO_ERR(errno, "stat %s", path);
  uint64_t v[4] = {(uint64_t)st.st_ino, (uint64_t)st.st_size,
                   (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec};
  *out = es__hash64(v, sizeof(v), 0);
  return ES_OK;
}

static int posix_rename(es_vfs *vfs, const char *from, const char *to) {
  (void)vfs;
  if (rename(from, to) != 0)
    return IO_ERR(errno, "rename %s to %s", from, to);
  return ES_OK;
}

static int posix_unlink(es_vfs *vfs, const char *path) {
  (void)vfs;
  if (unlink(path) != 0)
    return IO_ERR(errno, "unlink %s", path);
  return ES_OK;
}

static int posix_mkdir(es_vfs *vfs, const char *path) {
  (void)vfs;
  if (mkdir(path, 0755) != 0 && errno != EEXIST)
    return IO_ERR(errno, "mkdir %s", path);
  return ES_OK;
}

static int posix_sync_dir(es_vfs *vfs, const char *path) {
  (void)vfs;
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return IO_ERR(errno, "open directory %s", path);
  int rc = ES_OK;
  if (fsync(fd) != 0)
    rc = IO_ERR(errno, "fsync directory %s", path);
  close(fd);
  return rc;
}

static int posix_list(es_vfs *vfs, const char *path, es_list_fn fn, void *ud) {
  (void)vfs;
  DIR *d = opendir(path);
  if (!d)
    return IO_ERR(errno, "list %s", path);
  int rc = ES_OK;
  struct dirent *de;
  errno = 0;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    rc = fn(ud, de->d_name);
    if (rc != 0)
      break;
    errno = 0;
  }
  if (rc == 0 && errno != 0)
    rc = IO_ERR(errno, "list %s", path);
  closedir(d);
  return rc;
}

/* The PID a lock holder wrote into its LOCK file (posix_lock), 0 when
 * there is none to read. */
static long lock_holder_pid(int fd) {
  char buf[24];
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  long pid = 0;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
    pid = pid * 10 + (buf[i] - '0');
  return pid;
}

/* Takes the lock and writes this process's PID into the file, so that a
 * second process refused the lock can say which process holds it.  The
 * PID is a hint for people (never synced, never trusted by the library):
 * the flock is the lock. */
static int posix_lock(es_vfs *vfs, const char *path, es_file **file_out) {
  int rc = posix_open(vfs, path, ES_IO_WRITE | ES_IO_CREATE, file_out);
  if (rc < 0)
    return rc;
  int fd = (*file_out)->fd;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    long pid = e == EWOULDBLOCK ? lock_holder_pid(fd) : 0;
    posix_close(vfs, *file_out);
    *file_out = NULL;
    if (e == EWOULDBLOCK && pid > 0)
      return ES_ERR(ES_EBUSY, "%s is locked by process %ld", path, pid);
    if (e == EWOULDBLOCK)
      return ES_ERR(ES_EBUSY, "%s is locked by another process", path);
    return IO_ERR(e, "lock %s", path);
  }
  char pid[24];
  int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
  int hint_ok = ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) == n;
  (void)hint_ok; /* only a hint: the lock is held either way */
  return ES_OK;
}

static es_vfs posix_vfs = {
    posix_open,     posix_close, posix_read,   posix_write,  posix_sync,
    posix_truncate, posix_size,  posix_rename, posix_unlink, posix_mkdir,
    posix_sync_dir, posix_list,  posix_lock,   NULL,         posix_version,
};

/* The POSIX vfs: stateless, shared by every handle. */
es_vfs *es__vfs_posix(void) { return &posix_vfs; }

/* Reads exactly len bytes or reports which structure was cut short. */
int es__io_read_exact(es_vfs *vfs, es_file *f, void *buf, size_t len,
                      uint64_t offset, const char *what) {
  size_t got = 0;
  ES_TRY(vfs->read(vfs, f, buf, len, offset, &got));
  if (got != len)
    return ES_CORRUPT_BKPT("%s: file ends at %llu, %zu bytes short", what,
                           (unsigned long long)(offset + got), len - got);
  return ES_OK;
}

/* Joins dir and name; refuses paths that would not fit. */
int es__path_join(char *buf, size_t cap, const char *dir, const char *name) {
  int n = snprintf(buf, cap, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= cap)
    return ES_INVAL_BKPT("path too long: %.64s/%.64s", dir, name);
  return ES_OK;
}

/* Creates or truncates a file with the given contents, synced. */
int es__io_write_file(es_vfs *vfs, const char *path, const void *buf,
                      size_t len) {
  return es__io_write_at(vfs, path, ES_IO_CREATE | ES_IO_TRUNC, buf, len, 0);
}

/* Opens path for writing (with extra flags), writes buf at off, syncs and
 * closes it; the first error wins. */
int es__io_write_at(es_vfs *vfs, const char *path, int flags, const void *buf,
                    size_t len, uint64_t off) {
  es_file *f = NULL;
  ES_TRY(vfs->open(vfs, path, ES_IO_WRITE | flags, &f));
  int rc = vfs->write(vfs, f, buf, len, off);
  if (rc == ES_OK)
    rc = vfs->sync(vfs, f);
  int rc2 = vfs->close(vfs, f);
  return rc < 0 ? rc : rc2;
}

/* Set while an es__io_write_atomic of this thread is past the point where
 * a failure can be undone by removing the temp file (es__gate_io_error
 * asks, through es__io_failed_committing). */
static _Thread_local int io_committing;

/* The atomic-replace protocol: write a temporary file, make it durable,
 * rename it over the target, make the rename durable.  A crash at any
 * point leaves either the old file or the new one. */
int es__io_write_atomic(es_vfs *vfs, const char *dir, const char *name,
                        const void *buf, size_t len) {
  char path[ES_PATH_MAX], tmp[ES_PATH_MAX];
  ES_TRY(es__path_join(path, sizeof(path), dir, name));
  if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
    return ES_INVAL_BKPT("path too long: %s", path);
  io_committing = 0;
  int rc = es__io_write_file(vfs, tmp, buf, len);
  if (rc < 0) { /* nothing depends on the temp file: free its space */
    char keep[512];
    snprintf(keep, sizeof(keep), "%s", es_errdetail());
    if (vfs->unlink(vfs, tmp) < 0) /* maybe never created: first error wins */
      return es__error_at(rc, __FILE__, __LINE__, "%s", keep);
    return rc;
  }
  io_committing = 1; /* from here a failure leaves the name in doubt */
  rc = vfs->rename(vfs, tmp, path);
  if (rc == ES_OK)
    rc = vfs->sync_dir(vfs, dir);
  if (rc == ES_OK)
    io_committing = 0;
  return rc;
}

/* Whether the last failed es__io_write_atomic of this thread failed at
 * or after its rename; clears the mark. */
int es__io_failed_committing(void) {
  int c = io_committing;
  io_committing = 0;
  return c;
}

/* Reads a whole small file (manifests, the ESDB file) into memory. */
int es__io_read_all(es_vfs *vfs, const char *path, uint8_t **buf_out,
                    size_t *len_out) {
  *buf_out = NULL;
  *len_out = 0;
  es_file *f = NULL;
  ES_TRY(vfs->open(vfs, path, ES_IO_READ, &f));
  uint64_t size = 0;
  int rc = vfs->size(vfs, f, &size);
  uint8_t *buf = NULL;
  if (rc == ES_OK && size > (1u << 30))
    rc = ES_CORRUPT_BKPT("%s: implausible size %llu", path,
                         (unsigned long long)size);
  if (rc == ES_OK && !(buf = es__malloc((size_t)size)))
    rc = ES_NOMEM_BKPT();
  if (rc == ES_OK)
    rc = es__io_read_exact(vfs, f, buf, (size_t)size, 0, path);
  int rc2 = vfs->close(vfs, f);
  if (rc == ES_OK)
    rc = rc2;
  if (rc < 0) {
    es__free(buf);
    return rc;
  }
  *buf_out = buf;
  *len_out = (size_t)size;
  return ES_OK;
}
