#!/usr/bin/env bash
# Quota precision on a real wire: 10x the default quotas offered, open loop, for SECS seconds, to
# one release gateway that talks HTTPS to the simulator through the wire-conditions proxy (new
# connections 0-300 ms, idle connections dropped after 0.4 s, per-request jitter 0-J ms), for
# J = 0, 10, 50. Each J runs twice, one after the other, on a fresh simulator: the learned guard
# (defaults) and a fixed 10 ms guard (guard_min_ms = guard_max_ms = 10, departure slack 5 ms).
# The gateway runs on core 1, load generator and proxy on core 0.
# Usage: bash bench/precision.sh   (SECS=20)
source "$(dirname "$0")/lib.sh"
SECS=${SECS:-20}
build
(cd "$ROOT" && cargo build --release --locked -q --example wireproxy)
WIREPROXY="$ROOT/target/release/examples/wireproxy"
FIX="$ROOT/tests/fixtures/wire"
header "Quota precision on a wire (bash bench/precision.sh)"
echo "load: open loop, 10x the quota of each action for $SECS s (credit 50/s, invitations 200/s); path: new connections 0-300 ms, idle drop 0.4 s, jitter 0-J ms"
echo
printf '%-6s %-8s %-36s %4s %9s %12s %12s %9s %10s %6s %8s\n' J guard action N admitted utilization "limit 1/(1+J)" "s>N" "max in 1s" RLE "guard ms"
for J in 0 10 50; do
  for MODE in learned fixed; do
    SIM=$(free_port); GW=$(free_port); PX=$(free_port)
    sandbox "$SIM" 0 false
    taskset -c 0 "$WIREPROXY" "$SIM" "$PX" 300 "$J" 400 "$FIX/cert.pem" "$FIX/key.pem" &
    PIDS+=($!)
    if [ "$MODE" = fixed ]; then
      GUARD=$'guard_min_ms = 10\nguard_max_ms = 10\ndeparture_slack_ms = 5'
    else
      GUARD=""
    fi
    gateway_config "gw-$J-$MODE" "$GW" "$SIM"
    # Point the gateway at the proxy over HTTPS, trusting the test CA; pool idle below 0.4 s.
    sed -i "s|^endpoint = .*|endpoint = \"https://127.0.0.1:$PX\"\nca_file = \"$FIX/ca.pem\"\npool_idle_timeout_ms = 370|" "$WORK/gw-$J-$MODE.toml"
    printf '[quotas]\n%s\n' "$GUARD" >> "$WORK/gw-$J-$MODE.toml"
    taskset -c 1 "$BIN" serve --config "$WORK/gw-$J-$MODE.toml" >"$WORK/gw-$J-$MODE.log" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$GW/readyz"
    taskset -c 0 "$LOADGEN" "http://127.0.0.1:$GW" "$KEY" credit 50 "$SECS" >/dev/null &
    c=$!
    taskset -c 0 "$LOADGEN" "http://127.0.0.1:$GW" "$KEY" invite 200 "$SECS" >/dev/null &
    i=$!
    wait $c $i
    curl -fsS "http://127.0.0.1:$SIM/_sandbox/stats" >"$WORK/stats.json"
    curl -fsS "http://127.0.0.1:$GW/metrics" >"$WORK/metrics.txt"
    python3 - "$WORK" "$J" "$MODE" <<'PY'
import json, re, sys
work, j, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
stats = json.load(open(f"{work}/stats.json"))
metrics = open(f"{work}/metrics.txt").read()
for action, n in [("AllocateCustomerCredit", 5), ("CreateAndSendClientInvitationMail", 20)]:
    a = stats["actions"].get(action, {})
    adm = a.get("admitted_ms", [])
    # Warm utilization, as in tests/api/wire.rs (utilization): arrivals grouped into bursts (a gap
    # over 300 ms starts one); the calls of the bursts starting 2 s after the first arrival, but
    # the last, over the time from the first of them to the last, over N.
    bursts = []
    for t in adm:
        if bursts and t <= bursts[-1][1] + 300:
            bursts[-1][1] = t
            bursts[-1][2] += 1
        else:
            bursts.append([t, t, 1])
    warm = [b for b in bursts if adm and b[0] >= adm[0] + 2000]
    span = (warm[-1][0] - warm[0][0]) / 1000 if len(warm) > 1 else 0
    util = sum(b[2] for b in warm[:-1]) / span / n if span else 0
    over = sum(1 for c in a.get("per_second", {}).values() if c > n)
    # The most arrivals in any window of one second, wherever it starts: what a second boundary
    # falling at the worst moment would have counted (Tencent's boundaries are fixed; ours drift).
    worst, lo = 0, 0
    for hi in range(len(adm)):
        while adm[hi] - adm[lo] >= 1000:
            lo += 1
        worst = max(worst, hi - lo + 1)
    m = re.search(r'gateway_quota_guard_seconds\{tencent_action="%s"\} (\S+)' % action, metrics)
    guard = float(m.group(1)) * 1000 if m else float("nan")
    print(f"{j:<6} {mode:<8} {action:<36} {n:>4} {len(adm):>9} {util*100:>11.1f}% {100/(1+j/1000):>11.1f}% {over:>9} {worst:>10} {a.get('rate_limited', 0):>6} {guard:>8.0f}")
PY
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
  done
done
