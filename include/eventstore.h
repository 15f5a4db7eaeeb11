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
 *     es_errdetail() gives the calling thread's last detailed message.
 *  3. Inputs are copied: once a call returns, the caller may free or reuse
 *     every buffer it passed in.
 *  4. Returned pointers are borrowed unless marked "owned": they stay valid
 *     until the next call on the same object (for a cursor: the next
 *     es_cursor_next() or es_cursor_close()).
 *  5. An es_db is thread-safe: any number of threads may append, flush and
 *     scan concurrently.  An es_cursor belongs to one thread at a time.
 *  6. If a call fails, its out-parameters are set to NULL/zero and nothing
 *     needs to be freed (es_open sets *db_out to NULL on failure).
 *  7. After an I/O error on the write path (a failed write, fsync, rename)
 *     the database is "failed": it keeps serving scans of what it holds,
 *     but every write returns ES_EFAILED until it is closed and reopened.
 *     Recovery on reopen decides what was durable; nothing is retried on
 *     trust (a failed fsync may have dropped dirty pages).
 *  8. Times are microseconds since the Unix epoch, UTC, in int64_t, and
 *     ranges are half-open: [from_us, to_us).
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
#define ES_FORMAT_VERSION 1

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

/* A static English name and sentence for a status code; never NULL. */
ES_API const char *es_strerror(int status);

/*
 * The calling thread's most recent error detail: what failed, where (file
 * and line in the library) and, for I/O, which path and errno.  The text is
 * owned by the library and valid until the thread's next library call.
 * Returns "" when there is nothing to say.
 */
ES_API const char *es_errdetail(void);

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
  const char *person; /* the visitor id: anonymousId, else userId */
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
  const char *data_dir;         /* required; created if missing */
  int shards;                   /* WAL shards (writer threads); default: online
                                   cores.  Fixed when the directory is created:
                                   a later open uses the stored count. */
  size_t memtable_budget_bytes; /* all memtables together; appends wait for
                                   flushes above it.  Default 1 GiB */
  size_t seal_bytes;     /* seal a tenant's memtable at this size; 8 MiB */
  int64_t seal_age_us;   /* ...or when its oldest row is this old; 5 min */
  size_t wal_file_bytes; /* WAL file size, preallocated; default 32 MiB */
  int sync_mode;         /* ES_SYNC_FULL (default) or ES_SYNC_NONE */
  int keep_full_ip;      /* 0 (default): truncate ip addresses */
  int wal_compress;      /* 1 (default): LZ4-compress WAL records on the
                            appending threads (about 3x fewer WAL bytes);
                            0 writes them raw */
  int read_only;         /* 1: a reader beside a writing process; see
                            "Read-only handles" below es_open */
  int64_t follow_interval_us; /* read_only: how often the follower looks
                                 for new WAL bytes and manifests; 50 ms */
  es_log_options log;
  es_trigger_options trigger;
} es_options;

/* Fills *opts with the documented defaults (data_dir NULL). */
ES_API void es_options_init(es_options *opts);

typedef struct es_db es_db;

/*
 * Opens (creating if needed) the store in opts->data_dir and recovers it:
 * every WAL record that is not yet in a segment is replayed into the
 * memtables, a torn tail of the last WAL file is cut off, orphaned
 * temporary files are removed.  Takes an exclusive lock on the directory.
 *
 * On success *db_out is a handle to close with es_close().  On failure
 * *db_out is NULL and the status says why: ES_EINVAL (bad options),
 * ES_EBUSY (another process holds the directory), ES_ECORRUPT (a checksum
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