// Checks of the documentation (suite 'docs'):
//  - every relative link in README.md, docs/*.md and deploy/**/*.md
//    names a file that exists, and a "#fragment" names a heading of the
//    target the way GitHub makes heading anchors;
//  - every ```mermaid block renders to SVG with the mermaid package
//    loaded into Debian's chromium (driven by playwright-core), as
//    GitHub renders it; a block mermaid cannot parse fails, naming the
//    file and line.
// argv: the repository root.  Needs tests/docs/node_modules
// (scripts/npm-deps.sh) and /usr/bin/chromium (scripts/deps.sh).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(process.argv[2] || path.join(here, '..', '..'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(path.join(here, 'node_modules', 'mermaid'))) {
  console.log('FAIL: tests/docs/node_modules is missing (run scripts/npm-deps.sh)');
  process.exit(1);
}
if (!existsSync(CHROMIUM)) {
  console.log(`FAIL: no Chromium at ${CHROMIUM} (scripts/deps.sh installs Debian's chromium)`);
  process.exit(1);
}
const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

function markdownFiles() {
  const out = [path.join(ROOT, 'README.md')];
  const walk = (d) => {
    if (!existsSync(d)) return;
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.md')) out.push(p);
    }
  };
  walk(path.join(ROOT, 'docs'));
  walk(path.join(ROOT, 'deploy'));
  return out;
}

// The lines of a Markdown file outside fenced code blocks, and the
// fenced blocks themselves with their info string and first line.
function parse(text) {
  const prose = [];
  const blocks = [];
  let fence = null;
  text.split('\n').forEach((line, i) => {
    const m = line.match(/^\s*(`{3,}|~{3,})\s*([\w-]*)/);
    if (fence) {
      if (m && m[1][0] === fence.mark[0] && m[1].length >= fence.mark.length &&
          line.trim() === m[1]) {
        blocks.push(fence);
        fence = null;
      } else {
        fence.lines.push(line);
      }
    } else if (m) {
      fence = { mark: m[1], info: m[2], line: i + 1, lines: [] };
    } else {
      prose.push({ line: i + 1, text: line });
    }
  });
  return { prose, blocks };
}

// GitHub's heading anchors: lower case, punctuation other than '-' and
// '_' dropped, spaces to '-', a repeated anchor gets -1, -2, ...
function anchors(text) {
  const seen = new Map();
  const out = new Set();
  for (const { text: line } of parse(text).prose) {
    const m = line.match(/^#{1,6}\s+(.*?)\s*#*\s*$/);
    if (!m) continue;
    const base = m[1].replace(/`/g, '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) || 0;
    seen.set(base, n + 1);
    out.add(n ? `${base}-${n}` : base);
  }
  for (const m of text.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) out.add(m[1]);
  return out;
}

const files = markdownFiles();

test('every relative link in the docs resolves', () => {
  const bad = [];
  let checked = 0;
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const { line, text: l } of parse(text).prose) {
      const stripped = l.replace(/`[^`]*`/g, '');
      for (const m of stripped.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
        const target = m[1];
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;  // http:, mailto:
        checked++;
        const [p, frag] = target.split('#');
        const dest = p ? path.resolve(path.dirname(file), decodeURIComponent(p)) : file;
        const where = `${path.relative(ROOT, file)}:${line}: ${target}`;
        if (!existsSync(dest)) {
          bad.push(`${where}: no such file`);
          continue;
        }
        if (frag && dest.endsWith('.md') && !anchors(readFileSync(dest, 'utf8')).has(frag))
          bad.push(`${where}: no heading with anchor #${frag}`);
      }
    }
  }
  assert.ok(checked > 0, 'found no relative link at all: the scanner is broken');
  assert.deepEqual(bad, [], `broken links:\n${bad.join('\n')}`);
});

let browser, page;
before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  page = await browser.newPage();
  await page.setContent('<!doctype html><html><body></body></html>');
  await page.addScriptTag({ path: path.join(here, 'node_modules', 'mermaid', 'dist', 'mermaid.min.js') });
  await page.evaluate(() => window.mermaid.initialize({ startOnLoad: false }));
});
after(async () => { if (browser) await browser.close(); });

test('every Mermaid block renders to SVG', async () => {
  // The checker itself must be able to fail: a broken diagram is refused.
  const probe = await page.evaluate(async () => {
    try { await window.mermaid.render('probe', 'flowchart LR\n  A --> '); return 'rendered'; }
    catch (e) { return 'refused'; }
  });
  assert.equal(probe, 'refused', 'mermaid accepted a broken diagram');
  const bad = [];
  let n = 0;
  for (const file of files) {
    for (const b of parse(readFileSync(file, 'utf8')).blocks) {
      if (b.info !== 'mermaid') continue;
      n++;
      const r = await page.evaluate(async ([id, src]) => {
        try {
          const { svg } = await window.mermaid.render(id, src);
          return { ok: svg.startsWith('<svg') && svg.length > 200, len: svg.length };
        } catch (e) { return { ok: false, err: String(e && e.message || e) }; }
      }, [`m${n}`, b.lines.join('\n')]);
      if (!r.ok)
        bad.push(`${path.relative(ROOT, file)}:${b.line}: ${r.err || `empty SVG (${r.len} bytes)`}`);
    }
  }
  console.log(`# ${n} Mermaid block(s) rendered`);
  assert.deepEqual(bad, [], `Mermaid blocks that do not render:\n${bad.join('\n')}`);
});
