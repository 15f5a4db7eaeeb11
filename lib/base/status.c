/*
 * status.c -- status codes, their names, and the per-thread error detail.
 *
 * A library error is created once, where it happens, by es__error_at(),
 * which formats "what failed (file:line)" into a thread-local buffer and
 * returns the code.  Callers pass the code up unchanged (first error wins),
 * so es_errdetail() after a failed public call names the original cause.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/status.h"

static _Thread_local char status_detail[512];
static _Thread_local char status_message[512];

static const char *const status_names[] = {
    "ok",
    "invalid argument",
    "out of memory",
    "I/O error",
    "disk full",
    "data corrupt (checksum or structure check failed)",
    "database failed after an I/O error; reopen it",
    "data directory is locked by another process",
    "not found",
    "on-disk format is newer than this library",
    "invalid tenant id (want [A-Za-z0-9_-]{1,64})",
    "event or batch exceeds a size limit",
    "database is closing",
    "database is read-only",
    "database is degraded (disk full?); retry later",
    /* the object store's codes (lib/replicate) */
    [15] = "conditional put failed: the object changed or exists",
    [16] = "object store unavailable (timeout, connection, 5xx); retry later",
    [17] = "object store refused the request",
};

/* Names a status code; see docs/ERRORS.md for the long form. */
const char *es_strerror(int status) {
  if (status > 0)
    return "not an error";
  size_t idx = (size_t)(-(long)status);
  if (idx >= sizeof(status_names) / sizeof(status_names[0]))
    return "unknown status";
  return status_names[idx] ? status_names[idx] : "unknown status";
}

/* The calling thread's last error detail (never NULL). */
const char *es_errdetail(void) { return status_detail; }

/* Whether s starts a " (name.c:123)" source location; its length if so. */
static size_t status_location_len(const char *s) {
  if (s[0] != ' ' || s[1] != '(')
    return 0;
  size_t i = 2;
  while (s[i] == '_' || s[i] == '-' || s[i] == '.' ||
         (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
         (s[i] >= '0' && s[i] <= '9'))
    i++;
  if (i < 5 || s[i - 2] != '.' || s[i - 1] != 'c' || s[i] != ':')
    return 0;
  size_t digits = ++i;
  while (s[i] >= '0' && s[i] <= '9')
    i++;
  return i > digits && s[i] == ')' ? i + 1 : 0;
}

/* The detail without its " (file.c:line)" locations, for the people a
 * server or tool shows errors to (the detail itself goes to debug logs). */
const char *es_errmsg(void) {
  size_t out = 0;
  for (const char *s = status_detail; *s != '\0';) {
    size_t skip = status_location_len(s);
    if (skip > 0) {
      s += skip;
      continue;
    }
    status_message[out++] = *s++;
  }
  status_message[out] = '\0';
  return status_message;
}

/* Clears the detail at the start of a public call. */
void es__error_clear(void) { status_detail[0] = '\0'; }

static void status_vformat(const char *file, int line, int errno_value,
                           const char *fmt, va_list ap) {
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  int n = vsnprintf(status_detail, sizeof(status_detail), fmt, ap);
  if (n < 0)
    n = 0;
  size_t used =
      (size_t)n < sizeof(status_detail) ? (size_t)n : sizeof(status_detail) - 1;
  if (errno_value != 0)
    used += (size_t)snprintf(status_detail + used, sizeof(status_detail) - used,
                             ": %s", strerror(errno_value));
  if (used < sizeof(status_detail))
    snprintf(status_detail + used, sizeof(status_detail) - used, " (%s:%d)",
             base, line);
}

/* Records a detail for rc; first error wins, so a detail already set for
 * the same failing call is kept by callers that do not call this again. */
int es__error_at(int rc, const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  status_vformat(file, line, 0, fmt, ap);
  va_end(ap);
  return rc;
}

/* Records a detail with strerror(errno_value) appended. */
int es__error_errno(int rc, int errno_value, const char *file, int line,
                    const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  status_vformat(file, line, errno_value, fmt, ap);
  va_end(ap);
  return rc;
}

/* ENOSPC and EDQUOT are "disk full"; ENOMEM is memory; ENOENT is a missing
 * path; everything else the OS says about a file is an I/O error. */
int es__status_from_errno(int errno_value) {
  switch (errno_value) {
  case ENOSPC:
  case EDQUOT:
    return ES_ENOSPC;
  case ENOMEM:
    return ES_ENOMEM;
  case ENOENT:
    return ES_ENOTFOUND;
  case EWOULDBLOCK:
    return ES_EBUSY;
  default:
    return ES_EIO;
  }
}
