"""`--x:key value` pipeline parameters, as the original `odin-run` took them.

`--x:a.b 1 --x:c=two` becomes `{"a": {"b": "1"}, "c": "two"}`: dots nest, values stay strings (as mead's
`parse_and_merge_overrides` left them; templates convert what they need).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

PREFIX = "--x:"


class OverrideError(ValueError):
    """A malformed `--x:` argument; the message names it."""


def split_overrides(argv: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """(nested parameters, the other arguments in their order)."""
    parameters: dict[str, Any] = {}
    rest: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            rest.extend([token, *tokens])
            break
        if not token.startswith(PREFIX):
            rest.append(token)
            continue
        key, has_value, value = token[len(PREFIX):].partition("=")
        if not has_value:
            following = next(tokens, None)
            if following is None:
                raise OverrideError(f"{token} needs a value")
            value = following
        merge_override(parameters, key, value)
    return parameters, rest


def merge_override(parameters: dict[str, Any], key: str, value: str) -> None:
    """Sets `parameters[a][b] = value` for key `a.b`; a later value for the same key wins."""
    parts = key.split(".")
    if not key or not all(parts):
        raise OverrideError(f'{PREFIX}{key}: a key is names joined by dots, e.g. "{PREFIX}train.epochs 3"')
    node = parameters
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise OverrideError(f'{PREFIX}{key}: "{".".join(parts[:depth + 1])}" is already set to a value')
        node = child
    if isinstance(node.get(parts[-1]), dict):
        raise OverrideError(f'{PREFIX}{key}: "{key}" already holds nested keys')
    node[parts[-1]] = value


class OverridesParser(argparse.ArgumentParser):
    """A sub-command parser that takes `--x:` arguments anywhere and stores them as `args.parameters`."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        try:
            parameters, rest = split_overrides(list(args or []))
        except OverrideError as exc:
            self.error(str(exc))
        parsed, extras = super().parse_known_args(rest, namespace)
        parsed.parameters = parameters
        return parsed, extras


def accept_overrides(parser: argparse.ArgumentParser) -> None:
    """Makes `parser` (created by add_parser) an OverridesParser."""
    parser.__class__ = OverridesParser
