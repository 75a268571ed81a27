"""Odin's pipeline language: load, validate and normalise ``main.yml`` (no I/O beyond reading it)."""

from typing import Any

from .errors import PipelineInvalid, Violation
from .loader import load_pipeline
from .model import (
    KNOWN_TASK_KEYS,
    RESOURCE_TYPE_ALIASES,
    ConfigMapMount,
    EphemeralVolume,
    Mount,
    PipelineSpec,
    Resources,
    RetryPolicy,
    SecretMount,
    SecurityContext,
    TaskSpec,
)
from .references import parse_reference, resolve_references, whole_value_references
from .render import render_spec_dict
from .variables import KNOWN_VARIABLES, VariableError, substitute, task_id, task_variables


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for main.yml; see ``odin.pipeline_spec.schema``."""
    # Imported lazily so ``python -m odin.pipeline_spec.schema`` does not find it preloaded.
    from .schema import json_schema as build

    return build()


__all__ = [
    "KNOWN_TASK_KEYS",
    "KNOWN_VARIABLES",
    "RESOURCE_TYPE_ALIASES",
    "ConfigMapMount",
    "EphemeralVolume",
    "Mount",
    "PipelineInvalid",
    "PipelineSpec",
    "Resources",
    "RetryPolicy",
    "SecretMount",
    "SecurityContext",
    "TaskSpec",
    "VariableError",
    "Violation",
    "json_schema",
    "load_pipeline",
    "parse_reference",
    "render_spec_dict",
    "resolve_references",
    "substitute",
    "task_id",
    "task_variables",
    "whole_value_references",
]
