"""Bench cells: one (model, data set, defense, attack, norm, eps) evaluation, its cache key and its result.

A cell's result is cached under ``$TRUSTKIT_HOME/cells`` by a hash of everything that determines it — the
cell, the model's weights, the sample subset, the batch size, the device type and trustkit's version — so a
re-run (after an interruption, or of an overlapping suite) reuses finished cells and gets identical numbers.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trustkit._version import __version__
from trustkit.atomic import write_json
from trustkit.attacks import format_eps
from trustkit.bench.spec import AttackSpec
from trustkit.paths import home


@dataclass(frozen=True)
class Cell:
    """One evaluation: ``attack`` at (``norm``, ``eps``) on ``n`` seeded test images of ``dataset``."""

    model: str
    dataset: str
    attack: AttackSpec
    norm: str
    eps: float
    n: int | None = None
    seed: int = 0
    batch_size: int = 256
    defense: str = "none"
    suite: str = ""
    evaluation: str = "standard"  # "standard" (no defense), "naive" or "adaptive" (see trustkit.defenses)

    @property
    def group(self) -> tuple[str, str, str, int | None, int, int]:
        """Cells of one group share a loaded model, data subset, clean predictions and probes."""
        return (self.model, self.dataset, self.defense, self.n, self.seed, self.batch_size)

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "defense": self.defense, "evaluation": self.evaluation,
                "attack": self.attack.describe(), "norm": self.norm, "eps": self.eps, "n": self.n,
                "seed": self.seed, "batch_size": self.batch_size}

    def title(self) -> str:
        defense = "" if self.defense == "none" else f" + {self.defense} ({self.evaluation})"
        return f"{self.attack.label} {self.norm} eps {format_eps(self.eps)} on {self.model}/{self.dataset}{defense}"


def cache_key(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``payload`` plus trustkit's version."""
    text = json.dumps({**payload, "trustkit": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cell_key(cell: Cell, model_fingerprint: str, device_type: str) -> str:
    return cache_key({"cell": cell.describe(), "model": model_fingerprint, "device": device_type})


_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (memoised by path, size and modification time)."""
    stat = os.stat(path)
    memo = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _FINGERPRINTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _FINGERPRINTS[memo] = digest.hexdigest()
    return _FINGERPRINTS[memo]


def model_fingerprint(source: str) -> str | None:
    """What identifies a model's weights: a file hash, or the import path of a factory; None for objects."""
    if os.path.isfile(source):
        return file_fingerprint(source)
    if ":" in source:
        return f"factory:{source}"
    return None


@dataclass
class CellResult:
    """A finished cell: its tidy row, per-class rows, rendered gallery and the attack's parameters."""

    cell: Cell
    row: dict[str, Any]
    per_class: list[dict[str, Any]]
    gallery: list[dict[str, Any]] = field(default_factory=list)
    attack_params: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"cell": {**asdict(self.cell), "attack": self.cell.attack.describe()}, "row": self.row,
                "per_class": self.per_class, "gallery": self.gallery, "attack_params": self.attack_params}

    @classmethod
    def from_json(cls, data: dict[str, Any], cell: Cell) -> "CellResult":
        """A cached result for ``cell``; the suite name is the current run's (it does not affect numbers)."""
        row = {**data["row"], "suite": cell.suite}
        return cls(cell, row, data["per_class"], data.get("gallery", []), data.get("attack_params", {}), cached=True)


class CellCache:
    """Finished cells as JSON files under ``root`` (default ``$TRUSTKIT_HOME/cells``), written atomically."""

    def __init__(self, root: str | os.PathLike | None = None, enabled: bool = True) -> None:
        self.root = Path(root) if root else home() / "cells"
        self.enabled = enabled

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
        if self.enabled and key is not None:
            write_json(self.path(key), data)
