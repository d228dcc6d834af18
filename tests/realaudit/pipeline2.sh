#!/usr/bin/env bash
# Two runs of the same small training pipeline, for run search and run comparison
# (see manifest.json, entry "pipeline2.sh").
#
#   pipeline2.sh prepare WORKDIR   create code and raw inputs (before auditing starts)
#   pipeline2.sh run WORKDIR       the two runs (this is what gets recorded)
#
# Each run is rooted in one process whose command line is
#   python3 bin/train.py --lr <LR> --data raw/data.csv --labels raw/labels.csv --out runs/<N> [--extra raw/extra.csv]
# Inside a run, train.py starts `sort` on its data through a pipe (so a run is a process
# tree, not one process), reads the labels, and writes runs/<N>/model.txt and
# runs/<N>/metrics.txt.
# Differences between the runs, on purpose:
#   * parameter: --lr 0.1 versus --lr 0.2
#   * raw/data.csv is changed between the runs (same path, different content)
#   * raw/extra.csv is an input of run 2 only
#   * raw/labels.csv and bin/train.py are the same in both
set -euo pipefail

phase=${1:?usage: pipeline2.sh prepare|run WORKDIR}
workdir=${2:?usage: pipeline2.sh prepare|run WORKDIR}

prepare() {
    mkdir -p "$workdir/raw" "$workdir/bin"
    cd "$workdir"
    printf 'x,y\n3,1\n1,0\n2,1\n' > raw/data.csv
    printf 'label\ncat\ndog\n' > raw/labels.csv
    printf 'x,y\n9,1\n' > raw/extra.csv
    cat > bin/train.py <<'EOF'
import argparse
import os
import subprocess

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--labels", required=True)
parser.add_argument("--extra")
parser.add_argument("--out", required=True)
args = parser.parse_args()

# a child process connected by a pipe
rows = subprocess.run(["sort", args.data], check=True, capture_output=True, text=True).stdout
with open(args.labels, encoding="utf-8") as f:
    labels = f.read().split()
if args.extra:
    with open(args.extra, encoding="utf-8") as f:
        rows += f.read()
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "model.txt"), "w", encoding="utf-8") as f:
    f.write(f"lr={args.lr}\nrows={len(rows.splitlines())}\nlabels={len(labels)}\n")
with open(os.path.join(args.out, "metrics.txt"), "w", encoding="utf-8") as f:
    f.write(f"loss={1.0 / (1.0 + args.lr * len(rows)):.4f}\n")
EOF
}

run() {
    cd "$workdir"
    mkdir -p runs
    python3 bin/train.py --lr 0.1 --data raw/data.csv --labels raw/labels.csv --out runs/1
    sleep 0.1
    # change a raw input between the runs (same path, new content)
    printf '4,0\n5,1\n' >> raw/data.csv
    sleep 0.1
    python3 bin/train.py --lr 0.2 --data raw/data.csv --labels raw/labels.csv --out runs/2 \
        --extra raw/extra.csv
}

case "$phase" in
    prepare) prepare ;;
    run) run ;;
    *) echo "unknown phase: $phase" >&2; exit 2 ;;
esac
