"""The transfer study (``trustkit bench transfer``): craft on each source, judge on every target, as cells.

A cell is one (crafting model, attack, eps): it crafts adversarial images on its model and judges them on
every target. *Transfer* cells craft on a source (iterative attacks to their last iterate, which lies deeper
across the boundary and transfers better); *reference* cells attack a target white-box with the attack's
defaults (each sample's first fooling iterate: the strongest white-box number). All cells share one group —
the loaded models and the seeded test sample — and each reseeds itself. What a row means is documented in
:mod:`trustkit.blackbox.transfer`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

import pandas as pd
import torch

from trustkit.attacks import format_eps, parse_eps, perturbation_norms
from trustkit.attacks.spec import AttackSpec, build_attacks
from trustkit.blackbox.models import ModelCache, NamedModel, check_model_spec, craft, ensemble_members, split_specs
from trustkit.blackbox.transfer import (TRANSFER_COLUMNS, TransferConfig, beats_white_box, build_cell_attack,
                                       transfer_checks, transfer_row)
from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.fingerprint import cache_key, tensor_fingerprint
from trustkit.models import MODELS
from trustkit.models.inference import predict_labels
from trustkit.runtime import check_run_options, seed_everything
from trustkit.sanity import Check
from trustkit.studies.base import Memo, Progress, StudyOutput, TrainStep
from trustkit.studies.bench_cells import model_fingerprint


@dataclass(frozen=True)
class TransferCell:
    """Craft ``attack`` at ``eps`` on ``model`` (a source, or with ``reference`` a target attacked white-box)."""

    model: str
    reference: bool
    attack: AttackSpec
    eps: float

    group = "transfer"  # one group: every cell shares the models and the sample

    def title(self) -> str:
        return f"{self.attack.label} eps {format_eps(self.eps)} on {self.model}" + (" (white-box)" if self.reference else "")


@dataclass
class TransferState:
    """The loaded models (by spec), the sample, clean predictions (by spec) and fingerprints."""

    models: dict[str, NamedModel]
    x: torch.Tensor
    y: torch.Tensor
    clean: dict[str, torch.Tensor]
    fingerprints: dict[str, str | None]
    data_fingerprint: str

    def to(self, device: torch.device) -> "TransferState":
        models = {k: replace(m, module=m.module.to(device)) for k, m in self.models.items()}
        return replace(self, models=models)


@dataclass
class TransferStudy:
    """A validated transfer configuration as engine cells."""

    config: TransferConfig
    sources: list[str]
    targets: list[str]
    attack_specs: list[AttackSpec]
    eps_grid: list[float]
    kind: str = "transfer"

    def cells(self) -> Sequence[TransferCell]:
        crafting = [TransferCell(s, False, a, e) for s in self.sources for a in self.attack_specs for e in self.eps_grid]
        return crafting + [TransferCell(t, True, a, e) for t in self.targets for a in self.attack_specs
                           for e in self.eps_grid]

    def description(self) -> str:
        return f"transfer on {self.config.dataset}"

    def settings(self) -> dict[str, Any]:
        return {**asdict(self.config), "sources": self.sources, "targets": self.targets, "eps": self.eps_grid,
                "attacks": [s.label for s in self.attack_specs], "dataset": get_spec(self.config.dataset).name}

    def prerequisites(self) -> list[TrainStep]:
        members = dict.fromkeys(m for s in self.sources + self.targets for m in ensemble_members(s))
        return [TrainStep(m, self.config.dataset, self.config.data_root, self.config.download)
                for m in members if m in MODELS]

    def prepare(self, cells: Sequence[TransferCell], device: torch.device) -> TransferState:
        config, spec = self.config, get_spec(self.config.dataset)
        cache = ModelCache(spec.name, device, config.data_root, config.download, config.trust_code)
        models = {s: cache.named(s) for s in dict.fromkeys(self.sources + self.targets)}
        test_set = load_dataset(spec.name, "test", config.data_root, config.download)
        x, y = test_set.tensors(test_set.sample(config.n, spec.default_n, config.seed))
        clean = {s: predict_labels(m.module, x, batch_size=config.batch_size, device=device) for s, m in models.items()}
        fingerprints = {s: _fingerprint(cache, s) for s in models}
        return TransferState(models, x, y, clean, fingerprints, tensor_fingerprint(x, y))

    def key(self, cell: TransferCell, state: TransferState, device_type: str) -> str | None:
        involved = [cell.model] + ([] if cell.reference else self.targets)
        if any(state.fingerprints[s] is None for s in involved):
            return None
        attack = self._attack(cell)
        return cache_key({"transfer": {"model": cell.model, "reference": cell.reference, "eps": cell.eps,
                                       "norm": self.config.norm, "attack": cell.attack.describe(),
                                       "batch_size": self.config.batch_size, "seed": self.config.seed},
                          # the row's names and its is_source flag depend on the run's sources and targets
                          "models": {s: state.fingerprints[s] for s in involved}, "targets": self.targets,
                          "sources": self.sources,
                          "data": state.data_fingerprint, "attack_params": attack.params(), "device": device_type})

    def _attack(self, cell: TransferCell):  # noqa: ANN202 - Attack
        if cell.reference:  # the white-box reference keeps the attack's defaults (first fooling iterate)
            return cell.attack.build(cell.eps, self.config.norm, self.config.batch_size)
        return build_cell_attack(cell.attack, cell.eps, self.config.norm, self.config.batch_size,
                                 {**self.config.attack_params, **self.config.strict_params})

    def run(self, cell: TransferCell, state: TransferState, device: torch.device,
            bar: Progress | None) -> dict[str, Any]:
        config = self.config
        seed_everything(config.seed)  # each cell reseeds: results do not depend on the order or the process
        model = state.models[cell.model]
        tic = time.perf_counter()
        x_adv = craft(self._attack(cell), model.module, state.x, state.y, batch_size=config.batch_size,
                      device=device, bar=bar)
        seconds = time.perf_counter() - tic
        linf, l2 = perturbation_norms(x_adv, state.x)
        judged = [cell.model] if cell.reference else [t for t in self.targets
                                                      if state.models[t].module is not model.module]
        rows = [transfer_row(config, get_spec(config.dataset).name, model, state.models[t], cell.attack, cell.eps,
                             state.y, predict_labels(state.models[t].module, x_adv, batch_size=config.batch_size,
                                              device=device),
                             state.clean[cell.model], state.clean[t], linf, l2, seconds, cell.model in self.sources)
                for t in judged]
        return {"rows": rows}

    def portable(self, state: TransferState) -> TransferState:
        return state.to(torch.device("cpu"))

    def localize(self, state: TransferState, device: torch.device) -> TransferState:
        return state.to(device)

    def finish_group(self, cells: Sequence[TransferCell], state: TransferState, device: torch.device,
                     memo: Memo) -> dict[str, Any]:
        y = state.y
        rows = [{"name": state.models[s].name, "role": "source and target" if s in self.targets else "source",
                 "sources": ", ".join(state.models[s].sources),
                 "clean_accuracy": (state.clean[s] == y).float().mean().item()} for s in self.sources]
        rows += [{"name": state.models[t].name, "role": "target", "sources": ", ".join(state.models[t].sources),
                  "clean_accuracy": (state.clean[t] == y).float().mean().item()}
                 for t in self.targets if t not in self.sources]
        return {"models": rows, "n": len(y), "source_names": [state.models[s].name for s in self.sources],
                "target_names": [state.models[t].name for t in self.targets]}

    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        results = pd.DataFrame([row for r in output.finished for row in r.data["rows"]],
                               columns=TRANSFER_COLUMNS + ["is_source"])
        if len(results):  # canonical order: attack, eps, crafting model, target as given
            group = next(iter(output.groups.values()))
            names = list(dict.fromkeys(group["source_names"] + group["target_names"]))
            attack_rank = {s.label: i for i, s in enumerate(self.attack_specs)}
            results = results.assign(_a=results["attack"].map(attack_rank), _s=results["source"].map(names.index),
                                     _t=results["target"].map(group["target_names"].index))
            results = results.sort_values(["_a", "eps", "_s", "_t"], kind="stable").drop(columns=["_a", "_s", "_t"])
            results = results.reset_index(drop=True)
            results["beats_white_box"] = beats_white_box(results)  # the sanity flag, per row of results.csv
        return {"results.csv": results}

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Check]:
        return transfer_checks(tables["results.csv"])

    def group_checks(self, output: StudyOutput) -> list[Check]:
        return []

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        group = next(iter(output.groups.values()), {"source_names": self.sources, "target_names": self.targets,
                                                     "n": 0})
        dataset = get_spec(self.config.dataset).name
        title = f"Transfer: {', '.join(group['source_names'])} → {', '.join(group['target_names'])} on {dataset}"
        subtitle = f"{', '.join(s.label for s in self.attack_specs)} · {self.config.norm} · {group['n']} test images"
        label = f"transfer-{'+'.join(self.sources)[:40]}-to-{'+'.join(self.targets)[:40]}-{dataset}"
        return label, title, subtitle

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        return {"models": next(iter(output.groups.values()), {}).get("models", [])}


def _fingerprint(cache: ModelCache, spec: str) -> str | None:
    parts = [model_fingerprint(cache.load(m)) for m in ensemble_members(spec)]
    return None if any(p is None for p in parts) else "+".join(parts)


def transfer_study(config: TransferConfig) -> TransferStudy:
    """Validate ``config`` (model names, attacks, threat model) before any model is trained or loaded."""
    sources = split_specs(config.sources, "--source")
    targets = split_specs(config.targets, "--target")
    for spec in sources + targets:
        for member in ensemble_members(spec):
            check_model_spec(member)
    for spec in targets:
        if len(ensemble_members(spec)) > 1:
            raise InvalidArgumentError(f"target '{spec}' is an ensemble; ensembles ('+') are for --source only")
    data_spec = get_spec(config.dataset)
    check_run_options(config.n, config.batch_size, 1, config.device)
    eps_grid = sorted({parse_eps(e) for e in config.eps}) if config.eps else list(data_spec.eps_grid(config.norm))
    if not config.attacks:
        raise InvalidArgumentError("no attack given; name one, e.g. --attack pgd")
    attack_specs = build_attacks(list(config.attacks), "trustkit", config.attack_params, config.strict_params,
                                 config.norm, eps_grid, config.batch_size)
    return TransferStudy(config, sources, targets, attack_specs, eps_grid)
