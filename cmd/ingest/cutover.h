/*
 * cutover.h -- the per-tenant cut-over of a migration (docs/MIGRATION.md):
 * the keys file marks the tenants whose SDK traffic the proxy sends to
 * es-ingestd ({"tenant": T, "primary": true}); this renders that list as
 * the nginx map deploy/nginx/segment-cutover.conf includes
 * (GET /v1/admin/cutover/nginx-map).
 */
#ifndef INGESTD_CUTOVER_H
#define INGESTD_CUTOVER_H

#include "common/segment_json.h"
#include "server.h"

/*
 * Appends nginx map lines for each write key of a primary tenant: the key
 * as the body's "writeKey" carries it (analytics-node 2, analytics.js),
 * and the Authorization header of HTTP Basic with the key as user name,
 * with and without the ':' of an empty password (RudderStack, curl):
 *   "key-acme" primary;
 *   "Basic a2V5LWFjbWU6" primary;
 * deploy/nginx/segment-cutover-maps.conf includes the one file in both
 * of its maps.
 * Keys are sorted, so equal key sets give equal files.  -1 out of memory.
 */
int cutover_nginx_map(const server *srv, seg_buf *out);

#endif /* INGESTD_CUTOVER_H */
