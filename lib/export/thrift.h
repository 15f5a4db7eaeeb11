/*
 * thrift.h -- the Thrift compact protocol, as much of it as a Parquet
 * footer needs: a writer into an es_buf and a bounds-checked reader.
 *
 * Parquet's metadata (FileMetaData, PageHeader, ...) is Thrift structs in
 * the compact protocol (apache/thrift doc/specs/thrift-compact-protocol.md):
 * a field is a header byte (delta of its id from the previous field's id
 * in the high nibble, its type in the low nibble; or type then a zigzag
 * varint id when the delta does not fit in 1..15), integers are zigzag
 * varints, binary is a varint length then the bytes, a list is a header
 * (size in the high nibble and element type, or 0xF then a varint size)
 * then the elements, a struct ends with a 0 byte.  Booleans in fields are
 * the type nibble itself (1 true, 2 false).
 *
 * Invariants:
 *  1. The writer keeps a stack of the last field id of each open struct
 *     (ES_THRIFT_DEPTH_MAX deep): a nested struct starts at id 0 and the
 *     outer one resumes at its own id when the inner one ends.
 *  2. The first error (ES_ENOMEM, or a nesting deeper than the stack)
 *     sticks in w->rc: every later call does nothing, and the caller looks
 *     at rc once at the end.
 *  3. The reader never reads past its bytes and never recurses deeper
 *     than ES_THRIFT_DEPTH_MAX: bad input sets r->bad, never crashes.
 */
#ifndef ES_THRIFT_H
#define ES_THRIFT_H

#include <stdint.h>

#include "base/codec.h"

#define ES_THRIFT_DEPTH_MAX 16

/* Compact protocol type nibbles. */
#define ES_TC_TRUE 1
#define ES_TC_FALSE 2
#define ES_TC_BYTE 3
#define ES_TC_I16 4
#define ES_TC_I32 5
#define ES_TC_I64 6
#define ES_TC_DOUBLE 7
#define ES_TC_BINARY 8
#define ES_TC_LIST 9
#define ES_TC_SET 10
#define ES_TC_MAP 11
#define ES_TC_STRUCT 12

typedef struct es_thrift_w {
  es_buf *out; /* borrowed */
  int rc;      /* first error (2) */
  int depth;
  int16_t last[ES_THRIFT_DEPTH_MAX];
} es_thrift_w;

/* Starts writing a top-level struct into out (appends). */
void es__thrift_begin(es_thrift_w *w, es_buf *out);

/* Field writers: id is the field id of the current struct. */
void es__thrift_i32(es_thrift_w *w, int16_t id, int32_t v);
void es__thrift_i64(es_thrift_w *w, int16_t id, int64_t v);
void es__thrift_bool(es_thrift_w *w, int16_t id, int v);
void es__thrift_bin(es_thrift_w *w, int16_t id, const void *p, size_t n);
void es__thrift_str(es_thrift_w *w, int16_t id, const char *s);
/* A struct field: write its fields, then es__thrift_end. */
void es__thrift_struct(es_thrift_w *w, int16_t id);
/* Ends the innermost open struct (or the top-level one). */
void es__thrift_end(es_thrift_w *w);
/* A list field header of n elements of type elem (ES_TC_*); then write
 * the elements with the element writers below. */
void es__thrift_list(es_thrift_w *w, int16_t id, int elem, uint32_t n);
/* List elements. */
void es__thrift_elem_i32(es_thrift_w *w, int32_t v);
void es__thrift_elem_str(es_thrift_w *w, const char *s);
/* A struct element of a list: write its fields, then es__thrift_end. */
void es__thrift_elem_struct(es_thrift_w *w);

/*
 * The reader: a minimal walker over compact-protocol structs.  It reads
 * a field header (es__thrift_field: 0 at the struct's end, else the type
 * with *id_out set), values of the scalar types, and skips any value it
 * does not want.  Malformed input sets r->bad (invariant 3).
 */
typedef struct es_thrift_r {
  es_rd rd;
  int bad;
  int depth;
  int nest; /* lists and maps being skipped, inside one another */
  int16_t last[ES_THRIFT_DEPTH_MAX];
} es_thrift_r;

void es__thrift_rbegin(es_thrift_r *r, const void *p, size_t n);
/* Next field of the current struct: its type (0 at the stop byte, which
 * also closes the struct), *id_out its id. */
int es__thrift_field(es_thrift_r *r, int16_t *id_out);
int64_t es__thrift_rint(es_thrift_r *r); /* i16/i32/i64 */
/* Binary/string: borrowed pointer, *n_out bytes; NULL when bad. */
const uint8_t *es__thrift_rbin(es_thrift_r *r, size_t *n_out);
/* List header: element type, *n_out elements. */
int es__thrift_rlist(es_thrift_r *r, uint32_t *n_out);
/* Enters a struct value (a field of type STRUCT or a list element). */
void es__thrift_renter(es_thrift_r *r);
/* Skips a value of type t (after its field or list header). */
void es__thrift_skip(es_thrift_r *r, int t);

#endif
