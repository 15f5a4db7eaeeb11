// The store's sizing flags reach the library: --shards 1 makes a new store
// of one WAL shard, --wal-file-mb 2 makes its preallocated WAL files (the
// spare the housekeeper prepares) 2 MiB instead of 32 MiB, so the server
// fits a small disk; a second start with --shards 3 keeps the stored
// count (a store's shard count is fixed at creation).
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './lib.mjs';

const auth = { Authorization: h.basic('key-acme') };

async function waitFor(pred, ms) {
  for (const end = Date.now() + ms; Date.now() < end; await h.sleep(20))
    if (pred()) return true;
  return pred();
}

test('--shards and --wal-file-mb size a new store', async () => {
  const dir = h.scratchDir();
  let srv;
  try {
    srv = await h.startServer(dir, {
      args: ['--shards', '1', '--wal-file-mb', '2', '--seal-mb', '1'] });
    const res = await h.post(srv, '/v1/track',
      { userId: 'u', event: 'E', messageId: 'm1' }, auth);
    assert.equal(res.status, 200, res.text);
    const wal = path.join(dir, 'data', 'wal');
    assert.deepEqual(readdirSync(wal), ['0']);
    const spare = path.join(wal, '0', 'spare');
    assert.ok(await waitFor(() => existsSync(spare), 10000),
              'no spare WAL file prepared');
    assert.equal(statSync(spare).size, 2 << 20);
    for (const f of readdirSync(path.join(wal, '0')))
      assert.ok(statSync(path.join(wal, '0', f)).size <= 2 << 20, f);
    assert.equal(await h.stopServer(srv), 0);
    srv = await h.startServer(dir, { args: ['--shards', '3'] });
    assert.equal(await h.stopServer(srv), 0);
    assert.deepEqual(readdirSync(wal), ['0']);
    assert.equal(h.scan(dir, 'acme').length, 1);
  } finally {
    if (srv) h.killServer(srv);
    h.removeDir(dir);
  }
});
