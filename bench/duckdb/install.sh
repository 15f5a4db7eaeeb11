#!/usr/bin/env bash
# Installs the DuckDB peer of es-bench: the npm packages pinned by
# bench/duckdb/package-lock.json (@duckdb/node-api and its prebuilt
# bindings) into bench/duckdb/node_modules.  scripts/deps.sh runs it.
#
# Idempotent and offline-tolerant: when the locked version is installed
# and loads, it does nothing and needs no network.  Fails (non-zero, one
# line saying why) when node or npm is missing or the install fails, so
# that CI stops here rather than skipping DuckDB.
set -euo pipefail
cd "$(dirname "$0")"
say() { echo "duckdb peer: $*" >&2; }
command -v node >/dev/null || { say "node is missing (scripts/deps.sh installs it)"; exit 1; }
want=$(node -p "require('./package-lock.json').packages['node_modules/@duckdb/node-api'].version")
have=$(node -p "try { require('./node_modules/@duckdb/node-api/package.json').version } catch (e) { '' }")
loads() { node --input-type=module -e "import d from '@duckdb/node-api'; d.version();" 2>/dev/null; }
if [ "$want" = "$have" ] && loads; then
  exit 0
fi
command -v npm >/dev/null || { say "npm is missing (scripts/deps.sh installs it)"; exit 1; }
say "installing @duckdb/node-api $want (npm ci)"
npm ci --no-audit --no-fund --loglevel=error >&2
loads || { say "@duckdb/node-api $want was installed but does not load"; exit 1; }
