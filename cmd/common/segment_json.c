/*
 * segment_json.c -- Segment tracking-API JSON <-> es_event (see the header
 * for the contract; this essay is about how).
 *
 * Parsing uses yajl's tree API.  Two of its properties shape the code:
 *
 *  1. The tree keeps strings NUL-terminated without their length, so a
 *     "\u0000" escape would silently truncate a value.  Such input (and any
 *     raw NUL byte) is refused up front by prescan(), before yajl sees it.
 *  2. yajl_tree_free() and our own re-serialiser recurse once per nesting
 *     level, so prescan() also bounds the depth (SEG_DEPTH_MAX).  prescan()
 *     understands strings and the comments yajl_tree accepts, so no input
 *     can hide brackets from it.
 *
 * Numbers are re-emitted from the text yajl kept (u.number.r), never from
 * a double or long long, so properties keep their exact digits.
 *
 * A parsed event owns one block of storage: the fields are first gathered
 * as (pointer, length) pieces borrowed from the tree, then copied together
 * into one allocation, so freeing is a single free().
 *
 * Invariants:
 *
 *  1. A seg_event is either empty (storage NULL, every string NULL) or
 *     every non-NULL string of ev points into its storage.
 *  2. Every byte sequence seg_event_write emits is valid JSON in valid
 *     UTF-8, whatever the es_event holds.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl_parse.h>
#include <yajl_tree.h>

#include "segment_json.h"

/* ----------------------------------------------------------------------
 * seg_buf
 * ---------------------------------------------------------------------- */

/* An empty buffer; see the header. */
void seg_buf_init(seg_buf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

/* Releases the buffer's storage; see the header. */
void seg_buf_free(seg_buf *b) {
  free(b->data);
  seg_buf_init(b);
}

/* Room for n more bytes and a NUL.  -1 on allocation failure. */
static int buf_reserve(seg_buf *b, size_t n) {
  if (n >= SIZE_MAX / 2 - b->len)
    return -1;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *data = realloc(b->data, cap);
    if (data == NULL)
      return -1;
    b->data = data;
    b->cap = cap;
  }
  return 0;
}

/* Appends n bytes, keeping a NUL after the data; see the header. */
int seg_buf_put(seg_buf *b, const void *p, size_t n) {
  if (buf_reserve(b, n))
    return -1;
  if (n > 0)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static int buf_puts(seg_buf *b, const char *s) {
  return seg_buf_put(b, s, strlen(s));
}

/* ----------------------------------------------------------------------
 * UTF-8 and JSON strings
 * ---------------------------------------------------------------------- */

/*
 * The length of the valid UTF-8 sequence at s[0..n), or 0 when s does not
 * start one (overlong forms, surrogates and values above U+10FFFF are not
 * valid).  n must be at least 1.
 */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0)
      lo = 0xA0;
    else if (c == 0xED)
      hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0)
      lo = 0x90;
    else if (c == 0xF4)
      hi = 0x8F;
  } else {
    return 0;
  }
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xBF)
      return 0;
  return len;
}

/* The characters of s[0..n) as seg_buf_put_json_string writes them: a
 * valid sequence is one, and so is each byte of an invalid one (each
 * becomes a U+FFFD).  Counting the bytes that start a sequence instead
 * would count a lone surrogate's escape, which yajl decodes to three
 * bytes that are not valid UTF-8, as one character where the writer
 * emits three, and a messageId at the limit would not parse again. */
static size_t json_chars(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t chars = 0;
  for (size_t i = 0; i < n; chars++) {
    size_t step = u[i] < 0x80 ? 1 : utf8_seq_len(u + i, n - i);
    i += step ? step : 1;
  }
  return chars;
}

/* The bytes of 8 at p that are a quote or a backslash, as the high bit of
 * each (SWAR: a byte of w ^ pattern is zero where it matches; below the
 * lowest match the test is exact, above it a borrow may add false ones,
 * so only the lowest bit counts). */
static uint64_t quote_or_backslash(const char *p) {
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  uint64_t w, q, b;
  memcpy(&w, p, sizeof w);
  q = w ^ (ones * '"');
  b = w ^ (ones * '\\');
  return (((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
}

/* Whether none of the 8 bytes at p needs more than a copy in a JSON
 * string: all in 0x20..0x7f (SWAR: a byte below 0x20 borrows in
 * w - 0x20 per byte; a byte from 0x80 has its high bit) and none a quote
 * or a backslash. */
static int plain8(const char *p) {
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  uint64_t w;
  memcpy(&w, p, sizeof w);
  return ((w | ((w - ones * 0x20) & ~w)) & highs) == 0 &&
         quote_or_backslash(p) == 0;
}

/* Quotes and escapes s[0..n) as a JSON string; see the header.  Room
 * for the worst case (6 bytes per input byte) is made first, so that the
 * loop writes straight into the buffer. */
int seg_buf_put_json_string(seg_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s;
  if (n > SIZE_MAX / 8 || buf_reserve(b, 6 * n + 2))
    return -1;
  char *o = b->data + b->len;
  *o++ = '"';
  for (size_t i = 0; i < n;) {
    unsigned char c = u[i];
    size_t step;
    if (i + 8 <= n && plain8(s + i)) { /* 8 bytes copied as they are */
      memcpy(o, s + i, 8);
      o += 8;
      i += 8;
    } else if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      *o++ = (char)c;
      i++;
    } else if (c == '"' || c == '\\') {
      *o++ = '\\', *o++ = (char)c;
      i++;
    } else if (c < 0x20) {
      static const char short_esc[] = "btn\0fr"; /* for 0x08..0x0d */
      *o++ = '\\';
      if (c >= 0x08 && c <= 0x0d && short_esc[c - 0x08] != '\0') {
        *o++ = short_esc[c - 0x08];
      } else {
        memcpy(o, "u00", 3);
        o[3] = hex[c >> 4], o[4] = hex[c & 15];
        o += 5;
      }
      i++;
    } else if ((step = utf8_seq_len(u + i, n - i)) > 0) {
      memcpy(o, s + i, step);
      o += step;
      i += step;
    } else {
      memcpy(o, "\xEF\xBF\xBD", 3); /* U+FFFD for one invalid byte */
      o += 3;
      i++;
    }
  }
  *o++ = '"';
  b->len = (size_t)(o - b->data);
  b->data[b->len] = '\0';
  return 0;
}

/* ----------------------------------------------------------------------
 * ISO 8601
 * ---------------------------------------------------------------------- */

/* Parses an ISO 8601 time with the library's parser (eventstore.h,
 * es_time_parse); see the header for the accepted forms. */
int seg_iso8601_parse(const char *s, int64_t *us_out) {
  *us_out = 0;
  int64_t us;
  if (es_time_parse(s, 0, &us) != ES_OK)
    return -1;
  *us_out = us;
  return 0;
}

/* Formats microseconds as ISO 8601 UTC, always with six fraction digits
 * (the library's es_time_format); see the header. */
size_t seg_iso8601_format(int64_t us, char *buf, size_t size) {
  return es_time_format(us, ES_TIME_MICROS, buf, size);
}

/* ----------------------------------------------------------------------
 * Parsing
 * ---------------------------------------------------------------------- */

/* The string fields of es_event, in the order of the table below. */
enum {
  F_EVENT,
  F_MESSAGE_ID,
  F_ANONYMOUS_ID,
  F_USER_ID,
  F_PREVIOUS_ID,
  F_GROUP_ID,
  F_PATH,
  F_URL,
  F_REFERRER,
  F_PROPERTIES,
  F_USER_AGENT,
  F_IP,
  F_COUNT
};

static const size_t field_offsets[F_COUNT] = {
    offsetof(es_event, event),        offsetof(es_event, message_id),
    offsetof(es_event, anonymous_id), offsetof(es_event, user_id),
    offsetof(es_event, previous_id),  offsetof(es_event, group_id),
    offsetof(es_event, path),         offsetof(es_event, url),
    offsetof(es_event, referrer),     offsetof(es_event, properties),
    offsetof(es_event, user_agent),   offsetof(es_event, ip),
};

/* A field's value borrowed from the tree (p NULL: absent). */
typedef struct piece {
  const char *p;
  size_t n;
} piece;

/* Everything seg_event_parse works with, for one call. */
typedef struct parse_ctx {
  yajl_val root;
  int type;
  piece f[F_COUNT];
  seg_buf props; /* the re-serialised properties/traits */
  char *err;
  size_t err_size;
} parse_ctx;

/* Writes a formatted message into the caller's buffer; returns -1. */
static int fail(parse_ctx *c, const char *fmt, ...) {
  if (c->err != NULL && c->err_size > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->err_size, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* A short, printable, one-line excerpt of untrusted text for messages. */
static const char *excerpt(const char *s, char *dst, size_t size) {
  size_t i = 0, max = size - 4; /* room for "..." and NUL */
  for (; s[i] != '\0' && i < max; i++) {
    unsigned char c = (unsigned char)s[i];
    dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
  }
  strcpy(dst + i, s[i] != '\0' ? "..." : "");
  return dst;
}

/*
 * Refuses what yajl_tree would mishandle (see the file comment): NUL bytes,
 * "\u0000" escapes and nesting deeper than SEG_DEPTH_MAX.  Strings and
 * comments are skipped so that the bracket count is the real one.
 */
/* Whether s[0..n) holds more than blanks and comments: yajl accepts a
 * complete value followed by an unterminated string ({"a":1}"junk passes
 * yajl_tree_parse), so the text after the top-level value is looked at
 * here. */
static int trailing_text(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')
      continue;
    if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
      for (i += 2; i + 1 < n && !(s[i] == '*' && s[i + 1] == '/'); i++)
        ;
      if (i + 1 >= n)
        return 1; /* an unclosed comment */
      i++;
    } else if (s[i] == '/' && i + 1 < n && s[i + 1] == '/') {
      while (i + 1 < n && s[i + 1] != '\n')
        i++;
    } else {
      return 1;
    }
  }
  return 0;
}

/* The index of the quote closing the string whose text starts at s[i]
 * (at or past n when there is none), looking at each escape on the way;
 * -1 on a "\u0000" escape.  Plain text goes 8 bytes at a time (a memchr
 * per string and per escape cost more than the scan on short strings). */
static long long string_end(const char *s, size_t i, size_t n) {
  for (;;) {
    uint64_t m = 0;
    while (i + 8 <= n && (m = quote_or_backslash(s + i)) == 0)
      i += 8;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (m != 0)
      i += (size_t)__builtin_ctzll(m) >> 3;
#endif
    while (i < n && s[i] != '"' && s[i] != '\\')
      i++;
    if (i >= n || s[i] == '"')
      return (long long)i;
    if (n - i >= 6 && memcmp(s + i + 1, "u0000", 5) == 0)
      return -1;
    i += 2; /* the escaped character, which may be the quote */
  }
}

/* The bytes prescan stops at outside strings (the rest it steps over). */
static const unsigned char prescan_stop[256] = {
    ['"'] = 1, ['/'] = 1, ['['] = 1, ['{'] = 1, [']'] = 1, ['}'] = 1};

static int prescan(parse_ctx *c, const char *s, size_t n) {
  int depth = 0;
  if (memchr(s, '\0', n) != NULL)
    return fail(c, "the line contains a NUL byte");
  for (size_t i = 0; i < n; i++) {
    while (i < n && !prescan_stop[(unsigned char)s[i]])
      i++;
    if (i >= n)
      break;
    if (s[i] == '"') {
      long long end = string_end(s, i + 1, n); /* i lands on the quote */
      if (end < 0)
        return fail(c, "strings containing \\u0000 are not supported");
      i = (size_t)end;
    } else if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
      for (i += 2; i + 1 < n && !(s[i] == '*' && s[i + 1] == '/'); i++)
        ;
      i++; /* now on the closing slash (or past the end) */
    } else if (s[i] == '/' && i + 1 < n && s[i + 1] == '/') {
      while (i + 1 < n && s[i + 1] != '\n')
        i++;
    } else if (s[i] == '[' || s[i] == '{') {
      if (++depth > SEG_DEPTH_MAX)
        return fail(c, "nested deeper than %d levels", SEG_DEPTH_MAX);
    } else if (s[i] == ']' || s[i] == '}') {
      if (--depth == 0 && trailing_text(s + i + 1, n - i - 1))
        return fail(c, "invalid JSON (text after the value)");
    }
  }
  return 0;
}

/* The first member named key of an object (NULL if absent or no object). */
static yajl_val member(yajl_val obj, const char *key) {
  if (!YAJL_IS_OBJECT(obj))
    return NULL;
  for (size_t i = 0; i < obj->u.object.len; i++)
    if (strcmp(obj->u.object.keys[i], key) == 0)
      return obj->u.object.values[i];
  return NULL;
}

/*
 * Takes an id-like field: absent or null leaves it absent, a string or a
 * number (as its text) sets it, anything else is an error.
 */
static int take_id(parse_ctx *c, int field, const char *key) {
  yajl_val v = member(c->root, key);
  const char *s = NULL;
  if (v == NULL || YAJL_IS_NULL(v))
    return 0;
  if (YAJL_IS_STRING(v))
    s = YAJL_GET_STRING(v);
  else if (YAJL_IS_NUMBER(v))
    s = YAJL_GET_NUMBER(v);
  else
    return fail(c, "\"%s\" must be a string", key);
  c->f[field].p = s;
  c->f[field].n = strlen(s);
  return 0;
}

/* Sets a field from v when v is a string; anything else is ignored. */
static void take_if_string(parse_ctx *c, int field, yajl_val v) {
  if (c->f[field].p == NULL && YAJL_IS_STRING(v)) {
    c->f[field].p = YAJL_GET_STRING(v);
    c->f[field].n = strlen(c->f[field].p);
  }
}

/* Re-serialises a tree value compactly (depth is bounded by prescan). */
static int write_value(seg_buf *b, yajl_val v) {
  switch (v->type) {
  case yajl_t_string:
    return seg_buf_put_json_string(b, v->u.string, strlen(v->u.string));
  case yajl_t_number:
    return buf_puts(b, v->u.number.r);
  case yajl_t_true:
    return buf_puts(b, "true");
  case yajl_t_false:
    return buf_puts(b, "false");
  case yajl_t_null:
    return buf_puts(b, "null");
  case yajl_t_object:
    if (seg_buf_put(b, "{", 1))
      return -1;
    for (size_t i = 0; i < v->u.object.len; i++) {
      const char *k = v->u.object.keys[i];
      if ((i > 0 && seg_buf_put(b, ",", 1)) ||
          seg_buf_put_json_string(b, k, strlen(k)) || seg_buf_put(b, ":", 1) ||
          write_value(b, v->u.object.values[i]))
        return -1;
    }
    return seg_buf_put(b, "}", 1);
  case yajl_t_array:
    if (seg_buf_put(b, "[", 1))
      return -1;
    for (size_t i = 0; i < v->u.array.len; i++)
      if ((i > 0 && seg_buf_put(b, ",", 1)) ||
          write_value(b, v->u.array.values[i]))
        return -1;
    return seg_buf_put(b, "]", 1);
  default:
    return -1;
  }
}

/* A time field: 1 and *us_out when set, 0 when absent, -1 on error. */
static int take_time(parse_ctx *c, const char *key, int64_t *us_out) {
  yajl_val v = member(c->root, key);
  char ex[48];
  if (v == NULL || YAJL_IS_NULL(v))
    return 0;
  if (!YAJL_IS_STRING(v))
    return fail(c, "\"%s\" must be an ISO 8601 string", key);
  if (seg_iso8601_parse(YAJL_GET_STRING(v), us_out))
    return fail(c,
                "bad %s \"%s\" (want ISO 8601, e.g. "
                "2026-11-24T10:00:00.123Z)",
                key, excerpt(YAJL_GET_STRING(v), ex, sizeof ex));
  if (*us_out < 0)
    return fail(c, "%s before 1970 is not supported", key);
  return 1;
}

/* type, event/name and the ids, with the per-type requirements. */
static int parse_identity(parse_ctx *c, int type_default) {
  yajl_val v = member(c->root, "type");
  char ex[48];
  if ((v == NULL || YAJL_IS_NULL(v)) && type_default != 0) {
    c->type = type_default;
  } else {
    if (v == NULL || YAJL_IS_NULL(v))
      return fail(c, "missing \"type\"");
    if (!YAJL_IS_STRING(v))
      return fail(c, "\"type\" must be a string");
    c->type = es_type_from_name(YAJL_GET_STRING(v));
    if (c->type == 0)
      return fail(c, "unknown type \"%s\"",
                  excerpt(YAJL_GET_STRING(v), ex, sizeof ex));
  }
  if (c->type == ES_TYPE_TRACK) {
    v = member(c->root, "event");
    if (!YAJL_IS_STRING(v) || YAJL_GET_STRING(v)[0] == '\0')
      return fail(c, "track event without \"event\" (a non-empty string)");
    take_if_string(c, F_EVENT, v);
  } else if (c->type == ES_TYPE_PAGE || c->type == ES_TYPE_SCREEN) {
    take_if_string(c, F_EVENT, member(c->root, "name"));
    take_if_string(c, F_EVENT, member(c->root, "event"));
  }
  if (take_id(c, F_MESSAGE_ID, "messageId") ||
      take_id(c, F_ANONYMOUS_ID, "anonymousId") ||
      take_id(c, F_USER_ID, "userId"))
    return -1;
  if (c->type == ES_TYPE_ALIAS && take_id(c, F_PREVIOUS_ID, "previousId"))
    return -1;
  if (c->type == ES_TYPE_GROUP && take_id(c, F_GROUP_ID, "groupId"))
    return -1;
  return 0;
}

/* The checks that need every id in place. */
static int validate_ids(parse_ctx *c) {
  const piece *f = c->f;
  if (c->type == ES_TYPE_ALIAS) {
    if (f[F_USER_ID].n == 0 || f[F_PREVIOUS_ID].n == 0)
      return fail(c, "alias needs both \"userId\" and \"previousId\"");
  } else if (f[F_USER_ID].n == 0 && f[F_ANONYMOUS_ID].n == 0) {
    return fail(c, "neither \"userId\" nor \"anonymousId\" is set");
  }
  if (c->type == ES_TYPE_GROUP && f[F_GROUP_ID].n == 0)
    return fail(c, "group event without \"groupId\"");
  if (json_chars(f[F_MESSAGE_ID].p, f[F_MESSAGE_ID].n) >
      SEG_MESSAGE_ID_CHARS_MAX)
    return fail(c, "\"messageId\" is longer than %d characters",
                SEG_MESSAGE_ID_CHARS_MAX);
  return 0;
}

/* properties/traits, the page fields, and the context fields. */
static int parse_payload(parse_ctx *c) {
  const char *key = NULL;
  yajl_val props = NULL;
  if (c->type == ES_TYPE_IDENTIFY || c->type == ES_TYPE_GROUP) {
    key = "traits";
    props = member(c->root, key);
    if (props == NULL || YAJL_IS_NULL(props))
      props = member(c->root, key = "properties");
  } else if (c->type != ES_TYPE_ALIAS) {
    props = member(c->root, key = "properties");
  }
  if (YAJL_IS_NULL(props))
    props = NULL;
  if (props != NULL) {
    if (!YAJL_IS_OBJECT(props))
      return fail(c, "\"%s\" must be an object", key);
    if (write_value(&c->props, props))
      return fail(c, "out of memory");
    c->f[F_PROPERTIES].p = c->props.data;
    c->f[F_PROPERTIES].n = c->props.len;
  }
  yajl_val ctx = member(c->root, "context");
  if (ctx != NULL && !YAJL_IS_NULL(ctx) && !YAJL_IS_OBJECT(ctx))
    return fail(c, "\"context\" must be an object");
  yajl_val page = member(ctx, "page");
  /* Page events carry their page in properties; others in context.page. */
  yajl_val first = c->type == ES_TYPE_PAGE ? props : page;
  yajl_val second = c->type == ES_TYPE_PAGE ? page : props;
  static const char *const keys[3] = {"path", "url", "referrer"};
  for (int i = 0; i < 3; i++) {
    take_if_string(c, F_PATH + i, member(first, keys[i]));
    take_if_string(c, F_PATH + i, member(second, keys[i]));
  }
  take_if_string(c, F_USER_AGENT, member(ctx, "userAgent"));
  take_if_string(c, F_IP, member(ctx, "ip"));
  return 0;
}

/* Copies the pieces into one owned block and points se->ev at it. */
static int build_storage(parse_ctx *c, seg_event *se) {
  size_t total = 0;
  for (int i = 0; i < F_COUNT; i++)
    if (c->f[i].p != NULL)
      total += c->f[i].n + 1;
  if (total == 0)
    return 0;
  se->storage = malloc(total);
  if (se->storage == NULL)
    return fail(c, "out of memory");
  char *at = se->storage;
  for (int i = 0; i < F_COUNT; i++) {
    if (c->f[i].p == NULL)
      continue;
    memcpy(at, c->f[i].p, c->f[i].n);
    at[c->f[i].n] = '\0';
    *(const char **)((char *)&se->ev + field_offsets[i]) = at;
    at += c->f[i].n + 1;
  }
  return 0;
}

/* Makes an empty seg_event; see the header. */
void seg_event_init(seg_event *se) {
  memset(&se->ev, 0, sizeof se->ev);
  se->storage = NULL;
}

/* Releases a seg_event's storage; see the header. */
void seg_event_free(seg_event *se) {
  free(se->storage);
  seg_event_init(se);
}

/* Checks raw JSON text against what yajl_tree mishandles; see header. */
int seg_json_precheck(const char *json, size_t len, char *err,
                      size_t err_size) {
  parse_ctx c;
  memset(&c, 0, sizeof c);
  c.err = err;
  c.err_size = err_size;
  if (err != NULL && err_size > 0)
    err[0] = '\0';
  return prescan(&c, json, len);
}

/* Maps an already parsed object; see the header. */
int seg_event_from_tree(seg_event *se, const struct yajl_val_s *obj,
                        int type_default, int64_t now_us, char *err,
                        size_t err_size) {
  parse_ctx c;
  int rc = -1;
  int64_t ts_us = 0, recv_us = 0;
  memset(&c, 0, sizeof c);
  seg_buf_init(&c.props);
  c.root = (yajl_val)obj;
  c.err = err;
  c.err_size = err_size;
  if (err != NULL && err_size > 0)
    err[0] = '\0';
  seg_event_init(se);
  if (!YAJL_IS_OBJECT(c.root)) {
    fail(&c, "not a JSON object");
    goto out;
  }
  int has_ts = 0, has_recv = 0;
  if (parse_identity(&c, type_default) || validate_ids(&c) ||
      parse_payload(&c) || (has_ts = take_time(&c, "timestamp", &ts_us)) < 0 ||
      (has_recv = take_time(&c, "receivedAt", &recv_us)) < 0)
    goto out;
  if (build_storage(&c, se))
    goto out;
  se->ev.type = c.type;
  se->ev.ts_us = has_ts ? ts_us : has_recv ? recv_us : now_us;
  se->ev.recv_us = has_recv ? recv_us : 0;
  rc = 0;
out:
  seg_buf_free(&c.props);
  return rc;
}

/* ----------------------------------------------------------------------
 * The streaming twin of seg_event_from_tree: the same steps, in the same
 * order, over a record of first occurrences instead of a tree.
 * ---------------------------------------------------------------------- */

static int is_absent(const seg_value *v) {
  return v == NULL || v->kind == SEG_V_ABSENT || v->kind == SEG_V_NULL;
}

static void mb_take_if_string(parse_ctx *c, int field, const seg_value *v) {
  if (c->f[field].p == NULL && v != NULL && v->kind == SEG_V_STRING) {
    c->f[field].p = v->s;
    c->f[field].n = v->n;
  }
}

static int mb_take_id(parse_ctx *c, int field, const seg_value *v,
                      const char *key) {
  if (is_absent(v))
    return 0;
  if (v->kind != SEG_V_STRING && v->kind != SEG_V_NUMBER)
    return fail(c, "\"%s\" must be a string", key);
  c->f[field].p = v->s;
  c->f[field].n = v->n;
  return 0;
}

static int mb_take_time(parse_ctx *c, const seg_value *v, const char *key,
                        int64_t *us_out) {
  char ex[48];
  if (is_absent(v))
    return 0;
  if (v->kind != SEG_V_STRING)
    return fail(c, "\"%s\" must be an ISO 8601 string", key);
  if (seg_iso8601_parse(v->s, us_out))
    return fail(c,
                "bad %s \"%s\" (want ISO 8601, e.g. "
                "2026-11-24T10:00:00.123Z)",
                key, excerpt(v->s, ex, sizeof ex));
  if (*us_out < 0)
    return fail(c, "%s before 1970 is not supported", key);
  return 1;
}

static int mb_identity(parse_ctx *c, const seg_members *mb, int type_default) {
  const seg_value *v = &mb->m[SEG_M_TYPE];
  char ex[48];
  if (is_absent(v) && type_default != 0) {
    c->type = type_default;
  } else {
    if (is_absent(v))
      return fail(c, "missing \"type\"");
    if (v->kind != SEG_V_STRING)
      return fail(c, "\"type\" must be a string");
    c->type = es_type_from_name(v->s);
    if (c->type == 0)
      return fail(c, "unknown type \"%s\"", excerpt(v->s, ex, sizeof ex));
  }
  if (c->type == ES_TYPE_TRACK) {
    v = &mb->m[SEG_M_EVENT];
    if (v->kind != SEG_V_STRING || v->s[0] == '\0')
      return fail(c, "track event without \"event\" (a non-empty string)");
    mb_take_if_string(c, F_EVENT, v);
  } else if (c->type == ES_TYPE_PAGE || c->type == ES_TYPE_SCREEN) {
    mb_take_if_string(c, F_EVENT, &mb->m[SEG_M_NAME]);
    mb_take_if_string(c, F_EVENT, &mb->m[SEG_M_EVENT]);
  }
  if (mb_take_id(c, F_MESSAGE_ID, &mb->m[SEG_M_MESSAGE_ID], "messageId") ||
      mb_take_id(c, F_ANONYMOUS_ID, &mb->m[SEG_M_ANONYMOUS_ID],
                 "anonymousId") ||
      mb_take_id(c, F_USER_ID, &mb->m[SEG_M_USER_ID], "userId"))
    return -1;
  if (c->type == ES_TYPE_ALIAS &&
      mb_take_id(c, F_PREVIOUS_ID, &mb->m[SEG_M_PREVIOUS_ID], "previousId"))
    return -1;
  if (c->type == ES_TYPE_GROUP &&
      mb_take_id(c, F_GROUP_ID, &mb->m[SEG_M_GROUP_ID], "groupId"))
    return -1;
  return 0;
}

static int mb_payload(parse_ctx *c, const seg_members *mb) {
  const char *key = NULL;
  const seg_value *props = NULL;
  int sub = SEG_S_PROPS_PATH; /* where props' path/url/referrer are */
  if (c->type == ES_TYPE_IDENTIFY || c->type == ES_TYPE_GROUP) {
    key = "traits";
    props = &mb->m[SEG_M_TRAITS];
    sub = SEG_S_TRAITS_PATH;
    if (is_absent(props)) {
      props = &mb->m[SEG_M_PROPERTIES];
      key = "properties";
      sub = SEG_S_PROPS_PATH;
    }
  } else if (c->type != ES_TYPE_ALIAS) {
    props = &mb->m[SEG_M_PROPERTIES];
    key = "properties";
  }
  if (is_absent(props))
    props = NULL;
  if (props != NULL) {
    if (props->kind != SEG_V_OBJECT || props->s == NULL)
      return fail(c, "\"%s\" must be an object", key);
    c->f[F_PROPERTIES].p = props->s;
    c->f[F_PROPERTIES].n = props->n;
  }
  const seg_value *ctx = &mb->m[SEG_M_CONTEXT];
  if (!is_absent(ctx) && ctx->kind != SEG_V_OBJECT)
    return fail(c, "\"context\" must be an object");
  /* Page events carry their page in properties; others in context.page. */
  for (int i = 0; i < 3; i++) {
    const seg_value *pv = props ? &mb->sub[sub + i] : NULL;
    const seg_value *gv = &mb->sub[SEG_S_PAGE_PATH + i];
    mb_take_if_string(c, F_PATH + i, c->type == ES_TYPE_PAGE ? pv : gv);
    mb_take_if_string(c, F_PATH + i, c->type == ES_TYPE_PAGE ? gv : pv);
  }
  mb_take_if_string(c, F_USER_AGENT, &mb->sub[SEG_S_CTX_USER_AGENT]);
  mb_take_if_string(c, F_IP, &mb->sub[SEG_S_CTX_IP]);
  return 0;
}

/* Maps a record of first occurrences; see the header. */
int seg_event_from_members(es_event *ev, const seg_members *mb,
                           int type_default, int64_t now_us, char *err,
                           size_t err_size) {
  parse_ctx c;
  int64_t ts_us = 0, recv_us = 0;
  int has_ts = 0, has_recv = 0;
  memset(&c, 0, sizeof c);
  c.err = err;
  c.err_size = err_size;
  if (err != NULL && err_size > 0)
    err[0] = '\0';
  memset(ev, 0, sizeof *ev);
  if (mb->kind != SEG_V_OBJECT)
    return fail(&c, "not a JSON object");
  if (mb_identity(&c, mb, type_default) || validate_ids(&c) ||
      mb_payload(&c, mb) ||
      (has_ts = mb_take_time(&c, &mb->m[SEG_M_TIMESTAMP], "timestamp",
                             &ts_us)) < 0 ||
      (has_recv = mb_take_time(&c, &mb->m[SEG_M_RECEIVED_AT], "receivedAt",
                               &recv_us)) < 0)
    return -1;
  for (int i = 0; i < F_COUNT; i++)
    if (c.f[i].p != NULL)
      *(const char **)((char *)ev + field_offsets[i]) = c.f[i].p;
  ev->type = c.type;
  ev->ts_us = has_ts ? ts_us : has_recv ? recv_us : now_us;
  ev->recv_us = has_recv ? recv_us : 0;
  return 0;
}

/* Parses one Segment event object; see the header for the mapping. */
int seg_event_parse(seg_event *se, const char *json, size_t len, int64_t now_us,
                    char *err, size_t err_size) {
  char *copy = NULL, yerr[256];
  yajl_val root = NULL;
  int rc = -1;
  seg_event_init(se);
  if (seg_json_precheck(json, len, err, err_size))
    return -1;
  if ((copy = malloc(len + 1)) == NULL) {
    if (err != NULL && err_size > 0)
      snprintf(err, err_size, "out of memory");
    return -1;
  }
  memcpy(copy, json, len);
  copy[len] = '\0';
  root = yajl_tree_parse(copy, yerr, sizeof yerr);
  if (root == NULL) {
    yerr[strcspn(yerr, "\n")] = '\0'; /* yajl adds a multi-line excerpt */
    if (err != NULL && err_size > 0)
      snprintf(err, err_size, "invalid JSON (%s)",
               yerr[0] ? yerr : "parse error");
  } else {
    rc = seg_event_from_tree(se, root, 0, now_us, err, err_size);
  }
  yajl_tree_free(root);
  free(copy);
  return rc;
}

/* ----------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------- */

/* A string field as a JSON string, or null. */
static int put_str_or_null(seg_buf *b, const char *s) {
  return s ? seg_buf_put_json_string(b, s, strlen(s)) : buf_puts(b, "null");
}

/* A time as an ISO 8601 JSON string. */
static int put_time(seg_buf *b, int64_t us) {
  char iso[SEG_ISO8601_SIZE];
  size_t n = seg_iso8601_format(us, iso, sizeof iso);
  return seg_buf_put(b, "\"", 1) || seg_buf_put(b, iso, n) ||
         seg_buf_put(b, "\"", 1);
}

/* Whether text is exactly one valid JSON value (yajl without callbacks). */
static int is_json(const char *text) {
  yajl_handle h = yajl_alloc(NULL, NULL, NULL);
  if (h == NULL)
    return 0;
  int ok = yajl_parse(h, (const unsigned char *)text, strlen(text)) ==
               yajl_status_ok &&
           yajl_complete_parse(h) == yajl_status_ok;
  yajl_free(h);
  return ok;
}

/* ,"key":"value" when value is set; nothing otherwise. */
static int put_opt(seg_buf *b, int *first, const char *key, const char *v) {
  if (v == NULL)
    return 0;
  if ((!*first && seg_buf_put(b, ",", 1)) ||
      seg_buf_put_json_string(b, key, strlen(key)) || seg_buf_put(b, ":", 1) ||
      seg_buf_put_json_string(b, v, strlen(v)))
    return -1;
  *first = 0;
  return 0;
}

/* The "context" object, only when one of its fields is set. */
static int put_context(seg_buf *b, const es_event *ev) {
  int first = 1, page_first = 1;
  if (!ev->path && !ev->url && !ev->referrer && !ev->user_agent && !ev->ip)
    return 0;
  if (buf_puts(b, ",\"context\":{"))
    return -1;
  if (ev->path || ev->url || ev->referrer) {
    if (buf_puts(b, "\"page\":{") ||
        put_opt(b, &page_first, "path", ev->path) ||
        put_opt(b, &page_first, "url", ev->url) ||
        put_opt(b, &page_first, "referrer", ev->referrer) ||
        seg_buf_put(b, "}", 1))
      return -1;
    first = 0;
  }
  if (put_opt(b, &first, "userAgent", ev->user_agent) ||
      put_opt(b, &first, "ip", ev->ip))
    return -1;
  return seg_buf_put(b, "}", 1);
}

/* Appends one event as a JSON object; see the header for the shape. */
int seg_event_write(seg_buf *out, const es_event *ev) {
  const char *type = es_type_name(ev->type);
  char num[24];
  int first = 0; /* the optional members follow others: comma first */
  if (type == NULL)
    snprintf(num, sizeof num, "%d", ev->type);
  if (buf_puts(out, "{\"messageId\":") ||
      put_str_or_null(out, ev->message_id) || buf_puts(out, ",\"type\":") ||
      (type ? seg_buf_put_json_string(out, type, strlen(type))
            : buf_puts(out, num)) ||
      buf_puts(out, ",\"event\":") || put_str_or_null(out, ev->event) ||
      buf_puts(out, ",\"timestamp\":") || put_time(out, ev->ts_us) ||
      buf_puts(out, ",\"receivedAt\":") ||
      (ev->recv_us ? put_time(out, ev->recv_us) : buf_puts(out, "null")) ||
      buf_puts(out, ",\"userId\":") || put_str_or_null(out, ev->user_id) ||
      buf_puts(out, ",\"anonymousId\":") ||
      put_str_or_null(out, ev->anonymous_id) ||
      buf_puts(out, ",\"properties\":"))
    return -1;
  int rc;
  if (ev->properties == NULL)
    rc = buf_puts(out, "null");
  else if (is_json(ev->properties))
    rc = buf_puts(out, ev->properties);
  else /* not JSON (another writer stored it): keep it, as a string */
    rc = put_str_or_null(out, ev->properties);
  if (rc)
    return -1;
  if (put_opt(out, &first, "previousId", ev->previous_id) ||
      put_opt(out, &first, "groupId", ev->group_id) || put_context(out, ev) ||
      seg_buf_put(out, "}", 1))
    return -1;
  return 0;
}
