// peer.mjs -- DuckDB as a peer of libeventstore in es-bench.
//
// es-bench runs this script as a child process (node peer.mjs COMMAND ...)
// on the events it generated itself, so that DuckDB sees exactly the
// batches libeventstore, RocksDB and SQLite see.  The events come in a
// file es-bench writes: one line per batch,
//   ["<tenant>", [[ts_us, recv_us, type, event, message_id, anonymous_id,
//                  user_id, previous_id, group_id, path, url, referrer,
//                  properties, user_agent, ip], ...]]
// (null for an absent string), in the order es-bench appends them.
//
// Protocol on stdout, one line each:
//   P <done> <total>      progress (es-bench draws it)
//   A <events>            appendloop: this many events are committed
//   R <json>              the result; the last line of a successful run
// Failures: a message on stderr and exit status 1.
//
// Commands (every time is measured inside this process, in seconds):
//   ingest  --db F --input F [--commit-rows N]
//       Creates the table and appends every batch with the DuckDB
//       appender, committing (appender.flushSync, an autocommit
//       transaction) after every batch -- or, with --commit-rows, after
//       about N rows (bulk loading for the query benchmark).  The input is
//       parsed before the clock starts.  Closes the database at the end.
//   query   --db F --queries F --runs R
//       Runs the dashboard queries of the queries file (es-bench writes
//       it) cold (a fresh DuckDBInstance on the file, then the query) and
//       hot (repeated on the open instance), R times each (the open part
//       of each cold run is reported too), and returns
//       every query's answer in a canonical text form.  The clock stops
//       when the rows are in hand as JS values (getRowsJS); the
//       canonical text is made after it.
//   fresh   --db F --input F --n N
//       N times: append one event and commit, then query until the event
//       is visible; times from the append call to the visible answer.
//   appendloop --db F --input F
//       Appends the batches over and over (committing each), printing
//       "A <events committed>" after each commit, until killed.
//   recover --db F
//       Opens the database (replaying its WAL) and counts the rows; the
//       time to open and the time to the first answer.
//   export  --db F --out DIR --runs R
//       es-bench export's peer: COPY (SELECT <the export schema of
//       docs/EXPORT.md> FROM events) TO ... (FORMAT parquet, COMPRESSION
//       zstd), R times each, partitioned as esctl export partitions
//       (PARTITION_BY (tenant, date)) and into one file; the seconds (wall
//       and CPU, all threads) of each run and the bytes written.  person_id is not stitched (DuckDB
//       has no identity map): COALESCE(user_id, anonymous_id).
import { DuckDBInstance } from '@duckdb/node-api';
import fs from 'node:fs';
import readline from 'node:readline';
import { failer, out, parseArgs as parseFlags } from '../driver.mjs';

const COLUMNS = [
  ['ts_us', 'BIGINT'], ['recv_us', 'BIGINT'], ['type', 'TINYINT'],
  ['event', 'VARCHAR'], ['message_id', 'VARCHAR'],
  ['anonymous_id', 'VARCHAR'], ['user_id', 'VARCHAR'],
  ['previous_id', 'VARCHAR'], ['group_id', 'VARCHAR'], ['path', 'VARCHAR'],
  ['url', 'VARCHAR'], ['referrer', 'VARCHAR'], ['properties', 'VARCHAR'],
  ['user_agent', 'VARCHAR'], ['ip', 'VARCHAR'],
];
// tenant first, seq (the append order, for "later appended first" ties)
// second; then the event's fields in es_event order.
const SCHEMA = 'CREATE TABLE IF NOT EXISTS events(tenant VARCHAR NOT NULL, ' +
  'seq BIGINT NOT NULL, ' + COLUMNS.map(([n, t]) => `${n} ${t}`).join(', ') +
  ')';

const now = () => Number(process.hrtime.bigint()) / 1e9;
const fail = failer('duckdb peer');
const parseArgs = (argv) => parseFlags(argv, fail);

// Reads the batch file line by line, calling fn(tenant, events) per batch.
async function forEachBatch(path, fn) {
  const rl = readline.createInterface({
    input: fs.createReadStream(path), crlfDelay: Infinity });
  for await (const line of rl)
    if (line.length) {
      const [tenant, events] = JSON.parse(line);
      await fn(tenant, events);
    }
}

async function readBatches(path) {
  const batches = [];
  await forEachBatch(path, (t, e) => { batches.push([t, e]); });
  return batches;
}

function appendEvent(app, tenant, seq, ev) {
  app.appendVarchar(tenant);
  app.appendBigInt(BigInt(seq));
  app.appendBigInt(BigInt(ev[0]));
  app.appendBigInt(BigInt(ev[1]));
  app.appendTinyInt(ev[2]);
  for (let i = 3; i < 15; i++) {
    if (ev[i] === null) app.appendNull();
    else app.appendVarchar(ev[i]);
  }
  app.endRow();
}

async function openDb(path) {
  const instance = await DuckDBInstance.create(path);
  const conn = await instance.connect();
  return { instance, conn };
}

function closeDb(db) {
  db.conn.closeSync();
  db.instance.closeSync();
}

// ------------------------------------------------------------------
// ingest
// ------------------------------------------------------------------

async function cmdIngest(a) {
  const commitRows = a['commit-rows'] ? Number(a['commit-rows']) : 0;
  const db = await openDb(a.db);
  await db.conn.run(SCHEMA);
  let seq = 0, batches = 0, lastProgress = 0;
  const total = Number(a.total || 0);
  const app = await db.conn.createAppender('events');
  let t0, pending = 0;
  if (commitRows) {
    // Bulk load for the query benchmark: streamed, not timed as ingest.
    t0 = now();
    await forEachBatch(a.input, (tenant, events) => {
      for (const ev of events) appendEvent(app, tenant, seq++, ev);
      batches++;
      pending += events.length;
      if (pending >= commitRows) {
        app.flushSync();
        pending = 0;
        out(`P ${seq} ${total}`);
      }
    });
  } else {
    const all = await readBatches(a.input);
    t0 = now();
    for (const [tenant, events] of all) {
      for (const ev of events) appendEvent(app, tenant, seq++, ev);
      app.flushSync(); // one autocommit transaction per batch
      batches++;
      const t = now();
      if (t - lastProgress > 0.1) {
        out(`P ${seq} ${total}`);
        lastProgress = t;
      }
    }
  }
  app.closeSync();
  const ingest_s = now() - t0;
  const tc = now();
  closeDb(db); // checkpoints: the WAL is folded into the database file
  const close_s = now() - tc;
  out('R ' + JSON.stringify({ ingest_s, close_s, events: seq, batches }));
}

// ------------------------------------------------------------------
// query
// ------------------------------------------------------------------

// A SQL string literal.
const lit = (s) => `'${String(s).replaceAll("'", "''")}'`;

// The ids of tenant t that identity stitching links, each with its person:
// the smallest id of its connected component.  Links as docs/QUERY.md
// defines them: identify links userId and anonymousId, alias links
// previousId and userId; "", "null", "undefined", "0", "anonymous" (any
// case) never link.  (The 100-ids-per-person cap is not modelled: the
// generated visitors stay far below it, and the cross-check would show it.)
function personsCte(t) {
  return `RECURSIVE
  links(a, b) AS (
    SELECT user_id, anonymous_id FROM events
     WHERE tenant = ${lit(t)} AND type = 4
    UNION ALL
    SELECT previous_id, user_id FROM events
     WHERE tenant = ${lit(t)} AND type = 5),
  good(a, b) AS (
    SELECT a, b FROM links
     WHERE a IS NOT NULL AND b IS NOT NULL AND a <> b
       AND lower(a) NOT IN ('', 'null', 'undefined', '0', 'anonymous')
       AND lower(b) NOT IN ('', 'null', 'undefined', '0', 'anonymous')),
  edges(a, b) AS (SELECT a, b FROM good UNION SELECT b, a FROM good),
  reach(id, comp) AS (
    SELECT a, a FROM edges
    UNION
    SELECT e.b, r.comp FROM reach r JOIN edges e ON e.a = r.id),
  persons(id, person) AS (SELECT id, min(comp) FROM reach GROUP BY id)`;
}

// An event's person id: its userId, else its anonymousId (non-empty).
const EVENT_ID = "coalesce(nullif(user_id, ''), nullif(anonymous_id, ''))";
// An event's visitor id, as rollups and rules count visitors (not
// stitched): its anonymousId, else its userId (non-empty).
const VISITOR_ID =
  "coalesce(nullif(anonymous_id, ''), nullif(user_id, ''))";

// Each query: SQL for the spec es-bench wrote, and how to print the answer
// canonically (the same text es-bench makes of libeventstore's answer).
const QUERIES = {
  // Events per minute bucket (UTC) over [from, to).
  minute_counts: (q) => [
    `SELECT (ts_us // 60000000) * 60 AS b, count(*) AS n FROM events
      WHERE tenant = ${lit(q.tenant)} AND ts_us >= ${q.from_us}
        AND ts_us < ${q.to_us} GROUP BY b ORDER BY b`,
    (rows) => rows.map((r) => `${r[0]} ${r[1]}`).join('\n')],
  // Page views by path, top `limit` by count, ties by path (bytes).
  top_pages: (q) => [
    `SELECT path, count(*) AS n FROM events
      WHERE tenant = ${lit(q.tenant)} AND type = 2
      GROUP BY path ORDER BY n DESC, path ASC NULLS FIRST LIMIT ${q.limit}`,
    (rows) => rows.map((r) => `${r[0] ?? '(null)'} ${r[1]}`).join('\n')],
  // Distinct persons (after stitching) over all the tenant's events.
  uniques_exact: (q) => [
    `WITH ${personsCte(q.tenant)}
     SELECT count(DISTINCT coalesce(p.person, x.id)) FROM
       (SELECT ${EVENT_ID} AS id FROM events
         WHERE tenant = ${lit(q.tenant)}) x
       LEFT JOIN persons p ON p.id = x.id WHERE x.id IS NOT NULL`,
    (rows) => `${rows[0][0]}`],
  // Estimated distinct visitor ids (not stitched), as es_query's rollups
  // estimate them.
  uniques_approx: (q) => [
    `SELECT approx_count_distinct(${VISITOR_ID}) FROM events
      WHERE tenant = ${lit(q.tenant)}`,
    (rows) => `${rows[0][0]}`],
  // Persons (stitched) with at least `at_least` page views of `path` in
  // (from, to], each named by the smallest id of its person, sorted.  An
  // event counts for its visitor id and through it for that id's person
  // (as the rules count: an event carrying an anonymousId and a userId
  // that nothing links counts for the anonymousId's person).
  segment_members_stitched: (q) => [
    `WITH ${personsCte(q.tenant)}
     SELECT coalesce(p.person, x.id) AS person, count(*) AS n FROM
       (SELECT ${VISITOR_ID} AS id FROM events
         WHERE tenant = ${lit(q.tenant)} AND type = 2
           AND path = ${lit(q.path)} AND ts_us > ${q.from_us}
           AND ts_us <= ${q.to_us}) x
       LEFT JOIN persons p ON p.id = x.id WHERE x.id IS NOT NULL
     GROUP BY 1 HAVING count(*) >= ${q.at_least} ORDER BY 1`,
    (rows) => rows.map((r) => `${r[0]}`).join('\n')],
  // The rule's members: visitor ids (not stitched) with at least
  // `at_least` page views of `path` in (from, to] -- es_rule_members at
  // T = to with within = to - from.  Sorted by bytes.
  segment_members: (q) => [
    `SELECT ${VISITOR_ID} AS v FROM events
      WHERE tenant = ${lit(q.tenant)} AND type = 2
        AND path = ${lit(q.path)} AND ts_us > ${q.from_us}
        AND ts_us <= ${q.to_us} AND ${VISITOR_ID} IS NOT NULL
      GROUP BY v HAVING count(*) >= ${q.at_least} ORDER BY v`,
    (rows) => rows.map((r) => `${r[0]}`).join('\n')],
  // The person's latest `limit` events over all their linked ids, newest
  // first, ties the later appended first.
  timeline: (q) => [
    `WITH ${personsCte(q.tenant)},
       ids(id) AS (
         SELECT id FROM persons WHERE person =
           (SELECT person FROM persons WHERE id = ${lit(q.person)})
         UNION SELECT ${lit(q.person)})
     SELECT ts_us, type, message_id FROM events
      WHERE tenant = ${lit(q.tenant)}
        AND (user_id IN (SELECT id FROM ids)
             OR anonymous_id IN (SELECT id FROM ids))
      ORDER BY ts_us DESC, seq DESC LIMIT ${q.limit}`,
    (rows) => rows.map((r) => `${r[0]} ${r[1]} ${r[2] ?? '(null)'}`)
      .join('\n')],
};

// The query's rows as JS values: what the clock measures.  The canonical
// text for the cross-check is made after the clock stops (canonRows), as
// es-bench does with libeventstore's answer.
async function runQuery(conn, sql) {
  const reader = await conn.runAndReadAll(sql);
  return reader.getRowsJS();
}

async function cmdQuery(a) {
  const spec = JSON.parse(fs.readFileSync(a.queries, 'utf8'));
  const runs = Number(a.runs || 3);
  const results = [];
  let db = await openDb(a.db);
  const total = spec.queries.length * runs * 2;
  let done = 0;
  for (const q of spec.queries) {
    const make = QUERIES[q.kind];
    if (!make) fail(`unknown query kind '${q.kind}'`);
    const [sql, canon] = make(q);
    const cold = [], hot = [], open = [];
    let answer = null;
    for (let r = 0; r < runs; r++) {
      closeDb(db);
      const t0 = now();
      db = await openDb(a.db);
      open.push(now() - t0);
      const rows = await runQuery(db.conn, sql);
      cold.push(now() - t0);
      const ans = canon(rows);
      if (answer === null) answer = ans;
      else if (ans !== answer) fail(`${q.name}: answers differ between runs`);
      out(`P ${++done} ${total}`);
    }
    for (let r = 0; r < runs; r++) {
      const t0 = now();
      const rows = await runQuery(db.conn, sql);
      hot.push(now() - t0);
      const ans = canon(rows);
      if (ans !== answer) fail(`${q.name}: answers differ between runs`);
      out(`P ${++done} ${total}`);
    }
    results.push({ name: q.name, cold_s: cold, hot_s: hot, open_s: open,
      answer });
  }
  closeDb(db);
  out('R ' + JSON.stringify({ results }));
}

// ------------------------------------------------------------------
// freshness, kill and recovery
// ------------------------------------------------------------------

async function cmdFresh(a) {
  const n = Number(a.n || 20);
  const all = await readBatches(a.input);
  const db = await openDb(a.db);
  await db.conn.run(SCHEMA);
  const app = await db.conn.createAppender('events');
  const lat = [];
  let seq = 0;
  for (let i = 0; i < n; i++) {
    const [tenant, events] = all[i % all.length];
    const ev = events[0].slice();
    const marker = `fresh-${i}`;
    ev[4] = marker; // message_id
    const t0 = now();
    appendEvent(app, 'fresh', seq++, ev);
    app.flushSync();
    for (;;) {
      const r = await db.conn.runAndReadAll(
        `SELECT count(*) FROM events WHERE tenant = 'fresh' AND ` +
        `message_id = ${lit(marker)}`);
      if (Number(r.getRowsJS()[0][0]) === 1) break;
    }
    lat.push(now() - t0);
    void tenant;
  }
  app.closeSync();
  closeDb(db);
  out('R ' + JSON.stringify({ fresh_s: lat }));
}

async function cmdAppendLoop(a) {
  const all = await readBatches(a.input);
  const db = await openDb(a.db);
  await db.conn.run(SCHEMA);
  const app = await db.conn.createAppender('events');
  let seq = 0;
  for (;;)
    for (const [tenant, events] of all) {
      for (const ev of events) appendEvent(app, tenant, seq++, ev);
      app.flushSync();
      out(`A ${seq}`);
    }
}

async function cmdRecover(a) {
  const t0 = now();
  const db = await openDb(a.db);
  const open_s = now() - t0;
  const r = await db.conn.runAndReadAll('SELECT count(*) FROM events');
  const first_s = now() - t0;
  const rows = Number(r.getRowsJS()[0][0]);
  closeDb(db);
  out('R ' + JSON.stringify({ open_s, first_query_s: first_s, rows }));
}

// The export schema (docs/EXPORT.md) from the events table.
const EXPORT_SELECT = `SELECT tenant,
  strftime(make_timestamp(ts_us), '%Y-%m-%d') AS date, message_id,
  CASE type WHEN 1 THEN 'track' WHEN 2 THEN 'page' WHEN 3 THEN 'screen'
    WHEN 4 THEN 'identify' WHEN 5 THEN 'alias' ELSE 'group' END AS type,
  event, make_timestamp(ts_us)::TIMESTAMPTZ AS "timestamp",
  make_timestamp(recv_us)::TIMESTAMPTZ AS received_at,
  NULL::TIMESTAMPTZ AS sent_at, anonymous_id, user_id,
  COALESCE(NULLIF(user_id, ''), NULLIF(anonymous_id, '')) AS person_id,
  path AS page_path, url AS page_url, referrer AS page_referrer,
  NULL::VARCHAR AS page_title, user_agent, ip,
  CASE WHEN type IN (4, 6) THEN NULL ELSE properties END AS properties,
  NULL::VARCHAR AS context,
  CASE WHEN type IN (4, 6) THEN properties END AS traits,
  previous_id, group_id
FROM events`;

function dirBytes(dir) {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) n += fs.statSync(`${e.parentPath ?? e.path}/${e.name}`).size;
  return n;
}

async function cmdExport(a) {
  const runs = Number(a.runs || 1);
  const db = await openDb(a.db);
  const rows = Number((await db.conn.runAndReadAll('SELECT count(*) FROM events')).getRowsJS()[0][0]);
  const res = { rows, partitioned_s: [], single_s: [], partitioned_bytes: 0, single_bytes: 0, threads: 0 };
  res.threads = Number((await db.conn.runAndReadAll("SELECT current_setting('threads')")).getRowsJS()[0][0]);
  for (let r = 0; r < runs; r++) {
    for (const kind of ['partitioned', 'single']) {
      const dir = `${a.out}/${kind}`;
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { recursive: true });
      const target = kind === 'single' ? `${dir}/events.parquet` : dir;
      const opts = kind === 'single' ? '' : ', PARTITION_BY (tenant, date)';
      const t0 = now(), c0 = process.cpuUsage();
      await db.conn.run(`COPY (${EXPORT_SELECT}) TO '${target}' (FORMAT parquet, COMPRESSION zstd${opts})`);
      res[`${kind}_s`].push(now() - t0);
      const c = process.cpuUsage(c0); // user + system, all threads
      (res[`${kind}_cpu_s`] ??= []).push((c.user + c.system) / 1e6);
      res[`${kind}_bytes`] = dirBytes(dir);
      out(`P ${2 * r + (kind === 'single' ? 2 : 1)} ${2 * runs}`);
    }
  }
  closeDb(db);
  out('R ' + JSON.stringify(res));
}

const COMMANDS = {
  ingest: cmdIngest, query: cmdQuery, fresh: cmdFresh,
  appendloop: cmdAppendLoop, recover: cmdRecover, export: cmdExport,
};

const [cmd, ...rest] = process.argv.slice(2);
if (!COMMANDS[cmd]) fail(`unknown command '${cmd}'`);
COMMANDS[cmd](parseArgs(rest)).catch((e) => fail(e && e.stack || e));
