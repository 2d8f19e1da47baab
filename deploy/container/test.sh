#!/usr/bin/env bash
# The container test: builds the project's Dockerfile as it is, runs the image in sandbox mode
# with a read-only root filesystem, calls both routes through it, runs its HEALTHCHECK, checks
# the user it runs as, then sends SIGTERM while a call is in flight and checks the drain:
# /readyz 503 at once, the call finishes, exit 0 within shutdown delay + grace.
# Prints the build time and the image size. Needs root and Debian's apt (installs podman and
# mmdebstrap when missing) and reaches Debian's mirrors and crates.io; no image registry.
#   bash deploy/container/test.sh              # builds IMAGE (localhost/partner-gateway:ci)
#   bash deploy/container/test.sh --no-build   # tests IMAGE as it is
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export CONTAINERS_CONF="$here/containers.conf" CONTAINERS_STORAGE_CONF="$here/storage.conf"
image="${IMAGE:-localhost/partner-gateway:ci}"
name="pgw-test-$$"

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "-- $*"; }

tools=(podman buildah runc fuse-overlayfs slirp4netns mmdebstrap curl)
missing=()
for t in "${tools[@]}"; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get install -y -q "${missing[@]}" >/dev/null ||
    { $sudo apt-get update -q && $sudo apt-get install -y -q "${missing[@]}" >/dev/null; }
fi

build=true
[ "${1:-}" = "--no-build" ] && build=false
tmp="$(mktemp -d)"
cleanup() { podman rm -f -t 0 "$name" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT

if $build; then
  step "base images (made locally from Debian's packages, tagged with the Dockerfile's FROM names)"
  bash "$here/base-images.sh"
  step "podman build (the Dockerfile as it is)"
  started=$SECONDS
  # crates.io is reached through this machine's TLS proxy: the build trusts the machine's CAs.
  # The build's own output (cargo's) is shown only when it fails.
  podman build --format docker \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    -f "$repo/Dockerfile" -t "$image" "$repo" >"$tmp/build.log" 2>&1 ||
    { tail -40 "$tmp/build.log" >&2; fail "podman build failed"; }
  built="built in $((SECONDS - started)) s"
else
  built="not rebuilt (--no-build)"
fi
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image $image: $(awk -v s="$size" 'BEGIN{printf "%.1f MB", s/1e6}'), $built"

step "run: serve --sandbox, read-only root filesystem, published on a random loopback port"
# The simulator answers after 3 s, so a call is surely in flight when SIGTERM comes; the drain's
# numbers are small enough for a test and keep the defaults' order (delay < grace).
delay_ms=2000 grace_ms=15000 latency_ms=3000
podman run -d --name "$name" --read-only --read-only-tmpfs=false -p 127.0.0.1::8080 \
  -e GATEWAY__SANDBOX__LATENCY_MS=$latency_ms \
  -e GATEWAY__SERVER__SHUTDOWN_DELAY_MS=$delay_ms \
  -e GATEWAY__SERVER__SHUTDOWN_GRACE_MS=$grace_ms \
  "$image" serve --sandbox 2>&1 >/dev/null |
  # Periodic health checks need systemd, which does not run here: the test runs them itself.
  { grep -v 'systemd connection to .* healthchecks' >&2 || true; }
port=$(podman port "$name" 8080 | head -1 | sed 's/.*://')
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$base/readyz" 2>/dev/null && break
  [ "$(podman inspect --format '{{.State.Running}}' "$name")" = true ] ||
    { podman logs "$name" >&2; fail "the container stopped"; }
  sleep 0.1
done
curl -fsS -o /dev/null "$base/readyz" || { podman logs "$name" >&2; fail "/readyz never answered 200"; }
key=$(podman logs "$name" 2>&1 | sed -n 's/^ *export KEY=//p' | head -1)
[ -n "$key" ] || { podman logs "$name" >&2; fail "no development key in the sandbox banner"; }

step "who it runs as, and how its root filesystem is mounted"
pid=$(podman inspect --format '{{.State.Pid}}' "$name")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$uid" = 65532 ] || fail "the gateway runs as uid $uid, not 65532 (nonroot)"
root_opts=$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | tail -1)
case "$root_opts" in ro,* | ro) ;; *) fail "the root filesystem is mounted $root_opts, not read-only" ;; esac
echo "uid $uid, root filesystem $root_opts"

step "both routes through the container"
invite=$(curl -sS -o "$tmp/invite" -w '%{http_code}' -X POST "$base/customers/invitations" \
  -H "Authorization: Bearer $key" -H 'content-type: application/json' \
  -d '{"email":"container.test@example.com"}')
[ "$invite" = 201 ] || fail "POST /customers/invitations answered $invite: $(cat "$tmp/invite")"
grep -q '"invitationLink"' "$tmp/invite" || fail "no invitationLink: $(cat "$tmp/invite")"
credit=$(curl -sS -o "$tmp/credit" -w '%{http_code}' -X POST "$base/customers/800000232018/credit" \
  -H "Authorization: Bearer $key" -H 'Idempotency-Key: container-test-1' \
  -H 'content-type: application/json' -d '{"amount":10.5,"remark":"container test"}')
[ "$credit" = 200 ] || fail "POST /customers/{uin}/credit answered $credit: $(cat "$tmp/credit")"
grep -q '"remainingCredit"' "$tmp/credit" || fail "no remainingCredit: $(cat "$tmp/credit")"
echo "invitation 201, allocation 200"

step "the image's HEALTHCHECK"
case "$(podman image inspect --format '{{.Config.Healthcheck}}' "$image")" in
  "" | "<nil>") fail "the image has no HEALTHCHECK" ;;
esac
podman healthcheck run "$name" || fail "podman healthcheck run: unhealthy"
echo "healthy"

step "SIGTERM with a call in flight: readiness 503 at once, the call finishes, exit 0 in time"
body_file="$tmp/in-flight"
curl -sS -o "$body_file" -w '%{http_code}' -X POST "$base/customers/800000232018/credit" \
  -H "Authorization: Bearer $key" -H 'Idempotency-Key: container-test-drain' \
  -H 'content-type: application/json' -d '{"amount":1,"remark":"in flight at SIGTERM"}' \
  >"$body_file.status" &
inflight=$!
# In flight means the gateway counts it: poll its own gauge rather than guess with a sleep.
for _ in $(seq 1 200); do
  active=$({ curl -fsS "$base/metrics" || true; } | awk '$1 == "http_server_active_requests" {print $2}')
  [ "${active:-0}" -ge 2 ] 2>/dev/null && break # the call, and this scrape
  sleep 0.01
done
[ "${active:-0}" -ge 2 ] || fail "the call never showed as in flight"
signalled=$(date +%s%N)
podman kill --signal TERM "$name" >/dev/null
# The signal is handled asynchronously: allow it a moment, far less than the 2 s delay.
for _ in $(seq 1 50); do
  ready=$(curl -sS -o /dev/null -w '%{http_code}' "$base/readyz" || true)
  [ "$ready" = 503 ] && break
  sleep 0.01
done
ready_ms=$((($(date +%s%N) - signalled) / 1000000))
[ "$ready" = 503 ] || fail "/readyz answered $ready ${ready_ms} ms after SIGTERM, not 503"
wait "$inflight" || fail "the in-flight call's curl failed"
status=$(cat "$body_file.status")
[ "$status" = 200 ] || fail "the in-flight call answered $status: $(cat "$body_file")"
exit_code=$(podman wait "$name")
elapsed_ms=$((($(date +%s%N) - signalled) / 1000000))
[ "$exit_code" = 0 ] || { podman logs "$name" >&2; fail "exit code $exit_code after SIGTERM"; }
[ "$elapsed_ms" -lt $((delay_ms + grace_ms)) ] ||
  fail "stopping took $elapsed_ms ms, beyond delay + grace ($((delay_ms + grace_ms)) ms)"
echo "readyz 503 after ${ready_ms} ms, in-flight call 200, exit 0 after $elapsed_ms ms (delay $delay_ms + grace $grace_ms)"

echo "container test passed: $image, $(awk -v s="$size" 'BEGIN{printf "%.1f MB", s/1e6}'), $built"
