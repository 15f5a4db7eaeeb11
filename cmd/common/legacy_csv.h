/*
 * legacy_csv.h -- the legacy pipeline's CSV, for `esctl import`: records
 * as PostgreSQL's `COPY ... TO ... WITH (FORMAT csv, HEADER)` writes them,
 * and the column-mapping file that says which column is which Segment
 * field (docs/MIGRATION.md, "The mapping file").
 *
 * It owns three pure steps, with no I/O, so that one fuzz target
 * (tests/fuzz/fuzz_legacy_csv.c) drives them all:
 *
 *  1. csv_record: one record (RFC 4180: fields separated by ',', a field
 *     in double quotes may hold ',', '"' doubled and line breaks; records
 *     end with "\n" or "\r\n") from a buffer that may end mid-record.
 *  2. csv_map_parse / csv_map_bind: the mapping file, then its column
 *     names resolved against the CSV header.
 *  3. csv_map_row: a record through the mapping into one Segment JSON
 *     object, which the caller parses with seg_event_parse (so a mapped
 *     row is checked exactly as an NDJSON line or an HTTP event is).
 *
 * Conventions:
 *  1. PostgreSQL writes NULL as an unquoted empty field and '' as "": an
 *     unquoted empty field is an absent value (the Segment field is left
 *     out), a quoted empty one is the empty string.
 *  2. Functions that can fail return -1 with one line of English in err
 *     (always NUL-terminated); nothing of a failed call must be freed.
 *  3. Limits: CSV_FIELDS_MAX fields per record; a record longer than the
 *     caller's buffer is the caller's to refuse.
 */
#ifndef LEGACY_CSV_H
#define LEGACY_CSV_H

#include <stddef.h>

#include "segment_json.h"

#define CSV_FIELDS_MAX 256
#define CSV_ERR_SIZE 256

/* One field of a record: its decoded bytes in the record's seg_buf. */
typedef struct csv_field {
  size_t off, len;
  int quoted;
} csv_field;

/* A decoded record: fields point into text (owned, reused per record). */
typedef struct csv_rec {
  seg_buf text;
  csv_field f[CSV_FIELDS_MAX];
  size_t count;
  size_t lines; /* line breaks the record spanned, its own end included */
} csv_rec;

void csv_rec_init(csv_rec *r);
void csv_rec_free(csv_rec *r);

/*
 * Decodes the record at the start of buf[0..len).  Returns 1 with the
 * record in *r and *used bytes consumed; 0 when buf holds no complete
 * record and more input may follow (at_eof 0), or at the end of input
 * with nothing left; -1 on a malformed record (a quote inside an
 * unquoted field, text after a closing quote, an unterminated quote at
 * the end of input, more than CSV_FIELDS_MAX fields), with *used set past
 * the bad line so the caller may go on, and err saying why.
 */
int csv_record(const char *buf, size_t len, int at_eof, csv_rec *r,
               size_t *used, char *err, size_t err_size);

/* The Segment fields a mapping can fill. */
enum {
  CSV_T_MESSAGE_ID,
  CSV_T_TYPE,
  CSV_T_EVENT,
  CSV_T_NAME,
  CSV_T_USER_ID,
  CSV_T_ANONYMOUS_ID,
  CSV_T_PREVIOUS_ID,
  CSV_T_GROUP_ID,
  CSV_T_TIMESTAMP,
  CSV_T_PROPERTIES, /* a column holding a JSON object */
  CSV_T_TRAITS,     /* likewise */
  CSV_T_PAGE_PATH,  /* context.page.path */
  CSV_T_PAGE_URL,
  CSV_T_PAGE_REFERRER,
  CSV_T_USER_AGENT, /* context.userAgent */
  CSV_T_IP,         /* context.ip */
  CSV_T_PROPERTY,   /* properties.NAME: one string property */
  CSV_T_COUNT
};

#define CSV_MAP_ENTRIES_MAX 128

/* One line of the mapping: target <- column or literal. */
typedef struct csv_map_entry {
  int target;     /* CSV_T_* */
  char *prop;     /* CSV_T_PROPERTY: the property name (owned) */
  char *column;   /* the CSV column name (owned), or NULL for a literal */
  char *literal;  /* owned, when column is NULL */
  size_t col_idx; /* set by csv_map_bind */
} csv_map_entry;

typedef struct csv_map {
  csv_map_entry e[CSV_MAP_ENTRIES_MAX];
  size_t count;
} csv_map;

/*
 * Parses a mapping file (text[0..len), need not be NUL-terminated):
 * lines "FIELD = COLUMN" or "FIELD = \"literal\"", '#' comments and
 * blank lines.  FIELD is messageId, type, event, name, userId,
 * anonymousId, previousId, groupId, timestamp, properties, traits,
 * context.page.path, context.page.url, context.page.referrer,
 * context.userAgent, context.ip or properties.NAME; each at most once;
 * properties and properties.NAME exclude each other; timestamp is
 * required (a backfill keeps the original times).  0, or -1 with err
 * naming the line (*m empty).
 */
int csv_map_parse(const char *text, size_t len, csv_map *m, char *err,
                  size_t err_size);
void csv_map_free(csv_map *m);

/* Resolves every column name against the header record: 0, or -1 with
 * err naming the first missing column or a column named twice. */
int csv_map_bind(csv_map *m, const csv_rec *header, char *err, size_t err_size);

/*
 * Appends one Segment JSON object made from the record through the
 * (bound) mapping to out.  -1 with err when the record has another number
 * of fields than the header (header_count), when a properties/traits
 * column is not a JSON object, or on allocation failure.
 */
int csv_map_row(const csv_map *m, const csv_rec *r, size_t header_count,
                seg_buf *out, char *err, size_t err_size);

#endif /* LEGACY_CSV_H */
