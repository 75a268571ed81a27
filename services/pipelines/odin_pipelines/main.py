"""`odin-pipelines`: runs the pipelines service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

import pygit2

from odin.pipeline_spec.render_pool import RenderPool
from odin.pipelines.v1 import pipelines_pb2, pipelines_pb2_grpc
from odin.runtime.auth import ProjectRole, Rule
from odin.runtime.config import ConfigError
from odin.runtime.lifecycle import sleep_or_stop
from odin.runtime.server import ServiceRuntime, serve_main
from odin.runtime.tokens import Role
from odin_pipelines.config import PipelinesConfig
from odin_pipelines.identity import SERVICE_AUTHOR
from odin_pipelines.repository import PipelineRepository
from odin_pipelines.seed import read_seed
from odin_pipelines.servicer import PipelinesServicer
from odin_pipelines.sync import Upstream

log = logging.getLogger("odin.pipelines")
# Pipelines belong to projects: reads need a viewer in the pipeline's project, edits a user there
# (the handlers check the project; the interceptor only the best role anywhere). The repository as
# a whole (its head, its upstream) spans every project, so only admins see or sync it. An RPC
# missing here would need an admin.
ROLES: dict[str, Rule] = {
    "ListPipelines": ProjectRole(Role.VIEWER),
    "GetPipeline": ProjectRole(Role.VIEWER),
    "ListPipelineRevisions": ProjectRole(Role.VIEWER),
    "ValidatePipeline": ProjectRole(Role.VIEWER),
    "RenderPipeline": ProjectRole(Role.VIEWER),
    "CreatePipeline": ProjectRole(Role.USER),
    "UpdatePipeline": ProjectRole(Role.USER),
    "DeletePipeline": ProjectRole(Role.USER),
    "GetRepository": Role.ADMIN,
    "SyncRepository": Role.ADMIN,
}

__all__ = ["PipelinesConfig", "PipelinesServicer", "main", "setup"]


async def setup(config: PipelinesConfig, runtime: ServiceRuntime) -> None:
    if config.repo_path == Path():
        raise ConfigError("missing required configuration ODIN_PIPELINES_REPO_PATH (or `repo_path` in the file)")
    # The seed is read before the repository exists, so a bad seed fails start-up without leaving an empty one.
    fresh = not (config.repo_path / "HEAD").exists()
    limits = config.limits()
    seed = await asyncio.to_thread(read_seed, Path(config.seed_path), limits) \
        if fresh and config.seed_path else None
    repo, created = await asyncio.to_thread(PipelineRepository.open_or_create, config.repo_path, config.branch,
                                            limits)
    upstream = Upstream(repo, config.remote) if config.remote else None
    if upstream is not None:
        await asyncio.to_thread(upstream.sync)  # adopt the upstream's history before seeding
    if created and seed is not None:
        await _seed(repo, seed, Path(config.seed_path).name)
        if upstream is not None:
            await asyncio.to_thread(upstream.sync)
    renderer = RenderPool(limits)
    await asyncio.to_thread(renderer.warm_up)
    servicer = PipelinesServicer(config, repo, upstream, renderer)
    name = pipelines_pb2.DESCRIPTOR.services_by_name["PipelinesService"].full_name
    runtime.add_service(name, pipelines_pb2_grpc.add_PipelinesServiceServicer_to_server, servicer, roles=ROLES)
    runtime.add_dependency_check("repository", lambda: asyncio.to_thread(_repository_opens, repo))
    if upstream is not None and config.sync_interval_seconds > 0:
        poller = asyncio.create_task(_sync_periodically(upstream, config.sync_interval_seconds, runtime.stopping))
        runtime.on_stop(lambda: _cancel(poller))

    async def close_renderer() -> None:
        await asyncio.to_thread(renderer.close)

    runtime.on_stop(close_renderer)


async def _seed(repo: PipelineRepository, pipelines: dict[str, dict[str, bytes]], source: str) -> None:
    await asyncio.to_thread(repo.import_pipelines, pipelines, f"Import pipelines from {source}\n", SERVICE_AUTHOR)
    log.info("seeded the repository", extra={"pipelines": sorted(pipelines)})


def _repository_opens(repo: PipelineRepository) -> bool:
    pygit2.Repository(repo.path)
    return True


async def _sync_periodically(upstream: Upstream, interval: float, stopping: asyncio.Event) -> None:
    """Pulls every `interval` seconds until the service stops; failures are in the sync state."""
    while not stopping.is_set():
        await sleep_or_stop(stopping, interval)
        if not stopping.is_set():
            await asyncio.to_thread(upstream.sync)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: Sequence[str] | None = None) -> int:
    return serve_main("pipelines", PipelinesConfig, setup, argv)
