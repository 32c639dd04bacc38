"""Finished cells as JSON files under ``$TRUSTKIT_HOME/cells``, one file per cache key, written atomically.

Keys come from :func:`trustkit.fingerprint.cache_key` over everything that decides a cell's numbers, so a file
is either the answer for exactly those inputs or absent. A file is written the moment its cell finishes: a run
killed at any point resumes with every finished cell intact and recomputes only the rest.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trustkit.atomic import sweep_stale, write_json
from trustkit.paths import home

# A cell file is written in milliseconds, and a live writer holds a lock on its temporary: an unlocked one older
# than this was left by a run killed mid-write, and the first write of the next run removes it.
DEAD_TEMP_SECONDS = 1.0


class CellCache:
    """Finished cells under ``root`` (default ``$TRUSTKIT_HOME/cells``); ``enabled=False`` reads and writes
    nothing."""

    def __init__(self, root: str | os.PathLike | None = None, enabled: bool = True) -> None:
        self.root = Path(root) if root else home() / "cells"
        self.enabled = enabled
        self._can_write: bool | None = None
        self._swept = False

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def load(self, key: str | None) -> dict[str, Any] | None:
        if not self.enabled or key is None:
            return None
        try:
            return json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # absent, or unreadable (treated as absent: the cell is simply recomputed)

    def store(self, key: str | None, data: dict[str, Any]) -> None:
        if self.enabled and key is not None and self._writable():
            if not self._swept:
                self._swept = True
                for shard in (self.root.iterdir() if self.root.is_dir() else ()):
                    if shard.is_dir():
                        sweep_stale(shard, max_age=DEAD_TEMP_SECONDS)
            write_json(self.path(key), data)

    def _writable(self) -> bool:
        """False (after one warning per process) when the cache folder cannot be written, e.g. a read-only
        TRUSTKIT_HOME: the run goes on with the cache off instead of failing."""
        if self._can_write is None:
            from trustkit.models.store import home_writable

            self._can_write = home_writable(self.root)
        return self._can_write
