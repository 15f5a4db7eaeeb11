/*
 * test_erase.c -- erasing a person (lib/erase/erase.c, lib/store/tomb.c).
 *
 * What must hold:
 *  1. A person seen anonymously, then identified, then aliased, is erased
 *     under all three ids when asked by any one of them.
 *  2. Hidden at once: right after es_erase_submit, scans, queries (exact
 *     and from rollups), timelines and rule members of this handle and of
 *     a read-only handle already open exclude the person, and equal those
 *     of a store that never received the person's events.
 *  3. After es_erase_run: no file of the data directory holds an id or
 *     the email of the person, neither as raw bytes nor in a decompressed
 *     segment block nor in a WAL record; every other event is there once;
 *     queries from rollups equal the reference store's; a receipt names
 *     the person by a hash and counts the events removed.
 *  4. A request survives a close before its stages ran (the tombstone is
 *     loaded again, hiding the person) and completes after the reopen.
 *  6. Stage (f): the partitions of a running exporter's destination (here
 *     an object store) that held the person are cut again without them;
 *     with the exporter gone after having been registered, the stage
 *     waits; resumed in a later run (days of (b) not known), every
 *     partition of the tenant is cut again.
 *  5. Bad input gets a clear error; an unknown tenant or id completes with
 *     zero events (the same answer as a known one); the log reader stops
 *     at a torn tail and reports damage in the middle.
 *  7. Without suppression, an event carrying the person's id appended
 *     after the request is new data: hidden while the request is pending,
 *     kept by stage (b) (though it runs later), there once after.
 *  8. With suppression, such events are acknowledged and not stored,
 *     counted in the receipt, the flags and es_stats, while pending, after
 *     completion and after a reopen; the log then holds salted hashes,
 *     no id; es_erase_unsuppress by any one of the ids lifts it.
 */
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/io.h"
#include "base/mem.h"
#include "eventstore.h"
#include "export/export.h"
#include "replicate/objmem.h"
#include "replicate/replicate.h"
#include "store/segment.h"
#include "store/tomb.h"
#include "store/wal.h"
#include "unit.h"

#define T0 INT64_C(1709251200000000)
#define SEC INT64_C(1000000)
#define NPERSONS 40

static const char *const victim_ids[] = {"anon-V", "user-V", "alias-V"};
static const char *const needles[] = {"anon-V", "user-V", "alias-V",
                                      "victim@example.com"};
#define NNEEDLES 4

static es_db *open_db(const char *dir, int ro) {
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.shards = 2;
  o.sync_mode = ES_SYNC_NONE;
  o.wal_file_bytes = 256 << 10;
  o.read_only = ro;
  o.follow_interval_us = 20000;
  es_db *db = NULL;
  int rc = es_open(&o, &db);
  ck_assert_msg(rc == ES_OK, "es_open(ro=%d): %s", ro, es_errdetail());
  return db;
}

/* Event i of the workload; returns 1 when it is the victim's. */
static int make_event(int i, es_event *ev, char *buf, size_t cap) {
  memset(ev, 0, sizeof(*ev));
  ev->ts_us = T0 + (int64_t)i * 7 * SEC;
  snprintf(buf, cap, "m-%d", i);
  ev->message_id = buf;
  int victim = i % 9 == 4;
  static char anon[64], user[64];
  int p = i % NPERSONS;
  snprintf(anon, sizeof(anon), "anon-%d", p);
  snprintf(user, sizeof(user), "user-%d", p);
  ev->type = ES_TYPE_PAGE;
  ev->path = i % 3 ? "/pricing" : "/";
  ev->anonymous_id = anon;
  if (i % 5 == 0)
    ev->user_id = user;
  if (!victim)
    return 0;
  ev->anonymous_id = "anon-V";
  switch (i % 4) {
  case 0: /* identified: traits with the email */
    ev->type = ES_TYPE_IDENTIFY;
    ev->user_id = "user-V";
    ev->properties = "{\"email\":\"victim@example.com\"}";
    break;
  case 1: /* aliased */
    ev->type = ES_TYPE_ALIAS;
    ev->previous_id = "user-V";
    ev->user_id = "alias-V";
    ev->anonymous_id = NULL;
    break;
  case 2:
    ev->type = ES_TYPE_TRACK;
    ev->event = "Signed Up";
    ev->user_id = "alias-V";
    ev->properties = "{\"contact\":\"victim@example.com\"}";
    break;
  default:
    break;
  }
  return 1;
}

/* Appends events [from, to) (without the victim's when skip_victim). */
static int load(es_db *db, const char *tenant, int from, int to,
                int skip_victim) {
  int victims = 0;
  for (int i = from; i < to; i++) {
    es_event ev;
    char mid[32];
    int v = make_event(i, &ev, mid, sizeof(mid));
    victims += v;
    if (v && skip_victim)
      continue;
    int rc = es_append(db, tenant, &ev, 1, NULL);
    ck_assert_msg(rc == ES_OK, "append %d: %s", i, es_errdetail());
  }
  return victims;
}

#define NEVENTS 900

/* The workload: half in segments, the rest in the memtable/WAL. */
static int load_all(es_db *db, int skip_victim) {
  ck_assert_int_eq(
      es_rule_put(db, "t",
                  "{\"name\":\"p2\",\"match\":{\"path\":"
                  "\"/pricing\"},\"atLeast\":2,\"within\":\"7d\"}"),
      ES_OK);
  int v = load(db, "t", 0, NEVENTS / 2, skip_victim);
  ck_assert_int_eq(es_flush(db, "t"), ES_OK);
  v += load(db, "t", NEVENTS / 2, NEVENTS, skip_victim);
  load(db, "other", 0, 50, 1); /* another tenant: untouched */
  return v;
}

/* (Out-parameters rather than returned pointers: gcc -O3 takes a
 * returned owned pointer for a dangling local.) */
static void query(es_db *db, const char *spec, char **out) {
  int rc = es_query(db, "t", spec, out);
  ck_assert_msg(rc == ES_OK, "query %s: %s", spec, es_errdetail());
}

static const char *const specs[] = {
    "{\"from\":\"2024-03-01T00:00:00Z\",\"to\":\"2024-03-02T00:00:00Z\","
    "\"bucket\":\"hour\",\"groupBy\":[\"path\"],\"aggregate\":[\"count\","
    "\"uniques\"],\"exact\":true}",
    "{\"from\":\"2024-03-01T00:00:00Z\",\"to\":\"2024-03-02T00:00:00Z\","
    "\"bucket\":\"minute\",\"groupBy\":[\"event\"],\"aggregate\":[\"count\"]}",
    "{\"from\":\"2024-03-01T00:00:00Z\",\"to\":\"2024-03-02T00:00:00Z\","
    "\"bucket\":\"day\",\"aggregate\":[\"count\",\"uniques\"]}",
};

static void members(es_db *db, char **out) {
  int rc = es_rule_members(db, "t", "p2", T0 + NEVENTS * 7 * SEC, out);
  ck_assert_msg(rc == ES_OK, "members: %s", es_errdetail());
}

static int timeline_count(es_db *db, const char *person) {
  es_timeline *tl = NULL;
  ck_assert_int_eq(es_timeline_open(db, "t", person, 10000, &tl), ES_OK);
  es_event ev;
  int n = 0;
  while (es_timeline_next(tl, &ev) == 1)
    n++;
  es_timeline_close(tl);
  return n;
}

/* Asserts db answers as ref does (scans, queries, members, timelines);
 * with rollups_too, also the specs answered from rollups. */
static void same_answers(es_db *db, es_db *ref, const char *what,
                         int rollups_too) {
  char *a = ut_scan_ids(db, "t", NULL), *b = ut_scan_ids(ref, "t", NULL);
  ck_assert_msg(strcmp(a, b) == 0, "%s: scans differ", what);
  free(a);
  free(b);
  for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
    char *x = NULL, *y = NULL;
    query(db, specs[i], &x);
    query(ref, specs[i], &y);
    if (!rollups_too) { /* the counts and rows, not where they came from */
      char *sx = strstr(x, "\"source\""), *sy = strstr(y, "\"source\"");
      if (sx && sy)
        *sx = *sy = '\0';
      if (i == 2) /* uniques: exact (scan) against an estimate */
        x[0] = y[0] = '\0';
    }
    ck_assert_msg(strcmp(x, y) == 0, "%s: query %zu:\n%s\n%s", what, i, x, y);
    es_free(x);
    es_free(y);
  }
  char *m = NULL, *n = NULL;
  members(db, &m);
  members(ref, &n);
  ck_assert_msg(strcmp(m, n) == 0, "%s: members\n%s\n%s", what, m, n);
  ck_assert_ptr_null(strstr(m, "-V\""));
  es_free(m);
  es_free(n);
  for (int k = 0; k < 3; k++)
    ck_assert_msg(timeline_count(db, victim_ids[k]) == 0, "%s: timeline of %s",
                  what, victim_ids[k]);
  ck_assert_int_eq(timeline_count(db, "anon-3"), timeline_count(ref, "anon-3"));
}

/* ---- the byte search ---------------------------------------------------- */

static int g_hits;
static char g_hit_where[512];

static void search(const void *p, size_t n, const char *where) {
  for (int k = 0; k < NNEEDLES; k++)
    if (memmem(p, n, needles[k], strlen(needles[k]))) {
      g_hits++;
      snprintf(g_hit_where, sizeof(g_hit_where), "%s holds %s", where,
               needles[k]);
    }
}

static int wal_rec(void *ud, uint64_t lsn, const es_wal_rec *rec,
                   uint64_t off) {
  (void)lsn;
  (void)off;
  search(rec->rows, rec->rows_len, ud);
  return 0;
}

static int walk_one(const char *path, const struct stat *st, int flag,
                    struct FTW *f) {
  (void)f;
  if (flag != FTW_F || !S_ISREG(st->st_mode))
    return 0;
  size_t len = 0;
  uint8_t *buf = ut_read_file(path, &len);
  search(buf, len, path); /* raw bytes */
  free(buf);
  size_t l = strlen(path);
  if (l > 4 && strcmp(path + l - 4, ".seg") == 0) { /* decompressed */
    es_segment *seg = NULL;
    ck_assert_int_eq(es__segment_open(es__vfs_posix(), path, 1, &seg), ES_OK);
    es_seg_rows rows;
    memset(&rows, 0, sizeof(rows));
    for (uint32_t g = 0; g < seg->ngroups; g++) {
      ck_assert_int_eq(es__segment_read_group(seg, g, &rows), ES_OK);
      for (int c = 0; c < ES_SEG_NCOLS; c++)
        search(rows.raw[c].data, rows.raw[c].len, path);
    }
    es__segment_rows_free(&rows);
    es__segment_unref(seg);
  } else if (l > 4 && strcmp(path + l - 4, ".wal") == 0) { /* records */
    es_wal_scan sc;
    int rc = es__wal_read_file(es__vfs_posix(), path, 1, 0, wal_rec,
                               (void *)path, &sc);
    ck_assert_msg(rc == ES_OK, "%s: %s", path, es_errdetail());
  }
  return 0;
}

static int search_dir(const char *dir) {
  g_hits = 0;
  ck_assert_int_eq(nftw(dir, walk_one, 16, FTW_PHYS), 0);
  return g_hits;
}

/* ---- 1-3 ---------------------------------------------------------------- */

static void erase_by(const char *asked_kind, const char *asked) {
  char dir[512], rdir[512];
  ut_tmpdir(dir, sizeof(dir), "erase");
  ut_tmpdir(rdir, sizeof(rdir), "erase-ref");
  es_db *db = open_db(dir, 0), *ref = open_db(rdir, 0);
  int victims = load_all(db, 0);
  ck_assert_int_eq(load_all(ref, 1), victims);
  es_db *ro = open_db(dir, 1);
  /* before: the person is there */
  ck_assert_int_gt(timeline_count(db, "anon-V"), 0);
  ck_assert_int_gt(search_dir(dir), 0);
  /* the persisted rule state holds the person's counters before: the
   * search below must find them gone from it too */
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  char rstate[600];
  snprintf(rstate, sizeof(rstate), "%s/tenants/t/RSTATE", dir);
  size_t rlen = 0;
  uint8_t *rbuf = ut_read_file(rstate, &rlen);
  ck_assert_ptr_nonnull(rbuf);
  g_hits = 0;
  search(rbuf, rlen, "RSTATE");
  free(rbuf);
  ck_assert_int_gt(g_hits, 0);

  es_erase_options eo;
  es_erase_options_init(&eo);
  eo.tenant = "t";
  if (strcmp(asked_kind, "user") == 0)
    eo.user_id = asked;
  else
    eo.anonymous_id = asked;
  char id[ES_ERASE_ID_MAX];
  int rc = es_erase_submit(db, &eo, id);
  ck_assert_msg(rc == ES_OK, "submit: %s", es_errdetail());
  ck_assert_str_eq(id, "t.1");
  /* 2: hidden at once, here and in the reader (no wait) */
  same_answers(db, ref, "hidden (writer)", 0);
  same_answers(ro, ref, "hidden (reader)", 0);
  char *st = NULL;
  ck_assert_int_eq(es_erase_status(db, id, &st), ES_OK);
  ck_assert_ptr_nonnull(strstr(st, "\"state\":\"pending\""));
  ck_assert_ptr_null(strstr(st, "-V"));
  es_free(st);

  rc = es_erase_run(db, NULL);
  ck_assert_msg(rc == ES_OK, "run: %s", es_errdetail());
  ck_assert_int_eq(es_erase_status(db, id, &st), ES_OK);
  ck_assert_msg(strstr(st, "\"state\":\"done\"") && strstr(st, "\"receipt\""),
                "%s", st);
  char want[64];
  snprintf(want, sizeof(want), "\"events_removed\":%d", victims);
  ck_assert_msg(strstr(st, want), "%s (want %s)", st, want);
  ck_assert_ptr_null(strstr(st, "-V"));
  es_free(st);
  ck_assert_int_eq(es_flush(ref, NULL), ES_OK);
  same_answers(db, ref, "done (writer)", 1);
  /* the reader: its rule counters are refilled within a slow pass */
  for (int waited_ms = 0;; waited_ms += 50) {
    char *m = NULL, *n = NULL;
    members(ro, &m);
    members(ref, &n);
    int same = strcmp(m, n) == 0;
    ck_assert_msg(same || waited_ms < 5000,
                  "reader's members differ after 5 s:\n%s\n%s", m, n);
    es_free(m);
    es_free(n);
    if (same)
      break;
    es__clock_sleep_us(50000);
  }
  same_answers(ro, ref, "done (reader)", 0);
  ck_assert_int_eq(es_close(ro), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  /* 3: nothing of the person anywhere in the directory */
  int hits = search_dir(dir);
  ck_assert_msg(hits == 0, "%d hits, e.g. %s", hits, g_hit_where);
  db = open_db(dir, 0);
  same_answers(db, ref, "reopened", 1);
  char *o1 = ut_scan_ids(db, "other", NULL),
       *o2 = ut_scan_ids(ref, "other", NULL);
  ck_assert_str_eq(o1, o2);
  free(o1);
  free(o2);
  ck_assert_int_eq(es_close(db), ES_OK);
  ck_assert_int_eq(es_close(ref), ES_OK);
  ut_rmrf(dir);
  ut_rmrf(rdir);
}

START_TEST(test_erase_by_anonymous) { erase_by("anon", "anon-V"); }
END_TEST

START_TEST(test_erase_by_user) { erase_by("user", "user-V"); }
END_TEST

START_TEST(test_erase_by_alias) { erase_by("user", "alias-V"); }
END_TEST

/* ---- 4 ------------------------------------------------------------------ */

START_TEST(test_erase_resume) {
  char dir[512], rdir[512];
  ut_tmpdir(dir, sizeof(dir), "erase-resume");
  ut_tmpdir(rdir, sizeof(rdir), "erase-resume-ref");
  es_db *db = open_db(dir, 0), *ref = open_db(rdir, 0);
  int victims = load_all(db, 0);
  load_all(ref, 1);
  es_erase_options eo;
  es_erase_options_init(&eo);
  eo.tenant = "t";
  eo.user_id = "user-V";
  char id[ES_ERASE_ID_MAX];
  ck_assert_int_eq(es_erase_submit(db, &eo, id), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK); /* before any stage ran */
  db = open_db(dir, 0);
  same_answers(db, ref, "reopened, pending", 0);
  ck_assert_int_eq(es_erase_run(db, "t"), ES_OK);
  char *st = NULL;
  ck_assert_int_eq(es_erase_status(db, id, &st), ES_OK);
  char want[64];
  snprintf(want, sizeof(want), "\"events_removed\":%d", victims);
  ck_assert_msg(strstr(st, want), "%s", st);
  es_free(st);
  ck_assert_int_eq(es_close(db), ES_OK);
  ck_assert_int_eq(search_dir(dir), 0);
  ck_assert_int_eq(es_close(ref), ES_OK);
  ut_rmrf(dir);
  ut_rmrf(rdir);
}
END_TEST

/* ---- 5 ------------------------------------------------------------------ */

START_TEST(test_erase_bad_input) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "erase-bad");
  es_db *db = open_db(dir, 0);
  load(db, "t", 0, 20, 0);
  es_erase_options eo;
  es_erase_options_init(&eo);
  char id[ES_ERASE_ID_MAX];
  eo.tenant = "t";
  ck_assert_int_eq(es_erase_submit(db, &eo, id), ES_EINVAL); /* no id */
  eo.user_id = "u";
  eo.anonymous_id = "a";
  ck_assert_int_eq(es_erase_submit(db, &eo, id), ES_EINVAL); /* two */
  eo.anonymous_id = NULL;
  eo.user_id = "null";
  ck_assert_int_eq(es_erase_submit(db, &eo, id), ES_EINVAL);
  eo.user_id = "u";
  eo.tenant = "../x";
  ck_assert_int_eq(es_erase_submit(db, &eo, id), ES_ETENANT);
  char *st = NULL;
  ck_assert_int_eq(es_erase_status(db, "t.99", &st), ES_ENOTFOUND);
  ck_assert_int_eq(es_erase_status(db, "nonsense", &st), ES_ENOTFOUND);
  /* unknown tenant, unknown id: complete with zero events */
  const char *tenants[] = {"nobody", "t"};
  for (int k = 0; k < 2; k++) {
    eo.tenant = tenants[k];
    eo.user_id = "never-seen";
    ck_assert_int_eq(es_erase_submit(db, &eo, id), ES_OK);
    ck_assert_int_eq(es_erase_run(db, NULL), ES_OK);
    ck_assert_int_eq(es_erase_status(db, id, &st), ES_OK);
    ck_assert_msg(strstr(st, "\"events_removed\":0") &&
                      strstr(st, "\"state\":\"done\""),
                  "%s", st);
    es_free(st);
  }
  int n = 0;
  free(ut_scan_ids(db, "t", &n));
  ck_assert_int_eq(n, 20);
  es_db *ro = open_db(dir, 1);
  eo.tenant = "t";
  ck_assert_int_eq(es_erase_submit(ro, &eo, id), ES_EREADONLY);
  ck_assert_int_eq(es_close(ro), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_erase_log_damage) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "erase-log");
  es_db *db = open_db(dir, 0);
  load(db, "t", 0, 20, 0);
  es_erase_options eo;
  es_erase_options_init(&eo);
  eo.tenant = "t";
  eo.anonymous_id = "anon-1";
  char id[ES_ERASE_ID_MAX];
  ck_assert_int_eq(es_erase_submit(db, &eo, id), ES_OK);
  eo.anonymous_id = "anon-2";
  ck_assert_int_eq(es_erase_submit(db, &eo, id), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  snprintf(path, sizeof(path), "%s/tenants/t/ERASE", dir);
  size_t len = 0;
  uint8_t *img = ut_read_file(path, &len);
  es_tomb_log log;
  size_t end = 0;
  memset(&log, 0, sizeof(log));
  ck_assert_int_eq(es__tomb_log_parse(img, len, path, &log, &end), ES_OK);
  ck_assert_uint_eq(end, len);
  ck_assert_uint_eq(log.n, 2);
  es__tomb_log_free(&log);
  /* a torn tail: the last request was never acknowledged */
  memset(&log, 0, sizeof(log));
  ck_assert_int_eq(es__tomb_log_parse(img, len - 3, path, &log, &end), ES_OK);
  ck_assert_uint_eq(log.n, 1);
  es__tomb_log_free(&log);
  /* damage in the middle: reported, not skipped */
  img[20] ^= 0x40;
  memset(&log, 0, sizeof(log));
  ck_assert_int_eq(es__tomb_log_parse(img, len, path, &log, &end), ES_ECORRUPT);
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "damaged record"));
  es__tomb_log_free(&log);
  ut_write_at(path, 0, img, len);
  free(img);
  es_options o; /* the tenant's load at open reports it */
  es_options_init(&o);
  o.data_dir = dir;
  o.shards = 2;
  db = NULL;
  ck_assert_int_eq(es_open(&o, &db), ES_ECORRUPT);
  ck_assert_ptr_null(db);
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "ERASE: damaged record"));
  ut_rmrf(dir);
}
END_TEST

/* ---- stage (e): the replica ----------------------------------------- */

typedef struct obj_search {
  es_objstore *os;
  int hits, objects;
  char where[256];
} obj_search;

static int obj_one(void *ud, const char *key, const es_objinfo *info) {
  obj_search *s = ud;
  (void)info;
  uint8_t *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(s->os->get(s->os, key, 0, ES_OBJ_TO_END, &buf, &len, NULL),
                   ES_OK);
  s->objects++;
  for (int k = 0; k < NNEEDLES; k++)
    if (len && memmem(buf, len, needles[k], strlen(needles[k]))) {
      s->hits++;
      snprintf(s->where, sizeof(s->where), "%s holds %s", key, needles[k]);
    }
  es__free(buf);
  return 0;
}

static int search_objects(es_objstore *os, int *objects_out) {
  obj_search s = {.os = os};
  ck_assert_int_eq(os->list(os, "", NULL, obj_one, &s), ES_OK);
  if (s.hits)
    printf("%s\n", s.where);
  *objects_out = s.objects;
  return s.hits;
}

START_TEST(test_erase_replica) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "erase-replica");
  es_objstore *os = NULL;
  es_replica *rep = NULL;
  ck_assert_int_eq(es__objmem_create(0, 1, &os), ES_OK);
  ck_assert_int_eq(es__replica_wrap(os, 1, &rep), ES_OK);
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.shards = 2;
  o.sync_mode = ES_SYNC_NONE;
  o.replica = rep;
  o.replica_interval_us = 5000;
  o.replica_grace_us = 300000; /* the request waits for it */
  es_db *db = NULL;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  load_all(db, 0);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  ck_assert_int_eq(es_replica_drain(db, 10000000), ES_OK);
  int objects = 0;
  ck_assert_int_gt(search_objects(os, &objects), 0); /* uploaded */
  es_erase_options eo;
  es_erase_options_init(&eo);
  eo.tenant = "t";
  eo.user_id = "alias-V";
  char id[ES_ERASE_ID_MAX];
  ck_assert_int_eq(es_erase_submit(db, &eo, id), ES_OK);
  int64_t t0 = es__clock_mono_us();
  int rc = es_erase_run(db, NULL);
  ck_assert_msg(rc == ES_OK, "run: %s", es_errdetail());
  ck_assert_int_ge(es__clock_mono_us() - t0, 300000); /* waited the grace */
  char *st = NULL;
  ck_assert_int_eq(es_erase_status(db, id, &st), ES_OK);
  ck_assert_msg(strstr(st, "{\"stage\":\"replica\",\"state\":\"done\"") &&
                    !strstr(st, "\"replica_objects_deleted\":0"),
                "%s", st);
  es_free(st);
  /* the compacted ERASE and the new IDENTITY go up with the next sweep */
  ck_assert_int_eq(es_replica_drain(db, 10000000), ES_OK);
  int hits = search_objects(os, &objects);
  ck_assert_msg(hits == 0, "%d objects of %d still hold the person", hits,
                objects);
  ck_assert_int_eq(es_close(db), ES_OK);
  es_replica_free(rep);
  ut_rmrf(dir);
}
END_TEST

/* Durability tier s3: the WAL chunks that held the person (their frames
 * are the WAL's, ids in clear) are deleted from the store before stage
 * (e) is recorded. */
START_TEST(test_erase_replica_tier_s3) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "erase-tier-s3");
  es_objstore *os = NULL;
  es_replica *rep = NULL;
  ck_assert_int_eq(es__objmem_create(0, 1, &os), ES_OK);
  ck_assert_int_eq(es__replica_wrap(os, 1, &rep), ES_OK);
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.shards = 2;
  o.sync_mode = ES_SYNC_NONE;
  o.replica = rep;
  o.replica_interval_us = 5000;
  o.replica_grace_us = 300000;
  o.durability = ES_DURABILITY_S3;
  es_db *db = NULL;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  load_all(db, 0); /* acknowledged: every frame is in a chunk */
  obj_search before = {.os = os};
  ck_assert_int_eq(os->list(os, "wal/", NULL, obj_one, &before), ES_OK);
  ck_assert_msg(before.hits > 0, "no chunk holds the person (%d chunks)",
                before.objects);
  es_erase_options eo;
  es_erase_options_init(&eo);
  eo.tenant = "t";
  eo.user_id = "user-V";
  char id[ES_ERASE_ID_MAX];
  ck_assert_int_eq(es_erase_submit(db, &eo, id), ES_OK);
  int rc = es_erase_run(db, NULL);
  ck_assert_msg(rc == ES_OK, "run: %s", es_errdetail());
  char *st = NULL;
  ck_assert_int_eq(es_erase_status(db, id, &st), ES_OK);
  ck_assert_msg(strstr(st, "{\"stage\":\"replica\",\"state\":\"done\""), "%s",
                st);
  es_free(st);
  /* right when (e) is recorded: no chunk holds the person */
  obj_search after = {.os = os};
  ck_assert_int_eq(os->list(os, "wal/", NULL, obj_one, &after), ES_OK);
  ck_assert_msg(after.hits == 0, "%d chunks of %d hold the person: %s",
                after.hits, after.objects, after.where);
  /* nor, once the compacted ERASE is up, any object */
  ck_assert_int_eq(es_replica_drain(db, 10000000), ES_OK);
  int objects = 0;
  int hits = search_objects(os, &objects);
  ck_assert_msg(hits == 0, "%d objects of %d still hold the person", hits,
                objects);
  ck_assert_int_eq(es_close(db), ES_OK);
  es_replica_free(rep);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_erase_exports) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "erase-exports");
  es_objstore *os = NULL;
  es_xdest *dest = NULL;
  ck_assert_int_eq(es__objmem_create(0, 1, &os), ES_OK);
  ck_assert_int_eq(es__dest_wrap(os, "wh", &dest), ES_OK);
  es_db *db = open_db(dir, 0);
  int victims = load_all(db, 0);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  const char *tenants[] = {"t"};
  es_export_options xo;
  es_export_options_init(&xo);
  xo.out_dir = "unused";
  xo.tenants = tenants;
  xo.tenants_count = 1;
  xo.from_us = T0;
  xo.to_us = T0 + INT64_C(86400) * SEC;
  ck_assert_int_eq(es__export_dest(db, dest, &xo, NULL), ES_OK);
  int objects = 0;
  ck_assert_int_gt(search_objects(os, &objects), 0); /* exported */

  /* an exporter registered, then gone: (f) waits, the rest is done */
  es_exporter_options eo;
  es_exporter_options_init(&eo);
  eo.out = "objmem";
  es_exporter *ex = NULL;
  ck_assert_int_eq(es__exporter_open(db, dest, &eo, &ex), ES_OK);
  es__exporter_close(ex);
  es_erase_options o;
  es_erase_options_init(&o);
  o.tenant = "t";
  o.anonymous_id = "anon-V";
  char id[ES_ERASE_ID_MAX];
  ck_assert_int_eq(es_erase_submit(db, &o, id), ES_OK);
  ck_assert_int_eq(es_erase_run(db, NULL), ES_EDEGRADED);
  char *st = NULL;
  ck_assert_int_eq(es_erase_status(db, id, &st), ES_OK);
  ck_assert_msg(strstr(st, "{\"stage\":\"segments\",\"state\":\"done\"") &&
                    strstr(st, "{\"stage\":\"exports\",\"state\":"
                               "\"pending\"}"),
                "%s", st);
  es_free(st);
  ck_assert_int_gt(search_objects(os, &objects), 0); /* not yet */

  /* a later run with the exporter: every partition of the tenant */
  ck_assert_int_eq(es__exporter_open(db, dest, &eo, &ex), ES_OK);
  int rc = es_erase_run(db, NULL);
  ck_assert_msg(rc == ES_OK, "run: %s", es_errdetail());
  ck_assert_int_eq(es_erase_status(db, id, &st), ES_OK);
  ck_assert_msg(strstr(st, "{\"stage\":\"exports\",\"state\":\"done\"") &&
                    strstr(st, "\"state\":\"done\",\"stages\""),
                "%s", st);
  es_free(st);
  int hits = search_objects(os, &objects);
  ck_assert_msg(hits == 0, "%d objects of %d still hold the person", hits,
                objects);
  ex_manifest m;
  ck_assert_int_eq(es__xmanifest_load(dest, "tenant=t/date=2024-03-01", T0, &m),
                   ES_OK);
  uint64_t rows = 0;
  for (size_t i = 0; i < m.n; i++)
    rows += m.files[i].rows;
  es__xmanifest_free(&m);
  ck_assert_int_eq(rows, NEVENTS - victims); /* everybody else */
  es__exporter_close(ex);
  ck_assert_int_eq(es_close(db), ES_OK);
  es__dest_close(dest);
  es__objstore_destroy(os);
  ut_rmrf(dir);
}
END_TEST

/* ---- 7, 8 --------------------------------------------------------------- */

/* One event of a person, appended; returns the receipt. */
static es_receipt append_one(es_db *db, const char *mid, const char *anon,
                             const char *user, const char *prev,
                             uint8_t *flag) {
  es_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = prev ? ES_TYPE_ALIAS : ES_TYPE_TRACK;
  ev.event = prev ? NULL : "Came Back";
  ev.ts_us = T0 + 5 * SEC;
  ev.message_id = mid;
  ev.anonymous_id = anon;
  ev.user_id = user;
  ev.previous_id = prev;
  es_receipt r;
  uint8_t f = 9;
  int rc = es_append_flagged(db, "t", &ev, 1, &r, &f);
  ck_assert_msg(rc == ES_OK, "append %s: %s", mid, es_errdetail());
  if (flag)
    *flag = f;
  return r;
}

static void erase_submit_run(es_db *db, const char *user, int suppress, int run,
                             char *id) {
  es_erase_options eo;
  es_erase_options_init(&eo);
  eo.tenant = "t";
  eo.user_id = user;
  eo.suppress = suppress;
  ck_assert_int_eq(es_erase_submit(db, &eo, id), ES_OK);
  if (run)
    ck_assert_msg(es_erase_run(db, "t") == ES_OK, "%s", es_errdetail());
}

START_TEST(test_erase_later_events_kept) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "erase-later");
  es_db *db = open_db(dir, 0);
  int victims = load_all(db, 0);
  char id[ES_ERASE_ID_MAX];
  erase_submit_run(db, "user-V", 0, 0, id);
  uint8_t f;
  es_receipt r = append_one(db, "later-1", "anon-V", "user-V", NULL, &f);
  ck_assert_uint_eq(r.stored_count, 1);
  ck_assert_uint_eq(r.suppressed_count, 0);
  ck_assert_uint_eq(f, 0);
  ck_assert_int_eq(timeline_count(db, "user-V"), 0); /* hidden: pending */
  ck_assert_int_eq(es_erase_run(db, "t"), ES_OK);
  char *st = NULL, want[64];
  ck_assert_int_eq(es_erase_status(db, id, &st), ES_OK);
  snprintf(want, sizeof(want), "\"events_removed\":%d", victims);
  ck_assert_msg(strstr(st, want) && !strstr(st, "\"suppress\""), "%s", st);
  es_free(st);
  /* kept: the new event alone, once, also after a reopen */
  ck_assert_int_eq(timeline_count(db, "user-V"), 1);
  ck_assert_int_eq(timeline_count(db, "anon-V"), 1);
  ck_assert_int_eq(es_close(db), ES_OK);
  db = open_db(dir, 0);
  ck_assert_int_eq(timeline_count(db, "user-V"), 1);
  es_stats stats;
  ck_assert_int_eq(es_stats_get(db, &stats), ES_OK);
  ck_assert_uint_eq(stats.events_suppressed, 0);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* Whether any file of dir holds the 16 bytes h. */
static int dir_has_bytes(const char *dir, const char *name, const void *h,
                         size_t n) {
  char path[1024];
  snprintf(path, sizeof(path), "%s/tenants/t/%s", dir, name);
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  static uint8_t buf[1 << 16];
  size_t len = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp(buf + i, h, n) == 0)
      return 1;
  return 0;
}

START_TEST(test_erase_suppress) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "erase-suppress");
  es_db *db = open_db(dir, 0);
  int victims = load_all(db, 0);
  char id[ES_ERASE_ID_MAX];
  erase_submit_run(db, "alias-V", 1, 0, id);
  /* pending: a batch of the person's three ids and another person */
  es_event ev[4];
  memset(ev, 0, sizeof(ev));
  const char *anon[4] = {"anon-V", "anon-new", "anon-7", "anon-new2"};
  const char *user[4] = {NULL, "user-V", "user-7", "brand-new"};
  for (int i = 0; i < 4; i++) {
    ev[i].type = i == 3 ? ES_TYPE_ALIAS : ES_TYPE_IDENTIFY;
    ev[i].ts_us = T0 + i * SEC;
    ev[i].anonymous_id = anon[i];
    ev[i].user_id = user[i];
  }
  ev[3].previous_id = "alias-V"; /* a later link to the person: dropped */
  es_receipt r;
  uint8_t flags[4];
  ck_assert_int_eq(es_append_flagged(db, "t", ev, 4, &r, flags), ES_OK);
  ck_assert_uint_eq(r.events_count, 4);
  ck_assert_uint_eq(r.stored_count, 1);
  ck_assert_uint_eq(r.suppressed_count, 3);
  ck_assert(flags[0] == 2 && flags[1] == 2 && flags[2] == 0 && flags[3] == 2);
  ck_assert_int_eq(timeline_count(db, "user-7") > 0, 1);
  ck_assert_int_eq(es_erase_run(db, "t"), ES_OK);
  char *st = NULL, want[64];
  ck_assert_int_eq(es_erase_status(db, id, &st), ES_OK);
  snprintf(want, sizeof(want), "\"events_removed\":%d", victims);
  ck_assert_msg(strstr(st, want) && strstr(st, "\"suppress\":true") &&
                    strstr(st, "\"state\":\"done\""),
                "%s", st);
  es_free(st);
  /* completed: still dropped; all of a batch of them: lsn 0 */
  r = append_one(db, "after-1", "anon-x", "user-V", NULL, NULL);
  ck_assert(r.stored_count == 0 && r.suppressed_count == 1 && r.lsn == 0);
  ck_assert_int_eq(timeline_count(db, "user-V"), 0);
  ck_assert_int_eq(timeline_count(db, "anon-x"), 0);
  es_stats stats;
  ck_assert_int_eq(es_stats_get(db, &stats), ES_OK);
  ck_assert_uint_eq(stats.events_suppressed, 4);
  ck_assert_int_eq(es_close(db), ES_OK);
  /* the ids are not on disk, their salted hashes are */
  ck_assert_int_eq(search_dir(dir), 0);
  es_tomb_log log;
  size_t end;
  char tdir[600];
  snprintf(tdir, sizeof(tdir), "%s/tenants/t", dir);
  ck_assert_int_eq(es__tomb_log_read(es__vfs_posix(), tdir, &log, &end), ES_OK);
  ck_assert_uint_eq(log.nsuppress, 3);
  uint8_t h[16];
  es__tomb_hash(&log, "anon-V", h);
  ck_assert(dir_has_bytes(dir, ES_TOMB_LOG, h, 16));
  es__tomb_log_free(&log);
  /* after a reopen: still dropped */
  db = open_db(dir, 0);
  r = append_one(db, "after-2", "anon-V", NULL, NULL, NULL);
  ck_assert_uint_eq(r.suppressed_count, 1);
  ck_assert_int_eq(timeline_count(db, "anon-V"), 0);
  /* lifted by another of the ids: stored again */
  es_erase_options eo;
  es_erase_options_init(&eo);
  eo.tenant = "t";
  eo.user_id = "nobody";
  size_t lifted = 9;
  ck_assert_int_eq(es_erase_unsuppress(db, &eo, &lifted), ES_OK);
  ck_assert_uint_eq(lifted, 0);
  eo.user_id = "user-V";
  ck_assert_int_eq(es_erase_unsuppress(db, &eo, &lifted), ES_OK);
  ck_assert_uint_eq(lifted, 3);
  r = append_one(db, "after-3", "anon-V", NULL, NULL, NULL);
  ck_assert(r.stored_count == 1 && r.suppressed_count == 0);
  ck_assert_int_eq(timeline_count(db, "anon-V"), 1);
  ck_assert_int_eq(es_close(db), ES_OK);
  db = open_db(dir, 0); /* the lift is durable */
  r = append_one(db, "after-4", NULL, "alias-V", NULL, NULL);
  ck_assert_uint_eq(r.stored_count, 1);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* Lifting while the request is pending: its later events are kept. */
START_TEST(test_erase_suppress_lift_pending) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "erase-suppress-lift");
  es_db *db = open_db(dir, 0);
  load_all(db, 0);
  char id[ES_ERASE_ID_MAX];
  erase_submit_run(db, "user-V", 1, 0, id);
  es_receipt r = append_one(db, "p-1", "anon-V", NULL, NULL, NULL);
  ck_assert_uint_eq(r.suppressed_count, 1);
  es_erase_options eo;
  es_erase_options_init(&eo);
  eo.tenant = "t";
  eo.anonymous_id = "anon-V";
  size_t lifted = 0;
  ck_assert_int_eq(es_erase_unsuppress(db, &eo, &lifted), ES_OK);
  ck_assert_uint_eq(lifted, 3);
  r = append_one(db, "p-2", "anon-V", NULL, NULL, NULL);
  ck_assert_uint_eq(r.stored_count, 1);
  ck_assert_int_eq(es_erase_run(db, "t"), ES_OK);
  ck_assert_int_eq(timeline_count(db, "anon-V"), 1); /* p-2 only */
  r = append_one(db, "p-3", "anon-V", NULL, NULL, NULL);
  ck_assert_uint_eq(r.stored_count, 1);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

static Suite *erase_suite(void) {
  Suite *s = suite_create("erase");
  TCase *tc = tcase_create("erase");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_erase_by_anonymous);
  tcase_add_test(tc, test_erase_by_user);
  tcase_add_test(tc, test_erase_by_alias);
  tcase_add_test(tc, test_erase_resume);
  tcase_add_test(tc, test_erase_bad_input);
  tcase_add_test(tc, test_erase_log_damage);
  tcase_add_test(tc, test_erase_replica);
  tcase_add_test(tc, test_erase_exports);
  tcase_add_test(tc, test_erase_replica_tier_s3);
  tcase_add_test(tc, test_erase_later_events_kept);
  tcase_add_test(tc, test_erase_suppress);
  tcase_add_test(tc, test_erase_suppress_lift_pending);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(erase_suite()); }
