/*
 * export.h -- the warehouse export's internals shared with tests: the
 * export schema (one row per event) and the gzip NDJSON sink.
 * es_export (eventstore.h) is the entry point; docs/EXPORT.md documents
 * the schema, the layout and the idempotence for users.
 */
#ifndef ES_EXPORT_H
#define ES_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "base/codec.h"
#include "base/io.h"
#include "export/parquet.h"

/* Room for a formatted time or day (any int64_t, so never truncated). */
#define EX_TS_SIZE 64

/* The export schema's columns, in file order. */
enum {
  EX_MESSAGE_ID,
  EX_TYPE,
  EX_EVENT,
  EX_TIMESTAMP,
  EX_RECEIVED_AT,
  EX_SENT_AT,
  EX_ANONYMOUS_ID,
  EX_USER_ID,
  EX_PERSON_ID,
  EX_PAGE_PATH,
  EX_PAGE_URL,
  EX_PAGE_REFERRER,
  EX_PAGE_TITLE,
  EX_USER_AGENT,
  EX_IP,
  EX_PROPERTIES,
  EX_CONTEXT,
  EX_TRAITS,
  EX_PREVIOUS_ID,
  EX_GROUP_ID,
  EX_COLUMNS
};

/* The Parquet columns of the schema (a static table). */
const es_pq_column *es__export_columns(void);

/* Whether s[0..n) is one complete JSON value (yajl, UTF-8 checked). */
int es__export_json_valid(const char *s, size_t n);

/* Formats ts_us as "YYYY-MM-DDTHH:MM:SS.ffffffZ" (buf: EX_TS_SIZE). */
void es__export_fmt_ts(int64_t ts_us, char *buf);
/* Formats the UTC day of ts_us as "YYYY-MM-DD" (buf: EX_TS_SIZE). */
void es__export_fmt_day(int64_t ts_us, char *buf);

#endif
