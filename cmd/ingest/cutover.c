/*
 * cutover.c -- the nginx map of the tenants cut over to es-ingestd
 * (cutover.h).  The map is keyed by the whole Authorization header value,
 * so no key is ever written in clear; the base64 is HTTP Basic's (RFC
 * 7617), which is what the SDKs send.
 */
#include <string.h>

#include "cutover.h"

/* Appends base64 (RFC 4648, with padding) of p[0..n). */
static int put_base64(seg_buf *out, const unsigned char *p, size_t n) {
  static const char abc[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16;
    if (i + 1 < n)
      v |= (unsigned)p[i + 1] << 8;
    if (i + 2 < n)
      v |= p[i + 2];
    char q[4] = {abc[v >> 18 & 63], abc[v >> 12 & 63],
                 i + 1 < n ? abc[v >> 6 & 63] : '=',
                 i + 2 < n ? abc[v & 63] : '='};
    if (seg_buf_put(out, q, 4))
      return -1;
  }
  return 0;
}

/* One map line for the Basic credentials of text[0..n). */
static int map_line(seg_buf *out, const char *text, size_t n) {
  return seg_buf_put(out, "\"Basic ", 7) ||
                 put_base64(out, (const unsigned char *)text, n) ||
                 seg_buf_put(out, "\" primary;\n", 11)
             ? -1
             : 0;
}

/* One map line for the key itself, as the body's "writeKey" gives it
 * (segment-cutover-maps.conf): quoted for nginx, '"' and '\\' escaped.  A
 * key JSON would escape never matches that map's capture: its requests
 * take the shadow route, which loses nothing. */
static int map_line_raw(seg_buf *out, const char *k) {
  /* nginx reads a leading '~' as a regex and these words as parameters:
   * a leading '\\' makes them literal */
  int special = k[0] == '~' || strcmp(k, "default") == 0 ||
                strcmp(k, "hostnames") == 0 || strcmp(k, "include") == 0 ||
                strcmp(k, "volatile") == 0;
  if (seg_buf_put(out, "\"", 1) || (special && seg_buf_put(out, "\\", 1)))
    return -1;
  for (; *k; k++)
    if (((*k == '"' || *k == '\\') && seg_buf_put(out, "\\", 1)) ||
        seg_buf_put(out, k, 1))
      return -1;
  return seg_buf_put(out, "\" primary;\n", 11);
}

int cutover_nginx_map(const server *srv, seg_buf *out) {
  static const char head[] =
      "# es-ingestd GET /v1/admin/cutover/nginx-map: the write keys of the\n"
      "# tenants marked {\"primary\": true} in --keys (docs/MIGRATION.md)\n";
  if (seg_buf_put(out, head, sizeof head - 1))
    return -1;
  seg_buf cred;
  seg_buf_init(&cred);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < srv->keys_count; i++) {
    if (!srv->keys[i].primary)
      continue;
    const char *k = srv->keys[i].key;
    cred.len = 0;
    rc = seg_buf_put(&cred, k, strlen(k)) || seg_buf_put(&cred, ":", 1) ||
                 map_line_raw(out, k) || map_line(out, cred.data, cred.len) ||
                 map_line(out, cred.data, cred.len - 1)
             ? -1
             : 0;
  }
  seg_buf_free(&cred);
  return rc;
}
