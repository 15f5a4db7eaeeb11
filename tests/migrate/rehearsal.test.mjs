// The runbook of docs/MIGRATION.md rehearsed on loopback, each step the
// command an operator runs: shadow (nginx mirror) -> per-tenant cut-over
// (tenant acme primary on es-ingestd --forward, beta still shadow) ->
// rollback (nginx back to the shadow config) -> acme primary again ->
// every tenant primary, legacy off.  After each step: esctl reconcile of
// the store against the stand-in legacy's counts (exit 0), and legacy
// holds every messageId the SDK sent exactly once.  The counts are printed
// for the closing note.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as h from './lib.mjs';

const { Analytics } = h.requireSdk();
const TOKEN = 'rehearsal-admin-token-0123456789';
const KEYS = { 'key-acme': 'acme', 'key-beta': 'beta' };
let dir, data, legacy, srv, nginx, nginxPort;
const sent = new Map(); // messageId -> tenant (what the SDK was told is in)

function writeKeys(primary) {
  const k = {};
  for (const [key, t] of Object.entries(KEYS))
    k[key] = primary.includes(t) ? { tenant: t, primary: true } : t;
  writeFileSync(path.join(dir, 'keys.json'), JSON.stringify(k));
}

async function startIngestd(forward) {
  const args = ['--admin-tokens', path.join(dir, 'tokens.json')];
  if (forward) args.push('--forward', legacy.url);
  srv = await h.startServer(dir, { port: srv ? srv.port : 0, args });
}

async function proxy(include) {
  if (nginx) await h.stopProc(nginx.proc); // production: nginx -s reload
  let httpExtra = '';
  if (include === 'segment-cutover.conf') {
    const map = await (await fetch(srv.url + '/v1/admin/cutover/nginx-map',
      { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
    // beside nginx.conf, where segment-cutover-maps.conf includes it
    mkdirSync(path.join(dir, 'nginx'), { recursive: true });
    writeFileSync(path.join(dir, 'nginx', 'segment-primary-keys.map'), map);
    httpExtra = `include ${path.join(h.ROOT, 'deploy', 'nginx', 'segment-cutover-maps.conf')};`;
  }
  nginx = await h.startNginx(path.join(dir, 'nginx'), include, {
    listenPort: nginxPort, legacyPort: legacy.port, ingestdPort: srv.port, httpExtra });
}

// The SDK sends n events per tenant; every callback must succeed.
async function traffic(step, n) {
  for (const [key, tenant] of Object.entries(KEYS)) {
    const a = new Analytics({ writeKey: key, host: nginx.url, flushInterval: 20,
                              maxEventsInBatch: 25 });
    const errors = [];
    a.on('error', (e) => errors.push(e));
    const calls = [];
    for (let i = 0; i < n; i++) {
      const messageId = `${step}-${tenant}-${i}`;
      sent.set(messageId, tenant);
      const p = { messageId, userId: `u${i % 9}` };
      calls.push(new Promise((resolve) => {
        const cb = (err) => { if (err) errors.push(err); resolve(); };
        if (i % 4 === 0) a.page({ ...p, name: 'Home', properties: { path: '/' } }, cb);
        else a.track({ ...p, event: i % 3 ? 'Order Completed' : 'Signed Up' }, cb);
      }));
    }
    await Promise.all(calls);
    await a.closeAndFlush();
    assert.deepEqual(errors, [], `${step}: the SDK saw an error`);
  }
}

// Waits until the mirror and the forward queue delivered, then checks the
// step: legacy holds each sent messageId once, and reconcile is green.
async function checkpoint(step) {
  for (let i = 0; i < 150; i++) {
    const backlog = srv.forward ? await h.metric(srv.url, 'es_forward_backlog_events') : 0;
    const stored = Object.values(KEYS).reduce((n, t) => n + h.storedIds(data, t).length, 0);
    if (backlog === 0 && stored === sent.size && legacy.events.length >= sent.size) break;
    await h.sleep(100);
  }
  const ids = legacy.ids();
  assert.equal(ids.length, new Set(ids).size, `${step}: legacy got a messageId twice`);
  assert.deepEqual([...new Set(ids)].sort(), [...sent.keys()].sort(), `${step}: legacy is missing events`);
  const csv = h.legacyCountsCsv(legacy.events, KEYS);
  writeFileSync(path.join(dir, 'counts.csv'), csv);
  const r = h.esctl(['reconcile', '--data', data, '--legacy', path.join(dir, 'counts.csv'), '--by', 'hour']);
  const perTenant = Object.values(KEYS).map((t) =>
    `${t}: sent ${[...sent.values()].filter((x) => x === t).length}, ` +
    `legacy ${legacy.events.filter((e) => KEYS[e.key] === t).length}, ` +
    `store ${h.storedIds(data, t).length}`).join('; ');
  console.log(`rehearsal ${step}: ${perTenant}\n  ${r.stdout.trim().split('\n').pop()} (exit ${r.status})`);
  assert.equal(r.status, 0, r.stdout + r.stderr);
}

before(async () => {
  dir = h.scratchDir();
  data = path.join(dir, 'data');
  writeFileSync(path.join(dir, 'tokens.json'), JSON.stringify([TOKEN]));
  writeKeys([]);
  legacy = await new h.Legacy().up();
  nginxPort = await h.freePort();
});

after(async () => {
  if (nginx) await h.stopProc(nginx.proc);
  if (srv) await h.stopProc(srv.proc, 'SIGKILL');
  if (legacy) await legacy.down();
  h.removeDir(dir);
});

test('shadow -> per-tenant primary -> rollback -> primary -> legacy off', async () => {
  // 1. shadow: legacy answers, nginx mirrors to es-ingestd
  await startIngestd(false);
  await proxy('segment-shadow.conf');
  await traffic('1-shadow', 150);
  await checkpoint('1-shadow');

  // 2. acme cut over: keys file marks it primary (SIGHUP would do; the
  //    restart adds --forward), nginx routes its key to es-ingestd
  writeKeys(['acme']);
  await h.stopServer(srv);
  await startIngestd(true);
  srv.forward = true;
  await proxy('segment-cutover.conf');
  const map = (await (await fetch(srv.url + '/v1/admin/cutover/nginx-map',
    { headers: { Authorization: `Bearer ${TOKEN}` } })).text());
  assert.match(map, new RegExp(`"${h.basic('key-acme')}" primary;`));
  assert.match(map, /^"key-acme" primary;$/m);
  assert.doesNotMatch(map, /key-beta/);
  assert.doesNotMatch(map, new RegExp(h.basic('key-beta')));
  const beforeFwd = await h.metric(srv.url, 'es_forward_events_total{status="sent"}');
  await traffic('2-acme-primary', 150);
  await checkpoint('2-acme-primary');
  const forwarded = await h.metric(srv.url, 'es_forward_events_total{status="sent"}') - beforeFwd;
  assert.equal(forwarded, 150, 'only acme (primary) was forwarded; beta copies were not');
  console.log(`rehearsal 2-acme-primary: es-ingestd answered acme's 150 and forwarded ${forwarded} ` +
              `to legacy; beta's 150 were answered by legacy and mirrored (not forwarded)`);

  // 3. rollback: nginx back to the shadow config; nothing acme sent while
  //    primary is missing at legacy (checkpoint)
  await proxy('segment-shadow.conf');
  await traffic('3-rollback', 100);
  await checkpoint('3-rollback');

  // 4. every tenant primary (segment-primary.conf), then legacy off: the
  //    SDK goes on, es-ingestd queues for legacy until it is retired
  await proxy('segment-primary.conf');
  await traffic('4-all-primary', 100);
  await checkpoint('4-all-primary');
  await legacy.down();
  const n0 = sent.size;
  await traffic('5-legacy-off', 50);
  const stored = Object.values(KEYS).reduce((n, t) => n + h.storedIds(data, t).length, 0);
  const backlog = await h.metric(srv.url, 'es_forward_backlog_events');
  console.log(`rehearsal 5-legacy-off: SDK sent ${sent.size - n0} more, all answered by ` +
              `es-ingestd; store ${stored}; forward backlog ${backlog} (stop --forward to retire legacy)`);
  assert.equal(stored, sent.size);
  assert.equal(backlog, sent.size - n0);
});
