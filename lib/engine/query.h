/*
 * query.h -- the query engine's internals: the parsed query spec and the
 * pieces of es_query() that the unit tests reach directly (its ISO 8601
 * times are base/isotime.h's).  docs/QUERY.md specifies the JSON spec and the
 * result.
 */
#ifndef ES_QUERY_H
#define ES_QUERY_H

#include <stdint.h>

#include "base/isotime.h"
#include "base/status.h"

/* Most rows a result returns; a larger "limit" is lowered to it. */
#define ES_QUERY_ROWS_MAX 100000

/* What a row can be grouped by (the "groupBy" names). */
typedef enum es_qkey {
  ES_QKEY_EVENT = 1, /* "event" */
  ES_QKEY_PATH = 2,  /* "path" */
  ES_QKEY_TYPE = 3,  /* "type" */
  ES_QKEY_DIM = 4    /* a dimension of store/dims.h ("referrer", ...) */
} es_qkey;

/* type, event, path and one dimension */
#define ES_QKEYS_MAX 4

/* Row order: the key (bucket, then groupBy values), or count first. */
#define ES_QORDER_KEY 0
#define ES_QORDER_DESC 1
#define ES_QORDER_ASC 2

/* Which engine answers ("plan"): rollups when the spec allows (auto),
 * always scanning rows (scan), or rollups, refusing specs they cannot
 * answer (rollup). */
#define ES_QPLAN_AUTO 0
#define ES_QPLAN_SCAN 1
#define ES_QPLAN_ROLLUP 2

/*
 * A parsed, validated query spec.  Strings are owned (es__query_spec_free
 * releases them); NULL means "no such filter".
 */
typedef struct es_query_spec {
  int64_t from_us, to_us; /* [from, to); INT64_MIN / INT64_MAX by default */
  int type;               /* filter.type as es_type, 0 = any */
  char *event, *path, *person;
  int64_t bucket_us;      /* 0 = "none", else minute/hour/day in us */
  int keys[ES_QKEYS_MAX]; /* es_qkey, in groupBy order */
  int nkeys;              /* entries of keys in use */
  int dim;                /* the ES_QKEY_DIM key's ES_DIM_*, 0 = none */
  int count, uniques;     /* the aggregates asked for (0/1) */
  int exact;              /* "exact": uniques must not be estimates */
  uint32_t limit;         /* rows at most; 0 = unlimited */
  int order;              /* ES_QORDER_* */
  int plan;               /* ES_QPLAN_* */
} es_query_spec;

/*
 * Parses and validates the JSON text of a spec into *spec (which the call
 * initialises).  On failure returns ES_EINVAL (ES_ENOMEM when allocation
 * failed), with es_errdetail() naming the field, and leaves nothing to
 * free.  On success the caller releases *spec with es__query_spec_free.
 */
int es__query_spec_parse(const char *json, es_query_spec *spec) ES_MUST_CHECK;

/* Releases the strings of a spec; a zeroed spec is fine. */
void es__query_spec_free(es_query_spec *spec);

#endif
