"""The local executor: each attempt is a host process group running `command` + `args`.

Every attempt runs under a tiny `sh` wrapper in its own session (so its process group can be killed
whole) that first claims the attempt by creating `pid` with noclobber (a second start of the same
attempt cannot run the command twice), runs the command with output going to `output.log`, and
writes the command's exit status to `exitcode`. Because the status lands in a file, an attempt that
outlived a scheduler crash still has a known result when the restarted scheduler adopts it.

Tasks get a clean environment, and when the scheduler is root they run as an unprivileged task user: the wrapper
stays root (it writes the scheduler's files, mode 0600) and only the command drops to that user (`task_user`,
`task_dirs` say what it may reach).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from odin_scheduler import safe_files
from odin_scheduler.executor import outputs, task_dirs, task_user
from odin_scheduler.executor.base import Handle, NoPlatformHooks, Outcome, PermanentError, TaskRun
from odin_scheduler.executor.task_user import DEFAULT_TASK_USER, TaskUser

log = logging.getLogger("odin.scheduler.local")

# $0 is the attempt directory, "$@" the command. Exit 125 without an `exitcode` file means "the
# attempt was already claimed by another start"; the executor then adopts the claimer.
WRAPPER = 'set -C; echo $$ > "$0/pid" || exit 125; "$@"; c=$?; echo $c > "$0/exitcode"; exit $c'
# With a task user: the scheduler's files private (umask 077), the command under the scheduler's usual umask.
WRAPPER_AS_USER = ('set -C; umask 077; echo $$ > "$0/pid" || exit 125; umask {umask:03o}; "$@"; c=$?; umask 077; '
                   'echo $c > "$0/exitcode"; exit $c')
CLAIMED_EXIT = 125
POLL_SECONDS = 0.2


class LocalExecutor(NoPlatformHooks):
    name = "local"

    def __init__(self, kill_grace_seconds: float = 5.0, task_user_name: str | None = DEFAULT_TASK_USER,
                 is_root: Callable[[], bool] = task_user.is_root) -> None:  # fmt: skip
        self.kill_grace_seconds = kill_grace_seconds
        # None: tasks run as the scheduler's own user (it is not root; the start log said what that means).
        self.task_user: TaskUser | None = task_user.resolve(task_user_name, is_root)
        self._umask = _current_umask()
        self._searchable: set[Path] = set()
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    async def start(self, run: TaskRun) -> Handle:
        run.attempt_dir.mkdir(parents=True, exist_ok=True)
        run.cwd.mkdir(parents=True, exist_ok=True)
        if self.task_user is not None:
            await asyncio.to_thread(self._prepare, run, self.task_user)
        existing = _read_pid(run.attempt_dir)
        if existing is not None:
            return await self.adopt(run, {"pid": existing, "dir": str(run.attempt_dir)})
        proc = self._spawn(run)
        start_time = _create_time(proc.pid)
        self._children[proc.pid] = proc
        return {"pid": proc.pid, "start_time": start_time, "dir": str(run.attempt_dir)}

    async def adopt(self, run: TaskRun, handle: Handle) -> Handle:
        pid = int(handle.get("pid") or _read_pid(run.attempt_dir) or 0)
        if not pid:
            # Recorded as running but never claimed: start it now (the claim keeps it single).
            return await self.start(run)
        recorded = handle.get("start_time")
        alive = _create_time(pid)
        same = _started_at(alive, recorded)
        if not same and _read_exit_code(run.attempt_dir) is None:
            raise PermanentError(
                f"process {pid} of attempt {run.attempt} is gone and left no exit status",
                reason="SchedulerRestarted",
            )
        return {"pid": pid, "start_time": alive if same else recorded, "dir": str(run.attempt_dir), "adopted": True}

    async def wait(self, run: TaskRun, handle: Handle) -> Outcome:
        pid = int(handle["pid"])
        child = self._children.get(pid)
        await _wait_exit(pid, handle.get("start_time"))
        returncode: int | None = None
        if child is not None:
            returncode = child.wait()  # already exited: this only reaps it
            del self._children[pid]
        code = _read_exit_code(run.attempt_dir)
        if code is None and returncode == CLAIMED_EXIT and (claimer := _read_pid(run.attempt_dir)) != pid:
            return await self.wait(run, await self.adopt(run, {"pid": claimer}))
        return _outcome(run, code, returncode)

    async def cancel(self, run: TaskRun, handle: Handle) -> None:
        pid = int(handle["pid"])
        if not _same_process(pid, handle.get("start_time")):
            return
        _signal_group(pid, signal.SIGTERM)
        deadline = asyncio.get_running_loop().time() + self.kill_grace_seconds
        # A process group has no exit notification to await; poll it for the grace period.
        while _group_alive(pid) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        _signal_group(pid, signal.SIGKILL)

    def resource_id(self, handle: Handle) -> str:
        return str(handle.get("pid", ""))

    def _prepare(self, run: TaskRun, user: TaskUser) -> None:
        """What a task running as `user` needs: its run path to write, WORK_PATH to read, `$ODIN_OUTPUTS`."""
        shared = run.shared
        state = task_dirs.state_root(run.attempt_dir)
        for top in (shared.root.parent if shared else run.cwd.parent, state.parent):
            if top not in self._searchable:
                task_dirs.make_searchable(top)
                self._searchable.add(top)
        directory = run.attempt_dir
        while directory != state.parent:  # the attempt directory up to the state root: reachable, not listable
            task_dirs.set_mode(directory, 0o711)
            directory = directory.parent
        if shared is not None:
            task_dirs.set_mode(shared.root, 0o711)
            if shared.work.parent.is_dir():
                task_dirs.set_mode(shared.work.parent, 0o711)
            task_dirs.share_read_only(shared.work)
            task_dirs.give_dir(shared.run, user)
        task_dirs.give_dir(run.cwd, user)
        task_dirs.outputs_file(run.attempt_dir / "outputs.json", user)

    def _spawn(self, run: TaskRun) -> subprocess.Popen[bytes]:
        user = self.task_user
        command = [*run.command, *run.args]
        wrapper = WRAPPER
        if user is not None:
            command = user.command(command)
            wrapper = WRAPPER_AS_USER.format(umask=self._umask)
        env = task_user.clean_environment(run.env, _odin_variables(run), run.cwd, user)
        # The log is the scheduler's: a task writes to it only through the descriptor it is handed.
        fd = os.open(run.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        # A plain Popen waited on through a pidfd: asyncio's child watcher would add a thread per process.
        with os.fdopen(fd, "ab") as output:
            try:
                return subprocess.Popen(
                    ["/bin/sh", "-c", wrapper, str(run.attempt_dir), *command],
                    cwd=run.cwd, env=env, stdin=subprocess.DEVNULL,
                    stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            except OSError as exc:
                raise PermanentError(f"cannot start the task: {exc.strerror or exc}", reason="StartFailed") from None


def _odin_variables(run: TaskRun) -> dict[str, str]:
    return {
        "ODIN_TASK_ID": run.task_id,
        "ODIN_JOB_ID": run.job_id,
        "ODIN_OUTPUTS": str(run.attempt_dir / "outputs.json"),
    }


def _current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def _outcome(run: TaskRun, code: int | None, returncode: int | None) -> Outcome:
    if code == 0:
        return _with_outputs(run)
    if code is not None:
        return Outcome(False, code, "NonZeroExit", f"exited with status {code}")
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        return Outcome(False, 128 - returncode, "Killed", f"killed by {name}")
    return Outcome(False, None, "SchedulerRestarted", "the process ended without an exit status")


def _with_outputs(run: TaskRun) -> Outcome:
    path = run.attempt_dir / "outputs.json"
    try:
        data = safe_files.read_bounded(run.attempt_dir, path, outputs.LIMIT_BYTES)
    except safe_files.UnsafeFile as exc:
        reason = outputs.REASON_TOO_LARGE if "limit" in str(exc) else outputs.REASON_INVALID
        return Outcome(False, 0, reason, f"$ODIN_OUTPUTS cannot be read: {exc}", retryable=False)
    return outputs.succeeded(0, data)


def _read_pid(attempt_dir: Path) -> int | None:
    try:
        return int((attempt_dir / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _read_exit_code(attempt_dir: Path) -> int | None:
    try:
        return int((attempt_dir / "exitcode").read_text().strip())
    except (OSError, ValueError):
        return None


def _create_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _same_process(pid: int, start_time: Any) -> bool:
    return _started_at(_create_time(pid), start_time)


def _started_at(alive: float | None, start_time: Any) -> bool:
    """Whether a live process (its create time, None when gone) is the one recorded; pids get reused."""
    return alive is not None and (start_time is None or abs(alive - float(start_time)) < 0.01)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _wait_exit(pid: int, start_time: Any) -> None:
    """Waits until the process exits (our child, or adopted after a restart): pidfd, else polling."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        while _same_process(pid, start_time):  # noqa: ASYNC110 (no pidfd: polling is all there is)
            await asyncio.sleep(POLL_SECONDS)
        return
    if not _same_process(pid, start_time):
        os.close(fd)
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, on_exit)
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)

