#!/usr/bin/env bash
# The Swagger UI check and the TypeScript client's example page in headless Chromium. Installs Debian's chromium and chromium-driver when
# missing (needs root, as on CI). SCREENSHOT=docs/swagger-ui.png refreshes the committed picture.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
bash tests/venv.sh
cargo build --locked --quiet
# The TypeScript client's example page needs the built client (CLIENT_SCREENSHOT=docs/typescript-example.png
# refreshes its committed picture).
(cd clients/typescript && npm ci --no-audit --no-fund --silent && npm run --silent build)
PG_BIN="$PWD/target/debug/partner-gateway" SCREENSHOT="${SCREENSHOT:-target/swagger-ui.png}" \
  .venv/bin/python -m pytest -q tests/browser "$@"
