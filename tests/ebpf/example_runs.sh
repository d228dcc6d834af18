#!/usr/bin/env bash
# The example pipeline run twice (a changed input and parameter between the runs), in the
# prepare/run form of tests/realaudit/record.py, so that the kernel audit subsystem records
# both runs (the auditd leg of tests/ebpf/test_differential.py):
#   example_runs.sh prepare WORKDIR   copy the example's inputs
#   example_runs.sh run WORKDIR       run it with --lr 0.01, append a row, run with --lr 0.02
# PYTHON (environment): the interpreter the pipeline's steps run with [python3].
set -euo pipefail
phase=${1:?usage: example_runs.sh prepare|run WORKDIR}
workdir=${2:?usage: example_runs.sh prepare|run WORKDIR}
example=$(cd "$(dirname "$0")/../../examples/pipeline" && pwd)
python=${PYTHON:-python3}
case "$phase" in
    prepare) cp -r "$example/data" "$workdir/data" ;;
    run)
        cd "$workdir"
        sh "$example/run.sh" --python "$python" --lr 0.01
        printf '6,12.2\n' >> data/raw.csv
        sh "$example/run.sh" --python "$python" --lr 0.02
        ;;
    *) echo "unknown phase: $phase" >&2; exit 2 ;;
esac
