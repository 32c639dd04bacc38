"""Where trustkit keeps things: TRUSTKIT_HOME (checkpoints, caches) and the data root."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """``$TRUSTKIT_HOME`` or ``~/.cache/trustkit``: checkpoint store and decoded-data cache."""
    return Path(os.environ.get("TRUSTKIT_HOME") or Path.home() / ".cache" / "trustkit").expanduser()


def data_roots(data_root: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for data sets, in order: ``data_root``, ``$TRUSTKIT_DATA``, ``home()/data``."""
    roots: list[Path] = []
    if data_root:
        roots.append(Path(data_root).expanduser())
    elif os.environ.get("TRUSTKIT_DATA"):
        roots.append(Path(os.environ["TRUSTKIT_DATA"]).expanduser())
    roots.append(home() / "data")
    return roots
