"""Jinja2 rendering of templated pipelines inside Jinja2's immutable sandbox.

Every `X.jinja2` is rendered to `X`; other files are copied. The sandbox refuses access to
internals (`__class__`, `__globals__`, ...), undefined names fail (StrictUndefined), and output,
repetition and exponent sizes are bounded. This runs inside a worker process with a time and
memory limit (render_pool.py), so a template that still finds a way to be expensive only costs
its own worker.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

SUFFIX = ".jinja2"
MAX_SEQUENCE = 1024 * 1024  # longest string or list `*` may build
MAX_EXPONENT = 1024


class RenderError(Exception):
    """A template could not be rendered; `field` is the file (or `parameters`)."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(field, description)
        self.field = field
        self.description = description


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Also bounds `*`, `**` and `%`, which could otherwise build gigabytes from a short template."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            _check_repeat(left, right)
            return operator.mul(left, right)
        if operator_name == "**":
            if isinstance(right, int) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is larger than {MAX_EXPONENT}")
            return operator.pow(left, right)
        if isinstance(left, str):  # printf-style formatting: widths could be huge
            raise SecurityError("the % operator on strings is not allowed; use the format filter or ~")
        return super().call_binop(context, operator_name, left, right)


def _check_repeat(left: Any, right: Any) -> None:
    for sequence, count in ((left, right), (right, left)):
        sized = isinstance(sequence, str | list | tuple | bytes) and isinstance(count, int)
        if sized and len(sequence) * count > MAX_SEQUENCE:
            raise SecurityError(f"repetition would build more than {MAX_SEQUENCE} items")


def environment() -> jinja2.Environment:
    env = BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    # Filters whose width arguments can allocate without bound.
    for name in ("center", "indent", "wordwrap", "format"):
        env.filters.pop(name, None)
    return env


def render_files(files: Mapping[str, str], parameters: Mapping[str, Any], max_output_bytes: int) -> dict[str, str]:
    """The rendered pipeline: `X.jinja2` -> `X`, everything else unchanged."""
    env = environment()
    rendered: dict[str, str] = {}
    for path, text in files.items():
        if path.endswith(SUFFIX):
            target = path[: -len(SUFFIX)]
            if target in files:
                raise RenderError(path, f"renders to {target!r}, which the pipeline also holds")
            rendered[target] = render_text(env, path, text, parameters, max_output_bytes)
        else:
            rendered[path] = text
    return rendered


def render_text(env: jinja2.Environment, path: str, text: str, parameters: Mapping[str, Any],
                max_output_bytes: int) -> str:
    try:
        template = env.from_string(text)
        return _bounded_join(template.generate(dict(parameters)), path, max_output_bytes)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(path, f"line {exc.lineno}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise RenderError("parameters", f"{path}: {exc.message}") from None
    except SecurityError as exc:
        raise RenderError(path, f"not allowed in a template: {exc}") from None
    except RenderError:
        raise
    except RecursionError:
        raise RenderError(path, "the template nests too deeply") from None
    except (jinja2.TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        raise RenderError(path, f"cannot render: {type(exc).__name__}: {exc}") from None


def _bounded_join(chunks: Any, path: str, max_output_bytes: int) -> str:
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk.encode("utf-8"))
        if size > max_output_bytes:
            raise RenderError(path, f"renders to more than {max_output_bytes} bytes")
        parts.append(chunk)
    return "".join(parts)


def check_syntax(path: str, text: str) -> None:
    """Parses a template without rendering it (used when a template is written)."""
    try:
        environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(path, f"line {exc.lineno}: {exc.message}") from None
