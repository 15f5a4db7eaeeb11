/*
 * clock.h -- the one place that reads the clock, so that tests and
 * simulations can replace time.
 */
#ifndef ES_CLOCK_H
#define ES_CLOCK_H

#include <stdint.h>

/* Wall-clock time, microseconds since the Unix epoch. */
int64_t es__clock_now_us(void);
/* Monotonic time in microseconds, for intervals and timeouts. */
int64_t es__clock_mono_us(void);

struct timespec;
/* A CLOCK_REALTIME deadline after_us from now, for pthread_cond_timedwait. */
void es__clock_deadline(struct timespec *ts, int64_t after_us);

/* Sleeps about us microseconds (background waits that poll). */
void es__clock_sleep_us(int64_t us);

/* Test hook: a fixed wall clock (0 restores the real one). */
void es__clock_set_fixed_us(int64_t now_us);

#endif
