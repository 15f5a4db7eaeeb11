/*
 * thrift.c -- the Thrift compact protocol writer and reader (thrift.h has
 * the wire rules and the invariants).
 */
#include "export/thrift.h"

#include <string.h>

void es__thrift_begin(es_thrift_w *w, es_buf *out) {
  memset(w, 0, sizeof *w);
  w->out = out;
}

static void w_u8(es_thrift_w *w, uint8_t v) {
  if (w->rc == 0)
    w->rc = es__buf_put_u8(w->out, v);
}

static void w_varint(es_thrift_w *w, uint64_t v) {
  if (w->rc == 0)
    w->rc = es__buf_put_varint(w->out, v);
}

static void w_field(es_thrift_w *w, int16_t id, int type) {
  int16_t delta = (int16_t)(id - w->last[w->depth]);
  if (delta > 0 && delta <= 15) {
    w_u8(w, (uint8_t)((delta << 4) | type));
  } else {
    w_u8(w, (uint8_t)type);
    w_varint(w, es__zigzag(id));
  }
  w->last[w->depth] = id;
}

void es__thrift_i32(es_thrift_w *w, int16_t id, int32_t v) {
  w_field(w, id, ES_TC_I32);
  w_varint(w, es__zigzag(v));
}

void es__thrift_i64(es_thrift_w *w, int16_t id, int64_t v) {
  w_field(w, id, ES_TC_I64);
  w_varint(w, es__zigzag(v));
}

void es__thrift_bool(es_thrift_w *w, int16_t id, int v) {
  w_field(w, id, v ? ES_TC_TRUE : ES_TC_FALSE);
}

void es__thrift_bin(es_thrift_w *w, int16_t id, const void *p, size_t n) {
  w_field(w, id, ES_TC_BINARY);
  w_varint(w, n);
  if (w->rc == 0)
    w->rc = es__buf_put(w->out, p, n);
}

void es__thrift_str(es_thrift_w *w, int16_t id, const char *s) {
  es__thrift_bin(w, id, s, strlen(s));
}

static void w_push(es_thrift_w *w) {
  if (w->depth + 1 >= ES_THRIFT_DEPTH_MAX) {
    if (w->rc == 0)
      w->rc = ES_ERR(ES_EINVAL, "thrift: structs nested too deep");
    return;
  }
  w->last[++w->depth] = 0;
}

void es__thrift_struct(es_thrift_w *w, int16_t id) {
  w_field(w, id, ES_TC_STRUCT);
  w_push(w);
}

void es__thrift_end(es_thrift_w *w) {
  w_u8(w, 0);
  if (w->depth > 0)
    w->depth--;
}

void es__thrift_list(es_thrift_w *w, int16_t id, int elem, uint32_t n) {
  w_field(w, id, ES_TC_LIST);
  if (n < 15) {
    w_u8(w, (uint8_t)((n << 4) | (uint32_t)elem));
  } else {
    w_u8(w, (uint8_t)(0xf0 | elem));
    w_varint(w, n);
  }
}

void es__thrift_elem_i32(es_thrift_w *w, int32_t v) {
  w_varint(w, es__zigzag(v));
}

void es__thrift_elem_str(es_thrift_w *w, const char *s) {
  size_t n = strlen(s);
  w_varint(w, n);
  if (w->rc == 0)
    w->rc = es__buf_put(w->out, s, n);
}

void es__thrift_elem_struct(es_thrift_w *w) { w_push(w); }

/* ---- reader ------------------------------------------------------------ */

void es__thrift_rbegin(es_thrift_r *r, const void *p, size_t n) {
  memset(r, 0, sizeof *r);
  r->rd = es__rd(p, n);
}

static int r_ok(es_thrift_r *r) {
  if (r->rd.bad)
    r->bad = 1;
  return !r->bad;
}

int es__thrift_field(es_thrift_r *r, int16_t *id_out) {
  *id_out = 0;
  if (!r_ok(r))
    return 0;
  uint8_t b = es__rd_u8(&r->rd);
  if (!r_ok(r))
    return 0;
  if (b == 0) {
    if (r->depth > 0)
      r->depth--;
    return 0;
  }
  int type = b & 0x0f;
  int delta = b >> 4;
  int16_t id = delta ? (int16_t)(r->last[r->depth] + delta)
                     : (int16_t)es__unzigzag(es__rd_varint(&r->rd));
  r->last[r->depth] = id;
  *id_out = id;
  if (!r_ok(r) || type == 0 || type > ES_TC_STRUCT) {
    r->bad = 1;
    return 0;
  }
  return type;
}

int64_t es__thrift_rint(es_thrift_r *r) {
  int64_t v = es__unzigzag(es__rd_varint(&r->rd));
  return r_ok(r) ? v : 0;
}

const uint8_t *es__thrift_rbin(es_thrift_r *r, size_t *n_out) {
  uint64_t n = es__rd_varint(&r->rd);
  *n_out = 0;
  if (!r_ok(r) || n > (uint64_t)(r->rd.end - r->rd.p)) {
    r->bad = 1;
    return NULL;
  }
  const uint8_t *p = es__rd_bytes(&r->rd, (size_t)n);
  if (!r_ok(r))
    return NULL;
  *n_out = (size_t)n;
  return p;
}

int es__thrift_rlist(es_thrift_r *r, uint32_t *n_out) {
  uint8_t b = es__rd_u8(&r->rd);
  uint64_t n = b >> 4;
  if (n == 15)
    n = es__rd_varint(&r->rd);
  *n_out = 0;
  /* Every element takes at least one byte, except booleans and empty
   * structs, which take one too: a size beyond the bytes left is bad. */
  if (!r_ok(r) || n > (uint64_t)(r->rd.end - r->rd.p)) {
    r->bad = 1;
    return 0;
  }
  *n_out = (uint32_t)n;
  return b & 0x0f;
}

void es__thrift_renter(es_thrift_r *r) {
  if (r->depth + 1 >= ES_THRIFT_DEPTH_MAX) {
    r->bad = 1;
    return;
  }
  r->last[++r->depth] = 0;
}

void es__thrift_skip(es_thrift_r *r, int t) {
  size_t n;
  uint32_t count;
  int16_t id;
  switch (t) {
  case ES_TC_TRUE:
  case ES_TC_FALSE:
    return; /* the value is in the field header */
  case ES_TC_BYTE:
    (void)es__rd_u8(&r->rd);
    break;
  case ES_TC_I16:
  case ES_TC_I32:
  case ES_TC_I64:
    (void)es__rd_varint(&r->rd);
    break;
  case ES_TC_DOUBLE:
    (void)es__rd_bytes(&r->rd, 8);
    break;
  case ES_TC_BINARY:
    (void)es__thrift_rbin(r, &n);
    break;
  case ES_TC_LIST:
  case ES_TC_SET: {
    int et = es__thrift_rlist(r, &count);
    if (++r->nest > ES_THRIFT_DEPTH_MAX) {
      r->bad = 1;
      break;
    }
    for (uint32_t i = 0; i < count && r_ok(r); i++) {
      if (et == ES_TC_TRUE || et == ES_TC_FALSE)
        (void)es__rd_u8(&r->rd); /* list booleans are a byte each */
      else
        es__thrift_skip(r, et);
    }
    r->nest--;
    break;
  }
  case ES_TC_MAP: {
    uint64_t m = es__rd_varint(&r->rd);
    if (m == 0)
      break;
    uint8_t kv = es__rd_u8(&r->rd);
    if (m > (uint64_t)(r->rd.end - r->rd.p)) {
      r->bad = 1;
      break;
    }
    if (++r->nest > ES_THRIFT_DEPTH_MAX) {
      r->bad = 1;
      break;
    }
    for (uint64_t i = 0; i < m && r_ok(r); i++) {
      es__thrift_skip(r, kv >> 4);
      es__thrift_skip(r, kv & 0x0f);
    }
    r->nest--;
    break;
  }
  case ES_TC_STRUCT: {
    es__thrift_renter(r);
    int ft;
    while (r_ok(r) && (ft = es__thrift_field(r, &id)) != 0)
      es__thrift_skip(r, ft);
    break;
  }
  default:
    r->bad = 1;
  }
  (void)r_ok(r);
}
