/*
 * route.c -- the route lookup of both servers; see route.h.
 */
#include <string.h>

#include <llhttp.h>

#include "route.h"

int http_route_match(const char *pattern, const char *path, size_t len) {
  const char *end = path + len, *start = pattern;
  while (*pattern) {
    if (pattern[0] == '*' && (pattern[1] == '/' || pattern[1] == '\0') &&
        pattern > start && pattern[-1] == '/') {
      const char *seg = path;
      while (path < end && *path != '/')
        path++;
      if (path == seg)
        return 0; /* an empty segment */
      pattern++;
      continue;
    }
    if (path == end || *path != *pattern)
      return 0;
    path++, pattern++;
  }
  return path == end;
}

/* Appends ", NAME" (or "NAME" first) to allow unless it is there. */
static void allow_add(char *allow, const char *name) {
  size_t n = strlen(allow), k = strlen(name);
  for (const char *p = allow; (p = strstr(p, name)) != NULL; p += k)
    if ((p == allow || p[-1] == ' ') && (p[k] == ',' || p[k] == '\0'))
      return;
  if (n + 2 + k + 1 > HTTP_ROUTE_ALLOW_SIZE)
    return; /* no table has that many methods on one path */
  if (n > 0)
    memcpy(allow + n, ", ", 2), n += 2;
  memcpy(allow + n, name, k + 1);
}

const http_route *http_route_find(const void *routes, size_t count,
                                  size_t stride, int method, const char *path,
                                  size_t len, int *status_out, char *allow) {
  const char *row = routes;
  *status_out = 404;
  allow[0] = '\0';
  for (size_t i = 0; i < count; i++, row += stride) {
    const http_route *r = (const http_route *)(const void *)row;
    if (!http_route_match(r->path, path, len))
      continue;
    if (r->method == method)
      return r;
    *status_out = 405;
    allow_add(allow, llhttp_method_name((llhttp_method_t)r->method));
  }
  return NULL;
}
