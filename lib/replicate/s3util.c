/*
 * s3util.c -- the parts of the S3 client that are plain functions: AWS's
 * URI encoding, canonical query strings, and the retry policy.
 *
 * Why they exist: libcurl 7.88's SigV4 signs the request path and query
 * exactly as given in the URL (no encoding, no sorting), while S3 checks
 * the signature against the canonical forms.  Handing curl a URL that is
 * already canonical -- keys UriEncoded with '/' kept, query pairs encoded
 * and sorted, "uploads=" rather than "uploads" -- makes "as given" and
 * "canonical" the same string, so curl's signature is the one S3 computes.
 *
 * Invariants:
 *  1. es__s3_uri_encode keeps exactly A-Za-z0-9 - . _ ~ (and '/' when
 *     asked); every other byte, UTF-8 included, becomes %XX, upper case.
 *  2. es__s3_query sorts by encoded name, then value (byte order), as
 *     SigV4 requires, and always writes "name=value".
 *  3. Only throttling, timeouts, server errors and the conditional-write
 *     race are retried (es__s3_retryable); another 4xx means the request
 *     itself is wrong and is reported at once.
 */
#include <stdlib.h>
#include <string.h>

#include "replicate/s3.h"

static int s3util_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

/* UriEncode, appended at strlen(out). */
int es__s3_uri_encode(char *out, size_t cap, const char *s, size_t n,
                      int keep_slash) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = strlen(out);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (s3util_unreserved(c) || (keep_slash && c == '/')) {
      if (o + 1 >= cap)
        return ES_INVAL_BKPT("s3: encoded name longer than %zu bytes", cap);
      out[o++] = (char)c;
    } else {
      if (o + 3 >= cap)
        return ES_INVAL_BKPT("s3: encoded name longer than %zu bytes", cap);
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o] = '\0';
  return ES_OK;
}

#define S3UTIL_QUERY_PAIRS 8
#define S3UTIL_PART_MAX 2048

/* A canonical query string from pairs: encode each, sort, join. */
int es__s3_query(char *out, size_t cap, const char *const *names,
                 const char *const *values, size_t count) {
  if (count > S3UTIL_QUERY_PAIRS || cap == 0)
    return ES_INVAL_BKPT("s3: %zu query parameters", count);
  static _Thread_local char enc[S3UTIL_QUERY_PAIRS][S3UTIL_PART_MAX];
  size_t order[S3UTIL_QUERY_PAIRS];
  for (size_t i = 0; i < count; i++) {
    const char *v = values && values[i] ? values[i] : "";
    enc[i][0] = '\0';
    ES_TRY(es__s3_uri_encode(enc[i], sizeof(enc[i]), names[i], strlen(names[i]),
                             0));
    size_t at = strlen(enc[i]);
    if (at + 2 >= sizeof(enc[i]))
      return ES_INVAL_BKPT("s3: query parameter too long");
    enc[i][at] = '=';
    enc[i][at + 1] = '\0';
    ES_TRY(es__s3_uri_encode(enc[i], sizeof(enc[i]), v, strlen(v), 0));
    order[i] = i;
  }
  /* Sorting "name=value" strings sorts by name then value, except that
   * '=' (0x3D) would order "a=" against "a-b=" by '=' vs '-': names are
   * compared first, on their own. */
  for (size_t i = 1; i < count; i++) {
    for (size_t j = i; j > 0; j--) {
      const char *a = enc[order[j - 1]], *b = enc[order[j]];
      size_t la = strcspn(a, "="), lb = strcspn(b, "=");
      int c = memcmp(a, b, la < lb ? la : lb);
      if (c == 0)
        c = la == lb ? strcmp(a + la, b + lb) : (la < lb ? -1 : 1);
      if (c <= 0)
        break;
      size_t t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  }
  out[0] = '\0';
  size_t o = 0;
  for (size_t i = 0; i < count; i++) {
    size_t l = strlen(enc[order[i]]);
    if (o + l + 2 > cap)
      return ES_INVAL_BKPT("s3: query string longer than %zu bytes", cap);
    if (i > 0)
      out[o++] = '&';
    memcpy(out + o, enc[order[i]], l + 1);
    o += l;
  }
  return ES_OK;
}

/* The retry policy of the client (invariant 3). */
int es__s3_retryable(long http_status, const char *s3_code) {
  if (http_status >= 500 || http_status == 408 || http_status == 429 ||
      http_status == 409)
    return 1;
  if (s3_code != NULL && (strcmp(s3_code, "RequestTimeout") == 0 ||
                          strcmp(s3_code, "SlowDown") == 0 ||
                          strcmp(s3_code, "InternalError") == 0))
    return 1;
  return 0;
}

/* Full jitter backoff: spreads the retries of many clients that failed
 * together over the whole window instead of synchronising them. */
unsigned es__s3_backoff_ms(unsigned attempt, unsigned base_ms, unsigned max_ms,
                           uint64_t rand64) {
  if (attempt < 2)
    return 0;
  uint64_t cap = base_ms;
  for (unsigned i = 2; i < attempt && cap < max_ms; i++)
    cap *= 2;
  if (cap > max_ms)
    cap = max_ms;
  return (unsigned)(rand64 % (cap + 1));
}
