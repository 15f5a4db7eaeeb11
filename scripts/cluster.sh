#!/usr/bin/env bash
# cluster.sh -- a three-node libeventstore cluster on loopback, for tests
# and demos (docs/SCALING.md): s3rver behind the SigV4-checking proxy as
# the bucket, three nodes (es-ingestd --node + es-queryd each) and Debian's
# HAProxy routing every tenant to one node by its write key or query token.
#
#   scripts/cluster.sh up DIR          start everything; prints one JSON line
#                                      {"ingest_url","query_url","keys","tokens",...}
#   scripts/cluster.sh kill DIR NODE   SIGKILL node NODE (1, 2 or 3)
#   scripts/cluster.sh pause DIR NODE  SIGSTOP it (a partitioned node)
#   scripts/cluster.sh resume DIR NODE SIGCONT it
#   scripts/cluster.sh drain DIR NODE  planned removal: HAProxy stops sending
#                                      to it, esctl cluster drain makes it
#                                      seal, upload and release every
#                                      tenant, then its processes stop
#   scripts/cluster.sh status DIR      which node holds which tenant (each
#                                      node's /metrics, then the bucket's
#                                      leases by esctl cluster status)
#   scripts/cluster.sh down DIR        stop everything
#
# Environment: ES_BUILD (the meson build directory holding cmd/es-ingestd;
# default: build), CLUSTER_TENANTS (default 12), LEASE_TTL_MS (default
# 3000: a dead node's tenants move after it), ES_SYNC (full|none, default
# full).  Needs node + npm packages of tests/replicate (scripts/npm-deps.sh),
# python3-botocore and haproxy (scripts/deps.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${ES_BUILD:-$root/build}"
[[ "$build" = /* ]] || build="$root/$build"

die() { echo "cluster.sh: $*" >&2; exit 1; }
usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until FILE matches REGEX (or the process PID died); prints the match.
wait_log() {
  local file=$1 re=$2 pid=$3 what=$4 i
  for i in $(seq 1 300); do
    if grep -Eo "$re" "$file" 2>/dev/null | head -1 | grep -q .; then
      grep -Eo "$re" "$file" | head -1
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$file" >&2; die "$what exited"; }
    sleep 0.1
  done
  cat "$file" >&2
  die "$what did not start"
}

node_pids() { cat "$1/pids/n$2".* 2>/dev/null || true; }

start_node() { # DIR N
  local dir=$1 n=$2
  # shellcheck disable=SC1091
  source "$dir/env"
  local ip_var="N${n}_INGEST" qp_var="N${n}_QUERY"
  local ip=${!ip_var} qp=${!qp_var}
  # A node's local disk is a cache of what it holds: each start gets an
  # empty data directory (a node restarted after losing tenants must not
  # keep stale copies of them: docs/SCALING.md).  Tier s3: an append is
  # acknowledged once in the node's WAL chunks (wal/n<N>/...), which a
  # takeover replays.  This script starts each node once: a node started
  # again on a new directory would need a new --node name.
  local data
  data="$dir/n$n/data.$(date +%s%N)"
  mkdir -p "$data"
  AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 \
    AWS_SESSION_TOKEN='' \
    "$build/cmd/ingestd/es-ingestd" --data "$data" --listen "127.0.0.1:$ip" \
    --keys "$dir/keys.json" --admin-tokens "$dir/admin-tokens.json" --sync "${ES_SYNC:-full}" \
    --replica "s3://es-cluster/cluster" \
    --s3-endpoint "http://127.0.0.1:$PROXY_PORT" \
    --durability s3 --seal-age-s 2 \
    --node "n$n" --lease-ttl-ms "$LEASE_TTL_MS" --clock-skew-ms 200 \
    --threads 2 --memory-budget 256 --wal-file-mb 4 \
    >"$dir/n$n/ingestd.log" 2>&1 &
  echo $! >"$dir/pids/n$n.ingestd"
  wait_log "$dir/n$n/ingestd.log" '"msg":"listening"' $! "node $n es-ingestd" >/dev/null
  "$build/cmd/queryd/es-queryd" --data "$data" --listen "127.0.0.1:$qp" \
    --tokens "$dir/tokens.json" >"$dir/n$n/queryd.log" 2>&1 &
  echo $! >"$dir/pids/n$n.queryd"
  wait_log "$dir/n$n/queryd.log" '"msg":"listening"' $! "node $n es-queryd" >/dev/null
}

haproxy_cfg() { # DIR: writes DIR/haproxy.cfg from deploy/haproxy/haproxy.cfg
  local dir=$1
  # shellcheck disable=SC1091
  source "$dir/env"
  local servers_i="" servers_q="" n
  for n in 1 2 3; do
    local ip_var="N${n}_INGEST" qp_var="N${n}_QUERY"
    servers_i+="    server n$n 127.0.0.1:${!ip_var} id $n check inter 300ms fall 2 rise 3"$'\n'
    servers_q+="    server n$n 127.0.0.1:${!qp_var} id $n track ingest_nodes/n$n"$'\n'
  done
  python3 - "$root/deploy/haproxy/haproxy.cfg" "$dir" "$HA_INGEST" "$HA_QUERY" \
    "$servers_i" "$servers_q" >"$dir/haproxy.cfg" <<'EOF'
import sys
tpl, d, pi, pq, si, sq = sys.argv[1:]
s = open(tpl).read()
for k, v in {'@STATE@': d, '@INGEST_BIND@': '127.0.0.1:' + pi,
             '@QUERY_BIND@': '127.0.0.1:' + pq, '@KEYS_MAP@': d + '/keys.map',
             '@TOKENS_MAP@': d + '/tokens.map'}.items():
    s = s.replace(k, v)
s = s.replace('    @INGEST_SERVERS@\n', si).replace('    @QUERY_SERVERS@\n', sq)
sys.stdout.write(s)
EOF
}

cmd_up() {
  local dir=$1
  [ -e "$dir/env" ] && die "$dir holds a cluster already (cluster.sh down $dir)"
  [ -x "$build/cmd/ingestd/es-ingestd" ] || die "no $build/cmd/es-ingestd (set ES_BUILD)"
  command -v haproxy >/dev/null || die "haproxy not installed (scripts/deps.sh)"
  [ -d "$root/tests/replicate/node_modules/s3rver" ] ||
    die "s3rver not installed (scripts/npm-deps.sh)"
  mkdir -p "$dir/pids" "$dir/s3rver" "$dir/n1" "$dir/n2" "$dir/n3"
  dir="$(cd "$dir" && pwd)"
  local s3port
  s3port=$(free_port)
  {
    echo "S3_PORT=$s3port"
    echo "HA_INGEST=$(free_port)"
    echo "HA_QUERY=$(free_port)"
    for n in 1 2 3; do
      echo "N${n}_INGEST=$(free_port)"
      echo "N${n}_QUERY=$(free_port)"
    done
    echo "LEASE_TTL_MS=${LEASE_TTL_MS:-3000}"
  } >"$dir/env.tmp"
  # tenants, write keys, query tokens; the HAProxy maps
  python3 - "$dir" "${CLUSTER_TENANTS:-12}" <<'EOF'
import json, secrets, sys
d, n = sys.argv[1], int(sys.argv[2])
keys, tokens = {}, {}
for i in range(1, n + 1):
    t = 'tenant%02d' % i
    keys['wk_%s_%s' % (t, secrets.token_hex(6))] = t
    tokens['qt_%s_%s' % (t, secrets.token_hex(12))] = t
json.dump(keys, open(d + '/keys.json', 'w'))
json.dump(tokens, open(d + '/tokens.json', 'w'))
open(d + '/keys.map', 'w').write(''.join('%s %s\n' % kv for kv in keys.items()))
open(d + '/tokens.map', 'w').write(''.join('%s %s\n' % kv for kv in tokens.items()))
# the nodes' admin token (esctl cluster drain): es-ingestd's --admin-tokens
# file and esctl's --admin-token-file
admin = 'adm_' + secrets.token_hex(16)
json.dump([admin], open(d + '/admin-tokens.json', 'w'))
open(d + '/admin-token', 'w').write(admin + '\n')
EOF
  chmod 600 "$dir/admin-tokens.json" "$dir/admin-token"
  node --openssl-legacy-provider \
    "$root/tests/replicate/node_modules/s3rver/bin/s3rver.js" \
    -d "$dir/s3rver" -a 127.0.0.1 -p "$s3port" --silent \
    --configure-bucket es-cluster >"$dir/s3rver.log" 2>&1 &
  echo $! >"$dir/pids/s3rver"
  local i
  for i in $(seq 1 100); do
    (echo >/dev/tcp/127.0.0.1/"$s3port") 2>/dev/null && break
    sleep 0.1
  done
  local py=python3
  /usr/bin/python3 -c 'import botocore' 2>/dev/null && py=/usr/bin/python3
  # the proxy adds S3's conditional writes, which s3rver lacks (leases)
  SIGV4_PROXY_CONDITIONAL=1 \
    "$py" "$root/tests/replicate/sigv4_proxy.py" "$s3port" S3RVER S3RVER us-east-1 \
    >"$dir/proxy.log" 2>&1 &
  echo $! >"$dir/pids/proxy"
  local pport
  pport=$(wait_log "$dir/proxy.log" 'PORT [0-9]+' $! "the SigV4 proxy" | cut -d' ' -f2)
  echo "PROXY_PORT=$pport" >>"$dir/env.tmp"
  mv "$dir/env.tmp" "$dir/env"
  for n in 1 2 3; do start_node "$dir" $n; done
  haproxy_cfg "$dir"
  haproxy -c -q -f "$dir/haproxy.cfg" || die "haproxy refused $dir/haproxy.cfg"
  haproxy -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
  echo $! >"$dir/pids/haproxy"
  # shellcheck disable=SC1091
  source "$dir/env"
  for i in $(seq 1 101); do
    curl -fs "http://127.0.0.1:$HA_INGEST/readyz" >/dev/null 2>&1 && break
    kill -0 "$(cat "$dir/pids/haproxy")" 2>/dev/null ||
      { cat "$dir/haproxy.log" >&2; die "haproxy exited"; }
    [ "$i" -lt 101 ] || die "haproxy does not answer"
    sleep 0.1
  done
  python3 - "$dir" <<'EOF'
import json, sys
d = sys.argv[1]
env = dict(l.strip().split('=', 1) for l in open(d + '/env') if '=' in l)
print(json.dumps({
    'ingest_url': 'http://127.0.0.1:%s' % env['HA_INGEST'],
    'query_url': 'http://127.0.0.1:%s' % env['HA_QUERY'],
    'keys': json.load(open(d + '/keys.json')),
    'tokens': json.load(open(d + '/tokens.json')),
    'nodes': {str(n): {'ingest_url': 'http://127.0.0.1:%s' % env['N%d_INGEST' % n],
                       'query_url': 'http://127.0.0.1:%s' % env['N%d_QUERY' % n]}
              for n in (1, 2, 3)},
    's3_endpoint': 'http://127.0.0.1:%s' % env['PROXY_PORT'],
    'replica': 's3://es-cluster/cluster',
    'admin_token_file': d + '/admin-token',
}))
EOF
}

signal_node() { # DIR NODE SIGNAL
  local dir=$1 n=$2 sig=$3 p
  [[ "$n" =~ ^[123]$ ]] || die "NODE is 1, 2 or 3, not \"$n\""
  [ -e "$dir/env" ] || die "no cluster in $dir"
  for p in $(node_pids "$dir" "$n"); do kill "-$sig" "$p" 2>/dev/null || true; done
}

cmd_drain() {
  local dir=$1 n=$2
  signal_node "$dir" "$n" 0
  # shellcheck disable=SC1091
  source "$dir/env"
  local ip_var="N${n}_INGEST"
  # HAProxy sends nothing new to it (its tenants hash to the others), then
  # esctl cluster drain makes the node seal, upload and release every
  # tenant it holds, then its processes stop.
  python3 - "$dir/haproxy.sock" "set server ingest_nodes/n$n state maint" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall((sys.argv[2] + '\n').encode()); print(s.recv(4096).decode().strip())
EOF
  "$build/cmd/esctl" cluster drain --url "http://127.0.0.1:${!ip_var}" \
    --admin-token-file "$dir/admin-token" || die "node $n: the drain failed"
  # a drained node says so on /readyz (503): a balancer's health check
  # takes it out even without the maint above
  echo "readyz: $(curl -s -w ' %{http_code}' "http://127.0.0.1:${!ip_var}/readyz")"
  local p
  p=$(cat "$dir/pids/n$n.ingestd")
  kill -TERM "$p" 2>/dev/null || true
  while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
  kill -TERM "$(cat "$dir/pids/n$n.queryd")" 2>/dev/null || true
  echo "node $n drained"
}

cmd_status() {
  local dir=$1 n
  # shellcheck disable=SC1091
  source "$dir/env"
  for n in 1 2 3; do
    local ip_var="N${n}_INGEST"
    curl -fs "http://127.0.0.1:${!ip_var}/metrics" 2>/dev/null |
      sed -n 's/^es_cluster_tenant{tenant="\([^"]*\)",state="\([^"]*\)"} \([0-9]*\)$/\1 \2 \3/p' |
      while read -r t st g; do echo "n$n $t $st generation=$g"; done ||
      echo "n$n down"
  done | sort -k2
  # the bucket's view, which needs no node: esctl cluster status
  echo "leases in the bucket:"
  AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 \
    AWS_SESSION_TOKEN='' \
    "$build/cmd/esctl" cluster status --from "s3://es-cluster/cluster" \
    --s3-endpoint "http://127.0.0.1:$PROXY_PORT" | sort
}

cmd_down() {
  local dir=$1 f
  [ -d "$dir/pids" ] || die "no cluster in $dir"
  for f in "$dir"/pids/*; do
    [ -e "$f" ] || continue
    kill -CONT "$(cat "$f")" 2>/dev/null || true
    kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  for f in "$dir"/pids/*; do
    [ -e "$f" ] || continue
    local p i
    p=$(cat "$f")
    for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    rm -f "$f"
  done
  rm -f "$dir/env"
}

case "${1:-}" in
  up) [ $# -eq 2 ] || die "usage: cluster.sh up DIR"; cmd_up "$2" ;;
  kill) [ $# -eq 3 ] || die "usage: cluster.sh kill DIR NODE"; signal_node "$2" "$3" KILL ;;
  pause) [ $# -eq 3 ] || die "usage: cluster.sh pause DIR NODE"; signal_node "$2" "$3" STOP ;;
  resume) [ $# -eq 3 ] || die "usage: cluster.sh resume DIR NODE"; signal_node "$2" "$3" CONT ;;
  drain) [ $# -eq 3 ] || die "usage: cluster.sh drain DIR NODE"; cmd_drain "$2" "$3" ;;
  status) [ $# -eq 2 ] || die "usage: cluster.sh status DIR"; cmd_status "$2" ;;
  down) [ $# -eq 2 ] || die "usage: cluster.sh down DIR"; cmd_down "$2" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
