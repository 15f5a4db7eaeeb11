// Live administration of es-ingestd (docs/INGEST.md, "Administration"),
// and its logs and store metrics, over real HTTP:
//  - the admin API answers 401 without a token, with a wrong one, and to
//    a write key (as Basic user or as Bearer token);
//  - a key rotated by SIGHUP: the old key 401, the new one 200; a bad
//    keys file on SIGHUP keeps the current keys and logs why;
//  - a key rotated by PUT /v1/admin/keys: the same, and the --keys file
//    now holds the new keys (a restart keeps them);
//  - a rule put and deleted through the API on the writer's handle;
//  - the access log: a line per request with method, path, status and
//    tenant, and never a key or a token;
//  - esctl's read commands work beside the running server, a writer is
//    told which process holds the store, and a mistyped --data creates
//    nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as h from './lib.mjs';

const ADMIN = 'admin-token-5d1f0c2a9b7e4c31';
const bearer = (t) => ({ Authorization: `Bearer ${t}` });
const ev = { type: 'track', anonymousId: 'v1', event: 'Signed Up' };

async function admin(srv, method, p, { token = ADMIN, body } = {}) {
  const headers = token ? bearer(token) : {};
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

const track = (srv, key) => h.post(srv, '/v1/track', ev,
  { Authorization: h.basic(key) });

// Resolves once the server's log has grown a line matching re after
// `from` characters.
async function logLine(srv, re, from) {
  for (let i = 0; i < 200; i++) {
    const m = re.exec(srv.log().slice(from));
    if (m) return m;
    await h.sleep(25);
  }
  throw new Error(`no log line ${re} in:\n${srv.log().slice(from)}`);
}

test('keys, tokens and rules change without a restart', async () => {
  const dir = h.scratchDir();
  const keysFile = path.join(dir, 'keys.json');
  writeFileSync(path.join(dir, 'admin.json'), JSON.stringify([ADMIN]));
  let srv;
  try {
    srv = await h.startServer(dir, {
      args: ['--admin-tokens', path.join(dir, 'admin.json'), '--sync', 'none'],
    });
    // 401 for everything but the admin token
    assert.equal((await admin(srv, 'GET', '/v1/admin/keys', { token: null })).status, 401);
    assert.equal((await admin(srv, 'GET', '/v1/admin/keys', { token: 'admin-token-wrong-000000' })).status, 401);
    assert.equal((await admin(srv, 'GET', '/v1/admin/keys', { token: 'key-acme' })).status, 401);
    let res = await fetch(srv.url + '/v1/admin/keys',
      { headers: { Authorization: h.basic('key-acme') } });
    assert.equal(res.status, 401);
    res = await admin(srv, 'GET', '/v1/admin/keys');
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body.keys, h.KEYS);

    // rotation by SIGHUP
    assert.equal((await track(srv, 'key-acme')).status, 200);
    let from = srv.log().length;
    writeFileSync(keysFile, JSON.stringify({ 'key-acme-2': 'acme', 'key-beta': 'beta',
      'key-delta': 'delta' }));
    srv.proc.kill('SIGHUP');
    await logLine(srv, /"msg":"write keys reloaded","keys":3,.*"tenants_new":1/, from);
    assert.equal((await track(srv, 'key-acme')).status, 401);
    assert.equal((await track(srv, 'key-acme-2')).status, 200);
    assert.equal((await track(srv, 'key-delta')).status, 200, 'a new tenant');

    // a bad file keeps the keys and says why
    from = srv.log().length;
    writeFileSync(keysFile, '{"key-x": "not a tenant!"}');
    srv.proc.kill('SIGHUP');
    await logLine(srv, /"msg":"reload refused: keeping the old write keys".*"reason":"key #1/, from);
    assert.equal((await track(srv, 'key-acme-2')).status, 200);

    // rotation through the API; the file follows
    res = await admin(srv, 'PUT', '/v1/admin/keys', { body: { 'key-acme-3': 'acme', 'key-beta': 'beta' } });
    assert.equal(res.status, 200, res.text);
    assert.equal((await track(srv, 'key-acme-2')).status, 401);
    assert.equal((await track(srv, 'key-acme-3')).status, 200);
    assert.deepEqual(JSON.parse(readFileSync(keysFile, 'utf8')),
      { 'key-acme-3': 'acme', 'key-beta': 'beta' });
    res = await admin(srv, 'PUT', '/v1/admin/keys', { body: { '': 'acme' } });
    assert.equal(res.status, 400, res.text);
    res = await admin(srv, 'PUT', '/v1/admin/keys', { body: { [ADMIN]: 'acme' } });
    assert.equal(res.status, 400, 'a write key may not be an admin token');
    assert.equal((await track(srv, 'key-acme-3')).status, 200, 'refused PUTs change nothing');

    // rules on the writer's handle
    const rule = { match: { type: 'track', event: 'Signed Up' }, atLeast: 2, within: '7d' };
    res = await admin(srv, 'PUT', '/v1/admin/tenants/acme/rules/signed-up-2x', { body: rule });
    assert.equal(res.status, 200, res.text);
    res = await admin(srv, 'GET', '/v1/admin/tenants/acme/rules');
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.rules.length, 1);
    assert.equal(res.body.rules[0].name, 'signed-up-2x');
    assert.equal(res.body.rules[0].members, 1, 'v1 sent 5 Signed Up events');
    res = await admin(srv, 'PUT', '/v1/admin/tenants/acme/rules/x', { body: { ...rule, name: 'y' } });
    assert.equal(res.status, 400, res.text);
    res = await admin(srv, 'PUT', '/v1/admin/tenants/acme/rules/x', { body: { ...rule, atLeast: 0 } });
    assert.equal(res.status, 400, res.text);
    assert.match(res.body.error, /atLeast/);
    assert.doesNotMatch(res.body.error, /\.c:\d+/, 'no source locations in answers');
    res = await admin(srv, 'PUT', '/v1/admin/tenants/nobody/rules/x', { body: rule });
    assert.equal(res.status, 404, res.text);
    res = await admin(srv, 'PUT', '/v1/admin/tenants/acme/rules/x', { token: 'key-acme-3', body: rule });
    assert.equal(res.status, 401);

    // esctl beside the server: reads work, a writer is told who holds it
    const data = path.join(dir, 'data');
    const members = execFileSync(h.ESCTL, ['members', '--data', data, '--tenant', 'acme',
      '--rule', 'signed-up-2x'], { encoding: 'utf8' });
    assert.equal(members.trim(), 'v1');
    const flush = spawnSync(h.ESCTL, ['flush', '--data', data], { encoding: 'utf8' });
    assert.equal(flush.status, 1);
    assert.match(flush.stderr, new RegExp(`locked by process ${srv.proc.pid}`));
    assert.match(flush.stderr, /admin API/);
    const typo = spawnSync(h.ESCTL, ['scan', '--data', data + '-typo', '--tenant', 'acme'],
      { encoding: 'utf8' });
    assert.equal(typo.status, 1);
    assert.match(typo.stderr, /no store in/);
    assert.doesNotMatch(typo.stderr, /\.c:\d+/);
    assert.equal(existsSync(data + '-typo'), false, 'a mistyped --data made a store');

    res = await admin(srv, 'DELETE', '/v1/admin/tenants/acme/rules/signed-up-2x');
    assert.equal(res.status, 200, res.text);
    res = await admin(srv, 'DELETE', '/v1/admin/tenants/acme/rules/signed-up-2x');
    assert.equal(res.status, 404, res.text);

    assert.equal(await h.stopServer(srv), 0);
    // the access log: one line per request, no secrets
    const log = srv.log();
    assert.match(log, /"msg":"request","method":"POST","path":"\/v1\/track","status":200,.*"tenant":"acme"/);
    assert.match(log, /"level":"warning","msg":"request","method":"POST","path":"\/v1\/track","status":401,.*"error":"unknown write key"/);
    assert.match(log, /"msg":"request","method":"PUT","path":"\/v1\/admin\/keys","status":200/);
    assert.match(log, /"path":"\/v1\/admin\/tenants\/acme\/rules\/x","status":400,.*"error":"rule: \\"atLeast\\"/);
    assert.match(log, /"path":"\/v1\/admin\/keys","status":400,.*"error":"a write key is also an admin token"/);
    for (const secret of [ADMIN, 'key-acme-2', 'key-acme-3', 'key-delta', 'admin-token-wrong'])
      assert.equal(log.includes(secret), false, `the log shows ${secret}`);
  } finally {
    if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null)
      srv.proc.kill('SIGKILL');
    h.removeDir(dir);
  }
});

test('--access-log off keeps the 4xx/5xx lines only', async () => {
  const dir = h.scratchDir();
  let srv;
  try {
    srv = await h.startServer(dir, { args: ['--access-log', 'off', '--sync', 'none'] });
    assert.equal((await track(srv, 'key-acme')).status, 200);
    assert.equal((await track(srv, 'key-nope')).status, 401);
    // the store's own figures in /metrics (es_stats_get)
    const m = await (await fetch(srv.url + '/metrics')).text();
    assert.match(m, /^es_store_tenants 1$/m, 'acme, the one tenant with events');
    assert.match(m, /^es_store_memtable_bytes [1-9]\d*$/m);
    assert.match(m, /^es_store_wal_bytes [1-9]\d*$/m, 'the acknowledged event is in the WAL');
    assert.match(m, /^es_store_flushes_total 0$/m);
    assert.match(m, /^es_store_merge_seconds_max 0\.000000$/m);
    assert.match(m, /^es_store_failed 0$/m);
    const r = await admin(srv, 'GET', '/v1/admin/keys');
    assert.equal(r.status, 401, 'no --admin-tokens: the admin API is off');
    assert.match(r.body.error, /--admin-tokens/);
    assert.equal(await h.stopServer(srv), 0);
    const lines = srv.log().split('\n').filter((l) => l.includes('"msg":"request"'));
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.ok(lines.every((l) => /"status":401/.test(l)));
  } finally {
    if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null)
      srv.proc.kill('SIGKILL');
    h.removeDir(dir);
  }
});

test('--listen localhost:PORT works and a bad form says what is wanted', async () => {
  const dir = h.scratchDir();
  let srv;
  try {
    srv = await h.startServer(dir, { host: 'localhost', args: ['--sync', 'none'] });
    assert.match(srv.log(), /"msg":"listening","host":"127.0.0.1"/);
    assert.match(srv.log(), /"memory_budget_bytes":268435456/, 'the --memory-budget given (256 MB)');
    assert.equal((await track(srv, 'key-acme')).status, 200);
    assert.equal(await h.stopServer(srv), 0);
    h.removeDir(path.join(dir, 'data'));
    const bad = spawnSync(h.INGESTD, ['--data', path.join(dir, 'data'), '--listen',
      'example.invalid:80', '--keys', path.join(dir, 'keys.json')], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--listen wants IP:PORT .*localhost:8080/);
    assert.equal(existsSync(path.join(dir, 'data')), false, 'the store was created');
    const badKeys = spawnSync(h.INGESTD, ['--data', path.join(dir, 'data'), '--listen',
      '127.0.0.1:0', '--keys', path.join(dir, 'missing.json')], { encoding: 'utf8' });
    assert.equal(badKeys.status, 2);
    assert.equal(existsSync(path.join(dir, 'data')), false, 'the store was created');
  } finally {
    if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null)
      srv.proc.kill('SIGKILL');
    h.removeDir(dir);
  }
});

test('/metrics: per-tenant series for the --metrics-tenants biggest, the rest as ~others', async () => {
  const dir = h.scratchDir();
  let srv;
  try {
    srv = await h.startServer(dir, { args: ['--metrics-tenants', '2', '--sync', 'none'] });
    for (const [key, n] of [['key-acme', 3], ['key-beta', 2], ['key-gamma', 1]])
      for (let i = 0; i < n; i++)
        assert.equal((await track(srv, key)).status, 200);
    let m = await (await fetch(srv.url + '/metrics')).text();
    assert.match(m, /^es_store_degraded 0$/m);
    assert.match(m, /^# TYPE es_store_tenant_rows gauge$/m);
    // No segments yet: ordered by name after bytes, acme and beta by name.
    assert.match(m, /^es_store_tenant_rows\{tenant="acme",in="memtable"\} 3$/m);
    assert.match(m, /^es_store_tenant_rows\{tenant="beta",in="memtable"\} 2$/m);
    assert.match(m, /^es_store_tenant_rows\{tenant="~others",in="memtable"\} 1$/m);
    assert.match(m, /^es_store_tenant_segments\{tenant="acme"\} 0$/m);
    assert.doesNotMatch(m, /tenant="gamma"/);
    assert.equal(await h.stopServer(srv), 0);
    // --metrics-tenants 0: none; after the restart's replay the figures
    // are the same rows, now in segments (the drain flushed them).
    srv = await h.startServer(dir, { args: ['--metrics-tenants', '0', '--sync', 'none'] });
    assert.equal((await track(srv, 'key-acme')).status, 200);
    m = await (await fetch(srv.url + '/metrics')).text();
    assert.doesNotMatch(m, /es_store_tenant_/);
    assert.equal(await h.stopServer(srv), 0);
    srv = await h.startServer(dir, { args: ['--sync', 'none'] });
    assert.equal((await track(srv, 'key-acme')).status, 200);
    m = await (await fetch(srv.url + '/metrics')).text();
    assert.match(m, /^es_store_tenant_rows\{tenant="acme",in="segments"\} 4$/m);
    assert.match(m, /^es_store_tenant_rows\{tenant="acme",in="memtable"\} 1$/m);
    assert.match(m, /^es_store_tenant_segment_bytes\{tenant="acme"\} [1-9]\d*$/m);
  } finally {
    if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null)
      srv.proc.kill('SIGKILL');
    h.removeDir(dir);
  }
});
