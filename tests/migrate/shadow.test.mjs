// Shadow phase (docs/MIGRATION.md): the real @segment/analytics-node sends
// to Debian's nginx running deploy/nginx/segment-shadow.conf unchanged;
// nginx proxies to the stand-in legacy endpoint and mirrors every request
// to es-ingestd.  Both must end with the same messageIds; with es-ingestd
// killed, or refusing a request, the SDK still sees only legacy's 200s.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as h from './lib.mjs';

const { Analytics } = h.requireSdk();
let dir, legacy, srv, nginx;

before(async () => {
  dir = h.scratchDir(); // keys.json: key-acme, key-beta, key-gamma
  legacy = await new h.Legacy().up();
  srv = await h.startServer(dir, { args: ['--sync', 'none'] });
  nginx = await h.startNginx(path.join(dir, 'nginx'), 'segment-shadow.conf', {
    listenPort: await h.freePort(), legacyPort: legacy.port, ingestdPort: srv.port });
});

after(async () => {
  if (nginx) await h.stopProc(nginx.proc);
  if (srv) await h.stopProc(srv.proc, 'SIGKILL');
  if (legacy) await legacy.down();
  h.removeDir(dir);
});

// Sends n events of every kind through the SDK; resolves with the SDK's
// errors (its callbacks and its 'error' events) and the messageIds.
async function sendAll(writeKey, prefix, n) {
  const a = new Analytics({ writeKey, host: nginx.url, flushInterval: 20,
                            maxEventsInBatch: 15, maxRetries: 0 });
  const errors = [];
  a.on('error', (e) => errors.push(e));
  const ids = [];
  const calls = [];
  const call = (fn, params) => {
    ids.push(params.messageId);
    calls.push(new Promise((resolve) => a[fn](params, (err) => {
      if (err) errors.push(err);
      resolve();
    })));
  };
  for (let i = 0; i < n; i++) {
    call('track', { userId: `u${i % 7}`, event: 'Order Completed',
                    messageId: `${prefix}-t${i}`, properties: { i } });
    if (i % 5 === 0)
      call('page', { anonymousId: `a${i}`, name: 'Pricing', messageId: `${prefix}-p${i}`,
                     properties: { path: '/pricing' } });
    if (i % 10 === 0)
      call('identify', { userId: `u${i}`, messageId: `${prefix}-i${i}`, traits: { plan: 'pro' } });
  }
  await Promise.all(calls);
  await a.closeAndFlush();
  return { errors, ids };
}

test('every request reaches legacy and, mirrored, es-ingestd', async () => {
  const { errors, ids } = await sendAll('key-acme', 'sh', 120);
  assert.deepEqual(errors, []);
  // the mirror is asynchronous to the answer: wait for es-ingestd
  let stored = [];
  for (let i = 0; i < 100; i++) {
    stored = h.storedIds(path.join(dir, 'data'), 'acme');
    if (stored.length >= ids.length) break;
    await h.sleep(100);
  }
  const want = [...ids].sort();
  assert.deepEqual([...new Set(legacy.ids())].sort(), want);
  assert.equal(legacy.ids().length, ids.length, 'legacy got each request once');
  assert.deepEqual([...stored].sort(), want);
  // the write key went through to legacy unchanged
  assert.ok(legacy.events.every((e) => e.key === 'key-acme'));
  console.log(`shadow: ${ids.length} events; legacy ${legacy.ids().length}, ` +
              `es-ingestd ${stored.length}, same messageIds`);
});

test("es-ingestd's refusal is never seen by the SDK", async () => {
  // a key legacy takes but es-ingestd does not know: es-ingestd answers
  // the mirror 401, the SDK sees legacy's 200
  const before = legacy.events.length;
  const { errors, ids } = await sendAll('key-only-legacy-knows', 'rf', 10);
  assert.deepEqual(errors, []);
  assert.equal(legacy.events.length - before, ids.length);
});

test('with es-ingestd killed the SDK sees no error', async () => {
  await h.stopProc(srv.proc, 'SIGKILL');
  const before = legacy.events.length;
  const t0 = Date.now();
  const { errors, ids } = await sendAll('key-acme', 'dead', 60);
  const ms = Date.now() - t0;
  assert.deepEqual(errors, []);
  assert.equal(legacy.events.length - before, ids.length);
  console.log(`with es-ingestd down: ${ids.length} events, all 200 from legacy, ${ms} ms`);
});
