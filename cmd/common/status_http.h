/*
 * status_http.h -- the one table from library status to HTTP status, and
 * what an HTTP status says on the wire (reason phrase, Retry-After), for
 * both servers.  docs/ERRORS.md lists the library codes; docs/INGEST.md
 * and docs/QUERYD.md the answers.
 *
 * Invariants:
 *
 *  1. Every status code include/eventstore.h defines is listed in the
 *     table (tests/integration/test_status_http.c walks the codes that
 *     es_strerror names and fails on one that is not); a code the table
 *     does not know still answers 500, never 200.
 *  2. The caller's mistakes are 4xx (the request would fail again as
 *     sent); a store that cannot take the request now (memory, disk
 *     space, a lock, closing) is 503 and says Retry-After; a store that
 *     failed or holds damaged data is 500.
 */
#ifndef ES_STATUS_HTTP_H
#define ES_STATUS_HTTP_H

/* The HTTP status that answers a library status (ES_OK: 200). */
int http_status_of(int es_status);

/* The table's entry for es_status into *http_out: 0, or -1 when the
 * table does not list it (http_status_of then says 500). */
int http_status_lookup(int es_status, int *http_out);

/* The seconds of the Retry-After header an answer with this HTTP status
 * carries (the same request may succeed later: 429, 503), or 0 for none. */
int http_status_retry_after_s(int http_status);

/* The reason phrase of an HTTP status ("Internal Server Error" for any
 * unknown one). */
const char *http_status_reason(int http_status);

#endif /* ES_STATUS_HTTP_H */
