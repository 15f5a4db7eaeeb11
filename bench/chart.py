#!/usr/bin/env python3
"""Draws docs/bench-ratios.svg from es-bench's --json output.

Usage: es-bench all --json > bench.json          (or: ingest --json)
       es-bench http --json > http.json             (optional)
       python3 bench/chart.py bench.json [http.json] docs/bench-ratios.svg

One bar per comparison, each "how many times better libeventstore is
than the peer" from medians measured side by side: ingest events/s ours
over the peer's (whisker: our min..max over the peer's median); query
time, freshness and recovery time the peer's over ours; HTTP ingest:
es-ingestd's requests/s over nginx's empty 200 (the ceiling, so below
1 by nature; whisker: our min..max).  A log scale,
since the ratios span orders of magnitude; the red line is 1x.
Standard library only.
"""
import json
import math
import sys


def ingest_bars(rep):
    ours = {c["threads"]: c for c in rep["configs"] if c["system"] == "libeventstore"}
    bars = []
    for c in rep["configs"]:
        if c["system"] == "libeventstore" or c["threads"] not in ours:
            continue
        peer = c["events_per_s"]["median"]
        o = ours[c["threads"]]["events_per_s"]
        if not peer:
            continue
        t = c["threads"]
        bars.append((f'ingest vs {c["system"]}, {t} thread{"s" if t > 1 else ""}',
                     o["median"] / peer, o["min"] / peer, o["max"] / peer))
    return bars


def query_bars(rep):
    bars = []
    for q in rep["queries"]:
        for key, what in (("duckdb_over_ours_hot", "hot"), ("duckdb_over_ours_cold", "cold")):
            if key in q:
                bars.append((f'{q["name"]}, {what}', q[key], None, None))
    return bars


def live_bars(rep):
    sys_ = {s["system"]: s for s in rep["systems"]}
    if "libeventstore" not in sys_ or "duckdb" not in sys_:
        return []
    o, d = sys_["libeventstore"], sys_["duckdb"]
    return [("freshness (append -> visible)",
             d["fresh_ms"]["median"] / o["fresh_ms"]["median"], None, None),
            ("open + 1st query after SIGKILL",
             d["recovery_first_query_ms"]["median"] / o["recovery_first_query_ms"]["median"],
             None, None)]


def http_bars(rep):
    ng = rep["nginx_requests_per_s"]["median"]
    es = rep["ingestd_requests_per_s"]
    if not ng:
        return []
    return [("HTTP ingest req/s, es-ingestd vs nginx 200",
             es["median"] / ng, es["min"] / ng, es["max"] / ng)]


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: chart.py BENCH.json [HTTP.json] OUT.svg")
    rep = {}
    for path in sys.argv[1:-1]:
        with open(path) as f:
            r = json.load(f)
        if "configs" in r:  # a bare `ingest --json` report
            r = {"ingest": r}
        elif r.get("bench") in ("query", "live", "http"):
            r = {r["bench"]: r}
        rep.update(r)
    bars, sub = [], []
    if rep.get("ingest"):
        bars += ingest_bars(rep["ingest"])
        sub.append(f'ingest: {rep["ingest"]["events"]} events, {rep["ingest"]["runs"]} runs')
    if rep.get("query"):
        bars += query_bars(rep["query"])
        sub.append(f'queries: {rep["query"]["events"]} events, {rep["query"]["runs"]} runs')
    if rep.get("live"):
        bars += live_bars(rep["live"])
    if rep.get("http"):
        bars += http_bars(rep["http"])
        sub.append(f'http: {rep["http"]["runs"]} runs')
    if not bars:
        sys.exit("chart.py: no comparisons in the input")
    width, row, left, top = 860, 26, 330, 64
    height = top + row * len(bars) + 50
    lo = min([b[1] for b in bars] + [b[2] for b in bars if b[2]] + [0.5])
    hi = max([b[1] for b in bars] + [b[3] for b in bars if b[3]] + [2.0])
    lmin, lmax = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    x = lambda v: left + (width - left - 70) * (math.log10(v) - lmin) / (lmax - lmin)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           '<text x="10" y="20" font-size="15">How many times better libeventstore is than '
           'each peer (medians, log scale)</text>',
           f'<text x="10" y="38" font-size="11">ingest: events/s ours / peer\'s; queries, '
           f'freshness, recovery: peer\'s time / ours.  {"; ".join(sub)}</text>']
    for k in range(lmin, lmax + 1):
        v = 10.0 ** k
        out.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top - 4}" '
                   f'y2="{top + row * len(bars)}" stroke="#ddd"/>')
        out.append(f'<text x="{x(v):.1f}" y="{top - 8}" text-anchor="middle" '
                   f'font-size="10">{v:g}x</text>')
    for i, (name, med, wlo, whi) in enumerate(bars):
        y = top + i * row
        base = x(1.0)
        color = "#3b7dd8" if med >= 1 else "#d8703b"
        x0, x1 = sorted((base, x(med)))
        out.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{name}</text>')
        out.append(f'<rect x="{x0:.1f}" y="{y + 5}" width="{max(x1 - x0, 1):.1f}" '
                   f'height="16" fill="{color}"/>')
        if wlo and whi:
            out.append(f'<line x1="{x(wlo):.1f}" x2="{x(whi):.1f}" y1="{y + 13}" '
                       f'y2="{y + 13}" stroke="black"/>')
        out.append(f'<text x="{max(x1, x(whi) if whi else x1) + 5:.1f}" y="{y + 17}">'
                   f'{med:.2f}x</text>')
    y1 = top + row * len(bars)
    out.append(f'<line x1="{x(1):.1f}" x2="{x(1):.1f}" y1="{top}" y2="{y1}" '
               f'stroke="#c00" stroke-dasharray="4 3"/>')
    out.append(f'<text x="{x(1):.1f}" y="{y1 + 18}" text-anchor="middle" fill="#c00">'
               f'1x (same); blue: libeventstore better, orange: the peer better</text>')
    out.append('</svg>')
    with open(sys.argv[-1], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
