"""Fits y = w*x + b by gradient descent and publishes the model path and its loss."""

import argparse
import json
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--model", required=True)
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--flaky-marker", help="fail the first run that finds no marker file (to show retries)")
args = parser.parse_args()

print(os.environ.get("GREETING", "hello"), f"(working in {os.getcwd()})", flush=True)
if args.flaky_marker and not os.path.exists(args.flaky_marker):
    open(args.flaky_marker, "w").close()
    print("simulated flaky failure on the first attempt", file=sys.stderr, flush=True)
    sys.exit(3)

with open(os.path.join(args.data, "train.json")) as handle:
    rows = json.load(handle)
w = b = 0.0
for epoch in range(int(os.environ.get("EPOCHS", "3"))):
    for _ in range(50):
        gw = sum(2 * (w * x + b - y) * x for x, y in rows) / len(rows)
        gb = sum(2 * (w * x + b - y) for x, y in rows) / len(rows)
        w, b = w - args.lr * gw, b - args.lr * gb
    loss = sum((w * x + b - y) ** 2 for x, y in rows) / len(rows)
    print(f"epoch {epoch + 1}: loss {loss:.4f}", flush=True)
    time.sleep(0.2)

os.makedirs(os.path.dirname(args.model), exist_ok=True)
with open(args.model, "w") as handle:
    json.dump({"w": w, "b": b, "loss": loss}, handle)
with open(os.environ["ODIN_OUTPUTS"], "w") as handle:
    json.dump({"model": args.model, "loss": loss}, handle)
