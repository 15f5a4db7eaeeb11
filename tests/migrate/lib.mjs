// Helpers of the migration tests (docs/MIGRATION.md): the stand-in legacy
// endpoint, Debian's nginx with the shipped configs of deploy/nginx/, free
// ports, the real @segment/analytics-node.  es-ingestd and esctl helpers
// come from tests/ingest/lib.mjs (argv[2] = es-ingestd, argv[3] = esctl).
import { spawn, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

export * from '../ingest/lib.mjs';
import { ESCTL } from '../ingest/lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function requireSdk() {
  if (!existsSync(path.join(here, 'node_modules', '@segment', 'analytics-node'))) {
    console.log('FAIL: @segment/analytics-node is not installed in tests/migrate; run scripts/npm-deps.sh');
    process.exit(1);
  }
  return createRequire(import.meta.url)('@segment/analytics-node');
}

export function requireDuckDB() {
  try {
    return createRequire(import.meta.url)('@duckdb/node-api');
  } catch (e) {
    console.log('FAIL: @duckdb/node-api is not installed in tests/migrate; run scripts/npm-deps.sh');
    process.exit(1);
  }
}

// A free TCP port of 127.0.0.1 (asked of the OS; for programs that take
// no port 0, like nginx).
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// The stand-in for the legacy pipeline (the one stub these tests may
// have: it plays the old system).  Records every event's messageId with
// the write key it came with; `down` makes it refuse connections (closed
// listener) and `up` listens again on the same port.
export class Legacy {
  constructor() {
    this.events = [];          // {messageId, key, type, event, timestamp}
    this.requests = 0;
    this.port = 0;
    this.server = null;
  }

  handler(req, res) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      this.requests++;
      let body = Buffer.concat(chunks);
      if (/gzip/.test(req.headers['content-encoding'] || '')) body = zlib.gunzipSync(body);
      let j;
      try { j = JSON.parse(body.toString('utf8')); } catch {
        res.writeHead(400); res.end('{"success":false}'); return;
      }
      const auth = req.headers.authorization || '';
      const key = auth.startsWith('Basic ')
        ? Buffer.from(auth.slice(6), 'base64').toString().replace(/:$/, '')
        : j.writeKey;
      const type = req.url.replace(/^\/v1\//, '').replace(/\/$/, '');
      const list = Array.isArray(j.batch) ? j.batch : [{ type, ...j }];
      for (const e of list)
        this.events.push({ messageId: e.messageId, key, type: e.type,
                           event: e.event, timestamp: e.timestamp });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"success":true}');
    });
  }

  async up() {
    if (!this.port) this.port = await freePort();
    this.server = http.createServer((q, s) => this.handler(q, s));
    this.server.keepAliveTimeout = 1000;
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, '127.0.0.1', resolve);
    });
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  async down() {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }

  ids() { return this.events.map((e) => e.messageId); }
}

// Starts Debian's nginx in prefix with the shipped include (a file of
// deploy/nginx/) inside a server block on listenPort, and the upstreams
// legacy_segment and es_ingestd.  Resolves once it answers.
export async function startNginx(prefix, include, { listenPort, legacyPort, ingestdPort, httpExtra = '' }) {
  mkdirSync(path.join(prefix, 'logs'), { recursive: true });
  const conf = path.join(prefix, 'nginx.conf');
  writeFileSync(conf, `daemon off;
master_process off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log ${prefix}/logs/access.log;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  upstream legacy_segment { server 127.0.0.1:${legacyPort}; keepalive 8; }
  upstream es_ingestd { server 127.0.0.1:${ingestdPort}; keepalive 8; }
  ${httpExtra}
  server {
    listen 127.0.0.1:${listenPort};
    include ${path.join(ROOT, 'deploy', 'nginx', include)};
  }
}
`);
  const nginx = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
  const t = spawnSync(nginx, ['-t', '-p', prefix, '-c', conf], { encoding: 'utf8' });
  if (t.status !== 0) throw new Error(`nginx -t: ${t.stderr}`);
  const proc = spawn(nginx, ['-p', prefix, '-c', conf], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(listenPort, '127.0.0.1');
      s.on('connect', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return { proc, url: `http://127.0.0.1:${listenPort}`, prefix };
    if (proc.exitCode !== null) break;
    await sleep(50);
  }
  throw new Error(`nginx did not start: ${readFileSync(path.join(prefix, 'logs', 'error.log'), 'utf8')}`);
}

export function stopProc(proc, sig = 'SIGTERM') {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) { resolve(); return; }
    proc.once('exit', () => resolve());
    proc.kill(sig);
  });
}

// The set of messageIds esctl scan reads back for a tenant (read-only:
// works beside a running es-ingestd).
export function storedIds(dataDir, tenant) {
  const out = execFileSync(ESCTL, ['scan', '--data', dataDir, '--tenant', tenant],
    { encoding: 'utf8', maxBuffer: 256 << 20 });
  return out.split('\n').filter((l) => l).map((l) => JSON.parse(l).messageId);
}

// Runs esctl; resolves {status, stdout, stderr}.
export function esctl(args) {
  const r = spawnSync(ESCTL, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Prometheus text -> value of one series (exact name with labels).
export async function metric(url, series) {
  const text = await (await fetch(url + '/metrics')).text();
  for (const line of text.split('\n'))
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  return NaN;
}

// Counts per (tenant, day, event) in the shape of reconcile's legacy CSV
// from the stand-in's records (what the legacy SQL would produce).
export function legacyCountsCsv(events, tenantOfKey, by = 'hour') {
  const m = new Map();
  const seen = new Set();
  for (const e of events) {
    const t = tenantOfKey[e.key];
    if (seen.has(t + '\0' + e.messageId)) continue; // the SQL counts DISTINCT message_id
    seen.add(t + '\0' + e.messageId);
    const day = by === 'hour' ? e.timestamp.slice(0, 13) + ':00:00Z' : e.timestamp.slice(0, 10);
    const ev = e.type === 'track' ? e.event : e.type;
    const k = `${t},${day},${ev}`;
    m.set(k, (m.get(k) || 0) + 1);
  }
  return 'tenant,bucket,event,count\n' +
    [...m].map(([k, n]) => `${k},${n}`).join('\n') + '\n';
}

export { spawn, execFileSync, spawnSync };
