from pathlib import Path

import pytest
import yaml

from odin.pipeline_spec import PipelineInvalid, Violation, load_pipeline

MINIMAL = "tasks:\n- {name: a, image: img, command: run}\n"


def _violations(source: object) -> list[str]:
    with pytest.raises(PipelineInvalid) as info:
        load_pipeline(source)  # type: ignore[arg-type]
    return [str(v) for v in info.value.violations]


def test_every_sample_loads_without_violations(sample_dir: Path) -> None:
    from_dir = load_pipeline(sample_dir)
    from_file = load_pipeline(sample_dir / "main.yml")
    from_text = load_pipeline((sample_dir / "main.yml").read_text())
    assert from_dir == from_file == from_text
    assert from_dir.tasks


def test_samples_normalised_values(tmp_path: Path) -> None:
    samples = Path(__file__).resolve().parents[1] / "data" / "odin-samples"
    bert = load_pipeline(samples / "bert-ner")
    task = bert.task("conll-0")
    assert bert.name == "bert-ner"
    assert task.image == "meadml/mead2-pytorch-gpu:latest"  # via the *mead-gpu alias
    assert task.mounts[0].claim == "data-rw-many"
    assert (task.command, task.num_gpus, task.pull_policy) == (("mead-train",), 1, "Always")
    sst2 = load_pipeline(samples / "sst2")
    assert sst2.name == "flow"
    assert sst2.tasks[0].outputs is None and sst2.tasks[0].num_workers == 1
    assert [str(w) for w in sst2.warnings] == ["tasks[0].id: unknown key ignored"]
    elastic = load_pipeline(samples / "imagenet-elastic").tasks[0]
    assert (elastic.resource_type, elastic.num_workers) == ("ElasticJob", 2)


def test_accepts_bytes_and_mapping_and_default_name() -> None:
    assert load_pipeline(MINIMAL.encode()).name == "flow"
    spec = load_pipeline({"tasks": [{"name": "a", "image": "i", "command": ["x"]}]}, default_name="mine")
    assert spec.name == "mine"


def test_missing_file_is_reported(tmp_path: Path) -> None:
    [message] = _violations(tmp_path)
    assert message == f"cannot read {tmp_path / 'main.yml'}: No such file or directory"


def test_yaml_syntax_error() -> None:
    [message] = _violations("tasks: [\n")
    assert message.startswith("yaml: invalid YAML:")


def test_text_size_cap() -> None:
    big = MINIMAL + "# " + "x" * (1024 * 1024) + "\n"
    assert _violations(big) == [f"yaml: pipeline text is larger than {1024 * 1024} bytes"]


def test_oversized_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "main.yml"
    path.write_text(MINIMAL + "#" * (1024 * 1024 + 10))
    assert _violations(tmp_path)[0].startswith("yaml: pipeline text is larger")


def test_billion_laughs_rejected() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = "\n".join(lines) + "\n" + MINIMAL
    [message] = _violations(bomb)
    assert message == "yaml: YAML expands to more than 100000 nodes (alias bomb?)"


def test_modest_alias_use_is_fine() -> None:
    text = "img: &img base:1\nenv: &env {A: '1'}\ntasks:\n"
    text += "".join(f"- {{name: t{i}, image: *img, command: c, env: *env}}\n" for i in range(50))
    assert len(load_pipeline(text).tasks) == 50


def test_recursive_alias_rejected() -> None:
    [message] = _violations("loop: &l [*l]\n" + MINIMAL)
    assert "recursive alias" in message


def test_no_arbitrary_python_objects() -> None:
    [message] = _violations("x: !!python/object/apply:os.system ['true']\n" + MINIMAL)
    assert message.startswith("yaml: invalid YAML:")


def test_duplicate_keys_rejected() -> None:
    assert _violations("tasks:\n- name: a\n  image: i\n  image: j\n  command: c\n") == [
        'yaml: duplicate key "image" at line 4'
    ]


def test_merge_keys_work() -> None:
    text = "base: &base {image: i, command: c}\ntasks:\n- <<: *base\n  name: a\n"
    assert load_pipeline(text).tasks[0].image == "i"


def test_dates_stay_strings() -> None:
    spec = load_pipeline("tasks:\n- {name: a, image: i, command: c, args: [2020-01-01]}\n")
    assert spec.tasks[0].args == ("2020-01-01",)


def test_violation_str() -> None:
    assert str(Violation("tasks[2].depends", 'unknown task "trian"')) == 'tasks[2].depends: unknown task "trian"'
    assert str(Violation("", "whole")) == "whole"


def test_empty_document() -> None:
    assert _violations("") == ['a pipeline must be a mapping with a "tasks" list']
    assert _violations("some/dir/main.yml") == [
        'a pipeline must be a mapping with a "tasks" list (got a plain string: pass a pathlib.Path to load a file)'
    ]


def test_yaml_module_untouched() -> None:
    # Dropping the timestamp resolver must only affect our loader subclass.
    assert yaml.safe_load("d: 2020-01-01")["d"].year == 2020
