"""PipelinesService over gRPC: unpack the request, check the caller's role in the pipeline's project,
call the repository in a thread, pack the answer.

Every RPC that touches stored pipelines checks the project first (`require_project_role`): reads
need a viewer there, writes a user. A caller who is not a member gets the same NOT_FOUND as for a
pipeline that does not exist, so other projects' pipelines cannot even be discovered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from grpc import aio

from odin.pipeline_spec.render_pool import RenderPool
from odin.pipeline_spec.templates import RenderError
from odin.pipelines.v1 import pipelines_pb2 as pb
from odin.pipelines.v1 import pipelines_pb2_grpc
from odin.runtime import paging
from odin.runtime.auth import current_identity
from odin.runtime.errors import InvalidArgument, NotFound
from odin.runtime.projects import DEFAULT_PROJECT, project_id, require_project_role
from odin.runtime.tokens import Role
from odin_pipelines import convert, names, validation
from odin_pipelines import files as pipeline_files
from odin_pipelines.config import PipelinesConfig
from odin_pipelines.identity import current_author
from odin_pipelines.names import PipelineRef
from odin_pipelines.repository import CommitInfo, PipelineRepository, PipelineView, pipeline_not_found
from odin_pipelines.sync import SyncState, SyncStatus, Upstream

DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_MESSAGE_CHARS = 64 * 1024

T = TypeVar("T")


class PipelinesServicer(pipelines_pb2_grpc.PipelinesServiceServicer):
    def __init__(self, config: PipelinesConfig, repo: PipelineRepository, upstream: Upstream | None,
                 renderer: RenderPool) -> None:
        self.config = config
        self.limits = config.limits()
        self.repo = repo
        self.upstream = upstream
        self.renderer = renderer

    # ---- reads -----------------------------------------------------------------------------

    async def ListPipelines(self, request: pb.ListPipelinesRequest, context: aio.ServicerContext) -> Any:
        project = project_id(request.project, "project")
        size = paging.page_size(request.page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
        filters = {"prefix": names.check_prefix(request.prefix), "revision": names.check_revision(request.revision),
                   "project": project}
        _authorize(project, Role.VIEWER)
        position = paging.decode_token(request.page_token, filters) or {}
        views, more = await asyncio.to_thread(self.repo.list_pipelines, prefix=request.prefix, limit=size,
                                              after=str(position.get("after", "")), revision=request.revision,
                                              project=project)
        token = paging.encode_token({"after": views[-1].pipeline_id}, filters) if more else ""
        return pb.ListPipelinesResponse(pipelines=[convert.pipeline(v) for v in views], next_page_token=token)

    async def GetPipeline(self, request: pb.GetPipelineRequest, context: aio.ServicerContext) -> Any:
        _, view = await self._read(request.name, request.revision)
        return pb.GetPipelineResponse(pipeline=convert.pipeline(view))

    async def ListPipelineRevisions(self, request: pb.ListPipelineRevisionsRequest,
                                    context: aio.ServicerContext) -> Any:
        ref = names.parse_name(request.name)
        _authorize(ref.project, Role.VIEWER, pipeline_not_found(ref))
        size = paging.page_size(request.page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
        filters = {"name": ref.name, "project": ref.project}
        position = paging.decode_token(request.page_token, filters) or {}
        found, walked = await asyncio.to_thread(self.repo.history, ref.pipeline_id,
                                                start=str(position.get("head", "")),
                                                after=str(position.get("after", "")), limit=size, project=ref.project)
        token = paging.encode_token({"head": walked, "after": found[size - 1].commit}, filters) \
            if len(found) > size else ""
        return pb.ListPipelineRevisionsResponse(revisions=[convert.revision(r) for r in found[:size]],
                                                next_page_token=token)

    # ---- writes ----------------------------------------------------------------------------

    async def CreatePipeline(self, request: pb.CreatePipelineRequest, context: aio.ServicerContext) -> Any:
        project = project_id(request.project, "project")
        pipeline_id = _pipeline_id(request.pipeline_id, "pipeline_id")
        _authorize(project, Role.USER)
        given = [(f.path, f.content) for f in request.pipeline.files]
        written, problems = pipeline_files.entries(given, "pipeline.files", self.limits)
        pipeline_files.raise_if(problems)
        self._check_written(pipeline_id, written, "pipeline.files", given)
        ref = PipelineRef(project, pipeline_id)
        message = _message(request.message, f"Create pipeline {_label(ref)}")
        author = current_author()
        view = await self._write(lambda: self.repo.create(pipeline_id, written, message, author, project=project))
        return pb.CreatePipelineResponse(pipeline=convert.pipeline(view))

    async def UpdatePipeline(self, request: pb.UpdatePipelineRequest, context: aio.ServicerContext) -> Any:
        ref = names.parse_name(request.name)
        # Ownership: the caller must be a user in the project the pipeline belongs to, and the write
        # can only replace that project's directory of the tree.
        _authorize(ref.project, Role.USER, pipeline_not_found(ref))
        expected = _required(request.expected_revision, "expected_revision")
        given = [(f.path, f.content) for f in request.upsert_files]
        written, problems = pipeline_files.entries(given, "upsert_files", self.limits)
        deletes, delete_problems = pipeline_files.deletions(request.delete_paths, "delete_paths")
        problems += delete_problems + [(f"delete_paths[{i}]", f"{p!r} is also in upsert_files")
                                       for i, p in enumerate(deletes) if p in written]
        pipeline_files.raise_if(problems)
        self._check_written(ref.pipeline_id, written, "upsert_files", given)
        message = _message(request.message, f"Update pipeline {_label(ref)}")
        author = current_author()
        view = await self._write(lambda: self.repo.update(ref.pipeline_id, expected, written, deletes, message,
                                                          author, project=ref.project))
        return pb.UpdatePipelineResponse(pipeline=convert.pipeline(view))

    async def DeletePipeline(self, request: pb.DeletePipelineRequest, context: aio.ServicerContext) -> Any:
        ref = names.parse_name(request.name)
        _authorize(ref.project, Role.USER, pipeline_not_found(ref))
        expected = _required(request.expected_revision, "expected_revision")
        message = _message(request.message, f"Delete pipeline {_label(ref)}")
        author = current_author()
        commit = await self._write(lambda: self.repo.delete(ref.pipeline_id, expected, message, author,
                                                            project=ref.project))
        return pb.DeletePipelineResponse(revision=convert.revision(commit))

    # ---- validation and rendering ----------------------------------------------------------

    async def ValidatePipeline(self, request: pb.ValidatePipelineRequest, context: aio.ServicerContext) -> Any:
        pipeline_id, texts = await self._validation_source(request)
        verdict = await asyncio.to_thread(validation.validate, pipeline_id, texts,
                                          convert.parameters(request.parameters), self.renderer.render)
        return pb.ValidatePipelineResponse(violations=convert.violations(verdict.violations),
                                           task_order=list(verdict.task_order))

    async def RenderPipeline(self, request: pb.RenderPipelineRequest, context: aio.ServicerContext) -> Any:
        pipeline_id, view = await self._read(request.name, request.revision)
        parameters = validation.template_parameters(pipeline_id, convert.parameters(request.parameters))
        rendered = await asyncio.to_thread(self._render, view.files or {}, parameters)
        verdict = await asyncio.to_thread(validation.validate, pipeline_id, rendered, {}, self.renderer.render)
        if verdict.violations:
            raise InvalidArgument(f"the rendered pipeline is invalid: {verdict.violations[0]}",
                                  [(v.field, v.description) for v in verdict.violations], reason="PIPELINE_INVALID")
        return pb.RenderPipelineResponse(files=convert.files(rendered), revision=convert.revision(view.revision))

    async def _read(self, name: str, revision: str) -> tuple[str, PipelineView]:
        """The pipeline `name` at `revision` (empty: the branch head), with its id, for a viewer of its project."""
        ref = names.parse_name(name)
        _authorize(ref.project, Role.VIEWER, pipeline_not_found(ref))
        checked = names.check_revision(revision)
        return ref.pipeline_id, await asyncio.to_thread(self.repo.get, ref.pipeline_id, checked,
                                                        project=ref.project)

    def _render(self, texts: Mapping[str, str], parameters: Mapping[str, Any]) -> dict[str, str]:
        if not any(path.endswith(pipeline_files.TEMPLATE_SUFFIX) for path in texts):
            return dict(texts)
        try:
            return self.renderer.render(texts, parameters)
        except RenderError as exc:
            raise InvalidArgument(f"cannot render the pipeline: {exc.field}: {exc.description}",
                                  [(exc.field, exc.description)], reason="TEMPLATE_INVALID") from None

    async def _validation_source(self, request: pb.ValidatePipelineRequest) -> tuple[str, dict[str, str]]:
        source = request.WhichOneof("source")
        if source == "name":
            pipeline_id, view = await self._read(request.name, request.revision)
            return pipeline_id, view.files or {}
        if source == "pipeline":
            name = request.pipeline.name
            # Inline files are the caller's own: only the id is used, as the default `name`.
            pipeline_id = names.parse_name(name, "pipeline.name").pipeline_id if name else "pipeline"
            given = [(f.path, f.content) for f in request.pipeline.files]
            entries, problems = pipeline_files.entries(given, "pipeline.files", self.limits)
            pipeline_files.raise_if(problems + pipeline_files.whole_problems(entries, "pipeline.files", self.limits))
            return pipeline_id, {path: data.decode("utf-8") for path, data in entries.items()}
        raise InvalidArgument.field("source", "set `name` or `pipeline`")

    # ---- the repository and its upstream ---------------------------------------------------

    async def GetRepository(self, request: pb.GetRepositoryRequest, context: aio.ServicerContext) -> Any:
        return pb.GetRepositoryResponse(repository=await asyncio.to_thread(self._repository, self._status()))

    async def SyncRepository(self, request: pb.SyncRepositoryRequest, context: aio.ServicerContext) -> Any:
        status = await asyncio.to_thread(self.upstream.sync) if self.upstream else self._status()
        return pb.SyncRepositoryResponse(repository=await asyncio.to_thread(self._repository, status))

    def _status(self) -> SyncStatus:
        return self.upstream.status if self.upstream else SyncStatus("", SyncState.NO_REMOTE)

    def _repository(self, status: SyncStatus) -> pb.Repository:
        head = self.repo.head()
        return convert.repository(self.repo.branch, CommitInfo.of(head) if head else None, status)

    async def _write(self, change: Callable[[], T]) -> T:
        """Runs one repository change in a thread, pulling from the upstream first (when configured)
        and pushing to it after."""
        if self.upstream is not None and self.config.pull_before_write:
            await asyncio.to_thread(self.upstream.sync)
        result = await asyncio.to_thread(change)
        if self.upstream is not None:
            await asyncio.to_thread(self.upstream.sync)
        return result

    def _check_written(self, pipeline_id: str, written: Mapping[str, bytes], field: str,
                       given: Sequence[tuple[str, str]]) -> None:
        if not self.config.validate_on_write:
            return
        field_of = {path: f"{field}[{index}]" for index, (path, _) in enumerate(given)}
        validation.check_written(pipeline_id, {p: d.decode("utf-8") for p, d in written.items()}, field_of)


def _authorize(project: str, role: Role, not_found: NotFound | None = None) -> None:
    """PERMISSION_DENIED for a member below `role`; NOT_FOUND (`not_found`) for a non-member."""
    require_project_role(current_identity(), project, role, not_found=not_found)


def _label(ref: PipelineRef) -> str:
    """How default commit messages name a pipeline: its id in the default project (as before projects)."""
    return ref.pipeline_id if ref.project == DEFAULT_PROJECT else ref.name


def _pipeline_id(pipeline_id: str, field: str) -> str:
    problem = names.pipeline_id_problem(pipeline_id)
    if problem:
        raise InvalidArgument.field(field, problem)
    return pipeline_id


def _required(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument.field(field, "is required")
    return value


def _message(message: str, default: str) -> str:
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidArgument.field("message", f"must be at most {MAX_MESSAGE_CHARS} characters")
    if "\0" in message:
        raise InvalidArgument.field("message", "must not contain NUL characters")
    text = message.strip() or default
    return text if text.endswith("\n") else text + "\n"
