"""Bench cells: one (model, data set, defense, attack, norm, eps) evaluation, its cache key and its result.

A cell's result is cached under ``$TRUSTKIT_HOME/cells`` by a hash of everything that determines it — the
cell, the model's bytes, the exact test tensors, every resolved attack parameter, the device type, trustkit's
source code and the library versions (:mod:`trustkit.fingerprint`) — so a re-run (after an interruption, or of
an overlapping suite) reuses finished cells and gets identical numbers, and nothing stale is served as fresh.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustkit.atomic import write_json
from trustkit.attacks import format_eps
from trustkit.bench.spec import AttackSpec
from trustkit.fingerprint import cache_key, file_fingerprint, state_dict_fingerprint
from trustkit.paths import home

if TYPE_CHECKING:
    from trustkit.models.loading import LoadedModel


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
    targets: str = ""  # targeted attacks: how target labels are drawn ("random", "least-likely"); "" untargeted

    @property
    def group(self) -> tuple[str, str, str, int | None, int, int]:
        """Cells of one group share a loaded model, data subset, clean predictions and probes."""
        return (self.model, self.dataset, self.defense, self.n, self.seed, self.batch_size)

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "defense": self.defense, "evaluation": self.evaluation,
                "attack": self.attack.describe(), "norm": self.norm, "eps": self.eps, "n": self.n,
                "seed": self.seed, "batch_size": self.batch_size, "targets": self.targets}

    def title(self) -> str:
        defense = "" if self.defense == "none" else f" + {self.defense} ({self.evaluation})"
        return f"{self.attack.label} {self.norm} eps {format_eps(self.eps)} on {self.model}/{self.dataset}{defense}"


def cell_key(cell: Cell, model_fingerprint: str, data_fingerprint: str, attack_params: dict[str, Any],
             device_type: str) -> str:
    """Everything that decides a cell's numbers: the cell, the model's bytes, the exact test tensors, every
    resolved attack parameter (defaults included), the device type, trustkit's code and library versions."""
    return cache_key({"cell": cell.describe(), "model": model_fingerprint, "data": data_fingerprint,
                      "attack_params": attack_params, "device": device_type})


def model_fingerprint(loaded: "LoadedModel") -> str | None:
    """What identifies a loaded model's computation: the hash of the file it was read from (checkpoint,
    TorchScript), or for a factory the hash of the state dict it built; None for a Python object."""
    if os.path.isfile(loaded.source):
        return f"file:{file_fingerprint(loaded.source)}"
    if loaded.metadata.get("format") == "factory":
        return f"factory:{loaded.source}:{state_dict_fingerprint(loaded.module)}"
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
        if self.enabled and key is not None and self._writable():
            write_json(self.path(key), data)

    def _writable(self) -> bool:
        """False (after one warning per process) when the cache folder cannot be written, e.g. a read-only
        TRUSTKIT_HOME: the run goes on with the cache off instead of failing."""
        if getattr(self, "_can_write", None) is None:
            from trustkit.models.store import home_writable

            self._can_write = home_writable(self.root)
        return self._can_write
