#!/usr/bin/env python3
"""Query time of each es-queryd dashboard panel on a hot tenant.

usage: bench/dashboard_panels.py BUILD_DIR [EVENTS] [RUNS]

Writes EVENTS (default 500000) Segment events of tenant "hot" spread over
the last 7 days (5,000 visitors, pages/tracks/identifies with user
agents, referrers from 120 hosts and campaign URLs) into a scratch store
with `esctl append`, adds two rules, starts es-queryd (read-only) on it
and asks each panel's requests as the page does for the "last 7 days",
"last 24 hours" and "last hour" ranges, RUNS (default 7) times, printing
the median wall time per panel (HTTP on loopback, answer read in full)
and the bytes on disk per event of the segments and of their rollups.
docs/QUERYD.md quotes its output.
"""
import json, os, random, shutil, socket, statistics, subprocess, sys, tempfile
import time, urllib.parse, urllib.request

build = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 500000
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 7
esctl = os.path.join(build, 'cmd/esctl')
queryd = os.path.join(build, 'cmd/queryd/es-queryd')
UAS = ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
       'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
       'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0']
PATHS = ['/', '/pricing', '/docs', '/blog/launch', '/signup', '/docs/api']
REFS = ['', 'https://news.example/a', 'https://www.google.com/'] + [f'https://site{i}.example/p' for i in range(120)]

d = tempfile.mkdtemp(prefix='es-dash-bench-')
try:
    rnd = random.Random(7)
    now = time.time()
    lines = []
    for i in range(n):
        ts = now - 7 * 86400 + (i / n) * (7 * 86400 - 60)
        v = rnd.randrange(5000)
        ev = {'anonymousId': f'anon-{v}', 'messageId': f'm-{i}',
              'timestamp': time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ts)) + 'Z',
              'context': {'userAgent': UAS[v % 3]}}
        k = rnd.randrange(10)
        if k < 6:
            p = rnd.choice(PATHS)
            ev.update(type='page', properties={'path': p})
            ref = REFS[min(int(rnd.expovariate(0.05)), len(REFS) - 1)]  # a long tail
            ev['context']['page'] = {'path': p, 'referrer': ref,
                                     'url': 'https://acme.example' + p + (f'?utm_source=nl&utm_medium=email&utm_campaign=dec{v % 12}' if k == 0 else '')}
        elif k < 9:
            ev.update(type='track', event=rnd.choice(['Clicked CTA', 'Signed Up', 'Played Video']))
        else:
            ev.update(type='identify', userId=f'user-{v}')
        lines.append(json.dumps(ev))
    data = os.path.join(d, 'data')
    t0 = time.time()
    subprocess.run([esctl, 'append', '--data', data, '--tenant', 'hot', '--batch', '1000'],
                   input='\n'.join(lines).encode(), check=True, stdout=subprocess.DEVNULL)
    subprocess.run([esctl, 'flush', '--data', data], check=True, stdout=subprocess.DEVNULL)
    print(f'{n} events appended and flushed in {time.time() - t0:.1f} s')
    for rule in ({'name': 'pricing-2x', 'match': {'type': 'page', 'path': '/pricing'}, 'atLeast': 2, 'within': '1d'},
                 {'name': 'signed-up', 'match': {'type': 'track', 'event': 'Signed Up'}, 'atLeast': 1, 'within': '7d'}):
        subprocess.run([esctl, 'rule-put', '--data', data, '--tenant', 'hot', '--rule', '-'], input=json.dumps(rule).encode(),
                       check=True, stdout=subprocess.DEVNULL)
    tokens = os.path.join(d, 'tokens.json')
    with open(tokens, 'w') as f:
        json.dump({'tok-hot-0123456789': 'hot'}, f)
    s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
    proc = subprocess.Popen([queryd, '--data', data, '--listen', f'127.0.0.1:{port}', '--tokens', tokens],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f'http://127.0.0.1:{port}'
    def call(path, body=None):
        rq = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                    headers={'Authorization': 'Bearer tok-hot-0123456789',
                                             'Content-Type': 'application/json'})
        with urllib.request.urlopen(rq) as r:
            return json.loads(r.read())
    for _ in range(100):
        try:
            call('/v1/segments'); break
        except Exception:
            time.sleep(0.1)
    seg = rlp = 0
    for root, _, files in os.walk(os.path.join(data, 'tenants')):
        for f in files:
            size = os.path.getsize(os.path.join(root, f))
            seg += size if f.endswith('.seg') else 0
            rlp += size if f.endswith('.rlp') else 0
    print(f'bytes on disk per event: segments {seg / n:.1f}, rollups {rlp / n:.1f} '
          f'(rollups {100 * rlp / max(seg, 1):.0f} % of the segments)')
    iso = lambda t: time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t))
    sources = set()
    def q(spec):
        res = call('/v1/query', spec)
        sources.add(res['source'])
        return res
    def dim(F, T, d, pages, limit):
        spec = {'from': F, 'to': T, 'groupBy': [d], 'aggregate': ['count', 'uniques'], 'order': 'desc', 'limit': limit + 1}
        if pages:
            spec['filter'] = {'type': 'page'}
        return lambda: q(spec)
    def segments(F):
        def run():
            for r in call('/v1/segments')['rules']:
                name = urllib.parse.quote(r['name'])
                call('/v1/segments/' + name + '/members')
                call('/v1/segments/' + name + '/members/series?' + urllib.parse.urlencode({'from': F}))
        return run
    # the page's ranges: [from, now) with from on a bucket boundary
    for label, span, bucket in (('last 7 days', 7 * 86400, 'day'), ('last 24 hours', 86400, 'hour'),
                                ('last hour', 3600, 'minute')):
        to = time.time(); width = {'day': 86400, 'hour': 3600, 'minute': 60}[bucket]
        F, T = iso((to - span) // width * width), iso(to)
        panels = [
            ('chart (buckets by type)', lambda: q({'from': F, 'to': T, 'bucket': bucket, 'groupBy': ['type']})),
            ('totals (count, uniques)', lambda: q({'from': F, 'to': T, 'aggregate': ['count', 'uniques']})),
            ('top pages', lambda: q({'from': F, 'to': T, 'filter': {'type': 'page'}, 'groupBy': ['path'],
                                     'aggregate': ['count', 'uniques'], 'order': 'desc', 'limit': 10})),
            ('top events', lambda: q({'from': F, 'to': T, 'filter': {'type': 'track'}, 'groupBy': ['event'],
                                      'aggregate': ['count', 'uniques'], 'order': 'desc', 'limit': 10})),
            ('referrers', dim(F, T, 'referrer', True, 10)),
            ('campaigns: utm_source', dim(F, T, 'utm_source', True, 5)),
            ('campaigns: utm_medium', dim(F, T, 'utm_medium', True, 5)),
            ('campaigns: utm_campaign', dim(F, T, 'utm_campaign', True, 5)),
            ('devices', dim(F, T, 'device', False, 10)),
            ('browsers', dim(F, T, 'browser', False, 10)),
            ('segments (rules, members, series per rule)', segments(F)),
        ]
        if span == 7 * 86400:
            panels.append(('visitor timeline (200 events)', lambda: call('/v1/persons/user-7/timeline?limit=200')))
        print(f'-- {label} ({F} to {T})')
        for name, fn in panels:
            ms = []
            sources.clear()
            for _ in range(runs):
                t = time.perf_counter(); fn(); ms.append((time.perf_counter() - t) * 1e3)
            src = f' [{"/".join(sorted(sources))}]' if sources else ''
            print(f'{name}: median {statistics.median(ms):.1f} ms (min {min(ms):.1f}, max {max(ms):.1f}, {runs} runs){src}')
    proc.terminate(); proc.wait()
finally:
    shutil.rmtree(d, ignore_errors=True)
