/*
 * test_objmem.c -- the in-memory object store: every operation, the
 * conditional puts, listing across pages, and the injected faults,
 * including a scripted workload run with every k-th request failing.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/unit.h"
#include "base/mem.h"
#include "replicate/objmem.h"

static es_objstore *mk(unsigned page_keys, uint64_t seed) {
  es_objstore *os = NULL;
  ck_assert_int_eq(es__objmem_create(page_keys, seed, &os), ES_OK);
  ck_assert_ptr_nonnull(os);
  return os;
}

static void put_str(es_objstore *os, const char *key, const char *val) {
  ck_assert_int_eq(
      os->put(os, key, val, strlen(val), ES_OBJ_PUT_ALWAYS, NULL, NULL), ES_OK);
}

/* Asserts key holds exactly val. */
static void expect(es_objstore *os, const char *key, const char *val) {
  uint8_t *buf = NULL;
  size_t len = 0;
  es_objinfo info;
  ck_assert_int_eq(os->get(os, key, 0, ES_OBJ_TO_END, &buf, &len, &info),
                   ES_OK);
  ck_assert_uint_eq(len, strlen(val));
  ck_assert_uint_eq(info.size, strlen(val));
  ck_assert(len == 0 || memcmp(buf, val, len) == 0);
  es__free(buf);
}

START_TEST(test_operations) {
  es_objstore *os = mk(0, 1);
  es_objinfo info, head;
  ck_assert_int_eq(
      os->put(os, "t/a", "hello world", 11, ES_OBJ_PUT_ALWAYS, NULL, &info),
      ES_OK);
  ck_assert_uint_eq(info.size, 11);
  ck_assert(info.etag[0] == '"');
  ck_assert_int_eq(os->head(os, "t/a", &head), ES_OK);
  ck_assert_uint_eq(head.size, 11);
  ck_assert_str_eq(head.etag, info.etag);
  expect(os, "t/a", "hello world");

  /* Ranges: inside, clamped at the end, empty at the end, past it. */
  uint8_t *buf = NULL;
  size_t len = 0;
  ck_assert_int_eq(os->get(os, "t/a", 6, 3, &buf, &len, NULL), ES_OK);
  ck_assert_uint_eq(len, 3);
  ck_assert(memcmp(buf, "wor", 3) == 0);
  es__free(buf);
  ck_assert_int_eq(os->get(os, "t/a", 6, 100, &buf, &len, &info), ES_OK);
  ck_assert_uint_eq(len, 5);
  ck_assert_uint_eq(info.size, 11);
  ck_assert(memcmp(buf, "world", 5) == 0);
  es__free(buf);
  ck_assert_int_eq(os->get(os, "t/a", 11, ES_OBJ_TO_END, &buf, &len, NULL),
                   ES_OK);
  ck_assert_uint_eq(len, 0);
  ck_assert_ptr_null(buf);
  ck_assert_int_eq(os->get(os, "t/a", 12, 1, &buf, &len, NULL), ES_EINVAL);

  /* Empty objects exist. */
  ck_assert_int_eq(
      os->put(os, "t/empty", NULL, 0, ES_OBJ_PUT_ALWAYS, NULL, NULL), ES_OK);
  expect(os, "t/empty", "");

  /* Replace, delete, delete again, missing keys. */
  put_str(os, "t/a", "second");
  expect(os, "t/a", "second");
  ck_assert_int_eq(os->del(os, "t/a"), ES_OK);
  ck_assert_int_eq(os->head(os, "t/a", &head), ES_ENOTFOUND);
  ck_assert_int_eq(os->get(os, "t/a", 0, ES_OBJ_TO_END, &buf, &len, NULL),
                   ES_ENOTFOUND);
  ck_assert_int_eq(os->del(os, "t/a"), ES_OK);

  /* Bad keys and arguments. */
  char big[ES_OBJ_KEY_MAX + 2];
  memset(big, 'k', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  ck_assert_int_eq(os->put(os, "", "x", 1, ES_OBJ_PUT_ALWAYS, NULL, NULL),
                   ES_EINVAL);
  ck_assert_int_eq(os->put(os, big, "x", 1, ES_OBJ_PUT_ALWAYS, NULL, NULL),
                   ES_EINVAL);
  big[ES_OBJ_KEY_MAX] = '\0';
  ck_assert_int_eq(os->put(os, big, "x", 1, ES_OBJ_PUT_ALWAYS, NULL, NULL),
                   ES_OK);
  ck_assert_int_eq(os->put(os, "k", "x", 1, ES_OBJ_PUT_IF_MATCH, NULL, NULL),
                   ES_EINVAL);
  ck_assert_int_eq(os->head(os, NULL, &head), ES_EINVAL);
  es__objstore_destroy(os);
  es__objstore_destroy(NULL);
}
END_TEST

START_TEST(test_etags) {
  es_objstore *os = mk(0, 1);
  es_objinfo a, b, c;
  ck_assert_int_eq(os->put(os, "k", "same", 4, ES_OBJ_PUT_ALWAYS, NULL, &a),
                   ES_OK);
  ck_assert_int_eq(os->put(os, "k", "same", 4, ES_OBJ_PUT_ALWAYS, NULL, &b),
                   ES_OK);
  ck_assert_str_ne(a.etag, b.etag); /* same bytes, new version */
  ck_assert_int_eq(os->put(os, "other", "same", 4, ES_OBJ_PUT_ALWAYS, NULL, &c),
                   ES_OK);
  ck_assert_str_ne(b.etag, c.etag);
  es__objstore_destroy(os);
}
END_TEST

START_TEST(test_conditional) {
  es_objstore *os = mk(0, 1);
  es_objinfo first, second, now;
  /* Create-only. */
  ck_assert_int_eq(
      os->put(os, "lease", "v1", 2, ES_OBJ_PUT_IF_ABSENT, NULL, &first), ES_OK);
  ck_assert_int_eq(
      os->put(os, "lease", "v9", 2, ES_OBJ_PUT_IF_ABSENT, NULL, NULL),
      ES_ECONFLICT);
  expect(os, "lease", "v1");
  /* Replace-if-unchanged. */
  ck_assert_int_eq(
      os->put(os, "lease", "v2", 2, ES_OBJ_PUT_IF_MATCH, first.etag, &second),
      ES_OK);
  ck_assert_str_ne(first.etag, second.etag);
  ck_assert_int_eq(
      os->put(os, "lease", "v3", 2, ES_OBJ_PUT_IF_MATCH, first.etag, NULL),
      ES_ECONFLICT);
  expect(os, "lease", "v2");
  ck_assert_int_eq(os->head(os, "lease", &now), ES_OK);
  ck_assert_str_eq(now.etag, second.etag);
  /* If-Match on a missing key is a conflict too; create-only after a
   * delete succeeds again. */
  ck_assert_int_eq(
      os->put(os, "nope", "x", 1, ES_OBJ_PUT_IF_MATCH, second.etag, NULL),
      ES_ECONFLICT);
  ck_assert_int_eq(os->head(os, "nope", &now), ES_ENOTFOUND);
  ck_assert_int_eq(os->del(os, "lease"), ES_OK);
  ck_assert_int_eq(
      os->put(os, "lease", "v4", 2, ES_OBJ_PUT_IF_ABSENT, NULL, NULL), ES_OK);
  es__objstore_destroy(os);
}
END_TEST

/* Compare-and-swap counters from several threads: with If-Match no
 * increment is lost, which is the point of the condition. */
#define CAS_THREADS 4
#define CAS_INCREMENTS 200

static void *cas_worker(void *arg) {
  es_objstore *os = arg;
  for (int i = 0; i < CAS_INCREMENTS; i++) {
    for (;;) {
      uint8_t *buf = NULL;
      size_t len = 0;
      es_objinfo info;
      if (os->get(os, "counter", 0, ES_OBJ_TO_END, &buf, &len, &info) != ES_OK)
        abort();
      char text[32] = {0};
      memcpy(text, buf, len < 31 ? len : 31);
      es__free(buf);
      char next[32];
      int n = snprintf(next, sizeof(next), "%ld", strtol(text, NULL, 10) + 1);
      int rc = os->put(os, "counter", next, (size_t)n, ES_OBJ_PUT_IF_MATCH,
                       info.etag, NULL);
      if (rc == ES_OK)
        break;
      if (rc != ES_ECONFLICT)
        abort();
    }
  }
  return NULL;
}

START_TEST(test_conditional_threads) {
  es_objstore *os = mk(0, 1);
  put_str(os, "counter", "0");
  pthread_t th[CAS_THREADS];
  for (int i = 0; i < CAS_THREADS; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, cas_worker, os), 0);
  for (int i = 0; i < CAS_THREADS; i++)
    pthread_join(th[i], NULL);
  char want[16];
  snprintf(want, sizeof(want), "%d", CAS_THREADS * CAS_INCREMENTS);
  expect(os, "counter", want);
  es__objstore_destroy(os);
}
END_TEST

typedef struct seen {
  char keys[64][32];
  uint64_t sizes[64];
  int n, stop_at;
} seen;

static int collect(void *ud, const char *key, const es_objinfo *info) {
  seen *s = ud;
  if (s->stop_at && s->n == s->stop_at)
    return 42;
  ck_assert_int_lt(s->n, 64);
  snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
  s->sizes[s->n] = info->size;
  ck_assert(info->etag[0] == '"');
  s->n++;
  return 0;
}

START_TEST(test_list) {
  es_objstore *os = mk(3, 1);
  char key[32], val[32];
  /* Inserted out of order; listed in byte order. */
  for (int i = 9; i >= 0; i--) {
    snprintf(key, sizeof(key), "a/%02d", i);
    snprintf(val, sizeof(val), "%*s", i + 1, "x");
    put_str(os, key, val);
  }
  put_str(os, "a", "not under a/");
  put_str(os, "b/1", "b");
  put_str(os, "0", "zero");
  es__objmem_fail_at(os, 0, 0, 0); /* resets the counter */
  seen s = {0};
  ck_assert_int_eq(os->list(os, "a/", NULL, collect, &s), ES_OK);
  ck_assert_int_eq(s.n, 10);
  for (int i = 0; i < 10; i++) {
    snprintf(key, sizeof(key), "a/%02d", i);
    ck_assert_str_eq(s.keys[i], key);
    ck_assert_uint_eq(s.sizes[i], (uint64_t)i + 1);
  }
  ck_assert_uint_eq(es__objmem_requests(os), 4); /* pages of 3,3,3,1 */

  memset(&s, 0, sizeof(s));
  ck_assert_int_eq(os->list(os, "", NULL, collect, &s), ES_OK);
  ck_assert_int_eq(s.n, 13);
  ck_assert_str_eq(s.keys[0], "0");
  ck_assert_str_eq(s.keys[1], "a");
  ck_assert_str_eq(s.keys[12], "b/1");

  memset(&s, 0, sizeof(s));
  ck_assert_int_eq(os->list(os, "c", NULL, collect, &s), ES_OK);
  ck_assert_int_eq(s.n, 0);

  /* From start_after: keys after it only (it need not exist), in pages
   * that begin there: a/07..a/09 in one page, not four. */
  memset(&s, 0, sizeof(s));
  es__objmem_fail_at(os, 0, 0, 0);
  ck_assert_int_eq(os->list(os, "a/", "a/06", collect, &s), ES_OK);
  ck_assert_int_eq(s.n, 3);
  ck_assert_str_eq(s.keys[0], "a/07");
  ck_assert_str_eq(s.keys[2], "a/09");
  ck_assert_uint_le(es__objmem_requests(os), 2);
  memset(&s, 0, sizeof(s));
  ck_assert_int_eq(os->list(os, "a/", "a/055", collect, &s), ES_OK);
  ck_assert_int_eq(s.n, 4); /* a/06..a/09 */
  ck_assert_str_eq(s.keys[0], "a/06");
  memset(&s, 0, sizeof(s));
  ck_assert_int_eq(os->list(os, "a/", "a/09", collect, &s), ES_OK);
  ck_assert_int_eq(s.n, 0);
  memset(&s, 0, sizeof(s));
  ck_assert_int_eq(os->list(os, "a/", "", collect, &s), ES_OK);
  ck_assert_int_eq(s.n, 10); /* "" is from the first key */

  /* A callback's non-zero return stops the listing and is returned. */
  memset(&s, 0, sizeof(s));
  s.stop_at = 4;
  ck_assert_int_eq(os->list(os, "a/", NULL, collect, &s), 42);
  ck_assert_int_eq(s.n, 4);

  /* Exactly a page's worth: the store says "no more" with the page. */
  es_objstore *three = mk(3, 1);
  put_str(three, "p/1", "1");
  put_str(three, "p/2", "2");
  put_str(three, "p/3", "3");
  memset(&s, 0, sizeof(s));
  es__objmem_fail_at(three, 0, 0, 0);
  ck_assert_int_eq(three->list(three, "p/", NULL, collect, &s), ES_OK);
  ck_assert_int_eq(s.n, 3);
  ck_assert_uint_eq(es__objmem_requests(three), 1);
  es__objstore_destroy(three);

  /* A failing second page fails the listing. */
  memset(&s, 0, sizeof(s));
  es__objmem_fail_at(os, 2, ES_OBJMEM_FAIL_TIMEOUT, 0);
  int rc = os->list(os, "a/", NULL, collect, &s);
  ck_assert_int_eq(rc, ES_EUNAVAIL);
  ck_assert(es__objstore_transient(rc));
  ck_assert_int_eq(s.n, 3);
  es__objstore_destroy(os);
}
END_TEST

START_TEST(test_faults) {
  es_objstore *os = mk(0, 7);
  es_objinfo info;
  /* A permanent failure: no effect, not transient. */
  es__objmem_fail_at(os, 1, ES_OBJMEM_FAIL_STATUS, ES_EREMOTE);
  int rc = os->put(os, "k", "v", 1, ES_OBJ_PUT_ALWAYS, NULL, NULL);
  ck_assert_int_eq(rc, ES_EREMOTE);
  ck_assert(!es__objstore_transient(rc));
  ck_assert_int_eq(os->head(os, "k", &info), ES_ENOTFOUND);
  /* The second request from now times out, the others pass. */
  es__objmem_fail_at(os, 2, ES_OBJMEM_FAIL_TIMEOUT, 0);
  put_str(os, "k", "v1");
  rc = os->put(os, "k", "v2", 2, ES_OBJ_PUT_ALWAYS, NULL, NULL);
  ck_assert_int_eq(rc, ES_EUNAVAIL);
  ck_assert(es__objstore_transient(rc));
  expect(os, "k", "v1");
  ck_assert_uint_eq(es__objmem_requests(os), 3);
  uint8_t *one = NULL;
  size_t one_len = 0;
  ck_assert_int_eq(os->get(os, "k", 0, 1, &one, &one_len, NULL), ES_OK);
  ck_assert_uint_eq(one_len, 1);
  es__free(one);
  /* Reads fail too, and a dropped read changes nothing. */
  es__objmem_fail_at(os, 1, ES_OBJMEM_FAIL_DROP, 0);
  ck_assert_int_eq(os->head(os, "k", &info), ES_EUNAVAIL);
  /* Dropped puts and deletes: over many tries both outcomes happen, and
   * the store is always in one of the two states. */
  int applied = 0, lost = 0;
  for (int i = 0; i < 64; i++) {
    char val[16];
    snprintf(val, sizeof(val), "d%d", i);
    es__objmem_fail_at(os, 1, ES_OBJMEM_FAIL_DROP, 0);
    ck_assert_int_eq(
        os->put(os, "k", val, strlen(val), ES_OBJ_PUT_ALWAYS, NULL, NULL),
        ES_EUNAVAIL);
    uint8_t *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(os->get(os, "k", 0, ES_OBJ_TO_END, &buf, &len, NULL),
                     ES_OK);
    if (len == strlen(val) && memcmp(buf, val, len) == 0)
      applied++;
    else
      lost++;
    es__free(buf);
    put_str(os, "k", "base");
  }
  ck_assert_int_gt(applied, 0);
  ck_assert_int_gt(lost, 0);
  ck_assert_uint_eq(es__objmem_applied_in_doubt(os), (unsigned long)applied);
  es__objstore_destroy(os);
}
END_TEST

/* ---- a scripted workload under every-k-th-request faults -------------- */

/* The client side of objstore.h invariant 2: retry a transient failure;
 * a conditional put that meets a conflict after an in-doubt attempt checks
 * whether the object already holds its own bytes (its earlier attempt
 * landed) before calling it a conflict. */
static int put_retry(es_objstore *os, const char *key, const char *val,
                     int cond, const char *if_etag, int *tries) {
  int in_doubt = 0;
  for (;;) {
    (*tries)++;
    int rc = os->put(os, key, val, strlen(val), cond, if_etag, NULL);
    if (rc == ES_ECONFLICT && in_doubt) {
      uint8_t *buf = NULL;
      size_t len = 0;
      int grc;
      while ((grc = os->get(os, key, 0, ES_OBJ_TO_END, &buf, &len, NULL)) ==
             ES_EUNAVAIL)
        (*tries)++;
      int mine =
          grc == ES_OK && len == strlen(val) && memcmp(buf, val, len) == 0;
      es__free(buf);
      return mine ? ES_OK : ES_ECONFLICT;
    }
    if (!es__objstore_transient(rc))
      return rc;
    in_doubt = 1;
  }
}

static int del_retry(es_objstore *os, const char *key) {
  int rc;
  while ((rc = os->del(os, key)) == ES_EUNAVAIL)
    ;
  return rc;
}

static int head_retry(es_objstore *os, const char *key, es_objinfo *info) {
  int rc;
  while ((rc = os->head(os, key, info)) == ES_EUNAVAIL)
    ;
  return rc;
}

#define WL_KEYS 24

/* Runs the workload; model[i] is what key i must hold ("" = absent). */
static void workload(es_objstore *os, char model[WL_KEYS][32]) {
  char key[32], val[32];
  int tries = 0;
  for (int i = 0; i < WL_KEYS; i++) { /* create everything, create-only */
    snprintf(key, sizeof(key), "tenant-%d/seg/%04d", i % 3, i);
    snprintf(val, sizeof(val), "v0-%d", i);
    ck_assert_int_eq(
        put_retry(os, key, val, ES_OBJ_PUT_IF_ABSENT, NULL, &tries), ES_OK);
    snprintf(model[i], 32, "%s", val);
  }
  for (int i = 0; i < WL_KEYS; i += 2) { /* overwrite half, unconditionally */
    snprintf(key, sizeof(key), "tenant-%d/seg/%04d", i % 3, i);
    snprintf(val, sizeof(val), "v1-%d", i);
    ck_assert_int_eq(put_retry(os, key, val, ES_OBJ_PUT_ALWAYS, NULL, &tries),
                     ES_OK);
    snprintf(model[i], 32, "%s", val);
  }
  for (int i = 1; i < WL_KEYS; i += 4) { /* replace-if-unchanged */
    snprintf(key, sizeof(key), "tenant-%d/seg/%04d", i % 3, i);
    snprintf(val, sizeof(val), "v2-%d", i);
    es_objinfo info;
    ck_assert_int_eq(head_retry(os, key, &info), ES_OK);
    ck_assert_int_eq(
        put_retry(os, key, val, ES_OBJ_PUT_IF_MATCH, info.etag, &tries), ES_OK);
    snprintf(model[i], 32, "%s", val);
    /* The old etag no longer matches. */
    ck_assert_int_eq(
        put_retry(os, key, "stale", ES_OBJ_PUT_IF_MATCH, info.etag, &tries),
        ES_ECONFLICT);
  }
  for (int i = 0; i < WL_KEYS; i += 3) { /* delete a third */
    snprintf(key, sizeof(key), "tenant-%d/seg/%04d", i % 3, i);
    ck_assert_int_eq(del_retry(os, key), ES_OK);
    model[i][0] = '\0';
  }
}

static void check_against_model(es_objstore *os, char model[WL_KEYS][32]) {
  int present = 0;
  for (int i = 0; i < WL_KEYS; i++) {
    char key[32];
    snprintf(key, sizeof(key), "tenant-%d/seg/%04d", i % 3, i);
    if (model[i][0]) {
      expect(os, key, model[i]);
      present++;
    } else {
      es_objinfo info;
      ck_assert_int_eq(os->head(os, key, &info), ES_ENOTFOUND);
    }
  }
  seen s = {0};
  ck_assert_int_eq(os->list(os, "tenant-", NULL, collect, &s), ES_OK);
  ck_assert_int_eq(s.n, present);
  for (int i = 1; i < s.n; i++)
    ck_assert_int_lt(strcmp(s.keys[i - 1], s.keys[i]), 0);
}

START_TEST(test_fail_every_kth) {
  static const int kinds[] = {ES_OBJMEM_FAIL_TIMEOUT, ES_OBJMEM_FAIL_DROP};
  unsigned long total_failed = 0, total_in_doubt = 0;
  for (size_t kind = 0; kind < 2; kind++) {
    for (unsigned long k = 2; k <= 12; k++) {
      es_objstore *os = mk(5, k * 31 + kind);
      char model[WL_KEYS][32];
      es__objmem_fail_every(os, k, kinds[kind], 0);
      workload(os, model);
      unsigned long reqs = es__objmem_requests(os);
      ck_assert_uint_ge(es__objmem_failed(os), reqs / k);
      total_failed += es__objmem_failed(os);
      total_in_doubt += es__objmem_applied_in_doubt(os);
      es__objmem_fail_every(os, 0, 0, 0);
      check_against_model(os, model);
      es__objstore_destroy(os);
    }
  }
  ck_assert_uint_gt(total_failed, 100);
  ck_assert_uint_gt(total_in_doubt, 0); /* in-doubt puts really landed */
}
END_TEST

static Suite *objmem_suite(void) {
  Suite *s = suite_create("objmem");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_operations);
  tcase_add_test(tc, test_etags);
  tcase_add_test(tc, test_conditional);
  tcase_add_test(tc, test_conditional_threads);
  tcase_add_test(tc, test_list);
  tcase_add_test(tc, test_faults);
  tcase_add_test(tc, test_fail_every_kth);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(objmem_suite()); }
