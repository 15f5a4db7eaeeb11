#!/usr/bin/env python3
"""Sample website traffic for the demo (scripts/demo.sh): an hour of page
views, clicks, sign-ups and identifies posted to es-ingestd's /v1/batch
(with messageIds fixed per clock hour, so a re-run in the same hour adds
nothing), then (with --live) a few events a second until interrupted.

usage: demo_traffic.py INGEST_URL WRITE_KEY [--events N] [--live]"""
import base64
import json
import random
import sys
import time
import urllib.request
from datetime import datetime, timezone

PATHS = ['/', '/pricing', '/docs', '/docs/api', '/blog/launch', '/signup']


def iso(t):
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace('+00:00', 'Z')


def event(rng, t):
    visitor = f'anon-{rng.randrange(300)}'
    k = rng.random()
    if k < 0.6:
        return {'type': 'page', 'anonymousId': visitor, 'name': 'Page', 'timestamp': iso(t),
                'properties': {'path': rng.choice(PATHS)}}
    if k < 0.9:
        return {'type': 'track', 'anonymousId': visitor, 'timestamp': iso(t),
                'event': 'Signed Up' if k > 0.85 else 'Clicked CTA'}
    return {'type': 'identify', 'anonymousId': visitor, 'userId': f'user-{visitor}', 'timestamp': iso(t)}


def post(url, key, batch):
    auth = base64.b64encode(f'{key}:'.encode()).decode()
    req = urllib.request.Request(url + '/v1/batch', data=json.dumps({'batch': batch}).encode(),
                                 headers={'Content-Type': 'application/json',
                                          'Authorization': 'Basic ' + auth})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


def main():
    url, key = sys.argv[1], sys.argv[2]
    n = int(sys.argv[sys.argv.index('--events') + 1]) if '--events' in sys.argv else 5000
    rng = random.Random(1)
    now = time.time()
    evs = [event(rng, now - 3600 + 3600 * i / n) for i in range(n)]
    # Deterministic messageIds for the backfill: run again within the same
    # hour, the store (messageIds deduplicated within 7 days) keeps one
    # copy instead of a second hour of sample traffic.
    for i, e in enumerate(evs):
        e['messageId'] = f'demo-{int(now // 3600)}-{i}'

    for i in range(0, n, 200):
        post(url, key, evs[i:i + 200])
    print(f'demo: {n} events of the last hour sent', flush=True)
    if '--live' not in sys.argv:
        return
    try:
        while True:
            post(url, key, [event(rng, time.time()) for _ in range(rng.randrange(1, 8))])
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
