"""Safe YAML loading with size and alias-expansion limits (billion-laughs guard)."""

from __future__ import annotations

from typing import Any

import yaml

from .errors import PipelineInvalid, Violation

MAX_TEXT_BYTES = 1024 * 1024
# Nodes counted as if every alias were expanded in place: what later tree walks will see.
MAX_EXPANDED_NODES = 100_000
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class PipelineLoader(yaml.SafeLoader):
    """SafeLoader that leaves dates as strings, so every value stays JSON-able."""


PipelineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """Parse one YAML document; raise PipelineInvalid on syntax or limit problems."""
    if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise _invalid(f"pipeline text is larger than {MAX_TEXT_BYTES} bytes")
    loader = PipelineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        _check_duplicate_keys(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _invalid(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise _invalid("YAML nesting is too deep") from None
    finally:
        loader.dispose()


def _invalid(description: str) -> PipelineInvalid:
    return PipelineInvalid([Violation("yaml", description)])


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Count expanded nodes iteratively (memoised per shared node); reject cycles and bombs."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_EXPANDED_NODES:
                raise _invalid(f"YAML expands to more than {MAX_EXPANDED_NODES} nodes (alias bomb?)")
        elif key in open_nodes:
            raise _invalid("YAML alias refers to a node that contains it (recursive alias)")
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


def _check_duplicate_keys(root: yaml.Node) -> None:
    """PyYAML silently keeps the last duplicate key; a typo'd second ``image:`` deserves an error."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            _duplicates_in(node)
        stack.extend(_children(node))


def _duplicates_in(node: yaml.MappingNode) -> None:
    keys: set[str] = set()
    for key_node, _value in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
            continue
        if key_node.value in keys:
            line = key_node.start_mark.line + 1
            raise _invalid(f'duplicate key "{key_node.value}" at line {line}')
        keys.add(key_node.value)
