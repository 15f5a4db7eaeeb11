// load.mjs -- the HTTP ingest benchmark of es-bench (`es-bench http`).
//
// es-bench writes the request bodies and the keys file, then runs
//   node load.mjs --ingestd BIN --nginx BIN --wrk BIN --keys F
//                 --bodies F --dir D --duration S --warmup W --runs R
//                 --connections C --burst-s S --budget-mb MB --quick 0|1
// and reads its stdout: "P <done> <total>" progress lines and, last,
// "R <json>" with every measurement.  Failures: a message on stderr and
// exit status 1.
//
// What it measures, in this order (each server process is started fresh
// on its own directory under D and stopped with SIGTERM after its phase):
//  1. full load, R runs: wrk (post.lua, 2 threads, C connections, S
//     seconds) against es-ingestd, then against nginx answering every
//     POST with an empty 200 (the HTTP ceiling of this machine);
//  2. half rate: runPaced (below: an open-loop client sending evenly
//     spaced requests) at half es-ingestd's median full-load requests/s,
//     a --warmup W seconds not counted then S seconds, against es-ingestd
//     and against nginx at that same rate;
//  3. burst: runPaced at 10x that half rate (5x the full-load median)
//     with up to 10x the connections, burst-s seconds, against a fresh
//     es-ingestd, sampling its RSS every 10 ms (/proc/PID/status).
// es-ingestd runs with its defaults (--sync full: every event is
// fdatasync'ed before the 200) and --memory-budget MB.  The data
// directories are left for es-bench, which counts what was stored.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { failer, out, parseArgs as parseFlags } from '../driver.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fail = failer('http bench');
const parseArgs = (argv) => parseFlags(argv, fail);

// A free TCP port on 127.0.0.1 (bound, read, released).
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Resolves once something accepts TCP connections on port.
async function waitPort(port, proc, name) {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) fail(`${name} exited (${proc.exitCode})`);
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  fail(`${name} did not listen on port ${port} within 10 s`);
}

function exited(proc) {
  return proc.exitCode !== null || proc.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => proc.once('exit', resolve));
}

// Starts es-ingestd on a fresh directory; {proc, port, dir}.
async function startIngestd(a, name) {
  const dir = path.join(a.dir, name);
  const port = await freePort();
  const log = fs.openSync(path.join(a.dir, `${name}.log`), 'w');
  const proc = spawn(a.ingestd, ['--data', dir, '--listen',
    `127.0.0.1:${port}`, '--keys', a.keys, '--memory-budget',
    a['budget-mb']], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  await waitPort(port, proc, 'es-ingestd');
  return { proc, port, dir, name };
}

// Starts nginx answering every request with an empty 200; {proc, port}.
async function startNginx(a, name) {
  const prefix = path.join(a.dir, name);
  fs.mkdirSync(prefix, { recursive: true });
  const port = await freePort();
  const conf = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(conf, `# es-bench http: the HTTP ceiling.
worker_processes 2;
daemon off;
master_process on;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  client_max_body_size 1m;
  client_body_buffer_size 1m;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / { return 200; }
  }
}
`);
  const proc = spawn(a.nginx, ['-p', prefix, '-c', conf],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitPort(port, proc, 'nginx');
  return { proc, port, dir: prefix, name };
}

// SIGTERM (nginx: fast shutdown) and wait; the exit status.
async function stop(srv) {
  srv.proc.kill('SIGTERM');
  const t = setTimeout(() => srv.proc.kill('SIGKILL'), 60000);
  await exited(srv.proc);
  clearTimeout(t);
  return { code: srv.proc.exitCode, signal: srv.proc.signalCode };
}

// Runs wrk for the full-load phase; its parsed WRK line.
function runWrk(a, port, nonce) {
  return new Promise((resolve) => {
    const args = ['-t', '2', '-c', a.connections, '-d', `${a.duration}s`,
      '--timeout', '30s', '-s', path.join(here, 'post.lua'),
      `http://127.0.0.1:${port}/v1/batch`];
    const env = { ...process.env, ES_BENCH_BODIES: a.bodies,
      ES_BENCH_NONCE: nonce };
    const p = spawn(a.wrk, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    p.stdout.on('data', (d) => { text += d; });
    p.on('exit', (code) => {
      const line = text.split('\n').find((l) => l.startsWith('WRK '));
      if (code !== 0 || !line) fail(`wrk failed (${code}):\n${text}`);
      resolve(JSON.parse(line.slice(4)));
    });
  });
}

// The bodies as pieces around "[<id>]".
function loadBodies(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length)
    .map((l) => l.split('[<id>]'));
}

// An open-loop client at a fixed rate: request i is due at t0 + i/rate
// (evenly spaced), sent on one of at most `conns` keep-alive connections
// (queued when all are busy), and its latency runs from the moment it was
// due to the end of its answer -- so time spent waiting behind a slow
// server counts (no coordinated omission).  Not autocannon's -R: that is
// a per-connection quota per second, each connection sending back to back
// until it is used up, so the server sees a full-load burst at the start
// of every second (autocannon/lib/httpClient.js).
//
// With warmup > 0 it first sends at the same rate for warmup seconds and
// counts none of that in the result but in `all` (for the stored-events
// check): the first second of a fresh node process sending is its own
// slowest (JIT, new connections), 30-45 ms against nginx even.
async function runPaced(port, rate, conns, seconds, nonce, bodies,
  warmup = 0) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
  const lat = [], lag = [], codes = {};
  let sent = 0, answered = 0, ok = 0, errors = 0, i = 0;
  const all = { requests_sent: 0, responses: 0, ok: 0 };
  const w0 = performance.now(), t0 = w0 + warmup * 1000;
  const endAt = t0 + seconds * 1000;
  const interval = 1000 / rate;
  let pending = 0, resolveDone;
  const allDone = new Promise((r) => { resolveDone = r; });
  let ticking = true;
  const finished = () => { if (!ticking && pending === 0) resolveDone(); };
  const send = (due, n) => {
    const pieces = bodies[n % bodies.length];
    const body = Buffer.from(pieces.join(`${nonce}-${n}`));
    const counted = due >= t0;
    all.requests_sent++;
    if (counted) {
      sent++;
      lag.push(performance.now() - due); // the client's own lateness
    }
    pending++;
    const req = http.request({ agent, host: '127.0.0.1', port,
      method: 'POST', path: '/v1/batch', headers: {
        'content-type': 'application/json', 'content-length': body.length } },
    (res) => {
      res.resume();
      res.on('end', () => {
        const good = res.statusCode >= 200 && res.statusCode < 300;
        all.responses++;
        if (good) all.ok++;
        if (counted) {
          lat.push(performance.now() - due);
          codes[res.statusCode] = (codes[res.statusCode] || 0) + 1;
          answered++;
          if (good) ok++;
        }
        pending--;
        finished();
      });
    });
    req.setTimeout(30000, () => req.destroy(new Error('timeout')));
    req.on('error', () => {
      if (counted) errors++;
      pending--;
      finished();
    });
    req.end(body);
  };
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (w0 + i * interval <= now && w0 + i * interval < endAt) {
        send(w0 + i * interval, i);
        i++;
      }
      if (w0 + i * interval < endAt)
        setTimeout(tick, Math.max(0, w0 + i * interval - performance.now()));
      else
        resolve();
    };
    tick();
  });
  const sendEnd = performance.now();
  ticking = false;
  finished();
  await allDone;
  const drained = (performance.now() - t0) / 1000;
  agent.destroy();
  lat.sort((x, y) => x - y);
  lag.sort((x, y) => x - y);
  const pctOf = (v, p) => v.length ? v[Math.min(v.length - 1,
    Math.ceil(p / 100 * v.length) - 1)] : -1;
  const pct = (p) => pctOf(lat, p);
  const dur = (sendEnd - t0) / 1000;
  return {
    warmup_s: warmup, all,
    duration_s: dur, answered_by_s: drained, rate_asked: rate,
    rate_sent: sent / dur,
    requests_sent: sent, responses: answered, ok, non2xx: answered - ok,
    errors, timeouts: 0, status: codes,
    latency_ms: { p50: pct(50), p90: pct(90), p99: pct(99),
      max: lat.length ? lat[lat.length - 1] : -1,
      mean: lat.reduce((x, y) => x + y, 0) / (lat.length || 1) },
    // how late the client itself sent (included in latency_ms): with the
    // server on the same cores the client is not always scheduled on time
    send_lag_ms: { p50: pctOf(lag, 50), p99: pctOf(lag, 99) },
  };
}

// VmRSS and VmHWM of pid, in bytes.
function rssOf(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number((s.match(new RegExp(`${k}:\\s+(\\d+)`)) ||
      [0, 0])[1]) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

const median = (v) => {
  const s = [...v].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]
    : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const runs = Number(a.runs);
  const duration = Number(a.duration);
  const bodies = loadBodies(a.bodies);
  const total = runs * 2 + 2 + 1;
  let done = 0;
  const progress = () => out(`P ${++done} ${total}`);

  // 1. Full load, servers interleaved per run.
  const full = { ingestd: [], nginx: [] };
  for (let r = 0; r < runs; r++) {
    const es = await startIngestd(a, `full-es-${r}`);
    const w = await runWrk(a, es.port, `full${r}`);
    w.exit = await stop(es);
    w.dir = es.dir;
    full.ingestd.push(w);
    progress();
    const ng = await startNginx(a, `full-nginx-${r}`);
    const wn = await runWrk(a, ng.port, `nginx${r}`);
    wn.exit = await stop(ng);
    full.nginx.push(wn);
    progress();
  }
  const rps = full.ingestd.map((w) =>
    (w.requests - w.errors.status) / (w.duration_us / 1e6));
  const half = Math.max(1, Math.round(median(rps) / 2));

  // 2. Half rate, the same offered rate on both servers.
  const conns = Number(a.connections);
  const es2 = await startIngestd(a, 'half-es');
  const warm = Number(a.warmup || 0);
  const halfEs = await runPaced(es2.port, half, conns, duration, 'half',
    bodies, warm);
  halfEs.exit = await stop(es2);
  halfEs.dir = es2.dir;
  progress();
  const ng2 = await startNginx(a, 'half-nginx');
  const halfNg = await runPaced(ng2.port, half, conns, duration,
    'halfng', bodies, warm);
  halfNg.exit = await stop(ng2);
  progress();

  // 3. Burst: 10x the half rate, 10x the connections; RSS sampled.
  const es3 = await startIngestd(a, 'burst-es');
  await sleep(200);
  const idle = rssOf(es3.proc.pid);
  let peak = idle.rss;
  const samples = [];
  const t0 = Date.now();
  const timer = setInterval(() => {
    const m = rssOf(es3.proc.pid);
    if (m.rss > peak) peak = m.rss;
    samples.push([Date.now() - t0, m.rss]);
  }, 10);
  const burst = await runPaced(es3.port, half * 10, conns * 10,
    Number(a['burst-s']), 'burst', bodies);
  clearInterval(timer);
  const after = rssOf(es3.proc.pid);
  burst.exit = await stop(es3);
  burst.dir = es3.dir;
  burst.rss_idle_bytes = idle.rss;
  burst.rss_peak_sampled_bytes = Math.max(peak, after.rss);
  burst.rss_hwm_bytes = after.hwm; // the kernel's peak RSS of the process
  burst.rss_samples = samples.length;
  progress();

  out('R ' + JSON.stringify({ full, half_rate: half,
    half: { ingestd: halfEs, nginx: halfNg }, burst }));
}

main().catch((e) => fail(e && e.stack || e));
