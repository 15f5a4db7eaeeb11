// esctl export read back by three independent readers: DuckDB
// (@duckdb/node-api), parquet-wasm (arrow-rs compiled to WebAssembly) and
// hyparquet (+ hyparquet-compressors, pure JavaScript); NDJSON.gz by
// DuckDB read_json and by zlib + JSON.parse.  What must hold:
//  - rows per tenant, day, type and event equal `esctl query`;
//  - every column of every row equals `esctl scan` (the mapping of
//    docs/EXPORT.md), through each reader;
//  - types are as documented (timestamps are TIMESTAMP(UTC, MICROS));
//  - awkward events (edge_store.c: huge, empty, invalid UTF-8, not JSON,
//    day edges, many row groups) read back as documented;
//  - re-exporting a day with late events: every row once, the late ones
//    present, the old files gone;
//  - esctl export works beside a process holding the store for writing;
//  - a SIGKILL at random points of `esctl export` never leaves a
//    partition whose _manifest.json disagrees with its files.
//  - files the Parquet fuzz target wrote (tests/fuzz/fuzz_parquet.c, text
//    mode) read the same through the three readers.
// Usage: node export.test.mjs ESCTL EDGE_STORE [REPLAY_PARQUET CORPUS]
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

let duck, hyp, hypc, pw, arrow;
try {
  duck = await import('@duckdb/node-api');
  hyp = await import('hyparquet');
  hypc = await import('hyparquet-compressors');
  pw = await import('parquet-wasm');
  arrow = await import('apache-arrow');
} catch (e) {
  console.error('export test: npm packages missing; run scripts/npm-deps.sh:', e.message);
  process.exit(1);
}

const [ESCTL, EDGE, REPLAY, CORPUS] = process.argv.slice(2);
const ENV = { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' };
const SCRATCH = mkdtempSync(path.join(os.tmpdir(), 'es-export-'));
process.on('exit', () => rmSync(SCRATCH, { recursive: true, force: true }));
const DATA = path.join(SCRATCH, 'data');
const DAYS = ['2026-11-20', '2026-11-21', '2026-11-22'];
const TENANTS = ['acme', 'beta'];

function esctl(args, input) {
  const r = spawnSync(ESCTL, args, { input, encoding: 'utf8', env: ENV, maxBuffer: 1 << 28 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
function ok(args, input) {
  const r = esctl(args, input);
  assert.equal(r.code, 0, `esctl ${args.join(' ')}: ${r.err}`);
  return r.out;
}

// A seeded generator: the same store every run.
let seed = 1234567;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
function genEvents(tenant, n, idBase, dayList = DAYS) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const day = dayList[rnd(dayList.length)];
    const ts = `${day}T${String(rnd(24)).padStart(2, '0')}:${String(rnd(60)).padStart(2, '0')}:` +
      `${String(rnd(60)).padStart(2, '0')}.${String(rnd(1000000)).padStart(6, '0')}Z`;
    const anon = `anon-${rnd(300)}`;
    const e = { messageId: `${tenant}-${idBase + i}`, anonymousId: anon, timestamp: ts };
    const k = rnd(20);
    if (k < 8) {
      Object.assign(e, { type: 'page', name: ['Home', 'Pricing', 'Docs'][rnd(3)] });
      e.context = {
        page: { path: ['/', '/pricing', '/docs/a'][rnd(3)], url: 'https://ex.com/x?y=1', referrer: rnd(2) ? 'https://google.com/' : undefined },
        userAgent: ['Mozilla/5.0 (X11)', 'Mozilla/5.0 (Mac)'][rnd(2)], ip: '198.51.100.7',
      };
      e.properties = { title: 't' + rnd(5) };
    } else if (k < 16) {
      Object.assign(e, { type: 'track', event: ['Signed Up', 'Clicked', 'Played'][rnd(3)], properties: { n: rnd(100), nested: { a: [1, 'x', null] } } });
    } else if (k < 18) {
      Object.assign(e, { type: 'identify', userId: `user-${rnd(60)}`, traits: { email: 'x@example.com', plan: 'pro' } });
    } else if (k < 19) {
      Object.assign(e, { type: 'alias', userId: `user-${rnd(60)}`, previousId: `old-${rnd(9)}` });
      delete e.anonymousId;
    } else {
      Object.assign(e, { type: 'group', userId: `user-${rnd(60)}`, groupId: `org-${rnd(5)}`, traits: { size: 10 } });
    }
    out.push(JSON.stringify(e));
  }
  return out.join('\n') + '\n';
}

// The store: half flushed into segments, half only in the WAL.
for (const [t, n] of [['acme', 3000], ['beta', 800]]) {
  ok(['append', '--data', DATA, '--tenant', t, '--batch', '500'], genEvents(t, n, 0));
  ok(['flush', '--data', DATA, '--tenant', t]);
  ok(['append', '--data', DATA, '--tenant', t, '--batch', '500'], genEvents(t, n / 2, n));
}

function scanAll(tenant, data = DATA) {
  const m = new Map();
  const out = ok(['scan', '--data', data, '--tenant', tenant, '--from', DAYS[0], '--to', '2026-11-23']);
  for (const line of out.trim().split('\n')) {
    const e = JSON.parse(line);
    m.set(e.messageId, e);
  }
  return m;
}
function queryCounts(tenant, data = DATA) {
  const spec = JSON.stringify({ from: `${DAYS[0]}T00:00:00Z`, to: '2026-11-23T00:00:00Z', bucket: 'day', groupBy: ['type', 'event'], aggregate: ['count'] });
  const res = JSON.parse(ok(['query', '--data', data, '--tenant', tenant, '--spec', '-'], spec));
  const m = new Map();
  for (const r of res.rows) m.set(`${tenant}|${r.bucket.slice(0, 10)}|${r.type}|${r.event}`, r.count);
  return m;
}
const isoUs = (s) => {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(s);
  return BigInt(Date.parse(m[1] + 'Z')) * 1000n + BigInt((m[2] || '').padEnd(6, '0').slice(0, 6) || 0);
};

// What the export must hold for a scanned event (docs/EXPORT.md).
function expected(e) {
  const traits = e.type === 'identify' || e.type === 'group';
  const page = e.context?.page || {};
  return {
    message_id: e.messageId, type: e.type, event: e.event,
    timestamp: isoUs(e.timestamp), received_at: e.receivedAt ? isoUs(e.receivedAt) : null, sent_at: null,
    anonymous_id: e.anonymousId, user_id: e.userId,
    page_path: page.path ?? null, page_url: page.url ?? null, page_referrer: page.referrer ?? null,
    page_title: null, user_agent: e.context?.userAgent ?? null, ip: e.context?.ip ?? null,
    properties: traits ? null : e.properties, context: null, traits: traits ? e.properties : null,
    previous_id: e.previousId ?? null, group_id: e.groupId ?? null,
  };
}
// Compares one exported row (normalised: timestamps as BigInt µs, JSON
// parsed) with the scanned event.
function checkRow(row, scanned, who) {
  const e = scanned.get(row.message_id);
  assert.ok(e, `${who}: ${row.message_id} is not in esctl scan`);
  const want = expected(e);
  for (const [k, v] of Object.entries(want))
    assert.deepEqual(row[k], v, `${who}: ${row.message_id}.${k}`);
  const id = e.userId || e.anonymousId;
  assert.equal(row.person_id === null, !id, `${who}: person_id of ${row.message_id}`);
}
const jsonOrNull = (v) => (v === null || v === undefined ? null : typeof v === 'string' ? JSON.parse(v) : v);

function partFiles(dir) {
  const out = [];
  const walk = (d) => {
    for (const n of readdirSync(d)) {
      const p = path.join(d, n);
      if (statSync(p).isDirectory()) walk(p); else out.push(p);
    }
  };
  if (existsSync(dir)) walk(dir);
  return out.sort();
}

const inst = await duck.DuckDBInstance.create(':memory:');
const con = await inst.connect();
async function sql(q) { return (await con.runAndReadAll(q)).getRowObjectsJson(); }

async function duckCounts(glob, reader = 'read_parquet') {
  const rows = await sql(`SELECT tenant, CAST(date AS VARCHAR) AS day, type, event, count(*) AS n
    FROM ${reader}('${glob}', hive_partitioning=true) GROUP BY ALL`);
  const m = new Map();
  for (const r of rows) m.set(`${r.tenant}|${r.day}|${r.type}|${r.event}`, Number(r.n));
  return m;
}
const sortMap = (m) => [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
const allQueryCounts = () => new Map(TENANTS.flatMap((t) => [...queryCounts(t)]));

const OUT = path.join(SCRATCH, 'out');
for (const [sub, extra] of [['zstd', []], ['snappy', ['--compression', 'snappy', '--threads', '1']], ['none', ['--compression', 'none', '--threads', '3']]]) {
  const s = ok(['export', '--data', DATA, '--all', '--from', DAYS[0], '--to', DAYS[2], '--out', path.join(OUT, sub), ...extra]);
  assert.match(s, /^exported 5700 rows, 6 files, \d+ bytes, 6 partitions in [\d.]+ s\n$/);
}
ok(['export', '--data', DATA, '--tenant', 'acme', '--tenant', 'beta', '--from', DAYS[0], '--to', DAYS[2], '--format', 'ndjson', '--out', path.join(OUT, 'nd')]);

test('DuckDB: rows per tenant, day, type and event equal esctl query', async () => {
  const want = sortMap(allQueryCounts());
  for (const sub of ['zstd', 'snappy', 'none'])
    assert.deepEqual(sortMap(await duckCounts(path.join(OUT, sub, '**/*.parquet'))), want, sub);
  assert.deepEqual(sortMap(await duckCounts(path.join(OUT, 'nd', '**/*.ndjson.gz'), 'read_json')), want, 'ndjson');
});

test('DuckDB: types as documented, values equal esctl scan', async () => {
  const glob = path.join(OUT, 'zstd', '**/*.parquet');
  const types = Object.fromEntries((await sql(`DESCRIBE SELECT * FROM read_parquet('${glob}')`)).map((r) => [r.column_name, r.column_type]));
  for (const c of ['timestamp', 'received_at', 'sent_at']) assert.equal(types[c], 'TIMESTAMP WITH TIME ZONE', c);
  for (const c of ['properties', 'context', 'traits']) assert.equal(types[c], 'JSON', c);
  for (const c of ['message_id', 'type', 'event', 'anonymous_id', 'user_id', 'person_id', 'page_path', 'page_url', 'page_referrer', 'page_title', 'user_agent', 'ip', 'previous_id', 'group_id'])
    assert.equal(types[c], 'VARCHAR', c);
  const meta = await sql(`SELECT path_in_schema AS c, compression, encodings, stats_min_value AS mn, stats_null_count AS nulls
    FROM parquet_metadata('${path.join(OUT, 'zstd', 'tenant=acme', 'date=2026-11-21', 'part-00000.parquet')}')`);
  const byCol = Object.fromEntries(meta.map((r) => [r.c, r]));
  assert.equal(byCol.type.compression, 'ZSTD');
  assert.match(byCol.type.encodings, /RLE_DICTIONARY/);
  assert.match(byCol.message_id.encodings, /PLAIN/);
  const f21 = path.join(OUT, 'zstd', 'tenant=acme', 'date=2026-11-21', 'part-00000.parquet');
  const mins = (await sql(`SELECT min(type) AS t, min(message_id) AS m FROM read_parquet('${f21}')`))[0];
  assert.equal(byCol.type.mn, mins.t);
  assert.equal(byCol.message_id.mn, mins.m);
  assert.ok(Number(byCol.sent_at.nulls) > 0);
  for (const t of TENANTS) {
    const scanned = scanAll(t);
    const rows = await sql(`SELECT * EXCLUDE (timestamp, received_at, sent_at), epoch_us(timestamp) AS ts,
        epoch_us(received_at) AS recv, epoch_us(sent_at) AS sent, CAST(properties AS VARCHAR) AS props,
        CAST(traits AS VARCHAR) AS tr, CAST(context AS VARCHAR) AS ctx
      FROM read_parquet('${glob}', hive_partitioning=true) WHERE tenant='${t}'`);
    assert.equal(rows.length, scanned.size);
    for (const r of rows) {
      checkRow({
        ...r, timestamp: BigInt(r.ts), received_at: r.recv === null ? null : BigInt(r.recv), sent_at: r.sent,
        properties: jsonOrNull(r.props), traits: jsonOrNull(r.tr), context: jsonOrNull(r.ctx),
      }, scanned, 'duckdb');
    }
  }
});

async function hypRows(file) {
  const buf = await hyp.asyncBufferFromFile(file);
  const md = await hyp.parquetMetadataAsync(buf);
  const rows = await hyp.parquetReadObjects({ file: buf, compressors: hypc.compressors, utf8: true });
  return { md, rows };
}

test('hyparquet: logical types, and every row equals esctl scan', async () => {
  for (const sub of ['zstd', 'snappy', 'none']) {
    let n = 0;
    for (const t of TENANTS) {
      const scanned = scanAll(t);
      for (const f of partFiles(path.join(OUT, sub, `tenant=${t}`)).filter((p) => p.endsWith('.parquet'))) {
        const { md, rows } = await hypRows(f);
        const el = Object.fromEntries(md.schema.map((s) => [s.name, s]));
        assert.deepEqual(el.timestamp.logical_type, { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' });
        assert.equal(el.timestamp.type, 'INT64');
        assert.equal(el.properties.logical_type.type, 'JSON');
        assert.equal(el.message_id.logical_type.type, 'STRING');
        for (const r of rows) {
          // hyparquet gives Dates (milliseconds): compare at that precision
          const e = scanned.get(r.message_id);
          assert.ok(e, r.message_id);
          assert.equal(r.timestamp.getTime(), Number(isoUs(e.timestamp) / 1000n), `${r.message_id} timestamp`);
          checkRow({ ...r, timestamp: isoUs(e.timestamp), received_at: r.received_at && isoUs(e.receivedAt), sent_at: r.sent_at }, scanned, 'hyparquet');
          n++;
        }
      }
    }
    assert.equal(n, 5700, sub);
  }
});

function wasmTable(file) {
  const t = pw.readParquet(new Uint8Array(readFileSync(file)));
  return arrow.tableFromIPC(t.intoIPCStream());
}

test('parquet-wasm (arrow-rs): types, and every row equals esctl scan', async () => {
  let n = 0;
  for (const t of TENANTS) {
    const scanned = scanAll(t);
    for (const f of partFiles(path.join(OUT, 'zstd', `tenant=${t}`)).filter((p) => p.endsWith('.parquet'))) {
      const tab = wasmTable(f);
      const types = Object.fromEntries(tab.schema.fields.map((x) => [x.name, String(x.type)]));
      assert.equal(types.timestamp, 'Timestamp<MICROSECOND, UTC>');
      assert.equal(types.sent_at, 'Timestamp<MICROSECOND, UTC>');
      assert.equal(types.message_id, 'Utf8');
      for (const row of tab) {
        const r = row.toJSON();
        // apache-arrow gives µs timestamps as fractional milliseconds
        const us = (v) => (v === null ? null : BigInt(Math.round(v * 1000)));
        checkRow({
          ...r, timestamp: us(r.timestamp), received_at: us(r.received_at), sent_at: r.sent_at,
          properties: jsonOrNull(r.properties), traits: jsonOrNull(r.traits), context: jsonOrNull(r.context),
        }, scanned, 'parquet-wasm');
        n++;
      }
    }
  }
  assert.equal(n, 5700);
});

test('NDJSON.gz: zlib + JSON.parse rows equal esctl scan; manifests match files', async () => {
  let n = 0;
  for (const t of TENANTS) {
    const scanned = scanAll(t);
    for (const f of partFiles(path.join(OUT, 'nd', `tenant=${t}`)).filter((p) => p.endsWith('.ndjson.gz'))) {
      const lines = zlib.gunzipSync(readFileSync(f)).toString('utf8').split('\n');
      assert.equal(lines.pop(), '');
      for (const line of lines) {
        const r = JSON.parse(line);
        checkRow({ ...r, timestamp: isoUs(r.timestamp), received_at: r.received_at && isoUs(r.received_at) }, scanned, 'ndjson');
        n++;
      }
    }
  }
  assert.equal(n, 5700);
  for (const sub of ['zstd', 'nd']) checkManifests(path.join(OUT, sub), true);
});

// Every partition's manifest names files that exist with its sizes and
// CRC-32s; exact: no other part files in the directory.
function checkManifests(root, exact) {
  let parts = 0;
  for (const t of readdirSync(root)) {
    for (const d of readdirSync(path.join(root, t))) {
      const dir = path.join(root, t, d);
      const mpath = path.join(dir, '_manifest.json');
      const names = readdirSync(dir);
      if (!existsSync(mpath)) {
        assert.ok(!exact, `${dir}: no manifest`);
        continue;
      }
      const m = JSON.parse(readFileSync(mpath, 'utf8'));
      assert.equal(`tenant=${m.tenant}`, t);
      assert.equal(`date=${m.date}`, d);
      let rows = 0;
      for (const f of m.files) {
        const bytes = readFileSync(path.join(dir, f.name));
        assert.equal(bytes.length, f.bytes, `${dir}/${f.name} size`);
        assert.equal(zlib.crc32(bytes).toString(16).padStart(8, '0'), f.crc32, `${dir}/${f.name} crc32`);
        rows += f.rows;
      }
      assert.equal(rows, m.rows);
      if (exact) assert.deepEqual(names.filter((x) => x !== '_manifest.json').sort(), m.files.map((f) => f.name).sort());
      parts++;
    }
  }
  return parts;
}

test('edge cases: huge, empty, invalid UTF-8, not JSON, day edges, many row groups', async () => {
  const data = path.join(SCRATCH, 'edge-data');
  const out = path.join(SCRATCH, 'edge-out');
  const r = spawnSync(EDGE, [data, out, ESCTL], { encoding: 'utf8', env: ENV });
  assert.equal(r.status, 0, r.stderr);
  const day1 = (sub, ext) => path.join(out, sub, 'tenant=edge', 'date=2026-03-01', `part-00000.${ext}`);
  const { md, rows } = await hypRows(day1('manyrg', 'parquet'));
  assert.ok(md.row_groups.length > 1, `${md.row_groups.length} row groups`);
  assert.equal(rows.length, 11 + 3000);
  const byId = (list) => Object.fromEntries(list.filter((x) => x.message_id.startsWith('edge-')).map((x) => [x.message_id, x]));
  for (const sub of ['manyrg', 'parquet']) {
    const h = byId((await hypRows(day1(sub, 'parquet'))).rows);
    const w = byId([...wasmTable(day1(sub, 'parquet'))].map((x) => x.toJSON()));
    const d = byId(await sql(`SELECT message_id, event, page_path, user_agent, CAST(properties AS VARCHAR) AS properties,
        epoch_us(timestamp) AS ts FROM read_parquet('${day1(sub, 'parquet')}')`));
    for (const [who, m] of [['hyparquet', h], ['parquet-wasm', w], ['duckdb', d]]) {
      assert.equal(Object.keys(m).length, 11, who);
      // hyparquet parses JSON columns itself; the others give the text
      const props = (id) => (who === 'hyparquet' ? m[id].properties : jsonOrNull(m[id].properties));
      assert.equal(m['edge-00'].event, '', who);
      assert.equal(m['edge-00'].page_path, '', who);
      assert.deepEqual(props('edge-00'), {}, who);
      assert.equal(props('edge-01').big.length, 900000 - 10, who);
      assert.deepEqual(props('edge-02'), { s: 'caf\uFFFD' }, who); // bad byte -> U+FFFD
      assert.equal(m['edge-02'].user_agent, 'Mozilla\uFFFD/5.0', who);
      assert.equal(props('edge-03'), 'plain text, not JSON', who);
      assert.deepEqual(props('edge-04'), { a: [1, 2], b: 'x' }, who);
    }
    assert.equal(d['edge-00'].ts, String(20513n * 86400000000n));
    assert.equal(d['edge-10'].ts, String(20514n * 86400000000n - 1n));
  }
  const lines = zlib.gunzipSync(readFileSync(day1('ndjson', 'ndjson.gz'))).toString('utf8').trim().split('\n');
  assert.equal(lines.length, 11 + 3000);
  const nd = byId(lines.map((l) => JSON.parse(l)));
  assert.deepEqual(nd['edge-04'].properties, { a: [1, 2], b: 'x' });
  assert.equal(nd['edge-10'].timestamp, '2026-03-01T23:59:59.999999Z');
  assert.equal(nd['edge-06'].traits.email, 'a@example.com');
  assert.equal(nd['edge-07'].previous_id, 'old-1');
  assert.equal(nd['edge-08'].group_id, 'org-9');
  const next = await sql(`SELECT count(*) AS n FROM read_parquet('${path.join(out, 'parquet', 'tenant=edge', 'date=2026-03-02', '*.parquet')}')`);
  assert.equal(Number(next[0].n), 1);
  for (const sub of ['manyrg', 'parquet', 'ndjson', 'beside']) checkManifests(path.join(out, sub), true);
  // esctl export (read-only) beside edge_store's open writable handle
  const beside = await sql(`SELECT CAST(date AS VARCHAR) AS day, count(*) AS n
    FROM read_parquet('${path.join(out, 'beside', '**', '*.parquet')}', hive_partitioning=true) GROUP BY ALL ORDER BY ALL`);
  assert.deepEqual(beside.map((x) => [x.day, Number(x.n)]), [['2026-03-01', 3011], ['2026-03-02', 1]]);
});

test('dictionary overflow and many pages: 70,000 distinct strings read back', async () => {
  const f = path.join(SCRATCH, 'edge-out', 'parquet', 'tenant=wide', 'date=2026-03-01', 'part-00000.parquet');
  const meta = await sql(`SELECT path_in_schema AS c, encodings FROM parquet_metadata('${f}')`);
  const enc = Object.fromEntries(meta.map((r) => [r.c, r.encodings]));
  assert.match(enc.event, /RLE_DICTIONARY/);
  assert.match(enc.event, /PLAIN/); // fell back after the dictionary filled
  assert.match(enc.anonymous_id, /RLE_DICTIONARY/);
  assert.match(enc.user_agent, /RLE_DICTIONARY/);
  const d = await sql(`SELECT count(*) AS n, count(DISTINCT event) AS e,
      count(*) FILTER (WHERE event = 'ev-' || substr(message_id, 3)
                       AND anonymous_id = 'an-' || substr(message_id, 3)
                       AND user_agent = CASE WHEN CAST(substr(message_id, 3) AS INT) % 3 = 0 THEN 'UA-b' ELSE 'UA-a' END) AS ok
    FROM read_parquet('${f}')`);
  assert.deepEqual([Number(d[0].n), Number(d[0].e), Number(d[0].ok)], [70000, 70000, 70000]);
  const check = (rows, who) => {
    assert.equal(rows.length, 70000, who);
    for (const r of rows) {
      const k = r.message_id.slice(2);
      assert.equal(r.event, `ev-${k}`, `${who} ${r.message_id}`);
      assert.equal(r.anonymous_id, `an-${k}`, `${who} ${r.message_id}`);
      assert.equal(r.user_agent, Number(k) % 3 ? 'UA-a' : 'UA-b', `${who} ${r.message_id}`);
    }
  };
  check((await hypRows(f)).rows, 'hyparquet');
  check([...wasmTable(f)].map((x) => x.toJSON()), 'parquet-wasm');
});

test('re-export with late events: every row once, the late rows present, old files gone', async () => {
  const out = path.join(SCRATCH, 'idem');
  const args = ['export', '--data', DATA, '--tenant', 'acme', '--from', DAYS[0], '--to', DAYS[2], '--out', out];
  ok(args);
  const dir = path.join(out, 'tenant=acme', 'date=2026-11-21');
  const before = JSON.parse(readFileSync(path.join(dir, '_manifest.json'), 'utf8'));
  ok(['append', '--data', DATA, '--tenant', 'acme'], genEvents('acme', 40, 900000, ['2026-11-21']));
  ok(args);
  const after = JSON.parse(readFileSync(path.join(dir, '_manifest.json'), 'utf8'));
  assert.equal(after.rows, before.rows + 40);
  assert.notDeepEqual(after.files.map((f) => f.name), before.files.map((f) => f.name));
  for (const f of before.files) assert.ok(!existsSync(path.join(dir, f.name)), `${f.name} removed`);
  const rows = await sql(`SELECT count(*) AS n, count(DISTINCT message_id) AS d,
      count(*) FILTER (WHERE message_id LIKE 'acme-9000%') AS late
    FROM read_parquet('${path.join(out, '**', '*.parquet')}', hive_partitioning=true)`);
  assert.equal(Number(rows[0].n), Number(rows[0].d));
  assert.equal(Number(rows[0].late), 40);
  assert.deepEqual(sortMap(await duckCounts(path.join(out, '**', '*.parquet'))), sortMap(queryCounts('acme')));
  checkManifests(out, true);
});

test('SIGKILL at random points never leaves a manifest that disagrees with its files', async () => {
  const out = path.join(SCRATCH, 'kill');
  const args = ['export', '--data', DATA, '--all', '--from', DAYS[0], '--to', DAYS[2], '--out', out];
  let t0 = Date.now();
  ok(args);
  const full = Math.max(Date.now() - t0, 50);
  for (let i = 0; i < 8; i++) {
    const child = spawn(ESCTL, args, { env: ENV, stdio: 'ignore' });
    const delay = Math.floor(full * (0.1 + 0.8 * (i / 8)));
    const done = new Promise((res) => child.on('exit', res));
    await new Promise((res) => setTimeout(res, delay));
    child.kill('SIGKILL');
    await done;
    checkManifests(out, false);
  }
  ok(args); // a complete run after the kills: orphans gone, rows right
  checkManifests(out, true);
  const want = sortMap(allQueryCounts());
  assert.deepEqual(sortMap(await duckCounts(path.join(out, '**', '*.parquet'))), want);
});

test('fuzz target outputs: DuckDB, hyparquet and parquet-wasm agree', { skip: !REPLAY && 'no replay_parquet given' }, async () => {
  const dir = path.join(SCRATCH, 'fuzz-out');
  rmSync(dir, { recursive: true, force: true });
  spawnSync('mkdir', ['-p', dir]);
  const r = spawnSync(REPLAY, [CORPUS], { encoding: 'utf8', env: { ...ENV, FUZZ_PARQUET_OUT: dir } });
  assert.equal(r.status, 0, r.stderr);
  const files = readdirSync(dir).filter((f) => f.endsWith('.parquet')).map((f) => path.join(dir, f));
  assert.ok(files.length >= 4, `${files.length} files`);
  const cols = ['message_id', 'type', 'event', 'timestamp', 'received_at', 'sent_at', 'anonymous_id', 'user_id',
    'person_id', 'page_path', 'page_url', 'page_referrer', 'page_title', 'user_agent', 'ip', 'properties',
    'context', 'traits', 'previous_id', 'group_id'];
  for (const f of files) {
    const d = (await sql(`SELECT count(*) AS n, ${cols.map((c) => `count("${c}") AS "${c}"`).join(', ')},
        sum(length(coalesce(event, ''))) AS ev_len FROM read_parquet('${f}')`))[0];
    const { rows } = await hypRows(f);
    const tab = wasmTable(f);
    assert.equal(rows.length, Number(d.n), `${f} hyparquet rows`);
    assert.equal(tab.numRows, Number(d.n), `${f} parquet-wasm rows`);
    for (const c of cols) {
      const h = rows.filter((x) => x[c] !== null && x[c] !== undefined).length;
      const w = tab.numRows - tab.getChild(c).nullCount;
      assert.equal(h, Number(d[c]), `${f} ${c}: hyparquet non-nulls`);
      assert.equal(w, Number(d[c]), `${f} ${c}: parquet-wasm non-nulls`);
    }
    const evLen = rows.reduce((a, x) => a + (x.event ?? '').length, 0);
    assert.equal(evLen, Number(d.ev_len), `${f} event bytes`);
  }
});

test('esctl export refuses bad usage with exit status 2', () => {
  const base = ['export', '--data', DATA, '--from', DAYS[0], '--to', DAYS[2]];
  const cases = [
    [[...base, '--all', '--out', 's3:///prefix'], /--out wants s3:\/\/BUCKET/],
    [[...base, '--all', '--out', 'x', '--s3-region', 'eu-west-1'], /--s3-endpoint and --s3-region are for an s3:\/\/ --out/],
    [[...base, '--out', path.join(SCRATCH, 'x')], /give --tenant T \(one or more\) or --all/],
    [['export', '--data', DATA, '--all', '--from', '2026-02-30', '--to', DAYS[2], '--out', 'x'], /want a day YYYY-MM-DD/],
    [[...base, '--all', '--out', 'x', '--format', 'csv'], /--format: parquet or ndjson/],
    [[...base, '--all', '--out', 'x', '--compression', 'lz4'], /--compression: zstd, snappy or none/],
    [[...base, '--tenant', 'bad/name', '--out', 'x'], /invalid tenant/],
    [[...base, '--all', '--out', 'x', '--threads', '0'], /--threads: a number from 1 to 64/],
  ];
  for (const [args, re] of cases) {
    const r = esctl(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, re);
  }
  assert.match(ok(['export', '--help']), /usage: esctl export --data DIR/);
});

test('docs/EXPORT.md: the DuckDB recipe runs as written', async () => {
  const doc = readFileSync(new URL('../../docs/EXPORT.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('### DuckDB'), doc.indexOf('### Snowflake'));
  const block = /```sql\n([\s\S]*?)```/.exec(section)[1]
    .replaceAll('/srv/export', path.join(OUT, 'zstd')).replaceAll('/srv/nd', path.join(OUT, 'nd'));
  const stmts = block.split(';').map((q) => q.replace(/--.*$/gm, '').trim()).filter(Boolean);
  assert.equal(stmts.length, 2);
  const byDay = await sql(stmts[0]);
  const total = byDay.reduce((a, r) => a + Number(r['count_star()']), 0);
  assert.equal(total, 5700);
  assert.ok(byDay.every((r) => ['acme', 'beta'].includes(r.tenant) && DAYS.includes(String(r.date))), JSON.stringify(byDay[0]));
  const nd = await sql(stmts[1]);
  assert.equal(Number(Object.values(nd[0])[0]), 5700);
});
