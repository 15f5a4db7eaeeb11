#!/usr/bin/env bash
# The main job on a fresh machine, embedded default (a local data
# directory, ./data; no cloud): build, load a sample of generated Segment
# events with `esctl append` and show what `esctl inspect` and a query
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
echo "== generating $EVENTS sample events (es-bench gen, seed 1)"
build/bench/es-bench gen --events "$EVENTS" --seed 1 > build/sample.ndjson
echo "== loading them into $DATA as tenant '$tenant' (esctl append)"
build/cmd/esctl append --data "$DATA" --tenant "$tenant" --batch 100 \
  < build/sample.ndjson | tail -n 1
build/cmd/esctl flush --data "$DATA" --tenant "$tenant"
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
