// What both S3 tests share: the botocore SigV4-checking proxy in front of
// s3rver (sigv4_proxy.py), started on a free loopback port, and its
// control endpoint (POST /__fault and friends).
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';

// Debian's python3 has python3-botocore (scripts/deps.sh); a python3
// earlier in PATH may have its own botocore.
export function python(who) {
  for (const p of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(p, ['-c', 'import botocore'], { stdio: 'ignore' });
    if (r.status === 0) return p;
  }
  console.error(`${who}: no python3 with botocore (apt install python3-botocore)`);
  process.exit(1);
}

// Starts the proxy before upstreamPort; resolves with { proc, port }.
export function startProxy(who, proxyPy, upstreamPort, access, secret, region) {
  return new Promise((resolve, reject) => {
    const p = spawn(python(who), [proxyPy, String(upstreamPort), access, secret, region],
                    { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stderr.on('data', (d) => process.stderr.write(d));
    p.stdout.on('data', (d) => {
      out += d;
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve({ proc: p, port: Number(m[1]) });
    });
    p.on('exit', (code) => reject(new Error(`proxy exited ${code}`)));
  });
}

// A request to the proxy's control endpoint; resolves with its JSON.
export function control(port, method, pathName, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: pathName }, (res) => {
      let data = '';
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve(JSON.parse(data || '{}')));
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}
