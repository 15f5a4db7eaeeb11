/*
 * workload.c -- pre-generates the ingest workload: N events drawn from the
 * generator and cut into per-tenant batches the way an ingest server cuts
 * them (see workload_build in bench.h).
 *
 * Invariants:
 *  1. Every drawn event is in exactly one batch; a batch holds events of
 *     one tenant, in the order they were drawn.
 *  2. Batches are ordered by the moment they were cut: a tenant's batch
 *     appears when its batch_max-th event arrived; partial batches follow
 *     at the end, by tenant.
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#include "encode.h"

/* A tenant's pending events, as indexes into the drawn order. */
typedef struct pending {
  size_t *idx;
  int count;
  int seen; /* any event of this tenant was drawn */
} pending;

/* Copies a tenant's pending events into the next batch. */
static void emit(workload *w, const es_event *drawn, pending *p,
                 const char *tenant, size_t *pos) {
  batch *b = &w->batches[w->batches_count++];
  b->tenant = tenant;
  b->events = &w->events[*pos];
  b->count = (size_t)p->count;
  for (int i = 0; i < p->count; i++)
    w->events[(*pos)++] = drawn[p->idx[i]];
  p->count = 0;
}

int workload_build(workload *w, uint64_t events, uint64_t seed, int days,
                   int batch_max) {
  memset(w, 0, sizeof *w);
  gen_opts go;
  gen_opts_init(&go);
  go.events_total = events;
  go.days = days;
  w->seed = seed;
  w->days = days;
  w->batch_max = batch_max;
  w->g = gen_init(seed, &go);
  es_event *drawn = malloc(sizeof *drawn * (events ? events : 1));
  const char **tenant_of = malloc(sizeof *tenant_of * (events ? events : 1));
  pending *pend = calloc((size_t)go.tenants, sizeof *pend);
  w->events = malloc(sizeof *w->events * (events ? events : 1));
  w->batches = malloc(sizeof *w->batches * (events ? events : 1));
  int rc = -1;
  if (!w->g || !drawn || !tenant_of || !pend || !w->events || !w->batches)
    goto done;
  for (int t = 0; t < go.tenants; t++)
    if (!(pend[t].idx = malloc(sizeof(size_t) * (size_t)batch_max)))
      goto done;

  size_t pos = 0;
  for (uint64_t i = 0; i < events; i++) {
    if (gen_next(w->g, &drawn[i], &tenant_of[i]) != 0)
      goto done;
    w->payload_bytes += enc_event_size(&drawn[i]);
    int t = atoi(tenant_of[i] + 1) - 1; /* "t0042" -> 41 */
    pending *p = &pend[t];
    p->idx[p->count++] = (size_t)i;
    p->seen = 1;
    if (p->count == batch_max)
      emit(w, drawn, p, tenant_of[i], &pos);
  }
  for (int t = 0; t < go.tenants; t++) {
    if (pend[t].count > 0)
      emit(w, drawn, &pend[t], gen_tenant_name(w->g, t), &pos);
    if (pend[t].seen)
      w->tenants_seen++;
  }
  w->events_count = pos;
  rc = 0;
done:
  if (pend)
    for (int t = 0; t < go.tenants; t++)
      free(pend[t].idx);
  free(pend);
  free(drawn);
  free(tenant_of);
  if (rc != 0)
    workload_free(w);
  return rc;
}

void workload_free(workload *w) {
  gen_free(w->g);
  free(w->events);
  free(w->batches);
  memset(w, 0, sizeof *w);
}
