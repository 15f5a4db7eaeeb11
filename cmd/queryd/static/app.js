// The es-queryd dashboard: plain DOM and SVG, no library.  The token is
// asked once and kept in sessionStorage (this tab only).  Numbers come
// from POST /v1/query (refreshed every few seconds and soon after the
// live stream reports new events); the feed and trigger firings come from
// the Server-Sent Events of GET /v1/stream.  Every string from the store
// is put in the page with textContent, never parsed as HTML.
'use strict';

const TYPES = ['page', 'track', 'identify', 'screen', 'group', 'alias'];
const COLORS = { page: '#2563eb', track: '#f59e0b', identify: '#10b981',
                 screen: '#8b5cf6', group: '#ec4899', alias: '#64748b' };
const FEED_MAX = 50;
const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem('es-token');
let stream = null;
let refreshTimer = null;
let soonTimer = null;
let firings = 0;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

async function api(path, body) {
  const res = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { Authorization: 'Bearer ' + token,
               'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) { signOut('That token is not valid.'); throw new Error('401'); }
  if (!res.ok) throw new Error(path + ': ' + res.status);
  return res.json();
}

// ------------------------------------------------------ range and clock
//
// The range is [from, to) with `from` on a bucket boundary (UTC minutes,
// hours or days: the store's rollups are UTC); `to` is now for the
// "last ..." ranges.  The clock only changes how times are written.

const RANGES = { '1h': [3600e3, 'minute', 'last hour'],
                 '24h': [86400e3, 'hour', 'last 24 hours'],
                 '7d': [7 * 86400e3, 'day', 'last 7 days'] };
const BUCKET_MS = { minute: 60e3, hour: 3600e3, day: 86400e3 };
let custom = null;   // { from, to } in ms, when the range is custom

function useUtc() { return $('tz').value === 'utc'; }

function offsetName(ms) {
  const m = -new Date(ms).getTimezoneOffset();
  const a = Math.abs(m);
  return `UTC${m < 0 ? '−' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

// "2026-12-06 09:31" (or with seconds) in the chosen clock
function fmt(ms, secs) {
  const d = new Date(ms);
  if (useUtc()) return d.toISOString().slice(0, secs ? 19 : 16).replace('T', ' ');
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
         `${p(d.getHours())}:${p(d.getMinutes())}${secs ? ':' + p(d.getSeconds()) : ''}`;
}

// datetime-local value <-> ms, in the chosen clock
function parseInput(v) {
  if (!v) return NaN;
  return useUtc() ? Date.parse(v + 'Z') : new Date(v).getTime();
}
function toInput(ms) { return fmt(ms).replace(' ', 'T'); }

function bucketFor(span) {
  return span <= 6 * 3600e3 ? 'minute' : span <= 4 * 86400e3 ? 'hour' : 'day';
}

function currentRange() {
  const key = $('range').value;
  if (key === 'custom' && custom) {
    const bucket = bucketFor(custom.to - custom.from);
    const bm = BUCKET_MS[bucket];
    const from = custom.from - (custom.from % bm);
    return { from, to: custom.to, bucket,
             name: `${fmt(custom.from)} – ${fmt(custom.to)}` };
  }
  const [span, bucket, name] = RANGES[key] || RANGES['1h'];
  const now = Date.now();
  const bm = BUCKET_MS[bucket];
  const from = now - span - ((now - span) % bm);
  return { from, to: now, bucket, name };
}

function showClock() {
  const now = Date.now();
  $('clock').textContent = useUtc()
    ? 'times in UTC'
    : `times in this browser's local time (${offsetName(now)}); ` +
      'hour and day buckets are UTC';
}

// ---------------------------------------------------------------- chart

function drawChart(rows, r) {
  const svg = $('chart');
  const W = 960, H = 220, pad = 28;
  const bm = BUCKET_MS[r.bucket];
  const start = r.from;
  const n = Math.max(1, Math.ceil((r.to - start) / bm));
  const stacks = Array.from({ length: n }, () => ({}));
  for (const row of rows) {
    const i = Math.floor((Date.parse(row.bucket) - start) / bm);
    if (i >= 0 && i < n) stacks[i][row.type] = (stacks[i][row.type] || 0) + row.count;
  }
  const totals = stacks.map((s) => Object.values(s).reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const ns = 'http://www.w3.org/2000/svg';
  svg.replaceChildren();
  const bw = (W - pad) / n;
  const when = (i) => r.bucket === 'day' ? fmt(start + i * bm).slice(0, 10)
                    : r.bucket === 'hour' ? fmt(start + i * bm).slice(5)
                    : fmt(start + i * bm).slice(11);
  for (let i = 0; i < n; i++) {
    let y = H - 16;
    for (const t of TYPES) {
      const v = stacks[i][t] || 0;
      if (!v) continue;
      const h = (v / max) * (H - 36);
      const rect = document.createElementNS(ns, 'rect');
      rect.setAttribute('x', pad + i * bw + (bw > 3 ? 1 : 0));
      rect.setAttribute('y', y - h);
      rect.setAttribute('width', Math.max(0.5, bw > 3 ? bw - 2 : bw));
      rect.setAttribute('height', h);
      rect.setAttribute('fill', COLORS[t]);
      const title = document.createElementNS(ns, 'title');
      title.textContent = `${fmt(start + i * bm)} ${t}: ${v}`;
      rect.appendChild(title);
      svg.appendChild(rect);
      y -= h;
    }
  }
  const label = (x, y, text, anchor) => {
    const t = document.createElementNS(ns, 'text');
    t.setAttribute('x', x); t.setAttribute('y', y);
    t.setAttribute('font-size', '11'); t.setAttribute('fill', '#6b7385');
    t.setAttribute('text-anchor', anchor || 'start');
    t.textContent = text;
    svg.appendChild(t);
  };
  label(2, 14, String(max));
  label(2, H - 18, '0');
  const step = Math.max(1, Math.ceil(n / 6));
  for (let i = 0; i < n; i += step) label(pad + i * bw + bw / 2, H - 2, when(i), 'middle');
  const legend = $('legend');
  legend.replaceChildren();
  for (const t of TYPES) {
    if (!rows.some((x) => x.type === t)) continue;
    const s = el('span', t);
    const dot = el('i');
    dot.style.background = COLORS[t];
    s.prepend(dot);
    legend.appendChild(s);
  }
}

// ------------------------------------------------ sources and devices
//
// Referrers, UTM source/medium/campaign, devices and browsers come from
// POST /v1/query grouped by those dimensions (docs/QUERY.md,
// "Dimensions"): the store classifies each event at ingest (referrer
// host, the page URL's utm_ parameters, device type and browser family
// from the user agent, with its own small token matcher) and counts them
// in its per-minute rollups, so each panel reads rollup cells whatever
// the range.  Referrers and campaigns count page views; devices and
// browsers every event.

function personOf(ev) { return ev.userId || ev.anonymousId || ''; }

// A top list: rows of {<key>, count, uniques}; absent values (null) are
// left out (a page view without utm_source has no source).
function fillTop(id, res, key, limit) {
  const tb = $(id);
  tb.replaceChildren();
  const rows = res.rows.filter((row) => row[key] !== null).slice(0, limit);
  for (const row of rows) {
    const tr = el('tr');
    tr.append(el('td', row[key]), el('td', row.count.toLocaleString(), 'num'),
              el('td', row.uniques.toLocaleString(), 'num'));
    tb.appendChild(tr);
  }
  if (!rows.length) {
    const tr = el('tr');
    tr.append(el('td', 'none in the range', 'muted'));
    tb.appendChild(tr);
  }
}

// The query of a dimension's top list over the range (pages only for
// the sources); one more row than shown, for the absent value.
function dimSpec(r, dim, pagesOnly, limit) {
  const spec = { from: new Date(r.from).toISOString(), to: new Date(r.to).toISOString(),
                 groupBy: [dim], aggregate: ['count', 'uniques'], order: 'desc', limit: limit + 1 };
  if (pagesOnly) spec.filter = { type: 'page' };
  return spec;
}

const DIM_PANELS = [
  // [panel (query time), table body, dimension, page views only, rows]
  ['referrers', 'referrers', 'referrer', true, 10],
  ['campaigns', 'utm-source', 'utm_source', true, 5],
  ['campaigns', 'utm-medium', 'utm_medium', true, 5],
  ['campaigns', 'utm-campaign', 'utm_campaign', true, 5],
  ['devices', 'devices', 'device', false, 10],
  ['browsers', 'browsers', 'browser', false, 10],
];

// Each dimension panel; a panel of several queries (campaigns) shows the
// time until its last answer.  dimAsked[table] is the spec of what the
// table shows (read by the dashboard test, which asks the API the same).
const dimAsked = {};
async function dimensions(r) {
  const t0 = performance.now();
  const answers = await Promise.all(DIM_PANELS.map(async ([panel, id, dim, pages, n]) => {
    const spec = dimSpec(r, dim, pages, n);
    const res = await api('/v1/query', spec);
    dimAsked[id] = spec;
    timed(panel, t0);
    return res;
  }));
  DIM_PANELS.forEach(([, id, dim, , n], i) => fillTop(id, answers[i], dim, n));
}

// ------------------------------------------------------------- refreshes

const queryMs = {}; // panel -> ms of its last query (shown, and read by the test)

function timed(panel, t0) {
  const ms = performance.now() - t0;
  queryMs[panel] = ms;
  for (const e of document.querySelectorAll(`.qt[data-panel="${panel}"]`))
    e.textContent = `${ms.toFixed(0)} ms`;
}

async function q(panel, body) {
  const t0 = performance.now();
  const res = await api('/v1/query', body);
  timed(panel, t0);
  return res;
}

// One refresh at a time; a call during one queues a single next one (the
// range may have changed), and its promise settles when that one has.
let refreshing = null, queued = null;
function refresh() {
  if (!refreshing) {
    refreshing = refreshOnce().finally(() => { refreshing = null; });
    return refreshing;
  }
  if (!queued) queued = refreshing.then(() => { queued = null; return refresh(); });
  return queued;
}

async function refreshOnce() {
  const r = currentRange();
  const from = new Date(r.from).toISOString();
  const to = new Date(r.to).toISOString();
  showClock();
  for (const e of document.querySelectorAll('.range-name')) e.textContent = r.name;
  $('bucket-name').textContent = r.bucket;
  try {
    const [perBucket, uniques, pages, events] = await Promise.all([
      q('chart', { from, to, bucket: r.bucket, groupBy: ['type'] }),
      q('totals', { from, to, aggregate: ['count', 'uniques'] }),
      q('pages', { from, to, filter: { type: 'page' }, groupBy: ['path'],
                   aggregate: ['count', 'uniques'], order: 'desc', limit: 10 }),
      q('events', { from, to, filter: { type: 'track' }, groupBy: ['event'],
                    aggregate: ['count', 'uniques'], order: 'desc', limit: 10 }),
      segments(from),
      dimensions(r),
    ]);
    drawChart(perBucket.rows, r);
    const total = uniques.rows[0] || { count: 0, uniques: 0 };
    $('events-hour').textContent = total.count.toLocaleString();
    $('uniques-hour').textContent = (uniques.approx ? '≈' : '') + total.uniques.toLocaleString();
    for (const [id, res, key] of [['pages', pages, 'path'], ['top-events', events, 'event']]) {
      const tb = $(id);
      tb.replaceChildren();
      for (const row of res.rows) {
        const tr = el('tr');
        tr.append(el('td', row[key] ?? '(none)'), el('td', row.count.toLocaleString(), 'num'),
                  el('td', row.uniques.toLocaleString(), 'num'));
        tb.appendChild(tr);
      }
    }
  } catch (e) {
    console.warn('refresh failed', e);
  }
}

// A small line of a segment's member count over time: a point per hour
// (es_rule_series: recorded at a flush, or computed from the rule's state,
// "estimated") and the count now, last.
function seriesEl(series) {
  const ns = 'http://www.w3.org/2000/svg';
  const pts = series.points.map((p) => [Date.parse(p.t), p.members, p.estimated]);
  if (series.now) pts.push([Date.parse(series.now.t), series.now.members]);
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'series');
  svg.setAttribute('width', '120');
  svg.setAttribute('height', '24');
  svg.dataset.values = JSON.stringify(pts.map((p) => p[1]));
  const title = document.createElementNS(ns, 'title');
  title.textContent = pts.length
    ? pts.map((p) => `${new Date(p[0]).toISOString().slice(0, 16).replace('T', ' ')} UTC: ${p[2] ? '≈' : ''}${p[1]}`).join('\n')
    : 'no points yet';
  svg.appendChild(title);
  if (pts.length) {
    const t0 = pts[0][0], t1 = Math.max(pts[pts.length - 1][0], t0 + 1);
    const max = Math.max(1, ...pts.map((p) => p[1]));
    const xy = pts.map(([t, m]) => `${(2 + 116 * (t - t0) / (t1 - t0)).toFixed(1)},${(22 - 20 * m / max).toFixed(1)}`);
    const line = document.createElementNS(ns, pts.length > 1 ? 'polyline' : 'circle');
    if (pts.length > 1) {
      line.setAttribute('points', xy.join(' '));
      line.setAttribute('fill', 'none');
      line.setAttribute('stroke', 'currentColor');
    } else {
      const [x, y] = xy[0].split(',');
      line.setAttribute('cx', x);
      line.setAttribute('cy', y);
      line.setAttribute('r', '2');
    }
    svg.appendChild(line);
  }
  return svg;
}

// The rules and, per rule, its members counted per person (stitched), and
// its member count over the range (points recorded hourly at flushes).
async function segments(from) {
  const t0 = performance.now();
  const segs = await api('/v1/segments');
  const members = await Promise.all(segs.rules.map((r) =>
    api(`/v1/segments/${encodeURIComponent(r.name)}/members`)));
  const series = await Promise.all(segs.rules.map((r) =>
    api(`/v1/segments/${encodeURIComponent(r.name)}/members/series?from=${encodeURIComponent(from)}`)));
  timed('segments', t0);
  const sb = $('segments');
  sb.replaceChildren();
  segs.rules.forEach((r, i) => {
    const m = r.match || {};
    const what = [m.type, m.event, m.path].filter((x) => x).join(' ') || 'any event';
    const tr = el('tr', null, 'row');
    tr.dataset.rule = r.name;
    tr.append(el('td', r.name), el('td', `${what} ≥${r.atLeast}× in ${r.within}`),
              el('td', members[i].persons.length, 'num'));
    const td = el('td');
    td.appendChild(seriesEl(series[i]));
    tr.appendChild(td);
    tr.addEventListener('click', () => showMembers(r.name, members[i]));
    sb.appendChild(tr);
  });
}

function refreshSoon() {
  if (soonTimer) return;
  soonTimer = setTimeout(() => { soonTimer = null; refresh(); }, 700);
}

// ---------------------------------------------------- detail: drill-down

function openDetail(title) {
  $('detail-title').textContent = title;
  $('detail-body').replaceChildren();
  $('detail').hidden = false;
  return $('detail-body');
}

function showPayload(ev) {
  const body = openDetail(`${ev.type} ${ev.event || ev.context?.page?.path || ''} · payload`);
  body.append(el('pre', JSON.stringify(ev, null, 2), 'payload'));
  if (personOf(ev)) {
    const a = el('p', `timeline of ${personOf(ev)}`, 'click');
    a.addEventListener('click', () => showTimeline(personOf(ev)));
    body.append(a);
  }
}

async function showTimeline(person) {
  const body = openDetail(`timeline of ${person}`);
  body.append(el('p', 'loading…', 'muted'));
  const t0 = performance.now();
  let tl;
  try {
    tl = await api(`/v1/persons/${encodeURIComponent(person)}/timeline?limit=200`);
  } catch (e) {
    body.replaceChildren(el('p', `cannot load it: ${e.message}`, 'bad'));
    return;
  }
  timed('timeline', t0);
  const ids = new Set(tl.events.flatMap((e) => [e.userId, e.anonymousId].filter((x) => x)));
  body.replaceChildren(el('p', `${tl.events.length} latest events of this person and every id ` +
                           `linked to it (${[...ids].join(', ')}), newest first. Click one for its payload.`, 'muted'));
  const table = el('table');
  const tb = el('tbody');
  tb.id = 'timeline';
  for (const ev of tl.events) {
    const tr = el('tr', null, 'row');
    tr.append(clockEl('td', Date.parse(ev.timestamp), false, ''), el('td', ev.type),
              el('td', whatOf(ev)), el('td', personOf(ev)));
    tr.addEventListener('click', () => showPayload(ev));
    tb.appendChild(tr);
  }
  table.append(tb);
  body.append(table);
}

function showMembers(rule, res) {
  const body = openDetail(`segment ${rule}: ${res.persons.length} persons`);
  const ul = el('ul', null, 'list');
  ul.id = 'members';
  for (const p of res.persons) {
    const li = el('li', `${p.person}${p.ids.length > 1 ? ' (' + p.ids.join(', ') + ')' : ''}`, 'click');
    li.addEventListener('click', () => showTimeline(p.person));
    ul.appendChild(li);
  }
  body.append(ul);
}

// ----------------------------------------------------------------- feed

// An element showing a time (then `rest`) in the chosen clock; written
// again when the clock changes (retime).  `short`: the time of day only.
function clockEl(tag, ms, short, rest, cls) {
  const e = el(tag, null, cls);
  e.dataset.ts = Number.isNaN(ms) ? '' : String(ms);
  e.dataset.short = short ? '1' : '';
  e.dataset.rest = rest;
  writeClock(e);
  return e;
}
function writeClock(e) {
  const ms = Number(e.dataset.ts);
  const t = e.dataset.ts === '' ? '' : e.dataset.short ? fmt(ms, true).slice(11) : fmt(ms, true);
  e.textContent = t + e.dataset.rest;
}
function retime() { document.querySelectorAll('[data-ts]').forEach(writeClock); }

function whatOf(ev) {
  return ev.type === 'page' || ev.type === 'screen'
    ? (ev.context?.page?.path ?? ev.properties?.path ?? ev.event ?? '')
    : (ev.event ?? '');
}

function feedRow(ev, fresh) {
  const tr = el('tr', null, 'row' + (fresh ? ' new' : ''));
  tr.dataset.messageId = ev.messageId || '';
  const who = el('td', personOf(ev), personOf(ev) ? 'click visitor' : '');
  tr.append(clockEl('td', Date.parse(ev.timestamp), true, ''), el('td', ev.type),
            el('td', whatOf(ev)), who);
  tr.addEventListener('click', (e) => {
    if (e.target === who && personOf(ev)) showTimeline(personOf(ev));
    else showPayload(ev);
  });
  return tr;
}

function addEvents(events, fresh) {
  const tb = $('feed');
  // events arrive newest first; put the oldest in first so the newest ends on top
  for (const ev of [...events].reverse()) {
    if (ev.messageId && tb.querySelector(`tr[data-message-id="${CSS.escape(ev.messageId)}"]`))
      continue;
    tb.prepend(feedRow(ev, fresh));
  }
  while (tb.rows.length > FEED_MAX) tb.deleteRow(tb.rows.length - 1);
}

// The card counts the firings received since the page loaded; the list
// shows every one of them (bold, newest first), then the stream's replay
// of earlier ones (grey, at most 30), so card and list agree.
function addFiring(f, fresh) {
  const t = Date.parse(f.ts);
  const li = clockEl('li', t, false, ` ${f.person} entered ${f.rule} (${f.count}×)`,
                     fresh ? 'fresh' : 'earlier');
  li.dataset.rule = f.rule;
  const list = $('firings');
  if (fresh) {
    list.prepend(li);
    firings++;
    $('firings-count').textContent = firings;
    $('firings-fresh').textContent = firings;
  } else {
    // earlier ones newest first, whatever order the replay comes in
    const after = [...list.querySelectorAll('li.earlier')]
      .find((x) => Number(x.dataset.ts) < t);
    list.insertBefore(li, after || null);
    const earlier = list.querySelectorAll('li.earlier');
    if (earlier.length > 30) earlier[earlier.length - 1].remove();
  }
}

// --------------------------------------------------------------- stream

function connect() {
  if (stream) stream.close();
  $('firings').querySelectorAll('li.earlier').forEach((li) => li.remove()); // replayed again
  stream = new EventSource('/v1/stream?token=' + encodeURIComponent(token));
  stream.addEventListener('hello', (m) => {
    const h = JSON.parse(m.data);
    $('tenant').textContent = h.tenant;
    $('mode').textContent = h.mode;
    $('conn').textContent = 'live';
    $('conn').className = 'good';
  });
  stream.addEventListener('counts', (m) => {
    const c = JSON.parse(m.data);
    $('rate').textContent = c.total.toLocaleString();
    if (c.total > 0) refreshSoon();
  });
  stream.addEventListener('events', (m) => addEvents(JSON.parse(m.data).events, true));
  stream.addEventListener('trigger', (m) => {
    const f = JSON.parse(m.data);
    addFiring(f, !f.replay);
    if (!f.replay) refreshSoon();
  });
  stream.onerror = () => { $('conn').textContent = 'reconnecting…'; $('conn').className = 'bad'; };
}

// ---------------------------------------------------------------- start

async function start() {
  $('login').hidden = true;
  $('dash').hidden = false;
  $('who').hidden = false;
  try {
    const latest = await api('/v1/events/latest?limit=30');
    addEvents(latest.events, false);
  } catch (e) {
    if (e.message === '401') return;
  }
  connect();
  await refresh();
  refreshTimer = setInterval(refresh, REFRESH_MS);
}

function signOut(msg) {
  sessionStorage.removeItem('es-token');
  token = null;
  if (stream) stream.close();
  stream = null;
  clearInterval(refreshTimer);
  $('dash').hidden = true;
  $('who').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = msg || '';
}

$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('token').value.trim();
  sessionStorage.setItem('es-token', token);
  start();
});
$('signout').addEventListener('click', () => signOut());
$('detail-close').addEventListener('click', () => { $('detail').hidden = true; });
$('range').addEventListener('change', () => {
  $('range-error').textContent = '';
  if ($('range').value === 'custom') {
    $('custom').hidden = false;
    const r = currentRange();
    if (!$('from').value) { $('from').value = toInput(r.from); $('to').value = toInput(r.to); }
    return; // applied with the button
  }
  $('custom').hidden = true;
  custom = null;
  refresh();
});
$('apply').addEventListener('click', () => {
  const from = parseInput($('from').value), to = parseInput($('to').value);
  if (Number.isNaN(from) || Number.isNaN(to) || from >= to) {
    $('range-error').textContent = 'the custom range needs a "from" before its "to"';
    return;
  }
  $('range-error').textContent = '';
  custom = { from, to };
  refresh();
});
$('tz').addEventListener('change', () => {
  retime();
  if (custom) { $('from').value = toInput(custom.from); $('to').value = toInput(custom.to); }
  refresh();
});

if (token) start(); else signOut();
