/*
 * dest.c -- an export's destination: a local directory or an object
 * store behind one interface (dest.h: the essay and the invariants).
 */
#include "export/dest.h"

#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "replicate/replicate.h"

/* ---- the memory file ---------------------------------------------------- */

static int xb_open(es_vfs *vfs, const char *path, int flags, es_file **out) {
  (void)path;
  (void)flags;
  es_xbuf *x = vfs->ctx;
  x->buf.len = 0;
  *out = (es_file *)x;
  return ES_OK;
}

static int xb_close(es_vfs *vfs, es_file *f) {
  (void)vfs;
  (void)f;
  return ES_OK;
}

static int xb_write(es_vfs *vfs, es_file *f, const void *p, size_t n,
                    uint64_t off) {
  (void)f;
  es_xbuf *x = vfs->ctx;
  if (off + n > x->buf.len) {
    ES_TRY(es__buf_reserve(&x->buf, (size_t)(off + n) - x->buf.len));
    if (off > x->buf.len)
      memset(x->buf.data + x->buf.len, 0, (size_t)off - x->buf.len);
    x->buf.len = (size_t)(off + n);
  }
  memcpy(x->buf.data + off, p, n);
  return ES_OK;
}

static int xb_sync(es_vfs *vfs, es_file *f) {
  (void)vfs;
  (void)f;
  return ES_OK;
}

static int xb_size(es_vfs *vfs, es_file *f, uint64_t *size_out) {
  (void)f;
  *size_out = ((es_xbuf *)vfs->ctx)->buf.len;
  return ES_OK;
}

void es__xbuf_init(es_xbuf *x) {
  memset(x, 0, sizeof *x);
  x->vfs.open = xb_open;
  x->vfs.close = xb_close;
  x->vfs.write = xb_write;
  x->vfs.sync = xb_sync;
  x->vfs.size = xb_size;
  x->vfs.ctx = x;
}

void es__xbuf_free(es_xbuf *x) { es__buf_free(&x->buf); }

/* ---- opening -------------------------------------------------------------
 */

static int dest_new(es_xdest **d_out) {
  *d_out = es__calloc(1, sizeof **d_out);
  return *d_out ? ES_OK : ES_NOMEM_BKPT();
}

int es__dest_wrap(es_objstore *os, const char *prefix, es_xdest **d_out) {
  size_t n = strlen(prefix);
  if (n + 2 > sizeof((*d_out)->root))
    return ES_INVAL_BKPT("export: key prefix too long");
  ES_TRY(dest_new(d_out));
  (*d_out)->os = os;
  snprintf((*d_out)->root, sizeof((*d_out)->root), "%s%s", prefix,
           n && prefix[n - 1] != '/' ? "/" : "");
  return ES_OK;
}

int es__dest_open(const char *url, const char *endpoint, const char *region,
                  es_vfs *vfs, es_xdest **d_out) {
  *d_out = NULL;
  if (!url || !url[0])
    return ES_INVAL_BKPT("export: no destination");
  if (strncmp(url, "s3://", 5) != 0) {
    if (strlen(url) >= ES_PATH_MAX - 256)
      return ES_INVAL_BKPT("export: out_dir too long");
    ES_TRY(dest_new(d_out));
    (*d_out)->vfs = vfs;
    snprintf((*d_out)->root, sizeof((*d_out)->root), "%s", url);
    return ES_OK;
  }
  /* The URL's prefix is the S3 client's key prefix (es_replica_s3_new);
   * keys below it are the partitions' relative paths. */
  es_replica_config cfg;
  es_replica_config_init(&cfg);
  cfg.url = url;
  cfg.endpoint = endpoint;
  cfg.region = region;
  es_replica *rep = NULL;
  ES_TRY(es_replica_s3_new(&cfg, &rep));
  int rc = es__dest_wrap(rep->os, "", d_out);
  if (rc != ES_OK) {
    es_replica_free(rep);
    return rc;
  }
  (*d_out)->owns = rep;
  return ES_OK;
}

void es__dest_close(es_xdest *d) {
  if (!d)
    return;
  es_replica_free(d->owns);
  es__free(d);
}

/* ---- files ---------------------------------------------------------------
 */

/* root + rel + "/" + name (name may be ""), a path or a key. */
static int dest_name(const es_xdest *d, const char *rel, const char *name,
                     char *out) {
  int n = d->os ? snprintf(out, ES_PATH_MAX, "%s%s/%s", d->root, rel, name)
                : snprintf(out, ES_PATH_MAX, "%s/%s/%s", d->root, rel, name);
  if (n < 0 || n >= ES_PATH_MAX || (d->os && n > ES_OBJ_KEY_MAX))
    return ES_INVAL_BKPT("export: path of %s/%s too long", rel, name);
  if (!name[0])
    out[n - 1] = 0; /* no trailing '/' for a directory */
  return ES_OK;
}

int es__dest_read(es_xdest *d, const char *rel, const char *name,
                  uint8_t **buf_out, size_t *len_out) {
  char path[ES_PATH_MAX];
  ES_TRY(dest_name(d, rel, name, path));
  if (!d->os)
    return es__io_read_all(d->vfs, path, buf_out, len_out);
  return d->os->get(d->os, path, 0, ES_OBJ_TO_END, buf_out, len_out, NULL);
}

typedef struct list_ctx {
  es_list_fn fn;
  void *ud;
  size_t skip; /* the prefix's length */
} list_ctx;

static int list_key(void *ud, const char *key, const es_objinfo *info) {
  (void)info;
  list_ctx *c = ud;
  const char *name = key + c->skip;
  if (strchr(name, '/'))
    return ES_OK; /* deeper than the partition: not its file */
  return c->fn(c->ud, name);
}

int es__dest_list(es_xdest *d, const char *rel, es_list_fn fn, void *ud) {
  char path[ES_PATH_MAX];
  ES_TRY(dest_name(d, rel, "", path));
  if (!d->os) {
    int rc = d->vfs->list(d->vfs, path, fn, ud);
    return rc == ES_ENOTFOUND ? ES_OK : rc;
  }
  size_t n = strlen(path);
  path[n++] = '/';
  path[n] = 0;
  list_ctx c = {fn, ud, n};
  return d->os->list(d->os, path, NULL, list_key, &c);
}

static int list_key_deep(void *ud, const char *key, const es_objinfo *info) {
  (void)info;
  list_ctx *c = ud;
  return c->fn(c->ud, key + c->skip);
}

int es__dest_list_deep(es_xdest *d, const char *rel, es_list_fn fn, void *ud) {
  char path[ES_PATH_MAX];
  ES_TRY(dest_name(d, rel, "", path));
  if (!d->os) {
    int rc = d->vfs->list(d->vfs, path, fn, ud);
    return rc == ES_ENOTFOUND ? ES_OK : rc;
  }
  size_t n = strlen(path);
  path[n++] = '/';
  path[n] = 0;
  list_ctx c = {fn, ud, n};
  return d->os->list(d->os, path, NULL, list_key_deep, &c);
}

int es__dest_mkdirs(es_xdest *d, const char *rel) {
  if (d->os)
    return ES_OK;
  char path[ES_PATH_MAX];
  ES_TRY(dest_name(d, rel, "", path));
  size_t n = strlen(path);
  for (size_t i = 1; i <= n; i++) { /* mkdir -p: each missing parent too */
    if (path[i] != '/' && path[i] != 0)
      continue;
    char c = path[i];
    path[i] = 0;
    ES_TRY(d->vfs->mkdir(d->vfs, path));
    path[i] = c;
  }
  return ES_OK;
}

int es__dest_part_path(es_xdest *d, es_xbuf *x, const char *rel,
                       const char *name, es_vfs **vfs_out, char *path) {
  char tmp[ES_PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", name) >= (int)sizeof tmp)
    return ES_INVAL_BKPT("export: part name too long");
  ES_TRY(dest_name(d, rel, tmp, path));
  *vfs_out = d->os ? &x->vfs : d->vfs;
  return ES_OK;
}

int es__dest_part_commit(es_xdest *d, es_xbuf *x, const char *rel,
                         const char *name, const char *path) {
  char to[ES_PATH_MAX];
  ES_TRY(dest_name(d, rel, name, to));
  if (!d->os)
    return d->vfs->rename(d->vfs, path, to);
  int rc = d->os->put(d->os, to, x->buf.data, x->buf.len, ES_OBJ_PUT_ALWAYS,
                      NULL, NULL);
  x->buf.len = 0;
  if (x->buf.cap > (64u << 20)) /* keep a typical part's room, not a huge one */
    es__buf_free(&x->buf);
  return rc;
}

int es__dest_sync(es_xdest *d, const char *rel) {
  if (d->os)
    return ES_OK;
  char path[ES_PATH_MAX];
  ES_TRY(dest_name(d, rel, "", path));
  return d->vfs->sync_dir(d->vfs, path);
}

int es__dest_put_atomic(es_xdest *d, const char *rel, const char *name,
                        const void *buf, size_t len) {
  char path[ES_PATH_MAX];
  if (!d->os) {
    ES_TRY(dest_name(d, rel, "", path));
    return es__io_write_atomic(d->vfs, path, name, buf, len);
  }
  ES_TRY(dest_name(d, rel, name, path));
  return d->os->put(d->os, path, buf, len, ES_OBJ_PUT_ALWAYS, NULL, NULL);
}

int es__dest_remove(es_xdest *d, const char *rel, const char *name) {
  char path[ES_PATH_MAX];
  ES_TRY(dest_name(d, rel, name, path));
  if (d->os)
    return d->os->del(d->os, path);
  int rc = d->vfs->unlink(d->vfs, path);
  return rc == ES_ENOTFOUND ? ES_OK : rc;
}
