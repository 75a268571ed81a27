from typing import Any

import pytest

from odin.pipeline_spec import PipelineInvalid, RetryPolicy, load_pipeline


def task(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "img", "command": "run", **extra}


def errors(doc: Any) -> list[str]:
    with pytest.raises(PipelineInvalid) as info:
        load_pipeline(doc)
    return [str(v) for v in info.value.violations]


def test_unknown_dependency_exact_message() -> None:
    doc = {"tasks": [task("train"), task("prep"), task("eval", depends="trian")]}
    assert errors(doc) == ['tasks[2].depends: unknown task "trian" (did you mean "train"?)']
    assert errors(doc)[0].startswith('tasks[2].depends: unknown task "trian"')


def test_all_violations_are_collected() -> None:
    doc = {
        "name": "Bad_Name",
        "tasks": [
            {"name": "a", "command": "x"},
            task("b", num_gpus=-1, depends="zzz"),
            task("c", resource_type="Deployment2"),
            "not a mapping",
        ],
    }
    assert errors(doc) == [
        'name: "Bad_Name" must match [a-z0-9-.]+ (lowercase letters, digits, "-" and ".")',
        "tasks[3]: must be a mapping",
        "tasks[0].image: is required",
        "tasks[1].num_gpus: must be a non-negative integer",
        'tasks[2].resource_type: unknown resource type "Deployment2"; '
        "accepted: ElasticJob, Job, JobSet, MPIJob, Pod, PyTorchJob, TFJob, TrainJob",
        'tasks[1].depends: unknown task "zzz"',
    ]


def test_cycle_is_named() -> None:
    doc = {"tasks": [task("a", depends="c"), task("b", depends="a"), task("c", depends=["b"])]}
    assert errors(doc) == ["tasks: cycle: a -> b -> c -> a"]


def test_two_cycles_and_a_bystander() -> None:
    doc = {
        "tasks": [
            task("a", depends="b"),
            task("b", depends="a"),
            task("x", depends="a"),
            task("p", args=["^q.out"]),
            task("q", inputs=["^p.out"]),
        ]
    }
    assert errors(doc) == ["tasks: cycle: a -> b -> a", "tasks: cycle: p -> q -> p"]


def test_self_dependency() -> None:
    assert errors({"tasks": [task("a", depends="^a")]}) == ['tasks[0].depends: task "a" depends on itself']
    assert errors({"tasks": [task("a", args=["^a.x"])]}) == [
        'tasks[0].args[0]: task "a" depends on itself in reference "^a.x"'
    ]


def test_task_name_rules() -> None:
    doc = {
        "tasks": [
            task("a.b"),
            task("Train"),
            task("x" * 64),
            task("ok"),
            task("ok"),
            {"image": "i", "command": "c"},
        ]
    }
    assert errors(doc) == [
        'tasks[0].name: "a.b" must not contain "." (it separates parts of a ^reference)',
        'tasks[1].name: "Train" is not a valid Kubernetes name: use lowercase letters, digits and "-", '
        "starting and ending with a letter or digit",
        f'tasks[2].name: "{"x" * 64}" is longer than 63 characters',
        'tasks[4].name: duplicate task name "ok" (first defined at tasks[3])',
        "tasks[5].name: is required",
    ]


@pytest.mark.parametrize("tasks", [None, [], "x"])
def test_tasks_required(tasks: Any) -> None:
    doc = {} if tasks is None else {"tasks": tasks}
    assert errors(doc) in (["tasks: is required"], ["tasks: must be a non-empty list of tasks"])


def test_depends_union_with_whole_value_references_and_order() -> None:
    doc = {
        "tasks": [
            task("prep"),
            task("train", depends=["^prep"]),
            task("other"),
            task("eval", args=["--m", "^train.outputs.model", "--x={^other.y}"], inputs=["^prep.data"]),
        ]
    }
    spec = load_pipeline(doc)
    assert spec.task("eval").depends == ("train", "prep")
    assert spec.topological_order() == ["prep", "train", "other", "eval"]
    assert spec.dependents() == {"prep": ("train", "eval"), "train": ("eval",), "other": (), "eval": ()}


def test_topological_order_is_stable() -> None:
    doc = {"tasks": [task("z", depends="y"), task("y"), task("a"), task("b", depends="z")]}
    assert load_pipeline(doc).topological_order() == ["y", "z", "a", "b"]


def test_unknown_reference_target() -> None:
    assert errors({"tasks": [task("a", inputs=["^trian.out"])]}) == [
        'tasks[0].inputs[0]: unknown task "trian" in reference "^trian.out"'
    ]


def test_unknown_task_keys_are_warnings() -> None:
    spec = load_pipeline({"mead-image": "x", "tasks": [task("a", dependz="b", id="a--a")]})
    assert [str(w) for w in spec.warnings] == [
        'tasks[0].dependz: unknown key ignored (did you mean "depends"?)',
        "tasks[0].id: unknown key ignored",
    ]


def test_variables_checked_in_templated_fields() -> None:
    doc = {
        "tasks": [
            task(
                "a",
                command=["sh", "${NOPE}"],
                args=["${RUN_PATH}/$TASK_ID", "$$literal", "cost $"],
                env={"A": "${TASK_PATH}", "B": "$HOME"},
                inputs=["${X1}"],
                outputs={"model": "${Y}"},
                mounts=[{"name": "d", "path": "${Z}", "claim": "c"}],
            )
        ]
    }
    assert errors(doc) == [
        'tasks[0].command[1]: unknown variable "NOPE"',
        'tasks[0].args[2]: invalid "$" at position 5 (write "$$" for a literal "$", or "${NAME}")',
        'tasks[0].env.B: unknown variable "HOME"',
        'tasks[0].inputs[0]: unknown variable "X1"',
        'tasks[0].outputs.model: unknown variable "Y"',
        'tasks[0].mounts[0].path: unknown variable "Z"',
    ]


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("Pod", "Pod"),
        ("pod", "Pod"),
        ("job", "Job"),
        ("tfjob", "TFJob"),
        ("pytjob", "PyTorchJob"),
        ("pytorchjob", "PyTorchJob"),
        ("mpijob", "MPIJob"),
        ("pytorchelastic", "ElasticJob"),
        ("elasticjob", "ElasticJob"),
        (None, "Pod"),
    ],
)
def test_resource_type_aliases(alias: str | None, canonical: str) -> None:
    assert load_pipeline({"tasks": [task("a", resource_type=alias)]}).tasks[0].resource_type == canonical


def test_log_only_resource_type_rejected() -> None:
    assert errors({"tasks": [task("a", resource_type="deploy")]}) == [
        'tasks[0].resource_type: "deploy" can only be read for logs, not submitted as a task'
    ]


def test_volume_keys_and_aliases() -> None:
    spec = load_pipeline(
        {
            "tasks": [
                task(
                    "a",
                    mount={"name": "dshm", "path": "/dev/shm"},
                    ephem_volume=[{"name": "dshm", "type": "emptyDir", "medium": "Memory"}],
                    secret=[{"name": "odin-cred"}, {"name": "ssh-key"}, {"name": "s", "path": "/s", "mode": 0o600}],
                    config_map={"name": "cm", "path": "/etc/x.yml", "sub_path": "x.yml"},
                )
            ]
        }
    )
    t = spec.tasks[0]
    assert (t.mounts[0].name, t.mounts[0].claim, t.ephem_volumes[0].medium) == ("dshm", None, "Memory")
    assert [(s.path, s.sub_path, s.mode) for s in t.secrets] == [
        ("/etc/odind/odin-cred.yml", "odin-cred.yml", 0o644),
        ("/etc/odind/identity", "identity", 0o400),
        ("/s", "", 0o600),
    ]
    assert t.config_maps[0].sub_path == "x.yml"


def test_volume_errors() -> None:
    doc = {
        "tasks": [
            task(
                "a",
                mounts=[{"name": "scratch", "path": "/s"}],
                mount={"name": "x", "path": "/x", "claim": "c"},
                ephem_volumes=[{"name": "v", "type": "hostPath"}],
                secrets=[{"name": "custom"}],
                config_maps=[{"name": "cm"}],
            )
        ]
    }
    assert errors(doc) == [
        'tasks[0].mount: both "mount" and "mounts" are given; use one',
        "tasks[0].ephem_volumes[0].type: only emptyDir ephemeral volumes are supported",
        'tasks[0].ephem_volumes[0].medium: is required ("" for node disk, "Memory" for tmpfs)',
        'tasks[0].mounts[0].claim: is required: no ephem_volume named "scratch"',
        "tasks[0].secrets[0].path: is required",
        "tasks[0].config_maps[0].path: is required",
        "tasks[0].config_maps[0].sub_path: is required",
    ]


def test_new_keys_env_memory_retries_timeout() -> None:
    spec = load_pipeline(
        {
            "parallelism": 2,
            "timeout": "1h",
            "tasks": [
                task(
                    "a",
                    env={"N": 3, "F": 0.5, "S": "x", "B": True},
                    memory={"limits": "2Gi", "requests": 512},
                    cpu={"limits": "500m"},
                    retries={"limit": 3, "backoff": "30s", "max_backoff": "2m", "factor": 3},
                    timeout="1h30m",
                ),
                task("b", retries=2, timeout=90),
            ],
        }
    )
    a, b = spec.tasks
    assert (spec.parallelism, spec.timeout_seconds) == (2, 3600.0)
    assert dict(a.env) == {"N": "3", "F": "0.5", "S": "x", "B": "true"}
    assert (a.memory.limits, a.memory.requests, a.cpu.limits, a.cpu.requests) == ("2Gi", "512", "500m", None)
    assert a.retries == RetryPolicy(limit=3, backoff_seconds=30.0, max_backoff_seconds=120.0, factor=3.0)
    assert [a.retries.delay(n) for n in (1, 2, 3)] == [30.0, 90.0, 120.0]
    assert a.timeout_seconds == 5400.0
    assert (b.retries.limit, b.timeout_seconds) == (2, 90.0)


def test_new_keys_errors() -> None:
    doc = {
        "parallelism": 0,
        "timeout": "soon",
        "tasks": [
            task(
                "a",
                env={"BAD NAME": "x", "L": [1]},
                memory={"limits": "2GB"},
                retries="often",
                timeout=0,
                num_workers=0,
                security_context={"run_as_user": "root"},
                pull_policy="always",
            )
        ],
    }
    assert errors(doc) == [
        "parallelism: must be a positive integer",
        'timeout: invalid duration "soon" (use e.g. "90s", "5m", "1h30m")',
        "tasks[0].num_workers: must be a positive integer",
        'tasks[0].memory.limits: invalid Kubernetes quantity "2GB" (e.g. "500m", "2Gi", "1.5")',
        "tasks[0].security_context.run_as_user: must be a non-negative integer",
        'tasks[0].pull_policy: must be one of Always, IfNotPresent, Never (did you mean "Always"?)',
        "tasks[0].env.L: must be a string key with a string or number value",
        "tasks[0].env.BAD NAME: is not a valid environment variable name",
        "tasks[0].retries: must be a non-negative integer or a mapping {limit, backoff, max_backoff, factor}",
        "tasks[0].timeout: must be greater than zero",
    ]


def test_command_and_args_forms() -> None:
    spec = load_pipeline({"tasks": [task("a", command=["python", "-m", "x"], args=["--epochs", 20])]})
    assert spec.tasks[0].command == ("python", "-m", "x")
    assert spec.tasks[0].args == ("--epochs", "20")
    assert errors({"tasks": [task("a", command=[])]}) == ["tasks[0].command: must not be empty"]
    assert errors({"tasks": [task("a", args=[{"k": 1}])]}) == ["tasks[0].args[0]: must be a string"]


def test_raw_mapping_kept() -> None:
    raw = task("a", id="x")
    assert dict(load_pipeline({"tasks": [raw]}).tasks[0].raw) == raw


@pytest.mark.parametrize(("resource_type", "gpus"), [
    ("TFJob", 1), ("PyTorchJob", 1), ("ElasticJob", 1), ("pytorchelastic", 1), ("MPIJob", 0), ("Pod", 0), ("Job", 0),
])
def test_distributed_kinds_get_one_gpu_per_replica_unless_num_gpus_says_otherwise(resource_type: str,
                                                                                   gpus: int) -> None:
    spec = load_pipeline({"tasks": [task("t", resource_type=resource_type)]})
    assert spec.tasks[0].num_gpus == gpus
    explicit = load_pipeline({"tasks": [task("t", resource_type=resource_type, num_gpus=0)]})
    assert explicit.tasks[0].num_gpus == 0
