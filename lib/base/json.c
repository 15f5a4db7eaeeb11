/*
 * json.c -- the library's small JSON writer helpers (results of es_query,
 * rule listings): strings escaped so the output is always valid JSON.
 */
#include <stdio.h>
#include <string.h>

#include "base/json.h"

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n) {
  size_t len = p[0] < 0xC2   ? 0
               : p[0] < 0xE0 ? 2
               : p[0] < 0xF0 ? 3
               : p[0] < 0xF5 ? 4
                             : 0;
  if (len == 0 || len > n)
    return 0;
  for (size_t i = 1; i < len; i++)
    if ((p[i] & 0xC0) != 0x80)
      return 0;
  /* overlong 3/4-byte forms, UTF-16 surrogates, beyond U+10FFFF */
  if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0) ||
      (p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] >= 0x90))
    return 0;
  return len;
}

/* A JSON string: quotes, backslashes and control characters escaped;
 * bytes that are not valid UTF-8 become U+FFFD so the output stays JSON. */
int es__json_put_str(es_buf *b, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  ES_TRY(es__buf_put(b, "\"", 1));
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\', esc[1] = (char)c;
      ES_TRY(es__buf_put(b, esc, 2));
      i++;
    } else if (c < 0x20) {
      snprintf(esc, sizeof(esc), "\\u%04x", c);
      ES_TRY(es__buf_put(b, esc, 6));
      i++;
    } else if (c < 0x80) { /* a run of plain ASCII: one put */
      size_t j = i + 1;
      while (j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' &&
             p[j] != '\\')
        j++;
      ES_TRY(es__buf_put(b, &p[i], j - i));
      i = j;
    } else {
      size_t len = utf8_len(p + i, n - i);
      ES_TRY(len ? es__buf_put(b, &p[i], len) : es__buf_put(b, "\\ufffd", 6));
      i += len ? len : 1;
    }
  }
  return es__buf_put(b, "\"", 1);
}

/* Whether s is valid UTF-8 (no overlong forms, surrogates or values past
 * U+10FFFF): strings that es__json_put_str writes back unchanged. */
int es__json_utf8_valid(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    size_t len = utf8_len(p + i, n - i);
    if (len == 0)
      return 0;
    i += len;
  }
  return 1;
}
