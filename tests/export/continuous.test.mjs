// Export to S3 and continuous export, against real parts on loopback:
// s3rver (npm) behind the botocore SigV4-checking proxy
// (tests/replicate/sigv4_proxy.py, started by tests/replicate/proxy.mjs),
// es-ingestd fed over HTTP, and DuckDB (@duckdb/node-api) reading what
// was written (the S3 objects are read back with @aws-sdk/client-s3 into
// a local mirror first: DuckDB's httpfs cannot be downloaded here).
//
//   node continuous.test.mjs ES_INGESTD ESCTL SIGV4_PROXY_PY
//
// 1. esctl export --out s3://BUCKET/PREFIX: every object under the prefix
//    is a partition's manifest or a file it names (sizes, CRC-32s); DuckDB
//    counts per tenant, day and type equal esctl query; a re-export after
//    late events replaces the parts (old objects deleted, every row once);
//    with the proxy failing requests, esctl exits 1 naming the failure and
//    every manifest still agrees with its objects; a clean run repairs.
// 2. es-ingestd --export DIR: events posted for past hours appear as one
//    part per hour within seconds (--export-delay-s 0, interval 1 s), with
//    the posted counts per hour (DuckDB); an hour in the future does not;
//    late events for an exported hour re-export that hour only (its old
//    part deleted, the other hours' parts untouched); /metrics shows
//    progress and lag; after a restart nothing is written again and new
//    hours are exported.
// 3. es-ingestd --export s3://...: the same hours land as objects.
// 4. an erase (es-ingestd without --export) re-cuts the partitions an
//    `esctl export --out s3://...` wrote: DuckDB and a byte search of the
//    mirrored objects find none of the person, every other row once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repRequire = createRequire(path.join(here, '..', 'replicate', 'package.json'));
let duck, S3rver, S3, proxy_;
try {
  duck = await import('@duckdb/node-api');
  S3rver = repRequire('s3rver');
  S3 = repRequire('@aws-sdk/client-s3');
  proxy_ = await import('../replicate/proxy.mjs');
} catch (e) {
  console.error('continuous.test: npm packages missing (run scripts/npm-deps.sh):', e.message);
  process.exit(1);
}

const [INGESTD, ESCTL, PROXY_PY] = process.argv.slice(2);
const ACCESS = 'S3RVER', SECRET = 'S3RVER', REGION = 'eu-west-3', BUCKET = 'es-export';
const SCRATCH = fs.mkdtempSync(path.join(os.tmpdir(), 'es-xstream-'));
const ENV = {
  ...process.env, AWS_ACCESS_KEY_ID: ACCESS, AWS_SECRET_ACCESS_KEY: SECRET,
  AWS_REGION: REGION, AWS_SESSION_TOKEN: '', ASAN_OPTIONS: 'detect_leaks=1',
};
const HOUR = 3600e3;
const procs = new Set();

const s3rver = new S3rver({
  address: '127.0.0.1', port: 0, silent: true,
  directory: path.join(SCRATCH, 's3rver'), configureBuckets: [{ name: BUCKET }],
});
const { port: s3port } = await s3rver.run();
const proxy = await proxy_.startProxy('continuous.test', PROXY_PY, s3port, ACCESS, SECRET, REGION);
const ENDPOINT = `http://127.0.0.1:${proxy.port}`;
const sdk = new S3.S3Client({
  region: REGION, endpoint: ENDPOINT, forcePathStyle: true,
  credentials: { accessKeyId: ACCESS, secretAccessKey: SECRET },
});
const inst = await duck.DuckDBInstance.create(':memory:');
const con = await inst.connect();
const sql = async (q) => (await con.runAndReadAll(q)).getRowObjectsJson();

after(async () => {
  for (const p of procs) p.kill('SIGKILL');
  proxy.proc.kill('SIGKILL');
  await s3rver.close();
  fs.rmSync(SCRATCH, { recursive: true, force: true });
});

// Runs a program without blocking the loop (s3rver lives in this process).
function run(prog, args, input) {
  return new Promise((resolve) => {
    const p = spawn(prog, args, { env: ENV, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
    p.stdin.end(input ?? '');
  });
}
async function ok(args, input) {
  const r = await run(ESCTL, args, input);
  assert.equal(r.code, 0, `esctl ${args.join(' ')}: ${r.err}`);
  return r.out;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every object under prefix, mirrored into dir; returns the keys.
async function mirror(prefix, dir) {
  fs.rmSync(dir, { recursive: true, force: true });
  const keys = [];
  let token;
  do {
    const page = await sdk.send(new S3.ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(o.Key);
    token = page.NextContinuationToken;
  } while (token);
  for (const k of keys) {
    const got = await sdk.send(new S3.GetObjectCommand({ Bucket: BUCKET, Key: k }));
    const file = path.join(dir, k.slice(prefix.length));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, Buffer.from(await got.Body.transformToByteArray()));
  }
  return keys.map((k) => k.slice(prefix.length)).sort();
}

// The partitions under dir: each manifest's files exist with its sizes
// and CRC-32s; with exact, nothing else is there.  Returns the manifests.
function checkManifests(dir, exact) {
  const out = [];
  const walk = (d) => {
    const names = fs.readdirSync(d);
    if (names.includes('_manifest.json')) {
      const m = JSON.parse(fs.readFileSync(path.join(d, '_manifest.json'), 'utf8'));
      let rows = 0;
      for (const f of m.files) {
        const buf = fs.readFileSync(path.join(d, f.name));
        assert.equal(buf.length, f.bytes, `${d}/${f.name} size`);
        assert.equal((zlib.crc32(buf) >>> 0).toString(16).padStart(8, '0'), f.crc32, `${d}/${f.name} crc32`);
        rows += f.rows;
      }
      assert.equal(rows, m.rows, `${d}: rows add up`);
      if (exact)
        assert.deepEqual(names.filter((n) => n !== '_manifest.json').sort(), m.files.map((f) => f.name).sort(), `${d}: only the manifest's files`);
      out.push({ dir: d, m });
    }
    for (const n of names) if (fs.statSync(path.join(d, n)).isDirectory()) walk(path.join(d, n));
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

async function duckCounts(glob, extra = '') {
  const rows = await sql(`SELECT tenant, CAST(date AS VARCHAR) AS day, type ${extra}, count(*) AS n,
      count(DISTINCT message_id) AS d
    FROM read_parquet('${glob}', hive_partitioning=true) GROUP BY ALL ORDER BY ALL`);
  for (const r of rows) assert.equal(Number(r.n), Number(r.d), 'no row twice');
  return rows.map((r) => ({ ...r, n: Number(r.n), d: undefined }));
}

// ---- 1. esctl export to S3 ------------------------------------------------

const DATA = path.join(SCRATCH, 'data');
const DAYS = ['2026-11-20', '2026-11-21'];
let seed = 42;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
function events(tenant, n, base, days = DAYS) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const day = days[rnd(days.length)];
    const ts = `${day}T${String(rnd(24)).padStart(2, '0')}:${String(rnd(60)).padStart(2, '0')}:00.000000Z`;
    const type = ['page', 'track', 'identify'][rnd(3)];
    const e = { messageId: `${tenant}-${base + i}`, anonymousId: `a${rnd(50)}`, timestamp: ts, type };
    if (type === 'track') e.event = ['Clicked', 'Signed Up'][rnd(2)];
    if (type === 'page') e.context = { page: { path: '/p' + rnd(4) } };
    out.push(JSON.stringify(e));
  }
  return out.join('\n') + '\n';
}
async function queryCounts(tenant) {
  const spec = JSON.stringify({ from: `${DAYS[0]}T00:00:00Z`, to: '2026-11-22T00:00:00Z', bucket: 'day', groupBy: ['type'] });
  const res = JSON.parse(await ok(['query', '--data', DATA, '--tenant', tenant, '--spec', '-'], spec));
  return res.rows.map((r) => ({ tenant, day: r.bucket.slice(0, 10), type: r.type, n: r.count }));
}
const sortRows = (a) => a.map((r) => JSON.stringify(r)).sort();

test('esctl export to s3://: objects, DuckDB counts, re-export, faults', async () => {
  for (const t of ['acme', 'beta']) {
    await ok(['append', '--data', DATA, '--tenant', t], events(t, 600, 0));
    await ok(['flush', '--data', DATA, '--tenant', t]);
    await ok(['append', '--data', DATA, '--tenant', t], events(t, 200, 600));
  }
  const url = `s3://${BUCKET}/exports/run 1`;
  const args = ['export', '--data', DATA, '--all', '--from', DAYS[0], '--to', DAYS[1], '--out', url, '--s3-endpoint', ENDPOINT];
  assert.match(await ok(args), /^exported 1600 rows, 4 files, \d+ bytes, 4 partitions in [\d.]+ s\n$/);
  const mir = path.join(SCRATCH, 'mirror1');
  const keys = await mirror('exports/run 1/', mir);
  assert.equal(keys.length, 8, keys.join(' '));
  assert.equal(checkManifests(mir, true).length, 4);
  const want = [...await queryCounts('acme'), ...await queryCounts('beta')];
  const got = (await duckCounts(path.join(mir, '**/*.parquet'))).map(({ tenant, day, type, n }) => ({ tenant, day, type, n }));
  assert.deepEqual(sortRows(got), sortRows(want));
  const types = Object.fromEntries((await sql(`DESCRIBE SELECT * FROM read_parquet('${mir}/**/*.parquet')`)).map((r) => [r.column_name, r.column_type]));
  assert.equal(types.timestamp, 'TIMESTAMP WITH TIME ZONE');

  // late events: the re-export replaces the day's parts
  await ok(['append', '--data', DATA, '--tenant', 'acme'], events('acme', 30, 5000, [DAYS[1]]));
  const before = JSON.parse(fs.readFileSync(path.join(mir, 'tenant=acme', `date=${DAYS[1]}`, '_manifest.json'), 'utf8'));
  await ok(args);
  const keys2 = await mirror('exports/run 1/', mir);
  assert.equal(keys2.length, 8, 'old parts deleted');
  const afterM = JSON.parse(fs.readFileSync(path.join(mir, 'tenant=acme', `date=${DAYS[1]}`, '_manifest.json'), 'utf8'));
  assert.equal(afterM.rows, before.rows + 30);
  assert.notEqual(afterM.files[0].name, before.files[0].name);
  checkManifests(mir, true);
  const want2 = [...await queryCounts('acme'), ...await queryCounts('beta')];
  const got2 = (await duckCounts(path.join(mir, '**/*.parquet'))).map(({ tenant, day, type, n }) => ({ tenant, day, type, n }));
  assert.deepEqual(sortRows(got2), sortRows(want2));

  // NDJSON.gz on S3, read by DuckDB read_json
  await ok(['export', '--data', DATA, '--tenant', 'beta', '--from', DAYS[0], '--to', DAYS[1], '--format', 'ndjson', '--out', `s3://${BUCKET}/nd`, '--s3-endpoint', ENDPOINT]);
  const mirNd = path.join(SCRATCH, 'mirror-nd');
  await mirror('nd/', mirNd);
  checkManifests(mirNd, true);
  const nd = await sql(`SELECT count(*) AS n FROM read_json('${mirNd}/**/*.ndjson.gz', format='newline_delimited', hive_partitioning=true)`);
  assert.equal(Number(nd[0].n), 800);

  // faults: every request fails for a while (after the client's retries)
  for (const k of [1, 3, 6, 9]) {
    await ok(['append', '--data', DATA, '--tenant', 'beta'], events('beta', 5, 9000 + k * 10, [DAYS[0]]));
    await proxy_.control(proxy.port, 'POST', '/__fault', { k, kind: '503', count: 40 });
    const r = await run(ESCTL, args);
    await proxy_.control(proxy.port, 'POST', '/__fault', { k: 0 });
    assert.equal(r.code, 1, `fault at ${k}: ${r.out}`);
    assert.match(r.err, /esctl: .*(unavailable|503|SlowDown)/i, r.err);
    await mirror('exports/run 1/', mir);
    checkManifests(mir, false);
  }
  await ok(args);
  await mirror('exports/run 1/', mir);
  checkManifests(mir, true);
  const want3 = [...await queryCounts('acme'), ...await queryCounts('beta')];
  const got3 = (await duckCounts(path.join(mir, '**/*.parquet'))).map(({ tenant, day, type, n }) => ({ tenant, day, type, n }));
  assert.deepEqual(sortRows(got3), sortRows(want3));
});

// ---- 2. es-ingestd --export ------------------------------------------------

function startIngestd(dir, extra) {
  return new Promise((resolve, reject) => {
    const p = spawn(INGESTD, ['--data', path.join(dir, 'data'), '--listen', '127.0.0.1:0',
      '--keys', path.join(dir, 'keys.json'), '--access-log', 'off', '--sync', 'none',
      '--export-delay-s', '0', '--export-interval-s', '1', ...extra],
    { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });
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
async function postBatch(s, key, batch) {
  const res = await fetch(`${s.url}/v1/batch`, {
    method: 'POST', body: JSON.stringify({ batch }),
    headers: { 'Content-Type': 'application/json', Authorization: 'Basic ' + Buffer.from(`${key}:`).toString('base64') },
  });
  assert.equal(res.status, 200, await res.text());
}
async function metrics(s) {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const m = {};
  for (const line of text.split('\n')) {
    const r = /^(es_export_[a-z_]+) ([\d.e+-]+)$/.exec(line);
    if (r) m[r[1]] = Number(r[2]);
  }
  return m;
}
const hourStart = (ms) => Math.floor(ms / HOUR) * HOUR;
const iso = (ms) => new Date(ms).toISOString();
let idn = 0;
function hourEvents(hourMs, n, tag) {
  const out = [];
  for (let i = 0; i < n; i++)
    out.push({ type: 'track', event: tag, messageId: `m-${tag}-${idn++}`, anonymousId: `v${i % 7}`,
      timestamp: iso(hourMs + 1000 * (i * 37 % 3600)) });
  return out;
}
// Waits until pred(metrics) holds (the exporter passes every second).
async function until(s, pred, what, ms = 30000) {
  const t0 = Date.now();
  for (;;) {
    const m = await metrics(s);
    if (pred(m)) return m;
    if (Date.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms: ${JSON.stringify(m)}`);
    await sleep(200);
  }
}
async function hourCounts(dir) {
  const rows = await sql(`SELECT tenant, CAST(epoch_us("timestamp") // 3600000000 AS BIGINT) AS h, count(*) AS n,
      count(DISTINCT message_id) AS d FROM read_parquet('${dir}/**/*.parquet', hive_partitioning=true) GROUP BY ALL ORDER BY ALL`);
  const m = {};
  for (const r of rows) { assert.equal(Number(r.n), Number(r.d), 'no row twice'); m[`${r.tenant} ${Number(r.h)}`] = Number(r.n); }
  return m;
}
const key = (t, ms) => `${t} ${ms / HOUR}`;

test('es-ingestd --export DIR: closed hours land, late events re-export, restart resumes', async () => {
  const dir = path.join(SCRATCH, 'ingest1');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({ 'key-a': 'acme', 'key-b': 'beta' }));
  const out = path.join(dir, 'export');
  const now = Date.now();
  const h1 = hourStart(now) - 3 * HOUR, h2 = hourStart(now) - 2 * HOUR, h0 = hourStart(now) - 27 * HOUR;
  const future = hourStart(now) + 3 * HOUR;
  let s = await startIngestd(dir, ['--export', out]);
  await postBatch(s, 'key-a', [...hourEvents(h1, 40, 'a1'), ...hourEvents(h2, 25, 'a2'), ...hourEvents(h0, 10, 'a0'), ...hourEvents(future, 5, 'fut')]);
  await postBatch(s, 'key-b', hourEvents(h2, 12, 'b2'));
  let m = await until(s, (x) => x.es_export_hours_total >= 4 && x.es_export_synced === 1, 'the four closed hours exported');
  assert.ok(m.es_export_lag_seconds > 0 && m.es_export_lag_seconds <= 3600 + 60, `lag ${m.es_export_lag_seconds}`);
  assert.equal(m.es_export_pending_hours, 0);
  let c = await hourCounts(out);
  assert.deepEqual(c, { [key('acme', h0)]: 10, [key('acme', h1)]: 40, [key('acme', h2)]: 25, [key('beta', h2)]: 12 });
  const parts = checkManifests(out, true);
  for (const { m: man } of parts) for (const f of man.files) {
    assert.equal(Date.parse(f.to) - Date.parse(f.from), HOUR, 'one part per hour');
    assert.equal(f.counted, f.rows);
  }
  const names = () => checkManifests(out, true).flatMap(({ dir: d, m: man }) => man.files.map((f) => `${path.relative(out, d)}/${f.name}`)).sort();
  const before = names();

  // late events for h1 of acme: that hour's part is replaced, no other
  await postBatch(s, 'key-a', hourEvents(h1, 7, 'late'));
  m = await until(s, (x) => x.es_export_hours_reexported_total >= 1, 'the late hour re-exported');
  c = await hourCounts(out);
  assert.equal(c[key('acme', h1)], 47);
  assert.equal(c[key('acme', h2)], 25);
  const afterLate = names();
  assert.equal(afterLate.length, before.length);
  assert.equal(afterLate.filter((n) => !before.includes(n)).length, 1, `one part replaced: ${afterLate}`);

  // restart: nothing written again; a new past hour is exported
  assert.equal(await stopIngestd(s), 0);
  s = await startIngestd(dir, ['--export', out]);
  m = await until(s, (x) => x.es_export_passes_total >= 2 && x.es_export_synced === 1, 'passes after the restart');
  assert.equal(m.es_export_hours_total, 0, 'nothing exported again after a restart');
  assert.deepEqual(names(), afterLate);
  const h3 = hourStart(now) - 5 * HOUR;
  await postBatch(s, 'key-b', hourEvents(h3, 9, 'b3'));
  await until(s, (x) => x.es_export_hours_total >= 1, 'the new hour exported');
  c = await hourCounts(out);
  assert.equal(c[key('beta', h3)], 9);
  assert.equal(c[key('acme', h1)], 47);
  assert.equal(c[key('acme', future)], undefined, 'a future hour is not exported');
  assert.equal(await stopIngestd(s), 0);
});

test('es-ingestd --export s3://: closed hours land as objects', async () => {
  const dir = path.join(SCRATCH, 'ingest2');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({ 'key-a': 'acme' }));
  const now = Date.now();
  const h1 = hourStart(now) - 4 * HOUR;
  const s = await startIngestd(dir, ['--export', `s3://${BUCKET}/live`, '--s3-endpoint', ENDPOINT, '--export-format', 'parquet', '--export-compression', 'snappy']);
  await postBatch(s, 'key-a', hourEvents(h1, 33, 's3'));
  await until(s, (x) => x.es_export_hours_total >= 1 && x.es_export_synced === 1, 'the hour exported to S3');
  await postBatch(s, 'key-a', hourEvents(h1, 4, 's3late'));
  await until(s, (x) => x.es_export_hours_reexported_total >= 1, 'the late hour re-exported to S3');
  assert.equal(await stopIngestd(s), 0);
  const mir = path.join(SCRATCH, 'mirror-live');
  const keys = await mirror('live/', mir);
  assert.equal(keys.length, 2, keys.join(' '));
  checkManifests(mir, true);
  const c = await hourCounts(mir);
  assert.deepEqual(c, { [key('acme', h1)]: 37 });
  const meta = await sql(`SELECT DISTINCT compression FROM parquet_metadata('${mir}/**/*.parquet')`);
  assert.deepEqual(meta.map((r) => r.compression), ['SNAPPY']);
});

// Erasure stage (f) on an S3 destination no exporter writes to: `esctl
// export --out s3://...` records it in DATA/exports (lib/export/xreg.c);
// es-ingestd, started without --export, erases a person; the stage opens
// the bucket with the server's environment and re-cuts the partitions.
test('erase re-cuts an esctl export on s3:// with no exporter running', async () => {
  const dir = path.join(SCRATCH, 'erase-s3');
  fs.mkdirSync(dir, { recursive: true });
  const ADMIN = 'admin-token-s3erase-0b7f';
  fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({ 'key-a': 'acme' }));
  fs.writeFileSync(path.join(dir, 'admin.json'), JSON.stringify([ADMIN]));
  const NEEDLES = ['anon-V', 'user-V', 'victim@example.com'];
  const h1 = hourStart(Date.now()) - 30 * HOUR;
  const batch = hourEvents(h1, 40, 'se');
  batch.push({ type: 'identify', anonymousId: 'anon-V', userId: 'user-V', messageId: 'v-1',
    timestamp: iso(h1 + 60e3), traits: { email: 'victim@example.com' } });
  batch.push({ type: 'track', event: 'Paid', userId: 'user-V', messageId: 'v-2',
    timestamp: iso(h1 + 3 * HOUR) });
  const others = batch.filter((e) => !e.messageId.startsWith('v-')).map((e) => e.messageId).sort();
  let s = await startIngestd(dir, ['--admin-tokens', path.join(dir, 'admin.json')]);
  await postBatch(s, 'key-a', batch);
  assert.equal(await stopIngestd(s), 0);
  const day = iso(h1).slice(0, 10), day2 = iso(h1 + 3 * HOUR).slice(0, 10);
  await ok(['export', '--data', path.join(dir, 'data'), '--tenant', 'acme', '--from', day,
    '--to', day2, '--out', `s3://${BUCKET}/oneoff`, '--s3-endpoint', ENDPOINT]);
  const mir = path.join(SCRATCH, 'mirror-erase');
  await mirror('oneoff/', mir);
  let rows = await sql(`SELECT message_id AS id, CAST(t AS VARCHAR) AS txt FROM read_parquet('${mir}/**/*.parquet') AS t`);
  assert.equal(rows.length, others.length + 2);

  s = await startIngestd(dir, ['--admin-tokens', path.join(dir, 'admin.json')]);
  const call = async (method, p, body) => {
    const r = await fetch(s.url + p, { method, body: body && JSON.stringify(body),
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${ADMIN}` } });
    return { status: r.status, body: await r.json() };
  };
  const res = await call('POST', '/v1/privacy/erase', { tenant: 'acme', userId: 'user-V' });
  assert.equal(res.status, 202);
  let st;
  for (let i = 0; ; i++) {
    st = (await call('GET', `/v1/privacy/erase/${res.body.id}`)).body;
    if (st.state === 'done') break;
    assert.ok(i < 600, `not done: ${JSON.stringify(st)}`);
    await sleep(50);
  }
  assert.equal(st.receipt.events_removed, 2, JSON.stringify(st));
  assert.equal(st.receipt.export_partitions_recut, day === day2 ? 1 : 2, JSON.stringify(st));
  assert.equal(await stopIngestd(s), 0);
  await mirror('oneoff/', mir);
  checkManifests(mir, true); // old parts deleted from the bucket
  rows = await sql(`SELECT message_id AS id, CAST(t AS VARCHAR) AS txt FROM read_parquet('${mir}/**/*.parquet') AS t`);
  for (const n of NEEDLES) assert.ok(!rows.some((r) => r.txt.includes(n)), `${n} still exported`);
  assert.deepEqual(rows.map((r) => r.id).sort(), others);
  const walk = (d) => fs.readdirSync(d).flatMap((n) => (fs.statSync(path.join(d, n)).isDirectory() ? walk(path.join(d, n)) : [path.join(d, n)]));
  for (const f of walk(mir))
    for (const n of NEEDLES) assert.ok(!fs.readFileSync(f).includes(n), `${f}: ${n}`);
});
