#!/usr/bin/env bash
# The contract "the library links with pkg-config --libs libeventstore":
# install the build into a scratch prefix, compile examples/hello.c with
# nothing but pkg-config's flags, run it, and check that the shared
# library exports only es_* symbols.
# Usage: pkgconfig_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/es_pkgconfig.XXXXXX")
trap 'rm -rf "$work"' EXIT
meson install -C "$build" --no-rebuild --destdir "$work/root" --quiet >/dev/null
opt() { # the value of a meson option of this build
  meson introspect "$build" --buildoptions | python3 -c \
    'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]==sys.argv[1]][0])' "$1"
}
prefix=$(opt prefix)
san=$(opt b_sanitize)
extra=()
[[ "$san" == none || -z "$san" ]] || extra=("-fsanitize=$san")
pc=$(dirname "$(find "$work/root" -name libeventstore.pc | head -n 1)")
[[ -n "$pc" ]] || { echo "FAIL: no libeventstore.pc installed"; exit 1; }
# point the .pc file's prefix at the scratch root
export PKG_CONFIG_SYSROOT_DIR="$work/root" PKG_CONFIG_PATH="$pc"
flags=$(pkg-config --cflags --libs libeventstore)
echo "pkg-config: $flags (prefix $prefix)"
cc -std=c11 -Wall -Wextra -Werror "${extra[@]}" "$src/examples/hello.c" $flags \
  -o "$work/hello"
libdir=$(dirname "$(find "$work/root" -name 'libeventstore.so*' | head -n 1)")
out=$(LD_LIBRARY_PATH="$libdir" "$work/hello" "$work/data")
echo "$out"
[[ "$out" == "stored durably at lsn "*"; scan sees 1 event(s)" ]] ||
  { echo "FAIL: unexpected output"; exit 1; }
so=$(find "$work/root" -name 'libeventstore.so.*' -type f | head -n 1)
bad=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -vE '^es_[a-z]' || true)
[[ -z "$bad" ]] || { echo "FAIL: exported non-API symbols: $bad"; exit 1; }
echo "1 passed, 0 failed"
