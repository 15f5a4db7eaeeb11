// The store's sizing flags reach the library: --shards 1 makes a new store
// of one WAL shard, --wal-file-mb 2 makes its preallocated WAL files 2 MiB
// instead of 32 MiB (the first one, or the spare the housekeeper prepares
// when the first file was a small 1 MiB one), so the server
// fits a small disk; a second start with --shards 3 keeps the stored
// count (a store's shard count is fixed at creation).
import { readdirSync, statSync } from 'node:fs';
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
    const shard = path.join(wal, '0');
    const sizes = () => readdirSync(shard)
      .filter((f) => f.endsWith('.wal') || f === 'spare')
      .map((f) => statSync(path.join(shard, f)).size);
    assert.ok(await waitFor(() => sizes().includes(2 << 20), 10000),
              `no 2 MiB WAL file: ${sizes()}`);
    for (const n of sizes())
      assert.ok(n <= 2 << 20, `a WAL file of ${n} bytes`);
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
