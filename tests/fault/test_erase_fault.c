/*
 * test_erase_fault.c -- a person's erasure under power cuts and I/O
 * errors at every counted I/O call (tests/fault/memvfs.h).
 *
 * The store: one shard, tenant "t" with a victim (anonymous id, then
 * identified, then aliased, email in traits and properties) and other
 * visitors, partly in segments and partly only in the WAL, plus an
 * unlink record naming the victim in the identity log, and an es_export
 * of the day into /export (uncompressed Parquet, so a byte search sees
 * the strings), which records its destination in DATA/exports: stage (f)
 * opens it itself, so its every I/O call (list, manifest, new parts,
 * manifest replace, old parts deleted) is a fault point too.  For every k, a
 * fresh copy gets es_erase_submit + es_erase_run with the k-th counted
 * call cut (power cut) or failed (EIO); then a power cut, a reopen, and
 * es_erase_run again (the restart).  Then, per point:
 *  1. when the submission was acknowledged, the request is complete after
 *     the restart, and no file of the store holds the victim's ids or
 *     email (raw bytes); when it was not, the request is complete or
 *     absent (an unacknowledged record may or may not have survived);
 *  2. every other visitor's event is there exactly once; nothing invented;
 *     the export's manifest counts NOTHERS rows after completion (the 5
 *     victims' too when the request is absent), and no file under /export
 *     holds the victim after completion (an orphan part would);
 *  3. es_verify is clean.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "base/clock.h"
#include "eventstore.h"
#include "export/export.h"
#include "memvfs.h"
#include "store/db.h"
#include "unit.h"

#define DATA "/data"
#define EXPORT "/export"
#define DAY_US INT64_C(86400000000)
#define T0 INT64_C(1709251200000000)
#define NOTHERS 60

static const char *const needles[] = {"anon-V", "user-V", "alias-V",
                                      "victim@example.com"};

static void make_opts(es_options *o) {
  es_options_init(o);
  o->data_dir = DATA;
  o->shards = 1;
  o->wal_file_bytes = 64 << 10;
}

static void put(es_db *db, es_event *ev) {
  int rc = es_append(db, "t", ev, 1, NULL);
  ck_assert_msg(rc == ES_OK, "append: %s", es_errdetail());
}

static void victim(es_db *db, int i) {
  es_event ev;
  memset(&ev, 0, sizeof(ev));
  char mid[32];
  snprintf(mid, sizeof(mid), "v-%d", i);
  ev.message_id = mid;
  ev.ts_us = T0 + i * 1000000;
  ev.type = ES_TYPE_PAGE;
  ev.path = "/pricing";
  ev.anonymous_id = "anon-V";
  if (i == 1) {
    ev.type = ES_TYPE_IDENTIFY;
    ev.user_id = "user-V";
    ev.properties = "{\"email\":\"victim@example.com\"}";
  } else if (i == 2) {
    ev.type = ES_TYPE_ALIAS;
    ev.anonymous_id = NULL;
    ev.previous_id = "user-V";
    ev.user_id = "alias-V";
  } else if (i == 3) {
    ev.type = ES_TYPE_TRACK;
    ev.event = "Signed Up";
    ev.anonymous_id = NULL;
    ev.user_id = "alias-V";
    ev.properties = "{\"contact\":\"victim@example.com\"}";
  }
  put(db, &ev);
}

static void other(es_db *db, int i) {
  es_event ev;
  memset(&ev, 0, sizeof(ev));
  char mid[32], anon[32];
  snprintf(mid, sizeof(mid), "o-%d", i);
  snprintf(anon, sizeof(anon), "anon-%d", i % 7);
  ev.message_id = mid;
  ev.ts_us = T0 + i * 1000000 + 500000;
  ev.type = ES_TYPE_PAGE;
  ev.path = "/";
  ev.anonymous_id = anon;
  put(db, &ev);
}

static void build_store(es_vfs *vfs) {
  es_options o;
  make_opts(&o);
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  for (int i = 0; i < NOTHERS; i++) {
    other(db, i);
    if (i < 4)
      victim(db, i);
    if (i == 20)
      ck_assert_int_eq(es_flush(db, "t"), ES_OK);
  }
  victim(db, 4); /* in the WAL only */
  ck_assert_int_eq(es_identity_unlink(db, "t", "user-V", "anon-3", 0), ES_OK);
  es_export_options xo;
  es_export_options_init(&xo);
  xo.out_dir = EXPORT;
  xo.from_us = T0;
  xo.to_us = T0 + DAY_US;
  xo.compression = ES_EXPORT_UNCOMPRESSED;
  ck_assert_msg(es_export(db, &xo, NULL) == ES_OK, "export: %s",
                es_errdetail());
  ck_assert_int_eq(es_close(db), ES_OK);
  memvfs_sync_all(vfs);
}

/* Searches every file under dir; returns a hit's description or NULL. */
typedef struct walk {
  es_vfs *vfs;
  char dir[512];
  const char *hit;
} walk;

static int walk_one(void *ud, const char *name) {
  walk *w = ud;
  static char why[600];
  walk sub = {w->vfs, "", NULL};
  if (strlen(w->dir) + strlen(name) + 2 > sizeof(sub.dir))
    return 0; /* no store path is that long */
  memcpy(sub.dir, w->dir, strlen(w->dir));
  sub.dir[strlen(w->dir)] = '/';
  strcpy(sub.dir + strlen(w->dir) + 1, name);
  if (w->vfs->list(w->vfs, sub.dir, walk_one, &sub) == ES_OK) {
    if (sub.hit)
      w->hit = sub.hit;
    return 0;
  }
  uint64_t size = 0;
  if (memvfs_file_size(w->vfs, sub.dir, &size) != ES_OK || size == 0)
    return 0;
  char *buf = malloc(size);
  size_t got = 0;
  ck_assert_int_eq(memvfs_peek(w->vfs, sub.dir, 0, buf, size, &got), ES_OK);
  for (int k = 0; k < 4; k++)
    if (memmem(buf, got, needles[k], strlen(needles[k]))) {
      snprintf(why, sizeof(why), "%s holds %s", sub.dir, needles[k]);
      w->hit = why;
    }
  free(buf);
  return 0;
}

static const char *search(es_vfs *vfs, const char *root) {
  walk w = {vfs, "", NULL};
  snprintf(w.dir, sizeof(w.dir), "%s", root);
  (void)vfs->list(vfs, root, walk_one, &w);
  es__error_clear();
  return w.hit;
}

/* The rows the export's manifest of the day names (-1: unreadable). */
static long export_rows(es_vfs *vfs) {
  es_xdest *dest = NULL;
  ex_manifest m;
  long rows = -1;
  if (es__dest_open(EXPORT, NULL, NULL, vfs, &dest) == ES_OK &&
      es__xmanifest_load(dest, "tenant=t/date=2024-03-01", T0, &m) == ES_OK) {
    rows = 0;
    for (size_t i = 0; i < m.n; i++)
      rows += (long)m.files[i].rows;
    es__xmanifest_free(&m);
  }
  es__dest_close(dest);
  es__error_clear();
  return rows;
}

/* Checks the restarted store; NULL or the first problem. */
static const char *check_store(es_vfs *vfs, int acked) {
  static char why[700];
  es_options o;
  make_opts(&o);
  es_db *db = NULL;
  int rc = es__open_vfs(&o, vfs, &db);
  if (rc != ES_OK) {
    snprintf(why, sizeof(why), "reopen: %s", es_errdetail());
    return why;
  }
  rc = es_erase_run(db, NULL); /* the restart resumes */
  if (rc != ES_OK) {
    snprintf(why, sizeof(why), "resume: %s", es_errdetail());
    (void)es_close(db);
    return why;
  }
  char *st = NULL;
  rc = es_erase_status(db, "t.1", &st);
  int exists = rc == ES_OK;
  const char *bad = NULL;
  if (!exists && (acked || rc != ES_ENOTFOUND)) {
    snprintf(why, sizeof(why), "status: %s", es_errdetail());
    bad = why;
  } else if (exists && !strstr(st, "\"state\":\"done\"")) {
    snprintf(why, sizeof(why), "not done after the restart: %s", st);
    bad = why;
  }
  es_free(st);
  int seen[NOTHERS] = {0}, victims = 0;
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = "t";
  es_cursor *cur = NULL;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  es_event ev;
  while (!bad && (rc = es_cursor_next(cur, &ev)) == 1) {
    int i = -1;
    if (ev.message_id && sscanf(ev.message_id, "o-%d", &i) == 1 && i >= 0 &&
        i < NOTHERS)
      seen[i]++;
    else if (ev.message_id && ev.message_id[0] == 'v')
      victims++;
    else
      bad = "invented event";
  }
  if (!bad && rc != 0) {
    snprintf(why, sizeof(why), "scan: %s", es_errdetail());
    bad = why;
  }
  es_cursor_close(cur);
  for (int i = 0; !bad && i < NOTHERS; i++)
    if (seen[i] != 1) {
      snprintf(why, sizeof(why), "o-%d seen %d times", i, seen[i]);
      bad = why;
    }
  if (!bad && exists && victims) {
    snprintf(why, sizeof(why), "%d victim events after completion", victims);
    bad = why;
  }
  if (!bad && !exists && victims != 5)
    bad = "no request, yet victim events went";
  rc = es_close(db);
  if (!bad && rc != ES_OK) {
    snprintf(why, sizeof(why), "close: %s", es_errdetail());
    bad = why;
  }
  if (!bad && exists && (bad = search(vfs, DATA)) != NULL) {
    snprintf(why, sizeof(why), "after completion: %s", bad);
    bad = why;
  }
  if (!bad && exists && (bad = search(vfs, EXPORT)) != NULL) {
    snprintf(why, sizeof(why), "export after completion: %s", bad);
    bad = why;
  }
  long xrows = bad ? 0 : export_rows(vfs);
  if (!bad && xrows != (exists ? NOTHERS : NOTHERS + 5)) {
    snprintf(why, sizeof(why), "the export's manifest names %ld rows", xrows);
    bad = why;
  }
  if (!bad && es__verify_vfs(vfs, DATA, NULL, NULL) != ES_OK) {
    snprintf(why, sizeof(why), "verify: %s", es_errdetail());
    bad = why;
  }
  return bad;
}

/* One point: returns the counted calls of the erase. */
static unsigned long erase_point(unsigned long k, int crash, int *bad_out,
                                 int *acked_out) {
  es_vfs *vfs = memvfs_create();
  build_store(vfs);
  es_options o;
  make_opts(&o);
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  if (k > 0 && crash)
    memvfs_crash_at(vfs, k);
  else if (k > 0)
    memvfs_fail_at(vfs, k, ES_EIO, 0);
  else
    memvfs_fail_at(vfs, 0, ES_EIO, 0); /* resets the counter */
  es_erase_options eo;
  es_erase_options_init(&eo);
  eo.tenant = "t";
  eo.anonymous_id = "anon-V";
  char id[ES_ERASE_ID_MAX];
  int rc = es_erase_submit(db, &eo, id);
  *acked_out = rc == ES_OK;
  int rrc = rc == ES_OK ? es_erase_run(db, NULL) : rc;
  unsigned long calls = memvfs_count(vfs);
  if (k == 0) {
    ck_assert_msg(rc == ES_OK && rrc == ES_OK, "clean erase: %s",
                  es_errdetail());
    ck_assert_str_eq(id, "t.1");
  }
  (void)es_close(db);
  memvfs_clear_faults(vfs);
  memvfs_crash(vfs);
  const char *why = check_store(vfs, *acked_out);
  *bad_out = why != NULL;
  if (why)
    printf("fault at %lu (%s): %s\n", k, crash ? "power cut" : "EIO", why);
  memvfs_destroy(vfs);
  return calls;
}

START_TEST(test_erase_faults) {
  int bad = 0, acked = 0;
  unsigned long k_total = erase_point(0, 0, &bad, &acked);
  ck_assert_msg(!bad, "clean run failed");
  printf("erase: %lu counted I/O calls\n", k_total);
  ck_assert_uint_gt(k_total, 10);
  int failures = 0, acks = 0;
  /* every 3rd point, and every one of the last 8 (the log's compaction);
   * FAULT_FULL=1: every point */
  unsigned long step = getenv("FAULT_FULL") ? 1 : 3;
  for (int crash = 1; crash >= 0; crash--) {
    for (unsigned long k = 1; k <= k_total + 1;
         k += k + 8 > k_total ? 1 : step) {
      int64_t t0 = es__clock_mono_us();
      erase_point(k, crash, &bad, &acked);
      if (es__clock_mono_us() - t0 > 5000000)
        printf("slow point %lu crash %d\n", k, crash);
      failures += bad;
      acks += acked;
    }
  }
  printf("erase: %lu points (every %lu) x 2 (power cut, EIO): %d failures, "
         "%d acknowledged\n",
         k_total + 1, step, failures, acks);
  ck_assert_int_eq(failures, 0);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("erase_fault");
  TCase *tc = tcase_create("erase_fault");
  tcase_set_timeout(tc, 400);
  tcase_add_test(tc, test_erase_faults);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(suite()); }
