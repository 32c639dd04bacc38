"""Where trustkit keeps things: TRUSTKIT_HOME (checkpoints, caches) and the data root."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


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


def file_label(name: str) -> str:
    """``name`` as one safe file name: unchanged when it already is one (``cnn-mnist``); otherwise (a store entry
    naming a user's data set, ``cnn-folder:/data/val@224``) its unsafe runs become ``-``, shortened, with a hash
    of the full name so that two names never share a file."""
    if not UNSAFE.search(name) and len(name) <= 120 and not name.startswith("."):
        return name
    readable = UNSAFE.sub("-", name).strip("-.")[:80]
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"
