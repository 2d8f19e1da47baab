#!/usr/bin/env bash
# Interoperability test: the official Tencent Cloud Python SDK against the sandbox simulator.
# Creates .venv with the pinned SDK on first use; builds the binary if needed.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import tencentcloud.intlpartnersmgt, pytest' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
fi
cargo build --locked --quiet
PG_BIN="$PWD/target/debug/partner-gateway" .venv/bin/python -m pytest -q tests/interop "$@"
