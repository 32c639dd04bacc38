"""Several studies run as one: a suite's attacks beside the other trust questions (certification, corruptions,
calibration), in one engine run, one cache and one report.

A suite file names the extra studies under ``studies:`` (see :mod:`trustkit.studies.suite`); each becomes a
*part*. The combined study's cells are the parts' cells, each wrapped in a :class:`PartCell` that remembers its
part, so groups, cache keys, shipping to workers and resuming all stay the part's own: a cell cached by
``trustkit certify`` is the same cell in a suite. Tables keep the part's file names, prefixed by its kind for
every part but the first (``results.csv`` of the attacks, ``certify_results.csv``...).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from typing import Any, Hashable, Sequence

import pandas as pd
import torch

from trustkit.studies.base import CellRecord, Memo, Progress, Study, StudyOutput, TrainStep, affinity_of

# study kind -> (module, config class, validating factory): the studies a suite may name under ``studies:``
PART_STUDIES: dict[str, tuple[str, str, str]] = {
    "certify": ("trustkit.studies.certify", "CertifyConfig", "certify_study"),
    "corruptions": ("trustkit.studies.corruptions", "CorruptionsConfig", "corruptions_study"),
    "calibration": ("trustkit.studies.calibration", "CalibrationConfig", "calibration_study"),
    "membership": ("trustkit.studies.membership", "MembershipConfig", "membership_study"),
}
PART_TITLES = {"bench": "Attacks", "suite": "Attacks", "certify": "Certified robustness (randomized smoothing)",
               "corruptions": "Common corruptions", "calibration": "Calibration and out-of-distribution detection",
               "privacy-audit": "Privacy audit", "membership": "Membership inference with shadow models"}


def part_config_class(kind: str) -> type:
    """The config dataclass of a study a suite may name (``certify`` -> CertifyConfig)."""
    module, config_class, _ = PART_STUDIES[kind]
    return getattr(importlib.import_module(module), config_class)


def part_study(kind: str, settings: dict[str, Any]) -> Study:
    """The validated study of ``kind`` configured by ``settings`` (field names of its config class)."""
    module, config_class, factory = PART_STUDIES[kind]
    loaded = importlib.import_module(module)
    config_type = getattr(loaded, config_class)
    known = {f.name for f in fields(config_type)}
    unknown = sorted(set(settings) - known)
    if unknown:  # the suite parser reports these with a line number; this guards Python callers
        raise KeyError(f"{kind} has no setting {', '.join(unknown)}")
    return getattr(loaded, factory)(config_type(**settings))


@dataclass(frozen=True)
class PartCell:
    """A part's cell, remembering which part it belongs to."""

    part: int
    cell: Any

    @property
    def group(self) -> Hashable:
        return (self.part, self.cell.group)

    def title(self) -> str:
        return self.cell.title()


@dataclass
class PartState:
    """A part's group state, remembering which part prepared it (portable/localize are the part's)."""

    part: int
    state: Any


@dataclass
class CombinedStudy:
    """Parts (studies) run as one engine run; the first part is usually the suite's attacks."""

    parts: list[Study]
    label: str
    title: str
    subtitle: str
    suite_settings: dict[str, Any]
    kind: str = "combined"

    def cells(self) -> Sequence[PartCell]:
        return [PartCell(i, cell) for i, part in enumerate(self.parts) for cell in part.cells()]

    def description(self) -> str:
        return self.label

    def settings(self) -> dict[str, Any]:
        return {**self.suite_settings,
                "parts": [{"kind": part.kind, "title": title, "settings": part.settings()}
                          for part, title in zip(self.parts, self.part_titles(), strict=True)]}

    def prerequisites(self) -> list[TrainStep]:
        return list(dict.fromkeys(step for part in self.parts for step in part.prerequisites()))

    def prepare(self, cells: Sequence[PartCell], device: torch.device) -> PartState:
        part = cells[0].part
        return PartState(part, self.parts[part].prepare([c.cell for c in cells], device))

    def key(self, cell: PartCell, state: PartState, device_type: str) -> str | None:
        return self.parts[cell.part].key(cell.cell, state.state, device_type)

    def run(self, cell: PartCell, state: PartState, device: torch.device, bar: Progress | None) -> dict[str, Any]:
        return self.parts[cell.part].run(cell.cell, state.state, device, bar)

    def affinity(self, cell: PartCell) -> tuple | None:
        """The part's own affinity (a reusing ε-curve of the attacks part), kept apart from other parts'."""
        key = affinity_of(self.parts[cell.part], cell.cell)
        return None if key is None else (cell.part, key)

    def portable(self, state: PartState) -> PartState:
        return PartState(state.part, self.parts[state.part].portable(state.state))

    def localize(self, state: PartState, device: torch.device) -> PartState:
        return PartState(state.part, self.parts[state.part].localize(state.state, device))

    def finish_group(self, cells: Sequence[PartCell], state: PartState, device: torch.device,
                     memo: Memo) -> dict[str, Any]:
        return self.parts[state.part].finish_group([c.cell for c in cells], state.state, device, memo)

    # --- the parts' own views of a finished run -------------------------------------------------------------
    def part_titles(self) -> list[str]:
        """How the report and check names call each part (``Common corruptions · mnist`` with several data sets)."""
        datasets = {getattr(getattr(p, "config", None), "dataset", None) for p in self.parts[1:]}
        return [PART_TITLES.get(p.kind, p.kind) + (f" · {p.config.dataset}" if i and len(datasets) > 1 else "")
                for i, p in enumerate(self.parts)]

    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        tables: dict[str, pd.DataFrame] = {}
        kinds = [p.kind for p in self.parts]
        for i, part in enumerate(self.parts):
            for name, frame in part.frames(part_output(output, i)).items():
                tables[table_name(kinds, i, name)] = frame
        return tables

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Any]:
        found = []
        kinds = [p.kind for p in self.parts]
        for i, (part, title) in enumerate(zip(self.parts, self.part_titles(), strict=True)):
            for check in part.checks(part_tables(tables, kinds, i), part_output(output, i)):
                found.append(type(check)(f"{title}: {check.name}", check.status, check.detail, check.anchor))
        return found

    def group_checks(self, output: StudyOutput) -> list[Any]:
        return [c for i, part in enumerate(self.parts) for c in part.group_checks(part_output(output, i))]

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        return self.label, self.title, self.subtitle

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        return {"parts": [{"kind": part.kind, "title": title, **part.run_extras(part_output(output, i))}
                          for i, (part, title) in enumerate(zip(self.parts, self.part_titles(), strict=True))]}


def part_output(output: StudyOutput, part: int) -> StudyOutput:
    """What part ``part`` alone would have seen: its records (unwrapped) and its groups."""
    records = [CellRecord(r.cell.cell, r.data, r.cached, r.error) for r in output.records if r.cell.part == part]
    groups = {g[1]: info for g, info in output.groups.items() if g[0] == part}
    return StudyOutput(records, groups, sum(not r.cached and r.data is not None for r in records))


def table_name(kinds: Sequence[str], part: int, name: str) -> str:
    """The file name of part ``part``'s table ``name``: the first part's as is, the others' prefixed by their
    kind and, when a kind occurs more than once, its position (``certify_results.csv``, ``certify2_...``)."""
    if part == 0:
        return name
    same = [i for i in range(1, len(kinds)) if kinds[i] == kinds[part]]
    return f"{kinds[part]}{same.index(part) + 1 if len(same) > 1 else ''}_{name}"


def part_tables(tables: dict[str, pd.DataFrame], kinds: Sequence[str], part: int) -> dict[str, pd.DataFrame]:
    """Part ``part``'s tables under the names it gave them."""
    names = {table_name(kinds, i, "") for i in range(1, len(kinds))}
    if part == 0:
        return {n: f for n, f in tables.items() if not any(p and n.startswith(p) for p in names)}
    prefix = table_name(kinds, part, "")
    return {n[len(prefix):]: f for n, f in tables.items() if n.startswith(prefix)}
