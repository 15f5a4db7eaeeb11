// Replication and restore against real parts on loopback: s3rver (npm)
// behind sigv4_proxy.py (every request's SigV4 signature checked with
// botocore), a store replicating through the S3 client (replica_driver),
// `esctl restore`, and @aws-sdk/client-s3 as an independent reader.
//
//   node replica.test.mjs REPLICA_DRIVER ESCTL SIGV4_PROXY_PY [ES_INGESTD]
//
// 1. append + flush + compaction with a replica; esctl restore into a new
//    directory; every event of every tenant (esctl scan) equals the live
//    store's; the bucket holds one manifest per tenant, under the prefix.
// 2. outage: the proxy fails every request for two seconds while the store
//    ingests: every append succeeds quickly, the backlog drains after, and
//    a restore equals the live store again.
// 3. a flipped byte in s3rver's stored copy of a segment: esctl restore
//    exits 1 naming the object; a deleted one likewise.
// 4. es-ingestd --replica (tier local): events posted, /metrics shows the
//    replica, /readyz is 200, SIGTERM (flush + wait for the replica);
//    the data directory is deleted; esctl restore brings back every
//    acknowledged event.
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
const [driver, esctl, proxyPy, ingestd] = process.argv.slice(2);
let S3rver, S3;
try {
  S3rver = require('s3rver');
  S3 = require('@aws-sdk/client-s3');
} catch (e) {
  console.error('replica.test: npm packages missing (run scripts/npm-deps.sh):',
                e.message);
  process.exit(1);
}

const ACCESS = 'S3RVER';
const SECRET = 'S3RVER';
const REGION = 'eu-west-3';
const BUCKET = 'es-replica';
const PREFIX = 'prod/eu 1';  // a space: keys are URI-encoded when signed
const URL_ = `s3://${BUCKET}/${PREFIX}`;
const TENANTS = ['acme', 'Shop_2-x'];
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'es-replica-'));
let s3rver, proxy;

const startProxy = (upstreamPort) =>
  proxy_.startProxy('replica.test', proxyPy, upstreamPort, ACCESS, SECRET, REGION);
const control = proxy_.control;

const env = () => ({
  ...process.env,
  AWS_ACCESS_KEY_ID: ACCESS,
  AWS_SECRET_ACCESS_KEY: SECRET,
  AWS_REGION: REGION,
  AWS_SESSION_TOKEN: '',
});

// Runs a program without blocking this process (s3rver lives in it).
function run(prog, args, timeoutMs = 60000) {
  return new Promise((resolve) => {
    const p = spawn(prog, args, { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
  });
}

async function runDriver(mode, dir, n) {
  const r = await run(driver, [mode, dir, URL_, `http://127.0.0.1:${proxy.port}`, String(n)]);
  if (r.code !== 0) throw new Error(`replica_driver ${mode} exited ${r.code}: ${r.err}`);
  return JSON.parse(r.out);
}

async function restore(dir) {
  return run(esctl, ['restore', '--from', URL_, '--data', dir,
                     '--s3-endpoint', `http://127.0.0.1:${proxy.port}`]);
}

async function scan(dir, tenant) {
  const r = await run(esctl, ['scan', '--data', dir, '--tenant', tenant]);
  assert.equal(r.code, 0, `esctl scan ${dir}: ${r.err}`);
  return r.out;
}

async function sameEvents(live, restored, want) {
  for (const t of TENANTS) {
    const a = await scan(live, t), b = await scan(restored, t);
    const n = a.split('\n').filter(Boolean).length;
    assert.equal(n, want[t], `${t}: live store holds ${n} events`);
    assert.equal(b, a, `${t}: the restored events equal the live store's`);
  }
}

function findStored(dir, suffix) {
  const found = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(suffix)) found.push(p);
    }
  };
  walk(dir);
  return found;
}

async function main() {
  s3rver = new S3rver({
    address: '127.0.0.1', port: 0, silent: true,
    directory: path.join(scratch, 's3rver'),
    configureBuckets: [{ name: BUCKET }],
  });
  const { port: s3port } = await s3rver.run();
  proxy = await startProxy(s3port);
  const live = path.join(scratch, 'live');

  // 1. replicate, restore, compare.
  const st = await runDriver('load', live, 2000);
  assert.equal(st.backlog_objects, 0);
  assert.ok(st.uploaded_objects >= 7, `uploaded ${st.uploaded_objects} objects`);
  const r1 = await restore(path.join(scratch, 'r1'));
  assert.equal(r1.code, 0, `esctl restore: ${r1.err}`);
  assert.match(r1.out, /verify ok/);
  await sameEvents(live, path.join(scratch, 'r1'), { acme: 2000, 'Shop_2-x': 2000 });
  const sdk = new S3.S3Client({
    region: REGION, endpoint: `http://127.0.0.1:${proxy.port}`, forcePathStyle: true,
    credentials: { accessKeyId: ACCESS, secretAccessKey: SECRET },
  });
  const listed = await sdk.send(new S3.ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${PREFIX}/` }));
  const keys = listed.Contents.map((c) => c.Key);
  assert.ok(keys.includes(`${PREFIX}/ESDB`), 'ESDB under the prefix');
  for (const t of TENANTS) {
    const mans = keys.filter((k) => k.startsWith(`${PREFIX}/tenants/${t}/MANIFEST-`));
    assert.equal(mans.length, 1, `${t}: one manifest (older ones deleted): ${mans}`);
    const segs = keys.filter((k) => k.startsWith(`${PREFIX}/tenants/${t}/`) && k.endsWith('.seg'));
    assert.equal(segs.length, 1, `${t}: compacted into one segment: ${segs}`);
    const local = fs.readFileSync(path.join(live, 'tenants', t, path.basename(segs[0])));
    const obj = await sdk.send(new S3.GetObjectCommand({ Bucket: BUCKET, Key: segs[0] }));
    assert.ok(Buffer.from(await obj.Body.transformToByteArray()).equals(local),
              `${segs[0]}: the same bytes as the local file`);
  }
  console.log(`replica.test: load ok (${st.uploaded_objects} objects, ` +
              `${st.uploaded_bytes} bytes, ${st.requests} requests, ` +
              `${Math.round(st.request_us / Math.max(1, st.requests))} us each)`);

  // 2. outage under load in tier local: every append succeeds, the
  //    backlog drains once S3 is back.
  await control(proxy.port, 'POST', '/__fault', { k: 1, kind: '503', count: 1000000 });
  const outage = runDriver('outage', live, 3000);
  await new Promise((r) => setTimeout(r, 2500));
  const s0 = await control(proxy.port, 'GET', '/__stats');
  await control(proxy.port, 'POST', '/__fault', { k: 0 });
  const so = await outage;
  assert.ok(s0.faults > 0, 'the proxy failed requests during the outage');
  assert.ok(so.events > 0);
  assert.ok(so.slowest_append_us < 1000000, `slowest append ${so.slowest_append_us} us`);
  assert.equal(so.backlog_objects, 0, 'the backlog drained');
  const r2 = await restore(path.join(scratch, 'r2'));
  assert.equal(r2.code, 0, `esctl restore after the outage: ${r2.err}`);
  await sameEvents(live, path.join(scratch, 'r2'),
                   { acme: 2000 + so.events, 'Shop_2-x': 2000 + so.events });
  console.log(`replica.test: outage ok (${so.events} events per tenant appended during it, ` +
              `slowest append ${so.slowest_append_us} us, ${s0.faults} requests failed)`);

  // 3. a corrupted object is named.
  const stored = findStored(path.join(scratch, 's3rver'), '.seg._S3rver_object');
  assert.ok(stored.length > 0, 'found the stored segments');
  const victim = stored[0];
  const bytes = fs.readFileSync(victim);
  bytes[Math.floor(bytes.length / 3)] ^= 0x5a;
  fs.writeFileSync(victim, bytes);
  const segName = path.basename(victim).replace('._S3rver_object', '');
  const r3 = await restore(path.join(scratch, 'r3'));
  assert.equal(r3.code, 1, `restore of a corrupted replica exits 1: ${r3.err}`);
  assert.ok(r3.err.includes(segName) && /corrupt|checksum/i.test(r3.err),
            `the error names ${segName}: ${r3.err}`);
  // ... and a missing one too.
  fs.unlinkSync(victim);
  const r4 = await restore(path.join(scratch, 'r4'));
  assert.equal(r4.code, 1);
  assert.ok(r4.err.includes(segName) && /missing/.test(r4.err),
            `the error names the missing ${segName}: ${r4.err}`);
  console.log('replica.test: corrupted and missing objects named');

  if (ingestd) await ingestdCase();
}

// 4. es-ingestd with --replica: restore after the node's disk is gone.
async function ingestdCase() {
  const dir = path.join(scratch, 'ingestd');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({ 'key-acme': 'acme' }));
  const url = `s3://${BUCKET}/ingestd`;
  const proc = spawn(ingestd, ['--data', path.join(dir, 'data'), '--listen', '127.0.0.1:0',
    '--keys', path.join(dir, 'keys.json'), '--replica', url,
    '--s3-endpoint', `http://127.0.0.1:${proxy.port}`, '--s3-region', REGION,
    '--durability', 'local'], { env: env(), stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    proc.stderr.on('data', (d) => {
      log += d;
      const m = /"msg":"listening".*"port":(\d+)/.exec(log);
      if (m) resolve(Number(m[1]));
    });
    proc.on('exit', (code) => reject(new Error(`es-ingestd exited ${code}: ${log}`)));
  });
  const auth = 'Basic ' + Buffer.from('key-acme:').toString('base64');
  let acked = 0;
  for (let b = 0; b < 10; b++) {
    const batch = [];
    for (let i = 0; i < 50; i++)
      batch.push({ type: 'track', event: 'Clicked', messageId: `b${b}-${i}`,
                   anonymousId: `a${i % 9}`, timestamp: new Date(1764000000000 + b * 1000 + i).toISOString() });
    const res = await fetch(`http://127.0.0.1:${port}/v1/batch`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: auth },
      body: JSON.stringify({ batch }) });
    assert.equal(res.status, 200, await res.text());
    acked += batch.length;
  }
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  assert.match(metrics, /^es_replica_backlog_objects \d+$/m);
  assert.match(metrics, /^es_replica_oldest_unreplicated_seconds \d+$/m);
  assert.match(metrics, /^es_replica_requests_total \d+$/m);
  const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
  assert.equal(ready.status, 200, await ready.text());
  const code = await new Promise((resolve) => {
    proc.on('exit', (c, sig) => resolve(c ?? sig));
    proc.kill('SIGTERM');
  });
  assert.equal(code, 0, `es-ingestd exit: ${log}`);
  const live = await scan(path.join(dir, 'data'), 'acme');
  assert.equal(live.split('\n').filter(Boolean).length, acked);
  const insp = await run(esctl, ['inspect', '--data', path.join(dir, 'data')]);
  assert.equal(insp.code, 0, insp.err);
  assert.match(insp.out, /replica: manifest generation (\d+) of \1 \(up to date\), \d+ objects/,
               `esctl inspect shows the replica state: ${insp.out}`);
  fs.rmSync(path.join(dir, 'data'), { recursive: true, force: true }); // the disk is lost
  const r = await run(esctl, ['restore', '--from', url, '--data', path.join(dir, 'restored'),
                              '--s3-endpoint', `http://127.0.0.1:${proxy.port}`]);
  assert.equal(r.code, 0, `esctl restore: ${r.err}`);
  assert.equal(await scan(path.join(dir, 'restored'), 'acme'), live,
               'every acknowledged event is back');
  console.log(`replica.test: es-ingestd --replica: ${acked} acknowledged events restored`);
}

let failed = false;
try {
  await main();
  console.log('replica.test: ok');
} catch (e) {
  console.error('replica.test: FAILED:', e);
  failed = true;
} finally {
  if (proxy) proxy.proc.kill();
  if (s3rver) await s3rver.close().catch(() => {});
  fs.rmSync(scratch, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
