/*
 * dims.h -- the dashboard's dimensions of an event: where a page view
 * came from (referrer host, UTM source/medium/campaign of its URL) and
 * what it was sent with (device type and browser family, classified from
 * the user agent).
 *
 * One pure function of the row's columns (type, url, referrer,
 * user_agent), used both where rollups are built (rollup.c: at ingest,
 * as the memtable's rollup grows, and when a segment's rollup is derived
 * from its rows) and where a query scans rows (query.c), so the two
 * answers agree value for value.  Nothing is stored in the rows: the
 * values are computed again whenever rows are read.
 *
 * The rules (docs/QUERY.md, "Dimensions", states them for users):
 *   referrer      page events: "(direct)" when the referrer is empty, the
 *                 referrer's host (lower case, port kept, user info
 *                 dropped) -- "(internal)" when it is the page URL's own
 *                 host -- or the referrer itself when it has no
 *                 "scheme://" host.  Other types: absent.
 *   utm_source, utm_medium, utm_campaign
 *                 page events: the first such parameter of the URL's query
 *                 string, percent-decoded ("+" is a space); absent when
 *                 missing or empty.  Other types: absent.
 *   device        "(no user agent)", "bot", "tablet", "mobile" or
 *                 "desktop" (the first that matches; the tokens are in
 *                 dims.c), for every type.
 *   browser       "(no user agent)", "Edge", "Opera", "Samsung
 *                 Internet", "Firefox", "Chrome", "Safari" or "other".
 * Every value is cut to ES_DIM_VALUE_MAX bytes (at a UTF-8 character
 * boundary), so an attacker's URL cannot make a long key.
 *
 * Debian packages no C user-agent parser (uap-core's regexes are not
 * packaged for C), so the classifier is this file's own small token
 * matcher: it reads no version, OS or model.
 */
#ifndef ES_DIMS_H
#define ES_DIMS_H

#include "eventstore.h"

/* Dimension numbers: rollup cells (rollup.h) and query keys use them. */
enum {
  ES_DIM_NONE = 0,
  ES_DIM_REFERRER = 1,
  ES_DIM_UTM_SOURCE = 2,
  ES_DIM_UTM_MEDIUM = 3,
  ES_DIM_UTM_CAMPAIGN = 4,
  ES_DIM_DEVICE = 5,
  ES_DIM_BROWSER = 6,
  ES_DIM_COUNT = 7 /* one past the last */
};

#define ES_DIM_VALUE_MAX 100

/* The values of one event; an absent value is NULL.  The strings point
 * into the struct's own buffer or to constants: valid as long as it. */
typedef struct es_dims {
  const char *v[ES_DIM_COUNT]; /* v[0] unused */
  char buf[4 * (ES_DIM_VALUE_MAX + 1)];
} es_dims;

/* Computes every dimension of ev into *out (no allocation, no failure). */
void es__dims_of(const es_event *ev, es_dims *out);

/* One dimension's value, computed alone (scan of a single dimension). */
const char *es__dim_of(const es_event *ev, int dim, es_dims *scratch);

/* The dimension's name as a query spec writes it ("referrer", ...), NULL
 * for an unknown number; es__dim_by_name is its inverse (0: none). */
const char *es__dim_name(int dim);
int es__dim_by_name(const char *name);

/* Whether the dimension has values for page events only (referrer and
 * the UTM parameters): rollups count those for page events only. */
#define ES_DIM_PAGE_ONLY(dim)                                                  \
  ((dim) >= ES_DIM_REFERRER && (dim) <= ES_DIM_UTM_CAMPAIGN)

#endif
