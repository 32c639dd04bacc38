"""The shape every workload takes: a study is a validated spec that expands into independent cells.

A *cell* is a frozen, picklable value (a dataclass) with a ``group`` (cells of one group share expensive state:
a loaded model, a data sample) and a ``title()``. Running a cell is a pure function of its inputs — the model's
and the data's fingerprints, its parameters and its seed — that returns a JSON-able dict (its tidy rows and
small artefacts). The engine (:mod:`trustkit.engine`) runs the cells wherever it is told to (this process,
processes, a Ray cluster), caches them by :meth:`Study.key`, isolates failures and reports progress; a report
renders :meth:`Study.frames`. A study never imports the engine or the report: it only answers these questions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Protocol, Sequence, runtime_checkable

import pandas as pd
import torch

# memo(key, compute): the cached value of ``key`` or, when absent, ``compute()`` stored under it (key None:
# not cacheable, always computed). The engine passes one to :meth:`Study.finish_group`.
Memo = Callable[[str | None, Callable[[], dict[str, Any]]], dict[str, Any]]

# Settings that decide where and how a study runs, not its numbers: left out of every cache key.
RUN_ONLY_SETTINGS = ("out", "device", "trust_code", "use_cache", "jobs", "backend", "ray_address")


@dataclass(frozen=True)
class RunSettings:
    """Where and how a study runs (the :data:`RUN_ONLY_SETTINGS`, never in a cache key) and where its data and
    models come from: the fields every study config shares, first in each."""

    device: str = "auto"
    data_root: str | None = None
    download: bool = False
    trust_code: bool = False  # the user's consent to models that are programs (TorchScript, factories)
    out: str = "reports"
    use_cache: bool = True
    jobs: int = 1
    backend: str = "local"
    ray_address: str | None = None


class Progress(Protocol):
    """What a running cell may report: ``advance(fraction of the cell)`` and a ``note``."""

    def advance(self, amount: float = 1) -> None: ...

    def note(self, text: str) -> None: ...


@dataclass(frozen=True)
class TrainStep:
    """A model the study needs: the engine trains ``model`` on ``dataset`` first if it is not stored yet —
    a zoo classifier (``kind`` "classifier"; ``recipe``/``eps`` for an adversarially trained one, stored as
    ``trustkit train --adv RECIPE --eps EPS`` would) or a generative model ("generator", gen-<model>-<data>)."""

    model: str
    dataset: str
    data_root: str | None = None
    download: bool = False
    kind: str = "classifier"
    recipe: str = "clean"
    eps: float = 0.0


@dataclass
class CellRecord:
    """One cell as the engine saw it: its result (None when it failed), whether it came from the cache, and
    the failure's one-line error."""

    cell: Any
    data: dict[str, Any] | None
    cached: bool = False
    error: str | None = None


@dataclass
class StudyOutput:
    """Every cell's record (in cell order), what each group reported, and how many cells were computed."""

    records: list[CellRecord]
    groups: dict[Hashable, dict[str, Any]] = field(default_factory=dict)
    computed: int = 0

    @property
    def finished(self) -> list[CellRecord]:
        return [r for r in self.records if r.data is not None]

    @property
    def failed(self) -> list[CellRecord]:
        return [r for r in self.records if r.error is not None]


@runtime_checkable
class Study(Protocol):
    """A workload the engine can run. ``kind`` names its report (``bench``, ``suite``...)."""

    kind: str

    def cells(self) -> Sequence[Any]:
        """The study's cells, in report order (validated: a bad spec fails here, before any work)."""

    def description(self) -> str:
        """What the progress bar calls the study (``bench on cnn``)."""

    def settings(self) -> dict[str, Any]:
        """The study's configuration as recorded in run.json and the report."""

    def prerequisites(self) -> list[TrainStep]:
        """Models that must be trained before cells run (the engine trains the missing ones)."""

    def prepare(self, cells: Sequence[Any], device: torch.device) -> Any:
        """The state one group's cells share (loaded model, data sample, clean predictions)."""

    def key(self, cell: Any, state: Any, device_type: str) -> str | None:
        """The cache key of ``cell``: everything that decides its numbers; None when it cannot be cached."""

    def run(self, cell: Any, state: Any, device: torch.device, bar: Progress | None) -> dict[str, Any]:
        """Compute one cell (reseeding itself): a JSON-able dict.

        A study may also define ``affinity(cell) -> Hashable | None``: cells with the same non-None affinity
        build on each other's work in the group state (an ε-curve reusing its smaller budgets), so the
        ``processes`` and ``ray`` backends run them as one task, in cell order, in one process."""

    def portable(self, state: Any) -> Any:
        """``state`` ready to ship to another process or machine (tensors and modules on the CPU)."""

    def localize(self, state: Any, device: torch.device) -> Any:
        """A shipped ``state`` placed on ``device``."""

    def finish_group(self, cells: Sequence[Any], state: Any, device: torch.device, memo: Memo) -> dict[str, Any]:
        """What the report needs per group beyond its cells (model summary, probes), computed in the driver."""

    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        """The tidy tables of a finished study, by file name (``results.csv``...)."""

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Any]:
        """Sanity checks on the finished tables (:class:`trustkit.sanity.Check`)."""

    def group_checks(self, output: StudyOutput) -> list[Any]:
        """Per-group checks (model probes) named by their group, for the caller's summary."""

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        """``(run-id label, report title, subtitle)``."""

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        """The study's own run.json keys (models, attacks...)."""


def affinity_of(study: Study, cell: Any) -> Hashable | None:
    """``study.affinity(cell)`` for studies that declare one (see :meth:`Study.run`), else None."""
    declared = getattr(study, "affinity", None)
    return declared(cell) if declared is not None else None


def one_line(exc: BaseException) -> str:
    """``exc`` as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
