// es-bench replicate: the replication figures against s3rver on loopback
// (bench/replica.c says what is measured; docs/BENCHMARKS.md has the
// figures).  Usage (es-bench replicate runs it):
//   node run.mjs --es-bench PATH --ingestd PATH --dir D --events N
//                --runs R [--quick] [--json]
// Environment: ES_BENCH_S3_LATENCY_MS=N puts a proxy in front of s3rver
// that holds every request N ms before passing it on (real S3's small-PUT
// latency is 100-200 ms; s3rver on loopback answers in a few ms);
// ES_BENCH_REPLICATE_HTTP_ONLY=1 measures the HTTP ingest part only.
// Every figure is the median of R runs; each pair (ours, the peer's) is
// measured in the same run, one after the other, against the same server.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, 'package.json'));
let S3rver, S3;
try {
  S3rver = require('s3rver');
  S3 = require('@aws-sdk/client-s3');
} catch (e) {
  console.error(`es-bench replicate: npm packages missing (npm ci in ${here}, or ` +
                `scripts/npm-deps.sh): ${e.message}`);
  process.exit(1);
}

const opt = {};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (['--es-bench', '--ingestd', '--dir', '--events', '--runs'].includes(a))
    opt[a.slice(2)] = process.argv[++i];
  else opt[a.slice(2)] = true;
}
const RUNS = Number(opt.runs ?? 3), EVENTS = Number(opt.events ?? 1000000);
const LATENCY_MS = Number(process.env.ES_BENCH_S3_LATENCY_MS || 0);
const HTTP_ONLY = process.env.ES_BENCH_REPLICATE_HTTP_ONLY === '1';
const HTTP_S = opt.quick ? 3 : 10, CONNS = 16, BATCH = 100;
const SEQ = opt.quick || LATENCY_MS > 0 ? 50 : 300;
// Tiers of the HTTP part: tier s3 with one chunk PUT in flight per shard
// (as before pipelining) and with the default 4.
const TIERS = [['local', ['--durability', 'local']],
               ['s3-1', ['--durability', 's3', '--s3-puts-inflight', '1']],
               ['s3', ['--durability', 's3']]];
const ACCESS = 'S3RVER', SECRET = 'S3RVER', REGION = 'us-east-1', BUCKET = 'bench';
fs.mkdirSync(opt.dir, { recursive: true });
const scratch = fs.mkdtempSync(path.join(path.resolve(opt.dir), 'replicate-'));
const env = { ...process.env, AWS_ACCESS_KEY_ID: ACCESS, AWS_SECRET_ACCESS_KEY: SECRET,
              AWS_REGION: REGION, AWS_SESSION_TOKEN: '' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(s.length * p))]; };

function run(prog, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(prog, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => code === 0 ? resolve(JSON.parse(out))
                                       : reject(new Error(`${prog} ${args.join(' ')}: ${err}`)));
  });
}

const s3rver = new S3rver({ address: '127.0.0.1', port: 0, silent: true,
                            directory: path.join(scratch, 's3rver'),
                            configureBuckets: [{ name: BUCKET }] });
const { port } = await s3rver.run();
let ep = `http://127.0.0.1:${port}`;
let delay = null;
if (LATENCY_MS > 0) {
  // every request held LATENCY_MS, then passed on as received
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  delay = http.createServer((req, res) => {
    req.pause();
    setTimeout(() => {
      const up = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url,
                                headers: req.headers, agent }, (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
      req.resume();
    }, LATENCY_MS);
  });
  await new Promise((r) => delay.listen(0, '127.0.0.1', r));
  ep = `http://127.0.0.1:${delay.address().port}`;
}
const sdk = new S3.S3Client({ region: REGION, endpoint: ep, forcePathStyle: true,
                              credentials: { accessKeyId: ACCESS, secretAccessKey: SECRET } });

function files(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(seg|rlp)$/.test(e.name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

const res = { events: EVENTS, runs: RUNS, upload: [], sdk_put: [], restore: [], sdk_get: [],
              http: { local: [], 's3-1': [], s3: [] },
              ack: { local: [], 's3-1': [], s3: [] } };
const data = path.join(scratch, 'store');
if (!HTTP_ONLY)
  await run(opt['es-bench'], ['_replica', 'load', data, String(EVENTS)]);
const segFiles = HTTP_ONLY ? [] : files(data);
const segBytes = segFiles.filter((f) => f.endsWith('.seg'))
  .reduce((n, f) => n + fs.statSync(f).size, 0);
const allBytes = segFiles.reduce((n, f) => n + fs.statSync(f).size, 0);

for (let r = 0; r < RUNS; r++) {
  if (!HTTP_ONLY) {
  // 1. upload: the replicator, then the SDK, the same files.
  const copy = path.join(scratch, `store-${r}`);
  fs.cpSync(data, copy, { recursive: true });
  const up = await run(opt['es-bench'], ['_replica', 'upload', copy, `s3://${BUCKET}/es-${r}`, ep]);
  res.upload.push(up.bytes / up.us);
  let t0 = process.hrtime.bigint();
  for (const f of segFiles)
    await sdk.send(new S3.PutObjectCommand({ Bucket: BUCKET, Key: `sdk-${r}/${path.basename(f)}`,
                                             Body: fs.readFileSync(f) }));
  res.sdk_put.push(allBytes / (Number(process.hrtime.bigint() - t0) / 1000));
  // 2. restore against the SDK's GETs of the same segment objects.
  const rs = await run(opt['es-bench'], ['_replica', 'restore', `s3://${BUCKET}/es-${r}`, ep,
                                         path.join(scratch, `restored-${r}`)]);
  res.restore.push(segBytes / rs.us);
  t0 = process.hrtime.bigint();
  for (const f of segFiles.filter((x) => x.endsWith('.seg'))) {
    const o = await sdk.send(new S3.GetObjectCommand({ Bucket: BUCKET, Key: `sdk-${r}/${path.basename(f)}` }));
    await o.Body.transformToByteArray();
  }
  res.sdk_get.push(segBytes / (Number(process.hrtime.bigint() - t0) / 1000));
  fs.rmSync(copy, { recursive: true, force: true });
  fs.rmSync(path.join(scratch, `restored-${r}`), { recursive: true, force: true });
  }

  // 3. HTTP ingest, tier local then tier s3 (one, then 4 PUTs in flight
  // per shard), same load.
  for (const [tier, tierArgs] of TIERS) {
    const d = path.join(scratch, `http-${tier}-${r}`);
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'keys.json'), JSON.stringify({ k: 'acme' }));
    const proc = spawn(opt.ingestd, ['--data', path.join(d, 'data'), '--listen', '127.0.0.1:0',
      '--keys', path.join(d, 'keys.json'), '--replica', `s3://${BUCKET}/http-${tier}-${r}`,
      '--s3-endpoint', ep, ...tierArgs], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    const hport = await new Promise((resolve, reject) => {
      proc.stderr.on('data', (x) => {
        log += x;
        const m = /"msg":"listening".*"port":(\d+)/.exec(log);
        if (m) resolve(Number(m[1]));
      });
      proc.on('exit', (c) => reject(new Error(`es-ingestd exited ${c}: ${log}`)));
    });
    const url = `http://127.0.0.1:${hport}/v1/batch`;
    const auth = 'Basic ' + Buffer.from('k:').toString('base64');
    let seq = 0;
    const body = () => JSON.stringify({ batch: Array.from({ length: BATCH }, (_, i) => ({
      type: 'track', event: 'Clicked', anonymousId: `a${i % 13}`, messageId: `${tier}-${r}-${seq}-${i}`,
      properties: { i, r: Math.random().toString(36) } })) }) + (seq++, '');
    const post = async () => {
      const t = process.hrtime.bigint();
      const x = await fetch(url, { method: 'POST', body: body(),
        headers: { Authorization: auth, 'Content-Type': 'application/json' } });
      await x.text();
      if (x.status !== 200) throw new Error(`tier ${tier}: HTTP ${x.status}`);
      return Number(process.hrtime.bigint() - t) / 1000;
    };
    // one client, one request at a time: the ack latency
    const lat = [];
    for (let i = 0; i < SEQ; i++) lat.push(await post());
    res.ack[tier].push({ p50_us: median(lat), p99_us: pct(lat, 0.99) });
    // CONNS clients for HTTP_S seconds: the throughput
    let done = 0;
    const until = Date.now() + HTTP_S * 1000;
    const t1 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: CONNS }, async () => {
      while (Date.now() < until) { await post(); done++; }
    }));
    res.http[tier].push(done * BATCH / (Number(process.hrtime.bigint() - t1) / 1e9));
    await new Promise((resolve) => { proc.on('exit', resolve); proc.kill('SIGTERM'); });
    fs.rmSync(d, { recursive: true, force: true });
  }
}

const m = (xs) => median(xs);
const out = {
  events: EVENTS, runs: RUNS, store_bytes: allBytes, segment_bytes: segBytes,
  upload_mb_s: m(res.upload), sdk_put_mb_s: m(res.sdk_put),
  upload_ratio: m(res.upload) / m(res.sdk_put),
  restore_mb_s: m(res.restore), sdk_get_mb_s: m(res.sdk_get),
  restore_ratio: m(res.restore) / m(res.sdk_get),
  s3_latency_ms: LATENCY_MS,
  http_local_events_s: m(res.http.local), http_s3_events_s: m(res.http.s3),
  http_ratio_s3_local: m(res.http.s3) / m(res.http.local),
  http_s3_1_events_s: m(res.http['s3-1']),
  http_ratio_s3_1_local: m(res.http['s3-1']) / m(res.http.local),
  ack_s3_1_p50_us: m(res.ack['s3-1'].map((x) => x.p50_us)),
  ack_local_p50_us: m(res.ack.local.map((x) => x.p50_us)),
  ack_local_p99_us: m(res.ack.local.map((x) => x.p99_us)),
  ack_s3_p50_us: m(res.ack.s3.map((x) => x.p50_us)),
  ack_s3_p99_us: m(res.ack.s3.map((x) => x.p99_us)),
  raw: res,
};
if (delay) delay.close();
await s3rver.close();
fs.rmSync(scratch, { recursive: true, force: true });
if (opt.json) {
  console.log(JSON.stringify(out, null, 1));
} else {
  const f = (x, d = 1) => x.toFixed(d);
  console.log(`es-bench replicate: s3rver 3.7.1 on loopback (` +
              (LATENCY_MS ? `every request held ${LATENCY_MS} ms by a proxy` : 'no proxy') +
              `), ${EVENTS} events, ${f(allBytes / 1e6)} MB of segments and rollups, ` +
              `medians of ${RUNS} runs`);
  if (!HTTP_ONLY) {
  console.log(`  upload   replicator ${f(out.upload_mb_s)} MB/s   @aws-sdk/client-s3 PutObject ` +
              `${f(out.sdk_put_mb_s)} MB/s   ratio ${f(out.upload_ratio, 2)}`);
  console.log(`  restore  es_restore ${f(out.restore_mb_s)} MB/s of segments   SDK GetObject ` +
              `${f(out.sdk_get_mb_s)} MB/s   ratio ${f(out.restore_ratio, 2)} (goal >= 0.8)`);
  }
  console.log(`  HTTP ingest (${CONNS} clients, ${BATCH}-event batches, ${HTTP_S} s)  tier local ` +
              `${f(out.http_local_events_s, 0)} events/s   tier s3 ${f(out.http_s3_events_s, 0)} ` +
              `events/s   ratio ${f(out.http_ratio_s3_local, 2)} (goal >= 0.5)`);
  console.log(`  tier s3 with one PUT in flight per shard (--s3-puts-inflight 1) ` +
              `${f(out.http_s3_1_events_s, 0)} events/s   ratio ${f(out.http_ratio_s3_1_local, 2)}`);
  console.log(`  ack latency (one client)  tier local p50 ${f(out.ack_local_p50_us / 1000, 2)} ms ` +
              `p99 ${f(out.ack_local_p99_us / 1000, 2)} ms   tier s3 p50 ` +
              `${f(out.ack_s3_p50_us / 1000, 2)} ms p99 ${f(out.ack_s3_p99_us / 1000, 2)} ms   ` +
              `tier s3, 1 PUT p50 ${f(out.ack_s3_1_p50_us / 1000, 2)} ms`);
}
