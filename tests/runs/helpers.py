"""Shared helpers of the run tests: the CLI as a subprocess, with the test's store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
URSPRUNG = str(Path(sys.executable).parent / "ursprung")
EXAMPLE = REPO / "examples" / "pipeline"


def cli_env(settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["URSPRUNG_HOME"] = str(settings.home)
    env["URSPRUNG_GRAPH"] = settings.graph
    env.pop("URSPRUNG_STORE", None)
    env.update(extra)
    return env


def ursprung(settings, *args: str, cwd: str | Path | None = None,
             env: dict[str, str] | None = None, input: bytes | None = None,
             check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([URSPRUNG, *args], cwd=cwd, env=env or cli_env(settings),
                          input=input, capture_output=True, check=check, timeout=300)
