/*
 * isotime.c -- ISO 8601 times: the one parser and formatter (isotime.h).
 * Dates are proleptic Gregorian, converted with H. Hinnant's
 * days_from_civil / civil_from_days.
 */
#include <stdio.h>

#include "base/isotime.h"
#include "base/status.h"

#define US_PER_S INT64_C(1000000)
#define S_PER_DAY INT64_C(86400)

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t time_days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* The inverse: the date of a day number. */
static void time_civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

/* Reads exactly n decimal digits at *p into *v and advances *p. */
static int time_digits(const char **p, int n, int *v) {
  int x = 0;
  for (int i = 0; i < n; i++) {
    char c = (*p)[i];
    if (c < '0' || c > '9')
      return -1;
    x = x * 10 + (c - '0');
  }
  *p += n;
  *v = x;
  return 0;
}

static int time_is_leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "Z", or "+HH", "+HH:MM", "+HHMM" (or "-"): the offset east of UTC in
 * seconds; nothing at all is UTC.  Returns 0 when that is the whole rest
 * of the string, else -1. */
static int time_zone(const char *p, int64_t *offset_s) {
  if (p[0] == '\0') { /* no zone: UTC */
    *offset_s = 0;
    return 0;
  }
  if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
    *offset_s = 0;
    return 0;
  }
  if (p[0] != '+' && p[0] != '-')
    return -1;
  int sign = p[0] == '-' ? -1 : 1, hh, mm = 0;
  p++;
  if (time_digits(&p, 2, &hh) != 0 || hh > 23)
    return -1;
  if (*p != '\0') { /* minutes, with or without a colon */
    if (*p == ':')
      p++;
    if (time_digits(&p, 2, &mm) != 0 || mm > 59)
      return -1;
  }
  if (*p != '\0')
    return -1;
  *offset_s = sign * (hh * 3600 + mm * 60);
  return 0;
}

/* Parses an ISO 8601 time; see isotime.h for the accepted forms. */
int es__time_parse(const char *s, int strict, int64_t *us) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const char *p = s;
  int y, mo, d, hh = 0, mi = 0, ss = 0;
  int64_t frac_us = 0, offset_s = 0;
  if (!s || time_digits(&p, 4, &y) != 0 || *p++ != '-' ||
      time_digits(&p, 2, &mo) != 0 || *p++ != '-' ||
      time_digits(&p, 2, &d) != 0)
    return -1;
  if (mo < 1 || mo > 12 || d < 1 ||
      d > mdays[mo - 1] + (mo == 2 && time_is_leap(y)))
    return -1;
  if (*p == 'T' || *p == 't' || (*p == ' ' && !strict)) {
    p++;
    if (time_digits(&p, 2, &hh) != 0 || hh > 23 || *p++ != ':' ||
        time_digits(&p, 2, &mi) != 0 || mi > 59)
      return -1;
    if (*p == ':') {
      p++;
      if (time_digits(&p, 2, &ss) != 0 || ss > 59)
        return -1;
      if (*p == '.' || *p == ',') {
        int ndig = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, ndig++)
          if (ndig < 6)
            frac_us = frac_us * 10 + (*p - '0');
        if (ndig == 0)
          return -1;
        for (; ndig < 6; ndig++)
          frac_us *= 10;
      }
    }
    if ((strict && *p == '\0') || time_zone(p, &offset_s) != 0)
      return -1;
  } else if (*p != '\0') {
    return -1;
  }
  int64_t secs = time_days_from_civil(y, mo, d) * S_PER_DAY + hh * 3600 +
                 mi * 60 + ss - offset_s;
  /* an offset can carry 9999-12-31 into year 10000 (or 0000-01-01 into
   * year -1) in UTC, which the formatter would not write in this form */
  if (secs < time_days_from_civil(0, 1, 1) * S_PER_DAY ||
      secs >= time_days_from_civil(10000, 1, 1) * S_PER_DAY)
    return -1;
  *us = secs * US_PER_S + frac_us;
  return 0;
}

/* Formats a time as ISO 8601 UTC; see isotime.h. */
size_t es__time_format(int64_t ts_us, int micros, char *out, size_t cap) {
  int64_t secs = ts_us / US_PER_S, frac = ts_us % US_PER_S;
  if (frac < 0) { /* floor, not truncation, before the epoch */
    frac += US_PER_S;
    secs--;
  }
  int64_t days = secs / S_PER_DAY, sod = secs % S_PER_DAY;
  if (sod < 0) {
    sod += S_PER_DAY;
    days--;
  }
  int64_t y;
  int m, d;
  time_civil_from_days(days, &y, &m, &d);
  /* By hand, not snprintf: query results format one per row. */
  size_t need = 20 + (frac || micros ? 7 : 0) + 1;
  if (y < 0 || y > 9999 || cap < need) { /* rare: let snprintf size it */
    char frac_text[16] = "";
    if (frac || micros)
      snprintf(frac_text, sizeof(frac_text), ".%06lld", (long long)frac);
    int n = snprintf(out, cap, "%04lld-%02d-%02dT%02d:%02d:%02d%sZ",
                     (long long)y, m, d, (int)(sod / 3600),
                     (int)(sod / 60 % 60), (int)(sod % 60), frac_text);
    if (n < 0 || (size_t)n >= cap) {
      if (cap > 0)
        out[0] = '\0';
      return 0;
    }
    return (size_t)n;
  }
  char *p = out;
  int yy = (int)y, hh = (int)(sod / 3600), mi = (int)(sod / 60 % 60),
      ss = (int)(sod % 60);
  *p++ = (char)('0' + yy / 1000);
  *p++ = (char)('0' + yy / 100 % 10);
  *p++ = (char)('0' + yy / 10 % 10);
  *p++ = (char)('0' + yy % 10);
  const int two[5] = {m, d, hh, mi, ss};
  const char sep[5] = {'-', '-', 'T', ':', ':'};
  for (int i = 0; i < 5; i++) {
    *p++ = sep[i];
    *p++ = (char)('0' + two[i] / 10);
    *p++ = (char)('0' + two[i] % 10);
  }
  if (frac || micros) {
    *p++ = '.';
    for (int64_t div = 100000; div > 0; div /= 10)
      *p++ = (char)('0' + frac / div % 10);
  }
  *p++ = 'Z';
  *p = '\0';
  return (size_t)(p - out);
}

/* The public forms; see eventstore.h. */
int es_time_parse(const char *text, int flags, int64_t *ts_us_out) {
  if (!text || !ts_us_out)
    return ES_INVAL_BKPT("es_time_parse: NULL argument");
  if (es__time_parse(text, (flags & ES_TIME_STRICT) != 0, ts_us_out) != 0)
    return ES_INVAL_BKPT("not an ISO 8601 time: %.64s", text);
  return ES_OK;
}

size_t es_time_format(int64_t ts_us, int flags, char *buf, size_t size) {
  return buf ? es__time_format(ts_us, (flags & ES_TIME_MICROS) != 0, buf, size)
             : 0;
}
