#!/usr/bin/env python3
"""Draws docs/bench-ratios.svg from `es-bench ingest --json` output.

Usage: es-bench ingest --json > ingest.json
       python3 bench/chart.py ingest.json docs/bench-ratios.svg

One bar per peer configuration: libeventstore's median ingest events/s
divided by the peer's, with the min..max of ours over the peer's median as
a whisker.  Standard library only.
"""
import json
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: chart.py INGEST.json OUT.svg")
    with open(sys.argv[1]) as f:
        rep = json.load(f)
    ours = {c["threads"]: c for c in rep["configs"] if c["system"] == "libeventstore"}
    bars = []
    for c in rep["configs"]:
        if c["system"] == "libeventstore" or c["threads"] not in ours:
            continue
        peer = c["events_per_s"]["median"]
        o = ours[c["threads"]]["events_per_s"]
        if not peer:
            continue
        bars.append((f'{c["system"]}, {c["threads"]} thread{"s" if c["threads"] > 1 else ""}',
                     o["median"] / peer, o["min"] / peer, o["max"] / peer))
    width, row, left, top = 640, 40, 170, 56
    height = top + row * len(bars) + 50
    vmax = max([b[3] for b in bars] + [1.0]) * 1.1
    x = lambda v: left + (width - left - 30) * v / vmax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="13">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="20" font-size="15">libeventstore ingest events/s divided by the peer\'s</text>',
           f'<text x="10" y="38" font-size="12">medians of {rep["runs"]} runs, {rep["events"]} events, '
           f'fsync before every ack; whisker: our min..max</text>']
    for i, (name, med, lo, hi) in enumerate(bars):
        y = top + i * row
        out.append(f'<text x="{left - 8}" y="{y + 20}" text-anchor="end">{name}</text>')
        out.append(f'<rect x="{left}" y="{y + 6}" width="{x(med) - left:.1f}" height="20" fill="#3b7dd8"/>')
        out.append(f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{y + 16}" y2="{y + 16}" stroke="black"/>')
        out.append(f'<text x="{x(max(med, hi)) + 6:.1f}" y="{y + 20}">{med:.2f}x</text>')
    y1 = top + row * len(bars)
    out.append(f'<line x1="{x(1):.1f}" x2="{x(1):.1f}" y1="{top}" y2="{y1}" stroke="#c00" stroke-dasharray="4 3"/>')
    out.append(f'<text x="{x(1):.1f}" y="{y1 + 18}" text-anchor="middle" fill="#c00">1x (same speed)</text>')
    out.append('</svg>')
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
