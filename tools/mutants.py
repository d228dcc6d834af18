"""Mutation check: small wrong changes to the product, one at a time, each of which the
relevant tests must catch ("killed"). A mutant that survives names a behaviour no test pins.

    .venv/bin/python tools/mutants.py [--list] [--only NAME ...] [--keep]

Each mutant is a text replacement in one source file, applied to a temporary copy of the
worktree (the tracked files plus the built C extension), where the mutant's test files run
with ``pytest -x``; the worktree itself is never touched. Prints one line per mutant,
``killed`` or ``SURVIVED``, and exits 1 if any survived (2 if a mutant no longer applies:
its text is gone from the source, so the list must follow the code; 3 if the tests fail
on the unmutated copy, which is run first as the control).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LINEAGE = "ursprung_graph/query/lineage.py"
MODEL = "ursprung_graph/collectors/os_model/model.py"
RECORDS = "ursprung_graph/collectors/auditd/records.py"
T_RULES = "tests/test_lineage_rules.py"
T_LINEAGE = "tests/test_lineage.py"
T_FIDELITY = "tests/collectors/test_fidelity.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    count: int = 1  # occurrences of ``old`` replaced (all of them must be there)
    env: dict[str, str] = field(default_factory=dict)


MUTANTS = [
    # lineage (issue 14's list)
    Mutant("downstream ignores time", LINEAGE, "WHERE e.last >= f.bound", "WHERE e.last >= 0",
           (T_RULES, T_LINEAGE), count=5),
    Mutant("downstream bound never moves forward", LINEAGE,
           "return first if rel == _FORKED else max(bound, first)",
           "return first if rel == _FORKED else bound", (T_RULES, T_LINEAGE)),
    Mutant("upstream writers must have finished by T", LINEAGE,
           'LINKED_TO)}]-(m) "\n        f"WHERE e.first <= f.bound',
           'LINKED_TO)}]-(m) "\n        f"WHERE e.last <= f.bound', (T_RULES, T_LINEAGE)),
    Mutant("O_RDWR treated as write-only", MODEL,
           'kind = "rw" if mode == O_RDWR else', 'kind = "w" if mode == O_RDWR else', (T_RULES,)),
    Mutant("renameat target against the source's dirfd", MODEL,
           "self.directory(proc, sc.args[2]) if renameat", "self.directory(proc, sc.args[0]) "
           "if renameat", (T_RULES,)),
    Mutant("delivery after a failed delivery", "ursprung_graph/pipeline/sinks.py",
           "if self._error is None:  # after a failure", "if True:  # after a failure",
           ("tests/pipeline/test_inflight.py",)),
    Mutant("basename match unique on one side only", "ursprung_graph/query/compare.py",
           "if not fbs or len(fas) != 1 or len(fbs) != 1:", "if not fbs or len(fas) != 1:",
           ("tests/runs/test_compare_rules.py",)),
    Mutant("size+mtime ignores mtime", "ursprung_graph/query/compare.py",
           "return (size_a, _known(fa.mtime)) == (size_b, _known(fb.mtime)),",
           "return size_a == size_b,", ("tests/runs/test_compare_rules.py",)),
    Mutant("a loading server taken for a hung one", "ursprung_graph/store/embedded.py",
           'if reply.startswith(b"-LOADING"):', 'if reply.startswith(b"-LOADING-NOT"):',
           ("tests/test_store.py::test_a_server_that_is_loading_is_waited_for",)),
    # the fidelity defects, each fix undone
    Mutant("PATH needs nametype=", RECORDS,
           'nametype = d.get(b"nametype", d.get(b"objtype", b"UNKNOWN"))',
           'nametype = d[b"nametype"]', (T_FIDELITY,)),
    Mutant("aN_len compared with decoded bytes", RECORDS,
           "logged += len(c) - 2 if c[:1] == b'\"' else len(c)",
           'logged += len(_value(c) or b"")', (T_FIDELITY,)),
    Mutant("child seen before its clone spawned again", MODEL,
           "if existing.start == 0:", "if False:", (T_FIDELITY,)),
    Mutant("/proc/self/fd names not resolved", MODEL,
           'if name.startswith("/proc/"):', "if False:", (T_FIDELITY,)),
    Mutant("O_RDONLY|O_CREAT creator not a writer", MODEL,
           'if kind != "r" or item.nametype == "CREATE":', 'if kind != "r":', (T_FIDELITY,)),
    Mutant("symlink target ignored", MODEL,
           'sources = ("NORMAL", "UNKNOWN") if symlink else ("NORMAL",)',
           'sources = ("NORMAL",)', (T_FIDELITY,)),
    Mutant("accept without SOCKADDR dropped", MODEL,
           '                peer = Endpoint(LISTENING, f"{proc.pid}.{proc.start}.{fd}")\n',
           "                return\n", (T_FIDELITY,)),
    Mutant("blank lines are rejected (pure-Python parser)", RECORDS,
           "        if not line:\n            return []  # a blank line", "        if False:\n"
           "            return []  # a blank line", (T_FIDELITY,),
           env={"URSPRUNG_PURE_PYTHON": "1"}),
    Mutant("partial events dropped", RECORDS,
           "    if missing is not None and not final:\n        return None",
           "    if missing is not None:\n        return None if not final else "
           "[Rejected(missing, _joined(recs), offset)]", (T_FIDELITY,)),
]


def _copy(dest: Path) -> None:
    """The tracked files of the worktree (as they are now) and its built extensions."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True).stdout.split(b"\0")
    built = [p.relative_to(ROOT) for p in (ROOT / "ursprung_graph").rglob("*.so")]
    for rel in [Path(p.decode()) for p in listed if p] + built:
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _apply(tree: Path, m: Mutant) -> None:
    target = tree / m.path
    text = target.read_text(encoding="utf-8")
    found = text.count(m.old)
    if found != m.count:
        print(f"mutant {m.name!r} does not apply: {found} occurrences of its text in "
              f"{m.path} (want {m.count})", file=sys.stderr)
        sys.exit(2)
    target.write_text(text.replace(m.old, m.new), encoding="utf-8")


def run(m: Mutant, keep: bool) -> tuple[bool, float]:
    """(killed, seconds) for one mutant; ``m.old == m.new`` is the unmutated control."""
    tree = Path(tempfile.mkdtemp(prefix="ursprung-mutant-"))
    try:
        _copy(tree)
        if m.old != m.new:
            _apply(tree, m)
        env = {**os.environ, "PYTHONPATH": str(tree), **m.env}
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                              "no:cacheprovider", *m.tests], cwd=tree, env=env,
                             capture_output=True, text=True, check=False)
        return res.returncode != 0, time.monotonic() - t0
    finally:
        if keep:
            print(f"  kept {tree}", file=sys.stderr)
        else:
            shutil.rmtree(tree, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="mutants whose name contains NAME")
    ap.add_argument("--keep", action="store_true", help="keep each mutated copy")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(s in m.name for s in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.path} -> {' '.join(m.tests)}")
        return 0
    tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
    failed, seconds = run(Mutant("control", "", "", "", tests), keep=False)
    if failed:  # a kill only means something if the same tests pass on the unmutated copy
        print(f"the tests fail on the unmutated copy ({seconds:.1f}s): {' '.join(tests)}",
              file=sys.stderr)
        return 3
    print(f"control  {seconds:5.1f}s  the unmutated copy passes all {len(tests)} test targets")
    survived = 0
    for m in chosen:
        killed, seconds = run(m, args.keep)
        survived += not killed
        print(f"{'killed  ' if killed else 'SURVIVED'} {seconds:5.1f}s  {m.name}", flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} mutants killed")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
