// messageId de-duplication when a tenant's set is smaller than its traffic
// (--dedupe-ids 100 here; a full memory pool holds sets down to 512 ids):
//  - a batch that holds one id twice and 200 other events is answered 200
//    and stores that id once, although the id ages out of the set before
//    the request completes (it once got a false 503 "an earlier copy
//    failed", and every retry stored its events again);
//  - a retry of a stored batch is answered 200 and stores nothing new;
//  - within the window a retried id is still recognised.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib.mjs';

const ev = (id) => ({ type: 'track', userId: 'u', event: 'E', messageId: id });
const auth = { Authorization: h.basic('key-acme') };

test('ids that age out of a small set give no false 503 and no double', async () => {
  const dir = h.scratchDir();
  let srv;
  try {
    srv = await h.startServer(dir, { args: ['--dedupe-ids', '100'] });
    const twice = { batch: [ev('x'), ev('x'),
      ...Array.from({ length: 200 }, (_, i) => ev(`a-${i}`))] };
    let res = await h.post(srv, '/v1/batch', twice, auth);
    assert.equal(res.status, 200, res.text);
    // a retry of the last 50 (still in the 100-id window): nothing new
    const retry = { batch: Array.from({ length: 50 }, (_, i) => ev(`a-${150 + i}`)) };
    res = await h.post(srv, '/v1/batch', retry, auth);
    assert.equal(res.status, 200, res.text);
    const m = await (await fetch(srv.url + '/metrics')).text();
    assert.match(m, /^es_ingest_events_total\{status="duplicate"\} 51$/m);
    assert.equal(await h.stopServer(srv), 0);
    const ids = h.scan(dir, 'acme').map((e) => e.messageId);
    assert.equal(ids.length, 201);
    assert.equal(new Set(ids).size, 201, 'an event stored twice');
  } finally {
    if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null)
      srv.proc.kill('SIGKILL'); // a failed assertion left it running
    h.removeDir(dir);
  }
});
