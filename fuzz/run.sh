#!/usr/bin/env bash
# Runs every fuzz target for SECS seconds each (default 60) with cargo-fuzz on nightly, starting
# from the committed seeds. A crash stops the run and lands in fuzz/artifacts/TARGET/; turn it
# into a regression test in tests/fuzz_regressions.rs (the input under fuzz/regressions/TARGET/).
# Usage: bash fuzz/run.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
TARGETS="request_bodies domain upstream_answer http_surface"
# Build first, so a target that does not compile fails the run instead of being skipped.
for target in $TARGETS; do
  cargo +nightly fuzz build "$target"
done
for target in $TARGETS; do
  mkdir -p "corpus/$target"
  echo "== $target for $SECS s"
  cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$SECS" -max_len=4096 -print_final_stats=1 2>&1 |
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)|SUMMARY|panicked|ERROR" || true
  if [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
    echo "crash inputs in fuzz/artifacts/$target" >&2
    exit 1
  fi
done
