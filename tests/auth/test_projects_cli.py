"""`odin projects …` against a real odin-auth, and the CLI renewing a token voided by a membership change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_helpers import ADMIN, AuthService, start_auth
from test_auth_cli import odin

from odin.auth.v1 import auth_pb2 as pb


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthService]:
    state = tmp_path_factory.mktemp("projects-cli")
    auth = start_auth(state, f"sqlite:///{state / 'auth.db'}")
    yield auth
    auth.process.terminate()


def test_projects_commands(service: AuthService, tmp_path: Path) -> None:
    admin_home, user_home = tmp_path / "admin", tmp_path / "user"
    assert odin(service, admin_home, "login", "-u", ADMIN, "--password-stdin",
                stdin=service.admin_password + "\n").returncode == 0
    username, password, _ = service.new_user()
    assert odin(service, user_home, "login", "-u", username, "--password-stdin",
                stdin=password + "\n").returncode == 0
    assert [p["name"] for p in json.loads(odin(service, user_home, "projects", "ls", "--json").stdout)["projects"]] \
        == ["projects/default"]

    created = odin(service, admin_home, "projects", "create", "vision", "--display-name", "Vision team")
    assert created.returncode == 0 and "projects/vision" in created.stdout, created.stderr
    # Adding the user voids their access token; their next command renews it and sees the project.
    assert odin(service, admin_home, "projects", "add-member", "vision", username, "--role", "admin").returncode == 0
    listed = odin(service, user_home, "projects", "ls")
    assert listed.returncode == 0 and "vision" in listed.stdout and "admin" in listed.stdout, listed.stderr
    members = json.loads(odin(service, user_home, "projects", "members", "vision", "--json").stdout)["members"]
    assert members == [{"name": f"projects/vision/members/{username}", "user": f"users/{username}",
                        "role": "ROLE_ADMIN"}]

    used = odin(service, user_home, "projects", "use", "vision")
    assert used.returncode == 0 and (user_home / "odin" / "project").read_text().strip() == "vision"
    assert "Vision team" in odin(service, user_home, "projects", "show").stdout  # the current project

    default = odin(service, admin_home, "projects", "rm", "default", "--json")
    assert default.returncode == 1 and json.loads(default.stdout)["error"]["reason"] == "DEFAULT_PROJECT"
    assert odin(service, admin_home, "projects", "rm-member", "vision", username).returncode == 0
    gone = odin(service, user_home, "projects", "show", "vision", "--json")  # renewed again: no longer a member
    assert gone.returncode == 1 and json.loads(gone.stdout)["error"]["reason"] == "PROJECT_NOT_FOUND"
    assert odin(service, admin_home, "projects", "rm", "vision").returncode == 0
    admin = service.stub(service.admin_token)
    assert [p.name for p in admin.ListProjects(pb.ListProjectsRequest()).projects if p.name == "projects/vision"] \
        == []
