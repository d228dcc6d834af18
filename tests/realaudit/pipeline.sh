#!/usr/bin/env bash
# A small data pipeline whose real audit log is the lineage fixture (see manifest.json).
#
#   pipeline.sh prepare WORKDIR   create the raw inputs (run before auditing starts, so the
#                                 raw inputs have no writer in the log)
#   pipeline.sh run WORKDIR       the pipeline itself (this is what gets recorded)
#
# What the run exercises, in order:
#   1. a concurrent unrelated writer (background subshell: unrelated_in.txt -> unrelated.txt,
#      several writes spread over the whole run; nothing in the pipeline reads them)
#   2. a shell pipe:        cat raw/a.txt raw/b.txt | sort | uniq > work/sorted.txt
#   3. temp file + rename:  grep raw/params.txt > work/params.tmp; mv work/params.tmp work/params.txt
#   4. a local HTTP download: python3 -m http.server on 127.0.0.1 (a free port) serving
#      srv/served.txt, fetched with curl (python urllib when curl is missing) into
#      download/served_copy.txt
#   5. the final output: bin/combine.py reads work/sorted.txt, work/params.txt and
#      download/served_copy.txt and writes final/result.txt; then, after closing it, the same
#      process reads raw/late_in.txt and writes final/late.txt (a process that reads an input
#      only after writing the result: a time-respecting lineage must not put late_in.txt
#      upstream of result.txt)
#   6. after the final output: cp final/result.txt after.txt (downstream of the result, never
#      upstream of it)
set -euo pipefail

phase=${1:?usage: pipeline.sh prepare|run WORKDIR}
workdir=${2:?usage: pipeline.sh prepare|run WORKDIR}

prepare() {
    mkdir -p "$workdir/raw" "$workdir/srv" "$workdir/bin"
    cd "$workdir"
    printf 'pear\napple\nfig\napple\nkiwi\n' > raw/a.txt
    printf 'plum\nfig\nbanana\npear\n' > raw/b.txt
    printf '# parameters\nalpha=0.5\n# comment\nbeta=7\n' > raw/params.txt
    printf 'late input, read only after the result was written\n' > raw/late_in.txt
    printf 'served over http\n' > srv/served.txt
    printf 'unrelated line one\nunrelated line two\n' > unrelated_in.txt
    cat > bin/combine.py <<'EOF'
import sys
import time

sorted_path, params_path, download_path, result_path, late_in_path, late_out_path = sys.argv[1:7]
parts = []
for path in (sorted_path, params_path, download_path):
    with open(path, encoding="utf-8") as f:
        parts.append(f.read())
with open(result_path, "w", encoding="utf-8") as f:
    f.write("".join(parts))
# Let the clock (millisecond resolution in the audit log) move on before the late read.
time.sleep(0.05)
with open(late_in_path, encoding="utf-8") as f:
    late = f.read()
with open(late_out_path, "w", encoding="utf-8") as f:
    f.write(late)
EOF
}

port_in_use() {
    # bash's /dev/tcp: a blocking connect from a subshell, no extra process image
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_server() {
    # A free port without an extra python process: try random high ports that refuse
    # connections, start the server, and wait until it accepts (it may lose a race).
    local attempt i
    for attempt in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 30000))
        port_in_use "$port" && continue
        python3 -m http.server --bind 127.0.0.1 --directory srv "$port" > work/http.log 2>&1 &
        server_pid=$!
        for ((i = 0; i < 100; i++)); do
            if port_in_use "$port"; then
                return 0
            fi
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    done
    echo "could not start python3 -m http.server" >&2
    return 1
}

run() {
    cd "$workdir"
    mkdir -p work download final

    # 1. concurrent unrelated writer, alive during the whole pipeline
    (
        for i in 1 2 3 4 5 6; do
            tr 'a-z' 'A-Z' < unrelated_in.txt >> unrelated.txt
            sleep 0.2
        done
    ) &
    unrelated_pid=$!

    # 2. shell pipe
    cat raw/a.txt raw/b.txt | sort | uniq > work/sorted.txt

    # 3. temp file, then rename into place
    grep -v '^#' raw/params.txt > work/params.tmp
    mv work/params.tmp work/params.txt

    # 4. local HTTP download
    start_server
    if command -v curl > /dev/null 2>&1; then
        curl -sS -f -o download/served_copy.txt "http://127.0.0.1:$port/served.txt"
    else
        python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
            "http://127.0.0.1:$port/served.txt" download/served_copy.txt
    fi
    kill "$server_pid"
    wait "$server_pid" || true

    # 5. final output (and a late read by the same process)
    python3 bin/combine.py work/sorted.txt work/params.txt download/served_copy.txt \
        final/result.txt raw/late_in.txt final/late.txt

    # 6. written after the result, from the result
    sleep 0.05
    cp final/result.txt after.txt

    wait "$unrelated_pid"
}

case "$phase" in
    prepare) prepare ;;
    run) run ;;
    *) echo "unknown phase: $phase" >&2; exit 2 ;;
esac
