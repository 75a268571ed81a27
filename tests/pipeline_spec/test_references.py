"""Cases modelled on the original tests/test_rewrites.py, plus edge extraction."""

from collections.abc import Sequence
from typing import Any

import pytest

from odin.pipeline_spec import parse_reference, resolve_references, whole_value_references

MAPPING: dict[str, Any] = {
    "^a.b": "first-value",
    "^c": "c-value",
    "^d.r": "dr-vals",
    "^ec": "c",
    "^a.b.c": "a-b-c-value",
    "^z": ".x",
    "^y.x": "b.c",
    "^q": "a",
    "^a.{example}": "a-with-example",
    "^list.items": ["x", "y"],
    "^none.key": None,
}


def lookup(task: str, keys: Sequence[str]) -> Any:
    return MAPPING["^" + ".".join([task, *keys])]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("^a.b", "first-value"),
        ("missing", "missing"),
        ("text-{^c}-text", "text-c-value-text"),
        ("text-{^d.r}-more-{^a.b}", "text-dr-vals-more-first-value"),
        ("text-{example}-more", "text-{example}-more"),
        ("{^c}-ex", "c-value-ex"),
        ("ex-{^a.b}", "ex-first-value"),
        ("{^d.r}", "dr-vals"),
        ("text-{^a.b.{^ec}}-example", "text-a-b-c-value-example"),
        ("example={^a.{^y{^z}}}", "example=a-b-c-value"),
        ("example={^{^q}.b.{^ec}}", "example=a-b-c-value"),
        ("example={^a.{example}}", "example=a-with-example"),
        ("example-}-more", "example-}-more"),
        ("example={-more", "example={-more"),
        ("{{^c}", "{c-value"),
        ("", ""),
    ],
)
def test_rewrites(text: str, expected: str) -> None:
    assert resolve_references(text, lookup) == expected


def test_whole_reference_may_return_non_strings() -> None:
    assert resolve_references("^list.items", lookup) == ["x", "y"]
    assert resolve_references("^none.key", lookup) is None
    assert resolve_references("x={^none.key}", lookup) == "x=None"


def test_lookup_receives_task_and_keys() -> None:
    calls: list[tuple[str, list[str]]] = []

    def record(task: str, keys: Sequence[str]) -> str:
        calls.append((task, list(keys)))
        return "v"

    resolve_references(["^train.outputs.model", "--m={^export.resource_id}"], record)
    assert calls == [("train", ["outputs", "model"]), ("export", ["resource_id"])]


def test_recurses_into_containers_and_keeps_other_values() -> None:
    value = {"args": ["^c", 3, ("{^c}",)], "n": None}
    assert resolve_references(value, lookup) == {"args": ["c-value", 3, ("c-value",)], "n": None}


def test_parse_reference() -> None:
    assert parse_reference("^a.b.c") == ("a", ["b", "c"])
    assert parse_reference("^a") == ("a", [])


def test_whole_value_references_are_edges_but_embedded_spans_are_not() -> None:
    task = {
        "name": "eval",
        "args": ["--model", "^train.outputs.model", "--x={^prep.path}"],
        "inputs": "^prep.outputs",
        "extra": "^other",
        "depends": "^ignored-here",
        "command": "run-{^nope}",
    }
    assert whole_value_references(task) == {"train", "prep", "other"}


def test_computed_task_names_are_not_edges() -> None:
    assert whole_value_references({"args": ["^{^q}.b"]}) == set()
