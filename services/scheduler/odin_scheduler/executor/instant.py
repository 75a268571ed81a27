"""An in-process executor with no processes: it measures the engine's own cost and drives engine tests.

The task's `command` says what an attempt does:
    ["true"]                 succeed at once          ["false"]          fail at once (exit 1)
    ["exit", "N"]            end with status N        ["sleep", "S"]     succeed after S seconds
    ["fail-times", "K"]      fail the first K attempts, then succeed
    ["outputs", "<json>"]    succeed publishing these outputs
Anything else succeeds at once. Attempts live only in memory, so nothing survives a restart.
"""

from __future__ import annotations

import asyncio
import itertools
import json

from odin_scheduler.executor.base import Handle, NoPlatformHooks, Outcome, PermanentError, TaskRun


class InstantExecutor(NoPlatformHooks):
    name = "instant"

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._cancelled: dict[int, asyncio.Event] = {}
        self.started: list[tuple[str, int]] = []

    async def start(self, run: TaskRun) -> Handle:
        ident = next(self._ids)
        self._cancelled[ident] = asyncio.Event()
        self.started.append((run.task_id, run.attempt))
        return {"id": ident}

    async def adopt(self, run: TaskRun, handle: Handle) -> Handle:
        if int(handle.get("id", 0)) not in self._cancelled:
            raise PermanentError("in-process attempts do not survive a restart", reason="SchedulerRestarted")
        return handle

    async def wait(self, run: TaskRun, handle: Handle) -> Outcome:
        cancelled = self._cancelled[int(handle["id"])]
        try:
            return await self._behave(run, cancelled)
        finally:
            self._cancelled.pop(int(handle["id"]), None)

    async def cancel(self, run: TaskRun, handle: Handle) -> None:
        event = self._cancelled.get(int(handle["id"]))
        if event is not None:
            event.set()

    def resource_id(self, handle: Handle) -> str:
        return f"instant-{handle.get('id', '')}"

    async def _behave(self, run: TaskRun, cancelled: asyncio.Event) -> Outcome:
        verb, *rest = (*run.command, *run.args) or ("true",)
        if verb == "sleep":
            try:
                await asyncio.wait_for(cancelled.wait(), float(rest[0]))
                return Outcome(False, 137, "Killed", "cancelled")
            except TimeoutError:
                return Outcome(True, 0)
        if verb == "false":
            return Outcome(False, 1, "NonZeroExit", "exited with status 1")
        if verb == "exit":
            code = int(rest[0])
            return Outcome(code == 0, code, "" if code == 0 else "NonZeroExit", f"exited with status {code}")
        if verb == "fail-times":
            ok = run.attempt > int(rest[0])
            return Outcome(ok, 0 if ok else 1, "" if ok else "NonZeroExit", "")
        if verb == "outputs":
            return Outcome(True, 0, outputs=json.loads(rest[0]))
        await asyncio.sleep(0)
        return Outcome(True, 0)
