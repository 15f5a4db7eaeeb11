// Live administration in the two-process set-up (es-ingestd writes,
// es-queryd reads the same directory): a behaviour segment added through
// es-ingestd's admin API shows its members through es-queryd with no
// restart; a query token rotated by SIGHUP on es-queryd (old token 401,
// new 200; a bad file keeps the tokens); es-queryd's error answers carry
// no source locations.  Real HTTP throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import * as h from './lib.mjs';

const ADMIN = 'admin-token-9c4e21f07a3b5d68';

async function waitFor(fn, what, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await h.sleep(50);
  }
}

test('a segment added through the admin API, members through es-queryd', async () => {
  const dir = h.scratchDir();
  writeFileSync(path.join(dir, 'admin.json'), JSON.stringify([ADMIN]));
  const s = await h.startServers(dir, {
    ingestArgs: ['--admin-tokens', path.join(dir, 'admin.json')],
  });
  try {
    const q = s.query;
    const send = async (anonymousId) => {
      const res = await fetch(s.ingestUrl + '/v1/page', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json',
                   Authorization: 'Basic ' + Buffer.from(`${h.WRITE_KEY.acme}:`).toString('base64') },
        body: JSON.stringify({ anonymousId, name: 'Pricing', properties: { path: '/pricing' } }),
      });
      assert.equal(res.status, 200, await res.text());
    };
    for (const v of ['v-1', 'v-1', 'v-2']) await send(v);

    const res = await fetch(s.ingestUrl + '/v1/admin/tenants/acme/rules/pricing-2x', {
      method: 'PUT', headers: { Authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify({ match: { type: 'page', path: '/pricing' }, atLeast: 2, within: '7d' }),
    });
    assert.equal(res.status, 200, await res.text());
    const members = await waitFor(async () => {
      const r = await h.call(q, '/v1/segments/pricing-2x/members?by=id', { token: h.TOKEN.acme });
      return r.status === 200 && r.body.members.length > 0 ? r.body.members : null;
    }, 'the new rule in es-queryd');
    assert.deepEqual(members, ['v-1']);
    await send('v-2'); // v-2 crosses the threshold now
    await waitFor(async () => {
      const r = await h.call(q, '/v1/segments/pricing-2x/members', { token: h.TOKEN.acme });
      return r.body.persons.some((p) => p.person === 'v-2'); // per person by default
    }, 'v-2 a member');

    // a query token rotated by SIGHUP
    const tokens = path.join(dir, 'tokens.json');
    writeFileSync(tokens, JSON.stringify({ 'tok-acme-rotated-1': 'acme', 'tok-beta-9876543210': 'beta' }));
    q.proc.kill('SIGHUP');
    await waitFor(() => /"msg":"query tokens reloaded"/.test(q.log()), 'the reload');
    assert.equal((await h.call(q, '/v1/segments', { token: h.TOKEN.acme })).status, 401);
    assert.equal((await h.call(q, '/v1/segments', { token: 'tok-acme-rotated-1' })).status, 200);
    writeFileSync(tokens, '[]');
    q.proc.kill('SIGHUP');
    await waitFor(() => /reload refused: keeping the old query tokens/.test(q.log()), 'the refusal');
    assert.equal((await h.call(q, '/v1/segments', { token: 'tok-acme-rotated-1' })).status, 200);
    assert.equal(q.log().includes('tok-acme-rotated-1'), false, 'a token in the log');

    const bad = await h.call(q, '/v1/query', { token: 'tok-acme-rotated-1', body: { group: ['nope'] } });
    assert.equal(bad.status, 400, bad.text);
    assert.doesNotMatch(bad.text, /\.c:\d+/, 'a source location in an answer');
  } finally {
    await h.stopServers(s);
    h.removeDir(dir);
  }
});
