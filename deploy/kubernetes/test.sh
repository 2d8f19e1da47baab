#!/usr/bin/env bash
# Checks the Kubernetes manifests: every kustomization renders (`kubectl kustomize`), validates
# strictly against the API schemas of Kubernetes 1.37 and 1.30 (the oldest with the native
# preStop sleep) with kubernetes-validate, passes the static checks of check_rendered.py
# (selectors, network policy peers, probes, termination grace, Restricted profile), and the sandbox overlay's pod runs with
# `podman kube play` from the locally built image: it starts, passes its startup, readiness and
# liveness probes, and serves both routes (kube_play.py).
#   IMAGE=localhost/partner-gateway:ci bash deploy/kubernetes/test.sh   (after deploy/container/test.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export CONTAINERS_CONF="$repo/deploy/container/containers.conf"
export CONTAINERS_STORAGE_CONF="$repo/deploy/container/storage.conf"
image="${IMAGE:-localhost/partner-gateway:ci}"
command -v kubectl >/dev/null || { echo "FAIL: kubectl (for kubectl kustomize) is not installed" >&2; exit 1; }
bash "$repo/tests/venv.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The production overlay with the optional ServiceMonitor component, as a user enables it.
mkdir -p "$work/with-servicemonitor"
# Kustomize takes only relative paths.
relative="$(realpath --relative-to="$work/with-servicemonitor" "$here")"
cat >"$work/with-servicemonitor/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$relative/overlays/production]
components: [$relative/components/servicemonitor]
YAML

# The base with TKE workload identity instead of a key, as a user on TKE composes it.
mkdir -p "$work/with-tke-workload-identity"
cat >"$work/with-tke-workload-identity/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$relative/base]
components: [$relative/components/tke-workload-identity]
YAML

# The production overlay exporting traces to a collector in the cluster.
mkdir -p "$work/with-opentelemetry"
cat >"$work/with-opentelemetry/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$relative/overlays/production]
components: [$relative/components/opentelemetry]
YAML

for dir in base overlays/production overlays/sandbox with-servicemonitor with-tke-workload-identity with-opentelemetry; do
  out="$work/$(echo "$dir" | tr / -).yaml"
  source_dir="$here/$dir"; [ -d "$source_dir" ] || source_dir="$work/$dir"
  kubectl kustomize "$source_dir" >"$out"
  for version in 1.37.0 1.30.0; do
    # A CRD (the ServiceMonitor) has no schema here: it is warned about, not failed.
    report=$("$repo/.venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$out" 2>&1) ||
      { echo "$report" >&2; echo "FAIL: $dir does not validate against Kubernetes $version" >&2; exit 1; }
    [ -z "$report" ] || echo "$report" | sed "s|$work/||"
  done
  echo "$dir: renders, validates against Kubernetes 1.37 and 1.30 ($(grep -c '^kind:' "$out") objects)"
  "$repo/.venv/bin/python" "$here/check_rendered.py" "$out"
done
grep -q '^kind: ServiceMonitor' "$work/with-servicemonitor.yaml" || { echo "FAIL: no ServiceMonitor rendered" >&2; exit 1; }
# Production reads the key from the Secret's files (rotated without a restart), never from env.
grep -q 'TENCENTCLOUD_SECRET_KEY_FILE' "$work/overlays-production.yaml" &&
  grep -q 'secretName: partner-gateway-tencent' "$work/overlays-production.yaml" &&
  ! grep -q 'name: TENCENTCLOUD_SECRET_KEY$' "$work/overlays-production.yaml" ||
  { echo "FAIL: the production overlay does not mount the Tencent Secret as files" >&2; exit 1; }
# Workload identity: no key at all, the tke_oidc source named.
grep -q 'value: tke_oidc' "$work/with-tke-workload-identity.yaml" &&
  ! grep -q 'TENCENTCLOUD_SECRET' "$work/with-tke-workload-identity.yaml" ||
  { echo "FAIL: the TKE workload-identity component still passes a key" >&2; exit 1; }

# Traces: the endpoint set, and the collector's OTLP/HTTP port open in the egress policy.
grep -q 'name: OTEL_EXPORTER_OTLP_ENDPOINT' "$work/with-opentelemetry.yaml" &&
  grep -q 'port: 4318' "$work/with-opentelemetry.yaml" &&
  ! grep -q 'OTEL_' "$work/overlays-production.yaml" ||
  { echo "FAIL: the OpenTelemetry component does not set the endpoint and open port 4318" >&2; exit 1; }

podman image exists "$image" || { echo "FAIL: $image is not built (run deploy/container/test.sh)" >&2; exit 1; }
# The overlay names localhost/partner-gateway:ci; another IMAGE is tagged so.
[ "$image" = localhost/partner-gateway:ci ] || podman tag "$image" localhost/partner-gateway:ci
"$repo/.venv/bin/python" "$here/kube_play.py" "$work/overlays-sandbox.yaml" 2>&1 |
  grep -v 'systemd connection to .* healthchecks'
exit "${PIPESTATUS[0]}"
