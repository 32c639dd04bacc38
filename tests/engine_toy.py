"""A toy study for the engine tests: each cell draws seeded random numbers (a pure function of its seed), so
any backend must return exactly the serial results. Module-level so spawned processes and Ray workers can
import it (tests put the repository root on PYTHONPATH)."""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from trustkit.fingerprint import cache_key


@dataclass(frozen=True)
class ToyCell:
    seed: int
    group_id: int = 0

    @property
    def group(self) -> int:
        return self.group_id

    def title(self) -> str:
        return f"toy seed {self.seed}"


@dataclass
class ToyStudy:
    """``seeds`` cells in ``groups`` groups. ``fail`` seeds raise; ``kill_once`` seeds SIGKILL their own
    process the first time (a marker file under ``marker_dir`` records it), like a preempted worker."""

    seeds: list[int]
    groups: int = 2
    fail: list[int] = field(default_factory=list)
    kill_once: list[int] = field(default_factory=list)
    marker_dir: str = ""
    kind: str = "toy"

    def cells(self) -> Sequence[ToyCell]:
        return [ToyCell(s, s % self.groups) for s in self.seeds]

    def description(self) -> str:
        return "toy"

    def settings(self) -> dict[str, Any]:
        return {"seeds": self.seeds}

    def prerequisites(self) -> list:
        return []

    def prepare(self, cells: Sequence[ToyCell], device: torch.device) -> dict[str, Any]:
        return {"offset": torch.full((4,), float(cells[0].group)), "pid": os.getpid()}

    def key(self, cell: ToyCell, state: dict[str, Any], device_type: str) -> str:
        return cache_key({"toy": cell.seed, "group": cell.group, "device": device_type})

    def run(self, cell: ToyCell, state: dict[str, Any], device: torch.device, bar: Any) -> dict[str, Any]:
        if cell.seed in self.fail:
            raise ValueError(f"cell {cell.seed} is broken\nsecond line")
        if cell.seed in self.kill_once:
            marker = Path(self.marker_dir) / f"killed-{cell.seed}"
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
        values = torch.randn(4, generator=torch.Generator().manual_seed(cell.seed)) + state["offset"]
        return {"row": {"seed": cell.seed, "value": float(values.sum()), "pid": os.getpid()}}

    def portable(self, state: dict[str, Any]) -> dict[str, Any]:
        return state

    def localize(self, state: dict[str, Any], device: torch.device) -> dict[str, Any]:
        return state

    def finish_group(self, cells, state, device, memo) -> dict[str, Any]:  # noqa: ANN001
        return {"cells": len(cells)}

    def frames(self, output) -> dict[str, pd.DataFrame]:  # noqa: ANN001
        return {"results.csv": pd.DataFrame([r.data["row"] for r in output.finished])}


@dataclass
class ToyCurveStudy(ToyStudy):
    """Cells of one group build on each other, as an ε-curve does: cell ``s`` needs the result of the group's
    previous seed, computed in this process's group state (recursively, like a curve's smaller budgets) when
    this process has not run it. Every computation leaves a marker file ``computed-<seed>-<pid>-<n>`` under
    ``marker_dir``. With ``chained`` the study declares its curves (``affinity``)."""

    chained: bool = True

    def affinity(self, cell: ToyCell) -> int | None:
        return cell.group if self.chained else None

    def prepare(self, cells: Sequence[ToyCell], device: torch.device) -> dict[str, Any]:
        return {**super().prepare(cells, device), "done": {}}

    def localize(self, state: dict[str, Any], device: torch.device) -> dict[str, Any]:
        return {**state, "done": {}}  # as the bench study's contexts: computed results do not travel

    def run(self, cell: ToyCell, state: dict[str, Any], device: torch.device, bar: Any) -> dict[str, Any]:
        previous = cell.seed - self.groups
        below = 0.0
        if previous in self.seeds:
            if previous not in state["done"]:
                self.run(ToyCell(previous, cell.group_id), state, device, None)
            below = state["done"][previous]
        markers = Path(self.marker_dir)
        markers.joinpath(f"computed-{cell.seed}-{os.getpid()}-{len(list(markers.iterdir()))}").touch()
        value = float(torch.randn(4, generator=torch.Generator().manual_seed(cell.seed)).sum()) + below
        state["done"][cell.seed] = value
        return {"row": {"seed": cell.seed, "value": value, "pid": os.getpid()}}
