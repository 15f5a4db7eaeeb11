#!/usr/bin/env bash
# Presubmit checks that need no build: layering, banned calls outside the
# one file allowed to make them, and formatting of the library.  With a
# build directory as $1, also checks the shared library's exported symbols.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
say() { echo "check: $*" >&2; fail=1; }

# 1. Layering by folder.  lib/ is base/ < store/ < engine/ < the top
#    (lib/*.c: es_open wires the store to the engine); a file includes
#    only headers of its own folder or lower ones.  Later layers
#    (replicate/, export/, erase/) rank above engine/.  cmd/ and its
#    folders see only the public header: never a lib/ header.
rank() { case "$1" in base) echo 1;; store) echo 2;; engine) echo 3;;
                      replicate) echo 4;; export) echo 5;; erase) echo 6;;
                      *) echo 9;; esac; }
while IFS= read -r f; do
  dir=$(dirname "${f#lib/}"); [ "$dir" = . ] && dir=top
  mine=$(rank "$dir")
  while IFS= read -r inc; do
    case "$inc" in */*) ;; *) continue;; esac
    if [ "$(rank "${inc%%/*}")" -gt "$mine" ]; then
      echo "$f: includes $inc" >&2; say "lib/$dir may not include a higher layer"
    fi
  done < <(grep -oE '^#include +"[^"]+"' "$f" | sed -E 's/^#include +"([^"]+)"/\1/')
done < <(find lib -name '*.[ch]' | sort)

# ---- cmd/ layering (begin) -------------------------------------------
# cmd/ is in layers too: common/ (shared by every program) < ingest/ (the
# ingest service as a library) < the executables (ingestd/, queryd/, and
# the tools at the top of cmd/).  Includes across folders are written
# from cmd/ ("common/hconn.h"); a bare "x.h" is the file's own folder's
# or the public header.
#   - nothing in cmd/ includes a lib/ header, or climbs with "../";
#   - common/ includes only itself and eventstore.h;
#   - ingest/ includes common/ and itself;
#   - the tools at the top of cmd/ include common/;
#   - every other folder includes common/ and, of ingest/, only its
#     public header ingest/ingest.h; never another executable's folder.
cmd_allowed() { # the folder of a file, the include -> 0 when allowed
  case "$2" in ../*|*/../*|./*|*/./*) return 1;; esac
  case "$1:$2" in
    common:common/*) return 0;;
    common:*) return 1;;
    ingest:common/*|ingest:ingest/*) return 0;;
    ingest:*) return 1;;
    .:common/*) return 0;;
    .:*) return 1;;
    *:common/*|*:ingest/ingest.h) return 0;;
    *) return 1;;
  esac
}
while IFS= read -r f; do
  dir=$(dirname "${f#cmd/}")
  while IFS= read -r inc; do
    case "$inc" in
      eventstore.h) continue;;
      */*) cmd_allowed "$dir" "$inc" && continue;;
      *) [ -f "$(dirname "$f")/$inc" ] && continue;;
    esac
    echo "$f: includes \"$inc\"" >&2
    say "cmd/ layering: a file of cmd/$dir may not include \"$inc\" (the rules are in check.sh)"
  done < <(grep -oE '^#include +"[^"]+"' "$f" | sed -E 's/^#include +"([^"]+)"/\1/')
done < <(find cmd -name '*.[ch]' | sort)
if grep -rnE '#include +"[^"]*(lib/|(base|store|engine|replicate|export|erase)/)' cmd \
    --include='*.c' --include='*.h'; then
  say "cmd/ must include only include/eventstore.h (and cmd/ headers)"
fi
# ---- cmd/ layering (end) ---------------------------------------------

# 2. Banned calls: only mem.c allocates, only io.c touches files, only
#    clock.c reads the clock.
banned() { # regex, allowed file, what
  local hits
  hits=$(grep -rnE "$1" lib --include='*.c' | grep -v "^lib/$2:" | grep -vE '^\S+:\s*(/\*|\*)' || true)
  [ -z "$hits" ] || { echo "$hits" >&2; say "$3 outside lib/$2"; }
}
banned '(^|[^>.a-z_])(malloc|calloc|realloc|free|strdup)\(' base/mem.c "allocation"
banned '(^|[^>.a-z_])(open|pread|pwrite|fsync|fdatasync|rename|unlink|mkdir|opendir|ftruncate|flock)\(' base/io.c "file I/O"
banned '(^|[^>.a-z_])(clock_gettime|gettimeofday|time)\(' base/clock.c "clock reads"
banned '(^|[^>.a-z_])exit\(' none "exit()"

# 3. Formatting (clang-format, .clang-format at the top).
if command -v clang-format >/dev/null; then
  if ! clang-format --dry-run -Werror include/*.h $(find lib -name '*.[ch]') 2>/dev/null; then
    say "run: clang-format -i include/*.h \$(find lib -name '*.[ch]')"
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
