"""Tracing overhead of `ursprung run`: wall time traced / untraced, several runs each.

Two workloads (targets from issue 3):

* file-heavy: one process writes N small files, a second reads them all and writes a
  summary (target: traced <= 1.3 x untraced);
* CPU-bound: a pure-Python loop of a few seconds (target: <= 1.05 x).

Three timings per workload, each the median of ``--repeat`` runs:

* ``plain``: the command alone;
* ``strace``: the command under strace with the tracer's flags and environment, trace
  written to a file (what the traced program itself experiences);
* ``ursprung``: the whole `ursprung run` (trace, live ingest into the embedded store, run
  facts, hashing, until everything is stored): what the user waits for.

A third workload, ``fixed_cost``, runs a program that sleeps for two seconds, more often: a
CPU-bound command makes no syscalls while it computes, and neither does a sleeping one, so
what `ursprung run` costs either is this fixed cost whatever its length (start-up and
checks before the command, what cannot overlap with it after). Sleeping keeps the machine's
load out of the measurement: seconds-long computations drift by more than 5 % on a shared
machine. The ratio it gives for the CPU-bound run is printed too.

With ``--baseline DIR`` (a checkout of an older version of the code), a fourth timing,
``baseline``, runs that version's `ursprung run` the same way, interleaved with the others,
so that before and after are measured under the same load.

Wall time on a shared 2-core machine is noisy: the modes are interleaved, each number is
a median, and the CPU time of all child processes is reported next to it (it includes
strace's and ursprung's own work, not the store server's).

    .venv/bin/python bench/bench_trace.py [--files 3000] [--repeat 7] \
        [--cpu-iterations 30000000] [--baseline DIR]

Prints a table and writes bench/out/trace.json.

``--tracers`` (issue 13) measures instead, all in one run, interleaved, medians: the
file-heavy workload on tmpfs (/dev/shm) and on disk and the CPU-bound one, each plain,
under strace alone, ``ursprung run --tracer strace``, ``ursprung run --tracer ebpf``,
``reprozip trace`` (PyPI reprozip, installed into a venv of the bench's own) and the kernel
audit subsystem with deploy/auditd/ursprung.rules filtered to the command's login uid;
then the file-heavy workload on tmpfs while ``ursprung collect ebpf`` runs node-wide
(publishing to a Tansu Kafka broker) versus while auditd runs with the project's rules
node-wide. Needs root (eBPF, audit). Writes bench/out/tracers.json.

    .venv/bin/python bench/bench_trace.py --tracers [--files 3000] [--repeat 5] [--node-only]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
URSPRUNG = str(Path(sys.executable).parent / "ursprung")



def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all the children: command, strace, ursprung)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def strace_run(argv: list[str], trace_file: Path,
               env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """strace exactly as `ursprung run` starts it (flags and environment)."""
    from ursprung_graph.collectors.trace.launch import strace_command, strace_path

    return strace_command(strace_path(), str(trace_file), argv, env)


def measure(name: str, argv: list[str], work: Path, env: dict[str, str], repeat: int,
            reset, baseline: Path | None = None) -> dict:
    traced, traced_env = strace_run(argv, work / "bench.trace", env)
    run = [URSPRUNG, "run", "--pipeline", f"bench-{name}", "--", *argv]
    # strace here (as root `auto` would pick eBPF, which --tracers measures); an older
    # checkout may not know --tracer, and traces with strace anyway
    this = [URSPRUNG, "run", "--tracer", "strace", *run[2:]]
    modes = {"plain": (argv, env), "strace": (traced, traced_env), "ursprung": (this, env)}
    if baseline is not None:
        modes["baseline"] = (run, {**env, "PYTHONPATH": str(baseline)})
    times: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(repeat):
        for mode, (command, environ) in modes.items():  # interleaved: drift hits all alike
            reset()
            wall, used = timed(command, work, environ)
            times[mode].append(wall)
            cpu[mode].append(used)
    med = {m: statistics.median(v) for m, v in times.items()}
    med_cpu = {m: statistics.median(v) for m, v in cpu.items()}
    out = {
        "runs": times, "cpu_runs": cpu, "median": med, "median_cpu": med_cpu,
        "ratio_strace": med["strace"] / med["plain"],
        "ratio_ursprung": med["ursprung"] / med["plain"],
        "cpu_ratio_strace": med_cpu["strace"] / med_cpu["plain"],
        "cpu_ratio_ursprung": med_cpu["ursprung"] / med_cpu["plain"],
        # what ursprung adds on top of strace, in seconds (medians of the differences of
        # runs taken side by side, which cancels most of the drift)
        "ursprung_minus_strace": statistics.median(
            u - t for u, t in zip(times["ursprung"], times["strace"], strict=True)),
        "ursprung_minus_plain": statistics.median(
            u - t for u, t in zip(times["ursprung"], times["plain"], strict=True)),
    }
    if baseline is not None:
        out["ratio_baseline"] = med["baseline"] / med["plain"]
        out["cpu_ratio_baseline"] = med_cpu["baseline"] / med_cpu["plain"]
        out["baseline_minus_strace"] = statistics.median(
            b - t for b, t in zip(times["baseline"], times["strace"], strict=True))
        out["baseline_minus_plain"] = statistics.median(
            b - t for b, t in zip(times["baseline"], times["plain"], strict=True))
    return out


from bench_tracers import AGG, CPU, GEN, IDLE, Scratch, tracers_main  # noqa: E402  (one copy of the workloads)


def main() -> int:
    if "--tracers" in sys.argv:
        sys.argv.remove("--tracers")
        return tracers_main()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cpu-iterations", type=int, default=30_000_000)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="A checkout of older code to time side by side (PYTHONPATH).")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "trace.json")
    args = parser.parse_args()

    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="ursprung-bench-"))
    env = dict(os.environ)
    env["URSPRUNG_HOME"] = str(root / "home")
    env.pop("URSPRUNG_STORE", None)
    env["URSPRUNG_GRAPH"] = "bench"
    work = root / "work"
    work.mkdir()
    (work / "gen.py").write_text(GEN)
    (work / "agg.py").write_text(AGG)
    (work / "cpu.py").write_text(CPU)
    (work / "idle.py").write_text(IDLE)
    py = sys.executable
    # Bytecode as an installed package has it: without it (PYTHONDONTWRITEBYTECODE, a
    # read-only tree) every `ursprung` start compiles the package again, ~0.2 s here.
    for tree in (HERE.parent / "ursprung_graph", *([args.baseline / "ursprung_graph"]
                                                   if args.baseline else [])):
        compileall.compile_dir(str(tree), quiet=1)
    try:
        subprocess.run([URSPRUNG, "db", "start"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        scratch = Scratch(work / "d")
        scratch.settle()
        file_heavy = ["sh", "-c", f'"{py}" gen.py d {args.files} && "{py}" agg.py d sum.txt']
        baseline = args.baseline.resolve() if args.baseline else None
        results = {
            "file_heavy": measure("files", file_heavy, work, env, args.repeat, scratch.reset,
                                  baseline),
            "cpu_bound": measure("cpu", [py, "cpu.py", str(args.cpu_iterations)], work, env,
                                 args.repeat, lambda: None, baseline),
            # a program that makes no syscalls for two seconds, as a CPU-bound one does while
            # it computes, many times: what `ursprung run` costs such a command whatever its
            # length, without the drift of seconds-long computations
            "fixed_cost": measure("idle", [py, "idle.py", "2"], work, env, 2 * args.repeat,
                                  lambda: None, baseline),
        }
    finally:
        subprocess.run([URSPRUNG, "db", "stop"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)

    targets = {"file_heavy": 1.3, "cpu_bound": 1.05, "fixed_cost": float("nan")}
    print(f"{'workload':12} {'plain':>8} {'strace':>8} {'ursprung':>9} "
          f"{'strace/plain':>13} {'run/plain':>10} {'target':>7}")
    for name, r in results.items():
        m = r["median"]
        print(f"{name:12} {m['plain']:8.3f} {m['strace']:8.3f} {m['ursprung']:9.3f} "
              f"{r['ratio_strace']:13.3f} {r['ratio_ursprung']:10.3f} {targets[name]:7.2f}"
              f"   (CPU time: strace {r['cpu_ratio_strace']:.3f}x, "
              f"ursprung {r['cpu_ratio_ursprung']:.3f}x; "
              f"ursprung - strace {r['ursprung_minus_strace']:+.3f} s)")
        if "baseline" in m:
            print(f"{'  baseline':12} {'':8} {'':8} {m['baseline']:9.3f} {'':13} "
                  f"{r['ratio_baseline']:10.3f} {'':7}"
                  f"   (CPU time: {r['cpu_ratio_baseline']:.3f}x; "
                  f"baseline - strace {r['baseline_minus_strace']:+.3f} s)")
        r["target"] = targets[name]
    fixed, cpu = results["fixed_cost"], results["cpu_bound"]
    at = cpu["median"]["plain"]
    cpu["ratio_from_fixed_cost"] = 1 + fixed["ursprung_minus_plain"] / at
    print(f"fixed cost of `ursprung run`: {fixed['ursprung_minus_plain']:+.3f} s "
          f"(strace alone {fixed['median']['strace'] - fixed['median']['plain']:+.3f} s): "
          f"{cpu['ratio_from_fixed_cost']:.3f}x on the {at:.1f} s CPU-bound run")
    if "baseline_minus_plain" in fixed:
        cpu["baseline_ratio_from_fixed_cost"] = 1 + fixed["baseline_minus_plain"] / at
        print(f"  baseline: {fixed['baseline_minus_plain']:+.3f} s: "
              f"{cpu['baseline_ratio_from_fixed_cost']:.3f}x")
    report = {"files": args.files, "repeat": args.repeat,
              "cpu_iterations": args.cpu_iterations, "cpus": os.cpu_count(),
              "load": {"before": load_before, "after": os.getloadavg()},
              "baseline": str(args.baseline) if args.baseline else None,
              "python": sys.version.split()[0], "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
