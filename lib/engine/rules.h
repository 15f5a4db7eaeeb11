/*
 * rules.h -- behaviour segments: per-tenant rules ("at least N matching
 * events within a window"), their durable list, and the sliding-window
 * counters that decide membership and fire triggers.
 *
 * Counters are kept per rule and per visitor id (anonymous id, else user
 * id): the event times of that id's latest atLeast matching events,
 * sorted.  Membership is a person's: the ids that identity stitching
 * links (identify, alias; less what unlinks undo) count together, so a
 * person is a member at T when the times of all their ids that lie in
 * (T - within, T] number at least atLeast.  Keeping each id's latest
 * atLeast is enough for that at any T at or after the person's latest
 * event: the union's latest atLeast are among them.
 *
 * Readers (es_rule_persons, es_rule_check) take the tenant's shared
 * identity map (identity.h, cached until a link changes).  Triggers fire
 * on the shard writer, which keeps a map of its own (es_rules.ids): built
 * by one scan when first needed, then linked incrementally by every
 * identify or alias row it counts, rebuilt after an unlink (ids_stale).
 * A trigger fires when an append makes a person a member:
 *   - a matching event at t: the person was not a member at t before it
 *     and is after it (evaluated over every id of the person);
 *   - a link joining two persons: T is the later of the link's time and
 *     the latest matching event of either; neither was a member at T and
 *     the joined person is.  It fires once, for the joined person.
 * The person is named by the smallest (by bytes) of its ids: the same
 * whatever order the links came in.
 *
 * Threads and invariants:
 *  1. Every change to a tenant's rules and counters happens on the
 *     tenant's shard writer thread: counters grow in writer_commit right
 *     after the rows are published (each acknowledged row exactly once),
 *     and a new rule's counters are filled by a scan run on that same
 *     thread (so the scan sees exactly the rows already counted by the
 *     others).  tenant->rules_mu guards them against readers.
 *  2. At open, counters come from the tenant's rule state (RSTATE,
 *     docs/FORMAT.md): every rule's counters as of an LSN L, written after
 *     each flush of the tenant and at close.  A rule is taken from it when
 *     its canonical JSON is there, the file checks, L is at or above the
 *     manifest's flushed_lsn F (every row it lacks is in the WAL) and the
 *     tenant has no memtable rows yet; the replay then counts only the
 *     rows above L into it (es_rule.base_lsn).  Otherwise the rule is
 *     filled from the segments (one scan of its latest `within`) and the
 *     replay counts the rows above F.  Replayed rows never fire triggers
 *     (they fired, or could have, before the restart).  RSTATE is a
 *     cache: a failed write is logged, a missing or damaged file or one
 *     of other rules means a scan.  It never holds an id an erase request
 *     hides (the write skips them; a finished erase rewrites it from the
 *     rows left).
 *  3. The RULES file is replaced atomically; what it lists is what a
 *     reopen loads.
 *  4. Events older than the latest atLeast of a visitor are forgotten, so
 *     a late event far in the past may cross or miss approximately.
 *  5. The writer's map links in arrival order, the readers' in event-time
 *     order: they differ only where the ES_IDENTITY_IDS_MAX cap or an
 *     unlink's time decides.  Links in the batch that first builds it (or
 *     rebuilds it after an unlink) are in the map already: they fire no
 *     trigger.
 */
#ifndef ES_RULES_H
#define ES_RULES_H

#include <pthread.h>
#include <stdatomic.h>

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

/* One point of a rule's membership series: `members` persons were members
 * at the last recording (a save of the rule state: after a flush of the
 * tenant, at close) within the hour that starts at hour_us, judged at
 * that recording's wall-clock time. */
typedef struct es_rpoint {
  int64_t hour_us;
  uint32_t members;
} es_rpoint;

#define ES_RULE_SERIES_MAX 840 /* points kept: 35 days of hours */

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
  int64_t max_ts;    /* latest matching event time seen */
  size_t prune_at;   /* prune old visitors when n reaches it */
  uint64_t base_lsn; /* rows at or below it are counted already (2) */
  es_rpoint *series; /* ascending hours, at most ES_RULE_SERIES_MAX */
  size_t nseries;
} es_rule;

struct es_identity;

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
  /* the writer's identity map (triggers per person); NULL until built */
  struct es_identity *ids;
  atomic_int ids_stale; /* an unlink happened: rebuild ids */
  /* the latest record the counters hold: counted (with or without rules:
   * a rule put later scans it), loaded, or flushed; written by the thread
   * that counts */
  _Atomic uint64_t lsn;
  int dirty; /* changed since RSTATE was written (rules_mu) */
  int lost;  /* a count failed (rows missed): RSTATE is removed, not
                written, until a load counts again (rules_mu) */
  /* the latest record the replay counted beyond what RSTATE held: its
   * sync may have failed before the restart, so RSTATE is not written
   * until a flush makes it durable (flushed_lsn reaches it) */
  _Atomic uint64_t replay_lsn;
  pthread_mutex_t save_mu; /* one RSTATE writer at a time */
} es_rules;

/* Parses and validates a rule's JSON; ES_EINVAL with "rule: ..." naming
 * the field.  *rule_out owned (es__rule_free). */
int es__rule_parse(const char *json, es_rule **rule_out) ES_MUST_CHECK;
void es__rule_free(es_rule *r);

/* Counts one event into a rule if it matches.  *crossed_out set when the
 * event made its person (its visitor id and every id `ids` links to it;
 * ids NULL: the visitor id alone) a member; then *person_out (the
 * person's smallest id, borrowed) and *count_out say who and how many in
 * the window. */
int es__rule_count(es_rule *r, struct es_identity *ids, const es_event *ev,
                   int *crossed_out, const char **person_out,
                   uint32_t *count_out) ES_MUST_CHECK;

/* Matching events of the ids (one person's) in (at_us - within, at_us]. */
uint32_t es__rule_person_count(const es_rule *r, const char *const *ids,
                               size_t n, int64_t at_us);

/* Reads tenant_dir/RULES (a missing file is no rules) / writes it
 * atomically. */
int es__rules_read(es_vfs *vfs, const char *tenant_dir,
                   es_rules *rules) ES_MUST_CHECK;
int es__rules_write(es_vfs *vfs, const char *tenant_dir,
                    const es_rules *rules) ES_MUST_CHECK;
/* Frees the rules and the writer's map; *rules is empty after. */
void es__rules_free(es_rules *rules);
/* Parses a RULES image into *rules (empty on entry); ES_ECORRUPT naming
 * path when it does not check.  On failure the caller frees *rules. */
int es__rules_parse(const uint8_t *p, size_t n, const char *path,
                    es_rules *rules) ES_MUST_CHECK;

/* --- the rule state file, RSTATE (rulestate.c) -------------------------- */

/* A parsed RSTATE: the LSN its counters are as of, and its rules (parsed
 * from their JSON, with counters and series). */
typedef struct es_rstate {
  uint64_t lsn;
  es_rules rules;
} es_rstate;

/* Serialises the rules' counters and series as of lsn into b (skipping
 * ids for which hide(ud, id) is nonzero; hide may be NULL). */
int es__rstate_encode(es_buf *b, uint64_t lsn, const es_rules *rules,
                      int (*hide)(const void *ud, const char *id),
                      const void *ud) ES_MUST_CHECK;
/* Parses an RSTATE image; ES_ECORRUPT naming path and offset when it does
 * not check, ES_EVERSION when newer.  On failure the caller frees
 * st->rules (es__rules_free). */
int es__rstate_parse(const uint8_t *p, size_t n, const char *path,
                     es_rstate *st) ES_MUST_CHECK;

/* Adds visitor id with times ts[0..n) (ascending, 1 <= n <= at_least) to
 * r (loading RSTATE); ES_EINVAL when id is there already or the times do
 * not fit. */
int es__rule_visitor_add(es_rule *r, const char *id, const int64_t *ts,
                         uint32_t n) ES_MUST_CHECK;

/* --- the database's side (rules.c, needs dbint.h) ------------------- */

struct es_db;
struct es_tenant;

/* At open, per tenant: loads RULES and the counters from RSTATE or the
 * segments (invariant 2; rebuild: from the segments). */
int es__tenant_rules_load(struct es_db *db, struct es_tenant *t,
                          int rebuild) ES_MUST_CHECK;

/* Writes the tenant's RSTATE (invariant 2) when its rules changed since
 * the last write, adding a point to each rule's series; removes it when
 * the tenant has no rules.  Writable handles only. */
int es__tenant_rules_save(struct es_db *db, struct es_tenant *t) ES_MUST_CHECK;

/* Counts the encoded rows of one append (the record at lsn) into the
 * tenant's rules (writer thread, or replay with fire 0) and fires the
 * triggers. */
int es__tenant_rules_count(struct es_db *db, struct es_tenant *t,
                           const uint8_t *rows, size_t rows_len, uint32_t count,
                           uint64_t lsn, int fire) ES_MUST_CHECK;

/*
 * Forgets ids in every rule of the tenant: their counters go (they are
 * members of nothing until new events come), and the writer's identity
 * map is rebuilt before the next trigger.  For erasing a person: call on
 * the tenant's shard writer (es__shard_call; invariant 1) after the
 * events are gone, or a later scan (a rule put) counts them again.
 */
void es__tenant_rules_forget(struct es_tenant *t, const char *const *ids,
                             size_t n);

#endif
