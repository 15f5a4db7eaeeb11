/*
 * gen.h -- a deterministic generator of realistic website-visitor events
 * (Segment-style page/track/identify/alias/group calls) for the benchmarks
 * and for loading test data with other tools.
 *
 * The same seed and options always give the same sequence of events, on
 * every machine: the generator has its own PRNG (xoshiro256**, seeded by
 * splitmix64) and reads neither the clock nor the environment.
 *
 * What the stream looks like:
 *  - tenants "t0001".."t0500" (gen_opts.tenants), traffic Zipf-skewed with
 *    exponent gen_opts.zipf_s (1.1): the first tenants carry most of it;
 *  - visitors per tenant with uuid-like anonymous ids, sessions of several
 *    page views whose referrer is the previous page; ~30% of visitors are
 *    identified and carry a user id "u_<n>@example.com";
 *  - ~70% page views, then "Button Clicked", "Form Submitted", custom
 *    track events with 100-400 bytes of JSON properties (numbers, strings,
 *    a nested object), identify calls with traits, a few alias and group;
 *  - event times rising evenly over gen_opts.days days from 2024-03-01Z,
 *    in whole milliseconds; ~1% arrive late (stamped 1-6 hours earlier);
 *    ~0.5% reuse the messageId of a recent event of the same tenant, as a
 *    client retry would.
 *
 * Memory: every string of a returned event lives in an arena owned by the
 * generator and stays valid until gen_arena_reset() or gen_free().
 */
#ifndef ES_BENCH_GEN_H
#define ES_BENCH_GEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "eventstore.h"

/* What to generate.  Fill with gen_opts_init() and change what you need. */
typedef struct gen_opts {
  uint64_t events_total; /* how many events the caller expects to draw:
                            times are spread so that they span `days` */
  int days;              /* time span of the stream; default 7 */
  int tenants;           /* number of tenants; default 500, max 9999 */
  double zipf_s;         /* tenant skew exponent; default 1.1 */
  double late_frac;      /* share of late events; default 0.01 */
  double dup_frac;       /* share of reused messageIds; default 0.005 */
} gen_opts;

/* Fills *opts with the defaults above (events_total 1,000,000). */
void gen_opts_init(gen_opts *opts);

typedef struct gen gen;

/* Creates a generator for `seed`; NULL when out of memory or when opts
 * are out of range (tenants < 1 or > 9999, days < 1). */
gen *gen_init(uint64_t seed, const gen_opts *opts);

/* Frees the generator and every string it handed out (NULL is fine). */
void gen_free(gen *g);

/*
 * Draws the next event into *out and its tenant id into *tenant_out.
 * The strings are borrowed from the generator's arena (see above); the
 * tenant string lives as long as the generator.  Returns 0, or -1 when out
 * of memory (then *out is untouched).
 */
int gen_next(gen *g, es_event *out, const char **tenant_out);

/* Frees the strings of every event drawn so far, keeping the generator's
 * state: for streaming many events through bounded memory. */
void gen_arena_reset(gen *g);

/* Bytes the arena holds at the moment (for sizing pre-generated sets). */
size_t gen_arena_bytes(const gen *g);

/* The tenant id of index i (0-based) of a generator: "t0001" for 0. */
const char *gen_tenant_name(const gen *g, int i);

/*
 * Writes one event as one line of Segment-format JSON to f:
 *   {"type":..,"event"|"name":..,"messageId":..,"anonymousId":..,
 *    "userId":..,"previousId":..,"groupId":..,"timestamp":"...Z",
 *    "properties"|"traits":{..},"context":{"page":{"path":..,"url":..,
 *    "referrer":..},"userAgent":..,"ip":..},"writeKey":"<tenant>"}
 * Absent (NULL) fields are left out.  The tenant travels as the writeKey,
 * which is how the Segment API names the source; a NULL tenant leaves it
 * out (an event inside a batch body, whose writeKey is the batch's).  Returns 0, or -1 when
 * the write failed (errno says why).
 */
int gen_write_ndjson(FILE *f, const es_event *ev, const char *tenant);

/* Prints s to f as a JSON string literal (es-bench's JSON reports use it
 * too). */
void json_string_to(FILE *f, const char *s);

#endif
