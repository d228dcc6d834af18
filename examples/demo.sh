#!/bin/sh
# The newcomer's tour: run the example pipeline twice through `ursprung run` (a different
# learning rate, and a changed raw input), then ask where the second report came from and
# how the two runs differ.
#
#   sh examples/demo.sh [WORKDIR]        (default: a fresh temporary directory)
#
# Uses `ursprung` from the project's .venv (or PATH) and the graph of $URSPRUNG_HOME
# (default ~/.local/share/ursprung; the embedded store starts on demand).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -x "$repo/.venv/bin/ursprung" ]; then ursprung="$repo/.venv/bin/ursprung"; else ursprung=ursprung; fi
work=${1:-$(mktemp -d "${TMPDIR:-/tmp}/ursprung-demo.XXXXXX")}
# Each run works in its own directory (a checkout, as a colleague would have); runs are
# compared by paths relative to their working directories.
mkdir -p "$work/run1" "$work/run2"
cp -r "$repo/examples/pipeline/data" "$work/run1/"
cp -r "$repo/examples/pipeline/data" "$work/run2/"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "run 1: learning rate 0.01 (in $work/run1)"
echo "\$ ursprung run --pipeline demo -- sh examples/pipeline/run.sh --lr 0.01"
cd "$work/run1"
"$ursprung" run --pipeline demo --id-file "$work/run1.id" -- \
    sh "$repo/examples/pipeline/run.sh" --lr 0.01

say "run 2 gets a raw data file with one more row (in $work/run2)"
cd "$work/run2"
echo "6,12.2" >> data/raw.csv
tail -n 2 data/raw.csv

say "run 2: learning rate 0.02"
echo "\$ ursprung run --pipeline demo -- sh examples/pipeline/run.sh --lr 0.02"
"$ursprung" run --pipeline demo --id-file "$work/run2.id" -- \
    sh "$repo/examples/pipeline/run.sh" --lr 0.02
run1=$(cat "$work/run1.id")
run2=$(cat "$work/run2.id")

say "runs of the demo pipeline"
"$ursprung" runs list --pipeline demo

say "where did run 2's report come from?  ursprung lineage $work/run2/out/report.txt"
"$ursprung" lineage "$work/run2/out/report.txt"

say "what differs between the runs?  ursprung runs compare ${run1%????????????????????} ${run2%????????????????????}"
"$ursprung" runs compare "$run1" "$run2"

say "more: ursprung runs show $run2 | ursprung runs compare --json $run1 $run2"
