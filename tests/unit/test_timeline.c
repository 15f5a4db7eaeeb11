/*
 * test_timeline.c -- identity stitching (lib/identity.c) and person
 * timelines (lib/timeline.c), and how es_query applies stitching.
 *
 *  1. The identity map directly: guardrail values never link, alias and
 *     identify chains are transitive, the ES_IDENTITY_IDS_MAX cap ignores
 *     a link whole, unknown ids are their own person.
 *  2. Stitching through es_query: anonymous events stored before the
 *     identify count for the person (uniques and filter.person), alias
 *     chains, guardrail values, the cap.
 *  3. es_timeline_open against a brute force (every event of the person's
 *     ids, by the independent model of bf_identity.h, in reverse scan
 *     order, first N) over two segments and a memtable with many equal
 *     timestamps: several persons, limits 1, 7, more than exist, unknown
 *     person.
 *  4. Every allocation of es_timeline_open failing, one at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "bf_identity.h"
#include "eventstore.h"
#include "engine/identity.h"
#include "base/mem.h"
#include "unit.h"

/* 2024-03-01T00:00:00Z */
#define T0 INT64_C(1709251200000000)
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static es_db *open_db(const char *dir) {
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.shards = 2;
  o.sync_mode = ES_SYNC_NONE;
  o.wal_file_bytes = 1 << 20;
  es_db *db = NULL;
  int rc = es_open(&o, &db);
  ck_assert_msg(rc == ES_OK, "es_open: %s: %s", es_strerror(rc),
                es_errdetail());
  return db;
}

/* One event of the given type and ids at T0 + sec seconds. */
static es_event mk(int type, int sec, const char *user, const char *anon,
                   const char *prev) {
  es_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.ts_us = T0 + (int64_t)sec * 1000000;
  ev.type = type;
  ev.event = type == ES_TYPE_TRACK ? "E" : NULL;
  ev.user_id = user;
  ev.anonymous_id = anon;
  ev.previous_id = prev;
  return ev;
}

static void append1(es_db *db, const char *tenant, es_event ev) {
  int rc = es_append(db, tenant, &ev, 1, NULL);
  ck_assert_msg(rc == ES_OK, "es_append: %s", es_errdetail());
}

/* The result text of a query that must succeed.  Exact uniques: these
 * tests are about stitching, which only exact (scanning) answers apply. */
static void query_is(es_db *db, const char *tenant, const char *spec_in,
                     const char *rows) {
  char *out = NULL, want[1024], spec[1024];
  snprintf(spec, sizeof(spec), "{\"exact\":true,%s", spec_in + 1);
  int rc = es_query(db, tenant, spec, &out);
  ck_assert_msg(rc == ES_OK, "%s: %s", spec, es_errdetail());
  snprintf(want, sizeof(want),
           "{\"rows\":[%s],\"source\":\"scan\",\"approx\":false}", rows);
  ck_assert_msg(strcmp(out, want) == 0, "%s:\n got  %s\n want %s", spec, out,
                want);
  es_free(out);
}

/* ---- 1. the map ----------------------------------------------------- */

static int link_ok(es_identity *m, const char *a, const char *b) {
  int linked = -1;
  ck_assert_int_eq(es__identity_link(m, a, b, &linked), ES_OK);
  return linked;
}

START_TEST(test_map) {
  es_identity *m;
  ck_assert_int_eq(es__identity_new(&m), ES_OK);
  static const char *const never[] = {"",          "null",     "NULL",
                                      "undefined", "0",        "anonymous",
                                      "Anonymous", "UNDEFINED"};
  for (size_t i = 0; i < NELEM(never); i++) {
    ck_assert(!es__identity_linkable(never[i]));
    ck_assert_int_eq(link_ok(m, "u1", never[i]), 0);
    ck_assert_int_eq(link_ok(m, never[i], "u1"), 0);
  }
  ck_assert(!es__identity_linkable(NULL));
  ck_assert(es__identity_linkable("00") && es__identity_linkable("nul"));
  ck_assert_int_eq(link_ok(m, "u1", NULL), 0);
  const char *ids[ES_IDENTITY_IDS_MAX];
  ck_assert_uint_eq(es__identity_ids(m, "u1", ids), 1);
  ck_assert_str_eq(ids[0], "u1");
  ck_assert_str_eq(es__identity_root(m, "nobody"), "nobody");
  /* chains: a1 - u1, u1 -> u2 (alias), u2 -> u3 */
  ck_assert_int_eq(link_ok(m, "u1", "a1"), 1);
  ck_assert_int_eq(link_ok(m, "u1", "u2"), 1);
  ck_assert_int_eq(link_ok(m, "u2", "u3"), 1);
  ck_assert_int_eq(link_ok(m, "u3", "a1"), 1); /* already one person */
  ck_assert_str_eq(es__identity_root(m, "a1"), es__identity_root(m, "u3"));
  ck_assert_uint_eq(es__identity_ids(m, "u2", ids), 4);
  int seen = 0;
  for (int i = 0; i < 4; i++)
    seen |= strcmp(ids[i], "a1") == 0   ? 1
            : strcmp(ids[i], "u1") == 0 ? 2
            : strcmp(ids[i], "u2") == 0 ? 4
            : strcmp(ids[i], "u3") == 0 ? 8
                                        : 16;
  ck_assert_int_eq(seen, 15);
  /* the cap: 100 ids link, the 101st is ignored, and so is a merge of
   * two persons beyond it */
  char name[32];
  for (int i = 0; i < ES_IDENTITY_IDS_MAX; i++) {
    snprintf(name, sizeof(name), "c%d", i);
    ck_assert_int_eq(link_ok(m, "cap", name), i < ES_IDENTITY_IDS_MAX - 1);
  }
  ck_assert_uint_eq(es__identity_ids(m, "cap", ids), ES_IDENTITY_IDS_MAX);
  ck_assert_str_eq(es__identity_root(m, "c99"), "c99");
  ck_assert_int_eq(link_ok(m, "c5", "u1"), 0);
  ck_assert_str_ne(es__identity_root(m, "c5"), es__identity_root(m, "u1"));
  for (int i = 0; i < 60; i++) {
    snprintf(name, sizeof(name), "d%d", i);
    ck_assert_int_eq(link_ok(m, "d", name), 1);
    snprintf(name, sizeof(name), "e%d", i);
    ck_assert_int_eq(link_ok(m, "e", name), 1);
  }
  ck_assert_int_eq(link_ok(m, "d7", "e9"), 0); /* 61 + 61 > 100 */
  ck_assert_uint_eq(es__identity_ids(m, "d", ids), 61);
  es__identity_free(m);
  es__identity_free(NULL);
}
END_TEST

/* ---- 1b. unlink records --------------------------------------------- */

START_TEST(test_unlink) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "tl-unlink");
  es_db *db = open_db(dir);
  append1(db, "t", mk(ES_TYPE_TRACK, 1, NULL, "a1", NULL));
  append1(db, "t", mk(ES_TYPE_TRACK, 2, "u1", NULL, NULL));
  append1(db, "t", mk(ES_TYPE_IDENTIFY, 3, "u1", "a1", NULL));
  query_is(db, "t", "{\"aggregate\":[\"uniques\"]}", "{\"uniques\":1}");
  /* undone: the identify at second 3 no longer links */
  int64_t t3 = mk(ES_TYPE_TRACK, 3, NULL, "x", NULL).ts_us;
  ck_assert_int_eq(es_identity_unlink(db, "t", "a1", "u1", t3), ES_OK);
  query_is(db, "t", "{\"aggregate\":[\"uniques\"]}", "{\"uniques\":2}");
  query_is(db, "t", "{\"filter\":{\"person\":\"u1\"}}", "{\"count\":2}");
  /* durable: the same after a reopen */
  ck_assert_int_eq(es_close(db), ES_OK);
  db = open_db(dir);
  query_is(db, "t", "{\"aggregate\":[\"uniques\"]}", "{\"uniques\":2}");
  /* a later identify links them again */
  append1(db, "t", mk(ES_TYPE_IDENTIFY, 4, "a1", "u1", NULL));
  query_is(db, "t", "{\"aggregate\":[\"uniques\"]}", "{\"uniques\":1}");
  /* bad calls */
  ck_assert_int_eq(es_identity_unlink(db, "t", "null", "u1", 0), ES_EINVAL);
  ck_assert_int_eq(es_identity_unlink(db, "t", "a1", NULL, 0), ES_EINVAL);
  ck_assert_int_eq(es_identity_unlink(db, "../t", "a1", "u1", 0), ES_ETENANT);
  /* a torn append at the end of the log is written over */
  ck_assert_int_eq(es_close(db), ES_OK);
  char path[600];
  snprintf(path, sizeof(path), "%s/tenants/t/IDENTITY", dir);
  uint64_t size = ut_file_size(path);
  ut_write_at(path, size, "\x30\0\0\0garbage", 11);
  db = open_db(dir);
  query_is(db, "t", "{\"aggregate\":[\"uniques\"]}", "{\"uniques\":1}");
  int64_t t9 = mk(ES_TYPE_TRACK, 9, NULL, "x", NULL).ts_us;
  ck_assert_int_eq(es_identity_unlink(db, "t", "u1", "a1", t9), ES_OK);
  query_is(db, "t", "{\"aggregate\":[\"uniques\"]}", "{\"uniques\":2}");
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* ---- 2. stitching in es_query ---------------------------------------- */

START_TEST(test_query_stitching) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "tl-q");
  es_db *db = open_db(dir);
  /* a1 browses anonymously, flushed into a segment; then signs in as u1 */
  append1(db, "t", mk(ES_TYPE_TRACK, 1, NULL, "a1", NULL));
  append1(db, "t", mk(ES_TYPE_TRACK, 2, "", "a1", NULL));
  append1(db, "t", mk(ES_TYPE_TRACK, 3, NULL, "a2", NULL));
  ck_assert_int_eq(es_flush(db, "t"), ES_OK);
  query_is(db, "t", "{\"aggregate\":[\"uniques\"]}", "{\"uniques\":2}");
  append1(db, "t", mk(ES_TYPE_TRACK, 4, "u1", NULL, NULL));
  query_is(db, "t", "{\"aggregate\":[\"uniques\"]}", "{\"uniques\":3}");
  query_is(db, "t", "{\"filter\":{\"person\":\"u1\"}}", "{\"count\":1}");
  /* the identify is stored later but links at once, also backwards */
  append1(db, "t", mk(ES_TYPE_IDENTIFY, 5, "u1", "a1", NULL));
  query_is(db, "t", "{\"aggregate\":[\"uniques\"]}", "{\"uniques\":2}");
  query_is(db, "t", "{\"filter\":{\"person\":\"u1\"}}", "{\"count\":4}");
  query_is(db, "t", "{\"filter\":{\"person\":\"a1\"}}", "{\"count\":4}");
  query_is(db, "t",
           "{\"filter\":{\"person\":\"a1\",\"type\":\"track\"},"
           "\"aggregate\":[\"count\",\"uniques\"]}",
           "{\"count\":3,\"uniques\":1}");
  /* an alias chain: u1 -> u2, then a2 -> u2 */
  append1(db, "t", mk(ES_TYPE_ALIAS, 6, "u2", NULL, "u1"));
  append1(db, "t", mk(ES_TYPE_ALIAS, 7, "u2", NULL, "a2"));
  query_is(db, "t", "{\"aggregate\":[\"uniques\"]}", "{\"uniques\":1}");
  query_is(db, "t", "{\"filter\":{\"person\":\"a2\"}}", "{\"count\":7}");
  /* guardrail values never link: "null" and "Anonymous" stay apart */
  append1(db, "t", mk(ES_TYPE_IDENTIFY, 8, "null", "a3", NULL));
  append1(db, "t", mk(ES_TYPE_IDENTIFY, 9, "u9", "Anonymous", NULL));
  append1(db, "t", mk(ES_TYPE_TRACK, 10, NULL, "Anonymous", NULL));
  append1(db, "t", mk(ES_TYPE_ALIAS, 11, "u2", NULL, "undefined"));
  append1(db, "t", mk(ES_TYPE_TRACK, 12, "undefined", NULL, NULL));
  query_is(db, "t",
           "{\"groupBy\":[\"type\"],\"aggregate\":[\"count\",\"uniques\"]}",
           "{\"type\":\"alias\",\"count\":3,\"uniques\":1},"
           "{\"type\":\"identify\",\"count\":3,\"uniques\":3},"
           "{\"type\":\"track\",\"count\":6,\"uniques\":3}");
  query_is(db, "t", "{\"filter\":{\"person\":\"a3\"}}", "{\"count\":1}");
  query_is(db, "t", "{\"filter\":{\"person\":\"Anonymous\"}}", "{\"count\":2}");
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_query_cap) {
  char dir[512], anon[ES_IDENTITY_IDS_MAX + 1][16];
  ut_tmpdir(dir, sizeof(dir), "tl-cap");
  es_db *db = open_db(dir);
  /* one track event per anonymous id, then 101 identifies linking them
   * all to "big": the first 99 fit (100 ids), the last two are ignored */
  for (int i = 0; i <= ES_IDENTITY_IDS_MAX; i++) {
    snprintf(anon[i], sizeof(anon[i]), "x%d", i);
    append1(db, "t", mk(ES_TYPE_TRACK, i, NULL, anon[i], NULL));
  }
  ck_assert_int_eq(es_flush(db, "t"), ES_OK);
  for (int i = 0; i <= ES_IDENTITY_IDS_MAX; i++)
    append1(db, "t", mk(ES_TYPE_IDENTIFY, 1000 + i, "big", anon[i], NULL));
  query_is(db, "t",
           "{\"filter\":{\"type\":\"track\"},\"aggregate\":[\"uniques\"]}",
           "{\"uniques\":3}");
  query_is(db, "t", "{\"filter\":{\"type\":\"track\",\"person\":\"big\"}}",
           "{\"count\":99}");
  query_is(db, "t", "{\"filter\":{\"type\":\"track\",\"person\":\"x100\"}}",
           "{\"count\":1}");
  /* the timeline of the capped person: 99 tracks and 101 identifies */
  es_timeline *tl;
  ck_assert_int_eq(es_timeline_open(db, "t", "x5", 1000, &tl), ES_OK);
  es_event ev;
  int n = 0;
  while (es_timeline_next(tl, &ev) == 1)
    n++;
  ck_assert_int_eq(n, 99 + ES_IDENTITY_IDS_MAX + 1);
  es_timeline_close(tl);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* ---- 3. timelines against a brute force ------------------------------ */

static uint64_t rng_next(uint64_t *x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return *x;
}
#define RND(x, n) ((int)(rng_next(x) % (uint64_t)(n)))

#define NANON 200
#define NUSER 60

/* An owned copy of an event, as the brute force keeps it. */
typedef struct bev {
  es_event ev;
  char *s[6];
} bev;

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void bev_copy(bev *b, const es_event *ev) {
  b->ev = *ev;
  const char **f[] = {&b->ev.event,   &b->ev.anonymous_id,
                      &b->ev.user_id, &b->ev.previous_id,
                      &b->ev.path,    &b->ev.message_id};
  for (int i = 0; i < 6; i++)
    *f[i] = b->s[i] = dup_or_null(*f[i]);
  b->ev.url = b->ev.referrer = b->ev.properties = NULL;
  b->ev.user_agent = b->ev.ip = b->ev.group_id = NULL;
}

/* Appends random events: tracks and pages of many ids, sparse identify
 * and alias links (some with guardrail values), timestamps from a small
 * range so that many are equal; flushed at 1/3 and 2/3. */
static void fill(es_db *db, const char *tenant, int count, uint64_t *x) {
  static const char *const junk[] = {"",          "null",      "0",
                                     "undefined", "Anonymous", NULL};
  char anon[NANON][8], user[NUSER][8], mid[32];
  for (int i = 0; i < NANON; i++)
    snprintf(anon[i], sizeof(anon[i]), "a%d", i);
  for (int i = 0; i < NUSER; i++)
    snprintf(user[i], sizeof(user[i]), "u%d", i);
  for (int i = 0; i < count; i++) {
    int k = RND(x, 100), type = k < 6    ? ES_TYPE_IDENTIFY
                                : k < 9  ? ES_TYPE_ALIAS
                                : k < 60 ? ES_TYPE_TRACK
                                         : ES_TYPE_PAGE;
    const char *a = RND(x, 8) ? anon[RND(x, NANON)] : junk[RND(x, 6)];
    const char *u = RND(x, 3)   ? NULL
                    : RND(x, 8) ? user[RND(x, NUSER)]
                                : junk[RND(x, 6)];
    const char *p = NULL;
    if (type == ES_TYPE_IDENTIFY && RND(x, 4))
      u = user[RND(x, NUSER)];
    if (type == ES_TYPE_ALIAS) {
      u = user[RND(x, NUSER)];
      p = RND(x, 2) ? user[RND(x, NUSER)] : anon[RND(x, NANON)];
      a = NULL;
    }
    es_event ev = mk(type, RND(x, 400), u, a, p);
    snprintf(mid, sizeof(mid), "m%d", i);
    ev.message_id = mid;
    ev.path = type == ES_TYPE_PAGE ? "/p" : NULL;
    append1(db, tenant, ev);
    if (i == count / 3 || i == 2 * count / 3)
      ck_assert_int_eq(es_flush(db, tenant), ES_OK);
  }
}

/* Every event of the tenant in scan order (time, then append order). */
typedef struct bevs {
  bev *all;
  size_t n, cap;
} bevs;

static void bevs_add(void *ud, const es_event *ev) {
  bevs *b = ud;
  if (b->n == b->cap)
    b->all = realloc(b->all, (b->cap = b->cap ? 2 * b->cap : 64) * sizeof(bev));
  bev_copy(&b->all[b->n++], ev);
}

static bev *load_all(es_db *db, const char *tenant, size_t *n_out) {
  bevs b = {NULL, 0, 0};
  *n_out = ut_scan(db, tenant, bevs_add, &b);
  return b.all ? b.all : malloc(1);
}

/* Compares es_timeline_open(person, limit) with the brute force. */
static void check_timeline(es_db *db, const char *tenant, const bev *all,
                           size_t n, const bf_ids *ids, const char *person,
                           size_t limit, int *nonempty) {
  es_timeline *tl;
  int rc = es_timeline_open(db, tenant, person, limit, &tl);
  ck_assert_msg(rc == ES_OK, "timeline %s: %s", person, es_errdetail());
  size_t got = 0;
  es_event ev;
  for (size_t i = n; i-- > 0 && got < limit;) {
    const es_event *w = &all[i].ev;
    if (!bf_same(ids, person, w->user_id) &&
        !bf_same(ids, person, w->anonymous_id) &&
        !(w->user_id && strcmp(w->user_id, person) == 0) &&
        !(w->anonymous_id && strcmp(w->anonymous_id, person) == 0))
      continue;
    char what[128];
    snprintf(what, sizeof(what), "%s limit %zu event %zu", person, limit, got);
    ck_assert_msg(es_timeline_next(tl, &ev) == 1, "%s: missing", what);
    es_event g = ev;
    g.url = g.referrer = g.properties = g.user_agent = g.ip = g.group_id = NULL;
    ut_event_eq(&g, w, what);
    got++;
  }
  ck_assert_msg(es_timeline_next(tl, &ev) == 0, "%s limit %zu: extra events",
                person, limit);
  ck_assert_int_eq(es_timeline_next(tl, &ev), 0);
  *nonempty += got > 0;
  es_timeline_close(tl);
}

START_TEST(test_timeline_random) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "tl-rand");
  es_db *db = open_db(dir);
  uint64_t x = UINT64_C(0x2545F4914F6CDD1D) ^ (uint64_t)(_i + 1);
  fill(db, "t", 1500, &x);
  fill(db, "other", 300, &x); /* another tenant's ids never mix in */
  size_t n;
  bev *all = load_all(db, "t", &n);
  ck_assert_uint_eq(n, 1500);
  bf_ids ids = {0};
  for (size_t i = 0; i < n; i++)
    bf_apply(&ids, all[i].ev.type, all[i].ev.user_id, all[i].ev.anonymous_id,
             all[i].ev.previous_id);
  static const char *const persons[] = {
      "u0", "u1", "u7", "a3", "a42", "a199", "null", "nobody", "Anonymous"};
  static const size_t limits[] = {1, 7, 100000, 5000000};
  int nonempty = 0;
  for (size_t p = 0; p < NELEM(persons); p++)
    for (size_t l = 0; l < NELEM(limits); l++)
      check_timeline(db, "t", all, n, &ids, persons[p], limits[l], &nonempty);
  ck_assert_int_ge(nonempty, 20);
  /* unknown tenant, unknown person: empty */
  es_timeline *tl;
  es_event ev;
  ck_assert_int_eq(es_timeline_open(db, "nosuch", "u0", 5, &tl), ES_OK);
  ck_assert_int_eq(es_timeline_next(tl, &ev), 0);
  es_timeline_close(tl);
  /* bad arguments */
  tl = (es_timeline *)1;
  ck_assert_int_eq(es_timeline_open(db, "t", "u0", 0, &tl), ES_EINVAL);
  ck_assert_ptr_null(tl);
  ck_assert_int_eq(es_timeline_open(db, "t", NULL, 1, &tl), ES_EINVAL);
  ck_assert_int_eq(es_timeline_open(db, "bad tenant", "u0", 1, &tl),
                   ES_ETENANT);
  ck_assert_int_eq(es_timeline_open(db, "t", "u0", 1, NULL), ES_EINVAL);
  ck_assert_int_eq(es_timeline_next(NULL, &ev), ES_EINVAL);
  es_timeline_close(NULL);
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < 6; k++)
      free(all[i].s[k]);
  free(all);
  bf_free(&ids);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* ---- 4. allocation failures --------------------------------------------- */

START_TEST(test_timeline_alloc_failures) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "tl-mem");
  es_db *db = open_db(dir);
  /* memtable rows only: see test_query.c on segment decode failures */
  append1(db, "t", mk(ES_TYPE_TRACK, 1, NULL, "a1", NULL));
  append1(db, "t", mk(ES_TYPE_IDENTIFY, 2, "u1", "a1", NULL));
  append1(db, "t", mk(ES_TYPE_ALIAS, 3, "u2", NULL, "u1"));
  for (int i = 0; i < 40; i++)
    append1(db, "t", mk(ES_TYPE_PAGE, 10 + i, i % 2 ? "u2" : NULL, "a1", NULL));
  int rc = ES_ENOMEM;
  unsigned long k;
  es_timeline *tl = NULL;
  for (k = 1; rc != ES_OK; k++) {
    tl = (es_timeline *)1;
    es__mem_fail_at(k);
    rc = es_timeline_open(db, "t", "u2", 30, &tl);
    es__mem_fail_at(0);
    if (rc != ES_OK) {
      ck_assert_msg(rc == ES_ENOMEM, "allocation %lu: got %d: %s", k, rc,
                    es_errdetail());
      ck_assert_ptr_null(tl);
    }
  }
  ck_assert_uint_gt(k, 10);
  es_event ev;
  int n = 0;
  int64_t last = INT64_MAX;
  while (es_timeline_next(tl, &ev) == 1) {
    ck_assert(ev.ts_us <= last);
    last = ev.ts_us;
    n++;
  }
  ck_assert_int_eq(n, 30);
  es_timeline_close(tl);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

static Suite *timeline_suite(void) {
  Suite *s = suite_create("timeline");
  TCase *tc = tcase_create("timeline");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_map);
  tcase_add_test(tc, test_query_stitching);
  tcase_add_test(tc, test_unlink);
  tcase_add_test(tc, test_query_cap);
  tcase_add_loop_test(tc, test_timeline_random, 0, 3);
  tcase_add_test(tc, test_timeline_alloc_failures);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(timeline_suite()); }
