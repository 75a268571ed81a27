"""Ownership and modes that let a task running as the task user work, and keep it out of the scheduler's files.

    <root>                     root, 0711: reachable, not listable (no browsing other jobs' workspaces)
    <root>/<job>  (RUN_PATH)   the task user, 0700; so is each task's directory under it
    <root>/.pipelines/<job>    root, readable by all (WORK_PATH: the pipeline's files, read-only to tasks)
    <state>/attempts/.../<n>   root, 0711; the files in it 0600, except `outputs.json`: the task user's, 0600

Directories above <root> and <state> must be searchable for the task user to reach its paths: search (o+x) is
added where missing, never read, and each change is logged. Everything here runs as root on paths a task may have
tampered with (RUN_PATH is the task user's), so nothing follows a symlink: ownership changes go through
descriptors opened with O_NOFOLLOW.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from odin_scheduler.executor.base import PermanentError
from odin_scheduler.executor.task_user import TaskUser

log = logging.getLogger("odin.scheduler.local")

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# `<state>/attempts/<job>/<task>/<n>`: the attempt directory sits this many levels below the state root.
ATTEMPT_DEPTH = 4


def make_searchable(path: Path) -> None:
    """Adds search permission for others on `path` and every directory above it that lacks it."""
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            log.warning("made %s searchable (o+x) so that local tasks, which run as another user, can reach their "
                        "run path; nothing in it became listable or readable", directory)  # fmt: skip


def set_mode(path: Path, mode: int) -> None:
    fd = _open_dir(path)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def give_dir(path: Path, user: TaskUser) -> None:
    """Makes the (existing) directory `path` the task user's own, mode 0700."""
    fd = _open_dir(path)
    try:
        info = os.fstat(fd)
        if (info.st_uid, info.st_gid) != (user.uid, user.gid):
            os.fchown(fd, user.uid, user.gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def share_read_only(path: Path) -> None:
    """Lets everyone read the tree under `path` (WORK_PATH), whatever umask wrote it; symlinks are left alone."""
    if not path.is_dir() or path.is_symlink():
        return
    for directory, dirs, files in os.walk(path):
        _add_mode(Path(directory), 0o555)
        for name in files:
            _add_mode(Path(directory) / name, 0o444)
        dirs[:] = [d for d in dirs if not (Path(directory) / d).is_symlink()]


def outputs_file(path: Path, user: TaskUser) -> None:
    """Creates `$ODIN_OUTPUTS` for the task user to write (its directory is root's, so it cannot be swapped)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchown(fd, user.uid, user.gid)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def state_root(attempt_dir: Path) -> Path:
    return attempt_dir.parents[ATTEMPT_DEPTH - 1]


def _open_dir(path: Path) -> int:
    try:
        return os.open(path, _DIR)
    except OSError as exc:
        # ELOOP/ENOTDIR: a task replaced a directory Odin expects with a symlink or a file.
        raise PermanentError(f"cannot prepare {path.name}: {exc.strerror or exc}", reason="StartFailed") from None


def _add_mode(path: Path, bits: int) -> None:
    info = path.lstat()
    if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) & bits != bits:
        path.chmod(stat.S_IMODE(info.st_mode) | bits)  # not a symlink, in a tree only root writes
