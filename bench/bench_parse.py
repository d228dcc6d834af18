"""Audit log parsing benchmark: Debian's auparse, laurel, and ours, on the same real log.

    .venv/bin/python bench/bench_parse.py [--log tests/data/pipeline.audit.log]
        [--target-records 300000] [--repeat 5] [--cpu 0] [--skip-import]

What is measured, all on one recorded log (tests/data/pipeline.audit.log by default), each
tool in its own child process pinned to one core, best of --repeat runs:

(a) auparse  Debian's libauparse through its Python binding (``/usr/bin/python3``, package
             python3-audit): parse_next_event, first_record/next_record,
             first_field/next_field -- bare field iteration, no values are decoded.
             Timed inside the child, around the loop only.
(b) laurel   Debian's laurel transforming the log (records on stdin, JSON lines out to
             /dev/null through ``[auditlog] file = "-"``). Timed as the wall time of the
             process (its start-up is a millisecond or two).
(c) ours     ``for item in normalize_file(path, host="bench"): n += 1`` with
             ``ursprung_graph.collectors.auditd.normalize_file``. Timed inside the child,
             around the loop only (imports excluded). The parser implementation measured
             (``records.IMPLEMENTATION``: "c" for the compiled core, "python" without it or
             with URSPRUNG_PURE_PYTHON=1) is printed and written to the JSON.
(d) import   ``ursprung import --source auditd --host bench LOG`` end to end (parse,
             normalize, bus, graph store), URSPRUNG_HOME in a fresh temp dir, wall time
             (including starting the embedded store; ``ursprung db stop`` afterwards is
             not timed).

Throughput is records/s where a record is one line of the log that is an audit record
(``[node=N ]type=T msg=audit(...)``): the same count for every tool, taken from the input
file, whatever each tool calls an item. Throughput runs on a larger log made by
concatenating the recording with shifted timestamps and serials (so that events stay
distinct) up to about --target-records records.

Both wall time (best of --repeat) and CPU time (best of --repeat; process_time of the loop
inside the child for auparse and ours, user+system time of the whole process for laurel
and import) are reported: on a shared machine CPU time is the steadier number.

Peak memory (ru_maxrss of the child, from wait4) of ours and of laurel is measured on the
recording and on a 10x concatenation of it, to see whether memory grows with input.

Prints a table and writes bench/out/parse.json. Exits 1 with a clear message when a part
cannot run (e.g. ``normalize_file`` or the ``ursprung`` console script does not exist yet);
the parts that did run are still reported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LOG = REPO / "tests" / "data" / "pipeline.audit.log"
OUT = REPO / "bench" / "out" / "parse.json"
SYSTEM_PYTHON = "/usr/bin/python3"

RECORD_RE = re.compile(rb"^(?:node=\S+ )?type=\S+ msg=audit\((\d+)\.(\d+):(\d+)\)")

AUPARSE_CHILD = r"""
import json, sys, time
import auparse
path = sys.argv[1]
t0 = time.perf_counter()
c0 = time.process_time()
au = auparse.AuParser(auparse.AUSOURCE_FILE, path)
events = records = fields = 0
while au.parse_next_event():
    events += 1
    if not au.first_record():
        continue
    while True:
        records += 1
        if au.first_field():
            while True:
                fields += 1
                if not au.next_field():
                    break
        if not au.next_record():
            break
dt = time.perf_counter() - t0
cpu = time.process_time() - c0
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "events": events, "records": records,
                  "fields": fields}))
"""

OURS_CHILD = r"""
import json, sys, time
try:
    from ursprung_graph.collectors.auditd import normalize_file
    from ursprung_graph.collectors.auditd.records import IMPLEMENTATION
except ImportError as exc:
    msg = f"ursprung_graph.collectors.auditd.normalize_file is missing ({exc})"
    print(json.dumps({"error": msg}))
    sys.exit(3)
path = sys.argv[1]
t0 = time.perf_counter()
c0 = time.process_time()
n = 0
for item in normalize_file(path, host="bench"):
    n += 1
dt = time.perf_counter() - t0
cpu = time.process_time() - c0
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "items": n,
                  "implementation": IMPLEMENTATION}))
"""


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------------------
# logs


def count_records(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if RECORD_RE.match(line):
                n += 1
    return n


_PIDS = re.compile(rb"(?<= )(pid|ppid)=([0-9]+)")
_INODES = re.compile(rb"(?<= )inode=([0-9]+)")
_PATHS = re.compile(rb'(?<= )(name|cwd|exe)="(/?)')


def _varied(line: bytes, k: int, pid_shift: int, inode_shift: int) -> bytes:
    """Copy ``k`` of a record with its own pids, inodes and (quoted) paths."""
    line = _PIDS.sub(lambda m: b"%s=%d" % (m[1], int(m[2]) + k * pid_shift), line)
    line = _INODES.sub(lambda m: b"inode=%d" % (int(m[1]) + k * inode_shift), line)
    return _PATHS.sub(lambda m: b'%s="%s' % (m[1], b"/copy%d/" % k if m[2] else
                                              b"copy%d/" % k), line)


def replicate(src: Path, dst: Path, copies: int, *, vary: bool = False) -> int:
    """Write ``copies`` concatenated copies of ``src`` to ``dst``; returns the record count.

    Copy k has every timestamp shifted by k * (span of the log + 1 s) and every serial by
    k * (largest serial + 1), so events of different copies never share a serial or a time.
    With ``vary``, copy k also has its own processes, files and names: pids and ppids
    shifted by k * 10**6, inodes by k * 10**9, and quoted ``name=``, ``cwd=`` and ``exe=``
    paths under ``copyK/`` (so nothing a parser memoises for one copy serves another).
    Other lines are copied unchanged.
    """
    lines = src.read_bytes().splitlines(keepends=True)
    first = last = None
    max_serial = 0
    for line in lines:
        m = RECORD_RE.match(line)
        if m:
            sec = int(m.group(1))
            first = sec if first is None else min(first, sec)
            last = sec if last is None else max(last, sec)
            max_serial = max(max_serial, int(m.group(3)))
    if first is None:
        raise BenchError(f"{src} contains no audit records")
    time_shift = last - first + 1
    serial_shift = max_serial + 1
    n = 0
    with open(dst, "wb") as out:
        for k in range(copies):
            dt, ds = k * time_shift, k * serial_shift
            for line in lines:
                m = RECORD_RE.match(line)
                if not m:
                    out.write(line)
                    continue
                n += 1
                if k == 0:
                    out.write(line)
                    continue
                sec, ms, serial = int(m.group(1)) + dt, m.group(2), int(m.group(3)) + ds
                head = line[: m.start(1)] + b"%d.%s:%d)" % (sec, ms, serial)
                rest = line[m.end(3) + 1 :]
                out.write(head + (_varied(rest, k, 10**6, 10**9) if vary else rest))
    return n


# --------------------------------------------------------------------------------------
# running children pinned to one core


def _pin(cpu: int):
    def preexec() -> None:
        os.sched_setaffinity(0, {cpu})

    return preexec


def run_child(
    cmd: list[str], cpu: int, *, stdin=None, env=None, cwd=None, discard_stdout=False
) -> dict:
    """Run a child pinned to ``cpu``; return wall seconds, ru_maxrss (KiB), rc, stdout, stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if discard_stdout else out,
            stderr=err,
            env=env,
            cwd=cwd,
            preexec_fn=_pin(cpu),
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {
            "wall": wall,
            "maxrss_kib": usage.ru_maxrss,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "rc": proc.returncode,
            "stdout": out.read().decode("utf-8", "replace"),
            "stderr": err.read().decode("utf-8", "replace"),
        }


def _last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError(f"no result from child: {text[-500:]!r}")


# --------------------------------------------------------------------------------------
# the four measurements


def bench_auparse(log: Path, cpu: int) -> dict:
    r = run_child([SYSTEM_PYTHON, "-c", AUPARSE_CHILD, str(log)], cpu)
    if r["rc"] != 0:
        raise BenchError(f"auparse child failed ({r['rc']}): {r['stderr'][-800:]}")
    res = _last_json(r["stdout"])
    res["maxrss_kib"] = r["maxrss_kib"]
    return res


def laurel_config(tmp: Path) -> Path:
    conf = tmp / "laurel.toml"
    conf.write_text(f'directory = "{tmp}"\n\n[auditlog]\nfile = "-"\n')
    return conf


def bench_laurel(log: Path, cpu: int, conf: Path) -> dict:
    with open(log, "rb") as stdin:
        r = run_child(["laurel", "-c", str(conf)], cpu, stdin=stdin, discard_stdout=True)
    if r["rc"] != 0:
        raise BenchError(f"laurel failed ({r['rc']}): {r['stderr'][-800:]}")
    m = re.search(r"processed (\d+) lines (\d+) events with (\d+) errors", r["stderr"])
    res = {"seconds": r["wall"], "cpu_seconds": r["cpu_seconds"], "maxrss_kib": r["maxrss_kib"]}
    if m:
        res.update(lines=int(m.group(1)), errors=int(m.group(3)))
    return res


def bench_ours(log: Path, cpu: int) -> dict:
    r = run_child([sys.executable, "-c", OURS_CHILD, str(log)], cpu, cwd=REPO)
    if r["rc"] == 3:
        raise BenchError(_last_json(r["stdout"])["error"] + ": ours cannot be measured yet")
    if r["rc"] != 0:
        raise BenchError(f"ours failed ({r['rc']}): {r['stderr'][-1500:]}")
    res = _last_json(r["stdout"])
    res["maxrss_kib"] = r["maxrss_kib"]
    return res


def find_ursprung() -> str:
    for cand in (Path(sys.executable).parent / "ursprung", REPO / ".venv" / "bin" / "ursprung"):
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which("ursprung")
    if found:
        return found
    raise BenchError(
        "the `ursprung` console script does not exist yet (no [project.scripts] entry "
        "installed in the venv): end-to-end import cannot be measured"
    )


def bench_import(log: Path, cpu: int) -> dict:
    exe = find_ursprung()
    home = Path(tempfile.mkdtemp(prefix="ursprung-bench-home-"))
    env = dict(os.environ, URSPRUNG_HOME=str(home))
    try:
        r = run_child(
            [exe, "import", "--source", "auditd", "--host", "bench", str(log)], cpu, env=env
        )
        if r["rc"] != 0:
            raise BenchError(
                f"`ursprung import --source auditd --host bench` failed ({r['rc']}): "
                f"{(r['stderr'] or r['stdout'])[-1500:]}"
            )
        return {
            "seconds": r["wall"],
            "maxrss_kib": r["maxrss_kib"],
            "cpu_seconds": r["cpu_seconds"],
            "output": r["stdout"][-2000:],
        }
    finally:
        # the embedded graph store is a daemon that outlives `ursprung import`
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [exe, "db", "stop"], env=env, capture_output=True, timeout=120, check=False
            )
        shutil.rmtree(home, ignore_errors=True)


def best_of(fn, repeat: int) -> dict:
    runs = [fn() for _ in range(repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    return dict(
        best,
        cpu_seconds=min(r["cpu_seconds"] for r in runs),
        all_seconds=[round(r["seconds"], 6) for r in runs],
    )


# --------------------------------------------------------------------------------------


def _tool_versions() -> dict:
    v = {"kernel": platform.release(), "python": platform.python_version()}
    for pkg in ("auditd", "python3-audit", "laurel"):
        try:
            out = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True
            )
            if out.returncode == 0:
                v[pkg] = out.stdout.strip()
        except OSError:
            pass
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo", encoding="utf-8") as f:
        v["cpu"] = next(
            line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
        )
    return v


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--log", type=Path, default=DEFAULT_LOG, help="recorded audit log (raw)")
    p.add_argument("--target-records", type=int, default=300_000)
    p.add_argument("--repeat", type=int, default=5, help="runs per measurement; best is kept")
    p.add_argument("--cpu", type=int, default=min(os.sched_getaffinity(0)))
    p.add_argument("--skip-import", action="store_true", help="do not run (d)")
    p.add_argument("--vary", action="store_true",
                   help="copies of the log differ in pids, inodes and paths, not only times")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)

    if not args.log.is_file():
        print(f"log not found: {args.log}", file=sys.stderr)
        return 2
    errors: dict[str, str] = {}
    results: dict = {
        "log": str(args.log),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_pinned": args.cpu,
        "repeat": args.repeat,
        "versions": _tool_versions(),
        "record_definition": "lines matching ^(node=\\S+ )?type=\\S+ msg=audit\\(",
    }
    tmp = Path(tempfile.mkdtemp(prefix="ursprung-bench-"))
    try:
        base_records = count_records(args.log)
        copies = max(1, math.ceil(args.target_records / base_records))
        large = tmp / "large.audit.log"
        large_records = replicate(args.log, large, copies, vary=args.vary)
        x10 = tmp / "x10.audit.log"
        x10_records = replicate(args.log, x10, 10)
        results.update(
            records=base_records,
            large={"copies": copies, "records": large_records, "bytes": large.stat().st_size},
            x10={"records": x10_records, "bytes": x10.stat().st_size},
        )
        conf = laurel_config(tmp)
        throughput: dict[str, dict] = {}
        memory: dict[str, dict] = {}

        def measure(name, fn):
            try:
                r = best_of(fn, args.repeat)
            except (BenchError, OSError) as exc:
                errors[name] = str(exc)
                return
            r["records_per_s"] = large_records / r["seconds"]
            r["records_per_cpu_s"] = large_records / r["cpu_seconds"]
            throughput[name] = r

        if not Path(SYSTEM_PYTHON).exists():
            errors["auparse"] = f"{SYSTEM_PYTHON} missing (apt-get install python3-audit)"
        else:
            measure("auparse", lambda: bench_auparse(large, args.cpu))
        if shutil.which("laurel") is None:
            errors["laurel"] = "laurel not installed (apt-get install laurel)"
        else:
            measure("laurel", lambda: bench_laurel(large, args.cpu, conf))
        measure("ours", lambda: bench_ours(large, args.cpu))

        for name, fn in (
            ("laurel", lambda log: bench_laurel(log, args.cpu, conf)),
            ("ours", lambda log: bench_ours(log, args.cpu)),
        ):
            if name in errors:
                continue
            try:
                m1 = fn(args.log)
                m10 = fn(x10)
            except (BenchError, OSError) as exc:
                errors[f"{name} memory"] = str(exc)
                continue
            memory[name] = {
                "maxrss_kib_1x": m1["maxrss_kib"],
                "maxrss_kib_10x": m10["maxrss_kib"],
                "growth_10x": m10["maxrss_kib"] / m1["maxrss_kib"],
            }
        results["throughput"] = throughput
        results["memory"] = memory

        if not args.skip_import:
            try:
                r = bench_import(large, args.cpu)
                r["records_per_s"] = large_records / r["seconds"]
                r["records_per_cpu_s"] = large_records / r["cpu_seconds"]
                results["import"] = r
            except (BenchError, OSError) as exc:
                errors["import"] = str(exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    results["errors"] = errors
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    _print_table(results)
    print(f"\nwrote {args.out}")
    if errors:
        print("\nFAILED:", file=sys.stderr)
        for name, msg in errors.items():
            print(f"  {name}: {msg}", file=sys.stderr)
        return 1
    return 0


def _print_table(res: dict) -> None:
    large = res.get("large", {})
    print(
        f"log {res['log']}: {res.get('records', '?')} records; throughput on "
        f"{large.get('records', '?')} records ({large.get('copies', '?')} shifted copies), "
        f"best of {res['repeat']}, pinned to cpu {res['cpu_pinned']}"
    )
    impl = res.get("throughput", {}).get("ours", {}).get("implementation")
    if impl:
        print(f"ours: audit parser implementation {impl!r} (records.IMPLEMENTATION)")
    print(
        f"{'part':<10} {'seconds':>9} {'records/s':>12} {'CPU s':>7} {'records/CPU-s':>14} "
        f"{'max RSS MiB':>12}"
    )
    rows = list(res.get("throughput", {}).items())
    if "import" in res:
        rows.append(("import", res["import"]))
    for name, r in rows:
        print(
            f"{name:<10} {r['seconds']:>9.3f} {r['records_per_s']:>12,.0f} "
            f"{r['cpu_seconds']:>7.3f} {r['records_per_cpu_s']:>14,.0f} "
            f"{r['maxrss_kib'] / 1024:>12.1f}"
        )
    if res.get("memory"):
        x10 = res.get("x10", {}).get("records", "?")
        print(f"\npeak memory (ru_maxrss), log {res.get('records')} vs 10x ({x10}) records")
        print(f"{'part':<10} {'1x MiB':>9} {'10x MiB':>9} {'growth':>7}")
        for name, m in res["memory"].items():
            print(
                f"{name:<10} {m['maxrss_kib_1x'] / 1024:>9.1f} {m['maxrss_kib_10x'] / 1024:>9.1f} "
                f"{m['growth_10x']:>6.2f}x"
            )


if __name__ == "__main__":
    sys.exit(main())
