/*
 * test_export_fault.c -- es_export under faults: every counted I/O call
 * of a re-export fails (EIO) or is a power cut, and every allocation
 * fails, in turn.
 *
 * The store (on memvfs) holds tenant "x" on two days; day 1 was exported
 * once and then got late events, so re-exporting it replaces its
 * partition.  After each fault (and after the power cut's reboot) every
 * partition must be whole: its _manifest.json names files that exist with
 * the manifest's sizes and CRC-32s, whose Parquet footers parse and hold
 * the manifest's rows, and day 1 holds either the old rows or the new
 * ones, never a mix.  A clean export after the fault must then give the
 * new rows with no other part files left (orphans removed).
 *
 * The same re-export into an object store (objmem under a key prefix):
 * the k-th object-store request fails (a 503 after the client's retries:
 * ES_EUNAVAIL, no effect) or its connection drops (ES_EUNAVAIL, a put or
 * delete applied or not), for every k; the same checks hold on the
 * objects.
 *
 * The continuous exporter (stream.c) likewise: a pass over the store with
 * the late events, after a clean pass over the store without them, with
 * the k-th request failing or dropped; the next pass (the same exporter,
 * as at its next interval) must leave every partition whole and exact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include <zlib.h>

#include "api.h"
#include "base/io.h"
#include "base/clock.h"
#include "base/mem.h"
#include "eventstore.h"
#include "export/export.h"
#include "export/parquet.h"
#include "memvfs.h"
#include "replicate/objmem.h"
#include "unit.h"

#define DATA "/data"
#define OUT "/out"
#define DAY_US INT64_C(86400000000)
#define DAY1_US (INT64_C(20400) * DAY_US)
#define DAY1_OLD 30 /* rows of day 1 at the first export */
#define DAY1_LATE 7 /* late rows appended after it */
#define DAY2 20

static void make_opts(es_options *o) {
  es_options_init(o);
  o->data_dir = DATA;
  o->shards = 1;
  o->wal_file_bytes = 256 * 1024;
}

static void append(es_db *db, int n, int64_t day_us, const char *tag) {
  es_event ev[64];
  ut_text tx[64];
  ck_assert_int_le(n, 64);
  for (int i = 0; i < n; i++)
    ut_event(&ev[i], &tx[i], tag, i, day_us + 60000000LL * (i + 1));
  ck_assert_int_eq(es_append(db, "x", ev, (size_t)n, NULL), ES_OK);
}

static int export_all(es_db *db) {
  es_export_options o;
  es_export_options_init(&o);
  o.out_dir = OUT;
  o.from_us = DAY1_US;
  o.to_us = DAY1_US + 2 * DAY_US;
  es_export_result r;
  return es_export(db, &o, &r);
}

/* A store whose day 1 was exported before its late events came. */
static void build_store(es_vfs *vfs) {
  es_options o;
  make_opts(&o);
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  append(db, DAY1_OLD - 10, DAY1_US, "a");
  append(db, DAY2, DAY1_US + DAY_US, "b");
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  append(db, 10, DAY1_US + 3600000000LL, "c"); /* in the memtable */
  ck_assert_msg(export_all(db) == ES_OK, "%s", es_errdetail());
  append(db, DAY1_LATE, DAY1_US + 7200000000LL, "late");
  ck_assert_int_eq(es_close(db), ES_OK);
  memvfs_sync_all(vfs);
}

static int count_entry(void *ud, const char *name) {
  (void)name;
  ++*(int *)ud;
  return 0;
}

/* Where the export is read back from: a file system or an object store
 * (keys OS_PREFIX + the partition's relative path). */
#define OS_PREFIX "exp/"
typedef struct src {
  es_vfs *vfs;
  es_objstore *os;
} src;

static int src_read(const src *s, const char *dir, const char *name,
                    uint8_t **buf, size_t *len) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (s->vfs)
    return es__io_read_all(s->vfs, path, buf, len);
  return s->os->get(s->os, path, 0, ES_OBJ_TO_END, buf, len, NULL);
}

static int count_key(void *ud, const char *key, const es_objinfo *info) {
  (void)info;
  (void)key;
  ++*(int *)ud;
  return 0;
}

static int src_entries(const src *s, const char *dir) {
  int entries = 0;
  if (s->vfs) {
    ck_assert_int_eq(s->vfs->list(s->vfs, dir, count_entry, &entries), ES_OK);
  } else {
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s/", dir);
    ck_assert_int_eq(s->os->list(s->os, prefix, NULL, count_key, &entries), ES_OK);
  }
  return entries;
}

/* Checks one partition; returns its rows, or -1 with *why set. */
static long check_partition(const src *s, const char *day, int exact,
                            const char **why) {
  char dir[256];
  snprintf(dir, sizeof dir, "%s/tenant=x/date=%s", s->vfs ? OUT : "exp", day);
  uint8_t *buf = NULL;
  size_t len = 0;
  if (src_read(s, dir, "_manifest.json", &buf, &len) != ES_OK) {
    *why = "no manifest";
    return -1;
  }
  char *text = malloc(len + 1);
  memcpy(text, buf, len);
  text[len] = 0;
  es__free(buf);
  yajl_val root = yajl_tree_parse(text, NULL, 0);
  free(text);
  const char *fp[] = {"files", NULL}, *rp[] = {"rows", NULL};
  yajl_val files = root ? yajl_tree_get(root, fp, yajl_t_array) : NULL;
  yajl_val rows = root ? yajl_tree_get(root, rp, yajl_t_number) : NULL;
  long total = -1, sum = 0;
  *why = NULL;
  if (!files || !rows) {
    *why = "manifest does not parse";
    goto done;
  }
  for (size_t i = 0; i < files->u.array.len && !*why; i++) {
    yajl_val f = files->u.array.values[i];
    const char *np[] = {"name", NULL}, *bp[] = {"bytes", NULL},
               *cp[] = {"crc32", NULL};
    const char *name = YAJL_GET_STRING(yajl_tree_get(f, np, yajl_t_string));
    long long bytes = YAJL_GET_INTEGER(yajl_tree_get(f, bp, yajl_t_number));
    long long frows = YAJL_GET_INTEGER(yajl_tree_get(f, rp, yajl_t_number));
    const char *crc = YAJL_GET_STRING(yajl_tree_get(f, cp, yajl_t_string));
    uint8_t *img = NULL;
    size_t n = 0;
    if (src_read(s, dir, name, &img, &n) != ES_OK) {
      *why = "a listed file is missing";
      break;
    }
    char hex[16];
    snprintf(hex, sizeof hex, "%08lx", crc32(0, img, (uInt)n));
    es_pq_footer_info info;
    if ((long long)n != bytes)
      *why = "a listed file has another size";
    else if (strcmp(hex, crc) != 0)
      *why = "a listed file has another crc32";
    else if (es__pq_footer_read(img, n, &info) != ES_OK)
      *why = "a listed file's footer does not parse";
    else if (info.num_rows != frows)
      *why = "a listed file holds other rows than its manifest says";
    es__free(img);
    sum += (long)frows;
  }
  if (!*why && sum != (long)YAJL_GET_INTEGER(rows))
    *why = "file rows do not add up to the manifest's";
  if (!*why && exact) {
    /* nothing but the manifest and its files */
    int entries = src_entries(s, dir);
    if ((size_t)entries != files->u.array.len + 1)
      *why = "files that no manifest names are left";
  }
  if (!*why)
    total = sum;
done:
  yajl_tree_free(root);
  return total;
}

/* NULL when the export directory is whole (see the top). */
static const char *check_out(const src *s, int want_new) {
  const char *why;
  long d1 = check_partition(s, "2025-11-08", want_new, &why);
  if (d1 < 0)
    return why;
  if (d1 != DAY1_OLD && d1 != DAY1_OLD + DAY1_LATE)
    return "day 1 holds a mix of old and new rows";
  if (want_new && d1 != DAY1_OLD + DAY1_LATE)
    return "day 1 lacks the late rows";
  long d2 = check_partition(s, "2025-11-09", want_new, &why);
  if (d2 < 0)
    return why;
  return d2 == DAY2 ? NULL : "day 2 lost or gained rows";
}

/* Re-exports on a fresh store with a fault at k (0: none; mode 0 EIO,
 * 1 power cut, 2 allocation); returns the calls (or allocations) made. */
static unsigned long export_point(unsigned long k, int mode, int *bad) {
  es_vfs *vfs = memvfs_create();
  build_store(vfs);
  es_options o;
  make_opts(&o);
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  if (mode == 1 && k)
    memvfs_crash_at(vfs, k);
  else if (mode == 0 && k)
    memvfs_fail_at(vfs, k, ES_EIO, 0);
  else
    memvfs_fail_at(vfs, 0, ES_EIO, 0); /* resets the counter */
  if (mode == 2)
    (void)es__mem_fail_at(k);
  int rc = export_all(db);
  unsigned long calls = mode == 2 ? es__mem_fail_at(0) : memvfs_count(vfs);
  ck_assert_msg(k > 0 || rc == ES_OK, "clean export: %s", es_errdetail());
  (void)es_close(db);
  memvfs_clear_faults(vfs);
  if (mode == 1)
    memvfs_crash(vfs);
  src sv = {vfs, NULL};
  const char *why = check_out(&sv, k == 0 || rc == ES_OK);
  if (!why) { /* then a clean export repairs everything */
    ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
    ck_assert_msg(export_all(db) == ES_OK, "%s", es_errdetail());
    ck_assert_int_eq(es_close(db), ES_OK);
    why = check_out(&sv, 1);
  }
  *bad = why != NULL;
  if (why)
    printf("export fault at %lu (%s): %s\n", k,
           mode == 0   ? "EIO"
           : mode == 1 ? "power cut"
                       : "allocation",
           why);
  ck_assert_int_eq(memvfs_open_handles(vfs), 0);
  memvfs_destroy(vfs);
  return calls;
}

START_TEST(test_export_faults) {
  int bad = 0, failures = 0;
  for (int mode = 0; mode < 3; mode++) {
    unsigned long total = export_point(0, mode, &bad);
    ck_assert_msg(!bad, "clean run failed");
    ck_assert_uint_gt(total, 5);
    printf("export: %lu %s points\n", total,
           mode == 2 ? "allocation" : "counted I/O");
    for (unsigned long k = 1; k <= total + 1; k++) {
      export_point(k, mode, &bad);
      failures += bad;
    }
  }
  ck_assert_int_eq(failures, 0);
}
END_TEST

/* es_export into an object store under OS_PREFIX. */
static int export_os(es_db *db, es_objstore *os) {
  es_xdest *d = NULL;
  ck_assert_int_eq(es__dest_wrap(os, "exp", &d), ES_OK);
  es_export_options o;
  es_export_options_init(&o);
  o.out_dir = "unused";
  o.from_us = DAY1_US;
  o.to_us = DAY1_US + 2 * DAY_US;
  es_export_result r;
  int rc = es__export_dest(db, d, &o, &r);
  es__dest_close(d);
  return rc;
}

/* One object-store fault at request k (0: none) of the re-export from
 * db_new over what db_old exported; returns the requests made. */
static unsigned long os_point(es_db *db_old, es_db *db_new, unsigned long k,
                              int kind, int *bad) {
  es_objstore *os = NULL;
  ck_assert_int_eq(es__objmem_create(3, k * 7 + (unsigned)kind, &os), ES_OK);
  ck_assert_msg(export_os(db_old, os) == ES_OK, "%s", es_errdetail());
  es__objmem_fail_at(os, k, kind, ES_EUNAVAIL);
  int rc = export_os(db_new, os);
  unsigned long calls = es__objmem_requests(os);
  es__objmem_fail_at(os, 0, 0, 0);
  ck_assert_msg(k > 0 || rc == ES_OK, "clean export: %s", es_errdetail());
  if (k > 0 && k <= calls)
    ck_assert_int_eq(rc, ES_EUNAVAIL);
  src so = {NULL, os};
  const char *why = check_out(&so, k == 0 || rc == ES_OK);
  if (!why) {
    ck_assert_msg(export_os(db_new, os) == ES_OK, "%s", es_errdetail());
    why = check_out(&so, 1);
  }
  *bad = why != NULL;
  if (why)
    printf("export object-store fault at %lu (%s): %s\n", k,
           kind == ES_OBJMEM_FAIL_DROP ? "dropped" : "503", why);
  es__objstore_destroy(os);
  return calls;
}

/* A store of its own on memvfs: day 1 without (late 0) or with its late
 * rows, day 2. */
static es_db *open_store(es_vfs *vfs, int late) {
  es_options o;
  make_opts(&o);
  es_db *db = NULL;
  ck_assert_int_eq(es__open_vfs(&o, vfs, &db), ES_OK);
  append(db, DAY1_OLD - 10, DAY1_US, "a");
  append(db, DAY2, DAY1_US + DAY_US, "b");
  ck_assert_int_eq(es_flush(db, NULL), ES_OK);
  append(db, 10, DAY1_US + 3600000000LL, "c");
  if (late) /* into hour 1, exported already: a re-export of that hour */
    append(db, DAY1_LATE, DAY1_US + 5400000000LL, "late");
  return db;
}

START_TEST(test_export_objstore_faults) {
  es_vfs *v_old = memvfs_create(), *v_new = memvfs_create();
  es_db *db_old = open_store(v_old, 0), *db_new = open_store(v_new, 1);
  int bad = 0, failures = 0;
  static const int kinds[] = {ES_OBJMEM_FAIL_STATUS, ES_OBJMEM_FAIL_DROP};
  for (int i = 0; i < 2; i++) {
    unsigned long total = os_point(db_old, db_new, 0, kinds[i], &bad);
    ck_assert_msg(!bad, "clean run failed");
    ck_assert_uint_gt(total, 5);
    printf("export: %lu object-store requests\n", total);
    for (unsigned long k = 1; k <= total + 1; k++) {
      os_point(db_old, db_new, k, kinds[i], &bad);
      failures += bad;
    }
  }
  ck_assert_int_eq(failures, 0);
  ck_assert_int_eq(es_close(db_old), ES_OK);
  ck_assert_int_eq(es_close(db_new), ES_OK);
  memvfs_destroy(v_old);
  memvfs_destroy(v_new);
}
END_TEST

/* One continuous-export pass at 01:00 the day after day 2. */
static int stream_pass(es_exporter *ex) {
  es__clock_set_fixed_us(DAY1_US + 2 * DAY_US + 3600000000LL);
  int rc = es__exporter_pass(ex);
  es__clock_set_fixed_us(0);
  return rc;
}

static es_exporter *stream_open(es_db *db, es_objstore *os, es_xdest **d) {
  ck_assert_int_eq(es__dest_wrap(os, "exp", d), ES_OK);
  es_exporter_options o;
  es_exporter_options_init(&o);
  o.out = "unused";
  o.delay_us = 0;
  es_exporter *ex = NULL;
  ck_assert_int_eq(es__exporter_open(db, *d, &o, &ex), ES_OK);
  return ex;
}

static unsigned long stream_point(es_db *db_old, es_db *db_new,
                                  unsigned long k, int kind, int *bad) {
  es_objstore *os = NULL;
  es_xdest *d0 = NULL, *d1 = NULL;
  ck_assert_int_eq(es__objmem_create(3, k * 5 + (unsigned)kind, &os), ES_OK);
  es_exporter *ex = stream_open(db_old, os, &d0);
  ck_assert_msg(stream_pass(ex) == ES_OK, "%s", es_errdetail());
  es__exporter_close(ex);
  es__dest_close(d0);
  src so = {NULL, os};
  ck_assert_ptr_null(check_out(&so, 0));
  ex = stream_open(db_new, os, &d1);
  es__objmem_fail_at(os, k, kind, ES_EUNAVAIL);
  int rc = stream_pass(ex);
  unsigned long calls = es__objmem_requests(os);
  es__objmem_fail_at(os, 0, 0, 0);
  ck_assert_msg(k > 0 || rc == ES_OK, "clean pass: %s", es_errdetail());
  const char *why = check_out(&so, k == 0 || rc == ES_OK);
  if (!why) {
    ck_assert_msg(stream_pass(ex) == ES_OK, "%s", es_errdetail());
    why = check_out(&so, 1);
  }
  es_exporter_stats st;
  ck_assert_int_eq(es_exporter_stats_get(ex, &st), ES_OK);
  if (k == 0) /* hour 1 of day 1 only */
    ck_assert_uint_eq(st.hours_reexported, 1);
  es__exporter_close(ex);
  es__dest_close(d1);
  *bad = why != NULL;
  if (why)
    printf("continuous export: fault at %lu (%s): %s\n", k,
           kind == ES_OBJMEM_FAIL_DROP ? "dropped" : "503", why);
  es__objstore_destroy(os);
  return calls;
}

START_TEST(test_stream_objstore_faults) {
  es_vfs *v_old = memvfs_create(), *v_new = memvfs_create();
  es_db *db_old = open_store(v_old, 0), *db_new = open_store(v_new, 1);
  int bad = 0, failures = 0;
  static const int kinds[] = {ES_OBJMEM_FAIL_STATUS, ES_OBJMEM_FAIL_DROP};
  for (int i = 0; i < 2; i++) {
    unsigned long total = stream_point(db_old, db_new, 0, kinds[i], &bad);
    ck_assert_msg(!bad, "clean run failed");
    ck_assert_uint_gt(total, 3);
    printf("continuous export: %lu object-store requests\n", total);
    for (unsigned long k = 1; k <= total + 1; k++) {
      stream_point(db_old, db_new, k, kinds[i], &bad);
      failures += bad;
    }
  }
  ck_assert_int_eq(failures, 0);
  ck_assert_int_eq(es_close(db_old), ES_OK);
  ck_assert_int_eq(es_close(db_new), ES_OK);
  memvfs_destroy(v_old);
  memvfs_destroy(v_new);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("export_fault");
  TCase *tc = tcase_create("export_fault");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_export_faults);
  tcase_add_test(tc, test_export_objstore_faults);
  tcase_add_test(tc, test_stream_objstore_faults);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(suite()); }
