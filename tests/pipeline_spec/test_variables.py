import pytest

from odin.pipeline_spec import KNOWN_VARIABLES, VariableError, substitute, task_variables
from odin.pipeline_spec.variables import template_problems


def test_substitute_template_semantics() -> None:
    env = {"RUN_PATH": "/data/p", "TASK_ID": "p--t"}
    assert substitute("${RUN_PATH}/${TASK_ID}", env) == "/data/p/p--t"
    assert substitute("$RUN_PATH/x", env) == "/data/p/x"
    assert substitute("cost: $$5", env) == "cost: $5"


def test_substitute_unknown_name_is_clear() -> None:
    with pytest.raises(VariableError, match='unknown variable "NOPE"'):
        substitute("${NOPE}", {})


def test_substitute_bad_dollar() -> None:
    with pytest.raises(VariableError, match="Invalid placeholder"):
        substitute("price $ 5", {})


def test_template_problems() -> None:
    assert template_problems("${WORK_PATH}/$TASK_NAME.yml $$HOME") == []
    assert template_problems("${HOME} $1") == [
        'unknown variable "HOME"',
        'invalid "$" at position 8 (write "$$" for a literal "$", or "${NAME}")',
    ]


def test_task_variables_match_original() -> None:
    values = task_variables(
        "train", task_names=["prep", "train"], job_id="sst2-abc", root_path="/data/pipelines", work_path="/w"
    )
    assert values == {
        "ROOT_PATH": "/data/pipelines",
        "WORK_PATH": "/w",
        "DATA_PATH": "/data/pipelines",
        "RUN_PATH": "/data/pipelines/sst2-abc",
        "PIPE_ID": "sst2-abc",
        "JOB_ID": "sst2-abc",
        "TASK_IDS": "['sst2-abc--prep', 'sst2-abc--train']",
        "TASK_ID": "sst2-abc--train",
        "TASK_NAME": "train",
        "TASK_PATH": "/data/pipelines/sst2-abc/train",
    }
    assert set(values) == KNOWN_VARIABLES


def test_task_variables_explicit_paths() -> None:
    values = task_variables(
        "t", task_names=["t"], job_id="j", root_path="/r", work_path="/r/w", data_path="/d", run_path="/run"
    )
    assert (values["DATA_PATH"], values["RUN_PATH"], values["TASK_PATH"]) == ("/d", "/run", "/run/t")
