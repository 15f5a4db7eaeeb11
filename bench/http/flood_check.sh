#!/usr/bin/env bash
# The memory budget's bounded load test (issue 18, item 5): for
# --memory-budget 64 and 256 MB and 100 and 400 connections, floods
# es-ingestd with ~58 KB /v1/batch bodies (bench/http/flood.sh, wrk) for
# FLOOD_SECONDS (default 8) each, and fails unless the peak resident set
# (VmHWM) stays within the budget + 16 MB and some requests were stored.
# Prints every case's figures and a summary table.
#
# Needs a release build (jemalloc, no sanitizer: ASan's shadow memory
# would be measured) and wrk.  About 4 x (FLOOD_SECONDS + 3) s.  Run by
# `meson test -C RELEASE_BUILD --suite slow` (registered only in builds
# without a sanitizer), or by hand:
#
# usage: bench/http/flood_check.sh BUILD_DIR [es-ingestd flags...]
set -euo pipefail
build=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
export FLOOD_SECONDS=${FLOOD_SECONDS:-8}
command -v wrk >/dev/null || { echo "flood_check: wrk is not installed (scripts/deps.sh)" >&2; exit 1; }
fail=0
summary=
for mb in 64 256; do
  for conns in 100 400; do
    out=$("$here/flood.sh" "$build" "$mb" "$conns" "$@")
    printf '%s\n' "$out"
    read -r _ _ _ hwm ok r429 r503 <<< "$(printf '%s\n' "$out" | grep '^flood: ')"
    limit=$(( (mb + 16) * 1024 ))
    verdict=ok
    if [ "$hwm" -gt "$limit" ]; then
      verdict="OVER (limit $limit kB)"
      fail=1
    fi
    if [ "${ok%.*}" -lt 1 ]; then
      verdict="$verdict; no request stored"
      fail=1
    fi
    summary+=$(printf '%4s MB %4s conns: VmHWM %6.1f MiB (limit %d MiB), 200: %s, 429: %s, 503: %s  %s' \
      "$mb" "$conns" "$(awk -v h="$hwm" 'BEGIN {print h / 1024}')" $((mb + 16)) "$ok" "$r429" "$r503" "$verdict")$'\n'
  done
done
printf '\n%s' "$summary"
exit $fail
