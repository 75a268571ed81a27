"""Odin's Kubernetes executor on a real node: `odin-scheduler` (as the least-privilege `odin-scheduler` identity)
runs tasks as real containers (containerd + runc, started by a kubelet) and reads back their outputs, logs and ends.

The runs volume is the claim `odin-runs` (a hostPath volume on the node); every scheduler here uses its directory
as its run_path and keeps its own bookkeeping (state_path) elsewhere, as a deployment does.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import grpc
import pytest
from odin_scheduler.executor.kubernetes import names
from support.clients import channel
from support.kube import KubeCluster
from support.processes import ServiceProcess
from support.rpc_errors import rpc_failure
from support.scheduler import Stub, tasks_of
from support.scheduler import scheduler_env as sqlite_scheduler_env
from support.scheduler import wait_job as wait_job_for
from support.waiting import assert_eventually

from odin.client.local_pipeline import pack_pipeline
from odin.scheduler.v1 import scheduler_pb2 as pb

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "tests" / "data" / "odin-samples"
IMAGE = "odin.local/python:3"


@pytest.fixture
def scheduler_env(real_cluster: KubeCluster, runs_dir: Path, tmp_path: Path) -> dict[str, str]:
    return sqlite_scheduler_env(
        tmp_path, heartbeat_seconds="0.5", executor="kubernetes", kubeconfig=str(real_cluster.scheduler_kubeconfig),
        kube_namespace=real_cluster.namespace, kube_runs_claim="odin-runs", run_path=str(runs_dir),
        state_path=str(tmp_path / "state"), kube_cleanup="always")


@pytest.fixture
def start_scheduler(service_factory: Callable[..., ServiceProcess],
                    scheduler_env: dict[str, str]) -> Callable[[], tuple[ServiceProcess, Stub]]:
    opened: list[Any] = []

    def start() -> tuple[ServiceProcess, Stub]:
        service = service_factory("scheduler", scheduler_env)
        ch = channel(service.address).__enter__()
        opened.append(ch)
        return service, Stub(ch)

    yield start  # type: ignore[misc]
    for ch in opened:
        ch.close()


@pytest.fixture
def scheduler(start_scheduler: Callable[[], tuple[ServiceProcess, Stub]]) -> Iterator[Stub]:
    yield start_scheduler()[1]


def create(stub: Stub, pipeline: pb.InlinePipeline) -> pb.Job:
    return stub.CreateJob(pb.CreateJobRequest(inline=pipeline), timeout=10).job


def inline(*tasks: dict[str, Any], files: dict[str, str] | None = None) -> pb.InlinePipeline:
    main_yml = json.dumps({"name": "real-node", "tasks": list(tasks)})  # JSON is YAML
    return pb.InlinePipeline(main_yml=main_yml, files=files or {})


def python_task(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "pull_policy": "Never", "command": ["python3", "-c", script], **extra}


def wait_job(stub: Stub, name: str, timeout: float = 120) -> pb.Job:
    return wait_job_for(stub, name, timeout=timeout)


def logs(stub: Stub, task: str, attempt: int = 0) -> str:
    request = pb.StreamTaskLogsRequest(name=task, attempt=attempt)
    return "".join(piece.data for piece in stub.StreamTaskLogs(request, timeout=20))


def pods_of_job(cluster: KubeCluster, job: str) -> list[dict[str, Any]]:
    selector = quote(f"{names.LABEL_JOB}={names.label_value(job.removeprefix('jobs/'))}")
    return list(cluster.request("GET", f"/api/v1/namespaces/{cluster.namespace}/pods?labelSelector={selector}")
                ["items"])


def state_of(stub: Stub, job: str, task: str) -> pb.Task:
    return tasks_of(stub, job)[task]


def running_pod(cluster: KubeCluster, job: str) -> dict[str, Any] | None:
    pods = [p for p in pods_of_job(cluster, job) if p.get("status", {}).get("phase") == "Running"]
    return pods[0] if pods else None


# -- the main job on Kubernetes ---------------------------------------------------------------------------------

def test_examples_hello_runs_in_real_containers_with_outputs_flowing(scheduler: Stub, runs_dir: Path) -> None:
    job = create(scheduler, pack_pipeline(REPO / "examples" / "hello"))
    done = wait_job(scheduler, job.name, timeout=180)
    tasks = tasks_of(scheduler, job.name)
    assert done.state == pb.Job.STATE_SUCCEEDED, {n: (t.state, t.reason, t.message) for n, t in tasks.items()}
    job_id = job.name.removeprefix("jobs/")
    model = runs_dir / job_id / f"{job_id}--train-a" / "model.json"
    # ^train-a.outputs.model resolved to the path the pod wrote, which the scheduler sees on the runs volume.
    assert tasks["evaluate"].args[0] == str(model), tasks["evaluate"].args
    assert json.loads(model.read_text())["loss"] >= 0
    assert (runs_dir / job_id / "report.json").is_file()
    assert tasks["train-b"].attempt == 2  # failed once on purpose, retried in a new pod
    assert logs(scheduler, f"{job.name}/tasks/train-b", attempt=1)  # the failed pod's output, kept by Odin
    assert logs(scheduler, f"{job.name}/tasks/evaluate")


# -- the original Odin's samples ---------------------------------------------------------------------------------

STANDIN = """\
import argparse, json, os, sys
# Stand-in for the sample's trainer: checks every path the sample passes, as the real tool would use them.
parser = argparse.ArgumentParser()
parser.add_argument("--basedir"); parser.add_argument("--config"); parser.add_argument("--logging")
known, rest = parser.parse_known_args()
if known.basedir:
    os.makedirs(known.basedir, exist_ok=True)                        # ${RUN_PATH}/${TASK_ID}: read-write
    open(os.path.join(known.basedir, "trained"), "w").write("ok")
if known.config:
    print("config:", open(known.config).read()[:40].replace("\\n", " "))  # ${WORK_PATH}/...: the pipeline's file
    try:                                                               # ... which tasks cannot change
        open(os.path.join(os.path.dirname(known.config), "planted"), "w")
        sys.exit("WORK_PATH is writable")
    except OSError:
        pass
if known.logging:
    assert os.path.isdir(os.path.dirname(known.logging)), known.logging  # ${ROOT_PATH} exists
if os.path.isdir("/data"):                                             # the sample's own claim
    open("/data/" + os.environ["ODIN_TASK_ID"], "w").write("ok")
print("rank", os.environ.get("RANK"), "args", rest)
json.dump({"basedir": known.basedir or ""}, open(os.environ["ODIN_OUTPUTS"], "w"))
"""


def sample(name: str, tmp_path: Path) -> Path:
    """The sample with a local image and a stand-in command; structure, mounts, paths and anchors unchanged."""
    target = tmp_path / name
    shutil.copytree(SAMPLES / name, target)
    (target / "standin.py").write_text(STANDIN)
    text = (target / "main.yml").read_text()
    for image in ("meadml/mead2-pytorch-gpu:latest", "interactions/odin-ml:latest", "meadml/mead2-tf2-gpu:latest",
                  "torchelastic/examples:0.2.0"):
        text = text.replace(image, IMAGE)
    text = text.replace("pull_policy: Always", "pull_policy: IfNotPresent")  # no registry to ask
    text = text.replace("command: mead-train", 'command: [python3, "${WORK_PATH}/standin.py"]')
    text = text.replace("  - python\n  - -m\n  - torchelastic.distributed.launch",
                        "  - python3\n  - ${WORK_PATH}/standin.py")
    assert "standin.py" in text, text
    (target / "main.yml").write_text(text)
    return target


@pytest.mark.parametrize("name", ["bert-ner", "sst2", "imagenet-elastic"])
def test_original_samples_run_on_the_real_node(scheduler: Stub, real_cluster: KubeCluster, runs_dir: Path,
                                               tmp_path: Path, name: str) -> None:
    job = create(scheduler, pack_pipeline(sample(name, tmp_path)))
    done = wait_job(scheduler, job.name, timeout=180)
    tasks = tasks_of(scheduler, job.name)
    assert done.state == pb.Job.STATE_SUCCEEDED, {n: (t.state, t.reason, t.message, logs(scheduler, t.name))
                                                  for n, t in tasks.items()}
    job_id = job.name.removeprefix("jobs/")
    for task in tasks.values():
        args = list(task.args)
        if "--basedir" in args:
            basedir = Path(args[args.index("--basedir") + 1])
            assert basedir.is_relative_to(runs_dir / job_id)
            assert (basedir / "trained").read_text() == "ok"
            assert task.outputs["basedir"] == str(basedir)


# -- retries, failures, cancel, restarts -------------------------------------------------------------------------

def test_a_task_exiting_3_is_retried_and_both_attempts_logs_outlive_their_pods(
        scheduler: Stub, real_cluster: KubeCluster) -> None:
    script = ("import os, sys; marker = os.environ['RUN'] + '/failed-once'\n"
              "first = not os.path.exists(marker); open(marker, 'w').close()\n"
              "print('attempt', os.environ['ODIN_ATTEMPT'], 'first' if first else 'second', flush=True)\n"
              "sys.exit(3 if first else 0)")
    job = create(scheduler, inline(python_task("flaky", script, env={"RUN": "${RUN_PATH}"},
                                               retries={"limit": 1, "backoff": "100ms"})))
    done = wait_job(scheduler, job.name)
    task = state_of(scheduler, job.name, "flaky")
    assert done.state == pb.Job.STATE_SUCCEEDED and task.attempt == 2
    assert_eventually(lambda: not pods_of_job(real_cluster, job.name), timeout=60, what="pods deleted (cleanup)")
    assert "attempt 1 first" in logs(scheduler, f"{job.name}/tasks/flaky", attempt=1)
    assert "attempt 2 second" in logs(scheduler, f"{job.name}/tasks/flaky", attempt=2)
    events = scheduler.ListJobEvents(pb.ListJobEventsRequest(parent=job.name), timeout=5).events
    assert any(e.attempt == 1 and "status 3" in e.message for e in events), events


def test_an_out_of_memory_container_reports_oomkilled(scheduler: Stub) -> None:
    script = "data = []\nwhile True:\n    data.append(bytearray(16 << 20))"
    job = create(scheduler, inline(python_task("hog", script, memory={"limits": "48Mi", "requests": "48Mi"})))
    done = wait_job(scheduler, job.name)
    task = state_of(scheduler, job.name, "hog")
    assert done.state == pb.Job.STATE_FAILED
    assert task.reason == "OOMKilled", (task.reason, task.message)


def test_cancel_deletes_the_running_pod_within_5_seconds(scheduler: Stub, real_cluster: KubeCluster) -> None:
    # A well-behaved task ends on SIGTERM (PID 1 in a container ignores it unless the program handles it).
    script = "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(143))\ntime.sleep(600)"
    job = create(scheduler, inline(python_task("sleeper", script)))
    assert_eventually(lambda: running_pod(real_cluster, job.name), timeout=60, what="pod running")
    cancelled = time.monotonic()
    scheduler.CancelJob(pb.CancelJobRequest(name=job.name), timeout=20)
    assert_eventually(lambda: not pods_of_job(real_cluster, job.name), timeout=5, interval=0.1,
                      what="pod gone within 5 s of CancelJob")
    assert time.monotonic() - cancelled <= 5.5
    assert wait_job(scheduler, job.name).state == pb.Job.STATE_CANCELLED


def test_kill_9_of_the_scheduler_mid_run_readopts_the_running_pod(
        start_scheduler: Callable[[], tuple[ServiceProcess, Stub]], real_cluster: KubeCluster,
        runs_dir: Path) -> None:
    first, stub = start_scheduler()
    script = ("import json, os, time\ngo = os.environ['RUN'] + '/go'\n"
              "while not os.path.exists(go): time.sleep(0.1)\n"
              "json.dump({'host': os.uname().nodename}, open(os.environ['ODIN_OUTPUTS'], 'w'))")
    job = create(stub, inline(python_task("waits", script, env={"RUN": "${RUN_PATH}"}),
                              python_task("after", "print('after')", args=["^waits.outputs.host"])))
    pod = assert_eventually(lambda: running_pod(real_cluster, job.name), timeout=60, what="pod running")
    first.kill()
    _, stub = start_scheduler()
    (runs_dir / job.name.removeprefix("jobs/") / "go").touch()
    done = wait_job(stub, job.name)
    tasks = tasks_of(stub, job.name)
    assert done.state == pb.Job.STATE_SUCCEEDED, {n: (t.state, t.reason, t.message) for n, t in tasks.items()}
    assert tasks["waits"].attempt == 1  # adopted, not run again
    assert tasks["after"].args == [pod["metadata"]["name"]]  # the pod's hostname is its name


# -- bad input -----------------------------------------------------------------------------------------------------

def test_bad_outputs_fail_their_task_with_a_reason_and_nothing_else(scheduler: Stub) -> None:
    write = "import os\nopen(os.environ['ODIN_OUTPUTS'], 'wb').write({!r})"
    job = create(scheduler, inline(
        python_task("array", write.format(b"[1, 2]")),
        python_task("huge", write.format(b'{"x": "' + b"y" * 5000 + b'"}')),
        python_task("latin1", write.format(b'{"name": "caf\xe9"}')),
        python_task("fine", write.format(b'{"ok": true}')),
    ))
    wait_job(scheduler, job.name)
    tasks = tasks_of(scheduler, job.name)
    assert (tasks["array"].state, tasks["array"].reason) == (pb.Task.STATE_FAILED, "InvalidOutputs")
    assert "JSON object" in tasks["array"].message
    assert (tasks["huge"].state, tasks["huge"].reason) == (pb.Task.STATE_FAILED, "OutputsTooLarge")
    assert (tasks["latin1"].state, tasks["latin1"].reason) == (pb.Task.STATE_FAILED, "InvalidOutputs")
    assert "UTF-8" in tasks["latin1"].message
    assert tasks["fine"].state == pb.Task.STATE_SUCCEEDED and dict(tasks["fine"].outputs) == {"ok": True}


@pytest.mark.parametrize(("mount", "field"), [
    ({"name": "data", "claim": "odin-runs", "path": "/data"}, "claim"),
    ({"name": "data", "claim": "data-rw-many", "path": "${RUN_PATH}/../other-job"}, "path"),
    ({"name": "data", "claim": "data-rw-many", "path": "${WORK_PATH}"}, "path"),
    ({"name": "data", "claim": "data-rw-many", "path": "${DATA_PATH}"}, "path"),
])
def test_a_mount_escaping_the_jobs_directory_is_refused_at_create(scheduler: Stub, mount: dict[str, str],
                                                                  field: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        create(scheduler, inline(python_task("t", "pass", mounts=[mount])))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = dict(rpc_failure(caught.value).violations)
    assert f"inline.main_yml.tasks[0].mounts[0].{field}" in violations, violations
    assert not scheduler.ListJobs(pb.ListJobsRequest(), timeout=5).jobs


def test_a_mount_inside_run_path_is_accepted_and_expanded(scheduler: Stub, runs_dir: Path) -> None:
    check = "import os\nassert os.path.isdir(os.environ['WHERE']), os.environ['WHERE']"
    task = python_task("t", check, env={"WHERE": "${RUN_PATH}/extra"},
                       mounts=[{"name": "data", "claim": "data-rw-many", "path": "${RUN_PATH}/extra"}])
    job = create(scheduler, inline(task))
    assert wait_job(scheduler, job.name).state == pb.Job.STATE_SUCCEEDED
