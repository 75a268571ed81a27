"""`odin pipelines ...` as a user runs it, against a real odin-pipelines process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline_samples import main_yml
from support import auth
from support.processes import ServiceProcess

ODIN = str(Path(sys.executable).parent / "odin")


def odin(service: ServiceProcess, *args: str, ok: bool = True, token: str | None = None,
         env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ODIN_TOKEN": token or auth.token_for("carol", "user"), **(env_extra or {})}
    env.pop("ODIN_ADDRESS", None)
    if not env_extra or "ODIN_PROJECT" not in env_extra:
        env.pop("ODIN_PROJECT", None)
    if not env_extra or "XDG_CONFIG_HOME" not in env_extra:
        env["XDG_CONFIG_HOME"] = "/nonexistent"  # no session project of the person running the tests
    result = subprocess.run([ODIN, "pipelines", *args, "--address", service.address], capture_output=True,
                            text=True, timeout=60, env=env)
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    return result


def test_push_show_pull_history_rm(pipelines_service: ServiceProcess, tmp_path: Path) -> None:
    source = tmp_path / "cli-flow"
    (source / "conf").mkdir(parents=True)
    (source / "main.yml").write_text(main_yml())
    (source / "conf" / "a.yml").write_text("a: 1\n")
    (source / ".hidden").write_text("stays local")
    assert "created cli-flow" in odin(pipelines_service, "push", str(source), "-m", "first").stdout

    (source / "conf" / "a.yml").unlink()
    (source / "b.yml").write_text("b: 2\n")
    assert "updated cli-flow" in odin(pipelines_service, "push", str(source)).stdout

    shown = json.loads(odin(pipelines_service, "show", "cli-flow", "--json").stdout)
    assert {f["path"] for f in shown["files"]} == {"main.yml", "b.yml"}
    assert shown["revision"]["authorName"] == "carol"
    assert odin(pipelines_service, "show", "cli-flow", "--file", "b.yml").stdout == "b: 2\n"

    history = json.loads(odin(pipelines_service, "history", "cli-flow", "--json").stdout)["revisions"]
    assert [r["message"] for r in history] == ["Update pipeline cli-flow", "first"]
    first = history[1]["commit"]

    target = tmp_path / "pulled"
    odin(pipelines_service, "pull", "cli-flow", str(target), "--revision", first)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == \
        ["conf/a.yml", "main.yml"]
    refused = odin(pipelines_service, "pull", "cli-flow", str(target), ok=False)
    assert "not empty" in refused.stderr

    listed = odin(pipelines_service, "ls", "--prefix", "cli-").stdout
    assert "cli-flow" in listed and "carol" in listed
    odin(pipelines_service, "rm", "cli-flow")
    missing = json.loads(odin(pipelines_service, "show", "cli-flow", "--json", ok=False).stdout)
    assert missing["error"]["reason"] == "PIPELINE_NOT_FOUND"


def test_validate_and_render(pipelines_service: ServiceProcess, tmp_path: Path) -> None:
    source = tmp_path / "cli-tmpl"
    source.mkdir()
    (source / "main.yml.jinja2").write_text(
        "tasks:\n- name: t\n  image: '{{ image }}'\n  command: [echo, '{{ name }}']\n")
    odin(pipelines_service, "create", "cli-tmpl", str(source))
    out = odin(pipelines_service, "render", "cli-tmpl", "--x:image", "busybox:1").stdout
    assert "--- main.yml" in out and "image: 'busybox:1'" in out and "echo, 'cli-tmpl'" in out
    odin(pipelines_service, "render", "cli-tmpl", "--x:image=alpine", "--out", str(tmp_path / "rendered"))
    assert "alpine" in (tmp_path / "rendered" / "main.yml").read_text()

    assert "valid" in odin(pipelines_service, "validate", "cli-tmpl", "--x:image", "x").stdout
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "main.yml").write_text("tasks:\n- name: a\n  image: x\n  command: c\n  depends: trian\n")
    failed = odin(pipelines_service, "validate", str(broken), "--json", ok=False)
    verdict = json.loads(failed.stdout)
    assert not verdict["valid"] and verdict["violations"][0]["field"] == "tasks[0].depends"

    bad = odin(pipelines_service, "push", str(broken), ok=False)
    assert "tasks[0].depends" in bad.stderr


def test_repo_status_is_for_admins(pipelines_service: ServiceProcess) -> None:
    state = json.loads(odin(pipelines_service, "sync", "--json", token=auth.default_token()).stdout)
    assert state["syncState"] == "SYNC_STATE_NO_REMOTE" and state["branch"] == "main"
    refused = json.loads(odin(pipelines_service, "repo", "--json", ok=False).stdout)
    assert refused["error"]["code"] == "PERMISSION_DENIED"


def test_project_flag_environment_and_session(pipelines_service: ServiceProcess, tmp_path: Path) -> None:
    admin = auth.default_token()  # an admin is in every project: this checks the flag, test_pipeline_projects the rules
    source = tmp_path / "team-flow"
    source.mkdir()
    (source / "main.yml").write_text(main_yml())
    assert "created team-flow" in odin(pipelines_service, "push", str(source), "--project", "team-x",
                                       token=admin).stdout
    (source / "extra.yml").write_text("e: 1\n")
    assert "updated team-flow" in odin(pipelines_service, "push", str(source), "--project", "projects/team-x",
                                       token=admin).stdout
    assert "team-flow" in odin(pipelines_service, "ls", "--project", "team-x", token=admin).stdout
    assert "team-flow" not in odin(pipelines_service, "ls", token=admin).stdout  # the default project
    shown = json.loads(odin(pipelines_service, "show", "team-flow", "--json", token=admin,
                            env_extra={"ODIN_PROJECT": "team-x"}).stdout)
    assert (shown["name"], shown["project"]) == ("projects/team-x/pipelines/team-flow", "projects/team-x")
    config = tmp_path / "config"
    (config / "odin").mkdir(parents=True)
    (config / "odin" / "project").write_text("team-x\n")  # what `odin projects use team-x` leaves
    history = json.loads(odin(pipelines_service, "history", "team-flow", "--json", token=admin,
                              env_extra={"XDG_CONFIG_HOME": str(config)}).stdout)["revisions"]
    assert len(history) == 2
    full = odin(pipelines_service, "show", "projects/team-x/pipelines/team-flow", "--file", "extra.yml", token=admin)
    assert full.stdout == "e: 1\n"
    missing = json.loads(odin(pipelines_service, "show", "team-flow", "--json", token=admin, ok=False).stdout)
    assert missing["error"]["reason"] == "PIPELINE_NOT_FOUND"
    odin(pipelines_service, "rm", "team-flow", "--project", "team-x", token=admin)
    assert "team-flow" not in odin(pipelines_service, "ls", "--project", "team-x", token=admin).stdout
