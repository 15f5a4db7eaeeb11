// --config / --check-config of es-ingestd and es-queryd, deploy/'s example
// files and systemd units, and --trusted-proxies (docs/OPERATIONS.md,
// "Config file" and "Running under systemd"; docs/AWS.md).
// argv: es-ingestd es-queryd esctl DEPLOY_DIR
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync,
         mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';

const [INGESTD, QUERYD, ESCTL, DEPLOY] = process.argv.slice(2);

function scratch() {
  const dir = mkdtempSync(path.join(tmpdir(), 'es-deploy-'));
  writeFileSync(path.join(dir, 'keys.json'), JSON.stringify({ 'key-acme': 'acme' }));
  writeFileSync(path.join(dir, 'admin.json'), JSON.stringify(['admin-token-0123456789']));
  writeFileSync(path.join(dir, 'tokens.json'), JSON.stringify({ 'token-acme': 'acme' }));
  return dir;
}

function run(bin, args) {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 20000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('the example configs of deploy/ pass --check-config; nothing is created', () => {
  const dir = scratch();
  try {
    const data = path.join(dir, 'data');
    // The paths of a real host replaced by flags: flags win over the file.
    let r = run(INGESTD, ['--config', path.join(DEPLOY, 'es-ingestd.conf'),
      '--check-config', '--data', data, '--keys', path.join(dir, 'keys.json'),
      '--admin-tokens', path.join(dir, 'admin.json')]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /es-ingestd: configuration OK/);
    assert.equal(existsSync(data), false, '--check-config created the store');
    r = run(QUERYD, ['--config', path.join(DEPLOY, 'es-queryd.conf'),
      '--check-config', '--data', dir, '--tokens', path.join(dir, 'tokens.json')]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /es-queryd: configuration OK/);
    // Without the overrides the file's own paths are checked (and are not
    // there on a test machine): the check is real.
    r = run(INGESTD, ['--config', path.join(DEPLOY, 'es-ingestd.conf'), '--check-config']);
    assert.equal(r.code, 1);
    assert.match(r.err, /--keys \/etc\/eventstore\/keys.json: cannot read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--check-config refuses each kind of bad configuration with exit 1, before any store exists', () => {
  const dir = scratch();
  try {
    const data = path.join(dir, 'data');
    const conf = path.join(dir, 'i.conf');
    const good = [`data = ${data}`, 'listen = 127.0.0.1:0',
      `keys = ${path.join(dir, 'keys.json')}`];
    const cases = [
      [[...good, 'bogus = 1'], [], /i\.conf:4: unknown flag --bogus/],
      [[...good, 'shards = many'], [], /i\.conf:4: --shards wants a whole number in 1\.\.256, not "many"/],
      [[...good, 'listen'], [], /i\.conf: line 4: want key = value/],
      [[...good, 'keys = /x'], [], /i\.conf: line 4: keys was set on line 3 already/],
      [[...good, 'config = /x'], [], /line 4: config cannot be set in a config file/],
      [[...good, 'Data = /x'], [], /line 4: a key is a flag's name/],
      [[...good, 'memory-budget ='], [], /line 4: memory-budget has no value/],
      [good, ['--keys', path.join(dir, 'missing.json')], /--keys .*missing\.json: cannot read .*No such file/],
      [good, ['--keys', dir], /--keys .*: cannot read .*Is a directory/],
      [good, ['--admin-tokens', path.join(dir, 'keys.json')], /--admin-tokens .*want a non-empty JSON array/],
      [good, ['--listen', 'localhost'], /--listen wants IP:PORT .*localhost:8080\), not "localhost"/],
      [good, ['--listen', '127.0.0.1:70000'], /--listen wants a whole number in 0\.\.65535/],
      [good, ['--trusted-proxies', '10.0.0.0/33'], /--trusted-proxies: "10\.0\.0\.0\/33" is not IP or IP\/BITS/],
      [good, ['--data', path.join(dir, 'keys.json')], /--data .*keys\.json: not a directory/],
      [good, ['--data', '/nonexistent-es/data'], /--data \/nonexistent-es\/data does not exist and cannot be created/],
      [[...good, 'sync = maybe'], ['--sync', 'full'], /i\.conf:4: --sync wants full or none/],
    ];
    for (const [lines, flags, want] of cases) {
      writeFileSync(conf, lines.join('\n') + '\n');
      const r = run(INGESTD, ['--config', conf, '--check-config', ...flags]);
      assert.equal(r.code, 1, `${lines.at(-1)} ${flags}: exit ${r.code}\n${r.err}`);
      assert.match(r.err, want);
      assert.doesNotMatch(r.err, /\.c:\d+/, 'a source location in a user-facing error');
      assert.equal(existsSync(data), false);
    }
    const r = run(INGESTD, ['--config', path.join(dir, 'none.conf'), '--check-config']);
    assert.equal(r.code, 1);
    assert.match(r.err, /cannot read --config .*none\.conf: No such file/);
    // The same file without --check-config: exit 2 (bad usage), no store.
    writeFileSync(conf, [...good, 'bogus = 1'].join('\n'));
    assert.equal(run(INGESTD, ['--config', conf]).code, 2);
    assert.equal(existsSync(data), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('es-queryd --check-config: tokens, webhooks, the data directory, embedded keys', () => {
  const dir = scratch();
  try {
    const conf = path.join(dir, 'q.conf');
    writeFileSync(conf, `data = ${dir}\nlisten = 127.0.0.1:0\ntokens = ${path.join(dir, 'tokens.json')}\n`);
    assert.equal(run(QUERYD, ['--config', conf, '--check-config']).code, 0);
    writeFileSync(path.join(dir, 'hooks.json'), '{"acme": {"r": "ftp://x"}}');
    const cases = [
      [['--data', path.join(dir, 'nope')], /--data .*nope: No such file/],
      [['--tokens', path.join(dir, 'admin.json')], /--tokens .*want a non-empty JSON object/],
      [['--webhooks', path.join(dir, 'hooks.json')], /http:\/\/ or https:\/\//],
      [['--ingest-listen', '127.0.0.1:0', '--keys', path.join(dir, 'x.json')], /--keys .*x\.json: cannot read/],
      [['--ingest-listen', 'nowhere:1', '--keys', path.join(dir, 'keys.json')], /--ingest-listen wants IP:PORT/],
      [['--live-window-s', '0'], /--live-window-s wants a whole number/],
    ];
    for (const [flags, want] of cases) {
      const r = run(QUERYD, ['--config', conf, '--check-config', ...flags]);
      assert.equal(r.code, 1, `${flags}: ${r.err}`);
      assert.match(r.err, want);
    }
    const ok = run(QUERYD, ['--config', conf, '--check-config', '--ingest-listen',
      '127.0.0.1:0', '--keys', path.join(dir, 'keys.json'), '--data', path.join(dir, 'new')]);
    assert.equal(ok.code, 0, ok.err);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Starts es-ingestd with args; resolves with the process, port and log
// once it logs "listening".
function startIngestd(args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(INGESTD, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    let done = false;
    proc.stderr.on('data', (chunk) => {
      log += chunk;
      const m = /"msg":"listening".*"port":(\d+)/.exec(log);
      if (m && !done) {
        done = true;
        resolve({ proc, port: Number(m[1]), log: () => log });
      }
    });
    proc.on('exit', (code) => {
      if (!done) { done = true; reject(new Error(`es-ingestd exited ${code}:\n${log}`)); }
    });
  });
}

function stop(srv) {
  return new Promise((resolve) => {
    if (srv.proc.exitCode !== null) { resolve(srv.proc.exitCode); return; }
    srv.proc.on('exit', (code, sig) => resolve(code ?? sig));
    srv.proc.kill('SIGTERM');
  });
}

function track(port, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, path: '/v1/track', method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data),
        Authorization: 'Basic ' + Buffer.from('key-acme:').toString('base64'), ...headers } },
    (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end(data);
  });
}

function ipsByMessageId(data) {
  const out = execFileSync(ESCTL, ['scan', '--data', data, '--tenant', 'acme'], { encoding: 'utf8' });
  const m = {};
  for (const line of out.split('\n').filter(Boolean)) {
    const ev = JSON.parse(line);
    m[ev.messageId] = ev.context?.ip ?? null;
  }
  return m;
}

test('a server runs from a config file, flags win, and X-Forwarded-For is believed only from --trusted-proxies', async () => {
  const dir = scratch();
  const data = path.join(dir, 'data');
  const conf = path.join(dir, 'i.conf');
  let srv;
  try {
    writeFileSync(conf, [`data = ${data}`, 'listen = 127.0.0.1:0',
      `keys = ${path.join(dir, 'keys.json')}`, 'memory-budget = 64',
      'trusted-proxies = 10.0.0.0/8, 127.0.0.0/8', 'sync = none'].join('\n'));
    // The command line's --memory-budget replaces the file's.
    srv = await startIngestd(['--config', conf, '--memory-budget', '96']);
    assert.match(srv.log(), /"memory_budget_bytes":100663296/);
    // Trusted peer (127.0.0.1): the client is the rightmost untrusted hop.
    assert.equal(await track(srv.port, { userId: 'u', event: 'E', messageId: 'trusted' },
      { 'X-Forwarded-For': '6.6.6.6, 203.0.113.7, 10.1.2.3' }), 200);
    assert.equal(await track(srv.port, { userId: 'u', event: 'E', messageId: 'own-ip',
      context: { ip: '198.51.100.20' } }, { 'X-Forwarded-For': '203.0.113.7' }), 200);
    assert.equal(await track(srv.port, { userId: 'u', event: 'E', messageId: 'no-xff' }), 200);
    assert.equal(await stop(srv), 0);
    // The same server without --trusted-proxies: the peer is the client.
    srv = await startIngestd(['--config', conf, '--trusted-proxies', '10.0.0.0/8']);
    assert.equal(await track(srv.port, { userId: 'u', event: 'E', messageId: 'untrusted' },
      { 'X-Forwarded-For': '203.0.113.7' }), 200);
    assert.equal(await stop(srv), 0);
    srv = undefined;
    // Stored ip addresses are cut to /24 (es_options.keep_full_ip = 0).
    assert.deepEqual(ipsByMessageId(data), {
      'trusted': '203.0.113.0',
      'own-ip': '198.51.100.0',
      'no-xff': '127.0.0.0',
      'untrusted': '127.0.0.0',
    });
  } finally {
    if (srv) srv.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('systemd-analyze verifies the units of deploy/ and rates their exposure at most 2.0', () => {
  const which = spawnSync('sh', ['-c', 'command -v systemd-analyze']);
  assert.equal(which.status, 0, 'systemd-analyze not found: install systemd (scripts/deps.sh)');
  const dir = scratch();
  try {
    const units = [];
    for (const [name, bin] of [['es-ingestd', INGESTD], ['es-queryd', QUERYD]]) {
      // verify wants the ExecStart binary to exist: the build's, here.
      const text = readFileSync(path.join(DEPLOY, `${name}.service`), 'utf8')
        .replaceAll(`/usr/local/bin/${name}`, path.resolve(bin));
      const unit = path.join(dir, `${name}.service`);
      writeFileSync(unit, text);
      units.push(unit);
    }
    const v = spawnSync('systemd-analyze', ['verify', '--man=no', ...units], { encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    // verify exits 0 on unknown keys and bad values, printing them: none.
    assert.equal(v.stderr.trim(), '', v.stderr);
    for (const unit of units) {
      const s = spawnSync('systemd-analyze', ['security', '--offline=yes', '--threshold=20', unit],
        { encoding: 'utf8' });
      assert.equal(s.status, 0, s.stdout + s.stderr);
      assert.match(s.stdout, /Overall exposure level for .*: [01]\.\d/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
