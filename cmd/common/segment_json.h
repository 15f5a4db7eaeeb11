/*
 * segment_json.h -- Segment tracking-API JSON <-> es_event, for the tools.
 *
 * This module is shared by esctl and the HTTP ingest server.  It owns three
 * things and nothing else:
 *
 *  1. Parsing one Segment event object (track, page, screen, identify,
 *     alias, group) into an es_event whose strings live in storage owned by
 *     a seg_event (seg_event_parse / seg_event_free).
 *  2. Writing an es_event back as one compact JSON object (seg_event_write),
 *     always valid JSON whatever bytes the strings hold.
 *  3. ISO 8601 timestamps <-> microseconds since the epoch, UTC.
 *
 * Conventions:
 *
 *  1. Only include/eventstore.h and libc are used from outside: no storage
 *     logic lives here, and the library's internals are never included.
 *  2. Functions that can fail return 0 on success and -1 on failure.  A
 *     parse failure writes one line of English (no trailing newline) into
 *     the caller's error buffer; the buffer is always NUL-terminated.
 *  3. "properties" (or "traits") is re-serialised compactly: key order,
 *     duplicate keys and number text are kept exactly as given (numbers
 *     are never converted through double, so int64 values stay exact);
 *     string escapes are normalised (see seg_buf_put_json_string).
 *  4. Nothing here reads the clock: callers pass "now" in, which keeps the
 *     module deterministic under test.
 */
#ifndef SEGMENT_JSON_H
#define SEGMENT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "eventstore.h"

/* Longest accepted messageId, in characters (UTF-8 code points). */
#define SEG_MESSAGE_ID_CHARS_MAX 100
/* Deepest accepted nesting of arrays and objects in one event. */
#define SEG_DEPTH_MAX 64
/* Enough for any error message this module writes. */
#define SEG_ERR_SIZE 256
/* Enough for seg_iso8601_format's output and its NUL, for any int64. */
#define SEG_ISO8601_SIZE 40

/* ----------------------------------------------------------------------
 * A growable byte buffer (what the writer appends to)
 * ---------------------------------------------------------------------- */

typedef struct seg_buf {
  char *data; /* owned; NUL-terminated after every successful append */
  size_t len;
  size_t cap;
} seg_buf;

/* An empty buffer; nothing is allocated until the first append. */
void seg_buf_init(seg_buf *b);
/* Releases the storage and leaves the buffer empty and reusable. */
void seg_buf_free(seg_buf *b);
/* Appends n bytes.  -1 on allocation failure (the buffer is unchanged). */
int seg_buf_put(seg_buf *b, const void *p, size_t n);
/*
 * Appends s[0..n) as a quoted JSON string.  Quotes, backslashes and control
 * characters are escaped; valid UTF-8 passes through unchanged; every byte
 * that is not part of valid UTF-8 becomes U+FFFD, so the result is always
 * valid JSON in valid UTF-8.  -1 on allocation failure.
 */
int seg_buf_put_json_string(seg_buf *b, const char *s, size_t n);

/* ----------------------------------------------------------------------
 * Parsing
 * ---------------------------------------------------------------------- */

/*
 * A parsed event.  ev's string fields point into `storage` (one block owned
 * by this struct) or are NULL for absent fields; they stay valid until
 * seg_event_free().  ev.recv_us is 0 unless the input had "receivedAt".
 */
typedef struct seg_event {
  es_event ev;
  char *storage;
} seg_event;

/* Makes *se empty (all fields NULL), ready for seg_event_parse. */
void seg_event_init(seg_event *se);

/*
 * Releases the storage of *se and leaves it empty; safe on an empty or
 * already-freed seg_event.
 */
void seg_event_free(seg_event *se);

/*
 * Parses one JSON object in Segment format from json[0..len) (which need
 * not be NUL-terminated) into *se, which need not be initialised: it is
 * overwritten, so a filled one must be freed first.  Field mapping:
 *
 *   type                  -> ev.type (es_type_from_name)
 *   event (track) /
 *   name (page, screen)   -> ev.event ("event" is accepted for page/screen
 *                            too, so scan output can be re-ingested)
 *   messageId, anonymousId, userId, previousId, groupId -> same fields
 *                            (a number is accepted and kept as its text)
 *   timestamp             -> ev.ts_us; if absent: receivedAt, else now_us
 *   receivedAt            -> ev.recv_us (0 when absent)
 *   properties (track, page, screen) / traits (identify, group; falling
 *   back to "properties") -> ev.properties as compact JSON text
 *   context.page.{path,url,referrer} or properties.{path,url,referrer}
 *                         -> ev.path, ev.url, ev.referrer (page events
 *                            prefer properties, the others context.page)
 *   context.userAgent     -> ev.user_agent;   context.ip -> ev.ip
 *
 * Refused, with a message in err: input that is not one JSON object (or
 * holds a NUL byte, a "\u0000" escape, or nesting deeper than
 * SEG_DEPTH_MAX); a missing or unknown type; track without event; neither
 * userId nor anonymousId (alias: needs userId and previousId; group: also
 * needs groupId); a messageId longer than SEG_MESSAGE_ID_CHARS_MAX; a
 * timestamp that is not ISO 8601 or is before 1970; a field of the wrong
 * JSON type.  On failure *se stays empty.  err may be NULL.
 */
int seg_event_parse(seg_event *se, const char *json, size_t len, int64_t now_us,
                    char *err, size_t err_size);

struct yajl_val_s; /* yajl_tree.h's node */

/*
 * seg_event_parse in two halves, for callers that parse a larger document
 * (an HTTP batch) once with yajl_tree and map each event object of it.
 *
 * seg_json_precheck refuses the raw text that yajl_tree would mishandle
 * (a NUL byte, a "\u0000" escape, nesting deeper than SEG_DEPTH_MAX); a
 * caller must run it on the whole document before yajl_tree_parse.
 *
 * seg_event_from_tree maps one object node exactly as seg_event_parse
 * does, except that when the object has no "type" (or a null one) and
 * type_default is an es_type, that type is taken (the ingest endpoints
 * /v1/track etc. imply the type).  The strings of *se are copied out of
 * the tree: the tree may be freed at once.  Both return 0 or -1 with a
 * message in err, like seg_event_parse.
 */
int seg_json_precheck(const char *json, size_t len, char *err, size_t err_size);
int seg_event_from_tree(seg_event *se, const struct yajl_val_s *obj,
                        int type_default, int64_t now_us, char *err,
                        size_t err_size);

/*
 * seg_event_parse for callers that stream a document through yajl's
 * callback API (the ingest server's batch bodies): the caller records,
 * for one event object, the FIRST occurrence of each member the mapping
 * reads (as member() of the tree path would find it), and
 * seg_event_from_members maps that record exactly as seg_event_from_tree
 * maps the object, with the same checks in the same order and the same
 * messages.
 */
enum {
  SEG_V_ABSENT = 0, /* the key did not occur (first occurrence) */
  SEG_V_NULL,
  SEG_V_BOOL,
  SEG_V_NUMBER, /* s: the number's text as written */
  SEG_V_STRING, /* s: the decoded string */
  SEG_V_OBJECT, /* s: for properties/traits, the compact JSON text */
  SEG_V_ARRAY
};

/* One recorded value; s is NUL-terminated (n bytes) or NULL. */
typedef struct seg_value {
  int kind;
  const char *s;
  size_t n;
} seg_value;

/* The members of the event object. */
enum {
  SEG_M_TYPE,
  SEG_M_EVENT,
  SEG_M_NAME,
  SEG_M_MESSAGE_ID,
  SEG_M_ANONYMOUS_ID,
  SEG_M_USER_ID,
  SEG_M_PREVIOUS_ID,
  SEG_M_GROUP_ID,
  SEG_M_TIMESTAMP,
  SEG_M_RECEIVED_AT,
  SEG_M_PROPERTIES,
  SEG_M_TRAITS,
  SEG_M_CONTEXT,
  SEG_M_SENT_AT, /* not read by the mapping; for the ingest server */
  SEG_M_COUNT
};

/* Members one level down (only recorded when the parent is an object). */
enum {
  SEG_S_PROPS_PATH, /* properties.path, .url, .referrer */
  SEG_S_PROPS_URL,
  SEG_S_PROPS_REFERRER,
  SEG_S_TRAITS_PATH, /* traits.path, .url, .referrer */
  SEG_S_TRAITS_URL,
  SEG_S_TRAITS_REFERRER,
  SEG_S_PAGE_PATH, /* context.page.path, .url, .referrer */
  SEG_S_PAGE_URL,
  SEG_S_PAGE_REFERRER,
  SEG_S_CTX_PAGE, /* context.page, .userAgent, .ip */
  SEG_S_CTX_USER_AGENT,
  SEG_S_CTX_IP,
  SEG_S_COUNT
};

typedef struct seg_members {
  int kind; /* SEG_V_* of the event value itself */
  seg_value m[SEG_M_COUNT];
  seg_value sub[SEG_S_COUNT];
} seg_members;

/*
 * Maps a record into *ev (which is overwritten): its strings point into
 * the record's strings, nothing is allocated.  0, or -1 with a message in
 * err (as seg_event_from_tree's).
 */
int seg_event_from_members(es_event *ev, const seg_members *mb,
                           int type_default, int64_t now_us, char *err,
                           size_t err_size);

/* ----------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------- */

/*
 * Appends *ev to out as one compact JSON object (no newline):
 *
 *   {"messageId":..,"type":..,"event":..,"timestamp":..,"receivedAt":..,
 *    "userId":..,"anonymousId":..,"properties":..[,"previousId":..]
 *    [,"groupId":..][,"context":{"page":{..},"userAgent":..,"ip":..}]}
 *
 * The first eight keys are always present (null when absent); the rest only
 * when set.  Times are ISO 8601 UTC with microseconds.  properties is
 * emitted as raw JSON when it is valid JSON, else as a JSON string, so the
 * output is valid JSON whatever is stored.  -1 on allocation failure (out
 * may then hold a partial object; the caller discards it).
 */
int seg_event_write(seg_buf *out, const es_event *ev);

/* ----------------------------------------------------------------------
 * ISO 8601
 * ---------------------------------------------------------------------- */

/*
 * Parses "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.fraction]]" followed by "Z",
 * "+HH:MM", "+HHMM", "+HH" (or "-" offsets) or nothing (= UTC), into
 * microseconds since the epoch (UTC).  A fraction finer than microseconds
 * is truncated.  "t", "z" and a space separator are accepted.  Leap seconds
 * (":60") are refused, and so are times outside years 0000..9999 once
 * converted to UTC (9999-12-31T23:00-02:00), so that every accepted time
 * formats back into this form.  Returns 0, or -1 when s is not such a time.
 */
int seg_iso8601_parse(const char *s, int64_t *us_out);

/*
 * Formats us as "YYYY-MM-DDTHH:MM:SS.ffffffZ" into buf (SEG_ISO8601_SIZE
 * bytes is always enough) and returns the length, or 0 when buf is too
 * small.  Years outside 0..9999 are written with as many digits as needed
 * (and a sign when negative), which seg_iso8601_parse does not read back.
 */
size_t seg_iso8601_format(int64_t us, char *buf, size_t size);

#endif /* SEGMENT_JSON_H */
