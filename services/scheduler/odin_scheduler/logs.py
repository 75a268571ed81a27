"""Reading task output from the log store (files under the scheduler's state path) from a byte offset, live or not.

Every read goes through `safe_files` (no symlinks, regular files only), and at most the last `max_bytes` of a log
are served: a task that wrote (or planted) a 10 GiB file cannot make the scheduler stream all of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from odin.runtime.lifecycle import sleep_or_stop
from odin_scheduler import safe_files

CHUNK = 64 * 1024
POLL_SECONDS = 0.1
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB


class LogUnreadable(Exception):
    """The log cannot be served: not a regular file, or the offset is before the part that is served."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def resolve_offset(root: Path, path: Path, offset: int, max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """A negative offset counts back from the current end of the log; offsets before the served window fail."""
    size = _size(root, path)
    position = offset if offset >= 0 else max(0, size + offset)
    first = max(0, size - max_bytes)
    if position < first:
        raise LogUnreadable(f"the log holds {size} bytes and only the last {max_bytes} are served: "
                            f"ask from offset {first} or later (or a negative offset)", field="offset")
    return position


async def follow_log(
    root: Path, path: Path, offset: int, *, follow: bool, ended: Callable[[], Awaitable[bool]],
    stopping: asyncio.Event, max_bytes: int = DEFAULT_MAX_BYTES,
) -> AsyncIterator[tuple[int, bytes]]:
    """(offset, bytes) pieces from `offset`; with `follow`, until the attempt `ended` and all is read.

    Pieces end on a UTF-8 character boundary while more may come, so no character is split.
    """
    position = resolve_offset(root, path, offset, max_bytes)
    done = False
    while True:
        data = _read(root, path, position)
        if data and not done:
            data = data[: _complete_utf8(data)] or data
        if data:
            yield position, data
            position += len(data)
            continue
        if done or not follow or stopping.is_set():
            return
        done = await ended()  # read once more after the end: the last output may have just landed
        if not done:
            await sleep_or_stop(stopping, POLL_SECONDS)


def _size(root: Path, path: Path) -> int:
    try:
        return safe_files.size_of(root, path)
    except safe_files.UnsafeFile as exc:
        raise LogUnreadable(f"the log cannot be read: {exc}") from None


def _read(root: Path, path: Path, position: int) -> bytes:
    try:
        data, _ = safe_files.read_at(root, path, position, CHUNK)
    except safe_files.UnsafeFile as exc:
        raise LogUnreadable(f"the log cannot be read: {exc}") from None
    return data


def _complete_utf8(data: bytes) -> int:
    """Length of the longest prefix that does not end inside a multi-byte character."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0b1100_0000 != 0b1000_0000:  # a lead byte or ASCII
            needed = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return len(data) if needed <= back else len(data) - back
    return len(data)
