"""The console's logs page with a 100 MB task log: load, scroll, search, and the tab's memory, in Chromium.

    .venv/bin/python bench/ui_logs.py [--mb 100]

Runs a task that prints `mb` MiB (100-byte lines) on the local executor, opens its logs page once the
task ended (so the log comes from the store) and measures: time until every byte arrived (the stream
ended), the longest gap between animation frames meanwhile, scrolling to 20 places (time until the
lines there are drawn), a search over every line, and the renderer's resident memory (the tab's
process, psutil) and JS heap (CDP Performance metrics).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ui_common import chromium, login, median, renderer_rss_mb, suite

PIPELINE = """name: biglog
tasks:
  - name: print
    image: x
    command: [python3, -c, "import sys\\nline = 'x' * 88\\nfor i in range({lines}):
      sys.stdout.write(f'{{i:010d}} {{line}}\\\\n')"]
"""


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args(argv)
    lines = args.mb * 1024 * 1024 // 100
    with suite() as running, chromium() as browser:
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        login(page, running)
        job = running.call("POST", "/v1/jobs", {"inline": {"mainYml": PIPELINE.format(lines=lines)}})["job"]["name"]
        page.goto(running.url + f"#/{job}")
        page.get_by_test_id("job-state").filter(has_text="SUCCEEDED").wait_for(timeout=600_000)
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.evaluate("""() => { window.__gap = 0; let last = performance.now();
            const f = (t) => { window.__gap = Math.max(window.__gap, t - last); last = t;
                               if (!window.__stop) requestAnimationFrame(f); };
            requestAnimationFrame(f); }""")
        started = time.perf_counter()
        page.goto(running.url + f"#/{job}/tasks/print/logs")
        page.get_by_test_id("link-state").filter(has_text="ended").wait_for(timeout=600_000)
        loaded = time.perf_counter() - started
        size = page.get_by_test_id("log-size").inner_text()
        gap = page.evaluate("window.__gap")
        print(f"{size} loaded from the store in {loaded:.1f} s; longest frame gap while loading {gap:.0f} ms")
        scrolls: list[float] = []
        for i in range(20):
            target = (i * 7919) % lines
            t0 = time.perf_counter()
            page.get_by_test_id("log").evaluate(f"(el) => {{ el.scrollTop = {target} * 18; }}")
            page.get_by_test_id("log").locator(".log-line", has_text=f"{target:010d} ").first.wait_for()
            scrolls.append((time.perf_counter() - t0) * 1000)
        print(f"scroll to a random place until its lines are drawn: median {median(scrolls):.0f} ms, "
              f"max {max(scrolls):.0f} ms")
        t0 = time.perf_counter()
        page.get_by_label("search logs").fill(f"{lines - 5:010d}")
        page.get_by_test_id("search-count").filter(has_text="1 / 1 matches").wait_for(timeout=120_000)
        print(f"search for the last lines over {lines} lines: {time.perf_counter() - t0:.1f} s (incl. 150 ms debounce)")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        print(f"tab memory: renderer RSS {renderer_rss_mb():.0f} MiB, JS heap used "
              f"{metrics['JSHeapUsedSize'] / 1048576:.0f} MiB (total {metrics['JSHeapTotalSize'] / 1048576:.0f} MiB)")


if __name__ == "__main__":
    main(sys.argv[1:])
