"""Run a pipeline in this Python process with the scheduler's own engine: no server, no gRPC, no network.

    import odin.engine

    done = odin.engine.run(Path("examples/hello"))        # a directory holding main.yml, a main.yml,
    print(done.state.name, done.outputs["train"])          # YAML text or a dict

    async with odin.engine.start(pipeline) as job:         # follow it while it runs
        async for event in job.events():                   # the records WatchJob streams
            print(event.seq, event.task, event.task_state)

Defaults: the local executor (host processes) and a SQLite store in a temporary directory. Any executor or
store the service supports can be passed in. See docs/embedding.md.

The names below load on first use, so `import odin.engine` costs almost nothing until a pipeline runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from odin_scheduler.jobs import RequestedOptions as Options
    from odin_scheduler.model import Event, EventType, FailurePolicy, Job, JobState, Task, TaskState

    from odin.engine.api import run, run_async, start, watch
    from odin.engine.job import FinishedJob, JobHandle, to_proto
    from odin.engine.source import Pipeline
    from odin.runtime.errors import InvalidArgument

# Public name → (module, attribute).
_EXPORTS: dict[str, tuple[str, str]] = {
    "run": ("odin.engine.api", "run"),
    "run_async": ("odin.engine.api", "run_async"),
    "start": ("odin.engine.api", "start"),
    "watch": ("odin.engine.api", "watch"),
    "FinishedJob": ("odin.engine.job", "FinishedJob"),
    "JobHandle": ("odin.engine.job", "JobHandle"),
    "to_proto": ("odin.engine.job", "to_proto"),
    "Pipeline": ("odin.engine.source", "Pipeline"),
    "InvalidArgument": ("odin.runtime.errors", "InvalidArgument"),
    "Options": ("odin_scheduler.jobs", "RequestedOptions"),
    **{name: ("odin_scheduler.model", name) for name in
       ("Event", "EventType", "FailurePolicy", "Job", "JobState", "Task", "TaskState")},
}  # fmt: skip

__all__ = [
    "Event",
    "EventType",
    "FailurePolicy",
    "FinishedJob",
    "InvalidArgument",
    "Job",
    "JobHandle",
    "JobState",
    "Options",
    "Pipeline",
    "Task",
    "TaskState",
    "run",
    "run_async",
    "start",
    "to_proto",
    "watch",
]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'odin.engine' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
