#!/usr/bin/env bash
# Every test: installs what is needed, runs the presubmit checks, builds
# with AddressSanitizer + UndefinedBehaviorSanitizer, and runs all suites
# (unit, fault injection, crash, integration, fuzz-corpus replay, bench
# smoke) under them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/npm-deps.sh
B=${BUILD_ASAN:-build-asan}
[ -d "$B" ] || meson setup "$B" -Db_sanitize=address,undefined \
  -Db_lundef=false --buildtype=debugoptimized >/dev/null
ninja -C "$B"
# The release build that scripts/run.sh makes must compile too (-O3 finds
# warnings, fatal under -Werror, that the sanitizer build does not).
R=${BUILD_RELEASE:-build-release}
[ -d "$R" ] || meson setup "$R" --buildtype=release >/dev/null
if ! out=$(ninja -C "$R" 2>&1); then
  printf '%s\n' "$out" | grep -vE '^\[[0-9]+/[0-9]+\]' | tail -40 >&2
  echo "test.sh: the release build failed" >&2
  exit 1
fi
scripts/check.sh "$B"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
meson test -C "$B" --print-errorlogs --num-processes 2 "$@"
