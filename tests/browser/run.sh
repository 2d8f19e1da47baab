#!/usr/bin/env bash
# The Swagger UI check in headless Chromium. Installs Debian's chromium and chromium-driver when
# missing (needs root, as on CI). SCREENSHOT=docs/swagger-ui.png refreshes the committed picture.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
bash tests/venv.sh
cargo build --locked --quiet
PG_BIN="$PWD/target/debug/partner-gateway" SCREENSHOT="${SCREENSHOT:-target/swagger-ui.png}" \
  .venv/bin/python -m pytest -q tests/browser "$@"
