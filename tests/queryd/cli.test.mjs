// es-queryd's command line: --help, and a one-line reason with exit
// status 2 (usage) or 1 (runtime) for each way to start it wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import * as h from './lib.mjs';

function run(args) {
  const r = spawnSync(h.QUERYD, args, { encoding: 'utf8', timeout: 10000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('--help and --version', () => {
  const r = run(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.out, /usage: es-queryd --data DIR --listen HOST:PORT --tokens FILE/);
  assert.match(r.out, /--ingest-listen/);
  assert.match(run(['--version']).out, /^es-queryd \d+\.\d+\.\d+\n$/);
});

test('bad usage: exit 2, one line naming the problem', () => {
  const dir = h.scratchDir();
  const tokens = path.join(dir, 'tokens.json');
  const bad = path.join(dir, 'bad.json');
  writeFileSync(bad, '{"short":"acme"}');
  const base = ['--data', path.join(dir, 'data'), '--listen', '127.0.0.1:0'];
  const cases = [
    [[], /--data, --listen and --tokens are required/],
    [[...base, '--tokens', tokens, '--bogus', 'x'], /unknown flag --bogus/],
    [[...base, '--tokens', tokens, '--live-window-s', '0'], /--live-window-s wants a whole number/],
    [['--data', 'd', '--listen', 'nocolon', '--tokens', tokens], /--listen wants IP:PORT \(127\.0\.0\.1:8080.*localhost:8080\)/],
    [[...base, '--tokens', path.join(dir, 'missing.json')], /cannot read --tokens/],
    [[...base, '--tokens', bad], /each token \(8-200 bytes\)/],
    [[...base, '--tokens', tokens, '--ingest-listen', '127.0.0.1:0'], /--ingest-listen and --keys go together/],
    [[...base, '--tokens', tokens, '--webhooks', tokens], /--webhooks .*object rule -> URL/],
  ];
  for (const [args, re] of cases) {
    const r = run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
    assert.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
  }
  h.removeDir(dir);
});

test('a store that cannot be opened: exit 1, one line', () => {
  const dir = h.scratchDir();
  // read-only needs an existing store: ES_ENOTFOUND, in one line
  const r = run(['--data', path.join(dir, 'nothing-here'), '--listen', '127.0.0.1:0',
                 '--tokens', path.join(dir, 'tokens.json')]);
  assert.equal(r.code, 1);
  assert.match(r.err, /^es-queryd: cannot open .*nothing-here read-only: /);
  assert.equal(r.err.trim().split('\n').length, 1);
  h.removeDir(dir);
});
