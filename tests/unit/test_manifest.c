/*
 * test_manifest.c -- unit tests of lib/manifest.{h,c}: the MANIFEST of a
 * tenant and the ESDB identity file of a store.
 *
 * What must hold (manifest.h):
 *  1. write then read gives back flushed_lsn, next_segment_id and every
 *     entry; a rewrite replaces the file atomically (no .tmp left).
 *  2. A missing MANIFEST is an empty manifest (next_segment_id 1).
 *  3. Any damaged byte is ES_ECORRUPT; a format version newer than the
 *     library's is ES_EVERSION (checked after the checksum, so the test
 *     crafts a file with a valid checksum).
 *  4. After a failed read the manifest holds nothing to free.
 *  5. ESDB keeps the shard count; missing is ES_ENOTFOUND.
 *  6. The generation (format 2) round-trips; a version-1 file (no
 *     generation field) still reads, as generation 1, with its entries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "store/manifest.h"
#include "unit.h"

/* ---- helpers ------------------------------------------------------------ */

static es_manifest_entry sample_entries[3] = {
    {1, 100, 4096, 1000, 2000},
    {2, 8193, 123456, 1500, 99999},
    {7, 1, 300, INT64_C(1700000000000000), INT64_C(1700000000000000)},
};

static es_manifest sample(void) {
  es_manifest m = {.flushed_lsn = 4242,
                   .next_segment_id = 8,
                   .count = 3,
                   .entries = sample_entries};
  return m;
}

static void manifest_path(char *out, size_t cap, const char *dir) {
  ck_assert_int_eq(es__path_join(out, cap, dir, "MANIFEST"), ES_OK);
}

/* Rewrites a whole file, then recomputes its trailing checksum (XXH3 of
 * every byte before the last eight) so that only `edit` differs. */
static void edit_and_reseal(const char *path, void (*edit)(uint8_t *, size_t)) {
  size_t len;
  uint8_t *buf = ut_read_file(path, &len);
  edit(buf, len);
  es__le64(buf + len - 8, es__hash64(buf, len - 8, 0));
  ut_write_at(path, 0, buf, len);
  free(buf);
}

static void set_version_newer(uint8_t *buf, size_t len) {
  (void)len;
  es__le32(buf + 8, ES_FORMAT_VERSION + 1);
}
static void set_version_far(uint8_t *buf, size_t len) {
  (void)len;
  es__le32(buf + 8, 0xffffffffu);
}
static void set_count_wrong(uint8_t *buf, size_t len) {
  (void)len;
  es__le32(buf + 12, 4); /* 3 entries in the file */
}
static void set_id_too_big(uint8_t *buf, size_t len) {
  (void)len;
  /* entry 0's id, at 40, becomes next_segment_id (8): not below it */
  es__le64(buf + 40, 8);
}
static void set_shards_zero(uint8_t *buf, size_t len) {
  (void)len;
  es__le32(buf + 12, 0);
}
static void set_shards_huge(uint8_t *buf, size_t len) {
  (void)len;
  es__le32(buf + 12, 5000);
}

/* ---- MANIFEST ----------------------------------------------------------- */

START_TEST(test_round_trip) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "man-rt");
  es_manifest m = sample(), got;
  ck_assert_int_eq(es__manifest_write(es__vfs_posix(), dir, &m), ES_OK);
  manifest_path(path, sizeof(path), dir);
  ck_assert_uint_eq(ut_file_size(path), 40 + 1 + 3 * 40 + 8); /* v3, node "" */
  ck_assert_int_eq(ut_count_suffix(dir, ".tmp"), 0);
  ck_assert_int_eq(es__manifest_read(es__vfs_posix(), dir, &got), ES_OK);
  ck_assert_uint_eq(got.flushed_lsn, 4242);
  ck_assert_uint_eq(got.next_segment_id, 8);
  ck_assert_uint_eq(got.count, 3);
  for (size_t i = 0; i < 3; i++) {
    ck_assert_uint_eq(got.entries[i].id, sample_entries[i].id);
    ck_assert_uint_eq(got.entries[i].rows, sample_entries[i].rows);
    ck_assert_uint_eq(got.entries[i].bytes, sample_entries[i].bytes);
    ck_assert_int_eq(got.entries[i].min_ts_us, sample_entries[i].min_ts_us);
    ck_assert_int_eq(got.entries[i].max_ts_us, sample_entries[i].max_ts_us);
  }
  es__manifest_free(&got);
  ck_assert_ptr_null(got.entries);
  ck_assert_uint_eq(got.count, 0);

  /* a rewrite replaces it */
  m.count = 1;
  m.flushed_lsn = 5000;
  m.next_segment_id = 9;
  ck_assert_int_eq(es__manifest_write(es__vfs_posix(), dir, &m), ES_OK);
  ck_assert_int_eq(es__manifest_read(es__vfs_posix(), dir, &got), ES_OK);
  ck_assert_uint_eq(got.count, 1);
  ck_assert_uint_eq(got.flushed_lsn, 5000);
  ck_assert_uint_eq(got.next_segment_id, 9);
  ck_assert_uint_eq(got.entries[0].id, 1);
  es__manifest_free(&got);
  ck_assert_int_eq(ut_count_suffix(dir, ".tmp"), 0);

  /* and an empty one round-trips too */
  es_manifest empty = {.flushed_lsn = 77, .next_segment_id = 3};
  ck_assert_int_eq(es__manifest_write(es__vfs_posix(), dir, &empty), ES_OK);
  ck_assert_int_eq(es__manifest_read(es__vfs_posix(), dir, &got), ES_OK);
  ck_assert_uint_eq(got.count, 0);
  ck_assert_uint_eq(got.flushed_lsn, 77);
  ck_assert_uint_eq(got.next_segment_id, 3);
  es__manifest_free(&got);
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_missing_is_empty) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "man-missing");
  es_manifest got;
  memset(&got, 0xab, sizeof(got)); /* read must initialise everything */
  ck_assert_int_eq(es__manifest_read(es__vfs_posix(), dir, &got), ES_OK);
  ck_assert_uint_eq(got.count, 0);
  ck_assert_ptr_null(got.entries);
  ck_assert_uint_eq(got.flushed_lsn, 0);
  ck_assert_uint_eq(got.next_segment_id, 1);
  es__manifest_free(&got);
  ut_rmrf(dir);
}
END_TEST

/* Writes the sample, damages it, and expects `want` from a read that
 * leaves the manifest empty. */
static void expect_read_fails(const char *dir, int want, const char *what,
                              void (*flip)(const char *path),
                              void (*edit)(uint8_t *, size_t)) {
  char path[1024];
  es_manifest m = sample(), got;
  ck_assert_int_eq(es__manifest_write(es__vfs_posix(), dir, &m), ES_OK);
  manifest_path(path, sizeof(path), dir);
  if (flip)
    flip(path);
  if (edit)
    edit_and_reseal(path, edit);
  int rc = es__manifest_read(es__vfs_posix(), dir, &got);
  ck_assert_msg(rc == want, "%s: read gave %d (%s), want %d", what, rc,
                es_errdetail(), want);
  ck_assert_ptr_null(got.entries);
  ck_assert_uint_eq(got.count, 0);
}

static void flip_body(const char *path) { ut_flip_byte(path, 60, 0x04); }
static void flip_sum(const char *path) {
  ut_flip_byte(path, ut_file_size(path) - 1, 0x80);
}
static void flip_magic(const char *path) { ut_flip_byte(path, 2, 0x20); }
static void cut_short(const char *path) { ut_truncate(path, 39); }
static void cut_entry(const char *path) {
  ut_truncate(path, ut_file_size(path) - 20);
}
static void make_empty(const char *path) { ut_truncate(path, 0); }

START_TEST(test_corrupt) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "man-bad");
  expect_read_fails(dir, ES_ECORRUPT, "body byte", flip_body, NULL);
  expect_read_fails(dir, ES_ECORRUPT, "checksum byte", flip_sum, NULL);
  expect_read_fails(dir, ES_ECORRUPT, "magic", flip_magic, NULL);
  expect_read_fails(dir, ES_ECORRUPT, "39 bytes", cut_short, NULL);
  expect_read_fails(dir, ES_ECORRUPT, "half an entry cut", cut_entry, NULL);
  expect_read_fails(dir, ES_ECORRUPT, "empty file", make_empty, NULL);
  /* well-sealed but inconsistent contents */
  expect_read_fails(dir, ES_ECORRUPT, "count disagrees with size", NULL,
                    set_count_wrong);
  expect_read_fails(dir, ES_ECORRUPT, "id not below next id", NULL,
                    set_id_too_big);
  /* the detail names the file */
  expect_read_fails(dir, ES_ECORRUPT, "checksum byte", flip_sum, NULL);
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "MANIFEST"));
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_version_too_new) {
  char dir[512];
  ut_tmpdir(dir, sizeof(dir), "man-ver");
  expect_read_fails(dir, ES_EVERSION, "version + 1", NULL, set_version_newer);
  expect_read_fails(dir, ES_EVERSION, "version 2^32-1", NULL, set_version_far);
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "version"));
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_generation) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "man-gen");
  es_manifest m = sample(), got;
  m.generation = 12345;
  ck_assert_int_eq(es__manifest_write(es__vfs_posix(), dir, &m), ES_OK);
  ck_assert_int_eq(es__manifest_read(es__vfs_posix(), dir, &got), ES_OK);
  ck_assert_uint_eq(got.generation, 12345);
  es__manifest_free(&got);
  /* the same manifest in version 1: no generation field */
  uint8_t v1[40 + 40];
  memcpy(v1, "ESMANIFS", 8);
  es__le32(v1 + 8, 1);
  es__le32(v1 + 12, 1);
  es__le64(v1 + 16, 4242);
  es__le64(v1 + 24, 8);
  es__le64(v1 + 32, 7);
  es__le64(v1 + 40, 1);
  es__le64(v1 + 48, 300);
  es__le64(v1 + 56, 1000);
  es__le64(v1 + 64, 2000);
  es__le64(v1 + 72, es__hash64(v1, 72, 0));
  manifest_path(path, sizeof(path), dir);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(v1, 1, sizeof(v1), f), sizeof(v1));
  fclose(f);
  ck_assert_int_eq(es__manifest_read(es__vfs_posix(), dir, &got), ES_OK);
  ck_assert_uint_eq(got.generation, 1);
  ck_assert_uint_eq(got.flushed_lsn, 4242);
  ck_assert_uint_eq(got.count, 1);
  ck_assert_uint_eq(got.entries[0].id, 7);
  ck_assert_int_eq(got.entries[0].max_ts_us, 2000);
  es__manifest_free(&got);
  /* a well-sealed version-2 file with only a version-1 frame is corrupt */
  es__le32(v1 + 8, 2);
  es__le32(v1 + 12, 0);
  es__le64(v1 + 32, es__hash64(v1, 32, 0));
  f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(v1, 1, 40, f), 40);
  fclose(f);
  ck_assert_int_eq(es__manifest_read(es__vfs_posix(), dir, &got), ES_ECORRUPT);
  ut_rmrf(dir);
}
END_TEST

/* Format 3: the node whose LSNs flushed_lsn counts round-trips; empty by
 * default; a name past 64 bytes or not printable is refused on read. */
START_TEST(test_lsn_node) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "man-node");
  es_manifest m = sample(), got;
  ck_assert_int_eq(es__manifest_write(es__vfs_posix(), dir, &m), ES_OK);
  ck_assert_int_eq(es__manifest_read(es__vfs_posix(), dir, &got), ES_OK);
  ck_assert_str_eq(got.lsn_node, "");
  es__manifest_free(&got);
  snprintf(m.lsn_node, sizeof(m.lsn_node), "node-1.a_b");
  ck_assert_int_eq(es__manifest_write(es__vfs_posix(), dir, &m), ES_OK);
  ck_assert_int_eq(es__manifest_read(es__vfs_posix(), dir, &got), ES_OK);
  ck_assert_str_eq(got.lsn_node, "node-1.a_b");
  ck_assert_uint_eq(got.count, m.count);
  ck_assert_uint_eq(got.flushed_lsn, m.flushed_lsn);
  es__manifest_free(&got);
  /* the node (length byte at offset 40) damaged, checksum fixed */
  manifest_path(path, sizeof(path), dir);
  uint8_t buf[4096];
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  size_t len = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  ck_assert_uint_eq(es__get_le32(buf + 8), ES_FORMAT_VERSION);
  ck_assert_uint_eq(buf[40], 10);
  buf[41] = ' '; /* not printable */
  es__le64(buf + len - 8, es__hash64(buf, len - 8, 0));
  f = fopen(path, "wb");
  ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
  fclose(f);
  ck_assert_int_eq(es__manifest_read(es__vfs_posix(), dir, &got), ES_ECORRUPT);
  es__error_clear();
  buf[41] = 'n';
  buf[40] = 200; /* longer than 64 */
  es__le64(buf + len - 8, es__hash64(buf, len - 8, 0));
  f = fopen(path, "wb");
  ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
  fclose(f);
  ck_assert_int_eq(es__manifest_read(es__vfs_posix(), dir, &got), ES_ECORRUPT);
  es__error_clear();
  ut_rmrf(dir);
}
END_TEST

START_TEST(test_segment_name) {
  char name[32];
  es__segment_name(name, sizeof(name), 1);
  ck_assert_str_eq(name, "0000000000000001.seg");
  es__segment_name(name, sizeof(name), 0xabcdef);
  ck_assert_str_eq(name, "0000000000abcdef.seg");
  es__segment_name(name, sizeof(name), UINT64_MAX);
  ck_assert_str_eq(name, "ffffffffffffffff.seg");
}
END_TEST

/* ---- ESDB --------------------------------------------------------------- */

static void esdb_path(char *out, size_t cap, const char *dir) {
  ck_assert_int_eq(es__path_join(out, cap, dir, "ESDB"), ES_OK);
}

START_TEST(test_esdb) {
  char dir[512], path[1024];
  ut_tmpdir(dir, sizeof(dir), "esdb");
  uint32_t shards = 99;
  ck_assert_int_eq(es__esdb_read(es__vfs_posix(), dir, &shards), ES_ENOTFOUND);
  ck_assert_int_eq(es__esdb_write(es__vfs_posix(), dir, 7), ES_OK);
  esdb_path(path, sizeof(path), dir);
  ck_assert_uint_eq(ut_file_size(path), 24);
  ck_assert_int_eq(ut_count_suffix(dir, ".tmp"), 0);
  ck_assert_int_eq(es__esdb_read(es__vfs_posix(), dir, &shards), ES_OK);
  ck_assert_uint_eq(shards, 7);
  ck_assert_int_eq(es__esdb_write(es__vfs_posix(), dir, 1024), ES_OK);
  ck_assert_int_eq(es__esdb_read(es__vfs_posix(), dir, &shards), ES_OK);
  ck_assert_uint_eq(shards, 1024);

  /* damage */
  ut_flip_byte(path, 13, 0x01);
  ck_assert_int_eq(es__esdb_read(es__vfs_posix(), dir, &shards), ES_ECORRUPT);
  ck_assert_int_eq(es__esdb_write(es__vfs_posix(), dir, 3), ES_OK);
  ut_flip_byte(path, 0, 0x01);
  ck_assert_int_eq(es__esdb_read(es__vfs_posix(), dir, &shards), ES_ECORRUPT);
  ck_assert_int_eq(es__esdb_write(es__vfs_posix(), dir, 3), ES_OK);
  ut_truncate(path, 23);
  ck_assert_int_eq(es__esdb_read(es__vfs_posix(), dir, &shards), ES_ECORRUPT);
  /* sealed but wrong */
  ck_assert_int_eq(es__esdb_write(es__vfs_posix(), dir, 3), ES_OK);
  edit_and_reseal(path, set_shards_zero);
  ck_assert_int_eq(es__esdb_read(es__vfs_posix(), dir, &shards), ES_ECORRUPT);
  ck_assert_int_eq(es__esdb_write(es__vfs_posix(), dir, 3), ES_OK);
  edit_and_reseal(path, set_shards_huge);
  ck_assert_int_eq(es__esdb_read(es__vfs_posix(), dir, &shards), ES_ECORRUPT);
  ck_assert_int_eq(es__esdb_write(es__vfs_posix(), dir, 3), ES_OK);
  edit_and_reseal(path, set_version_newer);
  ck_assert_int_eq(es__esdb_read(es__vfs_posix(), dir, &shards), ES_EVERSION);
  /* an extra byte after a valid file */
  ck_assert_int_eq(es__esdb_write(es__vfs_posix(), dir, 3), ES_OK);
  ut_write_at(path, 24, "x", 1);
  ck_assert_int_eq(es__esdb_read(es__vfs_posix(), dir, &shards), ES_ECORRUPT);
  ut_rmrf(dir);
}
END_TEST

static Suite *manifest_suite(void) {
  Suite *s = suite_create("manifest");
  TCase *tc = tcase_create("manifest");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_missing_is_empty);
  tcase_add_test(tc, test_corrupt);
  tcase_add_test(tc, test_version_too_new);
  tcase_add_test(tc, test_segment_name);
  tcase_add_test(tc, test_generation);
  tcase_add_test(tc, test_lsn_node);
  tcase_add_test(tc, test_esdb);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(manifest_suite()); }
