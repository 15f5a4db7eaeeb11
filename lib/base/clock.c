/*
 * clock.c -- the only file that reads the clock.  Tests may pin the wall
 * clock (es__clock_set_fixed_us) for reproducible receive times.
 */
#include <stdatomic.h>
#include <time.h>

#include "base/clock.h"

static _Atomic int64_t clock_fixed_us;

/* Wall-clock microseconds since the epoch (or the pinned value). */
int64_t es__clock_now_us(void) {
  int64_t fixed = atomic_load_explicit(&clock_fixed_us, memory_order_relaxed);
  if (fixed)
    return fixed;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Monotonic microseconds, for intervals. */
int64_t es__clock_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Absolute deadline for condition-variable waits (they use the realtime
 * clock by default). */
void es__clock_deadline(struct timespec *ts, int64_t after_us) {
  clock_gettime(CLOCK_REALTIME, ts);
  int64_t ns = ts->tv_nsec + (after_us % 1000000) * 1000;
  ts->tv_sec += after_us / 1000000 + ns / 1000000000;
  ts->tv_nsec = ns % 1000000000;
}

/* Test hook: pin the wall clock (0 = real clock again). */
void es__clock_set_fixed_us(int64_t now_us) {
  atomic_store(&clock_fixed_us, now_us);
}

void es__clock_sleep_us(int64_t us) {
  struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0)
    ;
}
