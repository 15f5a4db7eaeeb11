/*
 * identity.h -- identity stitching: which ids of a tenant are one person.
 *
 * An es_identity is built at read time from the tenant's stored identify
 * events (userId + anonymousId) and alias events (previousId -> userId),
 * and answers two questions: the canonical id (root) of an id's person,
 * and every id linked to it.  lib/identity.c explains the rules and
 * guardrails; docs/QUERY.md states them for users.
 */
#ifndef ES_IDENTITY_H
#define ES_IDENTITY_H

#include <stddef.h>

#include "base/status.h"
#include "eventstore.h"

typedef struct es_identity es_identity;

/* An empty map (every id its own person).  *map_out NULL on failure. */
int es__identity_new(es_identity **map_out) ES_MUST_CHECK;

/* Releases a map; NULL is fine. */
void es__identity_free(es_identity *map);

/*
 * The map of a tenant from every identify and alias event it holds and
 * its identity log (one es_scan of the whole tenant, in event-time order),
 * shared read-only: the tenant caches the last one built and hands it out
 * again until a link changes (dbint.h, id_gen).  Release it with
 * es__identity_free; do not link into it.  An unknown tenant gives an
 * empty map.  Errors: those of es_scan and es_cursor_next, ES_ENOMEM.
 */
int es__identity_load(es_db *db, const char *tenant,
                      es_identity **map_out) ES_MUST_CHECK;

/*
 * The map of a tenant built afresh (as es__identity_load builds it) and
 * owned by the caller alone: it may be linked into (es__identity_apply),
 * which the shared map may not.  The rules keep one to fire triggers per
 * person (rules.h).  Errors: as es__identity_load.
 */
int es__identity_build(es_db *db, const char *tenant,
                       es_identity **map_out) ES_MUST_CHECK;

/* Whether an id may ever be linked: not NULL and not one of "", "null",
 * "undefined", "0", "anonymous" (case-insensitive). */
int es__identity_linkable(const char *id);

/*
 * Links ids a and b into one person.  Sets *linked_out to 1 when they are
 * (now or already) one person, 0 when the link was ignored: an id is not
 * linkable, or the merged person would hold more than ES_IDENTITY_IDS_MAX
 * ids.  Errors: ES_ENOMEM (no link is made then).
 */
int es__identity_link(es_identity *map, const char *a, const char *b,
                      int *linked_out) ES_MUST_CHECK;

/* Applies one stored event: identify links user_id with anonymous_id,
 * alias links previous_id with user_id; other types do nothing. */
int es__identity_apply(es_identity *map, const es_event *ev) ES_MUST_CHECK;

/* The canonical id of id's person: id itself when it was never linked.
 * The pointer is borrowed from the map (or is id); NULL for NULL. */
const char *es__identity_root(es_identity *map, const char *id);

/*
 * Every id of id's person, id included, into buf (room for
 * ES_IDENTITY_IDS_MAX): returns their count (1 when id was never linked).
 * The strings are borrowed from the map (or are `id` itself).
 */
size_t es__identity_ids(const es_identity *map, const char *id,
                        const char **buf);

/* Parses an identity log image (IDENTITY, named path in errors) into m's
 * unlink records (m may be NULL: only checks); stops at the first record
 * that does not check and sets *end_out to where the valid records end.
 * ES_ECORRUPT (file and offset) when a valid record follows a damaged
 * one, or a record checks but does not decode: only a torn tail is cut. */
int es__identity_log_parse(es_identity *m, const uint8_t *p, size_t n,
                           const char *path, size_t *end_out) ES_MUST_CHECK;

/* Whether the map's unlink records undo a link of a and b made at ts. */
int es__identity_unlinked(const es_identity *m, const char *a, const char *b,
                          int64_t ts_us);

struct es_tenant;
/* Rewrites the tenant's identity log (atomically) without the unlink
 * records that name one of ids[0..nids): a person's erasure
 * (lib/erase/).  *dropped_out: how many went (0: the file is untouched). */
int es__identity_log_forget(es_db *db, struct es_tenant *t,
                            const char *const *ids, size_t nids,
                            size_t *dropped_out) ES_MUST_CHECK;

#endif
