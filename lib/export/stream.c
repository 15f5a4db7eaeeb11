/*
 * stream.c -- continuous export (es_exporter): every closed hour of every
 * tenant lands as a part file of its day's partition, and an hour whose
 * events changed after it was exported (late events, an erasure) is cut
 * again.
 *
 * One thread makes passes, every interval_us.  A pass looks at each
 * tenant whose state changed since its last look (or when another hour
 * became due):
 *   1. the tenant's change token (its manifest generation and the rows in
 *      its memtables: an append grows the rows, a flush, merge or rewrite
 *      grows the generation) is read first;
 *   2. the store counts the tenant's events per hour from the lookback
 *      window on (es_query: rollups, cheap);
 *   3. the day partitions of the window are read (their manifests, kept
 *      in memory after the first read): each part names its hour and
 *      "counted", the store's count of that hour taken before it was cut;
 *   4. an hour is due once it ended delay_us ago; a due hour with events
 *      and no part, or a part whose count differs from the store's now,
 *      is cut (es__export_ranges: new parts, then the manifest, then the
 *      old parts removed);
 *   5. when every partition of the tenant succeeded, the token and the
 *      due boundary are remembered: nothing changes, nothing is looked at.
 *
 * Invariants:
 *  1. The destination is the record: what is exported is what its
 *     manifests say, so a restart (or a crash anywhere) resumes from them
 *     and exports nothing twice; a partition whose write failed keeps its
 *     old manifest and is tried again at the next pass.
 *  2. "counted" is taken before the scan that cuts the part: events that
 *     arrive in between are in the part and make the next count differ,
 *     so the hour is cut once more, never missed.  Comparing counts with
 *     counts (not with rows written) means an hour the rollups count
 *     differently from a scan is cut once, not forever.
 *  3. The token is read before the counts: a change after it is seen by
 *     the next pass.
 *  4. A partition whose write failed is written again at the next pass
 *     even if no hour of it changed: the first step of a write removes
 *     the part files its manifest does not name, so what a failed put or
 *     delete left behind does not stay.
 *  5. An erasure's re-cut (exporter_refresh, registered on the handle
 *     as an es_export_hook) and a pass hold pass_mu: a pass that began
 *     before the request (whose scans did not apply its tombstone yet)
 *     has written before the re-cut, every later scan applies it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "base/abi.h"
#include "base/clock.h"
#include "base/isotime.h"
#include "base/mem.h"
#include "export/export.h"
#include "export/xreg.h"
#include "store/dbint.h"

#define XS_DELAY_US (INT64_C(120) * 1000000)
#define XS_INTERVAL_US (INT64_C(30) * 1000000)
#define XS_LOOKBACK_US (INT64_C(7) * EX_DAY_US)
#define XS_LOOKBACK_MAX_US (INT64_C(366) * EX_DAY_US)

typedef struct xs_day {
  int64_t day_us;
  ex_manifest man;
  int stale; /* man may not be the destination's: read it again */
  int dirty; /* a write failed: write it even with nothing new, so the
                orphans it left are removed (invariant 4) */
} xs_day;

/* What the exporter remembers of a tenant. */
typedef struct xs_tenant {
  char name[ES_TENANT_LEN_MAX + 1];
  int have;           /* gen, rows and due_end are of a clean look */
  uint64_t gen, rows; /* the change token (step 1) */
  int64_t due_end;
  xs_day *days; /* cached partitions of the window */
  size_t ndays, cap;
} xs_tenant;

/* An hour's count (es_query's rows, in order). */
typedef struct xs_hour {
  int64_t hour_us;
  int64_t count;
} xs_hour;

struct es_exporter {
  es_db *db;
  es_xdest *dest;
  int owns_dest;
  es_exporter_options o;
  es_export_options eo; /* format, compression, sizes for es__export_ranges */
  pthread_t thread;
  pthread_mutex_t mu;      /* guards stop and st */
  pthread_mutex_t pass_mu; /* held by a pass and by an erasure's re-cut
                              (exporter_refresh): they never interleave */
  pthread_cond_t cv;
  int stop;
  es_exporter_stats st;
  xs_tenant *tenants; /* the thread's own */
  size_t ntenants, tenants_cap;
};

/* ---- options -------------------------------------------------------------
 */

#define EXPORTER_OPTS_SIZE_MIN sizeof(es_exporter_options)

void es_exporter_options_init_sized(es_exporter_options *opts,
                                    size_t struct_size) {
  es_exporter_options o;
  memset(&o, 0, sizeof o);
  o.format = ES_EXPORT_PARQUET;
  o.compression = ES_EXPORT_ZSTD;
  o.delay_us = XS_DELAY_US;
  o.interval_us = XS_INTERVAL_US;
  o.lookback_us = XS_LOOKBACK_US;
  memset(opts, 0, struct_size);
  memcpy(opts, &o, struct_size < sizeof o ? struct_size : sizeof o);
  opts->struct_size = struct_size;
}

static int options_check(const es_exporter_options *o) {
  if (!o->out || !o->out[0])
    return ES_INVAL_BKPT("es_exporter: out is required");
  if (o->format != ES_EXPORT_PARQUET && o->format != ES_EXPORT_NDJSON)
    return ES_INVAL_BKPT("es_exporter: unknown format %d", o->format);
  if (o->compression < ES_EXPORT_ZSTD ||
      o->compression > ES_EXPORT_UNCOMPRESSED)
    return ES_INVAL_BKPT("es_exporter: unknown compression %d", o->compression);
  if (o->delay_us < 0 || o->delay_us > EX_DAY_US)
    return ES_INVAL_BKPT("es_exporter: delay_us from 0 to a day");
  if (o->interval_us < 1000 || o->interval_us > EX_DAY_US)
    return ES_INVAL_BKPT("es_exporter: interval_us from 1 ms to a day");
  if (o->lookback_us < EX_HOUR_US || o->lookback_us > XS_LOOKBACK_MAX_US)
    return ES_INVAL_BKPT("es_exporter: lookback_us from an hour to 366 "
                         "days");
  return ES_OK;
}

/* ---- one tenant ----------------------------------------------------------
 */

static int64_t floor_to(int64_t t, int64_t unit) {
  return t / unit * unit - (t % unit < 0 ? unit : 0);
}

/* Step 1: the change token.  *exists 0 when the store has no such tenant
 * in memory (a directory not loaded yet counts as existing). */
static int tenant_token(es_db *db, const char *name, uint64_t *gen,
                        uint64_t *rows) {
  es_tenant *t = NULL;
  *gen = *rows = 0;
  ES_TRY(es__tenant_get(db, name, 0, &t));
  if (!t)
    return ES_OK;
  pthread_mutex_lock(&t->man_mu);
  *gen = t->man.generation;
  pthread_mutex_unlock(&t->man_mu);
  es_tenant_view v;
  ES_TRY(es__tenant_view(t, &v));
  for (size_t i = 0; i < v.nmts; i++)
    *rows += atomic_load(&v.mts[i]->visible);
  es__tenant_view_release(&v);
  return ES_OK;
}

/* Step 2: the tenant's events per hour from from_us on. */
static int tenant_counts(es_db *db, const char *name, int64_t from_us,
                         xs_hour **out, size_t *n_out) {
  char from[EX_TS_SIZE], spec[128];
  *out = NULL;
  *n_out = 0;
  es__export_fmt_ts(from_us, from);
  snprintf(spec, sizeof spec, "{\"from\":\"%s\",\"bucket\":\"hour\"}", from);
  char *res = NULL;
  ES_TRY(es_query(db, name, spec, &res));
  char err[128];
  yajl_val root = yajl_tree_parse(res, err, sizeof err);
  es_free(res);
  const char *rows_path[] = {"rows", NULL}, *b_path[] = {"bucket", NULL},
             *c_path[] = {"count", NULL};
  yajl_val rows = root ? yajl_tree_get(root, rows_path, yajl_t_array) : NULL;
  int rc = ES_OK;
  size_t cap = 0;
  if (!rows) {
    rc = ES_ERR(ES_ENOMEM, "es_exporter: es_query's answer did not parse");
    goto done;
  }
  for (size_t i = 0; i < rows->u.array.len; i++) {
    yajl_val r = rows->u.array.values[i];
    yajl_val b = yajl_tree_get(r, b_path, yajl_t_string);
    yajl_val c = yajl_tree_get(r, c_path, yajl_t_number);
    xs_hour h;
    if (!b || !c || es__time_parse(b->u.string, 1, &h.hour_us) != 0) {
      rc = ES_ERR(ES_ENOMEM, "es_exporter: es_query's row did not parse");
      goto done;
    }
    h.count = YAJL_GET_INTEGER(c);
    if ((rc = es__grow((void **)out, &cap, *n_out + 1, sizeof **out)) != ES_OK)
      goto done;
    (*out)[(*n_out)++] = h;
  }
done:
  yajl_tree_free(root);
  if (rc != ES_OK) {
    es__free(*out);
    *out = NULL;
    *n_out = 0;
  }
  return rc;
}

static int64_t count_at(const xs_hour *h, size_t n, int64_t hour_us) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (h[mid].hour_us < hour_us)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && h[lo].hour_us == hour_us ? h[lo].count : 0;
}

/* Step 3: the cached partition of day_us (read on first use). */
static int tenant_day(es_exporter *ex, xs_tenant *t, int64_t day_us,
                      xs_day **out) {
  char rel[ES_PATH_MAX];
  ex_manifest m;
  ES_TRY(es__export_partition_rel(rel, t->name, day_us));
  for (size_t i = 0; i < t->ndays; i++)
    if (t->days[i].day_us == day_us) {
      xs_day *d = &t->days[i];
      if (d->stale) {
        ES_TRY(es__xmanifest_load(ex->dest, rel, day_us, &m));
        es__xmanifest_free(&d->man);
        d->man = m;
        d->stale = 0;
      }
      *out = d;
      return ES_OK;
    }
  ES_TRY(es__xmanifest_load(ex->dest, rel, day_us, &m));
  int rc = es__grow((void **)&t->days, &t->cap, t->ndays + 1, sizeof *t->days);
  if (rc != ES_OK) {
    es__xmanifest_free(&m);
    return rc;
  }
  t->days[t->ndays] = (xs_day){day_us, m, 0, 0};
  *out = &t->days[t->ndays++];
  return ES_OK;
}

/* Forgets the cached partitions before from_us's day. */
static void tenant_trim(xs_tenant *t, int64_t from_day) {
  size_t k = 0;
  for (size_t i = 0; i < t->ndays; i++) {
    if (t->days[i].day_us < from_day)
      es__xmanifest_free(&t->days[i].man);
    else
      t->days[k++] = t->days[i];
  }
  t->ndays = k;
}

/* Step 4 for one day: the hours to cut, as ranges (at most 24). */
static size_t day_needs(const xs_day *d, const xs_hour *h, size_t nh,
                        int64_t lb, int64_t due_end, ex_range *rg,
                        size_t *again_out) {
  uint8_t need[24] = {0}, covered[24] = {0};
  for (size_t i = 0; i < d->man.n; i++) {
    const ex_part *p = &d->man.files[i];
    int64_t sum = 0;
    for (int64_t hr = p->from_us; hr < p->to_us; hr += EX_HOUR_US) {
      size_t k = (size_t)((hr - d->day_us) / EX_HOUR_US);
      if (k < 24)
        covered[k] = 1;
      sum += count_at(h, nh, floor_to(hr, EX_HOUR_US));
    }
    if (p->from_us < lb)
      continue; /* out of the window: left alone */
    /* parts of one range (a split big hour) share it: compare once */
    int64_t want = 0;
    int first = 1;
    for (size_t j = 0; j < d->man.n; j++) {
      const ex_part *q = &d->man.files[j];
      if (q->from_us == p->from_us && q->to_us == p->to_us) {
        first &= j >= i;
        want += q->counted >= 0 ? q->counted : (int64_t)q->rows;
      }
    }
    if (!first || sum == want)
      continue;
    /* its due hours are cut again; hours of it not due yet (a whole-day
     * part of today from esctl export) go with it and come back when due */
    for (int64_t hr = p->from_us; hr < p->to_us; hr += EX_HOUR_US) {
      size_t k = (size_t)((hr - d->day_us) / EX_HOUR_US);
      if (k < 24 && hr + EX_HOUR_US <= due_end)
        need[k] = 2; /* again */
    }
  }
  for (size_t k = 0; k < 24; k++) {
    int64_t hr = d->day_us + (int64_t)k * EX_HOUR_US;
    if (!covered[k] && hr >= lb && hr + EX_HOUR_US <= due_end &&
        count_at(h, nh, hr) > 0)
      need[k] = 1;
  }
  size_t n = 0;
  *again_out = 0;
  for (size_t k = 0; k < 24; k++) {
    if (!need[k])
      continue;
    int64_t hr = d->day_us + (int64_t)k * EX_HOUR_US;
    rg[n++] = (ex_range){hr, hr + EX_HOUR_US, count_at(h, nh, hr)};
    *again_out += need[k] == 2;
  }
  return n;
}

static void stats_add(es_exporter *ex, const es_export_result *r, size_t hours,
                      size_t again, int rc) {
  pthread_mutex_lock(&ex->mu);
  ex->st.rows += r->rows;
  ex->st.files += r->files;
  ex->st.bytes += r->bytes;
  if (rc == ES_OK) {
    ex->st.hours_exported += hours;
    ex->st.hours_reexported += again;
  } else {
    ex->st.errors++;
    ex->st.last_error = rc;
  }
  pthread_mutex_unlock(&ex->mu);
}

static int stopping(es_exporter *ex) {
  pthread_mutex_lock(&ex->mu);
  int s = ex->stop;
  pthread_mutex_unlock(&ex->mu);
  return s;
}

/* Steps 1-5 for one tenant; *pending_out: due hours not written. */
static int tenant_pass(es_exporter *ex, xs_tenant *t, int64_t lb,
                       int64_t due_end, uint64_t *pending_out) {
  uint64_t gen, rows;
  ES_TRY(tenant_token(ex->db, t->name, &gen, &rows));
  if (t->have && gen == t->gen && rows == t->rows && due_end == t->due_end)
    return ES_OK;
  xs_hour *h = NULL;
  size_t nh = 0;
  ES_TRY(tenant_counts(ex->db, t->name, lb, &h, &nh));
  int64_t first_day = floor_to(lb, EX_DAY_US);
  int64_t last = due_end - 1;
  if (nh && h[nh - 1].hour_us > last)
    last = h[nh - 1].hour_us;
  tenant_trim(t, first_day);
  int rc = ES_OK;
  for (int64_t day = first_day; day <= last && rc == ES_OK; day += EX_DAY_US) {
    if (stopping(ex)) { /* es_exporter_stop: the rest at the next start */
      rc = ES_ERR(ES_ECLOSED, "es_exporter: stopping");
      break;
    }
    xs_day *d = NULL;
    rc = tenant_day(ex, t, day, &d);
    if (rc != ES_OK)
      break;
    ex_range rg[24];
    size_t again = 0, n = day_needs(d, h, nh, lb, due_end, rg, &again);
    if (n == 0 && !d->dirty)
      continue;
    es_export_result res = {0};
    rc =
        es__export_ranges(ex->db, ex->dest, &ex->eo, t->name, day, rg, n, &res);
    stats_add(ex, &res, n, again, rc);
    d->stale = 1; /* the partition as written: read it again */
    d->dirty = rc != ES_OK;
    if (rc != ES_OK) {
      *pending_out += n;
      break;
    }
    rc = tenant_day(ex, t, day, &d);
  }
  es__free(h);
  if (rc == ES_OK) {
    t->have = 1;
    t->gen = gen;
    t->rows = rows;
    t->due_end = due_end;
  }
  return rc;
}

/* ---- the thread ----------------------------------------------------------
 */

static int tenant_find(es_exporter *ex, const char *name, xs_tenant **out) {
  for (size_t i = 0; i < ex->ntenants; i++)
    if (strcmp(ex->tenants[i].name, name) == 0) {
      *out = &ex->tenants[i];
      return ES_OK;
    }
  ES_TRY(es__grow((void **)&ex->tenants, &ex->tenants_cap, ex->ntenants + 1,
                  sizeof *ex->tenants));
  xs_tenant *t = &ex->tenants[ex->ntenants++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  *out = t;
  return ES_OK;
}

/* One pass over every tenant; the first error. */
static int pass_locked(es_exporter *ex);
static int pass(es_exporter *ex) {
  pthread_mutex_lock(&ex->pass_mu);
  int rc = pass_locked(ex);
  pthread_mutex_unlock(&ex->pass_mu);
  return rc;
}

static int pass_locked(es_exporter *ex) {
  int64_t now = es__clock_now_us();
  int64_t due_end = floor_to(now - ex->o.delay_us, EX_HOUR_US);
  int64_t lb = floor_to(now - ex->o.lookback_us, EX_HOUR_US);
  char **names = NULL;
  size_t n = 0;
  uint64_t pending = 0;
  int rc = es__export_tenants(ex->db, &names, &n), first = rc;
  int failed = rc != ES_OK;
  for (size_t i = 0; i < n; i++) {
    xs_tenant *t = NULL;
    if (!stopping(ex) && tenant_find(ex, names[i], &t) == ES_OK) {
      rc = tenant_pass(ex, t, lb, due_end, &pending);
      if (rc != ES_OK) {
        failed = 1;
        first = first ? first : rc;
        if (rc != ES_ECLOSED)
          es__db_log(ex->db, 1 /* warning */,
                     "export of tenant %s: %s (retried)", t->name, es_errmsg());
      }
    } else {
      failed = 1;
    }
    es__free(names[i]);
  }
  es__free(names);
  pthread_mutex_lock(&ex->mu);
  ex->st.passes++;
  ex->st.pending_hours = pending;
  if (!failed)
    ex->st.synced_through_us = due_end;
  if (first != ES_OK && !ex->st.last_error)
    ex->st.last_error = first;
  pthread_mutex_unlock(&ex->mu);
  return first;
}

static void *exporter_main(void *arg) {
  es_exporter *ex = arg;
  for (;;) {
    (void)pass(ex); /* counted in the stats; retried next time */
    struct timespec ts;
    es__clock_deadline(&ts, ex->o.interval_us);
    pthread_mutex_lock(&ex->mu);
    if (!ex->stop)
      pthread_cond_timedwait(&ex->cv, &ex->mu, &ts);
    int stop = ex->stop;
    pthread_mutex_unlock(&ex->mu);
    if (stop)
      return NULL;
  }
}

/* ---- erasure (lib/erase, stage f) ----------------------------------------
 */

/* es_export_hook.refresh: the tenant's partitions of days (NULL: every
 * one the destination holds) cut again from the store.  Under pass_mu, so
 * a pass that began before the erasure was requested (its scans may still
 * have seen the person) has written before this, and the next pass reads
 * the manifests again. */
static int exporter_refresh(void *ud, const char *tenant,
                            const int64_t *days_us, size_t ndays) {
  es_exporter *ex = ud;
  struct {
    int64_t *v;
    size_t n;
  } all = {NULL, 0};
  int rc = ES_OK;
  pthread_mutex_lock(&ex->pass_mu);
  if (!days_us) {
    rc = es__xreg_days(ex->dest, tenant, &all.v, &all.n);
    days_us = all.v;
    ndays = all.n;
  }
  es_export_result res = {0};
  if (rc == ES_OK && ndays)
    rc = es__export_refresh(ex->db, ex->dest, tenant, days_us, ndays, &res);
  if (ndays)
    stats_add(ex, &res, 0, 0, rc);
  for (size_t i = 0; i < ex->ntenants; i++)
    if (strcmp(ex->tenants[i].name, tenant) == 0) {
      xs_tenant *t = &ex->tenants[i];
      t->have = 0;
      for (size_t k = 0; k < t->ndays; k++)
        t->days[k].stale = 1;
    }
  pthread_mutex_unlock(&ex->pass_mu);
  es__free(all.v);
  return rc;
}

/* key: the destination's record name (xreg.c), "" when it has none */
static int exporter_register(es_exporter *ex, const char *key) {
  es_export_hook h = {exporter_refresh, ex, {0}};
  snprintf(h.key, sizeof h.key, "%s", key);
  return es__export_hook_add(ex->db, &h);
}

/* ---- the handle ----------------------------------------------------------
 */

static void exporter_free(es_exporter *ex) {
  es__export_hook_remove(ex->db, ex); /* waits for an erasure using it */
  for (size_t i = 0; i < ex->ntenants; i++) {
    xs_tenant *t = &ex->tenants[i];
    for (size_t k = 0; k < t->ndays; k++)
      es__xmanifest_free(&t->days[k].man);
    es__free(t->days);
  }
  es__free(ex->tenants);
  if (ex->owns_dest)
    es__dest_close(ex->dest);
  pthread_cond_destroy(&ex->cv);
  pthread_mutex_destroy(&ex->mu);
  pthread_mutex_destroy(&ex->pass_mu);
  es__free(ex);
}

/* The exporter without its thread (es_exporter_start; tests). */
static int exporter_new(es_db *db, const es_exporter_options *opts,
                        es_exporter **out) {
  *out = NULL;
  if (!db || !opts)
    return ES_INVAL_BKPT("es_exporter_start: NULL argument");
  es_exporter_options o;
  es_exporter_options_init(&o);
  ES_TRY(es__abi_options_in(opts, &o, sizeof o, EXPORTER_OPTS_SIZE_MIN,
                            "es_exporter_options"));
  ES_TRY(options_check(&o));
  es_exporter *ex = es__calloc(1, sizeof *ex);
  if (!ex)
    return ES_NOMEM_BKPT();
  pthread_mutex_init(&ex->mu, NULL);
  pthread_mutex_init(&ex->pass_mu, NULL);
  pthread_cond_init(&ex->cv, NULL);
  ex->db = db;
  ex->o = o;
  es_export_options_init(&ex->eo);
  ex->eo.format = o.format;
  ex->eo.compression = o.compression;
  *out = ex;
  return ES_OK;
}

int es__exporter_open(es_db *db, es_xdest *dest,
                      const es_exporter_options *opts, es_exporter **out) {
  ES_TRY(exporter_new(db, opts, out));
  (*out)->dest = dest;
  (*out)->o.out = NULL; /* borrowed: not kept */
  int rc = exporter_register(*out, "");
  if (rc != ES_OK) {
    exporter_free(*out);
    *out = NULL;
  }
  return rc;
}

int es__exporter_pass(es_exporter *ex) { return pass(ex); }

void es__exporter_close(es_exporter *ex) {
  if (ex)
    exporter_free(ex);
}

int es_exporter_start(es_db *db, const es_exporter_options *opts,
                      es_exporter **out) {
  if (!out)
    return ES_INVAL_BKPT("es_exporter_start: NULL out");
  es_exporter *ex = NULL;
  ES_TRY(exporter_new(db, opts, &ex));
  char key[32] = "";
  /* recorded first (xreg.c, 1): erasures reach it after a restart too */
  int rc = es__xreg_add(db, ex->o.out, ex->o.s3_endpoint, ex->o.s3_region);
  if (rc == ES_OK)
    rc = es__xreg_key(ex->o.out, ex->o.s3_endpoint, ex->o.s3_region, key);
  if (rc == ES_OK)
    rc = es__dest_open(ex->o.out, ex->o.s3_endpoint, ex->o.s3_region, db->vfs,
                       &ex->dest);
  ex->owns_dest = 1;
  ex->o.out = NULL; /* borrowed: not kept */
  ex->o.s3_endpoint = ex->o.s3_region = NULL;
  if (rc == ES_OK)
    rc = exporter_register(ex, key);
  if (rc == ES_OK && pthread_create(&ex->thread, NULL, exporter_main, ex) != 0)
    rc = ES_ERR(ES_ENOMEM, "es_exporter_start: cannot start a thread");
  if (rc != ES_OK) {
    exporter_free(ex);
    return rc;
  }
  *out = ex;
  return ES_OK;
}

void es_exporter_stop(es_exporter *ex) {
  if (!ex)
    return;
  pthread_mutex_lock(&ex->mu);
  ex->stop = 1;
  pthread_cond_broadcast(&ex->cv);
  pthread_mutex_unlock(&ex->mu);
  pthread_join(ex->thread, NULL);
  exporter_free(ex);
}

int es_exporter_stats_get(es_exporter *ex, es_exporter_stats *out) {
  if (!ex || !out)
    return ES_INVAL_BKPT("es_exporter_stats_get: NULL argument");
  pthread_mutex_lock(&ex->mu);
  *out = ex->st;
  pthread_mutex_unlock(&ex->mu);
  return ES_OK;
}
