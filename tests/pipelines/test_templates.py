"""Jinja2 rendering: parameters, strict undefined names, and a sandbox that refuses escapes."""

from __future__ import annotations

import time

import pytest
from odin_pipelines.config import Limits

from odin.pipeline_spec.render_pool import RenderPool
from odin.pipeline_spec.templates import RenderError, render_files

MIB = 1024 * 1024


def render(text: str, **params: object) -> str:
    return render_files({"main.yml.jinja2": text}, params, MIB)["main.yml"]


def test_renders_templates_and_copies_other_files() -> None:
    out = render_files({"main.yml.jinja2": "name: {{ name }}-{{ backend|default('pt') }}\n",
                        "conf/x.yml.jinja2": "lr: {{ lr }}", "plain.txt": "{{ not rendered }}"},
                       {"name": "sst2", "lr": 0.1}, MIB)
    assert out == {"main.yml": "name: sst2-pt\n", "conf/x.yml": "lr: 0.1", "plain.txt": "{{ not rendered }}"}


def test_undefined_parameters_fail_naming_the_file() -> None:
    with pytest.raises(RenderError) as caught:
        render("image: {{ version }}")
    assert caught.value.field == "parameters"
    assert "main.yml.jinja2" in caught.value.description and "'version' is undefined" in caught.value.description


def test_syntax_errors_name_the_line() -> None:
    with pytest.raises(RenderError) as caught:
        render("a: 1\nb: {% if %}")
    assert caught.value.field == "main.yml.jinja2" and caught.value.description.startswith("line 2:")


def test_rendering_onto_an_existing_file_is_refused() -> None:
    with pytest.raises(RenderError, match="also holds"):
        render_files({"a.jinja2": "x", "a": "y"}, {}, MIB)


@pytest.mark.parametrize("escape", [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ [].append(1) }}",
    "{{ {}.update(a=1) }}",
    "{{ namespace.__init__.__globals__ }}",
])
def test_sandbox_refuses_internals(escape: str) -> None:
    with pytest.raises(RenderError) as caught:
        render(escape)
    assert caught.value.field == "main.yml.jinja2"
    assert "not allowed" in caught.value.description or "undefined" in caught.value.description


@pytest.mark.parametrize("bomb", [
    "{{ 'x' * 100000000 }}",
    "{{ [1] * 100000000 }}",
    "{{ 10 ** 100000000 }}",
    "{{ '%999999999s' % 'a' }}",
    "{{ 'a'|center(999999999) }}",
])
def test_sizes_are_bounded(bomb: str) -> None:
    with pytest.raises(RenderError):
        render(bomb)


def test_output_size_is_limited() -> None:
    with pytest.raises(RenderError, match="more than"):
        render_files({"main.yml.jinja2": "{% for i in range(20000) %}{{ 'x' * 100 }}{% endfor %}"}, {}, MIB)


def test_include_and_import_find_nothing() -> None:
    for text in ("{% include '/etc/passwd' %}", "{% import 'os' as os %}", "{% extends '../x' %}"):
        with pytest.raises(RenderError):
            render(text)


def test_render_pool_kills_a_runaway_template() -> None:
    pool = RenderPool(Limits(max_render_seconds=1.5))
    try:
        assert pool.render({"main.yml.jinja2": "a: {{ x }}"}, {"x": 1}) == {"main.yml": "a: 1"}
        started = time.monotonic()
        with pytest.raises(RenderError, match="longer than"):
            pool.render({"main.yml.jinja2": "{% for i in range(99999) %}{% for j in range(99999) %}"
                                            "{% endfor %}{% endfor %}"}, {})
        assert time.monotonic() - started < 5
        # the pool recovers for the next call
        assert pool.render({"main.yml.jinja2": "b: {{ y }}"}, {"y": 2}) == {"main.yml": "b: 2"}
    finally:
        pool.close()


def test_render_pool_bounds_memory() -> None:
    pool = RenderPool(Limits(max_render_memory_bytes=256 * MIB, max_render_seconds=20))
    try:
        hog = "{% set s = 'x' * 1000000 %}{% set ns = namespace(l=[]) %}" \
              "{% for i in range(5000) %}{% set ns.l = ns.l + [s ~ i] %}{% endfor %}{{ ns.l|length }}"
        with pytest.raises(RenderError):
            pool.render({"main.yml.jinja2": hog}, {})
        assert pool.render({"main.yml.jinja2": "ok"}, {}) == {"main.yml": "ok"}
    finally:
        pool.close()
