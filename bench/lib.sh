# Shared by the bench scripts: build, tools, a standalone simulator, gateways, wrk runs.
# Source it; every process started here is stopped when the script exits.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/target/release/partner-gateway"
WORK=$(mktemp -d /tmp/pgw-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export TENCENTCLOUD_SECRET_ID="AKIDbench$(date +%s)"
export TENCENTCLOUD_SECRET_KEY="bench-secret-$$-$RANDOM$RANDOM"
KEY="pgw_bench_$$_$RANDOM$RANDOM$RANDOM"
export KEY

build() {
  (cd "$ROOT" && cargo build --release --locked -q && cargo build --release --locked -q --example loadgen)
}
LOADGEN="$ROOT/target/release/examples/loadgen"

# base_binary COMMIT: prints the path of a release gateway built from COMMIT: once per commit, in
# a worktree into the same target directory (dependencies are reused), kept in target/bench-base/
# (copied out before this commit's build replaces it). Run before `build`.
base_binary() {
  local bin
  bin="$ROOT/target/bench-base/$(git -C "$ROOT" rev-parse --short "$1")/partner-gateway"
  if [ ! -x "$bin" ]; then
    git -C "$ROOT" worktree add -q --detach "$WORK/base" "$1" >&2
    (cd "$WORK/base" && CARGO_TARGET_DIR="$ROOT/target" cargo build --release --locked -q) >&2
    mkdir -p "$(dirname "$bin")"
    cp "$ROOT/target/release/partner-gateway" "$bin"
    git -C "$ROOT" worktree remove --force "$WORK/base" >&2
  fi
  echo "$bin"
}

# rss_kb PID: resident set size in KiB.
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# Debian's wrk (and nginx, when asked), installed once.
need() {
  local missing=()
  for pkg in "$@"; do
    command -v "$pkg" >/dev/null || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Debian)" >&2
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
      $sudo apt-get update -q >/dev/null 2>&1
      $sudo apt-get install -y -q "${missing[@]}" >/dev/null
    }
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # URL [seconds]
  local url=$1 limit=${2:-20} start=$SECONDS
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    if (( SECONDS - start > limit )); then echo "no answer from $url" >&2; exit 1; fi
    sleep 0.05
  done
}

# sandbox PORT LATENCY_MS [LIFT=true]: the simulator alone; quotas lifted unless LIFT=false.
sandbox() {
  local port=$1 latency=$2 lift=${3:-true}
  cat > "$WORK/sandbox.toml" <<TOML
[sandbox]
latency_ms = $latency
lift_quotas = $lift
partner_credit = 1000000000.0
[log]
level = "warn"
TOML
  "$BIN" sandbox --config "$WORK/sandbox.toml" --listen "127.0.0.1:$port" >"$WORK/sandbox.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$port/_sandbox/stats"
}

# gateway_config NAME PORT UPSTREAM_PORT [extra TOML] [LOG_LEVEL=warn]: writes $WORK/NAME.toml, a
# gateway in front of the simulator that accepts $KEY.
gateway_config() {
  local name=$1 port=$2 upstream=$3 extra=${4:-} level=${5:-warn}
  local hash
  hash=$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)
  cat > "$WORK/$name.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
[upstream]
endpoint = "http://127.0.0.1:$upstream"
[credit]
require_idempotency_key = false
[log]
level = "$level"
[[auth.api_keys]]
name = "bench"
sha256 = "$hash"
scopes = ["invitations:send", "credit:allocate"]
$extra
TOML
}

# gateway NAME PORT UPSTREAM_PORT [extra TOML] [LOG_LEVEL=warn]: starts that gateway (release) and
# waits until it is ready; its log goes to a file.
gateway() {
  gateway_config "$@"
  "$BIN" serve --config "$WORK/$1.toml" >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$2/readyz"
}

# watch_rss PID WAIT_PID: samples PID's RSS every 0.2 s while WAIT_PID (a background job of this
# shell: call it directly, not in $(...), so the job is reaped) runs; raises PEAK_KB to the peak.
PEAK_KB=0
watch_rss() {
  local pid=$1 waiting=$2 kb
  while kill -0 "$waiting" 2>/dev/null; do
    kb=$(rss_kb "$pid"); (( kb > PEAK_KB )) && PEAK_KB=$kb
    sleep 0.2
  done
  wait "$waiting"
}

# The wrk script: POST an allocation of 0.01 (unkeyed) through the gateway; percentiles in µs.
{
  echo 'wrk.method = "POST"'
  echo "wrk.body = '{\"amount\":0.01}'"
  echo 'wrk.headers["Content-Type"] = "application/json"'
  echo "wrk.headers[\"Authorization\"] = \"Bearer $KEY\""
  cat "$ROOT/bench/result.lua"
} > "$WORK/credit.lua"

# load URL SECONDS CONNECTIONS [lua]: prints "requests non2xx socket_errors duration_us p50 p99 p999".
load() {
  local url=$1 secs=$2 conns=$3 lua=${4:-$WORK/credit.lua}
  wrk -t1 -c"$conns" -d"${secs}s" -s "$lua" "$url" | awk '/^RESULT/ {print $2, $3, $4, $5, $6, $7, $8}'
}

# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# col FILE N: the median over the rounds in FILE (lines printed by load) of column N.
col() { awk -v n="$2" '{print $n}' "$1" | median; }

# compare BASE OTHER WHAT: the table of two sides' rounds ($WORK/BASE.txt, $WORK/OTHER.txt: req/s,
# p50, p99, p99.9 as medians of the rounds, non-2xx in all) and what OTHER adds to BASE.
compare() {
  local base=$1 other=$2 what=$3 b f
  printf '%-16s %8s %9s %9s %10s %8s\n' '' 'req/s' 'p50 ms' 'p99 ms' 'p99.9 ms' non-2xx
  for b in "$base" "$other"; do
    f="$WORK/$b.txt"
    printf '%-16s %8.0f %9.3f %9.3f %10.3f %8d\n' "$b" \
      "$(awk '{print $1/($4/1e6)}' "$f" | median)" \
      "$(echo "$(col "$f" 5)/1000" | bc -l)" "$(echo "$(col "$f" 6)/1000" | bc -l)" \
      "$(echo "$(col "$f" 7)/1000" | bc -l)" "$(awk '{s+=$2+$3} END {print s}' "$f")"
  done
  local d5 d6 d7
  d5=$(echo "($(col "$WORK/$other.txt" 5)-$(col "$WORK/$base.txt" 5))/1000" | bc -l)
  d6=$(echo "($(col "$WORK/$other.txt" 6)-$(col "$WORK/$base.txt" 6))/1000" | bc -l)
  d7=$(echo "($(col "$WORK/$other.txt" 7)-$(col "$WORK/$base.txt" 7))/1000" | bc -l)
  printf 'added by %s: p50 %+.3f ms, p99 %+.3f ms, p99.9 %+.3f ms\n' "$what" "$d5" "$d6" "$d7"
}

machine() {
  echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
}

header() { # TITLE
  echo "# $1"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet || echo '+dirty'); machine: $(machine)"
}
