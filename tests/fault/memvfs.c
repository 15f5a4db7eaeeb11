/*
 * memvfs.c -- the in-memory crash-simulating vfs (see memvfs.h).
 *
 * The model is inode-like: a directory node holds two entry tables, the
 * current one (what lookups see) and the durable one (a copy taken by
 * sync_dir); a file node holds two byte buffers, current and durable (a
 * copy taken by sync).  Paths are resolved component by component from the
 * root, so renaming a directory moves its whole subtree, as on a real file
 * system.
 *
 * Invariants:
 *
 *  1. Nodes are never freed before memvfs_destroy: they are linked on
 *     mv->all.  Stale handles and durable tables may point at nodes that no
 *     current path reaches, and that must stay safe.
 *  2. A handle is live when its generation equals mv->gen; memvfs_crash
 *     bumps mv->gen, so every pre-crash handle fails with ES_EIO.
 *  3. Every method runs under mv->mu, except the callbacks of list, which
 *     run after the lock is dropped (the library may call the vfs from
 *     them).
 *  4. A counted call that fails by injection changes nothing, except a
 *     write in MEMVFS_SHORT_HALF mode, which writes the first half first.
 */
#include "memvfs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MV_SECTOR 512

typedef struct mv_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
} mv_buf;

typedef struct mv_node mv_node;

typedef struct mv_entry {
  char *name;
  mv_node *node;
} mv_entry;

typedef struct mv_table {
  mv_entry *v;
  size_t n;
  size_t cap;
} mv_table;

struct mv_node {
  int is_dir;
  mv_buf cur, dur;   /* files */
  mv_table cur_ents; /* directories: what lookups see */
  mv_table dur_ents; /* directories: as of the last sync_dir */
  mv_node *next_all; /* every node ever made (invariant 1) */
};

struct es_file {
  mv_node *node;
  uint64_t gen;
  int writable;
  int is_lock;
  char *path;
};

typedef struct mv_lockent {
  char *path;
  es_file *holder;
} mv_lockent;

typedef struct memvfs {
  es_vfs vfs; /* first: an es_vfs * is a memvfs * */
  pthread_mutex_t mu;
  mv_node *root;
  mv_node *all;
  uint64_t gen;
  unsigned long count; /* counted calls since the last arming */
  unsigned long reads;
  unsigned long faults_hit;
  unsigned long fail_k; /* 0: disarmed */
  int fail_err;
  int fail_persistent;
  int fail_frozen; /* crash_at: no short writes */
  int short_mode;
  long handles_open;
  uint64_t quota; /* memvfs_set_quota; 0: none */
  unsigned long quota_refusals;
  mv_lockent *locks;
  size_t locks_n, locks_cap;
} memvfs;

/* ----------------------------------------------------------------------
 * Small helpers (memory failures abort: this is a test fixture)
 * ---------------------------------------------------------------------- */

static void *mv_xrealloc(void *p, size_t size) {
  void *q = realloc(p, size ? size : 1);
  if (q == NULL) {
    fprintf(stderr, "memvfs: out of memory\n");
    abort();
  }
  return q;
}

static char *mv_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = mv_xrealloc(NULL, n);
  memcpy(d, s, n);
  return d;
}

static memvfs *mv_of(es_vfs *vfs) { return (memvfs *)vfs->ctx; }

/* Grows b to hold at least need bytes, zero-filling new room. */
static void buf_reserve(mv_buf *b, size_t need) {
  if (need <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  b->data = mv_xrealloc(b->data, cap);
  memset(b->data + b->cap, 0, cap - b->cap);
  b->cap = cap;
}

/* Sets the length of b, zero-filling when it grows. */
static void buf_resize(mv_buf *b, size_t len) {
  buf_reserve(b, len);
  if (len > b->len)
    memset(b->data + b->len, 0, len - b->len);
  b->len = len;
}

static void buf_copy(mv_buf *dst, const mv_buf *src) {
  buf_reserve(dst, src->len);
  if (src->len)
    memcpy(dst->data, src->data, src->len);
  dst->len = src->len;
}

static void table_free(mv_table *t) {
  for (size_t i = 0; i < t->n; i++)
    free(t->v[i].name);
  free(t->v);
  memset(t, 0, sizeof *t);
}

static void table_copy(mv_table *dst, const mv_table *src) {
  table_free(dst);
  dst->v = mv_xrealloc(NULL, (src->n ? src->n : 1) * sizeof *dst->v);
  dst->cap = src->n ? src->n : 1;
  for (size_t i = 0; i < src->n; i++) {
    dst->v[i].name = mv_xstrdup(src->v[i].name);
    dst->v[i].node = src->v[i].node;
  }
  dst->n = src->n;
}

static long table_find(const mv_table *t, const char *name) {
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->v[i].name, name) == 0)
      return (long)i;
  return -1;
}

static void table_set(mv_table *t, const char *name, mv_node *node) {
  long i = table_find(t, name);
  if (i >= 0) {
    t->v[i].node = node;
    return;
  }
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 8;
    t->v = mv_xrealloc(t->v, t->cap * sizeof *t->v);
  }
  t->v[t->n].name = mv_xstrdup(name);
  t->v[t->n].node = node;
  t->n++;
}

static void table_remove(mv_table *t, const char *name) {
  long i = table_find(t, name);
  if (i < 0)
    return;
  free(t->v[i].name);
  t->v[i] = t->v[t->n - 1];
  t->n--;
}

static mv_node *node_new(memvfs *mv, int is_dir) {
  mv_node *n = mv_xrealloc(NULL, sizeof *n);
  memset(n, 0, sizeof *n);
  n->is_dir = is_dir;
  n->next_all = mv->all;
  mv->all = n;
  return n;
}

/* ----------------------------------------------------------------------
 * Path resolution
 * ---------------------------------------------------------------------- */

/* Walks path from the root through current entries.  Returns the node or
 * NULL when a component is missing or a non-directory is crossed. */
static mv_node *path_lookup(memvfs *mv, const char *path) {
  mv_node *cur = mv->root;
  const char *p = path;
  char name[ES_PATH_MAX];
  while (*p) {
    while (*p == '/')
      p++;
    if (!*p)
      break;
    size_t n = strcspn(p, "/");
    if (n >= sizeof name || !cur->is_dir)
      return NULL;
    memcpy(name, p, n);
    name[n] = '\0';
    long i = table_find(&cur->cur_ents, name);
    if (i < 0)
      return NULL;
    cur = cur->cur_ents.v[i].node;
    p += n;
  }
  return cur;
}

/* Finds the directory that holds path's last component and copies that
 * component into leaf.  NULL when the parent is missing or not a
 * directory, or when path has no last component ("/"). */
static mv_node *path_parent(memvfs *mv, const char *path, char *leaf,
                            size_t cap) {
  size_t len = strlen(path);
  while (len > 0 && path[len - 1] == '/')
    len--;
  if (len == 0 || len >= ES_PATH_MAX)
    return NULL;
  size_t start = len;
  while (start > 0 && path[start - 1] != '/')
    start--;
  if (len - start >= cap)
    return NULL;
  memcpy(leaf, path + start, len - start);
  leaf[len - start] = '\0';
  char dir[ES_PATH_MAX];
  memcpy(dir, path, start);
  dir[start] = '\0';
  mv_node *parent = path_lookup(mv, dir);
  return parent != NULL && parent->is_dir ? parent : NULL;
}

/* ----------------------------------------------------------------------
 * Fault injection
 * ---------------------------------------------------------------------- */

/* Counts one state-changing call; returns 0 to let it run or the status
 * it must fail with. */
static int mv_fault(memvfs *mv) {
  mv->count++;
  if (mv->fail_k == 0)
    return 0;
  if (mv->count == mv->fail_k ||
      (mv->fail_persistent && mv->count > mv->fail_k)) {
    mv->faults_hit++;
    return mv->fail_err;
  }
  return 0;
}

static int mv_injected(int rc, const char *op, const char *path) {
  return ES_ERR(rc, "memvfs: injected %s failure on %s (%s)", op,
                path ? path : "?", es_strerror(rc));
}

/* Checks that a handle belongs to the current boot (invariant 2). */
static int mv_live(memvfs *mv, es_file *f, const char *op) {
  if (f == NULL)
    return ES_INVAL_BKPT("memvfs: %s on a NULL handle", op);
  if (f->gen != mv->gen)
    return ES_ERR(ES_EIO, "memvfs: %s on %s: handle predates a crash", op,
                  f->path);
  return ES_OK;
}

static es_file *handle_new(memvfs *mv, mv_node *node, const char *path,
                           int writable, int is_lock) {
  es_file *f = mv_xrealloc(NULL, sizeof *f);
  f->node = node;
  f->gen = mv->gen;
  f->writable = writable;
  f->is_lock = is_lock;
  f->path = mv_xstrdup(path);
  mv->handles_open++;
  return f;
}

/* ----------------------------------------------------------------------
 * The es_vfs methods
 * ---------------------------------------------------------------------- */

static int mv_open_locked(memvfs *mv, const char *path, int flags,
                          es_file **file_out) {
  char leaf[ES_PATH_MAX];
  mv_node *parent = path_parent(mv, path, leaf, sizeof leaf);
  mv_node *node = path_lookup(mv, path);
  int mutating = (flags & (ES_IO_CREATE | ES_IO_TRUNC)) != 0;
  if (mutating) {
    int rc = mv_fault(mv);
    if (rc < 0)
      return mv_injected(rc, "open", path);
  }
  if (node != NULL && node->is_dir)
    return ES_INVAL_BKPT("memvfs: open %s: is a directory", path);
  if (node != NULL && (flags & ES_IO_CREATE) && (flags & ES_IO_EXCL))
    return ES_INVAL_BKPT("memvfs: open %s: exists (EXCL)", path);
  if (node == NULL) {
    if (!(flags & ES_IO_CREATE))
      return ES_ERR(ES_ENOTFOUND, "memvfs: open %s: no such file", path);
    if (parent == NULL)
      return ES_ERR(ES_ENOTFOUND, "memvfs: open %s: no parent directory", path);
    node = node_new(mv, 0);
    table_set(&parent->cur_ents, leaf, node);
  }
  if (flags & ES_IO_TRUNC)
    buf_resize(&node->cur, 0);
  *file_out = handle_new(mv, node, path, (flags & ES_IO_WRITE) != 0, 0);
  return ES_OK;
}

static int mv_open(es_vfs *vfs, const char *path, int flags,
                   es_file **file_out) {
  memvfs *mv = mv_of(vfs);
  *file_out = NULL;
  pthread_mutex_lock(&mv->mu);
  int rc = mv_open_locked(mv, path, flags, file_out);
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

static int mv_close(es_vfs *vfs, es_file *file) {
  memvfs *mv = mv_of(vfs);
  if (file == NULL)
    return ES_OK;
  pthread_mutex_lock(&mv->mu);
  if (file->is_lock) {
    for (size_t i = 0; i < mv->locks_n; i++) {
      if (mv->locks[i].holder == file) {
        free(mv->locks[i].path);
        mv->locks[i] = mv->locks[--mv->locks_n];
        break;
      }
    }
  }
  mv->handles_open--;
  pthread_mutex_unlock(&mv->mu);
  free(file->path);
  free(file);
  return ES_OK;
}

static int mv_read(es_vfs *vfs, es_file *file, void *buf, size_t len,
                   uint64_t offset, size_t *got_out) {
  memvfs *mv = mv_of(vfs);
  *got_out = 0;
  pthread_mutex_lock(&mv->mu);
  mv->reads++;
  int rc = mv_live(mv, file, "read");
  if (rc == ES_OK) {
    const mv_buf *b = &file->node->cur;
    if (offset < b->len) {
      size_t n = b->len - (size_t)offset;
      if (n > len)
        n = len;
      memcpy(buf, b->data + offset, n);
      *got_out = n;
    }
  }
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

/* Copies len bytes into the current content at offset, growing it. */
static void node_write(mv_node *node, const void *buf, size_t len,
                       uint64_t offset) {
  size_t end = (size_t)offset + len;
  if (end > node->cur.len)
    buf_resize(&node->cur, end);
  if (len)
    memcpy(node->cur.data + offset, buf, len);
}

/* Bytes of the files reachable from dir in the current namespace. */
static uint64_t mv_used_under(const mv_node *dir) {
  uint64_t n = 0;
  for (size_t i = 0; i < dir->cur_ents.n; i++) {
    const mv_node *c = dir->cur_ents.v[i].node;
    n += c->is_dir ? mv_used_under(c) : c->cur.len;
  }
  return n;
}

/* Whether a write of len bytes at offset would pass the quota. */
static int mv_over_quota(memvfs *mv, const mv_node *node, size_t len,
                         uint64_t offset) {
  if (mv->quota == 0 || offset + len <= node->cur.len)
    return 0;
  return mv_used_under(mv->root) + (offset + len - node->cur.len) > mv->quota;
}

static int mv_write(es_vfs *vfs, es_file *file, const void *buf, size_t len,
                    uint64_t offset) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  int rc = mv_live(mv, file, "write");
  if (rc == ES_OK && !file->writable)
    rc = ES_INVAL_BKPT("memvfs: write to read-only handle of %s", file->path);
  if (rc == ES_OK) {
    rc = mv_fault(mv);
    if (rc == ES_OK && mv_over_quota(mv, file->node, len, offset)) {
      mv->quota_refusals++;
      rc = ES_ERR(ES_ENOSPC, "memvfs: %s: disk full (quota %llu bytes)",
                  file->path, (unsigned long long)mv->quota);
    } else if (rc < 0) {
      if (mv->short_mode == MEMVFS_SHORT_HALF && !mv->fail_frozen)
        node_write(file->node, buf, len / 2, offset);
      rc = mv_injected(rc, "write", file->path);
    } else {
      node_write(file->node, buf, len, offset);
    }
  }
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

static int mv_sync(es_vfs *vfs, es_file *file) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  int rc = mv_live(mv, file, "sync");
  if (rc == ES_OK) {
    rc = mv_fault(mv);
    if (rc < 0)
      rc = mv_injected(rc, "sync", file->path);
    else
      buf_copy(&file->node->dur, &file->node->cur);
  }
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

static int mv_truncate(es_vfs *vfs, es_file *file, uint64_t size) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  int rc = mv_live(mv, file, "truncate");
  if (rc == ES_OK && !file->writable)
    rc =
        ES_INVAL_BKPT("memvfs: truncate of read-only handle of %s", file->path);
  if (rc == ES_OK) {
    rc = mv_fault(mv);
    if (rc < 0)
      rc = mv_injected(rc, "truncate", file->path);
    else
      buf_resize(&file->node->cur, (size_t)size);
  }
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

static int mv_size(es_vfs *vfs, es_file *file, uint64_t *size_out) {
  memvfs *mv = mv_of(vfs);
  *size_out = 0;
  pthread_mutex_lock(&mv->mu);
  mv->reads++;
  int rc = mv_live(mv, file, "size");
  if (rc == ES_OK)
    *size_out = file->node->cur.len;
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

static int mv_rename_locked(memvfs *mv, const char *from, const char *to) {
  char from_leaf[ES_PATH_MAX], to_leaf[ES_PATH_MAX];
  int rc = mv_fault(mv);
  if (rc < 0)
    return mv_injected(rc, "rename", from);
  mv_node *from_dir = path_parent(mv, from, from_leaf, sizeof from_leaf);
  mv_node *node = from_dir ? path_lookup(mv, from) : NULL;
  if (node == NULL)
    return ES_ERR(ES_ENOTFOUND, "memvfs: rename %s: no such file", from);
  mv_node *to_dir = path_parent(mv, to, to_leaf, sizeof to_leaf);
  if (to_dir == NULL)
    return ES_ERR(ES_ENOTFOUND, "memvfs: rename to %s: no parent", to);
  mv_node *target = path_lookup(mv, to);
  if (target == node)
    return ES_OK;
  if (target != NULL && (target->is_dir || node->is_dir))
    return ES_INVAL_BKPT("memvfs: rename %s over %s: directory", from, to);
  table_remove(&from_dir->cur_ents, from_leaf);
  table_set(&to_dir->cur_ents, to_leaf, node);
  return ES_OK;
}

static int mv_rename(es_vfs *vfs, const char *from, const char *to) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  int rc = mv_rename_locked(mv, from, to);
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

static int mv_unlink_locked(memvfs *mv, const char *path) {
  char leaf[ES_PATH_MAX];
  int rc = mv_fault(mv);
  if (rc < 0)
    return mv_injected(rc, "unlink", path);
  mv_node *dir = path_parent(mv, path, leaf, sizeof leaf);
  mv_node *node = dir ? path_lookup(mv, path) : NULL;
  if (node == NULL)
    return ES_ERR(ES_ENOTFOUND, "memvfs: unlink %s: no such file", path);
  if (node->is_dir && node->cur_ents.n > 0)
    return ES_INVAL_BKPT("memvfs: unlink %s: directory not empty", path);
  table_remove(&dir->cur_ents, leaf);
  return ES_OK;
}

static int mv_unlink(es_vfs *vfs, const char *path) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  int rc = mv_unlink_locked(mv, path);
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

static int mv_mkdir_locked(memvfs *mv, const char *path) {
  char leaf[ES_PATH_MAX];
  int rc = mv_fault(mv);
  if (rc < 0)
    return mv_injected(rc, "mkdir", path);
  mv_node *node = path_lookup(mv, path);
  if (node != NULL)
    return node->is_dir ? ES_OK
                        : ES_INVAL_BKPT("memvfs: mkdir %s: is a file", path);
  mv_node *parent = path_parent(mv, path, leaf, sizeof leaf);
  if (parent == NULL)
    return ES_ERR(ES_ENOTFOUND, "memvfs: mkdir %s: no parent", path);
  table_set(&parent->cur_ents, leaf, node_new(mv, 1));
  return ES_OK;
}

static int mv_mkdir(es_vfs *vfs, const char *path) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  int rc = mv_mkdir_locked(mv, path);
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

static int mv_sync_dir(es_vfs *vfs, const char *path) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  int rc = mv_fault(mv);
  if (rc < 0) {
    rc = mv_injected(rc, "sync_dir", path);
  } else {
    mv_node *dir = path_lookup(mv, path);
    if (dir == NULL || !dir->is_dir)
      rc = ES_ERR(ES_ENOTFOUND, "memvfs: sync_dir %s: no such directory", path);
    else
      table_copy(&dir->dur_ents, &dir->cur_ents);
  }
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

static int mv_list(es_vfs *vfs, const char *path, es_list_fn fn, void *ud) {
  memvfs *mv = mv_of(vfs);
  char **names = NULL;
  size_t n = 0;
  pthread_mutex_lock(&mv->mu);
  mv->reads++;
  mv_node *dir = path_lookup(mv, path);
  if (dir == NULL || !dir->is_dir) {
    pthread_mutex_unlock(&mv->mu);
    return ES_ERR(ES_ENOTFOUND, "memvfs: list %s: no such directory", path);
  }
  n = dir->cur_ents.n;
  names = mv_xrealloc(NULL, (n ? n : 1) * sizeof *names);
  for (size_t i = 0; i < n; i++)
    names[i] = mv_xstrdup(dir->cur_ents.v[i].name);
  pthread_mutex_unlock(&mv->mu);
  /* Invariant 3: callbacks run unlocked; they may call back in. */
  int rc = ES_OK;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = fn(ud, names[i]);
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return rc;
}

static int mv_lock_locked(memvfs *mv, const char *path, es_file **file_out) {
  char leaf[ES_PATH_MAX];
  mv_node *node = path_lookup(mv, path);
  if (node != NULL && node->is_dir)
    return ES_INVAL_BKPT("memvfs: lock %s: is a directory", path);
  for (size_t i = 0; i < mv->locks_n; i++)
    if (strcmp(mv->locks[i].path, path) == 0)
      return ES_ERR(ES_EBUSY, "memvfs: lock %s: held", path);
  if (node == NULL) {
    mv_node *parent = path_parent(mv, path, leaf, sizeof leaf);
    if (parent == NULL)
      return ES_ERR(ES_ENOTFOUND, "memvfs: lock %s: no parent", path);
    node = node_new(mv, 0);
    table_set(&parent->cur_ents, leaf, node);
  }
  es_file *f = handle_new(mv, node, path, 1, 1);
  if (mv->locks_n == mv->locks_cap) {
    mv->locks_cap = mv->locks_cap ? mv->locks_cap * 2 : 4;
    mv->locks = mv_xrealloc(mv->locks, mv->locks_cap * sizeof *mv->locks);
  }
  mv->locks[mv->locks_n].path = mv_xstrdup(path);
  mv->locks[mv->locks_n].holder = f;
  mv->locks_n++;
  *file_out = f;
  return ES_OK;
}

static int mv_lock(es_vfs *vfs, const char *path, es_file **file_out) {
  memvfs *mv = mv_of(vfs);
  *file_out = NULL;
  pthread_mutex_lock(&mv->mu);
  int rc = mv_lock_locked(mv, path, file_out);
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

/* ----------------------------------------------------------------------
 * Lifecycle and crash
 * ---------------------------------------------------------------------- */

/*
 * Makes a fresh in-memory file system with only "/" in it, durable.
 */
es_vfs *memvfs_create(void) {
  memvfs *mv = mv_xrealloc(NULL, sizeof *mv);
  memset(mv, 0, sizeof *mv);
  pthread_mutex_init(&mv->mu, NULL);
  mv->root = node_new(mv, 1);
  mv->gen = 1;
  mv->fail_err = ES_EIO;
  mv->vfs.open = mv_open;
  mv->vfs.close = mv_close;
  mv->vfs.read = mv_read;
  mv->vfs.write = mv_write;
  mv->vfs.sync = mv_sync;
  mv->vfs.truncate = mv_truncate;
  mv->vfs.size = mv_size;
  mv->vfs.rename = mv_rename;
  mv->vfs.unlink = mv_unlink;
  mv->vfs.mkdir = mv_mkdir;
  mv->vfs.sync_dir = mv_sync_dir;
  mv->vfs.list = mv_list;
  mv->vfs.lock = mv_lock;
  mv->vfs.ctx = mv;
  return &mv->vfs;
}

/*
 * Frees every node and the vfs itself; open handles are left to leak on
 * purpose (memvfs.h).
 */
void memvfs_destroy(es_vfs *vfs) {
  if (vfs == NULL)
    return;
  memvfs *mv = mv_of(vfs);
  mv_node *n = mv->all;
  while (n != NULL) {
    mv_node *next = n->next_all;
    free(n->cur.data);
    free(n->dur.data);
    table_free(&n->cur_ents);
    table_free(&n->dur_ents);
    free(n);
    n = next;
  }
  for (size_t i = 0; i < mv->locks_n; i++)
    free(mv->locks[i].path);
  free(mv->locks);
  pthread_mutex_destroy(&mv->mu);
  free(mv);
}

static uint64_t mv_rand(uint64_t *state) {
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *state = x;
  return x;
}

/* The torn version of a file's crash: sectors that differ between current
 * and durable content independently keep either version. */
static void node_crash_torn(mv_node *n, uint64_t *rng) {
  mv_buf out = {0};
  size_t cur_len = n->cur.len, dur_len = n->dur.len;
  size_t max_len = cur_len > dur_len ? cur_len : dur_len;
  size_t len = dur_len;
  if (cur_len < dur_len && (mv_rand(rng) & 1))
    len = cur_len; /* the unsynced truncation reached the disk */
  buf_copy(&out, &n->dur);
  for (size_t lo = 0; lo < max_len; lo += MV_SECTOR) {
    size_t hi = lo + MV_SECTOR < max_len ? lo + MV_SECTOR : max_len;
    int differs = hi > cur_len || hi > dur_len ||
                  memcmp(n->cur.data + lo, n->dur.data + lo, hi - lo) != 0;
    if (!differs || !(mv_rand(rng) & 1) || lo >= cur_len)
      continue;
    size_t top = hi < cur_len ? hi : cur_len;
    if (top > out.len)
      buf_resize(&out, top);
    memcpy(out.data + lo, n->cur.data + lo, top - lo);
    if (top > len)
      len = top;
  }
  buf_resize(&out, len);
  free(n->cur.data);
  n->cur = out;
  buf_copy(&n->dur, &n->cur);
}

static void mv_crash(memvfs *mv, int torn, uint64_t seed) {
  uint64_t rng = seed * 2654435761u + 0x9e3779b97f4a7c15ull;
  if (rng == 0)
    rng = 1;
  pthread_mutex_lock(&mv->mu);
  for (mv_node *n = mv->all; n != NULL; n = n->next_all) {
    if (n->is_dir)
      table_copy(&n->cur_ents, &n->dur_ents);
    else if (torn)
      node_crash_torn(n, &rng);
    else
      buf_copy(&n->cur, &n->dur);
  }
  for (size_t i = 0; i < mv->locks_n; i++)
    free(mv->locks[i].path);
  mv->locks_n = 0;
  mv->gen++;
  pthread_mutex_unlock(&mv->mu);
}

/*
 * Power cut: current state := durable state (memvfs.h, point 1).
 */
void memvfs_crash(es_vfs *vfs) { mv_crash(mv_of(vfs), 0, 0); }

/*
 * Power cut with torn sectors (memvfs.h, point 2).
 */
void memvfs_crash_torn(es_vfs *vfs, uint64_t seed) {
  mv_crash(mv_of(vfs), 1, seed);
}

/*
 * Arms the k-th counted call (and later ones if persistent) to fail.
 */
void memvfs_fail_at(es_vfs *vfs, unsigned long k, int errcode, int persistent) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  mv->count = 0;
  mv->fail_k = k;
  mv->fail_err = errcode;
  mv->fail_persistent = persistent;
  mv->fail_frozen = 0;
  pthread_mutex_unlock(&mv->mu);
}

/*
 * Arms a power cut at the k-th counted call: everything from there on
 * fails without effect.
 */
void memvfs_crash_at(es_vfs *vfs, unsigned long k) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  mv->count = 0;
  mv->fail_k = k;
  mv->fail_err = ES_EIO;
  mv->fail_persistent = 1;
  mv->fail_frozen = 1;
  pthread_mutex_unlock(&mv->mu);
}

/*
 * Disarms faults; the counter keeps counting.
 */
void memvfs_clear_faults(es_vfs *vfs) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  mv->fail_k = 0;
  mv->fail_persistent = 0;
  mv->fail_frozen = 0;
  pthread_mutex_unlock(&mv->mu);
}

/*
 * Chooses whether a failing write writes its first half first.
 */
void memvfs_set_short_write(es_vfs *vfs, int mode) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  mv->short_mode = mode;
  pthread_mutex_unlock(&mv->mu);
}

/*
 * Counted calls since the last arming (or creation).
 */
unsigned long memvfs_count(es_vfs *vfs) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  unsigned long n = mv->count;
  pthread_mutex_unlock(&mv->mu);
  return n;
}

/*
 * Read-side calls since creation.
 */
unsigned long memvfs_reads(es_vfs *vfs) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  unsigned long n = mv->reads;
  pthread_mutex_unlock(&mv->mu);
  return n;
}

/*
 * Calls failed by injection since creation.
 */
unsigned long memvfs_faults_hit(es_vfs *vfs) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  unsigned long n = mv->faults_hit;
  pthread_mutex_unlock(&mv->mu);
  return n;
}

/*
 * Handles not yet closed, so tests can catch descriptor leaks.
 */
long memvfs_open_handles(es_vfs *vfs) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  long n = mv->handles_open;
  pthread_mutex_unlock(&mv->mu);
  return n;
}

/*
 * Creates a directory that is durable at once, entry and all.
 */
int memvfs_mkdir_durable(es_vfs *vfs, const char *path) {
  memvfs *mv = mv_of(vfs);
  char leaf[ES_PATH_MAX];
  int rc = ES_OK;
  pthread_mutex_lock(&mv->mu);
  mv_node *parent = path_parent(mv, path, leaf, sizeof leaf);
  mv_node *node = path_lookup(mv, path);
  if (parent == NULL) {
    rc = ES_ENOTFOUND;
  } else if (node != NULL && !node->is_dir) {
    rc = ES_EINVAL;
  } else {
    if (node == NULL) {
      node = node_new(mv, 1);
      table_set(&parent->cur_ents, leaf, node);
    }
    table_set(&parent->dur_ents, leaf, node);
  }
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

/*
 * Copies every node's current state to its durable state.
 */
void memvfs_sync_all(es_vfs *vfs) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  for (mv_node *n = mv->all; n != NULL; n = n->next_all) {
    if (n->is_dir)
      table_copy(&n->dur_ents, &n->cur_ents);
    else
      buf_copy(&n->dur, &n->cur);
  }
  pthread_mutex_unlock(&mv->mu);
}

/*
 * Flips bits of one byte in both versions of a file (bit rot on disk).
 */
int memvfs_flip_byte(es_vfs *vfs, const char *path, uint64_t offset,
                     uint8_t mask) {
  memvfs *mv = mv_of(vfs);
  int rc = ES_OK;
  pthread_mutex_lock(&mv->mu);
  mv_node *node = path_lookup(mv, path);
  if (node == NULL || node->is_dir)
    rc = ES_ENOTFOUND;
  else if (offset >= node->cur.len)
    rc = ES_EINVAL;
  if (rc == ES_OK) {
    node->cur.data[offset] ^= mask;
    if (offset < node->dur.len)
      node->dur.data[offset] ^= mask;
  }
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

/*
 * The current size of the file at path.
 */
int memvfs_file_size(es_vfs *vfs, const char *path, uint64_t *size_out) {
  memvfs *mv = mv_of(vfs);
  int rc = ES_OK;
  *size_out = 0;
  pthread_mutex_lock(&mv->mu);
  mv_node *node = path_lookup(mv, path);
  if (node == NULL || node->is_dir)
    rc = ES_ENOTFOUND;
  else
    *size_out = node->cur.len;
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

/*
 * Reads a file's current bytes without going through a handle.
 */
int memvfs_peek(es_vfs *vfs, const char *path, uint64_t offset, void *buf,
                size_t len, size_t *got_out) {
  memvfs *mv = mv_of(vfs);
  int rc = ES_OK;
  *got_out = 0;
  pthread_mutex_lock(&mv->mu);
  mv_node *node = path_lookup(mv, path);
  if (node == NULL || node->is_dir) {
    rc = ES_ENOTFOUND;
  } else if (offset < node->cur.len) {
    size_t n = node->cur.len - (size_t)offset;
    if (n > len)
      n = len;
    memcpy(buf, node->cur.data + offset, n);
    *got_out = n;
  }
  pthread_mutex_unlock(&mv->mu);
  return rc;
}

/*
 * Whether anything exists at path right now.
 */
int memvfs_exists(es_vfs *vfs, const char *path) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  int found = path_lookup(mv, path) != NULL;
  pthread_mutex_unlock(&mv->mu);
  return found;
}

/* ----------------------------------------------------------------------
 * A disk of limited size
 * ---------------------------------------------------------------------- */

void memvfs_set_quota(es_vfs *vfs, uint64_t quota_bytes) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  mv->quota = quota_bytes;
  pthread_mutex_unlock(&mv->mu);
}

uint64_t memvfs_used(es_vfs *vfs) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  uint64_t n = mv_used_under(mv->root);
  pthread_mutex_unlock(&mv->mu);
  return n;
}

unsigned long memvfs_quota_refusals(es_vfs *vfs) {
  memvfs *mv = mv_of(vfs);
  pthread_mutex_lock(&mv->mu);
  unsigned long n = mv->quota_refusals;
  pthread_mutex_unlock(&mv->mu);
  return n;
}
