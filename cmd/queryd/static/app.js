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

function hourAgo() {
  const now = Date.now();
  return new Date(now - 3600e3 - (now % 60e3)).toISOString();
}

// ---------------------------------------------------------------- chart

function drawChart(rows) {
  const svg = $('chart');
  const W = 960, H = 220, pad = 28;
  const start = Date.parse(hourAgo());
  const minutes = 61;
  const stacks = Array.from({ length: minutes }, () => ({}));
  for (const r of rows) {
    const i = Math.floor((Date.parse(r.bucket) - start) / 60e3);
    if (i >= 0 && i < minutes) stacks[i][r.type] = (stacks[i][r.type] || 0) + r.count;
  }
  const totals = stacks.map((s) => Object.values(s).reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const ns = 'http://www.w3.org/2000/svg';
  svg.replaceChildren();
  const bw = (W - pad) / minutes;
  for (let i = 0; i < minutes; i++) {
    let y = H - 16;
    for (const t of TYPES) {
      const v = stacks[i][t] || 0;
      if (!v) continue;
      const h = (v / max) * (H - 36);
      const rect = document.createElementNS(ns, 'rect');
      rect.setAttribute('x', pad + i * bw + 1);
      rect.setAttribute('y', y - h);
      rect.setAttribute('width', Math.max(1, bw - 2));
      rect.setAttribute('height', h);
      rect.setAttribute('fill', COLORS[t]);
      const title = document.createElementNS(ns, 'title');
      title.textContent = `${new Date(start + i * 60e3).toISOString().slice(11, 16)} ${t}: ${v}`;
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
  for (let i = 0; i <= 60; i += 15)
    label(pad + i * bw, H - 2, new Date(start + i * 60e3).toISOString().slice(11, 16), 'middle');
  const legend = $('legend');
  legend.replaceChildren();
  for (const t of TYPES) {
    if (!rows.some((r) => r.type === t)) continue;
    const s = el('span', t);
    const dot = el('i');
    dot.style.background = COLORS[t];
    s.prepend(dot);
    legend.appendChild(s);
  }
}

// ------------------------------------------------------------- refreshes

async function refresh() {
  const from = hourAgo();
  try {
    const [perMinute, uniques, pages, segs] = await Promise.all([
      api('/v1/query', { from, bucket: 'minute', groupBy: ['type'] }),
      api('/v1/query', { from, aggregate: ['count', 'uniques'] }),
      api('/v1/query', { from, filter: { type: 'page' }, groupBy: ['path'],
                         aggregate: ['count', 'uniques'], order: 'desc', limit: 10 }),
      api('/v1/segments'),
    ]);
    drawChart(perMinute.rows);
    const total = uniques.rows[0] || { count: 0, uniques: 0 };
    $('events-hour').textContent = total.count.toLocaleString();
    $('uniques-hour').textContent = (uniques.approx ? '≈' : '') + total.uniques.toLocaleString();
    const tb = $('pages');
    tb.replaceChildren();
    for (const r of pages.rows) {
      const tr = el('tr');
      tr.append(el('td', r.path ?? '(none)'), el('td', r.count, 'num'), el('td', r.uniques, 'num'));
      tb.appendChild(tr);
    }
    const sb = $('segments');
    sb.replaceChildren();
    for (const r of segs.rules) {
      const m = r.match || {};
      const what = [m.type, m.event, m.path].filter((x) => x).join(' ') || 'any event';
      const tr = el('tr');
      tr.dataset.rule = r.name;
      tr.append(el('td', r.name), el('td', `${what} ≥${r.atLeast}× in ${r.within}`),
                el('td', r.members, 'num'));
      sb.appendChild(tr);
    }
  } catch (e) {
    console.warn('refresh failed', e);
  }
}

function refreshSoon() {
  if (soonTimer) return;
  soonTimer = setTimeout(() => { soonTimer = null; refresh(); }, 700);
}

// ----------------------------------------------------------------- feed

function feedRow(ev, fresh) {
  const tr = el('tr', null, fresh ? 'new' : '');
  tr.dataset.messageId = ev.messageId || '';
  const what = ev.type === 'page' || ev.type === 'screen'
    ? (ev.context?.page?.path ?? ev.properties?.path ?? ev.event ?? '')
    : (ev.event ?? '');
  tr.append(el('td', (ev.timestamp || '').slice(11, 19)), el('td', ev.type),
            el('td', what), el('td', ev.userId || ev.anonymousId || ''));
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

function addFiring(f, fresh) {
  const li = el('li', `${f.ts.slice(11, 19)} ${f.person} entered ${f.rule} (${f.count}×)`);
  li.dataset.rule = f.rule;
  $('firings').prepend(li);
  while ($('firings').children.length > 30) $('firings').lastChild.remove();
  if (fresh) { firings++; $('firings-count').textContent = firings; }
}

// --------------------------------------------------------------- stream

function connect() {
  if (stream) stream.close();
  $('firings').replaceChildren(); // the stream replays the recent ones
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

if (token) start(); else signOut();
