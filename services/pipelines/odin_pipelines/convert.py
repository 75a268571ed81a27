"""Domain values <-> protobuf messages (the only module that knows both)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from odin.pipeline_spec import Violation
from odin.pipelines.v1 import pipelines_pb2 as pb
from odin.runtime.projects import project_name
from odin_pipelines.repository import CommitInfo, PipelineView
from odin_pipelines.sync import SyncState, SyncStatus

_SYNC_STATES = {
    SyncState.NO_REMOTE: pb.Repository.SYNC_STATE_NO_REMOTE,
    SyncState.IN_SYNC: pb.Repository.SYNC_STATE_IN_SYNC,
    SyncState.AHEAD: pb.Repository.SYNC_STATE_AHEAD,
    SyncState.DIVERGED: pb.Repository.SYNC_STATE_DIVERGED,
    SyncState.UNREACHABLE: pb.Repository.SYNC_STATE_UNREACHABLE,
}


def revision(info: CommitInfo) -> pb.Revision:
    return pb.Revision(commit=info.commit, message=info.message, author_name=info.author_name,
                       author_email=info.author_email, commit_time=timestamp_pb2.Timestamp(seconds=info.time))


def pipeline(view: PipelineView) -> pb.Pipeline:
    return pb.Pipeline(
        name=view.ref.name,
        project=project_name(view.project),
        files=files(view.files or {}),
        revision=revision(view.revision),
        etag=view.etag,
        templated=view.templated,
        display_name=view.display_name,
    )


def files(texts: Mapping[str, str]) -> list[pb.PipelineFile]:
    return [pb.PipelineFile(path=path, content=text) for path, text in sorted(texts.items())]


def violations(found: tuple[Violation, ...]) -> list[pb.Violation]:
    return [pb.Violation(field=v.field, description=v.description) for v in found]


def parameters(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Template parameters; whole numbers become ints (Struct carries every number as a double)."""
    converted: dict[str, Any] = _whole_numbers(json_format.MessageToDict(struct))
    return converted


def _whole_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def repository(branch: str, head: CommitInfo | None, status: SyncStatus) -> pb.Repository:
    message = pb.Repository(branch=branch, remote=status.remote, sync_state=_SYNC_STATES[status.state],
                            sync_message=status.message)
    if head is not None:
        message.head.CopyFrom(revision(head))
    if status.last_sync_time is not None:
        message.last_sync_time.FromSeconds(int(status.last_sync_time))
    return message
