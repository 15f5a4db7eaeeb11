/*
 * route.h -- a server's endpoints as one table, and the lookup that both
 * es-ingestd and es-queryd route with.  Each server declares its own row
 * type with an http_route FIRST and its handler (with the server's own
 * signature) after it, and one const array of rows: adding an endpoint is
 * one row.
 *
 * Invariants:
 *
 *  1. A request runs the handler of the row whose method and path match,
 *     or none: a path no row has is a 404; a path some rows have, with
 *     another method, is a 405 whose Allow header lists theirs.  There is
 *     no default row.
 *  2. A pattern is matched whole.  A segment "*" matches one non-empty
 *     segment (no '/'), raw as sent: the handler decodes it.  Nothing
 *     else is special; the query string is not part of the path.
 *  3. Rows are looked up in order; the first match wins (so a literal
 *     row placed before a "*" row of the same shape takes precedence).
 */
#ifndef ES_ROUTE_H
#define ES_ROUTE_H

#include <stddef.h>

typedef struct http_route {
  int method;       /* llhttp's HTTP_GET, HTTP_POST... */
  const char *path; /* the pattern, invariant 2 */
  unsigned flags;   /* the server's own (e.g. "needs a token") */
} http_route;

/* Room for the Allow header's value of any table. */
#define HTTP_ROUTE_ALLOW_SIZE 128

/*
 * The row of routes (count rows, stride bytes apart, each starting with
 * an http_route) for method on path[0..len).  NULL when none, with
 * *status_out 404 or 405 (invariant 1); for a 405, allow (at least
 * HTTP_ROUTE_ALLOW_SIZE bytes) gets the path's methods, "GET, POST".
 */
const http_route *http_route_find(const void *routes, size_t count,
                                  size_t stride, int method, const char *path,
                                  size_t len, int *status_out, char *allow);

/* Whether path[0..len) matches pattern (invariant 2). */
int http_route_match(const char *pattern, const char *path, size_t len);

#endif /* ES_ROUTE_H */
