#!/usr/bin/env bash
# Soak: 10 minutes at 10x the default quotas (credit 50/s, invitations 200/s, open loop) through
# one release gateway, loopback only. Passes when the simulator saw no RequestLimitExceeded, the
# gateway's RSS grew less than 5 MiB after the first minute, and every answer was 2xx or 429.
# Usage: bash bench/soak.sh   (SECS=600)
source "$(dirname "$0")/lib.sh"
SECS=${SECS:-600}
build
SIM=$(free_port); GW=$(free_port)
sandbox "$SIM" 0 false
gateway gw "$GW" "$SIM" "" info
GWPID=${PIDS[-1]}
"$LOADGEN" "http://127.0.0.1:$GW" "$KEY" credit 50 "$SECS" >"$WORK/credit.json" &
c=$!
"$LOADGEN" "http://127.0.0.1:$GW" "$KEY" invite 200 "$SECS" >"$WORK/invite.json" &
i=$!
start=$SECONDS
: >"$WORK/rss.txt"
while kill -0 $c 2>/dev/null || kill -0 $i 2>/dev/null; do
  echo "$((SECONDS - start)) $(rss_kb "$GWPID")" >>"$WORK/rss.txt"
  sleep 10
done
wait $c $i || true
echo "$((SECONDS - start)) $(rss_kb "$GWPID")" >>"$WORK/rss.txt"
curl -fsS "http://127.0.0.1:$SIM/_sandbox/stats" >"$WORK/stats.json"
header "Soak (bash bench/soak.sh)"
echo "load: open loop for $SECS s: credit 50/s + invitations 200/s (10x the default quotas), log level info to a file"
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
rss = [tuple(map(int, l.split())) for l in open(f"{work}/rss.txt") if len(l.split()) == 2]
base = next(kb for t, kb in rss if t >= 60)
peak, last = max(kb for _, kb in rss), rss[-1][1]
stats = json.load(open(f"{work}/stats.json"))
rle = sum(a["rate_limited"] for a in stats["actions"].values())
answers = {}
for name in ("credit", "invite"):
    for status, n in json.load(open(f"{work}/{name}.json"))["statuses"].items():
        answers[status] = answers.get(status, 0) + n
bad = {s: n for s, n in answers.items() if s not in ("200", "201", "429")}
growth = (last - base) / 1024
print(f"RSS at 1 min {base/1024:.1f} MiB, peak {peak/1024:.1f} MiB, at the end {last/1024:.1f} MiB: growth {growth:+.2f} MiB (limit 5)")
print(f"upstream RequestLimitExceeded: {rle}; answers: {answers}; other than 2xx/429: {bad or 'none'}")
print(f"RSS samples (s, MiB): {[(t, round(kb/1024, 1)) for t, kb in rss[::6]]}")
ok = growth < 5 and rle == 0 and not bad
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
