#!/usr/bin/env bash
# Every benchmark but the soak, one after the other (about 20 minutes); the output is what
# BENCHMARKS.md reports. Usage: bash bench/all.sh | tee bench-results.txt
set -euo pipefail
cd "$(dirname "$0")"
for b in signing limiter latency precision shedding footprint reads traces instructions; do
  bash "$b.sh"
  echo
done
