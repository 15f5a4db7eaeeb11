// Erasing a person through es-ingestd (docs/PRIVACY.md), over real HTTP:
//  - POST /v1/privacy/erase needs an admin token: none, a wrong one, a
//    write key (Basic user or Bearer) all get 401; bad bodies 400;
//  - a person who browsed anonymously, identified, then was aliased is
//    erased under all three ids when asked by the anonymous one; straight
//    after the 202 a second, read-only process (esctl scan) sees none of
//    their events, and everybody else's are all there;
//  - GET /v1/privacy/erase/ID reports the stages and, once done, the
//    receipt, which names the person only by a hash;
//  - afterwards no file of the data directory holds an id or the email;
//  - an unknown tenant or id completes with zero events (same answers);
//  - SIGKILL right after a 202, then a restart: the request completes.
//  - "suppress": true: later sends with the person's ids from the real
//    @segment/analytics-node SDK get 200 and store nothing, while pending,
//    after completion and after a restart; /metrics counts them; the data
//    directory holds none of the ids; POST /v1/privacy/unsuppress lifts it.
//  - without suppress, an event re-sent with an erased id after the 202
//    is new data: there once after the request completes.
import { test } from 'node:test';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as h from './lib.mjs';

const ADMIN = 'admin-token-erase-7c1e2f90aa';
const NEEDLES = ['anon-V', 'user-V', 'alias-V', 'victim@example.com'];

async function call(srv, method, p, { token = ADMIN, auth, body } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (auth) headers.Authorization = auth;
  else if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(srv.url + p, {
    method, headers,
    body: body === undefined ? undefined
      : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: json, text };
}

function workload() {
  const t0 = Date.parse('2024-03-01T00:00:00Z');
  const at = (i) => new Date(t0 + i * 7000).toISOString();
  const batch = [];
  for (let i = 0; i < 300; i++)
    batch.push({ type: 'page', anonymousId: `anon-${i % 30}`, messageId: `o-${i}`,
      timestamp: at(i), properties: { path: i % 2 ? '/pricing' : '/' } });
  batch.push({ type: 'page', anonymousId: 'anon-V', messageId: 'v-1', timestamp: at(1),
    properties: { path: '/pricing' } });
  batch.push({ type: 'identify', anonymousId: 'anon-V', userId: 'user-V', messageId: 'v-2',
    timestamp: at(2), traits: { email: 'victim@example.com' } });
  batch.push({ type: 'alias', previousId: 'user-V', userId: 'alias-V', messageId: 'v-3',
    timestamp: at(3) });
  batch.push({ type: 'track', userId: 'alias-V', event: 'Signed Up', messageId: 'v-4',
    timestamp: at(4), properties: { contact: 'victim@example.com' } });
  return batch;
}

function filesUnder(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

function hits(dir) {
  const found = [];
  for (const f of filesUnder(dir)) {
    const bytes = readFileSync(f);
    for (const n of NEEDLES) if (bytes.includes(n)) found.push(`${f}: ${n}`);
  }
  return found;
}

function roScan(dir, tenant) {
  const out = execFileSync(h.ESCTL, ['scan', '--data', path.join(dir, 'data'),
    '--tenant', tenant], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return out.split('\n').filter((l) => l).map((l) => JSON.parse(l));
}

async function waitDone(srv, id) {
  for (let i = 0; i < 600; i++) {
    const res = await call(srv, 'GET', `/v1/privacy/erase/${id}`);
    assert.equal(res.status, 200, res.text);
    if (res.body.state === 'done') return res.body;
    await h.sleep(50);
  }
  throw new Error(`erase ${id} not done`);
}

test('erase a person through es-ingestd', async () => {
  const dir = h.scratchDir();
  writeFileSync(path.join(dir, 'admin.json'), JSON.stringify([ADMIN]));
  const args = ['--admin-tokens', path.join(dir, 'admin.json')];
  let srv = await h.startServer(dir, { args });
  try {
    const batch = workload();
    let res = await h.post(srv, '/v1/batch', { batch }, { Authorization: h.basic('key-acme') });
    assert.equal(res.status, 200, res.text);
    const body = { tenant: 'acme', anonymousId: 'anon-V' };

    // who may erase
    assert.equal((await call(srv, 'POST', '/v1/privacy/erase', { token: null, body })).status, 401);
    assert.equal((await call(srv, 'POST', '/v1/privacy/erase', { token: 'admin-token-wrong', body })).status, 401);
    assert.equal((await call(srv, 'POST', '/v1/privacy/erase', { auth: h.basic('key-acme'), body })).status, 401);
    assert.equal((await call(srv, 'POST', '/v1/privacy/erase', { token: 'key-acme', body })).status, 401);
    assert.equal((await call(srv, 'GET', '/v1/privacy/erase/acme.1', { token: null })).status, 401);
    // bad input
    for (const bad of ['', 'not json', { tenant: 'acme' },
      { tenant: 'acme', userId: 'a', anonymousId: 'b' }, { tenant: '../x', userId: 'a' },
      { tenant: 'acme', userId: 7 }, { tenant: 'acme', userId: 'null' }]) {
      res = await call(srv, 'POST', '/v1/privacy/erase', { body: bad });
      assert.equal(res.status, 400, `${JSON.stringify(bad)}: ${res.text}`);
      assert.doesNotMatch(res.text, /\.c:\d+/);
    }
    assert.equal((await call(srv, 'GET', '/v1/privacy/erase/acme.99')).status, 404);

    // the erase: hidden from another process straight after the 202
    res = await call(srv, 'POST', '/v1/privacy/erase', { body });
    assert.equal(res.status, 202, res.text);
    const id = res.body.id;
    const seen = roScan(dir, 'acme');
    assert.equal(seen.length, 300, 'everybody else, once each');
    assert.equal(new Set(seen.map((e) => e.messageId)).size, 300);
    for (const n of NEEDLES) assert.ok(!JSON.stringify(seen).includes(n), n);

    const st = await waitDone(srv, id);
    assert.equal(st.receipt.events_removed, 4, JSON.stringify(st));
    assert.equal(st.receipt.ids, 3, 'anonymous, user and alias ids');
    assert.match(st.subject, /^[0-9a-f]{32}$/);
    for (const n of NEEDLES) assert.ok(!JSON.stringify(st).includes(n));
    for (const n of NEEDLES) assert.ok(!srv.log().includes(n), `log names ${n}`);

    // no existence leak: unknown tenant and unknown id look the same
    for (const b of [{ tenant: 'nobody', userId: 'ghost' }, { tenant: 'acme', userId: 'ghost' }]) {
      res = await call(srv, 'POST', '/v1/privacy/erase', { body: b });
      assert.equal(res.status, 202, res.text);
      const done = await waitDone(srv, res.body.id);
      assert.equal(done.receipt.events_removed, 0);
    }

    // SIGKILL right after a 202: the restart finishes the request
    res = await h.post(srv, '/v1/batch', { batch: [{ type: 'page', anonymousId: 'anon-K',
      messageId: 'k-1', timestamp: '2024-03-01T01:00:00Z', properties: { path: '/' } }] },
    { Authorization: h.basic('key-acme') });
    assert.equal(res.status, 200);
    res = await call(srv, 'POST', '/v1/privacy/erase', { body: { tenant: 'acme', anonymousId: 'anon-K' } });
    assert.equal(res.status, 202, res.text);
    const kid = res.body.id;
    await h.killServer(srv);
    assert.ok(!JSON.stringify(roScan(dir, 'acme')).includes('anon-K'), 'hidden while down');
    srv = await h.startServer(dir, { args });
    const kst = await waitDone(srv, kid);
    assert.equal(kst.receipt.events_removed, 1, JSON.stringify(kst));
    assert.equal(await h.stopServer(srv), 0);
    srv = null;

    // nothing of the person anywhere in the directory
    assert.deepEqual(hits(path.join(dir, 'data')), []);
    const left = h.scan(dir, 'acme');
    assert.equal(left.length, 300);
  } finally {
    if (srv) await h.killServer(srv);
    h.removeDir(dir);
  }
});

h.requireNodeModules();
const require = createRequire(import.meta.url);
const { Analytics, FetchHTTPClient } = require('@segment/analytics-node');

// Sends with the real SDK; returns the HTTP statuses of its requests.
async function sdkSend(srv, calls) {
  const inner = new FetchHTTPClient();
  const statuses = [];
  const a = new Analytics({ writeKey: 'key-acme', host: srv.url, flushInterval: 20,
    maxEventsInBatch: 2, maxRetries: 0,
    httpClient: { async makeRequest(o) { const r = await inner.makeRequest(o); statuses.push(r.status); return r; } } });
  for (const [method, msg] of calls) a[method](msg);
  await a.closeAndFlush({ timeout: 10000 });
  return statuses;
}

async function metric(srv, name) {
  const text = await (await fetch(srv.url + '/metrics')).text();
  const m = new RegExp(`^${name.replace(/[{}"=]/g, (c) => '\\' + c)} (\\d+)$`, 'm').exec(text);
  assert.ok(m, `${name} in /metrics`);
  return Number(m[1]);
}

test('erase with suppress: later events acknowledged, dropped, counted', async () => {
  const dir = h.scratchDir();
  writeFileSync(path.join(dir, 'admin.json'), JSON.stringify([ADMIN]));
  const args = ['--admin-tokens', path.join(dir, 'admin.json')];
  let srv = await h.startServer(dir, { args });
  const SUP = 'es_ingest_events_total{status="suppressed"}';
  try {
    let res = await h.post(srv, '/v1/batch', { batch: workload() }, { Authorization: h.basic('key-acme') });
    assert.equal(res.status, 200, res.text);
    res = await call(srv, 'POST', '/v1/privacy/erase', { body: { tenant: 'acme', userId: 'user-V', suppress: 'yes' } });
    assert.equal(res.status, 400, 'suppress must be a boolean');
    res = await call(srv, 'POST', '/v1/privacy/erase', { body: { tenant: 'acme', userId: 'user-V', suppress: true } });
    assert.equal(res.status, 202, res.text);
    const id = res.body.id;
    // pending: the SDK's sends with any of the three ids (and a later
    // identify linking a new id to them) are answered 200
    let st = await sdkSend(srv, [
      ['track', { userId: 'user-V', event: 'Came Back', messageId: 's-1', properties: { email: 'victim@example.com' } }],
      ['identify', { anonymousId: 'anon-V', userId: 'user-New', messageId: 's-2' }],
      ['page', { anonymousId: 'anon-other', messageId: 's-3', properties: { path: '/' } }],
    ]);
    assert.ok(st.length > 0 && st.every((x) => x === 200), `statuses ${st}`);
    const done = await waitDone(srv, id);
    assert.equal(done.suppress, true);
    assert.equal(done.receipt.events_removed, 4, JSON.stringify(done));
    st = await sdkSend(srv, [['alias', { previousId: 'alias-V', userId: 'user-Newer', messageId: 's-4' }]]);
    assert.deepEqual(st, [200]);
    assert.equal(await metric(srv, SUP), 3);
    assert.equal(await metric(srv, 'es_store_events_suppressed_total'), 3);
    assert.equal(await h.stopServer(srv), 0);

    // a restart: still suppressed (the salted hashes in ERASE)
    srv = await h.startServer(dir, { args });
    st = await sdkSend(srv, [['track', { anonymousId: 'anon-V', event: 'Again', messageId: 's-5' }]]);
    assert.deepEqual(st, [200]);
    assert.equal(await metric(srv, SUP), 1);
    let seen = roScan(dir, 'acme');
    assert.deepEqual(seen.filter((e) => e.messageId.startsWith('s-')).map((e) => e.messageId), ['s-3']);
    assert.equal(seen.length, 301);
    assert.equal(await h.stopServer(srv), 0);
    srv = null;
    assert.deepEqual(hits(path.join(dir, 'data')), [], 'no id, no email on disk');
    for (const n of ['user-New', 'user-Newer']) assert.ok(!JSON.stringify(h.scan(dir, 'acme')).includes(n), n);

    // lifted: stored again
    srv = await h.startServer(dir, { args });
    res = await call(srv, 'POST', '/v1/privacy/unsuppress', { token: 'key-acme', body: { tenant: 'acme', userId: 'alias-V' } });
    assert.equal(res.status, 401);
    res = await call(srv, 'POST', '/v1/privacy/unsuppress', { body: { tenant: 'acme', userId: 'alias-V' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.lifted, 3);
    st = await sdkSend(srv, [['track', { anonymousId: 'anon-V', event: 'Back', messageId: 's-6' }]]);
    assert.deepEqual(st, [200]);
    assert.equal(await metric(srv, SUP), 0);
    seen = roScan(dir, 'acme');
    assert.ok(seen.some((e) => e.messageId === 's-6'));

    // without suppress: a later event with an erased id is new data, kept
    res = await call(srv, 'POST', '/v1/privacy/erase', { body: { tenant: 'acme', anonymousId: 'anon-3' } });
    assert.equal(res.status, 202, res.text);
    st = await sdkSend(srv, [['page', { anonymousId: 'anon-3', messageId: 'w-1', properties: { path: '/later' } }]]);
    assert.deepEqual(st, [200]);
    const wdone = await waitDone(srv, res.body.id);
    assert.equal(wdone.receipt.events_removed, 10, JSON.stringify(wdone));
    seen = roScan(dir, 'acme').filter((e) => e.anonymousId === 'anon-3');
    assert.deepEqual(seen.map((e) => e.messageId), ['w-1'], 'the later event, once');
    assert.equal(await h.stopServer(srv), 0);
    srv = null;
  } finally {
    if (srv) await h.killServer(srv);
    h.removeDir(dir);
  }
});
