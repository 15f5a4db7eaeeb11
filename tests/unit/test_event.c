/*
 * test_event.c -- unit tests of lib/event.{h,c}: the row encoding of one
 * event, its validation, ip truncation, tenant ids and type names.
 *
 * What must hold (event.h, eventstore.h):
 *  1. decode(encode(ev)) gives back every field; NULL and "" stay
 *     distinct; strings are byte-exact (UTF-8 included).
 *  2. recv_us 0 is stamped with the caller's "now".
 *  3. ip is cut to /24 (IPv4) or /48 (IPv6), unparsable text is dropped,
 *     and keep_full_ip keeps it verbatim.
 *  4. An invalid type or a negative time is ES_EINVAL and an event over
 *     ES_EVENT_BYTES_MAX is ES_ETOOBIG; either way the buffer is unchanged.
 *  5. Every malformed row decodes to ES_ECORRUPT, without reading past n.
 *  6. Tenant ids are exactly [A-Za-z0-9_-]{1,64}.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/event.h"
#include "unit.h"

#define NOW_US INT64_C(1700000000123456)

/* Encodes ev alone and decodes it back into *out; returns the row size.
 * The row stays in *b (out's strings point into it). */
static size_t round_trip(es_buf *b, const es_event *ev, es_event *out,
                         int keep_full_ip) {
  b->len = 0;
  ck_assert_int_eq(es__event_encode(b, ev, NOW_US, keep_full_ip), ES_OK);
  size_t used = 0;
  ck_assert_int_eq(es__event_decode(b->data, b->len, out, &used), ES_OK);
  ck_assert_uint_eq(used, b->len);
  ck_assert_int_eq(es__event_ts(b->data), ev->ts_us);
  return used;
}

START_TEST(test_round_trip_all_fields) {
  es_buf b = {0};
  for (int i = 0; i < 200; i++) {
    es_event ev, out;
    ut_text tx;
    ut_event(&ev, &tx, "rt", i, INT64_C(1600000000000000) + i * 977);
    round_trip(&b, &ev, &out, 0);
    ut_event_eq(&out, &ev, "round trip");
  }
  es__buf_free(&b);
}
END_TEST

START_TEST(test_round_trip_every_string) {
  /* each field set alone, so a field cannot hide behind another */
  es_buf b = {0};
  for (int f = 0; f < ES_NSTR; f++) {
    es_event ev = {.ts_us = 5, .recv_us = 6, .type = ES_TYPE_PAGE};
    *es__ev_str(&ev, f) = f == ES_STR_ip ? "1.2.3.0" : es__str_name[f];
    es_event out;
    round_trip(&b, &ev, &out, 0);
    for (int g = 0; g < ES_NSTR; g++) {
      const char *got = es__ev_cstr(&out, g);
      if (g == f)
        ck_assert_str_eq(got, es__ev_cstr(&ev, f));
      else
        ck_assert_msg(got == NULL, "field %s leaked into %s", es__str_name[f],
                      es__str_name[g]);
    }
  }
  es__buf_free(&b);
}
END_TEST

START_TEST(test_null_vs_empty) {
  es_buf b = {0};
  es_event none = {.ts_us = 1, .recv_us = 1, .type = ES_TYPE_TRACK};
  es_event empty = none;
  for (int f = 0; f < ES_NSTR; f++)
    *es__ev_str(&empty, f) = "";
  es_event out;
  size_t none_len = round_trip(&b, &none, &out, 1);
  for (int f = 0; f < ES_NSTR; f++)
    ck_assert_msg(es__ev_cstr(&out, f) == NULL, "%s not NULL", es__str_name[f]);
  size_t empty_len = round_trip(&b, &empty, &out, 1);
  ck_assert_uint_gt(empty_len, none_len);
  for (int f = 0; f < ES_NSTR; f++) {
    const char *s = es__ev_cstr(&out, f);
    ck_assert_msg(s != NULL && s[0] == '\0', "%s not \"\"", es__str_name[f]);
  }
  es__buf_free(&b);
}
END_TEST

START_TEST(test_unicode_and_json) {
  const char *props =
      "{\"name\":\"J\xc3\xbcrgen\",\"emoji\":\"\xf0\x9f\x8e\x89\","
      "\"cjk\":\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\",\"q\":\"a\\\"b\"}";
  es_event ev = {.ts_us = 10,
                 .recv_us = 20,
                 .type = ES_TYPE_IDENTIFY,
                 .user_id = "\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd",
                 .path = "/caf\xc3\xa9",
                 .properties = props};
  es_buf b = {0};
  es_event out;
  round_trip(&b, &ev, &out, 0);
  ut_event_eq(&out, &ev, "unicode");
  ck_assert_uint_eq(strlen(out.properties), strlen(props));
  es__buf_free(&b);
}
END_TEST

START_TEST(test_times) {
  es_buf b = {0};
  es_event out;
  /* recv_us 0 is stamped with now */
  es_event ev = {.ts_us = 1000, .recv_us = 0, .type = ES_TYPE_TRACK};
  round_trip(&b, &ev, &out, 0);
  ck_assert_int_eq(out.recv_us, NOW_US);
  /* received before the event time (client clock ahead) */
  ev.ts_us = NOW_US;
  ev.recv_us = NOW_US - 5000000;
  round_trip(&b, &ev, &out, 0);
  ck_assert_int_eq(out.recv_us, ev.recv_us);
  /* extremes */
  static const int64_t ts[] = {0, 1, INT64_MAX - 1, INT64_MAX - 1};
  static const int64_t recv[] = {1, INT64_MAX, 1, INT64_MIN};
  for (size_t i = 0; i < 4; i++) {
    ev.ts_us = ts[i];
    ev.recv_us = recv[i];
    round_trip(&b, &ev, &out, 0);
    ck_assert_int_eq(out.ts_us, ts[i]);
    ck_assert_int_eq(out.recv_us, recv[i]);
  }
  /* INT64_MAX could never be scanned ([from, to) with to <= INT64_MAX) */
  ev.ts_us = INT64_MAX;
  ck_assert_int_eq(es__event_encode(&b, &ev, NOW_US, 0), ES_EINVAL);
  es__buf_free(&b);
}
END_TEST

START_TEST(test_several_rows_in_one_buffer) {
  es_buf b = {0};
  es_event evs[50];
  ut_text tx[50];
  for (int i = 0; i < 50; i++) {
    ut_event(&evs[i], &tx[i], "multi", i, 100 + i);
    ck_assert_int_eq(es__event_encode(&b, &evs[i], NOW_US, 0), ES_OK);
  }
  size_t off = 0;
  for (int i = 0; i < 50; i++) {
    es_event out;
    size_t used = 0;
    ck_assert_int_eq(es__event_decode(b.data + off, b.len - off, &out, &used),
                     ES_OK);
    ut_event_eq(&out, &evs[i], "multi");
    off += used;
  }
  ck_assert_uint_eq(off, b.len);
  es__buf_free(&b);
}
END_TEST

/* The ip stored for `in`, or NULL when it was dropped. */
static const char *stored_ip(es_buf *b, const char *in, int keep_full_ip,
                             es_event *out) {
  es_event ev = {.ts_us = 1, .recv_us = 1, .type = ES_TYPE_PAGE, .ip = in};
  round_trip(b, &ev, out, keep_full_ip);
  return out->ip;
}

START_TEST(test_ip_truncation) {
  es_buf b = {0};
  es_event out;
  ck_assert_pstr_eq(stored_ip(&b, "192.168.1.77", 0, &out), "192.168.1.0");
  ck_assert_pstr_eq(stored_ip(&b, "10.0.0.255", 0, &out), "10.0.0.0");
  ck_assert_pstr_eq(stored_ip(&b, "8.8.8.8", 0, &out), "8.8.8.0");
  ck_assert_pstr_eq(stored_ip(&b, "2001:db8:abcd:12:1:2:3:4", 0, &out),
                    "2001:db8:abcd::");
  ck_assert_pstr_eq(stored_ip(&b, "2001:db8:abcd:ffff::1", 0, &out),
                    "2001:db8:abcd::");
  ck_assert_pstr_eq(stored_ip(&b, "::1", 0, &out), "::");
  ck_assert_pstr_eq(stored_ip(&b, "0.0.0.0", 0, &out), "0.0.0.0");
  ck_assert_pstr_eq(stored_ip(&b, "255.255.255.255", 0, &out),
                    "255.255.255.0");
  ck_assert_pstr_eq(stored_ip(&b, "010.1.2.3", 0, &out), NULL);
  ck_assert_pstr_eq(stored_ip(&b, " 1.2.3.4", 0, &out), NULL);
  /* IPv4 is cut as text: the same as inet_ntop of the cut bytes */
  uint32_t x = 12345;
  for (int i = 0; i < 2000; i++) {
    unsigned char a[4];
    char in[16], want[16];
    x = x * 1103515245u + 12345u;
    memcpy(a, &x, 4);
    snprintf(in, sizeof(in), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
    a[3] = 0;
    ck_assert_ptr_nonnull(inet_ntop(AF_INET, a, want, sizeof(want)));
    ck_assert_pstr_eq(stored_ip(&b, in, 0, &out), want);
  }
  /* unparsable: dropped, not stored */
  ck_assert_pstr_eq(stored_ip(&b, "not-an-ip", 0, &out), NULL);
  ck_assert_pstr_eq(stored_ip(&b, "300.1.2.3", 0, &out), NULL);
  ck_assert_pstr_eq(stored_ip(&b, "1.2.3.4; DROP", 0, &out), NULL);
  ck_assert_pstr_eq(stored_ip(&b, "", 0, &out), NULL);
  ck_assert_pstr_eq(stored_ip(&b, NULL, 0, &out), NULL);
  /* keep_full_ip: verbatim, even garbage */
  ck_assert_pstr_eq(stored_ip(&b, "192.168.1.77", 1, &out), "192.168.1.77");
  ck_assert_pstr_eq(stored_ip(&b, "2001:db8:abcd:12:1:2:3:4", 1, &out),
                    "2001:db8:abcd:12:1:2:3:4");
  ck_assert_pstr_eq(stored_ip(&b, "not-an-ip", 1, &out), "not-an-ip");
  ck_assert_pstr_eq(stored_ip(&b, "", 1, &out), "");
  es__buf_free(&b);
}
END_TEST

START_TEST(test_invalid_events) {
  es_buf b = {0};
  ck_assert_int_eq(es__buf_put(&b, "prefix", 6), ES_OK);
  es_event ev = {.ts_us = 1, .recv_us = 1, .type = ES_TYPE_TRACK, .event = "x"};
  static const int bad_types[] = {0, -1, 7, 255, 1000};
  for (size_t i = 0; i < sizeof(bad_types) / sizeof(bad_types[0]); i++) {
    ev.type = bad_types[i];
    ck_assert_int_eq(es__event_encode(&b, &ev, NOW_US, 0), ES_EINVAL);
    ck_assert_uint_eq(b.len, 6);
  }
  ev.type = ES_TYPE_GROUP;
  ev.ts_us = -1;
  ck_assert_int_eq(es__event_encode(&b, &ev, NOW_US, 0), ES_EINVAL);
  ev.ts_us = INT64_MIN;
  ck_assert_int_eq(es__event_encode(&b, &ev, NOW_US, 0), ES_EINVAL);
  ck_assert_uint_eq(b.len, 6);
  ck_assert_mem_eq(b.data, "prefix", 6);
  /* every valid type is accepted */
  ev.ts_us = 0;
  for (int t = ES_TYPE_TRACK; t <= ES_TYPE_GROUP; t++) {
    ev.type = t;
    ck_assert_int_eq(es__event_encode(&b, &ev, NOW_US, 0), ES_OK);
  }
  es__buf_free(&b);
}
END_TEST

START_TEST(test_too_big) {
  size_t n = ES_EVENT_BYTES_MAX;
  char *big = malloc(n + 1);
  memset(big, 'x', n);
  big[n] = '\0';
  es_buf b = {0};
  ck_assert_int_eq(es__buf_put(&b, "keep", 4), ES_OK);
  es_event ev = {
      .ts_us = 1, .recv_us = 1, .type = ES_TYPE_TRACK, .properties = big};
  ck_assert_int_eq(es__event_encode(&b, &ev, NOW_US, 0), ES_ETOOBIG);
  ck_assert_uint_eq(b.len, 4); /* rolled back */
  ck_assert_mem_eq(b.data, "keep", 4);
  /* spread over several fields it is still too big */
  big[n / 2] = '\0';
  ev.url = big;
  ev.referrer = big;
  ck_assert_int_eq(es__event_encode(&b, &ev, NOW_US, 0), ES_ETOOBIG);
  ck_assert_uint_eq(b.len, 4);
  /* a little under the limit is fine */
  big[n / 2] = 'x';
  big[n - 100] = '\0';
  ev.url = ev.referrer = NULL;
  ck_assert_int_eq(es__event_encode(&b, &ev, NOW_US, 0), ES_OK);
  ck_assert_uint_le(b.len - 4, ES_EVENT_BYTES_MAX);
  es_event out;
  size_t used;
  ck_assert_int_eq(es__event_decode(b.data + 4, b.len - 4, &out, &used), ES_OK);
  ck_assert_uint_eq(strlen(out.properties), n - 100);
  free(big);
  es__buf_free(&b);
}
END_TEST

START_TEST(test_decode_corrupt) {
  es_event ev, out;
  ut_text tx;
  ut_event(&ev, &tx, "c", 1, 12345); /* ip set, so the row ends in text */
  es_buf b = {0};
  ck_assert_int_eq(es__event_encode(&b, &ev, NOW_US, 0), ES_OK);
  size_t used;
  /* every strict prefix is malformed, and decoding stays inside it (ASan
   * sees an over-read from the exact-size copy) */
  for (size_t k = 0; k < b.len; k++) {
    uint8_t *cut = malloc(k ? k : 1);
    memcpy(cut, b.data, k);
    ck_assert_msg(es__event_decode(cut, k, &out, &used) == ES_ECORRUPT,
                  "prefix %zu of %zu decoded", k, b.len);
    free(cut);
  }
  /* a string without its NUL */
  es_buf s = {0};
  ck_assert_int_eq(es__buf_put_svarint(&s, 5), ES_OK);
  ck_assert_int_eq(es__buf_put_svarint(&s, 0), ES_OK);
  ck_assert_int_eq(es__buf_put_u8(&s, ES_TYPE_TRACK), ES_OK);
  ck_assert_int_eq(es__buf_put_varint(&s, 3), ES_OK); /* "ab" + NUL */
  ck_assert_int_eq(es__buf_put(&s, "abc", 3), ES_OK); /* no NUL */
  for (int f = 1; f < ES_NSTR; f++)
    ck_assert_int_eq(es__buf_put_u8(&s, 0), ES_OK);
  ck_assert_int_eq(es__event_decode(s.data, s.len, &out, &used), ES_ECORRUPT);
  s.data[s.len - ES_NSTR] = '\0'; /* "ab\0": now fine */
  ck_assert_int_eq(es__event_decode(s.data, s.len, &out, &used), ES_OK);
  ck_assert_str_eq(out.event, "ab");
  /* a bad type byte */
  s.data[2] = 9;
  ck_assert_int_eq(es__event_decode(s.data, s.len, &out, &used), ES_ECORRUPT);
  s.data[2] = 0;
  ck_assert_int_eq(es__event_decode(s.data, s.len, &out, &used), ES_ECORRUPT);
  /* a string length far beyond the row */
  s.data[2] = ES_TYPE_TRACK;
  s.data[3] = 0x7f;
  ck_assert_int_eq(es__event_decode(s.data, s.len, &out, &used), ES_ECORRUPT);
  es__buf_free(&s);
  es__buf_free(&b);
}
END_TEST

START_TEST(test_tenant_check) {
  char max[ES_TENANT_LEN_MAX + 2];
  memset(max, 'a', sizeof(max));
  max[ES_TENANT_LEN_MAX] = '\0'; /* 64 chars */
  static const char *const good[] = {"a", "Z", "0",    "acme", "Acme_Corp-42",
                                     "_", "-", "a-b_c"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    ck_assert_msg(es__tenant_check(good[i]) == ES_OK, "%s refused", good[i]);
  ck_assert_int_eq(es__tenant_check(max), ES_OK);
  max[ES_TENANT_LEN_MAX] = 'a';
  max[ES_TENANT_LEN_MAX + 1] = '\0'; /* 65 chars */
  ck_assert_int_eq(es__tenant_check(max), ES_ETENANT);
  static const char *const bad[] = {
      "",    "../x", "a/b",  "..",   ".",           "a b", " a", "a ",
      "a.b", "a\\b", "a\tb", "a\nb", "caf\xc3\xa9", "a:b", "a*", "%2e%2e"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(es__tenant_check(bad[i]) == ES_ETENANT, "\"%s\" accepted",
                  bad[i]);
  ck_assert_int_eq(es__tenant_check(NULL), ES_ETENANT);
  /* the detail names the problem */
  ck_assert_int_eq(es__tenant_check("a/b"), ES_ETENANT);
  ck_assert_ptr_nonnull(strstr(es_errdetail(), "a/b"));
}
END_TEST

START_TEST(test_type_names) {
  static const char *const names[] = {NULL,       "track", "page", "screen",
                                      "identify", "alias", "group"};
  for (int t = ES_TYPE_TRACK; t <= ES_TYPE_GROUP; t++) {
    ck_assert_pstr_eq(es_type_name(t), names[t]);
    ck_assert_int_eq(es_type_from_name(names[t]), t);
  }
  ck_assert_int_eq(ES_TYPE_TRACK, 1); /* pinned on-disk values */
  ck_assert_int_eq(ES_TYPE_GROUP, 6);
  ck_assert_ptr_null(es_type_name(0));
  ck_assert_ptr_null(es_type_name(7));
  ck_assert_ptr_null(es_type_name(-1));
  ck_assert_int_eq(es_type_from_name(NULL), 0);
  ck_assert_int_eq(es_type_from_name(""), 0);
  ck_assert_int_eq(es_type_from_name("Track"), 0);
  ck_assert_int_eq(es_type_from_name("tracks"), 0);
  ck_assert_int_eq(es_type_from_name("trac"), 0);
}
END_TEST

static Suite *event_suite(void) {
  Suite *s = suite_create("event");
  TCase *tc = tcase_create("event");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_round_trip_all_fields);
  tcase_add_test(tc, test_round_trip_every_string);
  tcase_add_test(tc, test_null_vs_empty);
  tcase_add_test(tc, test_unicode_and_json);
  tcase_add_test(tc, test_times);
  tcase_add_test(tc, test_several_rows_in_one_buffer);
  tcase_add_test(tc, test_ip_truncation);
  tcase_add_test(tc, test_invalid_events);
  tcase_add_test(tc, test_too_big);
  tcase_add_test(tc, test_decode_corrupt);
  tcase_add_test(tc, test_tenant_check);
  tcase_add_test(tc, test_type_names);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return ut_main(event_suite()); }
