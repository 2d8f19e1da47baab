"""Runs the sandbox overlay's pod with `podman kube play`, then probes it as the kubelet would.

Usage: kube_play.py RENDERED.yaml (the output of `kubectl kustomize overlays/sandbox`).

What podman 4.3 (Debian bookworm) cannot do as Kubernetes does is done here, and only that:
- Secrets: it reads a `secretKeyRef` from a podman secret holding the Secret's `data` as JSON, and
  the Secrets in the YAML it stores otherwise, so they are created here in its format.
- Probes: it turns only the livenessProbe into a health check, as a `curl` command inside the
  container (the image has neither curl nor a shell), so the startup, readiness and liveness
  probes are run here as the kubelet runs them: an HTTP GET of the probe's path and port.
- Ports: it would publish the container port on every host address; it is published on a free
  loopback port instead (the kubelet probes the pod's own address, which this stands for).
Everything else of the pod (image, args, env from the Secrets, the ConfigMap mounted, the
security context) is the manifest's own. Prints what it checked; exits non-zero on a failure.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml


def podman(*args, check=True, stdin=None):
    done = subprocess.run(
        ["podman", *args], input=stdin, capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        sys.exit(f"FAIL: podman {' '.join(args)}: {done.stderr.strip()}")
    return done


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, headers=None, body=None, timeout=5):
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return None, str(error)


def main():
    docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p for p in container["ports"]}
    host_port = free_port()
    for port in container["ports"]:
        port["hostIP"], port["hostPort"] = "127.0.0.1", host_port

    secrets = [d for d in docs if d["kind"] == "Secret"]
    for secret in secrets:
        name = secret["metadata"]["name"]
        podman("secret", "rm", name, check=False)
        podman("secret", "create", name, "-", stdin=json.dumps(secret["data"]))
    play = [d for d in docs if d["kind"] in ("Deployment", "ConfigMap")]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(play, f)
        play_file = f.name

    def port_of(probe):
        port = probe["httpGet"]["port"]
        return ports[port]["containerPort"] if isinstance(port, str) else port

    base = f"http://127.0.0.1:{host_port}"
    container_name = f"{deployment['metadata']['name']}-pod-0-{container['name']}"
    try:
        started = time.monotonic()
        podman("kube", "play", play_file)
        print(f"pod of deployment/{deployment['metadata']['name']} started from {container['image']}")

        # The security context as the runtime applied it.
        inspect = json.loads(podman("inspect", container_name).stdout)[0]
        host = inspect["HostConfig"]
        user = inspect["Config"]["User"]
        assert user.split(":")[0] == "65532", f"runs as {user}"
        assert host["ReadonlyRootfs"], "the root filesystem is writable"
        assert "no-new-privileges" in host["SecurityOpt"], host["SecurityOpt"]
        assert not inspect["EffectiveCaps"], f"capabilities kept: {inspect['EffectiveCaps']}"
        print(f"user {user}, read-only root filesystem, no new privileges, no capabilities")

        # startupProbe, then readinessProbe, as the kubelet runs them.
        for kind in ("startupProbe", "readinessProbe"):
            probe = container[kind]
            assert port_of(probe) == 8080, f"{kind} probes port {port_of(probe)}"
            budget = probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3)
            deadline = started + max(budget, 30)
            while True:
                status, body = get(base + probe["httpGet"]["path"], timeout=probe.get("timeoutSeconds", 1))
                if status == 200:
                    break
                running = podman("inspect", "--format", "{{.State.Running}}", container_name).stdout.strip()
                if running != "true" or time.monotonic() > deadline:
                    print(podman("logs", container_name, check=False).stderr, file=sys.stderr)
                    sys.exit(f"FAIL: {kind} GET {probe['httpGet']['path']} never passed: {status} {body}")
                time.sleep(0.2)
            print(f"{kind} GET {probe['httpGet']['path']} passed after {time.monotonic() - started:.1f} s: {body}")
        status, _ = get(base + container["livenessProbe"]["httpGet"]["path"])
        assert status == 200, f"livenessProbe answered {status}"
        print("livenessProbe passed")

        # It serves: both routes, with the development key the sandbox printed.
        logs = podman("logs", container_name).stderr + podman("logs", container_name).stdout
        key = re.search(r"export KEY=(\S+)", logs)
        assert key, "no development key in the pod's log"
        auth = {"Authorization": f"Bearer {key.group(1)}", "content-type": "application/json"}
        status, body = get(base + "/customers/invitations", auth, b'{"email":"kube.play@example.com"}')
        assert status == 201, f"invitation: {status} {body}"
        status, body = get(
            base + "/customers/800000232018/credit",
            {**auth, "Idempotency-Key": "kube-play-1"},
            b'{"amount":5,"remark":"kube play"}',
        )
        assert status == 200, f"allocation: {status} {body}"
        print("serves: invitation 201, allocation 200")
    finally:
        podman("kube", "down", play_file, check=False)
        for secret in secrets:
            podman("secret", "rm", secret["metadata"]["name"], check=False)
        os.unlink(play_file)


if __name__ == "__main__":
    main()
