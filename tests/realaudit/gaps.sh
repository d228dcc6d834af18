#!/usr/bin/env bash
# The capture-gaps fixture (tests/data/gaps.audit.log, recorded by record_gaps.py).
#
#   gaps.sh prepare WORKDIR   create the raw input (before auditing starts)
#   gaps.sh run WORKDIR       the recorded part, in four steps; before each the recorder
#                             sends a line on stdin, after each the script says "done"
#
#   1. recorded:           raw/in.txt -> work/a.txt (tr)
#   2. auditd stopped:     work/a.txt -> work/b.txt (cp): not in the log
#   3. auditd running again, kernel backlog 1 and no waiting: a burst of 300 short
#      processes (work/burst/N.txt), so the kernel drops records (lost counter, and events
#      cut off)
#   4. backlog restored:   work/b.txt -> final/out.txt (sort); other/alone.txt from raw/in.txt
#      by a separate process (head) that reads nothing written in the gaps
set -euo pipefail

phase=${1:?usage: gaps.sh prepare|run WORKDIR}
workdir=${2:?usage: gaps.sh prepare|run WORKDIR}

step() {
    read -r _ || exit 97
}

done_() {
    echo done
}

case $phase in
prepare)
    mkdir -p "$workdir/raw"
    printf 'pear\napple\nfig\n' > "$workdir/raw/in.txt"
    ;;
run)
    cd "$workdir"
    mkdir -p work final other work/burst
    step; tr a-z A-Z < raw/in.txt > work/a.txt; done_
    step; cp work/a.txt work/b.txt; done_
    step
    for i in $(seq 1 300); do echo "$i" > "work/burst/$i.txt"; /bin/true "$i"; done
    done_
    step; sort work/b.txt > final/out.txt; head -n 1 raw/in.txt > other/alone.txt; done_
    ;;
*)
    echo "unknown phase $phase" >&2
    exit 2
    ;;
esac
