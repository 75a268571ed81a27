"""Shared by the console benchmarks (bench/ui_*.py): the real suite with the console, optionally on
PostgreSQL, and Debian's Chromium driven by Playwright (see docs/ui.md)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from playwright.sync_api import Browser, Page, sync_playwright

from odin import devsuite

REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class Running:
    gateway: str
    password: str
    token: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.gateway}/"

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if not self.token and path != "/v1/auth:login":
            self.token = self.call("POST", "/v1/auth:login",
                                   {"username": "admin", "password": self.password})["tokens"]["accessToken"]
        request = urllib.request.Request(f"http://{self.gateway}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"content-type": "application/json"})
        if self.token:
            request.add_header("authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=60) as reply:
            data: dict[str, Any] = json.loads(reply.read() or b"{}")
            return data


@contextmanager
def suite(scheduler_store_url: str | None = None) -> Iterator[Running]:
    """`odin dev up` with ui/dist served; the scheduler on `scheduler_store_url` when given."""
    os.environ["ODIN_UI_DIR"] = str(REPO / "ui" / "dist")
    if scheduler_store_url:
        original = next(s.env for s in devsuite.SERVICES if s.name == "scheduler")

        def env(state: Path, addr: Any) -> dict[str, str]:
            return {**original(state, addr), "ODIN_SCHEDULER_STORE_URL": scheduler_store_url}
        devsuite.SERVICES = tuple(dataclasses.replace(s, env=env) if s.name == "scheduler" else s
                                  for s in devsuite.SERVICES)
    state = Path(tempfile.mkdtemp(prefix="odin-ui-bench-"))
    running = devsuite.Suite(state)
    services = running.up(timeout=120)
    try:
        yield Running(str(services["gateway"]["address"]), (state / "admin-password").read_text().strip())
    finally:
        running.down()
        shutil.rmtree(state, ignore_errors=True)


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium") or "chromium", headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--enable-precise-memory-info"])
        try:
            yield browser
        finally:
            browser.close()


def login(page: Page, running: Running) -> None:
    page.goto(running.url)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(running.password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Jobs").wait_for()


def renderer_rss_mb(browser_pid: int | None = None) -> float:
    """The largest resident set of a Chromium renderer process (a tab), in MiB."""
    sizes = []
    for proc in psutil.process_iter(["cmdline", "memory_info"]):
        cmdline = proc.info.get("cmdline") or []
        if cmdline and "chromium" in cmdline[0] and "--type=renderer" in cmdline:
            sizes.append(proc.info["memory_info"].rss)
    return max(sizes, default=0) / 1048576


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]
