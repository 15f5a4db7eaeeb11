/*
 * svc.h -- what es-ingestd and es-queryd share outside HTTP connection
 * handling: the clock, JSON log lines, command-line errors and numbers,
 * HOST:PORT, small files, tenant ids.  One copy, in cmd/common, linked by
 * both (HTTP reason phrases and statuses: status_http.h).
 */
#ifndef ES_SVC_H
#define ES_SVC_H

#include <stddef.h>
#include <stdint.h>

/* jemalloc's options for both servers, read by jemalloc as it starts
 * (MALLOC_CONF in the environment overrides them); unused without
 * jemalloc (the sanitizer builds).  See svc.c. */
extern const char *malloc_conf;

/* Wall-clock microseconds since the epoch. */
int64_t svc_now_us(void);

/* One JSON log line on stderr, written with one write(2) so lines of
 * several threads do not interleave: {"ts":...,"level":...,"msg":...
 * EXTRA,"from":FROM}.  extra (may be NULL) is raw JSON members starting
 * with a comma; from may be NULL (no "from"). */
void svc_log(const char *from, const char *level, const char *msg,
             const char *extra);

/* s as a quoted JSON string into dst (size bytes); "" when it does not
 * fit, so that a log line stays valid JSON. */
void svc_json_string(char *dst, size_t size, const char *s);

/* "PROG: <message> (see --help)" on stderr; returns 2 (the exit status
 * of bad usage). */
int svc_usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A whole number in [lo, hi] from a flag's value; 0, or 2 after
 * reporting the error. */
int svc_parse_num(const char *prog, const char *flag, const char *v,
                  long long lo, long long hi, long long *out);

/* Reads the "--flag value" pair at argv[*i] into *flag and *value and
 * moves *i to the value: 0.  For --help / -h (usage printed) and
 * --version (printed), -1: the caller exits 0.  2 after reporting a bare
 * argument or a flag without a value. */
int svc_next_flag(const char *prog, const char *usage, int argc, char **argv,
                  int *i, const char **flag, const char **value);

/* "ip:port", "[v6]:port" or "localhost:port" (127.0.0.1) -> host (size
 * bytes of room) and port; 0, or 2 after reporting the error with the
 * accepted forms.  Host names other than localhost are refused: the
 * servers bind before any resolver could be trusted. */
int svc_parse_hostport(const char *prog, const char *flag, const char *s,
                       char *host, size_t size, int *port);

/* A whole small file, NUL-terminated, at most max_bytes (malloc'ed; the
 * caller frees it).  NULL with errno set when it cannot be read or is
 * larger (EFBIG).  *len_out (may be NULL) gets its length. */
char *svc_read_file(const char *path, size_t max_bytes, size_t *len_out);

/* Replaces path with data durably: path.tmp (mode 0600) written, fsynced
 * and renamed over path, then the directory synced.  0, or -1 with errno
 * (path untouched). */
int svc_write_file_atomic(const char *path, const char *data, size_t len);

/* Whether s is a tenant id: [A-Za-z0-9_-]{1,64}. */
int svc_tenant_ok(const char *s);

/* A server's objects by name (its tenants), kept until the server ends:
 * an object is made (zeroed, `size` bytes, its name copied to the char
 * array of `name_cap` bytes at `name_off`) the first time it is asked
 * for, and its pointer stays valid until svc_named_free (connections,
 * jobs and firings point at them).  With `sorted` the pointers are kept
 * in name order and lookups bisect; without, they stay in the order of
 * creation and lookups scan.  Set the four fields in a zeroed table. */
typedef struct svc_named {
  void **v;
  size_t count, cap;
  size_t size, name_off, name_cap;
  int sorted;
} svc_named;

/* The object named `name`, or NULL. */
void *svc_named_find(const svc_named *t, const char *name);
/* The object named `name`, made when new; NULL when out of memory or the
 * name does not fit. */
void *svc_named_get(svc_named *t, const char *name);
/* Frees every object and the table's array. */
void svc_named_free(svc_named *t);

#endif
