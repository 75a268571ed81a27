"""Reading task output from the log store (files under the run path) from a byte offset, live or not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from odin.runtime.lifecycle import sleep_or_stop

CHUNK = 64 * 1024
POLL_SECONDS = 0.1


def resolve_offset(path: Path, offset: int) -> int:
    """A negative offset counts back from the current end of the log."""
    if offset >= 0:
        return offset
    size = path.stat().st_size if path.exists() else 0
    return max(0, size + offset)


async def follow_log(
    path: Path, offset: int, *, follow: bool, ended: Callable[[], Awaitable[bool]], stopping: asyncio.Event
) -> AsyncIterator[tuple[int, bytes]]:
    """(offset, bytes) pieces from `offset`; with `follow`, until the attempt `ended` and all is read.

    Pieces end on a UTF-8 character boundary while more may come, so no character is split.
    """
    position = resolve_offset(path, offset)
    done = False
    while True:
        data = _read(path, position)
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


def _read(path: Path, position: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(position)
            return handle.read(CHUNK)
    except FileNotFoundError:
        return b""


def _complete_utf8(data: bytes) -> int:
    """Length of the longest prefix that does not end inside a multi-byte character."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0b1100_0000 != 0b1000_0000:  # a lead byte or ASCII
            needed = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return len(data) if needed <= back else len(data) - back
    return len(data)
