// es-ingestd --forward: a 200 is sent only once the forward queue's
// frame of its events is durable (docs/MIGRATION.md, "Primary with
// forward"; cmd/ingest/http.c invariant 7).  es-ingestd runs under
// strace; the trace's order of queue writes, queue fdatasyncs and
// answers on the sockets is checked: when a {"success":true} answer is
// written, no queue file holds a write that no fdatasync started after
// it has covered.  Concurrent requests show the grouping: one sync is
// shared by the answers completed in the same loop turn
// (es_forward_syncs_total against es_forward_acks_waited_total).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as h from './lib.mjs';

let dir, legacy, proc, url;
const strace = h.spawnSync('strace', ['-V']).status === 0;

before(async () => {
  dir = h.scratchDir();
  legacy = await new h.Legacy().up();
});

after(async () => {
  if (proc && proc.exitCode === null && proc.signalCode === null)
    await h.stopProc(proc, 'SIGKILL');
  if (legacy) await legacy.down();
  h.removeDir(dir);
});

// es-ingestd under strace -f (all threads), -y (paths of descriptors).
function startTraced(trace) {
  return new Promise((resolve, reject) => {
    const p = h.spawn('strace', ['-f', '-qq', '-y', '-s', '256', '-o', trace,
      '-e', 'trace=write,writev,pwrite64,sendto,sendmsg,fdatasync,fsync',
      h.INGESTD, '--data', path.join(dir, 'data'), '--listen', '127.0.0.1:0',
      '--keys', path.join(dir, 'keys.json'), '--threads', '2',
      '--forward', legacy.url], { stdio: ['ignore', 'ignore', 'pipe'],
      // LeakSanitizer cannot run under ptrace (ASan builds)
      env: { ...process.env, ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ?? ''}:detect_leaks=0` } });
    let log = '';
    p.stderr.on('data', (c) => {
      log += c;
      const m = /"msg":"listening".*"port":(\d+)/.exec(log);
      if (m && !url) { url = `http://127.0.0.1:${m[1]}`; resolve(p); }
    });
    p.on('exit', (code, sig) => reject(new Error(`es-ingestd exited (${code ?? sig}):\n${log}`)));
  });
}

// The trace's calls, completed, in order of completion, each with the
// index of its start: [{pid, name, fd, text, start, end}].
function parseTrace(text) {
  const calls = [], open = new Map();
  let seq = 0;
  for (const line of text.split('\n')) {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, pid, rest] = m;
    seq++;
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(rest);
    if (resumed) {
      const c = open.get(pid);
      if (!c) continue;
      open.delete(pid);
      c.text += resumed[2];
      c.end = seq;
      calls.push(c);
      continue;
    }
    const call = /^(\w+)\((\d+)<([^>]*)>(.*)$/.exec(rest);
    if (!call) continue;
    const c = { pid, name: call[1], fd: call[3], text: call[4], start: seq, end: seq };
    if (/<unfinished \.\.\.>$/.test(rest)) { open.set(pid, c); continue; }
    calls.push(c);
  }
  return calls.sort((a, b) => a.end - b.end);
}

test('a 200 is sent after the fdatasync of its queue frame, one sync per loop turn', { skip: !strace && 'strace not installed' }, async () => {
  const trace = path.join(dir, 'trace.txt');
  proc = await startTraced(trace);
  const exited = new Promise((r) => proc.on('exit', (code) => r(code)));
  let n = 0;
  const send = async (ids) => {
    const r = await fetch(url + '/v1/batch', { method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: h.basic('key-acme') },
      body: JSON.stringify({ batch: ids.map((messageId) => ({ type: 'track', userId: 'u',
        event: 'Sync', messageId })) }) });
    await r.text();
    return r.status;
  };
  // rounds of 16 concurrent requests of new events, then a duplicate
  const statuses = [];
  for (let round = 0; round < 6; round++) {
    const batch = [];
    for (let c = 0; c < 16; c++) batch.push([0, 1, 2].map(() => `fs-${n++}`));
    statuses.push(...await Promise.all(batch.map(send)));
  }
  statuses.push(await send(['fs-0', 'fs-1', 'fs-2'])); // all duplicates
  assert.deepEqual(statuses.filter((s) => s !== 200), []);
  const syncs = await h.metric(url, 'es_forward_syncs_total');
  const waited = await h.metric(url, 'es_forward_acks_waited_total');
  const errors = await h.metric(url, 'es_forward_sync_errors_total');
  // SIGTERM to es-ingestd itself (the trace's first pid): strace would
  // only detach; it exits with es-ingestd's status
  const pid = Number(/^(\d+)/.exec(readFileSync(trace, 'utf8'))[1]);
  process.kill(pid, 'SIGTERM');
  assert.equal(await exited, 0, 'a clean drain');
  const calls = parseTrace(readFileSync(trace, 'utf8'));
  const isQueue = (c) => /\/forward-queue\/q-[0-9a-f]{16}\.fwd$/.test(c.fd);
  const dirty = new Map(); // queue file -> end of its last unsynced write
  let answers = 0, queueWrites = 0, queueSyncs = 0;
  const early = [];
  for (const c of calls) {
    if (isQueue(c) && /^(write|writev|pwrite64)$/.test(c.name) && !/= -1/.test(c.text)) {
      queueWrites++;
      dirty.set(c.fd, c.end);
    } else if (isQueue(c) && /^(fdatasync|fsync)$/.test(c.name) && /= 0$/.test(c.text.trim())) {
      queueSyncs++;
      // covers the writes completed before the sync started
      if (dirty.has(c.fd) && dirty.get(c.fd) < c.start) dirty.delete(c.fd);
    } else if (/^socket:|^TCP/.test(c.fd) && c.text.includes('{\\"success\\":true}')) {
      answers++;
      if (dirty.size > 0) early.push({ at: c.start, dirty: [...dirty.keys()] });
    }
  }
  console.log(`fwdsync: ${statuses.length} requests answered 200, ${queueWrites} queue writes, ` +
              `${queueSyncs} queue fdatasyncs in the trace; /metrics: ${syncs} syncs for ${waited} ` +
              `answers that waited (${(waited / syncs).toFixed(1)} per sync), ${errors} errors`);
  assert.equal(answers, statuses.length, 'every 200 found in the trace');
  assert.equal(queueWrites, 96, 'one queue frame per request of new events');
  assert.deepEqual(early, [], 'no 200 written while a queue write was not yet synced');
  assert.equal(errors, 0);
  assert.ok(waited >= 96, `${waited} answers waited for a sync`);
  assert.ok(syncs >= 1 && syncs <= queueSyncs, 'every counted sync is in the trace');
  // grouping: 16 requests at once do not each cost an fdatasync
  assert.ok(syncs < waited, `${syncs} syncs for ${waited} answers: no grouping`);
});
