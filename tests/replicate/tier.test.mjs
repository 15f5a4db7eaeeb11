// Durability tier s3 against real parts on loopback: s3rver (npm) behind
// sigv4_proxy.py (botocore checks every signature), es-ingestd
// --durability s3, the real @segment/analytics-node SDK, esctl restore.
//
//   node tier.test.mjs ES_INGESTD ESCTL SIGV4_PROXY_PY
//
// 1. Outage: with s3rver stopped, every request is answered 503 with
//    Retry-After (never a 200), and a second es-ingestd stops on SIGTERM
//    in seconds (es_close cancels the PUT it is retrying); s3rver back on
//    its port, the same batches
//    retried are answered 200; esctl restore from S3 (the data directory
//    deleted) holds each of them exactly once.
//    /metrics carries the shipper's series throughout: chunks put and
//    requests that waited before, failing shards and 503s during,
//    retries after, and every shard's lag back to 0.
// 2. Restart during upload, then node loss: the SDK sends a stream of
//    events; es-ingestd is SIGKILLed mid-stream (PUTs under way),
//    restarted on the same directory and port, SIGKILLed again, and its
//    data directory deleted; esctl restore into a new directory holds
//    every event the SDK saw acknowledged (its callbacks) exactly once,
//    and nothing that was never sent.
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
let S3rver, Analytics;
try {
  S3rver = require('s3rver');
  ({ Analytics } = require('@segment/analytics-node'));
} catch (e) {
  console.error('tier.test: npm packages missing (run scripts/npm-deps.sh):', e.message);
  process.exit(1);
}

const ACCESS = 'S3RVER', SECRET = 'S3RVER', REGION = 'eu-west-3';
const BUCKET = 'es-tier';
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'es-tier-'));
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

// es-ingestd in tier s3; resolves with { proc, port, url }.
function startIngestd(dir, prefix, port = 0, extra = []) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({ 'key-acme': 'acme' }));
  const proc = spawn(ingestd, ['--data', path.join(dir, 'data'), '--listen', `127.0.0.1:${port}`,
    '--keys', path.join(dir, 'keys.json'), '--replica', `s3://${BUCKET}/${prefix}`,
    '--s3-endpoint', `http://127.0.0.1:${proxy.port}`, '--s3-region', REGION,
    '--durability', 's3', '--s3-ack-timeout-ms', '1500', ...extra],
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

async function restoreIds(prefix, dir) {
  const r = await run(esctl, ['restore', '--from', `s3://${BUCKET}/${prefix}`, '--data', dir,
                              '--s3-endpoint', `http://127.0.0.1:${proxy.port}`]);
  assert.equal(r.code, 0, `esctl restore: ${r.err}`);
  assert.match(r.out, /verify ok/);
  const s = await run(esctl, ['scan', '--data', dir, '--tenant', 'acme']);
  assert.equal(s.code, 0, s.err);
  const counts = new Map();
  for (const line of s.out.split('\n').filter(Boolean)) {
    const id = JSON.parse(line).messageId;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

const auth = 'Basic ' + Buffer.from('key-acme:').toString('base64');
async function post(srv, batch) {
  const res = await fetch(`${srv.url}/v1/batch`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: auth },
    body: JSON.stringify({ batch }), signal: AbortSignal.timeout(10000) });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.text() };
}
const mkBatch = (tag, n) => Array.from({ length: n }, (_, i) => ({
  type: 'track', event: 'Clicked', messageId: `${tag}-${i}`, anonymousId: `a${i % 7}`,
  timestamp: new Date(1764000000000 + i).toISOString() }));

// es-ingestd's /metrics as { "name{labels}": value }.
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

// 1. Outage in tier s3.
async function outageCase() {
  const dir = path.join(scratch, 'outage');
  let srv = await startIngestd(dir, 'outage');
  const other = await startIngestd(path.join(scratch, 'closing'), 'closing', 0,
                                   ['--drain-timeout-ms', '1000']);
  assert.equal((await post(other, mkBatch('c', 5))).status, 200);
  const acked = new Set();
  for (let b = 0; b < 5; b++) {
    const r = await post(srv, mkBatch(`ok${b}`, 20));
    assert.equal(r.status, 200, r.body);
    mkBatch(`ok${b}`, 20).forEach((e) => acked.add(e.messageId));
  }
  const m0 = await metrics(srv);
  assert.ok(m0.es_walship_chunks_total >= 1 && m0.es_walship_bytes_total > 0, 'chunks put');
  assert.ok(m0.es_walship_waits_total >= 5, `waits: ${m0.es_walship_waits_total}`);
  assert.ok(m0.es_walship_put_requests_total >= m0.es_walship_chunks_total);
  assert.equal(m0.es_walship_puts_inflight_max, 4);
  assert.equal(m0.es_walship_failing_shards, 0);
  assert.ok(perShard(m0, 'es_walship_state').length >= 1);
  assert.deepEqual(perShard(m0, 'es_walship_lag_lsn').filter((x) => x !== 0), []);
  await s3rver.close(); // S3 is down
  const down = [];
  const t0 = Date.now();
  for (let b = 0; b < 6; b++) {
    const r = await post(srv, mkBatch(`down${b}`, 20));
    down.push(r);
    assert.equal(r.status, 503, `during the outage: ${r.status} ${r.body}`);
    assert.ok(Number(r.retryAfter) >= 1, `Retry-After: ${r.retryAfter}`);
  }
  const outageMs = Date.now() - t0;
  // S3 down until a chunk PUT has failed past the client's own retries
  let m1 = await metrics(srv);
  for (let k = 0; k < 300 && !(m1.es_walship_put_errors_total > 0); k++) {
    await sleep(100);
    m1 = await metrics(srv);
  }
  assert.ok(m1.es_walship_put_errors_total > 0, 'PUT errors counted during the outage');
  assert.ok(m1.es_walship_refused_total + m1.es_walship_wait_failures_total >= 6,
            'the 503s counted');
  assert.ok(m1.es_walship_failing_shards >= 1, 'a shard failing');
  assert.ok(perShard(m1, 'es_walship_state').includes(1), 'es_walship_state 1');
  assert.ok(perShard(m1, 'es_walship_lag_lsn').some((x) => x > 0), 'a shard lags');
  assert.ok(perShard(m1, 'es_walship_pending_bytes').some((x) => x > 0), 'bytes held');
  assert.ok(perShard(m1, 'es_walship_oldest_unshipped_seconds').some((x) => x > 0),
            'an unshipped frame has an age');
  // SIGTERM with S3 down and a PUT retrying: es_close cancels it
  assert.equal((await post(other, mkBatch('c2', 5))).status, 503);
  const t1 = Date.now();
  const code = await kill(other, 'SIGTERM');
  const closeMs = Date.now() - t1;
  assert.equal(code, 0, `es-ingestd exit with S3 down: ${other.log()}`);
  assert.ok(closeMs < 8000, `SIGTERM with S3 down took ${closeMs} ms`);
  await startS3rver(s3port); // back, same port
  // the SDK's way: the same batches again until 200
  for (let b = 0; b < 6; b++) {
    let r;
    for (let k = 0; k < 100; k++) {
      r = await post(srv, mkBatch(`down${b}`, 20));
      if (r.status === 200) break;
      assert.equal(r.status, 503, r.body);
      await sleep(200);
    }
    assert.equal(r.status, 200, `after the outage: ${r.body}`);
    mkBatch(`down${b}`, 20).forEach((e) => acked.add(e.messageId));
  }
  const m2 = await metrics(srv);
  assert.ok(m2.es_walship_retries_total >= 1, 'failed chunks retried');
  assert.ok(m2.es_walship_chunks_total > m0.es_walship_chunks_total, 'chunks put after');
  assert.equal(m2.es_walship_failing_shards, 0);
  assert.deepEqual(perShard(m2, 'es_walship_state').filter((x) => x !== 0), []);
  assert.deepEqual(perShard(m2, 'es_walship_lag_lsn').filter((x) => x !== 0), []);
  assert.deepEqual(perShard(m2, 'es_walship_pending_bytes').filter((x) => x !== 0), []);
  await kill(srv, 'SIGKILL');
  fs.rmSync(path.join(dir, 'data'), { recursive: true, force: true }); // the disk is lost
  const counts = await restoreIds('outage', path.join(dir, 'restored'));
  for (const id of acked)
    assert.equal(counts.get(id), 1, `acknowledged ${id} restored ${counts.get(id) ?? 0} times`);
  assert.equal(counts.size, acked.size, 'nothing else restored');
  console.log(`tier.test: outage ok (6 requests answered 503 + Retry-After in ${outageMs} ms; ` +
              `metrics: ${m1.es_walship_put_errors_total} PUT errors, ` +
              `${m2.es_walship_retries_total} retries, ${m2.es_walship_chunks_total} chunks; ` +
              `SIGTERM with S3 down done in ${closeMs} ms, ` +
              `${acked.size} acknowledged events restored once each)`);
}

// 2. Restart during upload, then node loss, fed by analytics-node.
async function nodeLossCase() {
  const dir = path.join(scratch, 'nodeloss');
  const state = { srv: await startIngestd(dir, 'nodeloss') };
  const port = state.srv.port;
  const a = new Analytics({ writeKey: 'key-acme', host: state.srv.url, flushInterval: 20,
                            maxEventsInBatch: 20, maxRetries: 3, httpRequestTimeout: 3000 });
  const sent = new Set(), acked = new Set(), calls = [];
  let stop = false;
  const load = (async () => {
    for (let i = 0; !stop && i < 3000; i++) {
      const messageId = `sdk-${i}`;
      sent.add(messageId);
      calls.push(new Promise((resolve) => a.track(
        { userId: `u${i % 40}`, event: 'Load', messageId, properties: { i } },
        (err) => { if (!err) acked.add(messageId); resolve(); })));
      if (i % 10 === 0) await sleep(10);
    }
  })();
  await sleep(1000);
  await kill(state.srv, 'SIGKILL'); // restart during upload
  const ackedAtKill1 = acked.size;
  state.srv = await startIngestd(dir, 'nodeloss', port);
  await sleep(1200);
  await kill(state.srv, 'SIGKILL'); // the node is lost
  stop = true;
  await load;
  await Promise.all(calls); // failures come back after the SDK's retries
  fs.rmSync(path.join(dir, 'data'), { recursive: true, force: true });
  const counts = await restoreIds('nodeloss', path.join(dir, 'restored'));
  assert.ok(ackedAtKill1 > 0 && acked.size > ackedAtKill1,
            `events acknowledged before (${ackedAtKill1}) and after (${acked.size}) the restart`);
  for (const id of acked)
    assert.equal(counts.get(id), 1, `acknowledged ${id} restored ${counts.get(id) ?? 0} times`);
  for (const [id, n] of counts) {
    assert.ok(sent.has(id), `${id} restored but never sent`);
    assert.equal(n, 1, `${id} restored ${n} times`);
  }
  console.log(`tier.test: node loss ok (${sent.size} sent, ${acked.size} acknowledged, ` +
              `all restored once; ${counts.size - acked.size} unacknowledged ones also made it)`);
}

let failed = false;
try {
  await startS3rver();
  proxy = await proxy_.startProxy('tier.test', proxyPy, s3port, ACCESS, SECRET, REGION);
  await outageCase();
  await nodeLossCase();
  console.log('tier.test: ok');
} catch (e) {
  console.error('tier.test: FAILED:', e);
  failed = true;
} finally {
  for (const p of procs) p.kill('SIGKILL');
  if (proxy) proxy.proc.kill();
  if (s3rver) await s3rver.close().catch(() => {});
  fs.rmSync(scratch, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
