/*
 * legacy_csv.c -- CSV records, the column-mapping file, and a mapped row
 * as Segment JSON (see legacy_csv.h for the contract).
 *
 * Invariants:
 *  1. csv_record never reads past buf[len) and reports "need more" (0)
 *     rather than guessing when a record could go on past the buffer: a
 *     quote as the last byte may be the first of a doubled quote, a '\r'
 *     may be followed by '\n'.
 *  2. Every byte of the JSON csv_map_row writes comes through
 *     seg_buf_put_json_string, except a properties/traits column, which is
 *     inserted only after yajl parsed it as exactly one JSON object.  So a
 *     column's text can never add or change another member of the event.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "legacy_csv.h"

void csv_rec_init(csv_rec *r) {
  memset(r, 0, sizeof *r);
  seg_buf_init(&r->text);
}

void csv_rec_free(csv_rec *r) {
  seg_buf_free(&r->text);
  r->count = 0;
}

/*
 * A malformed record whose fault is at buf[at]: sets *used past the line
 * holding it, so the caller can go on with the next line, and returns -1;
 * or returns 0 (need more) when that line does not end inside buf yet,
 * so that where the next record starts never depends on how the input
 * was cut into buffers.
 */
static int fail_line(const char *buf, size_t len, int at_eof, size_t at,
                     size_t *used) {
  const char *nl = at < len ? memchr(buf + at, '\n', len - at) : NULL;
  if (nl == NULL && !at_eof)
    return 0;
  *used = nl ? (size_t)(nl - buf) + 1 : len;
  return -1;
}

/* Decodes a quoted field starting after its opening quote at buf[*i].
 * 1 done (*i past the closing quote), 0 need more, -1 unterminated. */
static int quoted_field(const char *buf, size_t len, int at_eof, size_t *i,
                        csv_rec *r) {
  for (;;) {
    const char *q = memchr(buf + *i, '"', len - *i);
    if (q == NULL)
      return at_eof ? -1 : 0;
    size_t n = (size_t)(q - (buf + *i));
    for (size_t k = 0; k < n; k++)
      r->lines += buf[*i + k] == '\n';
    if (seg_buf_put(&r->text, buf + *i, n) != 0)
      return -2;
    *i += n + 1;
    if (*i == len)
      return at_eof ? 1 : 0; /* a doubled quote may follow */
    if (buf[*i] != '"')
      return 1;
    if (seg_buf_put(&r->text, "\"", 1) != 0)
      return -2;
    (*i)++;
  }
}

int csv_record(const char *buf, size_t len, int at_eof, csv_rec *r,
               size_t *used, char *err, size_t err_size) {
  size_t i = 0;
  r->text.len = 0;
  r->count = 0;
  r->lines = 0;
  *used = 0;
  err[0] = '\0';
  if (len == 0)
    return 0;
  for (;;) {
    if (r->count == CSV_FIELDS_MAX) {
      snprintf(err, err_size, "more than %d fields", CSV_FIELDS_MAX);
      return fail_line(buf, len, at_eof, i, used);
    }
    csv_field *f = &r->f[r->count++];
    f->off = r->text.len;
    f->quoted = i < len && buf[i] == '"';
    if (f->quoted) {
      i++;
      int q = quoted_field(buf, len, at_eof, &i, r);
      if (q == 0)
        return 0;
      if (q < 0) {
        snprintf(err, err_size, "%s",
                 q == -1 ? "a quoted field is not closed before the end "
                           "of the file"
                         : "out of memory");
        *used = len;
        return -1;
      }
    } else {
      size_t k = i; /* buf is not NUL-terminated: bounded by len */
      while (k < len && buf[k] != ',' && buf[k] != '\r' && buf[k] != '\n' &&
             buf[k] != '"')
        k++;
      if (k < len && buf[k] == '"') {
        snprintf(err, err_size, "a quote inside an unquoted field");
        return fail_line(buf, len, at_eof, k, used);
      }
      if (seg_buf_put(&r->text, buf + i, k - i) != 0) {
        snprintf(err, err_size, "out of memory");
        *used = len;
        return -1;
      }
      i = k;
    }
    f->len = r->text.len - f->off;
    if (i == len) {
      if (!at_eof)
        return 0;
      *used = i;
      return 1;
    }
    char c = buf[i];
    if (c == ',') {
      i++;
      continue;
    }
    if (c == '\n' || (c == '\r' && i + 1 < len && buf[i + 1] == '\n')) {
      i += c == '\r' ? 2 : 1;
      r->lines++;
      *used = i;
      return 1;
    }
    if (c == '\r' && i + 1 == len && !at_eof)
      return 0;
    snprintf(err, err_size, "%s",
             c == '\r' ? "a carriage return not followed by a line feed"
                       : "text after the closing quote of a field");
    return fail_line(buf, len, at_eof, i, used);
  }
}

/* --- the mapping file --------------------------------------------------- */

static const char *const target_names[CSV_T_COUNT] = {
    [CSV_T_MESSAGE_ID] = "messageId",
    [CSV_T_TYPE] = "type",
    [CSV_T_EVENT] = "event",
    [CSV_T_NAME] = "name",
    [CSV_T_USER_ID] = "userId",
    [CSV_T_ANONYMOUS_ID] = "anonymousId",
    [CSV_T_PREVIOUS_ID] = "previousId",
    [CSV_T_GROUP_ID] = "groupId",
    [CSV_T_TIMESTAMP] = "timestamp",
    [CSV_T_PROPERTIES] = "properties",
    [CSV_T_TRAITS] = "traits",
    [CSV_T_PAGE_PATH] = "context.page.path",
    [CSV_T_PAGE_URL] = "context.page.url",
    [CSV_T_PAGE_REFERRER] = "context.page.referrer",
    [CSV_T_USER_AGENT] = "context.userAgent",
    [CSV_T_IP] = "context.ip",
    [CSV_T_PROPERTY] = "properties.NAME",
};

void csv_map_free(csv_map *m) {
  for (size_t i = 0; i < m->count; i++) {
    free(m->e[i].prop);
    free(m->e[i].column);
    free(m->e[i].literal);
  }
  m->count = 0;
}

static char *dup_n(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

/* Trims blanks around s[0..*n) in place. */
static const char *trim(const char *s, size_t *n) {
  while (*n && (s[0] == ' ' || s[0] == '\t'))
    s++, (*n)--;
  while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t' || s[*n - 1] == '\r'))
    (*n)--;
  return s;
}

/* The target of a field name, with *prop set for properties.NAME. */
static int target_of(const char *s, size_t n, const char **prop,
                     size_t *prop_n) {
  *prop = NULL;
  if (n > 11 && memcmp(s, "properties.", 11) == 0) {
    *prop = s + 11;
    *prop_n = n - 11;
    return CSV_T_PROPERTY;
  }
  for (int t = 0; t < CSV_T_PROPERTY; t++)
    if (strlen(target_names[t]) == n && memcmp(target_names[t], s, n) == 0)
      return t;
  return -1;
}

/* One "FIELD = VALUE" line into *e; -1 with err. */
static int map_line(const char *s, size_t n, csv_map_entry *e, char *err,
                    size_t err_size, size_t line_no) {
  const char *eq = memchr(s, '=', n);
  if (eq == NULL) {
    snprintf(err, err_size, "mapping line %zu: want FIELD = COLUMN", line_no);
    return -1;
  }
  size_t fn = (size_t)(eq - s), vn = n - fn - 1;
  const char *f = trim(s, &fn), *v = trim(eq + 1, &vn), *prop;
  size_t prop_n = 0;
  e->target = target_of(f, fn, &prop, &prop_n);
  if (e->target < 0) {
    snprintf(err, err_size,
             "mapping line %zu: unknown field '%.*s' (want messageId, type, "
             "event, name, userId, anonymousId, previousId, groupId, "
             "timestamp, properties, traits, context.page.path|url|referrer, "
             "context.userAgent, context.ip or properties.NAME)",
             line_no, (int)(fn > 64 ? 64 : fn), f);
    return -1;
  }
  if (vn == 0 || (vn >= 1 && v[0] == '"' && (vn < 2 || v[vn - 1] != '"'))) {
    snprintf(err, err_size,
             "mapping line %zu: want a column name or a \"literal\" after '='",
             line_no);
    return -1;
  }
  if (v[0] == '"')
    e->literal = dup_n(v + 1, vn - 2);
  else
    e->column = dup_n(v, vn);
  if (prop)
    e->prop = dup_n(prop, prop_n);
  if ((e->literal == NULL && e->column == NULL) || (prop && !e->prop)) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  return 0;
}

/* Whether entry k repeats an earlier target (or mixes properties forms). */
static const char *map_conflict(const csv_map *m, size_t k) {
  const csv_map_entry *e = &m->e[k];
  for (size_t i = 0; i < k; i++) {
    const csv_map_entry *o = &m->e[i];
    if (o->target == e->target &&
        (e->target != CSV_T_PROPERTY || strcmp(o->prop, e->prop) == 0))
      return "is mapped twice";
    if ((o->target == CSV_T_PROPERTY && e->target == CSV_T_PROPERTIES) ||
        (o->target == CSV_T_PROPERTIES && e->target == CSV_T_PROPERTY))
      return "mixes properties (a JSON column) with properties.NAME";
  }
  return NULL;
}

int csv_map_parse(const char *text, size_t len, csv_map *m, char *err,
                  size_t err_size) {
  size_t at = 0, line_no = 0;
  int has_ts = 0;
  m->count = 0;
  err[0] = '\0';
  while (at < len) {
    const char *nl = memchr(text + at, '\n', len - at);
    size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
    const char *s = trim(text + at, &n);
    at += (nl ? (size_t)(nl - (text + at)) + 1 : len - at);
    line_no++;
    if (n == 0 || s[0] == '#')
      continue;
    if (memchr(s, '\0', n) != NULL) {
      snprintf(err, err_size, "mapping line %zu: a NUL byte", line_no);
      goto fail;
    }
    if (m->count == CSV_MAP_ENTRIES_MAX) {
      snprintf(err, err_size, "mapping: more than %d lines",
               CSV_MAP_ENTRIES_MAX);
      goto fail;
    }
    csv_map_entry *e = &m->e[m->count++];
    memset(e, 0, sizeof *e);
    if (map_line(s, n, e, err, err_size, line_no) != 0)
      goto fail;
    const char *why = map_conflict(m, m->count - 1);
    if (why) {
      snprintf(err, err_size, "mapping line %zu: %s %s", line_no,
               target_names[e->target], why);
      goto fail;
    }
    has_ts |= e->target == CSV_T_TIMESTAMP;
  }
  if (!has_ts) {
    snprintf(err, err_size,
             "mapping: no 'timestamp = COLUMN' line (a backfill keeps the "
             "original event times)");
    goto fail;
  }
  return 0;
fail:
  csv_map_free(m);
  return -1;
}

int csv_map_bind(csv_map *m, const csv_rec *header, char *err,
                 size_t err_size) {
  for (size_t i = 0; i < header->count; i++)
    for (size_t j = 0; j < i; j++)
      if (header->f[i].len == header->f[j].len &&
          memcmp(header->text.data + header->f[i].off,
                 header->text.data + header->f[j].off, header->f[i].len) == 0) {
        snprintf(err, err_size, "header: column %zu has the name of column %zu",
                 i + 1, j + 1);
        return -1;
      }
  for (size_t k = 0; k < m->count; k++) {
    csv_map_entry *e = &m->e[k];
    if (e->column == NULL)
      continue;
    size_t n = strlen(e->column), i;
    for (i = 0; i < header->count; i++)
      if (header->f[i].len == n &&
          memcmp(header->text.data + header->f[i].off, e->column, n) == 0)
        break;
    if (i == header->count) {
      snprintf(err, err_size, "header: no column '%.64s' (mapped to %s)",
               e->column, target_names[e->target]);
      return -1;
    }
    e->col_idx = i;
  }
  return 0;
}

/* --- a row as Segment JSON ---------------------------------------------- */

/* The value of entry e in record r: 1 with s/n, 0 when absent (NULL). */
static int entry_value(const csv_map_entry *e, const csv_rec *r, const char **s,
                       size_t *n) {
  if (e->column == NULL) {
    *s = e->literal;
    *n = strlen(e->literal);
    return 1;
  }
  const csv_field *f = &r->f[e->col_idx];
  if (f->len == 0 && !f->quoted)
    return 0;
  *s = r->text.data + f->off;
  *n = f->len;
  return 1;
}

/* Appends ,"key": (the first member without the comma). */
static int put_key(seg_buf *out, int *first, const char *key) {
  if (!*first && seg_buf_put(out, ",", 1) != 0)
    return -1;
  *first = 0;
  if (seg_buf_put_json_string(out, key, strlen(key)) != 0)
    return -1;
  return seg_buf_put(out, ":", 1);
}

/* The length of the JSON value starting with '{' at s[0] (its closing
 * brace included), by brackets outside strings; n when it never closes. */
static size_t object_extent(const char *s, size_t n) {
  size_t depth = 0;
  int in_str = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (in_str) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_str = 0;
    } else if (c == '"') {
      in_str = 1;
    } else if (c == '{' || c == '[') {
      depth++;
    } else if ((c == '}' || c == ']') && --depth == 0) {
      return i + 1;
    }
  }
  return n;
}

/*
 * Whether s[0..n) is exactly one JSON object and blanks.  yajl validates
 * the object's extent; the extent is found apart because yajl alone
 * accepts a complete value followed by an unterminated string
 * ({"a":1}"} passes yajl_complete_parse and yajl_tree_parse).
 */
static int is_one_object(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
    i++;
  if (i == n || s[i] != '{' || memchr(s, '\0', n) != NULL)
    return 0;
  size_t end = i + object_extent(s + i, n - i);
  for (size_t k = end; k < n; k++)
    if (s[k] != ' ' && s[k] != '\t' && s[k] != '\r' && s[k] != '\n')
      return 0;
  yajl_handle y = yajl_alloc(NULL, NULL, NULL);
  if (y == NULL)
    return 0;
  int ok =
      yajl_parse(y, (const unsigned char *)s + i, end - i) == yajl_status_ok &&
      yajl_complete_parse(y) == yajl_status_ok;
  yajl_free(y);
  return ok;
}

/* A JSON-object column: checked whole by yajl, then inserted as its text
 * (invariant 2). */
static int put_object(seg_buf *out, const char *s, size_t n, const char *what,
                      char *err, size_t err_size) {
  if (!is_one_object(s, n))
    return snprintf(err, err_size, "column of %s is not a JSON object", what),
           -1;
  return seg_buf_put(out, s, n);
}

/* The members of one nested object from entries whose target is in
 * [lo, hi] (or CSV_T_PROPERTY), as "key":value pairs. */
static int put_group(const csv_map *m, const csv_rec *r, seg_buf *out, int lo,
                     int hi, const char *const *keys) {
  int first = 1;
  for (size_t k = 0; k < m->count; k++) {
    const csv_map_entry *e = &m->e[k];
    const char *s;
    size_t n;
    if (e->target < lo || e->target > hi || !entry_value(e, r, &s, &n))
      continue;
    const char *key =
        e->target == CSV_T_PROPERTY ? e->prop : keys[e->target - lo];
    if (put_key(out, &first, key) != 0 || seg_buf_put_json_string(out, s, n))
      return -1;
  }
  return 0;
}

/* Whether any entry with a target in [lo, hi] has a value in r. */
static int group_present(const csv_map *m, const csv_rec *r, int lo, int hi) {
  for (size_t k = 0; k < m->count; k++) {
    const char *s;
    size_t n;
    if (m->e[k].target >= lo && m->e[k].target <= hi &&
        entry_value(&m->e[k], r, &s, &n))
      return 1;
  }
  return 0;
}

static int put_context(const csv_map *m, const csv_rec *r, seg_buf *out,
                       int *first) {
  static const char *const page_keys[] = {"path", "url", "referrer"};
  static const char *const ctx_keys[] = {"userAgent", "ip"};
  if (!group_present(m, r, CSV_T_PAGE_PATH, CSV_T_IP))
    return 0;
  if (put_key(out, first, "context") != 0 || seg_buf_put(out, "{", 1) != 0)
    return -1;
  int inner_first = 1;
  if (group_present(m, r, CSV_T_PAGE_PATH, CSV_T_PAGE_REFERRER)) {
    if (put_key(out, &inner_first, "page") != 0 ||
        seg_buf_put(out, "{", 1) != 0 ||
        put_group(m, r, out, CSV_T_PAGE_PATH, CSV_T_PAGE_REFERRER, page_keys) !=
            0 ||
        seg_buf_put(out, "}", 1) != 0)
      return -1;
  }
  if (group_present(m, r, CSV_T_USER_AGENT, CSV_T_IP)) {
    if (!inner_first && seg_buf_put(out, ",", 1) != 0)
      return -1;
    if (put_group(m, r, out, CSV_T_USER_AGENT, CSV_T_IP, ctx_keys) != 0)
      return -1;
  }
  return seg_buf_put(out, "}", 1);
}

int csv_map_row(const csv_map *m, const csv_rec *r, size_t header_count,
                seg_buf *out, char *err, size_t err_size) {
  int first = 1;
  err[0] = '\0';
  if (r->count != header_count) {
    snprintf(err, err_size, "%zu fields where the header has %zu", r->count,
             header_count);
    return -1;
  }
  if (seg_buf_put(out, "{", 1) != 0)
    goto nomem;
  for (size_t k = 0; k < m->count; k++) {
    const csv_map_entry *e = &m->e[k];
    const char *s;
    size_t n;
    if (e->target > CSV_T_TRAITS || !entry_value(e, r, &s, &n))
      continue;
    if (put_key(out, &first, target_names[e->target]) != 0)
      goto nomem;
    if (e->target == CSV_T_PROPERTIES || e->target == CSV_T_TRAITS) {
      if (put_object(out, s, n, target_names[e->target], err, err_size) != 0)
        return -1;
    } else if (seg_buf_put_json_string(out, s, n) != 0) {
      goto nomem;
    }
  }
  if (group_present(m, r, CSV_T_PROPERTY, CSV_T_PROPERTY)) {
    if (put_key(out, &first, "properties") != 0 ||
        seg_buf_put(out, "{", 1) != 0 ||
        put_group(m, r, out, CSV_T_PROPERTY, CSV_T_PROPERTY, NULL) != 0 ||
        seg_buf_put(out, "}", 1) != 0)
      goto nomem;
  }
  if (put_context(m, r, out, &first) != 0 || seg_buf_put(out, "}", 1) != 0)
    goto nomem;
  return 0;
nomem:
  snprintf(err, err_size, "out of memory");
  return -1;
}
