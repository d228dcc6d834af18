"""Step 2: fit y = w * x by gradient descent on the clean data from stdin.

Optional, from the environment: ``WARM_START`` (a model.json to start from) and ``TRACKING``
(HOST:PORT of a tracking server that gets the final weight as one JSON line).
"""

import argparse
import json
import os
import socket
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, default=50)
parser.add_argument("--out", required=True)
args = parser.parse_args()

sys.stdin.readline()  # header
data = [tuple(map(float, line.split(","))) for line in sys.stdin if line.strip()]
w = 0.0
if os.environ.get("WARM_START"):
    with open(os.environ["WARM_START"], encoding="utf-8") as fh:
        w = float(json.load(fh)["w"])
for _ in range(args.epochs):
    grad = sum(2 * (w * x - y) * x for x, y in data) / len(data)
    w -= args.lr * grad
with open(args.out, "w", encoding="utf-8") as fh:
    json.dump({"w": round(w, 6), "lr": args.lr, "epochs": args.epochs, "n": len(data)}, fh)
    fh.write("\n")
if os.environ.get("TRACKING"):
    host, _, port = os.environ["TRACKING"].rpartition(":")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as conn:
        conn.settimeout(10)
        conn.connect((host, int(port)))
        conn.sendall(json.dumps({"w": w, "lr": args.lr}).encode() + b"\n")
