"""The outputs contract shared by every executor: a JSON object under 4 KiB, or a failure that says why."""

from __future__ import annotations

import pytest
from odin_scheduler.executor import outputs


def test_a_json_object_is_the_outputs() -> None:
    assert outputs.parse(b'{"model": "/runs/m.json", "loss": 0.5}') == {"model": "/runs/m.json", "loss": 0.5}
    assert outputs.parse(b"") == {} and outputs.parse(b"  \n") == {}


@pytest.mark.parametrize(("data", "reason", "words"), [
    (b"[1, 2]", "InvalidOutputs", "JSON object"),
    (b"{oops", "InvalidOutputs", "not valid JSON"),
    (b'{"name": "caf\xe9"}', "InvalidOutputs", "not UTF-8"),
    (b'{"x": "' + b"y" * 4090 + b'"}', "OutputsTooLarge", "smaller than 4096"),
])
def test_bad_outputs_name_the_problem(data: bytes, reason: str, words: str) -> None:
    with pytest.raises(outputs.OutputsError) as caught:
        outputs.parse(data)
    assert caught.value.reason == reason and words in caught.value.message


def test_the_limit_is_exclusive_because_the_kubelet_cuts_at_4096() -> None:
    just_under = b'{"x": "' + b"y" * (outputs.LIMIT_BYTES - 10) + b'"}'
    assert len(just_under) == outputs.LIMIT_BYTES - 1
    assert outputs.parse(just_under)["x"].startswith("y")
    cut = just_under + b" "
    with pytest.raises(outputs.OutputsError, match="4096 bytes or more"):
        outputs.parse(cut)


def test_a_termination_message_with_replacement_characters_was_not_utf8() -> None:
    with pytest.raises(outputs.OutputsError, match="UTF-8"):
        outputs.parse_message('{"name": "caf\ufffd"}')
    assert outputs.parse_message('{"name": "café"}') == {"name": "café"}


def test_the_outcome_fails_without_retry_and_keeps_the_exit_code() -> None:
    bad = outputs.succeeded(0, b"[]")
    assert (bad.succeeded, bad.reason, bad.retryable, bad.exit_code) == (False, "InvalidOutputs", False, 0)
    assert outputs.succeeded(0, None).succeeded and outputs.succeeded(0, '{"a": 1}').outputs == {"a": 1}
