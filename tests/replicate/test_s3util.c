/*
 * test_s3util.c -- the S3 client's pieces that need no network: AWS URI
 * encoding, canonical queries, the retry policy and backoff, and the XML
 * reader of list, upload and error responses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/unit.h"
#include "replicate/s3.h"

static const char *enc(const char *s, int keep_slash) {
  static char out[512];
  out[0] = '\0';
  ck_assert_int_eq(
      es__s3_uri_encode(out, sizeof(out), s, strlen(s), keep_slash), ES_OK);
  return out;
}

START_TEST(test_uri_encode) {
  ck_assert_str_eq(enc("AZaz09-._~", 0), "AZaz09-._~");
  ck_assert_str_eq(enc("a/b c", 1), "a/b%20c");
  ck_assert_str_eq(enc("a/b c", 0), "a%2Fb%20c");
  ck_assert_str_eq(enc("k=v+w&x", 1), "k%3Dv%2Bw%26x");
  ck_assert_str_eq(enc("\xc3\xa9t\xc3\xa9", 1), "%C3%A9t%C3%A9"); /* été */
  ck_assert_str_eq(enc("a*b%c", 1), "a%2Ab%25c");
  char small[3] = "";
  ck_assert_int_eq(es__s3_uri_encode(small, sizeof(small), " ", 1, 1),
                   ES_EINVAL);
}
END_TEST

START_TEST(test_query) {
  char q[256];
  const char *n1[] = {"uploads"};
  ck_assert_int_eq(es__s3_query(q, sizeof(q), n1, NULL, 1), ES_OK);
  ck_assert_str_eq(q, "uploads=");
  const char *n2[] = {"uploadId", "partNumber"}, *v2[] = {"a b/c=", "7"};
  ck_assert_int_eq(es__s3_query(q, sizeof(q), n2, v2, 2), ES_OK);
  ck_assert_str_eq(q, "partNumber=7&uploadId=a%20b%2Fc%3D");
  const char *n3[] = {"prefix", "list-type", "max-keys", "continuation-token"};
  const char *v3[] = {"t/é x", "2", "5", "1/a+b=="};
  ck_assert_int_eq(es__s3_query(q, sizeof(q), n3, v3, 4), ES_OK);
  ck_assert_str_eq(q, "continuation-token=1%2Fa%2Bb%3D%3D&list-type=2&"
                      "max-keys=5&prefix=t%2F%C3%A9%20x");
  /* Names compare before values: "a" sorts before "a-b". */
  const char *n4[] = {"a-b", "a"}, *v4[] = {"1", "zz"};
  ck_assert_int_eq(es__s3_query(q, sizeof(q), n4, v4, 2), ES_OK);
  ck_assert_str_eq(q, "a=zz&a-b=1");
  ck_assert_int_eq(es__s3_query(q, 8, n3, v3, 4), ES_EINVAL);
}
END_TEST

START_TEST(test_retry_policy) {
  ck_assert(es__s3_retryable(500, ""));
  ck_assert(es__s3_retryable(503, "SlowDown"));
  ck_assert(es__s3_retryable(408, ""));
  ck_assert(es__s3_retryable(429, ""));
  ck_assert(es__s3_retryable(409, "ConditionalRequestConflict"));
  ck_assert(es__s3_retryable(400, "RequestTimeout"));
  ck_assert(!es__s3_retryable(400, "InvalidArgument"));
  ck_assert(!es__s3_retryable(403, "SignatureDoesNotMatch"));
  ck_assert(!es__s3_retryable(404, "NoSuchKey"));
  ck_assert(!es__s3_retryable(412, "PreconditionFailed"));
  ck_assert_uint_eq(es__s3_backoff_ms(1, 100, 10000, 12345), 0);
  for (uint64_t r = 0; r < 1000; r += 7) {
    ck_assert_uint_le(es__s3_backoff_ms(2, 100, 10000, r * 7919), 100);
    ck_assert_uint_le(es__s3_backoff_ms(4, 100, 10000, r * 7919), 400);
    ck_assert_uint_le(es__s3_backoff_ms(40, 100, 10000, r * 7919), 10000);
  }
  /* The jitter covers the window, not just its end. */
  ck_assert_uint_lt(es__s3_backoff_ms(4, 100, 10000, 5), 10);
  ck_assert_uint_eq(es__s3_backoff_ms(4, 100, 10000, 400), 400);
}
END_TEST

typedef struct got {
  char keys[8][64];
  uint64_t sizes[8];
  char etags[8][ES_OBJ_ETAG_MAX];
  int n;
} got;

static int on_key(void *ud, const char *key, const es_objinfo *info) {
  got *g = ud;
  ck_assert_int_lt(g->n, 8);
  snprintf(g->keys[g->n], 64, "%s", key);
  g->sizes[g->n] = info->size;
  memcpy(g->etags[g->n], info->etag, ES_OBJ_ETAG_MAX);
  g->n++;
  return 0;
}

static int list(const char *xml, got *g, int *trunc, char *tok, size_t cap) {
  memset(g, 0, sizeof(*g));
  return es__s3xml_list(xml, strlen(xml), on_key, g, trunc, tok, cap);
}

START_TEST(test_xml_list) {
  got g;
  int trunc;
  char tok[64];
  const char *page =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Name>b</Name><Prefix>t/</Prefix><KeyCount>2</KeyCount>"
      "<MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>"
      "<NextContinuationToken>tok&amp;1=</NextContinuationToken>"
      "<Contents><Key>t/a &amp; b&lt;c&gt;&#233;&#x263A;</Key>"
      "<LastModified>2026-01-01T00:00:00.000Z</LastModified>"
      "<ETag>&quot;abc&quot;</ETag><Size>12</Size>"
      "<StorageClass>STANDARD</StorageClass></Contents>"
      "<Contents>\n  <Key>t/KeyCount</Key>\n  <Size>0</Size>\n</Contents>"
      "</ListBucketResult>";
  ck_assert_int_eq(list(page, &g, &trunc, tok, sizeof(tok)), ES_OK);
  ck_assert_int_eq(trunc, 1);
  ck_assert_str_eq(tok, "tok&1=");
  ck_assert_int_eq(g.n, 2);
  ck_assert_str_eq(g.keys[0], "t/a & b<c>\xc3\xa9\xe2\x98\xba");
  ck_assert_uint_eq(g.sizes[0], 12);
  ck_assert_str_eq(g.etags[0], "\"abc\"");
  ck_assert_str_eq(g.keys[1], "t/KeyCount");
  ck_assert_str_eq(g.etags[1], "");

  const char *last = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                     "</ListBucketResult>";
  ck_assert_int_eq(list(last, &g, &trunc, tok, sizeof(tok)), ES_OK);
  ck_assert_int_eq(trunc, 0);
  ck_assert_int_eq(g.n, 0);

  /* Malformed pages are refused, never half-read into wrong keys. */
  static const char *const bad[] = {
      "<Error><Code>AccessDenied</Code></Error>",
      "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
      "<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a&bogus;</Key><Size>1</Size>"
      "</Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a&#0;</Key><Size>1</Size>"
      "</Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size>"
      "</Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a</Key></Contents>"
      "</ListBucketResult>",
      "<ListBucketResult><Contents><Key></Key><Size>1</Size></Contents>"
      "</ListBucketResult>",
      "<ListBucketResult><Contents><Key>a</Key><Size>1</Size>",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(list(bad[i], &g, &trunc, tok, sizeof(tok)) == ES_EREMOTE,
                  "accepted: %s", bad[i]);
  /* A token longer than its buffer is refused too. */
  const char *longtok = "<ListBucketResult><IsTruncated>true</IsTruncated>"
                        "<NextContinuationToken>0123456789</"
                        "NextContinuationToken></ListBucketResult>";
  ck_assert_int_eq(list(longtok, &g, &trunc, tok, 8), ES_EREMOTE);
}
END_TEST

START_TEST(test_xml_text) {
  char out[64];
  const char *x = "<InitiateMultipartUploadResult><Bucket>b</Bucket>"
                  "<Key>k</Key><UploadId>VXBsb2Fk-1.x_y</UploadId>"
                  "</InitiateMultipartUploadResult>";
  ck_assert_int_eq(es__s3xml_text(x, strlen(x), "UploadId", out, sizeof(out)),
                   ES_OK);
  ck_assert_str_eq(out, "VXBsb2Fk-1.x_y");
  ck_assert_int_eq(es__s3xml_text(x, strlen(x), "Upload", out, sizeof(out)),
                   ES_ENOTFOUND);
  const char *e = "<Error><Code>SlowDown</Code><Message>Reduce</Message>"
                  "<Empty/></Error>";
  ck_assert_int_eq(es__s3xml_text(e, strlen(e), "Code", out, sizeof(out)),
                   ES_OK);
  ck_assert_str_eq(out, "SlowDown");
  ck_assert_int_eq(es__s3xml_text(e, strlen(e), "Empty", out, sizeof(out)),
                   ES_OK);
  ck_assert_str_eq(out, "");
  /* Bounded by the length, not by a NUL. */
  ck_assert_int_eq(es__s3xml_text(e, 20, "Code", out, sizeof(out)),
                   ES_ENOTFOUND);
}
END_TEST

#ifdef HAVE_S3
/* Configuration: what is required, what the environment supplies, and a
 * transport failure (nothing listens on port 1) classified as transient. */
START_TEST(test_s3_config) {
  es_s3_config cfg;
  es_objstore *os = NULL;
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  unsetenv("AWS_SESSION_TOKEN");
  setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
  es__s3_config_init(&cfg);
  ck_assert_int_eq(es__s3_create(&cfg, &os), ES_EINVAL); /* no bucket */
  ck_assert_ptr_null(os);
  cfg.bucket = "b";
  ck_assert_int_eq(es__s3_create(&cfg, &os), ES_EINVAL); /* no keys */
  setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
  cfg.endpoint = "ftp://example";
  ck_assert_int_eq(es__s3_create(&cfg, &os), ES_EINVAL);
  cfg.endpoint = NULL; /* from AWS_ENDPOINT_URL */
  cfg.bucket = "bad/bucket";
  ck_assert_int_eq(es__s3_create(&cfg, &os), ES_EINVAL);
  cfg.bucket = "b";
  cfg.attempts_max = 3;
  cfg.backoff_base_ms = 1;
  cfg.backoff_max_ms = 2;
  cfg.connect_timeout_ms = 2000;
  ck_assert_int_eq(es__s3_create(&cfg, &os), ES_OK);
  es_objinfo info;
  int rc = os->head(os, "k", &info);
  ck_assert_int_eq(rc, ES_EUNAVAIL);
  ck_assert(es__objstore_transient(rc));
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "3 attempts"));
  ck_assert_int_eq(os->put(os, "", "x", 1, ES_OBJ_PUT_ALWAYS, NULL, NULL),
                   ES_EINVAL);
  /* An etag cannot smuggle a header in. */
  ck_assert_int_eq(
      os->put(os, "k", "x", 1, ES_OBJ_PUT_IF_MATCH, "\"e\"\r\nX-Evil: 1", NULL),
      ES_EINVAL);
  ck_assert_int_eq(os->put(os, "k", "x", 1, ES_OBJ_PUT_IF_MATCH, NULL, NULL),
                   ES_EINVAL);
  es__objstore_destroy(os);
  unsetenv("AWS_ENDPOINT_URL");
}
END_TEST
#endif

static Suite *s3util_suite(void) {
  Suite *s = suite_create("s3util");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_uri_encode);
  tcase_add_test(tc, test_query);
  tcase_add_test(tc, test_retry_policy);
  tcase_add_test(tc, test_xml_list);
  tcase_add_test(tc, test_xml_text);
#ifdef HAVE_S3
  tcase_add_test(tc, test_s3_config);
#endif
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(s3util_suite()); }
