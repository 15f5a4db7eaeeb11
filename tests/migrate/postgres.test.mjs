// The legacy side as it really is: Debian's PostgreSQL holds an events
// table (awkward values: NULLs, commas, quotes, line breaks, jsonb); its
// own COPY ... CSV HEADER writes the file `esctl import` reads through a
// mapping, and docs/MIGRATION.md's counts query (read from the doc) writes
// the CSV `esctl reconcile` compares: exit 0.  Then a row is deleted in
// PostgreSQL and reconcile names its bucket (exit 1).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as h from './lib.mjs';

let dir, pg, port, bin;
const asRoot = process.getuid && process.getuid() === 0;

// PostgreSQL refuses to run as root: then its programs run as the
// package's postgres user.
function pgRun(prog, args, opts = {}) {
  const cmd = asRoot ? 'runuser' : path.join(bin, prog);
  const argv = asRoot ? ['-u', 'postgres', '--', path.join(bin, prog), ...args] : args;
  const r = h.spawnSync(cmd, argv, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${prog} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const psql = (sql) => pgRun('psql', ['-h', pg, '-p', String(port), '-U', 'postgres', '-d', 'legacy',
                                    '-v', 'ON_ERROR_STOP=1', '-q', '-c', sql]);

before(async () => {
  const root = '/usr/lib/postgresql';
  const v = existsSync(root) ? readdirSync(root).filter((d) => existsSync(path.join(root, d, 'bin', 'initdb'))) : [];
  if (!v.length) {
    console.log('FAIL: PostgreSQL is not installed (scripts/deps.sh installs postgresql)');
    process.exit(1);
  }
  bin = path.join(root, v.sort().pop(), 'bin');
  dir = mkdtempSync(path.join(tmpdir(), 'es-migrate-pg-'));
  chmodSync(dir, 0o777); // the postgres user writes the CSV here
  pg = path.join(dir, 'pg');
  pgRun('initdb', ['-D', pg, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8']);
  port = await h.freePort();
  pgRun('pg_ctl', ['-D', pg, '-w', '-l', path.join(pg, 'log'), '-o',
                   `-k ${pg} -p ${port} -c listen_addresses=''`, 'start']);
  pgRun('createdb', ['-h', pg, '-p', String(port), '-U', 'postgres', 'legacy']);
});

after(() => {
  if (pg && existsSync(path.join(pg, 'postmaster.pid')))
    try { pgRun('pg_ctl', ['-D', pg, '-w', '-m', 'fast', 'stop']); } catch { /* gone */ }
  if (dir) h.removeDir(dir);
});

test("PostgreSQL's COPY CSV imports, and MIGRATION.md's counts reconcile", () => {
  // a legacy table with what real data has: NULLs, '' vs NULL, commas,
  // quotes, line breaks, unicode, jsonb, timestamptz in several zones
  psql(`CREATE TABLE events (
          tenant_id text, message_id text, type text, event_name text,
          user_id text, anonymous_id text, occurred_at timestamptz,
          props jsonb, page_path text);
        INSERT INTO events
        SELECT 'acme', 'pg-' || i,
               CASE WHEN i % 4 = 0 THEN 'page' WHEN i % 9 = 0 THEN 'identify' ELSE 'track' END,
               CASE WHEN i % 4 = 0 OR i % 9 = 0 THEN NULL
                    WHEN i % 3 = 0 THEN 'Order "Completed", twice' || E'\\n' || 'really'
                    ELSE 'Signed Up ✓' END,
               CASE WHEN i % 5 = 0 THEN NULL ELSE 'u' || (i % 17) END,
               'anon-' || (i % 23),
               timestamptz '2024-02-27 22:00:00+02' + (i * interval '97 seconds'),
               CASE WHEN i % 2 = 0 THEN jsonb_build_object('plan', 'pro, "gold"', 'n', i) END,
               CASE WHEN i % 4 = 0 THEN '/p' || (i % 7) END
        FROM generate_series(1, 5000) AS i;`);
  const csv = path.join(dir, 'legacy.csv');
  psql(`\\copy (SELECT message_id, type AS kind, event_name, user_id, anonymous_id, ` +
       `occurred_at, props, page_path FROM events ORDER BY message_id) ` +
       `TO '${csv}' WITH (FORMAT csv, HEADER)`);
  const map = path.join(dir, 'legacy.map');
  writeFileSync(map, 'messageId = message_id\ntype = kind\nevent = event_name\n' +
    'userId = user_id\nanonymousId = anonymous_id\ntimestamp = occurred_at\n' +
    'properties = props\ncontext.page.path = page_path\n');
  const data = path.join(dir, 'data');
  const r = h.esctl(['import', '--data', data, '--tenant', 'acme', '--mapping', map, csv]);
  console.log(`postgres: ${r.stdout.trim()}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /read 5000 events .* stored 5000, duplicates skipped 0, rejected 0/);

  // the counts, by MIGRATION.md's query as written (the range adapted)
  const doc = readFileSync(path.join(h.ROOT, 'docs', 'MIGRATION.md'), 'utf8');
  const m = /```sql\n(\\copy \(SELECT tenant_id AS tenant,[\s\S]*?)```/.exec(doc);
  assert.ok(m, 'the PostgreSQL query is in MIGRATION.md');
  const counts = path.join(dir, 'counts.csv');
  const q = m[1].replace(/\n\s*/g, ' ')
    .replace("occurred_at >= '2026-11-01' AND occurred_at < '2026-12-01'",
             "occurred_at >= '2024-02-01' AND occurred_at < '2024-04-01'")
    .replace("'counts.csv'", `'${counts}'`).trim();
  psql(q);
  const ok = h.esctl(['reconcile', '--data', data, '--legacy', counts, '--by', 'day']);
  console.log(`postgres: ${ok.stdout.trim()}`);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);

  // the legacy side loses an event: reconcile names the row
  psql(`DELETE FROM events WHERE message_id = 'pg-4'`);
  psql(q);
  const bad = h.esctl(['reconcile', '--data', data, '--legacy', counts, '--by', 'day']);
  assert.equal(bad.status, 1);
  assert.match(bad.stdout, /^acme,2024-02-27,page,\d+,\d+$/m, bad.stdout);
});
