"""``^task.key`` references: whole-value lookups and embedded ``{^a.b}`` spans (original §1.5)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

Lookup = Callable[[str, Sequence[str]], Any]

REFERENCE_PREFIX = "^"
# A name is never a reference; ``depends`` is read as explicit edges instead.
_NOT_SCANNED = frozenset({"name", "depends"})


def is_whole_reference(value: object) -> bool:
    """True for a string that is, as a whole, a reference (starts with ``^``)."""
    return isinstance(value, str) and value.startswith(REFERENCE_PREFIX)


def parse_reference(text: str) -> tuple[str, list[str]]:
    """Split ``^a.b.c`` (or ``a.b.c``) into ``("a", ["b", "c"])``."""
    body = text.removeprefix(REFERENCE_PREFIX)
    task, *keys = body.split(".")
    return task, keys


def resolve_references(value: Any, lookup: Lookup) -> Any:
    """Replace references in strings, recursing into lists, tuples and mappings."""
    if isinstance(value, str):
        return _resolve_string(value, lookup)
    if isinstance(value, list | tuple):
        items = [resolve_references(item, lookup) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, Mapping):
        return {key: resolve_references(item, lookup) for key, item in value.items()}
    return value


def _resolve_string(text: str, lookup: Lookup) -> Any:
    if is_whole_reference(text):
        # Spans inside a whole reference (``^a.{^q}``) are resolved first, then looked up.
        return lookup(*parse_reference(resolve_spans(text, lookup)))
    return resolve_spans(text, lookup)


def resolve_spans(text: str, lookup: Lookup) -> str:
    """Substitute ``{^...}`` spans innermost-first; other braces are kept as written."""
    stack: list[list[str]] = [[]]
    for char in text:
        if char == "{":
            stack.append([])
        elif char == "}" and len(stack) > 1:
            inner = "".join(stack.pop())
            stack[-1].append(_close_span(inner, lookup))
        else:
            stack[-1].append(char)
    # Unclosed ``{`` are lone braces: put them back with whatever followed them.
    while len(stack) > 1:
        inner = "".join(stack.pop())
        stack[-1].append("{" + inner)
    return "".join(stack[0])


def _close_span(inner: str, lookup: Lookup) -> str:
    if inner.startswith(REFERENCE_PREFIX):
        return str(lookup(*parse_reference(inner)))
    return "{" + inner + "}"


def iter_whole_references(task: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """Yield ``(field, reference, task name)`` for top-level values and list elements.

    ``field`` is relative to the task, e.g. ``args[2]``. References whose task part is
    itself computed (``^{^q}.b``) cannot be known statically and are skipped.
    """
    for key, value in task.items():
        if not isinstance(key, str) or key in _NOT_SCANNED:
            continue
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if not is_whole_reference(item):
                continue
            name = parse_reference(item)[0]
            if "{" not in name:
                field = key if index is None else f"{key}[{index}]"
                yield field, item, name


def whole_value_references(task: Mapping[str, Any]) -> set[str]:
    """Task names referenced by whole-value references in a raw task mapping (graph edges)."""
    return {name for _field, _ref, name in iter_whole_references(task)}
