"""The membership study (``trustkit privacy membership``): LiRA (online and offline), RMIA and the loss threshold
against a target trained like its shadow models, the experiment of Carlini et al. 2022.

A seeded *pool* of training-split images is the candidate set. Model 0 (the target) and models 1..K (the
shadows) are each trained on their own seeded random half of the pool, with the same architecture and recipe; a
pool image is a member when the target's half holds it, a non-member otherwise, so members and non-members come
from one distribution and chance is AUC 0.5. Every model is one engine cell: it trains, then returns the
logit-scaled confidence φ of each pool image (several augmented views) and of a *population* of test-split
images no model saw (RMIA's reference points). Cells are cached and resumable, so K can grow later (model k's
half depends only on the seed and k) and a killed run loses at most the models in flight; they run on any
backend (processes, Ray).

The attacks are computed from these numbers when the tables are built (:mod:`trustkit.privacy.lira`,
:mod:`trustkit.privacy.rmia`); TPR at 1% and 0.1% FPR is reported only when the non-members can resolve it, and
the TPR at 0 false positives always, with the count.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from trustkit.data import get_spec, load_dataset
from trustkit.data.base import ImageDataset
from trustkit.errors import InvalidArgumentError
from trustkit.fingerprint import cache_key, tensor_fingerprint
from trustkit.models import MODELS, build_model
from trustkit.models.inference import predict_logits
from trustkit.privacy.lira import lira_offline, lira_online, max_queries, query_views, scaled_logit
from trustkit.privacy.membership import low_fpr_summary, resolves, roc_points
from trustkit.privacy.rmia import DEFAULT_GAMMA, probability_from_scaled_logit, rmia_scores
from trustkit.runtime import check_run_options, prepare_model, seed_everything
from trustkit.sanity import Check
from trustkit.studies.base import Memo, Progress, RunSettings, StudyOutput, TrainStep
from trustkit.train.config import TrainConfig
from trustkit.train.defaults import default_config
from trustkit.train.fit import fit

ATTACKS = ("lira", "lira-offline", "rmia", "loss")
DEFAULT_POOL = 2000  # candidate images (at most the training split): ~1,000 non-members resolve 0.1% FPR
DEFAULT_POPULATION = 1000
MIN_EPOCHS = 30  # a model fit on a small half-pool needs many passes; zoo defaults assume the full split

# The published anchor for LiRA with 16 shadow models on CIFAR-10 (WRN-28-2, 25,000 members): a larger model and
# data set than a CPU run trains, so it frames our numbers rather than predicting them.
ANCHOR = {"dataset": "cifar10", "model": "WRN-28-2", "shadow_models": 16, "attack": "lira",
          "auc": 0.6676, "tpr_at_0_1pct_fpr": 0.0169}

RESULT_COLUMNS = ["attack", "auc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr", "tpr_at_0_fp", "members", "non_members",
                  "shadow_models", "queries", "model", "dataset", "target_train_accuracy", "target_test_accuracy",
                  "gap"]
MODEL_COLUMNS = ["index", "role", "train_size", "train_accuracy", "test_accuracy", "seconds"]


@dataclass(frozen=True)
class MembershipConfig(RunSettings):
    """What ``trustkit privacy membership`` runs.

    ``model``: a zoo architecture (the target and every shadow are trained from it on ``dataset``);
    ``attacks``: of :data:`ATTACKS`; ``shadow_models``: K; ``pool``: candidate images from the training split
    (default min(2,000, split)); ``population``: RMIA's test-split reference images (default min(1,000, split));
    ``queries``: augmented views per image (identity, mirror where the data set flips, 1-pixel shifts);
    ``epochs``/``batch_size``/``lr``: the training recipe of every model (default: the zoo's for the pair, at
    least 30 epochs); ``variance``: LiRA's Gaussian spread ("auto": pooled under 64 shadows, else per image);
    ``gamma``: RMIA's threshold on the pairwise likelihood ratio."""

    model: str = "cnn"
    dataset: str = "digits"
    attacks: tuple[str, ...] = ATTACKS
    shadow_models: int = 16
    pool: int | None = None
    population: int | None = None
    queries: int = 2
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    variance: str = "auto"
    gamma: float = DEFAULT_GAMMA
    seed: int = 0


@dataclass(frozen=True)
class ModelCell:
    """Train model ``index`` (0: the target, 1..K: shadows) on its half of the pool and score every image."""

    index: int
    group = "membership"

    def title(self) -> str:
        return "train the target model" if self.index == 0 else f"train shadow model {self.index}"


@dataclass
class MembershipState:
    """The pool and population images, the architecture and the recipe every model is trained with."""

    arch: str
    spec: Any
    x_pool: torch.Tensor
    y_pool: torch.Tensor
    pool_index: torch.Tensor
    x_population: torch.Tensor
    y_population: torch.Tensor
    train: TrainConfig
    data_fingerprint: str


def member_row(pool: int, seed: int, index: int) -> np.ndarray:
    """Which pool images model ``index`` is trained on (a seeded random half; booleans, length ``pool``).

    Depends only on (seed, index, pool size), so adding shadow models never changes the earlier ones."""
    order = torch.randperm(pool, generator=torch.Generator().manual_seed(seed * 100_003 + 7919 * index + 1))
    row = np.zeros(pool, dtype=bool)
    row[order[: pool // 2].numpy()] = True
    return row


def train_recipe(config: MembershipConfig, arch: str, dataset: str) -> TrainConfig:
    """The recipe of the target and every shadow: the zoo's for (arch, dataset), at least :data:`MIN_EPOCHS`
    epochs unless ``epochs`` is given, with the config's overrides."""
    base = default_config(arch, dataset)
    epochs = config.epochs if config.epochs is not None else max(base.epochs, MIN_EPOCHS)
    return base.with_overrides(epochs=epochs, batch_size=config.batch_size, lr=config.lr)


@dataclass
class MembershipStudy:
    """A validated membership configuration as engine cells: the target and its shadow models."""

    config: MembershipConfig
    kind: str = "membership"

    def cells(self) -> Sequence[ModelCell]:
        return [ModelCell(i) for i in range(self.config.shadow_models + 1)]

    def description(self) -> str:
        return f"membership {self.config.model} on {self.config.dataset} ({self.config.shadow_models} shadows)"

    def settings(self) -> dict[str, Any]:
        spec = get_spec(self.config.dataset)
        return {**asdict(self.config), "dataset": spec.name, "model": MODELS.canonical(self.config.model),
                "train": train_recipe(self.config, MODELS.canonical(self.config.model), spec.name).to_dict()}

    def prerequisites(self) -> list[TrainStep]:
        return []  # the cells train every model themselves

    def prepare(self, cells: Sequence[ModelCell], device: torch.device) -> MembershipState:
        c, spec = self.config, get_spec(self.config.dataset)
        arch = MODELS.canonical(c.model)
        train_split = load_dataset(spec.name, "train", c.data_root, c.download)
        test_split = load_dataset(spec.name, "test", c.data_root, c.download)
        pool_index = train_split.sample(min(c.pool or DEFAULT_POOL, len(train_split)), DEFAULT_POOL, c.seed)
        population_index = test_split.sample(min(c.population or DEFAULT_POPULATION, len(test_split)),
                                             DEFAULT_POPULATION, c.seed + 1)
        x_pool, y_pool = train_split.tensors(pool_index)
        x_population, y_population = test_split.tensors(population_index)
        fingerprint = tensor_fingerprint(x_pool, y_pool, x_population, y_population)
        return MembershipState(arch, spec, x_pool, y_pool, pool_index, x_population, y_population,
                               train_recipe(c, arch, spec.name), fingerprint)

    def key(self, cell: ModelCell, state: MembershipState, device_type: str) -> str:
        c = self.config
        return cache_key({"membership": "model", "index": cell.index, "arch": state.arch, "dataset": state.spec.name,
                          "train": state.train.to_dict(), "queries": c.queries, "seed": c.seed,
                          "data": state.data_fingerprint, "device": device_type})

    def run(self, cell: ModelCell, state: MembershipState, device: torch.device,
            bar: Progress | None) -> dict[str, Any]:
        c, tic = self.config, time.perf_counter()
        seed = c.seed * 1000 + cell.index  # every model its own initialisation and batch order
        seed_everything(seed)
        members = torch.from_numpy(member_row(len(state.y_pool), c.seed, cell.index))
        train_set = ImageDataset(state.x_pool[members], state.y_pool[members], name=state.spec.name, split="train",
                                 class_names=tuple(state.spec.class_names))
        model = prepare_model(build_model(state.arch, state.spec), device)
        role = "target" if cell.index == 0 else f"shadow {cell.index}"
        fit(model, train_set, state.train, device=device, seed=seed, augment=state.spec.augment,
            description=f"train {role} {state.arch} on {len(train_set)} {state.spec.name} images")
        model.eval()
        if bar is not None:
            bar.advance(0.9)
        flips = state.spec.augment == "crop-flip"

        def phi(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
            views = query_views(x, c.queries, flips=flips)
            return np.stack([scaled_logit(predict_logits(model, v, batch_size=512, device=device).cpu(), y)
                             for v in views], axis=1)

        pool_phi, population_phi = phi(state.x_pool, state.y_pool), phi(state.x_population, state.y_population)
        train_accuracy = _accuracy(model, state.x_pool[members], state.y_pool[members], device)
        return {"pool_phi": pool_phi.tolist(), "population_phi": population_phi.tolist(),
                "train_size": int(members.sum()), "train_accuracy": train_accuracy,
                "test_accuracy": _accuracy(model, state.x_population, state.y_population, device),
                "seconds": time.perf_counter() - tic}

    def portable(self, state: MembershipState) -> MembershipState:
        return state  # CPU tensors; every cell builds its own model

    def localize(self, state: MembershipState, device: torch.device) -> MembershipState:
        return state

    def finish_group(self, cells: Sequence[ModelCell], state: MembershipState, device: torch.device,
                     memo: Memo) -> dict[str, Any]:
        return {"arch": state.arch, "dataset": state.spec.name, "pool": len(state.y_pool),
                "population": len(state.y_population), "labels": state.y_pool.tolist(),
                "pool_index": state.pool_index.tolist(), "train": state.train.to_dict()}

    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        c = self.config
        group = output.groups.get("membership", {})
        done = {r.cell.index: r.data for r in output.finished}
        models = pd.DataFrame([{"index": i, "role": "target" if i == 0 else "shadow", "train_size": d["train_size"],
                                "train_accuracy": d["train_accuracy"], "test_accuracy": d["test_accuracy"],
                                "seconds": d["seconds"]} for i, d in sorted(done.items())], columns=MODEL_COLUMNS)
        empty = {"results.csv": pd.DataFrame(columns=RESULT_COLUMNS), "scores.csv": pd.DataFrame(),
                 "models.csv": models}
        shadows = sorted(i for i in done if i > 0)
        if 0 not in done or not group:
            return empty
        pool = group["pool"]
        target = np.asarray(done[0]["pool_phi"])
        member = member_row(pool, c.seed, 0)
        scores = attack_scores(c, target, np.asarray(done[0]["population_phi"]),
                               [np.asarray(done[i]["pool_phi"]) for i in shadows],
                               [np.asarray(done[i]["population_phi"]) for i in shadows],
                               np.stack([member_row(pool, c.seed, i) for i in shadows]) if shadows else
                               np.zeros((0, pool), dtype=bool))
        head = {"shadow_models": len(shadows), "queries": c.queries, "model": group["arch"],
                "dataset": group["dataset"], "target_train_accuracy": done[0]["train_accuracy"],
                "target_test_accuracy": done[0]["test_accuracy"],
                "gap": done[0]["train_accuracy"] - done[0]["test_accuracy"]}
        rows = []
        for attack, values in scores.items():
            if values is None:
                continue
            _, _, auc = roc_points(values[member], values[~member])
            rows.append({"attack": attack, "auc": auc, **low_fpr_summary(values[member], values[~member]),
                         "members": int(member.sum()), **head})
        per_image = pd.DataFrame({"pool_position": np.arange(pool), "dataset_index": group["pool_index"],
                                  "label": group["labels"], "member": member,
                                  **{f"score_{a}": v for a, v in scores.items() if v is not None}})
        return {"results.csv": pd.DataFrame(rows, columns=RESULT_COLUMNS), "scores.csv": per_image,
                "models.csv": models}

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Check]:
        return membership_checks(self.config, tables)

    def group_checks(self, output: StudyOutput) -> list[Check]:
        return []

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        c, dataset = self.config, get_spec(self.config.dataset).name
        model = MODELS.canonical(c.model)
        group = output.groups.get("membership", {})
        return (f"membership-{model}-{dataset}", f"Membership inference: {model} on {dataset}",
                f"{', '.join(c.attacks)} · {c.shadow_models} shadow models · pool {group.get('pool', '?')} "
                f"(half members) · {c.queries} quer{'y' if c.queries == 1 else 'ies'} per image")

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        group = output.groups.get("membership", {})
        return {"pool": group.get("pool"), "population": group.get("population"), "train": group.get("train"),
                "anchor": ANCHOR}


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    return float((predict_logits(model, x, batch_size=512, device=device).argmax(1).cpu() == y).float().mean())


def attack_scores(config: MembershipConfig, target: np.ndarray, target_population: np.ndarray,
                  shadows: list[np.ndarray], shadows_population: list[np.ndarray],
                  member_of: np.ndarray) -> dict[str, np.ndarray | None]:
    """Each requested attack's score per pool image (higher: more likely a member); None where the attack
    cannot run with the shadow models that finished (online LiRA needs 2, RMIA 1, offline LiRA IN and OUT
    models). φ arrays are N×Q (target) and K of them N×Q (shadows); ``member_of``: K×N."""
    found: dict[str, np.ndarray | None] = {}
    stacked = np.stack(shadows) if shadows else None
    for attack in config.attacks:
        if attack == "loss":  # −cross-entropy = log σ(φ) on the plain image: Yeom et al.'s threshold
            found[attack] = -np.logaddexp(0.0, -target[:, 0])
        elif stacked is None:
            found[attack] = None
        elif attack == "lira":
            found[attack] = lira_online(target, stacked, member_of, variance=config.variance) \
                if len(shadows) >= 2 else None
        elif attack == "lira-offline":
            found[attack] = lira_offline(target, stacked, member_of, variance=config.variance) \
                if (~member_of).any() and member_of.any() else None
        elif attack == "rmia":
            found[attack] = rmia_scores(probability_from_scaled_logit(target), probability_from_scaled_logit(stacked),
                                        probability_from_scaled_logit(target_population),
                                        probability_from_scaled_logit(np.stack(shadows_population)),
                                        gamma=config.gamma)
    return found


def membership_checks(config: MembershipConfig, tables: dict[str, pd.DataFrame]) -> list[Check]:
    """Whether the non-members resolve the low-FPR points, whether enough shadow models finished, and whether
    the target fits its members better than unseen images at all (without a gap nothing can leak this way)."""
    results, models = tables["results.csv"], tables["models.csv"]
    if not len(results):
        return [Check("membership attacks", "skipped", "the target model did not finish", "membership-resolution")]
    first = results.iloc[0]
    non_members = int(first["non_members"])
    checks = []
    unresolved = [f"{f:.1%}" for f in (0.01, 0.001) if not resolves(non_members, f)]
    if unresolved:
        needed = math.ceil(1 / 0.001) if "0.1%" in unresolved else math.ceil(1 / 0.01)
        checks.append(Check("low-FPR resolution", "flag", f"{non_members} non-members cannot resolve "
                            f"{' and '.join(unresolved)} FPR (at least {needed:,} are needed for one admissible false "
                            f"positive); the report gives the TPR at 0 false positives there instead — raise --pool",
                            "membership-resolution"))
    else:
        checks.append(Check("low-FPR resolution", "pass", f"{non_members} non-members resolve 1% and 0.1% FPR "
                            f"({int(non_members * 0.001)} admissible false positive(s) at 0.1%)",
                            "membership-resolution"))
    shadows = int((models["role"] == "shadow").sum())
    if shadows < config.shadow_models:
        checks.append(Check("shadow models", "flag", f"only {shadows} of {config.shadow_models} shadow models "
                            "finished, so the scores rest on fewer models than asked; rerun to resume",
                            "membership-shadows"))
    elif shadows < 8:
        checks.append(Check("shadow models", "flag", f"{shadows} shadow models give each image about {shadows / 2:g} IN "
                            "and as many OUT models to fit: LiRA and RMIA are weaker than they can be (Carlini et al. use 16 to 256); "
                            "raise --shadow-models", "membership-shadows"))
    else:
        checks.append(Check("shadow models", "pass", f"{shadows} shadow models, each trained on a random half of the "
                            "pool", "membership-shadows"))
    gap = float(first["gap"])
    if gap <= 0.01:
        checks.append(Check("generalisation gap", "flag", f"the target's accuracy on its members differs from that on "
                            f"unseen images by {gap:+.1%} (1 point or less): confidence-based attacks have little to find, so a "
                            "low AUC here is not evidence of privacy for a model that overfits more",
                            "membership-gap"))
    else:
        checks.append(Check("generalisation gap", "pass", f"train − test accuracy {gap:.1%}", "membership-gap"))
    return checks


def membership_study(config: MembershipConfig) -> MembershipStudy:
    """Validate ``config`` (architecture, attacks, sizes, queries, recipe) before any model is trained."""
    spec = get_spec(config.dataset)
    if config.model not in MODELS:
        raise InvalidArgumentError(f"membership inference with shadow models trains the target and its shadows "
                                   f"itself: --model must be a zoo architecture ({', '.join(MODELS.names())}), "
                                   f"got '{config.model}'")
    unknown = [a for a in config.attacks if a not in ATTACKS]
    if unknown or not config.attacks:
        raise InvalidArgumentError(f"unknown membership attack {', '.join(unknown) or '(none given)'}; choose from "
                                   f"{', '.join(ATTACKS)}")
    if len(set(config.attacks)) < len(config.attacks):
        raise InvalidArgumentError(f"an attack is named twice in {', '.join(config.attacks)}")
    if not isinstance(config.shadow_models, int) or config.shadow_models < 0:
        raise InvalidArgumentError(f"--shadow-models must be a whole number >= 0, got {config.shadow_models}")
    needs = {"lira": 2, "lira-offline": 2, "rmia": 1}
    short = [a for a in config.attacks if config.shadow_models < needs.get(a, 0)]
    if short:
        raise InvalidArgumentError(f"{', '.join(short)} need at least {max(needs[a] for a in short)} shadow "
                                   f"model(s); use --shadow-models 16 or --attack loss")
    for name, value, low in (("--pool", config.pool, 4), ("--population", config.population, 1)):
        if value is not None and (not isinstance(value, int) or value < low):
            raise InvalidArgumentError(f"{name} must be a whole number of at least {low}, got {value}")
    flips = spec.augment == "crop-flip"
    if not 1 <= config.queries <= max_queries(flips):
        raise InvalidArgumentError(f"--queries must be between 1 and {max_queries(flips)} on {spec.name}, got "
                                   f"{config.queries}")
    if config.epochs is not None and config.epochs < 1:
        raise InvalidArgumentError(f"--epochs must be at least 1, got {config.epochs}")
    if not (math.isfinite(config.gamma) and config.gamma > 0):
        raise InvalidArgumentError(f"--gamma must be > 0, got {config.gamma}")
    from trustkit.privacy.lira import VARIANCES

    if config.variance not in VARIANCES:
        raise InvalidArgumentError(f"unknown --variance '{config.variance}'; use one of: {', '.join(VARIANCES)}")
    check_run_options(None, config.batch_size or 1, config.jobs, config.device)
    return MembershipStudy(config)
