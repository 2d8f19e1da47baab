#!/usr/bin/env bash
# Added latency: the same load straight at the simulator (signed requests) and through a release
# gateway, the simulator answering after a fixed 20 ms, quotas lifted; alternating rounds.
# Usage: bash bench/latency.sh   (ROUNDS=3 SECS=10 CONNS=16 LATENCY_MS=20)
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-3}; SECS=${SECS:-10}; CONNS=${CONNS:-16}; LATENCY_MS=${LATENCY_MS:-20}
build; need wrk
SIM=$(free_port); GW=$(free_port)
sandbox "$SIM" "$LATENCY_MS"
gateway gw "$GW" "$SIM" '[quotas]
credit_per_second = 100000'
GWPID=${PIDS[-1]}
direct() { python3 "$ROOT/bench/signed_lua.py" "127.0.0.1:$SIM" "$WORK/direct.lua"; load "http://127.0.0.1:$SIM/" "$1" "$CONNS" "$WORK/direct.lua"; }
via() { load "http://127.0.0.1:$GW/customers/800000232018/credit" "$1" "$CONNS"; }
direct 2 >/dev/null; via 2 >/dev/null   # warm-up
for r in $(seq "$ROUNDS"); do
  direct "$SECS" >>"$WORK/direct.txt"
  via "$SECS" >>"$WORK/gateway.txt" &
  watch_rss "$GWPID" $!
done
header "Added latency (bash bench/latency.sh)"
echo "load: wrk -t1 -c$CONNS, $SECS s x $ROUNDS alternating rounds each; simulator latency $LATENCY_MS ms, quotas lifted; medians of the rounds"
compare direct gateway "the gateway"
echo "gateway RSS under this load: peak $((PEAK_KB / 1024)) MiB"
