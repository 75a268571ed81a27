"""google.protobuf.Timestamp from the float seconds services keep internally."""

from __future__ import annotations

import time

from google.protobuf import timestamp_pb2


def from_seconds(seconds: float) -> timestamp_pb2.Timestamp:
    """A Timestamp for `seconds` since the epoch, to the nanosecond."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def now() -> timestamp_pb2.Timestamp:
    """The current time."""
    return from_seconds(time.time())
