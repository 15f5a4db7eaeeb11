/*
 * prom.c -- Prometheus text helpers; see prom.h.
 */
#include <stdarg.h>
#include <stdio.h>

#include "prom.h"

void prom_hist_observe(prom_hist *h, const double *bounds_s, size_t count,
                       int64_t latency_us) {
  double s = (double)latency_us / 1e6;
  h->count++;
  h->sum_s += s;
  for (size_t i = 0; i < count && i < PROM_BUCKETS_MAX; i++)
    if (s <= bounds_s[i]) {
      h->buckets[i]++;
      break;
    }
}

int prom_put(seg_buf *b, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof line)
    return -1;
  return seg_buf_put(b, line, (size_t)n);
}

int prom_counter(seg_buf *b, const char *name, const char *help) {
  return prom_put(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
}

int prom_gauge(seg_buf *b, const char *name, const char *help,
               unsigned long long v) {
  return prom_put(b, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help,
                  name, name, v);
}

int prom_histogram(seg_buf *b, const char *name, const char *help,
                   const prom_hist *h, const double *bounds_s, size_t count) {
  int rc = prom_put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  uint64_t cum = 0;
  for (size_t i = 0; i < count && i < PROM_BUCKETS_MAX; i++) {
    cum += h->buckets[i];
    rc |= prom_put(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds_s[i],
                   (unsigned long long)cum);
  }
  rc |= prom_put(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                 (unsigned long long)h->count);
  rc |= prom_put(b, "%s_sum %.6f\n", name, h->sum_s);
  rc |= prom_put(b, "%s_count %llu\n", name, (unsigned long long)h->count);
  return rc ? -1 : 0;
}
