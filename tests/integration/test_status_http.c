/*
 * test_status_http.c -- Check tests of what both servers answer with
 * (cmd/common): the one library status -> HTTP status table, and the
 * route lookup's 404 / 405 + Allow.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "common/route.h"
#include "common/status_http.h"
#include "eventstore.h"

/* Every code es_strerror names is in the table (status_http.h, invariant
 * 1): a code added to eventstore.h without a row fails here. */
START_TEST(every_library_status_is_listed) {
  int named = 0;
  for (int code = 0; code >= -200; code--) {
    if (strcmp(es_strerror(code), "unknown status") == 0)
      continue;
    int http = 0;
    named++;
    ck_assert_msg(http_status_lookup(code, &http) == 0,
                  "status %d (%s) has no HTTP status", code, es_strerror(code));
    ck_assert_int_eq(http_status_of(code), http);
    ck_assert_msg(http == 200 ? code == ES_OK : http >= 400,
                  "status %d answers %d", code, http);
  }
  ck_assert_int_ge(named, 14); /* ES_OK .. ES_EREADONLY at least */
  ck_assert_int_eq(http_status_of(-12345), 500); /* unknown: never 200 */
}
END_TEST

/* Invariant 2: the caller's mistakes are 4xx; the store not able to take
 * the request now is 503 with Retry-After; a failed store is 500. */
START_TEST(the_mapping) {
  static const struct {
    int es, http;
  } want[] = {
      {ES_OK, 200},        {ES_EINVAL, 400},    {ES_ETENANT, 400},
      {ES_ETOOBIG, 400},   {ES_ENOTFOUND, 404}, {ES_ENOMEM, 503},
      {ES_ENOSPC, 503},    {ES_EBUSY, 503},     {ES_ECLOSED, 503},
      {ES_EIO, 500},       {ES_ECORRUPT, 500},  {ES_EFAILED, 500},
      {ES_EVERSION, 500},  {ES_EREADONLY, 500},
      {ES_EDEGRADED, 503}, {ES_EUNAVAIL, 503},  {ES_ECONFLICT, 409},
      {ES_EREMOTE, 502},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    ck_assert_msg(http_status_of(want[i].es) == want[i].http, "%s: %d, want %d",
                  es_strerror(want[i].es), http_status_of(want[i].es),
                  want[i].http);
  ck_assert_int_eq(http_status_retry_after_s(503), 1);
  ck_assert_int_eq(http_status_retry_after_s(429), 1);
  ck_assert_int_eq(http_status_retry_after_s(500), 0);
  ck_assert_int_eq(http_status_retry_after_s(400), 0);
  ck_assert_str_eq(http_status_reason(405), "Method Not Allowed");
  ck_assert_str_eq(http_status_reason(599), "Internal Server Error");
}
END_TEST

typedef struct row {
  http_route r;
  int id;
} row;

static const row table[] = {
    {{HTTP_GET, "/healthz", 0}, 1},
    {{HTTP_POST, "/v1/query", 0}, 2},
    {{HTTP_GET, "/v1/persons/*/timeline", 0}, 3},
    {{HTTP_GET, "/v1/segments", 0}, 4},
    {{HTTP_DELETE, "/v1/segments", 0}, 5},
    {{HTTP_GET, "/v1/segments/*/members", 0}, 6},
};

static int find(int method, const char *path, int *status, char *allow) {
  const row *r = (const row *)http_route_find(
      table, sizeof table / sizeof *table, sizeof *table, method, path,
      strlen(path), status, allow);
  return r ? r->id : 0;
}

START_TEST(routes_404_405_allow) {
  char allow[HTTP_ROUTE_ALLOW_SIZE];
  int status;
  ck_assert_int_eq(find(HTTP_GET, "/healthz", &status, allow), 1);
  ck_assert_int_eq(find(HTTP_POST, "/v1/query", &status, allow), 2);
  ck_assert_int_eq(find(HTTP_GET, "/v1/persons/p%201/timeline", &status, allow),
                   3);
  ck_assert_int_eq(find(HTTP_DELETE, "/v1/segments", &status, allow), 5);
  /* no row has the path */
  ck_assert_int_eq(find(HTTP_GET, "/nothing", &status, allow), 0);
  ck_assert_int_eq(status, 404);
  ck_assert_int_eq(find(HTTP_GET, "/healthz/", &status, allow), 0);
  ck_assert_int_eq(status, 404);
  ck_assert_int_eq(find(HTTP_GET, "/v1/persons//timeline", &status, allow), 0);
  ck_assert_int_eq(status, 404); /* "*" needs a non-empty segment */
  ck_assert_int_eq(find(HTTP_GET, "/v1/persons/a/b/timeline", &status, allow),
                   0);
  ck_assert_int_eq(status, 404); /* ... of one segment */
  ck_assert_int_eq(find(HTTP_GET, "/v1/quer", &status, allow), 0);
  ck_assert_int_eq(status, 404); /* whole paths, not prefixes */
  /* rows have the path, for other methods */
  ck_assert_int_eq(find(HTTP_GET, "/v1/query", &status, allow), 0);
  ck_assert_int_eq(status, 405);
  ck_assert_str_eq(allow, "POST");
  ck_assert_int_eq(find(HTTP_PUT, "/v1/segments", &status, allow), 0);
  ck_assert_int_eq(status, 405);
  ck_assert_str_eq(allow, "GET, DELETE");
  ck_assert_int_eq(find(HTTP_POST, "/v1/segments/x/members", &status, allow),
                   0);
  ck_assert_int_eq(status, 405);
  ck_assert_str_eq(allow, "GET");
}
END_TEST

int main(void) {
  Suite *s = suite_create("status_http");
  TCase *tc = tcase_create("status_http");
  tcase_add_test(tc, every_library_status_is_listed);
  tcase_add_test(tc, the_mapping);
  tcase_add_test(tc, routes_404_405_allow);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
