// The WAL shipper's backlog on disk and per-tenant tiers, against real
// parts on loopback: s3rver (npm) behind sigv4_proxy.py (botocore checks
// every signature), es-ingestd in tier local with --ship-wal on and a
// 1 MiB in-memory window per shard, esctl scan and restore.
//
//   node backlog.test.mjs ES_INGESTD ESCTL SIGV4_PROXY_PY
//
// 0. A keys file with a tenant in tier s3 is refused by a server that
//    ships no WAL (exit 2, saying why).
// 1. Per-tenant tiers from the keys file: tenant "acme" has
//    "durability": "s3", "beta" none (the server's local).  With S3 up
//    both are answered 200, acme's only once its WAL chunk is in S3
//    (es_walship_waits_total counts it); with s3rver stopped, acme is
//    answered 503 + Retry-After and beta 200 at once.
// 2. Outage under load in tier local: s3rver stays stopped while 8
//    clients post 100-event batches to beta for about 8 s: every request
//    is answered 200; the shipper keeps at most its window in memory per
//    shard (es_walship_pending_bytes) and the rest of the backlog on disk
//    (es_walship_spilled_shards, es_walship_held_wal_bytes: WAL files held
//    past their reclaim); es-ingestd's RSS is sampled and reported.
// 3. s3rver back on its port: the backlog drains (every shard's lag and
//    held bytes back to 0, the frames read back from the WAL files:
//    es_walship_reread_bytes_total); es-ingestd stopped, esctl restore
//    from S3 into a new directory equals the live store event for event
//    (esctl scan of both), and holds every acknowledged event once.
//    Before the stop, a reload (SIGHUP) puts beta in tier s3: its
//    requests then wait for their chunk (es_walship_waits_total).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as proxy_ from './proxy.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, 'package.json'));
const [ingestd, esctl, proxyPy] = process.argv.slice(2);
let S3rver;
try {
  S3rver = require('s3rver');
} catch (e) {
  console.error('backlog.test: npm packages missing (run scripts/npm-deps.sh):', e.message);
  process.exit(1);
}

const ACCESS = 'S3RVER', SECRET = 'S3RVER', REGION = 'eu-west-3';
const BUCKET = 'es-backlog';
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'es-backlog-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let s3rver, s3port, proxy;
const procs = new Set();

const env = () => ({ ...process.env, AWS_ACCESS_KEY_ID: ACCESS, AWS_SECRET_ACCESS_KEY: SECRET,
                     AWS_REGION: REGION, AWS_SESSION_TOKEN: '' });

function run(prog, args, timeoutMs = 60000) {
  return new Promise((resolve) => {
    const p = spawn(prog, args, { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out, err }); });
  });
}

async function startS3rver(port = 0) {
  s3rver = new S3rver({ address: '127.0.0.1', port, silent: true,
                        directory: path.join(scratch, 's3rver'),
                        configureBuckets: [{ name: BUCKET }] });
  ({ port: s3port } = await s3rver.run());
}

function startIngestd(dir) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({
    'key-acme': { tenant: 'acme', durability: 's3' }, 'key-beta': 'beta' }));
  const proc = spawn(ingestd, ['--data', path.join(dir, 'data'), '--listen', '127.0.0.1:0',
    '--keys', path.join(dir, 'keys.json'), '--replica', `s3://${BUCKET}/p`,
    '--s3-endpoint', `http://127.0.0.1:${proxy.port}`, '--s3-region', REGION,
    '--ship-wal', 'on', '--s3-window-mb', '1', '--s3-ack-timeout-ms', '1500',
    '--wal-file-mb', '1', '--seal-mb', '1', '--seal-age-s', '1', '--memory-budget', '64', '--shards', '2',
    '--access-log', 'off', '--sync', 'none'],
    { env: env(), stdio: ['ignore', 'ignore', 'pipe'] });
  procs.add(proc);
  proc.on('exit', () => procs.delete(proc));
  let log = '';
  return new Promise((resolve, reject) => {
    proc.stderr.on('data', (d) => {
      log += d;
      const m = /"msg":"listening".*"port":(\d+)/.exec(log);
      if (m) resolve({ proc, port: Number(m[1]), url: `http://127.0.0.1:${m[1]}`, log: () => log });
    });
    proc.on('exit', (code) => reject(new Error(`es-ingestd exited ${code}: ${log}`)));
  });
}

function kill(srv, sig) {
  return new Promise((resolve) => {
    if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) return resolve();
    srv.proc.on('exit', (c, s) => resolve(c ?? s));
    srv.proc.kill(sig);
  });
}

const authOf = (key) => 'Basic ' + Buffer.from(`${key}:`).toString('base64');
async function post(srv, key, batch) {
  const res = await fetch(`${srv.url}/v1/batch`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: authOf(key) },
    body: JSON.stringify({ batch }), signal: AbortSignal.timeout(20000) });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.text() };
}
const mkBatch = (tag, n) => Array.from({ length: n }, (_, i) => ({
  type: 'track', event: 'Clicked', messageId: `${tag}-${i}`, anonymousId: `a${i % 7}`,
  properties: { pad: 'x'.repeat(120), i }, timestamp: new Date(1764000000000 + i).toISOString() }));

async function metrics(srv) {
  const text = await (await fetch(`${srv.url}/metrics`)).text();
  const m = {};
  for (const line of text.split('\n'))
    if (line && !line.startsWith('#')) {
      const i = line.lastIndexOf(' ');
      m[line.slice(0, i)] = Number(line.slice(i + 1));
    }
  return m;
}
const perShard = (m, name) => Object.entries(m).filter(([k]) => k.startsWith(`${name}{shard=`))
  .map(([, v]) => v);
const rssMiB = (pid) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
};

// messageId -> count, of one tenant of a data directory.
async function scanIds(dir, tenant) {
  const s = await run(esctl, ['scan', '--data', dir, '--tenant', tenant]);
  assert.equal(s.code, 0, s.err);
  const counts = new Map();
  for (const line of s.out.split('\n').filter(Boolean)) {
    const id = JSON.parse(line).messageId;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

async function main() {
  // a tenant in tier s3 on a server that ships no WAL: refused at start
  const bad = path.join(scratch, 'bad');
  fs.mkdirSync(bad);
  fs.writeFileSync(path.join(bad, 'keys.json'),
                   JSON.stringify({ 'key-acme': { tenant: 'acme', durability: 's3' } }));
  const rb = await run(ingestd, ['--data', path.join(bad, 'data'), '--listen', '127.0.0.1:0',
    '--keys', path.join(bad, 'keys.json'), '--replica', `s3://${BUCKET}/bad`,
    '--s3-endpoint', `http://127.0.0.1:${proxy.port}`]);
  assert.equal(rb.code, 2, rb.err);
  assert.match(rb.err, /"durability": "s3", which needs the WAL shipped/);
  const dir = path.join(scratch, 'srv');
  const srv = await startIngestd(dir);
  const acked = { acme: new Set(), beta: new Set() };
  const ack = (t, batch) => batch.forEach((e) => acked[t].add(e.messageId));
  // 1. tiers per tenant, S3 up
  for (const [t, key] of [['acme', 'key-acme'], ['beta', 'key-beta']]) {
    const b = mkBatch(`${t}-up`, 20);
    const r = await post(srv, key, b);
    assert.equal(r.status, 200, r.body);
    ack(t, b);
  }
  const m0 = await metrics(srv);
  assert.ok(m0.es_walship_waits_total >= 1, 'the tier-s3 tenant waited for its chunk');
  assert.ok(m0.es_walship_chunks_total >= 1, 'chunks put');
  assert.equal(m0.es_walship_window_bytes, 1 << 20);
  await s3rver.close(); // S3 is down
  const rA = await post(srv, 'key-acme', mkBatch('acme-down', 20));
  assert.equal(rA.status, 503, `tier-s3 tenant during the outage: ${rA.status} ${rA.body}`);
  assert.ok(Number(rA.retryAfter) >= 1, `Retry-After: ${rA.retryAfter}`);
  const t0 = Date.now();
  const bB = mkBatch('beta-down', 20);
  const rB = await post(srv, 'key-beta', bB);
  assert.equal(rB.status, 200, `tier-local tenant during the outage: ${rB.body}`);
  ack('beta', bB);
  const localMs = Date.now() - t0;
  assert.ok(localMs < 1000, `the tier-local tenant waited ${localMs} ms`);
  // 2. the outage under load
  const rss0 = rssMiB(srv.proc.pid);
  let rssMax = rss0, pendMax = 0, heldMax = 0, spilledMax = 0, requests = 0;
  const until = Date.now() + 8000;
  const client = async (c) => {
    for (let k = 0; Date.now() < until; k++) {
      const b = mkBatch(`beta-c${c}-${k}`, 100);
      const r = await post(srv, 'key-beta', b);
      assert.equal(r.status, 200, `during the outage, tier local: ${r.status} ${r.body}`);
      ack('beta', b);
      requests++;
    }
  };
  const sampler = (async () => {
    while (Date.now() < until) {
      rssMax = Math.max(rssMax, rssMiB(srv.proc.pid));
      const m = await metrics(srv);
      pendMax = Math.max(pendMax, ...perShard(m, 'es_walship_pending_bytes'));
      heldMax = Math.max(heldMax, m.es_walship_held_wal_bytes);
      spilledMax = Math.max(spilledMax, m.es_walship_spilled_shards);
      await sleep(200);
    }
  })();
  await Promise.all([...Array.from({ length: 8 }, (_, c) => client(c)), sampler]);
  const m1 = await metrics(srv);
  assert.ok(m1.es_walship_put_errors_total > 0, 'PUTs failed during the outage');
  assert.ok(spilledMax >= 1, 'a shard spilled past its window');
  assert.ok(heldMax > 0, 'WAL files held on disk past their reclaim for the shipper');
  assert.ok(pendMax <= (1 << 20) + (1 << 20), `in memory per shard: ${pendMax} bytes`);
  assert.ok(rssMax < 1024, `RSS ${rssMax} MiB`);
  // 3. S3 back: the backlog drains
  await startS3rver(s3port);
  const t1 = Date.now();
  let m2;
  for (let k = 0; k < 600; k++) {
    m2 = await metrics(srv);
    if (perShard(m2, 'es_walship_lag_lsn').every((x) => x === 0) &&
        m2.es_walship_held_wal_bytes === 0 && m2.es_walship_spilled_shards === 0) break;
    await sleep(100);
  }
  const drainMs = Date.now() - t1;
  assert.deepEqual(perShard(m2, 'es_walship_lag_lsn').filter((x) => x !== 0), [], 'drained');
  assert.equal(m2.es_walship_held_wal_bytes, 0);
  assert.ok(m2.es_walship_reread_bytes_total > 0, 'frames read back from the WAL files');
  assert.equal(m2.es_walship_read_errors_total, 0);
  // the tier-s3 tenant is answered 200 again
  const bA = mkBatch('acme-after', 20);
  let r;
  for (let k = 0; k < 50; k++) {
    r = await post(srv, 'key-acme', bA);
    if (r.status === 200) break;
    await sleep(200);
  }
  assert.equal(r.status, 200, r.body);
  ack('acme', bA);
  // a reload moves beta to tier s3: its requests now wait for their chunk
  fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({
    'key-acme': { tenant: 'acme', durability: 's3' },
    'key-beta': { tenant: 'beta', durability: 's3' } }));
  srv.proc.kill('SIGHUP');
  let waited = false;
  for (let k = 0; k < 50 && !waited; k++) {
    await sleep(100);
    const w0 = (await metrics(srv)).es_walship_waits_total;
    const b = mkBatch(`beta-s3-${k}`, 10);
    assert.equal((await post(srv, 'key-beta', b)).status, 200);
    ack('beta', b);
    waited = (await metrics(srv)).es_walship_waits_total > w0;
  }
  assert.ok(waited, 'after the reload, beta waits for S3 (tier s3)');
  const rssEnd = rssMiB(srv.proc.pid);
  assert.equal(await kill(srv, 'SIGTERM'), 0, srv.log());
  // restore equals the live store
  const restored = path.join(scratch, 'restored');
  const rr = await run(esctl, ['restore', '--from', `s3://${BUCKET}/p`, '--data', restored,
                               '--s3-endpoint', `http://127.0.0.1:${proxy.port}`], 120000);
  assert.equal(rr.code, 0, `esctl restore: ${rr.err}`);
  let total = 0;
  for (const t of ['acme', 'beta']) {
    const live = await scanIds(path.join(dir, 'data'), t);
    const back = await scanIds(restored, t);
    assert.deepEqual([...back.entries()].sort(), [...live.entries()].sort(),
                     `${t}: the restore equals the live store`);
    for (const id of acked[t])
      assert.equal(back.get(id), 1, `acknowledged ${id} restored ${back.get(id) ?? 0} times`);
    total += back.size;
  }
  console.log(`backlog.test: ok (tier s3 tenant 503 and tier local tenant 200 in ${localMs} ms ` +
              `with S3 down; outage under load: ${requests} requests of 100 events all 200, ` +
              `RSS ${rss0.toFixed(0)} MiB before, ${rssMax.toFixed(0)} MiB at most, ` +
              `${rssEnd.toFixed(0)} MiB after; in memory at most ${pendMax} bytes per shard, ` +
              `WAL held on disk at most ${heldMax} bytes; drained in ${drainMs} ms, ` +
              `${m2.es_walship_reread_bytes_total} bytes read back; restore = live store, ` +
              `${total} events)`);
}

let failed = false;
try {
  await startS3rver();
  proxy = await proxy_.startProxy('backlog.test', proxyPy, s3port, ACCESS, SECRET, REGION);
  await main();
} catch (e) {
  console.error('backlog.test: FAILED:', e);
  failed = true;
} finally {
  for (const p of procs) p.kill('SIGKILL');
  if (proxy) proxy.proc.kill();
  if (s3rver) await s3rver.close().catch(() => {});
  fs.rmSync(scratch, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
