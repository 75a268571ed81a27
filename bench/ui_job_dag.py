"""The console's job page for a 1,000-task DAG: first render, then responsiveness while events stream in.

    .venv/bin/python bench/ui_job_dag.py [--layers 10] [--width 100] [--parallelism 100]

Runs a real job of `layers` x `width` tasks (each `true`, with two dependencies in the layer before) on
the local executor of `odin dev up`, opens its page in a new tab in Chromium while it runs and measures:
navigation to the DAG drawn (laid out, the nodes in view and around it in the DOM with their states;
the page keeps only those in the DOM); then, until the job ends, the rate of WatchJob events the page
applied, the longest gap between animation frames, long tasks (> 50 ms, PerformanceObserver) and the
latency of a click on a node until its task panel shows. Then the same first render of the ended job.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ui_common import chromium, login, median, suite

# Installed before the page's scripts: the time of the first animation frame after the DAG was put in the DOM
# (read later, so a busy main thread cannot inflate it).
DRAWN = """(() => {
  const selector = '[data-testid=dag][data-tasks="%d"] g.node';
  new MutationObserver((records, observer) => {
    if (!document.querySelector(selector)) return;
    observer.disconnect();
    requestAnimationFrame(() => { window.__drawn = performance.now(); });
  }).observe(document, {childList: true, subtree: true});
})();"""
EVENTS = "() => Number(document.querySelector('.job-page').dataset.events)"
PROBE = """() => {
  window.__bench = {events: Number(document.querySelector('.job-page').dataset.events), longTasks: [], maxGap: 0,
                    gaps: [], last: performance.now(), start: performance.now()};
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__bench.longTasks.push(e.duration); })
    .observe({entryTypes: ['longtask']});
  const frame = (t) => { const b = window.__bench; b.maxGap = Math.max(b.maxGap, t - b.last);
                         if (t - b.last > 100) b.gaps.push([Math.round(t - b.start), Math.round(t - b.last)]);
                         b.last = t;
                         if (!b.stop) requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
}"""


def pipeline(layers: int, width: int, parallelism: int) -> str:
    lines = ["name: dag1000", f"parallelism: {parallelism}", "tasks:"]
    for layer in range(layers):
        for i in range(width):
            lines += [f"  - name: t{layer}-{i}", "    image: x", "    command: [\"true\"]"]
            if layer:
                lines.append(f"    depends: [t{layer - 1}-{i}, t{layer - 1}-{(i + 1) % width}]")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--parallelism", type=int, default=100)
    args = parser.parse_args(argv)
    total = args.layers * args.width
    with suite() as running, chromium() as browser:
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        context.add_init_script(DRAWN % total)
        login(context.new_page(), running)
        job = running.call("POST", "/v1/jobs", {"inline": {"mainYml": pipeline(args.layers, args.width,
                                                                                args.parallelism)}})["job"]["name"]
        # A new tab: performance.now() counts from its navigation (the session is in localStorage).
        page = context.new_page()
        page.goto(running.url + f"#/{job}", wait_until="commit")
        page.wait_for_function("() => window.__drawn !== undefined", timeout=60_000)
        drawn = float(page.evaluate("window.__drawn"))
        in_dom = page.locator("[data-testid=dag] g.node").count()
        api = page.evaluate("() => Math.max(...performance.getEntriesByType('resource')"
                            ".filter((e) => /GetJob|ListTasks/.test(e.name)).map((e) => e.responseEnd))")
        print(f"job page, {total}-task DAG while it runs ({args.parallelism} tasks at once on this machine): "
              f"navigation to the DAG drawn {drawn:.0f} ms (GetJob + ListTasks answered at {api:.0f} ms; "
              f"{in_dom} nodes in the DOM)")
        page.evaluate(PROBE)
        clicks: list[float] = []
        started = time.perf_counter()
        # Nodes wholly inside the DAG's visible box (clicking them scrolls nothing).
        visible = page.evaluate("""() => {
            const box = document.querySelector("[data-testid=dag]").getBoundingClientRect();
            return [...document.querySelectorAll('[data-testid=dag] g.node')].filter((n) => {
              const r = n.getBoundingClientRect();
              return r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom;
            }).map((n) => n.dataset.task); }""")
        for i in range(1000):
            state = page.get_by_test_id("job-state").inner_text()
            if state in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
            name = visible[(i * 7) % len(visible)]
            t0 = time.perf_counter()
            page.locator(f'[data-task="{name}"]').click()
            page.locator("[data-testid=task-panel] h3", has_text=name).wait_for()
            clicks.append((time.perf_counter() - t0) * 1000)
            if time.perf_counter() - started > 300:
                break
        page.get_by_test_id("job-state").filter(has_text="SUCCEEDED").wait_for(timeout=600_000)
        page.wait_for_function(f"() => ({EVENTS})() > 0 && document.querySelector('[data-testid=link-state]')"
                               ".textContent === 'ended'", timeout=60_000)
        result = page.evaluate("() => { const b = window.__bench; b.stop = true; "
                               f"return {{events: ({EVENTS})() - b.events, "
                               "seconds: (performance.now() - b.start) / 1000, "
                               "maxGap: b.maxGap, gaps: b.gaps, longTasks: b.longTasks}; }")
        rate = result["events"] / result["seconds"]
        long_tasks = result["longTasks"]
        print(f"while running: {result['events']} WatchJob events applied in {result['seconds']:.1f} s "
              f"({rate:.0f}/s); longest frame gap {result['maxGap']:.0f} ms; "
              f"{len(long_tasks)} long tasks, longest {max(long_tasks, default=0):.0f} ms; "
              f"click-to-panel median {median(clicks):.0f} ms, max {max(clicks):.0f} ms over {len(clicks)} clicks; "
              f"{len(result['gaps'])} frame gaps > 100 ms (at ms, length): {result['gaps'][:8]}")
        # The same page once the job ended (no executor load on the machine): GetJob, 1,000 tasks,
        # layout and drawing (the replay of every event for the attempts continues after).
        quiet: list[float] = []
        for _ in range(3):
            tab = page.context.new_page()
            tab.goto(running.url + f"#/{job}", wait_until="commit")
            tab.wait_for_function("() => window.__drawn !== undefined", timeout=60_000)
            quiet.append(float(tab.evaluate("window.__drawn")))
            tab.close()
        print(f"job page of the ended {total}-task job: navigation to the DAG drawn median {median(quiet):.0f} ms "
              f"({', '.join(f'{q:.0f}' for q in quiet)})")


if __name__ == "__main__":
    main(sys.argv[1:])
