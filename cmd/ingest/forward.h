/*
 * forward.h -- es-ingestd --forward URL: what the server stored is sent on
 * to the legacy pipeline's Segment endpoint, asynchronously, from a queue
 * on disk (docs/MIGRATION.md, "Primary with forward").
 *
 * The loop thread calls fwd_submit when a request's events are durable in
 * the store, before its 200 is sent: the events that were stored (not the
 * duplicates: their first copy was forwarded, or reached legacy by
 * itself) are encoded as one Segment batch and written (write(2)) to
 * the queue's current file.  The 200 waits for fwd_sync: http.c parks
 * the answers completed in one loop turn and sends them after one
 * fdatasync of the queue (a uv_check handle), so neither a SIGKILL nor an
 * OS crash or power loss after a 200 loses anything the legacy side
 * should get; a full file is synced before it is left.  The sender thread POSTs
 * each batch to URL/v1/batch with the request's write key (HTTP Basic),
 * retrying with exponential backoff and jitter while the legacy side is down;
 * nothing in the request path ever waits for it.  Delivery is at least once:
 * the read position is saved every second, so after a crash the legacy side may
 * see a batch again, with the same messageIds.
 */
#ifndef INGESTD_FORWARD_H
#define INGESTD_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "common/segment_json.h"
#include "eventstore.h"

typedef struct fwd fwd;

/*
 * Opens the queue in dir (created if missing; a torn tail of the newest
 * file is cut), and starts the sender thread for url ("http://host:port",
 * the legacy endpoint; /v1/batch is appended).  0, or -1 with err.
 */
int fwd_open(const char *url, const char *dir, fwd **out, char *err,
             size_t err_size);

/*
 * Queues the events of evs[0..n) whose dup[i] is 0 (dup may be NULL: all)
 * for key's tenant.  Loop thread.  1 a frame was written (not yet durable:
 * acknowledge after fwd_sync), 0 nothing to queue (all duplicates), -1 the
 * queue could not be written (disk full: the events are counted as
 * dropped and logged).
 */
int fwd_submit(fwd *f, const char *key, const es_event *evs, size_t n,
               const uint8_t *dup);

/*
 * Makes every frame fwd_submit wrote durable: one fdatasync of the newest
 * file (the files left before it were synced when left), counted with the
 * acks answers that waited for it.  Loop thread.  0, or -1 when a sync
 * failed (counted in es_forward_sync_errors_total and logged).
 */
int fwd_sync(fwd *f, size_t acks);

/* Prometheus text of the forwarder's gauges and counters. */
int fwd_metrics(fwd *f, seg_buf *out);

/* Stops the sender (after its current attempt), syncs the queue and
 * saves the read position.  The backlog is sent by the next start. */
void fwd_stop(fwd *f);
void fwd_free(fwd *f);

#endif /* INGESTD_FORWARD_H */
