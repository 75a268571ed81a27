"""The real controllers of the current training stack on the test cluster: Kubeflow Trainer v2, JobSet and Kueue.

Each runs inside the cluster's network namespace (`ip netns exec`, which also gives it a mount namespace of its own)
from the binaries and upstream CRDs/manifests `tools/kube/build.sh` puts in the tools cache. What a Deployment would
give them, done here:

- **Webhooks.** Upstream registers each webhook by Service, which the apiserver reaches through cluster DNS; the test
  cluster has none. The upstream webhook configurations (and Kueue's CRD conversion webhooks) are applied with every
  `clientConfig` rewritten to `url: https://<service>.<namespace>.svc:<port><path>`, and that name resolves to
  127.0.0.1 for the apiserver through `/etc/netns/<netns>/hosts`, which `ip netns exec` mounts over `/etc/hosts`
  (`hosts_file()`): the certificates the controllers' rotators make for their Service name are then valid as they
  are. Webhooks of integrations that are not enabled are left out (their servers would not answer).
- **Certificates.** A ten-year CA and a serving certificate for `<service>.<namespace>.svc` and 127.0.0.1 are put in
  the Secret a controller's cert rotator reads (Trainer; a rotator renews anything closer than 90 days to expiry) and
  in a tmpfs mounted at controller-runtime's fixed `/tmp/k8s-webhook-server/serving-certs` inside the controller's own
  mount namespace (the empty directory of that name on the host is only the mount point). JobSet runs with its
  internal certificate management off; Trainer and Kueue keep their rotators, which find the certificates valid.
- **Readiness.** A controller is ready when an object its webhook must admit is accepted (a server-side dry run).
"""

from __future__ import annotations

import base64
import copy
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from support.kube import KubeCluster

CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"  # controller-runtime's default, fixed in these binaries
KUEUE_FRAMEWORKS = ("batch/job", "jobset.x-k8s.io/jobset", "trainer.kubeflow.org/trainjob", "pod")
# Kueue webhooks (by resource) that serve the frameworks above and Kueue's own kinds.
KUEUE_RESOURCES = {"jobs", "jobsets", "trainjobs", "pods", "workloads", "clusterqueues", "localqueues",
                   "resourceflavors", "cohorts", "workloadpriorityclasses", "admissionchecks", "topologies"}


@dataclass(frozen=True)
class Controller:
    name: str  # trainer | jobset | kueue (the tools cache directory and binary)
    namespace: str
    service: str  # the upstream webhook Service name (the certificate's DNS name)
    webhook_port: int
    args: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)  # written to a file passed as --config
    secret: str = ""  # the Secret its cert rotator reads (empty: no rotator)
    ca_name: str = ""  # the rotator's CAName (its CA must be valid for that DNS name)
    webhook_names: dict[str, str] = field(default_factory=dict)  # upstream configuration name -> name to create
    keep_resources: frozenset[str] = frozenset()  # empty: every webhook
    # CRDs whose versions it converts (upstream's webhook_in_*.yaml patches); its rotator injects its CA into them.
    conversion_crds: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        """The webhook Service's DNS name, which the apiserver resolves to 127.0.0.1 (see hosts_file)."""
        return f"{self.service}.{self.namespace}.svc"


def hosts_file() -> str:
    """/etc/hosts for the cluster's network namespace: each controller's Service name is this loopback."""
    names = " ".join(c.host for c in controllers())
    return f"127.0.0.1 localhost {names}\n::1 localhost\n"


def controllers() -> list[Controller]:
    return [
        Controller(
            "jobset", "jobset-system", "jobset-webhook-service", 19444,
            config={"apiVersion": "config.jobset.x-k8s.io/v1alpha1", "kind": "Configuration",
                    "leaderElection": {"leaderElect": False}, "webhook": {"port": 19444},
                    "health": {"healthProbeBindAddress": "127.0.0.1:18092"},
                    "metrics": {"bindAddress": "127.0.0.1:18093"}, "internalCertManagement": {"enable": False}},
            webhook_names={"mutating-webhook-configuration": "jobset-mutating-webhook-configuration",
                           "validating-webhook-configuration": "jobset-validating-webhook-configuration"}),
        Controller(
            "trainer", "kubeflow-system", "kubeflow-trainer-controller-manager", 19446,
            config={"apiVersion": "config.trainer.kubeflow.org/v1alpha1", "kind": "Configuration",
                    "health": {"healthProbeBindAddress": "127.0.0.1:18094"}, "metrics": {"bindAddress": "0"},
                    "webhook": {"port": 19446}, "leaderElection": {"leaderElect": False},
                    "certManagement": {"enable": True, "webhookServiceName": "kubeflow-trainer-controller-manager",
                                       "webhookSecretName": "kubeflow-trainer-webhook-cert"},
                    "statusServer": {"port": 19447}},
            secret="kubeflow-trainer-webhook-cert", ca_name="kubeflow-trainer-ca",
            webhook_names={"validating-webhook-configuration": "validator.trainer.kubeflow.org",
                           "mutating-webhook-configuration": "defaulter.trainer.kubeflow.org"}),
        Controller(
            "kueue", "kueue-system", "kueue-webhook-service", 19445,
            config={"apiVersion": "config.kueue.x-k8s.io/v1beta2", "kind": "Configuration",
                    "namespace": "kueue-system", "leaderElection": {"leaderElect": False},
                    "health": {"healthProbeBindAddress": "127.0.0.1:18095"}, "metrics": {"bindAddress": "0"},
                    # Its rotator on (the Secret is made here): with it off, Kueue insists on metrics certificates
                    # at a fixed /etc/kueue/metrics/certs.
                    "webhook": {"port": 19445}, "internalCertManagement": {"enable": True},
                    # Its visibility API server needs in-cluster credentials; nothing here uses it.
                    "featureGates": {"VisibilityOnDemand": False},
                    "manageJobsWithoutQueueName": False,
                    "integrations": {"frameworks": list(KUEUE_FRAMEWORKS)}},
            secret="kueue-webhook-server-cert", ca_name="kueue-ca",
            webhook_names={"mutating-webhook-configuration": "kueue-mutating-webhook-configuration",
                           "validating-webhook-configuration": "kueue-validating-webhook-configuration"},
            keep_resources=frozenset(KUEUE_RESOURCES),
            # Upstream's crd/kustomization.yaml enables exactly these (not resourceflavors: no conversion there).
            conversion_crds=tuple(f"{kind}.kueue.x-k8s.io" for kind in (
                "clusterqueues", "cohorts", "localqueues", "multikueueclusters", "workloads"))),
    ]


def controller_dir(name: str) -> Path:
    from support.kube import _VERSIONS, tools_dir

    return tools_dir() / f"{name}-{_VERSIONS[f'{name.upper()}_VERSION'].strip()}"


def missing_binaries() -> list[str]:
    return [f"{controller_dir(c.name) / c.name} (run tools/kube/build.sh, or scripts/setup)" for c in controllers()
            if not (controller_dir(c.name) / c.name).is_file()]


def install_crds(cluster: KubeCluster) -> None:
    for controller in controllers():
        for path in sorted((controller_dir(controller.name) / "crds").glob("*.yaml")):
            for crd in yaml.safe_load_all(path.read_text()):
                if crd and crd.get("kind") == "CustomResourceDefinition":
                    cluster.apply(crd)


def start_controllers(cluster: KubeCluster, workdir: Path) -> None:
    from support.kube_node import write_webhook_certs

    Path(CERT_DIR).mkdir(parents=True, exist_ok=True)  # the mount point; stays empty on the host
    for controller in controllers():
        certs = workdir / f"{controller.name}-certs"
        write_webhook_certs(certs, controller.host, ca_dns=controller.ca_name)
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": controller.namespace}})
        if controller.secret:
            cluster.apply({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                           "metadata": {"name": controller.secret, "namespace": controller.namespace},
                           "data": {n: base64.b64encode((certs / n).read_bytes()).decode()
                                    for n in ("ca.crt", "ca.key", "tls.crt", "tls.key")}})
        ca = (certs / "ca.crt").read_bytes()
        for configuration in _webhook_configurations(controller, ca):
            cluster.apply(configuration)
        for crd in controller.conversion_crds:
            conversion = {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": {
                "url": f"https://{controller.host}:{controller.webhook_port}/convert",
                "caBundle": base64.b64encode(ca).decode()}}}
            cluster.request_patch(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}",
                                  {"spec": {"conversion": conversion}})
        _launch(cluster, controller, certs, workdir)


def wait_ready(cluster: KubeCluster, timeout: float = 90.0) -> None:
    """Each webhook answers: a dry-run create of an object it must admit is accepted."""
    probes = {
        "jobset": ("/apis/jobset.x-k8s.io/v1alpha2/namespaces/default/jobsets", _PROBE_JOBSET),
        "kueue": ("/apis/kueue.x-k8s.io/v1beta2/resourceflavors", _PROBE_FLAVOR),
        "trainer": ("/apis/trainer.kubeflow.org/v1alpha1/namespaces/default/trainjobs", _PROBE_TRAINJOB),
    }
    for name, (path, body) in probes.items():
        def accepted(path: str = path, body: dict[str, Any] = body) -> bool:
            try:
                cluster.request("POST", f"{path}?dryRun=All", body)
            except urllib.error.HTTPError as err:
                # A rejection by the webhook itself (e.g. the runtime does not exist) proves it answers.
                return err.code in (400, 403, 422) and b"denied the request" in err.read()
            return True

        cluster.poll(accepted, timeout, f"{name} controller webhook")


def _launch(cluster: KubeCluster, controller: Controller, certs: Path, workdir: Path) -> None:
    from support.kube import _Component

    binary = controller_dir(controller.name) / controller.name
    args = list(controller.args)
    if controller.config:
        config = workdir / f"{controller.name}-config.yaml"
        config.write_text(yaml.safe_dump(controller.config))
        args.append(f"--config={config}")
    script = (f"mount -t tmpfs odin-{controller.name}-certs {CERT_DIR} && "
              f"cp {certs}/tls.crt {certs}/tls.key {CERT_DIR}/ && "
              f"KUBECONFIG={cluster.workdir / 'inside.kubeconfig'} exec {binary} {' '.join(args)}")
    name = f"{controller.name}-controller"
    cluster.components[name] = _Component(name, ["sh", "-c", script], cluster.workdir / "logs" / f"{name}.log")
    cluster.launch(name)


def _webhook_configurations(controller: Controller, ca: bytes) -> list[dict[str, Any]]:
    manifests = controller_dir(controller.name) / "manifests" / "webhooks.yaml"
    found = []
    for document in yaml.safe_load_all(manifests.read_text()):
        if not document or not document.get("kind", "").endswith("WebhookConfiguration"):
            continue
        configuration = copy.deepcopy(document)
        name = configuration["metadata"]["name"]
        configuration["metadata"] = {"name": controller.webhook_names.get(name, f"{controller.name}-{name}")}
        webhooks = []
        for webhook in configuration.get("webhooks") or []:
            resources = {r for rule in webhook.get("rules") or [] for r in rule.get("resources") or []}
            if controller.keep_resources and not resources & controller.keep_resources:
                continue
            path = (webhook.get("clientConfig", {}).get("service") or {}).get("path", "/")
            webhook["clientConfig"] = {"url": f"https://{controller.host}:{controller.webhook_port}{path}",
                                       "caBundle": base64.b64encode(ca).decode()}
            webhook["timeoutSeconds"] = 10
            webhooks.append(webhook)
        configuration["webhooks"] = webhooks
        found.append(configuration)
    return found


_PROBE_JOBSET: dict[str, Any] = {
    "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "metadata": {"name": "probe"},
    "spec": {"replicatedJobs": [{"name": "r", "replicas": 1, "template": {"spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "odin.local/python:3"}]}}}}}]}}
_PROBE_FLAVOR: dict[str, Any] = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
                                 "metadata": {"name": "probe"}}
_PROBE_TRAINJOB: dict[str, Any] = {
    "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "probe"},
    "spec": {"runtimeRef": {"name": "no-such-runtime-probe"}}}


def training_runtimes() -> list[dict[str, Any]]:
    """Trainer's upstream `torch-distributed` ClusterTrainingRuntime (Odin's default runtime)."""
    path = controller_dir("trainer") / "manifests" / "torch_distributed.yaml"
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def wait_established(cluster: KubeCluster, names: list[str], timeout: float = 30.0) -> None:
    from support.kube import _established

    deadline = time.monotonic() + timeout
    for name in names:
        cluster.poll(lambda name=name: _established(cluster.request(
            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")),
            max(1.0, deadline - time.monotonic()), f"CRD {name}")
