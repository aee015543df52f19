"""Structural test of deploy/kubernetes and deploy/container (run by scripts/test-deploy).

Parses every YAML document, then checks that the manifests agree with each other and with the
agent binary: its command line uses only flags the binary knows, PMA_SHARD names the pod and the
replica count, the config in the ConfigMap is accepted by the binary itself (with the Secret's
files in place), its state_dir is the state volume's mount, metrics.listen is the container's
metrics port that the probes (/healthz, /readyz), the Service and the PodMonitor use, every
secret file it names is a key of the Secret mounted where it points, and the container image's
user is the pod's.

Usage: check_manifests.py REPO_ROOT AGENT_BINARY
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

ROOT, BINARY = sys.argv[1], sys.argv[2]
KUBE = os.path.join(ROOT, "deploy", "kubernetes")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def load_all():
    docs = []
    for name in sorted(os.listdir(KUBE)):
        if not name.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(KUBE, name), encoding="utf-8") as f:
            for i, doc in enumerate(yaml.safe_load_all(f)):
                if doc is None:
                    continue
                where = f"{name}#{i}"
                check(isinstance(doc, dict), f"{where}: not a mapping")
                check("apiVersion" in doc and "kind" in doc, f"{where}: apiVersion/kind missing")
                if doc.get("kind") != "Kustomization":
                    check(doc.get("metadata", {}).get("name"), f"{where}: metadata.name missing")
                docs.append((name, doc))
    return docs


docs = load_all()
by_kind = {}
for name, doc in docs:
    by_kind.setdefault(doc["kind"], []).append((name, doc))
for kind in ["StatefulSet", "ConfigMap", "Secret", "Service", "PodMonitor", "Kustomization"]:
    check(len(by_kind.get(kind, [])) == 1, f"expected one {kind}, found {len(by_kind.get(kind, []))}")
if failures:
    sys.exit("manifests: " + "; ".join(failures))

sts = by_kind["StatefulSet"][0][1]
cm = by_kind["ConfigMap"][0][1]
secret = by_kind["Secret"][0][1]
svc = by_kind["Service"][0][1]
pm = by_kind["PodMonitor"][0][1]
kust = by_kind["Kustomization"][0][1]

# Kustomization lists every manifest file.
files = {n for n, d in docs if d["kind"] != "Kustomization"}
check(set(kust.get("resources", [])) == files, f"kustomization resources {kust.get('resources')} != {sorted(files)}")

spec = sts["spec"]
pod = spec["template"]["spec"]
labels = spec["template"]["metadata"]["labels"]
check(spec["selector"]["matchLabels"].items() <= labels.items(), "StatefulSet selector does not match its pods")
check(spec.get("serviceName") == svc["metadata"]["name"], "serviceName is not the Service")
check(svc["spec"].get("clusterIP") == "None", "the Service is not headless")
check(svc["spec"]["selector"].items() <= labels.items(), "Service selector does not match the pods")
check(pm["spec"]["selector"]["matchLabels"].items() <= labels.items(), "PodMonitor selector does not match the pods")
replicas = spec["replicas"]
check(isinstance(replicas, int) and replicas >= 1, "replicas is not a positive number")
containers = pod["containers"]
check(len(containers) == 1, "one container expected")
c = containers[0]

# --- the command line: only flags and commands the binary knows
def help_text(*args):
    out = subprocess.run([BINARY, *args, "--help"], capture_output=True, text=True)
    check(out.returncode == 0, f"{BINARY} {' '.join(args)} --help failed")
    return out.stdout


known = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", help_text() + help_text("run")))
argv = c.get("command", []) + c.get("args", [])
check(argv[:1] == ["run"], f"the container runs {argv[:1]}, not `run` (the image's entrypoint is the binary)")
for a in argv:
    if a.startswith("-"):
        check(a.split("=")[0] in known, f"unknown flag {a} (binary knows {sorted(known)})")
config_path = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else None
if not check(config_path, "no --config FILE in the command line"):
    sys.exit("manifests: " + "; ".join(failures))
# The binary accepts exactly this command line (usage errors exit 2 before anything runs).
usage = subprocess.run([BINARY, *argv, "--help"], capture_output=True, text=True)
check(usage.returncode == 0, f"`{' '.join(argv)} --help` exits {usage.returncode}: {usage.stderr}")

env = {e["name"]: e for e in c.get("env", [])}
check(env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
      "POD_NAME must come from metadata.name (downward API)")
check(env.get("PMA_SHARD", {}).get("value") == f"$(POD_NAME)/{replicas}",
      f"PMA_SHARD must be \"$(POD_NAME)/{replicas}\" (replicas {replicas}), is {env.get('PMA_SHARD')}")
names = list(env)
check("POD_NAME" in names and names.index("POD_NAME") < names.index("PMA_SHARD"),
      "POD_NAME must be defined before PMA_SHARD for $(POD_NAME) to expand")
if "PMA_LOG_FORMAT" in env:
    check(env["PMA_LOG_FORMAT"].get("value") in ("json", "text"), "PMA_LOG_FORMAT is json or text")
# What the binary does with PMA_SHARD as Kubernetes expands it for the last pod.
last = f"{sts['metadata']['name']}-{replicas - 1}"
shard = subprocess.run([BINARY, "status", "--config", "/nonexistent", "--help"],
                       env={**os.environ, "PMA_SHARD": f"{last}/{replicas}"}, capture_output=True)
check(shard.returncode == 0, "status --help with the pod's PMA_SHARD failed")

# --- volumes and mounts
mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
volumes = {v["name"]: v for v in pod.get("volumes", [])}
claims = {t["metadata"]["name"]: t for t in spec.get("volumeClaimTemplates", [])}


def mount_of(path):
    """The mount holding `path` (longest mountPath prefix)."""
    best = None
    for mp, m in mounts.items():
        if path == mp or path.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) > len(best["mountPath"]):
                best = m
    return best


config_mount = mount_of(config_path)
check(config_mount is not None, f"--config {config_path} is on no volume")
cm_volume = volumes.get(config_mount["name"], {}) if config_mount else {}
check(cm_volume.get("configMap", {}).get("name") == cm["metadata"]["name"], "the config mount is not the ConfigMap")
config_key = os.path.relpath(config_path, config_mount["mountPath"]) if config_mount else ""
check(config_key in cm.get("data", {}), f"the ConfigMap has no key {config_key}")
config = json.loads(cm["data"][config_key])

state_dir = config.get("state_dir")
state_mount = mounts.get(state_dir)
check(state_mount is not None, f"state_dir {state_dir} is not a mount point")
if state_mount:
    check(state_mount["name"] in claims, "state_dir is not on the per-pod PersistentVolumeClaim")
    check("ReadWriteOnce" in claims.get(state_mount["name"], {}).get("spec", {}).get("accessModes", []),
          "the state claim should be ReadWriteOnce (one pod each)")
    check(not state_mount.get("readOnly"), "state_dir is mounted read-only")

# Secret files: every *_file of the config is a key of the Secret, mounted where it points.
secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
secret_files = []


def walk(value, path):
    if isinstance(value, dict):
        for k, v in value.items():
            if k.endswith("_file") and isinstance(v, str) and k != "ca_file":
                secret_files.append((f"{path}.{k}".lstrip("."), v))
            walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            walk(v, f"{path}[{i}]")


walk(config, "")
check(secret_files, "the config names no secret file")
for key_path, file in secret_files:
    m = mount_of(file)
    ok = check(m is not None, f"{key_path}: {file} is on no volume")
    if ok:
        vol = volumes.get(m["name"], {})
        check(vol.get("secret", {}).get("secretName") == secret["metadata"]["name"],
              f"{key_path}: {file} is not on the Secret's volume")
        check(os.path.relpath(file, m["mountPath"]) in secret_keys, f"{key_path}: the Secret has no key for {file}")

# The binary accepts the config: secret files created where the pod would have them.
with tempfile.TemporaryDirectory() as tmp:
    def relocate(p):
        return os.path.join(tmp, p.lstrip("/"))

    def rewrite(value):
        if isinstance(value, dict):
            return {k: (relocate(v) if (k.endswith("_file") or k in ("state_dir", "dir")) and isinstance(v, str) else rewrite(v))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        return value

    for _, file in secret_files:
        os.makedirs(os.path.dirname(relocate(file)), exist_ok=True)
        with open(relocate(file), "w") as f:
            f.write("placeholder\n")
        os.chmod(relocate(file), 0o600)
    path = os.path.join(tmp, "config.json")
    with open(path, "w") as f:
        json.dump(rewrite(config), f)
    os.chmod(path, 0o600)
    status = subprocess.run([BINARY, "status", "--config", path], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "PMA_SHARD"})
    # 0/1: healthy or not (nothing runs here); 3 would be a configuration error.
    check(status.returncode in (0, 1), f"the binary refuses the ConfigMap's config: {status.stderr.strip()}")
    check(status.stdout.count("no status yet") == len(config["mailboxes"]),
          f"status did not list every mailbox: {status.stdout}")

# --- metrics port, probes, Service, PodMonitor
listen = config.get("metrics", {}).get("listen")
check(listen, "metrics.listen is not set: no probes or metrics without it")
host, _, port = (listen or ":").rpartition(":")
check(host not in ("127.0.0.1", "[::1]", "localhost", ""), f"metrics.listen {listen} is loopback: kubelet and Prometheus cannot reach it")
ports = {p.get("name"): p for p in c.get("ports", [])}
check(ports.get("metrics", {}).get("containerPort") == int(port or 0), f"container port 'metrics' is not metrics.listen's {port}")
for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
    get = c.get(probe, {}).get("httpGet", {})
    check(get.get("path") == path, f"{probe} path is {get.get('path')}, expected {path}")
    check(get.get("port") in ("metrics", int(port or 0)), f"{probe} port is {get.get('port')}")
svc_port = svc["spec"]["ports"][0]
check(svc_port.get("targetPort") in ("metrics", int(port or 0)), "the Service does not target the metrics port")
endpoint = pm["spec"]["podMetricsEndpoints"][0]
check(endpoint.get("port") == "metrics" and endpoint.get("path") == "/metrics", "the PodMonitor does not scrape metrics:/metrics")

# --- resources and security
res = c.get("resources", {})
check(res.get("requests", {}).get("memory") and res.get("limits", {}).get("memory"), "memory request and limit are needed")
sc = pod.get("securityContext", {})
check(sc.get("runAsNonRoot") is True, "runAsNonRoot")
check(c.get("securityContext", {}).get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
check(sc.get("fsGroup") == sc.get("runAsGroup"), "fsGroup lets the agent write its volume and read the Secret")

# --- the image (deploy/container/Dockerfile) matches
with open(os.path.join(ROOT, "deploy", "container", "Dockerfile"), encoding="utf-8") as f:
    dockerfile = f.read()
user = re.search(r"^USER\s+(\d+):(\d+)", dockerfile, re.M)
check(user and int(user.group(1)) == sc.get("runAsUser") and int(user.group(2)) == sc.get("runAsGroup"),
      "the image's USER is not the pod's runAsUser:runAsGroup")
entry = re.search(r"^ENTRYPOINT\s+(\[.*\])", dockerfile, re.M)
check(entry and json.loads(entry.group(1)) == ["/usr/bin/psa-mail-agent"], "ENTRYPOINT is not /usr/bin/psa-mail-agent (the .deb's)")
tag = c["image"].rsplit(":", 1)[-1]
with open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8") as f:
    version = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
check(tag == version, f"image tag {tag} is not the crate version {version}")

if failures:
    print("manifests: FAILED", file=sys.stderr)
    for f in failures:
        print("  - " + f, file=sys.stderr)
    sys.exit(1)
print(f"manifests: {len(docs)} documents parsed; StatefulSet of {replicas} shards, command line, "
      f"config, Secret files, ports, probes and mounts agree with each other and with {os.path.basename(BINARY)}")
