#!/usr/bin/env bash
# The main job on a fresh machine, embedded default (a local data
# directory, ./data; no cloud): build, load a sample of generated Segment
# events dated over the last day with `esctl append` (once: a re-run
# finds them and loads nothing) and show what `esctl inspect` and a query
# see; then start es-ingestd and es-queryd on that directory with a demo
# tenant and live sample traffic, print the dashboard's URL and token and
# a curl line to send an event, and run until Ctrl-C (scripts/demo.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -d build ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
DATA=${DATA:-data}
EVENTS=${EVENTS:-20000}
tenant=demo
# Idempotent: a second run finds the sample in $DATA and does not append
# it again (its messageIds are the same every run: es-bench gen's seed).
if [ -n "$(build/cmd/esctl scan --data "$DATA" --tenant "$tenant" 2>/dev/null | head -n 1)" ]; then
  echo "== $DATA already holds tenant '$tenant': not loading the sample again (rm -rf $DATA to start over)"
else
  echo "== generating $EVENTS sample events over the last day (es-bench gen, seed 1)"
  # es-bench gen dates its stream from 2024-03-01; shift it so that its
  # newest event is a minute ago, so the dashboard shows it at once.
  build/bench/es-bench gen --events "$EVENTS" --seed 1 --days 1 |
    python3 -c '
import datetime, json, sys
lines = [json.loads(l) for l in sys.stdin if l.strip()]
parse = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
newest = max(parse(e["timestamp"]) for e in lines)
shift = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1) - newest
for e in lines:
    t = parse(e["timestamp"]) + shift
    e["timestamp"] = t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)
    print(json.dumps(e, separators=(",", ":")))
' > build/sample.ndjson
  echo "== loading them into $DATA as tenant '$tenant' (esctl append)"
  build/cmd/esctl append --data "$DATA" --tenant "$tenant" --batch 100 \
    < build/sample.ndjson | tail -n 1
  build/cmd/esctl flush --data "$DATA" --tenant "$tenant"
fi
echo "== esctl inspect --data $DATA"
build/cmd/esctl inspect --data "$DATA"
echo "== esctl verify --data $DATA"
build/cmd/esctl verify --data "$DATA"
echo "== the first 3 events of tenant '$tenant' (esctl scan)"
build/cmd/esctl scan --data "$DATA" --tenant "$tenant" > build/scan.jsonl
head -n 3 build/scan.jsonl
echo "== top 5 pages of tenant '$tenant' by views, with unique visitors (esctl query)"
build/cmd/esctl query --data "$DATA" --tenant "$tenant" --spec - <<'SPEC'
{"filter":{"type":"page"},"groupBy":["path"],"aggregate":["count","uniques"],"order":"desc","limit":5}
SPEC
echo "== starting the servers (scripts/demo.sh)"
exec scripts/demo.sh
