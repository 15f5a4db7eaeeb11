// Helpers of the es-ingestd end-to-end tests: start and stop servers on
// free ports, send raw HTTP, read a tenant back with `esctl scan`.
// Every test file takes the es-ingestd and esctl binaries as argv[2..3].
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const INGESTD = process.argv[2];
export const ESCTL = process.argv[3];
const here = path.dirname(fileURLToPath(import.meta.url));

// Fails loudly when the npm packages are not installed: a test that
// silently skips would hide that the SDK clients never ran.
export function requireNodeModules() {
  if (!existsSync(path.join(here, 'node_modules'))) {
    console.log('FAIL: the SDK clients are not installed; run scripts/npm-deps.sh');
    process.exit(1);
  }
}

export const KEYS = { 'key-acme': 'acme', 'key-beta': 'beta', 'key-gamma': 'gamma' };

export function scratchDir() {
  const dir = mkdtempSync(path.join(tmpdir(), 'es-ingest-'));
  writeFileSync(path.join(dir, 'keys.json'), JSON.stringify(KEYS));
  return dir;
}

export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
}

// Starts es-ingestd; resolves once its "listening" line names the port.
export function startServer(dir, { port = 0, args = [], host = '127.0.0.1' } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(INGESTD, ['--data', path.join(dir, 'data'),
      '--listen', `${host}:${port}`, '--keys', path.join(dir, 'keys.json'),
      ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    let done = false;
    proc.stderr.on('data', (chunk) => {
      log += chunk;
      const m = /"msg":"listening".*"port":(\d+)/.exec(log);
      if (m && !done) {
        done = true;
        resolve({ proc, port: Number(m[1]), url: `http://127.0.0.1:${m[1]}`,
                  log: () => log });
      }
    });
    proc.on('exit', (code, sig) => {
      if (!done) {
        done = true;
        reject(new Error(`es-ingestd exited (${code ?? sig}) before listening:\n${log}`));
      }
    });
  });
}

// SIGTERM; resolves with the exit code (0 expected after a clean drain).
export function stopServer(srv) {
  return new Promise((resolve) => {
    if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) {
      resolve(srv.proc.exitCode);
      return;
    }
    srv.proc.on('exit', (code, sig) => resolve(code ?? sig));
    srv.proc.kill('SIGTERM');
  });
}

export function killServer(srv) {
  return new Promise((resolve) => {
    srv.proc.on('exit', () => resolve());
    srv.proc.kill('SIGKILL');
  });
}

// The stored events of a tenant (the server must be stopped: the store
// is locked while it runs).
export function scan(dir, tenant) {
  const out = execFileSync(ESCTL, ['scan', '--data', path.join(dir, 'data'),
    '--tenant', tenant], { encoding: 'utf8', maxBuffer: 256 << 20 });
  return out.split('\n').filter((l) => l).map((l) => JSON.parse(l));
}

export function basic(key) {
  return 'Basic ' + Buffer.from(`${key}:`).toString('base64');
}

// POST JSON (or a Buffer) with fetch; resolves {status, body, headers}.
export async function post(srv, p, body, headers = {}) {
  const res = await fetch(srv.url + p, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: json, text, headers: res.headers };
}

// Sends raw bytes on a new connection; resolves with everything the
// server sent until it closed the connection or timeout_ms passed.
export function rawRequest(srv, chunks, { gapMs = 0, timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(srv.port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => { sock.destroy(); resolve(data); }, timeoutMs);
    sock.on('data', (d) => { data += d; });
    sock.on('close', () => { clearTimeout(timer); resolve(data); });
    sock.on('error', (e) => { if (e.code !== 'ECONNRESET' && e.code !== 'EPIPE') reject(e); });
    sock.on('connect', async () => {
      for (const c of chunks) {
        if (sock.destroyed) return;
        sock.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

export function statusOf(raw) {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(raw);
  return m ? Number(m[1]) : 0;
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
