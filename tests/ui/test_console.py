"""The web console in Debian's Chromium against the real suite (every service, Envoy serving ui/dist).

Each test polls with Playwright's auto-waiting expectations; none sleeps. Screenshots of every page go
to $ODIN_UI_SCREENSHOTS (see docs/ui.md).
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect
from ui_harness import Console, login

LONG_JOB = """name: sleeper
tasks:
  - name: sleep
    image: python:3.12-slim
    command: [python3, -c, "import time; print('sleeping', flush=True); time.sleep(300)"]
"""


def test_login_redirects_back_and_shows_api_errors(context: BrowserContext, console: Console,
                                                   screenshots: Path) -> None:
    page = context.new_page()
    page.goto(console.url + "#/pipelines")
    expect(page).to_have_url(re.compile(r"#/login\?next=%2Fpipelines"))
    login(page, console, password="not-the-password")
    error = page.get_by_test_id("api-error")
    expect(error).to_contain_text("UNAUTHENTICATED")
    page.screenshot(path=screenshots / "login.png")
    login(page, console)
    expect(page).to_have_url(re.compile(r"#/pipelines$"))
    expect(page.get_by_test_id("user")).to_have_text("users/admin")


def test_401_sends_to_login_and_back(page: Page, console: Console) -> None:
    page.goto(console.url + "#/nodes")
    expect(page.get_by_role("heading", name="Nodes & GPUs")).to_be_visible()
    # The stored tokens stop being valid (as after a revocation): the next API call is refused with
    # 401, the refresh is refused too, and the console asks for a login, then returns to this page.
    page.evaluate("""() => {
        const s = JSON.parse(localStorage.getItem('odin.session'));
        s.accessToken = 'invalid'; s.refreshToken = 'invalid';
        localStorage.setItem('odin.session', JSON.stringify(s));
    }""")
    page.reload()
    expect(page).to_have_url(re.compile(r"#/login\?next=%2Fnodes"))
    login(page, console)
    expect(page.get_by_role("heading", name="Nodes & GPUs")).to_be_visible()
    expect(page.get_by_test_id("node").first).to_be_visible()


def test_run_hello_watch_dag_and_logs_of_both_attempts(page: Page, console: Console, screenshots: Path) -> None:
    page.goto(console.url + "#/pipelines/hello")
    expect(page.get_by_test_id("file-content")).to_contain_text("name: hello")
    page.screenshot(path=screenshots / "pipelines.png")
    page.get_by_role("button", name="run").click()
    page.get_by_label("Labels").fill("origin=ui-test")
    page.get_by_role("button", name="Run hello").click()
    expect(page).to_have_url(re.compile(r"#/jobs/hello-[a-z0-9]+$"))
    dag = page.get_by_test_id("dag")
    for task in ("prepare", "train-a", "train-b", "evaluate"):
        expect(dag.locator(f'[data-task="{task}"]')).to_be_visible()
    # Live: the states move without a reload; the DAG sees train-b's retry and the job's end.
    expect(dag.locator('[data-task="prepare"]')).to_have_attribute("data-state", "SUCCEEDED", timeout=60_000)
    expect(page.get_by_test_id("job-state")).to_have_text("SUCCEEDED", timeout=90_000)
    expect(dag.locator('[data-task="evaluate"]')).to_have_attribute("data-state", "SUCCEEDED")
    expect(dag.locator('[data-task="train-b"]')).to_contain_text("attempt 2")
    dag.locator('[data-task="train-b"]').click()
    attempts = page.get_by_test_id("attempts")
    expect(attempts.locator("tr[data-attempt]")).to_have_count(2)
    page.screenshot(path=screenshots / "job.png")

    attempts.locator('tr[data-attempt="1"]').get_by_role("link", name="logs #1").click()
    log = page.get_by_test_id("log")
    expect(log).to_contain_text("simulated flaky failure on the first attempt")
    expect(page.get_by_test_id("link-state")).to_have_text("ended")
    page.get_by_test_id("attempt-2").click()
    expect(log).to_contain_text("epoch 3")
    expect(log).not_to_contain_text("simulated flaky failure")
    page.get_by_label("search logs").fill("epoch")
    expect(page.get_by_test_id("search-count")).to_have_text("1 / 3 matches")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert "epoch 3" in Path(download.value.path()).read_text()
    page.screenshot(path=screenshots / "logs.png")

    page.goto(console.url + "#/jobs?label=origin%3Dui-test")
    expect(page.get_by_test_id("jobs-table").locator("tbody tr")).to_have_count(1)


def test_jobs_page_updates_live_and_cancel_with_confirmation(page: Page, console: Console, screenshots: Path) -> None:
    page.goto(console.url + "#/jobs?label=batch%3Dlive")
    expect(page.get_by_test_id("link-state")).to_have_text("live")
    expect(page.get_by_test_id("jobs-table")).to_contain_text("No jobs match")
    job = console.create_inline_job(LONG_JOB, {"batch": "live"})
    row = page.locator(f'tr[data-job="{job}"]')
    expect(row).to_contain_text("RUNNING", timeout=60_000)  # appeared and changed state, without a reload
    page.screenshot(path=screenshots / "jobs.png")

    row.get_by_role("link", name=job).click()
    expect(page.get_by_test_id("job-state")).to_have_text("RUNNING")
    page.get_by_role("button", name="Cancel job").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Cancel {job}?")
    dialog.get_by_role("button", name="Cancel job").click()
    expect(page.get_by_test_id("job-state")).to_have_text("CANCELLED")
    expect(page.get_by_test_id("dag").locator('[data-task="sleep"]')).to_have_attribute("data-state", "CANCELLED")
    page.goto(console.url + "#/jobs?label=batch%3Dlive&state=CANCELLED")
    expect(page.locator(f'tr[data-job="{job}"]')).to_contain_text("CANCELLED")


def test_validation_error_shows_the_field_path(page: Page, console: Console, screenshots: Path) -> None:
    page.goto(console.url + "#/new")
    page.get_by_label("main.yml").fill("name: broken\ntasks:\n  - name: a\n    image: x\n    depends: [nowhere]\n")
    page.get_by_role("button", name="Run").click()
    error = page.get_by_test_id("api-error")
    expect(error).to_contain_text("INVALID_ARGUMENT")
    expect(error.get_by_test_id("violation").first).to_contain_text(re.compile(r"tasks\[0\]"))
    page.screenshot(path=screenshots / "validation-error.png")


def test_nodes_page(page: Page, console: Console, screenshots: Path) -> None:
    page.goto(console.url + "#/nodes")
    # The aggregator may first find the agent still starting (UNREACHABLE) and retries it; generous on a loaded
    # machine.
    expect(page.get_by_test_id("node").first).to_contain_text("READY", timeout=90_000)
    expect(page.get_by_test_id("link-state")).to_have_text("live")
    page.screenshot(path=screenshots / "nodes.png")


def test_console_is_served_by_the_gateway_without_a_token(console: Console) -> None:
    import urllib.request

    with urllib.request.urlopen(console.url, timeout=10) as reply:
        html = reply.read().decode()
        assert reply.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in reply.headers["content-security-policy"]
    script = re.search(r'src="(/assets/[^"]+\.js)"', html)
    assert script, html
    with urllib.request.urlopen(f"http://{console.gateway}{script.group(1)}", timeout=10) as reply:
        assert reply.headers["cache-control"].endswith("immutable")
