"""A real node for the test cluster: containerd + runc (Debian) and a kubelet built from the control plane's module.

Everything runs inside the cluster's network namespace, which has loopback, a veth pair whose one end carries the
node's address (10.255.0.1, reachable only inside the namespace) and a default route into it, where anything not
meant for the namespace is dropped (the other end has no address and nothing forwards). Pods get their own network
namespaces from the Debian CNI plugins (bridge `odin0` + host-local IPAM on 10.88.0.0/16), bridged only to the
cluster's namespace.

Why these settings (found on this machine, a VM with cgroup v1 in hybrid mode):
- The node processes enter the namespace with `nsenter --net` and stay in the host's mount namespace:
  `ip netns exec` would remount /sys and hide /sys/fs/cgroup from runc and the kubelet.
- kubelet 1.35 refuses cgroup v1 unless `failCgroupV1: false`; the cgroup driver is `cgroupfs` (no systemd).
- Pods live under a cgroup root of this cluster's own (`/odin-<netns>`), so tearing the node down kills exactly
  its containers; the kubelet's QoS cgroups are made below it.
- The kubelet may not use a loopback address as its node IP, hence the veth pair (no `dummy` module here).
- Images come from tools/images/build.sh (no registry is reachable) and are imported with `ctr`; the sandbox image
  is odin.local/pause:1. Task pods use odin.local/python:3 with `imagePullPolicy: IfNotPresent` or `Never`.
- This machine's root may not lower oom_score_adj (runc: "failed to update /proc/self/oom_score_adj: Permission
  denied", seen as "can't get final child's PID from pipe: EOF"), so containerd clamps the kubelet's negative scores
  (`restrict_oom_score_adj = true`).
- Eviction thresholds are set near zero and image GC off: the test machine's disk is shared and sometimes full.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from support.kube import KubeCluster

NODE_NAME = "odin-node-0"
NODE_IP = "10.255.0.1"
POD_SUBNET = "10.88.0.0/16"
KUBELET_PORT = 10250
PAUSE_IMAGE = "odin.local/pause:1"
PYTHON_IMAGE = "odin.local/python:3"
# Names pipelines use for a Python image, served from the local one (IfNotPresent finds them; nothing is pulled):
# examples/hello runs unchanged on the node. The local image is Debian's python3 (3.11), not the named tag.
IMAGE_ALIASES = ("docker.io/library/python:3.12-slim",)
IMAGES_COMMAND = "tools/images/build.sh  (or scripts/setup)"
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
OPERATOR_NAMESPACE = "kubeflow"
OPERATOR_SERVICE = "training-operator"
WEBHOOK_CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"  # fixed in the operator (controller-runtime's default)
# Advertised on the node so GPU-requesting pods schedule; there is no GPU (simulated hardware, named as such).
SIMULATED_GPUS = "4"


def training_operator_dir() -> Path:
    from support.kube import _VERSIONS, tools_dir

    return tools_dir() / f"training-operator-{_VERSIONS['TRAINING_OPERATOR_VERSION'].strip()}"


def training_operator_crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted((training_operator_dir() / "crds").glob("*.yaml"))]


def images_dir() -> Path:
    return Path(os.environ.get("ODIN_IMAGES_CACHE") or Path.home() / ".cache" / "odin-tools" / "images")


def node_binaries() -> tuple[dict[str, Path], list[str]]:
    """The node's binaries, and a line per missing one saying how to get it."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name, package in (("containerd", "containerd"), ("runc", "runc"), ("ctr", "containerd"),
                          ("nsenter", "util-linux")):
        located = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
        if located:
            found[name] = Path(located)
        else:
            missing.append(f"{name} (apt-get install {package}, or run scripts/setup)")
    cni = next((Path(d) for d in CNI_BIN_DIRS if (Path(d) / "bridge").exists()), None)
    if cni is None:
        missing.append("CNI plugins (apt-get install containernetworking-plugins, or run scripts/setup)")
    else:
        found["cni"] = cni
    from support.kube_controllers import missing_binaries

    missing += missing_binaries()
    if not (training_operator_dir() / "training-operator").is_file():
        missing.append(f"{training_operator_dir()}/training-operator (run tools/kube/build.sh, or scripts/setup)")
    for image in ("pause.tar", "python.tar"):
        if not (images_dir() / image).is_file():
            missing.append(f"{images_dir() / image} (run {IMAGES_COMMAND})")
    return found, missing


@dataclass
class RealNode:
    cluster: KubeCluster
    binaries: dict[str, Path]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    # -- paths ----------------------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.cluster.workdir / "node"

    @property
    def socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def cgroup_root(self) -> str:
        return f"/{self.cluster.netns}"

    @property
    def hostpath_root(self) -> Path:
        """Where hostPath volumes of the tests live (the node's 'disk')."""
        return self.root / "volumes"

    def log_path(self, name: str) -> Path:
        return self.cluster.workdir / "logs" / f"{name}.log"

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        started = time.monotonic()
        self._network()
        self._cgroups()
        self._start_containerd()
        self._import_images()
        self.timings["containerd_ready_s"] = time.monotonic() - started
        self._start_kubelet()

    def wait_ready(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            node = self.cluster.request("GET", f"/api/v1/nodes/{NODE_NAME}")
            return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))

        self.cluster.poll(ready, timeout, f"real node {NODE_NAME}")
        # Extended resources are advertised by patching the node's status (no device plugin: no GPU here).
        self.cluster.request_patch(f"/api/v1/nodes/{NODE_NAME}/status",
                                   {"status": {"capacity": {"nvidia.com/gpu": SIMULATED_GPUS}}})

    def start_training_operator(self) -> None:
        """The Kubeflow training operator (TFJob, PyTorchJob and elastic PyTorchJob controllers) in the namespace.

        Its webhook certificates normally arrive through a mounted Secret: here a CA and serving certificate of
        ten years (the operator's cert rotator renews anything closer to expiry than 90 days, which would never
        match what it reads from disk) go into the Secret and into a tmpfs mounted, in the operator's own mount
        namespace (`ip netns exec` makes one), at the fixed path it reads. The apiserver cannot reach the webhook
        (no cluster DNS in the test cluster), so the webhook registration is kept with `failurePolicy: Ignore`:
        validation is skipped, the controllers are real.
        """
        cluster = self.cluster
        certs = self.root / "training-operator-certs"
        write_webhook_certs(certs, f"{OPERATOR_SERVICE}.{OPERATOR_NAMESPACE}.svc")
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}})
        cluster.apply({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                       "metadata": {"name": "training-operator-webhook-cert", "namespace": OPERATOR_NAMESPACE},
                       "data": {name: base64.b64encode((certs / name).read_bytes()).decode()
                                for name in ("ca.crt", "ca.key", "tls.crt", "tls.key")}})
        cluster.apply({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                       "metadata": {"name": "validator.training-operator.kubeflow.org"},
                       "webhooks": [_webhook(kind) for kind in ("pytorchjob", "tfjob")]})
        Path(WEBHOOK_CERT_DIR).mkdir(parents=True, exist_ok=True)  # the mount point (stays empty on the host)
        operator = training_operator_dir() / "training-operator"
        script = (f"mount -t tmpfs odin-webhook-certs {WEBHOOK_CERT_DIR} && cp {certs}/tls.crt {certs}/tls.key "
                  f"{WEBHOOK_CERT_DIR}/ && exec {operator} --kubeconfig={cluster.workdir / 'inside.kubeconfig'} "
                  "--enable-scheme=pytorchjob --enable-scheme=tfjob --metrics-bind-address=127.0.0.1:18080 "
                  "--health-probe-bind-address=127.0.0.1:18081 --webhook-server-port=19443 --zap-devel=false")
        from support.kube import _Component

        component = _Component("training-operator", ["sh", "-c", script], self.log_path("training-operator"))
        cluster.components["training-operator"] = component
        cluster.launch("training-operator")

    def stop(self) -> None:
        """Kills every container of the node, then the node's processes; unmounts what they mounted."""
        self._kill_cgroup_tree()
        for name in ("kubelet", "containerd"):
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._kill_shims()
        self._kill_cgroup_tree()
        self._unmount_all()
        self._remove_cgroups()

    def check_alive(self) -> str | None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                return f"{name} exited with {process.returncode}:\n{_tail(self.log_path(name))}"
        return None

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{_tail(self.log_path(name))}" for name in self.processes)

    # -- set-up ---------------------------------------------------------------------------------------------
    def _ip(self, *args: str) -> None:
        subprocess.run([str(self.cluster.binaries["ip"]), "-n", self.cluster.netns, *args], check=True,
                       capture_output=True)

    def _network(self) -> None:
        # No dummy-device module on this kernel: a veth pair with both ends in the namespace does the same
        # (what is routed out of odin-node arrives at odin-sink, which has no address and forwards nothing).
        self._ip("link", "add", "odin-node", "type", "veth", "peer", "name", "odin-sink")
        self._ip("addr", "add", f"{NODE_IP}/32", "dev", "odin-node")
        self._ip("link", "set", "odin-node", "up")
        self._ip("link", "set", "odin-sink", "up")
        self._ip("route", "add", "default", "dev", "odin-node")
        cni = self.root / "cni"
        cni.mkdir(parents=True, exist_ok=True)
        (cni / "10-odin.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": "odin-test",
            "plugins": [{"type": "bridge", "bridge": "odin0", "isGateway": True, "ipMasq": False,
                         "hairpinMode": True,
                         "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]],
                                  "routes": [{"dst": "0.0.0.0/0"}],
                                  "dataDir": str(self.root / "cni-ipam")}}],
        }, indent=2))

    def _controllers(self) -> list[Path]:
        base = Path("/sys/fs/cgroup")
        return [p for p in sorted(base.iterdir()) if p.is_dir() and not p.is_symlink() and p.name != "unified"]

    def _cgroups(self) -> None:
        for controller in self._controllers():
            own = controller / self.cluster.netns
            own.mkdir(exist_ok=True)
            if controller.name == "cpuset":
                for key in ("cpuset.cpus", "cpuset.mems"):
                    (own / key).write_text((controller / key).read_text())

    def _nsenter(self, argv: list[str]) -> list[str]:
        return [str(self.binaries["nsenter"]), f"--net=/var/run/netns/{self.cluster.netns}", *argv]

    def _launch(self, name: str, argv: list[str]) -> None:
        with self.log_path(name).open("ab") as log:
            self.processes[name] = subprocess.Popen(self._nsenter(argv), stdout=log, stderr=log,
                                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def _start_containerd(self) -> None:
        base = self.root / "containerd"
        base.mkdir(parents=True, exist_ok=True)
        config = base / "config.toml"
        config.write_text(f"""version = 2
root = "{base / 'root'}"
state = "{base / 'state'}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  enable_selinux = false
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{self.binaries['runc']}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{self.binaries['cni']}"
    conf_dir = "{self.root / 'cni'}"
    max_conf_num = 1
""")
        self._launch("containerd", [str(self.binaries["containerd"]), "--config", str(config)])
        self.cluster.poll(lambda: self._ctr("version").returncode == 0, 30, "containerd")

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([str(self.binaries["ctr"]), "--address", str(self.socket), "--namespace", "k8s.io",
                               *args], capture_output=True, timeout=300)

    def _import_images(self) -> None:
        for image in ("pause.tar", "python.tar"):
            result = self._ctr("images", "import", "--no-unpack", str(images_dir() / image))
            if result.returncode != 0:
                from support.kube import ClusterError

                raise ClusterError(f"ctr images import {image}: {result.stderr.decode(errors='replace')}")
        for alias in IMAGE_ALIASES:
            self._ctr("images", "tag", "--force", PYTHON_IMAGE, alias)

    def _start_kubelet(self) -> None:
        cluster, base = self.cluster, self.root / "kubelet"
        base.mkdir(parents=True, exist_ok=True)
        self.hostpath_root.mkdir(parents=True, exist_ok=True)
        (self.root / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        kubeconfig = base / "kubelet.kubeconfig"
        from support.kube import APISERVER_PORT, write_kubeconfig

        write_kubeconfig(kubeconfig, f"https://127.0.0.1:{APISERVER_PORT}", cluster.ca_path, cluster.node_token,
                         f"system:node:{NODE_NAME}")
        config: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "failCgroupV1": False, "cgroupDriver": "cgroupfs", "cgroupRoot": self.cgroup_root,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": NODE_IP, "port": KUBELET_PORT, "readOnlyPort": 0, "healthzBindAddress": "127.0.0.1",
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                               "x509": {"clientCAFile": str(cluster.ca_path)}},
            "authorization": {"mode": "AlwaysAllow"},
            "podLogsDir": str(self.root / "pod-logs"),
            "failSwapOn": False, "resolvConf": str(self.root / "resolv.conf"),
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%",
                             "imagefs.available": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False, "protectKernelDefaults": False,
            "volumePluginDir": str(self.root / "volume-plugins"),
            "nodeStatusUpdateFrequency": "2s", "syncFrequency": "5s",
            "localStorageCapacityIsolation": False,
        }
        config_path = base / "config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        self._launch("kubelet", [
            str(cluster.binaries["kubelet"]), f"--config={config_path}", f"--kubeconfig={kubeconfig}",
            f"--root-dir={base / 'root'}", f"--cert-dir={base / 'pki'}", f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}", "--node-labels=odin.test/pool=real", "--v=1"])

    # -- tear-down ------------------------------------------------------------------------------------------
    def _own_cgroups(self) -> list[Path]:
        return [c / self.cluster.netns for c in self._controllers() if (c / self.cluster.netns).is_dir()]

    def _kill_cgroup_tree(self) -> None:
        for _ in range(50):
            pids = {int(line) for own in self._own_cgroups() for procs in own.rglob("cgroup.procs")
                    for line in _read_lines(procs)}
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def _kill_shims(self) -> None:
        marker = str(self.socket).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmdline and marker in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)

    def _unmount_all(self) -> None:
        root = str(self.root)
        for _ in range(5):
            mounts = [line.split()[4] for line in _read_lines(Path("/proc/self/mountinfo"))]
            ours = sorted((m for m in mounts if m == root or m.startswith(root + "/")), key=len, reverse=True)
            if not ours:
                return
            for mount in ours:
                subprocess.run(["umount", "-l", mount], capture_output=True)

    def _remove_cgroups(self) -> None:
        for own in self._own_cgroups():
            for directory in sorted((p for p in own.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                                    reverse=True):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            with contextlib.suppress(OSError):
                own.rmdir()


def _webhook(kind: str) -> dict[str, Any]:
    return {"name": f"validator.{kind}.training-operator.kubeflow.org", "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": OPERATOR_SERVICE, "namespace": OPERATOR_NAMESPACE,
                                         "path": f"/validate-kubeflow-org-v1-{kind}", "port": 443}},
            "failurePolicy": "Ignore", "timeoutSeconds": 2, "sideEffects": "None",
            "rules": [{"apiGroups": ["kubeflow.org"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                       "resources": [f"{kind}s"]}]}


def write_webhook_certs(directory: Path, dns_name: str, ip: str | None = None, ca_dns: str = "") -> None:
    """A ten-year CA (ca.crt, ca.key) and a serving certificate (tls.crt, tls.key) for `dns_name` (and `ip`).

    cert-controller (the rotator in these operators) takes a CA as valid only if it is a valid certificate for the
    DNS name `ca_dns` (its CAName), so the CA carries that name as a SAN."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ten_years = now + datetime.timedelta(days=3650)
    ca_key, key = rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "odin-test-webhook-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(ten_years).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.SubjectAlternativeName([x509.DNSName(ca_dns or "odin-test-webhook-ca")]),
                         critical=False)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(ten_years)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(dns_name)] + ([x509.IPAddress(ipaddress.ip_address(ip))] if ip else [])), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))

    def pem_key(k: rsa.RSAPrivateKey) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                               serialization.NoEncryption())

    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "ca.key").write_bytes(pem_key(ca_key))
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "tls.key").write_bytes(pem_key(key))


def _read_lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
