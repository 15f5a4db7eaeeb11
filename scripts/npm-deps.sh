#!/usr/bin/env bash
# Installs the npm packages of the end-to-end tests into node_modules
# beside each package.json, exactly as pinned by its package-lock.json:
# tests/ingest (the real Segment and RudderStack SDK clients, and the
# Segment browser SDK with playwright-core, which drives Debian's chromium) and
# tests/queryd (the Segment SDK and playwright-core, which drives Debian's
# chromium), tests/replicate (s3rver as the S3 server,
# @aws-sdk/client-s3 as an independent S3 client, the Segment SDK feeding
# es-ingestd in tier s3), tests/export (DuckDB, parquet-wasm, hyparquet:
# independent readers of the export files), tests/docs (mermaid with
# playwright-core: the docs' diagrams render) and bench/replicate (s3rver
# and @aws-sdk/client-s3 for es-bench replicate).
# Idempotent: a directory whose node_modules is newer than its lock file
# is left alone.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v npm >/dev/null; then
  echo "npm-deps: npm not found (scripts/deps.sh installs it)" >&2
  exit 1
fi
for d in tests/ingest tests/queryd tests/replicate tests/export tests/docs bench/replicate; do
  cd "$root/$d"
  if [ -d node_modules ] && [ node_modules -nt package-lock.json ]; then
    continue
  fi
  echo "npm-deps: npm ci in $d" >&2
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  touch node_modules
done
