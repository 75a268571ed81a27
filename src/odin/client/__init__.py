"""Python client of the Odin services.

    from odin.client import SchedulerClient

    async with SchedulerClient.from_environment() as client:
        async for event in client.watch_job("hello-ab12cd34"):
            print(event.seq, event.task, event.task_state)

Addresses come from an explicit address, `ODIN_ADDRESS`, or the local suite (`odin dev up`); the token from
`ODIN_TOKEN` or the file `odin login` writes. Failed calls raise `OdinError` subclasses with `.code`,
`.reason` and `.violations`.
"""

from odin.client.addresses import ServiceAddresses
from odin.client.credentials import load_token
from odin.client.errors import (
    Aborted,
    AlreadyExists,
    ConfigurationError,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    OdinError,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    from_rpc_error,
)
from odin.client.local_pipeline import is_local_pipeline, pack_pipeline
from odin.client.names import InvalidName, job_name, task_name
from odin.client.retry import RetryPolicy
from odin.client.scheduler import SchedulerClient, job_options

__all__ = [
    "Aborted",
    "AlreadyExists",
    "ConfigurationError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "InvalidName",
    "NotFound",
    "OdinError",
    "PermissionDenied",
    "ResourceExhausted",
    "RetryPolicy",
    "SchedulerClient",
    "ServiceAddresses",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "from_rpc_error",
    "is_local_pipeline",
    "job_name",
    "job_options",
    "load_token",
    "pack_pipeline",
    "task_name",
]
