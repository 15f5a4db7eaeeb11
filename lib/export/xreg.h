/*
 * xreg.h -- the store's record of export destinations (DATA/exports/),
 * read by an erasure's stage (f).  The essay and invariants are in xreg.c.
 */
#ifndef ES_EXPORT_XREG_H
#define ES_EXPORT_XREG_H

#include <stddef.h>
#include <stdint.h>

#include "eventstore.h"
#include "export/dest.h"

/* One recorded destination (strings owned; "" for no endpoint/region). */
typedef struct es_xreg_entry {
  char *url; /* an absolute directory, or s3://BUCKET[/PREFIX] */
  char *endpoint, *region;
} es_xreg_entry;

/* Records a destination durably (invariant 1) unless it is recorded
 * already.  Works on a read-only handle (the file is the exporter's). */
int es__xreg_add(es_db *db, const char *url, const char *endpoint,
                 const char *region) ES_MUST_CHECK;
/* Every recorded destination (none: *n_out 0); ES_ECORRUPT for a record
 * that does not check (invariant 3).  Free with es__xreg_free. */
int es__xreg_list(es_db *db, es_xreg_entry **v_out,
                  size_t *n_out) ES_MUST_CHECK;
void es__xreg_free(es_xreg_entry *v, size_t n);
/* The record's file name for a destination ("dest-<hex>"): how a running
 * exporter's hook and a record are matched. */
int es__xreg_key(const char *url, const char *endpoint, const char *region,
                 char key_out[32]) ES_MUST_CHECK;

/* The UTC days (midnight, µs) of the tenant's partitions in dest, from
 * their names (an es__malloc'ed array, free with es__free; none: 0). */
int es__xreg_days(es_xdest *dest, const char *tenant, int64_t **days_out,
                  size_t *n_out) ES_MUST_CHECK;

/* A record's image, appended to b, and its file name (mkseeds, tests). */
int es__xreg_encode(const char *url, const char *endpoint, const char *region,
                    es_buf *b, char name[32]) ES_MUST_CHECK;
/* Parses a record's image (named path in errors) into *e (fuzz target). */
int es__xreg_parse(const uint8_t *p, size_t n, const char *path,
                   es_xreg_entry *e) ES_MUST_CHECK;
void es__xreg_entry_free(es_xreg_entry *e);

#endif
