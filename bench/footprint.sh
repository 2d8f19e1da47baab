#!/usr/bin/env bash
# Footprint: release binary size, time from start to /readyz 200, idle RSS, RSS under load.
# Usage: bash bench/footprint.sh   (STARTS=10)
source "$(dirname "$0")/lib.sh"
STARTS=${STARTS:-10}
build; need wrk
SIM=$(free_port)
sandbox "$SIM" 20
GW=$(free_port)
# The timed starts run the binary themselves (the gateway() helper waits with curl, too coarse).
gateway_config timed "$GW" "$SIM"
python3 - "$BIN" "$WORK/timed.toml" "$GW" "$STARTS" >"$WORK/starts.txt" <<'PY'
import http.client, subprocess, sys, time
binary, config, port, starts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for _ in range(starts):
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "serve", "--config", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        time.sleep(0.0005)
    print(f"{(time.perf_counter() - t0) * 1000:.1f}")
    p.terminate(); p.wait()
PY
gateway gw "$GW" "$SIM" '[quotas]
credit_per_second = 100000'
GWPID=${PIDS[-1]}
sleep 2
idle=$(rss_kb "$GWPID")
load "http://127.0.0.1:$GW/customers/800000232018/credit" 20 16 >/dev/null &
watch_rss "$GWPID" $!
sleep 6   # metrics upkeep runs every 5 s
after=$(rss_kb "$GWPID")
header "Footprint (bash bench/footprint.sh)"
printf '%-44s %s\n' "release binary size" "$(( $(stat -c %s "$BIN") / 1024 / 1024 )) MiB ($(stat -c %s "$BIN") bytes)"
printf '%-44s %s ms (min %s, max %s, %s starts)\n' "start to /readyz 200, median" "$(median <"$WORK/starts.txt")" "$(sort -n "$WORK/starts.txt" | head -1)" "$(sort -n "$WORK/starts.txt" | tail -1)" "$STARTS"
printf '%-44s %.1f MiB\n' "idle RSS (2 s after ready)" "$(echo "$idle/1024" | bc -l)"
printf '%-44s %.1f MiB\n' "peak RSS under load (wrk -c16, 20 s, ~700/s)" "$(echo "$PEAK_KB/1024" | bc -l)"
printf '%-44s %.1f MiB\n' "RSS 6 s after the load" "$(echo "$after/1024" | bc -l)"
