/*
 * test_segment_json.c -- Check tests of cmd/segment_json: the Segment field
 * mapping, every validation message, the ISO 8601 helpers and the writer
 * (valid JSON whatever the strings hold; parse(write(e)) == e).
 *
 * Only the public header and the module's own header are used.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl_tree.h>

#include "common/segment_json.h"
#include "eventstore.h"

#define NOW_US INT64_C(1800000000000000)
#define T_2026_11_24_10_00_00_123 INT64_C(1795514400123000)

/* Parses json, which must succeed. */
static void parse_ok(seg_event *se, const char *json) {
  char err[SEG_ERR_SIZE];
  int rc = seg_event_parse(se, json, strlen(json), NOW_US, err, sizeof err);
  ck_assert_msg(rc == 0, "parse failed: %s (input %s)", err, json);
}

/* Parses json, which must fail with a message containing want. */
static void parse_bad(const char *json, size_t len, const char *want) {
  char err[SEG_ERR_SIZE];
  seg_event se;
  int rc = seg_event_parse(&se, json, len, NOW_US, err, sizeof err);
  ck_assert_msg(rc == -1, "accepted: %s", json);
  ck_assert_msg(strstr(err, want) != NULL, "message '%s' lacks '%s'", err,
                want);
  ck_assert_ptr_null(se.storage);
  ck_assert_ptr_null(se.ev.user_id);
  ck_assert(strchr(err, '\n') == NULL);
}

static void parse_bad_str(const char *json, const char *want) {
  parse_bad(json, strlen(json), want);
}

static void assert_str_eq_or_null(const char *got, const char *want) {
  if (want == NULL)
    ck_assert_ptr_null(got);
  else
    ck_assert_str_eq(got, want);
}

/* ---------------------------------------------------------------------- */

START_TEST(iso_parse_forms) {
  int64_t us;
  ck_assert_int_eq(seg_iso8601_parse("1970-01-01T00:00:00Z", &us), 0);
  ck_assert_int_eq(us, 0);
  ck_assert_int_eq(seg_iso8601_parse("2026-11-24T10:00:00.123Z", &us), 0);
  ck_assert_int_eq(us, T_2026_11_24_10_00_00_123);
  ck_assert_int_eq(seg_iso8601_parse("2026-11-24T12:00:00.123+02:00", &us), 0);
  ck_assert_int_eq(us, T_2026_11_24_10_00_00_123);
  ck_assert_int_eq(seg_iso8601_parse("2026-11-24T07:30:00.123-0230", &us), 0);
  ck_assert_int_eq(us, T_2026_11_24_10_00_00_123);
  ck_assert_int_eq(seg_iso8601_parse("2026-11-24t10:00:00.1230009z", &us), 0);
  ck_assert_int_eq(us, T_2026_11_24_10_00_00_123); /* truncated, not rounded */
  ck_assert_int_eq(seg_iso8601_parse("2026-11-24 10:00:00,123", &us), 0);
  ck_assert_int_eq(us, T_2026_11_24_10_00_00_123);
  ck_assert_int_eq(seg_iso8601_parse("2026-11-24", &us), 0);
  ck_assert_int_eq(us, INT64_C(1795478400000000));
  ck_assert_int_eq(seg_iso8601_parse("2026-11-24T10:00+00", &us), 0);
  ck_assert_int_eq(us, INT64_C(1795514400000000));
  ck_assert_int_eq(seg_iso8601_parse("2024-02-29T00:00:00Z", &us), 0);
  ck_assert_int_eq(us, INT64_C(1709164800000000));
  ck_assert_int_eq(seg_iso8601_parse("1969-12-31T23:59:59.999999Z", &us), 0);
  ck_assert_int_eq(us, -1);
  ck_assert_int_eq(seg_iso8601_parse("9999-12-31T23:59:59.999999Z", &us), 0);
  ck_assert_int_eq(us, INT64_C(253402300799999999));
  ck_assert_int_eq(seg_iso8601_parse("0000-01-01T00:00:00Z", &us), 0);
  ck_assert_int_eq(us, INT64_C(-62167219200000000));
}
END_TEST

START_TEST(iso_parse_refuses) {
  static const char *const bad[] = {
      "",
      "yesterday",
      "2026-11-24T10:00:00.123Zjunk",
      "2026-11-24T10:00:00.Z",
      "2026-13-01",
      "2026-00-01",
      "2023-02-29",
      "2026-04-31T00:00:00Z",
      "2026-11-24T24:00:00Z",
      "2026-11-24T10:60:00Z",
      "2026-11-24T10:00:60Z",
      "2026-11-24T10:00:00+24:00",
      "2026-11-24T10:00:00+02:",
      "2026-11-24T10:00:00+2",
      "2026-11-24T10",
      "26-11-24",
      "2026-11-24T",
      "1795514400",
      "9999-12-31T23:59:59.999999-23:59", /* year 10000 in UTC */
      "0000-01-01T00:00:00+00:01",        /* year -1 in UTC */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t us = 42;
    ck_assert_msg(seg_iso8601_parse(bad[i], &us) == -1, "accepted '%s'",
                  bad[i]);
  }
}
END_TEST

START_TEST(iso_format_round_trip) {
  char buf[SEG_ISO8601_SIZE];
  ck_assert_uint_eq(seg_iso8601_format(0, buf, sizeof buf), 27);
  ck_assert_str_eq(buf, "1970-01-01T00:00:00.000000Z");
  seg_iso8601_format(-1, buf, sizeof buf);
  ck_assert_str_eq(buf, "1969-12-31T23:59:59.999999Z");
  seg_iso8601_format(T_2026_11_24_10_00_00_123, buf, sizeof buf);
  ck_assert_str_eq(buf, "2026-11-24T10:00:00.123000Z");
  ck_assert_uint_eq(seg_iso8601_format(0, buf, 10), 0);
  ck_assert_uint_gt(seg_iso8601_format(INT64_MIN, buf, sizeof buf), 0);
  ck_assert_uint_gt(seg_iso8601_format(INT64_MAX, buf, sizeof buf), 0);
  /* Every microsecond pattern, across centuries and leap days. */
  uint64_t x = 88172645463325252u;
  for (int i = 0; i < 100000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int64_t us = (int64_t)(x % UINT64_C(253402300800000000)) -
                 INT64_C(62135596800000000); /* years 0001..9999 */
    int64_t back;
    ck_assert_uint_gt(seg_iso8601_format(us, buf, sizeof buf), 0);
    ck_assert_msg(seg_iso8601_parse(buf, &back) == 0, "unparsable %s", buf);
    ck_assert_msg(back == us, "%s: %lld != %lld", buf, (long long)back,
                  (long long)us);
  }
}
END_TEST

/* ---------------------------------------------------------------------- */

START_TEST(track_all_fields) {
  seg_event se;
  parse_ok(&se,
           "{\"type\":\"track\",\"event\":\"Signed Up\","
           "\"messageId\":\"m-1\",\"anonymousId\":\"a-1\",\"userId\":\"u-1\","
           "\"timestamp\":\"2026-11-24T12:00:00.123+02:00\","
           "\"receivedAt\":\"2026-11-24T10:00:01Z\","
           "\"properties\":{\"plan\":\"pro\",\"n\":3},"
           "\"context\":{\"page\":{\"path\":\"/p\",\"url\":\"https://x/p\","
           "\"referrer\":\"https://r/\"},\"userAgent\":\"UA/1\","
           "\"ip\":\"10.1.2.3\"}}");
  ck_assert_int_eq(se.ev.type, ES_TYPE_TRACK);
  ck_assert_str_eq(se.ev.event, "Signed Up");
  ck_assert_str_eq(se.ev.message_id, "m-1");
  ck_assert_str_eq(se.ev.anonymous_id, "a-1");
  ck_assert_str_eq(se.ev.user_id, "u-1");
  ck_assert_int_eq(se.ev.ts_us, T_2026_11_24_10_00_00_123);
  ck_assert_int_eq(se.ev.recv_us, INT64_C(1795514401000000));
  ck_assert_str_eq(se.ev.properties, "{\"plan\":\"pro\",\"n\":3}");
  ck_assert_str_eq(se.ev.path, "/p");
  ck_assert_str_eq(se.ev.url, "https://x/p");
  ck_assert_str_eq(se.ev.referrer, "https://r/");
  ck_assert_str_eq(se.ev.user_agent, "UA/1");
  ck_assert_str_eq(se.ev.ip, "10.1.2.3");
  ck_assert_ptr_null(se.ev.previous_id);
  ck_assert_ptr_null(se.ev.group_id);
  seg_event_free(&se);
  ck_assert_ptr_null(se.storage);
  seg_event_free(&se); /* twice is fine */
}
END_TEST

START_TEST(properties_kept_exactly) {
  seg_event se;
  parse_ok(&se, "{ \"type\" : \"track\", \"event\":\"e\", \"userId\":\"u\","
                " \"properties\" : { \"z\" : 1 , \"a\" : "
                "12345678901234567890123456789, \"big\": 9223372036854775807,"
                " \"neg\": -9223372036854775808, \"f\":1.50e+10,"
                " \"arr\":[true,false,null,{},[]], \"s\":\"q\\\"b\\\\n\\n\\t"
                "\\u00e9\\u001f\xe2\x82\xac\\/\", \"z\":2 } }");
  ck_assert_str_eq(se.ev.properties,
                   "{\"z\":1,\"a\":12345678901234567890123456789,"
                   "\"big\":9223372036854775807,"
                   "\"neg\":-9223372036854775808,\"f\":1.50e+10,"
                   "\"arr\":[true,false,null,{},[]],"
                   "\"s\":\"q\\\"b\\\\n\\n\\t\xc3\xa9\\u001f\xe2\x82\xac/\","
                   "\"z\":2}");
  ck_assert_ptr_null(se.ev.message_id);
  ck_assert_int_eq(se.ev.ts_us, NOW_US); /* no timestamp, no receivedAt */
  ck_assert_int_eq(se.ev.recv_us, 0);
  seg_event_free(&se);
}
END_TEST

START_TEST(page_screen_identify_alias_group) {
  seg_event se;
  /* page: name, and properties win over context.page. */
  parse_ok(&se, "{\"type\":\"page\",\"name\":\"Pricing\",\"anonymousId\":7,"
                "\"properties\":{\"path\":\"/pricing\",\"url\":5},"
                "\"context\":{\"page\":{\"path\":\"/ctx\",\"url\":\"U\"}},"
                "\"receivedAt\":\"2026-11-24T10:00:00.123Z\"}");
  ck_assert_int_eq(se.ev.type, ES_TYPE_PAGE);
  ck_assert_str_eq(se.ev.event, "Pricing");
  ck_assert_str_eq(se.ev.anonymous_id, "7"); /* a number, kept as text */
  ck_assert_str_eq(se.ev.path, "/pricing");
  ck_assert_str_eq(se.ev.url, "U"); /* properties.url is not a string */
  ck_assert_ptr_null(se.ev.referrer);
  ck_assert_int_eq(se.ev.ts_us, T_2026_11_24_10_00_00_123); /* receivedAt */
  ck_assert_int_eq(se.ev.recv_us, T_2026_11_24_10_00_00_123);
  seg_event_free(&se);
  /* track: context.page wins over properties. */
  parse_ok(&se, "{\"type\":\"track\",\"event\":\"x\",\"userId\":\"u\","
                "\"properties\":{\"path\":\"/props\"},"
                "\"context\":{\"page\":{\"path\":\"/ctx\"}}}");
  ck_assert_str_eq(se.ev.path, "/ctx");
  seg_event_free(&se);
  /* screen: "event" accepted when "name" is absent (scan output). */
  parse_ok(&se, "{\"type\":\"screen\",\"event\":\"Home\",\"userId\":\"u\"}");
  ck_assert_int_eq(se.ev.type, ES_TYPE_SCREEN);
  ck_assert_str_eq(se.ev.event, "Home");
  ck_assert_ptr_null(se.ev.properties);
  seg_event_free(&se);
  /* identify: traits, not properties; no event name. */
  parse_ok(&se, "{\"type\":\"identify\",\"userId\":\"u\",\"event\":\"no\","
                "\"traits\":{\"email\":\"a@b\"},\"properties\":{\"x\":1}}");
  ck_assert_int_eq(se.ev.type, ES_TYPE_IDENTIFY);
  ck_assert_ptr_null(se.ev.event);
  ck_assert_str_eq(se.ev.properties, "{\"email\":\"a@b\"}");
  seg_event_free(&se);
  /* identify without traits falls back to properties (scan output). */
  parse_ok(&se, "{\"type\":\"identify\",\"userId\":\"u\",\"traits\":null,"
                "\"properties\":{\"x\":1}}");
  ck_assert_str_eq(se.ev.properties, "{\"x\":1}");
  seg_event_free(&se);
  parse_ok(&se, "{\"type\":\"alias\",\"userId\":\"u\",\"previousId\":\"old\","
                "\"properties\":{\"x\":1}}");
  ck_assert_int_eq(se.ev.type, ES_TYPE_ALIAS);
  ck_assert_str_eq(se.ev.previous_id, "old");
  ck_assert_ptr_null(se.ev.properties);
  seg_event_free(&se);
  parse_ok(&se, "{\"type\":\"group\",\"anonymousId\":\"a\",\"groupId\":\"g\","
                "\"traits\":{\"name\":\"Acme\"}}");
  ck_assert_int_eq(se.ev.type, ES_TYPE_GROUP);
  ck_assert_str_eq(se.ev.group_id, "g");
  ck_assert_str_eq(se.ev.properties, "{\"name\":\"Acme\"}");
  seg_event_free(&se);
}
END_TEST

START_TEST(validation_messages) {
  char deep[400];
  size_t n = 0;
  n += (size_t)sprintf(deep, "{\"type\":\"track\",\"event\":\"e\","
                             "\"userId\":\"u\",\"properties\":");
  for (int i = 0; i < SEG_DEPTH_MAX; i++)
    deep[n++] = '[';
  deep[n] = '\0';
  parse_bad_str("", "invalid JSON");
  parse_bad_str("{\"type\":\"track\"", "invalid JSON");
  parse_bad_str("{} {}", "invalid JSON");
  /* yajl alone takes a complete value followed by an unterminated string */
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\"}\"junk",
                "text after the value");
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\"} /* x",
                "text after the value");
  parse_bad_str("[1,2]", "not a JSON object");
  parse_bad_str("\"track\"", "not a JSON object");
  parse_bad_str("{\"userId\":\"u\"}", "missing \"type\"");
  parse_bad_str("{\"type\":3,\"userId\":\"u\"}", "\"type\" must be a string");
  parse_bad_str("{\"type\":\"click\",\"userId\":\"u\"}", "unknown type");
  parse_bad_str("{\"type\":\"track\",\"userId\":\"u\"}", "without \"event\"");
  parse_bad_str("{\"type\":\"track\",\"event\":\"\",\"userId\":\"u\"}",
                "without \"event\"");
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\"}",
                "neither \"userId\" nor \"anonymousId\"");
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\",\"userId\":\"\"}",
                "neither \"userId\" nor \"anonymousId\"");
  parse_bad_str("{\"type\":\"alias\",\"userId\":\"u\"}", "alias needs both");
  parse_bad_str("{\"type\":\"alias\",\"previousId\":\"p\","
                "\"anonymousId\":\"a\"}",
                "alias needs both");
  parse_bad_str("{\"type\":\"group\",\"userId\":\"u\"}", "without \"groupId\"");
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\",\"userId\":[1]}",
                "\"userId\" must be a string");
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\","
                "\"timestamp\":\"yesterday\"}",
                "bad timestamp \"yesterday\"");
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\","
                "\"timestamp\":17}",
                "\"timestamp\" must be an ISO 8601 string");
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\","
                "\"timestamp\":\"1969-12-31T23:59:59Z\"}",
                "before 1970");
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\","
                "\"receivedAt\":\"nope\"}",
                "bad receivedAt");
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\","
                "\"properties\":[1]}",
                "\"properties\" must be an object");
  parse_bad_str("{\"type\":\"identify\",\"userId\":\"u\",\"traits\":\"x\"}",
                "\"traits\" must be an object");
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\","
                "\"context\":\"x\"}",
                "\"context\" must be an object");
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\",\"userId\":\"a\\u0000b\"}",
                "\\u0000");
  parse_bad("{\"type\":\"track\",\"event\":\"e\",\"userId\":\"a\0b\"}", 42,
            "NUL byte");
  parse_bad_str(deep, "nested deeper than");
  /* Brackets hidden in a comment or a string still count, or not, right. */
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\","
                "\"p\":/* \" */[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                "[[[[[[[[[[[[[[[[[[[[[[[[}",
                "nested deeper than");
  parse_bad_str("{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\","
                "\"messageId\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                "longer than 100 characters");
  parse_bad_str("{\"type\":\"x\\u0001\\u0002\",\"userId\":\"u\"}",
                "unknown type \"x??\"");
}
END_TEST

START_TEST(message_id_counts_characters) {
  /* 100 two-byte characters: 200 bytes, but within the limit. */
  char json[400];
  size_t n = (size_t)sprintf(json, "{\"type\":\"track\",\"event\":\"e\","
                                   "\"userId\":\"u\",\"messageId\":\"");
  for (int i = 0; i < SEG_MESSAGE_ID_CHARS_MAX; i++)
    json[n++] = '\xc3', json[n++] = '\xa9';
  strcpy(json + n, "\"}");
  seg_event se;
  parse_ok(&se, json);
  ck_assert_uint_eq(strlen(se.ev.message_id), 200);
  seg_event_free(&se);
}
END_TEST

START_TEST(depth_at_limit_is_fine) {
  char json[1024];
  size_t n = (size_t)sprintf(json, "{\"type\":\"track\",\"event\":\"e\","
                                   "\"userId\":\"u\",\"properties\":");
  for (int i = 1; i < SEG_DEPTH_MAX; i++)
    json[n++] = '{', json[n++] = '"', json[n++] = 'k', json[n++] = '"',
    json[n++] = ':';
  json[n++] = '1';
  for (int i = 0; i < SEG_DEPTH_MAX; i++)
    json[n++] = '}';
  json[n] = '\0';
  seg_event se;
  parse_ok(&se, json);
  seg_event_free(&se);
}
END_TEST

/* ---------------------------------------------------------------------- */

/* The string member key of a parsed object, or NULL. */
static const char *get_str(yajl_val root, const char *key) {
  const char *path[] = {key, NULL};
  yajl_val v = yajl_tree_get(root, path, yajl_t_string);
  return v ? YAJL_GET_STRING(v) : NULL;
}

/* The escaped form of s[0..n), without its quotes, into dst. */
static size_t json_string_inner(const char *s, size_t n, char *dst) {
  seg_buf b;
  seg_buf_init(&b);
  ck_assert_int_eq(seg_buf_put_json_string(&b, s, n), 0);
  ck_assert_uint_ge(b.len, 2);
  size_t inner = b.len - 2;
  memcpy(dst, b.data + 1, inner);
  seg_buf_free(&b);
  return inner;
}

/* Every byte value, and a 2-byte UTF-8 sequence, at every position of
 * plain text long enough for several 8-byte blocks: escaped as it is
 * alone (the writer copies runs of plain text 8 bytes at a time). */
START_TEST(json_string_escapes_at_every_position) {
  static const char plain[] = "abcdefghijklmnopqrstuvw"; /* 23 bytes */
  const size_t len = sizeof plain - 1;
  for (int c = 0; c <= 256; c++) {
    char one[2], esc[16], in[32], want[64];
    size_t one_len = c < 256 ? 1 : 2;
    if (c < 256)
      one[0] = (char)c;
    else
      memcpy(one, "\xc3\xa9", 2);
    size_t esc_len = json_string_inner(one, one_len, esc);
    for (size_t p = 0; p + one_len <= len; p++) {
      memcpy(in, plain, len);
      memcpy(in + p, one, one_len);
      size_t w = 0;
      want[w++] = '"';
      memcpy(want + w, plain, p), w += p;
      memcpy(want + w, esc, esc_len), w += esc_len;
      memcpy(want + w, plain + p + one_len, len - p - one_len);
      w += len - p - one_len;
      want[w++] = '"';
      seg_buf b;
      seg_buf_init(&b);
      ck_assert_int_eq(seg_buf_put_json_string(&b, in, len), 0);
      ck_assert_msg(b.len == w && memcmp(b.data, want, w) == 0,
                    "byte 0x%02x at %zu: %s", c, p, b.data);
      seg_buf_free(&b);
    }
  }
}
END_TEST

START_TEST(write_is_valid_json) {
  es_event ev = {0};
  ev.type = ES_TYPE_TRACK;
  ev.ts_us = T_2026_11_24_10_00_00_123 + 456;
  ev.recv_us = T_2026_11_24_10_00_00_123;
  ev.event = "say \"hi\"\\\n\t\x01\x1f\x7f";
  ev.message_id = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
  ev.user_id = "bad \xff\xc3 \xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80 end";
  ev.properties = "{\"a\":[1,2.5e3,\"x\"]}";
  seg_buf out;
  seg_buf_init(&out);
  ck_assert_int_eq(seg_event_write(&out, &ev), 0);
  char err[256];
  yajl_val root = yajl_tree_parse(out.data, err, sizeof err);
  ck_assert_msg(root != NULL, "invalid JSON %s: %s", out.data, err);
  ck_assert_str_eq(get_str(root, "event"), ev.event);
  ck_assert_str_eq(get_str(root, "messageId"), ev.message_id);
  ck_assert_str_eq(get_str(root, "userId"),
                   "bad \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd"
                   "\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd"
                   "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
  ck_assert_str_eq(get_str(root, "timestamp"), "2026-11-24T10:00:00.123456Z");
  ck_assert_str_eq(get_str(root, "receivedAt"), "2026-11-24T10:00:00.123000Z");
  ck_assert_str_eq(get_str(root, "type"), "track");
  ck_assert(strstr(out.data, "\"properties\":{\"a\":[1,2.5e3,\"x\"]}"));
  ck_assert(strstr(out.data, "\"anonymousId\":null"));
  ck_assert(strstr(out.data, "context") == NULL);
  ck_assert(strstr(out.data, "\\u0001\\u001f"));
  yajl_tree_free(root);

  /* Invalid stored properties become a string, never broken output. */
  out.len = 0;
  ev.properties = "{\"a\":";
  ck_assert_int_eq(seg_event_write(&out, &ev), 0);
  root = yajl_tree_parse(out.data, err, sizeof err);
  ck_assert_msg(root != NULL, "invalid JSON %s: %s", out.data, err);
  ck_assert_str_eq(get_str(root, "properties"), "{\"a\":");
  yajl_tree_free(root);
  seg_buf_free(&out);
}
END_TEST

/* Compares two events field by field. */
static void assert_events_equal(const es_event *a, const es_event *b) {
  ck_assert_int_eq(a->type, b->type);
  ck_assert_int_eq(a->ts_us, b->ts_us);
  ck_assert_int_eq(a->recv_us, b->recv_us);
  assert_str_eq_or_null(a->event, b->event);
  assert_str_eq_or_null(a->message_id, b->message_id);
  assert_str_eq_or_null(a->anonymous_id, b->anonymous_id);
  assert_str_eq_or_null(a->user_id, b->user_id);
  assert_str_eq_or_null(a->previous_id, b->previous_id);
  assert_str_eq_or_null(a->group_id, b->group_id);
  assert_str_eq_or_null(a->path, b->path);
  assert_str_eq_or_null(a->url, b->url);
  assert_str_eq_or_null(a->referrer, b->referrer);
  assert_str_eq_or_null(a->properties, b->properties);
  assert_str_eq_or_null(a->user_agent, b->user_agent);
  assert_str_eq_or_null(a->ip, b->ip);
}

START_TEST(write_then_parse_round_trip) {
  static const char *const inputs[] = {
      "{\"type\":\"track\",\"event\":\"Order \\\"Done\\\"\",\"messageId\":\"m"
      "\",\"userId\":\"u\",\"anonymousId\":\"a\",\"timestamp\":\"2026-11-24"
      "T10:00:00.000001Z\",\"receivedAt\":\"2026-11-24T10:00:00.5Z\","
      "\"properties\":{\"total\":12345678901234567890,\"items\":[{\"sku\":"
      "\"\xe2\x82\xac\\n\"}]},\"context\":{\"page\":{\"path\":\"/c\","
      "\"referrer\":\"r\"},\"userAgent\":\"UA\\t1\",\"ip\":\"::1\"}}",
      "{\"type\":\"page\",\"name\":\"P\",\"anonymousId\":\"a\","
      "\"timestamp\":\"2000-01-01T00:00:00Z\",\"properties\":{\"path\":"
      "\"/p\",\"url\":\"https://e/p\"}}",
      "{\"type\":\"identify\",\"userId\":\"u\",\"traits\":{\"k\":[]},"
      "\"timestamp\":\"2026-11-24T10:00:00Z\"}",
      "{\"type\":\"alias\",\"userId\":\"u\",\"previousId\":\"p\","
      "\"timestamp\":\"2026-11-24T10:00:00Z\"}",
      "{\"type\":\"group\",\"userId\":\"u\",\"groupId\":\"g\","
      "\"timestamp\":\"2026-11-24T10:00:00Z\",\"context\":{\"ip\":\"1.2.3.0\"}"
      "}",
  };
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
    seg_event a, b;
    seg_buf out;
    seg_buf_init(&out);
    parse_ok(&a, inputs[i]);
    ck_assert_int_eq(seg_event_write(&out, &a.ev), 0);
    parse_ok(&b, out.data);
    assert_events_equal(&a.ev, &b.ev);
    seg_event_free(&a);
    seg_event_free(&b);
    seg_buf_free(&out);
  }
}
END_TEST

static Suite *segment_json_suite(void) {
  Suite *s = suite_create("segment_json");
  TCase *iso = tcase_create("iso8601");
  tcase_add_test(iso, iso_parse_forms);
  tcase_add_test(iso, iso_parse_refuses);
  tcase_add_test(iso, iso_format_round_trip);
  suite_add_tcase(s, iso);
  TCase *parse = tcase_create("parse");
  tcase_add_test(parse, track_all_fields);
  tcase_add_test(parse, properties_kept_exactly);
  tcase_add_test(parse, page_screen_identify_alias_group);
  tcase_add_test(parse, validation_messages);
  tcase_add_test(parse, message_id_counts_characters);
  tcase_add_test(parse, depth_at_limit_is_fine);
  suite_add_tcase(s, parse);
  TCase *write = tcase_create("write");
  tcase_add_test(write, write_is_valid_json);
  tcase_add_test(write, json_string_escapes_at_every_position);
  tcase_add_test(write, write_then_parse_round_trip);
  suite_add_tcase(s, write);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(segment_json_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
