"""Where things live, from the environment: one place for defaults.

``URSPRUNG_HOME`` holds the embedded store's data, checkpoints and content store
(default ``~/.local/share/ursprung``). ``URSPRUNG_STORE`` points at a store other than the
embedded one (``falkordb://host:port``, ``falkordb+unix:///path/to.sock``).
``URSPRUNG_GRAPH`` names the graph (default ``ursprung``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    store_url: str | None
    graph: str

    @property
    def checkpoint_dir(self) -> Path:
        return self.home / "checkpoints"


def load_settings() -> Settings:
    home = Path(os.environ.get("URSPRUNG_HOME") or Path.home() / ".local/share/ursprung")
    return Settings(
        home=home.expanduser().resolve(),
        store_url=os.environ.get("URSPRUNG_STORE") or None,
        graph=os.environ.get("URSPRUNG_GRAPH") or "ursprung",
    )
