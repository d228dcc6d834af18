#!/bin/sh
# The example pipeline: prepare | train (a shell pipe), a rename, evaluate.
#   sh examples/pipeline/run.sh --lr 0.01 [--python PYTHON]
# Run it from the directory that holds data/raw.csv and data/test.csv; it writes
# work/model.json and out/report.txt there.
set -eu
here=$(dirname "$0")
lr=0.01
python=python3
while [ $# -gt 0 ]; do
    case "$1" in
        --lr) lr=$2; shift 2 ;;
        --python) python=$2; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
mkdir -p work out
# prepare | train: the clean data never touches the disk
"$python" "$here/prepare.py" data/raw.csv | "$python" "$here/train.py" --lr "$lr" --out work/model.tmp
# publish the model under its final name
mv work/model.tmp work/model.json
"$python" "$here/evaluate.py" work/model.json data/test.csv out/report.txt
