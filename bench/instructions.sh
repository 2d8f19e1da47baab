#!/usr/bin/env bash
# Instructions per allocation, counted by callgrind: deterministic, whatever else the machine
# does. A release gateway under `valgrind --tool=callgrind` serves N sequential
# `POST /customers/{uin}/credit` (one keep-alive connection) from a simulator answering at once;
# the count for FEW requests is subtracted from the count for MANY, so start-up and exit cancel.
# Both the commit before traces (BASE) and this commit, traces off.
# Usage: bash bench/instructions.sh   (BASE=6ad10ef FEW=100 MANY=400)
source "$(dirname "$0")/lib.sh"
BASE=${BASE:-6ad10ef}; FEW=${FEW:-100}; MANY=${MANY:-400}
trap 'cleanup; git -C "$ROOT" worktree prune' EXIT
need valgrind
unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
BASE_BIN=$(base_binary "$BASE")
build
SIM=$(free_port)
sandbox "$SIM" 0
# count BINARY N: callgrind's instruction total for a gateway that served N allocations.
count() {
  local bin=$1 n=$2 port pid
  port=$(free_port)
  gateway_config cg "$port" "$SIM" '[quotas]
credit_per_second = 100000'
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" "$bin" serve --config "$WORK/cg.toml" \
    >"$WORK/cg.log" 2>&1 &
  pid=$!
  wait_http "http://127.0.0.1:$port/readyz" 120
  python3 - "$port" "$KEY" "$n" <<'PY'
import http.client, sys
port, key, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("POST", "/customers/800000232018/credit", body='{"amount":0.01}',
              headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
  kill -TERM "$pid"; wait "$pid" || true
  awk '/^(summary|totals):/ {print $2; exit}' "$WORK/cg.out"
}
per_request() { # BINARY
  local few many
  few=$(count "$1" "$FEW"); many=$(count "$1" "$MANY")
  echo $(( (many - few) / (MANY - FEW) ))
}
base=$(per_request "$BASE_BIN"); current=$(per_request "$BIN")
header "Instructions per allocation (bash bench/instructions.sh)"
echo "callgrind, ($MANY - $FEW) sequential allocations, one connection, simulator at 0 ms; base = $BASE"
printf '%-28s %12s\n' "base (before traces)" "$base" "current (traces off)" "$current"
echo "current / base: $(echo "scale=4; $current / $base" | bc)"
