"""`odin login|whoami|logout`, `odin users …` and `odin tokens …` against a real odin-auth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_helpers import ADMIN, AuthService, start_auth

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthService]:
    state = tmp_path_factory.mktemp("cli")
    auth = start_auth(state, f"sqlite:///{state / 'auth.db'}")
    yield auth
    auth.process.terminate()


def odin(service: AuthService, home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    env.update({"ODIN_ADDRESS": service.address, "XDG_CONFIG_HOME": str(home), "ODIN_HOME": str(home / "state")})
    return subprocess.run([str(BIN / "odin"), *args], input=stdin, capture_output=True, text=True, env=env,
                          timeout=60)


def test_login_session_users_tokens_logout(service: AuthService, tmp_path: Path) -> None:
    login = odin(service, tmp_path, "login", "-u", ADMIN, "--password-stdin", stdin=service.admin_password + "\n")
    assert login.returncode == 0, login.stderr
    session = tmp_path / "odin" / "token"
    assert session.stat().st_mode & 0o777 == 0o600
    assert service.admin_password not in session.read_text()
    assert odin(service, tmp_path, "whoami").stdout.strip() == f"{ADMIN} (admin)"

    created = odin(service, tmp_path, "users", "create", "dora", "--admin", "--password-stdin",
                   stdin="dora-password-123\n")
    assert created.returncode == 0 and "users/dora (admin)" in created.stdout, created.stderr
    bad = odin(service, tmp_path, "users", "create", "Bad!", "--password-stdin", stdin="x\n")
    assert bad.returncode == 1 and "user.username" in bad.stderr and "password" in bad.stderr
    listed = json.loads(odin(service, tmp_path, "users", "list", "--json").stdout)
    assert {u["username"] for u in listed["users"]} >= {ADMIN, "dora"}

    token = odin(service, tmp_path, "tokens", "create", "--name", "ci", "--expires-in", "1h", "--json")
    secret = json.loads(token.stdout)["token"]
    assert secret.startswith("odin_")
    assert secret not in odin(service, tmp_path, "tokens", "list").stdout

    # An access token about to expire is renewed with the refresh token on the next command.
    stored = json.loads(session.read_text())
    session.write_text(json.dumps({**stored, "access_token_expire_time": 0}))
    assert odin(service, tmp_path, "whoami").returncode == 0
    assert json.loads(session.read_text())["refresh_token"] != stored["refresh_token"]

    assert odin(service, tmp_path, "logout").returncode == 0
    assert not session.exists()
    after = odin(service, tmp_path, "whoami")
    assert after.returncode == 1 and "odin login" in after.stderr
