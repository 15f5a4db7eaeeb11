// messageId de-duplication is the library's (eventstore.h, "Idempotent
// append"): es-ingestd keeps no set of its own, so nothing is forgotten
// when memory is short or the server restarts:
//  - a batch that holds one id twice is answered 200 and stores it once;
//  - the same batch sent on several connections at once stores each id
//    once (the library decides on the tenant's shard writer);
//  - with a tiny memory budget (memtables sealed into segments all the
//    time) and after a restart, resending everything stores nothing new;
//  - duplicates are answered 200 and counted in es_ingest_events_total.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib.mjs';

const ev = (id) => ({ type: 'track', userId: 'u', event: 'E', messageId: id,
  timestamp: '2024-03-01T10:00:00Z', properties: { pad: 'x'.repeat(200) } });
const auth = { Authorization: h.basic('key-acme') };
const batches = Array.from({ length: 20 }, (_, b) => ({
  batch: Array.from({ length: 100 }, (_, i) => ev(`a-${b * 100 + i}`)) }));

async function sendAll(srv) {
  for (const body of batches) {
    const res = await h.post(srv, '/v1/batch', body, auth);
    assert.equal(res.status, 200, res.text);
  }
}

test('duplicates in a batch, in flight at once, after segments and a restart are stored once', async () => {
  const dir = h.scratchDir();
  let srv;
  try {
    srv = await h.startServer(dir, { args: ['--memory-budget', '2', '--tenant-share', '100'] });
    let res = await h.post(srv, '/v1/batch', { batch: [ev('x'), ev('x')] }, auth);
    assert.equal(res.status, 200, res.text);
    const same = { batch: Array.from({ length: 50 }, (_, i) => ev(`c-${i}`)) };
    const answers = await Promise.all(
      Array.from({ length: 4 }, () => h.post(srv, '/v1/batch', same, auth)));
    for (const a of answers) assert.equal(a.status, 200, a.text);
    await sendAll(srv);
    await sendAll(srv); // all duplicates: in memtables or in segments
    let m = await (await fetch(srv.url + '/metrics')).text();
    assert.match(m, /^es_ingest_events_total\{status="duplicate"\} 2151$/m);
    assert.equal(await h.stopServer(srv), 0);
    const segs = readdirSync(path.join(dir, 'data', 'tenants', 'acme'))
      .filter((f) => f.endsWith('.seg'));
    assert.ok(segs.length >= 2, `the tiny budget made segments: ${segs}`);
    srv = await h.startServer(dir, { port: srv.port, args: ['--memory-budget', '2', '--tenant-share', '100'] });
    await sendAll(srv);
    res = await h.post(srv, '/v1/batch', same, auth);
    assert.equal(res.status, 200, res.text);
    m = await (await fetch(srv.url + '/metrics')).text();
    assert.match(m, /^es_ingest_events_total\{status="stored"\} 0$/m);
    assert.match(m, /^es_ingest_events_total\{status="duplicate"\} 2050$/m);
    assert.equal(await h.stopServer(srv), 0);
    const ids = h.scan(dir, 'acme').map((e) => e.messageId);
    assert.equal(ids.length, 2051);
    assert.equal(new Set(ids).size, 2051, 'an event stored twice');
  } finally {
    if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null)
      srv.proc.kill('SIGKILL'); // a failed assertion left it running
    h.removeDir(dir);
  }
});
