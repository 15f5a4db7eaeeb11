/*
 * status_http.c -- library status -> HTTP status; see status_http.h.
 */
#include <stddef.h>

#include "eventstore.h"
#include "status_http.h"

/* Invariant 2 of status_http.h, code by code (docs/ERRORS.md). */
static const struct {
  int es_status, http;
} table[] = {
    {ES_OK, 200},
    /* the caller's mistakes */
    {ES_EINVAL, 400},    /* a bad argument: the request's own content */
    {ES_ETENANT, 400},   /* a tenant id that is not [A-Za-z0-9_-]{1,64} */
    {ES_ETOOBIG, 400},   /* an event or batch over a limit */
    {ES_ENOTFOUND, 404}, /* no such rule, person or object */
    /* the store cannot take it now: retry later */
    {ES_ENOMEM, 503},
    {ES_ENOSPC, 503},    /* the disk is full: an operator frees space */
    {ES_EBUSY, 503},     /* the directory is locked by another process */
    {ES_ECLOSED, 503},   /* shutting down */
    {ES_EDEGRADED, 503}, /* the store is degraded: retry later */
    {ES_EUNAVAIL, 503},  /* the object store (S3) is unreachable */
    /* an object store (S3) answer */
    {ES_ECONFLICT, 409}, /* a conditional object write lost a race */
    {ES_EREMOTE, 502},   /* the object store refused the request */
    /* the store failed or its data is damaged: nothing was done */
    {ES_EIO, 500},
    {ES_ECORRUPT, 500},
    {ES_EFAILED, 500}, /* an earlier write failed; the handle needs reopening */
    {ES_EVERSION, 500},
    {ES_EREADONLY, 500}, /* a server bug: a write on its read-only handle */
};

int http_status_lookup(int es_status, int *http_out) {
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (table[i].es_status == es_status) {
      *http_out = table[i].http;
      return 0;
    }
  return -1;
}

int http_status_of(int es_status) {
  int http;
  return http_status_lookup(es_status, &http) == 0 ? http : 500;
}

int http_status_retry_after_s(int http_status) {
  return http_status == 429 || http_status == 503 ? 1 : 0;
}

const char *http_status_reason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 413:
    return "Payload Too Large";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  default:
    return "Internal Server Error";
  }
}
