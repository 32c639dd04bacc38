"""The substitute study (``trustkit bench substitute``, Papernot et al. 2017), as cells.

Its one group trains the substitute from the target's labels (the oracle queries it costs are counted) when it
is prepared; each cell is one (attack, eps): craft on the substitute, judge on the target, and attack the
target white-box with the same attack for reference. A cell's key holds the substitute's trained weights, so
a resumed run reuses every finished cell of the same substitute. What a row means is documented in
:mod:`trustkit.blackbox.substitute`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

import pandas as pd
import torch

from trustkit.attacks import format_eps, parse_eps, perturbation_norms
from trustkit.attacks.spec import AttackSpec, build_attacks
from trustkit.blackbox.models import check_model_spec, craft
from trustkit.blackbox.queries import LabelOracle
from trustkit.blackbox.substitute import (HISTORY_COLUMNS, SUBSTITUTE_COLUMNS, SubstituteConfig, beats_white_box,
                                          evaluation_indices, seed_indices, substitute_checks, train_substitute)
from trustkit.blackbox.transfer import build_cell_attack
from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.fingerprint import cache_key, state_dict_fingerprint, tensor_fingerprint
from trustkit.models import MODELS
from trustkit.models.inference import predict_labels
from trustkit.models.loading import LoadedModel, resolve_model
from trustkit.runtime import check_run_options, seed_everything
from trustkit.sanity import Check
from trustkit.studies.base import Memo, Progress, StudyOutput, TrainStep
from trustkit.studies.bench_cells import model_fingerprint


@dataclass(frozen=True)
class SubstituteCell:
    """Transfer ``attack`` at ``eps`` from the substitute to the target."""

    attack: AttackSpec
    eps: float

    group = "substitute"

    def title(self) -> str:
        return f"{self.attack.label} eps {format_eps(self.eps)} from the substitute"


@dataclass
class SubstituteState:
    target: LoadedModel
    substitute: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor
    target_labels: torch.Tensor
    substitute_labels: torch.Tensor
    queries: int
    history: list[dict[str, float]]
    seed_images: int
    fingerprint: str | None

    def to(self, device: torch.device) -> "SubstituteState":
        return replace(self, target=replace(self.target, module=self.target.module.to(device)),
                       substitute=self.substitute.to(device))


@dataclass
class SubstituteStudy:
    config: SubstituteConfig
    substitute_arch: str
    attack_specs: list[AttackSpec]
    eps_grid: list[float]
    kind: str = "substitute"

    def cells(self) -> Sequence[SubstituteCell]:
        return [SubstituteCell(a, e) for a in self.attack_specs for e in self.eps_grid]

    def description(self) -> str:
        return f"substitute attacks on {self.config.target}"

    def settings(self) -> dict[str, Any]:
        return {**asdict(self.config), "substitute": self.substitute_arch, "dataset": get_spec(self.config.dataset).name,
                "eps": self.eps_grid, "planned_queries": self.config.planned_queries()}

    def prerequisites(self) -> list[TrainStep]:
        config = self.config
        return [TrainStep(config.target, config.dataset, config.data_root, config.download)] \
            if config.target in MODELS else []

    def prepare(self, cells: Sequence[SubstituteCell], device: torch.device) -> SubstituteState:
        config, spec = self.config, get_spec(self.config.dataset)
        target = resolve_model(config.target, spec.name, data_root=config.data_root, device=device,
                               download=config.download, trust_code=config.trust_code)
        test_set = load_dataset(spec.name, "test", config.data_root, config.download)
        seeds_index = seed_indices(test_set.labels, config.seed_size, spec.num_classes, config.seed)
        eval_index = evaluation_indices(len(test_set), seeds_index, config.n, spec.default_n, config.seed)
        if len(eval_index) == 0:
            raise InvalidArgumentError(f"no test images left for evaluation after {len(seeds_index)} seeds; lower "
                                       "--seed-size")
        seeds, _ = test_set.tensors(seeds_index)
        x, y = test_set.tensors(eval_index)
        target_labels = predict_labels(target.module, x, batch_size=config.batch_size, device=device)  # evaluator's queries
        trained = train_substitute(LabelOracle(target.module, device), seeds, spec, config, device=device,
                                   eval_x=x, eval_target=target_labels, eval_y=y)
        substitute_labels = predict_labels(trained.model, x, batch_size=config.batch_size, device=device)
        target_print = model_fingerprint(target)
        fingerprint = None if target_print is None else cache_key(
            {"target": target_print, "substitute": state_dict_fingerprint(trained.model),
             "data": tensor_fingerprint(x, y), "queries": trained.queries})
        return SubstituteState(target, trained.model, x, y, target_labels, substitute_labels, trained.queries,
                               trained.history, len(seeds_index), fingerprint)

    def key(self, cell: SubstituteCell, state: SubstituteState, device_type: str) -> str | None:
        if state.fingerprint is None:
            return None
        return cache_key({"substitute_cell": {"attack": cell.attack.describe(), "eps": cell.eps,
                                              "target": self.config.target, "substitute": self.substitute_arch,
                                              "norm": self.config.norm, "seed": self.config.seed,
                                              "batch_size": self.config.batch_size},
                          "group": state.fingerprint, "attack_params": self._attack(cell).params(),
                          "device": device_type})

    def _attack(self, cell: SubstituteCell):  # noqa: ANN202 - Attack
        return build_cell_attack(cell.attack, cell.eps, self.config.norm, self.config.batch_size,
                                 {**self.config.attack_params, **self.config.strict_params})

    def run(self, cell: SubstituteCell, state: SubstituteState, device: torch.device,
            bar: Progress | None) -> dict[str, Any]:
        config, x, y = self.config, state.x, state.y
        seed_everything(config.seed)
        tic = time.perf_counter()
        # the attacker labels the images with its substitute: it has no labels and spends no queries
        x_adv = craft(self._attack(cell), state.substitute, x, state.substitute_labels,
                      batch_size=config.batch_size, device=device)
        seconds = time.perf_counter() - tic
        adversarial = predict_labels(state.target.module, x_adv, batch_size=config.batch_size, device=device)
        seed_everything(config.seed)
        # the white-box reference keeps the attack's defaults (early stopping: first fooling iterate)
        reference = cell.attack.build(cell.eps, config.norm, config.batch_size)
        white = predict_labels(state.target.module, craft(reference, state.target.module, x, y,
                                                   batch_size=config.batch_size, device=device),
                        batch_size=config.batch_size, device=device)
        linf, l2 = perturbation_norms(x_adv, x)
        correct = state.target_labels == y
        row = {"target": state.target.name, "substitute": self.substitute_arch, "dataset": get_spec(config.dataset).name,
               "attack": cell.attack.label, "norm": config.norm, "eps": cell.eps, "seed": config.seed, "n": len(y),
               "queries": state.queries,
               "agreement": (state.substitute_labels == state.target_labels).float().mean().item(),
               "substitute_accuracy": (state.substitute_labels == y).float().mean().item(),
               "target_clean_accuracy": correct.float().mean().item(),
               "success_rate": _rate(correct & (adversarial != y), correct),
               "error_rate": (adversarial != y).float().mean().item(),
               "white_box_success_rate": _rate(correct & (white != y), correct),
               "mean_linf": linf.mean().item(), "mean_l2": l2.mean().item(), "craft_seconds": seconds}
        return {"row": row}

    def portable(self, state: SubstituteState) -> SubstituteState:
        return state.to(torch.device("cpu"))

    def localize(self, state: SubstituteState, device: torch.device) -> SubstituteState:
        return state.to(device)

    def finish_group(self, cells: Sequence[SubstituteCell], state: SubstituteState, device: torch.device,
                     memo: Memo) -> dict[str, Any]:
        return {"target": {"name": state.target.name, "source": state.target.source}, "queries": state.queries,
                "seed_images": state.seed_images, "history": state.history, "n": len(state.y)}

    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        results = pd.DataFrame([r.data["row"] for r in output.finished], columns=SUBSTITUTE_COLUMNS)
        results["beats_white_box"] = beats_white_box(results)  # the sanity flag, per row of results.csv
        group = next(iter(output.groups.values()), {"history": []})
        return {"results.csv": results, "history.csv": pd.DataFrame(group["history"], columns=HISTORY_COLUMNS)}

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Check]:
        return substitute_checks(tables["results.csv"])

    def group_checks(self, output: StudyOutput) -> list[Check]:
        return []

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        group = next(iter(output.groups.values()), {"target": {"name": self.config.target}, "seed_images": 0,
                                                     "queries": 0, "n": 0})
        dataset, name = get_spec(self.config.dataset).name, group["target"]["name"]
        subtitle = (f"{self.substitute_arch} substitute from {group['seed_images']} seed images and "
                    f"{group['queries']:,} label queries · {group['n']} test images")
        return (f"substitute-{self.substitute_arch}-for-{name}-{dataset}", f"Substitute attack on {name} ({dataset})",
                subtitle)

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        group = next(iter(output.groups.values()), {})
        return {"target": group.get("target"), "queries": group.get("queries"), "seed_images": group.get("seed_images")}


def _rate(hits: torch.Tensor, of: torch.Tensor) -> float:
    return (hits.sum() / of.sum()).item() if of.any() else float("nan")


def substitute_study(config: SubstituteConfig) -> SubstituteStudy:
    """Validate ``config`` (names, attacks, threat model, query budget) before anything is trained."""
    config.validate()
    check_model_spec(config.target)
    substitute_arch = MODELS.canonical(config.substitute)
    spec = get_spec(config.dataset)
    check_run_options(config.n, config.batch_size, 1, config.device)
    eps_grid = sorted({parse_eps(e) for e in config.eps}) if config.eps else list(spec.eps_grid(config.norm))
    if not config.attacks:
        raise InvalidArgumentError("no attack given; name one, e.g. --attack fgsm")
    attack_specs = build_attacks(list(config.attacks), "trustkit", config.attack_params, config.strict_params,
                                 config.norm, eps_grid, config.batch_size)
    return SubstituteStudy(config, substitute_arch, attack_specs, eps_grid)
