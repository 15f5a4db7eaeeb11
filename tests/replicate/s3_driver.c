/*
 * s3_driver.c -- runs the S3 client (lib/replicate/s3.c) against a real
 * S3-protocol server, for tests/replicate/s3.test.mjs.
 *
 *   s3_driver MODE BUCKET     (endpoint and credentials from AWS_* env)
 *
 * MODE all:     every operation on keys with odd characters, prefixes,
 *               listing across pages, a multipart upload, deletes, empty
 *               objects and the conditional puts; checks each result
 *               itself and prints one JSON document on stdout: the objects
 *               it left behind (for the independent reader) and what the
 *               server did with the conditional headers.
 * MODE retry:   one put and one get (the test makes the proxy fail some
 *               requests first); prints {"put":rc,"get":rc}.
 * MODE badcreds: one put with a wrong secret key; prints {"put":rc}.
 * Exit status 0 when every check held, 1 with a message on stderr if not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "replicate/s3.h"

static int failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "s3_driver: line %d: check failed: %s: ", __LINE__,      \
              #cond);                                                          \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, " [%s]\n", es_errdetail());                              \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* The content of an object: derived from its key and size, so that the
 * node test can rebuild it without being told. */
static uint8_t *content(const char *key, size_t n) {
  uint8_t *b = malloc(n ? n : 1);
  size_t kl = strlen(key);
  for (size_t i = 0; i < n; i++)
    b[i] = (uint8_t)(key[i % kl] + (i / kl) % 7);
  return b;
}

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

static es_objstore *open_store(const char *bucket, const char *secret) {
  es_s3_config cfg;
  es__s3_config_init(&cfg);
  cfg.bucket = bucket;
  cfg.secret_access_key = secret;
  cfg.list_page_keys = 3; /* more keys than a page in every listing */
  cfg.multipart_threshold = 5u << 20;
  cfg.part_bytes = 5u << 20; /* S3's smallest part */
  cfg.backoff_base_ms = 20;
  cfg.backoff_max_ms = 200;
  cfg.attempts_max = 4;
  cfg.request_timeout_ms = 30000;
  es_objstore *os = NULL;
  int rc = es__s3_create(&cfg, &os);
  if (rc != ES_OK) {
    fprintf(stderr, "s3_driver: es__s3_create: %s: %s\n", es_strerror(rc),
            es_errdetail());
    exit(1);
  }
  return os;
}

/* put, head, get whole, get a range: all must agree. */
static void roundtrip(es_objstore *os, const char *key, size_t n) {
  uint8_t *want = content(key, n), *got = NULL;
  size_t got_len = 0;
  es_objinfo put_info, head_info, get_info;
  int rc = os->put(os, key, want, n, ES_OBJ_PUT_ALWAYS, NULL, &put_info);
  CHECK(rc == ES_OK, "put %s: %s", key, es_strerror(rc));
  CHECK(put_info.etag[0] != '\0', "put %s: no etag", key);
  rc = os->head(os, key, &head_info);
  CHECK(rc == ES_OK && head_info.size == n, "head %s: %s size %llu", key,
        es_strerror(rc), (unsigned long long)head_info.size);
  CHECK(strcmp(head_info.etag, put_info.etag) == 0, "etags of %s: %s vs %s",
        key, head_info.etag, put_info.etag);
  rc = os->get(os, key, 0, ES_OBJ_TO_END, &got, &got_len, &get_info);
  CHECK(rc == ES_OK && got_len == n && (n == 0 || !memcmp(got, want, n)),
        "get %s: %s, %zu bytes", key, es_strerror(rc), got_len);
  CHECK(get_info.size == n, "get %s: size %llu", key,
        (unsigned long long)get_info.size);
  es__free(got);
  got = NULL;
  if (n > 8) {
    size_t off = n / 2 - 2;
    rc = os->get(os, key, off, 5, &got, &got_len, &get_info);
    CHECK(rc == ES_OK && got_len == 5 && !memcmp(got, want + off, 5),
          "range of %s: %s, %zu bytes", key, es_strerror(rc), got_len);
    CHECK(get_info.size == n, "range of %s: whole size %llu", key,
          (unsigned long long)get_info.size);
    es__free(got);
  }
  free(want);
}

typedef struct listed {
  char keys[64][ES_OBJ_KEY_MAX + 1];
  uint64_t sizes[64];
  int n;
} listed;

static int on_key(void *ud, const char *key, const es_objinfo *info) {
  listed *l = ud;
  if (l->n == 64)
    return ES_ETOOBIG;
  snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", key);
  l->sizes[l->n++] = info->size;
  return 0;
}

static const char *const odd_keys[] = {
    "tenant.a-b_c/seg/0001 with space.seg",
    "tenant.a-b_c/k=v+w&x;y,z.seg",
    "tenant.a-b_c/\xc3\xbcn\xc3\xaf\x63\xc3\xb8\x64\xc3\xa9/\xe2\x98\xba.seg",
    "tenant.a-b_c/percent%20literal~tilde",
    "tenant.a-b_c/star*(paren)!'quote\".seg",
    "tenant.a-b_c/empty",
};

static int mode_all(es_objstore *os) {
  for (size_t i = 0; i < sizeof(odd_keys) / sizeof(odd_keys[0]); i++)
    roundtrip(os, odd_keys[i], strstr(odd_keys[i], "empty") ? 0 : 100 + i);
  /* Listing across pages of 3 keys, under prefixes. */
  char key[128];
  for (int i = 0; i < 8; i++) {
    snprintf(key, sizeof(key), "tenant.a-b_c/many/%02d=x", i);
    roundtrip(os, key, (size_t)(10 + i));
  }
  listed *l = calloc(1, sizeof(*l));
  int rc = os->list(os, "tenant.a-b_c/many/", NULL, on_key, l);
  CHECK(rc == ES_OK && l->n == 8, "list many: %s, %d keys", es_strerror(rc),
        l->n);
  for (int i = 0; i < l->n && i < 8; i++) {
    snprintf(key, sizeof(key), "tenant.a-b_c/many/%02d=x", i);
    CHECK(strcmp(l->keys[i], key) == 0 && l->sizes[i] == (uint64_t)(10 + i),
          "list many[%d]: %s", i, l->keys[i]);
  }
  /* From start-after (S3's start-after: keys after it, across pages;
   * it need not be a key itself), then a start-after past them all. */
  memset(l, 0, sizeof(*l));
  rc = os->list(os, "tenant.a-b_c/many/", "tenant.a-b_c/many/02", on_key, l);
  CHECK(rc == ES_OK && l->n == 6, "list from 02: %s, %d keys",
        es_strerror(rc), l->n);
  for (int i = 0; i < l->n && i < 6; i++) {
    snprintf(key, sizeof(key), "tenant.a-b_c/many/%02d=x", i + 2);
    CHECK(strcmp(l->keys[i], key) == 0, "list from 02 [%d]: %s", i,
          l->keys[i]);
  }
  memset(l, 0, sizeof(*l));
  rc = os->list(os, "tenant.a-b_c/many/", "tenant.a-b_c/many/07=x", on_key, l);
  CHECK(rc == ES_OK && l->n == 0, "list after the last: %s, %d",
        es_strerror(rc), l->n);
  memset(l, 0, sizeof(*l));
  rc = os->list(os, "nothing/", NULL, on_key, l);
  CHECK(rc == ES_OK && l->n == 0, "list nothing: %s, %d", es_strerror(rc),
        l->n);
  /* A multipart upload: 11 MiB in parts of 5 MiB. */
  const char *big = "tenant.a-b_c/big object=1.seg";
  size_t big_n = (11u << 20) + 123;
  roundtrip(os, big, big_n);
  uint8_t *want = content(big, big_n), *got = NULL;
  size_t got_len = 0;
  rc = os->get(os, big, (5u << 20) - 10, 20, &got, &got_len, NULL);
  CHECK(rc == ES_OK && got_len == 20 &&
            !memcmp(got, want + (5u << 20) - 10, 20),
        "range across parts: %s", es_strerror(rc));
  es__free(got);
  free(want);
  /* Deletes, and what is missing. */
  const char *gone = "tenant.a-b_c/gone";
  roundtrip(os, gone, 10);
  CHECK(os->del(os, gone) == ES_OK, "delete %s", gone);
  es_objinfo info;
  CHECK(os->head(os, gone, &info) == ES_ENOTFOUND, "head after delete");
  CHECK(os->del(os, gone) == ES_OK, "delete twice");
  got = NULL;
  CHECK(os->get(os, gone, 0, ES_OBJ_TO_END, &got, &got_len, NULL) ==
            ES_ENOTFOUND,
        "get after delete");
  CHECK(os->get(os, odd_keys[0], 1000, 1, &got, &got_len, NULL) == ES_EINVAL,
        "range past the end");
  /* Conditional puts: record what the server does (s3rver does not
   * implement them; the in-memory store's tests cover the semantics). */
  const char *ck = "tenant.a-b_c/cond";
  es_objinfo first;
  int c_new = os->put(os, ck, "one", 3, ES_OBJ_PUT_IF_ABSENT, NULL, &first);
  int c_exists = os->put(os, ck, "two", 3, ES_OBJ_PUT_IF_ABSENT, NULL, NULL);
  int c_stale = os->put(os, ck, "three", 5, ES_OBJ_PUT_IF_MATCH,
                        "\"00000000000000000000000000000000\"", NULL);
  es_objinfo now;
  CHECK(os->head(os, ck, &now) == ES_OK, "head cond");
  int c_match = os->put(os, ck, "four", 4, ES_OBJ_PUT_IF_MATCH, now.etag, NULL);
  uint8_t *cv = NULL;
  size_t cv_len = 0;
  CHECK(os->get(os, ck, 0, ES_OBJ_TO_END, &cv, &cv_len, NULL) == ES_OK,
        "get cond");
  CHECK(c_new == ES_OK && c_match == ES_OK, "conditional puts that must pass");
  /* Everything left behind, for the independent reader. */
  memset(l, 0, sizeof(*l));
  rc = os->list(os, "tenant.a-b_c/", NULL, on_key, l);
  CHECK(rc == ES_OK, "list all: %s", es_strerror(rc));
  printf("{\"conditional\":{\"create_new\":\"%s\",\"create_existing\":\"%s\","
         "\"if_match_stale\":\"%s\",\"if_match_current\":\"%s\","
         "\"final\":\"%.*s\"},\"objects\":[",
         es_strerror(c_new), es_strerror(c_exists), es_strerror(c_stale),
         es_strerror(c_match), (int)cv_len, cv ? (char *)cv : "");
  es__free(cv);
  for (int i = 0; i < l->n; i++) {
    printf("%s{\"key\":", i ? "," : "");
    json_str(l->keys[i]);
    printf(",\"size\":%llu}", (unsigned long long)l->sizes[i]);
  }
  printf("]}\n");
  free(l);
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: s3_driver all|retry|badcreds BUCKET\n");
    return 2;
  }
  const char *mode = argv[1];
  es_objstore *os =
      open_store(argv[2], strcmp(mode, "badcreds") == 0 ? "wrong" : NULL);
  int rc = 0;
  if (strcmp(mode, "all") == 0) {
    rc = mode_all(os);
  } else if (strcmp(mode, "retry") == 0) {
    const char *key = "tenant.a-b_c/retried";
    int prc = os->put(os, key, "retried", 7, ES_OBJ_PUT_ALWAYS, NULL, NULL);
    uint8_t *got = NULL;
    size_t n = 0;
    int grc = os->get(os, key, 0, ES_OBJ_TO_END, &got, &n, NULL);
    printf("{\"put\":%d,\"get\":%d,\"value\":\"%.*s\"}\n", prc, grc, (int)n,
           got ? (char *)got : "");
    es__free(got);
  } else if (strcmp(mode, "badcreds") == 0) {
    int prc = os->put(os, "tenant.a-b_c/denied", "x", 1, ES_OBJ_PUT_ALWAYS,
                      NULL, NULL);
    printf("{\"put\":%d}\n", prc);
  } else {
    fprintf(stderr, "s3_driver: unknown mode %s\n", mode);
    rc = 2;
  }
  es__objstore_destroy(os);
  return rc;
}
