"""Hypothesis strategies for request bytes built from a message descriptor: well-typed, then broken.

Messages are encoded by hand (not with protobuf) so that a string field may hold invalid UTF-8,
a varint may be huge or overlong and a field may arrive with the wrong wire type.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import descriptor as d
from hypothesis import strategies as st

MAX_DEPTH = 3
# Resource-shaped strings reach deeper than random text; none names the admin or the robot, so a fuzzed
# DeleteUser or ChangePassword never locks the suite out.
NAMES = ("", "jobs/fuzz", "jobs/fuzz/tasks/t", "projects/default", "projects/fuzz", "pipelines/fuzz",
         "projects/default/pipelines/fuzz", "users/fuzz-nobody", "users/fuzz-nobody/apiTokens/x", "nodes/fuzz",
         "default", "*", "..", "jobs/../../etc", "a" * 300)
HUGE = (0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1)

_VARINT_TYPES = {d.FieldDescriptor.TYPE_INT32, d.FieldDescriptor.TYPE_INT64, d.FieldDescriptor.TYPE_UINT32,
                 d.FieldDescriptor.TYPE_UINT64, d.FieldDescriptor.TYPE_SINT32, d.FieldDescriptor.TYPE_SINT64,
                 d.FieldDescriptor.TYPE_BOOL, d.FieldDescriptor.TYPE_ENUM}
_FIXED64 = {d.FieldDescriptor.TYPE_FIXED64, d.FieldDescriptor.TYPE_SFIXED64, d.FieldDescriptor.TYPE_DOUBLE}
_FIXED32 = {d.FieldDescriptor.TYPE_FIXED32, d.FieldDescriptor.TYPE_SFIXED32, d.FieldDescriptor.TYPE_FLOAT}


def varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


invalid_utf8 = st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",
                                b"abc\x80def"])
strings = st.one_of(st.sampled_from(NAMES).map(str.encode), st.text(max_size=40).map(str.encode),
                    st.builds(lambda a, b, c: a + b + c, st.binary(max_size=8), invalid_utf8, st.binary(max_size=8)))
numbers = st.one_of(st.sampled_from(HUGE), st.integers(min_value=0, max_value=2**64 - 1),
                    st.integers(min_value=-(2**63), max_value=-1))


@st.composite
def message_bytes(draw: st.DrawFn, descriptor: d.Descriptor, depth: int = 0) -> bytes:
    """A well-shaped encoding of `descriptor` with random values (strings may be invalid UTF-8)."""
    out = bytearray()
    fields = list(descriptor.fields)
    chosen = draw(st.lists(st.sampled_from(fields), max_size=min(len(fields), 6), unique=True)) if fields else []
    for field in chosen:
        count = draw(st.integers(1, 3)) if field.is_repeated else 1
        for _ in range(count):
            out += draw(_field_bytes(field, depth))
    return bytes(out)


def _field_bytes(field: d.FieldDescriptor, depth: int) -> st.SearchStrategy[bytes]:
    number = field.number
    if field.type in _VARINT_TYPES:
        return numbers.map(lambda v: tag(number, 0) + varint(v))
    if field.type in _FIXED64:
        return st.binary(min_size=8, max_size=8).map(lambda v: tag(number, 1) + v)
    if field.type in _FIXED32:
        return st.binary(min_size=4, max_size=4).map(lambda v: tag(number, 5) + v)
    if field.type == d.FieldDescriptor.TYPE_STRING:
        return strings.map(lambda v: length_delimited(number, v))
    if field.type == d.FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64).map(lambda v: length_delimited(number, v))
    if field.type == d.FieldDescriptor.TYPE_MESSAGE and field.message_type is not None and depth < MAX_DEPTH:
        return message_bytes(field.message_type, depth + 1).map(lambda v: length_delimited(number, v))
    return st.just(b"")


@st.composite
def malformed_bytes(draw: st.DrawFn, descriptor: d.Descriptor) -> bytes:
    """Bytes that are not a valid encoding: truncated, wrong wire types, bad lengths, overlong varints, noise."""
    good = draw(message_bytes(descriptor))
    numbers_ = [f.number for f in descriptor.fields] or [1]
    number = draw(st.sampled_from(numbers_))
    kind = draw(st.sampled_from(["truncate", "wrong_wire_type", "long_length", "overlong_varint", "noise",
                                 "append_noise", "group"]))
    if kind == "truncate" and good:
        return good[:draw(st.integers(0, max(len(good) - 1, 0)))]
    if kind == "wrong_wire_type":
        wire = draw(st.sampled_from([0, 1, 2, 5]))
        body = {0: varint(draw(numbers)), 1: b"\x00" * 8, 2: varint(3) + b"abc", 5: b"\x00" * 4}[wire]
        return good + tag(number, wire) + body
    if kind == "long_length":
        return good + tag(number, 2) + varint(draw(st.integers(1, 2**32))) + b"x"
    if kind == "overlong_varint":
        return good + tag(number, 0) + b"\xff" * draw(st.integers(10, 12)) + b"\x01"
    if kind == "group":
        return good + tag(number, draw(st.sampled_from([3, 4, 6, 7])))
    if kind == "append_noise":
        return good + draw(st.binary(min_size=1, max_size=32))
    return bytes(draw(st.binary(min_size=1, max_size=64)))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(),
              st.text(max_size=30), st.sampled_from(NAMES)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
    max_leaves=10,
)


@st.composite
def json_body(draw: st.DrawFn, descriptor: d.Descriptor) -> bytes:
    """A request body: the request's own field names with wrong or extreme values, random JSON, or not JSON."""
    kind = draw(st.sampled_from(["fields", "random", "garbage", "truncated"]))
    if kind == "fields" and descriptor.fields:
        names = draw(st.lists(st.sampled_from([f.json_name for f in descriptor.fields]), max_size=4, unique=True))
        document: Any = {name: draw(json_values) for name in names}
        return json.dumps(document, allow_nan=True).encode()
    if kind == "random":
        return json.dumps(draw(json_values), allow_nan=True).encode()
    if kind == "truncated":
        text = json.dumps({f.json_name: "x" for f in descriptor.fields} or {"a": 1}).encode()
        return text[:draw(st.integers(0, max(len(text) - 1, 0)))]
    return bytes(draw(st.binary(max_size=64)))


path_segments = st.one_of(st.sampled_from(["fuzz", "default", "%FF", "%C3%28", "..", "%00", "a" * 200, "x%2Fy"]),
                          st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12))
query_values = st.one_of(path_segments, st.integers(min_value=-(2**70), max_value=2**70).map(str),
                         st.sampled_from(["true", "nope", "1e999", "-0", "STATE_RUNNING", "BOGUS"]))
