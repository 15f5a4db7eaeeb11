// Overload is answered, not queued: 48 clients flood a server whose queue
// holds 8 requests (--queue-requests 8; a tenant gets 25% of it, 2) with
// 100-event batches for 4 s, half of them naming their tenant with Basic
// auth (refused at the headers), half with "writeKey" in the body
// (refused once parsed).  Then:
//  - both 429 (a tenant over its share) and 503 (the server saturated)
//    were answered, every one with Retry-After;
//  - every request got an answer: no reset, no timeout, no other status;
//  - /healthz, polled all along, answered 200 each time, quickly;
//  - the process stayed within --memory-budget (VmHWM; not under ASan);
//  - after SIGTERM (exit 0), the store holds every event of every 200'd
//    request exactly once, and nothing of a refused one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as h from './lib.mjs';

const BUDGET_MB = 64;
const FLOOD_MS = 4000;
const CLIENTS = 48;

const batchOf = (tag) => Array.from({ length: 100 }, (_, i) => ({
  type: 'track', userId: `u${i}`, event: 'Flooded', messageId: `${tag}-${i}`,
  properties: { pad: 'x'.repeat(500), i },
}));

function hwmBytes(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(s)[1]) * 1024;
}

test('a flood gets 429/503 with Retry-After, healthz stays up, 200s stored once', async () => {
  const dir = h.scratchDir();
  const srv = await h.startServer(dir, { args: ['--memory-budget', String(BUDGET_MB),
    '--queue-requests', '8', '--tenant-share', '25', '--threads', '2'] });
  const counts = {};
  const acked = new Map(); // tenant -> Set of messageIds in 200'd requests
  const tenants = ['acme', 'beta', 'gamma'];
  for (const t of tenants) acked.set(t, new Set());
  let noRetryAfter = 0, failures = 0, seq = 0;
  const end = Date.now() + FLOOD_MS;

  const client = async (n) => {
    const tenant = tenants[n % 3 === 0 ? 1 + (n % 2) : 0]; // acme is hot
    const key = Object.keys(h.KEYS).find((k) => h.KEYS[k] === tenant);
    const viaAuth = n % 2 === 0;
    while (Date.now() < end) {
      const tag = `f${n}-${seq++}`;
      const body = { batch: batchOf(tag) };
      const headers = {};
      if (viaAuth) headers.Authorization = h.basic(key);
      else body.writeKey = key;
      let res;
      try {
        res = await h.post(srv, '/v1/batch', body, headers);
      } catch (e) {
        failures++; // a reset or a dropped connection: never acceptable
        continue;
      }
      counts[res.status] = (counts[res.status] ?? 0) + 1;
      if (res.status === 200) {
        for (const ev of body.batch) acked.get(tenant).add(ev.messageId);
      } else if (res.status === 429 || res.status === 503) {
        if (res.headers.get('retry-after') === null) noRetryAfter++;
        await h.sleep(2);
      }
    }
  };

  const health = [];
  const poll = (async () => {
    while (Date.now() < end) {
      const t0 = Date.now();
      const res = await fetch(srv.url + '/healthz');
      await res.text();
      health.push({ status: res.status, ms: Date.now() - t0 });
      await h.sleep(50);
    }
  })();

  await Promise.all([...Array.from({ length: CLIENTS }, (_, n) => client(n)), poll]);
  const hwm = hwmBytes(srv.proc.pid);
  // ASan's shadow memory and quarantine are no part of the budget.
  const asan = readFileSync(`/proc/${srv.proc.pid}/maps`, 'utf8').includes('libasan');
  assert.equal(await h.stopServer(srv), 0);
  const slowest = Math.max(...health.map((x) => x.ms));
  console.log(`# answers ${JSON.stringify(counts)}; healthz ${health.length} polls, ` +
              `slowest ${slowest} ms; VmHWM ${(hwm / 1048576).toFixed(1)} MiB`);

  assert.equal(failures, 0, 'a request got no answer');
  const known = new Set(['200', '429', '503']);
  for (const s of Object.keys(counts)) assert.ok(known.has(s), `status ${s}: ${JSON.stringify(counts)}`);
  assert.ok(counts[200] > 0, 'some requests were accepted');
  assert.ok(counts[429] > 0, 'the hot tenant got 429s');
  assert.ok(counts[503] > 0, 'the saturated server answered 503s');
  assert.equal(noRetryAfter, 0, 'a 429/503 came without Retry-After');
  // one poll per ~50 ms plus its answer time: under ASan on two busy cores
  // that is ~10 in the 4 s (CI saw exactly 10), so ask for a handful
  assert.ok(health.length >= 5, `only ${health.length} /healthz polls answered`);
  assert.ok(health.every((x) => x.status === 200), '/healthz answered non-200');
  assert.ok(slowest < 2000, `/healthz took ${slowest} ms`);
  if (!asan)
    assert.ok(hwm <= BUDGET_MB * 1048576, `VmHWM ${hwm} over the ${BUDGET_MB} MB budget`);

  for (const t of tenants) {
    const ids = h.scan(dir, t).map((ev) => ev.messageId);
    const stored = new Set(ids);
    assert.equal(stored.size, ids.length, `${t}: an event stored twice`);
    assert.equal(stored.size, acked.get(t).size, `${t}: stored != acknowledged`);
    for (const id of acked.get(t)) assert.ok(stored.has(id), `${t}: ${id} lost`);
  }
  h.removeDir(dir);
});
