// The browser SDK end to end: the real @segment/analytics-next bundle
// (its UMD build from node_modules, served by a static server in this
// test: no CDN) runs in Debian's chromium, driven headless by
// playwright-core, and posts to es-ingestd on another loopback port, so
// every request is cross-origin (CORS preflight: the SDK sends an
// Authorization header).  Settings are given inline (cdnSettings), so
// the page makes no request to Segment.  Checked with `esctl scan` after
// a clean SIGTERM: exactly the events the page sent are stored, with the
// browser's anonymousId on each and userId + anonymousId on the
// identify.  Three pages (one browser context each, so three visitors):
// the default delivery (/v1/p, /v1/t, /v1/i), batching (/v1/b), and a
// retry after the server restarted (the SDK adds an X-Retry-Count header,
// which the preflight must allow).  Anything missing is a failure, not a
// skip.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import http from 'node:http';
import path from 'node:path';
import * as h from './lib.mjs';

h.requireNodeModules();
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  console.log(`FAIL: no Chromium at ${CHROMIUM} (scripts/deps.sh installs Debian's chromium)`);
  process.exit(1);
}
const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const SDK_DIR = path.join(path.dirname(require.resolve('@segment/analytics-next/package.json')),
                          'dist', 'umd');
const SDK_VERSION = require('@segment/analytics-next/package.json').version;

let dir, srv, web, browser;
const failures = [];          // page errors and requests that failed, per test

// The page: the SDK's UMD bundle (global AnalyticsNext).  Its lazily
// loaded chunks would come from window.analytics._cdn +
// '/analytics-next/bundles/', so that points here too.
function page() {
  return `<!doctype html><html><head><meta charset="utf-8"><title>shop</title>
<script>window.analytics = { _cdn: location.origin };</script>
<script src="/analytics-next/bundles/index.js"></script>
</head><body><h1>shop</h1></body></html>`;
}

function startWeb() {
  return new Promise((resolve) => {
    const s = http.createServer((req, res) => {
      const url = new URL(req.url, 'http://x');
      const m = /^\/analytics-next\/bundles\/([\w.-]+\.js)$/.exec(url.pathname);
      if (url.pathname === '/favicon.ico') {
        res.writeHead(204);
        res.end();
      } else if (url.pathname === '/shop.html') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        res.end(page());
      } else if (m && existsSync(path.join(SDK_DIR, m[1]))) {
        res.writeHead(200, { 'Content-Type': 'text/javascript' });
        res.end(readFileSync(path.join(SDK_DIR, m[1])));
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    s.listen(0, '127.0.0.1', () => resolve({ server: s,
      url: `http://127.0.0.1:${s.address().port}` }));
  });
}

// Polls fn until it is true; on time-out fails with what the page saw.
async function waitFor(what, fn, v, ms = 15000) {
  for (const t0 = Date.now(); ; await h.sleep(50)) {
    const ok = await fn();
    if (ok) return ok;
    if (Date.now() - t0 > ms)
      throw new Error(`timed out waiting for ${what}; es-ingestd answered: ` +
        JSON.stringify(v.seen.responses.filter((r) => r.url.startsWith(srv.url))) +
        `; failed: ${JSON.stringify(v.seen.failed)}`);
  }
}

// A visitor: a new browser context (own cookies and localStorage, so its
// own anonymousId) on the shop page, every request it makes recorded.
async function visitor(label) {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  const seen = { requests: [], responses: [], failed: [] };
  p.on('pageerror', (e) => failures.push(`${label}: page error ${e}`));
  p.on('console', (m) => { if (m.type() === 'error') seen.failed.push(`console: ${m.text()}`); });
  p.on('request', (r) => seen.requests.push(r.url()));
  p.on('response', (r) => seen.responses.push({ url: r.url(), method: r.request().method(),
                                                status: r.status() }));
  p.on('requestfailed', (r) => seen.failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  await p.goto(web.url + '/shop.html');
  await p.waitForFunction(() => typeof window.AnalyticsNext?.AnalyticsBrowser === 'function',
                          null, { timeout: 10000 });
  return { ctx, page: p, seen };
}

// Loads the SDK in the page with inline settings pointing at es-ingestd.
async function load(v, writeKey, extra = {}) {
  return v.page.evaluate(async ({ writeKey, apiHost, extra }) => {
    // cdnSettings in the first argument replaces the settings request to
    // Segment's CDN; sampleRate 0 keeps the SDK's own telemetry (posted
    // to api.segment.io/v1/m) off.
    const [analytics] = await window.AnalyticsNext.AnalyticsBrowser.load({
      writeKey,
      cdnSettings: {
        integrations: { 'Segment.io': { apiKey: writeKey, apiHost, protocol: 'http', ...extra } },
        metrics: { sampleRate: 0 },
      },
    });
    window.sdk = analytics;
    return { anonymousId: analytics.user().anonymousId(), version: analytics.VERSION };
  }, { writeKey, apiHost: `127.0.0.1:${srv.port}/v1`, extra });
}

// The three calls of the brief, from the page; resolves with whether
// the SDK considers each delivered (ctx.failedDelivery()).
async function sendThree(v, email) {
  return v.page.evaluate(async (email) => {
    const ctxs = [await window.sdk.page(),
                  await window.sdk.track('Signed Up', { plan: 'pro' }),
                  await window.sdk.identify('u-browser', { email })];
    return ctxs.map((c) => ({ type: c.event.type, messageId: c.event.messageId,
                              failed: c.failedDelivery() ? String(c.failedDelivery().reason) : null }));
  }, email);
}

// Every request of the page went to the static server or es-ingestd.
function onlyLoopback(v) {
  const foreign = v.seen.requests.filter((u) => !u.startsWith(web.url + '/') &&
                                                !u.startsWith(srv.url + '/'));
  assert.deepEqual(foreign, [], 'requests outside the two loopback servers');
}

function posts(v, re) {
  return v.seen.responses.filter((r) => r.method === 'POST' && r.url.startsWith(srv.url) &&
                                        re.test(new URL(r.url).pathname));
}

const sent = {};              // tenant -> what the page reported

before(async () => {
  dir = h.scratchDir();
  srv = await h.startServer(dir);
  web = await startWeb();
  browser = await chromium.launch({ executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
});

after(async () => {
  await browser?.close();
  web?.server.close();
  if (srv && srv.proc.exitCode === null && srv.proc.signalCode === null) await h.stopServer(srv);
  h.removeDir(dir);
});

test('standard delivery: page, track, identify posted to /v1/p, /v1/t, /v1/i', async () => {
  const v = await visitor('standard');
  const { anonymousId, version } = await load(v, 'key-acme');
  console.log(`# @segment/analytics-next ${version} (package ${SDK_VERSION}), anonymousId ${anonymousId}`);
  assert.equal(version, SDK_VERSION);
  assert.match(anonymousId, /^[0-9a-f-]{36}$/);
  const calls = await sendThree(v, 'browser@shop.test');
  await waitFor('three 200s from es-ingestd',
                () => posts(v, /^\/v1\/[pti]$/).filter((r) => r.status === 200).length >= 3, v);
  const p = posts(v, /./);
  assert.deepEqual(p.map((r) => `${new URL(r.url).pathname} ${r.status}`).sort(),
                   ['/v1/i 200', '/v1/p 200', '/v1/t 200']);
  assert.deepEqual(calls.map((c) => [c.type, c.failed]),
                   [['page', null], ['track', null], ['identify', null]]);
  assert.deepEqual(v.seen.failed, []);
  onlyLoopback(v);
  sent.acme = { anonymousId, calls };
  await v.ctx.close();
});

test('batching delivery: the same three in one post to /v1/b', async () => {
  const v = await visitor('batching');
  const { anonymousId } = await load(v, 'key-beta',
    { deliveryStrategy: { strategy: 'batching', config: { size: 3, timeout: 500 } } });
  const calls = await sendThree(v, 'batch@shop.test');
  await waitFor('a 200 for /v1/b', () => posts(v, /^\/v1\/b$/).some((r) => r.status === 200), v);
  await h.sleep(300);         // nothing else follows
  assert.deepEqual(posts(v, /./).map((r) => `${new URL(r.url).pathname} ${r.status}`),
                   ['/v1/b 200']);
  assert.deepEqual(calls.map((c) => c.failed), [null, null, null]);
  assert.deepEqual(v.seen.failed, []);
  onlyLoopback(v);
  sent.beta = { anonymousId, calls };
  await v.ctx.close();
});

test('a retry after the server restarted gets through CORS', async () => {
  const v = await visitor('retry');
  const { anonymousId } = await load(v, 'key-gamma');
  // one delivered call first, so the page has used the endpoint before
  const first = await v.page.evaluate(async () => {
    const c = await window.sdk.page();
    return { type: 'page', messageId: c.event.messageId };
  });
  await waitFor('the first page', () => posts(v, /^\/v1\/p$/).some((r) => r.status === 200), v);
  const port = srv.port;
  assert.equal(await h.stopServer(srv), 0);
  const track = await v.page.evaluate(() => {
    // not awaited: it cannot be delivered until the server is back
    const p = window.sdk.track('Signed Up', { plan: 'pro' });
    window.pending = p.then((c) => ({ type: 'track', messageId: c.event.messageId,
                                      failed: c.failedDelivery() ? String(c.failedDelivery().reason) : null }));
    return true;
  });
  assert.ok(track);
  await waitFor('a failed post while the server is down', () => v.seen.failed.length > 0, v);
  srv = await h.startServer(dir, { port });
  await waitFor('the retried track delivered',
                () => posts(v, /^\/v1\/t$/).some((r) => r.status === 200), v, 20000);
  const retried = await v.page.evaluate(() => window.pending);
  assert.equal(retried.failed, null);
  assert.ok(v.seen.failed.every((f) => /ERR_CONNECTION_REFUSED|Failed to fetch/.test(f)),
            v.seen.failed.join('\n'));
  onlyLoopback(v);
  sent.gamma = { anonymousId, calls: [first, retried] };
  await v.ctx.close();
});

test('esctl scan: exactly the events the browser sent, with its ids', async () => {
  assert.deepEqual(failures, []);
  const m = await (await fetch(srv.url + '/metrics')).text();
  assert.match(m, /^es_ingest_requests_total\{code="204"\} [1-9]\d*$/m, 'CORS preflights answered');
  assert.equal(await h.stopServer(srv), 0);

  for (const tenant of ['acme', 'beta']) {
    const { anonymousId, calls } = sent[tenant];
    const got = h.scan(dir, tenant);
    assert.deepEqual(got.map((e) => e.messageId).sort(),
                     calls.map((c) => c.messageId).sort(), `${tenant}: the three messageIds`);
    const by = Object.fromEntries(got.map((e) => [e.type, e]));
    assert.deepEqual(got.map((e) => e.type).sort(), ['identify', 'page', 'track'], tenant);
    for (const e of got) {
      assert.equal(e.anonymousId, anonymousId, `${tenant} ${e.type}: the browser's anonymousId`);
      assert.ok(Date.parse(e.receivedAt) > Date.now() - 120e3, `${tenant} ${e.type}: receivedAt`);
      assert.ok(Math.abs(Date.parse(e.timestamp) - Date.parse(e.receivedAt)) < 60e3,
                `${tenant} ${e.type}: timestamp`);
    }
    assert.equal(by.page.userId ?? null, null, `${tenant}: page before identify has no userId`);
    assert.equal(by.track.event, 'Signed Up');
    assert.equal(by.track.properties.plan, 'pro');
    assert.equal(by.track.userId ?? null, null);
    // the identify links the browser's anonymousId to the user
    assert.equal(by.identify.userId, 'u-browser');
    assert.equal(by.identify.anonymousId, anonymousId);
    assert.equal(by.identify.properties.email, tenant === 'acme' ? 'browser@shop.test' : 'batch@shop.test');
    // the page context the SDK collects from the browser (the store keeps
    // context.page, userAgent and ip: cmd/segment_json.h)
    assert.equal(by.page.context.page.path, '/shop.html');
    assert.equal(by.page.context.page.url, web.url + '/shop.html');
    assert.match(by.page.context.userAgent, /Chrome/);
  }

  const { anonymousId, calls } = sent.gamma;
  const gamma = h.scan(dir, 'gamma');
  assert.deepEqual(gamma.map((e) => e.messageId).sort(), calls.map((c) => c.messageId).sort(),
                   'gamma: the page and the retried track, once each');
  assert.deepEqual(gamma.map((e) => e.type).sort(), ['page', 'track']);
  assert.ok(gamma.every((e) => e.anonymousId === anonymousId));
  assert.equal(gamma.find((e) => e.type === 'track').event, 'Signed Up');
});
