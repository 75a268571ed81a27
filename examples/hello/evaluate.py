"""Compares the trained models and writes a report to the run's workspace."""

import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("models", nargs="+")
parser.add_argument("--report", required=True)
args = parser.parse_args()

losses = {}
for path in args.models:
    with open(path) as handle:
        losses[path] = json.load(handle)["loss"]
best = min(losses, key=losses.__getitem__)
for path, loss in sorted(losses.items(), key=lambda item: item[1]):
    print(f"{loss:.4f}  {path}")
with open(args.report, "w") as handle:
    json.dump({"best": best, "losses": losses}, handle, indent=2)
print(f"best model: {best}")
with open(os.environ["ODIN_OUTPUTS"], "w") as handle:
    json.dump({"best": best, "loss": losses[best]}, handle)
