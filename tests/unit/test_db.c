/*
 * test_db.c -- unit tests of the database object through the public API
 * (include/eventstore.h): es_open/es_close, es_append, es_flush, es_scan,
 * es_inspect, es_verify, es_strerror.  Only the WAL-reclaim and seal tests
 * look at files on disk, by name, to see the background work happen.
 *
 * What must hold (eventstore.h):
 *  1. What was appended is what a scan returns, field by field, per
 *     tenant, in (event time, append order) order, whether the rows sit in
 *     the active memtable, in segments, or both; also after a reopen with
 *     or without a flush.
 *  2. Time ranges are half-open [from_us, to_us); the person filter matches
 *     anonymous_id or user_id.
 *  3. One process at a time: a second es_open of a directory is ES_EBUSY.
 *  4. Bad options are ES_EINVAL and bad tenant ids ES_ETENANT, with NULL
 *     out-parameters.
 *  5. Concurrent appends lose and duplicate nothing.
 *  6. Memtables over seal_bytes become segments without es_flush, and WAL
 *     files are deleted once their records are in segments.
 *  7. es_inspect and es_verify describe and pass a healthy store.
 *
 * Most tests use ES_SYNC_NONE to stay fast under ASan; one uses the default
 * ES_SYNC_FULL so the fdatasync path runs too.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eventstore.h"
#include "unit.h"

#define TS_BASE INT64_C(1700000000000000)

/* ---- helpers ------------------------------------------------------------ */

static void opts_for(es_options *o, const char *dir, int shards) {
  es_options_init(o);
  o->data_dir = dir;
  o->shards = shards;
  o->sync_mode = ES_SYNC_NONE;
  o->wal_file_bytes = 1 << 20; /* not 64 MiB of zeros per shard per open */
}

static es_db *open_db(const char *dir, int shards) {
  es_options o;
  opts_for(&o, dir, shards);
  es_db *db = NULL;
  int rc = es_open(&o, &db);
  ck_assert_msg(rc == ES_OK, "es_open: %s: %s", es_strerror(rc),
                es_errdetail());
  ck_assert_ptr_nonnull(db);
  return db;
}

static void close_db(es_db *db) { ck_assert_int_eq(es_close(db), ES_OK); }

/* Appends ut_event numbers first..first+count-1 of `tag` to tenant, with
 * times from ts_of (or TS_BASE + i * 1000 when NULL), as one batch. */
static void append_range(es_db *db, const char *tenant, const char *tag,
                         int first, int count, int64_t (*ts_of)(int)) {
  es_event *evs = calloc((size_t)count, sizeof(es_event));
  ut_text *tx = calloc((size_t)count, sizeof(ut_text));
  for (int k = 0; k < count; k++) {
    int i = first + k;
    ut_event(&evs[k], &tx[k], tag, i, ts_of ? ts_of(i) : TS_BASE + i * 1000);
  }
  es_receipt rcpt;
  int rc = es_append(db, tenant, evs, (size_t)count, &rcpt);
  ck_assert_msg(rc == ES_OK, "es_append: %s: %s", es_strerror(rc),
                es_errdetail());
  ck_assert_uint_eq(rcpt.events_count, (uint32_t)count);
  ck_assert_uint_gt(rcpt.lsn, 0);
  free(evs);
  free(tx);
}

/* The number in a ut_event message id "m-<tag>-<i>", or -1. */
static int id_index(const char *message_id, const char *tag) {
  char prefix[96];
  int n = snprintf(prefix, sizeof(prefix), "m-%s-", tag);
  if (!message_id || strncmp(message_id, prefix, (size_t)n) != 0)
    return -1;
  return atoi(message_id + n);
}

/* A scan's message ids, in order (owned; free with ids_free). */
typedef struct ids {
  size_t n;
  char **v;
} ids;

static void ids_free(ids *s) {
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i]);
  free(s->v);
  s->n = 0;
  s->v = NULL;
}

/* Scans [from, to) of tenant (person may be NULL), checking that times
 * never go down, and returns the message ids in order. */
static ids scan_ids(es_db *db, const char *tenant, int64_t from, int64_t to,
                    const char *person) {
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = tenant;
  spec.from_us = from;
  spec.to_us = to;
  spec.person = person;
  es_cursor *cur = NULL;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  ids out = {0, NULL};
  size_t cap = 0;
  es_event ev;
  int rc;
  int64_t prev = INT64_MIN;
  while ((rc = es_cursor_next(cur, &ev)) == 1) {
    ck_assert_int_ge(ev.ts_us, prev);
    ck_assert_int_ge(ev.ts_us, from);
    ck_assert_int_lt(ev.ts_us, to);
    prev = ev.ts_us;
    if (out.n == cap) {
      cap = cap ? cap * 2 : 64;
      out.v = realloc(out.v, cap * sizeof(char *));
    }
    out.v[out.n++] = strdup(ev.message_id ? ev.message_id : "(null)");
  }
  ck_assert_msg(rc == 0, "es_cursor_next: %s: %s", es_strerror(rc),
                es_errdetail());
  es_cursor_close(cur);
  return out;
}

/* Scans the whole tenant and checks that it holds exactly ut_events
 * 0..count-1 of tag (each once, every field equal), times from ts_of. */
static void check_tenant(es_db *db, const char *tenant, const char *tag,
                         int count, int64_t (*ts_of)(int)) {
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = tenant;
  es_cursor *cur = NULL;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  char *seen = calloc((size_t)count + 1, 1);
  int n = 0, rc;
  es_event ev;
  int64_t prev = INT64_MIN;
  while ((rc = es_cursor_next(cur, &ev)) == 1) {
    int i = id_index(ev.message_id, tag);
    ck_assert_msg(i >= 0 && i < count, "%s: stray event %s", tenant,
                  ev.message_id);
    ck_assert_msg(!seen[i], "%s: event %d twice", tenant, i);
    seen[i] = 1;
    es_event want;
    ut_text tx;
    ut_event(&want, &tx, tag, i, ts_of ? ts_of(i) : TS_BASE + i * 1000);
    ut_event_eq(&ev, &want, tenant);
    ck_assert_int_ge(ev.ts_us, prev);
    prev = ev.ts_us;
    n++;
  }
  ck_assert_msg(rc == 0, "es_cursor_next: %s", es_errdetail());
  ck_assert_msg(n == count, "%s: %d events, want %d", tenant, n, count);
  es_cursor_close(cur);
  free(seen);
}

/* Times scattered over a range so that scans must sort. */
static int64_t scattered_ts(int i) {
  return TS_BASE + (int64_t)((i * 7919) % 1000) * 1000 + i % 3;
}

/* es_inspect tallies. */
typedef struct tally {
  int segments, wal_files;
  uint64_t seg_rows, wal_events, unflushed;
  int64_t min_ts, max_ts;
  char tenants[256];
} tally;

static int tally_fn(void *ud, const es_file_info *info) {
  tally *t = ud;
  if (info->kind == ES_FILE_SEGMENT) {
    ck_assert_ptr_nonnull(info->tenant);
    ck_assert_ptr_nonnull(strstr(info->path, "tenants/"));
    ck_assert_ptr_nonnull(strstr(info->path, ".seg"));
    ck_assert_uint_eq(info->events, info->rows);
    ck_assert_uint_gt(info->bytes, 0);
    ck_assert_int_le(info->min_ts_us, info->max_ts_us);
    if (t->segments == 0 || info->min_ts_us < t->min_ts)
      t->min_ts = info->min_ts_us;
    if (t->segments == 0 || info->max_ts_us > t->max_ts)
      t->max_ts = info->max_ts_us;
    t->segments++;
    t->seg_rows += info->rows;
    if (!strstr(t->tenants, info->tenant)) {
      strncat(t->tenants, info->tenant,
              sizeof(t->tenants) - 1 - strlen(t->tenants));
      strncat(t->tenants, ",", sizeof(t->tenants) - 1 - strlen(t->tenants));
    }
  } else if (info->kind == ES_FILE_UNFLUSHED) {
    ck_assert_ptr_nonnull(info->tenant);
    ck_assert_msg(strncmp(info->path, "wal/", 4) == 0, "path %s", info->path);
    ck_assert_uint_eq(info->events, info->rows);
    ck_assert_int_le(info->min_ts_us, info->max_ts_us);
    t->unflushed += info->rows;
  } else {
    ck_assert_int_eq(info->kind, ES_FILE_WAL);
    ck_assert_ptr_null(info->tenant);
    ck_assert_msg(strncmp(info->path, "wal/", 4) == 0, "path %s", info->path);
    t->wal_files++;
    t->wal_events += info->events;
  }
  return 0;
}

static tally inspect(const char *dir) {
  tally t;
  memset(&t, 0, sizeof(t));
  int rc = es_inspect(dir, tally_fn, &t);
  ck_assert_msg(rc == ES_OK, "es_inspect: %s", es_errdetail());
  return t;
}

static void problem_fail(void *ud, const char *path, uint64_t off,
                         const char *what) {
  (void)ud;
  ck_abort_msg("es_verify: %s at %" PRIu64 ": %s", path, off, what);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- round trips ----------------------------------------------------------
 */

/* Option structs carry their size (eventstore.h, convention 9): one not
 * filled by its _init macro is refused; an older program's shorter struct
 * gets defaults for what it lacks; a newer program's longer struct is
 * accepted while its unknown tail is zero and refused once it sets it. */
START_TEST(test_options_struct_size) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-abi");
  es_db *db = NULL;
  es_options raw;
  memset(&raw, 0, sizeof(raw));
  raw.data_dir = dir;
  ck_assert_int_eq(es_open(&raw, &db), ES_EINVAL);
  ck_assert_ptr_null(db);
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "es_options_init"));
  /* a newer program: its struct is 64 bytes longer */
  struct {
    es_options o;
    uint64_t newer[8];
  } big;
  memset(&big, 0, sizeof(big));
  es_options_init_sized(&big.o, sizeof(big));
  ck_assert_uint_eq(big.o.struct_size, sizeof(big));
  ck_assert_uint_eq(big.o.wal_file_bytes, (size_t)32 << 20); /* defaults */
  big.o.data_dir = dir;
  ck_assert_int_eq(es_open(&big.o, &db), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  big.newer[3] = 1; /* an option this library does not know */
  ck_assert_int_eq(es_open(&big.o, &db), ES_EINVAL);
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "does not know"));
  /* too short to be any release's es_options */
  es_options small;
  es_options_init_sized(&small, sizeof(size_t) + sizeof(char *));
  ck_assert_uint_eq(small.struct_size, sizeof(size_t) + sizeof(char *));
  small.data_dir = dir;
  ck_assert_int_eq(es_open(&small, &db), ES_EINVAL);
  /* scan specs and compaction options the same way */
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  es_scan_spec spec;
  memset(&spec, 0, sizeof(spec));
  spec.tenant = "acme";
  es_cursor *cur = NULL;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_EINVAL);
  es_scan_spec_init(&spec);
  spec.tenant = "acme";
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  es_cursor_close(cur);
  es_compact_options co;
  memset(&co, 0, sizeof(co));
  ck_assert_int_eq(es_compact(db, NULL, &co, NULL), ES_EINVAL);
  es_compact_options_init(&co);
  ck_assert_int_eq(es_compact(db, NULL, &co, NULL), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* Events and results cross the API with the program's sizes (eventstore.h,
 * convention 10): a newer program's longer es_event is read with its
 * stride and refused when it sets an unknown field; a longer receipt or
 * event gets zeros past the library's; an older program's receipt (0.1:
 * no counts) is written only as far as it goes. */
START_TEST(test_sized_events_and_results) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-sized");
  es_options o;
  es_options_init(&o);
  o.data_dir = dir;
  es_db *db = NULL;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  typedef struct {
    es_event ev;
    uint64_t newer[2];
  } big_event;
  big_event evs[3];
  memset(evs, 0, sizeof(evs));
  const char *ids[] = {"s1", "s2", "s3"};
  for (int i = 0; i < 3; i++) {
    evs[i].ev.ts_us = INT64_C(1700000000000000) + i;
    evs[i].ev.type = ES_TYPE_TRACK;
    evs[i].ev.event = "E";
    evs[i].ev.message_id = ids[i];
    evs[i].ev.anonymous_id = "a";
  }
  struct {
    es_receipt r;
    uint64_t newer;
  } big_rec;
  memset(&big_rec, 0xff, sizeof(big_rec));
  ck_assert_int_eq(es_append_sized(db, "acme", &evs[0].ev, 3, &big_rec.r,
                                   sizeof(big_event), sizeof(big_rec)),
                   ES_OK);
  ck_assert_uint_eq(big_rec.r.stored_count, 3);
  ck_assert_uint_eq(big_rec.newer, 0); /* zeros past the library's */
  evs[1].newer[0] = 7;                 /* a field this library lacks */
  ck_assert_int_eq(es_append_sized(db, "acme", &evs[0].ev, 3, NULL,
                                   sizeof(big_event), sizeof(es_receipt)),
                   ES_EINVAL);
  ck_assert_int_eq(es_append_sized(db, "acme", &evs[0].ev, 1, NULL, 16,
                                   sizeof(es_receipt)),
                   ES_EINVAL); /* no release's es_event */
  /* a 0.1 receipt: lsn, shard, events_count, durable_us */
  size_t old_size = offsetof(es_receipt, durable_us) + sizeof(int64_t);
  es_receipt small;
  memset(&small, 0xee, sizeof(small));
  evs[1].newer[0] = 0;
  evs[0].ev.message_id = "s4";
  ck_assert_int_eq(es_append_sized(db, "acme", &evs[0].ev, 1, &small,
                                   sizeof(big_event), old_size),
                   ES_OK);
  ck_assert_uint_eq(small.events_count, 1);
  ck_assert_uint_eq(small.stored_count, 0xeeeeeeee); /* not written */
  /* read back with a longer event: zeros past the library's */
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = "acme";
  es_cursor *cur = NULL;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  big_event got;
  int n = 0;
  memset(&got, 0xff, sizeof(got));
  while (es_cursor_next_sized(cur, &got.ev, sizeof(got)) == 1) {
    ck_assert_uint_eq(got.newer[0], 0);
    ck_assert_str_eq(got.ev.event, "E");
    n++;
  }
  ck_assert_int_eq(n, 4);
  es_cursor_close(cur);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_append_scan_tenants) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-rt");
  es_db *db = open_db(dir, 2);
  static const char *const tenants[] = {"acme", "beta", "gamma-2", "D_4"};
  for (int t = 0; t < 4; t++)
    for (int b = 0; b < 5; b++)
      append_range(db, tenants[t], tenants[t], b * 20, 20, scattered_ts);
  for (int t = 0; t < 4; t++) /* memtables */
    check_tenant(db, tenants[t], tenants[t], 100, scattered_ts);
  /* an unknown tenant is an empty scan */
  ids none = scan_ids(db, "nobody", INT64_MIN, INT64_MAX, NULL);
  ck_assert_uint_eq(none.n, 0);
  ids_free(&none);
  ck_assert_int_eq(es_flush(db, "acme"), ES_OK);
  ck_assert_int_eq(es_flush(db, "nobody"), ES_OK); /* no rows: fine */
  for (int t = 0; t < 4; t++) /* acme in a segment, others in memory */
    check_tenant(db, tenants[t], tenants[t], 100, scattered_ts);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  for (int t = 0; t < 4; t++) /* all in segments */
    check_tenant(db, tenants[t], tenants[t], 100, scattered_ts);
  close_db(db);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_sync_full) {
  /* the default, durable mode: every append waits for fdatasync */
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-sync");
  es_options o;
  es_options_init(&o);
  ck_assert_int_eq(o.sync_mode, ES_SYNC_FULL);
  o.data_dir = dir;
  o.shards = 1;
  o.wal_file_bytes = 1 << 20;
  es_db *db = NULL;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  for (int b = 0; b < 5; b++)
    append_range(db, "dur", "dur", b * 4, 4, NULL);
  check_tenant(db, "dur", "dur", 20, NULL);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  close_db(db);
  db = open_db(dir, 1);
  check_tenant(db, "dur", "dur", 20, NULL);
  close_db(db);
  ut_rmrf(dir);
}
END_TEST

/* ---- ordering ---------------------------------------------------------------
 */

/* The ordering workload: three batches (A flushed, B flushed, C in the
 * memtable) with repeated times across and within batches. */
typedef struct ord_ev {
  const char *id;
  int64_t ts;
} ord_ev;

static const ord_ev ord_a[] = {{"a0", 10}, {"a1", 30}, {"a2", 50}, {"a3", 30}};
static const ord_ev ord_b[] = {
    {"b0", 20}, {"b1", 30}, {"b2", 40}, {"b3", 60}, {"b4", 30}};
static const ord_ev ord_c[] = {{"c0", 30}, {"c1", 5}, {"c2", 70}, {"c3", 30}};
/* All of them in (time, append order): the expected full scan. */
static const char *const ord_all[] = {"c1", "a0", "b0", "a1", "a3", "b1", "b4",
                                      "c0", "c3", "b2", "a2", "b3", "c2"};
static const int64_t ord_all_ts[] = {5,  10, 20, 30, 30, 30, 30,
                                     30, 30, 40, 50, 60, 70};
#define ORD_N 13

static void ord_append(es_db *db, const ord_ev *evs, size_t n) {
  es_event batch[8];
  for (size_t i = 0; i < n; i++) {
    memset(&batch[i], 0, sizeof(batch[i]));
    batch[i].ts_us = evs[i].ts;
    batch[i].recv_us = 1;
    batch[i].type = ES_TYPE_TRACK;
    batch[i].message_id = evs[i].id;
    batch[i].event = "e";
  }
  ck_assert_int_eq(es_append(db, "ord", batch, n, NULL), ES_OK);
}

/* Checks a scan of [from, to) against ord_all filtered to that range. */
static void ord_check(es_db *db, int64_t from, int64_t to) {
  ids got = scan_ids(db, "ord", from, to, NULL);
  size_t k = 0;
  for (size_t i = 0; i < ORD_N; i++) {
    if (ord_all_ts[i] < from || ord_all_ts[i] >= to)
      continue;
    ck_assert_msg(k < got.n, "[%lld, %lld): missing %s", (long long)from,
                  (long long)to, ord_all[i]);
    ck_assert_msg(strcmp(got.v[k], ord_all[i]) == 0,
                  "[%lld, %lld): position %zu is %s, want %s", (long long)from,
                  (long long)to, k, got.v[k], ord_all[i]);
    k++;
  }
  ck_assert_msg(k == got.n, "[%lld, %lld): %zu events, want %zu",
                (long long)from, (long long)to, got.n, k);
  ids_free(&got);
}

/* Every interesting half-open range of the ordering data. */
static void ord_check_ranges(es_db *db) {
  ord_check(db, INT64_MIN, INT64_MAX);
  ord_check(db, 30, 50); /* 30s and 40, not 50 */
  ord_check(db, 30, 31); /* only the 30s */
  ord_check(db, 30, 30); /* empty */
  ord_check(db, 31, 30); /* inverted: empty */
  ord_check(db, 0, 10);  /* 5 only: 10 excluded */
  ord_check(db, 10, 11); /* 10 only */
  ord_check(db, 70, INT64_MAX);
  ord_check(db, 71, INT64_MAX);
  ord_check(db, INT64_MIN, 6);
  ord_check(db, 6, 70);
}

START_TEST(test_scan_order_across_sources) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-ord");
  es_db *db = open_db(dir, 1);
  ord_append(db, ord_a, 4);
  ck_assert_int_eq(es_flush(db, "ord"), ES_OK);
  ord_append(db, ord_b, 5);
  ck_assert_int_eq(es_flush(db, "ord"), ES_OK);
  ord_append(db, ord_c, 4);
  tally t = inspect(dir);
  ck_assert_int_eq(t.segments, 2);
  ck_assert_uint_eq(t.seg_rows, 9);
  ord_check_ranges(db); /* two segments + memtable */
  close_db(db);
  db = open_db(dir, 1); /* two segments + replayed memtable */
  ord_check_ranges(db);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK); /* three segments */
  ck_assert_int_eq(inspect(dir).segments, 3);
  ord_check_ranges(db);
  close_db(db);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_scan_snapshot) {
  /* a cursor sees what was acknowledged before es_scan, nothing later,
   * even when a flush moves those rows into a segment meanwhile */
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-snap");
  es_db *db = open_db(dir, 1);
  append_range(db, "snap", "snap", 0, 30, NULL);
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  ck_assert_int_eq(spec.from_us, INT64_MIN);
  ck_assert_int_eq(spec.to_us, INT64_MAX);
  ck_assert_ptr_null(spec.person);
  spec.tenant = "snap";
  es_cursor *cur = NULL;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  append_range(db, "snap", "snap", 30, 30, NULL);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  append_range(db, "snap", "snap", 60, 30, NULL);
  es_event ev;
  int n = 0, rc;
  while ((rc = es_cursor_next(cur, &ev)) == 1) {
    ck_assert_int_lt(id_index(ev.message_id, "snap"), 30);
    n++;
  }
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq(n, 30);
  ck_assert_int_eq(es_cursor_next(cur, &ev), 0); /* stays at the end */
  es_cursor_close(cur);
  check_tenant(db, "snap", "snap", 90, NULL);
  close_db(db);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_scan_extreme_times) {
  /* Every accepted time must be reachable by the default (half-open)
   * scan, so es_append refuses ts_us = INT64_MAX, which [from, INT64_MAX)
   * could never return; INT64_MAX - 1 is the largest time stored. */
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-ext");
  es_db *db = open_db(dir, 1);
  es_event evs[3] = {
      {.ts_us = 0, .recv_us = 1, .type = ES_TYPE_TRACK, .message_id = "zero"},
      {.ts_us = INT64_MAX - 1,
       .recv_us = 1,
       .type = ES_TYPE_TRACK,
       .message_id = "max-1"},
      {.ts_us = INT64_MAX,
       .recv_us = 1,
       .type = ES_TYPE_TRACK,
       .message_id = "max"},
  };
  ck_assert_int_eq(es_append(db, "ext", evs, 3, NULL), ES_EINVAL);
  ck_assert_int_eq(es_append(db, "ext", evs, 2, NULL), ES_OK);
  for (int pass = 0; pass < 2; pass++) { /* memtable, then segment */
    ids got = scan_ids(db, "ext", INT64_MIN, INT64_MAX, NULL);
    ck_assert_int_eq(got.n, 2);
    ck_assert_str_eq(got.v[0], "zero");
    ck_assert_str_eq(got.v[1], "max-1");
    ids_free(&got);
    ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  }
  close_db(db);
  ut_rmrf(dir);
}
END_TEST

/* ---- person filter --------------------------------------------------------
 */

static void person_append(es_db *db, int batch) {
  /* anonymous ids A, B, C; user ids X, Y; NULL user ids too */
  static const struct {
    const char *anon, *user;
  } who[] = {{"anon-A", NULL},
             {"anon-B", "user-X"},
             {"anon-A", "user-X"},
             {"anon-C", "user-Y"},
             {NULL, "user-X"}};
  es_event evs[5];
  char idbuf[5][16];
  for (int i = 0; i < 5; i++) {
    snprintf(idbuf[i], sizeof(idbuf[i]), "p%d-%d", batch, i);
    evs[i] = (es_event){.ts_us = TS_BASE + batch * 100 + i,
                        .recv_us = 1,
                        .type = ES_TYPE_IDENTIFY,
                        .message_id = idbuf[i],
                        .anonymous_id = who[i].anon,
                        .user_id = who[i].user};
  }
  ck_assert_int_eq(es_append(db, "ppl", evs, 5, NULL), ES_OK);
}

/* Checks that a person scan returns exactly `want` (ids, in order). */
static void person_check(es_db *db, const char *person, const char *const *want,
                         size_t n) {
  ids got = scan_ids(db, "ppl", INT64_MIN, INT64_MAX, person);
  ck_assert_msg(got.n == n, "person %s: %zu events, want %zu", person, got.n,
                n);
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(strcmp(got.v[i], want[i]) == 0, "person %s: %s, want %s",
                  person, got.v[i], want[i]);
  ids_free(&got);
}

static void person_checks(es_db *db) {
  static const char *const a[] = {"p0-0", "p0-2", "p1-0", "p1-2"};
  static const char *const x[] = {"p0-1", "p0-2", "p0-4",
                                  "p1-1", "p1-2", "p1-4"};
  static const char *const y[] = {"p0-3", "p1-3"};
  static const char *const b[] = {"p0-1", "p1-1"};
  person_check(db, "anon-A", a, 4); /* by anonymous_id */
  person_check(db, "user-X", x, 6); /* by user_id */
  person_check(db, "user-Y", y, 2);
  person_check(db, "anon-B", b, 2);
  person_check(db, "anon-Z", NULL, 0);
  person_check(db, "user", NULL, 0); /* no prefix matches */
  person_check(db, "", NULL, 0);
}

START_TEST(test_person_filter) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-person");
  es_db *db = open_db(dir, 1);
  person_append(db, 0);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK); /* batch 0 in a segment */
  person_append(db, 1);                        /* batch 1 in memory */
  person_checks(db);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  person_checks(db); /* both in segments (Bloom filters in play) */
  close_db(db);
  ut_rmrf(dir);
}
END_TEST

/* ---- reopen ----------------------------------------------------------------
 */

typedef struct logbuf {
  pthread_mutex_t mu;
  int replayed; /* "replayed" messages seen */
} logbuf;

static void log_fn(void *ud, int level, const char *msg) {
  (void)level;
  logbuf *l = ud;
  pthread_mutex_lock(&l->mu);
  if (strstr(msg, "replayed"))
    l->replayed++;
  pthread_mutex_unlock(&l->mu);
}

static es_db *open_logged(const char *dir, int shards, logbuf *l) {
  es_options o;
  opts_for(&o, dir, shards);
  o.log.fn = log_fn;
  o.log.ud = l;
  es_db *db = NULL;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  return db;
}

START_TEST(test_reopen_replays) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-reopen");
  logbuf l = {PTHREAD_MUTEX_INITIALIZER, 0};
  es_db *db = open_db(dir, 2);
  static const char *const tenants[] = {"r1", "r2", "r3"};
  for (int t = 0; t < 3; t++)
    for (int b = 0; b < 3; b++)
      append_range(db, tenants[t], tenants[t], b * 10, 10, scattered_ts);
  close_db(db); /* no flush: everything is only in the WAL */

  db = open_logged(dir, 2, &l);
  ck_assert_int_gt(l.replayed, 0);
  for (int t = 0; t < 3; t++)
    check_tenant(db, tenants[t], tenants[t], 30, scattered_ts);
  ck_assert_int_eq(inspect(dir).segments, 0);
  /* more appends on top of the replayed rows, then a flush */
  for (int t = 0; t < 3; t++)
    append_range(db, tenants[t], tenants[t], 30, 10, scattered_ts);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  close_db(db);

  /* after a flush nothing needs replaying; a different shard count in
   * the options does not change the store's */
  l.replayed = 0;
  db = open_logged(dir, 5, &l);
  ck_assert_int_eq(l.replayed, 0);
  for (int t = 0; t < 3; t++)
    check_tenant(db, tenants[t], tenants[t], 40, scattered_ts);
  tally ti = inspect(dir);
  ck_assert_uint_eq(ti.seg_rows, 120);
  close_db(db);
  ck_assert_int_eq(ut_count_suffix(dir, ""), 4); /* ESDB LOCK tenants wal */
  char wal[600];
  snprintf(wal, sizeof(wal), "%s/wal", dir);
  ck_assert_int_eq(ut_count_suffix(wal, ""), 2);
  /* a third open with appends but no flush replays just those */
  db = open_db(dir, 2);
  append_range(db, "r1", "r1", 40, 5, scattered_ts);
  close_db(db);
  l.replayed = 0;
  db = open_logged(dir, 2, &l);
  ck_assert_int_eq(l.replayed, 1);
  check_tenant(db, "r1", "r1", 45, scattered_ts);
  check_tenant(db, "r2", "r2", 40, scattered_ts);
  close_db(db);
  pthread_mutex_destroy(&l.mu);
  ut_rmrf(dir);
}
END_TEST

/* ---- refusals
 * ---------------------------------------------------------------- */

/* The length of " (file:123)" in detail (0 when absent). */
static size_t location_len(const char *detail, const char *file) {
  char open[32];
  snprintf(open, sizeof(open), " (%s:", file);
  const char *at = strstr(detail, open);
  return at ? (size_t)(strchr(at, ')') + 1 - at) : 0;
}

START_TEST(test_open_twice_busy) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-busy");
  es_db *db = open_db(dir, 1);
  es_options o;
  opts_for(&o, dir, 1);
  es_db *db2 = (es_db *)1;
  ck_assert_int_eq(es_open(&o, &db2), ES_EBUSY);
  ck_assert_ptr_null(db2);
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "LOCK"));
  /* the holder wrote its PID into LOCK: the refusal names it */
  char pid[64];
  snprintf(pid, sizeof(pid), "locked by process %ld", (long)getpid());
  ck_assert_msg(strstr(es_errdetail(), pid) != NULL, "%s", es_errdetail());
  /* the detail carries two locations (io.c's, then db.c's); the message
   * none, and the rest of the text unchanged */
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "(io.c:"));
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "(db.c:"));
  ck_assert_ptr_null(strstr(es_errmsg(), ".c:"));
  ck_assert_ptr_nonnull(strstr(es_errmsg(), pid));
  ck_assert_uint_eq(strlen(es_errmsg()),
                    strlen(es_errdetail()) -
                        location_len(es_errdetail(), "io.c") -
                        location_len(es_errdetail(), "db.c"));
  /* a read-only handle opens beside the writer */
  o.read_only = 1;
  ck_assert_int_eq(es_open(&o, &db2), ES_OK);
  ck_assert_int_eq(es_close(db2), ES_OK);
  /* the first handle is unaffected */
  append_range(db, "t", "t", 0, 3, NULL);
  check_tenant(db, "t", "t", 3, NULL);
  close_db(db);
  /* released on close */
  db = open_db(dir, 1);
  check_tenant(db, "t", "t", 3, NULL);
  close_db(db);
  ut_rmrf(dir);
}
END_TEST

/* must_exist and read-only handles never create a store: a mistyped
 * path stays absent and the error says so, without source locations in
 * es_errmsg() (es_errdetail() keeps them). */
START_TEST(test_no_store_created) {
  char dir[512], missing[600];
  ut_tmpdir(dir, sizeof(dir), "db-nostore");
  snprintf(missing, sizeof(missing), "%s/typo", dir);
  for (int ro = 0; ro <= 1; ro++) {
    es_options o;
    opts_for(&o, missing, 1);
    o.must_exist = !ro;
    o.read_only = ro;
    es_db *db = (es_db *)1;
    ck_assert_int_eq(es_open(&o, &db), ES_ENOTFOUND);
    ck_assert_ptr_null(db);
    ck_assert_ptr_nonnull(strstr(es_errdetail(), "no store in"));
    ck_assert_ptr_nonnull(strstr(es_errdetail(), ".c:"));
    ck_assert_ptr_nonnull(strstr(es_errmsg(), "no store in"));
    ck_assert_ptr_null(strstr(es_errmsg(), ".c:"));
    ck_assert_ptr_null(strstr(es_errmsg(), "("));
    FILE *f = fopen(missing, "r");
    ck_assert_ptr_null(f); /* nothing was created */
  }
  /* must_exist on an existing store opens it */
  close_db(open_db(dir, 1));
  es_options o;
  opts_for(&o, dir, 1);
  o.must_exist = 1;
  es_db *db = NULL;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

/* What es_stats_tenants reports, for test_stats. */
typedef struct tenant_figs {
  es_tenant_stats v[4];
  int n;
} tenant_figs;

static void collect_tenant(void *ud, const es_tenant_stats *ts) {
  tenant_figs *f = ud;
  ck_assert_int_lt(f->n, 4);
  f->v[f->n++] = *ts;
}

/* es_stats_get: WAL bytes after appends, segments and a timed flush
 * after es_flush, merges after es_compact; a struct too small refused. */
START_TEST(test_stats) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-stats");
  es_db *db = open_db(dir, 1);
  es_stats st;
  ck_assert_int_eq(es_stats_get(db, &st), ES_OK);
  ck_assert_uint_eq(st.struct_size, sizeof(st));
  ck_assert_uint_eq(st.segments, 0);
  ck_assert_uint_eq(st.flushes, 0);
  for (int round = 0; round < 3; round++) {
    append_range(db, "t", "t", round * 10, 10, NULL);
    ck_assert_int_eq(es_flush(db, "t"), ES_OK);
  }
  ck_assert_int_eq(es_stats_get(db, &st), ES_OK);
  ck_assert_uint_eq(st.tenants, 1);
  ck_assert_uint_eq(st.tenants_loaded, 1);
  ck_assert_uint_eq(st.segments, 3);
  ck_assert_uint_eq(st.segment_rows, 30);
  ck_assert_uint_gt(st.segment_bytes, 0);
  ck_assert_uint_eq(st.flushes, 3);
  ck_assert_uint_ge(st.flush_us_total, st.flush_us_max);
  ck_assert_uint_gt(st.wal_bytes, 0);
  ck_assert_int_eq(st.failed, 0);
  es_compact_report rep;
  ck_assert_int_eq(es_compact(db, "t", NULL, &rep), ES_OK);
  ck_assert_int_eq(es_stats_get(db, &st), ES_OK);
  ck_assert_uint_eq(st.merges, 1);
  ck_assert_uint_eq(st.segments, 1);
  ck_assert_uint_eq(st.segment_rows, 30);
  ck_assert_int_eq(es_stats_get_sized(db, &st, 8), ES_EINVAL);
  ck_assert_int_eq(es_stats_get(NULL, &st), ES_EINVAL);
  /* es_stats_tenants: one call per tenant, the figures of each. */
  append_range(db, "u", "u", 0, 7, NULL);
  tenant_figs figs = {0};
  ck_assert_int_eq(es_stats_tenants(db, collect_tenant, &figs), ES_OK);
  ck_assert_int_eq(figs.n, 2);
  int ti = strcmp(figs.v[0].tenant, "t") == 0 ? 0 : 1;
  ck_assert_str_eq(figs.v[ti].tenant, "t");
  ck_assert_str_eq(figs.v[1 - ti].tenant, "u");
  ck_assert_uint_eq(figs.v[ti].struct_size, sizeof(es_tenant_stats));
  ck_assert_int_eq(figs.v[ti].loaded, 1);
  ck_assert_uint_eq(figs.v[ti].segments, 1);
  ck_assert_uint_eq(figs.v[ti].segment_rows, 30);
  ck_assert_uint_eq(figs.v[ti].segment_bytes, st.segment_bytes);
  ck_assert_uint_eq(figs.v[ti].memtable_rows, 0);
  ck_assert_uint_eq(figs.v[1 - ti].segments, 0);
  ck_assert_uint_eq(figs.v[1 - ti].memtable_rows, 7);
  ck_assert_int_eq(es_flush(db, "u"), ES_OK);
  figs.n = 0;
  ck_assert_int_eq(es_stats_tenants(db, collect_tenant, &figs), ES_OK);
  ti = strcmp(figs.v[0].tenant, "u") == 0 ? 0 : 1;
  ck_assert_uint_eq(figs.v[ti].segment_rows, 7);
  ck_assert_uint_eq(figs.v[ti].memtable_rows, 0);
  ck_assert_int_eq(es_stats_tenants(db, NULL, NULL), ES_EINVAL);
  close_db(db);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_invalid_options) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-opts");
  es_options o;
  es_db *db = (es_db *)1;
  ck_assert_int_eq(es_open(NULL, &db), ES_EINVAL);
  ck_assert_ptr_null(db);
  opts_for(&o, dir, 1);
  ck_assert_int_eq(es_open(&o, NULL), ES_EINVAL);
  /* one bad field at a time */
  for (int k = 0; k < 12; k++) {
    opts_for(&o, dir, 1);
    switch (k) {
    case 0:
      o.data_dir = NULL;
      break;
    case 1:
      o.data_dir = "";
      break;
    case 2:
      o.shards = 0;
      break;
    case 3:
      o.shards = 1025;
      break;
    case 4:
      o.shards = -1;
      break;
    case 5:
      o.seal_bytes = 4095;
      break;
    case 6:
      o.memtable_budget_bytes = 65535;
      break;
    case 7:
      o.wal_file_bytes = 4095;
      break;
    case 8:
      o.sync_mode = 2;
      break;
    case 9:
      o.read_only = 1;
      o.follow_interval_us = 0;
      break;
    case 10:
      o.seal_age_us = 0;
      break;
    case 11:
      o.seal_age_us = -5;
      break;
    }
    db = (es_db *)1;
    int rc = es_open(&o, &db);
    ck_assert_msg(rc == ES_EINVAL, "case %d: %d, want ES_EINVAL", k, rc);
    ck_assert_ptr_null(db);
  }
  /* nothing was created by the refused opens */
  ck_assert_int_eq(ut_count_suffix(dir, ""), 0);
  /* the limits themselves are fine */
  opts_for(&o, dir, 1);
  o.seal_bytes = 4096;
  o.memtable_budget_bytes = 65536;
  o.wal_file_bytes = 4096;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  close_db(db);
  ck_assert_int_eq(es_close(NULL), ES_OK);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_bad_tenant_and_events) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-bad");
  es_db *db = open_db(dir, 1);
  es_event ev = {.ts_us = 5, .type = ES_TYPE_TRACK, .message_id = "x"};
  const char *bad[] = {"../x",        "a/b", "", "a b",
                       "caf\xc3\xa9", NULL}; /* 65 'x', filled in below */
  char long_tenant[66];
  memset(long_tenant, 'x', 65);
  long_tenant[65] = '\0';
  bad[5] = long_tenant;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    es_receipt r = {.lsn = 99};
    ck_assert_int_eq(es_append(db, bad[i], &ev, 1, &r), ES_ETENANT);
    ck_assert_uint_eq(r.lsn, 0); /* out-parameter zeroed on failure */
    ck_assert_int_eq(es_flush(db, bad[i]), ES_ETENANT);
    es_scan_spec spec;
    es_scan_spec_init(&spec);
    spec.tenant = bad[i];
    es_cursor *cur = (es_cursor *)1;
    ck_assert_int_eq(es_scan(db, &spec, &cur), ES_ETENANT);
    ck_assert_ptr_null(cur);
  }
  ck_assert_int_eq(es_append(db, NULL, &ev, 1, NULL), ES_ETENANT);
  es_scan_spec spec;
  es_scan_spec_init(&spec); /* tenant NULL */
  es_cursor *cur = (es_cursor *)1;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_ETENANT);
  ck_assert_ptr_null(cur);
  /* nothing reached the disk for the refused tenants */
  char tdir[600];
  snprintf(tdir, sizeof(tdir), "%s/tenants", dir);
  ck_assert_int_eq(ut_count_suffix(tdir, ""), 0);

  /* invalid events and batches */
  ck_assert_int_eq(es_append(db, "ok", &ev, 0, NULL), ES_EINVAL);
  ck_assert_int_eq(es_append(db, "ok", NULL, 1, NULL), ES_EINVAL);
  ck_assert_int_eq(es_append(NULL, "ok", &ev, 1, NULL), ES_EINVAL);
  es_event two[2] = {ev, ev};
  two[1].type = 0;
  ck_assert_int_eq(es_append(db, "ok", two, 2, NULL), ES_EINVAL);
  two[1].type = ES_TYPE_PAGE;
  two[1].ts_us = -1;
  ck_assert_int_eq(es_append(db, "ok", two, 2, NULL), ES_EINVAL);
  /* the batch limit is checked before any event is read */
  ck_assert_int_eq(es_append(db, "ok", &ev, ES_BATCH_EVENTS_MAX + 1, NULL),
                   ES_ETOOBIG);
  /* the refused batches left nothing behind (batches are atomic) */
  ids got = scan_ids(db, "ok", INT64_MIN, INT64_MAX, NULL);
  ck_assert_uint_eq(got.n, 0);
  ids_free(&got);
  ck_assert_int_eq(es_flush(NULL, NULL), ES_EINVAL);
  ck_assert_int_eq(es_scan(db, NULL, &cur), ES_EINVAL);
  ck_assert_int_eq(es_cursor_next(NULL, &ev), ES_EINVAL);
  es_cursor_close(NULL);
  close_db(db);
  ut_rmrf(dir);
}
END_TEST

/* ---- concurrency ------------------------------------------------------------
 */

#define CC_THREADS 8
#define CC_BATCHES 200
#define CC_EVENTS 5
#define CC_TENANTS 3

typedef struct cc_arg {
  es_db *db;
  int thread;
  int failures;
} cc_arg;

static const char *const cc_tenants[CC_TENANTS] = {"cc0", "cc1", "cc2"};

/* Batch b of thread t goes to tenant (t + b) % 3; event e of it is
 * ut_event number (t * CC_BATCHES + b) * CC_EVENTS + e of that tenant. */
static void *cc_appender(void *p) {
  cc_arg *a = p;
  for (int b = 0; b < CC_BATCHES; b++) {
    const char *tenant = cc_tenants[(a->thread + b) % CC_TENANTS];
    es_event evs[CC_EVENTS];
    ut_text tx[CC_EVENTS];
    for (int e = 0; e < CC_EVENTS; e++) {
      int i = (a->thread * CC_BATCHES + b) * CC_EVENTS + e;
      ut_event(&evs[e], &tx[e], tenant, i, TS_BASE + (i % 997) * 1000);
    }
    if (es_append(a->db, tenant, evs, CC_EVENTS, NULL) != ES_OK)
      a->failures++;
  }
  return NULL;
}

typedef struct cc_flusher {
  es_db *db;
  atomic_int stop;
  int flushes, failures;
} cc_flusher;

static void *cc_flush_loop(void *p) {
  cc_flusher *f = p;
  while (!atomic_load(&f->stop)) {
    if (es_flush(f->db, NULL) != ES_OK)
      f->failures++;
    f->flushes++;
    sleep_ms(15);
  }
  return NULL;
}

/* More appenders on one shard than it has wake-up slots (dbint.h,
 * ES_SHARD_DONE_CVS): appenders that share a slot are woken by each
 * other's groups and must sleep again until their own is done.  A lost
 * wake-up hangs here (the tcase timeout fails it). */
#define SL_THREADS 35 /* more than twice ES_SHARD_DONE_CVS (16) */
#define SL_BATCHES 12

typedef struct sl_arg {
  es_db *db;
  int thread, failures;
  uint64_t lsn_last;
} sl_arg;

static void *sl_appender(void *p) {
  sl_arg *a = p;
  for (int b = 0; b < SL_BATCHES; b++) {
    es_event ev;
    ut_text tx;
    ut_event(&ev, &tx, "slots", a->thread * SL_BATCHES + b,
             TS_BASE + b * 1000);
    es_receipt r;
    if (es_append(a->db, "slots", &ev, 1, &r) != ES_OK ||
        r.lsn <= a->lsn_last || r.stored_count != 1)
      a->failures++;
    a->lsn_last = r.lsn;
  }
  return NULL;
}

START_TEST(test_appenders_share_wake_slots) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-slots");
  es_db *db = open_db(dir, 1);
  pthread_t th[SL_THREADS];
  sl_arg args[SL_THREADS];
  for (int t = 0; t < SL_THREADS; t++) {
    args[t] = (sl_arg){db, t, 0, 0};
    ck_assert_int_eq(pthread_create(&th[t], NULL, sl_appender, &args[t]), 0);
  }
  for (int t = 0; t < SL_THREADS; t++) {
    pthread_join(th[t], NULL);
    ck_assert_int_eq(args[t].failures, 0);
  }
  ids got = scan_ids(db, "slots", INT64_MIN, INT64_MAX, NULL);
  ck_assert_int_eq((int)got.n, SL_THREADS * SL_BATCHES);
  ids_free(&got);
  close_db(db);
}
END_TEST

START_TEST(test_concurrent_appenders) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-cc");
  es_db *db = open_db(dir, 2);
  pthread_t th[CC_THREADS], fth;
  cc_arg args[CC_THREADS];
  cc_flusher fl = {.db = db};
  atomic_init(&fl.stop, 0);
  ck_assert_int_eq(pthread_create(&fth, NULL, cc_flush_loop, &fl), 0);
  for (int t = 0; t < CC_THREADS; t++) {
    args[t] = (cc_arg){db, t, 0};
    ck_assert_int_eq(pthread_create(&th[t], NULL, cc_appender, &args[t]), 0);
  }
  for (int t = 0; t < CC_THREADS; t++) {
    pthread_join(th[t], NULL);
    ck_assert_int_eq(args[t].failures, 0);
  }
  atomic_store(&fl.stop, 1);
  pthread_join(fth, NULL);
  ck_assert_int_eq(fl.failures, 0);

  /* every message id exactly once, in total CC_THREADS*CC_BATCHES*CC_EVENTS */
  const int total_ids = CC_THREADS * CC_BATCHES * CC_EVENTS;
  for (int pass = 0; pass < 2; pass++) {
    char *seen = calloc((size_t)total_ids, 1);
    int total = 0;
    for (int k = 0; k < CC_TENANTS; k++) {
      ids got = scan_ids(db, cc_tenants[k], INT64_MIN, INT64_MAX, NULL);
      for (size_t j = 0; j < got.n; j++) {
        int i = id_index(got.v[j], cc_tenants[k]);
        ck_assert_msg(i >= 0 && i < total_ids, "stray id %s", got.v[j]);
        int t = i / CC_EVENTS / CC_BATCHES, b = i / CC_EVENTS % CC_BATCHES;
        ck_assert_msg((t + b) % CC_TENANTS == k, "%s in the wrong tenant",
                      got.v[j]);
        ck_assert_msg(!seen[i], "id %s twice", got.v[j]);
        seen[i] = 1;
      }
      total += (int)got.n;
      ids_free(&got);
    }
    ck_assert_int_eq(total, total_ids);
    free(seen);
    if (pass == 0) { /* again from disk alone */
      close_db(db);
      db = open_db(dir, 2);
    }
  }
  ck_assert_int_eq(es_verify(dir, problem_fail, NULL), ES_OK);
  close_db(db);
  ut_rmrf(dir);
}
END_TEST

/* ---- background work
 * --------------------------------------------------------- */

START_TEST(test_seal_by_size) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-seal");
  es_options o;
  opts_for(&o, dir, 1);
  o.seal_bytes = 4096; /* every commit's memtable is over it */
  es_db *db = NULL;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  for (int b = 0; b < 10; b++)
    append_range(db, "seal", "seal", b * 20, 20, scattered_ts);
  /* no es_flush: the flusher turns each sealed memtable into a segment */
  tally t = {0};
  for (int waited = 0; waited < 10000; waited += 20) {
    t = inspect(dir);
    if (t.segments >= 10)
      break;
    sleep_ms(20);
  }
  ck_assert_int_eq(t.segments, 10);
  ck_assert_uint_eq(t.seg_rows, 200);
  check_tenant(db, "seal", "seal", 200, scattered_ts);
  close_db(db);
  db = open_db(dir, 1);
  check_tenant(db, "seal", "seal", 200, scattered_ts);
  close_db(db);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_wal_reclaimed_after_flush) {
  char dir[512], waldir[600];
  ut_tmpdir(dir, sizeof(dir), "db-reclaim");
  snprintf(waldir, sizeof(waldir), "%s/wal/0", dir);
  es_options o;
  opts_for(&o, dir, 1);
  o.wal_file_bytes = 4096; /* a few frames per file */
  es_db *db = NULL;
  ck_assert_int_eq(es_open(&o, &db), ES_OK);
  for (int b = 0; b < 40; b++)
    append_range(db, b % 2 ? "w1" : "w2", b % 2 ? "w1" : "w2", b * 5, 5, NULL);
  int before = ut_count_suffix(waldir, ".wal");
  ck_assert_int_ge(before, 3);
  ck_assert_int_eq(es_flush(db, "w1"), ES_OK);
  /* w2 still needs its records from the very first frame on: nothing
   * may go yet (give the writer time to try) */
  sleep_ms(300);
  ck_assert_int_eq(ut_count_suffix(waldir, ".wal"), before);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  /* reclaim runs on the shard's writer thread shortly after the flush */
  int after = before;
  for (int waited = 0; waited < 10000; waited += 20) {
    after = ut_count_suffix(waldir, ".wal");
    if (after == 1)
      break;
    sleep_ms(20);
  }
  ck_assert_msg(after == 1, "%d WAL files before the flush, %d after", before,
                after);
  /* the data lives on in segments */
  ids a = scan_ids(db, "w1", INT64_MIN, INT64_MAX, NULL);
  ids b = scan_ids(db, "w2", INT64_MIN, INT64_MAX, NULL);
  ck_assert_uint_eq(a.n, 100);
  ck_assert_uint_eq(b.n, 100);
  ids_free(&a);
  ids_free(&b);
  close_db(db);
  db = open_db(dir, 1);
  a = scan_ids(db, "w1", INT64_MIN, INT64_MAX, NULL);
  ck_assert_uint_eq(a.n, 100);
  ids_free(&a);
  close_db(db);
  ut_rmrf(dir);
}
END_TEST

/* ---- inspect and verify
 * ------------------------------------------------------- */

static int stop_with(void *ud, const es_file_info *info) {
  (void)info;
  return *(int *)ud;
}

START_TEST(test_inspect_verify) {
  char dir[512], empty[512];
  ut_tmpdir(dir, sizeof(dir), "db-insp");
  ut_tmpdir(empty, sizeof(empty), "db-empty");
  ck_assert_int_eq(es_inspect(empty, tally_fn, NULL), ES_ENOTFOUND);
  ck_assert_int_eq(es_verify(empty, NULL, NULL), ES_ENOTFOUND);
  ck_assert_int_eq(es_inspect(NULL, tally_fn, NULL), ES_EINVAL);
  ck_assert_int_eq(es_inspect(dir, NULL, NULL), ES_EINVAL);
  ck_assert_int_eq(es_verify(NULL, NULL, NULL), ES_EINVAL);

  es_db *db = open_db(dir, 2);
  append_range(db, "i1", "i1", 0, 30, NULL);
  append_range(db, "i2", "i2", 0, 30, NULL);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  append_range(db, "i1", "i1", 30, 10, NULL);
  /* while open */
  tally t = inspect(dir);
  ck_assert_int_eq(t.segments, 2);
  ck_assert_uint_eq(t.seg_rows, 60);
  ck_assert_int_eq(t.min_ts, TS_BASE);
  ck_assert_int_eq(t.max_ts, TS_BASE + 29 * 1000);
  ck_assert_str_eq(t.tenants, "i1,i2,");
  ck_assert_int_ge(t.wal_files, 2); /* one per shard at least */
  ck_assert_uint_ge(t.wal_events, 10);
  ck_assert_uint_eq(t.unflushed, 10); /* i1's rows after the flush */
  ck_assert_int_eq(es_verify(dir, problem_fail, NULL), ES_OK);
  ck_assert_int_eq(es_verify(dir, NULL, NULL), ES_OK);
  close_db(db);
  /* and closed */
  t = inspect(dir);
  ck_assert_int_eq(t.segments, 2);
  ck_assert_int_eq(es_verify(dir, problem_fail, NULL), ES_OK);
  /* fn stops the walk and its value comes back */
  int stop = 7;
  ck_assert_int_eq(es_inspect(dir, stop_with, &stop), 7);
  ut_rmrf(dir);
  ut_rmrf(empty);
}
END_TEST

START_TEST(test_inspect_stop_negative) {
  /* "fn returns 0 to go on, non-zero to stop (then es_inspect returns
   * it)": a negative value on a segment must not leak the manifest that
   * was being walked (LeakSanitizer fails this test if it does) */
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-insp-neg");
  es_db *db = open_db(dir, 1);
  append_range(db, "neg", "neg", 0, 5, NULL);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  close_db(db);
  int stop = -1;
  ck_assert_int_eq(es_inspect(dir, stop_with, &stop), -1);
  ut_rmrf(dir);
}
END_TEST

typedef struct found {
  int n;
  char path[512];
  uint64_t off;
} found;

static void problem_note(void *ud, const char *path, uint64_t off,
                         const char *what) {
  (void)what;
  found *f = ud;
  if (f->n++ == 0) {
    snprintf(f->path, sizeof(f->path), "%s", path);
    f->off = off;
  }
}

START_TEST(test_verify_finds_damage) {
  char dir[512], seg[700];
  ut_tmpdir(dir, sizeof(dir), "db-damage");
  es_db *db = open_db(dir, 1);
  append_range(db, "dmg", "dmg", 0, 50, NULL);
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  close_db(db);
  snprintf(seg, sizeof(seg), "%s/tenants/dmg/0000000000000001.seg", dir);
  ck_assert(ut_exists(seg));
  ut_flip_byte(seg, 20, 0x01); /* inside the first block */
  found f = {0};
  ck_assert_int_eq(es_verify(dir, problem_note, &f), ES_ECORRUPT);
  ck_assert_int_ge(f.n, 1);
  ck_assert_str_eq(f.path, seg);
  ck_assert_uint_eq(f.off, 16); /* the first block follows the header */
  /* a scan meets the damage and reports it */
  db = open_db(dir, 1);
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = "dmg";
  es_cursor *cur = NULL;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  es_event ev;
  ck_assert_int_eq(es_cursor_next(cur, &ev), ES_ECORRUPT);
  ck_assert_int_eq(es_cursor_next(cur, &ev), ES_ECORRUPT); /* sticky */
  es_cursor_close(cur);
  close_db(db);
  ut_rmrf(dir);
}
END_TEST

/* ---- status codes
 * ------------------------------------------------------------- */

START_TEST(test_strerror) {
  /* pinned values */
  static const int codes[] = {
      ES_OK,       ES_EINVAL,  ES_ENOMEM,  ES_EIO,       ES_ENOSPC,
      ES_ECORRUPT, ES_EFAILED, ES_EBUSY,   ES_ENOTFOUND, ES_EVERSION,
      ES_ETENANT,  ES_ETOOBIG, ES_ECLOSED, ES_EREADONLY, ES_EDEGRADED,
      ES_ECONFLICT, ES_EUNAVAIL, ES_EREMOTE};
  enum { NCODES = sizeof(codes) / sizeof(codes[0]) };
  for (int i = 0; i < NCODES; i++)
    ck_assert_int_eq(codes[i], -i);
  const char *unknown = es_strerror(-NCODES);
  ck_assert_ptr_nonnull(unknown);
  ck_assert_str_eq(unknown, "unknown status");
  for (int i = 0; i < NCODES; i++) {
    const char *s = es_strerror(codes[i]);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_gt(strlen(s), 1);
    ck_assert_str_ne(s, unknown);
    for (int j = 0; j < i; j++)
      ck_assert_msg(strcmp(s, es_strerror(codes[j])) != 0,
                    "codes %d and %d share \"%s\"", codes[i], codes[j], s);
  }
  ck_assert_ptr_nonnull(strstr(es_strerror(ES_ETENANT), "tenant"));
  ck_assert_ptr_nonnull(strstr(es_strerror(ES_EBUSY), "locked"));
  ck_assert_str_eq(es_strerror(-1000), unknown);
  ck_assert_str_eq(es_strerror(INT32_MIN), unknown);
  ck_assert_ptr_nonnull(es_strerror(1));
  ck_assert_ptr_nonnull(es_strerror(INT32_MAX));
  ck_assert_int_eq(es_version(), ES_VERSION_NUMBER);
  ck_assert_ptr_nonnull(es_errdetail());
}
END_TEST

/* es_scan_spec.fields: only the asked-for strings, from segments (whose
 * other blocks are not read) and memtables alike. */
START_TEST(test_scan_fields) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "db-fields");
  es_db *db = open_db(dir, 1);
  es_event ev[2];
  memset(ev, 0, sizeof(ev));
  for (int i = 0; i < 2; i++) {
    ev[i].ts_us = 1000 + i;
    ev[i].type = ES_TYPE_PAGE;
    ev[i].event = "Home";
    ev[i].path = "/";
    ev[i].message_id = i ? "m1" : "m0";
    ev[i].anonymous_id = "a";
    ev[i].properties = "{\"big\":1}";
    ev[i].url = "https://x/";
  }
  ck_assert_int_eq(es_append(db, "f", &ev[0], 1, NULL), ES_OK);
  ck_assert_int_eq(es_flush(db, "f"), ES_OK); /* one in a segment */
  ck_assert_int_eq(es_append(db, "f", &ev[1], 1, NULL), ES_OK);
  for (int pass = 0; pass < 2; pass++) {
    es_scan_spec spec;
    es_scan_spec_init(&spec);
    spec.tenant = "f";
    spec.fields = ES_FIELD_PATH | ES_FIELD_MESSAGE_ID;
    spec.person = pass ? "a" : NULL; /* a person filter adds the ids */
    es_cursor *cur;
    ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
    es_event got;
    int n = 0;
    while (es_cursor_next(cur, &got) == 1) {
      ck_assert_str_eq(got.path, "/");
      ck_assert_str_eq(got.message_id, n ? "m1" : "m0");
      ck_assert_int_eq(got.ts_us, 1000 + n);
      ck_assert_ptr_null(got.event);
      ck_assert_ptr_null(got.properties);
      ck_assert_ptr_null(got.url);
      if (pass)
        ck_assert_str_eq(got.anonymous_id, "a");
      else
        ck_assert_ptr_null(got.anonymous_id);
      n++;
    }
    ck_assert_int_eq(n, 2);
    es_cursor_close(cur);
  }
  ck_assert_int_eq(es_close(db), ES_OK);
  ut_rmrf(dir);
}
END_TEST

static Suite *db_suite(void) {
  Suite *s = suite_create("db");
  TCase *tc = tcase_create("db");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_options_struct_size);
  tcase_add_test(tc, test_sized_events_and_results);
  tcase_add_test(tc, test_append_scan_tenants);
  tcase_add_test(tc, test_sync_full);
  tcase_add_test(tc, test_scan_order_across_sources);
  tcase_add_test(tc, test_scan_snapshot);
  tcase_add_test(tc, test_scan_extreme_times);
  tcase_add_test(tc, test_person_filter);
  tcase_add_test(tc, test_reopen_replays);
  tcase_add_test(tc, test_open_twice_busy);
  tcase_add_test(tc, test_no_store_created);
  tcase_add_test(tc, test_stats);
  tcase_add_test(tc, test_invalid_options);
  tcase_add_test(tc, test_bad_tenant_and_events);
  tcase_add_test(tc, test_concurrent_appenders);
  tcase_add_test(tc, test_appenders_share_wake_slots);
  tcase_add_test(tc, test_seal_by_size);
  tcase_add_test(tc, test_wal_reclaimed_after_flush);
  tcase_add_test(tc, test_inspect_verify);
  tcase_add_test(tc, test_inspect_stop_negative);
  tcase_add_test(tc, test_verify_finds_damage);
  tcase_add_test(tc, test_strerror);
  tcase_add_test(tc, test_scan_fields);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(db_suite()); }
