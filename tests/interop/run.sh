#!/usr/bin/env bash
# Interoperability test: Tencent's official SDKs against the sandbox simulator: the Python SDK
# (tencentcloud-sdk-python-intl-en, pytest) and the Node.js SDK (tencentcloud-sdk-nodejs-intl-en,
# node --test; installed with `npm ci` from the committed lockfile).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/venv.sh
cargo build --locked --quiet
export PG_BIN="$PWD/target/debug/partner-gateway"
echo "-- the Python SDK"
.venv/bin/python -m pytest -q tests/interop "$@"
echo "-- the Node.js SDK"
(cd tests/interop/node && npm ci --no-audit --no-fund --silent && npm test --silent)
