"""The polling helper every integration test relies on: exceptions mean "not yet", the deadline still holds."""

from __future__ import annotations

import asyncio

import pytest
from support.waiting import assert_eventually, assert_eventually_async


def test_a_check_that_raises_before_it_holds_is_retried() -> None:
    seen: dict[str, int] = {}
    calls = iter(range(100))

    def check() -> bool:
        n = next(calls)
        if n >= 3:
            seen["node"] = n
        return seen["node"] >= 3  # KeyError until the third call

    assert assert_eventually(check, timeout=5, interval=0.001) is True


def test_the_last_exception_is_reported_at_the_deadline() -> None:
    with pytest.raises(AssertionError, match=r"KeyError: 'nodes/watched'") as failure:
        assert_eventually(lambda: {}["nodes/watched"], timeout=0.05, interval=0.01, what="node appears")
    assert isinstance(failure.value.__cause__, KeyError)


def test_async_form_retries_exceptions_too() -> None:
    state = {"n": 0}

    async def check() -> int:
        state["n"] += 1
        if state["n"] < 3:
            raise ConnectionError("not up yet")
        return state["n"]

    assert asyncio.run(assert_eventually_async(check, timeout=5, interval=0.001)) == 3
