"""How long `odin dev up` takes until every service reports SERVING, and `odin dev down` after it.

Usage: python bench/dev_up.py [--runs 5]
Prints each run and the median; the target is under 3 s for the whole suite.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from odin.devsuite import Suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    ups, downs = [], []
    for run in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            suite = Suite(Path(tmp))
            started = time.perf_counter()
            services = suite.up()
            up = time.perf_counter() - started
            started = time.perf_counter()
            suite.down()
            down = time.perf_counter() - started
        ups.append(up)
        downs.append(down)
        print(f"run {run + 1}: up {up:.3f}s ({len(services)} processes healthy), down {down:.3f}s")
    print(f"odin dev up: median {statistics.median(ups):.3f}s, max {max(ups):.3f}s over {runs} runs")
    print(f"odin dev down: median {statistics.median(downs):.3f}s")


if __name__ == "__main__":
    main()
