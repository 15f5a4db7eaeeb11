/*
 * status.h -- error creation and propagation inside the library.
 *
 * Errors are made where they happen, with the library's file and line
 * recorded in a thread-local detail buffer (es_errdetail() shows it), and
 * passed up unchanged: the first error wins.  ES_TRY returns early from a
 * function; ES_CHECK jumps to the function's single cleanup label `err`.
 */
#ifndef ES_STATUS_H
#define ES_STATUS_H

#include "eventstore.h"

#define ES_MUST_CHECK __attribute__((warn_unused_result))

/* Records a formatted detail for the current thread and returns rc. */
int es__error_at(int rc, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like es__error_at, appending strerror(errno_value). */
int es__error_errno(int rc, int errno_value, const char *file, int line,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Maps an errno from a failed system call to ES_EIO / ES_ENOSPC / ... */
int es__status_from_errno(int errno_value);

/* Clears the current thread's detail. */
void es__error_clear(void);

#define ES_ERR(rc, ...) es__error_at((rc), __FILE__, __LINE__, __VA_ARGS__)
#define ES_CORRUPT_BKPT(...) ES_ERR(ES_ECORRUPT, __VA_ARGS__)
#define ES_INVAL_BKPT(...) ES_ERR(ES_EINVAL, __VA_ARGS__)
#define ES_NOMEM_BKPT() ES_ERR(ES_ENOMEM, "out of memory")

#define ES_TRY(expr)                                                           \
  do {                                                                         \
    int es_try_rc_ = (expr);                                                   \
    if (es_try_rc_ < 0)                                                        \
      return es_try_rc_;                                                       \
  } while (0)

/* Requires `int rc` and a label `err` in the calling function. */
#define ES_CHECK(expr)                                                         \
  do {                                                                         \
    rc = (expr);                                                               \
    if (rc < 0)                                                                \
      goto err;                                                                \
  } while (0)

#endif
