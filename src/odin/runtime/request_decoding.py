"""Request bytes that do not parse become INVALID_ARGUMENT naming the bad field, never UNKNOWN.

grpc.aio answers a request deserializer's exception with `UNKNOWN` (HTTP 500 through the
gateway) before any interceptor runs. `lenient` wraps the deserializer so that a bad request
becomes an `Undecodable` stand-in instead; the runtime's guard interceptor refuses it with the
error built here. To name the field, `bad_string_path` walks the wire format with the message's
descriptor and finds the first string field whose bytes are not UTF-8 (proto3 requires it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor as _d
from google.protobuf.message import DecodeError

from odin.runtime.errors import InvalidArgument

Deserializer = Callable[[bytes], Any]
# Nesting beyond this is refused by protobuf itself; the walk stops there too.
_MAX_DEPTH = 100


class Undecodable:
    """Stands in for a request whose bytes did not parse; `error` says why."""

    __slots__ = ("error",)

    def __init__(self, error: InvalidArgument) -> None:
        self.error = error


def lenient(deserializer: Deserializer | None) -> Deserializer | None:
    """`deserializer`, except that bytes it refuses give an `Undecodable` instead of an exception."""
    if deserializer is None or getattr(deserializer, "_odin_lenient", False):
        return deserializer
    descriptor = _descriptor_of(deserializer)

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, RuntimeError, ValueError, TypeError) as exc:  # upb raises DecodeError; be generous
            return Undecodable(decode_error(descriptor, data, exc))

    deserialize._odin_lenient = True  # type: ignore[attr-defined]
    return deserialize


def decode_error(descriptor: _d.Descriptor | None, data: bytes, exc: BaseException | None = None) -> InvalidArgument:
    """The INVALID_ARGUMENT for request bytes that did not parse as `descriptor`."""
    path = bad_string_path(descriptor, data) if descriptor is not None else None
    if path is not None:
        return InvalidArgument(f"{path}: is not valid UTF-8", [(path, "is not valid UTF-8")],
                               reason="INVALID_UTF8", metadata={"field": path})
    kind = descriptor.full_name if descriptor is not None else "request"
    return InvalidArgument(f"the request is not a valid {kind} message", reason="MALFORMED_REQUEST")


def bad_string_path(descriptor: _d.Descriptor, data: bytes) -> str | None:
    """The path (`job.labels["k"]`, `tasks[2].name`) of the first string field that is not UTF-8, if any."""
    try:
        return _walk(descriptor, memoryview(data), 0)
    except _Malformed:
        return None


class _Malformed(Exception):
    """The bytes are not wire format at all (truncated, bad tag): no field to name."""


def _walk(descriptor: _d.Descriptor, data: memoryview, depth: int) -> str | None:
    if depth > _MAX_DEPTH:
        raise _Malformed
    counts: dict[int, int] = {}
    position = 0
    while position < len(data):
        tag, position = _varint(data, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            _, position = _varint(data, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        elif wire_type == 2:
            length, position = _varint(data, position)
            chunk = data[position:position + length]
            if len(chunk) != length:
                raise _Malformed
            position += length
            field = descriptor.fields_by_number.get(number)
            if field is not None:
                index = counts.get(number, 0)
                counts[number] = index + 1
                found = _check(field, chunk, index, depth)
                if found is not None:
                    return found
        else:  # groups (3, 4) and the unused 6, 7: not in proto3 messages
            raise _Malformed
        if position > len(data):
            raise _Malformed
    return None


def _check(field: _d.FieldDescriptor, chunk: memoryview, index: int, depth: int) -> str | None:
    """The bad path inside one length-delimited value of `field` (the `index`-th occurrence)."""
    repeated = _is_repeated(field)
    name = f"{field.name}[{index}]" if repeated and not _is_map(field) else field.name
    if field.type == _d.FieldDescriptor.TYPE_STRING:
        return None if _utf8(chunk) else name
    if field.type != _d.FieldDescriptor.TYPE_MESSAGE:
        return None
    if _is_map(field):
        return _check_map_entry(field, chunk, depth)
    assert field.message_type is not None  # TYPE_MESSAGE fields have one
    inner = _walk(field.message_type, chunk, depth + 1)
    return None if inner is None else f"{name}.{inner}"


def _check_map_entry(field: _d.FieldDescriptor, chunk: memoryview, depth: int) -> str | None:
    assert field.message_type is not None
    inner = _walk(field.message_type, chunk, depth + 1)
    if inner is None:
        return None
    if inner.startswith("key"):
        return field.name
    key = _map_key(chunk)
    rest = inner.removeprefix("value").lstrip(".")
    named = f'{field.name}["{key}"]' if key is not None else field.name
    return f"{named}.{rest}" if rest else named


def _map_key(chunk: memoryview) -> str | None:
    """A map entry's key (field 1) as text, when it is a string or a number (read by hand: the entry as a
    whole does not parse)."""
    position = 0
    while position < len(chunk):
        tag, position = _varint(chunk, position)
        number, wire_type = tag >> 3, tag & 7
        if number == 1 and wire_type == 2:
            length, position = _varint(chunk, position)
            return bytes(chunk[position:position + length]).decode("utf-8", "replace")[:100]
        if number == 1 and wire_type == 0:
            value, _ = _varint(chunk, position)
            return str(value)
        if wire_type == 0:
            _, position = _varint(chunk, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        elif wire_type == 2:
            length, position = _varint(chunk, position)
            position += length
        else:
            return None
    return None


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise _Malformed
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _utf8(chunk: memoryview) -> bool:
    try:
        bytes(chunk).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_repeated(field: _d.FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _is_map(field: _d.FieldDescriptor) -> bool:
    entry = field.message_type
    return (field.type == _d.FieldDescriptor.TYPE_MESSAGE and _is_repeated(field) and entry is not None
            and bool(entry.GetOptions().map_entry))


def _descriptor_of(deserializer: Deserializer) -> _d.Descriptor | None:
    """The message descriptor behind `SomeRequest.FromString` (None for anything else)."""
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return descriptor if isinstance(descriptor, _d.Descriptor) else None
