// The loopback cluster of scripts/cluster.sh (s3rver behind the SigV4
// proxy, three es-ingestd --node + es-queryd nodes, Debian's HAProxy) with
// the real @segment/analytics-node sending to 12 tenants through HAProxy,
// while nodes fail (docs/SCALING.md, "What the tests prove").  Roles: P
// is the node holding most tenants, K the next, S the third.
//
//  1. P is paused (SIGSTOP): HAProxy's health check moves its tenants,
//     the other nodes take their leases (after the TTL) and restore them;
//  2. P resumes: a write sent to it directly for a tenant it lost is
//     refused (503), and SIGTERM makes it seal and try to publish what it
//     held: nothing of its old lease generation reaches the bucket after
//     the resume (the fence);
//  3. each tenant's events are on one live node only;
//  3b. K is SIGKILLed mid-stream; sending goes on (503 + Retry-After
//     until S takes its tenants over);
//  4. every event acknowledged (a 200 through HAProxy, attributed to the
//     node that answered by HAProxy's X-Served-By) is looked up through
//     the balancer (es-queryd person timelines): every one exactly once,
//     whichever node acknowledged it (the nodes run in tier s3: what P
//     and K acknowledged and had not published is in their WAL chunks,
//     which the takeovers replay), nothing never sent; the test prints
//     the counts per node (lost must be 0).
//
// argv: cluster.sh, the build directory.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as h from './lib.mjs';

h.requireNodeModules();
const require = createRequire(import.meta.url);
const { Analytics, FetchHTTPClient } = require('@segment/analytics-node');

const [clusterSh, build] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'es-cluster-'));
const dir = path.join(scratch, 'c');
const t0 = Date.now();
const log = (m) => console.log(`cluster.test +${((Date.now() - t0) / 1000).toFixed(1)}s: ${m}`);

function sh(...args) {
  const r = spawnSync('bash', [clusterSh, ...args], {
    env: { ...process.env, ES_BUILD: build, LEASE_TTL_MS: '3000', ES_SYNC: 'none' },
    encoding: 'utf8',
  });
  if (r.status !== 0)
    throw new Error(`cluster.sh ${args.join(' ')}: ${r.status}\n${r.stderr}`);
  return r.stdout;
}

const metrics = async (url) =>
  (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();

// The tenants a node holds, from its /metrics.
async function held(node) {
  try {
    const text = await metrics(node.ingest_url);
    return [...text.matchAll(/^es_cluster_tenant\{tenant="([^"]+)",state="held"\} (\d+)$/gm)]
      .map((m) => ({ tenant: m[1], gen: Number(m[2]) }));
  } catch { return []; }
}

let cluster;
let stopping = false;
const acked = new Map(); // messageId -> { node, tenant }
const sent = new Map();  // tenant -> count of events handed to the SDK

// An HTTP client for the SDK that remembers which node acknowledged
// which events (the SDK itself only says "delivered").
function recordingClient(tenant) {
  const inner = new FetchHTTPClient();
  return {
    async makeRequest(options) {
      const res = await inner.makeRequest(options);
      if (res.status === 200) {
        const node = res.headers.get('x-served-by');
        for (const e of JSON.parse(options.body).batch)
          acked.set(e.messageId, { node, tenant });
      }
      return res;
    },
  };
}

async function stream(key, tenant) {
  const a = new Analytics({ writeKey: key, host: cluster.ingest_url, flushInterval: 40,
                            maxEventsInBatch: 5, maxRetries: 60,
                            httpClient: recordingClient(tenant) });
  let seq = 0;
  while (!stopping) {
    const messageId = `${tenant}-${seq}`;
    a.track({ userId: `${tenant}-u${seq % 8}`, event: 'Order Completed', messageId,
              properties: { seq } });
    seq++;
    await sleep(30);
  }
  sent.set(tenant, seq);
  await a.closeAndFlush({ timeout: 30000 });
}

// Every event of a tenant, through the balancer (its users' timelines).
async function found(token, tenant) {
  const ids = [];
  for (let u = 0; u < 8; u++) {
    const r = await fetch(`${cluster.query_url}/v1/persons/${tenant}-u${u}/timeline?limit=1000`,
                          { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200, `${tenant}: timeline ${r.status}`);
    for (const e of (await r.json()).events) ids.push(e.messageId);
  }
  return ids;
}

async function count(queryUrl, token) {
  const r = await fetch(`${queryUrl}/v1/query`, { method: 'POST', body: '{}',
                        headers: { Authorization: `Bearer ${token}` } });
  if (r.status !== 200) return -1;
  const rows = (await r.json()).rows;
  return rows.length ? rows[0].count : 0;
}

// MANIFEST objects of lease generation gen in s3rver's directory, with
// their modification times.
function manifests(tenant) {
  const d = path.join(dir, 's3rver', 'es-cluster', 'cluster', 'tenants', tenant);
  if (!fs.existsSync(d)) return [];
  return fs.readdirSync(d)
    .filter((f) => /^MANIFEST-[0-9a-f]{16}\._S3rver_object$/.test(f))
    .map((f) => ({ gen: Number(BigInt('0x' + f.slice(9, 25)) >> 40n),
                   mtime: fs.statSync(path.join(d, f)).mtimeMs }));
}

// 4. every acknowledged event through the balancer, exactly once; the
// acknowledged and found counts by the node that acknowledged them.
async function checkAcked(tokenOf) {
  // (es-queryd follows es-ingestd's WAL: the last few may take a moment)
  let seen;
  for (let attempt = 0; attempt < 20; attempt++) {
    seen = new Map();
    for (const [tenant, token] of Object.entries(tokenOf))
      for (const id of await found(token, tenant)) seen.set(id, (seen.get(id) || 0) + 1);
    if ([...acked].every(([id]) => seen.has(id))) break;
    await sleep(250);
  }
  const byNode = {};
  for (const [id, a] of acked) {
    const n = (byNode[a.node] ||= { acked: 0, found: 0 });
    n.acked++;
    const c = seen.get(id) || 0;
    assert.ok(c <= 1, `${id} found ${c} times`);
    if (c === 1) n.found++;
  }
  // found but not acknowledged is allowed (an answer lost, the SDK's
  // retry de-duplicated); found but never sent is not
  for (const id of seen.keys()) {
    const m = /^(tenant\d+)-(\d+)$/.exec(id);
    assert.ok(m && Number(m[2]) < sent.get(m[1]), `${id} found though never sent`);
  }
  const lines = Object.entries(byNode).map(([n, v]) =>
    `${n}: ${v.acked} acknowledged, ${v.found} found, ${v.acked - v.found} lost`);
  log(`by node: ${lines.join('; ')}`);
  const missing = [...acked].filter(([id]) => !seen.has(id));
  log(`lost acknowledged events: ${missing.length}`);
  assert.equal(missing.length, 0, `acknowledged and lost: ${missing.slice(0, 10).map(([id, a]) =>
    `${id} (node ${a.node})`).join(', ')}`);
  return byNode;
}

// The tenants each node holds, once the nodes hold all `count` of them
// (slow under load).
async function allHeld(count) {
  for (const end = Date.now() + 60000; ;) {
    const holders = {};
    for (const n of ['1', '2', '3']) holders[n] = await held(cluster.nodes[n]);
    if (Object.values(holders).flat().length === count) return holders;
    assert.ok(Date.now() < end, 'the tenants were not all taken within 60 s');
    await sleep(100);
  }
}

async function main() {
  cluster = JSON.parse(sh('up', dir).trim().split('\n').pop());
  log(`up: ${Object.keys(cluster.keys).length} tenants`);
  assert.ok(Object.keys(cluster.keys).length >= 12);
  const tokenOf = Object.fromEntries(Object.entries(cluster.tokens).map(([k, t]) => [t, k]));
  const keyOf = Object.fromEntries(Object.entries(cluster.keys).map(([k, t]) => [t, k]));
  const streams = Object.entries(cluster.keys).map(([k, t]) => stream(k, t));
  // every tenant taken by the node HAProxy sends it to (slow under load)
  const holders = await allHeld(Object.keys(tokenOf).length);
  await sleep(2000);
  // roles: P is paused (then stopped), K is killed, S survives; P and K
  // hold tenants (consistent hashing may leave a node without any of 12)
  const order = ['1', '2', '3'].sort((a, b) => holders[b].length - holders[a].length);
  const [P, K, S] = order;
  assert.ok(holders[P].length > 0 && holders[K].length > 0,
            `two nodes hold tenants: ${JSON.stringify(holders)}`);
  const nS = `n${S}`, nK = `n${K}`;

  // 1. pause P; its tenants move
  const before1 = holders[P];
  sh('pause', dir, P);
  log(`node ${P} paused, it held ${before1.map((x) => x.tenant).join(' ')}`);
  for (const end = Date.now() + 60000; ;) {
    const others = [...await held(cluster.nodes[K]), ...await held(cluster.nodes[S])];
    if (before1.every((b) => others.some((o) => o.tenant === b.tenant && o.gen > b.gen))) break;
    assert.ok(Date.now() < end, `node ${P}'s tenants were not taken over within 60 s`);
    await sleep(100);
  }
  log(`node ${P}'s tenants taken over`);
  await sleep(500);

  // 2. resume: refused directly, and nothing of its generation published
  const resumedAt = Date.now();
  sh('resume', dir, P);
  const lost = before1[0];
  const r = await fetch(`${cluster.nodes[P].ingest_url}/v1/track`, {
    method: 'POST', headers: { 'Content-Type': 'application/json',
      Authorization: 'Basic ' + Buffer.from(`${keyOf[lost.tenant]}:`).toString('base64') },
    body: JSON.stringify({ userId: 'late', event: 'Late', messageId: 'late-1' }),
  });
  assert.equal(r.status, 503, `node ${P} accepted a write for ${lost.tenant} after losing it`);
  assert.ok(r.headers.get('retry-after'), 'Retry-After on the refusal');
  const pid1 = Number(fs.readFileSync(path.join(dir, 'pids', `n${P}.ingestd`), 'utf8'));
  process.kill(pid1, 'SIGTERM'); // it seals what it held and tries to upload it
  // until it exits (its log is then complete) or logs the fencing; 120 s,
  // not 30: on a loaded machine its drain took longer than 30 s once
  const fenced = /does not hold its lease: not publishing|lease lost/;
  const n1path = path.join(dir, `n${P}`, 'ingestd.log');
  let n1log = '';
  for (const end = Date.now() + 120000; Date.now() < end;) {
    let alive = true;
    try { process.kill(pid1, 0); } catch { alive = false; }
    n1log = fs.readFileSync(n1path, 'utf8');
    if (!alive || fenced.test(n1log)) break;
    await sleep(100);
  }
  assert.match(n1log, fenced, `node ${P} tried to publish and was fenced`);
  for (const b of before1)
    for (const m of manifests(b.tenant))
      assert.ok(!(m.gen === b.gen && m.mtime > resumedAt),
                `${b.tenant}: node ${P} published under its lost generation ${b.gen}`);
  log(`node ${P} resumed: refused, fenced, stopped`);

  // 3. each tenant on one live node only
  await sleep(1500);
  for (const [tenant, token] of Object.entries(tokenOf)) {
    const c2 = await count(cluster.nodes[S].query_url, token);
    const c3 = await count(cluster.nodes[K].query_url, token);
    assert.ok((c2 > 0) !== (c3 > 0), `${tenant}: on node ${S} (${c2}) and node ${K} (${c3})`);
  }
  log('each tenant on one node');

  // 3b. SIGKILL K mid-stream; sending goes on
  const before3 = await held(cluster.nodes[K]);
  sh('kill', dir, K);
  const killedAt = Date.now();
  log(`node ${K} killed, it held ${before3.map((x) => x.tenant).join(' ')}`);
  for (const end = Date.now() + 60000; ;) {
    const h2 = await held(cluster.nodes[S]);
    if (h2.length === Object.keys(tokenOf).length) break;
    assert.ok(Date.now() < end, `node ${K}'s tenants were not taken over within 60 s`);
    await sleep(100);
  }
  log(`node ${S} holds every tenant, ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill`);
  // each takeover's steps, from S's /metrics (docs/SCALING.md)
  const m = await metrics(cluster.nodes[S].ingest_url);
  const val = (name, t, extra = '') => {
    const x = m.match(new RegExp(`^${name}\\{tenant="${t}"${extra}\\} (\\S+)$`, 'm'));
    return x ? Number(x[1]) : NaN;
  };
  for (const { tenant: t } of before3)
    log(`  ${t}: takeover ${val('es_cluster_takeover_seconds', t).toFixed(2)} s (lease ` +
        `${val('es_cluster_takeover_step_seconds', t, ',step="lease"').toFixed(2)}, restore ` +
        `${val('es_cluster_takeover_step_seconds', t, ',step="restore"').toFixed(2)}, replay ` +
        `${val('es_cluster_takeover_step_seconds', t, ',step="replay"').toFixed(2)} s of ` +
        `${val('es_cluster_replayed_events', t)} events)`);
  // the bucket's leases agree (cluster.sh status runs esctl cluster status)
  const leases = sh('status', dir).split('leases in the bucket:\n')[1].trim().split('\n');
  assert.equal(leases.length, Object.keys(tokenOf).length, leases.join('\n'));
  for (const line of leases)
    assert.match(line, new RegExp(`^tenant\\d+ ${nS} generation=\\d+ held `), line);
  await sleep(2000);
  stopping = true;
  await Promise.all(streams);
  log(`sent ${[...sent.values()].reduce((a, b) => a + b, 0)} events, ${acked.size} acknowledged`);

  const byNode = await checkAcked(tokenOf);
  assert.ok(byNode[nS] && byNode[nS].acked > 0, `node ${S} acknowledged events`);
  assert.ok(byNode[nK] && byNode[nK].acked > 0, `node ${K} acknowledged events`);
  console.log('cluster.test: ok');
}

// The drain case (argv[4] 'drain'): the node holding most tenants is
// drained by scripts/cluster.sh drain (HAProxy maint, then esctl cluster
// drain, then it stops) while the SDKs send; each of its tenants is then
// held by another node and nothing acknowledged is lost.
async function drainMain() {
  cluster = JSON.parse(sh('up', dir).trim().split('\n').pop());
  log(`up: ${Object.keys(cluster.keys).length} tenants`);
  const tokenOf = Object.fromEntries(Object.entries(cluster.tokens).map(([k, t]) => [t, k]));
  const streams = Object.entries(cluster.keys).map(([k, t]) => stream(k, t));
  const holders = await allHeld(Object.keys(tokenOf).length);
  await sleep(1500);
  const [D] = ['1', '2', '3'].sort((a, b) => holders[b].length - holders[a].length);
  const node = cluster.nodes[D];
  const admin = fs.readFileSync(cluster.admin_token_file, 'utf8').trim();
  // the admin calls want the admin token: 401 without it or with a write key
  let r = await fetch(`${node.ingest_url}/v1/admin/cluster/drain`, { method: 'POST' });
  assert.equal(r.status, 401, 'drain without a token');
  r = await fetch(`${node.ingest_url}/v1/admin/cluster/drain`, {
    method: 'POST', headers: { Authorization: `Bearer ${Object.keys(cluster.keys)[0]}` } });
  assert.equal(r.status, 401, 'drain with a write key as the token');
  const badToken = path.join(scratch, 'bad-token');
  fs.writeFileSync(badToken, 'adm_not_the_token_0123456789\n');
  const e = spawnSync(path.join(build, 'cmd', 'esctl'),
                      ['cluster', 'drain', '--url', node.ingest_url,
                       '--admin-token-file', badToken], { encoding: 'utf8' });
  assert.equal(e.status, 1, `esctl cluster drain with a wrong token: ${e.status} ${e.stderr}`);
  assert.match(e.stderr, /HTTP 401: the node refused the admin token/);
  assert.equal(e.stdout, '');
  // the two views agree when nothing moved between the reads (a loaded
  // machine can move a tenant between them: read again, a few times)
  const adminView = async () => {
    const a = await fetch(`${node.ingest_url}/v1/admin/cluster`,
                          { headers: { Authorization: `Bearer ${admin}` } });
    assert.equal(a.status, 200);
    return (await a.json()).tenants.filter((t) => t.state === 'held').map((t) => t.tenant).sort();
  };
  let view, before;
  for (let i = 0; i < 20; i++) {
    view = await adminView();
    before = (await held(node)).map((x) => x.tenant).sort();
    const again = await adminView();
    if (JSON.stringify(view) === JSON.stringify(again)) break;
    await sleep(200);
  }
  assert.deepEqual(view, before, 'GET /v1/admin/cluster agrees with /metrics');
  assert.ok(before.length > 0, `node ${D} holds tenants`);
  const gens = Object.fromEntries((await held(node)).map((x) => [x.tenant, x.gen]));
  const out = sh('drain', dir, D);
  log(`node ${D} drained:\n${out.trim()}`);
  const released = [...out.matchAll(/^released (\S+)$/gm)].map((m) => m[1]).sort();
  assert.deepEqual(released, before, 'esctl cluster drain printed every tenant it held');
  assert.doesNotMatch(out, /^failed/m);
  // once drained, its /readyz says not ready, with the reason (before it stops)
  assert.match(out, /^readyz: \{"status":"cluster-drained",.*"reason":"this cluster node was drained[^"]*"\} 503$/m);
  // its tenants are taken by the others (the SDKs' next batches)
  const others = ['1', '2', '3'].filter((n) => n !== D);
  for (const end = Date.now() + 60000; ;) {
    const now = [];
    for (const n of others) now.push(...await held(cluster.nodes[n]));
    if (before.every((t) => now.some((o) => o.tenant === t && o.gen > gens[t]))) break;
    assert.ok(Date.now() < end, `node ${D}'s tenants were not taken over within 60 s`);
    await sleep(100);
  }
  const leases = sh('status', dir).split('leases in the bucket:\n')[1].trim().split('\n');
  assert.equal(leases.length, Object.keys(tokenOf).length, leases.join('\n'));
  for (const line of leases)
    assert.match(line, new RegExp(`^tenant\\d+ n(${others.join('|')}) generation=\\d+ held `), line);
  log(`node ${D}'s tenants held by nodes ${others.join(' and ')} (bucket leases agree)`);
  await sleep(2000);
  stopping = true;
  await Promise.all(streams);
  log(`sent ${[...sent.values()].reduce((a, b) => a + b, 0)} events, ${acked.size} acknowledged`);
  const byNode = await checkAcked(tokenOf);
  assert.ok(byNode[`n${D}`] && byNode[`n${D}`].acked > 0, `node ${D} acknowledged events`);
  console.log('cluster.test drain: ok');
}

// meson's timeout sends SIGTERM: stop the cluster, not only this process
process.on('SIGTERM', () => {
  try { sh('down', dir); } catch { /* not up yet */ }
  process.exit(1);
});
let passed = false;
try {
  await (process.argv[4] === 'drain' ? drainMain() : main());
  passed = true;
} finally {
  stopping = true;
  try { sh('down', dir); } catch (e) { console.error(String(e)); }
  if (!passed) console.log(`cluster.test: scratch kept: ${scratch}`);
  else fs.rmSync(scratch, { recursive: true, force: true });
}
