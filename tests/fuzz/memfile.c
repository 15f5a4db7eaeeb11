/*
 * memfile.c -- the read-only in-memory es_vfs of the fuzz targets; the
 * contract is in memfile.h.
 *
 * Paths are matched byte for byte (no normalisation): the targets pass
 * the library the same strings they registered, and the library only
 * joins a directory and a name with "/".  A directory exists when some
 * registered file lies directly or indirectly below it, which is all that
 * list needs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memfile.h"

#define MEMFILE_PATH_MAX 256

typedef struct memfile_entry {
  char path[MEMFILE_PATH_MAX];
  const unsigned char *data; /* borrowed */
  size_t len;
} memfile_entry;

typedef struct memfile {
  memfile_entry files[MEMFILE_FILES_MAX];
  size_t nfiles;
  long open_handles;
} memfile;

/* The library's es_file is opaque; each vfs defines it. */
struct es_file {
  const unsigned char *data;
  size_t len;
};

static memfile *memfile_of(es_vfs *vfs) { return vfs->ctx; }

static memfile_entry *memfile_find(memfile *mf, const char *path) {
  for (size_t i = 0; i < mf->nfiles; i++)
    if (strcmp(mf->files[i].path, path) == 0)
      return &mf->files[i];
  return NULL;
}

static int memfile_open(es_vfs *vfs, const char *path, int flags,
                        es_file **file_out) {
  *file_out = NULL;
  if (flags != ES_IO_READ)
    return ES_ERR(ES_EREADONLY, "memfile: %s: open for writing", path);
  memfile_entry *e = memfile_find(memfile_of(vfs), path);
  if (!e)
    return ES_ERR(ES_ENOTFOUND, "memfile: %s: no such file", path);
  es_file *f = malloc(sizeof(*f));
  if (!f)
    return ES_NOMEM_BKPT();
  f->data = e->data;
  f->len = e->len;
  memfile_of(vfs)->open_handles++;
  *file_out = f;
  return ES_OK;
}

static int memfile_close(es_vfs *vfs, es_file *f) {
  if (f) {
    memfile_of(vfs)->open_handles--;
    free(f);
  }
  return ES_OK;
}

/* Reads what lies in [offset, offset + len); short only at end of file. */
static int memfile_read(es_vfs *vfs, es_file *f, void *buf, size_t len,
                        uint64_t offset, size_t *got_out) {
  (void)vfs;
  size_t got = 0;
  if (offset < f->len) {
    got = f->len - (size_t)offset;
    if (got > len)
      got = len;
    memcpy(buf, f->data + offset, got);
  }
  *got_out = got;
  return ES_OK;
}

static int memfile_size(es_vfs *vfs, es_file *f, uint64_t *size_out) {
  (void)vfs;
  *size_out = f->len;
  return ES_OK;
}

/* Lists the names of the files directly inside path. */
static int memfile_list(es_vfs *vfs, const char *path, es_list_fn fn,
                        void *ud) {
  memfile *mf = memfile_of(vfs);
  size_t plen = strlen(path);
  int found = 0;
  for (size_t i = 0; i < mf->nfiles; i++) {
    const char *p = mf->files[i].path;
    if (strncmp(p, path, plen) != 0 || p[plen] != '/')
      continue;
    found = 1;
    const char *name = p + plen + 1;
    if (strchr(name, '/'))
      continue; /* deeper: its first component is a subdirectory */
    int rc = fn(ud, name);
    if (rc != 0)
      return rc;
  }
  return found ? ES_OK
               : ES_ERR(ES_ENOTFOUND,
                        "memfile: %s: no such "
                        "directory",
                        path);
}

/* --- everything that would change the file system is refused --------- */

static int memfile_write(es_vfs *vfs, es_file *f, const void *buf, size_t len,
                         uint64_t offset) {
  (void)vfs, (void)f, (void)buf, (void)len, (void)offset;
  return ES_ERR(ES_EREADONLY, "memfile: write");
}

static int memfile_sync(es_vfs *vfs, es_file *f) {
  (void)vfs, (void)f;
  return ES_ERR(ES_EREADONLY, "memfile: sync");
}

static int memfile_truncate(es_vfs *vfs, es_file *f, uint64_t size) {
  (void)vfs, (void)f, (void)size;
  return ES_ERR(ES_EREADONLY, "memfile: truncate");
}

static int memfile_rename(es_vfs *vfs, const char *from, const char *to) {
  (void)vfs, (void)to;
  return ES_ERR(ES_EREADONLY, "memfile: rename %s", from);
}

static int memfile_unlink(es_vfs *vfs, const char *path) {
  (void)vfs;
  return ES_ERR(ES_EREADONLY, "memfile: unlink %s", path);
}

static int memfile_mkdir(es_vfs *vfs, const char *path) {
  (void)vfs;
  return ES_ERR(ES_EREADONLY, "memfile: mkdir %s", path);
}

static int memfile_sync_dir(es_vfs *vfs, const char *path) {
  (void)vfs;
  return ES_ERR(ES_EREADONLY, "memfile: sync_dir %s", path);
}

static int memfile_lock(es_vfs *vfs, const char *path, es_file **file_out) {
  (void)vfs;
  *file_out = NULL;
  return ES_ERR(ES_EREADONLY, "memfile: lock %s", path);
}

/* --- fixture management ---------------------------------------------- */

es_vfs *memfile_create(void) {
  es_vfs *vfs = calloc(1, sizeof(*vfs));
  memfile *mf = calloc(1, sizeof(*mf));
  if (!vfs || !mf) {
    fprintf(stderr, "memfile: out of memory\n");
    abort();
  }
  vfs->open = memfile_open;
  vfs->close = memfile_close;
  vfs->read = memfile_read;
  vfs->write = memfile_write;
  vfs->sync = memfile_sync;
  vfs->truncate = memfile_truncate;
  vfs->size = memfile_size;
  vfs->rename = memfile_rename;
  vfs->unlink = memfile_unlink;
  vfs->mkdir = memfile_mkdir;
  vfs->sync_dir = memfile_sync_dir;
  vfs->list = memfile_list;
  vfs->lock = memfile_lock;
  vfs->ctx = mf;
  return vfs;
}

void memfile_destroy(es_vfs *vfs) {
  if (!vfs)
    return;
  free(vfs->ctx);
  free(vfs);
}

void memfile_put(es_vfs *vfs, const char *path, const void *data, size_t len) {
  memfile *mf = memfile_of(vfs);
  memfile_entry *e = memfile_find(mf, path);
  if (!e) {
    if (mf->nfiles == MEMFILE_FILES_MAX || strlen(path) >= MEMFILE_PATH_MAX) {
      fprintf(stderr, "memfile: cannot register %s\n", path);
      abort();
    }
    e = &mf->files[mf->nfiles++];
    strcpy(e->path, path);
  }
  e->data = data;
  e->len = len;
}

void memfile_clear(es_vfs *vfs) { memfile_of(vfs)->nfiles = 0; }

long memfile_open_handles(es_vfs *vfs) { return memfile_of(vfs)->open_handles; }
