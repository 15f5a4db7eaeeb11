/*
 * metrics.c -- es-queryd's counters and their Prometheus text
 * (GET /metrics).  Counters belong to the loop thread; the trigger queue's
 * drop count is read under its mutex and the webhook counters by
 * webhook.c.  No metric carries a tenant label: /metrics needs no token,
 * so it must say nothing about any one tenant.
 */
#include <stdio.h>
#include <string.h>

#include "server.h"

/* Upper bounds of the request latency histogram, seconds. */
static const double bounds_s[10] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05,  0.1,    0.25,  1.0,  5.0};

void qd_metrics_request(qd_metrics *m, int status) {
  if (status == 401)
    m->requests[5]++;
  int cls = status / 100;
  m->requests[cls >= 2 && cls <= 5 ? cls - 1 : 0]++;
}

void qd_metrics_query(qd_metrics *m, int64_t latency_us, int ok) {
  prom_hist_observe(&m->calls, bounds_s, 10, latency_us);
  if (!ok)
    m->query_errors++;
}

int qd_metrics_render(const qd_server *srv, seg_buf *out) {
  const qd_metrics *m = &srv->m;
  static const char *classes[5] = {"other", "2xx", "3xx", "4xx", "5xx"};
  uint64_t dropped;
  pthread_mutex_lock((pthread_mutex_t *)&srv->trig.mu);
  dropped = srv->trig.dropped;
  pthread_mutex_unlock((pthread_mutex_t *)&srv->trig.mu);
  int bad = prom_put(out, "# HELP es_queryd_requests_total HTTP answers by "
                          "status class.\n# TYPE es_queryd_requests_total "
                          "counter\n");
  for (int i = 0; i < 5 && !bad; i++)
    bad = prom_put(out, "es_queryd_requests_total{code=\"%s\"} %llu\n",
                   classes[i], (unsigned long long)m->requests[i]);
  bad =
      bad ||
      prom_put(out,
               "# TYPE es_queryd_unauthorized_total counter\n"
               "es_queryd_unauthorized_total %llu\n",
               (unsigned long long)m->requests[5]) ||
      prom_histogram(out, "es_queryd_call_seconds",
                     "Library calls of requests (thread pool).", &m->calls,
                     bounds_s, 10) ||
      prom_put(out,
               "# TYPE es_queryd_call_errors_total counter\n"
               "es_queryd_call_errors_total %llu\n",
               (unsigned long long)m->query_errors) ||
      prom_put(out,
               "# TYPE es_queryd_triggers_total counter\n"
               "es_queryd_triggers_total %llu\n"
               "# TYPE es_queryd_triggers_dropped_total counter\n"
               "es_queryd_triggers_dropped_total %llu\n",
               (unsigned long long)m->triggers, (unsigned long long)dropped) ||
      prom_put(out,
               "# TYPE es_queryd_streams gauge\nes_queryd_streams %zu\n"
               "# TYPE es_queryd_stream_messages_total counter\n"
               "es_queryd_stream_messages_total %llu\n"
               "# TYPE es_queryd_streams_cut_total counter\n"
               "es_queryd_streams_cut_total %llu\n",
               srv->streams, (unsigned long long)m->stream_messages,
               (unsigned long long)m->streams_cut) ||
      prom_put(out,
               "# TYPE es_queryd_ticks_total counter\nes_queryd_ticks_total "
               "%llu\n# TYPE es_queryd_tick_errors_total counter\n"
               "es_queryd_tick_errors_total %llu\n"
               "# TYPE es_queryd_connections gauge\nes_queryd_connections %zu\n"
               "# TYPE es_queryd_read_only gauge\nes_queryd_read_only %d\n",
               (unsigned long long)m->ticks, (unsigned long long)m->tick_errors,
               srv->http.connections, srv->read_only) ||
      qd_webhooks_metrics((qd_server *)srv, out);
  return bad ? -1 : 0;
}
