#!/usr/bin/env bash
# Installs the npm packages of the end-to-end ingest tests (the real
# Segment and RudderStack SDK clients) into tests/ingest/node_modules,
# exactly as pinned by tests/ingest/package-lock.json.  Idempotent: does
# nothing when node_modules is newer than the lock file.
set -euo pipefail
cd "$(dirname "$0")/../tests/ingest"
if ! command -v npm >/dev/null; then
  echo "npm-deps: npm not found (scripts/deps.sh installs it)" >&2
  exit 1
fi
if [ -d node_modules ] && [ node_modules -nt package-lock.json ]; then
  exit 0
fi
echo "npm-deps: npm ci in tests/ingest" >&2
npm ci --no-audit --no-fund --loglevel=error >/dev/null
touch node_modules
