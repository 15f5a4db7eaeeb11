/*
 * body.c -- an ingest request body -> a batch of es_events (see body.h).
 *
 * The server's parse (ing_batch_parse) is one streaming pass of yajl's
 * callback API (seg_json_precheck only where the pass says it could
 * refuse the text: precheck_refuses): no tree, the strings of all
 * events copied once into one arena per request, and each event mapped by
 * segment_json's seg_event_from_members, the twin of the
 * seg_event_from_tree that esctl uses, so both agree on every field.  The
 * tree path (ing_batch_parse_tree: yajl_tree, then seg_event_from_tree)
 * is kept as the reference; fuzz_ingest_stream checks that both give the
 * same result for any input.  What is specific to HTTP ingest happens
 * here, in both paths:
 *
 *  1. Size: an event is measured as its compact JSON (json_size), so
 *     whitespace in the request does not count against 32 KB.
 *  2. Times: the server's receive time is the truth for receivedAt; the
 *     client's timestamp is shifted by (receivedAt - sentAt), which
 *     removes the client clock's error (Segment's rule).  A shift that
 *     takes the timestamp out of the years 0000-9999 (the ones
 *     receivedAt-style ISO 8601 can name) refuses the request with a 400
 *     naming sentAt: it is never clamped into a made-up time.
 *  3. All or nothing: one bad event refuses the request, so a client never
 *     has to guess which half of a batch was stored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl_parse.h>
#include <yajl_tree.h>
#include <zlib.h>

#include "body.h"

/* Generated messageIds: "es-" and 32 hex digits. */
#define GEN_ID_SIZE 36

/* A block of the arena that holds a streamed batch's strings. */
typedef struct ing_block {
  struct ing_block *next;
  size_t used, cap;
  char data[];
} ing_block;

void ing_batch_init(ing_batch *b) { memset(b, 0, sizeof *b); }

void ing_batch_free(ing_batch *b) {
  for (size_t i = 0; i < b->count; i++)
    seg_event_free(&b->events[i]);
  while (b->arena != NULL) {
    ing_block *next = b->arena->next;
    free(b->arena);
    b->arena = next;
  }
  free(b->events);
  free(b->write_key);
  free(b->gen_ids);
  ing_batch_init(b);
}

/* Sums what b holds in the heap (its events array's capacity cap). */
static size_t batch_mem(const ing_batch *b, size_t cap) {
  size_t n = cap * sizeof(seg_event) + b->count * GEN_ID_SIZE;
  for (const ing_block *k = b->arena; k != NULL; k = k->next)
    n += sizeof *k + k->cap;
  if (b->write_key != NULL)
    n += strlen(b->write_key) + 1;
  return n;
}

/* The events array starts at this many and doubles (st_end_event). */
#define ST_EVENTS_CAP_MIN 128

/* Admission's bound of a parse; see body.h. */
size_t ing_parse_bytes_max(size_t text_len, size_t events_max) {
  /* The events array and its twin (st_extra, 16 bytes) double: with a
   * realloc's old and new block, up to 3x their count at once. */
  size_t slots = 3 * events_max, scratch = text_len;
  if (slots < ST_EVENTS_CAP_MIN)
    slots = ST_EVENTS_CAP_MIN;
  if (scratch > 4 * ING_EVENT_BYTES_MAX)
    scratch = 4 * ING_EVENT_BYTES_MAX;
  return text_len + 1024 + scratch + 4096 + slots * (sizeof(seg_event) + 16) +
         events_max * (GEN_ID_SIZE + sizeof(es_event));
}

static int is_json_space(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* Counts the '{' that open the text or follow '[' or ','; see body.h.
 * memchr finds the '{' (a few per event): this runs on es-ingestd's loop
 * thread for every body, where a loop over every byte cost 8% of the
 * server's CPU (perf, 100-event bodies). */
size_t ing_events_max(const char *text, size_t len) {
  size_t n = 0;
  const char *p = text, *end = text + len;
  while (p < end && (p = memchr(p, '{', (size_t)(end - p))) != NULL) {
    const char *q = p;
    while (q > text && is_json_space(q[-1]))
      q--;
    if (q == text || q[-1] == '[' || q[-1] == ',')
      n++;
    p++;
  }
  return n;
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

/* 9999-12-31T23:59:59.999999Z, the last time ISO 8601 here can name. */
#define TS_US_MAX INT64_C(253402300799999999)

/* "batch[i]: " for event i of a batch, "" for a lone event: the prefix
 * of an event's error, formatted only when there is one (an snprintf per
 * event cost 4% of the server's instructions). */
static const char *event_where(char buf[32], int batched, size_t i) {
  if (!batched)
    return "";
  snprintf(buf, 32, "batch[%zu]: ", i);
  return buf;
}

/*
 * The server's fields of event i, both paths: receive time, timestamp
 * corrected for the client's clock skew (ts_string: the event had a
 * string "timestamp"; sent: its sentAt, else the body's, or NULL),
 * generated messageId.  -1 (err says why, naming batch[i] when batched)
 * when the correction leaves years 0000-9999 (invariant 2).
 */
static int stamp(ing_batch *b, size_t i, int ts_string, const char *sent,
                 int64_t now_us, uint64_t *rng, int batched, char *err,
                 size_t err_size) {
  es_event *ev = &b->events[i].ev;
  int64_t sent_us;
  ev->recv_us = now_us;
  if (!ts_string) {
    ev->ts_us = now_us; /* the mapping may have used receivedAt */
  } else if (sent != NULL && seg_iso8601_parse(sent, &sent_us) == 0) {
    int64_t ts = ev->ts_us + (now_us - sent_us); /* both in 0..TS_US_MAX */
    if (ts < 0 || ts > TS_US_MAX) {
      char where[32];
      snprintf(err, err_size,
               "%ssentAt: the clock skew it implies moves \"timestamp\" "
               "outside the years 0000-9999",
               event_where(where, batched, i));
      return -1;
    }
    ev->ts_us = ts;
  }
  if (ev->message_id == NULL) {
    char *id = b->gen_ids + i * GEN_ID_SIZE;
    uint64_t a = xorshift(rng), c = xorshift(rng);
    snprintf(id, GEN_ID_SIZE, "es-%016llx%016llx", (unsigned long long)a,
             (unsigned long long)c);
    ev->message_id = id;
  }
  return 0;
}

/* Maps event i (object obj) of the request; err names it. */
static int map_event(ing_batch *b, size_t i, yajl_val obj, yajl_val root,
                     int type, int64_t now_us, char *err, size_t err_size) {
  char msg[SEG_ERR_SIZE], where[32];
  size_t bytes = json_size(obj);
  if (bytes > ING_EVENT_BYTES_MAX) {
    snprintf(err, err_size, "%sevent is %zu bytes, over the %d KB limit",
             event_where(where, obj != root, i), bytes,
             ING_EVENT_BYTES_MAX / 1024);
    return -1;
  }
  if (seg_event_from_tree(&b->events[i], obj, type, now_us, msg, sizeof msg)) {
    snprintf(err, err_size, "%s%s", event_where(where, obj != root, i), msg);
    return -1;
  }
  b->bytes += bytes + sizeof(seg_event);
  return 0;
}

/* Parses a request body with yajl_tree (the reference); see body.h. */
int ing_batch_parse_tree(ing_batch *b, const char *json, size_t len, int type,
                         int64_t now_us, uint64_t *rng, char *err,
                         size_t err_size) {
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
    if (map_event(b, i, items[i], root, type, now_us, err, err_size))
      goto out;
  }
  b->count = n;
  b->mem_bytes = batch_mem(b, n);
  /* The server's fields once every event mapped, as the streaming parse
   * does (so both report the same first error). */
  for (size_t i = 0; i < n; i++) {
    yajl_val sent = get(items[i], "sentAt", yajl_t_string);
    if (sent == NULL && items[i] != root)
      sent = get(root, "sentAt", yajl_t_string);
    if (stamp(b, i, get(items[i], "timestamp", yajl_t_string) != NULL,
              sent ? sent->u.string : NULL, now_us, rng, type == 0, err,
              err_size))
      goto out;
  }
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

/* ----------------------------------------------------------------------
 * The streaming parse (ing_batch_parse)
 *
 * yajl's callbacks drive a small state machine that records, for each
 * event object, the first occurrence of every member seg_event_from_tree
 * would read (seg_members), re-serialises properties/traits as they go by
 * (exactly as segment_json's write_value would) and measures the event as
 * json_size would.  At the end of each event object,
 * seg_event_from_members applies the checks.  To keep the tree path's
 * precedence of errors, a bad event does not stop the parse: its message
 * is kept and the rest is only parsed for syntax (a JSON error anywhere
 * wins, as it does when yajl_tree parses the whole body first); the
 * server's stamping needs the root's sentAt, which may come after the
 * batch, so it runs at the end.
 * ---------------------------------------------------------------------- */

/* Deeper than seg_json_precheck lets through; a guard, never reached. */
#define ST_DEPTH_MAX (SEG_DEPTH_MAX + 8)

/* What the server needs of an event after the mapping. */
typedef struct st_extra {
  const char *sent; /* the event's first "sentAt", when a string */
  int ts_string;    /* whether its first "timestamp" is a string */
} st_extra;

typedef struct st_ctx {
  ing_batch *b;
  int type;
  int64_t now_us;
  int oom;
  int depth;                          /* open containers */
  unsigned char is_map[ST_DEPTH_MAX]; /* per open container */
  size_t nelem[ST_DEPTH_MAX];         /* members/elements so far */
  /* The root object. */
  int root_kind;
  size_t root_end; /* offset just past the root container, once closed */
  int deep;        /* nesting went past SEG_DEPTH_MAX */
  yajl_handle h;
  int root_pend; /* 0, or which of writeKey/sentAt/batch the next value is */
  int seen_write_key, seen_sent, seen_batch;
  int batch_kind; /* kind of the first "batch" */
  int batch_open; /* that array is open (at depth 2) */
  const char *root_sent;
  /* The events so far. */
  size_t cap;
  st_extra *extra;
  /* The current event. */
  int in_event;
  int ev_level; /* depth of its members */
  size_t ev_bytes;
  seg_members mb;
  seg_value *pend_m, *pend_ctx, *pend_page, *pend_sub;
  int ctx_level, page_level; /* depth of context's / page's members */
  int cap_level;             /* depth of the captured object's members */
  int cap_sub;               /* SEG_S_PROPS_PATH or SEG_S_TRAITS_PATH */
  seg_buf *cap_buf;
  seg_buf props, traits;
  /* The first bad event. */
  int failed;
  char err[ING_ERR_SIZE];
} st_ctx;

/* n bytes in the batch's arena (stable until ing_batch_free). */
static char *arena_alloc(ing_batch *b, size_t n) {
  ing_block *k = b->arena;
  if (k == NULL || k->cap - k->used < n) {
    size_t cap = k ? k->cap * 2 : 16384;
    if (cap < n)
      cap = n;
    if ((k = malloc(sizeof *k + cap)) == NULL)
      return NULL;
    k->next = b->arena;
    k->used = 0;
    k->cap = cap;
    b->arena = k;
  }
  char *p = k->data + k->used;
  k->used += n;
  return p;
}

/* A NUL-terminated copy of s[0..n) in the arena. */
static char *arena_str(ing_batch *b, const char *s, size_t n) {
  char *p = arena_alloc(b, n + 1);
  if (p != NULL) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

/* Appends one byte (a comma, colon or bracket of a captured object):
 * written in place when it fits, the call through seg_buf_put and its
 * memcpy cost 53 instructions per byte, 7 times per event. */
static int st_put1(seg_buf *o, char c) {
  if (o->len + 2 <= o->cap) {
    o->data[o->len++] = c;
    o->data[o->len] = '\0';
    return 0;
  }
  return seg_buf_put(o, &c, 1);
}

static int st_oom(st_ctx *s) {
  s->oom = 1;
  return 0; /* cancels the parse */
}

/* Records a value into a slot (strings and numbers copied). */
static int st_record(st_ctx *s, seg_value *v, int kind, const char *txt,
                     size_t len) {
  v->kind = kind;
  if (kind == SEG_V_STRING || kind == SEG_V_NUMBER) {
    if ((v->s = arena_str(s->b, txt, len)) == NULL)
      return -1;
    v->n = len;
  }
  return 0;
}

/* The slot of an event member named k, or NULL when the mapping ignores
 * it or an earlier member had the name. */
typedef struct st_name {
  const char *name;
  size_t len;
} st_name;
#define ST_NAME(s)                                                             \
  { s, sizeof s - 1 }

/* The index of k[0..n) among names, or -1. */
static int st_find(const st_name *names, int count, const char *k, size_t n) {
  for (int i = 0; i < count; i++)
    if (names[i].len == n && memcmp(names[i].name, k, n) == 0)
      return i;
  return -1;
}

/* The slot of an event member named k, or NULL when the mapping ignores
 * it or an earlier member had the name. */
static seg_value *st_member_slot(st_ctx *s, const char *k, size_t n) {
  static const st_name names[SEG_M_COUNT] = {
      [SEG_M_TYPE] = ST_NAME("type"),
      [SEG_M_EVENT] = ST_NAME("event"),
      [SEG_M_NAME] = ST_NAME("name"),
      [SEG_M_MESSAGE_ID] = ST_NAME("messageId"),
      [SEG_M_ANONYMOUS_ID] = ST_NAME("anonymousId"),
      [SEG_M_USER_ID] = ST_NAME("userId"),
      [SEG_M_PREVIOUS_ID] = ST_NAME("previousId"),
      [SEG_M_GROUP_ID] = ST_NAME("groupId"),
      [SEG_M_TIMESTAMP] = ST_NAME("timestamp"),
      [SEG_M_RECEIVED_AT] = ST_NAME("receivedAt"),
      [SEG_M_PROPERTIES] = ST_NAME("properties"),
      [SEG_M_TRAITS] = ST_NAME("traits"),
      [SEG_M_CONTEXT] = ST_NAME("context"),
      [SEG_M_SENT_AT] = ST_NAME("sentAt"),
  };
  int i = st_find(names, SEG_M_COUNT, k, n);
  return i >= 0 && s->mb.m[i].kind == SEG_V_ABSENT ? &s->mb.m[i] : NULL;
}

/* The slot among the 3 sub-members from `first` named k, as above. */
static seg_value *st_sub_slot(st_ctx *s, int first, const st_name *names,
                              const char *k, size_t n) {
  int i = st_find(names, 3, k, n);
  return i >= 0 && s->mb.sub[first + i].kind == SEG_V_ABSENT
             ? &s->mb.sub[first + i]
             : NULL;
}

/* Ends the current event: size limit, mapping, bookkeeping. */
static void st_end_event(st_ctx *s) {
  ing_batch *b = s->b;
  size_t i = b->count;
  char msg[SEG_ERR_SIZE], where[32];
  seg_members *mb = &s->mb;
  s->in_event = 0;
  if (s->ev_bytes > ING_EVENT_BYTES_MAX) {
    snprintf(s->err, sizeof s->err,
             "%sevent is %zu bytes, over the %d KB limit",
             event_where(where, s->type == 0, i), s->ev_bytes,
             ING_EVENT_BYTES_MAX / 1024);
    s->failed = 1;
    return;
  }
  if (mb->m[SEG_M_PROPERTIES].kind == SEG_V_OBJECT) {
    mb->m[SEG_M_PROPERTIES].s = s->props.data;
    mb->m[SEG_M_PROPERTIES].n = s->props.len;
  }
  if (mb->m[SEG_M_TRAITS].kind == SEG_V_OBJECT) {
    mb->m[SEG_M_TRAITS].s = s->traits.data;
    mb->m[SEG_M_TRAITS].n = s->traits.len;
  }
  if (i == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : ST_EVENTS_CAP_MIN;
    seg_event *ev = realloc(b->events, cap * sizeof *ev);
    if (ev != NULL)
      b->events = ev;
    st_extra *ex = realloc(s->extra, cap * sizeof *ex);
    if (ex != NULL)
      s->extra = ex;
    if (ev == NULL || ex == NULL) {
      s->oom = 1;
      return;
    }
    s->cap = cap;
  }
  seg_event *se = &b->events[i];
  se->storage = NULL;
  if (seg_event_from_members(&se->ev, mb, s->type, s->now_us, msg,
                             sizeof msg)) {
    snprintf(s->err, sizeof s->err, "%s%s", event_where(where, s->type == 0, i),
             msg);
    s->failed = 1;
    return;
  }
  if (se->ev.properties != NULL) { /* from a scratch buffer: copy it */
    size_t n =
        se->ev.properties == s->props.data ? s->props.len : s->traits.len;
    if ((se->ev.properties = arena_str(b, se->ev.properties, n)) == NULL) {
      s->oom = 1;
      return;
    }
  }
  s->extra[i].sent =
      mb->m[SEG_M_SENT_AT].kind == SEG_V_STRING ? mb->m[SEG_M_SENT_AT].s : NULL;
  s->extra[i].ts_string = mb->m[SEG_M_TIMESTAMP].kind == SEG_V_STRING;
  b->bytes += s->ev_bytes + sizeof(seg_event);
  b->count = i + 1;
}

/* A value of kind (txt[0..len) for strings and numbers) begins. */
static int st_value(st_ctx *s, int kind, const char *txt, size_t len) {
  int d = s->depth, container = kind == SEG_V_OBJECT || kind == SEG_V_ARRAY;
  if (s->failed)
    return 1;
  if (d > 0 && !s->is_map[d - 1])
    s->nelem[d - 1]++;
  if (d == 0) {
    s->root_kind = kind;
  } else if (d == 1 && s->root_pend != 0) {
    int pend = s->root_pend;
    s->root_pend = 0;
    if (pend == 1 && kind == SEG_V_STRING &&
        (s->b->write_key = strndup(txt, len)) == NULL)
      return st_oom(s);
    if (pend == 2 && kind == SEG_V_STRING &&
        (s->root_sent = arena_str(s->b, txt, len)) == NULL)
      return st_oom(s);
    if (pend == 3)
      s->batch_kind = kind;
  }
  /* As json_size counts it (null, true and false: their text). */
  size_t size = container ? 2 : kind == SEG_V_STRING ? len + 2 : len;
  if ((s->type != 0 && d == 0) || (s->batch_open && d == 2)) {
    /* An event begins. */
    memset(&s->mb, 0, sizeof s->mb);
    s->mb.kind = kind;
    s->in_event = 1;
    s->ev_bytes = size;
    s->ev_level = d + 1;
    s->pend_m = s->pend_ctx = s->pend_page = s->pend_sub = NULL;
    s->ctx_level = s->page_level = s->cap_level = 0;
    if (!container)
      st_end_event(s);
    return !s->oom;
  }
  if (!s->in_event)
    return 1;
  s->ev_bytes += size + (s->is_map[d - 1] ? 0 : 1);
  if (s->cap_level != 0 && d >= s->cap_level) {
    seg_buf *o = s->cap_buf;
    int r = 0;
    if (!s->is_map[d - 1] && s->nelem[d - 1] > 1)
      r = st_put1(o, ',');
    if (kind == SEG_V_STRING)
      r = r || seg_buf_put_json_string(o, txt, len);
    else if (container)
      r = r || st_put1(o, kind == SEG_V_OBJECT ? '{' : '[');
    else /* a number's text, or null, true, false */
      r = r || seg_buf_put(o, txt, len);
    if (r)
      return st_oom(s);
  }
  seg_value *slot = NULL;
  if (d == s->ev_level && s->pend_m != NULL) {
    slot = s->pend_m;
    s->pend_m = NULL;
    if (kind == SEG_V_OBJECT) {
      if (slot == &s->mb.m[SEG_M_PROPERTIES] ||
          slot == &s->mb.m[SEG_M_TRAITS]) {
        int props = slot == &s->mb.m[SEG_M_PROPERTIES];
        s->cap_buf = props ? &s->props : &s->traits;
        s->cap_sub = props ? SEG_S_PROPS_PATH : SEG_S_TRAITS_PATH;
        s->cap_level = d + 1;
        s->cap_buf->len = 0;
        if (st_put1(s->cap_buf, '{'))
          return st_oom(s);
      } else if (slot == &s->mb.m[SEG_M_CONTEXT]) {
        s->ctx_level = d + 1;
      }
    }
  } else if (d == s->ctx_level && s->pend_ctx != NULL) {
    slot = s->pend_ctx;
    s->pend_ctx = NULL;
    if (kind == SEG_V_OBJECT && slot == &s->mb.sub[SEG_S_CTX_PAGE])
      s->page_level = d + 1;
  } else if (d == s->page_level && s->pend_page != NULL) {
    slot = s->pend_page;
    s->pend_page = NULL;
  } else if (d == s->cap_level && s->pend_sub != NULL) {
    slot = s->pend_sub;
    s->pend_sub = NULL;
  }
  if (slot != NULL && st_record(s, slot, kind, txt, len))
    return st_oom(s);
  return 1;
}

static int st_start(st_ctx *s, int is_map) {
  if (s->failed)
    return 1;
  if (!st_value(s, is_map ? SEG_V_OBJECT : SEG_V_ARRAY, NULL, 0))
    return 0;
  if (s->depth == ST_DEPTH_MAX) { /* prescan's limit makes this unreachable */
    snprintf(s->err, sizeof s->err, "nested deeper than %d levels",
             SEG_DEPTH_MAX);
    s->failed = 1;
    return 1;
  }
  s->is_map[s->depth] = (unsigned char)is_map;
  s->nelem[s->depth] = 0;
  s->depth++;
  if (s->depth > SEG_DEPTH_MAX)
    s->deep = 1;
  if (s->depth == 2 && !is_map && s->type == 0 &&
      s->batch_kind == SEG_V_ARRAY && !s->batch_open && s->seen_batch == 1) {
    s->batch_open = 1;
    s->seen_batch = 2; /* the first "batch" only */
  }
  return 1;
}

static int st_end(st_ctx *s) {
  if (s->failed)
    return 1;
  int d = s->depth;
  if (s->in_event && s->cap_level != 0 && d >= s->cap_level) {
    if (st_put1(s->cap_buf, s->is_map[d - 1] ? '}' : ']'))
      return st_oom(s);
    if (d == s->cap_level)
      s->cap_level = 0;
  }
  if (d == s->ctx_level)
    s->ctx_level = 0;
  if (d == s->page_level)
    s->page_level = 0;
  s->depth = --d;
  if (d == 0 && s->root_end == 0)
    s->root_end = yajl_get_bytes_consumed(s->h);
  if (s->batch_open && d == 1)
    s->batch_open = 0;
  if (s->in_event && d == s->ev_level - 1)
    st_end_event(s);
  return !s->oom;
}

static int st_key(void *ud, const unsigned char *key, size_t n) {
  st_ctx *s = ud;
  const char *k = (const char *)key;
  int d = s->depth;
  static const st_name page_keys[3] = {ST_NAME("path"), ST_NAME("url"),
                                       ST_NAME("referrer")};
  static const st_name ctx_keys[3] = {ST_NAME("page"), ST_NAME("userAgent"),
                                      ST_NAME("ip")};
  static const st_name root_keys[3] = {ST_NAME("writeKey"), ST_NAME("sentAt"),
                                       ST_NAME("batch")};
  if (s->failed)
    return 1;
  s->nelem[d - 1]++;
  if (d == 1) {
    int r = st_find(root_keys, 3, k, n);
    s->root_pend = 0;
    if (r == 0 && !s->seen_write_key++)
      s->root_pend = 1;
    else if (r == 1 && !s->seen_sent++)
      s->root_pend = 2;
    else if (r == 2 && !s->seen_batch) {
      s->seen_batch = 1;
      s->root_pend = 3;
    }
  }
  if (!s->in_event || d < s->ev_level)
    return 1;
  s->ev_bytes += n + 4;
  if (d == s->ev_level && s->mb.kind == SEG_V_OBJECT)
    s->pend_m = st_member_slot(s, k, n);
  if (d == s->ctx_level)
    s->pend_ctx = st_sub_slot(s, SEG_S_CTX_PAGE, ctx_keys, k, n);
  if (d == s->page_level)
    s->pend_page = st_sub_slot(s, SEG_S_PAGE_PATH, page_keys, k, n);
  if (s->cap_level != 0 && d >= s->cap_level) {
    seg_buf *o = s->cap_buf;
    if ((s->nelem[d - 1] > 1 && st_put1(o, ',')) ||
        seg_buf_put_json_string(o, k, n) || st_put1(o, ':'))
      return st_oom(s);
    if (d == s->cap_level)
      s->pend_sub = st_sub_slot(s, s->cap_sub, page_keys, k, n);
  }
  return 1;
}

static int st_null(void *ud) { return st_value(ud, SEG_V_NULL, "null", 4); }

static int st_bool(void *ud, int v) {
  return st_value(ud, SEG_V_BOOL, v ? "true" : "false", v ? 4 : 5);
}

static int st_number(void *ud, const char *s, size_t n) {
  return st_value(ud, SEG_V_NUMBER, s, n);
}

static int st_string(void *ud, const unsigned char *s, size_t n) {
  return st_value(ud, SEG_V_STRING, (const char *)s, n);
}

static int st_start_map(void *ud) { return st_start(ud, 1); }
static int st_start_array(void *ud) { return st_start(ud, 0); }
static int st_end_any(void *ud) { return st_end(ud); }

/* Whether "\u0000" occurs in s[0..n) (memchr: glibc's memmem goes byte
 * by byte, a backslash is rare). */
static int has_u0000(const char *s, size_t n) {
  for (const char *p = s, *end = s + n;
       (p = memchr(p, '\\', (size_t)(end - p))) != NULL; p++)
    if ((size_t)(end - p) >= 6 && memcmp(p, "\\u0000", 6) == 0)
      return 1;
  return 0;
}

/*
 * Whether seg_json_precheck refuses a body the parse has been through
 * (its message then in err), run only when the outcome says it may: the
 * precheck's errors come first in the tree path, and a pass over every
 * byte of every body cost 7% of the server's instructions.  It can refuse
 * a text yajl parses only for a NUL byte or a "\u0000" (looked for before
 * the parse), nesting past SEG_DEPTH_MAX (s->deep) or text after the root
 * container (looked at here); any other refusal comes with a failed
 * parse or a failed event, and those run it.
 */
static int precheck_refuses(const st_ctx *s, yajl_status st, const char *json,
                            size_t len, char *err, size_t err_size) {
  char pre[ING_ERR_SIZE];
  int suspect = st != yajl_status_ok || s->oom || s->failed || s->deep ||
                s->root_kind != SEG_V_OBJECT ||
                (s->type == 0 && s->batch_kind != SEG_V_ARRAY);
  for (size_t i = s->root_end; !suspect && i < len; i++)
    suspect =
        json[i] != ' ' && json[i] != '\t' && json[i] != '\r' && json[i] != '\n';
  if (!suspect || seg_json_precheck(json, len, pre, sizeof pre) == 0)
    return 0;
  snprintf(err, err_size, "%s", pre);
  return 1;
}

/* Parses a request body in one pass; see body.h. */
int ing_batch_parse(ing_batch *b, const char *json, size_t len, int type,
                    int64_t now_us, uint64_t *rng, char *err, size_t err_size) {
  static const yajl_callbacks cb = {
      st_null,      st_bool, NULL,       NULL,           st_number, st_string,
      st_start_map, st_key,  st_end_any, st_start_array, st_end_any};
  st_ctx *s;
  int rc = -1, checked = 0;
  ing_batch_init(b);
  /* The precheck only where it can change the outcome (see below). */
  if (memchr(json, '\0', len) != NULL || has_u0000(json, len)) {
    if (seg_json_precheck(json, len, err, err_size))
      return -1;
    checked = 1;
  }
  if ((s = calloc(1, sizeof *s)) == NULL) {
    snprintf(err, err_size, "out of memory");
    return -1;
  }
  s->b = b;
  s->type = type;
  s->now_us = now_us;
  /* One block the size of the body holds every string of almost any
   * batch (unescaped strings are no longer than their JSON), instead of a
   * chain of doubling blocks that waste up to half of what they hold. */
  if (len > 0 && arena_alloc(b, len + 1024) != NULL)
    b->arena->used = 0;
  seg_buf_init(&s->props);
  seg_buf_init(&s->traits);
  yajl_handle h = yajl_alloc(&cb, NULL, s);
  if (h == NULL) {
    snprintf(err, err_size, "out of memory");
    goto out;
  }
  s->h = h;
  yajl_config(h, yajl_allow_comments, 1);
  yajl_status st = yajl_parse(h, (const unsigned char *)json, len);
  if (st == yajl_status_ok)
    st = yajl_complete_parse(h);
  if (!checked && precheck_refuses(s, st, json, len, err, err_size))
    goto out;
  if (s->oom) {
    snprintf(err, err_size, "out of memory");
    goto out;
  }
  if (st != yajl_status_ok) {
    char yerr[128];
    unsigned char *e = yajl_get_error(h, 1, (const unsigned char *)json, len);
    snprintf(yerr, sizeof yerr, "%s", e ? (const char *)e : "");
    yajl_free_error(h, e);
    yerr[strcspn(yerr, "\n")] = '\0';
    snprintf(err, err_size, "invalid JSON (%s)", yerr);
    goto out;
  }
  if (s->root_kind != SEG_V_OBJECT) {
    snprintf(err, err_size, "the body is not a JSON object");
    goto out;
  }
  if (type == 0 && s->batch_kind != SEG_V_ARRAY) {
    snprintf(err, err_size, "missing \"batch\" (an array of events)");
    goto out;
  }
  /* The server's fields, in order (as the tree path stamps). */
  if (b->count > 0 && (b->gen_ids = malloc(b->count * GEN_ID_SIZE)) == NULL) {
    snprintf(err, err_size, "out of memory");
    goto out;
  }
  if (s->failed) {
    snprintf(err, err_size, "%s", s->err);
    goto out;
  }
  for (size_t i = 0; i < b->count; i++) {
    const char *sent = s->extra[i].sent;
    if (sent == NULL && type == 0)
      sent = s->root_sent;
    if (stamp(b, i, s->extra[i].ts_string, sent, now_us, rng, type == 0, err,
              err_size))
      goto out;
  }
  b->mem_bytes = batch_mem(b, s->cap);
  rc = 0;
out:
  if (h != NULL)
    yajl_free(h);
  seg_buf_free(&s->props);
  seg_buf_free(&s->traits);
  free(s->extra);
  free(s);
  if (rc)
    ing_batch_free(b);
  return rc;
}
