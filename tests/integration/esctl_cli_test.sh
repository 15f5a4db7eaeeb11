#!/usr/bin/env bash
# esctl_cli_test.sh -- drives esctl end to end against the real library.
#
# usage: esctl_cli_test.sh [ESCTL]    (or ESCTL=path in the environment)
#
# Covers: append acknowledgements, scan order and field round trip
# (properties byte for byte), --from/--to half-open ranges, --person,
# scan -> append -> scan identity, bad lines (exit 2, "line K:", exactly
# the events before K stored), bad tenants, usage errors, flush, verify,
# inspect, and corruption of a segment (verify and scan must notice).
set -euo pipefail

ESCTL=${1:-${ESCTL:-}}
if [[ -z "$ESCTL" || ! -x "$ESCTL" ]]; then
  echo "usage: $0 ESCTL (path to the esctl binary)" >&2
  exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EVENTS="python3 $HERE/events.py"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/esctl_cli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
D=$WORK/data
checks=0

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
ok() {
  checks=$((checks + 1))
  echo "ok $checks - $*"
}

# run EXPECTED_STATUS CMD...: runs CMD, output in $WORK/out and $WORK/err.
run() {
  local want=$1 got=0
  shift
  "$@" >"$WORK/out" 2>"$WORK/err" || got=$?
  if [[ $got -ne $want ]]; then
    echo "--- stdout" >&2; head -c 2000 "$WORK/out" >&2
    echo "--- stderr" >&2; cat "$WORK/err" >&2
    fail "exit status $got, want $want: $*"
  fi
}

# ---------------------------------------------------------------- usage
run 0 "$ESCTL" --help
grep -q '^usage: esctl' "$WORK/out" || fail "--help"
run 0 "$ESCTL" --version
grep -q '^esctl [0-9]' "$WORK/out" || fail "--version"
for c in append scan query timeline rollup-rebuild rules rule-put rule-delete members flush verify inspect; do
  run 0 "$ESCTL" "$c" --help
  grep -q "^usage: esctl $c" "$WORK/out" || fail "$c --help"
done
run 2 "$ESCTL"
run 2 "$ESCTL" frobnicate
grep -q "unknown command 'frobnicate'" "$WORK/err" || fail "unknown command"
run 2 "$ESCTL" scan --data "$D" --tenant t --bogus 1
grep -q "unknown flag '--bogus'" "$WORK/err" || fail "unknown flag"
run 2 "$ESCTL" scan --tenant t
grep -q -- "--data is required" "$WORK/err" || fail "missing --data"
run 2 "$ESCTL" append --data "$D" --tenant t --batch 0 </dev/null
run 2 "$ESCTL" append --data "$D" --tenant t --batch 12x </dev/null
run 2 "$ESCTL" scan --data "$D" --tenant t --from yesterday
grep -q "bad time 'yesterday'" "$WORK/err" || fail "bad --from"
run 2 "$ESCTL" scan --data "$D" --tenant t extra
[[ $(wc -l <"$WORK/err") -eq 1 ]] || fail "usage errors are one line"
ok "usage errors exit 2 with one line; --help and --version exit 0"

# ------------------------------------------------------- append + scan
N=500
$EVENTS gen $N 1 acme >"$WORK/in.jsonl"
run 0 "$ESCTL" append --data "$D" --tenant acme --batch 64 <"$WORK/in.jsonl"
# stdin is a file, so every batch but the last is full.
want=$(python3 -c "print('\n'.join('durable %d' % min(n, $N)
                                   for n in range(64, $N + 64, 64)))")
[[ "$(cat "$WORK/out")" == "$want" ]] || fail "durable lines: $(cat "$WORK/out")"
ok "append acknowledges each batch with 'durable <cumulative count>'"

run 0 "$ESCTL" scan --data "$D" --tenant acme
cp "$WORK/out" "$WORK/scan.jsonl"
[[ $(wc -l <"$WORK/scan.jsonl") -eq $N ]] || fail "scan count"
$EVENTS check "$WORK/in.jsonl" "$WORK/scan.jsonl"
ok "scan returns all $N events in time order, fields round-tripped"

# Ranges are half-open: [from, to).
from=$($EVENTS iso "$WORK/in.jsonl" 100)
to=$($EVENTS iso "$WORK/in.jsonl" 250)
run 0 "$ESCTL" scan --data "$D" --tenant acme --from "$from" --to "$to"
[[ $(wc -l <"$WORK/out") -eq 150 ]] || fail "range count $(wc -l <"$WORK/out")"
$EVENTS range "$WORK/in.jsonl" "$WORK/out" "$from" "$to"
run 0 "$ESCTL" scan --data "$D" --tenant acme --from "$from"
[[ $(wc -l <"$WORK/out") -eq 400 ]] || fail "--from only"
run 0 "$ESCTL" scan --data "$D" --tenant acme --to "$to"
[[ $(wc -l <"$WORK/out") -eq 250 ]] || fail "--to only"
run 0 "$ESCTL" scan --data "$D" --tenant acme --from "$from" --to "$from"
[[ ! -s "$WORK/out" ]] || fail "empty range"
# The same instant written with an offset selects the same events.
from_offset=$(python3 -c "
import sys; sys.path.insert(0, '$HERE'); import events
print(events.format_us(events.parse_iso_us('$from'), 120))")
run 0 "$ESCTL" scan --data "$D" --tenant acme --from "$from_offset" --to "$to"
[[ $(wc -l <"$WORK/out") -eq 150 ]] || fail "range with +02:00"
ok "--from/--to select [from, to), also with a UTC offset"

run 0 "$ESCTL" scan --data "$D" --tenant acme --person user-3
want=$(python3 -c "
import json
n = 0
for line in open('$WORK/scan.jsonl'):
    e = json.loads(line)
    n += 'user-3' in (e['userId'], e['anonymousId'])
print(n)")
[[ $want -gt 0 && $(wc -l <"$WORK/out") -eq $want ]] || fail "--person"
ok "--person keeps the events of one person ($want)"

# scan output is valid input: re-appending it reproduces the same scan.
run 0 "$ESCTL" append --data "$D" --tenant copy <"$WORK/scan.jsonl"
run 0 "$ESCTL" scan --data "$D" --tenant copy
cmp -s "$WORK/out" "$WORK/scan.jsonl" || fail "scan | append | scan differs"
ok "scan | append | scan is the identity"

# Idempotent append: an import run again (half of it flushed to a
# segment, half still in the WAL) stores no messageId twice.
head -n 250 "$WORK/scan.jsonl" >"$WORK/half.jsonl"
run 0 "$ESCTL" append --data "$D" --tenant rerun <"$WORK/half.jsonl"
run 0 "$ESCTL" flush --data "$D" --tenant rerun
run 0 "$ESCTL" append --data "$D" --tenant rerun <"$WORK/scan.jsonl"
run 0 "$ESCTL" append --data "$D" --tenant rerun <"$WORK/scan.jsonl"
run 0 "$ESCTL" scan --data "$D" --tenant rerun
cmp -s "$WORK/out" "$WORK/scan.jsonl" || fail "a re-run import stored twice"
[[ $($EVENTS ids "$WORK/out" | sort | uniq -d | wc -l) -eq 0 ]] ||
  fail "a messageId is stored twice"
ok "a re-run import stores each messageId once"

run 0 "$ESCTL" scan --data "$D" --tenant nobody
[[ ! -s "$WORK/out" ]] || fail "unknown tenant scan"
ok "an unknown tenant scans empty"

# ------------------------------------------------------------ bad lines
# Line 5 is blank and line 9 is spaces (skipped); line K is broken.
K=137
$EVENTS gen 300 2 bad | awk -v k=$K '
  { n++ }
  n == 5 { print ""; n++ }
  n == 9 { print "   "; n++ }
  n == k { print "{\"type\": \"track\", \"userId\": \"u\""; next }
  { print }' >"$WORK/bad.jsonl"
[[ "$(sed -n "${K}p" "$WORK/bad.jsonl")" == '{"type": "track", "userId": "u"' ]] ||
  fail "test setup: line $K is not the broken one"
run 2 "$ESCTL" append --data "$D" --tenant bad --batch 50 <"$WORK/bad.jsonl"
grep -q "^esctl: line $K: invalid JSON" "$WORK/err" || fail "line K: $(cat "$WORK/err")"
[[ $(wc -l <"$WORK/err") -eq 1 ]] || fail "one error line"
good=$(head -n $((K - 1)) "$WORK/bad.jsonl" | grep -c '[^ ]')
[[ "$(tail -n 1 "$WORK/out")" == "durable $good" ]] ||
  fail "last durable $(tail -n 1 "$WORK/out"), want $good"
run 0 "$ESCTL" scan --data "$D" --tenant bad
$EVENTS ids "$WORK/out" | sort >"$WORK/got_ids"
head -n $((K - 1)) "$WORK/bad.jsonl" | grep '[^ ]' | python3 -c "
import json, sys
for line in sys.stdin: print(json.loads(line)['messageId'])" | sort >"$WORK/want_ids"
cmp -s "$WORK/got_ids" "$WORK/want_ids" || fail "events before line $K"
ok "a bad line K stops append with exit 2; exactly the $good events before it are stored"

# Each kind of bad line names its line and its reason.
check_bad_line() {
  local reason=$1 line=$2
  { echo '{"type":"track","event":"e","userId":"u"}'; printf '%s\n' "$line"; } \
    >"$WORK/bad.jsonl"
  run 2 "$ESCTL" append --data "$D" --tenant badkinds <"$WORK/bad.jsonl"
  grep -q "^esctl: line 2: .*$reason" "$WORK/err" ||
    fail "want 'line 2: ...$reason', got: $(cat "$WORK/err")"
}
check_bad_line "not a JSON object" '[1, 2]'
check_bad_line 'unknown type "click"' '{"type":"click","userId":"u"}'
check_bad_line 'missing "type"' '{"userId":"u"}'
check_bad_line 'without "event"' '{"type":"track","userId":"u"}'
check_bad_line 'neither "userId" nor "anonymousId"' '{"type":"track","event":"e"}'
check_bad_line 'alias needs both' '{"type":"alias","userId":"u"}'
check_bad_line 'longer than 100 characters' \
  "{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\",\"messageId\":\"$(printf 'x%.0s' {1..101})\"}"
check_bad_line 'bad timestamp' '{"type":"track","event":"e","userId":"u","timestamp":"2026-02-30T00:00:00Z"}'
# (inputs go through files, not pipes: esctl may stop reading early, and
# a writer killed by SIGPIPE would fail the pipeline under pipefail)
{ echo '{"type":"track","event":"e","userId":"u"}'
  python3 -c "print('{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\",\"properties\":{\"x\":\"' + 'y' * (1 << 20) + '\"}}')"
} >"$WORK/long.jsonl"
run 2 "$ESCTL" append --data "$D" --tenant badkinds <"$WORK/long.jsonl"
grep -q "^esctl: line 2: longer than 1048576 bytes" "$WORK/err" || fail "long line: $(cat "$WORK/err")"
run 0 "$ESCTL" scan --data "$D" --tenant badkinds
[[ $(wc -l <"$WORK/out") -eq 9 ]] || fail "good first lines kept"
# A last line without a newline is still a line; CRLF endings are fine.
printf '{"type":"track","event":"e","userId":"u"}\r\n{"type":"page","anonymousId":"a"}' |
  run 0 "$ESCTL" append --data "$D" --tenant crlf
[[ "$(cat "$WORK/out")" == "durable 2" ]] || fail "crlf / no final newline"
ok "bad lines of every kind exit 2 naming line 2 and the reason"

# ---------------------------------------------------------- bad tenants
for t in '../x' 'a/b' '' 'a b' "$(printf 't%.0s' {1..65})" '.'; do
  run 2 "$ESCTL" append --data "$D" --tenant "$t" \
    <<<'{"type":"track","event":"e","userId":"u"}'
  grep -q "invalid tenant" "$WORK/err" || fail "tenant '$t' message"
  run 2 "$ESCTL" scan --data "$D" --tenant "$t"
done
[[ ! -e "$WORK/x" && ! -e "$D/tenants/a" && ! -e "$D/x" ]] ||
  fail "a refused tenant created something"
ok "tenants like ../x and a/b are refused (exit 2) and create nothing"

# --------------------------------------------- flush, verify, inspect
run 0 "$ESCTL" verify --data "$D"
grep -q '^ok: ' "$WORK/out" || fail "verify summary"
run 0 "$ESCTL" inspect --data "$D"
grep -qE "^  total: $N rows \(0 in 0 segments, .*; $N unflushed\)" "$WORK/out" ||
  fail "inspect before flush: $(cat "$WORK/out")"
grep -q '^  unflushed (durable in wal/' "$WORK/out" || fail "inspect unflushed"
run 0 "$ESCTL" flush --data "$D" --tenant acme
run 0 "$ESCTL" flush --data "$D"
run 0 "$ESCTL" inspect --data "$D"
grep -q '^tenant acme$' "$WORK/out" || fail "inspect tenant"
grep -q '^  segment tenants/acme/.*rows' "$WORK/out" || fail "inspect segment"
grep -qE "^  total: $N rows \($N in [0-9]+ segments?, .*; 0 unflushed\)" "$WORK/out" ||
  fail "inspect totals: $(cat "$WORK/out")"
grep -q '^  shard 0 ' "$WORK/out" || fail "inspect wal"
run 0 "$ESCTL" verify --data "$D"
grep -q '^ok: ' "$WORK/out" || fail "verify after flush"
run 1 "$ESCTL" verify --data "$WORK/nowhere"
run 0 "$ESCTL" scan --data "$D" --tenant acme
cmp -s "$WORK/out" "$WORK/scan.jsonl" || fail "scan after flush differs"
ok "flush, then verify (exit 0), inspect (tenant, segments, totals, WAL)"

# ------------------------------------------------------------ corruption
seg=$(find "$D/tenants/acme" -name '*.seg' | head -n 1)
[[ -n "$seg" ]] || fail "no segment file after flush"
cp "$seg" "$WORK/seg.orig"
size=$(stat -c %s "$seg")
for off in $((size / 2)) 20; do
  cp "$WORK/seg.orig" "$seg"
  python3 -c "
import sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 0x40]))" "$seg" "$off"
  run 1 "$ESCTL" verify --data "$D"
  grep -q "$(basename "$seg"):[0-9][0-9]*: " "$WORK/out" ||
    fail "verify does not name $(basename "$seg") and an offset: $(cat "$WORK/out")"
  rc=0
  "$ESCTL" scan --data "$D" --tenant acme >"$WORK/out" 2>"$WORK/err" || rc=$?
  [[ $rc -ne 0 ]] || fail "scan of a corrupt segment (byte $off) succeeded"
  grep -qiE 'corrupt|checksum' "$WORK/err" || fail "scan message: $(cat "$WORK/err")"
  ok "a flipped byte at offset $off of a segment: verify and scan fail, naming it"
done
cp "$WORK/seg.orig" "$seg"
run 0 "$ESCTL" verify --data "$D"

# ------------------------------------------- query, rollups, timeline
total=$(wc -l <"$WORK/scan.jsonl")
echo '{"aggregate":["count"]}' >"$WORK/spec.json"
run 0 "$ESCTL" query --data "$D" --tenant acme --spec "$WORK/spec.json"
grep -q "^{\"rows\":\[{\"count\":$total}\],\"source\":\"rollup\"" "$WORK/out" ||
  fail "query count from rollups: $(cat "$WORK/out") (want $total)"
echo '{"plan":"scan"}' | run 0 "$ESCTL" query --data "$D" --tenant acme --spec -
grep -q "^{\"rows\":\[{\"count\":$total}\],\"source\":\"scan\"" "$WORK/out" ||
  fail "query count by scanning: $(cat "$WORK/out")"
echo '{"bucket":"week"}' >"$WORK/bad.json"
run 2 "$ESCTL" query --data "$D" --tenant acme --spec "$WORK/bad.json"
grep -q '"bucket"' "$WORK/err" || fail "bad spec message: $(cat "$WORK/err")"
ok "query: rollup and scan plans agree ($total events); a bad spec exits 2 naming the field"

rlp=$(find "$D/tenants/acme" -name '*.rlp' | head -n 1)
[[ -n "$rlp" ]] || fail "no rollup file beside the segments"
run 0 "$ESCTL" rollup-rebuild --data "$D" --tenant acme
grep -q "rebuilt: [1-9][0-9]* segments checked, 0 rollup files rewritten" "$WORK/out" ||
  fail "rebuild of sound rollups: $(cat "$WORK/out")"
rm "$rlp"
run 0 "$ESCTL" query --data "$D" --tenant acme --spec "$WORK/spec.json"
grep -q "\"count\":$total}" "$WORK/out" || fail "query without a rollup file"
run 0 "$ESCTL" rollup-rebuild --data "$D" --tenant acme
grep -q "1 rollup files rewritten (1 missing or damaged, 0 differing)" "$WORK/out" ||
  fail "rebuild of a missing rollup: $(cat "$WORK/out")"
[[ -f "$rlp" ]] || fail "rollup file not rewritten"
run 0 "$ESCTL" verify --data "$D"
ok "rollup-rebuild: finds sound files sound, rewrites a missing one"

person=$(python3 -c "
import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get('anonymousId'): print(e['anonymousId']); break" "$WORK/scan.jsonl")
run 0 "$ESCTL" timeline --data "$D" --tenant acme --person "$person" --limit 3
n=$(wc -l <"$WORK/out")
[[ $n -ge 1 && $n -le 3 ]] || fail "timeline printed $n lines"
python3 -c "
import json,sys
ts = [json.loads(l)['timestamp'] for l in open(sys.argv[1])]
assert ts == sorted(ts, reverse=True), ts" "$WORK/out" || fail "timeline order"
ok "timeline: at most --limit events of one person, newest first"

# ------------------------------------------------ rules and members
R=$WORK/rules
mkevent() { # ANON PATH SECOND
  printf '{"type":"page","anonymousId":"%s","messageId":"m-%s-%s","timestamp":"2026-11-24T10:00:%02dZ","properties":{"path":"%s"}}\n' "$1" "$1" "$3" "$3" "$2"
}
{ mkevent ann /pricing 1; mkevent ann /pricing 2; mkevent bob /pricing 3
  mkevent ann /docs 4; mkevent bob /docs 5; } |
  run 0 "$ESCTL" append --data "$R" --tenant shop
echo '{"name":"pricing-2x","match":{"type":"page","path":"/pricing"},"atLeast":2,"within":"7d"}' |
  run 0 "$ESCTL" rule-put --data "$R" --tenant shop --rule -
run 0 "$ESCTL" members --data "$R" --tenant shop --rule pricing-2x --at 2026-11-24T10:01:00Z
[[ "$(cat "$WORK/out")" == "ann" ]] || fail "members: $(cat "$WORK/out")"
run 0 "$ESCTL" members --data "$R" --tenant shop --rule pricing-2x --at 2026-11-24T10:01:00Z --person bob
[[ "$(cat "$WORK/out")" == "no" ]] || fail "members --person bob: $(cat "$WORK/out")"
mkevent bob /pricing 9 | run 0 "$ESCTL" append --data "$R" --tenant shop
run 0 "$ESCTL" members --data "$R" --tenant shop --rule pricing-2x --at 2026-11-24T10:01:00Z
[[ "$(tr '\n' ' ' <"$WORK/out")" == "ann bob " ]] || fail "members after bob's 2nd view: $(cat "$WORK/out")"
run 0 "$ESCTL" rules --data "$R" --tenant shop --at 2026-11-24T10:01:00Z
grep -q '"name":"pricing-2x".*"members":2' "$WORK/out" || fail "rules: $(cat "$WORK/out")"
run 0 "$ESCTL" members --data "$R" --tenant shop --rule pricing-2x --at 2026-12-24T10:01:00Z
[[ ! -s "$WORK/out" ]] || fail "members a month later: $(cat "$WORK/out")"
echo '{"name":"x","within":"1w"}' >"$WORK/badrule.json"
run 2 "$ESCTL" rule-put --data "$R" --tenant shop --rule "$WORK/badrule.json"
grep -q '"within"' "$WORK/err" || fail "bad rule message: $(cat "$WORK/err")"
run 1 "$ESCTL" members --data "$R" --tenant shop --rule nope
run 0 "$ESCTL" rule-delete --data "$R" --tenant shop --rule pricing-2x
run 0 "$ESCTL" rules --data "$R" --tenant shop
[[ "$(cat "$WORK/out")" == '{"rules":[]}' ]] || fail "rules after delete: $(cat "$WORK/out")"
ok "rules: rule-put over stored events, members (list, --person, --at), rules, rule-delete, a bad rule exits 2"

# ------------------------------------------------------------ es-compact
if [[ -n "${ES_COMPACT:-}" ]]; then
  C=$WORK/compact
  for i in 1 2 3 4; do
    mkevent "v$i" /pricing "$i" | run 0 "$ESCTL" append --data "$C" --tenant ct
    run 0 "$ESCTL" flush --data "$C" --tenant ct
  done
  mkevent old /pricing 7 | sed 's/2026-11-24/2020-01-01/' |
    run 0 "$ESCTL" append --data "$C" --tenant ct
  run 0 "$ESCTL" flush --data "$C" --tenant ct
  run 0 "$ESCTL" scan --data "$C" --tenant ct
  [[ $(wc -l <"$WORK/out") -eq 5 ]] || fail "5 events before compaction"
  run 0 "$ES_COMPACT" --help
  grep -q '^usage: es-compact' "$WORK/out" || fail "es-compact --help"
  run 2 "$ES_COMPACT" --data "$C" --retain 3w
  run 2 "$ES_COMPACT" --retain 30d
  run 0 "$ES_COMPACT" --data "$C" --retain 3650d
  grep -q "5 segments -> 1, 5 rows kept, 0 dropped" "$WORK/out" ||
    fail "merge: $(cat "$WORK/out")"
  run 0 "$ES_COMPACT" --data "$C" --tenant ct --retain 365d
  grep -q "1 segments -> 1, 4 rows kept, 1 dropped past retention" "$WORK/out" ||
    fail "retention: $(cat "$WORK/out")"
  [[ $(find "$C/tenants/ct" -name '*.seg' | wc -l) -eq 1 ]] || fail "segment files"
  run 0 "$ESCTL" scan --data "$C" --tenant ct
  [[ $(wc -l <"$WORK/out") -eq 4 ]] && ! grep -q '"old"' "$WORK/out" ||
    fail "scan after retention: $(cat "$WORK/out")"
  run 0 "$ESCTL" verify --data "$C"
  ok "es-compact: merges 5 segments into 1, drops events past --retain, verify clean"
fi

echo "all $checks checks passed"
