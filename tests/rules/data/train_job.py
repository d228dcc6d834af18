"""A small training job for the rules tests: writes its config, trains y = w * x by
gradient descent, logs loss and accuracy per epoch to train.log, prints the loss per epoch
on stdout, and writes results.csv."""

import argparse
import json

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()

with open("config.json", "w", encoding="utf-8") as fh:
    json.dump({"lr": args.lr, "epochs": args.epochs}, fh, indent=1)
    fh.write("\n")
with open("config.json", encoding="utf-8") as fh:
    config = json.load(fh)

data = [(x / 10, 3 * x / 10) for x in range(1, 11)]
w = 0.0
with open("train.log", "a", encoding="utf-8") as log, \
        open("results.csv", "w", encoding="utf-8") as out:
    out.write("epoch,loss,w\n")
    for epoch in range(1, config["epochs"] + 1):
        grad = sum(2 * (w * x - y) * x for x, y in data) / len(data)
        w -= config["lr"] * grad
        loss = sum((w * x - y) ** 2 for x, y in data) / len(data)
        acc = 1.0 / (1.0 + loss)
        log.write(f"2026-01-01 10:00:0{epoch} INFO epoch {epoch} loss {loss:.6f}\n")
        log.write(f"2026-01-01 10:00:0{epoch} INFO eval {epoch} acc {acc:.4f}\n")
        out.write(f"{epoch},{loss:.6f},{w:.6f}\n")
        print(f"epoch {epoch} loss {loss:.6f}", flush=True)
