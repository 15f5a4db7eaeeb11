/*
 * verify.c -- es_inspect and es_verify: read-only walks over a data
 * directory that need no open handle (and take no lock), so an operator
 * can run them beside a live server.
 *
 * Both read the same structures recovery reads: ESDB, each tenant's
 * MANIFEST and the segments it lists, and each shard's WAL files.  verify
 * additionally reads every block of every segment and checks its
 * checksum.  A WAL file that is being appended to may end in a frame that
 * is still being written; like recovery, they accept an invalid frame at
 * the end of the newest file of a shard when nothing valid follows it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/event.h"
#include "base/mem.h"
#include "store/db.h"
#include "store/manifest.h"
#include "store/rollup.h"
#include "store/segment.h"
#include "store/wal.h"

typedef struct names {
  char **v;
  size_t n, cap;
} names;

static int names_add(void *ud, const char *name) {
  names *ns = ud;
  if (es__tenant_check(name) < 0) {
    es__error_clear();
    return 0;
  }
  ES_TRY(es__grow((void **)&ns->v, &ns->cap, ns->n + 1, sizeof(char *)));
  if (!(ns->v[ns->n] = es__strdup(name)))
    return ES_NOMEM_BKPT();
  ns->n++;
  return 0;
}

static int names_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(names *ns) {
  for (size_t i = 0; i < ns->n; i++)
    es__free(ns->v[i]);
  es__free(ns->v);
}

/* Lists tenant directories, sorted. */
static int walk_tenants(es_vfs *vfs, const char *data_dir, names *ns) {
  char dir[ES_PATH_MAX];
  ES_TRY(es__path_join(dir, sizeof(dir), data_dir, "tenants"));
  int rc = vfs->list(vfs, dir, names_add, ns);
  if (rc == ES_ENOTFOUND)
    rc = ES_OK;
  if (rc == ES_OK && ns->n > 1)
    qsort(ns->v, ns->n, sizeof(char *), names_cmp);
  return rc;
}

typedef struct wal_ts {
  int64_t min, max;
  int any;
} wal_ts;

/* What inspect learns per tenant: its manifest, and the events that are
 * only in the WAL (LSN above the manifest's flushed_lsn). */
typedef struct tally {
  char name[ES_TENANT_LEN_MAX + 1];
  es_manifest man;
  uint32_t shard;
  wal_ts unflushed;
  uint64_t events;
} tally;

typedef struct tallies {
  tally *v;
  size_t n, cap;
} tallies;

/* Finds or inserts (sorted by name) the tally of a tenant. */
static int tally_get(tallies *ts, const char *name, tally **out) {
  size_t lo = 0, hi = ts->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(ts->v[mid].name, name);
    if (c == 0) {
      *out = &ts->v[mid];
      return ES_OK;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  ES_TRY(es__grow((void **)&ts->v, &ts->cap, ts->n + 1, sizeof(tally)));
  memmove(ts->v + lo + 1, ts->v + lo, (ts->n - lo) * sizeof(tally));
  memset(&ts->v[lo], 0, sizeof(tally));
  snprintf(ts->v[lo].name, sizeof(ts->v[lo].name), "%s", name);
  ts->n++;
  *out = &ts->v[lo];
  return ES_OK;
}

static void tallies_free(tallies *ts) {
  for (size_t i = 0; i < ts->n; i++)
    es__manifest_free(&ts->v[i].man);
  es__free(ts->v);
}

static void wal_ts_add(wal_ts *w, int64_t ts) {
  if (!w->any || ts < w->min)
    w->min = ts;
  if (!w->any || ts > w->max)
    w->max = ts;
  w->any = 1;
}

typedef struct rec_ctx {
  wal_ts file; /* event-time range of the current file */
  tallies *ts; /* per-tenant unflushed events, or NULL */
  uint32_t shard;
} rec_ctx;

static int inspect_wal_rec(void *ud, uint64_t lsn, const es_wal_rec *rec,
                           uint64_t off) {
  rec_ctx *rc = ud;
  tally *t = NULL;
  if (rc->ts) {
    ES_TRY(tally_get(rc->ts, rec->tenant, &t));
    if (lsn <= t->man.flushed_lsn)
      t = NULL; /* already in a segment */
    else
      t->shard = rc->shard;
  }
  size_t pos = 0;
  for (uint32_t i = 0; i < rec->events; i++) {
    es_event ev;
    size_t used;
    if (es__event_decode(rec->rows + pos, rec->rows_len - pos, &ev, &used) < 0)
      return ES_CORRUPT_BKPT("WAL frame at %llu: row %u does not decode",
                             (unsigned long long)off, i);
    pos += used;
    wal_ts_add(&rc->file, ev.ts_us);
    if (t) {
      wal_ts_add(&t->unflushed, ev.ts_us);
      t->events++;
    }
  }
  return ES_OK;
}

typedef void (*problem_fn_t)(void *, const char *, uint64_t, const char *);

/* Walks every WAL file of every shard, calling fn per file and
 * problem per damaged file (returns ES_ECORRUPT then). */
static int walk_wal(es_vfs *vfs, const char *data_dir, uint32_t shards,
                    int (*fn)(void *, const es_file_info *), void *ud,
                    problem_fn_t problem, void *pud, tallies *ts) {
  int bad = 0;
  for (uint32_t s = 0; s < shards; s++) {
    char dir[ES_PATH_MAX], rel[64];
    snprintf(rel, sizeof(rel), "wal/%u", s);
    ES_TRY(es__path_join(dir, sizeof(dir), data_dir, rel));
    uint64_t *firsts = NULL;
    size_t n = 0;
    ES_TRY(es__wal_list(vfs, dir, &firsts, &n));
    uint64_t prev = 0;
    int rc = ES_OK;
    for (size_t i = 0; rc == ES_OK && i < n; i++) {
      char path[ES_PATH_MAX];
      rc = es__wal_path(path, sizeof(path), dir, firsts[i]);
      es_wal_scan scan;
      rec_ctx ctx = {{0, 0, 0}, ts, s};
      if (rc == ES_OK)
        rc = es__wal_read_file(vfs, path, i + 1 == n, prev, inspect_wal_rec,
                               &ctx, &scan);
      if (rc == ES_ENOTFOUND) {
        /* reclaimed by a live writer between listing and reading: its
         * records are all in segments, so there is nothing to check */
        es__error_clear();
        rc = ES_OK;
        continue;
      }
      if (rc == ES_ECORRUPT && problem) {
        problem(pud, path, scan.end_off, es_errdetail());
        bad = 1;
        rc = ES_OK;
        continue;
      }
      if (rc < 0)
        break;
      if (scan.last_lsn)
        prev = scan.last_lsn;
      es_file_info info = {NULL,
                           path + strlen(data_dir) + 1,
                           ES_FILE_WAL,
                           scan.file_bytes,
                           scan.records,
                           scan.events,
                           ctx.file.min,
                           ctx.file.max,
                           s};
      if (fn && (rc = fn(ud, &info)) != 0)
        break;
    }
    es__free(firsts);
    if (rc != 0)
      return rc;
  }
  return bad ? ES_ECORRUPT : ES_OK;
}

/* Reports one tenant: its segments, then its events only in the WAL. */
static int inspect_tenant(const tally *t,
                          int (*fn)(void *, const es_file_info *), void *ud) {
  for (size_t i = 0; i < t->man.count; i++) {
    const es_manifest_entry *e = &t->man.entries[i];
    char name[32], path[ES_PATH_MAX];
    es__segment_name(name, sizeof(name), e->id);
    snprintf(path, sizeof(path), "tenants/%s/%s", t->name, name);
    es_file_info info = {t->name,      path,         ES_FILE_SEGMENT,
                         e->bytes,     e->rows,      e->rows,
                         e->min_ts_us, e->max_ts_us, 0};
    int rc = fn(ud, &info);
    if (rc != 0)
      return rc;
  }
  if (t->events == 0)
    return 0;
  char path[32];
  snprintf(path, sizeof(path), "wal/%u", t->shard);
  es_file_info info = {
      t->name,   path,      ES_FILE_UNFLUSHED, 0,
      t->events, t->events, t->unflushed.min,  t->unflushed.max,
      t->shard};
  return fn(ud, &info);
}

/* es_inspect with a chosen vfs: manifests first (for flushed_lsn), one
 * WAL pass to count what is not yet in segments, the tenants, then a
 * second WAL pass for the files themselves. */
int es__inspect_vfs(es_vfs *vfs, const char *data_dir,
                    int (*fn)(void *ud, const es_file_info *info), void *ud) {
  uint32_t shards = 0;
  ES_TRY(es__esdb_read(vfs, data_dir, &shards));
  names ns = {0};
  tallies ts = {0};
  int rc = walk_tenants(vfs, data_dir, &ns);
  for (size_t i = 0; rc == ES_OK && i < ns.n; i++) {
    char tdir[ES_PATH_MAX], rel[ES_PATH_MAX];
    tally *t = NULL;
    snprintf(rel, sizeof(rel), "tenants/%s", ns.v[i]);
    rc = es__path_join(tdir, sizeof(tdir), data_dir, rel);
    if (rc == ES_OK)
      rc = tally_get(&ts, ns.v[i], &t);
    if (rc == ES_OK)
      rc = es__manifest_read(vfs, tdir, &t->man);
  }
  names_free(&ns);
  if (rc == ES_OK)
    rc = walk_wal(vfs, data_dir, shards, NULL, NULL, NULL, NULL, &ts);
  for (size_t i = 0; rc == ES_OK && i < ts.n; i++)
    rc = inspect_tenant(&ts.v[i], fn, ud);
  tallies_free(&ts);
  if (rc == ES_OK)
    rc = walk_wal(vfs, data_dir, shards, fn, ud, NULL, NULL, NULL);
  return rc;
}

/* Lists files of a store; see eventstore.h. */
int es_inspect(const char *data_dir,
               int (*fn)(void *ud, const es_file_info *info), void *ud) {
  es__error_clear();
  if (!data_dir || !fn)
    return ES_INVAL_BKPT("es_inspect: NULL argument");
  return es__inspect_vfs(es__vfs_posix(), data_dir, fn, ud);
}

/* The outcome of checking an optional file at path: damage (or a newer
 * version) is reported as a problem, absence is fine, other errors stop
 * the verify. */
static int verify_optional(int rc, const char *path, problem_fn_t problem,
                           void *ud, int *bad) {
  if (rc == ES_ECORRUPT || rc == ES_EVERSION) {
    if (problem)
      problem(ud, path, 0, es_errdetail());
    *bad = 1;
    rc = ES_OK;
  }
  if (rc == ES_ENOTFOUND) {
    es__error_clear();
    rc = ES_OK;
  }
  return rc;
}

/* Checks a segment's rollup file.  A missing one is no problem (it is
 * derived from the rows when needed: rollup.h); a damaged one is. */
static int verify_rollup(es_vfs *vfs, const char *seg_path,
                         problem_fn_t problem, void *ud, int *bad) {
  char path[ES_PATH_MAX];
  ES_TRY(es__rollup_path(seg_path, path, sizeof(path)));
  int rc = es__rollup_verify(vfs, path);
  return verify_optional(rc, path, problem, ud, bad);
}

/* Checks the tenant's rollup index file (rollup.h), when there is one:
 * a damaged one is reported (queries ignore it and build the index from
 * the .rlp files); one whose key names an older set is normal (the next
 * all-time query of a writable handle replaces it). */
static int verify_rollidx(es_vfs *vfs, const char *tdir, problem_fn_t problem,
                          void *ud, int *bad) {
  char path[ES_PATH_MAX];
  ES_TRY(es__path_join(path, sizeof(path), tdir, ES_ROLLIDX_NAME));
  uint8_t *img = NULL;
  size_t len = 0;
  int rc = es__io_read_all(vfs, path, &img, &len);
  if (rc == ES_OK)
    rc = es__rollidx_check(img, len, path);
  es__free(img);
  return verify_optional(rc, path, problem, ud, bad);
}

/* Verifies one tenant: its manifest, every listed segment, the rollup
 * index file. */
static int verify_tenant(es_vfs *vfs, const char *data_dir, const char *name,
                         problem_fn_t problem, void *ud, int *bad) {
  char tdir[ES_PATH_MAX], rel[ES_PATH_MAX];
  snprintf(rel, sizeof(rel), "tenants/%s", name);
  ES_TRY(es__path_join(tdir, sizeof(tdir), data_dir, rel));
  es_manifest m;
  int rc = es__manifest_read(vfs, tdir, &m);
  if (rc == ES_ECORRUPT) {
    if (problem)
      problem(ud, tdir, 0, es_errdetail());
    *bad = 1;
    return ES_OK;
  }
  ES_TRY(rc);
  for (size_t i = 0; rc >= 0 && i < m.count; i++) {
    char sname[32], path[ES_PATH_MAX];
    es__segment_name(sname, sizeof(sname), m.entries[i].id);
    rc = es__path_join(path, sizeof(path), tdir, sname);
    uint64_t rows = 0;
    if (rc == ES_OK)
      rc = es__segment_verify(vfs, path, problem, ud, &rows);
    if (rc == ES_OK && rows != m.entries[i].rows) {
      rc = ES_ECORRUPT;
      if (problem)
        problem(ud, path, 0, "row count differs from the manifest's");
    }
    if (rc == ES_OK)
      rc = verify_rollup(vfs, path, problem, ud, bad);
    if (rc == ES_ECORRUPT || rc == ES_ENOTFOUND) {
      if (rc == ES_ENOTFOUND && problem)
        problem(ud, path, 0, "listed in the manifest but missing");
      *bad = 1;
      rc = ES_OK;
    }
  }
  es__manifest_free(&m);
  if (rc == ES_OK)
    rc = verify_rollidx(vfs, tdir, problem, ud, bad);
  return rc;
}

/* es_verify with a chosen vfs. */
int es__verify_vfs(es_vfs *vfs, const char *data_dir, problem_fn_t problem,
                   void *ud) {
  uint32_t shards = 0;
  int rc = es__esdb_read(vfs, data_dir, &shards);
  if (rc == ES_ECORRUPT && problem)
    problem(ud, "ESDB", 0, es_errdetail());
  ES_TRY(rc);
  names ns = {0};
  int bad = 0;
  rc = walk_tenants(vfs, data_dir, &ns);
  for (size_t t = 0; rc == ES_OK && t < ns.n; t++)
    rc = verify_tenant(vfs, data_dir, ns.v[t], problem, ud, &bad);
  names_free(&ns);
  if (rc == ES_OK) {
    rc = walk_wal(vfs, data_dir, shards, NULL, NULL, problem, ud, NULL);
    if (rc == ES_ECORRUPT) {
      bad = 1;
      rc = ES_OK;
    }
  }
  if (rc == ES_OK && bad)
    rc = ES_ERR(ES_ECORRUPT, "verification found damaged files");
  return rc;
}

/* Checks every checksum of a store; see eventstore.h. */
int es_verify(const char *data_dir,
              void (*problem_fn)(void *ud, const char *path, uint64_t offset,
                                 const char *what),
              void *ud) {
  es__error_clear();
  if (!data_dir)
    return ES_INVAL_BKPT("es_verify: NULL data_dir");
  return es__verify_vfs(es__vfs_posix(), data_dir, problem_fn, ud);
}
