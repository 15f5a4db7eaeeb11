/*
 * eventstore.h -- the public interface of libeventstore.
 *
 * This header is the authoritative manual of the library: every call says
 * what it does, who owns what it returns and for how long, and which errors
 * it can return.  docs/ARCHITECTURE.md explains the machinery behind it and
 * docs/ERRORS.md explains every status code at length.
 *
 * Conventions (they hold for every declaration below):
 *
 *  1. Handles (es_db, es_cursor) are opaque.  Functions that release a
 *     handle accept NULL and do nothing then.
 *  2. Every call that can fail returns an int status: ES_OK (0) on success,
 *     a negative ES_E* code on failure.  Codes are pinned: a value never
 *     changes meaning between releases.  es_strerror() names a code;
 *     es_errdetail() gives the calling thread's last detailed message,
 *     es_errmsg() the same without source locations.
 *  3. Inputs are copied: once a call returns, the caller may free or reuse
 *     every buffer it passed in.
 *  4. Returned pointers are borrowed unless marked "owned": they stay valid
 *     until the next call on the same object (for a cursor: the next
 *     es_cursor_next() or es_cursor_close()).
 *  5. An es_db is thread-safe: any number of threads may append, flush and
 *     scan concurrently.  An es_cursor belongs to one thread at a time.
 *  6. If a call fails, its out-parameters are set to NULL/zero and nothing
 *     needs to be freed (es_open sets *db_out to NULL on failure).
 *  7. I/O errors on the write path come in two kinds (see es_state):
 *     - fail-stop: a failed WAL write or fsync, or a failure at or after
 *       the rename that commits a file.  The database is then "failed":
 *       it keeps serving scans of what it holds, but every write returns
 *       ES_EFAILED until it is closed and reopened.  Recovery on reopen
 *       decides what was durable; nothing is retried on trust (a failed
 *       fsync may have dropped dirty pages).
 *     - retryable: ENOSPC or EIO while writing a file nothing acknowledged
 *       depends on yet (a segment or rollup before its manifest, a spare
 *       WAL file, a temporary file before its rename): the WAL still holds
 *       the events.  The temporary file is removed.  A background writer
 *       (flush, spare WAL file) then puts the database in the "degraded"
 *       state and retries with exponential backoff (50 ms doubling to
 *       5 s); the first retry that succeeds returns it to "ok" by itself.
 *       A call of the caller's (es_rule_put, es_identity_unlink,
 *       es_rollup_rebuild, es_compact) returns ES_ENOSPC or ES_EIO and
 *       changes nothing: the caller retries.  While degraded, appends are
 *       accepted as long as the WAL takes them and the memtables fit in
 *       memtable_budget_bytes, and refused with ES_EDEGRADED beyond
 *       (never blocked indefinitely).
 *  8. Times are microseconds since the Unix epoch, UTC, in int64_t, and
 *     ranges are half-open: [from_us, to_us).
 *  9. Option structs (es_options, es_scan_spec, es_compact_options) begin
 *     with struct_size, which their _init macro sets to the size the
 *     program was compiled with.  So a program built against an older
 *     header keeps working with a newer library (fields it does not know
 *     get their defaults), and a newer program on an older library gets
 *     ES_EINVAL naming the option the library does not know, if it set
 *     one, instead of memory read past a struct.  A struct not filled by
 *     its _init macro (struct_size 0) is refused with ES_EINVAL.
 * 10. es_event (in arrays, and as an output) and the result structs
 *     (es_receipt, es_compact_report, es_rollup_report) carry no size of
 *     their own: the calls that take them (es_append, es_append_flagged,
 *     es_cursor_next, es_timeline_next, es_compact, es_rollup_rebuild)
 *     are macros that pass the sizes the program was compiled with to an
 *     _sized function.  The library reads an event array with the
 *     program's stride (refusing, with ES_EINVAL, an event that sets a
 *     field it does not know), and writes a result or an event only as
 *     far as the program's struct goes (a longer one gets zeros past what
 *     the library knows).  So these structs, too, can gain fields at the
 *     end in a minor release.
 */
#ifndef EVENTSTORE_H
#define EVENTSTORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ES_BUILDING_LIBRARY) && defined(__GNUC__)
#define ES_API __attribute__((visibility("default")))
#else
#define ES_API
#endif

/*
 * Library version (semantic versioning: MAJOR changes break the API or ABI,
 * MINOR adds, PATCH fixes).  The on-disk format has its own version,
 * ES_FORMAT_VERSION, specified in docs/FORMAT.md: a library reads every
 * format version up to its own and refuses newer ones with ES_EVERSION.
 */
#define ES_VERSION_MAJOR 0
#define ES_VERSION_MINOR 1
#define ES_VERSION_PATCH 0
#define ES_VERSION_NUMBER                                                      \
  (ES_VERSION_MAJOR * 10000 + ES_VERSION_MINOR * 100 + ES_VERSION_PATCH)
#define ES_FORMAT_VERSION 4

/* The version of the library actually linked, as ES_VERSION_NUMBER. */
ES_API int es_version(void);

/*
 * Status codes.  Pinned values: never renumbered, never reused.
 */
#define ES_OK 0
#define ES_EINVAL (-1)     /* an argument is invalid (NULL, out of range) */
#define ES_ENOMEM (-2)     /* an allocation failed */
#define ES_EIO (-3)        /* the operating system reported an I/O error */
#define ES_ENOSPC (-4)     /* the disk is full */
#define ES_ECORRUPT (-5)   /* a checksum or structure check failed */
#define ES_EFAILED (-6)    /* the database failed earlier; reopen it */
#define ES_EBUSY (-7)      /* the data directory is locked by a process */
#define ES_ENOTFOUND (-8)  /* no such tenant, file or object */
#define ES_EVERSION (-9)   /* on-disk format newer than this library */
#define ES_ETENANT (-10)   /* tenant id is not [A-Za-z0-9_-]{1,64} */
#define ES_ETOOBIG (-11)   /* an event or batch exceeds a size limit */
#define ES_ECLOSED (-12)   /* the database is closing */
#define ES_EREADONLY (-13) /* a write on a read-only handle */
#define ES_EDEGRADED (-14) /* degraded (disk full?): retry later */
/* Object store (lib/replicate), kept apart from the codes above: */
#define ES_ECONFLICT (-15) /* a conditional object put's condition failed */
#define ES_EUNAVAIL (-16)  /* object store unreachable or overloaded: retry */
#define ES_EREMOTE (-17)   /* object store refused the request for good */

/* A static English name and sentence for a status code; never NULL. */
ES_API const char *es_strerror(int status);

/*
 * The calling thread's most recent error detail: what failed, where (file
 * and line in the library) and, for I/O, which path and errno.  The text is
 * owned by the library and valid until the thread's next library call.
 * Returns "" when there is nothing to say.
 */
ES_API const char *es_errdetail(void);

/*
 * The same detail without the library's source locations (" (io.c:223)"):
 * what a server or tool shows to its users, who cannot act on file and
 * line (keep es_errdetail() for debug logs and bug reports).  Owned by
 * the library, valid until the thread's next library call; "" when there
 * is nothing to say.
 */
ES_API const char *es_errmsg(void);

/* ----------------------------------------------------------------------
 * Events
 * ---------------------------------------------------------------------- */

/* Event types; the numbers are stored on disk and pinned. */
typedef enum es_type {
  ES_TYPE_TRACK = 1,
  ES_TYPE_PAGE = 2,
  ES_TYPE_SCREEN = 3,
  ES_TYPE_IDENTIFY = 4,
  ES_TYPE_ALIAS = 5,
  ES_TYPE_GROUP = 6
} es_type;

/* "track", "page", ...; NULL for a value outside es_type. */
ES_API const char *es_type_name(int type);
/* The es_type for a name ("track"...), or 0 when unknown. */
ES_API int es_type_from_name(const char *name);

/*
 * One visitor event.  String fields are NUL-terminated UTF-8; NULL means
 * absent (stored distinctly from "").  On input (es_append) everything is
 * copied.  On output (es_cursor_next) the strings are borrowed from the
 * cursor.
 *
 * Limits: one event, encoded, at most ES_EVENT_BYTES_MAX; one es_append
 * batch at most ES_BATCH_EVENTS_MAX events.
 */
typedef struct es_event {
  int64_t ts_us;          /* event time (the client's, skew-corrected) */
  int64_t recv_us;        /* receive time; 0 on input = stamp "now" */
  int type;               /* es_type */
  const char *event;      /* track: event name; page/screen: page name */
  const char *message_id; /* client's id, for de-duplication */
  const char *anonymous_id;
  const char *user_id;
  const char *previous_id; /* alias: the id being merged into user_id */
  const char *group_id;    /* group: the group joined */
  const char *path;        /* page path, e.g. "/pricing" */
  const char *url;
  const char *referrer;
  const char *properties; /* JSON text (properties, or traits for
                             identify/group), stored byte for byte */
  const char *user_agent;
  const char *ip; /* stored truncated to /24 (IPv4) or /48 (IPv6) unless
                     es_options.keep_full_ip is set */
} es_event;

#define ES_EVENT_BYTES_MAX (1024 * 1024)
#define ES_BATCH_EVENTS_MAX 100000
#define ES_TENANT_LEN_MAX 64

/*
 * ISO 8601 times, as the library reads and writes them everywhere (query
 * specs and results, and the servers' and tools' Segment JSON).
 * es_time_parse reads "YYYY-MM-DD" (midnight UTC) or
 * "YYYY-MM-DDTHH:MM[:SS[.fraction]]" followed by "Z", an offset "+HH:MM",
 * "+HHMM", "+HH" (or "-"), or nothing (UTC); "t", "z" and a space for the
 * "T" are accepted; a fraction finer than microseconds is truncated; leap
 * seconds and times outside years 0000..9999 (in UTC) are refused with
 * ES_EINVAL.  With ES_TIME_STRICT (as query specs are read) a time of day
 * needs a zone and a "T".  es_time_format writes
 * "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (the fraction always with ES_TIME_MICROS,
 * else only when not zero) and returns its length, or 0 when size is too small
 * (ES_TIME_TEXT_MAX is always enough).
 */
#define ES_TIME_MICROS 1 /* es_time_format: always six fraction digits */
#define ES_TIME_STRICT 2 /* es_time_parse: a time of day needs a zone */
#define ES_TIME_TEXT_MAX 40
ES_API int es_time_parse(const char *text, int flags, int64_t *ts_us_out);
ES_API size_t es_time_format(int64_t ts_us, int flags, char *buf, size_t size);

/* ----------------------------------------------------------------------
 * Opening and closing
 * ---------------------------------------------------------------------- */

#define ES_SYNC_FULL 0 /* default: fdatasync before any acknowledgement */
#define ES_SYNC_NONE                                                           \
  1 /* no fsync at all: tests and benchmarks only; a                           \
       crash of the machine loses recent appends */

typedef struct es_log_options {
  /* Called for notable events (recovery, seals, errors); may be NULL.
   * level: 0 error, 1 warning, 2 info.  Called from library threads:
   * must be thread-safe and must not call back into the library. */
  void (*fn)(void *ud, int level, const char *msg);
  void *ud;
} es_log_options;

/* A person crossed a rule's threshold (see es_rule_put). */
typedef struct es_trigger {
  const char *tenant;
  const char *rule;   /* the rule's name */
  const char *person; /* the person: the smallest of its linked ids */
  int64_t ts_us;      /* the event time of the event that crossed */
  uint32_t count;     /* matching events inside the window, >= atLeast */
} es_trigger;

typedef struct es_trigger_options {
  /* Called once per crossing, from the shard writer thread, after the
   * event is durable and before the es_append that carried it returns;
   * may be NULL.  Strings are valid during the call only.  It holds up
   * that shard's appends while it runs: hand the firing to a queue and
   * return; never call es_append or es_rule_* from it (deadlock). */
  void (*fn)(void *ud, const es_trigger *trigger);
  void *ud;
} es_trigger_options;

/*
 * Options for es_open.  Always fill with es_options_init() first and then
 * change what you need: new fields get defaults that way.
 */
typedef struct es_options {
  size_t struct_size;           /* set by es_options_init (convention 9) */
  const char *data_dir;         /* required; created if missing */
  int shards;                   /* WAL shards (writer threads); default: online
                                   cores.  Fixed when the directory is created:
                                   a later open uses the stored count. */
  size_t memtable_budget_bytes; /* all memtables together, with the
                                   messageIds of their rows (dedupe);
                                   appends wait for flushes above it.
                                   Default 1 GiB */
  size_t seal_bytes;          /* seal a tenant's memtable at this size; 8 MiB */
  int64_t seal_age_us;        /* ...or when its oldest row is this old; 5 min */
  size_t wal_file_bytes;      /* WAL file size, preallocated; default 32 MiB */
  int sync_mode;              /* ES_SYNC_FULL (default) or ES_SYNC_NONE */
  int keep_full_ip;           /* 0 (default): truncate ip addresses */
  int wal_compress;           /* 1 (default): LZ4-compress WAL records on the
                                 appending threads (about 3x fewer WAL bytes);
                                 0 writes them raw */
  int compact_segments;       /* 0 (default): segments are merged only by
                                 es_compact.  N > 0: after a flush, when the
                                 flusher has nothing else queued and the tenant
                                 has N or more small segments, the flusher
                                 compacts that tenant with memory_bytes =
                                 memtable_budget_bytes / 8 (see
                                 es_compact_options) */
  int read_only;              /* 1: a reader beside a writing process; see
                                 "Read-only handles" below es_open */
  int64_t follow_interval_us; /* read_only: how often the follower looks
                                 for new WAL bytes and manifests; 50 ms */
  int64_t dedupe_window_us;   /* idempotent append: es_append does not store
                                 again an event whose messageId the tenant
                                 already holds with an event time at most
                                 this far (either way) from the new one's;
                                 see es_append.  Default 7 days; 0 turns it
                                 off (every event is stored) */
  es_log_options log;
  es_trigger_options trigger;
  int must_exist; /* 0 (default): a directory without a store gets a new
                     one.  1: ES_ENOTFOUND ("no store in DIR") instead, and
                     nothing is created: for tools that must not turn a
                     mistyped path into a store */
  struct es_replica *replica;   /* NULL (default): no replication.  Else the
                                   object store every sealed segment, rollup,
                                   manifest, IDENTITY and RULES file is copied
                                   to in the background (es_replica_s3_new);
                                   borrowed: it must outlive the handle.
                                   Ignored by read-only handles. */
  int64_t replica_interval_us;  /* how often the uploader looks for files not
                                   yet copied when no commit woke it; 1 s */
  int64_t replica_grace_us;     /* an object no uploaded manifest names any
                                   more is deleted this long after the first
                                   manifest without it was uploaded (so a
                                   restore reading an older manifest finds
                                   its files); 10 min */
  int durability;               /* ES_DURABILITY_LOCAL (default): es_append
                                   returns once the batch is fdatasync'ed
                                   here.  ES_DURABILITY_S3 (needs replica):
                                   once its WAL frame is in the object store
                                   too (docs/REPLICATION.md, "Tier s3");
                                   ES_EUNAVAIL when that cannot be had */
  int64_t s3_ack_timeout_us;    /* tier s3: how long es_append waits for the
                                   object store before ES_EUNAVAIL; 5 s */
  int s3_puts_inflight;         /* tier s3: WAL chunk PUTs a shard may have
                                   under way at once (pipelining, so that a
                                   store's round trip does not bound the
                                   shard to one chunk per round trip);
                                   0 (default): ES_S3_PUTS_INFLIGHT_DEFAULT,
                                   at most ES_S3_PUTS_INFLIGHT_MAX */
  int64_t s3_window_bytes;      /* WAL shipping: bytes of WAL frames a shard
                                   keeps in memory for the shipper; past it
                                   the shipper reads them back from the WAL
                                   files (docs/REPLICATION.md, "The backlog
                                   is on disk"); 0 (default):
                                   ES_S3_WINDOW_BYTES_DEFAULT */
  int64_t s3_backlog_bytes_max; /* WAL shipping: WAL file bytes the store
                                   keeps past their reclaim until the shipper
                                   has read them; past it the shard is
                                   degraded (their events reach the object
                                   store in segments, later); 0 (default):
                                   ES_S3_BACKLOG_BYTES_DEFAULT */
  int ship_wal;                 /* 1: ship the WAL with a replica in tier
                                   local too, so that its copy follows
                                   within seconds rather than at the seal,
                                   and es_tenant_durability_set can put a
                                   tenant in tier s3.  0 (default): only in
                                   tier s3 */
} es_options;

#define ES_S3_PUTS_INFLIGHT_DEFAULT 4
#define ES_S3_PUTS_INFLIGHT_MAX 64
#define ES_S3_WINDOW_BYTES_DEFAULT ((int64_t)16 << 20)
#define ES_S3_BACKLOG_BYTES_DEFAULT ((int64_t)8 << 30)

/* es_options.durability, es_tenant_durability_set; ES_DURABILITY_DEFAULT
 * (es_tenant_durability_set only): the handle's tier */
#define ES_DURABILITY_LOCAL 0
#define ES_DURABILITY_S3 1
#define ES_DURABILITY_DEFAULT (-1)

/* Fills *opts with the documented defaults (data_dir NULL) and
 * struct_size.  es_options_init is the call to use; the function behind it
 * takes the size the program was compiled with (convention 9). */
ES_API void es_options_init_sized(es_options *opts, size_t struct_size);
#define es_options_init(opts) es_options_init_sized((opts), sizeof(es_options))

typedef struct es_db es_db;

/*
 * Opens (creating if needed, unless opts->must_exist) the store in
 * opts->data_dir and recovers it:
 * every WAL record that is not yet in a segment is replayed into the
 * memtables, a torn tail of the last WAL file is cut off, orphaned
 * temporary files are removed.  Takes an exclusive lock on the directory.
 *
 * On success *db_out is a handle to close with es_close().  On failure
 * *db_out is NULL and the status says why: ES_EINVAL (bad options),
 * ES_EBUSY (another process holds the directory; es_errdetail() names its
 * PID, which the holder writes into DIR/LOCK), ES_ENOTFOUND (no store and
 * opts->must_exist), ES_ECORRUPT (a checksum
 * failed anywhere but in the torn tail of the log; es_errdetail() names the
 * file and offset), ES_EVERSION, ES_EIO, ES_ENOSPC, ES_ENOMEM.
 */
ES_API int es_open(const es_options *opts, es_db **db_out);

/*
 * Read-only handles (opts.read_only = 1).  A second process (a query
 * server) opens the same data directory while the writing process keeps
 * appending.  It takes no lock and never writes: it loads the manifests
 * and segments, reads every WAL record not yet in a segment into its own
 * memtables, and then a follower thread, every follow_interval_us, reads
 * the bytes appended to the WAL files since it last looked (only those:
 * no file is read again from the start), and re-reads a tenant's MANIFEST
 * when it has changed (new segments from the writer's flushes replace the
 * memtable rows they hold).  So a read-only handle sees an acknowledged
 * append within about follow_interval_us (plus the time to read it).
 * Scans, queries, timelines and rule reads work as on a writable handle;
 * rule counters are fed by the follower, and opts.trigger.fn fires on the
 * follower thread for rows it reads (never for rows present at open).
 * Rules themselves are read from the RULES files when they change.
 * es_append, es_flush, es_rule_put, es_rule_delete, es_compact and
 * es_rollup_rebuild return ES_EREADONLY.  The data directory must exist
 * (ES_ENOTFOUND otherwise).
 */

/*
 * Waits for in-flight appends, stops the background threads, and releases
 * the handle.  Memtables are not sealed (their rows are in the WAL and are
 * replayed at the next open); call es_flush() first for a short recovery.
 * With a replica, object-store requests under way are cancelled (it never
 * waits more than about a second for S3; what was not uploaded is by the
 * next open), and tier-s3 appends still waiting get ES_ECLOSED.
 * Open cursors must be closed before.  Returns the failure that made the
 * database failed, if any, else ES_OK.  The handle is freed either way.
 */
ES_API int es_close(es_db *db);

/*
 * The state of a handle (see convention 7):
 *   ES_STATE_OK        everything works;
 *   ES_STATE_DEGRADED  a background write (a flush, a spare WAL file, a
 *                      WAL file rollover) failed with a retryable error,
 *                      typically a full disk; it is retried with backoff
 *                      and the state returns to ok by itself when a retry
 *                      succeeds.  Appends beyond the memory budget, and
 *                      es_flush, return ES_EDEGRADED meanwhile;
 *   ES_STATE_FAILED    a fail-stop error: reopen the handle.
 * es_state returns the state (>= 0), and when why is not NULL writes a
 * NUL-terminated sentence saying why (the first error that caused it, or
 * "ok") into why[0..why_cap).  A read-only handle is ES_STATE_OK unless
 * it is closing.  Thread-safe, cheap (no I/O): servers call it for their
 * readiness probes.  Errors: ES_EINVAL (NULL handle).
 */
#define ES_STATE_OK 0
#define ES_STATE_DEGRADED 1
#define ES_STATE_FAILED 2
ES_API int es_state(es_db *db, char *why, size_t why_cap);

/* ----------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------- */

/* What es_append reports about a durable batch. */
typedef struct es_receipt {
  uint64_t lsn;              /* the batch's log sequence number in its shard;
                                0 when every event was a duplicate */
  uint32_t shard;            /* the shard (WAL) that holds it */
  uint32_t events_count;     /* events in the batch: stored + duplicates */
  int64_t durable_us;        /* wall time at which it became durable */
  uint32_t stored_count;     /* events stored by this call */
  uint32_t duplicates_count; /* events not stored: duplicates */
  uint32_t suppressed_count; /* events not stored: their person is erased
                                with suppression (es_erase_options) */
} es_receipt;

/*
 * Idempotent append.  With es_options.dedupe_window_us > 0 (the default),
 * an event whose message_id (not NULL, not "") equals, byte for byte,
 * that of an event the tenant already holds whose event time is within
 * dedupe_window_us of its own, is a duplicate: it is not stored again
 * (nor counted by rollups or rules) and the receipt says so.  That holds
 * for a duplicate inside one batch (the first occurrence is stored), for
 * concurrent appends of one id from many threads (one is stored), and
 * across flushes, compactions and restarts.  It is exact: a Bloom filter
 * only says where to look; the stored ids are compared.  Ids dropped by
 * retention (es_compact) are forgotten with their events.  Memory: the ids
 * of unflushed events (about 40 bytes each plus the id), a cache of
 * 32-bit fingerprints of the message ids of the segments looked at (4
 * bytes an event, at most 64 MiB per handle) and one of decoded
 * message_id columns (at most 32 MiB); each at most an eighth of
 * memtable_budget_bytes.
 */

/*
 * Appends a batch of events to a tenant and returns once the batch is
 * durable (written and fdatasync'ed, unless sync_mode is ES_SYNC_NONE).
 * Concurrent appends to the same shard share one fdatasync (group commit).
 * When it returns ES_OK, scans see the events.  The batch is atomic: after
 * a crash either all of it or none of it is recovered, and none of it if
 * this call did not return ES_OK... except that a batch whose append failed
 * with ES_EIO/ES_EFAILED may have reached the disk and may reappear after
 * recovery (an unacknowledged write is in doubt, as in every database).
 *
 * receipt_out may be NULL.  Thread-safe.  Errors: ES_EINVAL (NULL, count 0,
 * an invalid type, ts_us < 0 or INT64_MAX), ES_ETENANT, ES_ETOOBIG, ES_EFAILED,
 * ES_ECLOSED, ES_EIO, ES_ENOSPC, ES_ENOMEM, ES_EREADONLY, ES_EDEGRADED (the
 * store is degraded and its memtables are full, or a new WAL file could
 * not be made: nothing of the batch was written; retry later).
 *
 * In durability tier s3 (es_options.durability) ES_OK also means that the
 * batch's WAL frame is in the object store (a batch of duplicates only:
 * that every frame of its shard so far is), and concurrent appends share
 * one PUT.  ES_EUNAVAIL when the store did not confirm it within
 * s3_ack_timeout_us, or is known to be failing (then at once, nothing
 * written): the batch is durable here and may still reach the store, so
 * retry it with the same messageIds (a retry that finds them is a
 * duplicate and returns ES_OK once the original is in the store).
 */
ES_API int es_append(es_db *db, const char *tenant, const es_event *events,
                     size_t count, es_receipt *receipt_out);
ES_API int es_append_sized(es_db *db, const char *tenant,
                           const es_event *events, size_t count,
                           es_receipt *receipt_out, size_t event_size,
                           size_t receipt_size);

/*
 * es_append that also says which events were duplicates: dup_out is NULL
 * or an array of at least `count` bytes owned by the caller; on ES_OK,
 * dup_out[i] is 1 when events[i] was a duplicate (not stored), 2 when it
 * was suppressed (not stored: its person is erased with suppression,
 * es_erase_options), else 0 (never 1 when dedupe_window_us is 0).  A
 * batch whose every event is suppressed returns ES_OK with stored_count 0
 * and lsn 0.  On failure its contents are
 * unspecified.  The library writes it only during the call.  A batch
 * whose every event is a duplicate returns ES_OK with stored_count 0 and
 * lsn 0: the events it repeats are already durable.  Errors as es_append.
 */
ES_API int es_append_flagged(es_db *db, const char *tenant,
                             const es_event *events, size_t count,
                             es_receipt *receipt_out, uint8_t *dup_out);
ES_API int es_append_flagged_sized(es_db *db, const char *tenant,
                                   const es_event *events, size_t count,
                                   es_receipt *receipt_out, uint8_t *dup_out,
                                   size_t event_size, size_t receipt_size);

/*
 * Seals the memtable of `tenant` (or of every tenant when NULL) into
 * segments and waits until they are recorded in the manifests.  After it
 * returns ES_OK the WAL no longer needs those rows.  Errors: ES_ETENANT,
 * ES_EFAILED, ES_EIO, ES_ENOSPC, ES_ENOMEM, ES_EDEGRADED (a flush failed
 * with a retryable error and is being retried in the background: the rows
 * are safe in the WAL).  Flushing a tenant that has no
 * rows is ES_OK.
 */
ES_API int es_flush(es_db *db, const char *tenant);

/* ----------------------------------------------------------------------
 * Reading
 * ---------------------------------------------------------------------- */

/* What to scan.  Fill with es_scan_spec_init() first. */
typedef struct es_scan_spec {
  size_t struct_size; /* set by es_scan_spec_init (convention 9) */
  const char *tenant; /* required */
  int64_t from_us;    /* inclusive; default INT64_MIN */
  int64_t to_us;      /* exclusive; default INT64_MAX */
  const char *person; /* if not NULL: only events whose user_id or
                         anonymous_id equals it */
  uint32_t fields;    /* the string fields wanted (ES_FIELD_* ORed); 0 =
                         all (default).  Others come back NULL, and their
                         column blocks are not even read from segments:
                         a scan that needs no properties runs faster. */
} es_scan_spec;

/* es_scan_spec.fields bits, one per string field of es_event. */
#define ES_FIELD_EVENT (1u << 0)
#define ES_FIELD_MESSAGE_ID (1u << 1)
#define ES_FIELD_ANONYMOUS_ID (1u << 2)
#define ES_FIELD_USER_ID (1u << 3)
#define ES_FIELD_PREVIOUS_ID (1u << 4)
#define ES_FIELD_GROUP_ID (1u << 5)
#define ES_FIELD_PATH (1u << 6)
#define ES_FIELD_URL (1u << 7)
#define ES_FIELD_REFERRER (1u << 8)
#define ES_FIELD_PROPERTIES (1u << 9)
#define ES_FIELD_USER_AGENT (1u << 10)
#define ES_FIELD_IP (1u << 11)
#define ES_FIELD_ALL 0xfffu

/* Fills *spec with the defaults above and struct_size (convention 9). */
ES_API void es_scan_spec_init_sized(es_scan_spec *spec, size_t struct_size);
#define es_scan_spec_init(spec)                                                \
  es_scan_spec_init_sized((spec), sizeof(es_scan_spec))

typedef struct es_cursor es_cursor;

/*
 * Starts a scan of the events that were acknowledged before this call, in
 * event-time order (ties in append order).  The cursor sees a snapshot:
 * later appends are not returned.  An unknown tenant yields an empty scan.
 * On failure *cur_out is NULL.  Errors: ES_EINVAL, ES_ETENANT, ES_ENOMEM,
 * ES_ECLOSED.
 */
ES_API int es_scan(es_db *db, const es_scan_spec *spec, es_cursor **cur_out);

/*
 * Advances the cursor.  Returns 1 and fills *ev_out with the next event
 * (strings borrowed until the next call on the cursor), 0 at the end, or
 * a negative status: ES_ECORRUPT when a block fails its checksum
 * (es_errdetail() names segment file, offset and column) or ES_EIO.  After
 * an error the cursor stays at the error.
 */
ES_API int es_cursor_next(es_cursor *cur, es_event *ev_out);
ES_API int es_cursor_next_sized(es_cursor *cur, es_event *ev_out,
                                size_t event_size);

/* Releases the cursor; NULL is fine. */
ES_API void es_cursor_close(es_cursor *cur);

/* ----------------------------------------------------------------------
 * Querying (docs/QUERY.md specifies the spec and the result)
 * ---------------------------------------------------------------------- */

/*
 * Answers a query over one tenant's events: filters (time range, type,
 * event, path, person), optional time buckets (minute, hour, day; UTC),
 * grouping by event, path and/or type, and the aggregates count and
 * uniques (distinct persons, after identity stitching: see
 * ES_IDENTITY_IDS_MAX; filter.person also matches every linked id).
 * spec_json is the JSON spec of
 * docs/QUERY.md, e.g.
 *
 *   {"from":"2024-03-01T00:00:00Z","to":"2024-03-02T00:00:00Z",
 *    "filter":{"type":"page"},"bucket":"hour","groupBy":["path"],
 *    "aggregate":["count","uniques"],"order":"desc","limit":10}
 *
 * The answer sees the events acknowledged before the call (like es_scan).
 * The planner answers from the tenant's rollups (per-minute counts and
 * HyperLogLog sketches, maintained at append) when the spec has no
 * person filter and does not ask for exact uniques; the partial minutes
 * at the ends of an unaligned range are scanned.  Counts are always
 * exact.  Uniques from rollups are estimates (standard error 0.81 %) of
 * distinct visitor ids (anonymous id, else user id) without stitching;
 * "exact":true makes them exact, stitched counts by scanning.  On
 * success *result_out is the result JSON, NUL-terminated, e.g.
 * {"rows":[{"bucket":"...","path":"/","count":3,"uniques":2}],
 * "source":"rollup","approx":true,"error":0.0081} ("source" is rollup,
 * scan or mixed): owned by the caller, release it with es_free().  An
 * unknown tenant has no rows.  Thread-safe.
 *
 * Errors (*result_out NULL): ES_EINVAL (NULL argument, or a bad spec: then
 * es_errdetail() starts with "spec: " and names the field, e.g.
 * spec: "bucket" must be one of minute, hour, day, none), ES_ETENANT,
 * ES_ENOMEM, ES_ECLOSED, ES_ECORRUPT and ES_EIO (from reading segments).
 */
ES_API int es_query(es_db *db, const char *tenant, const char *spec_json,
                    char **result_out);

/* Releases memory the library returned as owned (es_query's result).
 * NULL is fine. */
ES_API void es_free(void *p);

/* What es_rollup_rebuild did. */
typedef struct es_rollup_report {
  uint64_t segments;  /* segments overlapping the range, derived again */
  uint64_t missing;   /* of those, with no (or an unreadable) rollup file */
  uint64_t differing; /* with a sound file that disagreed with the rows */
  uint64_t rewritten; /* files written: missing + differing */
} es_rollup_report;

/*
 * Derives again, from the stored rows, the rollups of every segment of
 * the tenant that holds events in [from_us, to_us), compares each with
 * its rollup file and rewrites the files that are missing, damaged or
 * different (atomically, durably); queries use the new rollups at once.
 * Rollups of events not yet in a segment are kept as they are (they were
 * counted as the events were acknowledged).  *report_out (may be NULL)
 * says what was found.  Thread-safe; runs alongside appends and queries.
 * Errors: ES_EINVAL, ES_ETENANT, ES_ENOMEM, ES_ECLOSED, ES_EFAILED,
 * ES_ECORRUPT (a segment's rows fail their checks), ES_EIO, ES_ENOSPC.
 */
ES_API int es_rollup_rebuild(es_db *db, const char *tenant, int64_t from_us,
                             int64_t to_us, es_rollup_report *report_out);
ES_API int es_rollup_rebuild_sized(es_db *db, const char *tenant,
                                   int64_t from_us, int64_t to_us,
                                   es_rollup_report *report_out,
                                   size_t report_size);

/* ----------------------------------------------------------------------
 * Behaviour segments: rules and triggers (docs/QUERY.md, "Rules")
 * ---------------------------------------------------------------------- */

#define ES_RULES_MAX 64 /* rules per tenant */
#define ES_RULE_AT_LEAST_MAX 1000

/*
 * Creates or replaces (by name) a rule of the tenant, e.g.
 *
 *   {"name":"pricing-3x","match":{"type":"page","path":"/pricing"},
 *    "atLeast":3,"within":"7d"}
 *
 * A person (every id identity stitching links: an event counts for its
 * visitor id, anonymousId else userId, and through it for the person) is
 * a member at time T when at least atLeast of their events matching
 * "match" (type, event, path; each optional, all given must hold) have
 * event times in (T - within, T].  "name" is [A-Za-z0-9_-]{1,64};
 * atLeast 1..1000; within "<n>s|m|h|d", 1 s to 366 d.  The rule is
 * stored durably (the tenant's RULES file) before the call returns, and
 * its counters start from the tenant's events already stored (one scan
 * of the window, on the tenant's shard writer: that shard's appends wait
 * meanwhile).  From then on every acknowledged append updates them
 * incrementally, and each crossing (a person becoming a member with the
 * event just appended, or with an identify/alias event that joins two
 * persons whose events together reach atLeast) calls opts.trigger.fn
 * once; no repeat while they stay a member.  A person is named by the
 * smallest (by bytes) of its ids.  Thread-safe.
 * Errors: ES_EINVAL (bad rule: es_errdetail() starts with "rule: " and
 * names the field; or ES_RULES_MAX reached), ES_ETENANT, ES_ENOMEM,
 * ES_ECLOSED, ES_EFAILED, ES_EIO, ES_ENOSPC, ES_ECORRUPT.
 */
ES_API int es_rule_put(es_db *db, const char *tenant, const char *rule_json);

/* Deletes a rule by name.  ES_ENOTFOUND if there is none; else as
 * es_rule_put. */
ES_API int es_rule_delete(es_db *db, const char *tenant, const char *name);

/*
 * The tenant's rules as JSON, owned (es_free):
 *   {"rules":[{"name":...,"match":{...},"atLeast":3,"within":"7d",
 *              "members":12}, ...]}
 * sorted by name; "members" counts members at at_us (0 = now, by the
 * clock).  Errors: ES_EINVAL, ES_ETENANT, ES_ENOMEM, ES_ECLOSED.
 */
ES_API int es_rules_list(es_db *db, const char *tenant, int64_t at_us,
                         char **json_out);

/*
 * The members of a rule at at_us (0 = now) counted per visitor id, not
 * stitched (each id's own events alone), as JSON, owned (es_free):
 *   {"rule":"pricing-3x","at":"...","members":["a1","u7",...]}
 * ids sorted by bytes.  es_rule_persons answers per person.  Errors:
 * ES_ENOTFOUND (no such rule), as above.
 */
ES_API int es_rule_members(es_db *db, const char *tenant, const char *name,
                           int64_t at_us, char **json_out);

/*
 * The members of a rule at at_us (0 = now) per person: the ids identity
 * stitching links count together (as triggers do), as JSON, owned
 * (es_free):
 *   {"rule":"pricing-3x","at":"...","persons":[
 *      {"person":"a1","ids":["a1","u7"]}, ...]}
 * persons sorted by name, each named by the smallest (by bytes) of its
 * ids, with every id linked to it (sorted; those without matching events
 * too).  Exact for at_us at or after the person's latest matching event;
 * earlier, an id's events before its latest atLeast are forgotten.
 * Errors: as es_rule_members, plus those of reading the identity map.
 */
ES_API int es_rule_persons(es_db *db, const char *tenant, const char *name,
                           int64_t at_us, char **json_out);

/*
 * A rule's member count over time (the dashboard's chart), as JSON, owned
 * (es_free):
 *   {"rule":"pricing-3x","points":[{"t":"2026-12-06T09:00:00Z",
 *    "members":11,"estimated":true},{"t":"2026-12-06T10:00:00Z",
 *    "members":12},...],"now":{"t":"...","members":14}}
 * A point is recorded per hour in which the store flushed: at each
 * flush of the tenant's rows and at close, the writing handle counts the
 * members per person at that moment (wall clock) and keeps the last count
 * of the hour under the hour's start, "t".  At most 840 (35 days) are
 * kept, in the tenant's rule state file (docs/FORMAT.md, "RSTATE"), so a
 * read-only handle reads the writer's.  Every other hour that has ended,
 * of the last 840, gets a point computed now from the rule's state: the
 * members per person at the hour's last microsecond, marked
 * "estimated":true (the state keeps each visitor id's latest atLeast
 * matching times, so an id with matching events after that hour may be
 * missed: exact when none has).  Points with from_us <= t < to_us are
 * listed (0: no bound), ascending; "now" (only when to_us is 0 or later
 * than now) is es_rule_persons's count at this moment and stands for the
 * current hour when no point is recorded in it.  A new or changed rule
 * starts with no recorded points.  Errors as es_rule_persons.
 */
ES_API int es_rule_series(es_db *db, const char *tenant, const char *name,
                          int64_t from_us, int64_t to_us, char **json_out);

/*
 * Whether `person` is a member of the rule at at_us (0 = now): *member_out
 * 1 or 0.  The matching events of every id linked to `person` by
 * identity stitching count together, as es_rule_persons counts them (the
 * tenant's identity map is cached until a link changes, so this is a few
 * hash lookups).  Errors as
 * es_rule_members, plus those of reading the identity map.
 */
ES_API int es_rule_check(es_db *db, const char *tenant, const char *name,
                         const char *person, int64_t at_us, int *member_out);

/* ----------------------------------------------------------------------
 * Identity and person timelines (docs/QUERY.md, "Identity")
 * ---------------------------------------------------------------------- */

/*
 * Identity stitching.  Reads (es_query's uniques and filter.person,
 * es_timeline_open) treat ids linked by the tenant's stored events as one
 * person: an identify event links its user_id and anonymous_id, an alias
 * event links its previous_id and user_id, and links are transitive.  The
 * links are applied at read time, so a visitor's earlier anonymous events
 * count for the person as soon as the linking event is stored.
 *
 * Guardrails: the values NULL, "", "null", "undefined", "0" and
 * "anonymous" (any case) never link; and one person links at most
 * ES_IDENTITY_IDS_MAX ids: a link that would merge two persons into more
 * is ignored (links are applied in event-time order, ties in append
 * order).  A wrong link is undone with es_identity_unlink (below).  The
 * links are read from the stored events (one scan of the tenant, cached
 * per tenant until a link changes); that scan and the call's own are two
 * snapshots, so an append racing with the call may be seen by one and not
 * the other.
 */
#define ES_IDENTITY_IDS_MAX 100

/* Most events one timeline returns; a larger limit is lowered to it. */
#define ES_TIMELINE_EVENTS_MAX 100000

typedef struct es_timeline es_timeline;

/*
 * Undoes a link: identify and alias events with event time at or before
 * ts_us (0 = now) that link exactly id_a and id_b (either way round) are
 * ignored from then on, by every read (stitching is applied at read
 * time).  A later identify or alias linking them again links them again.
 * The unlink record is appended to the tenant's identity log (IDENTITY)
 * and is durable when the call returns.  Thread-safe.  Errors:
 * ES_EINVAL (NULL or a guardrail id such as "" or "null": those never
 * link), ES_ETENANT, ES_EREADONLY, ES_ECLOSED, ES_EIO, ES_ENOSPC,
 * ES_ENOMEM.
 */
ES_API int es_identity_unlink(es_db *db, const char *tenant, const char *id_a,
                              const char *id_b, int64_t ts_us);

/*
 * Opens the timeline of one person of a tenant: the latest `limit` events
 * whose user_id or anonymous_id is `person` or any id linked to it (see
 * ES_IDENTITY_IDS_MAX), newest first (ties: the later-appended first, the
 * exact reverse of es_scan's order).  Like es_scan it sees the events
 * acknowledged before the call.  Segments whose Bloom filters exclude
 * every id of the person are not read, and within the others row groups
 * older than the `limit`-th newest event found so far are skipped.
 *
 * The events are gathered by this call; read them with es_timeline_next
 * and release the handle with es_timeline_close.  An unknown tenant or
 * person gives an empty timeline.  limit must be at least 1; above
 * ES_TIMELINE_EVENTS_MAX it is lowered to it.
 *
 * On failure *tl_out is NULL.  Errors: ES_EINVAL (NULL argument, limit 0),
 * ES_ETENANT, ES_ENOMEM, ES_ECLOSED, ES_ECORRUPT and ES_EIO (from reading
 * segments).
 */
ES_API int es_timeline_open(es_db *db, const char *tenant, const char *person,
                            size_t limit, es_timeline **tl_out);

/*
 * Returns 1 and fills *ev_out with the timeline's next event (newest
 * first; strings borrowed from the handle until es_timeline_close), or 0
 * at the end.  ES_EINVAL for a NULL argument.
 */
ES_API int es_timeline_next(es_timeline *tl, es_event *ev_out);
ES_API int es_timeline_next_sized(es_timeline *tl, es_event *ev_out,
                                  size_t event_size);

/* Releases a timeline and its events; NULL is fine. */
ES_API void es_timeline_close(es_timeline *tl);

/* ----------------------------------------------------------------------
 * Compaction and retention
 * ---------------------------------------------------------------------- */

typedef struct es_compact_options {
  size_t struct_size; /* set by es_compact_options_init (convention 9) */
  /* Merge runs of adjacent segments smaller than half of this into
   * segments of about this size.  Default 64 MiB. */
  uint64_t target_bytes;
  /* Drop events older than (now - retain_us) by event time; 0 (default)
   * keeps everything. */
  int64_t retain_us;
  /* Called after each merged run with the bytes of input segments done
   * and in all for the tenant; may be NULL.  From the calling thread. */
  void (*progress)(void *ud, const char *tenant, uint64_t done_bytes,
                   uint64_t total_bytes);
  void *ud;
  /* 0 (default): no limit.  Else about the most memory one merge may
   * hold: a merge holds its inputs' rows uncompressed (plus its output
   * image), so a run stops growing before that passes this, and a
   * segment counts as small only under half of it as well.  (A run of a
   * single segment, rewritten for retention, may pass it.) */
  uint64_t memory_bytes;
} es_compact_options;

/* Fills *opts with the defaults above and struct_size (convention 9). */
ES_API void es_compact_options_init_sized(es_compact_options *opts,
                                          size_t struct_size);
#define es_compact_options_init(opts)                                          \
  es_compact_options_init_sized((opts), sizeof(es_compact_options))

typedef struct es_compact_report {
  uint64_t tenants;                         /* tenants looked at */
  uint64_t segments_in;                     /* segments merged or dropped */
  uint64_t segments_out;                    /* segments written */
  uint64_t rows_in, rows_out, rows_dropped; /* dropped = past retention */
  uint64_t bytes_in, bytes_out;
} es_compact_report;

/*
 * Compacts one tenant's segments (every tenant's when tenant is NULL):
 * merges runs of adjacent small segments, rewrites segments holding
 * events past retention without them (and drops those holding only such
 * events), with their rollups derived from the rows kept.  Each run is
 * committed by one atomic manifest write, so a crash at any moment leaves
 * the old segments or the new one, never a mix; the old files are
 * deleted after the commit (or at the next open).  Runs alongside appends,
 * flushes, scans and queries on other threads (a scan that started before
 * a commit keeps reading the old segments).  Events not yet in a segment
 * are left alone.  opts may be NULL (defaults); *report_out may be NULL.
 * Errors: ES_EINVAL, ES_ETENANT, ES_ENOMEM, ES_ECLOSED, ES_EFAILED,
 * ES_ECORRUPT (an input segment failed its checks: nothing of that run is
 * changed), ES_EIO, ES_ENOSPC (the store is then failed, as after any
 * write error).
 */
ES_API int es_compact(es_db *db, const char *tenant,
                      const es_compact_options *opts,
                      es_compact_report *report_out);
ES_API int es_compact_sized(es_db *db, const char *tenant,
                            const es_compact_options *opts,
                            es_compact_report *report_out, size_t report_size);

/* Convention 10: programs call the _sized functions through these (the
 * library's own files call the plain ones, with its own layouts). */
#ifndef ES_BUILDING_LIBRARY
#define es_append(db, tenant, events, count, receipt_out)                      \
  es_append_sized((db), (tenant), (events), (count), (receipt_out),            \
                  sizeof(es_event), sizeof(es_receipt))
#define es_append_flagged(db, tenant, events, count, receipt_out, dup_out)     \
  es_append_flagged_sized((db), (tenant), (events), (count), (receipt_out),    \
                          (dup_out), sizeof(es_event), sizeof(es_receipt))
#define es_cursor_next(cur, ev_out)                                            \
  es_cursor_next_sized((cur), (ev_out), sizeof(es_event))
#define es_timeline_next(tl, ev_out)                                           \
  es_timeline_next_sized((tl), (ev_out), sizeof(es_event))
#define es_rollup_rebuild(db, tenant, from_us, to_us, report_out)              \
  es_rollup_rebuild_sized((db), (tenant), (from_us), (to_us), (report_out),    \
                          sizeof(es_rollup_report))
#define es_compact(db, tenant, opts, report_out)                               \
  es_compact_sized((db), (tenant), (opts), (report_out),                       \
                   sizeof(es_compact_report))
#endif
/* ----------------------------------------------------------------------
 * Warehouse export (docs/EXPORT.md: the schema, the layout, the recipes)
 * ---------------------------------------------------------------------- */

#define ES_EXPORT_PARQUET 1
#define ES_EXPORT_NDJSON 2 /* gzip-compressed NDJSON (.ndjson.gz) */

#define ES_EXPORT_ZSTD 0 /* Parquet page compression (default) */
#define ES_EXPORT_SNAPPY 1
#define ES_EXPORT_UNCOMPRESSED 2

/* Where an export is; passed to es_export_options.progress_fn. */
typedef struct es_export_progress {
  const char *tenant;        /* the partition being written */
  const char *day;           /* "YYYY-MM-DD" */
  uint64_t partitions_done;  /* finished so far */
  uint64_t partitions_total; /* tenants x days */
  uint64_t rows;             /* rows written so far, all partitions */
  uint64_t bytes;            /* file bytes written so far */
} es_export_progress;

/* What to export.  Fill with es_export_options_init() first. */
typedef struct es_export_options {
  size_t struct_size;         /* set by es_export_options_init (convention 9) */
  const char *out_dir;        /* required: a local directory (created), or
                                 "s3://BUCKET[/PREFIX]" (credentials from
                                 AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
                                 AWS_SESSION_TOKEN) */
  const char *const *tenants; /* the tenants; NULL or 0 count = every */
  size_t tenants_count;       /* tenant of the store */
  int64_t from_us;            /* first day (a UTC midnight), inclusive */
  int64_t to_us;              /* last day's end (a UTC midnight), exclusive */
  int format;                 /* ES_EXPORT_PARQUET (default) or _NDJSON */
  int compression;          /* ES_EXPORT_ZSTD (default), _SNAPPY, _UNCOMPRESSED
                               (Parquet only; NDJSON is always gzip) */
  uint64_t row_group_bytes; /* Parquet: compressed bytes per row group;
                               default 32 MiB */
  uint64_t file_bytes_max;  /* a partition's part file closes past this
                               size and the next begins; default 1 GiB,
                               128 MiB on S3 (a part is held in memory
                               until its put) */
  /* Called after each partition the calling thread finishes and every
   * ~100,000 rows, with the totals of every thread; may be NULL.  Called
   * on the calling thread only; must not call back into the library. */
  void (*progress_fn)(void *ud, const es_export_progress *progress);
  void *progress_ud;
  int threads; /* partitions written at once (each by its own thread, the
                  caller's included): fsync latency overlaps; default 4,
                  at most 64.  Each holds up to a row group in memory. */
  const char *s3_endpoint; /* s3:// out_dir: NULL = AWS_ENDPOINT_URL_S3,
                              else AWS_ENDPOINT_URL, else AWS's; a custom
                              one is addressed path-style */
  const char *s3_region;   /* s3:// out_dir: NULL = AWS_REGION, else
                              us-east-1 */
} es_export_options;

ES_API void es_export_options_init_sized(es_export_options *opts,
                                         size_t struct_size);
#define es_export_options_init(opts)                                           \
  es_export_options_init_sized((opts), sizeof(es_export_options))

/* What es_export did. */
typedef struct es_export_result {
  uint64_t partitions; /* partitions written (a manifest each) */
  uint64_t files;      /* part files written */
  uint64_t rows;       /* events exported */
  uint64_t bytes;      /* bytes of the part files */
} es_export_result;

/*
 * Exports every event the store holds for the given tenants and days
 * (segments and memtables alike: what es_scan sees when each partition
 * starts) into out_dir/tenant=<T>/date=<YYYY-MM-DD>/part-<NNNNN>.parquet
 * (or .ndjson.gz) with a _manifest.json per partition; out_dir may be
 * "s3://BUCKET/PREFIX", then the same layout is written as objects under
 * PREFIX/.  Re-exporting a partition replaces it: the new part files are
 * written and synced (put, on S3), then the manifest is replaced
 * atomically, then the files of the old manifest are removed, so a reader
 * that follows the manifest sees the old partition or the new one, never
 * both and never a part of one.  Days
 * without events are skipped unless they were exported before (their
 * manifest then lists no files).  Works on a read-only handle.
 * result_out may be NULL.  Errors: ES_EINVAL (options; from/to not UTC
 * midnights; an s3:// out_dir without credentials or in a library built
 * without libcurl), ES_ETENANT, ES_EIO, ES_ENOSPC, ES_ENOMEM, the object
 * store's (ES_EUNAVAIL after the client's retries, ES_EREMOTE), and those
 * of es_scan and es_cursor_next.  On an
 * error, partitions already finished stay exported and the one being
 * written keeps its previous state.
 */
ES_API int es_export(es_db *db, const es_export_options *opts,
                     es_export_result *result_out);

/*
 * Continuous export (docs/EXPORT.md, "Continuous export"): a background
 * thread that writes each closed hour of every tenant as a part file of
 * its day's partition, delay_us after the hour's end, and writes an hour
 * again when its count in the store changed since (late events, an
 * erasure): the new part replaces the old one atomically, as in
 * es_export.  What was exported is recorded in the partitions' manifests
 * themselves (each part's hour and the store's count of it when it was
 * cut), read back at start, so a restart resumes without exporting
 * anything twice.  One exporter per destination.
 */
typedef struct es_exporter es_exporter;

typedef struct es_exporter_options {
  size_t struct_size; /* set by es_exporter_options_init (convention 9) */
  const char *out;    /* required: a local directory or s3://BUCKET[/PREFIX]
                         (as es_export_options.out_dir) */
  int format;         /* ES_EXPORT_PARQUET (default) or _NDJSON */
  int compression;    /* ES_EXPORT_ZSTD (default), _SNAPPY, _UNCOMPRESSED */
  const char *s3_endpoint, *s3_region; /* as in es_export_options */
  int64_t delay_us;    /* an hour is exported this long after its end, so
                          that events a little late are in its first part;
                          default 2 min */
  int64_t interval_us; /* how often it looks for work; default 30 s */
  int64_t lookback_us; /* hours that ended longer ago than this are not
                          looked at (late events for them need esctl
                          export); default 7 days, at most 366 days */
} es_exporter_options;

ES_API void es_exporter_options_init_sized(es_exporter_options *opts,
                                           size_t struct_size);
#define es_exporter_options_init(opts)                                         \
  es_exporter_options_init_sized((opts), sizeof(es_exporter_options))

/*
 * Starts the exporter of db into opts->out (the S3 client, if any, is
 * made here; no request is sent).  db must outlive it: stop it before
 * es_close.  Errors: ES_EINVAL (options; an s3:// out without
 * credentials or libcurl), ES_ENOMEM.  Errors of its passes (I/O, S3)
 * are counted in its stats and retried at the next pass.
 */
ES_API int es_exporter_start(es_db *db, const es_exporter_options *opts,
                             es_exporter **out);
/* Stops the thread (after the partition it is writing) and frees the
 * exporter; NULL is fine. */
ES_API void es_exporter_stop(es_exporter *ex);

typedef struct es_exporter_stats {
  uint64_t passes;             /* looks at every tenant */
  uint64_t hours_exported;     /* hour parts (re)written */
  uint64_t hours_reexported;   /* of those, replacing an hour exported before
                                  (late events) */
  uint64_t rows, files, bytes; /* written */
  uint64_t errors;             /* partitions that failed (retried) */
  int last_error;              /* status of the last failure, 0 if none */
  int64_t synced_through_us;   /* every hour ending at or before this was
                                  exported as the store had it then (0: no
                                  pass finished cleanly yet) */
  uint64_t pending_hours;      /* hours due but not exported (errors) */
} es_exporter_stats;

/* Fills *out (thread-safe). */
ES_API int es_exporter_stats_get(es_exporter *ex, es_exporter_stats *out);

/* ----------------------------------------------------------------------
 * Erasing a person (GDPR Art. 17, CCPA)
 *
 * A request names a tenant and one id (a userId or an anonymousId).  At
 * submission it resolves every id linked to that person by the identity
 * log, appends a tombstone holding them to the tenant's ERASE file and
 * syncs it: from the moment es_erase_submit returns, no read of this
 * process or of a read-only process (scans, queries, timelines, rule
 * members, exports started after) returns a row carrying one of those ids.
 * es_erase_run then removes the rows for good, stage by stage, each stage
 * durable and recorded, resumed after a crash: (b) segments rewritten
 * without them, (c) rollups re-derived, (d) WAL files that held them
 * deleted, identity-log records and rule counters gone, (e) replica
 * objects and, in durability tier s3, WAL chunks deleted from the object
 * store, (f) the partitions of every es_exporter running on the handle
 * that held them exported again (docs/PRIVACY.md).  When the
 * last stage is done the tombstone goes and a receipt stays, naming the
 * person only by a salted hash.  An unknown tenant or id completes with
 * zero events removed (no existence leak).
 * ---------------------------------------------------------------------- */

/* Fill with es_erase_options_init() first (convention 9). */
typedef struct es_erase_options {
  size_t struct_size;       /* set by es_erase_options_init */
  const char *tenant;       /* required */
  const char *user_id;      /* exactly one of user_id and anonymous_id */
  const char *anonymous_id; /* (at most 1024 bytes) */
  /* Also drop later events carrying one of the person's ids (Segment's
   * "delete and suppress"): es_append acknowledges them and stores
   * nothing (es_receipt.suppressed_count, es_stats.events_suppressed),
   * from the moment es_erase_submit returns and after completion, until
   * es_erase_unsuppress.  The ids are those resolved at submission; an
   * event that would link a new id to them carries one of them and is
   * dropped too.  0 (the default): later events are new data, kept (hidden
   * until the request completes).  After completion the store keeps only
   * salted hashes of the ids (docs/PRIVACY.md). */
  int suppress;
} es_erase_options;

ES_API void es_erase_options_init_sized(es_erase_options *opts,
                                        size_t struct_size);
#define es_erase_options_init(opts)                                            \
  es_erase_options_init_sized((opts), sizeof(es_erase_options))

/* The longest request id es_erase_submit writes, with its NUL. */
#define ES_ERASE_ID_MAX (ES_TENANT_LEN_MAX + 24)

/* Submits an erase request and returns once its tombstone is durable
 * (stage a); id_out (ES_ERASE_ID_MAX bytes) receives its id,
 * "<tenant>.<n>".  The other stages run in es_erase_run.  Errors:
 * ES_EINVAL (no or two ids, an id that cannot name a person), ES_ETENANT,
 * ES_EREADONLY, the I/O errors of a durable write (a failed sync fails the
 * handle, convention 7). */
ES_API int es_erase_submit(es_db *db, const es_erase_options *opts,
                           char *id_out);

/* Runs every stage left of every pending request of tenant (NULL: of
 * every tenant), oldest first, until each is complete: blocks for as long
 * as that takes (seconds to minutes on a large tenant).  Safe to call
 * from several threads (one runs at a time).  A failure leaves the
 * requests where they got to: call it again (or reopen) to resume. */
ES_API int es_erase_run(es_db *db, const char *tenant);

/* Lifts a suppression: opts names the tenant and one id (user_id or
 * anonymous_id; suppress is ignored).  Every person one of whose
 * suppressed ids is that id (a completed request's, or a pending one's)
 * is no longer suppressed: their later events are stored again.  The
 * change is durable when it returns.  *lifted_out (may be NULL): ids no
 * longer suppressed (0 when none was: not an error).  Errors as
 * es_erase_submit. */
ES_API int es_erase_unsuppress(es_db *db, const es_erase_options *opts,
                               size_t *lifted_out);

/* The state of request id as JSON (owned, free with es_free): its stages
 * with their state and time and, once complete, "receipt".  ES_ENOTFOUND
 * for an unknown id.  Works on read-only handles. */
ES_API int es_erase_status(es_db *db, const char *id, char **json_out);

/* ----------------------------------------------------------------------
 * Replication to an object store (S3) and restore
 *
 * With es_options.replica set, a background uploader copies each tenant's
 * files to the object store under tenants/<tenant>/ (docs/FORMAT.md,
 * "Replica layout"), the same bytes as on disk: first every segment and
 * rollup a manifest names, then the manifest as MANIFEST-<generation>, so
 * a reader of the newest manifest in the store finds every file it names.
 * It remembers what is confirmed uploaded in tenants/<tenant>/REPLICA, so
 * a restart neither uploads everything again nor forgets anything.  An
 * unreachable store never slows es_append in tier local: the uploader
 * retries with backoff and the backlog is what is on disk.  In tier s3
 * (es_options.durability) the WAL is shipped too, as chunks under
 * wal/<shard>/, and es_append returns ES_OK only once the batch's frame is
 * in the store (docs/REPLICATION.md).
 * ---------------------------------------------------------------------- */

typedef struct es_replica es_replica;

typedef struct es_replica_config {
  size_t struct_size;    /* set by es_replica_config_init (convention 9) */
  const char *url;       /* required: "s3://BUCKET" or "s3://BUCKET/PREFIX" */
  const char *endpoint;  /* NULL: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL,
                            else the region's AWS endpoint; a custom one
                            (e.g. "http://127.0.0.1:9000") is path-style */
  const char *region;    /* NULL: AWS_REGION, else us-east-1 */
  unsigned attempts_max; /* tries per request; 0: 6 */
} es_replica_config;

ES_API void es_replica_config_init_sized(es_replica_config *cfg,
                                         size_t struct_size);
#define es_replica_config_init(cfg)                                            \
  es_replica_config_init_sized((cfg), sizeof(es_replica_config))

/*
 * An S3 replica (credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN).  No request is sent.  The caller owns *out and frees
 * it with es_replica_free after every handle using it is closed.
 * Errors: ES_EINVAL (a bad URL, missing credentials, or a library built
 * without libcurl; es_errdetail says which), ES_ENOMEM, ES_EREMOTE.
 */
ES_API int es_replica_s3_new(const es_replica_config *cfg, es_replica **out);
ES_API void es_replica_free(es_replica *replica);

/* The uploader's state, as es_replica_stats reports it. */
typedef struct es_replica_stats {
  uint64_t backlog_objects; /* files the local manifests name, not uploaded,
                               plus their manifests */
  uint64_t backlog_bytes;
  int64_t oldest_age_us; /* age of the oldest commit not yet uploaded; 0 */
  uint64_t uploaded_objects, uploaded_bytes;
  uint64_t deleted_objects;
  uint64_t requests;     /* object-store requests made */
  uint64_t request_us;   /* their total latency */
  uint64_t errors;       /* failed requests (after the client's retries) */
  uint64_t retries;      /* tenant passes retried after a failure */
  int last_error;        /* status of the last failure, 0 if none */
  uint64_t sweeps_clean; /* sweeps that found everything uploaded */
} es_replica_stats;

/* Fills *out.  ES_EINVAL when the handle has no replica. */
ES_API int es_replica_stats_get(es_db *db, es_replica_stats *out);

/*
 * Waits until a sweep that began after this call found every tenant's
 * newest manifest, its files, IDENTITY and RULES uploaded (call es_flush
 * first to include the memtables).  ES_OK; ES_EUNAVAIL when that did not
 * happen within timeout_us (the last failure is in es_errdetail); ES_EINVAL
 * without a replica; ES_ECLOSED.
 */
ES_API int es_replica_drain(es_db *db, int64_t timeout_us);

/* The WAL shipper of durability tier s3, as es_walship_stats_get reports
 * it (docs/REPLICATION.md, "Tier s3").  Counters since es_open, then the
 * state now, over every shard. */
typedef struct es_walship_stats {
  uint64_t chunks, bytes;   /* WAL chunks put into the store, their bytes */
  uint64_t put_requests;    /* chunk PUTs made (each with the client's own
                               retries inside) */
  uint64_t put_us;          /* their total latency */
  uint64_t put_errors;      /* of those, failed */
  uint64_t retries;         /* failed chunks put again after a backoff */
  uint64_t deleted;         /* chunks deleted once their events were in
                               replicated segments */
  uint64_t delete_errors;   /* failed deletes (tried again later) */
  uint64_t waits, wait_us;  /* tier-s3 appends that waited for their chunk,
                               their total wait */
  uint64_t wait_failures;   /* of those, not ES_OK */
  uint64_t refused;         /* appends refused before writing (ES_EUNAVAIL) */
  uint64_t inflight;        /* now: PUTs under way */
  uint64_t pending_bytes;   /* now: frames synced here, not yet in the store,
                               held in memory (at most about the window per
                               shard; the rest is read back from disk) */
  uint64_t lag_lsn;         /* now: sum over shards of synced minus shipped
                               LSN */
  int64_t oldest_age_us;    /* now: age of the oldest frame synced here and
                               not yet in the store; 0: none */
  uint32_t failing_shards;  /* now: shards whose last chunk PUT failed */
  uint32_t broken_shards;   /* always 0 since the backlog is on disk
                               (degraded_shards says when it passed its
                               bound) */
  uint32_t shards;          /* shards of the store */
  uint32_t depth;           /* PUTs a shard may have under way
                               (es_options.s3_puts_inflight) */
  uint64_t reread_chunks;   /* chunks read back from the WAL files (a
                               shard's window was full) */
  uint64_t reread_bytes;    /* their bytes */
  uint64_t read_errors;     /* failed reads of the WAL files (retried) */
  uint64_t gaps;            /* times a shard's kept WAL files passed
                               s3_backlog_bytes_max and frames were let go
                               to the uploader's segments */
  uint64_t window_bytes;    /* es_options.s3_window_bytes */
  uint64_t held_wal_bytes;  /* now: WAL file bytes kept past their reclaim
                               for the shipper (the disk backlog) */
  uint32_t spilled_shards;  /* now: shards whose frames past the window are
                               read back from disk */
  uint32_t degraded_shards; /* now: shards whose backlog passed
                               s3_backlog_bytes_max, until the uploader
                               has their let-go frames in the store */
} es_walship_stats;

/* One shard's shipping, as es_walship_shards reports it. */
typedef struct es_walship_shard {
  uint32_t shard;
  uint64_t synced_lsn;    /* the last frame fdatasync'ed here */
  uint64_t shipped_lsn;   /* every frame up to it is in the store */
  uint32_t inflight;      /* PUTs under way */
  uint32_t queued;        /* chunks cut and not yet shipped in order
                             (under way, failed, or done after a gap) */
  uint64_t pending_bytes; /* frames not yet in the store */
  int64_t oldest_age_us;  /* the oldest of them; 0: none */
  int failing, broken;    /* broken: always 0 (see es_walship_stats) */
  int spilled, degraded;  /* see es_walship_stats */
  uint64_t held_wal_bytes;
} es_walship_shard;

/*
 * Overrides the handle's durability tier (es_options.durability) for one
 * tenant's appends: ES_DURABILITY_LOCAL, ES_DURABILITY_S3, or
 * ES_DURABILITY_DEFAULT to drop the override.  Takes effect for the
 * appends that start after it returns; thread-safe.  ES_EINVAL for a bad
 * tenant id or tier, or when the handle ships no WAL (tiers per tenant
 * need a replica and es_options.ship_wal, or tier s3); ES_ENOMEM.  The
 * tenants share their shard's WAL frames and chunks, so a tenant in tier
 * local is shipped within seconds too, and never waits for the store.
 */
ES_API int es_tenant_durability_set(es_db *db, const char *tenant,
                                    int durability);

/* Fills *out.  ES_EINVAL when the handle ships no WAL (neither durability
 * tier s3 nor es_options.ship_wal). */
ES_API int es_walship_stats_get(es_db *db, es_walship_stats *out);
/* Calls fn for each shard in order; a nonzero return stops and is
 * returned.  ES_EINVAL when the handle ships no WAL. */
ES_API int es_walship_shards(es_db *db,
                             int (*fn)(void *ud, const es_walship_shard *s),
                             void *ud);

/* What a tenant's REPLICA record says (es_replica_record_read). */
typedef struct es_replica_record {
  uint64_t generation;       /* newest manifest confirmed in the replica */
  uint64_t local_generation; /* the tenant's MANIFEST on disk now */
  uint64_t objects, bytes;   /* objects confirmed in the replica */
  uint64_t superseded;       /* of those, awaiting deletion (grace) */
  int identity, rules;       /* 1 when a copy was uploaded */
} es_replica_record;

/*
 * Reads tenants/<tenant>/REPLICA of data_dir (no lock: safe beside a
 * running writer).  ES_ENOTFOUND when the tenant has none (never
 * replicated); ES_ECORRUPT, ES_ETENANT, ES_EIO, ES_ENOMEM.
 */
ES_API int es_replica_record_read(const char *data_dir, const char *tenant,
                                  es_replica_record *out);

/* Progress of es_restore, passed to its callback after each object. */
typedef struct es_restore_progress {
  const char *tenant;                   /* the tenant being restored */
  const char *key;                      /* the object just written */
  uint64_t objects_done, objects_total; /* of the tenants chosen */
  uint64_t bytes_done, bytes_total;
} es_restore_progress;

/*
 * Rebuilds data_dir from the replica: every tenant (ntenants 0; data_dir
 * must then not hold a store) or the named ones (into an existing store
 * that no process has open, or a new one).  For each tenant, its newest
 * MANIFEST-<generation>, every segment and rollup it names, IDENTITY and
 * RULES are downloaded; sizes and every checksum are checked (segments
 * block by block); the manifest is written last.  progress may be NULL.
 * Errors: ES_ENOTFOUND (an object a manifest names is missing, or a named
 * tenant is not in the replica: es_errdetail names it), ES_ECORRUPT (an
 * object fails its checks: es_errdetail names its key), ES_EINVAL (the
 * tenant exists in data_dir already), ES_EBUSY, ES_EUNAVAIL, ES_EREMOTE,
 * ES_EIO, ES_ENOSPC, ES_ENOMEM.  A failed restore may leave some tenant
 * directories partly written, without their MANIFEST.
 */
ES_API int es_restore(es_replica *replica, const char *data_dir,
                      const char *const *tenants, size_t ntenants,
                      void (*progress)(void *ud, const es_restore_progress *p),
                      void *ud);

/* ----------------------------------------------------------------------
 * Cluster nodes: tenant leases with fencing (docs/SCALING.md)
 *
 * Several nodes share one replica (bucket); a balancer sends each tenant
 * to one of them.  A node writes a tenant only while it holds the
 * tenant's lease, an object leases/<tenant> in the replica with a
 * generation number, taken and renewed with conditional puts (S3
 * If-None-Match / If-Match: a real bucket must support them, as AWS S3
 * does).  Everything the node publishes for the tenant carries the
 * generation, and its uploader publishes nothing for a tenant whose lease
 * it does not hold (valid by its own clock), so a node that lost a lease
 * (dead, paused, partitioned) cannot publish for it any more.
 *
 * Use: es_cluster_new on the replica BEFORE es_open with that replica,
 * es_cluster_start after it, es_cluster_admit before each es_append (and
 * es_cluster_owns after it, before acknowledging), es_cluster_stop before
 * es_close and es_cluster_free after it.  A tenant a node does not hold is
 * taken in the background on the first es_cluster_admit: lease, restore from
 * the replica, then it is admitted.  The handle is thread-safe.
 * ---------------------------------------------------------------------- */

typedef struct es_cluster es_cluster;

typedef struct es_cluster_config {
  size_t struct_size;    /* set by es_cluster_config_init (convention 9) */
  const char *node;      /* this node's name: [A-Za-z0-9._-]{1,64}, unique */
  int64_t lease_ttl_us;  /* how long a lease lasts unrenewed; 0: 10 s */
  int64_t clock_skew_us; /* most any two nodes' clocks differ; 0: 500 ms */
} es_cluster_config;

ES_API void es_cluster_config_init_sized(es_cluster_config *cfg,
                                         size_t struct_size);
#define es_cluster_config_init(cfg)                                            \
  es_cluster_config_init_sized((cfg), sizeof(es_cluster_config))

/* A cluster node on replica (which must outlive it).  ES_EINVAL: a bad
 * node name or timing (ttl must exceed 4 x skew); ES_EBUSY: the replica
 * has a cluster already; ES_ENOMEM. */
ES_API int es_cluster_new(es_replica *replica, const es_cluster_config *cfg,
                          es_cluster **out);
/* Starts renewing and taking on db, a writable handle opened with the
 * replica.  ES_EINVAL, ES_ENOMEM. */
ES_API int es_cluster_start(es_cluster *c, es_db *db);
/* ES_OK when this node holds the tenant's lease and has it loaded: the
 * caller may append.  Otherwise ES_EUNAVAIL (retry soon: a takeover was
 * started or runs, or another node must hand the lease over first) or
 * ES_EFAILED (this node holds a stale copy of the tenant; restart it with
 * an empty data directory), ES_ETENANT, ES_ENOMEM. */
ES_API int es_cluster_admit(es_cluster *c, const char *tenant);
/* 1 when this node holds the tenant's lease, valid now, else 0. */
ES_API int es_cluster_owns(es_cluster *c, const char *tenant);
/* Hands a held tenant over: refuses it from now (es_cluster_admit
 * ES_EUNAVAIL), seals it (es_flush), waits until its manifest is in the
 * replica, releases the lease.  tenant NULL: every held tenant.  ES_OK,
 * ES_EUNAVAIL (not uploaded within timeout_us; the lease is kept and the
 * tenant admitted again), the errors of es_flush. */
ES_API int es_cluster_release(es_cluster *c, const char *tenant,
                              int64_t timeout_us);

/* One tenant of the node, as es_cluster_status reports it. */
typedef struct es_cluster_tenant {
  const char *tenant;
  const char *state;      /* "taking", "held", "releasing", "released",
                             "waiting" (another node holds it), "lost",
                             "stale", "failed" */
  uint64_t lease_gen;     /* the generation held or last seen */
  int64_t took_us;        /* the last takeover's duration (0: none) */
  uint64_t restored_rows; /* rows the last takeover restored */
  /* The last takeover's steps (its took_us also counts the claim, the
   * load and the manifest put): taking the lease, restoring the
   * segments, reading and appending the old holder's WAL records. */
  int64_t lease_us, restore_us, replay_us;
  uint64_t replayed_events; /* events the last takeover replayed */
} es_cluster_tenant;

/* Calls fn once per tenant the node knows; fn's argument is valid for the
 * call only.  A non-zero return of fn stops and is returned. */
ES_API int es_cluster_status(es_cluster *c,
                             int (*fn)(void *ud, const es_cluster_tenant *t),
                             void *ud);
/* One tenant lease in a cluster's bucket, as es_cluster_leases reads it. */
typedef struct es_cluster_lease {
  const char *tenant;
  const char *owner;   /* the node that holds or last held it */
  const char *want;    /* a node that asked for it, or "" */
  uint64_t generation; /* grows with every acquisition */
  int64_t expires_us;  /* wall clock, us since the epoch; 0: released */
} es_cluster_lease;

/* Reads every tenant lease in the replica's bucket (leases/<tenant>), in
 * the order listed, and calls fn with each; fn's argument is valid for
 * the call only, and a non-zero return stops and is returned.  Needs no
 * node: tools (esctl cluster status) use it.  Errors: the object store's
 * (ES_EUNAVAIL, ES_EREMOTE...), ES_ECORRUPT for a malformed lease. */
ES_API int es_cluster_leases(es_replica *replica,
                             int (*fn)(void *ud, const es_cluster_lease *l),
                             void *ud);
/* Stops the node's threads (no takeover or renewal after it returns);
 * call it before es_close.  Held leases are left to expire
 * (es_cluster_release first for a clean hand-over).  NULL is accepted. */
ES_API void es_cluster_stop(es_cluster *c);
/* Stops (if needed) and frees the node, after es_close of its handle
 * (the handle's uploader asks it until then).  NULL is accepted. */
ES_API void es_cluster_free(es_cluster *c);

/* ----------------------------------------------------------------------
 * Inspection and verification (need no open handle; safe to run while
 * another process has the directory open, as they only read)
 * ---------------------------------------------------------------------- */

/*
 * What an open store holds and has done, for an operator's metrics (a
 * server's /metrics).  Counters count since the handle was opened.
 */
typedef struct es_stats {
  size_t struct_size;      /* set by es_stats_get (convention 9) */
  uint64_t tenants;        /* known to the handle */
  uint64_t tenants_loaded; /* whose segments are counted below (a tenant
                              is loaded on first use, not at open) */
  uint64_t segments, segment_bytes, segment_rows; /* loaded tenants' */
  uint64_t memtable_bytes;                        /* all memtables */
  uint64_t wal_bytes; /* written into live WAL files, all shards (0 for a
                         read-only handle) */
  uint64_t flushes;   /* memtables written as segments */
  uint64_t flush_us_total, flush_us_max;
  uint64_t merges; /* compaction runs merged into one segment (es_compact
                      and the background compactor) */
  uint64_t merge_us_total, merge_us_max;
  int failed; /* 0, or the status that failed the handle (convention 7) */
  uint64_t events_suppressed; /* appended events dropped: their person is
                                 erased with suppression */
} es_stats;

/*
 * Fills *stats_out (struct_size bytes of it: an older program's shorter
 * struct gets the fields it knows).  Cheap: no I/O, a short lock per
 * tenant; thread-safe.  es_stats_get is the call to use.
 * Errors: ES_EINVAL (NULL, or struct_size smaller than the first
 * release's es_stats).
 */
ES_API int es_stats_get_sized(es_db *db, es_stats *stats_out,
                              size_t struct_size);
#define es_stats_get(db, out) es_stats_get_sized((db), (out), sizeof(es_stats))

/*
 * One tenant's part of es_stats, for es_stats_tenants.  struct_size is the
 * library's size of it: a program reads the fields its header has, and a
 * newer program on an older library only those below struct_size.
 */
typedef struct es_tenant_stats {
  size_t struct_size;
  char tenant[ES_TENANT_LEN_MAX + 1];
  int loaded; /* 0: not used since the open; the figures below are 0 (a
                 tenant is loaded on first use; no file is read here) */
  uint64_t segments, segment_bytes, segment_rows;
  uint64_t memtable_rows; /* queryable rows not yet in a segment */
} es_tenant_stats;

/*
 * Calls fn(ud, ts) once per tenant the handle knows, in no set order,
 * with that tenant's figures (*ts valid during the call only).  No I/O; a
 * short lock per tenant, not held while fn runs (fn may call the
 * library).  For per-tenant metrics (es-ingestd's /metrics).  Thread-safe.
 * Errors: ES_EINVAL (NULL db or fn), ES_ENOMEM.
 */
ES_API int es_stats_tenants(es_db *db,
                            void (*fn)(void *ud, const es_tenant_stats *ts),
                            void *ud);

/* One file of a data directory, as es_inspect reports it. */
typedef struct es_file_info {
  const char *tenant; /* NULL for WAL files */
  const char *path;   /* relative to the data directory */
  int kind;           /* ES_FILE_SEGMENT, ES_FILE_WAL or ES_FILE_UNFLUSHED */
  uint64_t bytes;     /* size on disk (WAL files: preallocated size) */
  uint64_t rows;      /* segments, unflushed: rows; WAL: records */
  uint64_t events;    /* WAL: events in its records; others: = rows */
  int64_t min_ts_us, max_ts_us; /* event-time range (0, 0 if empty) */
  uint32_t shard;               /* WAL files: shard */
} es_file_info;

#define ES_FILE_SEGMENT 1
#define ES_FILE_WAL 2
/* Not a file: a tenant's events that are durable in the WAL but not yet
 * in a segment (path "wal/<shard>", bytes 0, rows = events = count). */
#define ES_FILE_UNFLUSHED 3

/*
 * Calls fn, tenants sorted, once per segment of the tenant (in manifest
 * order) and once for its unflushed events (ES_FILE_UNFLUSHED, if any);
 * then once per WAL file.  Strings in *info are valid during the call.
 * fn returns 0 to go on, non-zero to stop (then es_inspect returns it).
 * Errors: ES_ENOTFOUND (no store there), ES_ECORRUPT, ES_EIO, ES_ENOMEM.
 */
ES_API int es_inspect(const char *data_dir,
                      int (*fn)(void *ud, const es_file_info *info), void *ud);

/*
 * Checks every checksum of every file in the data directory: manifests,
 * segment trailers, footers and blocks, WAL records.  Calls problem_fn
 * (may be NULL) once per problem with the path, byte offset and a
 * sentence.  Returns ES_OK when all is sound, ES_ECORRUPT when anything
 * failed, or ES_EIO/ES_ENOTFOUND/ES_ENOMEM when it could not check.  A
 * torn tail at the end of the newest WAL file of a shard is reported as a
 * problem only if valid records follow it.
 */
ES_API int es_verify(const char *data_dir,
                     void (*problem_fn)(void *ud, const char *path,
                                        uint64_t offset, const char *what),
                     void *ud);

#ifdef __cplusplus
}
#endif
#endif /* EVENTSTORE_H */
