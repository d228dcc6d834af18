"""libaudit's auparse (Debian ``python3-audit``) as a reference parser for tests.

The binding is a Debian package for the Debian Python, not a PyPI package, so it runs in a
``/usr/bin/python3`` subprocess (``auparse_events.py``). Only a missing binding is a reason
to skip; a reference script that fails is a test failure.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

DEBIAN_PYTHON = Path("/usr/bin/python3")
SCRIPT = Path(__file__).resolve().parent / "auparse_events.py"


def missing() -> str | None:
    """Why auparse cannot be used here (None: it can)."""
    if not DEBIAN_PYTHON.exists():
        return f"{DEBIAN_PYTHON} not found (Debian's Python, for python3-audit)"
    probe = subprocess.run([str(DEBIAN_PYTHON), "-c", "import auparse"], capture_output=True,
                           text=True, check=False)
    if probe.returncode != 0:
        return "auparse not importable (apt-get install python3-audit)"
    return None


def run(script: str | Path, *args: str) -> str:
    """Run ``script`` (a path, or code for ``-c``) under the Debian Python: its stdout. Skips
    only when auparse is missing; any failure of the script fails the test."""
    why = missing()
    if why is not None:
        pytest.skip(why)
    argv = [str(DEBIAN_PYTHON), str(script)] if isinstance(script, Path) else [
        str(DEBIAN_PYTHON), "-c", script]
    res = subprocess.run([*argv, *args], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.fail(f"auparse reference script failed (exit {res.returncode}):\n"
                    f"{res.stderr[-2000:]}")
    return res.stdout


def events(logs: list[Path]) -> dict[str, list[dict]]:
    """auparse's events of each log (``auparse_events.py``), by the log's path as given."""
    parsed: dict[str, list[dict]] = json.loads(run(SCRIPT, *map(str, logs)))
    return parsed
