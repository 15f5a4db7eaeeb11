/*
 * body.c -- an ingest request body -> a batch of es_events (see body.h).
 *
 * The body is parsed once with yajl's tree API (after seg_json_precheck,
 * which keeps yajl_tree away from NUL bytes and deep nesting), and each
 * event object is mapped by segment_json's seg_event_from_tree, so esctl
 * and the server agree on every field.  What is specific to HTTP ingest
 * happens here:
 *
 *  1. Size: an event is measured as its compact JSON (json_size), so
 *     whitespace in the request does not count against 32 KB.
 *  2. Times: the server's receive time is the truth for receivedAt; the
 *     client's timestamp is shifted by (receivedAt - sentAt), which
 *     removes the client clock's error (Segment's rule).
 *  3. All or nothing: one bad event refuses the request, so a client never
 *     has to guess which half of a batch was stored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl_tree.h>
#include <zlib.h>

#include "body.h"

/* Generated messageIds: "es-" and 32 hex digits. */
#define GEN_ID_SIZE 36

void ing_batch_init(ing_batch *b) { memset(b, 0, sizeof *b); }

void ing_batch_free(ing_batch *b) {
  for (size_t i = 0; i < b->count; i++)
    seg_event_free(&b->events[i]);
  free(b->events);
  free(b->write_key);
  free(b->gen_ids);
  ing_batch_init(b);
}

/* Inflates with a cap; see body.h. */
int ing_inflate(const char *in, size_t n, size_t cap_bytes, char **out,
                size_t *out_n, char *err, size_t err_size) {
  z_stream z;
  size_t cap = n * 4 + 1024;
  char *buf = NULL;
  int rc, ret = -1;
  *out = NULL;
  *out_n = 0;
  if (cap > cap_bytes + 1)
    cap = cap_bytes + 1;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 32 + MAX_WBITS) != Z_OK) { /* gzip or zlib */
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  if ((buf = malloc(cap + 1)) == NULL) {
    snprintf(err, err_size, "out of memory");
    goto out;
  }
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)n;
  for (;;) {
    z.next_out = (Bytef *)buf + z.total_out;
    z.avail_out = (uInt)(cap - z.total_out);
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc == Z_STREAM_END)
      break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      snprintf(err, err_size, "invalid compressed body (%s)",
               z.msg ? z.msg : "zlib error");
      goto out;
    }
    if (z.total_out > cap_bytes) {
      snprintf(err, err_size, "decompressed body is over %d KB",
               ING_REQUEST_BYTES_MAX / 1024);
      goto out;
    }
    if (z.avail_out == 0) { /* grow, up to one byte over the cap */
      size_t ncap = cap * 2 > cap_bytes + 1 ? cap_bytes + 1 : cap * 2;
      char *nb = realloc(buf, ncap + 1);
      if (nb == NULL) {
        snprintf(err, err_size, "out of memory");
        goto out;
      }
      buf = nb;
      cap = ncap;
    } else if (z.avail_in == 0) {
      snprintf(err, err_size, "truncated compressed body");
      goto out;
    }
  }
  if (z.avail_in != 0) {
    snprintf(err, err_size, "data after the end of the compressed body");
    goto out;
  }
  buf[z.total_out] = '\0';
  *out_n = z.total_out;
  *out = buf;
  buf = NULL;
  ret = 0;
out:
  inflateEnd(&z);
  free(buf);
  return ret;
}

/* The length of v written as compact JSON (escapes not counted). */
static size_t json_size(yajl_val v) {
  size_t n = 0;
  if (v == NULL)
    return 0;
  switch (v->type) {
  case yajl_t_string:
    return strlen(v->u.string) + 2;
  case yajl_t_number:
    return strlen(v->u.number.r);
  case yajl_t_true:
  case yajl_t_null:
    return 4;
  case yajl_t_false:
    return 5;
  case yajl_t_object:
    for (size_t i = 0; i < v->u.object.len; i++)
      n += strlen(v->u.object.keys[i]) + 4 + json_size(v->u.object.values[i]);
    return n + 2;
  case yajl_t_array:
    for (size_t i = 0; i < v->u.array.len; i++)
      n += 1 + json_size(v->u.array.values[i]);
    return n + 2;
  default:
    return 0;
  }
}

static yajl_val get(yajl_val obj, const char *key, yajl_type type) {
  const char *path[2] = {key, NULL};
  return yajl_tree_get(obj, path, type);
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s ? *s : 0x9E3779B97F4A7C15u;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/*
 * The server's fields of one mapped event: receive time, skew-corrected
 * timestamp, generated messageId.
 */
static void stamp(ing_batch *b, size_t i, yajl_val obj, yajl_val root,
                  int64_t now_us, uint64_t *rng) {
  es_event *ev = &b->events[i].ev;
  int64_t sent_us;
  yajl_val sent = get(obj, "sentAt", yajl_t_string);
  if (sent == NULL && obj != root)
    sent = get(root, "sentAt", yajl_t_string);
  ev->recv_us = now_us;
  if (get(obj, "timestamp", yajl_t_string) == NULL) {
    ev->ts_us = now_us; /* seg_event_from_tree may have used receivedAt */
  } else if (sent != NULL && seg_iso8601_parse(sent->u.string, &sent_us) == 0) {
    int64_t ts = ev->ts_us + (now_us - sent_us);
    ev->ts_us = ts < 0 ? 0 : ts; /* a wild sentAt cannot make it invalid */
  }
  if (ev->message_id == NULL) {
    char *id = b->gen_ids + i * GEN_ID_SIZE;
    uint64_t a = xorshift(rng), c = xorshift(rng);
    snprintf(id, GEN_ID_SIZE, "es-%016llx%016llx", (unsigned long long)a,
             (unsigned long long)c);
    ev->message_id = id;
  }
}

/* Maps event i (object obj) of the request; err names it. */
static int map_event(ing_batch *b, size_t i, yajl_val obj, yajl_val root,
                     int type, int64_t now_us, uint64_t *rng, char *err,
                     size_t err_size) {
  char msg[SEG_ERR_SIZE], where[32] = "";
  size_t bytes = json_size(obj);
  if (obj != root)
    snprintf(where, sizeof where, "batch[%zu]: ", i);
  if (bytes > ING_EVENT_BYTES_MAX) {
    snprintf(err, err_size, "%sevent is %zu bytes, over the %d KB limit", where,
             bytes, ING_EVENT_BYTES_MAX / 1024);
    return -1;
  }
  if (seg_event_from_tree(&b->events[i], obj, type, now_us, msg, sizeof msg)) {
    snprintf(err, err_size, "%s%s", where, msg);
    return -1;
  }
  stamp(b, i, obj, root, now_us, rng);
  b->bytes += bytes + sizeof(seg_event);
  return 0;
}

/* Parses a request body; see body.h. */
int ing_batch_parse(ing_batch *b, const char *json, size_t len, int type,
                    int64_t now_us, uint64_t *rng, char *err, size_t err_size) {
  char yerr[128];
  yajl_val root = NULL, *items = NULL;
  size_t n = 1;
  int rc = -1;
  ing_batch_init(b);
  if (seg_json_precheck(json, len, err, err_size))
    return -1;
  if ((root = yajl_tree_parse(json, yerr, sizeof yerr)) == NULL) {
    yerr[strcspn(yerr, "\n")] = '\0';
    snprintf(err, err_size, "invalid JSON (%s)", yerr);
    return -1;
  }
  if (!YAJL_IS_OBJECT(root)) {
    snprintf(err, err_size, "the body is not a JSON object");
    goto out;
  }
  yajl_val key = get(root, "writeKey", yajl_t_string);
  if (key != NULL && (b->write_key = strdup(key->u.string)) == NULL)
    goto oom;
  items = &root;
  if (type == 0) {
    yajl_val arr = get(root, "batch", yajl_t_array);
    if (arr == NULL) {
      snprintf(err, err_size, "missing \"batch\" (an array of events)");
      goto out;
    }
    items = arr->u.array.values;
    n = arr->u.array.len;
  }
  if (n > 0) {
    b->events = calloc(n, sizeof *b->events);
    b->gen_ids = malloc(n * GEN_ID_SIZE);
    if (b->events == NULL || b->gen_ids == NULL)
      goto oom;
  }
  for (size_t i = 0; i < n; i++) {
    b->count = i; /* the events mapped so far are freed on failure */
    if (map_event(b, i, items[i], root, type, now_us, rng, err, err_size))
      goto out;
  }
  b->count = n;
  rc = 0;
  goto out;
oom:
  snprintf(err, err_size, "out of memory");
out:
  yajl_tree_free(root);
  if (rc)
    ing_batch_free(b);
  return rc;
}

/* The type an endpoint implies; see body.h. */
int ing_endpoint_type(const char *path, size_t len) {
  static const struct {
    const char *name;
    int type;
  } eps[] = {
      {"track", ES_TYPE_TRACK},
      {"t", ES_TYPE_TRACK},
      {"page", ES_TYPE_PAGE},
      {"p", ES_TYPE_PAGE},
      {"identify", ES_TYPE_IDENTIFY},
      {"i", ES_TYPE_IDENTIFY},
      {"alias", ES_TYPE_ALIAS},
      {"a", ES_TYPE_ALIAS},
      {"group", ES_TYPE_GROUP},
      {"g", ES_TYPE_GROUP},
      {"screen", ES_TYPE_SCREEN},
      {"s", ES_TYPE_SCREEN},
      {"batch", 0},
      {"b", 0},
  };
  if (len < 5 || memcmp(path, "/v1/", 4) != 0)
    return -1;
  path += 4, len -= 4;
  if (path[len - 1] == '/') /* tolerate a trailing slash */
    len--;
  for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++)
    if (strlen(eps[i].name) == len && memcmp(eps[i].name, path, len) == 0)
      return eps[i].type;
  return -1;
}
