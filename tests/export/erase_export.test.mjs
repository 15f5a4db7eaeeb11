// Erasure stage (f), exports (docs/PRIVACY.md), with es-ingestd --export DIR
// and DuckDB (@duckdb/node-api) reading the Parquet files back:
//  - a person's events land in two partitions: a recent hour written by
//    the continuous exporter and a day older than its lookback window
//    written by `esctl export` into the same directory (the exporter
//    itself would never look at that day again);
//  - es-ingestd restarts with an export interval of an hour, so only the
//    erasure can re-cut a partition; POST /v1/privacy/erase, wait for the
//    receipt: stage "exports" done with both days;
//  - afterwards no row of any export file holds the person's ids or the
//    email in any column (every column cast to text by DuckDB, and the
//    raw bytes of every file); everybody else's rows are all there, once.
//
//  - and (second test) a one-off `esctl export` directory with no exporter
//    running after a restart: reached through DATA/exports.
//
//   node erase_export.test.mjs ES_INGESTD ESCTL
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

let duck;
try {
  duck = await import('@duckdb/node-api');
} catch (e) {
  console.error('erase_export.test: npm packages missing (run scripts/npm-deps.sh):', e.message);
  process.exit(1);
}

const [INGESTD, ESCTL] = process.argv.slice(2);
const SCRATCH = fs.mkdtempSync(path.join(os.tmpdir(), 'es-xerase-'));
const ADMIN = 'admin-token-xerase-51d0c2b7e4';
const NEEDLES = ['anon-V', 'user-V', 'victim@example.com'];
const HOUR = 3600e3, DAY = 24 * HOUR;
const procs = new Set();
const inst = await duck.DuckDBInstance.create(':memory:');
const con = await inst.connect();
const sql = async (q) => (await con.runAndReadAll(q)).getRowObjectsJson();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

after(() => {
  for (const p of procs) p.kill('SIGKILL');
  fs.rmSync(SCRATCH, { recursive: true, force: true });
});

function run(prog, args) {
  return new Promise((resolve) => {
    const p = spawn(prog, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

function startIngestd(dir, extra) {
  return new Promise((resolve, reject) => {
    const p = spawn(INGESTD, ['--data', path.join(dir, 'data'), '--listen', '127.0.0.1:0',
      '--keys', path.join(dir, 'keys.json'), '--admin-tokens', path.join(dir, 'admin.json'),
      '--access-log', 'off', '--export-delay-s', '0', ...extra],
    { stdio: ['ignore', 'ignore', 'pipe'] });
    procs.add(p);
    let log = '', done = false;
    p.stderr.on('data', (d) => {
      log += d;
      const m = /"msg":"listening".*"port":(\d+)/.exec(log);
      if (m && !done) { done = true; resolve({ p, url: `http://127.0.0.1:${m[1]}`, log: () => log }); }
    });
    p.on('exit', (code) => { procs.delete(p); if (!done) reject(new Error(`es-ingestd exited ${code}: ${log}`)); });
  });
}
function stopIngestd(s) {
  return new Promise((resolve) => { s.p.on('exit', (code) => resolve(code)); s.p.kill('SIGTERM'); });
}
async function call(s, method, p, body, auth = `Bearer ${ADMIN}`) {
  const res = await fetch(s.url + p, {
    method, body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'Content-Type': 'application/json', Authorization: auth },
  });
  const text = await res.text();
  return { status: res.status, text, body: text ? JSON.parse(text) : null };
}

const iso = (ms) => new Date(ms).toISOString();
const day = (ms) => iso(ms).slice(0, 10);

// Every row of every Parquet file: message id and the whole row as text.
// The status of the erase request `res` (a 202) once it is done.
async function eraseDone(s, res) {
  assert.equal(res.status, 202, res.text);
  for (let i = 0; ; i++) {
    const st = (await call(s, 'GET', `/v1/privacy/erase/${res.body.id}`)).body;
    if (st.state === 'done') return st;
    assert.ok(i < 600, `not done: ${JSON.stringify(st)}`);
    await sleep(50);
  }
}

async function exported(out) {
  return sql(`SELECT message_id AS id, CAST(t AS VARCHAR) AS txt
    FROM read_parquet('${out}/**/*.parquet', hive_partitioning=true) AS t`);
}
function filesUnder(dir) {
  const outp = [];
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    if (fs.statSync(p).isDirectory()) outp.push(...filesUnder(p));
    else outp.push(p);
  }
  return outp;
}

test('erase re-cuts the export partitions that held the person', async () => {
  const dir = path.join(SCRATCH, 'x');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({ 'key-a': 'acme' }));
  fs.writeFileSync(path.join(dir, 'admin.json'), JSON.stringify([ADMIN]));
  const out = path.join(dir, 'export');
  const now = Date.now();
  const recent = Math.floor(now / HOUR) * HOUR - 3 * HOUR;   // the exporter's
  const old = Math.floor(now / DAY) * DAY - 10 * DAY + HOUR; // outside its window
  const batch = [];
  for (const [base, tag] of [[recent, 'r'], [old, 'o']]) {
    for (let i = 0; i < 40; i++)
      batch.push({ type: 'page', anonymousId: `anon-${i % 5}`, messageId: `${tag}-${i}`,
        timestamp: iso(base + i * 60e3), properties: { path: '/' } });
    batch.push({ type: 'page', anonymousId: 'anon-V', messageId: `${tag}-v1`,
      timestamp: iso(base + 30e3), properties: { path: '/pricing' } });
    batch.push({ type: 'identify', anonymousId: 'anon-V', userId: 'user-V', messageId: `${tag}-v2`,
      timestamp: iso(base + 90e3), traits: { email: 'victim@example.com' } });
  }
  const others = batch.filter((e) => !e.messageId.includes('-v')).map((e) => e.messageId).sort();

  // 1. the exporter writes the recent hour; esctl export the old day
  let s = await startIngestd(dir, ['--export', out, '--export-interval-s', '1']);
  let res = await fetch(`${s.url}/v1/batch`, {
    method: 'POST', body: JSON.stringify({ batch }),
    headers: { 'Content-Type': 'application/json', Authorization: 'Basic ' + Buffer.from('key-a:').toString('base64') },
  });
  assert.equal(res.status, 200, await res.text());
  const t0 = Date.now();
  for (;;) {
    const p = path.join(out, 'tenant=acme', `date=${day(recent)}`, '_manifest.json');
    if (fs.existsSync(p) && JSON.parse(fs.readFileSync(p, 'utf8')).files.reduce((n, f) => n + f.rows, 0) === 42) break;
    assert.ok(Date.now() - t0 < 30000, 'the exporter wrote the recent hour');
    await sleep(200);
  }
  assert.equal(await stopIngestd(s), 0);
  const ex = await run(ESCTL, ['export', '--data', path.join(dir, 'data'), '--tenant', 'acme',
    '--from', day(old), '--to', day(old), '--out', out]);
  assert.equal(ex.code, 0, ex.err);
  let rows = await exported(out);
  assert.equal(rows.length, 84, 'both partitions exported, person included');
  for (const n of NEEDLES) assert.ok(rows.some((r) => r.txt.includes(n)), `precondition: ${n} exported`);

  // 2. an erase with the exporter idle (a pass an hour): stage (f) re-cuts
  s = await startIngestd(dir, ['--export', out, '--export-interval-s', '3600']);
  res = await call(s, 'POST', '/v1/privacy/erase', { tenant: 'acme', userId: 'user-V' });
  const st = await eraseDone(s, res);
  const fst = st.stages.find((x) => x.stage === 'exports');
  assert.equal(fst.state, 'done', JSON.stringify(st));
  assert.equal(fst.count, 2, 'two days re-cut');
  assert.equal(st.receipt.export_partitions_recut, 2);
  assert.equal(st.receipt.events_removed, 4);
  assert.equal(await stopIngestd(s), 0);

  // 3. nothing of the person in any export file; everybody else once
  rows = await exported(out);
  for (const n of NEEDLES) assert.ok(!rows.some((r) => r.txt.includes(n)), `${n} still exported`);
  assert.deepEqual(rows.map((r) => r.id).sort(), others);
  const files = filesUnder(out);
  for (const f of files) {
    const bytes = fs.readFileSync(f);
    for (const n of NEEDLES) assert.ok(!bytes.includes(n), `${f}: ${n}`);
  }
  // every file on disk is one a manifest names (old parts deleted)
  for (const f of files.filter((x) => x.endsWith('.parquet'))) {
    const man = JSON.parse(fs.readFileSync(path.join(path.dirname(f), '_manifest.json'), 'utf8'));
    assert.ok(man.files.some((m) => m.name === path.basename(f)), `${f} is named`);
  }
});

// Stage (f) without any exporter running: `esctl export` wrote a one-off
// directory before the erase (it records its destination in DATA/exports,
// lib/export/xreg.c); es-ingestd restarts without --export; the erase
// still re-cuts the partitions there that held the person.
test('erase reaches a one-off esctl export directory, no exporter running', async () => {
  const dir = path.join(SCRATCH, 'y');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({ 'key-a': 'acme' }));
  fs.writeFileSync(path.join(dir, 'admin.json'), JSON.stringify([ADMIN]));
  const out = path.join(dir, 'oneoff');
  const now = Date.now();
  const d1 = Math.floor(now / DAY) * DAY - 3 * DAY + HOUR;
  const d2 = d1 - 5 * DAY;
  const batch = [];
  for (const [base, tag] of [[d1, 'a'], [d2, 'b']]) {
    for (let i = 0; i < 30; i++)
      batch.push({ type: 'page', anonymousId: `anon-${i % 4}`, messageId: `${tag}-${i}`,
        timestamp: iso(base + i * 60e3), properties: { path: '/' } });
    batch.push({ type: 'identify', anonymousId: 'anon-V', userId: 'user-V', messageId: `${tag}-v1`,
      timestamp: iso(base + 90e3), traits: { email: 'victim@example.com' } });
    batch.push({ type: 'track', userId: 'user-V', event: 'Paid', messageId: `${tag}-v2`,
      timestamp: iso(base + 95e3), properties: { contact: 'victim@example.com' } });
  }
  const others = batch.filter((e) => !e.messageId.includes('-v')).map((e) => e.messageId).sort();
  let s = await startIngestd(dir, []);
  let res = await fetch(`${s.url}/v1/batch`, {
    method: 'POST', body: JSON.stringify({ batch }),
    headers: { 'Content-Type': 'application/json', Authorization: 'Basic ' + Buffer.from('key-a:').toString('base64') },
  });
  assert.equal(res.status, 200, await res.text());
  // esctl export beside the running server (a read-only handle), with a
  // relative --out: the record holds it made absolute
  const ex = await run(ESCTL, ['export', '--data', path.join(dir, 'data'), '--tenant', 'acme',
    '--from', day(d2), '--to', day(d1), '--out', path.relative(process.cwd(), out)]);
  assert.equal(ex.code, 0, ex.err);
  assert.equal(fs.readdirSync(path.join(dir, 'data', 'exports')).filter((n) => n.startsWith('dest-')).length, 1);
  let rows = await exported(out);
  assert.equal(rows.length, 64, 'both days exported, person included');
  for (const n of NEEDLES) assert.ok(rows.some((r) => r.txt.includes(n)), `precondition: ${n} exported`);
  assert.equal(await stopIngestd(s), 0);

  // a restart without --export: the record is all the store has of `out`
  s = await startIngestd(dir, []);
  res = await call(s, 'POST', '/v1/privacy/erase', { tenant: 'acme', anonymousId: 'anon-V' });
  const st = await eraseDone(s, res);
  const fst = st.stages.find((x) => x.stage === 'exports');
  assert.equal(fst.state, 'done', JSON.stringify(st));
  assert.equal(st.receipt.export_partitions_recut, 2, JSON.stringify(st));
  assert.equal(st.receipt.events_removed, 4);
  assert.equal(await stopIngestd(s), 0);

  rows = await exported(out);
  for (const n of NEEDLES) assert.ok(!rows.some((r) => r.txt.includes(n)), `${n} still exported`);
  assert.deepEqual(rows.map((r) => r.id).sort(), others);
  for (const f of filesUnder(out)) {
    const bytes = fs.readFileSync(f);
    for (const n of NEEDLES) assert.ok(!bytes.includes(n), `${f}: ${n}`);
  }
});
