"""The software environment of a traced run: the versions of the interpreters it executed
(asked, with a cache for binaries) and the Python distributions whose packages it imported
(read from the ``*.dist-info`` directories next to them). Used by ``ursprung run`` when the
command has ended and by ``ursprung runs define`` (which, for runs of the past, knows only
the interpreters' paths)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from ..home import private_dir
from ..query.runs import RunFile, RunFiles, is_interpreter
from ..schema.names import name_to_bytes, name_to_os

_VERSION_PROBES = {"python": ["-c", "import platform; print(platform.python_version())"]}
_DIST_INFO = re.compile(r"(?P<name>.+?)-(?P<version>[^-]+)\.(dist-info|egg-info)\Z")


def environment_of(files: RunFiles, *, probe: bool, cache: Path | None = None
                   ) -> dict[str, str]:
    """The software environment of a run: for each interpreter it executed, its version
    (``probe``: ask it, for runs traced here and now; else only its path is known), and for
    Python the distributions whose packages the run imported (``python-dist:NAME``), read
    from the ``*.dist-info`` directories next to them. ``cache`` (a JSON file) keeps the
    answers of interpreter binaries by their inode, size, mtime and ctime, so that a run
    does not wait for ``python -c ...`` to start every time."""
    env: dict[str, str] = {}
    programs = sorted({f.path for f in files.programs if f.executed is not None})
    interpreters = [p for p in programs if is_interpreter(p)]
    if not probe:
        for path in interpreters[:10]:
            env[path] = os.path.basename(path)
        return env
    env.update(probe_versions(interpreters[:10], cache))
    env.update(_distributions([*files.ignored, *files.environment]))
    return env


def probe_versions(paths: list[str], cache: Path | None = None) -> dict[str, str]:
    """``--version`` (for Python: ``platform.python_version()``) of each interpreter, the
    ones not in ``cache`` asked concurrently. Only binaries are cached: what a script (a
    pyenv shim, a wrapper) runs depends on its environment, so it is asked every time. A
    binary that gave no version (``sh --version`` fails) is cached as such, so that it is
    not started again after every run."""
    known = _load_cache(cache)
    found: dict[str, str] = {}
    ask: list[tuple[str, list[object] | None]] = []
    for path in paths:
        stamp = _stamp(path)
        hit = known.get(path)
        if stamp is not None and hit is not None and hit[:-1] == stamp:
            if hit[-1]:  # "": the binary gave no version when it was asked
                found[path] = str(hit[-1])
        else:
            ask.append((path, stamp))
    if ask:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(4, len(ask))) as pool:
            answers = list(pool.map(_probe_version, [path for path, _ in ask]))
        for (path, stamp), version in zip(ask, answers, strict=True):
            if version:
                found[path] = version
            if stamp is not None and version is not None:
                known[path] = [*stamp, version]  # "": it answers with no version
        if cache is not None and any(stamp is not None for _, stamp in ask):
            _save_cache(cache, known)
    return {path: found[path] for path in paths if path in found}


def _stamp(path: str) -> list[object] | None:
    """What identifies an interpreter binary's build: None for scripts and missing files."""
    try:
        with open(name_to_bytes(path), "rb") as fh:
            if fh.read(2) == b"#!":
                return None
            st = os.fstat(fh.fileno())
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _load_cache(cache: Path | None) -> dict[str, list[object]]:
    if cache is None:
        return {}
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, list) and len(v) == 6} \
        if isinstance(data, dict) else {}


def _save_cache(cache: Path, known: dict[str, list[object]]) -> None:
    import tempfile

    try:
        private_dir(cache.parent)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=".interpreters-")
    except OSError:
        return  # a cache that cannot be written only costs time
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(known, fh)
        os.replace(tmp, cache)  # whole or not at all, whoever else writes it
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _probe_version(path: str) -> str | None:
    """The version ``path`` reports; "" if it ran and reported none (which it will do
    again), None if it could not be asked (not started, timed out)."""
    name = os.path.basename(path)
    args = _VERSION_PROBES["python"] if name.startswith("python") else ["--version"]
    try:
        done = subprocess.run([name_to_os(path), *args], capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return ""
    for line in (done.stdout + "\n" + done.stderr).splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def _distributions(files: Iterable[RunFile]) -> dict[str, str]:
    tops: dict[str, set[str]] = {}
    for f in files:
        for marker in ("/site-packages/", "/dist-packages/"):
            at = f.path.find(marker)
            if at >= 0:
                site = f.path[:at + len(marker) - 1]
                top = f.path[at + len(marker):].split("/", 1)[0]
                top = top.removesuffix(".py").split(".", 1)[0] if top.endswith(".py") \
                    else top
                tops.setdefault(site, set()).add(top)
    out: dict[str, str] = {}
    for site, names in tops.items():
        try:
            entries = os.listdir(site)
        except OSError:
            continue
        for entry in entries:
            m = _DIST_INFO.match(entry)
            if m is None:
                continue
            provided = {m.group("name").replace("-", "_").lower()}
            try:
                with open(os.path.join(site, entry, "top_level.txt"), encoding="utf-8") as fh:
                    provided |= {line.strip().lower() for line in fh if line.strip()}
            except OSError:
                pass
            if provided & {n.lower() for n in names}:
                out[f"python-dist:{m.group('name')}"] = m.group("version")
    return out
