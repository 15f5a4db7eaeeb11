// The S3 client of lib/replicate/s3.c against real parts on loopback:
// s3rver (npm) as the S3 server, behind sigv4_proxy.py, which checks every
// request's SigV4 signature with botocore's signer and answers 403 on a
// mismatch; @aws-sdk/client-s3 as an independent client that reads back
// what the C client wrote.
//
//   node s3.test.mjs S3_DRIVER SIGV4_PROXY_PY
//
// Ports are picked free on 127.0.0.1; servers and the scratch directory
// are removed at the end.  Exits non-zero on the first failed check.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as proxy_ from './proxy.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, 'package.json'));
const [driver, proxyPy] = process.argv.slice(2);
let S3rver, S3;
try {
  S3rver = require('s3rver');
  S3 = require('@aws-sdk/client-s3');
} catch (e) {
  console.error('s3.test: npm packages missing (run scripts/npm-deps.sh):',
                e.message);
  process.exit(1);
}

// s3rver knows one key pair (it checks the key id, not v4 signatures).
const ACCESS = 'S3RVER';
const SECRET = 'S3RVER';
const REGION = 'eu-west-3';
const BUCKET = 'es-replica';
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'es-s3-'));
let s3rver, proxy;

// The content s3_driver.c writes for a key of n bytes.
function content(key, n) {
  const k = Buffer.from(key, 'utf8');
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (k[i % k.length] + Math.floor(i / k.length) % 7) & 0xff;
  return b;
}

const startProxy = (upstreamPort) =>
  proxy_.startProxy('s3.test', proxyPy, upstreamPort, ACCESS, SECRET, REGION);
const control = proxy_.control;

// Asynchronous: s3rver runs in this process and must keep answering.
function runDriver(mode, env = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(driver, [mode, BUCKET], {
      env: {
        ...process.env,
        AWS_ACCESS_KEY_ID: ACCESS,
        AWS_SECRET_ACCESS_KEY: SECRET,
        AWS_REGION: REGION,
        AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${proxy.port}`,
        AWS_ENDPOINT_URL: 'http://127.0.0.1:1', // must lose to _S3
        AWS_SESSION_TOKEN: '',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), 90000);
    p.stdout.on('data', (d) => (out += d));
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`s3_driver ${mode} exited ${code} ${signal ?? ''}`));
      else resolve(JSON.parse(out));
    });
  });
}

function client(secret = SECRET) {
  return new S3.S3Client({
    region: REGION,
    endpoint: `http://127.0.0.1:${proxy.port}`,
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS, secretAccessKey: secret },
  });
}

async function main() {
  s3rver = new S3rver({
    address: '127.0.0.1', port: 0, silent: true,
    directory: path.join(scratch, 's3rver'),
    configureBuckets: [{ name: BUCKET }],
  });
  const { port: s3port } = await s3rver.run();
  proxy = await startProxy(s3port);

  // 1. The proxy itself: an independent signer (the AWS SDK) passes, a
  //    wrong secret and a body that does not match its hash are refused.
  const good = client();
  await good.send(new S3.PutObjectCommand({ Bucket: BUCKET, Key: 'probe/a b=c', Body: 'hi' }));
  const probe = await good.send(new S3.GetObjectCommand({ Bucket: BUCKET, Key: 'probe/a b=c' }));
  assert.equal(await probe.Body.transformToString(), 'hi');
  await assert.rejects(
    client('not-the-secret').send(new S3.PutObjectCommand({ Bucket: BUCKET, Key: 'probe/x', Body: 'x' })),
    (e) => e.$metadata?.httpStatusCode === 403);
  const tampered = await new Promise((resolve) => {
    // A request signed for one body, sent with another.
    const body = 'the real body';
    const req = http.request({
      host: '127.0.0.1', port: proxy.port, method: 'PUT', path: `/${BUCKET}/probe/t`,
      headers: {
        'x-amz-content-sha256': createHash('sha256').update('another body').digest('hex'),
        'x-amz-date': '20260101T000000Z',
        authorization: `AWS4-HMAC-SHA256 Credential=${ACCESS}/20260101/${REGION}/s3/aws4_request, ` +
          'SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=00',
        'content-length': body.length,
      },
    }, (res) => { res.resume(); resolve(res.statusCode); });
    req.end(body);
  });
  assert.equal(tampered, 403);
  const afterProbes = await control(proxy.port, 'GET', '/__stats');
  assert.equal(afterProbes.rejected, 2, 'the proxy refused both bad requests');

  // 1b. The gaps of curl's own SigV4 (7.88, Debian 12) that s3.c works
  //     around, shown with the curl tool (same libcurl): each is refused
  //     by the proxy as S3 would refuse it, and the worked-around form
  //     passes.  If a newer curl closes a gap, its line here fails: then
  //     the workaround in s3.c may go (docs/REPLICATION.md).
  const sha = (s) => createHash('sha256').update(s).digest('hex');
  const curl = async (args) => {
    const p = spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}',
      '--aws-sigv4', `aws:amz:${REGION}:s3`, '--user', `${ACCESS}:${SECRET}`, ...args]);
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    await new Promise((r) => p.on('close', r));
    return out;
  };
  const base = `http://127.0.0.1:${proxy.port}/${BUCKET}`;
  const putX = ['-X', 'PUT', '--data-binary', 'x', '-H', 'Content-Type: application/octet-stream'];
  assert.equal(await curl([...putX, '-H', `x-amz-content-sha256: ${sha('x')}`, `${base}/gap/a%3Db`]), '200');
  assert.equal(await curl([...putX, '-H', `x-amz-content-sha256: ${sha('x')}`, `${base}/gap/a=b`]), '403',
               'raw "=" in the path: signed as sent, S3 signs %3D');
  assert.equal(await curl([...putX, `${base}/gap/c`]), '403', 'no x-amz-content-sha256 of its own');
  assert.equal(await curl(['-H', `x-amz-content-sha256: ${sha('')}`, `${base}?prefix=gap&list-type=2`]), '403',
               'query signed unsorted');
  assert.equal(await curl(['-H', `x-amz-content-sha256: ${sha('')}`, `${base}?list-type=2&prefix=gap`]), '200');
  assert.equal(await curl(['-H', `x-amz-content-sha256: ${sha('')}`, '-H', 'Accept:', `${base}?list-type=2`]), '403',
               'a removed header is signed although not sent');

  // 2. Every operation of the C client, through the checking proxy.
  const before = await control(proxy.port, 'GET', '/__stats');
  const res = await runDriver('all');
  const after = await control(proxy.port, 'GET', '/__stats');
  assert.equal(after.rejected, before.rejected, 'no request of the C client was refused');
  console.log('s3.test: conditional puts on s3rver:', JSON.stringify(res.conditional));
  // s3rver ignores If-None-Match and If-Match on PUT (it only honours
  // If-None-Match on GET): both conditional puts that should fail pass.
  // The semantics are tested on the in-memory store (test_objmem.c).
  assert.equal(res.conditional.create_new, 'ok');
  assert.equal(res.conditional.if_match_current, 'ok');

  // 3. The independent reader: every object the driver left is listed by
  //    the SDK with the same size and reads back byte for byte.
  const listedBySdk = [];
  let token;
  do {
    const page = await good.send(new S3.ListObjectsV2Command({
      Bucket: BUCKET, Prefix: 'tenant.a-b_c/', MaxKeys: 4, ContinuationToken: token,
    }));
    for (const o of page.Contents ?? []) listedBySdk.push({ key: o.Key, size: o.Size });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  assert.deepEqual(listedBySdk, res.objects, 'the SDK lists what the C client listed');
  const expectKeys = [
    'tenant.a-b_c/seg/0001 with space.seg', 'tenant.a-b_c/k=v+w&x;y,z.seg',
    'tenant.a-b_c/ünïcødé/☺.seg', 'tenant.a-b_c/percent%20literal~tilde',
    'tenant.a-b_c/star*(paren)!\'quote".seg', 'tenant.a-b_c/empty',
    'tenant.a-b_c/big object=1.seg', 'tenant.a-b_c/many/07=x',
  ];
  for (const k of expectKeys) {
    assert.ok(res.objects.some((o) => o.key === k), `object ${k} is there`);
  }
  assert.ok(!res.objects.some((o) => o.key === 'tenant.a-b_c/gone'), 'deleted object is gone');
  for (const o of res.objects) {
    if (o.key === 'tenant.a-b_c/cond') continue; // written with literal values
    const got = await good.send(new S3.GetObjectCommand({ Bucket: BUCKET, Key: o.key }));
    const bytes = Buffer.from(await got.Body.transformToByteArray());
    assert.equal(bytes.length, o.size, o.key);
    assert.ok(bytes.equals(content(o.key, o.size)), `content of ${o.key}`);
  }
  // s3rver's etag of a multipart object is a plain MD5, so the proxy
  // counts the multipart requests: one upload, 3 parts of 5 MiB, 1 complete.
  assert.equal(after.uploads - before.uploads, 1, 'one multipart upload');
  assert.equal(after.parts - before.parts, 3, 'in 3 parts');
  assert.equal(after.completes - before.completes, 1, 'completed once');

  // 4. Retries: a 503 SlowDown, then a dropped connection (after the proxy
  //    forwarded the put: it took effect, the client could not know).
  for (const kind of ['503', 'drop']) {
    await control(proxy.port, 'POST', '/__fault', { k: 1, kind, count: 2 });
    const s0 = await control(proxy.port, 'GET', '/__stats');
    const r = await runDriver('retry');
    const s1 = await control(proxy.port, 'GET', '/__stats');
    assert.deepEqual(r, { put: 0, get: 0, value: 'retried' }, `retry after ${kind}`);
    assert.equal(s1.faults - s0.faults, 2, `two ${kind} faults were injected`);
    assert.equal(s1.requests - s0.requests, 4, 'put and get, each after two failures');
  }
  // More failures than attempts: ES_EUNAVAIL (-16), transient, after 4 tries.
  await control(proxy.port, 'POST', '/__fault', { k: 1, kind: '503', count: 4 });
  const s2 = await control(proxy.port, 'GET', '/__stats');
  const exhausted = await runDriver('retry');
  const s3 = await control(proxy.port, 'GET', '/__stats');
  assert.equal(exhausted.put, -16, 'put gives up with ES_EUNAVAIL');
  assert.equal(exhausted.get, 0);
  assert.equal(s3.requests - s2.requests, 5, '4 attempts of the put, 1 get');

  // 5. A refused signature is permanent: one attempt, ES_EREMOTE (-17).
  const s4 = await control(proxy.port, 'GET', '/__stats');
  assert.deepEqual(await runDriver('badcreds'), { put: -17 });
  const s5 = await control(proxy.port, 'GET', '/__stats');
  assert.equal(s5.requests - s4.requests, 1, 'a 403 is not retried');
  console.log('s3.test: ok');
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error('s3.test: FAILED:', e);
} finally {
  if (proxy) proxy.proc.kill();
  if (s3rver) await s3rver.close().catch(() => {});
  fs.rmSync(scratch, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
