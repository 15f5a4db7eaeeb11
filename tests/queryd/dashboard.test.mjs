// The dashboard in headless Chromium (Debian's chromium driven by
// playwright-core): after an hour of sample traffic sent with
// @segment/analytics-node, the page opened with only the tenant's token
// shows the chart, totals, top pages and rules; an event sent after the
// page loaded appears in its feed within 2 s, a rule crossing in its
// firings; the token survives a reload but not a new session.  Then the
// marketer's panels: time ranges (1 h, 24 h, 7 d, custom) with the bucket
// and every panel following them, the clock in UTC or the browser's zone
// (named), top events, referrers, UTM source/medium/campaign, devices and
// browsers compared with counts the test makes itself from what it sent
// and with the API's rollup answers to the same specs, a click
// from a visitor to their stitched timeline and from an event to its
// payload, segment sizes per person, and the firings card agreeing with
// its list.  Logs each panel's query time.  Saves a screenshot (argv
// SCREENSHOT; docs/dashboard.png is one).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as h from './lib.mjs';

h.requireNodeModules();
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  console.log(`FAIL: no Chromium at ${CHROMIUM} (scripts/deps.sh installs Debian's chromium)`);
  process.exit(1);
}
const require = createRequire(import.meta.url);
const { Analytics } = require('@segment/analytics-node');
const { chromium } = require('playwright-core');

const RUN = Date.now().toString(36);
let dir, s, q, browser, sdk;

function send(fn, params) {
  return new Promise((resolve, reject) => sdk[fn](params, (e) => (e ? reject(e) : resolve())));
}

const UAS = [
  ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36', 'desktop', 'Chrome'],
  ['Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0', 'desktop', 'Firefox'],
  ['Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1', 'mobile', 'Safari'],
  ['Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36', 'mobile', 'Chrome'],
  ['Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1', 'tablet', 'Safari'],
];
const REFS = ['', 'https://news.example/item?id=1', 'https://www.google.com/', 'https://acme.example/'];
const CAMPAIGN = '?utm_source=newsletter&utm_medium=email&utm_campaign=december';
const sentLog = []; // what the sample sent: { ts, type, event, visitor, ua, referrer, url }
let t0Sample;

// An hour of traffic, oldest first: pages, clicks, sign-ups, with user
// agents, referrers and campaign links; and 40 older events (3 and 5
// days ago) for the wider ranges.
async function sampleTraffic() {
  const bulk = new Analytics({ writeKey: h.WRITE_KEY.acme, host: s.ingestUrl,
                               flushInterval: 20, maxEventsInBatch: 100 });
  const paths = ['/', '/pricing', '/docs', '/blog/launch', '/signup', '/docs/api'];
  const now = Date.now();
  const sent = [];
  let seed = 7;
  const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return (seed >>> 16) % n; };
  for (let i = 0; i < 400; i++) {
    const ts = new Date(now - 3600e3 + (i / 400) * 3590e3 + rnd(5000));
    const vn = rnd(60);
    const visitor = `anon-${vn}`;
    const ua = UAS[vn % UAS.length];
    const kind = rnd(10);
    const path = paths[Math.min(rnd(8), 5)];
    const referrer = REFS[rnd(REFS.length)];
    const url = `https://acme.example${path}${rnd(4) === 0 ? CAMPAIGN : ''}`;
    const context = { userAgent: ua[0] };
    const p = kind < 6
      ? ['page', { anonymousId: visitor, name: 'Page', timestamp: ts,
                   properties: { path }, context: { ...context, page: { path, url, referrer } } }]
      : kind < 9
        ? ['track', { anonymousId: visitor, event: kind < 8 ? 'Clicked CTA' : 'Signed Up', timestamp: ts, context }]
        : ['identify', { anonymousId: visitor, userId: `user-${visitor}`, timestamp: ts, context }];
    sentLog.push({ ts: ts.getTime(), type: p[0], event: p[1].event, visitor, ua,
                   referrer: p[0] === 'page' ? referrer : null, url: p[0] === 'page' ? url : null });
    sent.push(new Promise((resolve, reject) =>
      bulk[p[0]](p[1], (e) => (e ? reject(e) : resolve()))));
  }
  for (let i = 0; i < 40; i++) {
    const ts = new Date(now - (i < 20 ? 3 : 5) * 86400e3 + i * 60e3);
    sent.push(new Promise((resolve, reject) =>
      bulk.track({ anonymousId: `old-${i % 7}`, event: 'Old Event', timestamp: ts },
                 (e) => (e ? reject(e) : resolve()))));
  }
  t0Sample = now;
  await Promise.all(sent);
  await bulk.closeAndFlush();
  return sent.length;
}

before(async () => {
  dir = h.scratchDir();
  h.putRule(dir, 'acme', { name: 'pricing-2x', match: { type: 'page', path: '/pricing' },
                           atLeast: 2, within: '1h' });
  h.putRule(dir, 'acme', { name: 'signed-up', match: { type: 'track', event: 'Signed Up' },
                           atLeast: 1, within: '1d' });
  s = await h.startServers(dir);
  q = s.query;
  sdk = new Analytics({ writeKey: h.WRITE_KEY.acme, host: s.ingestUrl,
                        flushInterval: 5, maxEventsInBatch: 1 });
  const n = await sampleTraffic();
  // all of it visible to es-queryd before the page opens
  for (let t0 = Date.now(); ; await h.sleep(50)) {
    const r = await h.call(q, '/v1/query', { token: h.TOKEN.acme, body: {} });
    if (r.body?.rows[0]?.count >= n) break;
    if (Date.now() - t0 > 5000) throw new Error(`sample traffic not visible: ${r.text}`);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM,
                                    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
});

after(async () => {
  await browser?.close();
  await sdk?.closeAndFlush();
  if (s) {
    const codes = await h.stopServers(s);
    assert.deepEqual(codes, s.procs.map(() => 0));
  }
  h.removeDir(dir);
});

test('the dashboard shows live data with only the token', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(q.url + '/');
  await page.fill('#token', h.TOKEN.acme);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#conn.good', { timeout: 5000 });
  assert.equal(await page.textContent('#tenant'), 'acme');
  await page.waitForFunction(() => document.querySelectorAll('#chart rect').length > 20, null, { timeout: 5000 });
  assert.match(await page.textContent('#events-hour'), /^[1-9][\d,]*$/);
  assert.match(await page.textContent('#uniques-hour'), /[1-9]/);
  assert.ok(await page.locator('#pages tr').count() >= 3, 'top pages');
  assert.equal(await page.textContent('#segments tr[data-rule="pricing-2x"] td:first-child'), 'pricing-2x');

  // an event sent after the page loaded appears in the feed within 2 s
  const id = `dash-${RUN}`;
  await send('track', { userId: 'dash-user', event: 'Dashboard Check', messageId: id });
  const t0 = performance.now();
  await page.waitForSelector(`#feed tr[data-message-id="${id}"]`, { timeout: 2000 });
  const ms = performance.now() - t0;
  console.log(`dashboard (${h.MODE}): event acknowledged -> on the page in ${ms.toFixed(0)} ms`);
  assert.ok(ms <= 2000);
  assert.match(await page.textContent(`#feed tr[data-message-id="${id}"]`), /Dashboard Check.*dash-user/);

  // a rule crossing appears among the firings
  await send('page', { anonymousId: `vis-${RUN}`, properties: { path: '/pricing' } });
  await send('page', { anonymousId: `vis-${RUN}`, properties: { path: '/pricing' } });
  await page.waitForSelector(`#firings li:has-text("vis-${RUN}")`, { timeout: 2000 });

  // the token is kept for the tab (reload) and not beyond (new session)
  await page.reload();
  await page.waitForSelector('#conn.good', { timeout: 5000 });
  assert.equal(await page.isHidden('#login'), true);
  await page.waitForFunction(() => document.querySelectorAll('#chart rect').length > 20, null, { timeout: 5000 });
  await page.waitForSelector(`#feed tr[data-message-id="${id}"]`, { timeout: 2000 });
  if (h.SCREENSHOT) await page.screenshot({ path: h.SCREENSHOT, fullPage: true });
  const other = await (await browser.newContext()).newPage();
  await other.goto(q.url + '/');
  await other.waitForSelector('#login', { state: 'visible', timeout: 5000 });
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('a wrong token is refused and asked again', async () => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(q.url + '/');
  await page.fill('#token', 'tok-nobody-000000');
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#login-error:has-text("not valid")', { timeout: 5000 });
  assert.equal(await page.isHidden('#dash'), true);
});

// the text of each row of a table body, cells joined by |
async function rows(page, id) {
  return page.$$eval(`#${id} tr`, (trs) => trs.map((tr) =>
    [...tr.cells].map((c) => c.textContent).join('|')));
}

async function settle(page, expectBucket) {
  // one refresh after the change has finished: the bucket name says which
  try {
    await page.waitForFunction((b) => document.getElementById('bucket-name').textContent === b,
                               expectBucket, { timeout: 5000 });
  } catch (e) {
    const st = await page.evaluate(() => [document.getElementById('bucket-name').textContent,
      document.getElementById('range-error').textContent, document.getElementById('from').value,
      document.getElementById('to').value, JSON.stringify(custom)].join(' / '));
    throw new Error(`the page did not switch to ${expectBucket} buckets: ${st}`);
  }
  await page.evaluate(() => refresh());
}

const num = (s) => Number(String(s).replace(/[^\d]/g, ''));

test('time ranges, clock, sources, devices, drill-down, segments', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1500 },
                                         timezoneId: 'America/New_York' });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(q.url + '/');
  await page.fill('#token', h.TOKEN.acme);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#conn.good', { timeout: 5000 });
  await page.waitForFunction(() => document.querySelectorAll('#chart rect').length > 20, null, { timeout: 5000 });
  assert.equal(await page.textContent('#clock'), 'times in UTC');

  // 24 h: hourly buckets; the sample's hour but not the older events
  await page.selectOption('#range', '24h');
  await settle(page, 'hour');
  const day = num(await page.textContent('#events-hour'));
  assert.ok(day >= 400, `24 h holds the sample: ${day}`);
  assert.ok(!(await rows(page, 'top-events')).some((r) => r.startsWith('Old Event')));
  const inDay = sentLog.filter((e) => e.ts >= t0Sample - 86400e3);
  // referrers and campaigns (page views), devices and browsers (events,
  // visitors), counted here from what the test sent
  const views = (pred) => inDay.filter((e) => e.type === 'page' && pred(e)).length;
  const refRows = await rows(page, 'referrers');
  const newsViews = views((e) => e.referrer.startsWith('https://news.example/'));
  assert.ok(refRows.some((r) => r.startsWith(`news.example|${newsViews}|`)), refRows.join('; '));
  assert.ok(refRows.some((r) => r.startsWith(`(internal)|${views((e) => e.referrer.startsWith('https://acme.example/'))}|`)), refRows.join('; '));
  const campViews = views((e) => e.url.endsWith(CAMPAIGN));
  for (const [id, v] of [['utm-source', 'newsletter'], ['utm-medium', 'email'], ['utm-campaign', 'december']]) {
    const r = await rows(page, id);
    assert.ok(r.some((x) => x.startsWith(`${v}|${campViews}|`)), `${id}: ${r.join('; ')}`);
  }
  const by = (i, v) => inDay.filter((e) => e.ua[i] === v);
  const near = (got, want) => Math.abs(got - want) <= Math.max(1, want * 0.03); // HLL
  for (const [id, i, values] of [['devices', 1, ['desktop', 'mobile', 'tablet']],
                                  ['browsers', 2, ['Chrome', 'Firefox', 'Safari']]]) {
    const r = await rows(page, id);
    for (const v of values) {
      const row = r.find((x) => x.startsWith(`${v}|`));
      assert.ok(row, `${v}: ${r.join('; ')}`);
      const [, events, visitors] = row.split('|');
      assert.equal(num(events), by(i, v).length, `${v} events: ${row}`);
      const want = new Set(by(i, v).map((e) => e.visitor)).size;
      assert.ok(near(num(visitors), want), `${v} visitors: ${row}, sent ${want}`);
    }
  }
  // every such table shows what the API answers for the spec the page
  // asked, and the API answered it from rollups (the range's whole
  // minutes; the partial minute at "now" is scanned: "mixed")
  const asked = await page.evaluate(() => dimAsked);
  for (const id of ['referrers', 'utm-source', 'utm-medium', 'utm-campaign', 'devices', 'browsers']) {
    const spec = asked[id];
    const api = await h.call(q, '/v1/query', { token: h.TOKEN.acme, body: spec });
    assert.equal(api.status, 200, api.text);
    assert.ok(['rollup', 'mixed'].includes(api.body.source), `${id}: ${api.text}`);
    const dim = spec.groupBy[0];
    const want = api.body.rows.filter((x) => x[dim] !== null).slice(0, spec.limit - 1)
      .map((x) => `${x[dim]}|${x.count.toLocaleString('en-US')}|${x.uniques.toLocaleString('en-US')}`);
    assert.deepEqual(await rows(page, id), want.length ? want : ['none in the range'], id);
  }
  // top events: the track events the test sent in the range
  const evRows = await rows(page, 'top-events');
  const clicks = inDay.filter((e) => e.event === 'Clicked CTA').length;
  assert.ok(evRows.some((r) => r.startsWith(`Clicked CTA|${clicks}|`)), evRows.join('; '));

  // 7 d: daily buckets, 40 more events, "Old Event" among the top events
  await page.selectOption('#range', '7d');
  await settle(page, 'day');
  assert.equal(num(await page.textContent('#events-hour')), day + 40);
  assert.ok((await rows(page, 'top-events')).some((r) => r.startsWith('Old Event|40|7')));
  assert.ok(await page.locator('#chart rect').count() >= 3);

  // custom, in the browser's local time (America/New_York, named on screen):
  // 6 to 2 days ago holds exactly the 40 older events
  await page.selectOption('#tz', 'local');
  await page.waitForFunction(() => /local time \(UTC−05:00\)/.test(document.getElementById('clock').textContent),
                             null, { timeout: 5000 });
  // times already on the page are written again in that clock
  const [ts, shown] = await page.$eval('#feed tr td[data-ts]', (e) => [Number(e.dataset.ts), e.textContent]);
  assert.equal(shown, new Date(ts - 5 * 3600e3).toISOString().slice(11, 19));
  await page.selectOption('#range', 'custom');
  const local = (ms) => {
    const d = new Date(ms - 5 * 3600e3); // New York in December is UTC−5
    return d.toISOString().slice(0, 16);
  };
  await page.fill('#from', local(t0Sample - 6 * 86400e3));
  await page.fill('#to', local(t0Sample - 2 * 86400e3));
  await page.click('#apply');
  await settle(page, 'hour'); // 4 days: hours (days beyond)
  assert.equal(num(await page.textContent('#events-hour')), 40);
  assert.equal(await page.locator('#pages tr').count(), 0);
  assert.deepEqual(await rows(page, 'top-events'), ['Old Event|40|7']);
  assert.ok((await page.textContent('.range-name')).includes(' – '));
  // a short custom range gets minute buckets
  await page.fill('#from', local(t0Sample - 30 * 60e3));
  await page.fill('#to', local(t0Sample));
  await page.click('#apply');
  await settle(page, 'minute');
  const minute = (ms) => Math.floor(ms / 60e3) * 60e3; // the inputs have minutes
  // es-ingestd corrects each timestamp by the batch's delivery delay
  // (receivedAt - sentAt), so an event sent within a moment of a bound
  // may be stored on either side of it
  const within = (lo, hi) => inDay.filter((e) => e.ts >= lo && e.ts < hi).length;
  const [hlo, hhi] = [minute(t0Sample - 30 * 60e3), minute(t0Sample)];
  const inHalf = num(await page.textContent('#events-hour'));
  const [fewest, most] = [within(hlo + 5e3, hhi - 5e3), within(hlo - 5e3, hhi + 5e3)];
  assert.ok(inHalf >= fewest && inHalf <= most, `${fewest} <= ${inHalf} <= ${most}`);
  assert.ok(fewest > 100, `the half hour holds events (${fewest})`);
  // a backwards range is refused on the page
  await page.fill('#from', local(t0Sample));
  await page.fill('#to', local(t0Sample - 60e3));
  await page.click('#apply');
  await page.waitForSelector('#range-error:has-text("before")', { timeout: 2000 });

  // a visitor's stitched timeline, and an event's payload
  const run = `st-${RUN}`;
  await send('page', { anonymousId: run, properties: { path: '/stitch' } });
  await send('identify', { anonymousId: run, userId: `u${run}` });
  await send('track', { userId: `u${run}`, event: 'Stitched', messageId: `m${run}` });
  const row = `#feed tr[data-message-id="m${run}"]`;
  await page.waitForSelector(row, { timeout: 3000 });
  await page.click(`${row} td.visitor`);
  await page.waitForFunction(() => document.querySelectorAll('#timeline tr').length >= 3, null, { timeout: 5000 });
  const tl = await rows(page, 'timeline');
  assert.equal(tl.length, 3, tl.join('; '));
  assert.ok(tl.some((r) => r.includes('/stitch')) && tl.some((r) => r.includes('Stitched')), tl.join('; '));
  await page.click('#timeline tr:has-text("Stitched")');
  const payload = JSON.parse(await page.textContent('#detail pre.payload'));
  assert.equal(payload.messageId, `m${run}`);
  assert.equal(payload.userId, `u${run}`);
  await page.click('#detail-close');
  await page.click(`${row} td:nth-child(2)`);
  assert.equal(JSON.parse(await page.textContent('#detail pre.payload')).event, 'Stitched');
  await page.click('#detail-close');

  // segment sizes are persons, as /v1/segments/{rule}/members answers
  await page.selectOption('#range', '1h');
  await settle(page, 'minute');
  // (members leave as their events age out of the rule's window, so the
  // page's count, taken between two reads of the API, lies between them)
  const persons = async (rule) =>
    (await h.call(q, `/v1/segments/${rule}/members`, { token: h.TOKEN.acme })).body.persons.length;
  for (const rule of ['pricing-2x', 'signed-up']) {
    const before = await persons(rule);
    await page.evaluate(() => refresh());
    const shown = num(await page.textContent(`#segments tr[data-rule="${rule}"] td:nth-child(3)`));
    const after = await persons(rule);
    assert.ok(shown <= before && shown >= after, `${rule}: ${after} <= ${shown} <= ${before}`);
    assert.ok(shown > 0, rule);
  }
  await page.click('#segments tr[data-rule="pricing-2x"]');
  const members = await page.locator('#members li').count();
  assert.equal(members, num(await page.textContent('#segments tr[data-rule="pricing-2x"] td:nth-child(3)')));
  await page.click('#members li >> nth=0');
  await page.waitForSelector('#timeline tr', { timeout: 5000 });
  await page.click('#detail-close');

  // the firings card counts what its list shows since page load
  const vis = `fire-${RUN}`;
  await send('page', { anonymousId: vis, properties: { path: '/pricing' } });
  await send('page', { anonymousId: vis, properties: { path: '/pricing' } });
  await page.waitForSelector(`#firings li.fresh:has-text("${vis}")`, { timeout: 3000 });
  const fresh = await page.locator('#firings li.fresh').count();
  assert.ok(fresh >= 1);
  assert.equal(num(await page.textContent('#firings-count')), fresh);
  assert.equal(num(await page.textContent('#firings-fresh')), fresh);

  // each panel's query time, as the page measured it (fetch to answer)
  await page.selectOption('#tz', 'utc');
  await page.selectOption('#range', '7d');
  await settle(page, 'day');
  const qt = await page.$$eval('.qt', (es) => es.map((e) => `${e.dataset.panel} ${e.textContent}`));
  console.log(`dashboard (${h.MODE}) query time per panel, 7 d range: ${qt.join(', ')}`);
  for (const t of qt) assert.match(t, /\d+ ms$/);
  if (h.SCREENSHOT) await page.screenshot({ path: h.SCREENSHOT.replace(/\.png$/, '-7d.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await ctx.close();
});

// Members of pricing-2x at time t, counted here from what the sample sent
// (visitor ids with two /pricing views in (t - 1 h, t]; the sample's page
// views carry anonymous ids only, so an id is a person), plus the two
// visitors the firings checks of the tests above made members with two
// views each, minutes ago (vis-RUN, fire-RUN).
function pricingMembers(t) {
  const views = new Map();
  for (const e of sentLog)
    if (e.type === 'page' && new URL(e.url).pathname === '/pricing' && e.ts > t - 3600e3 && e.ts <= t)
      views.set(e.visitor, (views.get(e.visitor) || 0) + 1);
  return [...views.values()].filter((n) => n >= 2).length + 2;
}

test('segment members over time: a point per hour, kept across a restart', async () => {
  // a clean stop flushes the tenant and saves the rule state with this
  // hour's point: the member count at that moment
  const hourOf = (ms) => new Date(Math.floor(ms / 3600e3) * 3600e3).toISOString().replace('.000Z', 'Z');
  const hours = [hourOf(Date.now())];
  const before = pricingMembers(Date.now());
  const codes = await h.stopServers(s);
  assert.deepEqual(codes, s.procs.map(() => 0));
  s = null;
  const after = pricingMembers(Date.now());
  hours.push(hourOf(Date.now()));
  s = await h.startServers(dir);
  q = s.query;
  const api = await h.call(q, '/v1/segments/pricing-2x/members/series', { token: h.TOKEN.acme });
  assert.equal(api.status, 200, api.text);
  const last = api.body.points.at(-1);
  assert.ok(last, api.text);
  assert.ok(hours.includes(last.t), `${last.t} in ${hours}: ${api.text}`);
  assert.ok(last.members >= after && last.members <= before, `${after} <= ${last.members} <= ${before}`);
  assert.ok(api.body.now && api.body.now.members >= 0, api.text);
  // a point for every ended hour of the last day, those without a flush
  // computed from the rule's state ("estimated"); ascending
  const cur = Math.floor(Date.now() / 3600e3) * 3600e3;
  const dayFrom = cur - 23 * 3600e3;
  const day = await h.call(q, `/v1/segments/pricing-2x/members/series?from=${new Date(dayFrom).toISOString()}`,
                           { token: h.TOKEN.acme });
  assert.equal(day.status, 200, day.text);
  const at = day.body.points.map((p) => Date.parse(p.t));
  for (let t = dayFrom; t < cur; t += 3600e3)
    assert.ok(at.includes(t), `hour ${new Date(t).toISOString()} has a point: ${day.text}`);
  assert.ok(at.every((t, i) => i === 0 || t > at[i - 1]), day.text);
  assert.ok(day.body.points.filter((p) => p.estimated).length >= 20, day.text);
  // bounds and errors
  const none = await h.call(q, `/v1/segments/pricing-2x/members/series?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z`,
                            { token: h.TOKEN.acme });
  assert.deepEqual(none.body, { rule: 'pricing-2x', points: [] });
  assert.equal((await h.call(q, '/v1/segments/nope/members/series', { token: h.TOKEN.acme })).status, 404);
  assert.equal((await h.call(q, '/v1/segments/pricing-2x/members/series?from=yesterday',
                             { token: h.TOKEN.acme })).status, 400);

  // the segments card draws the points the API gives, then the count now
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // (members leave as their events age out of the 1-h window: the page's
  // count now lies between two reads of the API around it)
  const persons = async () =>
    (await h.call(q, '/v1/segments/pricing-2x/members', { token: h.TOKEN.acme })).body.persons.length;
  const early = await persons();
  await page.goto(q.url + '/');
  await page.fill('#token', h.TOKEN.acme);
  await page.click('#login button[type=submit]');
  await page.selectOption('#range', '24h');
  const svg = '#segments tr[data-rule="pricing-2x"] svg.series';
  await page.waitForSelector(`${svg} polyline`, { state: 'attached', timeout: 5000 });
  const values = JSON.parse(await page.getAttribute(svg, 'data-values'));
  const late = await persons();
  assert.ok(values.length >= 2, JSON.stringify(values));
  assert.equal(values.at(-2), last.members, JSON.stringify(values));
  assert.ok(values.at(-1) <= early && values.at(-1) >= late, `${late} <= ${values.at(-1)} <= ${early}`);
  const title = await page.textContent(`${svg} title`);
  assert.ok(title.includes(`${last.t.slice(0, 16).replace('T', ' ')} UTC: ${last.members}`), title);
  assert.deepEqual(errors, []);
  await ctx.close();
});
