#!/usr/bin/env bash
# Presubmit checks that need no build: layering, banned calls outside the
# one file allowed to make them, and formatting of the library.  With a
# build directory as $1, also checks the shared library's exported symbols.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
say() { echo "check: $*" >&2; fail=1; }

# 1. Layering: tools and servers see the public header only.
if grep -nE '#include +"(\.\./)*lib/|#include +"(status|mem|io|wal|segment|memtable|dbint|db|codec|event|manifest|clock)\.h"' cmd/*.c cmd/*.h 2>/dev/null; then
  say "cmd/ must include only include/eventstore.h (and cmd/ headers)"
fi

# 2. Banned calls: only mem.c allocates, only io.c touches files, only
#    clock.c reads the clock.
banned() { # regex, allowed file, what
  local hits
  hits=$(grep -nE "$1" lib/*.c | grep -v "^lib/$2:" | grep -vE '^\S+:\s*(/\*|\*)' || true)
  [ -z "$hits" ] || { echo "$hits" >&2; say "$3 outside lib/$2"; }
}
banned '(^|[^>.a-z_])(malloc|calloc|realloc|free|strdup)\(' mem.c "allocation"
banned '(^|[^>.a-z_])(open|pread|pwrite|fsync|fdatasync|rename|unlink|mkdir|opendir|ftruncate|flock)\(' io.c "file I/O"
banned '(^|[^>.a-z_])(clock_gettime|gettimeofday|time)\(' clock.c "clock reads"
banned '(^|[^>.a-z_])exit\(' none "exit()"

# 3. Formatting (clang-format, .clang-format at the top).
if command -v clang-format >/dev/null; then
  if ! clang-format --dry-run -Werror include/*.h lib/*.c lib/*.h 2>/dev/null; then
    say "run: clang-format -i include/*.h lib/*.c lib/*.h"
  fi
fi

# 4. Exported symbols: only es_* (never es__*) from the shared library.
if [ $# -ge 1 ]; then
  so=$(ls "$1"/lib/libeventstore.so.* 2>/dev/null | head -n 1)
  if [ -n "$so" ]; then
    bad=$(nm -D --defined-only "$so" | awk '$2 ~ /[TDBR]/ {print $3}' |
          grep -vE '^es_[a-z]' || true)
    [ -z "$bad" ] || { echo "$bad" >&2; say "unexpected exported symbols"; }
  fi
fi
[ $fail -eq 0 ] && echo "check: ok" >&2
exit $fail
