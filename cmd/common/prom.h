/*
 * prom.h -- the Prometheus text format pieces both servers' GET /metrics
 * are written with: a formatted line, HELP/TYPE headers, gauges and a
 * latency histogram (cumulative buckets at render).  The servers keep
 * their own counters and names; this is only how they are written.
 */
#ifndef ES_PROM_H
#define ES_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "segment_json.h"

#define PROM_BUCKETS_MAX 16

/* Latencies counted into buckets by upper bound (seconds); the bounds
 * are the caller's, the same at every observe and render. */
typedef struct prom_hist {
  uint64_t buckets[PROM_BUCKETS_MAX]; /* per bound, not cumulative */
  uint64_t count;
  double sum_s;
} prom_hist;

void prom_hist_observe(prom_hist *h, const double *bounds_s, size_t count,
                       int64_t latency_us);

/* One printf-formatted piece (at most 511 bytes); 0, or -1 (too long, or
 * out of memory). */
int prom_put(seg_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "# HELP name help" and "# TYPE name counter"; the caller puts the
 * samples. */
int prom_counter(seg_buf *b, const char *name, const char *help);
/* A gauge with its one sample. */
int prom_gauge(seg_buf *b, const char *name, const char *help,
               unsigned long long v);
/* A histogram: HELP, TYPE, the cumulative buckets, +Inf, _sum, _count. */
int prom_histogram(seg_buf *b, const char *name, const char *help,
                   const prom_hist *h, const double *bounds_s, size_t count);

#endif /* ES_PROM_H */
