#!/usr/bin/env bash
# Small cases of the lineage rules the OS model must get right (see tests/data/README.md,
# fixture fidelity.audit.log, and tests/collectors/test_fidelity.py):
#
#   fidelity.sh prepare WORKDIR   create the inputs (before auditing starts)
#   fidelity.sh run WORKDIR       the cases (this is what gets recorded)
#
# Cases: a link, a file reopened through /proc/self/fd/N, a file created by
# an O_RDONLY|O_CREAT open, a symlink, a read-write (O_RDWR) database, `mv f dir/` (renameat
# with directory descriptors), a reader of a file before and after it is rewritten, a chain
# whose second reader comes before the first writer, and a writer that holds its output open
# across two writes at different moments.
set -euo pipefail

phase=${1:?usage: fidelity.sh prepare|run WORKDIR}
workdir=${2:?usage: fidelity.sh prepare|run WORKDIR}
PY=/usr/bin/python3

prepare() {
    rm -rf "$workdir/raw" "$workdir/out"
    mkdir -p "$workdir/raw" "$workdir/out/moved"
    cd "$workdir"
    printf 'source\n' > raw/src.txt
    printf 'a\n' > raw/a.txt
    printf 'old b\n' > out/b.txt
    printf 'old x\n' > out/x.txt
    printf 'to move\n' > out/f.txt
    printf 'early input\n' > raw/early_in.txt
    printf 'late input\n' > raw/late_in.txt
}

run() {
    cd "$workdir"
    # a link (linkat), and a file reopened through /proc/self/fd/N and copied
    $PY -c '
import os
fd = os.open("raw/src.txt", os.O_RDONLY)
os.link("raw/src.txt", "out/linked.txt")
with open(f"/proc/self/fd/{fd}") as again, open("out/copy.txt", "w") as out:
    out.write(again.read())
'
    # open(O_RDONLY|O_CREAT) creates the file
    $PY -c 'import os; os.close(os.open("out/created.txt", os.O_RDONLY | os.O_CREAT, 0o644))'
    # symlink
    ln -s src.txt raw/alias.txt
    # sqlite opens its database O_RDWR|O_CREAT
    $PY -c '
import sqlite3
db = sqlite3.connect("out/db.sqlite")
db.execute("create table t (x)")
db.execute("insert into t values (1)")
db.commit()
db.close()
'
    $PY -c '
import sqlite3
db = sqlite3.connect("out/db.sqlite")
open("out/db_dump.txt", "w").write(str(db.execute("select * from t").fetchall()))
'
    # mv into a directory: renameat with the target directory's descriptor
    mv out/f.txt out/moved/
    # a reader of x before it is rewritten, and one after
    cat out/x.txt > out/early.txt
    sleep 0.2
    printf 'new x\n' > out/x.txt
    sleep 0.2
    cat out/x.txt > out/late.txt
    # P reads a.txt, then (later) writes b.txt; R reads b.txt in between and writes c.txt
    $PY -c '
import time
open("raw/a.txt").read()
time.sleep(0.6)
open("out/b.txt", "w").write("from a\n")
' &
    sleep 0.3
    cat out/b.txt > out/c.txt
    wait
    # a writer that holds held.txt open across two writes; it reads early_in before the
    # first write and late_in after it
    $PY -c '
import time
f = open("out/held.txt", "w")
open("raw/early_in.txt").read()
f.write("one\n"); f.flush()
time.sleep(0.4)
open("raw/late_in.txt").read()
f.write("two\n"); f.flush()
time.sleep(0.4)
f.close()
'
}

case "$phase" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: fidelity.sh prepare|run WORKDIR" >&2; exit 2 ;;
esac
