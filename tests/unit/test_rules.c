/*
 * test_rules.c -- unit tests of behaviour segments (lib/rules.{h,c}):
 * rules, their durable list, sliding-window counters, members and
 * triggers.
 *
 * What must hold:
 *  1. Every bad field of a rule is ES_EINVAL with "rule: " naming it;
 *     rules round-trip to a canonical JSON.
 *  2. Against a brute-force model over random events (several visitors,
 *     times in order): the trigger fires exactly when a visitor becomes a
 *     member with the event just appended (once per crossing, again after
 *     dropping out and coming back), before es_append returns; members and
 *     checks at random times equal the model's.
 *  3. A rule created over existing data starts with the members that data
 *     makes; replacing and deleting work; limits hold.
 *  4. Rules and counters survive a reopen (counters rebuilt from segments
 *     and WAL replay give the same members), and replay fires no trigger.
 *  5. Per person: a link that joins two ids whose events together reach
 *     atLeast fires once, for the person named by its smallest id; a
 *     matching event of a linked id fires for the person; an unlink splits
 *     the person again (members, checks, and the writer's next crossing);
 *     es_rule_members stays per id.  (tests/sim checks es_rule_persons
 *     against a stitching model over random links and unlinks.)
 *  6. The persisted rule state (RSTATE): an open takes the counters from
 *     it (a visitor planted in the file shows up), replays only the WAL
 *     rows above its LSN (members equal the ones before the close), and
 *     counts from the rows instead when the file is damaged or older than
 *     the flushed rows; the member series keeps a point per hour recorded
 *     at flushes, across reopens, and a read-only handle reads it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/rules.h"
#include "eventstore.h"
#include "unit.h"

#define T0 INT64_C(1709251200000000)
#define MIN_US INT64_C(60000000)
#define NV 6 /* visitors */

/* ---- triggers, recorded ------------------------------------------------ */

typedef struct fired {
  char rule[65], person[64];
  int64_t ts;
  uint32_t count;
} fired;

static fired g_fired[4096];
static int g_nfired;

static void on_trigger(void *ud, const es_trigger *t) {
  (void)ud;
  ck_assert_int_lt(g_nfired, 4096);
  fired *f = &g_fired[g_nfired++];
  snprintf(f->rule, sizeof(f->rule), "%s", t->rule);
  snprintf(f->person, sizeof(f->person), "%s", t->person);
  f->ts = t->ts_us;
  f->count = t->count;
}

static es_db *open_db(const char *dir) {
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.shards = 2;
  o.sync_mode = ES_SYNC_NONE;
  o.trigger.fn = on_trigger;
  es_db *db = NULL;
  int rc = es_open(&o, &db);
  ck_assert_msg(rc == ES_OK, "es_open: %s", es_errdetail());
  return db;
}

static void put_ok(es_db *db, const char *tenant, const char *rule) {
  int rc = es_rule_put(db, tenant, rule);
  ck_assert_msg(rc == ES_OK, "%s: %s", rule, es_errdetail());
}

/* ---- 1. parsing ------------------------------------------------------- */

START_TEST(test_rule_parse) {
  static const struct {
    const char *json, *field;
  } bad[] = {
      {"[]", "object"},
      {"{\"match\":{},\"within\":\"1d\"}", "\"name\""},
      {"{\"name\":\"a/b\",\"within\":\"1d\"}", "\"name\""},
      {"{\"name\":\"a\"}", "\"within\""},
      {"{\"name\":\"a\",\"within\":\"7w\"}", "\"within\""},
      {"{\"name\":\"a\",\"within\":\"0d\"}", "\"within\""},
      {"{\"name\":\"a\",\"within\":\"367d\"}", "\"within\""},
      {"{\"name\":\"a\",\"within\":\"d\"}", "\"within\""},
      {"{\"name\":\"a\",\"within\":\"1d\",\"atLeast\":0}", "\"atLeast\""},
      {"{\"name\":\"a\",\"within\":\"1d\",\"atLeast\":1001}", "\"atLeast\""},
      {"{\"name\":\"a\",\"within\":\"1d\",\"atLeast\":\"3\"}", "\"atLeast\""},
      {"{\"name\":\"a\",\"within\":\"1d\",\"match\":[]}", "\"match\""},
      {"{\"name\":\"a\",\"within\":\"1d\",\"match\":{\"type\":\"x\"}}",
       "\"match.type\""},
      {"{\"name\":\"a\",\"within\":\"1d\",\"match\":{\"path\":3}}",
       "\"match.path\""},
      {"{\"name\":\"a\",\"within\":\"1d\",\"match\":{\"user\":\"u\"}}",
       "\"match.user\""},
      {"{\"name\":\"a\",\"within\":\"1d\",\"every\":2}", "\"every\""},
      {"{\"name\":", "JSON"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    es_rule *r = (es_rule *)1;
    ck_assert_int_eq(es__rule_parse(bad[i].json, &r), ES_EINVAL);
    ck_assert_ptr_null(r);
    ck_assert_msg(strncmp(es_errdetail(), "rule: ", 6) == 0 &&
                      strstr(es_errdetail(), bad[i].field),
                  "%s: %s", bad[i].json, es_errdetail());
  }
  es_rule *r;
  ck_assert_int_eq(
      es__rule_parse("{\"within\":\"7d\",\"atLeast\":3,\"match\":{\"path\":"
                     "\"/pricing\",\"type\":\"page\"},\"name\":\"pricing-3x\"}",
                     &r),
      ES_OK);
  ck_assert_str_eq(r->json, "{\"name\":\"pricing-3x\",\"match\":{\"type\":"
                            "\"page\",\"path\":\"/pricing\"},\"atLeast\":3,"
                            "\"within\":\"7d\"}");
  ck_assert_int_eq(r->within_us, INT64_C(7) * 86400 * 1000000);
  es__rule_free(r);
}
END_TEST

/* ---- 2. against a model --------------------------------------------- */

/* The model: every matching event of every visitor, kept. */
typedef struct model {
  int64_t ts[NV][2048];
  int n[NV];
} model;

static int model_count(const model *m, int v, int64_t at, int64_t within) {
  int c = 0;
  for (int i = 0; i < m->n[v]; i++)
    c += m->ts[v][i] <= at && m->ts[v][i] > at - within;
  return c;
}

START_TEST(test_rule_model) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "rules-model");
  es_db *db = open_db(dir);
  const int at_least = 2 + _i % 3;
  const int64_t within = (5 + 10 * _i) * MIN_US;
  char rule[256];
  snprintf(rule, sizeof(rule),
           "{\"name\":\"r\",\"match\":{\"type\":\"page\",\"path\":\"/pricing\""
           "},\"atLeast\":%d,\"within\":\"%dm\"}",
           at_least, 5 + 10 * _i);
  put_ok(db, "m", rule);
  static model m;
  memset(&m, 0, sizeof(m));
  uint64_t x = 0x1234 + (uint64_t)_i;
  int64_t t = T0;
  int crossings = 0;
  for (int step = 0; step < 1500; step++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    t += (int64_t)((x >> 33) % (uint64_t)(3 * MIN_US)); /* in order */
    int v = (int)((x >> 20) % NV);
    int kind = (int)((x >> 10) % 4); /* 0,1: match; 2: other path; 3: track */
    char anon[16];
    snprintf(anon, sizeof(anon), "v%d", v);
    es_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.ts_us = t;
    ev.type = kind == 3 ? ES_TYPE_TRACK : ES_TYPE_PAGE;
    ev.event = kind == 3 ? "Clicked" : NULL;
    ev.path = kind <= 1 ? "/pricing" : kind == 2 ? "/docs" : "/pricing";
    ev.anonymous_id = anon;
    int before = g_nfired;
    int was = model_count(&m, v, t, within) >= at_least;
    if (kind <= 1)
      m.ts[v][m.n[v]++] = t;
    int now = model_count(&m, v, t, within) >= at_least;
    ck_assert_int_eq(es_append(db, "m", &ev, 1, NULL), ES_OK);
    /* fired before es_append returned, once, for this crossing only */
    ck_assert_int_eq(g_nfired - before, !was && now);
    if (!was && now) {
      crossings++;
      ck_assert_str_eq(g_fired[before].rule, "r");
      ck_assert_str_eq(g_fired[before].person, anon);
      ck_assert_int_eq(g_fired[before].ts, t);
      ck_assert_int_eq(g_fired[before].count, at_least);
    }
    if (step % 100 == 99) {
      if (step == 799)
        ck_assert_int_eq(es_flush(db, "m"), ES_OK);
      for (int q = 0; q < NV; q++) {
        char id[16];
        snprintf(id, sizeof(id), "v%d", q);
        int64_t at = t - (int64_t)((x >> 7) % (uint64_t)(2 * MIN_US)) + MIN_US;
        int member = -1;
        ck_assert_int_eq(es_rule_check(db, "m", "r", id, at, &member), ES_OK);
        ck_assert_int_eq(member, model_count(&m, q, at, within) >= at_least);
      }
    }
  }
  ck_assert_int_gt(crossings, 10); /* the test exercised crossings */
  /* members list at the end = the model's */
  char *json = NULL, want[512] = "{\"rule\":\"r\",\"at\":\"";
  ck_assert_int_eq(es_rule_members(db, "m", "r", t, &json), ES_OK);
  char when[64];
  /* ts is whole microseconds; compare only the members part */
  (void)when;
  char *members = strstr(json, "\"members\":[");
  ck_assert_ptr_nonnull(members);
  want[0] = '\0';
  strcat(want, "\"members\":[");
  int first = 1;
  for (int q = 0; q < NV; q++) {
    if (model_count(&m, q, t, within) >= at_least) {
      char id[16];
      snprintf(id, sizeof(id), "%s\"v%d\"", first ? "" : ",", q);
      strcat(want, id);
      first = 0;
    }
  }
  strcat(want, "]}");
  ck_assert_str_eq(members, want);
  es_free(json);
  /* 4. a reopen rebuilds the same counters (segments + replay) and fires
   * nothing on replay */
  ck_assert_int_eq(es_close(db), ES_OK);
  int before = g_nfired;
  db = open_db(dir);
  ck_assert_int_eq(g_nfired, before);
  ck_assert_int_eq(es_rule_members(db, "m", "r", t, &json), ES_OK);
  ck_assert_str_eq(strstr(json, "\"members\":["), want);
  es_free(json);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* ---- 3. management ----------------------------------------------------- */

START_TEST(test_rule_manage) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "rules-manage");
  es_db *db = open_db(dir);
  es_event evs[5];
  memset(evs, 0, sizeof(evs));
  for (int i = 0; i < 5; i++) {
    evs[i].ts_us = T0 + i * MIN_US;
    evs[i].type = ES_TYPE_PAGE;
    evs[i].path = "/pricing";
    evs[i].anonymous_id = i < 3 ? "a" : "b";
  }
  ck_assert_int_eq(es_append(db, "t", evs, 5, NULL), ES_OK);
  ck_assert_int_eq(es_flush(db, "t"), ES_OK);
  /* created over existing data: "a" (3 views) is a member at once, with
   * no trigger (nothing was appended) */
  int before = g_nfired;
  put_ok(db, "t",
         "{\"name\":\"p3\",\"match\":{\"path\":\"/pricing\"},\"atLeast\":3,"
         "\"within\":\"1h\"}");
  ck_assert_int_eq(g_nfired, before);
  int member = 0;
  ck_assert_int_eq(es_rule_check(db, "t", "p3", "a", T0 + 5 * MIN_US, &member),
                   ES_OK);
  ck_assert_int_eq(member, 1);
  ck_assert_int_eq(es_rule_check(db, "t", "p3", "b", T0 + 5 * MIN_US, &member),
                   ES_OK);
  ck_assert_int_eq(member, 0);
  /* a person linked to "a" is a member through it (stitching) */
  ck_assert_int_eq(
      es_rule_check(db, "t", "p3", "u-a", T0 + 5 * MIN_US, &member), ES_OK);
  ck_assert_int_eq(member, 0);
  es_event idf;
  memset(&idf, 0, sizeof(idf));
  idf.ts_us = T0 + 4 * MIN_US + 30000000; /* before the checks' time */
  idf.type = ES_TYPE_IDENTIFY;
  idf.user_id = "u-a";
  idf.anonymous_id = "a";
  ck_assert_int_eq(es_append(db, "t", &idf, 1, NULL), ES_OK);
  ck_assert_int_eq(
      es_rule_check(db, "t", "p3", "u-a", T0 + 5 * MIN_US, &member), ES_OK);
  ck_assert_int_eq(member, 1);
  /* replacing: atLeast 2 makes "b" a member too */
  put_ok(db, "t",
         "{\"name\":\"p3\",\"match\":{\"path\":\"/pricing\"},\"atLeast\":2,"
         "\"within\":\"1h\"}");
  put_ok(db, "t", "{\"name\":\"any\",\"within\":\"1d\"}");
  char *json = NULL;
  ck_assert_int_eq(es_rules_list(db, "t", T0 + 5 * MIN_US, &json), ES_OK);
  ck_assert_str_eq(json, "{\"rules\":[{\"name\":\"any\",\"match\":{},"
                         "\"atLeast\":1,\"within\":\"1d\",\"members\":2},"
                         "{\"name\":\"p3\",\"match\":{\"path\":\"/pricing\"},"
                         "\"atLeast\":2,\"within\":\"1h\",\"members\":2}]}");
  es_free(json);
  /* an hour later nobody is a member */
  ck_assert_int_eq(es_rule_members(db, "t", "p3", T0 + 2 * 60 * MIN_US, &json),
                   ES_OK);
  ck_assert_ptr_nonnull(strstr(json, "\"members\":[]}"));
  es_free(json);
  /* errors */
  ck_assert_int_eq(es_rule_delete(db, "t", "nope"), ES_ENOTFOUND);
  ck_assert_int_eq(es_rule_members(db, "t", "nope", 0, &json), ES_ENOTFOUND);
  ck_assert_ptr_null(json);
  ck_assert_int_eq(es_rule_check(db, "t", "nope", "a", 0, &member),
                   ES_ENOTFOUND);
  ck_assert_int_eq(
      es_rule_put(db, "../t", "{\"name\":\"x\",\"within\":\"1d\"}"),
      ES_ETENANT);
  ck_assert_int_eq(es_rule_delete(db, "t", "any"), ES_OK);
  for (int i = 0; i < ES_RULES_MAX - 1; i++) {
    char r[128];
    snprintf(r, sizeof(r), "{\"name\":\"r%02d\",\"within\":\"1d\"}", i);
    put_ok(db, "t", r);
  }
  ck_assert_int_eq(es_rule_put(db, "t",
                               "{\"name\":\"one-more\",\"within\":"
                               "\"1d\"}"),
                   ES_EINVAL);
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "64"));
  /* replacing one at the limit still works */
  put_ok(db, "t", "{\"name\":\"r00\",\"within\":\"2d\"}");
  ck_assert_int_eq(es_close(db), ES_OK);
  /* the list is durable */
  db = open_db(dir);
  ck_assert_int_eq(es_rules_list(db, "t", T0 + 5 * MIN_US, &json), ES_OK);
  ck_assert_ptr_nonnull(strstr(json, "{\"name\":\"r00\",\"match\":{},"
                                     "\"atLeast\":1,\"within\":\"2d\","
                                     "\"members\":2}"));
  ck_assert_ptr_nonnull(strstr(json, "\"name\":\"p3\""));
  ck_assert_ptr_null(strstr(json, "\"name\":\"any\""));
  es_free(json);
  /* a tenant with no data can have rules; an unknown one lists none */
  put_ok(db, "fresh", "{\"name\":\"x\",\"within\":\"1d\"}");
  ck_assert_int_eq(es_rules_list(db, "never", 0, &json), ES_OK);
  ck_assert_str_eq(json, "{\"rules\":[]}");
  es_free(json);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* ---- 5. per person ------------------------------------------------------ */

/* Appends one event: a page view of /pricing (user and anonymous id may
 * be NULL), or with `link` an identify of user with anon. */
static void ev_one(es_db *db, int link, const char *user, const char *anon,
                   int64_t ts) {
  es_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.ts_us = ts;
  ev.type = link ? ES_TYPE_IDENTIFY : ES_TYPE_PAGE;
  ev.path = link ? NULL : "/pricing";
  ev.user_id = user;
  ev.anonymous_id = anon;
  ck_assert_int_eq(es_append(db, "s", &ev, 1, NULL), ES_OK);
}

static void persons_is(es_db *db, int64_t at, const char *want) {
  char *json = NULL;
  ck_assert_int_eq(es_rule_persons(db, "s", "p3", at, &json), ES_OK);
  ck_assert_msg(strstr(json, want), "%s lacks %s", json, want);
  es_free(json);
}

START_TEST(test_rule_persons) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "rules-persons");
  es_db *db = open_db(dir);
  put_ok(db, "s",
         "{\"name\":\"p3\",\"match\":{\"path\":\"/pricing\"},\"atLeast\":3,"
         "\"within\":\"7d\"}");
  int base = g_nfired;
  /* two views before signing in, one after: no id alone has three */
  ev_one(db, 0, NULL, "a1", T0);
  ev_one(db, 0, NULL, "a1", T0 + MIN_US);
  ev_one(db, 0, "u1", NULL, T0 + 2 * MIN_US);
  ck_assert_int_eq(g_nfired, base);
  /* the link arrives after the events: the person crosses, once */
  ev_one(db, 1, "u1", "a1", T0 + 3 * MIN_US);
  ck_assert_int_eq(g_nfired, base + 1);
  ck_assert_str_eq(g_fired[base].rule, "p3");
  ck_assert_str_eq(g_fired[base].person, "a1");
  ck_assert_int_eq(g_fired[base].count, 3);
  ck_assert_int_eq(g_fired[base].ts, T0 + 3 * MIN_US);
  ev_one(db, 1, "u1", "a1", T0 + 4 * MIN_US); /* linked already */
  ev_one(db, 0, "u1", NULL, T0 + 5 * MIN_US); /* a member already */
  ck_assert_int_eq(g_nfired, base + 1);
  /* linked first, then the views: the third fires, for the person */
  ev_one(db, 1, "u2", "b2", T0 + 6 * MIN_US);
  ev_one(db, 0, "u2", "b2", T0 + 7 * MIN_US);
  ev_one(db, 0, "u2", NULL, T0 + 8 * MIN_US);
  ck_assert_int_eq(g_nfired, base + 1);
  ev_one(db, 0, NULL, "b2", T0 + 9 * MIN_US);
  ck_assert_int_eq(g_nfired, base + 2);
  ck_assert_str_eq(g_fired[base + 1].person, "b2");
  /* two members joined: no new crossing */
  ev_one(db, 1, "u2", "a1", T0 + 10 * MIN_US);
  ck_assert_int_eq(g_nfired, base + 2);
  int64_t at = T0 + 11 * MIN_US;
  persons_is(db, at,
             "\"persons\":[{\"person\":\"a1\",\"ids\":[\"a1\","
             "\"b2\",\"u1\",\"u2\"]}]}");
  char *json = NULL; /* per visitor id: no id has three views alone */
  ck_assert_int_eq(es_rule_members(db, "s", "p3", at, &json), ES_OK);
  ck_assert_ptr_nonnull(strstr(json, "\"members\":[]}"));
  es_free(json);
  int member = 0;
  ck_assert_int_eq(es_rule_check(db, "s", "p3", "u1", at, &member), ES_OK);
  ck_assert_int_eq(member, 1);
  /* unlinks split the person again */
  ck_assert_int_eq(es_identity_unlink(db, "s", "u2", "a1", 0), ES_OK);
  ck_assert_int_eq(es_identity_unlink(db, "s", "u1", "a1", 0), ES_OK);
  persons_is(db, at,
             "\"persons\":[{\"person\":\"b2\",\"ids\":[\"b2\","
             "\"u2\"]}]}");
  ck_assert_int_eq(es_rule_check(db, "s", "p3", "u1", at, &member), ES_OK);
  ck_assert_int_eq(member, 0);
  /* a1 alone reaches three: the writer's map knows of the unlink */
  ev_one(db, 0, NULL, "a1", T0 + 12 * MIN_US);
  ck_assert_int_eq(g_nfired, base + 3);
  ck_assert_str_eq(g_fired[base + 2].person, "a1");
  ck_assert_int_eq(g_fired[base + 2].count, 3);
  /* a reopen (WAL replay) fires nothing and answers the same */
  ck_assert_int_eq(es_close(db), ES_OK);
  db = open_db(dir);
  persons_is(db, T0 + 13 * MIN_US,
             "\"persons\":[{\"person\":\"a1\",\"ids\":[\"a1\"]},"
             "{\"person\":\"b2\",\"ids\":[\"b2\",\"u2\"]}]}");
  ck_assert_int_eq(g_nfired, base + 3);
  ck_assert_int_eq(es_rule_persons(db, "s", "nope", 0, &json), ES_ENOTFOUND);
  ck_assert_ptr_null(json);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* ---- 6. the persisted rule state ---------------------------------------- */

static void put_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fwrite(p, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

static void state_members_is(es_db *db, int64_t at, const char *want) {
  char *json = NULL;
  ck_assert_int_eq(es_rule_members(db, "r", "p2", at, &json), ES_OK);
  ck_assert_msg(strstr(json, want), "%s lacks %s", json, want);
  es_free(json);
}

static void state_views(es_db *db, const char *who, int n, int64_t ts) {
  for (int i = 0; i < n; i++) {
    es_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.ts_us = ts + i;
    ev.type = ES_TYPE_PAGE;
    ev.path = "/pricing";
    ev.anonymous_id = who;
    ck_assert_int_eq(es_append(db, "r", &ev, 1, NULL), ES_OK);
  }
}

/* Rewrites dir's RSTATE of tenant r with visitor `plant` (2 views at ts)
 * added to its only rule. */
static void state_plant(const char *dir, const char *plant, int64_t ts) {
  char path[600];
  snprintf(path, sizeof(path), "%s/tenants/r/RSTATE", dir);
  size_t len = 0;
  uint8_t *buf = ut_read_file(path, &len);
  ck_assert_ptr_nonnull(buf);
  es_rstate st;
  ck_assert_int_eq(es__rstate_parse(buf, len, path, &st), ES_OK);
  free(buf);
  ck_assert_int_eq(st.rules.n, 1);
  int64_t ts2[2] = {ts, ts + 1};
  ck_assert_int_eq(es__rule_visitor_add(st.rules.v[0], plant, ts2, 2), ES_OK);
  es_buf b = {0};
  ck_assert_int_eq(es__rstate_encode(&b, st.lsn, &st.rules, NULL, NULL), ES_OK);
  put_file(path, b.data, b.len);
  es__buf_free(&b);
  es__rules_free(&st.rules);
}

static void state_copy(const char *from, const char *to) {
  size_t len = 0;
  uint8_t *buf = ut_read_file(from, &len);
  ck_assert_ptr_nonnull(buf);
  put_file(to, buf, len);
  free(buf);
}

START_TEST(test_rule_state) {
  char dir[512], path[600], copy[600];
  ut_tmpdir(dir, sizeof(dir), "rules-state");
  snprintf(path, sizeof(path), "%s/tenants/r/RSTATE", dir);
  snprintf(copy, sizeof(copy), "%s/RSTATE.old", dir);
  /* times near now: the series counts members at the wall clock */
  struct timespec tsn;
  clock_gettime(CLOCK_REALTIME, &tsn);
  int64_t now = (int64_t)tsn.tv_sec * 1000000 + tsn.tv_nsec / 1000,
          t = now - 60 * MIN_US;
  es_db *db = open_db(dir);
  put_ok(db, "r",
         "{\"name\":\"p2\",\"match\":{\"path\":\"/pricing\"},\"atLeast\":2,"
         "\"within\":\"7d\"}");
  state_views(db, "v1", 2, t);
  state_views(db, "v2", 1, t);
  ck_assert_int_eq(es_flush(db, "r"), ES_OK); /* RSTATE as of the flush */
  state_views(db, "v3", 3, t + MIN_US);       /* in the WAL only */
  state_views(db, "v2", 1, t + 2 * MIN_US);   /* v2 crosses in the WAL */
  const char *want = "\"members\":[\"v1\",\"v2\",\"v3\"]}";
  state_members_is(db, now, want);
  char *json = NULL;
  ck_assert_int_eq(es_rule_series(db, "r", "p2", 0, 0, &json), ES_OK);
  /* one point (the flush: v1 alone then), and three now */
  ck_assert_msg(strstr(json, "\"members\":1}]") && strstr(json, "\"now\":{") &&
                    strstr(json, "\"members\":3}}"),
                "%s", json);
  es_free(json);
  int fired = g_nfired;
  ck_assert_int_eq(es_close(db), ES_OK); /* RSTATE as of the last record */
  ck_assert_int_eq(access(path, F_OK), 0);

  /* the open takes the file's counters: a planted visitor is a member,
   * and nothing is counted twice (v1 has 2 views, not 4) */
  state_plant(dir, "ghost", t);
  db = open_db(dir);
  state_members_is(db, now, "\"members\":[\"ghost\",\"v1\",\"v2\",\"v3\"]}");
  ck_assert_int_eq(g_nfired, fired);
  ck_assert_int_eq(es_rule_series(db, "r", "p2", 0, 0, &json), ES_OK);
  ck_assert_msg(strstr(json, "\"points\":[{\"t\":"), "%s", json);
  es_free(json);
  ck_assert_int_eq(es_close(db), ES_OK);

  /* damaged: counted again from the rows (no ghost) */
  size_t len = 0;
  uint8_t *buf = ut_read_file(path, &len);
  buf[len / 2] ^= 0x40;
  put_file(path, buf, len);
  free(buf);
  db = open_db(dir);
  state_members_is(db, now, want);
  /* rewritten once the replayed rows are flushed (their sync may have
   * failed before the restart: not before) */
  ck_assert_int_eq(es_close(db), ES_OK);
  buf = ut_read_file(path, &len); /* still the damaged one */
  es_rstate st;
  ck_assert_int_eq(es__rstate_parse(buf, len, path, &st), ES_ECORRUPT);
  es__rules_free(&st.rules);
  free(buf);
  db = open_db(dir);
  ck_assert_int_eq(es_flush(db, "r"), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);

  /* older than the flushed rows: counted again from the rows */
  state_copy(path, copy);
  db = open_db(dir);
  state_views(db, "v4", 2, t + 3 * MIN_US);
  ck_assert_int_eq(es_flush(db, "r"), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  state_copy(copy, path);
  state_plant(dir, "ghost", t); /* would show if the file were used */
  db = open_db(dir);
  state_members_is(db, now, "\"members\":[\"v1\",\"v2\",\"v3\",\"v4\"]}");
  ck_assert_int_eq(es_close(db), ES_OK);

  /* a read-only handle reads the writer's series */
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  o.read_only = 1;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  ck_assert_int_eq(es_rule_series(db, "r", "p2", 0, 0, &json), ES_OK);
  ck_assert_msg(strstr(json, "\"points\":[{\"t\":") &&
                    strstr(json, "\"now\":{") &&
                    strstr(json, "\"members\":4}}"),
                "%s", json);
  es_free(json);
  /* bounds: `to` before every point, and then no "now" */
  ck_assert_int_eq(es_rule_series(db, "r", "p2", 0, 1, &json), ES_OK);
  ck_assert_str_eq(json, "{\"rule\":\"p2\",\"points\":[]}");
  es_free(json);
  ck_assert_int_eq(es_rule_series(db, "r", "nope", 0, 0, &json), ES_ENOTFOUND);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* Hours without a flush get a point from the rule's state: the member
 * count at the end of the hour, marked "estimated"; a recorded point
 * (a flush in its hour) is listed as recorded. */
START_TEST(test_rule_series_hours) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "rules-series");
  struct timespec tsn;
  clock_gettime(CLOCK_REALTIME, &tsn);
  const int64_t hour = 60 * MIN_US;
  int64_t now = (int64_t)tsn.tv_sec * 1000000 + tsn.tv_nsec / 1000;
  int64_t h = now - now % hour; /* this hour's start */
  es_db *db = open_db(dir);
  put_ok(db, "r",
         "{\"name\":\"p2\",\"match\":{\"path\":\"/pricing\"},\"atLeast\":2,"
         "\"within\":\"1h\"}");
  state_views(db, "a", 2, h - 3 * hour + 10 * MIN_US); /* member in h-3 */
  state_views(db, "b", 2, h - 1 * hour + 5 * MIN_US);  /* member in h-1 */
  state_views(db, "c", 1, h - 1 * hour + 6 * MIN_US);  /* never */
  char from[ES_TIME_TEXT_MAX], to[ES_TIME_TEXT_MAX], want[1024];
  const int64_t m[4] = {0, 1, 0, 1}; /* hours h-4 .. h-1 */
  want[0] = '\0';
  for (int i = 0; i < 4; i++) {
    ck_assert_uint_gt(es_time_format(h - (4 - i) * hour, 0, from, sizeof(from)),
                      0);
    size_t n = strlen(want);
    snprintf(want + n, sizeof(want) - n,
             "%s{\"t\":\"%s\",\"members\":%lld,\"estimated\":true}",
             i ? "," : "", from, (long long)m[i]);
  }
  char *json = NULL, expect[1200], one[200];
  snprintf(expect, sizeof(expect), "{\"rule\":\"p2\",\"points\":[%s]}", want);
  ck_assert_int_eq(es_rule_series(db, "r", "p2", h - 4 * hour, h, &json),
                   ES_OK);
  ck_assert_str_eq(json, expect); /* no flush: every point from the state */
  es_free(json);
  /* `from` inside an hour: that hour has started before it, so is not
   * listed; the bounds are kept */
  ck_assert_int_eq(
      es_rule_series(db, "r", "p2", h - 4 * hour + 1, h - 2 * hour, &json),
      ES_OK);
  es_time_format(h - 3 * hour, 0, from, sizeof(from));
  snprintf(expect, sizeof(expect),
           "{\"rule\":\"p2\",\"points\":[{\"t\":\"%s\",\"members\":1,"
           "\"estimated\":true}]}",
           from);
  ck_assert_str_eq(json, expect);
  es_free(json);
  /* a range far in the past: nothing (points go back 35 days at most) */
  ck_assert_int_eq(es_rule_series(db, "r", "p2", 1, 2 * hour, &json), ES_OK);
  ck_assert_str_eq(json, "{\"rule\":\"p2\",\"points\":[]}");
  es_free(json);
  /* every estimated point is what es_rule_persons counts at the hour's
   * end, for visitors with views spread over the last 12 hours (some
   * linked into one person by an identify) */
  for (int v = 0; v < 30; v++) {
    char id[16];
    snprintf(id, sizeof(id), "w%d", v);
    for (int k = 0; k < 1 + v % 4; k++)
      state_views(db, id, 1,
                  h - 12 * hour + (int64_t)((v * 37) % 680 + k * 23) * MIN_US);
  }
  es_event link;
  memset(&link, 0, sizeof(link));
  link.ts_us = h - 11 * hour;
  link.type = ES_TYPE_IDENTIFY;
  link.anonymous_id = "w1";
  link.user_id = "w2";
  ck_assert_int_eq(es_append(db, "r", &link, 1, NULL), ES_OK);
  ck_assert_int_eq(es_rule_series(db, "r", "p2", h - 12 * hour, h, &json),
                   ES_OK);
  int nonzero = 0;
  for (int i = 0; i < 12; i++) {
    int64_t end = h - (12 - i) * hour + hour - 1;
    char *persons = NULL;
    ck_assert_int_eq(es_rule_persons(db, "r", "p2", end, &persons), ES_OK);
    int n = 0;
    for (const char *p = persons; (p = strstr(p, "\"person\":")); p++)
      n++;
    es_free(persons);
    es_time_format(end - hour + 1, 0, from, sizeof(from));
    snprintf(one, sizeof(one), "{\"t\":\"%s\",\"members\":%d,", from, n);
    ck_assert_msg(strstr(json, one), "%s\nwant %s", json, one);
    nonzero += n > 0;
  }
  ck_assert_int_ge(nonzero, 6); /* the hours are not all empty */
  es_free(json);
  /* unbounded: the last point before "now" is hour h-1's, and a flush
   * records this hour's (not estimated) */
  ck_assert_int_eq(es_flush(db, "r"), ES_OK);
  ck_assert_int_eq(es_rule_series(db, "r", "p2", h - 2 * hour, 0, &json),
                   ES_OK);
  es_time_format(h - hour, 0, from, sizeof(from));
  es_time_format(h, 0, to, sizeof(to));
  snprintf(one, sizeof(one),
           "{\"t\":\"%s\",\"members\":%%d,\"estimated\":true},{\"t\":\"%s\","
           "\"members\":%%d}",
           from, to);
  int m1 = -1, m0 = -1;
  const char *at = strstr(json, from);
  ck_assert_ptr_nonnull(at);
  ck_assert_int_eq(sscanf(at - 6, one, &m1, &m0), 2);
  ck_assert_int_ge(m1, 1);
  ck_assert_msg(strstr(json, "\"now\":{"), "%s", json);
  es_free(json);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

static Suite *rules_suite(void) {
  Suite *s = suite_create("rules");
  TCase *tc = tcase_create("rules");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_rule_parse);
  tcase_add_loop_test(tc, test_rule_model, 0, 3);
  tcase_add_test(tc, test_rule_manage);
  tcase_add_test(tc, test_rule_persons);
  tcase_add_test(tc, test_rule_state);
  tcase_add_test(tc, test_rule_series_hours);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(rules_suite()); }
