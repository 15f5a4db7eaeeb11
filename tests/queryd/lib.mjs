// Helpers of the es-queryd end-to-end tests: start es-ingestd and
// es-queryd on one data directory (the two-process setup of issue 5) or
// es-queryd alone in its embedded mode, on free ports of 127.0.0.1; call
// the query API; read a Server-Sent Events stream.
//
// argv: node TEST.mjs ES_QUERYD ES_INGESTD ESCTL MODE [SCREENSHOT]
// MODE is "two-process" (es-ingestd writes, es-queryd opens read-only) or
// "embedded" (es-queryd --ingest-listen: one process, one writable
// handle).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const QUERYD = process.argv[2];
export const INGESTD = process.argv[3];
export const ESCTL = process.argv[4];
export const MODE = process.argv[5] || 'two-process';
export const SCREENSHOT = process.argv[6];
const here = path.dirname(fileURLToPath(import.meta.url));

// Fails loudly when the npm packages are not installed, as the ingest
// tests do: a test that silently skipped would hide that the SDK client
// and the browser never ran.  scripts/npm-deps.sh installs them.
export function requireNodeModules() {
  if (!existsSync(path.join(here, 'node_modules'))) {
    console.log('FAIL: @segment/analytics-node and playwright-core are not installed; run scripts/npm-deps.sh');
    process.exit(1);
  }
}

export const KEYS = { 'wk-acme': 'acme', 'wk-beta': 'beta' };
export const TOKENS = { 'tok-acme-0123456789': 'acme', 'tok-beta-9876543210': 'beta' };
export const TOKEN = { acme: 'tok-acme-0123456789', beta: 'tok-beta-9876543210' };
export const WRITE_KEY = { acme: 'wk-acme', beta: 'wk-beta' };

export function scratchDir() {
  const dir = mkdtempSync(path.join(tmpdir(), 'es-queryd-'));
  writeFileSync(path.join(dir, 'keys.json'), JSON.stringify(KEYS));
  writeFileSync(path.join(dir, 'tokens.json'), JSON.stringify(TOKENS));
  return dir;
}

export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
}

// Rules are made before the servers start (esctl takes the store's lock).
export function putRule(dir, tenant, rule) {
  execFileSync(ESCTL, ['rule-put', '--data', path.join(dir, 'data'),
    '--tenant', tenant, '--rule', '-'], { input: JSON.stringify(rule) });
}

// Spawns a server; resolves once its "listening" log line names the port.
function startProc(bin, args, name) {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    let done = false;
    proc.stderr.on('data', (chunk) => {
      log += chunk;
      const m = /"msg":"listening".*?"port":(\d+)(?:.*"ingest_port":(\d+))?/.exec(log);
      if (m && !done) {
        done = true;
        resolve({ proc, name, port: Number(m[1]), url: `http://127.0.0.1:${m[1]}`,
                  ingestPort: m[2] ? Number(m[2]) : 0, log: () => log });
      }
    });
    proc.on('exit', (code, sig) => {
      if (!done) {
        done = true;
        reject(new Error(`${name} exited (${code ?? sig}) before listening:\n${log}`));
      }
    });
  });
}

// Starts the servers of MODE on dir; resolves {query, ingest, ingestUrl}.
export async function startServers(dir, { webhooks, ingestArgs = [] } = {}) {
  const data = path.join(dir, 'data');
  const tokens = path.join(dir, 'tokens.json');
  const keys = path.join(dir, 'keys.json');
  const extra = [];
  if (webhooks) {
    writeFileSync(path.join(dir, 'webhooks.json'), JSON.stringify(webhooks));
    extra.push('--webhooks', path.join(dir, 'webhooks.json'));
  }
  if (MODE === 'embedded') {
    const q = await startProc(QUERYD, ['--data', data, '--listen', '127.0.0.1:0',
      '--tokens', tokens, '--ingest-listen', '127.0.0.1:0', '--keys', keys,
      '--sync', 'none', ...extra], 'es-queryd');
    return { query: q, procs: [q], ingestUrl: `http://127.0.0.1:${q.ingestPort}` };
  }
  const ing = await startProc(INGESTD, ['--data', data, '--listen', '127.0.0.1:0',
    '--keys', keys, '--sync', 'none', ...ingestArgs], 'es-ingestd');
  let q;
  try {
    q = await startProc(QUERYD, ['--data', data, '--listen', '127.0.0.1:0',
      '--tokens', tokens, '--follow-interval-ms', '50', ...extra], 'es-queryd');
  } catch (e) {
    await stopProc(ing);
    throw e;
  }
  return { query: q, ingest: ing, procs: [q, ing], ingestUrl: ing.url };
}

export function stopProc(srv) {
  return new Promise((resolve) => {
    if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) {
      resolve(srv.proc.exitCode);
      return;
    }
    srv.proc.on('exit', (code, sig) => resolve(code ?? sig));
    srv.proc.kill('SIGTERM');
  });
}

// SIGTERM to every server; resolves with their exit codes.
export async function stopServers(s) {
  const codes = [];
  for (const p of s.procs) codes.push(await stopProc(p));
  return codes;
}

// GET or POST on the query API; resolves {status, body, text}.
export async function call(srv, p, { token, body, method } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(srv.url + p, {
    method: method || (body === undefined ? 'GET' : 'POST'), headers,
    body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: json, text, headers: res.headers };
}

// Opens GET /v1/stream; messages are collected in .messages as
// {event, data}; waitFor(pred, ms) resolves with the first match.
export async function openStream(srv, token) {
  const ac = new AbortController();
  const res = await fetch(`${srv.url}/v1/stream?token=${encodeURIComponent(token)}`,
                          { signal: ac.signal });
  const s = { status: res.status, messages: [], waiters: [], close: () => ac.abort() };
  if (res.status !== 200) return s;
  const dec = new TextDecoder();
  let buf = '';
  (async () => {
    try {
      for await (const chunk of res.body) {
        buf += dec.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (!data.length) continue;
          const m = { event, data: JSON.parse(data.join('\n')), at: performance.now() };
          s.messages.push(m);
          s.waiters = s.waiters.filter((w) => !(w.pred(m) && (w.resolve(m), true)));
        }
      }
    } catch { /* aborted */ }
  })();
  s.waitFor = (pred, ms) => new Promise((resolve, reject) => {
    const hit = s.messages.find(pred);
    if (hit) { resolve(hit); return; }
    const t = setTimeout(() => reject(new Error(`no matching stream message in ${ms} ms; got ${JSON.stringify(s.messages.map((m) => m.event))}`)), ms);
    s.waiters.push({ pred, resolve: (m) => { clearTimeout(t); resolve(m); } });
  });
  return s;
}

export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Sends raw bytes on a new connection; resolves with everything the
// server sent until it closed the connection or timeoutMs passed.
export function rawRequest(srv, data, { timeoutMs = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(srv.port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => { sock.destroy(); resolve(got); }, timeoutMs);
    sock.on('data', (d) => { got += d; });
    sock.on('close', () => { clearTimeout(timer); resolve(got); });
    sock.on('error', (e) => { if (e.code !== 'ECONNRESET' && e.code !== 'EPIPE') reject(e); });
    sock.on('connect', () => sock.write(data));
  });
}
