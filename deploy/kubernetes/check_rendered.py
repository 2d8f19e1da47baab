"""Static checks of a rendered kustomization (`kubectl kustomize DIR`) that schemas cannot make:
selectors select the gateway's pods and nothing else of theirs was rewritten, the NetworkPolicy's
peers are DNS and Redis, the probes use the serving port, the termination grace covers preStop +
shutdown delay + shutdown grace, and the pod meets the Restricted Pod Security profile.

Usage: check_rendered.py RENDERED.yaml
"""

import sys
import tomllib

import yaml


def fail(message):
    sys.exit(f"FAIL: {sys.argv[1]}: {message}")


def subset(selector, labels, what):
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        fail(f"{what} {selector} does not select the gateway's pods {labels}")


def main():
    docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    deployment = by_kind["Deployment"][0]
    template = deployment["spec"]["template"]
    labels = template["metadata"]["labels"]
    subset(deployment["spec"]["selector"]["matchLabels"], labels, "the Deployment's selector")
    for service in by_kind.get("Service", []):
        subset(service["spec"]["selector"], labels, "the Service's selector")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        subset(pdb["spec"]["selector"]["matchLabels"], labels, "the PodDisruptionBudget's selector")

    for policy in by_kind.get("NetworkPolicy", []):
        spec = policy["spec"]
        subset(spec["podSelector"]["matchLabels"], labels, "the NetworkPolicy's podSelector")
        ingress_ports = [p["port"] for rule in spec["ingress"] for p in rule["ports"]]
        if ingress_ports != [8080]:
            fail(f"ingress allows ports {ingress_ports}, not only 8080")
        peers = {}
        for rule in spec["egress"]:
            ports = tuple(sorted({p["port"] for p in rule["ports"]}))
            peers[ports] = [t.get("podSelector", {}).get("matchLabels") for t in rule.get("to", [])]
        expected = {(53,): [{"k8s-app": "kube-dns"}], (6379,): [{"app.kubernetes.io/name": "redis"}], (443,): []}
        # With traces (components/opentelemetry): the collector's OTLP/HTTP port, to its pods only.
        if any(e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT" for e in template["spec"]["containers"][0].get("env", [])):
            expected[(4318,)] = [{"app.kubernetes.io/name": "opentelemetry-collector"}]
        if peers != expected:
            fail(f"egress peers {peers}, expected {expected}")

    pod = template["spec"]
    container = pod["containers"][0]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        port = container[kind]["httpGet"]["port"]
        if port_names.get(port, port) != 8080:
            fail(f"{kind} probes port {port}")
    if container["readinessProbe"]["httpGet"]["path"] != "/readyz":
        fail("the readiness probe is not /readyz")
    if container["livenessProbe"]["httpGet"]["path"] != "/livez":
        fail("the liveness probe is not /livez")

    # Termination: preStop sleep + shutdown delay + shutdown grace, below the grace period.
    config_name = next(v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v)
    config = next(c for c in by_kind["ConfigMap"] if c["metadata"]["name"] == config_name)
    server = tomllib.loads(config["data"]["gateway.toml"]).get("server", {})
    delay_s = server.get("shutdown_delay_ms", 5000) / 1000
    grace_s = server.get("shutdown_grace_ms", 20000) / 1000
    pre_stop_s = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    period = pod["terminationGracePeriodSeconds"]
    if not period > pre_stop_s + delay_s + grace_s:
        fail(f"terminationGracePeriodSeconds {period} <= preStop {pre_stop_s} + delay {delay_s} + grace {grace_s}")

    # The Restricted profile.
    pod_sc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
    if not (pod_sc.get("runAsNonRoot") or sc.get("runAsNonRoot")):
        fail("runAsNonRoot is not set")
    if sc.get("allowPrivilegeEscalation") is not False:
        fail("allowPrivilegeEscalation is not false")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        fail("capabilities are not all dropped")
    seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        fail(f"seccompProfile is {seccomp}")
    if sc.get("readOnlyRootFilesystem") is not True:
        fail("the root filesystem is writable")
    if any(k in v for v in pod["volumes"] for k in ("hostPath",)):
        fail("a hostPath volume")
    print(
        f"  selectors, network policy peers, probes on 8080, grace {period} s > "
        f"{pre_stop_s:g} + {delay_s:g} + {grace_s:g} s, Restricted securityContext"
    )


if __name__ == "__main__":
    main()
