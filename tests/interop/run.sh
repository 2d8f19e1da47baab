#!/usr/bin/env bash
# Interoperability test: the official Tencent Cloud Python SDK against the sandbox simulator.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/venv.sh
cargo build --locked --quiet
PG_BIN="$PWD/target/debug/partner-gateway" .venv/bin/python -m pytest -q tests/interop "$@"
