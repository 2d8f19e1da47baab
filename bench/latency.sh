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
peak=0
for r in $(seq "$ROUNDS"); do
  direct "$SECS" >>"$WORK/direct.txt"
  via "$SECS" >>"$WORK/gateway.txt" &
  v=$!
  while kill -0 $v 2>/dev/null; do r_kb=$(rss_kb "$GWPID"); (( r_kb > peak )) && peak=$r_kb; sleep 0.2; done
  wait $v
done
header "Added latency (bash bench/latency.sh)"
echo "load: wrk -t1 -c$CONNS, $SECS s x $ROUNDS alternating rounds each; simulator latency $LATENCY_MS ms, quotas lifted; medians of the rounds"
printf '%-16s %8s %9s %9s %10s %8s\n' path 'req/s' 'p50 ms' 'p99 ms' 'p99.9 ms' non-2xx
for b in direct gateway; do
  f="$WORK/$b.txt"
  rps=$(awk '{print $1/($4/1e6)}' "$f" | median)
  for q in 5 6 7; do eval "${b}_$q=$(awk -v q=$q '{print $q}' "$f" | median)"; done
  bad=$(awk '{s+=$2+$3} END {print s}' "$f")
  eval "printf '%-16s %8.0f %9.3f %9.3f %10.3f %8d\n' $b $rps \$(echo \"\$${b}_5/1000\" | bc -l) \$(echo \"\$${b}_6/1000\" | bc -l) \$(echo \"\$${b}_7/1000\" | bc -l) $bad"
done
printf 'added by the gateway: p50 %+.3f ms, p99 %+.3f ms, p99.9 %+.3f ms\n' \
  "$(echo "($gateway_5-$direct_5)/1000" | bc -l)" "$(echo "($gateway_6-$direct_6)/1000" | bc -l)" "$(echo "($gateway_7-$direct_7)/1000" | bc -l)"
echo "gateway RSS under this load: peak $((peak / 1024)) MiB"
