// Timestamps from clients that cannot be trusted (issue 18):
//  - a skew correction by sentAt that leaves the years 0000-9999 is
//    refused with a 400 naming sentAt (timestamp 9999-12-31 with sentAt
//    0001-01-01 was once stored as year 12025), in a single event and in
//    a batch (then nothing of the batch is stored);
//  - /v1/events/latest orders by receive time: an event dated decades
//    ahead drops out once newer events arrive instead of pinning the top.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib.mjs';

async function waitFor(fn, what, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await h.sleep(50);
  }
}

test('skew past year 9999 refused; the live feed orders by receive time', async () => {
  const dir = h.scratchDir();
  const s = await h.startServers(dir);
  try {
    const q = s.query;
    const post = async (p, body) => {
      const res = await fetch(s.ingestUrl + p, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json',
                   Authorization: 'Basic ' + Buffer.from(`${h.WRITE_KEY.acme}:`).toString('base64') },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: await res.json() };
    };
    let res = await post('/v1/track', { anonymousId: 'a', event: 'Far',
      timestamp: '9999-12-31T00:00:00Z', sentAt: '0001-01-01T00:00:00Z' });
    assert.equal(res.status, 400);
    assert.match(res.body.error, /^sentAt: .*outside the years 0000-9999/);
    res = await post('/v1/track', { anonymousId: 'a', event: 'Early',
      timestamp: '0001-01-01T00:00:00Z', sentAt: '9999-12-31T00:00:00Z' });
    assert.equal(res.status, 400);
    res = await post('/v1/batch', { batch: [
      { type: 'track', anonymousId: 'a', event: 'Fine' },
      { type: 'track', anonymousId: 'a', event: 'Far', timestamp: '9999-12-31T00:00:00Z',
        sentAt: '0001-01-01T00:00:00Z' }] });
    assert.equal(res.status, 400);
    assert.match(res.body.error, /^batch\[1\]: sentAt/);

    // an event dated in 2099, then three ordinary ones
    res = await post('/v1/track', { anonymousId: 'a', event: 'Future',
      timestamp: '2099-01-01T00:00:00Z' });
    assert.equal(res.status, 200);
    for (const e of ['One', 'Two', 'Three']) {
      assert.equal((await post('/v1/track', { anonymousId: 'a', event: e })).status, 200);
      await h.sleep(5); // distinct receive times
    }
    const latest = await waitFor(async () => {
      const r = await h.call(q, '/v1/events/latest?limit=2', { token: h.TOKEN.acme });
      return r.status === 200 && r.body.events.length === 2 &&
             r.body.events[0].event === 'Three' ? r.body.events : null;
    }, 'the newest events in the feed');
    assert.deepEqual(latest.map((e) => e.event), ['Three', 'Two']);
    const all = await h.call(q, '/v1/events/latest?limit=10', { token: h.TOKEN.acme });
    assert.deepEqual(all.body.events.map((e) => e.event), ['Three', 'Two', 'One', 'Future']);
    assert.equal(all.body.events.some((e) => /^1\d{4}-/.test(e.timestamp)), false);
  } finally {
    await h.stopServers(s);
    h.removeDir(dir);
  }
});
