#!/usr/bin/env bash
# The memory-budget flood of issue 18, as a measurement (not a test):
# es-ingestd with --memory-budget MB, wrk with CONNS connections posting
# the same ~58 KB /v1/batch body of 90 generated events (no messageIds:
# the server makes one per event, so every request is stored) for 20 s
# (FLOOD_SECONDS), round-robin over 8 tenants' write keys; prints
# requests/s, VmHWM and the answers by status, and last a line
# "flood: MB CONNS VmHWM_KiB 200s 429s 503s" for scripts
# (bench/http/flood_check.sh).  Needs a release build (jemalloc, no
# sanitizer) and wrk (scripts/deps.sh installs it).
#
# usage: bench/http/flood.sh BUILD_DIR MB CONNS [es-ingestd flags...]
set -euo pipefail
build=$1 mb=$2 conns=$3 secs=${FLOOD_SECONDS:-20}
shift 3
work=$(mktemp -d "${TMPDIR:-/tmp}/es_flood.XXXXXX")
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid"; rm -rf "$work"' EXIT
"$build/bench/es-bench" gen --events 400 --seed 3 > "$work/ev.ndjson"
python3 - "$work" <<'PY'
import base64, json, sys
work = sys.argv[1]
batch = []
for line in open(f'{work}/ev.ndjson'):
    e = json.loads(line)
    for k in ('writeKey', 'messageId'):
        e.pop(k, None)
    batch.append(e)
    if len(batch) == 90:
        break
open(f'{work}/body.json', 'w').write(json.dumps({'batch': batch}))
json.dump({f'wk_{i}': f't{i}' for i in range(8)}, open(f'{work}/keys.json', 'w'))
auths = ','.join('"Basic ' + base64.b64encode(f'wk_{i}:'.encode()).decode() + '"'
                 for i in range(8))
open(f'{work}/post.lua', 'w').write(f'''local f = io.open("{work}/body.json", "rb")
local body = f:read("*a")
f:close()
local auths = {{{auths}}}
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/batch", {{["Content-Type"] = "application/json",
    ["Authorization"] = auths[(n % #auths) + 1]}}, body)
end
''')
PY
port=$((20000 + RANDOM % 20000))
"$build/cmd/ingestd/es-ingestd" --data "$work/data" --listen "127.0.0.1:$port" \
  --keys "$work/keys.json" --memory-budget "$mb" --access-log off "$@" \
  2> "$work/ingestd.log" &
pid=$!
until curl -fs "http://127.0.0.1:$port/healthz" >/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$work/ingestd.log"; exit 1; }
  sleep 0.1
done
wrk -t2 -c"$conns" -d"${secs}s" -s "$work/post.lua" \
  "http://127.0.0.1:$port/v1/batch" | grep -E 'Requests/sec|Non-2xx' || true
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
echo "--memory-budget $mb, $conns connections: VmHWM $hwm kB"
curl -s "http://127.0.0.1:$port/metrics" > "$work/metrics"
grep -E '^es_ingest_requests_total\{code="(200|429|503)"\}' "$work/metrics" || true
count() {
  awk -v c="$1" 'BEGIN {v = 0}
    $1 == "es_ingest_requests_total{code=\"" c "\"}" {v = $2}
    END {print v}' "$work/metrics"
}
echo "flood: $mb $conns $hwm $(count 200) $(count 429) $(count 503)"
