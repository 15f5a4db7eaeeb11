/*
 * writers.h -- fair hand-off of append jobs from the event loop to writer
 * threads, and of their results back to the loop.
 *
 * The loop submits jobs (one per HTTP request, already validated) to their
 * tenant's FIFO.  Writer threads take tenants round-robin: a writer takes the
 * next ready tenant, coalesces the jobs queued for it (up to SCHED_EVENTS_MAX
 * events) into one es_append, and puts the tenant back at the end of the ready
 * list.  So:
 *
 *  1. A tenant has at most tenant_appends appends in flight (1 unless in
 *     durability tier s3, where an append waits an S3 round trip after
 *     its fdatasync and several of a tenant's appends in flight let the
 *     WAL shipper's pipelined PUTs carry them: es_options.s3_puts_inflight);
 *     with 1, its jobs complete in submission order.
 *  2. With T tenants waiting, each gets one append per round: a hot
 *     tenant's backlog delays the others by at most one of its appends.
 *  3. The more jobs wait, the larger the appends: fsyncs are shared.
 *
 * Completed jobs are queued to the loop and signalled with a uv_async;
 * the loop calls done_fn for each, in completion order.
 */
#ifndef INGESTD_WRITERS_H
#define INGESTD_WRITERS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "eventstore.h"

#define SCHED_EVENTS_MAX 20000
#define SCHED_THREADS_MAX 64

typedef struct sched_tenant sched_tenant;

typedef struct sched_job {
  struct sched_job *next;
  sched_tenant *tenant;
  const es_event *events; /* borrowed from the submitter until done */
  size_t count;           /* may be 0: completes in order, appends nothing */
  int status;             /* es_append's, set before done_fn */
  size_t dups;       /* on ES_OK: events the library found stored already */
  size_t suppressed; /* on ES_OK: events dropped: their person is erased
                        with suppression (not stored, answered 200) */
  int64_t submit_us, done_us;
  void *ud;           /* the submitter's */
  uint8_t *dup_flags; /* NULL, or count bytes: on ES_OK, 1 per duplicate
                         (the forwarder sends only what was stored) */
} sched_job;

struct sched_tenant {
  char id[ES_TENANT_LEN_MAX + 1];
  sched_job *head, *tail; /* waiting jobs; under sched.mu */
  int busy, ready;        /* appends in flight / in the ready list */
  sched_tenant *ready_next;
};

typedef struct sched {
  es_db *db;
  es_cluster *cluster; /* a cluster node (--node): appends only what it
                          holds (es_cluster_admit / es_cluster_owns) */
  int draining;        /* a cluster node being drained (POST
                          /v1/admin/cluster/drain): takes no tenant; __atomic */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  sched_tenant *ready_head, *ready_tail;
  sched_job *done_head, *done_tail;
  int stopping;
  int tenant_appends; /* 1 */
  int threads_count;
  pthread_t threads[SCHED_THREADS_MAX];
  uv_async_t async;
  void (*done_fn)(sched_job *job, void *ud);
  void *done_ud;
} sched;

/* Starts threads_count writers, each tenant with at most tenant_appends
 * appends in flight (1); done_fn runs on loop's thread. 0 / -1. */
int sched_start(sched *s, uv_loop_t *loop, es_db *db, int threads_count,
                int tenant_appends, void (*done_fn)(sched_job *job, void *ud),
                void *done_ud);
/* Queues a job (from the loop thread). */
void sched_submit(sched *s, sched_job *job);
/* Lets the writers finish every queued job, joins them, delivers the
 * remaining completions, and closes the async handle. */
void sched_stop(sched *s);

#endif /* INGESTD_WRITERS_H */
