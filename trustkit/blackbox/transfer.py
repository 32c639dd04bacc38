"""Transfer attacks: craft adversarial examples on surrogate models, judge them on target models.

The attacker owns the *source* models (or an ensemble of them, logits averaged) and never touches the
*target*: the target is only asked, by the evaluator, for its predictions on the finished adversarial images.
Success on a target is the share of the images it classifies correctly that it misclassifies after the
perturbation. Every target is also attacked white-box with the same attack at its default settings (iterative
attacks keep each sample's first fooling iterate, the strongest white-box number) — the reference each transfer
is compared with, and the diagonal of the source × target matrix when a model is both. Transfer crafting runs
iterative attacks to their last iterate instead, which lies deeper across the boundary and transfers better.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from trustkit.attacks import format_eps, parse_eps, perturbation_norms
from trustkit.bench.run import build_attacks, check_run_options
from trustkit.bench.runner import subset
from trustkit.bench.spec import AttackSpec
from trustkit.blackbox.models import (
    ModelCache,
    NamedModel,
    check_model_spec,
    craft,
    ensemble_members,
    predict,
    split_specs,
)
from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.runtime import progress, seed_everything, select_device
from trustkit.sanity import Check

DEFAULT_ATTACKS = ("fgsm", "pgd")
WHITE_BOX_ROW = "white-box (target itself)"
TRANSFER_COLUMNS = ["source", "target", "dataset", "attack", "norm", "eps", "seed", "n", "white_box",
                    "source_clean_accuracy", "target_clean_accuracy", "target_correct", "successes", "success_rate",
                    "target_robust_accuracy", "mean_linf", "mean_l2", "craft_seconds", "beats_white_box"]


@dataclass
class TransferConfig:
    """Sources × targets × attacks × epsilons on one data set.

    ``sources`` and ``targets`` are model specs (zoo names, store entries, checkpoint files, factories); a
    source ``"cnn+mlp"`` is an ensemble that averages the members' logits. ``attacks`` are registry names
    (iterative ones run without early stopping — the last iterate lies deeper across the boundary and
    transfers better — unless ``attack_params`` says ``early_stop``). ``eps`` None means the data set's grid;
    ``n`` None its default sample count; ``attack_params`` go to every attack that takes them, ``strict_params``
    too but must be taken by at least one.
    """

    sources: list[str]
    targets: list[str]
    dataset: str = "digits"
    attacks: list[str] = field(default_factory=lambda: list(DEFAULT_ATTACKS))
    eps: list[float | str] | None = None
    norm: str = "linf"
    n: int | None = None
    batch_size: int = 256
    device: str = "auto"
    seed: int = 0
    out: str = "reports"
    data_root: str | None = None
    download: bool = False
    attack_params: dict[str, Any] = field(default_factory=dict)
    strict_params: dict[str, Any] = field(default_factory=dict)
    trust_code: bool = False  # consent to models that are programs (TorchScript, factories): --trust-code


@dataclass
class TransferResult:
    """What a transfer run produced: tidy rows (one per crafting model × target × attack × eps), checks,
    run metadata and the report folder."""

    run_dir: Path
    results: pd.DataFrame
    checks: list[Check]
    run_info: dict[str, Any]

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"

    def matrix(self, attack: str, eps: float, norm: str | None = None) -> pd.DataFrame:
        """Success rates (fractions): sources (rows, then the white-box reference) × targets (columns)."""
        return success_matrix(self.results, attack, eps, norm)


def success_matrix(results: pd.DataFrame, attack: str, eps: float, norm: str | None = None) -> pd.DataFrame:
    """The source × target success matrix of one (attack, eps); the last row is each target's white-box attack."""
    rows = results[(results["attack"] == attack) & ((results["eps"] - eps).abs() < 1e-12)]
    if norm is not None:
        rows = rows[rows["norm"] == norm]
    targets = list(dict.fromkeys(rows["target"]))
    sources = list(dict.fromkeys(rows.loc[rows["is_source"], "source"])) if "is_source" in rows else \
        list(dict.fromkeys(rows["source"]))
    crafted = rows[rows["is_source"]] if "is_source" in rows else rows
    table = crafted.pivot_table(index="source", columns="target", values="success_rate", aggfunc="first")
    table = table.reindex(index=sources, columns=targets)
    white = rows[rows["white_box"]].drop_duplicates("target").set_index("target")["success_rate"]
    table.loc[WHITE_BOX_ROW] = white.reindex(targets).values
    return table


def _eps_grid(config: TransferConfig) -> list[float]:
    spec = get_spec(config.dataset)
    return sorted({parse_eps(e) for e in config.eps}) if config.eps else list(spec.eps_grid(config.norm))


def _attack_specs(names: list[str], config: TransferConfig, eps_grid: list[float]) -> list[AttackSpec]:
    if not names:
        raise InvalidArgumentError("no attack given; name one, e.g. --attack pgd")
    return build_attacks(names, "trustkit", config.attack_params, config.strict_params, config.norm, eps_grid,
                         config.batch_size)


def build_cell_attack(spec: AttackSpec, eps: float, norm: str, batch_size: int, explicit: dict[str, Any]):
    """The attack of one cell; iterative attacks return their last iterate unless early_stop was asked for."""
    attack = spec.build(eps, norm, batch_size)
    if hasattr(attack, "early_stop") and "early_stop" not in explicit:
        attack.early_stop = False
    return attack


def beats_white_box(results: pd.DataFrame) -> pd.Series:
    """Bool per row: a transfer row whose success beats the strongest white-box attack on its target at the same
    norm and eps by more than one image (noise); False for white-box rows and where there is no reference."""
    white = results[results["white_box"]]
    if white.empty:
        return pd.Series(False, index=results.index)
    best = white.groupby(["target", "norm", "eps"])["success_rate"].max().rename("best_white_box")
    merged = results.join(best, on=["target", "norm", "eps"])
    tolerance = 1.0 / merged["target_correct"].clip(lower=1) + 1e-9
    return (~merged["white_box"]) & (merged["success_rate"] > merged["best_white_box"] + tolerance)


def transfer_checks(results: pd.DataFrame) -> list[Check]:
    """Black-box-vs-white-box: a transfer attack must not beat the strongest white-box attack on its target."""
    name, anchor = "white-box attacks beat black-box ones", "black-box-vs-white-box"
    white = results[results["white_box"]]
    transfer = results[~results["white_box"]]
    if white.empty or transfer.empty:
        return [Check(name, "skipped", "needs a transfer (source differs from target) and a white-box row", anchor)]
    best = white.groupby(["target", "norm", "eps"])["success_rate"].max().rename("best_white_box")
    bad = results[beats_white_box(results)].join(best, on=["target", "norm", "eps"])
    if bad.empty:
        return [Check(name, "pass", "no transfer attack beat the strongest white-box attack on its target", anchor)]
    lines = "; ".join(f"{r.source} → {r.target} {r.attack} eps {format_eps(r.eps)}: {r.success_rate:.1%} vs white-box "
                      f"{r.best_white_box:.1%}" for r in bad.itertuples())
    return [Check(name, "flag", "adversarial examples crafted on another model fooled a target more often than "
                  "gradient attacks on the target itself — its gradients are likely masked or obfuscated, or the "
                  "white-box attack is too weak: " + lines, anchor)]


def run_transfer(config: TransferConfig) -> TransferResult:
    """Craft on every source (and, for reference, every target), judge on every target; write
    ``<out>/<run-id>/`` (report.html with a success heat map per attack and eps, results.csv, run.json)."""
    started = time.perf_counter()
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
    eps_grid = _eps_grid(config)
    attack_specs = _attack_specs(list(config.attacks), config, eps_grid)
    device = select_device(config.device)

    models = ModelCache(data_spec.name, device, config.data_root, config.download, config.trust_code)
    crafting = [models.named(s) for s in sources]
    judged = [models.named(t) for t in targets]
    references = [t for t in judged if not any(t.module is s.module for s in crafting)]  # targets only
    test_set = load_dataset(data_spec.name, "test", config.data_root, config.download)
    x, y = test_set.tensors(subset(len(test_set), config.n, data_spec.default_n, config.seed))
    clean = {id(m.module): predict(m.module, x, batch_size=config.batch_size, device=device)
             for m in crafting + references}
    explicit = {**config.attack_params, **config.strict_params}

    rows: list[dict[str, Any]] = []
    # Transfer cells craft on each source (last iterate); reference cells attack each target white-box with the
    # attack's defaults (iterative attacks keep their first fooling iterate: the strongest white-box number).
    cells = [(m, False, a, e) for m in crafting for a in attack_specs for e in eps_grid]
    cells += [(t, True, a, e) for t in judged for a in attack_specs for e in eps_grid]
    crafted: dict[tuple[int, str, float], tuple[torch.Tensor, float]] = {}
    with progress(f"transfer on {data_spec.name}", len(cells)) as bar:
        for model, reference, spec, eps in cells:
            bar.note(f"{spec.label} eps {format_eps(eps)} on {model.name}{' (white-box)' if reference else ''}")
            seed_everything(config.seed)  # each cell reseeds: results do not depend on the order
            if reference:
                attack = spec.build(eps, config.norm, config.batch_size)
            else:
                attack = build_cell_attack(spec, eps, config.norm, config.batch_size, explicit)
            key = (id(model.module), spec.label, eps)
            same_attack = not hasattr(attack, "early_stop") or "early_stop" in explicit  # as the transfer craft
            tic = time.perf_counter()
            if reference and same_attack and key in crafted:  # the source's own images are the white-box ones
                x_adv, seconds = crafted[key]
                bar.advance(1)
            else:
                x_adv = craft(attack, model.module, x, y, batch_size=config.batch_size, device=device, bar=bar)
                seconds = time.perf_counter() - tic
            if not reference:
                crafted[key] = (x_adv, seconds)
            linf, l2 = perturbation_norms(x_adv, x)
            is_source = any(model.module is m.module for m in crafting)
            for target in [model] if reference else [t for t in judged if t.module is not model.module]:
                rows.append(_row(config, data_spec.name, model, target, spec, eps, x, y, x_adv, clean, linf, l2,
                                 seconds, is_source, device))
            if not reference and not any(t.module is model.module for t in judged):
                crafted.pop(key)  # only kept for a source that is also a target
    results = pd.DataFrame(rows, columns=TRANSFER_COLUMNS + ["is_source"])
    # canonical order (attack, eps, crafting model, target as given), whatever the order the cells ran in
    rank = {name: i for i, name in enumerate(dict.fromkeys([m.name for m in crafting + judged]))}
    target_rank = {m.name: i for i, m in enumerate(judged)}
    attack_rank = {s.label: i for i, s in enumerate(attack_specs)}
    order = sorted(range(len(results)), key=lambda i: (attack_rank[results["attack"].iat[i]], results["eps"].iat[i],
                                                       rank[results["source"].iat[i]], target_rank[results["target"].iat[i]]))
    results = results.iloc[order].reset_index(drop=True)
    results["beats_white_box"] = beats_white_box(results)  # the sanity flag, per row of results.csv
    checks = transfer_checks(results)
    settings = {**asdict(config), "sources": sources, "targets": targets, "eps": eps_grid,
                "attacks": [s.label for s in attack_specs], "dataset": data_spec.name}
    from trustkit.blackbox.plots import transfer_heatmap
    from trustkit.blackbox.report import run_info, write_run_folder

    heatmaps = []
    for (attack, norm, eps), _ in results.groupby(["attack", "norm", "eps"], sort=False):
        title = f"{attack} ({norm}) eps {format_eps(eps)}"
        heatmaps.append({"title": title, "uri": transfer_heatmap(success_matrix(results, attack, eps, norm), title)})
    model_rows = [{"name": m.name, "role": role, "sources": ", ".join(m.sources),
                   "clean_accuracy": (clean[id(m.module)] == y).float().mean().item()}
                  for role, group in (("source", crafting), ("target", references)) for m in group]
    for m in judged:
        for row in model_rows:
            if row["name"] == m.name and row["role"] == "source":
                row["role"] = "source and target"
    title = f"Transfer: {', '.join(m.name for m in crafting)} → {', '.join(m.name for m in judged)} on {data_spec.name}"
    subtitle = f"{', '.join(s.label for s in attack_specs)} · {config.norm} · {len(y)} test images"
    label = f"transfer-{'+'.join(sources)[:40]}-to-{'+'.join(targets)[:40]}-{data_spec.name}"
    from trustkit.blackbox.report import records

    run_dir, info = write_run_folder(
        config.out, label, template="transfer.html.j2",
        make_info=lambda run_id: run_info(run_id, "transfer", title, subtitle, settings, device, checks,
                                          {"total": time.perf_counter() - started}, models=model_rows),
        context={"heatmaps": heatmaps, "rows": records(results[TRANSFER_COLUMNS]), "models": model_rows,
                 "checks": [c.to_dict() for c in checks], "flag_count": sum(c.status == "flag" for c in checks),
                 "n": len(y), "sources": [m.name for m in crafting], "targets": [m.name for m in judged],
                 "best": records(results[~results["white_box"]].nlargest(1, "success_rate")[TRANSFER_COLUMNS])},
        tables={"results.csv": results[TRANSFER_COLUMNS]})
    return TransferResult(run_dir, results[TRANSFER_COLUMNS + ["is_source"]], checks, info)


def _row(config: TransferConfig, dataset: str, crafted_on: NamedModel, target: NamedModel, spec: AttackSpec,
         eps: float, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, clean: dict[int, torch.Tensor],
         linf: torch.Tensor, l2: torch.Tensor, seconds: float, is_source: bool, device: torch.device) -> dict[str, Any]:
    """One tidy row: success of images crafted on ``crafted_on`` against ``target`` (fractions in [0, 1])."""
    target_clean = clean[id(target.module)]
    adversarial = predict(target.module, x_adv, batch_size=config.batch_size, device=device)
    correct = target_clean == y
    flipped = correct & (adversarial != y)
    return {
        "source": crafted_on.name, "target": target.name, "dataset": dataset, "attack": spec.label,
        "norm": config.norm, "eps": eps, "seed": config.seed, "n": len(y),
        "white_box": crafted_on.module is target.module,
        "source_clean_accuracy": (clean[id(crafted_on.module)] == y).float().mean().item(),
        "target_clean_accuracy": correct.float().mean().item(),
        "target_correct": int(correct.sum()), "successes": int(flipped.sum()),
        "success_rate": (flipped.sum() / correct.sum()).item() if correct.any() else float("nan"),
        "target_robust_accuracy": (correct & (adversarial == y)).float().mean().item(),
        "mean_linf": linf.mean().item(), "mean_l2": l2.mean().item(), "craft_seconds": seconds,
        "is_source": is_source,
    }


__all__ = ["TRANSFER_COLUMNS", "TransferConfig", "TransferResult", "beats_white_box", "run_transfer", "success_matrix",
           "transfer_checks"]
