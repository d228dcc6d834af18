"""`ursprung versions PATH` and `ursprung diff PATH [V1] [V2]`: the content versions of a
file (kept by TRACK rules or observed by runs) and a unified diff between two of them."""

from __future__ import annotations

import os
from typing import Any

import click

from ..config import load_settings
from ..content import ContentStore
from ..schema.names import name_from_os
from .common import open_graph, printable


def _versions(path: str, host: str | None) -> list[dict[str, Any]]:
    from ..rules.cypher import FILE_VERSIONS

    return open_graph().read(FILE_VERSIONS, {"path": name_from_os(os.path.abspath(path)),
                                             "host": host})


@click.command("versions")
@click.argument("path")
@click.option("--host", default=None, help="Only the file on this host.")
def versions_cmd(path: str, host: str | None) -> None:
    """List the content versions of the file PATH, oldest first (N is what diff takes)."""
    found = _versions(path, host)
    if not found:
        raise click.ClickException(f"{path}: no versions recorded")
    for n, v in enumerate(found, 1):
        sha = (v["sha256"] or "-")[:12]
        stored = "stored" if v["stored"] else "not stored"
        runs = ",".join(r[:8] for r in v["runs"] if r) or "-"
        writers = ",".join(str(p) for p in v["writers"] if p is not None) or "-"
        click.echo(f"{n:3d}  {sha}  {v['size'] or 0:>9,} B  first {v['first']}  {stored}  "
                   f"writers {writers}  runs {runs}")


def _pick(found: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    if ref.isdigit() and 1 <= int(ref) <= len(found):
        return found[int(ref) - 1]
    hits = [v for v in found if (v["sha256"] or "").startswith(ref)
            or any((r or "").startswith(ref) for r in v["runs"])]
    if len(hits) != 1:
        raise click.ClickException(
            f"{ref!r} names {'no' if not hits else 'more than one'} version; give its number "
            "from `ursprung versions`, a hash prefix or a run id prefix")
    return hits[0]


@click.command("diff")
@click.argument("path")
@click.argument("v1", required=False)
@click.argument("v2", required=False)
@click.option("--host", default=None, help="Only the file on this host.")
def diff_cmd(path: str, v1: str | None, v2: str | None, host: str | None) -> None:
    """Unified diff of two versions of PATH: V1 and V2 are numbers from `ursprung versions`,
    content hash prefixes or run id prefixes [default: the last two versions]."""
    found = [v for v in _versions(path, host) if v["sha256"]]
    if len(found) < 2 and not (v1 and v2):
        raise click.ClickException(f"{path}: fewer than two versions with content recorded")
    a = _pick(found, v1) if v1 else found[-2]
    b = _pick(found, v2) if v2 else found[-1]
    store = ContentStore(load_settings().home / "content")
    text = store.diff(a["sha256"], b["sha256"], name_a=f"{path}@{a['sha256'][:12]}",
                      name_b=f"{path}@{b['sha256'][:12]}")
    if text is None:
        raise click.ClickException("the content of one of the versions is not stored, or "
                                   "is not text")
    click.echo("".join(printable(line) + "\n" for line in text.splitlines()), nl=False)
