"""Page sizes and page tokens (AIP-158)."""

from __future__ import annotations

import pytest

from odin.runtime.errors import InvalidArgument
from odin.runtime.paging import decode_token, encode_token, page_size


def test_page_size_defaults_and_coercion() -> None:
    assert page_size(0, default=50, maximum=500) == 50
    assert page_size(10_000, default=50, maximum=500) == 500
    assert page_size(7, default=50, maximum=500) == 7
    with pytest.raises(InvalidArgument) as negative:
        page_size(-1, default=50, maximum=500)
    assert negative.value.violations == [("page_size", "must not be negative")]


def test_tokens_round_trip_and_are_bound_to_filters() -> None:
    token = encode_token({"id": 42, "t": "2026-01-01"}, filters={"state": "RUNNING"})
    assert decode_token(token, filters={"state": "RUNNING"}) == {"id": 42, "t": "2026-01-01"}
    assert decode_token("", filters=None) is None
    with pytest.raises(InvalidArgument, match="other filters"):
        decode_token(token, filters={"state": "FAILED"})
    with pytest.raises(InvalidArgument, match="page_token"):
        decode_token("garbage!!", filters=None)

