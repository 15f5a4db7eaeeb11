// One hot tenant cannot starve the others: while "acme" floods the server
// from 10 connections with 200 KB batches (more than its 25% share of the
// 2 MB for requests, a quarter of an 8 MB budget, can hold), "beta" posts small
// requests one at a time: every one of them is accepted (200, never 429/503) and none waits long, while
// acme's excess is answered 429 rather than queued without bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib.mjs';

const ev = (id, pad = 0) => ({ type: 'track', userId: 'u', event: 'E', messageId: id,
                               properties: pad ? { pad: 'f'.repeat(pad) } : {} });

test('a flooding tenant gets 429s, the others keep getting 200 quickly', async () => {
  const dir = h.scratchDir();
  const srv = await h.startServer(dir, { args: ['--memory-budget', '8',
    '--tenant-share', '25', '--threads', '2'] });
  const hot = { 200: 0, 429: 0, 503: 0 };
  let stop = false;
  let seq = 0;
  const flooders = Array.from({ length: 10 }, async () => {
    while (!stop) {
      const batch = { batch: Array.from({ length: 50 }, () => ev(`hot-${seq++}`, 4000)) };
      const res = await h.post(srv, '/v1/batch', batch, { Authorization: h.basic('key-acme') });
      hot[res.status] = (hot[res.status] ?? 0) + 1;
      if (res.status !== 200)
        await h.sleep(5);
    }
  });
  await h.sleep(300);
  const waits = [];
  for (let i = 0; i < 40; i++) {
    const t0 = Date.now();
    const res = await h.post(srv, '/v1/track', ev(`cold-${i}`), { Authorization: h.basic('key-beta') });
    waits.push(Date.now() - t0);
    assert.equal(res.status, 200, res.text);
  }
  stop = true;
  await Promise.all(flooders);
  assert.equal(await h.stopServer(srv), 0);
  waits.sort((a, b) => a - b);
  console.log(`# hot tenant answers ${JSON.stringify(hot)}; cold waits ms: median ` +
              `${waits[20]}, max ${waits[39]}`);
  assert.ok(hot[200] > 0);
  assert.ok(hot[429] > 0, 'the flood went past the tenant share');
  assert.ok(waits[39] < 5000, `a cold request waited ${waits[39]} ms`);
  assert.equal(h.scan(dir, 'beta').length, 40);
  assert.equal(h.scan(dir, 'acme').length, hot[200] * 50);
  h.removeDir(dir);
});
