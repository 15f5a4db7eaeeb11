#!/usr/bin/env bash
# Installs the Debian packages libeventstore needs to build and test, and
# es-bench's DuckDB peer (npm @duckdb/node-api, bench/duckdb/install.sh).
# Idempotent: does nothing when everything is already installed.
set -euo pipefail
pkgs=(meson ninja-build pkg-config gcc clang clang-format
      liblz4-dev libxxhash-dev libyajl-dev check
      libsqlite3-dev librocksdb-dev python3
      libuv1-dev zlib1g-dev libjemalloc-dev node-llhttp curl
      libcurl4-openssl-dev libssl-dev python3-botocore
      chromium wrk nginx-light libzstd-dev libsnappy-dev haproxy postgresql
      systemd strace)
# strace: tests/migrate/fwdsync.test.mjs checks in a trace of es-ingestd
# that a --forward 200 is written after its queue frame's fdatasync.
# libzstd, libsnappy: Parquet page compression of the warehouse export
# (lib/export; zlib gzips its NDJSON).  systemd: systemd-analyze checks the
# units of deploy/ (tests/deploy).
# libcurl: es-queryd's webhooks and the S3 client (lib/replicate/s3.c),
# which takes SHA-256 from libssl-dev's libcrypto.  python3-botocore: the
# SigV4-checking proxy of tests/replicate (botocore's own signer).
# haproxy: routes tenants to the nodes of scripts/cluster.sh (the cluster
# test; deploy/haproxy).  chromium: the dashboard test (driven by playwright-core).  wrk and nginx-light: `es-bench http` (full-load
# generator; nginx as the HTTP ceiling, run from a config of its own -- the
# package's service is not used; tests/migrate runs nginx with deploy/nginx's
# mirror configs).  postgresql: tests/migrate plays the legacy pipeline's
# database with it (its COPY CSV, docs/MIGRATION.md's counts query); the
# package's own cluster and service are not used.  Node.js and npm run the SDK clients of
# the end-to-end tests, es-bench's DuckDB peer and its HTTP load driver; a
# node and npm that are already there are kept.
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
bash "$(dirname "$0")/../bench/duckdb/install.sh"
