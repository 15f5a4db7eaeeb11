/*
 * live.c -- what the event streams (GET /v1/stream) carry: trigger
 * firings as they happen, per-second counts by event type and a feed of
 * the events just received, for each tenant that has a stream open.
 *
 * Firings come from the library (es_trigger_options.fn) on its threads:
 * the writer's shard thread in embedded mode, the follower thread of a
 * read-only handle.  qd_live_trigger copies the firing into a bounded
 * queue under trig.mu and wakes the loop with uv_async_send; it never
 * blocks on anything but that mutex, so it never holds up an append.
 * When the queue is full the firing is dropped and counted
 * (es_queryd_triggers_dropped_total).
 *
 * Counts are differences: every second, for each tenant with a stream, a
 * tick in the thread pool asks es_query for the tenant's event counts by
 * type since a base time (answered from rollups) and the loop sends the
 * growth since the previous tick: the events that became visible during
 * that second, whatever their event time (a late event counts when it
 * arrives).  The base is the start of the minute 24 h before the
 * baseline was taken, and the baseline is taken again each hour (that
 * tick sends no counts), so the query stays small.
 *
 * The feed is a scan of the tenant's last live_window_s seconds by event
 * time (and any later event time), keeping the newest by receive time
 * (qd_latest_events: a future-dated event cannot pin it) among those
 * received after the previous tick's newest receive time minus
 * FEED_OVERLAP_US (appends on different writer threads become
 * visible slightly out of receive order); a ring of recently sent
 * messageId hashes keeps an event from being sent twice.
 *
 * Invariants:
 *  1. At most one tick per tenant is in the pool (tick_busy); the tick
 *     work alone touches the tenant's feed ring while it runs.
 *  2. A firing is in at most one place: the queue, a tenant's ring, or
 *     freed.  The webhook thread gets a copy.
 *  3. After qd_live_stop no uv_async_send happens (trig_closed, under
 *     trig.mu); before qd_live_start returns none can (it runs before
 *     es_open).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl_tree.h>

#include "server.h"

#define TICK_MS 1000
#define REBASE_US (INT64_C(3600) * 1000000)
#define BASE_BACK_US (INT64_C(86400) * 1000000)
#define FEED_OVERLAP_US (INT64_C(3) * 1000000)

static int trig_closed;

/* ----------------------------------------------------------------------
 * SSE framing
 * ---------------------------------------------------------------------- */

/* "event: name\ndata: json\n\n", a newline inside json continuing as a
 * further data line (the client joins them with \n). */
static int sse_put(seg_buf *b, const char *name, const char *json, size_t len) {
  if (seg_buf_put(b, "event: ", 7) || seg_buf_put(b, name, strlen(name)) ||
      seg_buf_put(b, "\ndata: ", 7))
    return -1;
  for (size_t i = 0; i < len; i++) {
    if (json[i] == '\r')
      continue;
    if (json[i] == '\n' ? seg_buf_put(b, "\ndata: ", 7)
                        : seg_buf_put(b, json + i, 1))
      return -1;
  }
  return seg_buf_put(b, "\n\n", 2);
}

static void broadcast(qd_tenant *t, const char *data, size_t len) {
  for (qd_conn *c = t->streams, *next; c; c = next) {
    next = qd_conn_stream_next(c); /* a send may cut (and unlink) c */
    qd_stream_send(c, data, len);
  }
}

/* ----------------------------------------------------------------------
 * Trigger firings
 * ---------------------------------------------------------------------- */

static void firing_free(qd_firing *f) {
  if (f) {
    free(f->person);
    free(f);
  }
}

/* {"rule","person","ts","firedAt","count"[,"replay":true]}: replay marks
 * a firing from before the stream connected. */
static int firing_json(seg_buf *b, const qd_firing *f, int replay) {
  char ts[SEG_ISO8601_SIZE], fired[SEG_ISO8601_SIZE], num[32];
  seg_iso8601_format(f->ts_us, ts, sizeof ts);
  seg_iso8601_format(f->fired_us, fired, sizeof fired);
  snprintf(num, sizeof num, ",\"count\":%u", f->count);
  return seg_buf_put(b, "{\"rule\":", 8) ||
         seg_buf_put_json_string(b, f->rule, strlen(f->rule)) ||
         seg_buf_put(b, ",\"person\":", 10) ||
         seg_buf_put_json_string(b, f->person, strlen(f->person)) ||
         seg_buf_put(b, ",\"ts\":\"", 7) || seg_buf_put(b, ts, strlen(ts)) ||
         seg_buf_put(b, "\",\"firedAt\":\"", 13) ||
         seg_buf_put(b, fired, strlen(fired)) || seg_buf_put(b, "\"", 1) ||
         seg_buf_put(b, num, strlen(num)) ||
         (replay && seg_buf_put(b, ",\"replay\":true", 14)) ||
         seg_buf_put(b, "}", 1);
}

int qd_firing_json(seg_buf *b, const qd_firing *f) {
  return firing_json(b, f, 0);
}

/* es_trigger_options.fn: on a library thread; copy, queue, wake. */
void qd_live_trigger(void *ud, const es_trigger *tr) {
  qd_server *srv = ud;
  qd_firing *f = calloc(1, sizeof *f);
  if (f == NULL || (f->person = strdup(tr->person ? tr->person : "")) == NULL) {
    free(f);
    pthread_mutex_lock(&srv->trig.mu);
    srv->trig.dropped++;
    pthread_mutex_unlock(&srv->trig.mu);
    return;
  }
  snprintf(f->tenant, sizeof f->tenant, "%s", tr->tenant);
  snprintf(f->rule, sizeof f->rule, "%s", tr->rule);
  f->ts_us = tr->ts_us;
  f->count = tr->count;
  f->fired_us = qd_now_us();
  pthread_mutex_lock(&srv->trig.mu);
  if (trig_closed || srv->trig.count >= QD_TRIGGERS_QUEUED_MAX) {
    srv->trig.dropped++;
    pthread_mutex_unlock(&srv->trig.mu);
    firing_free(f);
    return;
  }
  if (srv->trig.tail)
    srv->trig.tail->next = f;
  else
    srv->trig.head = f;
  srv->trig.tail = f;
  srv->trig.count++;
  uv_async_send(&srv->trig.async); /* invariant 3: under mu, not closed */
  pthread_mutex_unlock(&srv->trig.mu);
}

static void ring_push(qd_tenant *t, qd_firing *f) {
  size_t slot = (t->firings_head + t->firings_count) % QD_FIRINGS_KEPT;
  if (t->firings_count == QD_FIRINGS_KEPT) {
    firing_free(t->firings[t->firings_head]);
    t->firings_head = (t->firings_head + 1) % QD_FIRINGS_KEPT;
    slot = (t->firings_head + t->firings_count - 1) % QD_FIRINGS_KEPT;
  } else {
    t->firings_count++;
  }
  t->firings[slot] = f;
}

static void on_trig_async(uv_async_t *a) {
  qd_server *srv = a->data;
  pthread_mutex_lock(&srv->trig.mu);
  qd_firing *f = srv->trig.head;
  srv->trig.head = srv->trig.tail = NULL;
  srv->trig.count = 0;
  pthread_mutex_unlock(&srv->trig.mu);
  while (f) {
    qd_firing *next = f->next;
    f->next = NULL;
    srv->m.triggers++;
    qd_webhooks_fire(srv, f); /* copies (invariant 2) */
    qd_tenant *t = qd_tenant_by_id(srv, f->tenant);
    if (t == NULL) {
      firing_free(f); /* no token names the tenant: no one to tell */
    } else {
      seg_buf b, j;
      seg_buf_init(&b);
      seg_buf_init(&j);
      if (t->streams && firing_json(&j, f, 0) == 0 &&
          sse_put(&b, "trigger", j.data, j.len) == 0)
        broadcast(t, b.data, b.len);
      seg_buf_free(&b);
      seg_buf_free(&j);
      ring_push(t, f);
    }
    f = next;
  }
}

/* ----------------------------------------------------------------------
 * The feed
 * ---------------------------------------------------------------------- */

static uint64_t id_hash(const char *s) {
  uint64_t h = UINT64_C(1469598103934665603);
  for (; s && *s; s++)
    h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
  return h ? h : 1;
}

static int seen_has(const qd_tenant *t, uint64_t h) {
  for (size_t i = 0; i < QD_FEED_SEEN; i++)
    if (t->feed_seen[i] == h)
      return 1;
  return 0;
}

/* One event kept by the feed: its receive time, its place in the scan
 * (ties), and its JSON. */
typedef struct feed_slot {
  int64_t recv_us;
  uint64_t seq;
  seg_buf json;
} feed_slot;

/* Whether a was received before b (the scan's order breaks ties). */
static int feed_older(const feed_slot *a, const feed_slot *b) {
  return a->recv_us != b->recv_us ? a->recv_us < b->recv_us : a->seq < b->seq;
}

/* Restores the min-heap (oldest received at heap[0]) below i. */
static void feed_sift_down(feed_slot *heap, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && feed_older(&heap[l], &heap[m]))
      m = l;
    if (r < n && feed_older(&heap[r], &heap[m]))
      m = r;
    if (m == i)
      return;
    feed_slot t = heap[i];
    heap[i] = heap[m];
    heap[m] = t;
    i = m;
  }
}

static void feed_sift_up(feed_slot *heap, size_t i) {
  while (i > 0 && feed_older(&heap[i], &heap[(i - 1) / 2])) {
    feed_slot t = heap[i];
    heap[i] = heap[(i - 1) / 2];
    heap[(i - 1) / 2] = t;
    i = (i - 1) / 2;
  }
}

static int feed_newer_first(const void *a, const void *b) {
  return feed_older(b, a) ? -1 : feed_older(a, b) ? 1 : 0;
}

/*
 * The feed orders by receive time, not event time: an event dated in the
 * future (a wrong client clock, or anyone with the public write key)
 * stays only until `limit` newer events arrive, instead of pinning the
 * top of the feed.  A min-heap of `limit` slots keeps the newest received
 * while the scan runs (each event is written as JSON only when it
 * enters).
 */
int qd_latest_events(qd_server *srv, const char *tenant, size_t limit,
                     int64_t recv_after_us, qd_tenant *seen, seg_buf *out,
                     int64_t *max_recv_out) {
  return qd_range_events(
      srv, tenant, qd_now_us() - srv->cfg.live_window_s * INT64_C(1000000),
      INT64_MAX, limit, recv_after_us, seen, out, max_recv_out);
}

int qd_range_events(qd_server *srv, const char *tenant, int64_t from_us,
                    int64_t to_us, size_t limit, int64_t recv_after_us,
                    qd_tenant *seen, seg_buf *out, int64_t *max_recv_out) {
  es_scan_spec spec;
  es_cursor *cur;
  es_event ev;
  int rc;
  size_t n = 0;
  uint64_t seq = 0;
  int64_t max_recv = recv_after_us;
  if (limit == 0)
    limit = 1;
  feed_slot *heap = calloc(limit, sizeof *heap);
  if (heap == NULL)
    return ES_ENOMEM;
  es_scan_spec_init(&spec);
  spec.tenant = tenant;
  spec.from_us = from_us;
  spec.to_us = to_us;
  if ((rc = es_scan(srv->db, &spec, &cur)) != ES_OK) {
    free(heap);
    return rc;
  }
  while ((rc = es_cursor_next(cur, &ev)) == 1) {
    if (ev.recv_us <= recv_after_us)
      continue;
    if (ev.recv_us > max_recv)
      max_recv = ev.recv_us;
    if (seen) {
      uint64_t h = id_hash(ev.message_id);
      if (seen_has(seen, h))
        continue;
      seen->feed_seen[seen->feed_seen_next++ % QD_FEED_SEEN] = h;
    }
    feed_slot cand = {ev.recv_us, seq++, {0}};
    size_t at;
    if (n < limit) {
      at = n++;
      seg_buf_init(&heap[at].json);
    } else if (feed_older(&heap[0], &cand)) {
      at = 0; /* replaces the oldest received */
    } else {
      continue;
    }
    heap[at].recv_us = cand.recv_us;
    heap[at].seq = cand.seq;
    heap[at].json.len = 0;
    if (seg_event_write(&heap[at].json, &ev)) {
      rc = ES_ENOMEM;
      break;
    }
    if (at == 0 && n == limit)
      feed_sift_down(heap, n, 0);
    else
      feed_sift_up(heap, at);
  }
  es_cursor_close(cur);
  qsort(heap, n, sizeof *heap, feed_newer_first);
  if (rc == 0 && seg_buf_put(out, "{\"events\":[", 11))
    rc = ES_ENOMEM;
  for (size_t i = 0; rc == 0 && i < n; i++) { /* newest received first */
    if ((i && seg_buf_put(out, ",", 1)) ||
        seg_buf_put(out, heap[i].json.data, heap[i].json.len))
      rc = ES_ENOMEM;
  }
  if (rc == 0 && seg_buf_put(out, "]}", 2))
    rc = ES_ENOMEM;
  for (size_t i = 0; i < n; i++)
    seg_buf_free(&heap[i].json);
  free(heap);
  if (max_recv_out)
    *max_recv_out = max_recv;
  if (rc == 0)
    return (int)n;
  return rc < 0 ? rc : ES_EIO;
}

/* ----------------------------------------------------------------------
 * Ticks
 * ---------------------------------------------------------------------- */

typedef struct tick_work {
  uv_work_t req;
  qd_server *srv;
  qd_tenant *t;
  int64_t base_us, feed_after_us, max_recv_us, tick_us;
  int rc, feed_count;
  uint64_t totals[QD_TYPES];
  seg_buf feed;
} tick_work;

/* Totals by type since base_us into tw->totals (es_query, rollups). */
static int tick_totals(tick_work *tw) {
  char from[SEG_ISO8601_SIZE], spec[128], *res = NULL;
  const char *rows_path[] = {"rows", NULL}, *type_path[] = {"type", NULL},
             *count_path[] = {"count", NULL};
  seg_iso8601_format(tw->base_us, from, sizeof from);
  snprintf(spec, sizeof spec, "{\"from\":\"%s\",\"groupBy\":[\"type\"]}", from);
  int rc = es_query(tw->srv->db, tw->t->id, spec, &res);
  if (rc != ES_OK)
    return rc;
  yajl_val root = yajl_tree_parse(res, NULL, 0);
  es_free(res);
  yajl_val rows = yajl_tree_get(root, rows_path, yajl_t_array);
  for (size_t i = 0; rows && i < rows->u.array.len; i++) {
    yajl_val ty =
        yajl_tree_get(rows->u.array.values[i], type_path, yajl_t_string);
    yajl_val n =
        yajl_tree_get(rows->u.array.values[i], count_path, yajl_t_number);
    int type = ty ? es_type_from_name(ty->u.string) : 0;
    if (type > 0 && type < QD_TYPES && n && YAJL_IS_INTEGER(n))
      tw->totals[type] = (uint64_t)YAJL_GET_INTEGER(n);
  }
  yajl_tree_free(root);
  return rows ? ES_OK : ES_ENOMEM;
}

static void tick_run(uv_work_t *req) {
  tick_work *tw = req->data;
  tw->rc = tick_totals(tw);
  if (tw->rc != ES_OK)
    return;
  int n =
      qd_latest_events(tw->srv, tw->t->id, QD_FEED_EVENTS_MAX,
                       tw->feed_after_us, tw->t, &tw->feed, &tw->max_recv_us);
  if (n < 0)
    tw->rc = n;
  else
    tw->feed_count = n;
}

static void send_counts(qd_tenant *t, const tick_work *tw) {
  char iso[SEG_ISO8601_SIZE], num[48];
  seg_buf j, b;
  uint64_t total = 0;
  int bad, first = 1;
  seg_buf_init(&j);
  seg_buf_init(&b);
  seg_iso8601_format(tw->tick_us, iso, sizeof iso);
  bad = seg_buf_put(&j, "{\"ts\":\"", 7) || seg_buf_put(&j, iso, strlen(iso)) ||
        seg_buf_put(&j, "\",\"counts\":{", 12);
  for (int ty = 1; !bad && ty < QD_TYPES; ty++) {
    uint64_t d = tw->totals[ty] >= t->totals[ty]
                     ? tw->totals[ty] - t->totals[ty]
                     : 0; /* a compaction may drop rows past retention */
    if (d == 0)
      continue;
    total += d;
    snprintf(num, sizeof num, "%s\"%s\":%llu", first ? "" : ",",
             es_type_name(ty), (unsigned long long)d);
    first = 0;
    bad = seg_buf_put(&j, num, strlen(num));
  }
  snprintf(num, sizeof num, "},\"total\":%llu}", (unsigned long long)total);
  if (!bad && seg_buf_put(&j, num, strlen(num)) == 0 &&
      sse_put(&b, "counts", j.data, j.len) == 0)
    broadcast(t, b.data, b.len);
  seg_buf_free(&j);
  seg_buf_free(&b);
}

static void tick_done(uv_work_t *req, int status) {
  tick_work *tw = req->data;
  qd_server *srv = tw->srv;
  qd_tenant *t = tw->t;
  srv->works_pending--;
  t->tick_busy = 0;
  if (status != 0 || tw->rc != ES_OK) {
    srv->m.tick_errors++;
    if (tw->rc != ES_OK) {
      char extra[160];
      snprintf(extra, sizeof extra, ",\"tenant\":\"%s\",\"status\":\"%s\"",
               t->id, es_strerror(tw->rc));
      qd_log("warning", "live tick failed", extra);
    }
  } else if (t->streams) {
    if (t->have_totals && t->base_us == tw->base_us)
      send_counts(t, tw);
    else
      t->base_us = tw->base_us;
    memcpy(t->totals, tw->totals, sizeof t->totals);
    t->have_totals = 1;
    if (tw->max_recv_us - FEED_OVERLAP_US > t->feed_after_us)
      t->feed_after_us = tw->max_recv_us - FEED_OVERLAP_US;
    if (tw->feed_count > 0) {
      seg_buf b;
      seg_buf_init(&b);
      if (sse_put(&b, "events", tw->feed.data, tw->feed.len) == 0)
        broadcast(t, b.data, b.len);
      seg_buf_free(&b);
    }
  }
  seg_buf_free(&tw->feed);
  free(tw);
  qd_maybe_finish(srv);
}

static void on_tick(uv_timer_t *timer) {
  qd_server *srv = timer->data;
  int64_t now = qd_now_us();
  srv->m.ticks++;
  for (size_t i = 0; i < srv->tenants.count; i++) {
    qd_tenant *t = srv->tenants.v[i];
    if (t->streams == NULL || t->tick_busy)
      continue;
    tick_work *tw = calloc(1, sizeof *tw);
    if (tw == NULL)
      return;
    tw->srv = srv;
    tw->t = t;
    tw->tick_us = now;
    tw->feed_after_us = t->feed_after_us;
    if (!t->have_totals || now - t->base_set_us > REBASE_US) {
      int64_t back = now - BASE_BACK_US;
      tw->base_us = back - back % (INT64_C(60) * 1000000);
      t->base_set_us = now;
    } else {
      tw->base_us = t->base_us;
    }
    seg_buf_init(&tw->feed);
    tw->req.data = tw;
    if (uv_queue_work(srv->loop, &tw->req, tick_run, tick_done)) {
      free(tw);
      continue;
    }
    t->tick_busy = 1;
    srv->works_pending++;
  }
}

/* ----------------------------------------------------------------------
 * Streams and life cycle
 * ---------------------------------------------------------------------- */

void qd_live_subscribed(qd_server *srv, qd_conn *c, qd_tenant *t) {
  char hello[256];
  seg_buf b, j;
  if (t->streams_count == 1) { /* the first: start from now */
    t->have_totals = 0;
    t->feed_after_us = qd_now_us();
  }
  snprintf(hello, sizeof hello,
           "event: hello\ndata: {\"tenant\":\"%s\",\"mode\":\"%s\","
           "\"tickMs\":%d}\n\n",
           t->id, srv->read_only ? "read-only" : "embedded", TICK_MS);
  qd_stream_send(c, hello, strlen(hello));
  seg_buf_init(&b);
  for (size_t i = 0; i < t->firings_count; i++) { /* the recent ones */
    seg_buf_init(&j);
    const qd_firing *f = t->firings[(t->firings_head + i) % QD_FIRINGS_KEPT];
    if (firing_json(&j, f, 1) == 0)
      (void)sse_put(&b, "trigger", j.data, j.len);
    seg_buf_free(&j);
  }
  if (b.len)
    qd_stream_send(c, b.data, b.len);
  seg_buf_free(&b);
}

int qd_live_start(qd_server *srv) {
  if (pthread_mutex_init(&srv->trig.mu, NULL))
    return -1;
  srv->trig.async.data = srv;
  if (uv_async_init(srv->loop, &srv->trig.async, on_trig_async))
    return -1;
  uv_timer_init(srv->loop, &srv->tick_timer);
  srv->tick_timer.data = srv;
  uv_timer_start(&srv->tick_timer, on_tick, TICK_MS, TICK_MS);
  return 0;
}

/* Closes the handles; later firings are dropped (invariant 3).  The
 * queue is emptied by qd_live_free after the store is closed. */
void qd_live_stop(qd_server *srv) {
  pthread_mutex_lock(&srv->trig.mu);
  trig_closed = 1;
  pthread_mutex_unlock(&srv->trig.mu);
  uv_timer_stop(&srv->tick_timer);
  uv_close((uv_handle_t *)&srv->tick_timer, NULL);
  uv_close((uv_handle_t *)&srv->trig.async, NULL);
}

void qd_live_free(qd_server *srv) {
  for (qd_firing *f = srv->trig.head, *next; f; f = next) {
    next = f->next;
    firing_free(f);
  }
  srv->trig.head = srv->trig.tail = NULL;
  for (size_t i = 0; i < srv->tenants.count; i++) {
    qd_tenant *t = srv->tenants.v[i];
    for (size_t k = 0; k < t->firings_count; k++)
      firing_free(t->firings[(t->firings_head + k) % QD_FIRINGS_KEPT]);
    t->firings_count = 0;
  }
  pthread_mutex_destroy(&srv->trig.mu);
}
