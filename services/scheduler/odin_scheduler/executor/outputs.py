"""A task's outputs (`$ODIN_OUTPUTS`): one contract for every executor.

A task writes a JSON object to the file `$ODIN_OUTPUTS` names; its keys become `^task.outputs.key`. The file must
hold less than LIMIT_BYTES (4 KiB: on Kubernetes it travels as the container's termination message, which the
kubelet cuts at 4096 bytes, so a message of that length may have been cut and is refused rather than trusted).
Anything else fails the task with a reason naming the problem; nothing is truncated silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from odin_scheduler.executor.base import Outcome

LIMIT_BYTES = 4096  # the kubelet's cap on a termination message; outputs must be shorter
REASON_TOO_LARGE = "OutputsTooLarge"
REASON_INVALID = "InvalidOutputs"


class OutputsError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def parse(data: bytes) -> Mapping[str, Any]:
    """The outputs object in `data`; OutputsError when it is too large, not UTF-8, not JSON or not an object."""
    if len(data) >= LIMIT_BYTES:
        raise OutputsError(REASON_TOO_LARGE, f"$ODIN_OUTPUTS holds {len(data)} bytes or more; outputs must be "
                           f"smaller than {LIMIT_BYTES} bytes (write large results to a file under ${{RUN_PATH}} "
                           "and output its path)")
    if not data.strip():
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OutputsError(REASON_INVALID, f"$ODIN_OUTPUTS is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise OutputsError(REASON_INVALID, f"$ODIN_OUTPUTS is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise OutputsError(REASON_INVALID, f"$ODIN_OUTPUTS must hold a JSON object, not {type(value).__name__}")
    return value


def parse_message(message: str) -> Mapping[str, Any]:
    """Outputs from a Kubernetes termination message. The API carries it as text: bytes that were not UTF-8 arrive
    as U+FFFD, which is taken to mean the file was not UTF-8."""
    if "\ufffd" in message:
        raise OutputsError(REASON_INVALID, "$ODIN_OUTPUTS is not UTF-8")
    return parse(message.encode("utf-8"))


def succeeded(exit_code: int, data: bytes | str | None) -> Outcome:
    """The outcome of an attempt that exited 0 and left `data` as its outputs (None: no file)."""
    if data is None:
        return Outcome(True, exit_code)
    try:
        outputs = parse_message(data) if isinstance(data, str) else parse(data)
    except OutputsError as exc:
        return Outcome(False, exit_code, exc.reason, exc.message, retryable=False)
    return Outcome(True, exit_code, outputs=outputs)
