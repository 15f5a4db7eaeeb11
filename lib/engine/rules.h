/*
 * rules.h -- behaviour segments: per-tenant rules ("at least N matching
 * events within a window"), their durable list, and the sliding-window
 * counters that decide membership and fire triggers.
 *
 * Per rule and per visitor id (anonymous id, else user id) the counters
 * keep the event times of that visitor's latest atLeast matching events,
 * sorted.  A visitor is a member at T when at least atLeast of them lie
 * in (T - within, T].  An event at t crosses when the visitor was not a
 * member at t before it and is after it; that is when the trigger fires.
 *
 * Threads and invariants:
 *  1. Every change to a tenant's rules and counters happens on the
 *     tenant's shard writer thread: counters grow in writer_commit right
 *     after the rows are published (each acknowledged row exactly once),
 *     and a new rule's counters are filled by a scan run on that same
 *     thread (so the scan sees exactly the rows already counted by the
 *     others).  tenant->rules_mu guards them against readers.
 *  2. At open, counters are filled from the segments (one scan of the
 *     latest `within` of each tenant with rules) before the WAL replay
 *     adds the unflushed rows; replayed rows never fire triggers (they
 *     fired, or could have, before the restart).
 *  3. The RULES file is replaced atomically; what it lists is what a
 *     reopen loads.
 *  4. Events older than the latest atLeast of a visitor are forgotten, so
 *     a late event far in the past may cross or miss approximately.
 */
#ifndef ES_RULES_H
#define ES_RULES_H

#include "base/codec.h"
#include "base/hashtab.h"
#include "base/io.h"
#include "eventstore.h"

#define ES_RULE_NAME_MAX 64

typedef struct es_rvisitor {
  char *id;
  uint32_t n;   /* times in use */
  int64_t ts[]; /* at_least slots, ascending */
} es_rvisitor;

typedef struct es_rule {
  char name[ES_RULE_NAME_MAX + 1];
  char *json; /* canonical JSON text of the rule */
  int type;   /* 0 = any */
  char *event, *path;
  uint32_t at_least;
  int64_t within_us;
  /* counters: n visitors, records of es__rule_vsize bytes one after the
   * other in `vis` (no allocation per visitor but its id), filed by id in
   * `index` (visitor index + 1) */
  es_htab index;
  unsigned char *vis;
  size_t n, vis_cap;
  int64_t max_ts;  /* latest matching event time seen */
  size_t prune_at; /* prune old visitors when n reaches it */
} es_rule;

/* The size of one visitor record of r (its ts[] holds at_least times). */
static inline size_t es__rule_vsize(const es_rule *r) {
  size_t a = _Alignof(es_rvisitor),
         n = sizeof(es_rvisitor) + r->at_least * sizeof(int64_t);
  return (n + a - 1) / a * a;
}

/* Visitor i (< r->n) of r; valid until the next es__rule_count. */
static inline es_rvisitor *es__rule_visitor(const es_rule *r, size_t i) {
  return (es_rvisitor *)(void *)(r->vis + i * es__rule_vsize(r));
}

typedef struct es_rules {
  es_rule **v; /* sorted by name */
  size_t n;
} es_rules;

/* Parses and validates a rule's JSON; ES_EINVAL with "rule: ..." naming
 * the field.  *rule_out owned (es__rule_free). */
int es__rule_parse(const char *json, es_rule **rule_out) ES_MUST_CHECK;
void es__rule_free(es_rule *r);

/* Counts one event into a rule if it matches.  *crossed_out set when the
 * event made its visitor a member (then *visitor_out and *count_out say
 * who and how many in the window). */
int es__rule_count(es_rule *r, const es_event *ev, int *crossed_out,
                   const char **visitor_out, uint32_t *count_out) ES_MUST_CHECK;

/* Whether a visitor id is a member at at_us. */
int es__rule_is_member(const es_rule *r, const char *id, int64_t at_us);

/* Reads tenant_dir/RULES (a missing file is no rules) / writes it
 * atomically. */
int es__rules_read(es_vfs *vfs, const char *tenant_dir,
                   es_rules *rules) ES_MUST_CHECK;
int es__rules_write(es_vfs *vfs, const char *tenant_dir,
                    const es_rules *rules) ES_MUST_CHECK;
void es__rules_free(es_rules *rules);
/* Parses a RULES image into *rules (empty on entry); ES_ECORRUPT naming
 * path when it does not check.  On failure the caller frees *rules. */
int es__rules_parse(const uint8_t *p, size_t n, const char *path,
                    es_rules *rules) ES_MUST_CHECK;

/* --- the database's side (rules.c, needs dbint.h) ------------------- */

struct es_db;
struct es_tenant;

/* At open, per tenant: loads RULES and fills the counters from the
 * segments (invariant 2). */
int es__tenant_rules_load(struct es_db *db, struct es_tenant *t) ES_MUST_CHECK;

/* Counts the encoded rows of one append into the tenant's rules
 * (writer thread, or replay with fire 0) and fires the triggers. */
int es__tenant_rules_count(struct es_db *db, struct es_tenant *t,
                           const uint8_t *rows, size_t rows_len, uint32_t count,
                           int fire) ES_MUST_CHECK;

#endif
