#!/usr/bin/env bash
# Reads: N concurrent viewers of M customers' credit (GET /customers/{uin}/credit, a random
# customer per request) through one gateway, against the simulator with Tencent's real quota
# (QueryCreditByUinList: 5 calls/s) and 50 ms of upstream latency. Three gateways side by side,
# alternating rounds: no batching (reads.batch_size = 1, no cache), batched (50 UINs a
# call, no cache), batched with the default 1 s cache. (Readers of the same customer always share
# its call.) The gateway runs on core 1, wrk on core 0.
# Usage: bash bench/reads.sh   (ROUNDS=3 SECS=10 VIEWERS=100 CUSTOMERS=40)
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-3}; SECS=${SECS:-10}; VIEWERS=${VIEWERS:-100}; CUSTOMERS=${CUSTOMERS:-40}
build; need wrk
SIM=$(free_port)
sandbox "$SIM" 50 false

declare -A PORT
start() { # NAME BATCH CACHE_MS
  local port
  port=$(free_port)
  PORT[$1]=$port
  gateway_config "$1" "$port" "$SIM" "[reads]
batch_size = $2
cache_ms = $3
[quotas]
max_wait_ms = 1000"
  sed -i 's/^scopes = .*/scopes = ["customers:read"]/' "$WORK/$1.toml"
  taskset -c 1 "$BIN" serve --config "$WORK/$1.toml" >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$port/readyz"
}
start single 1 0
start batched 50 0
start cached 50 1000

# The wrk script: GET a random one of the first CUSTOMERS seeded customers (800000000001...).
{
  echo "local uins = {}"
  echo "for i = 1, $CUSTOMERS do uins[i] = string.format('8000000000%02d', i) end"
  echo "wrk.headers[\"Authorization\"] = \"Bearer $KEY\""
  echo 'request = function() return wrk.format("GET", "/customers/" .. uins[math.random(#uins)] .. "/credit") end'
  cat "$ROOT/bench/result.lua"
} > "$WORK/reads.lua"

calls() { curl -fsS "http://127.0.0.1:$SIM/_sandbox/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["actions"].get("QueryCreditByUinList", {}).get("received", 0))'; }

for name in single batched cached; do # warm-up
  taskset -c 0 wrk -t1 -c"$VIEWERS" -d2s -s "$WORK/reads.lua" "http://127.0.0.1:${PORT[$name]}" >/dev/null
  sleep 2
done
for r in $(seq "$ROUNDS"); do
  for name in single batched cached; do
    before=$(calls)
    taskset -c 0 wrk -t1 -c"$VIEWERS" -d"${SECS}s" -s "$WORK/reads.lua" "http://127.0.0.1:${PORT[$name]}" |
      awk '/^RESULT/ {print $2, $3, $4, $5, $6, $7, $8}' >"$WORK/round"
    after=$(calls)
    # The three gateways share the simulator's per-second quota: calls still waiting for a slot
    # when a round ends (up to max_wait) must not land in the next gateway's first second, where
    # Tencent-like refusals would teach it a lower quota.
    sleep 2
    echo "$(cat "$WORK/round") $((after - before))" >>"$WORK/$name.txt"
  done
done

header "Reads: batching and caching (bash bench/reads.sh)"
echo "load: wrk -t1 -c$VIEWERS on core 0, $SECS s x $ROUNDS alternating rounds, GET /customers/{uin}/credit over $CUSTOMERS customers; simulator with Tencent's quota (5/s) and 50 ms latency; gateway on core 1; medians"
printf '%-34s %12s %10s %14s %14s %9s %9s\n' gateway 'served/s' '429 share' 'upstream/s' 'served/call' 'p50 ms' 'p99 ms'
for name in single batched cached; do
  f="$WORK/$name.txt"
  served=$(awk '{print ($1-$2)/($4/1e6)}' "$f" | median)
  share=$(awk '{print $2/$1*100}' "$f" | median)
  upstream=$(awk '{print $8/($4/1e6)}' "$f" | median)
  per_call=$(awk '{print ($8 > 0) ? ($1-$2)/$8 : 0}' "$f" | median)
  p50=$(col "$f" 5); p99=$(col "$f" 6)
  case $name in
    single) label="no batching (batch_size 1)" ;;
    batched) label="batched (50 UINs, no cache)" ;;
    cached) label="batched + cache_ms 1000" ;;
  esac
  printf '%-34s %12.1f %9.1f%% %14.2f %14.1f %9.2f %9.2f\n' "$label" "$served" "$share" "$upstream" "$per_call" \
    "$(echo "$p50/1000" | bc -l)" "$(echo "$p99/1000" | bc -l)"
done
