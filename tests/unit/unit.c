/*
 * unit.c -- helpers shared by the unit suites; see unit.h.
 *
 * Test code may call the C library and POSIX directly: the rule that only
 * lib/mem.c allocates and only lib/io.c touches files binds the library,
 * not the tests that poke at its files from outside.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

/* ---- scratch directories ---------------------------------------------- */

void ut_tmpdir(char *out, size_t cap, const char *tag) {
  char templ[256], cwd[PATH_MAX];
  snprintf(templ, sizeof(templ), "ut-%s-XXXXXX", tag);
  ck_assert_msg(mkdtemp(templ) != NULL, "mkdtemp %s failed", templ);
  ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
  int n = snprintf(out, cap, "%s/%s", cwd, templ);
  ck_assert_msg(n > 0 && (size_t)n < cap, "temporary path too long");
}

static int rmrf_one(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

void ut_rmrf(const char *path) {
  nftw(path, rmrf_one, 16, FTW_DEPTH | FTW_PHYS);
}

int ut_count_suffix(const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  if (!d)
    return -1;
  int n = 0;
  size_t sl = strlen(suffix);
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    size_t l = strlen(de->d_name);
    if (l >= sl && strcmp(de->d_name + l - sl, suffix) == 0 &&
        strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      n++;
  }
  closedir(d);
  return n;
}

int ut_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* ---- byte surgery ----------------------------------------------------- */

uint64_t ut_file_size(const char *path) {
  struct stat st;
  ck_assert_msg(stat(path, &st) == 0, "stat %s", path);
  return (uint64_t)st.st_size;
}

void ut_write_at(const char *path, uint64_t off, const void *buf, size_t len) {
  int fd = open(path, O_WRONLY);
  ck_assert_msg(fd >= 0, "open %s", path);
  ck_assert_int_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
  close(fd);
}

void ut_flip_byte(const char *path, uint64_t off, uint8_t mask) {
  int fd = open(path, O_RDWR);
  ck_assert_msg(fd >= 0, "open %s", path);
  uint8_t b = 0;
  ck_assert_int_eq(pread(fd, &b, 1, (off_t)off), 1);
  b ^= mask;
  ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off), 1);
  close(fd);
}

void ut_truncate(const char *path, uint64_t size) {
  ck_assert_msg(truncate(path, (off_t)size) == 0, "truncate %s", path);
}

uint8_t *ut_read_file(const char *path, size_t *len_out) {
  size_t len = (size_t)ut_file_size(path);
  uint8_t *buf = malloc(len ? len : 1);
  ck_assert_ptr_nonnull(buf);
  int fd = open(path, O_RDONLY);
  ck_assert_msg(fd >= 0, "open %s", path);
  ck_assert_int_eq(pread(fd, buf, len, 0), (ssize_t)len);
  close(fd);
  *len_out = len;
  return buf;
}

/* ---- events ----------------------------------------------------------- */

void ut_event(es_event *ev, ut_text *tx, const char *tag, int i,
              int64_t ts_us) {
  memset(ev, 0, sizeof(*ev));
  memset(tx, 0, sizeof(*tx));
  ev->ts_us = ts_us;
  ev->recv_us = ts_us + 1000 + i; /* explicit, so it round-trips */
  ev->type = ES_TYPE_TRACK + i % 6;
  snprintf(tx->event, sizeof(tx->event), "ev%d", i % 5);
  snprintf(tx->message_id, sizeof(tx->message_id), "m-%s-%d", tag, i);
  snprintf(tx->anonymous_id, sizeof(tx->anonymous_id), "anon-%d", i % 97);
  snprintf(tx->user_id, sizeof(tx->user_id), "user-%d", i % 50);
  snprintf(tx->group_id, sizeof(tx->group_id), "grp-%d", i % 4);
  snprintf(tx->path, sizeof(tx->path), "/p%d", i % 13);
  snprintf(tx->url, sizeof(tx->url), "https://example.com/p%d?q=%d", i % 13, i);
  snprintf(tx->referrer, sizeof(tx->referrer), "https://ref.example/%d", i % 3);
  snprintf(tx->properties, sizeof(tx->properties),
           "{\"i\":%d,\"s\":\"\xc3\xa9\xf0\x9f\x9a\x80\"}", i);
  snprintf(tx->user_agent, sizeof(tx->user_agent), "Mozilla/5.0 (%d)", i % 4);
  /* already /24-truncated, so it is stored unchanged either way */
  snprintf(tx->ip, sizeof(tx->ip), "10.1.%d.0", i % 256);
  ev->event = tx->event;
  ev->message_id = tx->message_id;
  ev->anonymous_id = tx->anonymous_id;
  ev->user_id = i % 3 == 0 ? NULL : tx->user_id;
  ev->previous_id = i % 7 == 0 ? "" : NULL; /* "" and NULL both occur */
  ev->group_id = i % 11 == 0 ? tx->group_id : NULL;
  ev->path = tx->path;
  ev->url = tx->url;
  ev->referrer = i % 2 ? "" : tx->referrer;
  ev->properties = tx->properties;
  ev->user_agent = tx->user_agent;
  ev->ip = i % 5 == 0 ? NULL : tx->ip;
}

/* Compares one string field, telling NULL from "". */
static void ut_str_eq(const char *got, const char *want, const char *what,
                      const char *field) {
  if (!want) {
    ck_assert_msg(got == NULL, "%s: %s: got \"%s\", want NULL", what, field,
                  got);
    return;
  }
  ck_assert_msg(got != NULL, "%s: %s: got NULL, want \"%s\"", what, field,
                want);
  ck_assert_msg(strcmp(got, want) == 0, "%s: %s: got \"%s\", want \"%s\"", what,
                field, got, want);
}

void ut_event_eq(const es_event *got, const es_event *want, const char *what) {
  ck_assert_msg(got->ts_us == want->ts_us, "%s: ts_us %lld != %lld", what,
                (long long)got->ts_us, (long long)want->ts_us);
  ck_assert_msg(got->recv_us == want->recv_us, "%s: recv_us %lld != %lld", what,
                (long long)got->recv_us, (long long)want->recv_us);
  ck_assert_msg(got->type == want->type, "%s: type %d != %d", what, got->type,
                want->type);
#define UT_CMP(f) ut_str_eq(got->f, want->f, what, #f);
  UT_CMP(event)
  UT_CMP(message_id)
  UT_CMP(anonymous_id)
  UT_CMP(user_id)
  UT_CMP(previous_id)
  UT_CMP(group_id)
  UT_CMP(path)
  UT_CMP(url)
  UT_CMP(referrer)
  UT_CMP(properties)
  UT_CMP(user_agent)
  UT_CMP(ip)
#undef UT_CMP
}

/* ---- running ---------------------------------------------------------- */

size_t ut_scan(es_db *db, const char *tenant,
               void (*fn)(void *ud, const es_event *ev), void *ud) {
  es_scan_spec spec;
  es_scan_spec_init(&spec);
  spec.tenant = tenant;
  es_cursor *cur;
  ck_assert_int_eq(es_scan(db, &spec, &cur), ES_OK);
  es_event ev;
  size_t n = 0;
  int rc;
  while ((rc = es_cursor_next(cur, &ev)) == 1) {
    fn(ud, &ev);
    n++;
  }
  ck_assert_msg(rc == 0, "scan of %s: %s", tenant, es_errdetail());
  es_cursor_close(cur);
  return n;
}

typedef struct ids_buf {
  char *out;
  size_t len, cap;
} ids_buf;

static void ids_add(void *ud, const es_event *ev) {
  ids_buf *b = ud;
  size_t l = ev->message_id ? strlen(ev->message_id) : 0;
  while (b->len + l + 2 > b->cap)
    b->out = realloc(b->out, b->cap = b->cap ? 2 * b->cap : 4096);
  ck_assert_ptr_nonnull(b->out);
  memcpy(b->out + b->len, ev->message_id ? ev->message_id : "", l);
  b->len += l;
  b->out[b->len++] = '\n';
  b->out[b->len] = '\0';
}

char *ut_scan_ids(es_db *db, const char *tenant, int *n_out) {
  ids_buf b = {calloc(1, 1), 0, 1};
  ck_assert_ptr_nonnull(b.out);
  size_t n = ut_scan(db, tenant, ids_add, &b);
  if (n_out)
    *n_out = (int)n;
  return b.out;
}

int ut_main(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
