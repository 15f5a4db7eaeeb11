#!/bin/sh
# run.sh -- runs every libFuzzer target for a while (CI smoke, or longer
# by hand).  See README.md.
#
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]
#
# SECONDS per target (default 30); BUILD_DIR is a build configured with
#   CC=clang meson setup build-fuzz -Dfuzz=true -Db_lundef=false
# (default build-fuzz, relative to the repository root).  Set JOBS=N to
# run N targets at once (default 1), TARGETS="wal row" to pick targets.
#
# New inputs go to a scratch directory (FUZZ_WORK, default a mktemp dir),
# never into the checked-in corpus, which each run only reads.  A crash,
# leak, timeout or broken property leaves its input in
# $FUZZ_WORK/artifacts/ and makes the script exit 1; copy the input into
# corpus/fuzz_<target>/ once fixed (as a regression test), or into
# crashes/ with a README line while the bug is open.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-30}
build=${2:-build-fuzz}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
targets=${TARGETS:-"wal segment manifest row roundtrip segment_json query_spec rollup rules rstate"}
jobs=${JOBS:-1}
work=${FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/esfuzz.XXXXXX")}
mkdir -p "$work/artifacts"

run_one() {
  t=$1
  bin="$build/tests/fuzz/fuzz_$t"
  if [ ! -x "$bin" ]; then
    echo "run.sh: $bin missing (configure with -Dfuzz=true, CC=clang)" >&2
    return 1
  fi
  mkdir -p "$work/corpus/$t"
  dict=""
  [ -f "$here/fuzz_$t.dict" ] && dict="-dict=$here/fuzz_$t.dict"
  # -malloc_limit_mb: the readers may allocate a length field's worth
  # (up to 4 GiB) before checking it; see crashes/README.md.
  # shellcheck disable=SC2086
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=8192 -print_final_stats=1 $dict \
      -artifact_prefix="$work/artifacts/$t-" \
      "$work/corpus/$t" "$here/corpus/fuzz_$t" >"$work/$t.log" 2>&1; then
    echo "fuzz_$t: ok ($(grep -c . "$work/$t.log") log lines," \
      "$(ls "$work/corpus/$t" | wc -l) new inputs)"
  else
    echo "fuzz_$t: FAILED -- see $work/$t.log"
    grep -A3 -E "^==[0-9]+==ERROR|SUMMARY|property failed|differ" \
      "$work/$t.log" | head -20
    return 1
  fi
}

echo "run.sh: ${seconds}s per target, work directory $work"
status=0
if [ "$jobs" -le 1 ]; then
  for t in $targets; do
    run_one "$t" || status=1
  done
else
  # Simple parallelism: start up to $jobs, wait for the batch.
  set -- $targets
  while [ $# -gt 0 ]; do
    pids=""
    i=0
    while [ $# -gt 0 ] && [ $i -lt "$jobs" ]; do
      run_one "$1" > "$work/$1.status" 2>&1 &
      pids="$pids $!"
      shift
      i=$((i + 1))
    done
    for p in $pids; do
      wait "$p" || status=1
    done
  done
  cat "$work"/*.status
fi
exit $status
