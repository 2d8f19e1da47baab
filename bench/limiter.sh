#!/usr/bin/env bash
# The Redis limiter's added latency versus the in-process one, side by side in one run.
# Two release gateways in front of one simulator (no latency, quotas lifted), one with
# store.backend = "memory", one with "redis"; unkeyed credit calls (only the quota touches the
# store), alternating rounds of wrk, medians of the rounds.
# Usage: bash bench/limiter.sh   (REDIS_URL, default redis://127.0.0.1:6379/; ROUNDS, SECS, CONNS)
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-3}; SECS=${SECS:-8}; CONNS=${CONNS:-2}
REDIS=${REDIS_URL:-redis://127.0.0.1:6379/}
build; need wrk
header "Quota limiter: Redis vs in-process (bash bench/limiter.sh)"
echo "## the limiter alone: cargo bench --bench limiter"
(cd "$ROOT" && REDIS_URL=$REDIS cargo bench -q --bench limiter 2>/dev/null)
echo
SIM=$(free_port); MEM=$(free_port); RED=$(free_port)
sandbox "$SIM" 0
LIFT='[quotas]
credit_per_second = 100000'
gateway memory "$MEM" "$SIM" "$LIFT"
gateway redis "$RED" "$SIM" "$LIFT
[store]
backend = \"redis\"
redis_url = \"$REDIS\"
key_prefix = \"pgw-bench-$$:\"
expected_replicas = 1"
path=/customers/800000232018/credit
load "http://127.0.0.1:$MEM$path" 2 "$CONNS" >/dev/null   # warm-up
load "http://127.0.0.1:$RED$path" 2 "$CONNS" >/dev/null
for r in $(seq "$ROUNDS"); do
  load "http://127.0.0.1:$MEM$path" "$SECS" "$CONNS" >>"$WORK/memory.txt"
  load "http://127.0.0.1:$RED$path" "$SECS" "$CONNS" >>"$WORK/redis.txt"
done
echo "## end to end: two release gateways, one simulator"
echo "load: wrk -t1 -c$CONNS, ${SECS} s x $ROUNDS alternating rounds each, unkeyed POST /customers/{uin}/credit, simulator latency 0"
compare memory redis Redis
