import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from odin.pipeline_spec import KNOWN_TASK_KEYS, json_schema, load_pipeline, render_spec_dict

REPO = Path(__file__).resolve().parents[2]


def _validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schema_matches_generated() -> None:
    generated = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    assert (REPO / "docs" / "pipeline.schema.json").read_text() == generated


def test_schema_main_prints_the_schema() -> None:
    env = {"PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "odin.pipeline_spec.schema"], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(result.stdout) == json_schema()


def test_every_sample_validates_against_schema(sample_dir: Path) -> None:
    document = yaml.safe_load((sample_dir / "main.yml").read_text())
    errors = [e.message for e in _validator().iter_errors(document)]
    assert errors == []
    assert load_pipeline(sample_dir).tasks


def test_schema_task_properties_cover_every_known_key() -> None:
    assert set(json_schema()["$defs"]["task"]["properties"]) == set(KNOWN_TASK_KEYS)


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"tasks": []},
        {"name": "Upper", "tasks": [{"name": "a", "image": "i", "command": "c"}]},
        {"tasks": [{"name": "a", "command": "c"}]},
        {"tasks": [{"name": "a", "image": "i", "command": "c", "resource_type": "svc"}]},
        {"tasks": [{"name": "a", "image": "i", "command": "c", "memory": {"limits": "2GB"}}]},
        {"tasks": [{"name": "a", "image": "i", "command": "c", "timeout": "soon"}]},
        {"tasks": [{"name": "a", "image": "i", "command": "c", "ephem_volumes": [{"name": "v", "type": "x"}]}]},
    ],
)
def test_schema_rejects_what_the_loader_rejects(bad: dict[str, Any]) -> None:
    assert list(_validator().iter_errors(bad))


def test_new_keys_accepted_by_schema() -> None:
    doc = {
        "parallelism": 2,
        "timeout": "2h",
        "tasks": [
            {
                "name": "a",
                "image": "i",
                "command": ["c"],
                "env": {"A": 1},
                "memory": {"limits": "1Gi"},
                "retries": {"limit": 2, "backoff": "30s"},
                "timeout": 90,
            }
        ],
    }
    assert list(_validator().iter_errors(doc)) == []
    load_pipeline(doc)


def test_render_spec_dict_is_json_and_normalised() -> None:
    samples = REPO / "tests" / "data" / "odin-samples"
    rendered = render_spec_dict(load_pipeline(samples / "bert-ner"))
    assert json.loads(json.dumps(rendered)) == rendered
    task = rendered["tasks"][0]
    assert rendered["name"] == "bert-ner"
    assert task["mounts"] == [{"name": "data", "path": "/data", "claim": "data-rw-many"}]
    assert task["retries"] == {"limit": 0, "backoff_seconds": 10.0, "max_backoff_seconds": 300.0, "factor": 2.0}
    assert "raw" not in task
    sst2 = render_spec_dict(load_pipeline(samples / "sst2"))
    assert sst2["warnings"] == ["tasks[0].id: unknown key ignored"]
