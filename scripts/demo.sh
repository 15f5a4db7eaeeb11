#!/usr/bin/env bash
# The live demo: es-ingestd and es-queryd on one data directory with a
# demo tenant, an hour of sample traffic and a trickle of live events;
# prints the dashboard's URL and token and runs until Ctrl-C.  es-queryd
# opens the directory read-only beside es-ingestd (two processes).
# Expects a build in $BUILD (default build; scripts/run.sh makes one).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DATA=${DATA:-data}
INGEST=${INGEST:-127.0.0.1:8080}
QUERY=${QUERY:-127.0.0.1:8081}
run=$BUILD/demo
mkdir -p "$run"
token="tok_demo_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo '{"wk_demo":"demo"}' > "$run/keys.json"
echo "{\"$token\":\"demo\"}" > "$run/tokens.json"
"$BUILD/cmd/esctl" rule-put --data "$DATA" --tenant demo --rule - >/dev/null <<'RULE'
{"name":"pricing-3x","match":{"type":"page","path":"/pricing"},"atLeast":3,"within":"1h"}
RULE
"$BUILD/cmd/esctl" rule-put --data "$DATA" --tenant demo --rule - >/dev/null <<'RULE'
{"name":"signed-up","match":{"type":"track","event":"Signed Up"},"atLeast":1,"within":"1d"}
RULE
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait; }
trap cleanup EXIT INT TERM

# Waits until a server answers /healthz (or its process is gone).
wait_healthy() { # pid url log
  for _ in $(seq 100); do
    curl -fs "$2/healthz" >/dev/null && return 0
    kill -0 "$1" 2>/dev/null || { cat "$3"; exit 1; }
    sleep 0.1
  done
  cat "$3"; exit 1
}
"$BUILD/cmd/ingestd/es-ingestd" --data "$DATA" --listen "$INGEST" \
  --keys "$run/keys.json" 2>"$run/ingestd.log" &
pids+=($!)
wait_healthy "$!" "http://$INGEST" "$run/ingestd.log"
"$BUILD/cmd/queryd/es-queryd" --data "$DATA" --listen "$QUERY" \
  --tokens "$run/tokens.json" 2>"$run/queryd.log" &
qpid=$!
pids+=("$qpid")
wait_healthy "$qpid" "http://$QUERY" "$run/queryd.log"
mode="two processes: es-ingestd on $INGEST, es-queryd (read-only) on $QUERY"
echo "== $mode"
python3 scripts/demo_traffic.py "http://$INGEST" wk_demo --events "${EVENTS:-5000}" --live &
pids+=($!)
sleep 2
echo "== dashboard: http://$QUERY/"
echo "== token:     $token"
echo "== ingest:    curl -u wk_demo: -d '{\"userId\":\"u1\",\"event\":\"Signed Up\"}' http://$INGEST/v1/track"
echo "== Ctrl-C stops (logs in $run/)"
wait
