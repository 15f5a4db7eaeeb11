/*
 * test_memvfs.c -- unit tests of the crash-simulating in-memory vfs.
 *
 * The fault tests trust memvfs to model a power cut faithfully; these
 * tests pin that model down: unsynced writes are lost, directory changes
 * need sync_dir, torn sectors keep whole 512-byte units, faults hit exactly
 * the k-th counted call, stale handles fail, locks exclude.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "memvfs.h"

/* Creates (or truncates) path, writes text at offset 0, optionally syncs
 * the file and its directory. */
static void put(es_vfs *v, const char *path, const char *text, int sync,
                const char *dir) {
  es_file *f = NULL;
  ck_assert_int_eq(
      v->open(v, path, ES_IO_WRITE | ES_IO_CREATE | ES_IO_TRUNC, &f), ES_OK);
  ck_assert_int_eq(v->write(v, f, text, strlen(text), 0), ES_OK);
  if (sync)
    ck_assert_int_eq(v->sync(v, f), ES_OK);
  ck_assert_int_eq(v->close(v, f), ES_OK);
  if (dir != NULL)
    ck_assert_int_eq(v->sync_dir(v, dir), ES_OK);
}

/* Reads the whole current content of path into buf (NUL-terminated);
 * returns the status of open. */
static int get(es_vfs *v, const char *path, char *buf, size_t cap) {
  es_file *f = NULL;
  size_t got = 0;
  int rc = v->open(v, path, ES_IO_READ, &f);
  buf[0] = '\0';
  if (rc != ES_OK)
    return rc;
  ck_assert_int_eq(v->read(v, f, buf, cap - 1, 0, &got), ES_OK);
  buf[got] = '\0';
  ck_assert_int_eq(v->close(v, f), ES_OK);
  return ES_OK;
}

typedef struct names {
  char all[512];
  int n;
} names;

static int collect(void *ud, const char *name) {
  names *ns = ud;
  strncat(ns->all, name, sizeof ns->all - strlen(ns->all) - 2);
  strcat(ns->all, ",");
  ns->n++;
  return 0;
}

START_TEST(test_read_write_roundtrip) {
  es_vfs *v = memvfs_create();
  char buf[64];
  es_file *f = NULL;
  size_t got = 0;
  ck_assert_int_eq(v->mkdir(v, "/d"), ES_OK);
  put(v, "/d/a", "hello world", 0, NULL);
  ck_assert_int_eq(get(v, "/d/a", buf, sizeof buf), ES_OK);
  ck_assert_str_eq(buf, "hello world");
  /* A write past the end leaves a zero-filled hole; reads stop at EOF. */
  ck_assert_int_eq(v->open(v, "/d/a", ES_IO_WRITE, &f), ES_OK);
  ck_assert_int_eq(v->write(v, f, "X", 1, 20), ES_OK);
  uint64_t size = 0;
  ck_assert_int_eq(v->size(v, f, &size), ES_OK);
  ck_assert_uint_eq(size, 21);
  ck_assert_int_eq(v->read(v, f, buf, sizeof buf, 15, &got), ES_OK);
  ck_assert_uint_eq(got, 6);
  ck_assert_int_eq(buf[0], 0);
  ck_assert_int_eq(buf[5], 'X');
  ck_assert_int_eq(v->read(v, f, buf, sizeof buf, 100, &got), ES_OK);
  ck_assert_uint_eq(got, 0);
  ck_assert_int_eq(v->truncate(v, f, 5), ES_OK);
  ck_assert_int_eq(v->close(v, f), ES_OK);
  ck_assert_int_eq(get(v, "/d/a", buf, sizeof buf), ES_OK);
  ck_assert_str_eq(buf, "hello");
  /* Missing files, EXCL, directories. */
  ck_assert_int_eq(v->open(v, "/d/none", ES_IO_READ, &f), ES_ENOTFOUND);
  ck_assert_ptr_null(f);
  ck_assert_int_eq(
      v->open(v, "/d/a", ES_IO_WRITE | ES_IO_CREATE | ES_IO_EXCL, &f),
      ES_EINVAL);
  ck_assert_int_eq(v->open(v, "/nodir/x", ES_IO_WRITE | ES_IO_CREATE, &f),
                   ES_ENOTFOUND);
  ck_assert_int_eq(memvfs_open_handles(v), 0);
  memvfs_destroy(v);
}
END_TEST

START_TEST(test_crash_drops_unsynced_writes) {
  es_vfs *v = memvfs_create();
  char buf[64];
  ck_assert_int_eq(memvfs_mkdir_durable(v, "/d"), ES_OK);
  put(v, "/d/a", "durable", 1, "/d");
  es_file *f = NULL;
  ck_assert_int_eq(v->open(v, "/d/a", ES_IO_WRITE, &f), ES_OK);
  ck_assert_int_eq(v->write(v, f, "-more", 5, 7), ES_OK);
  ck_assert_int_eq(get(v, "/d/a", buf, sizeof buf), ES_OK);
  ck_assert_str_eq(buf, "durable-more");
  memvfs_crash(v);
  ck_assert_int_eq(get(v, "/d/a", buf, sizeof buf), ES_OK);
  ck_assert_str_eq(buf, "durable");
  /* The pre-crash handle is stale. */
  ck_assert_int_eq(v->write(v, f, "x", 1, 0), ES_EIO);
  ck_assert_int_eq(v->sync(v, f), ES_EIO);
  ck_assert_int_eq(v->close(v, f), ES_OK);
  ck_assert_int_eq(memvfs_open_handles(v), 0);
  memvfs_destroy(v);
}
END_TEST

START_TEST(test_create_needs_sync_dir) {
  es_vfs *v = memvfs_create();
  char buf[64];
  ck_assert_int_eq(memvfs_mkdir_durable(v, "/d"), ES_OK);
  put(v, "/d/synced-file-only", "data", 1, NULL);
  put(v, "/d/unsynced", "data", 0, NULL);
  memvfs_crash(v);
  ck_assert_int_eq(get(v, "/d/synced-file-only", buf, sizeof buf),
                   ES_ENOTFOUND);
  ck_assert_int_eq(get(v, "/d/unsynced", buf, sizeof buf), ES_ENOTFOUND);
  /* Entry synced but data not: the file survives, empty. */
  put(v, "/d/entry-only", "data", 0, "/d");
  memvfs_crash(v);
  ck_assert_int_eq(get(v, "/d/entry-only", buf, sizeof buf), ES_OK);
  ck_assert_str_eq(buf, "");
  memvfs_destroy(v);
}
END_TEST

START_TEST(test_rename_needs_sync_dir) {
  es_vfs *v = memvfs_create();
  char buf[64];
  ck_assert_int_eq(memvfs_mkdir_durable(v, "/d"), ES_OK);
  put(v, "/d/m.tmp", "v1", 1, "/d");
  ck_assert_int_eq(v->rename(v, "/d/m.tmp", "/d/m"), ES_OK);
  ck_assert_int_eq(get(v, "/d/m", buf, sizeof buf), ES_OK);
  ck_assert_int_eq(memvfs_exists(v, "/d/m.tmp"), 0);
  memvfs_crash(v);
  ck_assert_int_eq(memvfs_exists(v, "/d/m.tmp"), 1);
  ck_assert_int_eq(memvfs_exists(v, "/d/m"), 0);
  ck_assert_int_eq(v->rename(v, "/d/m.tmp", "/d/m"), ES_OK);
  ck_assert_int_eq(v->sync_dir(v, "/d"), ES_OK);
  memvfs_crash(v);
  ck_assert_int_eq(memvfs_exists(v, "/d/m.tmp"), 0);
  ck_assert_int_eq(get(v, "/d/m", buf, sizeof buf), ES_OK);
  ck_assert_str_eq(buf, "v1");
  /* Rename over an existing file replaces it; unlink needs sync_dir. */
  put(v, "/d/m.tmp", "v2", 1, NULL);
  ck_assert_int_eq(v->rename(v, "/d/m.tmp", "/d/m"), ES_OK);
  ck_assert_int_eq(v->sync_dir(v, "/d"), ES_OK);
  ck_assert_int_eq(v->unlink(v, "/d/m"), ES_OK);
  ck_assert_int_eq(v->unlink(v, "/d/m"), ES_ENOTFOUND);
  memvfs_crash(v);
  ck_assert_int_eq(get(v, "/d/m", buf, sizeof buf), ES_OK);
  ck_assert_str_eq(buf, "v2");
  ck_assert_int_eq(v->rename(v, "/d/none", "/d/x"), ES_ENOTFOUND);
  memvfs_destroy(v);
}
END_TEST

START_TEST(test_mkdir_list) {
  es_vfs *v = memvfs_create();
  names ns = {{0}, 0};
  ck_assert_int_eq(v->list(v, "/db", collect, &ns), ES_ENOTFOUND);
  ck_assert_int_eq(v->mkdir(v, "/db"), ES_OK);
  ck_assert_int_eq(v->mkdir(v, "/db"), ES_OK);
  ck_assert_int_eq(v->mkdir(v, "/db/t1"), ES_OK);
  ck_assert_int_eq(v->mkdir(v, "/no/such"), ES_ENOTFOUND);
  put(v, "/db/a", "1", 0, NULL);
  put(v, "/db/b", "2", 0, NULL);
  ck_assert_int_eq(v->list(v, "/db", collect, &ns), ES_OK);
  ck_assert_int_eq(ns.n, 3);
  ck_assert_ptr_nonnull(strstr(ns.all, "t1,"));
  ck_assert_ptr_nonnull(strstr(ns.all, "a,"));
  ck_assert_int_eq(v->unlink(v, "/db"), ES_EINVAL); /* not empty */
  /* /db itself was never made durable in "/": it all vanishes. */
  ck_assert_int_eq(v->sync_dir(v, "/db"), ES_OK);
  memvfs_crash(v);
  ck_assert_int_eq(v->list(v, "/db", collect, &ns), ES_ENOTFOUND);
  /* With sync_dir("/") too, the directory and its entries survive. */
  ck_assert_int_eq(v->mkdir(v, "/db"), ES_OK);
  put(v, "/db/a", "1", 1, "/db");
  ck_assert_int_eq(v->sync_dir(v, "/"), ES_OK);
  memvfs_crash(v);
  memset(&ns, 0, sizeof ns);
  ck_assert_int_eq(v->list(v, "/db", collect, &ns), ES_OK);
  ck_assert_str_eq(ns.all, "a,");
  ck_assert_int_eq(v->sync_dir(v, "/none"), ES_ENOTFOUND);
  memvfs_destroy(v);
}
END_TEST

START_TEST(test_directory_rename_moves_subtree) {
  es_vfs *v = memvfs_create();
  char buf[16];
  ck_assert_int_eq(v->mkdir(v, "/t.tmp"), ES_OK);
  put(v, "/t.tmp/f", "x", 0, NULL);
  ck_assert_int_eq(v->rename(v, "/t.tmp", "/t"), ES_OK);
  ck_assert_int_eq(get(v, "/t/f", buf, sizeof buf), ES_OK);
  ck_assert_str_eq(buf, "x");
  ck_assert_int_eq(memvfs_exists(v, "/t.tmp/f"), 0);
  memvfs_destroy(v);
}
END_TEST

START_TEST(test_fail_at_k) {
  es_vfs *v = memvfs_create();
  es_file *f = NULL;
  ck_assert_int_eq(memvfs_mkdir_durable(v, "/d"), ES_OK);
  ck_assert_int_eq(v->open(v, "/d/a", ES_IO_WRITE | ES_IO_CREATE, &f), ES_OK);
  memvfs_fail_at(v, 3, ES_ENOSPC, 0);
  ck_assert_uint_eq(memvfs_count(v), 0);
  ck_assert_int_eq(v->write(v, f, "aa", 2, 0), ES_OK);     /* 1 */
  ck_assert_int_eq(v->sync(v, f), ES_OK);                  /* 2 */
  ck_assert_int_eq(v->write(v, f, "bb", 2, 2), ES_ENOSPC); /* 3 */
  ck_assert_int_eq(v->write(v, f, "cc", 2, 2), ES_OK);     /* 4 */
  char buf[8];
  size_t got = 0;
  ck_assert_int_eq(v->read(v, f, buf, sizeof buf, 0, &got), ES_OK);
  ck_assert_uint_eq(got, 4);
  ck_assert_int_eq(memcmp(buf, "aacc", 4), 0);
  ck_assert_uint_eq(memvfs_count(v), 4);
  ck_assert_uint_eq(memvfs_faults_hit(v), 1);
  /* Reads, size and list are not counted. */
  uint64_t size = 0;
  ck_assert_int_eq(v->size(v, f, &size), ES_OK);
  ck_assert_uint_eq(memvfs_count(v), 4);
  /* Persistent: everything from k on fails, each kind of counted call. */
  memvfs_fail_at(v, 2, ES_EIO, 1);
  ck_assert_int_eq(v->sync(v, f), ES_OK);
  ck_assert_int_eq(v->sync(v, f), ES_EIO);
  ck_assert_int_eq(v->write(v, f, "x", 1, 0), ES_EIO);
  ck_assert_int_eq(v->truncate(v, f, 0), ES_EIO);
  ck_assert_int_eq(v->rename(v, "/d/a", "/d/b"), ES_EIO);
  ck_assert_int_eq(v->unlink(v, "/d/a"), ES_EIO);
  ck_assert_int_eq(v->mkdir(v, "/d/e"), ES_EIO);
  ck_assert_int_eq(v->sync_dir(v, "/d"), ES_EIO);
  es_file *g = NULL;
  ck_assert_int_eq(v->open(v, "/d/n", ES_IO_WRITE | ES_IO_CREATE, &g), ES_EIO);
  ck_assert_ptr_null(g);
  ck_assert_int_eq(memvfs_exists(v, "/d/n"), 0);
  ck_assert_int_eq(v->open(v, "/d/a", ES_IO_READ, &g), ES_OK); /* free */
  ck_assert_int_eq(v->close(v, g), ES_OK);
  ck_assert_uint_eq(memvfs_count(v), 9);
  memvfs_clear_faults(v);
  ck_assert_int_eq(v->write(v, f, "x", 1, 0), ES_OK);
  ck_assert_int_eq(v->close(v, f), ES_OK);
  memvfs_destroy(v);
}
END_TEST

START_TEST(test_short_write) {
  es_vfs *v = memvfs_create();
  es_file *f = NULL;
  uint64_t size = 0;
  ck_assert_int_eq(v->open(v, "/a", ES_IO_WRITE | ES_IO_CREATE, &f), ES_OK);
  memvfs_set_short_write(v, MEMVFS_SHORT_HALF);
  memvfs_fail_at(v, 1, ES_ENOSPC, 0);
  ck_assert_int_eq(v->write(v, f, "12345678", 8, 0), ES_ENOSPC);
  ck_assert_int_eq(v->size(v, f, &size), ES_OK);
  ck_assert_uint_eq(size, 4);
  /* A crash point never writes a prefix. */
  memvfs_crash_at(v, 1);
  ck_assert_int_eq(v->write(v, f, "abcdefgh", 8, 4), ES_EIO);
  ck_assert_int_eq(v->size(v, f, &size), ES_OK);
  ck_assert_uint_eq(size, 4);
  memvfs_set_short_write(v, MEMVFS_SHORT_NONE);
  memvfs_fail_at(v, 1, ES_EIO, 0);
  ck_assert_int_eq(v->write(v, f, "abcdefgh", 8, 4), ES_EIO);
  ck_assert_int_eq(v->size(v, f, &size), ES_OK);
  ck_assert_uint_eq(size, 4);
  ck_assert_int_eq(v->close(v, f), ES_OK);
  memvfs_destroy(v);
}
END_TEST

START_TEST(test_crash_at_freezes_durable_state) {
  es_vfs *v = memvfs_create();
  char buf[32];
  es_file *f = NULL;
  ck_assert_int_eq(memvfs_mkdir_durable(v, "/d"), ES_OK);
  memvfs_crash_at(v, 4);
  ck_assert_int_eq(v->open(v, "/d/a", ES_IO_WRITE | ES_IO_CREATE, &f),
                   ES_OK);                              /* 1 */
  ck_assert_int_eq(v->write(v, f, "one", 3, 0), ES_OK); /* 2 */
  ck_assert_int_eq(v->sync(v, f), ES_OK);               /* 3 */
  ck_assert_int_eq(v->sync_dir(v, "/d"), ES_EIO);       /* 4 */
  ck_assert_int_eq(v->write(v, f, "two", 3, 3), ES_EIO);
  ck_assert_int_eq(v->close(v, f), ES_OK);
  memvfs_crash(v);
  memvfs_clear_faults(v);
  /* The sync_dir never happened: the file is gone. */
  ck_assert_int_eq(get(v, "/d/a", buf, sizeof buf), ES_ENOTFOUND);
  memvfs_destroy(v);
}
END_TEST

START_TEST(test_lock) {
  es_vfs *v = memvfs_create();
  es_file *l1 = NULL, *l2 = NULL;
  ck_assert_int_eq(v->mkdir(v, "/db"), ES_OK);
  ck_assert_int_eq(v->lock(v, "/db/LOCK", &l1), ES_OK);
  ck_assert_int_eq(v->lock(v, "/db/LOCK", &l2), ES_EBUSY);
  ck_assert_ptr_null(l2);
  ck_assert_int_eq(v->close(v, l1), ES_OK);
  ck_assert_int_eq(v->lock(v, "/db/LOCK", &l1), ES_OK);
  /* A crash releases it (the process died); the old handle's close must
   * not release the new holder's lock. */
  ck_assert_int_eq(memvfs_mkdir_durable(v, "/db"), ES_OK);
  memvfs_crash(v);
  ck_assert_int_eq(v->lock(v, "/db/LOCK", &l2), ES_OK);
  ck_assert_int_eq(v->close(v, l1), ES_OK);
  es_file *l3 = NULL;
  ck_assert_int_eq(v->lock(v, "/db/LOCK", &l3), ES_EBUSY);
  ck_assert_int_eq(v->close(v, l2), ES_OK);
  ck_assert_int_eq(memvfs_open_handles(v), 0);
  memvfs_destroy(v);
}
END_TEST

/* Writes 8 sectors of distinct non-zero bytes unsynced into a durable,
 * empty file, crashes torn, and checks every sector is whole. */
static int torn_round(uint64_t seed, int *mixed) {
  es_vfs *v = memvfs_create();
  uint8_t data[8 * 512], back[8 * 512];
  es_file *f = NULL;
  size_t got = 0;
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(1 + i / 512);
  ck_assert_int_eq(memvfs_mkdir_durable(v, "/d"), ES_OK);
  put(v, "/d/w", "", 1, "/d");
  ck_assert_int_eq(v->open(v, "/d/w", ES_IO_WRITE, &f), ES_OK);
  ck_assert_int_eq(v->write(v, f, data, sizeof data, 0), ES_OK);
  ck_assert_int_eq(v->close(v, f), ES_OK);
  memvfs_crash_torn(v, seed);
  ck_assert_int_eq(memvfs_peek(v, "/d/w", 0, back, sizeof back, &got), ES_OK);
  ck_assert_uint_eq(got % 512, 0);
  int kept = 0;
  for (size_t s = 0; s < got / 512; s++) {
    int zero = back[s * 512] == 0;
    kept += !zero;
    for (size_t i = s * 512; i < (s + 1) * 512; i++)
      ck_assert_int_eq(back[i], zero ? 0 : data[i]);
  }
  if (kept > 0 && kept < 8)
    *mixed = 1;
  /* After the crash the survivors are durable: a second crash keeps them. */
  memvfs_crash(v);
  size_t got2 = 0;
  ck_assert_int_eq(memvfs_peek(v, "/d/w", 0, back, sizeof back, &got2), ES_OK);
  ck_assert_uint_eq(got2, got);
  memvfs_destroy(v);
  return kept;
}

START_TEST(test_torn_sectors) {
  int mixed = 0, none = 0, all = 0;
  for (uint64_t seed = 1; seed <= 64; seed++) {
    int kept = torn_round(seed, &mixed);
    none += kept == 0;
    all += kept == 8;
  }
  ck_assert_int_eq(mixed, 1);
  ck_assert_int_lt(none, 64);
  ck_assert_int_lt(all, 64);
}
END_TEST

typedef struct writer_arg {
  es_vfs *v;
  es_file *f;
  int id;
} writer_arg;

static void *writer(void *p) {
  writer_arg *a = p;
  uint8_t b = (uint8_t)a->id;
  for (int i = 0; i < 1000; i++) {
    ck_assert_int_eq(
        a->v->write(a->v, a->f, &b, 1, (uint64_t)(a->id * 1000 + i)), ES_OK);
    if (i % 100 == 0)
      ck_assert_int_eq(a->v->sync(a->v, a->f), ES_OK);
  }
  return NULL;
}

START_TEST(test_threads) {
  es_vfs *v = memvfs_create();
  es_file *f = NULL;
  pthread_t th[4];
  writer_arg args[4];
  ck_assert_int_eq(v->open(v, "/a", ES_IO_WRITE | ES_IO_CREATE, &f), ES_OK);
  for (int i = 0; i < 4; i++) {
    args[i] = (writer_arg){v, f, i + 1};
    ck_assert_int_eq(pthread_create(&th[i], NULL, writer, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  uint64_t size = 0;
  ck_assert_int_eq(v->size(v, f, &size), ES_OK);
  ck_assert_uint_eq(size, 5000);
  ck_assert_uint_eq(memvfs_count(v), 4 * 1010 + 1);
  ck_assert_int_eq(v->close(v, f), ES_OK);
  memvfs_destroy(v);
}
END_TEST

static int stop_at_second(void *ud, const char *name) {
  (void)name;
  return ++*(int *)ud == 2 ? 42 : 0;
}

START_TEST(test_list_stops_and_may_reenter) {
  es_vfs *v = memvfs_create();
  int seen = 0;
  put(v, "/a", "", 0, NULL);
  put(v, "/b", "", 0, NULL);
  put(v, "/c", "", 0, NULL);
  ck_assert_int_eq(v->list(v, "/", stop_at_second, &seen), 42);
  ck_assert_int_eq(seen, 2);
  memvfs_destroy(v);
}
END_TEST

START_TEST(test_flip_byte) {
  es_vfs *v = memvfs_create();
  char buf[16];
  put(v, "/a", "abc", 1, "/");
  ck_assert_int_eq(memvfs_flip_byte(v, "/a", 1, 0x01), ES_OK);
  ck_assert_int_eq(memvfs_flip_byte(v, "/a", 3, 0x01), ES_EINVAL);
  ck_assert_int_eq(memvfs_flip_byte(v, "/none", 0, 0x01), ES_ENOTFOUND);
  memvfs_crash(v);
  ck_assert_int_eq(get(v, "/a", buf, sizeof buf), ES_OK);
  ck_assert_str_eq(buf, "acc");
  memvfs_destroy(v);
}
END_TEST

START_TEST(test_sync_all) {
  es_vfs *v = memvfs_create();
  char buf[16];
  ck_assert_int_eq(v->mkdir(v, "/d"), ES_OK);
  ck_assert_int_eq(v->mkdir(v, "/d/e"), ES_OK);
  put(v, "/d/e/f", "kept", 0, NULL);
  memvfs_sync_all(v);
  put(v, "/d/e/g", "lost", 0, NULL);
  memvfs_crash(v);
  ck_assert_int_eq(get(v, "/d/e/f", buf, sizeof buf), ES_OK);
  ck_assert_str_eq(buf, "kept");
  ck_assert_int_eq(memvfs_exists(v, "/d/e/g"), 0);
  memvfs_destroy(v);
}
END_TEST

static Suite *memvfs_suite(void) {
  Suite *s = suite_create("memvfs");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_read_write_roundtrip);
  tcase_add_test(tc, test_crash_drops_unsynced_writes);
  tcase_add_test(tc, test_create_needs_sync_dir);
  tcase_add_test(tc, test_rename_needs_sync_dir);
  tcase_add_test(tc, test_mkdir_list);
  tcase_add_test(tc, test_directory_rename_moves_subtree);
  tcase_add_test(tc, test_fail_at_k);
  tcase_add_test(tc, test_short_write);
  tcase_add_test(tc, test_crash_at_freezes_durable_state);
  tcase_add_test(tc, test_lock);
  tcase_add_test(tc, test_torn_sectors);
  tcase_add_test(tc, test_threads);
  tcase_add_test(tc, test_list_stops_and_may_reenter);
  tcase_add_test(tc, test_flip_byte);
  tcase_add_test(tc, test_sync_all);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(memvfs_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
