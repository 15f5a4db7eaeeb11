/*
 * svc.c -- the servers' shared helpers; see svc.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eventstore.h"
#include "segment_json.h"
#include "svc.h"

/* Freed pages go back to the system within about 100 ms (a background
 * thread purges them), not jemalloc's default 10 s: at 300k events/s the
 * servers free ~135 MB/s of memtables, bodies and batches, and a 5-second
 * 10x burst against a 256 MB budget peaked at 270-290 MB RSS, up to
 * 100 MB of it pages freed but kept (180 MB with no retention at all,
 * whose re-faulting cost 30% of the throughput).  docs/INGEST.md,
 * "Overload". */
const char *malloc_conf =
    "background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0";

int64_t svc_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void svc_log(const char *from, const char *level, const char *msg,
             const char *extra) {
  char iso[SEG_ISO8601_SIZE];
  seg_buf b;
  seg_buf_init(&b);
  seg_iso8601_format(svc_now_us(), iso, sizeof iso);
  int bad = seg_buf_put(&b, "{\"ts\":\"", 7) ||
            seg_buf_put(&b, iso, strlen(iso)) ||
            seg_buf_put(&b, "\",\"level\":\"", 11) ||
            seg_buf_put(&b, level, strlen(level)) ||
            seg_buf_put(&b, "\",\"msg\":", 8) ||
            seg_buf_put_json_string(&b, msg, strlen(msg)) ||
            (extra && seg_buf_put(&b, extra, strlen(extra)));
  if (!bad && from)
    bad = seg_buf_put(&b, ",\"from\":", 8) ||
          seg_buf_put_json_string(&b, from, strlen(from));
  if (!bad)
    bad = seg_buf_put(&b, "}\n", 2);
  if (!bad) {
    ssize_t n = write(STDERR_FILENO, b.data, b.len);
    (void)n;
  }
  seg_buf_free(&b);
}

void svc_json_string(char *dst, size_t size, const char *s) {
  seg_buf b;
  seg_buf_init(&b);
  if (size < 3)
    return;
  if (seg_buf_put_json_string(&b, s, strlen(s)) || b.len >= size)
    snprintf(dst, size, "\"\"");
  else
    snprintf(dst, size, "%.*s", (int)b.len, b.data);
  seg_buf_free(&b);
}

int svc_usage_error(const char *prog, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: ", prog);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs(" (see --help)\n", stderr);
  return 2;
}

int svc_parse_num(const char *prog, const char *flag, const char *v,
                  long long lo, long long hi, long long *out) {
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (errno || end == v || *end != '\0' || x < lo || x > hi)
    return svc_usage_error(prog,
                           "%s wants a whole number in %lld..%lld, not \"%s\"",
                           flag, lo, hi, v);
  *out = x;
  return 0;
}

int svc_next_flag(const char *prog, const char *usage, int argc, char **argv,
                  int *i, const char **flag, const char **value) {
  const char *a = argv[*i];
  *flag = a;
  *value = NULL;
  if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
    fputs(usage, stdout);
    return -1;
  }
  if (strcmp(a, "--version") == 0) {
    printf("%s %d.%d.%d\n", prog, ES_VERSION_MAJOR, ES_VERSION_MINOR,
           ES_VERSION_PATCH);
    return -1;
  }
  if (strncmp(a, "--", 2) != 0)
    return svc_usage_error(prog, "unexpected argument \"%s\"", a);
  if (*i + 1 >= argc)
    return svc_usage_error(prog, "%s needs a value", a);
  *value = argv[++*i];
  return 0;
}

int svc_parse_hostport(const char *prog, const char *flag, const char *s,
                       char *host, size_t size, int *port) {
  const char *orig = s, *colon = strrchr(s, ':');
  long long p = 0;
  if (colon == NULL || colon == s)
    return svc_usage_error(prog,
                           "%s wants IP:PORT (127.0.0.1:8080, 0.0.0.0:8080, "
                           "[::1]:8080 or localhost:8080), not \"%s\"",
                           flag, s);
  size_t n = (size_t)(colon - s);
  if (s[0] == '[' && n >= 2 && s[n - 1] == ']')
    s++, n -= 2;
  if (n >= size)
    return svc_usage_error(prog, "%s host too long", flag);
  memcpy(host, s, n);
  host[n] = '\0';
  if (strcmp(host, "localhost") == 0 && size > 9)
    memcpy(host, "127.0.0.1", 10); /* the one name: no resolver at start */
  unsigned char addr[16];
  if (inet_pton(AF_INET, host, addr) != 1 &&
      inet_pton(AF_INET6, host, addr) != 1)
    return svc_usage_error(prog,
                           "%s wants IP:PORT (127.0.0.1:8080, 0.0.0.0:8080, "
                           "[::1]:8080 or localhost:8080), not \"%s\"",
                           flag, orig);
  if (svc_parse_num(prog, flag, colon + 1, 0, 65535, &p))
    return 2;
  *port = (int)p;
  return 0;
}

char *svc_read_file(const char *path, size_t max_bytes, size_t *len_out) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  char *buf = malloc(max_bytes + 1);
  size_t n = buf ? fread(buf, 1, max_bytes + 1, f) : 0;
  fclose(f);
  if (buf == NULL || n > max_bytes) {
    free(buf);
    errno = EFBIG;
    return NULL;
  }
  buf[n] = '\0';
  if (len_out)
    *len_out = n;
  return buf;
}

int svc_write_file_atomic(const char *path, const char *data, size_t len) {
  char tmp[4096], dir[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
    errno = ENAMETOOLONG;
    return -1;
  }
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == NULL)
    snprintf(dir, sizeof dir, ".");
  else
    slash[slash == dir] = '\0';
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return -1;
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, data + off, len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int e = errno;
      close(fd);
      unlink(tmp);
      errno = e;
      return -1;
    }
    off += (size_t)n;
  }
  if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    errno = e;
    return -1;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int rc = fsync(dfd);
    close(dfd);
    return rc;
  }
  return -1;
}

static const char *named_name(const svc_named *t, const void *obj) {
  return (const char *)obj + t->name_off;
}

/* The index of name in a sorted table, or where it would go (*found 0). */
static size_t named_bisect(const svc_named *t, const char *name, int *found) {
  size_t lo = 0, hi = t->count;
  *found = 0;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(named_name(t, t->v[mid]), name);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

void *svc_named_find(const svc_named *t, const char *name) {
  if (strlen(name) >= t->name_cap)
    return NULL;
  if (t->sorted) {
    int found;
    size_t i = named_bisect(t, name, &found);
    return found ? t->v[i] : NULL;
  }
  for (size_t i = 0; i < t->count; i++)
    if (strcmp(named_name(t, t->v[i]), name) == 0)
      return t->v[i];
  return NULL;
}

void *svc_named_get(svc_named *t, const char *name) {
  void *obj = svc_named_find(t, name);
  if (obj != NULL || strlen(name) >= t->name_cap)
    return obj;
  if (t->count == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    void **grown = realloc(t->v, cap * sizeof *grown);
    if (grown == NULL)
      return NULL;
    t->v = grown;
    t->cap = cap;
  }
  if ((obj = calloc(1, t->size)) == NULL)
    return NULL;
  memcpy((char *)obj + t->name_off, name, strlen(name) + 1);
  size_t at = t->count;
  if (t->sorted) {
    int found;
    at = named_bisect(t, name, &found);
    memmove(t->v + at + 1, t->v + at, (t->count - at) * sizeof *t->v);
  }
  t->v[at] = obj;
  t->count++;
  return obj;
}

void svc_named_free(svc_named *t) {
  for (size_t i = 0; i < t->count; i++)
    free(t->v[i]);
  free(t->v);
  t->v = NULL;
  t->count = t->cap = 0;
}

int svc_tenant_ok(const char *s) {
  size_t n = strlen(s);
  return n > 0 && n <= ES_TENANT_LEN_MAX &&
         strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789_-") == n;
}
