#!/usr/bin/env bash
# Creates (or refreshes) .venv with tests/requirements.txt; prints nothing when it is current.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.requirements
if [ ! -x .venv/bin/python ] || ! cmp -s tests/requirements.txt "$stamp"; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$stamp"
fi
