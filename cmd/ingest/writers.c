/*
 * writers.c -- writer threads and the fair tenant queue (see writers.h).
 *
 * One mutex guards the ready list, the tenants' queues and the completion
 * queue: every critical section is a few pointer moves, and the time that
 * matters (es_append, which waits for fdatasync) is spent outside it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "writers.h"

/* Bytes of events one coalesced append may hold (es_append's frame limit
 * is far above; this keeps one append's latency bounded). */
#define SCHED_BYTES_HINT_MAX (8u << 20)

static int64_t wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void ready_push(sched *s, sched_tenant *t) {
  t->ready = 1;
  t->ready_next = NULL;
  if (s->ready_tail)
    s->ready_tail->ready_next = t;
  else
    s->ready_head = t;
  s->ready_tail = t;
}

static sched_tenant *ready_pop(sched *s) {
  sched_tenant *t = s->ready_head;
  if (t) {
    s->ready_head = t->ready_next;
    if (s->ready_head == NULL)
      s->ready_tail = NULL;
    t->ready = 0;
  }
  return t;
}

/* Takes the jobs of one append off t's queue (at least one). */
static sched_job *take_jobs(sched_tenant *t, size_t *events_out) {
  sched_job *first = t->head, *last = first;
  size_t n = first->count;
  while (last->next && n + last->next->count <= SCHED_EVENTS_MAX) {
    last = last->next;
    n += last->count;
  }
  t->head = last->next;
  if (t->head == NULL)
    t->tail = NULL;
  last->next = NULL;
  *events_out = n;
  return first;
}

/* Appends the jobs' events as one batch; returns the status and, on
 * ES_OK, tells each job how many of its events were duplicates (the
 * library de-duplicates messageIds: eventstore.h, "Idempotent append"). */
static int append_jobs(sched *s, sched_tenant *t, sched_job *jobs, size_t n) {
  for (sched_job *j = jobs; j; j = j->next)
    j->dups = j->suppressed = 0;
  if (n == 0)
    return ES_OK;
  es_event *all = jobs->next ? malloc(n * sizeof *all) : NULL;
  uint8_t *dup = malloc(n);
  if ((jobs->next && all == NULL) || dup == NULL) {
    free(all);
    free(dup);
    return ES_ENOMEM;
  }
  size_t at = 0;
  for (sched_job *j = jobs; all && j; j = j->next) {
    if (j->count)
      memcpy(all + at, j->events, j->count * sizeof *all);
    at += j->count;
  }
  /* A cluster node appends a tenant only under its lease, and answers
   * 200 only if it still held it once the append was durable
   * (eventstore.h, "Cluster nodes"): 503 + Retry-After meanwhile. */
  int rc = ES_OK;
  if (s->cluster && __atomic_load_n(&s->draining, __ATOMIC_ACQUIRE))
    rc = ES_EUNAVAIL; /* drained (admin.c): takes nothing, not even back */
  else if (s->cluster)
    rc = es_cluster_admit(s->cluster, t->id);
  if (rc == ES_EFAILED)
    rc = ES_EUNAVAIL; /* a stale copy here: the node must restart */
  if (rc == ES_OK)
    rc =
        es_append_flagged(s->db, t->id, all ? all : jobs->events, n, NULL, dup);
  if (rc == ES_OK && s->cluster && !es_cluster_owns(s->cluster, t->id))
    rc = ES_EUNAVAIL;
  at = 0;
  for (sched_job *j = jobs; rc == ES_OK && j; j = j->next) {
    if (j->dup_flags && j->count)
      memcpy(j->dup_flags, dup + at, j->count);
    for (size_t i = 0; i < j->count; i++, at++) {
      j->dups += dup[at] == 1;
      j->suppressed += dup[at] == 2; /* eventstore.h, es_append_flagged */
    }
  }
  free(all);
  free(dup);
  return rc;
}

static void *writer_main(void *arg) {
  sched *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    sched_tenant *t = ready_pop(s);
    if (t == NULL) {
      if (s->stopping)
        break;
      pthread_cond_wait(&s->cv, &s->mu);
      continue;
    }
    size_t n;
    sched_job *jobs = take_jobs(t, &n);
    t->busy++;
    if (t->head && t->busy < s->tenant_appends) { /* 1 */
      ready_push(s, t);
      pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    int rc = append_jobs(s, t, jobs, n);
    int64_t now = wall_us();
    pthread_mutex_lock(&s->mu);
    sched_job *last = NULL;
    for (sched_job *j = jobs; j; j = j->next) {
      j->status = rc;
      j->done_us = now;
      last = j;
    }
    if (s->done_tail)
      s->done_tail->next = jobs;
    else
      s->done_head = jobs;
    s->done_tail = last;
    t->busy--;
    if (t->head && !t->ready && t->busy < s->tenant_appends)
      ready_push(s, t);
    uv_async_send(&s->async);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* Delivers the queued completions on the loop thread. */
static void deliver(sched *s) {
  pthread_mutex_lock(&s->mu);
  sched_job *j = s->done_head;
  s->done_head = s->done_tail = NULL;
  pthread_mutex_unlock(&s->mu);
  while (j) {
    sched_job *next = j->next;
    j->next = NULL;
    s->done_fn(j, s->done_ud);
    j = next;
  }
}

static void on_async(uv_async_t *h) { deliver(h->data); }

int sched_start(sched *s, uv_loop_t *loop, es_db *db, int threads_count,
                int tenant_appends, void (*done_fn)(sched_job *job, void *ud),
                void *done_ud) {
  es_cluster *cluster = s->cluster; /* set before (ingest_set_cluster) */
  memset(s, 0, sizeof *s);
  s->db = db;
  s->cluster = cluster;
  s->done_fn = done_fn;
  s->done_ud = done_ud;
  s->tenant_appends = tenant_appends < 1 ? 1 : tenant_appends;
  if (threads_count < 1 || threads_count > SCHED_THREADS_MAX)
    return -1;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  if (uv_async_init(loop, &s->async, on_async))
    return -1;
  s->async.data = s;
  for (; s->threads_count < threads_count; s->threads_count++) {
    if (pthread_create(&s->threads[s->threads_count], NULL, writer_main, s))
      break;
    (void)pthread_setname_np(s->threads[s->threads_count], "ing-append");
  }
  return s->threads_count == threads_count ? 0 : -1;
}

void sched_submit(sched *s, sched_job *job) {
  sched_tenant *t = job->tenant;
  job->next = NULL;
  job->submit_us = wall_us();
  pthread_mutex_lock(&s->mu);
  if (t->tail)
    t->tail->next = job;
  else
    t->head = job;
  t->tail = job;
  if (t->busy < s->tenant_appends && !t->ready) {
    ready_push(s, t);
    pthread_cond_signal(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
}

void sched_stop(sched *s) {
  pthread_mutex_lock(&s->mu);
  s->stopping = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  for (int i = 0; i < s->threads_count; i++)
    pthread_join(s->threads[i], NULL);
  s->threads_count = 0;
  deliver(s);
  uv_close((uv_handle_t *)&s->async, NULL);
}
