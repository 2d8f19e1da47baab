#!/usr/bin/env bash
# Quota precision: 10x the default quotas offered, open loop, for 30 s, to one release gateway in
# front of a simulator that counts Tencent's quotas per wall-clock second.
# Usage: bash bench/precision.sh   (SECS=30)
source "$(dirname "$0")/lib.sh"
SECS=${SECS:-30}
build
SIM=$(free_port); GW=$(free_port)
sandbox "$SIM" 0 false
gateway gw "$GW" "$SIM" ""
"$LOADGEN" "http://127.0.0.1:$GW" "$KEY" credit 50 "$SECS" >"$WORK/credit.json" &
c=$!
"$LOADGEN" "http://127.0.0.1:$GW" "$KEY" invite 200 "$SECS" >"$WORK/invite.json" &
i=$!
wait $c $i
curl -fsS "http://127.0.0.1:$SIM/_sandbox/stats" >"$WORK/stats.json"
curl -fsS "http://127.0.0.1:$GW/metrics" >"$WORK/metrics.txt"
header "Quota precision (bash bench/precision.sh)"
echo "load: open loop, 10x the quota of each action for $SECS s at once (credit 50/s, invitations 200/s), default settings (guard 10 ms, max wait 2 s)"
python3 - "$WORK" "$SECS" <<'PY'
import json, sys
work, secs = sys.argv[1], int(sys.argv[2])
stats = json.load(open(f"{work}/stats.json"))
rows = [("AllocateCustomerCredit", 5, "credit"), ("CreateAndSendClientInvitationMail", 20, "invite")]
print(f"{'action':<36}{'N':>4}{'forwarded':>11}{'utilization':>13}{'max/s':>7}{'seconds>N':>11}{'RLE':>6}  admitted wait p50/p90/p99/max ms   answers")
for action, n, name in rows:
    a = stats["actions"][action]
    per = {int(k): v for k, v in a["per_second"].items()}
    first = min(per)
    window = [per.get(s, 0) for s in range(first, first + secs)]
    fwd = sum(window)
    over = sum(1 for c in per.values() if c > n)
    load = json.load(open(f"{work}/{name}.json"))
    w = load["admitted_ms"]
    print(f"{action:<36}{n:>4}{fwd:>11}{fwd / (n * secs) * 100:>12.1f}%{max(per.values()):>7}{over:>11}{a['rate_limited']:>6}  "
          f"{w['p50']:.0f}/{w['p90']:.0f}/{w['p99']:.0f}/{w['max']:.0f}   {load['statuses']}")
PY
