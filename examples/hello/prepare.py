"""Writes a toy dataset (y = 3x + 1 + noise) described by the pipeline's config file."""

import argparse
import json
import os
import random

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

with open(args.config) as handle:
    config = json.load(handle)
rng = random.Random(config["seed"])
os.makedirs(args.out, exist_ok=True)
rows = [(x, 3 * x + 1 + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(config["samples"]))]
with open(os.path.join(args.out, "train.json"), "w") as handle:
    json.dump(rows, handle)
print(f"[{os.environ.get('ODIN_TASK_ID')}] wrote {len(rows)} samples of {config['dataset']} to {args.out}")

# Published outputs become `^prepare.outputs.<key>` for later tasks.
with open(os.environ["ODIN_OUTPUTS"], "w") as handle:
    json.dump({"samples": len(rows), "path": args.out}, handle)
