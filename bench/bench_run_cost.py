"""What `ursprung run --tracer strace` costs on top of strace alone (issue 13, item 5), this
tree against an older one, side by side.

The file-heavy workload of ``bench_tracers.py`` (3,000 small files written, then read) on
tmpfs (/dev/shm) and on disk, each round every mode once, interleaved (the machine's speed
drifts), wall-time medians:

* ``plain``: the command;
* ``strace``: strace alone with `ursprung run`'s flags, trace to a file;
* ``run``: this tree's `ursprung run --tracer strace` (trace, live ingest into the embedded
  store, run facts, hashing, until everything is stored), the tree by PYTHONPATH;
* ``baseline``: the same with ``--baseline DIR``'s code (a checkout of an older commit,
  with its C extension built or copied in), by PYTHONPATH, in the same venv and store;
* ``reprozip``: ``reprozip trace`` (PyPI reprozip in a venv of the bench's own), the ptrace
  tool a user would otherwise pick.

Two more workloads on request (``--workloads``): ``idle`` (``sleep 0.5``: what `ursprung
run` costs a command that leaves it both cores) and ``cpu`` (a 0.5 s Python loop, few
syscalls).

"Own cost" is the median over rounds of (run - strace) of the same round, which cancels
most of the drift. Needs no root.

    .venv/bin/python bench/bench_run_cost.py --baseline /tmp/old [--repeat 9] [--files 3000]

Prints a table and writes bench/out/run_cost.json.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_tracers import AGG, GEN, URSPRUNG, Scratch, reprozip_bin, wall

HERE = Path(__file__).resolve().parent


def modes(argv: list[str], work: Path, env: dict[str, str], baseline: Path | None,
          reprozip: str | None) -> dict[str, tuple[list[str], dict[str, str]]]:
    from ursprung_graph.collectors.trace.launch import strace_command, strace_path

    traced, traced_env = strace_command(strace_path(), str(work / "bench.trace"), argv, env)
    run = [URSPRUNG, "run", "--tracer", "strace", "--pipeline", "bench-cost", "--", *argv]
    # each tree by PYTHONPATH: this one is the bench script's own (a snapshot may run it)
    out = {"plain": (argv, env), "strace": (traced, traced_env),
           "run": (run, {**env, "PYTHONPATH": str(HERE.parent)})}
    if baseline is not None:
        out["baseline"] = (run, {**env, "PYTHONPATH": str(baseline)})
    if reprozip is not None:
        out["reprozip"] = ([reprozip, "trace", "--dont-identify-packages", "--overwrite",
                            "-d", str(work / "rpz"), *argv], env)
    return out


def measure(commands: dict[str, tuple[list[str], dict[str, str]]], cwd: Path, repeat: int,
            data: Path, warmups: int = 1) -> dict:
    """Every mode once per round, interleaved; the first ``warmups`` rounds are not counted
    (the store's first writes, cold caches)."""
    runs: dict[str, list[float]] = {m: [] for m in commands}
    load = [os.getloadavg()[0]]
    scratch = Scratch(data)
    try:
        settled = scratch.settle()
        for round_ in range(warmups + repeat):
            for mode, (argv, env) in commands.items():
                scratch.reset()
                took = wall(argv, cwd, env)
                if round_ >= warmups:
                    runs[mode].append(took)
            load.append(os.getloadavg()[0])
    finally:
        scratch.clear()
    med = {m: statistics.median(v) for m, v in runs.items()}
    out: dict = {"runs": runs, "median": med, "load": load, "settle_wait": settled,
                 "ratio": {m: med[m] / med["plain"] for m in med}}
    for mode in ("run", "baseline"):
        if mode in runs:
            out[f"{mode}_minus_strace"] = statistics.median(
                a - b for a, b in zip(runs[mode], runs["strace"], strict=True))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="A checkout of older code to time side by side (PYTHONPATH).")
    parser.add_argument("--no-reprozip", action="store_true")
    parser.add_argument("--warmups", type=int, default=1,
                        help="Uncounted rounds before the measured ones.")
    parser.add_argument("--workloads", default="files_tmpfs,files_disk",
                        help="Comma-separated subset of files_tmpfs, files_disk, idle "
                             "(sleep 0.5: the fixed cost alone), cpu (a 0.5 s Python loop).")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "run_cost.json")
    args = parser.parse_args()
    baseline = args.baseline.resolve() if args.baseline else None
    # bytecode as an installed package has it (else every start compiles the tree again)
    for tree in (HERE.parent, *([baseline] if baseline else [])):
        compileall.compile_dir(str(tree / "ursprung_graph"), quiet=1)
    root = Path(tempfile.mkdtemp(prefix="ursprung-bench-"))
    shm = Path(tempfile.mkdtemp(prefix="ursprung-bench-", dir="/dev/shm"))
    env = dict(os.environ, URSPRUNG_HOME=str(root / "home"), URSPRUNG_GRAPH="bench")
    env.pop("URSPRUNG_STORE", None)
    env.pop("PYTHONPATH", None)
    work = root / "work"
    work.mkdir()
    for name, text in (("gen.py", GEN), ("agg.py", AGG)):
        (work / name).write_text(text)
    reprozip = None if args.no_reprozip else reprozip_bin(root)
    py = sys.executable
    results: dict[str, dict] = {}
    try:
        subprocess.run([URSPRUNG, "db", "start"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, data in (("files_tmpfs", shm / "d"), ("files_disk", work / "d"),
                           ("idle", shm / "d"), ("cpu", shm / "d")):
            if name not in args.workloads.split(","):
                continue
            argv = ["sh", "-c", f'"{py}" {work}/gen.py {data} {args.files} && '
                    f'"{py}" {work}/agg.py {data} {data}.sum']
            if name == "idle":
                argv = ["sleep", "0.5"]
            elif name == "cpu":
                argv = [py, "-c", "sum(i * i for i in range(6_000_000))"]
            results[name] = r = measure(modes(argv, work, env, baseline, reprozip), work,
                                        args.repeat, data, args.warmups)
            print(f"{name:12} " + "  ".join(f"{m} {s:.3f}s ({r['ratio'][m]:.2f}x)"
                                            for m, s in r["median"].items()), flush=True)
    finally:
        subprocess.run([URSPRUNG, "db", "stop"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)
    checks = {}
    for name, r in results.items():
        line = f"{name}: own cost (run - strace) {r['run_minus_strace']:+.3f} s"
        if "baseline_minus_strace" in r:
            line += (f", baseline {r['baseline_minus_strace']:+.3f} s "
                     f"({r['run_minus_strace'] / r['baseline_minus_strace']:.2f} of it")
            if name.startswith("files_"):
                half = r["run_minus_strace"] <= r["baseline_minus_strace"] / 2
                checks[f"{name}.own_cost_at_most_half"] = half
                line += "; target: at most half"
            line += ")"
        if "reprozip" in r["median"]:
            faster = r["median"]["reprozip"] / r["median"]["run"]
            line += f"; reprozip / run {faster:.2f}x"
            if name.startswith("files_"):
                checks[f"{name}.run_2x_faster_than_reprozip"] = faster >= 2
                line += " (target >= 2)"
        line += f"; load {min(r['load']):.1f}-{max(r['load']):.1f}"
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"files": args.files, "repeat": args.repeat,
                                    "baseline": str(baseline) if baseline else None,
                                    "cpus": os.cpu_count(), "results": results,
                                    "targets": checks}, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
