"""Opening files the scheduler reads on a caller's behalf (task logs, outputs) without trusting what is on disk.

Tasks can write where these files live (a local task runs as the scheduler's user; a pod writes into the runs
volume), so a task could plant a symlink, a FIFO or a huge sparse file where a log is expected. Every open here
walks the path from a trusted root one component at a time with O_NOFOLLOW (a symlink anywhere on the way is
refused, not followed), opens the last component non-blocking (a FIFO cannot hang the reader) and accepts only a
regular file. Sizes are checked on the open descriptor, so nothing can be swapped in between check and read.
Messages name the file by its path under the root only: callers may see them, and the root is the scheduler's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath


class UnsafeFile(Exception):
    """The path is not a regular file reachable from its root without symlinks (or is over its size bound)."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _parts(root: Path, path: Path) -> tuple[str, ...]:
    try:
        relative = PurePosixPath(path.relative_to(root))
    except ValueError:
        raise UnsafeFile(f"{path.name} is outside its root") from None
    parts = relative.parts
    if not parts or any(p in ("..", ".", "") for p in parts):
        raise UnsafeFile(f"{relative} is not a file under its root")
    return parts


@contextlib.contextmanager
def open_regular(root: Path, path: Path) -> Iterator[int]:
    """A read-only descriptor of `path`, a regular file under `root`; FileNotFoundError when it does not exist
    (yet), UnsafeFile when something other than directories and a regular file is in the way."""
    parts = _parts(root, path)
    fds: list[int] = []
    try:
        fds.append(os.open(root, _DIR_FLAGS))
        shown = "/".join(parts)
        for part in parts[:-1]:
            fds.append(_open_at(part, fds[-1], _DIR_FLAGS, shown))
        fd = _open_at(parts[-1], fds[-1], _FILE_FLAGS, shown)
        fds.append(fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeFile(f"{shown} is not a regular file")
        os.set_blocking(fd, True)
        yield fd
    finally:
        for opened in reversed(fds):
            os.close(opened)


def _open_at(name: str, dir_fd: int, flags: int, whole: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(errno.ENOENT, "no such file", whole) from None
        # ELOOP: a symlink; ENOTDIR: a file or link where a directory should be; ENXIO: a socket.
        raise UnsafeFile(f"{whole} is not a regular file under its root ({os.strerror(exc.errno or 0)})") from None


def size_of(root: Path, path: Path) -> int:
    """The size of the regular file at `path` (0 when it does not exist)."""
    try:
        with open_regular(root, path) as fd:
            return os.fstat(fd).st_size
    except FileNotFoundError:
        return 0


def read_at(root: Path, path: Path, position: int, count: int) -> tuple[bytes, int]:
    """Up to `count` bytes from `position`, and the file's size; (b"", 0) when it does not exist."""
    try:
        with open_regular(root, path) as fd:
            return os.pread(fd, count, position), os.fstat(fd).st_size
    except FileNotFoundError:
        return b"", 0


def read_bounded(root: Path, path: Path, limit: int) -> bytes | None:
    """The whole file when it holds at most `limit` bytes; None when it does not exist; UnsafeFile when larger."""
    try:
        with open_regular(root, path) as fd:
            data = os.pread(fd, limit + 1, 0)
    except FileNotFoundError:
        return None
    if len(data) > limit:
        raise UnsafeFile(f"{path.name} holds more than the limit of {limit} bytes")
    return data
