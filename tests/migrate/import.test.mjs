// Backfill and reconcile (docs/MIGRATION.md): esctl import of Segment
// NDJSON (plain and gzip) and of PostgreSQL COPY CSV through a column
// mapping, run twice over overlapping files, killed with SIGKILL and run
// again, then beside live traffic through a running es-ingestd (--url):
// each messageId is stored once.  The history is from 2024, far older
// than the dedupe window (7 days): the window is measured between the two
// copies' event times, so old events are de-duplicated too.  Then
// esctl reconcile against the legacy counts: an exact match exits 0; a
// missing hour and an inflated count exit 1 naming both rows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import * as h from './lib.mjs';

let dir, data;
const T0 = Date.parse('2024-03-01T00:00:00Z');
const truth = new Map(); // messageId -> event, what the store must hold

function ev(i, { noId = false } = {}) {
  const e = { type: i % 4 === 0 ? 'page' : 'track', userId: `u${i % 13}`,
              timestamp: new Date(T0 + i * 37000).toISOString() };
  if (e.type === 'track') e.event = i % 3 ? 'Order Completed' : 'Signed Up';
  else e.properties = { path: `/p${i % 5}` };
  if (!noId) e.messageId = `hist-${i}`;
  return e;
}
const line = (e) => JSON.stringify(e) + '\n';

before(() => {
  dir = h.scratchDir();
  data = path.join(dir, 'data');
  // a.ndjson: 0..1999, b.ndjson.gz: 1000..2999 (1000 overlap), plus ten
  // events without messageId in both files (same lines) and one bad line
  let a = '', b = '';
  for (let i = 0; i < 2000; i++) a += line(ev(i));
  for (let i = 1000; i < 3000; i++) b += line(ev(i));
  for (let i = 0; i < 10; i++) {
    const x = line(ev(5000 + i, { noId: true }));
    a += x; b += x;
  }
  a += '{"type":"track","userId":"u1","event":"broken"\n'; // line 2011
  writeFileSync(path.join(dir, 'a.ndjson'), a);
  writeFileSync(path.join(dir, 'b.ndjson.gz'), zlib.gzipSync(b));
  for (let i = 0; i < 3000; i++) truth.set(`hist-${i}`, ev(i));
  // legacy.csv: PostgreSQL COPY ... CSV HEADER of 3000..3499 plus an
  // overlap with the NDJSON (2900..2999); NULL is an empty field, jsonb is
  // quoted JSON, timestamptz is '2024-03-01 10:00:00+00'
  let csv = 'id,message_id,kind,event_name,user_id,anonymous_id,occurred_at,props,page_path\n';
  for (let i = 2900; i < 3500; i++) {
    const e = ev(i);
    const at = e.timestamp.replace('T', ' ').replace('.000Z', '+00');
    const props = e.properties ? `"${JSON.stringify(e.properties).replace(/"/g, '""')}"` : '';
    csv += `${i},${e.messageId},${e.type},${e.event ?? ''},${e.userId},,${at},${props},` +
           `${e.properties ? e.properties.path : ''}\n`;
    truth.set(e.messageId, e);
  }
  csv += '9999,bad-1,track,"unterminated,u1,,2024-03-01 00:00:00+00,,\n';
  writeFileSync(path.join(dir, 'legacy.csv'), csv);
  writeFileSync(path.join(dir, 'mapping.txt'),
    '# PostgreSQL events table -> Segment fields\n' +
    'messageId = message_id\ntype = kind\nevent = event_name\n' +
    'name = event_name\nuserId = user_id\nanonymousId = anonymous_id\n' +
    'timestamp = occurred_at\nproperties = props\ncontext.page.path = page_path\n');
});

after(() => h.removeDir(dir));

const files = () => [path.join(dir, 'a.ndjson'), path.join(dir, 'b.ndjson.gz'),
                     path.join(dir, 'legacy.csv'), '--mapping', path.join(dir, 'mapping.txt')];
const summary = (out) => {
  const m = /read (\d+) events .*stored (\d+), duplicates skipped (\d+), rejected (\d+)/.exec(out);
  assert.ok(m, out);
  return { read: +m[1], stored: +m[2], dups: +m[3], rejected: +m[4] };
};

function assertStoredOnce() {
  const ids = h.storedIds(data, 'acme');
  assert.equal(ids.length, new Set(ids).size, 'a messageId stored twice');
  const want = new Set([...truth.keys()]);
  const derived = ids.filter((id) => id.startsWith('imp-'));
  assert.equal(derived.length, 10, 'events without messageId: once each');
  assert.deepEqual(ids.filter((id) => !id.startsWith('imp-')).sort(), [...want].sort());
  return ids.length;
}

test('two overlapping files and a CSV: each event once; a re-run stores nothing', () => {
  const r1 = h.esctl(['import', '--data', data, '--tenant', 'acme', ...files()]);
  assert.equal(r1.status, 2, r1.stderr); // a rejected line makes it 2
  const s1 = summary(r1.stdout);
  assert.match(r1.stderr, /a\.ndjson:2011: /);
  assert.match(r1.stderr, /legacy\.csv:602: .*quoted field/);
  assert.equal(s1.rejected, 2);
  assert.equal(s1.stored, truth.size + 10);
  assert.equal(s1.dups, 1000 + 10 + 100);
  console.log(`import (1st): ${r1.stdout.trim()}`);
  const r2 = h.esctl(['import', '--data', data, '--tenant', 'acme', ...files()]);
  const s2 = summary(r2.stdout);
  assert.equal(s2.stored, 0);
  assert.equal(s2.dups, s1.read - s1.rejected);
  console.log(`import (again): ${r2.stdout.trim()}`);
  assertStoredOnce();
});

test('killed with SIGKILL and run again: the same result', async () => {
  let big = '';
  for (let i = 10000; i < 70000; i++) {
    big += line(ev(i));
    truth.set(`hist-${i}`, ev(i));
  }
  const f = path.join(dir, 'big.ndjson');
  writeFileSync(f, big);
  const p = h.spawn(h.ESCTL, ['import', '--data', data, '--tenant', 'acme', '--batch', '200', f],
                    { stdio: 'ignore' });
  const exited = new Promise((r) => p.once('exit', r));
  // kill it once some of the file is durable (esctl scan reads beside it)
  for (let i = 0; i < 500 && p.exitCode === null; i++) {
    if (h.storedIds(data, 'acme').length > 3510) break;
    await h.sleep(10);
  }
  p.kill('SIGKILL');
  await exited;
  const partial = h.storedIds(data, 'acme').length - 3510;
  assert.ok(partial > 0 && partial < 60000,
            `killed with ${partial} stored: not mid-way, this would test nothing`);
  const r = h.esctl(['import', '--data', data, '--tenant', 'acme', f]);
  assert.equal(r.status, 0, r.stderr);
  const s = summary(r.stdout);
  console.log(`import killed with ${partial} of 60000 stored; ` +
              `re-run: ${r.stdout.trim()}`);
  assert.equal(s.stored + s.dups, 60000);
  assert.equal(s.dups, partial);
  assertStoredOnce();
});

test('beside live traffic, through a running es-ingestd (--url)', async () => {
  const srv = await h.startServer(dir);
  try {
    // live traffic repeating history (same ids, same timestamps) and new
    const live = [ev(5), ev(2999), ev(60000)];
    for (let i = 0; i < 20; i++) {
      const e = { type: 'track', userId: 'live', event: 'Live', messageId: `live-${i}`,
                  timestamp: new Date().toISOString() };
      live.push(e);
      truth.set(e.messageId, e);
    }
    const r0 = await h.post(srv, '/v1/batch', { batch: live }, { Authorization: h.basic('key-acme') });
    assert.equal(r0.status, 200);
    // the store is held: --data says so and names --url
    const busy = h.esctl(['import', '--data', data, '--tenant', 'acme', path.join(dir, 'a.ndjson')]);
    assert.equal(busy.status, 1);
    assert.match(busy.stderr, /--url/);
    const r = h.esctl(['import', '--url', srv.url, '--write-key', 'key-acme', '--tenant', 'acme',
                       '--quiet', ...files()]);
    assert.equal(r.status, 2, r.stderr); // the same two bad lines
    assert.match(r.stdout, /accepted by es-ingestd \d+/);
    console.log(`import --url: ${r.stdout.trim()}`);
    const dup = await h.metric(srv.url, 'es_ingest_events_total{status="duplicate"}');
    assert.ok(dup >= 3000, `es-ingestd counted ${dup} duplicates`);
  } finally {
    await h.stopServer(srv);
  }
  assertStoredOnce();
});

test('reconcile: exact match exits 0; a missing hour and an inflated count exit 1', () => {
  // the legacy side's counts, by hour, from the same history
  const counts = new Map();
  for (const e of truth.values()) {
    const k = `acme,${e.timestamp.slice(0, 13)}:00:00Z,${e.type === 'track' ? e.event : e.type}`;
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  // the ten events without messageId are in the store too
  for (let i = 0; i < 10; i++) {
    const e = ev(5000 + i, { noId: true });
    const k = `acme,${e.timestamp.slice(0, 13)}:00:00Z,${e.type === 'track' ? e.event : e.type}`;
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  const csv = (m) => 'tenant,bucket,event,count\n' + [...m].map(([k, n]) => `${k},${n}`).join('\n') + '\n';
  writeFileSync(path.join(dir, 'counts.csv'), csv(counts));
  const ok = h.esctl(['reconcile', '--data', data, '--legacy', path.join(dir, 'counts.csv'), '--by', 'hour']);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  console.log(`reconcile (exact): ${ok.stdout.trim()}`);
  const keys = [...counts.keys()].sort();
  const bad = new Map(counts);
  bad.delete(keys[3]);                      // a missing hour
  bad.set(keys[7], counts.get(keys[7]) + 5); // an inflated count
  writeFileSync(path.join(dir, 'counts-bad.csv'), csv(bad));
  const r = h.esctl(['reconcile', '--data', data, '--legacy', path.join(dir, 'counts-bad.csv'), '--by', 'hour']);
  assert.equal(r.status, 1);
  const rows = r.stdout.split('\n').filter((l) => l.startsWith('acme,'));
  assert.deepEqual(rows, [`${keys[3]},0,${counts.get(keys[3])}`,
                          `${keys[7]},${counts.get(keys[7]) + 5},${counts.get(keys[7])}`].sort());
  console.log(`reconcile (doctored):\n${r.stdout.trim()}`);
  // within a tolerance the inflated row passes, the missing one does not
  const t = h.esctl(['reconcile', '--data', data, '--legacy', path.join(dir, 'counts-bad.csv'),
                     '--by', 'hour', '--tolerance', '100']);
  assert.equal(t.status, 1);
  assert.equal(t.stdout.split('\n').filter((l) => l.startsWith('acme,')).length, 1);
});

test("reverse check: MIGRATION.md's DuckDB query over the Parquet export agrees", async () => {
  const out = path.join(dir, 'export');
  const e = h.esctl(['export', '--data', data, '--tenant', 'acme', '--from', '2024-03-01',
                     '--to', '2024-04-30', '--format', 'parquet', '--out', out]);
  assert.equal(e.status, 0, e.stderr);
  // the query exactly as docs/MIGRATION.md gives it, on this export
  const doc = readFileSync(path.join(h.ROOT, 'docs', 'MIGRATION.md'), 'utf8');
  const m = /```sql\n(COPY \(SELECT tenant,[\s\S]*?)```/.exec(doc);
  assert.ok(m, 'the DuckDB query is in MIGRATION.md');
  const csvPath = path.join(dir, 'store-counts.csv');
  const q = m[1].replace('/srv/export', out).replace("'store-counts.csv'", `'${csvPath}'`);
  const duck = h.requireDuckDB();
  const inst = await duck.DuckDBInstance.create(':memory:');
  const con = await inst.connect();
  await con.run(q);
  const r = h.esctl(['reconcile', '--data', data, '--legacy', csvPath, '--by', 'day',
                     '--from', '2024-03-01', '--to', '2024-05-01']);
  console.log(`reconcile (DuckDB over the export): ${r.stdout.trim()}`);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /events: legacy (\d+), store \1/);
});
