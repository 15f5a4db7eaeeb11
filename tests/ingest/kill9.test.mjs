// kill -9 under load: analytics-node and a plain retrying HTTP client keep
// sending while es-ingestd is SIGKILLed twice and restarted on the same
// port.  Afterwards every event a client saw acknowledged is stored
// exactly once, and no event is stored twice at all (the retries of
// requests that were durable but never answered are de-duplicated by the
// messageIds the restarted server reloads from the store).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as h from './lib.mjs';

h.requireNodeModules();
const require = createRequire(import.meta.url);
const { Analytics } = require('@segment/analytics-node');

const SDK_EVENTS = 1200;
const RAW_BATCHES = 60;
const RAW_BATCH_EVENTS = 25;

// Posts one batch until it is answered 200 (network errors and 5xx are
// retried, as the SDKs do); resolves with the number of attempts.
async function postUntilAcked(state, batch) {
  for (let attempt = 1; attempt <= 400; attempt++) {
    try {
      const res = await fetch(state.srv.url + '/v1/batch', {
        method: 'POST', body: JSON.stringify(batch),
        headers: { Authorization: h.basic('key-beta'), 'Content-Type': 'text/plain' },
        signal: AbortSignal.timeout(3000) });
      await res.text();
      if (res.status === 200)
        return attempt;
      assert.ok(res.status >= 500 || res.status === 429, `status ${res.status}`);
    } catch (e) {
      if (e instanceof assert.AssertionError)
        throw e;
    }
    await h.sleep(25);
  }
  throw new Error('batch never acknowledged');
}

function counts(events) {
  const m = new Map();
  for (const e of events)
    m.set(e.messageId, (m.get(e.messageId) ?? 0) + 1);
  return m;
}

test('kill -9 under load loses no acknowledged event and stores none twice', async () => {
  const dir = h.scratchDir();
  const state = { srv: await h.startServer(dir) };
  const port = state.srv.port;
  const a = new Analytics({ writeKey: 'key-acme', host: state.srv.url,
                            flushInterval: 20, maxEventsInBatch: 20,
                            maxRetries: 60, httpRequestTimeout: 3000 });
  const sdkAcked = new Set();
  const sdkCalls = [];
  const rawAcked = new Set();
  let retried = 0;

  const sdkLoad = (async () => {
    for (let i = 0; i < SDK_EVENTS; i++) {
      const messageId = `sdk-${i}`;
      sdkCalls.push(new Promise((resolve) => a.track(
        { userId: `u${i % 50}`, event: 'Load', messageId, properties: { i } },
        (err) => { if (!err) sdkAcked.add(messageId); resolve(); })));
      if (i % 10 === 0)
        await h.sleep(15);
    }
  })();
  const rawLoad = (async () => {
    for (let b = 0; b < RAW_BATCHES; b++) {
      const ids = Array.from({ length: RAW_BATCH_EVENTS }, (_, k) => `raw-${b}-${k}`);
      const batch = { batch: ids.map((messageId) => ({ type: 'track',
        anonymousId: `a${b}`, event: 'Raw', messageId })) };
      retried += (await postUntilAcked(state, batch)) - 1;
      ids.forEach((id) => rawAcked.add(id));
      await h.sleep(30); // spread over both kills
    }
  })();

  for (let kill = 0; kill < 2; kill++) {
    await h.sleep(700);
    await h.killServer(state.srv);
    await h.sleep(100);
    state.srv = await h.startServer(dir, { port });
  }
  await Promise.all([sdkLoad, rawLoad]);
  await Promise.all(sdkCalls);
  await a.closeAndFlush();
  assert.equal(await h.stopServer(state.srv), 0);

  const acme = counts(h.scan(dir, 'acme'));
  const beta = counts(h.scan(dir, 'beta'));
  for (const id of sdkAcked)
    assert.equal(acme.get(id), 1, `acknowledged ${id} stored ${acme.get(id) ?? 0} times`);
  for (const id of rawAcked)
    assert.equal(beta.get(id), 1, `acknowledged ${id} stored ${beta.get(id) ?? 0} times`);
  for (const [id, n] of [...acme, ...beta])
    assert.equal(n, 1, `${id} stored ${n} times`);
  // With 60 retries every event gets through in the end.
  assert.equal(sdkAcked.size, SDK_EVENTS);
  assert.equal(rawAcked.size, RAW_BATCHES * RAW_BATCH_EVENTS);
  assert.ok(retried > 0, 'the kills hit the raw client in flight');
  console.log(`# stored ${acme.size + beta.size} events; raw client retried ${retried} times`);
  h.removeDir(dir);
});

test('a retry after kill -9 and restart is still de-duplicated', async () => {
  const dir = h.scratchDir();
  let srv = await h.startServer(dir);
  const batch = { batch: Array.from({ length: 10 }, (_, i) => ({
    type: 'page', anonymousId: 'v', messageId: `again-${i}`, properties: { path: `/p${i}` } })) };
  const auth = { Authorization: h.basic('key-gamma') };
  assert.equal((await h.post(srv, '/v1/batch', batch, auth)).status, 200);
  await h.killServer(srv);
  srv = await h.startServer(dir, { port: srv.port });
  assert.equal((await h.post(srv, '/v1/batch', batch, auth)).status, 200);
  batch.batch.push({ type: 'page', anonymousId: 'v', messageId: 'again-new' });
  assert.equal((await h.post(srv, '/v1/batch', batch, auth)).status, 200);
  assert.equal(await h.stopServer(srv), 0);
  const ids = h.scan(dir, 'gamma').map((e) => e.messageId).sort();
  assert.deepEqual(ids, [...Array.from({ length: 10 }, (_, i) => `again-${i}`), 'again-new'].sort());
  h.removeDir(dir);
});
