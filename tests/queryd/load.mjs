// A load measurement of es-queryd (issue 5's "speed"; not a test, not in
// the suite): C clients loop over the dashboard's queries while events
// are posted to the ingest API at a fixed rate; prints the query API's
// p50/p99 per query and the freshness (acknowledged -> queryable) of
// marker events under that load.
//
//   node tests/queryd/load.mjs ES_QUERYD ES_INGESTD ESCTL MODE \
//        [--clients 100] [--seconds 10] [--eps 2000] [--posters 16]
import * as h from './lib.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const CLIENTS = arg('--clients', 100);
const SECONDS = arg('--seconds', 10);
const EPS = arg('--eps', 2000);
const BATCH = 100;

const dir = h.scratchDir();
const s = await h.startServers(dir);
const q = s.query;
const auth = 'Basic ' + Buffer.from('wk-acme:').toString('base64');
const paths = ['/', '/pricing', '/docs', '/blog', '/signup'];
let seq = 0;

function batch(n) {
  const evs = [];
  for (let i = 0; i < n; i++, seq++)
    evs.push(seq % 3 ? { type: 'page', anonymousId: `v${seq % 5000}`, properties: { path: paths[seq % 5] } }
                     : { type: 'track', anonymousId: `v${seq % 5000}`, event: 'Clicked' });
  return JSON.stringify({ batch: evs });
}

async function ingest(body) {
  const r = await fetch(`${s.ingestUrl}/v1/batch`, { method: 'POST', body,
    headers: { 'Content-Type': 'application/json', Authorization: auth } });
  await r.text();
  return r.status;
}

const from = () => new Date(Date.now() - 3600e3 - (Date.now() % 60e3)).toISOString();
const QUERIES = {
  perMinute: () => ['/v1/query', { from: from(), bucket: 'minute', groupBy: ['type'] }],
  uniques: () => ['/v1/query', { from: from(), aggregate: ['count', 'uniques'] }],
  topPages: () => ['/v1/query', { from: from(), filter: { type: 'page' }, groupBy: ['path'],
                                  aggregate: ['count', 'uniques'], order: 'desc', limit: 10 }],
  segments: () => ['/v1/segments', undefined],
};
const lat = Object.fromEntries(Object.keys(QUERIES).map((k) => [k, []]));
let errors = 0;
const end = performance.now() + SECONDS * 1000;

async function client(i) {
  const names = Object.keys(QUERIES);
  for (let n = i; performance.now() < end; n++) {
    const name = names[n % names.length];
    const [p, body] = QUERIES[name]();
    const t0 = performance.now();
    const r = await h.call(q, p, { token: h.TOKEN.acme, body });
    if (r.status !== 200) errors++;
    else lat[name].push(performance.now() - t0);
  }
}

// Several posters share the rate: one request at a time cannot carry
// 50k events/s when each 200 waits for an fsync.
const POSTERS = arg('--posters', 16);
let sentEvents = 0, claimed = 0;
async function poster(t0) {
  while (performance.now() < end) {
    const due = ((performance.now() - t0) / 1000) * EPS;
    if (claimed + BATCH <= due) {
      claimed += BATCH;
      const st = await ingest(batch(BATCH));
      if (st === 200) sentEvents += BATCH;
      else errors++;
    } else {
      await h.sleep(5);
    }
  }
}
async function ingester() {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: POSTERS }, () => poster(t0)));
  return sentEvents;
}

const fresh = [];
async function markers() {
  for (let i = 0; performance.now() < end; i++) {
    const name = `Marker ${i}`;
    await ingest(JSON.stringify({ batch: [{ type: 'track', userId: 'm', event: name }] }));
    const t0 = performance.now();
    for (;;) {
      const r = await h.call(q, '/v1/query', { token: h.TOKEN.acme, body: { filter: { event: name } } });
      if (r.body?.rows?.[0]?.count === 1) break;
      await h.sleep(2);
    }
    fresh.push(performance.now() - t0);
    await h.sleep(200);
  }
}

const [sent] = await Promise.all([ingester(), markers(),
  ...Array.from({ length: CLIENTS }, (_, i) => client(i))]);
const fmt = (a) => {
  a.sort((x, y) => x - y);
  return `n=${a.length} p50 ${h.percentile(a, 50).toFixed(1)} ms p99 ${h.percentile(a, 99).toFixed(1)} ms`;
};
console.log(`mode ${h.MODE}, ${CLIENTS} clients, ${SECONDS} s, ingest ${(sent / SECONDS).toFixed(0)} events/s (target ${EPS}), errors ${errors}`);
for (const [k, a] of Object.entries(lat)) console.log(`  ${k.padEnd(10)} ${fmt(a)}`);
const all = Object.values(lat).flat();
console.log(`  all        ${fmt(all)}  (${(all.length / SECONDS).toFixed(0)} queries/s)`);
console.log(`  freshness  ${fmt(fresh)}`);
await h.stopServers(s);
h.removeDir(dir);
