"""JSON Schema (draft 2020-12) for main.yml, built from the same constants the validator uses.

The schema checks shape only; ``load_pipeline`` additionally checks names, the graph and
``${VAR}`` names. Print it with ``python -m odin.pipeline_spec.schema``.
"""

from __future__ import annotations

import json
from typing import Any

from .durations import DURATION_PATTERN
from .model import PULL_POLICIES, RESOURCE_TYPE_ALIASES, TASK_KEY_ALIASES
from .quantities import QUANTITY_PATTERN
from .validate import MAX_TASK_NAME_LENGTH, PIPELINE_NAME_PATTERN, TASK_NAME_PATTERN

SCHEMA_ID = "https://odin.invalid/schemas/pipeline.schema.json"

Schema = dict[str, Any]


def _nullable(schema: Schema) -> Schema:
    # The original wrote ``key: null`` for "unset" (see the sst2 sample).
    return {"anyOf": [schema, {"type": "null"}]}


def _string_list() -> Schema:
    return {"type": "array", "items": {"type": ["string", "number"]}}


def _str_or_list() -> Schema:
    return _nullable({"anyOf": [{"type": ["string", "number"]}, _string_list()]})


def _one_or_many(item: Schema) -> Schema:
    return _nullable({"anyOf": [item, {"type": "array", "items": item}]})


def _object(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _string_map() -> Schema:
    return _nullable({"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}})


def _definitions() -> dict[str, Schema]:
    text = {"type": "string"}
    count = {"type": "integer", "minimum": 0}
    return {
        "duration": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}]},
        "quantity": _nullable(
            {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": QUANTITY_PATTERN}]}
        ),
        "resources": _nullable(
            _object({"limits": {"$ref": "#/$defs/quantity"}, "requests": {"$ref": "#/$defs/quantity"}})
        ),
        "mount": _object({"name": text, "path": text, "claim": _nullable(text)}, ("name", "path")),
        "secret": _object(
            {"name": text, "path": _nullable(text), "sub_path": _nullable(text), "mode": _nullable(count)},
            ("name",),
        ),
        "config_map": _object({"name": text, "path": text, "sub_path": text}, ("name", "path", "sub_path")),
        "ephem_volume": _object(
            {
                "name": text,
                "type": {"const": "emptyDir"},
                "medium": text,
                "size_limit": {"$ref": "#/$defs/quantity"},
            },
            ("name", "type", "medium"),
        ),
        "retries": _nullable(
            {
                "anyOf": [
                    count,
                    _object(
                        {
                            "limit": _nullable(count),
                            "backoff": {"$ref": "#/$defs/duration"},
                            "max_backoff": {"$ref": "#/$defs/duration"},
                            "factor": {"type": "number", "minimum": 1},
                        }
                    ),
                ]
            }
        ),
        "task": _task_schema(),
    }


def _task_schema() -> Schema:
    resource_types = sorted(RESOURCE_TYPE_ALIASES)
    properties: dict[str, Schema] = {
        "name": {"type": "string", "pattern": f"^{TASK_NAME_PATTERN}$", "maxLength": MAX_TASK_NAME_LENGTH},
        "image": {"type": "string", "minLength": 1},
        "command": {"anyOf": [{"type": "string"}, {**_string_list(), "minItems": 1}]},
        "args": _str_or_list(),
        "depends": _str_or_list(),
        "mounts": _one_or_many({"$ref": "#/$defs/mount"}),
        "secrets": _one_or_many({"$ref": "#/$defs/secret"}),
        "config_maps": _one_or_many({"$ref": "#/$defs/config_map"}),
        "ephem_volumes": _one_or_many({"$ref": "#/$defs/ephem_volume"}),
        "num_gpus": _nullable({"type": "integer", "minimum": 0}),
        "num_workers": _nullable({"type": "integer", "minimum": 1}),
        "cpu": {"$ref": "#/$defs/resources"},
        "memory": {"$ref": "#/$defs/resources"},
        "security_context": _nullable(
            _object({k: _nullable({"type": "integer", "minimum": 0}) for k in _SECURITY_KEYS})
        ),
        "pull_policy": _nullable({"enum": list(PULL_POLICIES)}),
        "node_selector": _string_map(),
        "resource_type": _nullable({"enum": resource_types}),
        "inputs": _str_or_list(),
        "outputs": _nullable({"anyOf": [{"type": ["string", "number"]}, _string_list(), _string_map()]}),
        "env": _string_map(),
        "retries": {"$ref": "#/$defs/retries"},
        "timeout": _nullable({"$ref": "#/$defs/duration"}),
        "queue": _nullable(_OBJECT_NAME),
        "runtime": _nullable(_OBJECT_NAME),
        "object_patch": _nullable({"type": "object", "properties": {"spec": {"type": "object"}},
                                   "additionalProperties": False}),
    }
    for alias, canonical in TASK_KEY_ALIASES.items():
        properties[alias] = properties[canonical]
    schema = _object(properties, ("name", "image", "command"))
    # Unknown task keys only produce warnings, so the schema must allow them.
    schema["additionalProperties"] = True
    return schema


_SECURITY_KEYS = ("fs_group", "run_as_group", "run_as_user")
_OBJECT_NAME: Schema = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 63}


def json_schema() -> Schema:
    """The schema for main.yml as a JSON-able dict."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Odin pipeline (main.yml)",
        "type": "object",
        "required": ["tasks"],
        # Extra top-level keys are allowed: samples park YAML anchors there.
        "additionalProperties": True,
        "properties": {
            "name": _nullable({"type": "string", "pattern": f"^{PIPELINE_NAME_PATTERN}$"}),
            "tasks": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/task"}},
            "parallelism": _nullable({"type": "integer", "minimum": 1}),
            "timeout": _nullable({"$ref": "#/$defs/duration"}),
            "queue": _nullable(_OBJECT_NAME),
        },
        "$defs": _definitions(),
    }


def main() -> None:
    print(json.dumps(json_schema(), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
