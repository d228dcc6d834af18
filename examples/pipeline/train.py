"""Step 2: fit y = w * x by gradient descent on the clean data from stdin."""

import argparse
import json
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, default=50)
parser.add_argument("--out", required=True)
args = parser.parse_args()

sys.stdin.readline()  # header
data = [tuple(map(float, line.split(","))) for line in sys.stdin if line.strip()]
w = 0.0
for _ in range(args.epochs):
    grad = sum(2 * (w * x - y) * x for x, y in data) / len(data)
    w -= args.lr * grad
with open(args.out, "w", encoding="utf-8") as fh:
    json.dump({"w": round(w, 6), "lr": args.lr, "epochs": args.epochs, "n": len(data)}, fh)
    fh.write("\n")
