/*
 * run_sqlite.c -- the SQLite peer: one table with a column per es_event
 * field and an index on (tenant, ts_us) (what a time-range query per
 * tenant needs, and what our segments and the RocksDB key give for free),
 * journal_mode=WAL with synchronous=FULL, so every COMMIT fsyncs the WAL
 * before it returns.  One transaction (BEGIN IMMEDIATE ... COMMIT) and a
 * prepared INSERT per batch.
 *
 * SQLite admits one writer at a time.  With several threads each thread
 * has its own connection with busy_timeout, so the threads queue on the
 * database lock: the figure shows what that costs, not parallelism.
 *
 * Sequence of one run: create the schema, ingest (timed), close every
 * connection (the last close checkpoints and removes the WAL); du.  There
 * is nothing to replay after a clean close, so no recovery figure.
 */
#include "bench.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "encode.h"

#define SQLITE_BUSY_MS 120000

typedef struct sql_conn {
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *rollback, *insert;
} sql_conn;

typedef struct sql_ctx {
  char path[4096];
  sql_conn *conns; /* one per thread */
} sql_ctx;

static const char schema_sql[] =
    "CREATE TABLE events(tenant TEXT NOT NULL, ts_us INTEGER NOT NULL, "
    "recv_us INTEGER NOT NULL, type INTEGER NOT NULL, event TEXT, "
    "message_id TEXT, anonymous_id TEXT, user_id TEXT, previous_id TEXT, "
    "group_id TEXT, path TEXT, url TEXT, referrer TEXT, properties TEXT, "
    "user_agent TEXT, ip TEXT);"
    "CREATE INDEX events_tenant_ts ON events(tenant, ts_us);";

static const char insert_sql[] =
    "INSERT INTO events VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";

/* Opens a connection with the durability settings; NULL on failure. */
static sqlite3 *sql_open(const char *path) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(
      path, &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(db, SQLITE_BUSY_MS);
    rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
                      NULL, NULL, NULL);
  }
  if (rc != SQLITE_OK) {
    bench_fail("sqlite open %s: %s", path,
               db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return NULL;
  }
  return db;
}

static void sql_conn_close(sql_conn *c) {
  sqlite3_finalize(c->begin);
  sqlite3_finalize(c->commit);
  sqlite3_finalize(c->rollback);
  sqlite3_finalize(c->insert);
  sqlite3_close(c->db);
  c->db = NULL;
  c->begin = c->commit = c->rollback = c->insert = NULL;
}

static int sql_thread_begin(void *ctx, int tid) {
  sql_ctx *s = ctx;
  sql_conn *c = &s->conns[tid];
  if (!(c->db = sql_open(s->path)))
    return -1;
  if (sqlite3_prepare_v2(c->db, "BEGIN IMMEDIATE", -1, &c->begin, NULL) ||
      sqlite3_prepare_v2(c->db, "COMMIT", -1, &c->commit, NULL) ||
      sqlite3_prepare_v2(c->db, "ROLLBACK", -1, &c->rollback, NULL) ||
      sqlite3_prepare_v2(c->db, insert_sql, -1, &c->insert, NULL)) {
    bench_fail("sqlite prepare: %s", sqlite3_errmsg(c->db));
    sql_conn_close(c);
    return -1;
  }
  return 0;
}

static void sql_thread_end(void *ctx, int tid) {
  sql_ctx *s = ctx;
  sql_conn_close(&s->conns[tid]);
}

/* Runs a statement without results; 0 or -1 (after bench_fail). */
static int sql_step(sql_conn *c, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    bench_fail("sqlite %s: %s", what, sqlite3_errmsg(c->db));
    return -1;
  }
  return 0;
}

static int sql_insert(sql_conn *c, const char *tenant, const es_event *ev) {
  sqlite3_stmt *st = c->insert;
  sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, ev->ts_us);
  sqlite3_bind_int64(st, 3, ev->recv_us ? ev->recv_us : wall_us());
  sqlite3_bind_int(st, 4, ev->type);
  for (int i = 0; i < ENC_NSTR; i++) {
    const char *v = *enc_str_field((es_event *)ev, i);
    if (v)
      sqlite3_bind_text(st, 5 + i, v, -1, SQLITE_STATIC);
    else
      sqlite3_bind_null(st, 5 + i);
  }
  return sql_step(c, st, "insert");
}

static int sql_append_batch(void *ctx, int tid, const batch *b) {
  sql_ctx *s = ctx;
  sql_conn *c = &s->conns[tid];
  if (sql_step(c, c->begin, "BEGIN IMMEDIATE") != 0)
    return -1;
  for (size_t i = 0; i < b->count; i++)
    if (sql_insert(c, b->tenant, &b->events[i]) != 0) {
      sqlite3_step(c->rollback);
      sqlite3_reset(c->rollback);
      return -1;
    }
  return sql_step(c, c->commit, "COMMIT");
}

int run_sqlite(const workload *w, const char *dir, int threads,
               const char *label, run_result *out) {
  run_result_clear(out);
  sql_ctx s;
  if (rm_rf(dir) != 0 || mkdir(dir, 0755) != 0) {
    bench_fail("cannot create %s", dir);
    return -1;
  }
  snprintf(s.path, sizeof s.path, "%s/events.db", dir);
  sqlite3 *db = sql_open(s.path);
  if (!db)
    return -1;
  if (sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
    bench_fail("sqlite schema: %s", sqlite3_errmsg(db));
    sqlite3_close(db);
    return -1;
  }
  sqlite3_close(db);
  s.conns = calloc((size_t)threads, sizeof *s.conns);
  if (!s.conns) {
    bench_fail("out of memory");
    return -1;
  }
  driver_ops ops = {sql_thread_begin, sql_append_batch, sql_thread_end, &s};
  int rc = drive(w, threads, &ops, label, &out->ingest_s);
  free(s.conns);
  if (rc != 0)
    return -1;
  out->du_close_bytes = du_bytes(dir, NULL);
  out->du_data_bytes = du_bytes(s.path, NULL);
  out->stored_events = (double)w->events_count;
  return 0;
}
