#!/usr/bin/env bash
# One TC3 signature: the gateway's (cached day key and uncached, divan) and the official Python
# SDK's sign_tc3 on the same input. Usage: bash bench/signing.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
echo "# Signing (bash bench/signing.sh)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty'); machine: $(nproc) cores, $(uname -sr)"
cargo bench -q --bench signing 2>/dev/null | grep -E "signing|cached|uncached"
bash tests/venv.sh
.venv/bin/python bench/sign_tc3.py
