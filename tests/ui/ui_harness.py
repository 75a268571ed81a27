"""Helpers for the console tests: the suite's HTTP/JSON API (for setup only) and the system Chromium."""

from __future__ import annotations

import json
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[2]
UI_DIST = REPO / "ui" / "dist"


@dataclass
class Console:
    """The running suite with the console: the gateway's URL and the dev admin's credentials."""

    gateway: str
    password: str
    state_dir: Path
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.gateway}/"

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One HTTP/JSON call through the gateway, as the admin (test setup, not what is tested)."""
        if not self.token and path != "/v1/auth:login":
            reply = self.call("POST", "/v1/auth:login", {"username": "admin", "password": self.password})
            self.token = reply["tokens"]["accessToken"]
        request = urllib.request.Request(f"http://{self.gateway}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"content-type": "application/json"})
        if self.token:
            request.add_header("authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=30) as reply:
            data: dict[str, Any] = json.loads(reply.read() or b"{}")
            return data

    def push_pipeline(self, directory: Path, pipeline_id: str) -> None:
        files = [{"path": p.relative_to(directory).as_posix(), "content": p.read_text()}
                 for p in sorted(directory.rglob("*")) if p.is_file()]
        self.call("POST", f"/v1/pipelines?pipelineId={pipeline_id}", {"files": files})

    def create_inline_job(self, main_yml: str, labels: dict[str, str] | None = None) -> str:
        reply = self.call("POST", "/v1/jobs", {"inline": {"mainYml": main_yml}, "labels": labels or {}})
        return str(reply["job"]["name"]).removeprefix("jobs/")


def chromium_path() -> str:
    """Debian's Chromium (scripts/setup installs it); Playwright never downloads a browser here."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium is not installed; scripts/setup installs it (apt-get install chromium)", pytrace=False)


def require_build() -> Path:
    """ui/dist, built by scripts/setup; stale or missing builds fail with the command that fixes them."""
    index = UI_DIST / "index.html"
    if not index.is_file():
        pytest.fail("the console is not built: cd ui && npm ci && npm run build (scripts/setup does it)", pytrace=False)
    built = index.stat().st_mtime
    sources = [p for p in (REPO / "ui" / "src").rglob("*") if p.is_file()]
    newer = [p for p in sources if p.stat().st_mtime > built + 1]
    if newer:
        pytest.fail(f"ui/dist is older than {newer[0].relative_to(REPO)}: cd ui && npm run build", pytrace=False)
    return UI_DIST


def login(page: Page, console: Console, password: str | None = None) -> None:
    """Fills and submits the login form."""
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password or console.password)
    page.get_by_role("button", name="Log in").click()
