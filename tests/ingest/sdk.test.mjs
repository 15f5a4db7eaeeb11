// End to end with the real SDK clients from npm: @segment/analytics-node
// and @rudderstack/rudder-sdk-node post to a running es-ingestd; the
// stored events are read back with `esctl scan` after a clean SIGTERM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import * as h from './lib.mjs';

h.requireNodeModules();
const require = createRequire(import.meta.url);
const { Analytics } = require('@segment/analytics-node');
const Rudder = require('@rudderstack/rudder-sdk-node');

let dir;
let srv;

before(async () => {
  dir = h.scratchDir();
  srv = await h.startServer(dir);
});

after(() => h.removeDir(dir));

// Resolves when the SDK calls back for one event; rejects on its error.
function cb(resolve, reject) {
  return (err) => (err ? reject(err) : resolve());
}

test('analytics-node: every call type is acknowledged', async () => {
  const a = new Analytics({ writeKey: 'key-acme', host: srv.url,
                            flushInterval: 50, maxEventsInBatch: 10 });
  const sent = [];
  const call = (fn, params) => new Promise((resolve, reject) => {
    a[fn](params, cb(resolve, reject));
  });
  for (let i = 0; i < 25; i++)
    sent.push(call('track', { userId: `u${i % 5}`, event: 'Order Completed',
                              messageId: `seg-track-${i}`,
                              properties: { seq: i } }));
  sent.push(call('page', { anonymousId: 'anon-1', name: 'Pricing',
                           messageId: 'seg-page-1',
                           properties: { path: '/pricing', url: 'https://x.test/pricing' } }));
  sent.push(call('identify', { userId: 'u1', anonymousId: 'anon-1',
                               messageId: 'seg-identify-1', traits: { plan: 'pro' } }));
  sent.push(call('group', { userId: 'u1', groupId: 'g1', messageId: 'seg-group-1' }));
  sent.push(call('alias', { userId: 'u1', previousId: 'anon-1', messageId: 'seg-alias-1' }));
  sent.push(call('screen', { userId: 'u2', name: 'Home', messageId: 'seg-screen-1' }));
  await Promise.all(sent);
  await a.closeAndFlush();
});

test('rudder-sdk-node: gzip batches with Basic auth are acknowledged', async () => {
  const r = new Rudder('key-beta', { dataPlaneUrl: srv.url, flushAt: 7,
                                     flushInterval: 50, logLevel: 'error' });
  const sent = [];
  for (let i = 0; i < 20; i++)
    sent.push(new Promise((resolve, reject) => r.track(
      { userId: `r${i}`, event: 'Rudder Event', messageId: `rs-${i}`,
        properties: { i } }, cb(resolve, reject))));
  sent.push(new Promise((resolve, reject) => r.page(
    { anonymousId: 'ra', name: 'Docs', messageId: 'rs-page',
      properties: { path: '/docs' } }, cb(resolve, reject))));
  await Promise.all(sent);
  await r.flush();
});

test('a retried batch is answered 200 and stored once', async () => {
  const batch = { batch: [
    { type: 'track', userId: 'dup', event: 'Retry Me', messageId: 'retry-1' },
    { type: 'track', userId: 'dup', event: 'Retry Me', messageId: 'retry-2' }] };
  for (let i = 0; i < 3; i++) {
    const res = await h.post(srv, '/v1/batch', batch,
                             { Authorization: h.basic('key-gamma') });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { success: true });
  }
});

test('sentAt corrects the client clock; receivedAt is the server\'s', async () => {
  // The client's clock runs one hour ahead: its timestamp and sentAt
  // are both an hour late, so the stored timestamp is the real time
  // minus the 10 s between the event and the send.
  const now = Date.now();
  const skew = 3600e3;
  const res = await h.post(srv, '/v1/track', {
    writeKey: 'key-gamma', userId: 'skew', event: 'Skewed',
    messageId: 'skew-1',
    timestamp: new Date(now + skew - 10e3).toISOString(),
    sentAt: new Date(now + skew).toISOString(),
    receivedAt: '2001-01-01T00:00:00Z' });
  assert.equal(res.status, 200);
});

test('healthz, metrics and CORS preflight', async () => {
  const hz = await fetch(srv.url + '/healthz');
  assert.equal(hz.status, 200);
  assert.deepEqual(await hz.json(), { status: 'ok', store: 'ok', reason: 'ok' });
  const rz = await fetch(srv.url + '/readyz');
  assert.equal(rz.status, 200);
  assert.equal((await rz.json()).store, 'ok');
  const m = await (await fetch(srv.url + '/metrics')).text();
  assert.match(m, /^es_ingest_events_total\{status="stored"\} \d+$/m);
  assert.match(m, /^es_ingest_events_total\{status="duplicate"\} [1-9]\d*$/m);
  assert.match(m, /^es_ingest_commit_seconds_count [1-9]\d*$/m);
  assert.match(m, /^es_ingest_request_seconds_count [1-9]\d*$/m);
  assert.match(m, /^es_ingest_requests_total\{code="200"\} [1-9]\d*$/m);
  const pre = await fetch(srv.url + '/v1/t', { method: 'OPTIONS',
    headers: { Origin: 'https://shop.test', 'Access-Control-Request-Method': 'POST' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
});

test('SIGTERM exits 0 and everything acknowledged is stored once', async () => {
  assert.equal(await h.stopServer(srv), 0);
  const acme = h.scan(dir, 'acme');
  assert.equal(acme.length, 30);
  const ids = new Set(acme.map((e) => e.messageId));
  assert.equal(ids.size, 30);
  const tracks = acme.filter((e) => e.type === 'track');
  assert.equal(tracks.length, 25);
  assert.ok(tracks.every((e) => e.event === 'Order Completed'));
  assert.deepEqual(tracks.map((e) => e.properties.seq).sort((x, y) => x - y),
                   [...Array(25).keys()]);
  const page = acme.find((e) => e.messageId === 'seg-page-1');
  assert.equal(page.type, 'page');
  assert.equal(page.event, 'Pricing');
  assert.equal(page.context.page.path, '/pricing');
  assert.equal(acme.find((e) => e.messageId === 'seg-identify-1').properties.plan, 'pro');
  assert.equal(acme.find((e) => e.messageId === 'seg-alias-1').previousId, 'anon-1');
  assert.equal(acme.find((e) => e.messageId === 'seg-group-1').groupId, 'g1');
  assert.equal(acme.find((e) => e.messageId === 'seg-screen-1').type, 'screen');

  const beta = h.scan(dir, 'beta');
  assert.equal(beta.length, 21);
  assert.equal(new Set(beta.map((e) => e.messageId)).size, 21);
  assert.equal(beta.find((e) => e.messageId === 'rs-page').context.page.path, '/docs');

  const gamma = h.scan(dir, 'gamma');
  assert.deepEqual(gamma.map((e) => e.messageId).sort(), ['retry-1', 'retry-2', 'skew-1']);
  const skewed = gamma.find((e) => e.messageId === 'skew-1');
  const recv = Date.parse(skewed.receivedAt);
  const ts = Date.parse(skewed.timestamp);
  assert.ok(Math.abs(recv - Date.now()) < 60e3, 'receivedAt is the server time');
  assert.ok(Math.abs(recv - ts - 10e3) < 2e3, `timestamp corrected: ${recv - ts} ms before receipt`);
});

test('command line: --help, and one line and exit 2 on bad usage', () => {
  const help = spawnSync(h.INGESTD, ['--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /usage: es-ingestd --data DIR --listen HOST:PORT --keys FILE/);
  for (const args of [[], ['--data', 'd', '--listen', '127.0.0.1:1'],
                      ['--data', 'd', '--listen', '127.0.0.1:99999', '--keys', 'k'],
                      ['--threads', 'zero'], ['--bogus', '1']]) {
    const r = spawnSync(h.INGESTD, args, { encoding: 'utf8' });
    assert.equal(r.status, 2, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^es-ingestd: /);
  }
});
