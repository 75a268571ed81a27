"""How `odin` commands print: aligned tables, short times and durations, proto JSON, and errors."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from grpc import aio

from odin.client.errors import OdinError, from_rpc_error

_COLORS = {
    "SUCCEEDED": "32", "RUNNING": "33", "QUEUED": "36", "PENDING": "2",
    "FAILED": "31", "CANCELLED": "35", "SKIPPED": "2",
}


def message_dict(message: Message) -> dict[str, Any]:
    """The proto3 JSON form (lowerCamelCase keys, enum names), as the HTTP gateway serves it."""
    result: dict[str, Any] = integral_numbers(json_format.MessageToDict(message))
    return result


def integral_numbers(value: Any) -> Any:
    """`value` with whole floats as ints: a spec travels as a `Struct`, whose numbers are all doubles, so
    `retries: 2` would show as `2.0`. (Envoy's JSON printer writes whole doubles without `.0` too.)"""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: integral_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral_numbers(v) for v in value]
    return value


def print_json(document: Any, stream: TextIO | None = None) -> None:
    """One JSON document on one line (JSON lines when called repeatedly)."""
    target = stream or sys.stdout
    target.write(json.dumps(document if not isinstance(document, Message) else message_dict(document)) + "\n")
    target.flush()


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> list[str]:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max(len(_plain(str(r[i]))) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [_pad(str(cell), widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return lines


def colour_enabled(stream: TextIO | None = None) -> bool:
    target = stream or sys.stdout
    return target.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def state_text(name: str, colour: bool) -> str:
    code = _COLORS.get(name)
    return f"\x1b[{code}m{name}\x1b[0m" if colour and code else name


def to_datetime(value: timestamp_pb2.Timestamp) -> datetime | None:
    """None for an unset timestamp."""
    if not value.seconds and not value.nanos:
        return None
    return value.ToDatetime(tzinfo=UTC)


def short_time(value: timestamp_pb2.Timestamp) -> str:
    """Local `HH:MM:SS` today, `YYYY-MM-DD HH:MM` otherwise; `-` when unset."""
    moment = to_datetime(value)
    if moment is None:
        return "-"
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")


def duration_text(seconds: float | None) -> str:
    """`850ms`, `4.2s`, `3m04s`, `2h05m`; `-` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def elapsed(start: timestamp_pb2.Timestamp, end: timestamp_pb2.Timestamp, now: datetime | None = None) -> str:
    """The time between `start` and `end` (or now, while running)."""
    begun = to_datetime(start)
    if begun is None:
        return "-"
    finished = to_datetime(end) or now or datetime.now(UTC)
    return duration_text((finished - begun).total_seconds())


def print_error(error: OdinError, as_json: bool) -> None:
    """The message, then each field violation on its own line (stderr); or one JSON document (stdout)."""
    if as_json:
        print_json({"error": error.to_dict()})
        return
    lines = [f"odin: {summary_line(error)}"]
    lines += [f"  {violation}" for violation in error.violations if str(violation) != error.message]
    if error.code == "UNAUTHENTICATED":
        lines.append("  (log in with `odin login`, or set ODIN_TOKEN)")
    sys.stderr.write("\n".join(lines) + "\n")


def summary_line(error: OdinError) -> str:
    """The error's message without the violations it repeats (they follow on their own lines)."""
    texts = [str(v) for v in error.violations]
    if not texts or error.message in texts:
        return error.message
    cut = min((error.message.find(t) for t in texts if t in error.message), default=-1)
    if cut <= 0:
        return error.message
    count = len(texts)
    head = error.message[:cut].rstrip(" :;,")
    return f"{head} ({count} problem{'s' if count != 1 else ''}):"


def run_reporting_errors(work: Coroutine[Any, Any, int], as_json: bool) -> int:
    """Runs a command's coroutine; a failed call or a bad setting becomes a message and exit code 1, never a
    traceback. Every command kit runs its commands through here."""
    try:
        return asyncio.run(work)
    except aio.AioRpcError as exc:
        print_error(from_rpc_error(exc), as_json)
    except OdinError as exc:  # ConfigurationError (a bad setting) included
        print_error(exc, as_json)
    return 1


def _plain(text: str) -> str:
    """`text` without colour escapes, for width computations."""
    while "\x1b[" in text:
        start = text.index("\x1b[")
        end = text.index("m", start)
        text = text[:start] + text[end + 1:]
    return text


def _pad(text: str, width: int) -> str:
    return text + " " * (width - len(_plain(text)))
