#!/usr/bin/env bash
# What OpenTelemetry costs a request: the same load through three release gateways in front of one
# simulator (20 ms answers, quotas lifted), in rounds whose order rotates:
#   base     the commit before traces existed (BASE, built from a git worktree),
#   current  this commit with no OTEL_* variable set (traces off: the claim is "unchanged"),
#   traced   this commit exporting every span to a local OTLP/HTTP sink (for reference).
# The gateways run on core 1, wrk, the simulator and the sink on core 0.
# Usage: bash bench/traces.sh   (BASE=6ad10ef ROUNDS=7 SECS=10 CONNS=4 LATENCY_MS=20)
source "$(dirname "$0")/lib.sh"
BASE=${BASE:-6ad10ef}; ROUNDS=${ROUNDS:-7}; SECS=${SECS:-10}; CONNS=${CONNS:-4}
LATENCY_MS=${LATENCY_MS:-20}
trap 'cleanup; git -C "$ROOT" worktree prune' EXIT
need wrk
unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT OTEL_SDK_DISABLED

BASE_BIN=$(base_binary "$BASE")
build

# An OTLP/HTTP sink: answers every export at once, counts the bytes.
cat > "$WORK/sink.py" <<'PY'
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
SINK=$(free_port)
taskset -c 0 python3 "$WORK/sink.py" "$SINK" & PIDS+=($!)

SIM=$(free_port)
sandbox "$SIM" "$LATENCY_MS"
taskset -cp 0 "${PIDS[-1]}" >/dev/null
EXTRA='[quotas]
credit_per_second = 100000'
declare -A GPID
start() { # NAME BINARY [VAR=VALUE...]: sets PORT
  local name=$1 bin=$2; shift 2
  PORT=$(free_port)
  gateway_config "$name" "$PORT" "$SIM" "$EXTRA"
  env "$@" taskset -c 1 "$bin" serve --config "$WORK/$name.toml" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!); GPID[$name]=$!
  wait_http "http://127.0.0.1:$PORT/readyz"
}
# cpu_ns PID: CPU time of all the process's threads so far, in ns (the scheduler's own count).
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{s+=$1} END {printf "%d", s}'; }
start base "$BASE_BIN"; BASE_PORT=$PORT
start current "$BIN"; CURRENT_PORT=$PORT
start traced "$BIN" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK" OTEL_BSP_SCHEDULE_DELAY=200
TRACED_PORT=$PORT
via() { # NAME PORT SECONDS
  taskset -c 0 wrk -t1 -c"$CONNS" -d"${3}s" -s "$WORK/credit.lua" \
    "http://127.0.0.1:$2/customers/800000232018/credit" | awk '/^RESULT/ {print $2, $3, $4, $5, $6, $7, $8}'
}
for side in "base $BASE_PORT" "current $CURRENT_PORT" "traced $TRACED_PORT"; do
  set -- $side; via "$1" "$2" 2 >/dev/null   # warm-up
done
# Each round also notes the gateway's CPU time (all threads, the export thread too) and its
# requests: CPU per request is far steadier than a tail latency on shared cores.
# The order rotates every round, so no side always follows another.
SIDES=("base $BASE_PORT" "current $CURRENT_PORT" "traced $TRACED_PORT")
for r in $(seq "$ROUNDS"); do
  for i in 0 1 2; do
    set -- ${SIDES[$(( (i + r) % 3 ))]}
    before=$(cpu_ns "${GPID[$1]}")
    line=$(via "$1" "$2" "$SECS")
    echo "$line" >>"$WORK/$1.txt"
    echo "$(( $(cpu_ns "${GPID[$1]}") - before )) $(echo "$line" | awk '{print $1}')" >>"$WORK/$1.cpu"
  done
done
# cpu_us NAME: the median over the rounds of the gateway's CPU µs per request.
cpu_us() { awk '{printf "%.1f\n", $1 / 1000 / $2}' "$WORK/$1.cpu" | median; }
dropped=$(curl -fsS "http://127.0.0.1:$TRACED_PORT/metrics" | awk '/^gateway_trace_spans_dropped_total/ {print $2}')
failed=$(curl -fsS "http://127.0.0.1:$TRACED_PORT/metrics" | awk '/^gateway_trace_spans_export_failed_total/ {print $2}')
header "Traces: off versus before, and on (bash bench/traces.sh)"
echo "load: wrk -t1 -c$CONNS on core 0, gateways on core 1, $SECS s x $ROUNDS rounds, order rotating; simulator latency $LATENCY_MS ms, quotas lifted; base = $BASE; medians of the rounds"
compare base current "traces off (no OTEL_*)"
compare base traced "traces exported"
echo "gateway CPU per request (median of the rounds): base $(cpu_us base) µs, traces off $(cpu_us current) µs, traces exported $(cpu_us traced) µs"
echo "traced gateway: $dropped spans dropped, $failed lost to failed exports"
