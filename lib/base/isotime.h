/*
 * isotime.h -- the one ISO 8601 parser and formatter of the project:
 * query specs, rule answers, and (through es_time_parse / es_time_format
 * in eventstore.h) the Segment JSON of the servers and tools.
 */
#ifndef ES_ISOTIME_H
#define ES_ISOTIME_H

#include <stddef.h>
#include <stdint.h>

/* Longest text es__time_format writes, with its NUL (any int64). */
#define ES_TIME_TEXT_SIZE 40

/*
 * Parses "YYYY-MM-DD" (midnight UTC) or "YYYY-MM-DDTHH:MM[:SS[.fraction]]"
 * followed by "Z", an offset "+HH:MM" / "+HHMM" / "+HH" (or "-"), or
 * nothing (UTC); "t", "z" and a space for the "T" are accepted.  A
 * fraction finer than microseconds is truncated.  Leap seconds (":60")
 * are refused, and so are times outside years 0000..9999 once converted
 * to UTC, so that every accepted time formats back into this form.
 * With `strict` (query specs: docs/QUERY.md) a time of day needs a zone
 * and a "T".  Returns 0 and sets *us, or -1 (*us untouched).
 */
int es__time_parse(const char *s, int strict, int64_t *us);

/*
 * Writes ts_us as "YYYY-MM-DDTHH:MM:SS[.ffffff]Z": the fraction always
 * when `micros`, else only when the time has microseconds.  Years outside
 * 0..9999 get as many digits as they need (and a sign when negative).
 * Returns the length, or 0 (and "" when cap > 0) when cap is too small;
 * ES_TIME_TEXT_SIZE is always enough.
 */
size_t es__time_format(int64_t ts_us, int micros, char *out, size_t cap);

#endif
