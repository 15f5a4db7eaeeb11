/*
 * export.h -- the warehouse export's internals shared with tests: the
 * export schema (one row per event) and the gzip NDJSON sink.
 * es_export (eventstore.h) is the entry point; docs/EXPORT.md documents
 * the schema, the layout and the idempotence for users.
 */
#ifndef ES_EXPORT_H
#define ES_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "base/codec.h"
#include "base/io.h"
#include "eventstore.h"
#include "export/dest.h"
#include "export/parquet.h"

/* Room for a formatted time or day (any int64_t, so never truncated). */
#define EX_TS_SIZE 64

/* The export schema's columns, in file order. */
enum {
  EX_MESSAGE_ID,
  EX_TYPE,
  EX_EVENT,
  EX_TIMESTAMP,
  EX_RECEIVED_AT,
  EX_SENT_AT,
  EX_ANONYMOUS_ID,
  EX_USER_ID,
  EX_PERSON_ID,
  EX_PAGE_PATH,
  EX_PAGE_URL,
  EX_PAGE_REFERRER,
  EX_PAGE_TITLE,
  EX_USER_AGENT,
  EX_IP,
  EX_PROPERTIES,
  EX_CONTEXT,
  EX_TRAITS,
  EX_PREVIOUS_ID,
  EX_GROUP_ID,
  EX_COLUMNS
};

/* The Parquet columns of the schema (a static table). */
const es_pq_column *es__export_columns(void);

/* Whether s[0..n) is one complete JSON value (yajl, UTF-8 checked). */
int es__export_json_valid(const char *s, size_t n);

/* Formats ts_us as "YYYY-MM-DDTHH:MM:SS.ffffffZ" (buf: EX_TS_SIZE). */
void es__export_fmt_ts(int64_t ts_us, char *buf);
/* Formats the UTC day of ts_us as "YYYY-MM-DD" (buf: EX_TS_SIZE). */
void es__export_fmt_day(int64_t ts_us, char *buf);

/* ---- partitions (export.c, xmanifest.c) -------------------------------- */

#define EX_PART_NAME_MAX 64
#define EX_DAY_US INT64_C(86400000000)
#define EX_HOUR_US INT64_C(3600000000)

/* A file of a partition's _manifest.json. */
typedef struct ex_part {
  char name[EX_PART_NAME_MAX];
  uint64_t rows, bytes;
  uint32_t crc;
  int64_t from_us, to_us; /* the event times it holds: [from, to) (a
                             manifest without them: the whole day) */
  int64_t counted;        /* the store's count of [from, to) taken before
                             the part was cut (continuous export); -1:
                             not taken (then rows stands for it) */
} ex_part;

/* A range of event time to cut into part files, and its count (or -1). */
typedef struct ex_range {
  int64_t from_us, to_us, counted;
} ex_range;

/* A partition's manifest as read. */
typedef struct ex_manifest {
  int present;             /* 0: no _manifest.json */
  int format, compression; /* ES_EXPORT_*, as the manifest says */
  ex_part *files;          /* owned */
  size_t n, cap;
} ex_manifest;

/* Reads rel/_manifest.json of d (a missing one: present 0, ES_OK).
 * day_us: the partition's day (the range of files that name none).
 * ES_ECORRUPT for a manifest that is not one of ours. */
int es__xmanifest_load(es_xdest *d, const char *rel, int64_t day_us,
                       ex_manifest *m) ES_MUST_CHECK;
/* Parses a manifest's text (the fuzz target's entry). */
int es__xmanifest_parse(const uint8_t *buf, size_t len, int64_t day_us,
                        ex_manifest *m) ES_MUST_CHECK;
void es__xmanifest_free(ex_manifest *m);
/* Appends one file to m. */
int es__xmanifest_add(ex_manifest *m, const ex_part *p) ES_MUST_CHECK;
/* Renders a manifest: tenant, day, format, compression, the store state
 * (cut_us, generation) and m's files in order, into b (reset first). */
int es__xmanifest_render(es_buf *b, const char *tenant, const char *day,
                         int format, int compression, int64_t cut_us,
                         uint64_t generation,
                         const ex_manifest *m) ES_MUST_CHECK;
/* "tenant=<T>/date=<YYYY-MM-DD>" of a tenant and day (cap ES_PATH_MAX). */
int es__export_partition_rel(char *out, const char *tenant,
                             int64_t day_us) ES_MUST_CHECK;

/* Every tenant of the store (directories and tenants in memory), sorted:
 * *names_out is es__malloc'ed, as each name (es__free them). */
int es__export_tenants(es_db *db, char ***names_out,
                       size_t *n_out) ES_MUST_CHECK;

/* es_export into dest (opts checked by es_export's rules; out_dir is
 * ignored): what es_export runs once it opened the destination, and what
 * tests call with an es__dest_wrap'ed objmem store. */
int es__export_dest(es_db *db, es_xdest *dest, const es_export_options *opts,
                    es_export_result *result_out) ES_MUST_CHECK;

/*
 * Re-exports, in place, partitions of one tenant (the entry point for
 * erase): for each day in days_us (UTC midnights) whose partition dest
 * holds a manifest, every range its files cover is cut again from the
 * store (so a partition of hourly parts keeps hourly parts, a whole-day
 * one stays whole), in the format and compression the manifest names,
 * and the partition is replaced as es_export replaces one (new parts,
 * then the manifest, then the old parts removed).  Days without a
 * manifest are skipped.  Once a person's events are gone from the store
 * (what es_scan sees), this takes them out of the export.  Works on a
 * read-only handle.  dest: es__dest_open (a local directory or
 * "s3://BUCKET/PREFIX", as the export was written to) or es__dest_wrap.
 * result_out (may be NULL) receives what was written.  Errors: as
 * es_export's, plus the object store's (ES_EUNAVAIL: retry later; a
 * partition that failed keeps its previous manifest and files).
 */
int es__export_refresh(es_db *db, es_xdest *dest, const char *tenant,
                       const int64_t *days_us, size_t ndays,
                       es_export_result *result_out) ES_MUST_CHECK;

/*
 * Writes the given ranges (each inside day_us's day, sorted, not
 * overlapping) of one tenant's partition into dest: every old file whose
 * range meets one of them is replaced by new parts cut from the store
 * (none where the store has no rows), the other files are kept, and the
 * partition is replaced atomically.  o gives the format, compression and
 * sizes (out_dir, tenants, days and threads are ignored).  The continuous
 * exporter's step (stream.c).
 */
int es__export_ranges(es_db *db, es_xdest *dest, const es_export_options *o,
                      const char *tenant, int64_t day_us,
                      const ex_range *ranges, size_t nranges,
                      es_export_result *result_out) ES_MUST_CHECK;

/* ---- stream.c: continuous export without its thread (tests) ---------- */

/* An es_exporter writing into dest (borrowed) whose passes the caller
 * runs: es__exporter_pass is one pass (its first error), at the clock's
 * now (es__clock_set_fixed_us).  Close with es__exporter_close. */
int es__exporter_open(es_db *db, es_xdest *dest,
                      const es_exporter_options *opts,
                      es_exporter **out) ES_MUST_CHECK;
int es__exporter_pass(es_exporter *ex) ES_MUST_CHECK;
void es__exporter_close(es_exporter *ex);

#endif
