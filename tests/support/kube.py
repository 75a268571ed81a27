"""A private Kubernetes control plane for tests, sealed in a network namespace of its own.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (simulated nodes) all run inside
`ip netns` namespace `odin-k8s-<random>` that has loopback only, so nothing the cluster does can reach any other
address. The test process reaches the apiserver through a pair of forwarders joined by a unix socket (see
tests/k8s_cluster/forward.py): host 127.0.0.1:<free port> -> socket file -> namespace 127.0.0.1:6443.

Binaries come from tools/kube/build.sh (kube-*, kwok; cached outside the repository by version) and Debian's
etcd-server. A missing one fails loudly with the command that provides it.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from support import kube_controllers, kube_node

REPO = Path(__file__).resolve().parents[2]
_VERSIONS = dict(line.split("=", 1) for line in (REPO / "tools" / "kube" / "versions.env").read_text().splitlines()
                 if line and not line.startswith("#"))
KUBE_VERSION = _VERSIONS["KUBE_VERSION"].strip()
KWOK_VERSION = _VERSIONS["KWOK_VERSION"].strip()
MANIFESTS = REPO / "tests" / "k8s_cluster"
BUILD_COMMAND = "tools/kube/build.sh  (or scripts/setup)"
APISERVER_PORT = 6443  # inside the namespace: every port there is private to this cluster
KUBELET_PORT = 10250  # kwok's fake kubelet API (pod logs)
TASK_NAMESPACE = "odin-tasks"
SCHEDULER_USER = "odin-scheduler"
KUBEFLOW_KINDS = {"TFJob": "tfReplicaSpecs", "PyTorchJob": "pytorchReplicaSpecs", "MPIJob": "mpiReplicaSpecs"}


class ClusterError(RuntimeError):
    """The test cluster could not be started; the message says what to do."""


def tools_dir() -> Path:
    """Where tools/kube/build.sh puts the binaries of KUBE_VERSION."""
    root = os.environ.get("ODIN_KUBE_TOOLS") or str(Path.home() / ".cache" / "odin-tools" / "kube")
    return Path(root) / KUBE_VERSION


def find_binaries(real_node: bool = False) -> dict[str, Path]:
    """Every binary the cluster needs, or ClusterError naming the ones missing and how to get them."""
    built = tools_dir()
    found: dict[str, Path] = {}
    missing: list[str] = []
    if real_node:
        node_found, missing = kube_node.node_binaries()
        found.update(node_found)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubelet"):
        path = built / name
        if os.access(path, os.X_OK):
            found[name] = path
        else:
            missing.append(f"{path} (run {BUILD_COMMAND})")
    for name, package in (("etcd", "etcd-server"), ("ip", "iproute2")):
        located = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
        if located:
            found[name] = Path(located)
        else:
            missing.append(f"{name} (apt-get install {package}, or run scripts/setup)")
    if missing:
        raise ClusterError("the Kubernetes test cluster needs binaries that are missing:\n  " + "\n  ".join(missing))
    if os.geteuid() != 0:
        raise ClusterError("the Kubernetes test cluster needs root to create its network namespace (ip netns add)")
    return found


# ---------------------------------------------------------------------------------------------------------------
# Certificates and credentials


def _write_pki(pki: Path) -> None:
    """A throwaway CA, the apiserver's serving cert, kubelet client cert and service-account signing key."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    pki.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (x509.CertificateBuilder().subject_name(name("odin-test-ca")).issuer_name(name("odin-test-ca"))
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(ca_key, hashes.SHA256()))

    def issue(stem: str, cn: str, org: str | None, sans: list[x509.GeneralName], usage: x509.ObjectIdentifier) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(cn, org)).issuer_name(ca_cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=7))
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        (pki / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (pki / f"{stem}.key").write_bytes(key_pem(key))

    (pki / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (pki / "ca.key").write_bytes(key_pem(ca_key))
    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           "kubernetes.default.svc.cluster.local"]
    serving_sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    serving_sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "10.96.0.1")]
    issue("apiserver", "kube-apiserver", None, serving_sans, x509.oid.ExtendedKeyUsageOID.SERVER_AUTH)
    issue("kubelet", "kwok-kubelet", None, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
          x509.oid.ExtendedKeyUsageOID.SERVER_AUTH)
    issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters", [],
          x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH)
    sa_key = ec.generate_private_key(ec.SECP256R1())
    (pki / "sa.key").write_bytes(key_pem(sa_key))
    (pki / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def write_kubeconfig(path: Path, server: str, ca: Path, token: str, user: str, namespace: str = "default") -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "odin-test",
        "clusters": [{"name": "odin-test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "odin-test",
                      "context": {"cluster": "odin-test", "user": user, "namespace": namespace}}],
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Processes inside the namespace


@dataclass
class _Component:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _stop_process(process: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class KubeCluster:
    """A running test cluster. `kubeconfig` (admin) and `scheduler_kubeconfig` (least privilege) reach it from
    the host; `namespace` is where tasks go."""

    workdir: Path
    netns: str
    binaries: dict[str, Path]
    host_port: int = 0
    namespace: str = TASK_NAMESPACE
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    scheduler_token: str = field(default_factory=lambda: secrets.token_hex(16))
    components: dict[str, _Component] = field(default_factory=dict)
    forwarders: list[subprocess.Popen[bytes]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # "kwok": simulated nodes only (scale, status mapping); "real": one kubelet running real containers, no kwok.
    node_kind: str = "kwok"
    node_token: str = field(default_factory=lambda: secrets.token_hex(16))
    real_node: kube_node.RealNode | None = None

    # -- paths ----------------------------------------------------------------------------------------------
    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def ca_path(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def scheduler_kubeconfig(self) -> Path:
        return self.workdir / "scheduler.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.host_port}"

    @property
    def pod_log_line(self) -> str:
        """A line every simulated container prints (kwok serves this file as each container's log)."""
        return "odin-kwok: simulated container output"

    # -- lifecycle ------------------------------------------------------------------------------------------
    def netns_argv(self, argv: list[str]) -> list[str]:
        return [str(self.binaries["ip"]), "netns", "exec", self.netns, *argv]

    @property
    def netns_etc(self) -> Path:
        """Files `ip netns exec` mounts over /etc for this namespace's processes (only `hosts` is written)."""
        return Path("/etc/netns") / self.netns

    def start(self) -> None:
        started = time.monotonic()
        if self.node_kind == "real":
            self.netns_etc.mkdir(parents=True, exist_ok=True)
            (self.netns_etc / "hosts").write_text(kube_controllers.hosts_file())
        subprocess.run([str(self.binaries["ip"]), "netns", "add", self.netns], check=True, capture_output=True)
        subprocess.run([str(self.binaries["ip"]), "-n", self.netns, "link", "set", "lo", "up"], check=True,
                       capture_output=True)
        _write_pki(self.pki)
        self._write_credentials()
        self._start_forwarders()
        self._define_components()
        for name in ("etcd", "kube-apiserver"):
            self.launch(name)
        self.wait_ready()
        self.timings["apiserver_ready_s"] = time.monotonic() - started
        for name in ("kube-controller-manager", "kube-scheduler"):
            self.launch(name)
        self._install_objects()
        if self.node_kind == "real":
            self.real_node = kube_node.RealNode(self, self.binaries)
            self.real_node.start()
            self.real_node.wait_ready()
            self.real_node.start_training_operator()
            self._start_training_stack()
        else:
            self.launch("kwok")
            self._wait_nodes_ready()
        self._wait_default_service_account()
        self.timings["ready_s"] = time.monotonic() - started

    def _start_training_stack(self) -> None:
        """Trainer v2, JobSet and Kueue (tests/support/kube_controllers.py) and the default training runtime."""
        kube_controllers.wait_established(self, [
            "jobsets.jobset.x-k8s.io", "trainjobs.trainer.kubeflow.org",
            "clustertrainingruntimes.trainer.kubeflow.org", "workloads.kueue.x-k8s.io",
            "localqueues.kueue.x-k8s.io", "clusterqueues.kueue.x-k8s.io", "resourceflavors.kueue.x-k8s.io"])
        started = time.monotonic()
        kube_controllers.start_controllers(self, self.workdir / "controllers")
        kube_controllers.wait_ready(self)
        for runtime in kube_controllers.training_runtimes():
            self.apply(runtime)
        self.timings["training_stack_s"] = time.monotonic() - started

    def stop(self) -> None:
        if self.real_node is not None:
            self.real_node.stop()
        for component in reversed(list(self.components.values())):
            _stop_process(component.process)
        for forwarder in self.forwarders:
            _stop_process(forwarder, grace=1.0)
        subprocess.run([str(self.binaries["ip"]), "netns", "delete", self.netns], capture_output=True)
        shutil.rmtree(self.netns_etc, ignore_errors=True)

    def restart_apiserver(self) -> None:
        """Stops and restarts kube-apiserver: every open watch breaks."""
        _stop_process(self.components["kube-apiserver"].process)
        self.launch("kube-apiserver")
        self.wait_ready()

    def compact_etcd(self) -> int:
        """Compacts etcd at its current revision, so watches from any older resourceVersion get 410 Gone."""
        script = (
            "import json, urllib.request\n"
            "def call(path, body):\n"
            "    req = urllib.request.Request('http://127.0.0.1:2379' + path, json.dumps(body).encode())\n"
            "    return json.load(urllib.request.urlopen(req, timeout=10))\n"
            # A write of a key no watch follows first: the compaction revision is then newer than any event a
            # watch can have seen, so every resuming watch gets 410 (without it, a watch whose last event was the
            # newest write could resume exactly at the compaction revision, which etcd still allows).
            "call('/v3/kv/put', {'key': 'L29kaW4tdGVzdC9jb21wYWN0aW9uLW1hcmtlcg==', 'value': 'eA=='})\n"
            "rev = int(call('/v3/kv/range', {'key': 'Lw=='})['header']['revision'])\n"
            "call('/v3/kv/compaction', {'revision': rev, 'physical': True})\n"
            "print(rev)\n"
        )
        out = subprocess.run(self.netns_argv([sys.executable, "-c", script]), check=True, capture_output=True,
                             text=True, timeout=30)
        return int(out.stdout.strip())

    def logs(self) -> str:
        """The tail of every component's log, for failure messages."""
        node = self.real_node.logs() if self.real_node is not None else ""
        return "\n".join(f"--- {c.name} ---\n{c.log_tail()}" for c in self.components.values()) + node

    # -- clients --------------------------------------------------------------------------------------------
    def api_client(self, kubeconfig: Path | None = None) -> Any:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def request(self, method: str, path: str, body: object | None = None, token: str | None = None) -> Any:
        """A raw API call (JSON in, JSON out) with the admin token."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method, headers={
            "Authorization": f"Bearer {token or self.admin_token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=context, timeout=10) as response:
            payload = response.read()
        return json.loads(payload) if payload[:1] in (b"{", b"[") else payload.decode()

    def request_patch(self, path: str, body: object) -> Any:
        """A JSON merge patch (e.g. of a node's status) with the admin token."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        req = urllib.request.Request(self.server + path, data=json.dumps(body).encode(), method="PATCH", headers={
            "Authorization": f"Bearer {self.admin_token}", "Content-Type": "application/merge-patch+json"})
        with urllib.request.urlopen(req, context=context, timeout=10) as response:
            return json.loads(response.read())

    def apply(self, obj: dict[str, Any]) -> Any:
        """Creates one object (any kind) through the REST API; an existing one is left as it is."""
        path = _collection_path(obj, self.namespace)
        try:
            return self.request("POST", path, obj)
        except urllib.error.HTTPError as err:
            if err.code != 409:
                raise ClusterError(f"creating {obj['kind']} {obj['metadata']['name']}: {err.read().decode()}") from err
            return None

    # -- internals ------------------------------------------------------------------------------------------
    def _write_credentials(self) -> None:
        (self.pki / "tokens.csv").write_text(
            f'{self.admin_token},admin,admin-uid,"system:masters"\n'
            f'{self.scheduler_token},{SCHEDULER_USER},{SCHEDULER_USER}-uid,"odin:schedulers"\n'
            # The test node's kubelet: a cluster admin (the Node authorizer is not enabled in this cluster).
            f'{self.node_token},system:node:{kube_node.NODE_NAME},node-uid,"system:nodes,system:masters"\n')
        inside = f"https://127.0.0.1:{APISERVER_PORT}"
        write_kubeconfig(self.workdir / "inside.kubeconfig", inside, self.ca_path, self.admin_token, "admin")

    def _start_forwarders(self) -> None:
        forward = str(MANIFESTS / "forward.py")
        socket_path = str(self.workdir / "apiserver.sock")
        inner = subprocess.Popen(
            self.netns_argv([sys.executable, forward, "unix-to-tcp", socket_path, "127.0.0.1", str(APISERVER_PORT)]),
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
        self.forwarders.append(inner)
        if inner.stdout is None or inner.stdout.readline().strip() != b"ready":
            raise ClusterError("the in-namespace forwarder did not start")
        outer = subprocess.Popen([sys.executable, forward, "tcp-to-unix", "127.0.0.1", "0", socket_path],
                                 stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
        self.forwarders.append(outer)
        port = outer.stdout.readline().strip() if outer.stdout else b""
        if not port.isdigit():
            raise ClusterError("the host forwarder did not start")
        self.host_port = int(port)
        write_kubeconfig(self.kubeconfig, self.server, self.ca_path, self.admin_token, "admin", self.namespace)
        write_kubeconfig(self.scheduler_kubeconfig, self.server, self.ca_path, self.scheduler_token,
                         SCHEDULER_USER, self.namespace)

    def _define_components(self) -> None:
        b, pki, inside = self.binaries, self.pki, str(self.workdir / "inside.kubeconfig")
        etcd_dir = Path(tempfile.mkdtemp(prefix="odin-etcd-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
        self._etcd_dir = etcd_dir
        specs: dict[str, list[str]] = {
            "etcd": [str(b["etcd"]), "--name=default", f"--data-dir={etcd_dir}",
                     "--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
                     "--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                     "--initial-cluster=default=http://127.0.0.1:2380", "--log-level=warn"],
            "kube-apiserver": [
                str(b["kube-apiserver"]), "--etcd-servers=http://127.0.0.1:2379",
                "--bind-address=127.0.0.1", f"--secure-port={APISERVER_PORT}", "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",  # a loopback address may not be an endpoint; nothing needs one
                "--service-cluster-ip-range=10.96.0.0/16",
                f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--token-auth-file={pki / 'tokens.csv'}", "--authorization-mode=RBAC",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                "--kubelet-preferred-address-types=InternalIP",
                # Nodes start with a not-ready taint that only the node lifecycle controller lifts; kwok nodes
                # send no heartbeats, so that controller is off and so is the taint.
                "--disable-admission-plugins=TaintNodesByCondition",
                # Debian's etcd (3.4.23) predates reliable watch progress notifications, so the apiserver cannot
                # serve "watch-list" streams and fails them only once the watch is open; client-go then re-lists
                # after a backoff and kwok stalls for seconds. Turned off, they are refused at once and clients
                # fall back to list + watch immediately.
                "--feature-gates=WatchList=false",
                "--enable-priority-and-fairness=false", "--profiling=false", "--v=1"],
            "kube-controller-manager": [
                str(b["kube-controller-manager"]), f"--kubeconfig={inside}", "--leader-elect=false",
                "--bind-address=127.0.0.1", "--secure-port=10257",
                "--controllers=*,-nodelifecycle,-nodeipam,-bootstrapsigner,-tokencleaner,-csrsigning",
                f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={self.ca_path}",
                "--profiling=false", "--v=1", "--kube-api-qps=500", "--kube-api-burst=1000"],
            "kube-scheduler": [
                str(b["kube-scheduler"]), f"--kubeconfig={inside}", "--leader-elect=false",
                "--bind-address=127.0.0.1", "--secure-port=10259", "--profiling=false", "--v=1",
                "--kube-api-qps=500", "--kube-api-burst=1000"],
            "kwok": [
                str(b["kwok"]), f"--kubeconfig={inside}", f"--config={self._write_kwok_config()}",
                "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-ip=127.0.0.1", "--cidr=192.0.2.0/24", f"--node-port={KUBELET_PORT}",
                f"--server-address=127.0.0.1:{KUBELET_PORT}",
                f"--tls-cert-file={pki / 'kubelet.crt'}", f"--tls-private-key-file={pki / 'kubelet.key'}",
                "--node-lease-duration-seconds=0"],
        }
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        for name, argv in specs.items():
            self.components[name] = _Component(name, argv, logs / f"{name}.log")

    def launch(self, name: str) -> None:
        component = self.components[name]
        with component.log_path.open("ab") as log:
            component.process = subprocess.Popen(self.netns_argv(component.argv), stdout=log, stderr=log,
                                                 stdin=subprocess.DEVNULL, start_new_session=True)

    def _check_alive(self) -> None:
        problem = self.real_node.check_alive() if self.real_node is not None else None
        if problem:
            raise ClusterError(problem)
        for component in self.components.values():
            if component.process is not None and component.process.poll() is not None:
                raise ClusterError(f"{component.name} exited with {component.process.returncode}:\n"
                                   f"{component.log_tail()}")

    def poll(self, check: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                result = check()
            except (urllib.error.URLError, OSError, ClusterError, ValueError):
                result = None
            if result:
                return result
            if time.monotonic() > deadline:
                raise ClusterError(f"{what} not ready after {timeout}s\n{self.logs()}")
            time.sleep(0.1)

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.poll(lambda: self.request("GET", "/readyz") == "ok", timeout, "kube-apiserver")

    def _write_kwok_config(self) -> Path:
        log_file = self.workdir / "container.log"
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        # CRI log format: kwok serves it the way a kubelet serves a container's log.
        log_file.write_text("".join(f"{stamp} stdout F {self.pod_log_line} {i}\n" for i in range(1, 4)))
        documents = list(yaml.safe_load_all((MANIFESTS / "stages.yaml").read_text()))
        documents += [_kubeflow_stage(kind, specs, phase) for kind, specs in KUBEFLOW_KINDS.items()
                      for phase in ("running", "succeeded", "failed")]
        documents.append({
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterLogs", "metadata": {"name": "all"},
            "spec": {"selector": {}, "logs": [{"logsFile": str(log_file), "follow": False}]}})
        path = self.workdir / "kwok.yaml"
        path.write_text(yaml.safe_dump_all(documents))
        return path

    def _install_objects(self) -> None:
        # The real node runs the real training operator, with its own CRDs; kwok needs only the kinds' shapes.
        crds = (kube_node.training_operator_crds() if self.node_kind == "real"
                else list(yaml.safe_load_all((MANIFESTS / "kubeflow-crds.yaml").read_text())))
        for crd in crds:
            if crd:
                self.apply(crd)
        # Trainer v2, JobSet and Kueue kinds exist in both shapes (their controllers run only with the real node), so
        # RBAC on them can be checked and the executor's sweep lists them on kwok too.
        kube_controllers.install_crds(self)
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}})
        for obj in _scheduler_rbac(self.namespace):
            self.apply(obj)
        for node in test_nodes() if self.node_kind == "kwok" else []:
            self.apply(node)
        for crd in ("tfjobs", "pytorchjobs") if self.node_kind == "real" else ("tfjobs", "pytorchjobs", "mpijobs"):
            self.poll(lambda crd=crd: _established(self.request(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}.kubeflow.org")),
                30, f"CRD {crd}")
        # kwok reads the kinds' schemas from the OpenAPI v3 document, which lags a moment behind Established.
        self.poll(lambda: "apis/kubeflow.org/v1" in self.request("GET", "/openapi/v3").get("paths", {}),
                   30, "OpenAPI of kubeflow.org/v1")

    def _wait_nodes_ready(self) -> None:
        names = {node["metadata"]["name"] for node in test_nodes()}

        def ready() -> bool:
            items = self.request("GET", "/api/v1/nodes")["items"]
            ready_names = {n["metadata"]["name"] for n in items
                           if any(c["type"] == "Ready" and c["status"] == "True"
                                  for c in n.get("status", {}).get("conditions", []))}
            return names <= ready_names

        self.poll(ready, 60, "kwok nodes")

    def _wait_default_service_account(self) -> None:
        # Pod admission needs the namespace's `default` service account, which the controller-manager creates.
        self.poll(lambda: self.request("GET", f"/api/v1/namespaces/{self.namespace}/serviceaccounts/default"),
                   60, "default service account")


def _established(crd: dict[str, Any]) -> bool:
    return any(c["type"] == "Established" and c["status"] == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


_CORE_PLURALS = {"Namespace": "namespaces", "Node": "nodes", "ServiceAccount": "serviceaccounts",
                 "Secret": "secrets", "ConfigMap": "configmaps", "PersistentVolumeClaim": "persistentvolumeclaims",
                 "PersistentVolume": "persistentvolumes", "WorkloadPriorityClass": "workloadpriorityclasses",
                 "Pod": "pods", "Role": "roles", "RoleBinding": "rolebindings", "ClusterRole": "clusterroles",
                 "ClusterRoleBinding": "clusterrolebindings", "Job": "jobs",
                 "CustomResourceDefinition": "customresourcedefinitions"}
_CLUSTER_SCOPED = {"Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                   "PersistentVolume", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
                   "ClusterTrainingRuntime", "ClusterQueue", "ResourceFlavor", "WorkloadPriorityClass", "Cohort"}


def _collection_path(obj: dict[str, Any], default_namespace: str) -> str:
    api_version, kind = obj["apiVersion"], obj["kind"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    plural = _CORE_PLURALS.get(kind) or kind.lower() + "s"
    if kind in _CLUSTER_SCOPED:
        return f"{prefix}/{plural}"
    namespace = obj["metadata"].get("namespace", default_namespace)
    return f"{prefix}/namespaces/{namespace}/{plural}"


def hostpath_claim(cluster: KubeCluster, name: str, path: Path) -> None:
    """A ReadWriteMany claim `name` in the task namespace, bound to a hostPath volume at `path` on the node."""
    path.mkdir(parents=True, exist_ok=True)
    volume = f"{cluster.namespace}-{name}"
    cluster.apply({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": volume},
                   "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                            "claimRef": {"namespace": cluster.namespace, "name": name},
                            "hostPath": {"path": str(path), "type": "Directory"}}})
    cluster.apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": name, "namespace": cluster.namespace},
                   "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": volume,
                            "resources": {"requests": {"storage": "10Gi"}}}})
    cluster.poll(lambda: cluster.request(
        "GET", f"/api/v1/namespaces/{cluster.namespace}/persistentvolumeclaims/{name}")["status"].get("phase")
        == "Bound", 30, f"claim {name}")


def test_nodes() -> list[dict[str, Any]]:
    """Simulated nodes: two CPU nodes, one with 2 GPUs, one tainted (only tolerating tasks land there)."""

    def node(name: str, pool: str, capacity: dict[str, str], taints: list[dict[str, str]] | None = None,
             labels: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                    "type": "kwok", "odin.test/pool": pool, **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"capacity": capacity, "allocatable": capacity},
        }

    cpu = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    return [
        node("kwok-cpu-0", "cpu", cpu),
        node("kwok-cpu-1", "cpu", cpu),
        node("kwok-gpu-0", "gpu", {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "2"},
             labels={"nvidia.com/gpu.product": "A100"}),
        node("kwok-special-0", "special", cpu,
             taints=[{"key": "odin.test/dedicated", "value": "special", "effect": "NoSchedule"}]),
    ]


def _scheduler_rbac(namespace: str) -> list[dict[str, Any]]:
    """What Odin's scheduler may do: the Role that deploy/ ships (deploy/base/tasks/rbac.yaml), so the executor
    tests prove that production's rights are enough; here it is bound to the test user instead of the pod's SA."""
    deployed = yaml.safe_load_all((REPO / "deploy" / "base" / "tasks" / "rbac.yaml").read_text())
    rules = next(doc for doc in deployed if doc and doc["kind"] == "Role")["rules"]
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "odin-scheduler", "namespace": namespace}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "odin-scheduler", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "odin-scheduler"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": SCHEDULER_USER}]},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "trainer", "namespace": namespace}},
    ]


def _kubeflow_stage(kind: str, specs_field: str, phase: str) -> dict[str, Any]:
    """kwok moves a Kubeflow job Created+Running -> Succeeded, or Failed when its spec sets KWOK_EXIT_CODE."""
    env_value = "[.spec | .. | objects | select(.name? == \"{name}\") | .value] | first"
    exit_code = env_value.format(name="KWOK_EXIT_CODE")
    replicas = ("{{ range $role, $spec := .spec.SPECS }}\n  {{ $role }}:\n    COUNTER: {{ or $spec.replicas 1 }}\n"
                "{{ end }}\n").replace("SPECS", specs_field)
    live = [{"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}]

    def condition(ctype: str, status: str, reason: str, message: str) -> str:
        return (f"- type: {ctype}\n  status: \"{status}\"\n  reason: {reason}\n  message: \"{message}\"\n"
                "  lastUpdateTime: {{ $now | Quote }}\n  lastTransitionTime: {{ $now | Quote }}\n")

    created = condition("Created", "True", f"{kind}Created", f"{kind} is created.")
    if phase == "running":
        selector = [*live, {"key": ".status.conditions", "operator": "DoesNotExist"}]
        template = ("{{ $now := Now }}\nstartTime: {{ $now | Quote }}\nconditions:\n" + created
                    + condition("Running", "True", f"{kind}Running", f"{kind} is running.")
                    + "replicaStatuses:\n" + replicas.replace("COUNTER", "active"))
        delay: dict[str, Any] = {"durationMilliseconds": 100}
    else:
        failed = phase == "failed"
        selector = [
            *live,
            {"key": '.status.conditions.[] | select( .type == "Running" ) | .status', "operator": "In",
             "values": ["True"]},
            {"key": f"{exit_code} | select(. != null and . != \"0\")",
             "operator": "Exists" if failed else "DoesNotExist"}]
        end = (condition("Failed", "True", f"{kind}Failed", f"{kind} failed: a replica exited non-zero.")
               if failed else condition("Succeeded", "True", f"{kind}Succeeded", f"{kind} completed successfully."))
        template = ("{{ $now := Now }}\nstartTime: {{ .status.startTime | Quote }}\n"
                    "completionTime: {{ $now | Quote }}\nconditions:\n" + created
                    + condition("Running", "False", f"{kind}Running", f"{kind} is running.") + end
                    + "replicaStatuses:\n" + replicas.replace("COUNTER", "failed" if failed else "succeeded"))
        delay = {"durationMilliseconds": 300,
                 "durationFrom": {"expressionFrom": env_value.format(name="KWOK_RUN_DURATION")}}
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": f"{kind.lower()}-{phase}"},
        "spec": {"resourceRef": {"apiGroup": "kubeflow.org/v1", "kind": kind},
                 "selector": {"matchExpressions": selector}, "delay": delay,
                 "next": {"statusTemplate": template}},
    }


@contextmanager
def kube_cluster(workdir: Path | None = None, node_kind: str = "kwok") -> Iterator[KubeCluster]:
    """Starts a test cluster and tears it down (processes and network namespace) on exit."""
    binaries = find_binaries(real_node=node_kind == "real")
    base = workdir or Path(tempfile.mkdtemp(prefix="odin-k8s-"))
    cluster = KubeCluster(workdir=base, netns=f"odin-k8s-{secrets.token_hex(4)}", binaries=binaries,
                          node_kind=node_kind)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(getattr(cluster, "_etcd_dir", base / "none"), ignore_errors=True)


def cluster_fixture(workdir: Path, node_kind: str = "kwok") -> Iterator[KubeCluster]:
    """The body of a session fixture: a test cluster, where a missing binary or a failed start FAILS the tests
    (never skips)."""
    import pytest

    context = kube_cluster(workdir, node_kind)
    try:
        cluster = context.__enter__()
    except ClusterError as err:
        pytest.fail(f"Kubernetes test cluster: {err}", pytrace=False)
    try:
        yield cluster
    finally:
        context.__exit__(None, None, None)
