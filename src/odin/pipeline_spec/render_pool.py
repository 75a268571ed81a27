"""Worker processes that render templates under a wall-clock and memory limit.

The sandbox stops escapes, but a loop such as `{% for i in range(99999) %}{% for j in
range(99999) %}` only stops when something kills it. Each render runs in a worker of a
process pool; one that overruns `max_render_seconds` is killed with its pool, which is
recreated for the next call. Workers come from a clean fork server, never from a fork of the
gRPC process (forking a process with gRPC threads is unsafe).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import resource
import threading
from collections.abc import Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

from odin.pipeline_spec.templates import RenderError, render_files

STARTUP_SECONDS = 60.0


class Limits(Protocol):
    """What a render may use (the pipelines service's `Limits` and the scheduler's settings both fit)."""

    @property
    def max_file_bytes(self) -> int: ...  # the most one rendered file may hold

    @property
    def max_render_seconds(self) -> float: ...

    @property
    def max_render_memory_bytes(self) -> int: ...


@dataclass(frozen=True)
class RenderLimits:
    max_file_bytes: int = 1024 * 1024
    max_render_seconds: float = 5.0
    max_render_memory_bytes: int = 512 * 1024 * 1024


class RenderPool:
    def __init__(self, limits: Limits, workers: int = 2) -> None:
        self.limits = limits
        self.workers = workers
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def render(self, files: Mapping[str, str], parameters: Mapping[str, Any]) -> dict[str, str]:
        """Renders in a worker; RenderError for a bad template, including one that runs too long."""
        executor = self._current()
        future = executor.submit(render_files, dict(files), dict(parameters), self.limits.max_file_bytes)
        try:
            return future.result(timeout=self.limits.max_render_seconds)
        except concurrent.futures.TimeoutError:
            self._discard(executor)
            raise RenderError("parameters", f"rendering took longer than {self.limits.max_render_seconds}s") \
                from None
        except (BrokenProcessPool, MemoryError):
            self._discard(executor)  # a worker that ran out of memory is not trusted again
            raise RenderError("parameters", "rendering used more memory than allowed") from None

    def warm_up(self) -> None:
        """Starts the workers now, so the first RenderPipeline call does not pay for it."""
        self._current()

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            _kill(executor)

    def _current(self) -> concurrent.futures.ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                context = multiprocessing.get_context("forkserver")
                executor = concurrent.futures.ProcessPoolExecutor(
                    self.workers, mp_context=context, initializer=_limit_memory,
                    initargs=(self.limits.max_render_memory_bytes,))
                # Start the workers before any render's deadline runs: start-up is not the template's fault.
                executor.submit(_ready).result(timeout=STARTUP_SECONDS)
                self._executor = executor
            return self._executor

    def _discard(self, executor: concurrent.futures.ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is executor:
                self._executor = None
        _kill(executor)


def _kill(executor: concurrent.futures.ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor cannot cancel a running task; killing its workers is the only way out.
    # `_processes` is private but stable since Python 3.2.
    for process in list(getattr(executor, "_processes", {}).values()):
        process.kill()
    executor.shutdown(wait=False, cancel_futures=True)


def _ready() -> bool:
    return True


def _limit_memory(max_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))


__all__ = ["Limits", "RenderError", "RenderLimits", "RenderPool"]
