"""The explain study (``trustkit explain``): attributions of one model on one data set, one cell per method.

One group — the model, a class-balanced sample of test images, their adversarial versions under one attack,
and the predictions on both — is resolved once in the driver. Each cell runs one attribution method
(:mod:`trustkit.explain.methods`) on it and measures

- the evidence maps of the clean images for their true class, and of the adversarial images for the class the
  model now predicts (how the attack moves the evidence), with their rank correlation;
- deletion and insertion curves (:mod:`trustkit.explain.faithfulness`) beside the random-order baseline;
- the cascading model-parameter randomisation test (:mod:`trustkit.explain.randomization`): a method whose maps
  survive the destruction of the weights is flagged like the robustness sanity checks;
- for integrated gradients, the completeness error: Σ attributions − (score(x) − score(black)).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import pandas as pd
import torch

from trustkit.attacks import make_attack, parse_eps, perturbation_norms
from trustkit.attacks.evaluate import clean_predictions, run_attack
from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.explain.faithfulness import curves, random_maps
from trustkit.explain.methods import ATTRIBUTION_METHODS, DEFAULT_METHODS, attribute, gradcam_layer, heatmap, method_options
from trustkit.explain.randomization import FLAG_RANK_CORRELATION, cascading_randomization, fails_randomization, spearman
from trustkit.fingerprint import cache_key, tensor_fingerprint
from trustkit.images import pack_images
from trustkit.models import MODELS
from trustkit.models.features import describe_layers
from trustkit.models.inference import predict_logits
from trustkit.models.loading import resolve_model
from trustkit.runtime import check_run_options, seed_everything
from trustkit.sanity import Check
from trustkit.studies.base import RUN_ONLY_SETTINGS, Memo, Progress, RunSettings, StudyOutput, TrainStep
from trustkit.studies.bench_cells import model_fingerprint

RESULT_COLUMNS = ["model", "dataset", "method", "n", "clean_accuracy", "attack", "eps", "adversarial_accuracy",
                  "deletion_auc", "random_deletion_auc", "insertion_auc", "random_insertion_auc",
                  "randomization_rank_correlation", "randomization", "clean_vs_adversarial_rank_correlation",
                  "completeness_error", "seconds"]


@dataclass(frozen=True)
class ExplainConfig(RunSettings):
    """What ``trustkit explain`` runs. ``per_class`` test images of each class (seeded); ``attack`` at ``eps``
    (default: the middle of the data set's L∞ grid) makes the adversarial versions; ``layer`` is Grad-CAM's
    (default: the last convolution with a spatial output); ``steps`` the points of the deletion/insertion curves;
    ``randomization_n`` the images of the randomisation test (``0`` skips it) and ``randomization_steps`` its
    most blocks of layers; ``options`` per method (``{"smoothgrad": {"samples": 32}}``)."""

    model: str = "cnn"
    dataset: str = "digits"
    methods: tuple[str, ...] = DEFAULT_METHODS
    per_class: int = 4
    attack: str = "pgd"
    eps: float | None = None
    norm: str = "linf"
    layer: str | None = None
    steps: int = 16
    randomization_n: int = 16
    randomization_steps: int = 8
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    batch_size: int = 64


@dataclass(frozen=True)
class ExplainCell:
    """One attribution method on the group's images."""

    method: str

    group = "explain"

    def title(self) -> str:
        return f"{self.method} attributions"


@dataclass
class ExplainState:
    """The loaded model and everything the cells share, on one device."""

    model: torch.nn.Module
    model_name: str
    fingerprint: str | None
    class_names: tuple[str, ...]
    x: torch.Tensor
    y: torch.Tensor
    clean: torch.Tensor
    x_adv: torch.Tensor
    adversarial: torch.Tensor
    eps: float
    gradcam_layer: str | None

    def to(self, device: torch.device) -> "ExplainState":
        self.model = self.model.to(device)
        return self

    @property
    def data_fingerprint(self) -> str:
        return tensor_fingerprint(self.x, self.y, self.x_adv)


def balanced_sample(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Sorted indices of up to ``per_class`` images of every class, drawn by a seeded permutation."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    chosen: list[int] = []
    for k in labels.unique().tolist():
        chosen += order[labels[order] == k][:per_class].tolist()
    return torch.tensor(sorted(chosen), dtype=torch.long)


@dataclass
class ExplainStudy:
    """A validated explain configuration as engine cells."""

    config: ExplainConfig
    methods: list[str]
    eps: float
    kind: str = "explain"

    def cells(self) -> Sequence[ExplainCell]:
        return [ExplainCell(m) for m in self.methods]

    def description(self) -> str:
        return f"explain {self.config.model} on {self.config.dataset}"

    def settings(self) -> dict[str, Any]:
        return {**asdict(self.config), "methods": self.methods, "eps": self.eps,
                "dataset": get_spec(self.config.dataset).name}

    def prerequisites(self) -> list[TrainStep]:
        config = self.config
        return [TrainStep(config.model, config.dataset, config.data_root, config.download)] \
            if config.model in MODELS else []

    def prepare(self, cells: Sequence[ExplainCell], device: torch.device) -> ExplainState:
        config, spec = self.config, get_spec(self.config.dataset)
        loaded = resolve_model(config.model, spec.name, data_root=config.data_root, device=device,
                               trust_code=config.trust_code)
        model = loaded.module.eval()
        layers = describe_layers(model, spec.shape)
        layer = gradcam_layer(layers, config.layer).name if "gradcam" in self.methods else None
        test_set = load_dataset(spec.name, "test", config.data_root, config.download)
        x, y = test_set.tensors(balanced_sample(test_set.labels, config.per_class, config.seed))
        clean = clean_predictions(model, x, batch_size=config.batch_size, device=device)
        seed_everything(config.seed)
        # bench's own loop: attacks what the model gets right, in batches, and judges the result in fp32
        outcome = run_attack(model, make_attack(config.attack, self.eps, config.norm), x, y, clean,
                             batch_size=config.batch_size, device=device, gallery_index=torch.arange(len(x)))
        x_adv, adversarial, clean = outcome.gallery_x_adv, outcome.adversarial.label, clean.label
        return ExplainState(model, loaded.name, model_fingerprint(loaded), tuple(spec.class_names), x, y, clean,
                            x_adv, adversarial, self.eps, layer)

    def key(self, cell: ExplainCell, state: ExplainState, device_type: str) -> str | None:
        if state.fingerprint is None:
            return None
        # this cell's own options come below; another method's options or presence do not change its numbers
        settings = {k: v for k, v in asdict(self.config).items()
                    if k not in RUN_ONLY_SETTINGS + ("methods", "options", "layer")}
        return cache_key({"explain": cell.method, "settings": settings, "eps": self.eps, "model": state.fingerprint,
                          "data": state.data_fingerprint,
                          "layer": state.gradcam_layer if cell.method == "gradcam" else None,
                          "options": method_options(ATTRIBUTION_METHODS.get(cell.method),
                                                    self.config.options.get(cell.method)),
                          "device": device_type})

    def run(self, cell: ExplainCell, state: ExplainState, device: torch.device,
            bar: Progress | None) -> dict[str, Any]:
        config = self.config
        seed_everything(config.seed)
        tic = time.perf_counter()
        options = self.config.options.get(cell.method)

        def maps(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return heatmap(attribute(model, x, target, cell.method, layer=state.gradcam_layer, options=options,
                                     batch_size=config.batch_size, device=device))

        clean_maps = maps(state.model, state.x, state.y)
        adv_maps = maps(state.model, state.x_adv, state.adversarial)
        if bar:
            bar.advance(0.3)
        moved = state.adversarial != state.y
        rho_moved = float(spearman(clean_maps[moved], adv_maps[moved]).mean()) if moved.any() else float("nan")
        deletion = curves(state.model, state.x, state.y, clean_maps, "deletion", steps=config.steps,
                          batch_size=config.batch_size, device=device)
        insertion = curves(state.model, state.x, state.y, clean_maps, "insertion", steps=config.steps,
                           batch_size=config.batch_size, device=device)
        if bar:
            bar.advance(0.2)
        steps = []
        if config.randomization_n > 0:
            k = min(config.randomization_n, len(state.x))
            xr, yr = state.x[:k], state.y[:k]
            steps = cascading_randomization(state.model, xr, yr, lambda m: maps(m, xr, yr), seed=config.seed,
                                            max_steps=config.randomization_steps)
        completeness = float("nan")
        if cell.method == "integrated-gradients":
            completeness = _completeness_error(state, cell.method, options, config.batch_size, device)
        row = {"method": cell.method, "deletion_auc": deletion.mean_auc, "insertion_auc": insertion.mean_auc,
               "randomization_rank_correlation": steps[-1].rank_correlation if len(steps) > 1 else float("nan"),
               "randomization": ("flag" if fails_randomization(steps) else "pass") if len(steps) > 1 else "skipped",
               "clean_vs_adversarial_rank_correlation": rho_moved, "completeness_error": completeness,
               "seconds": time.perf_counter() - tic}
        return {"row": row,
                "curves": [{"method": cell.method, "mode": mode, "fraction": f, "mean_probability": p}
                           for mode, c in (("deletion", deletion), ("insertion", insertion))
                           for f, p in zip(c.fractions, c.mean_probability, strict=True)],
                "randomization": [{"method": cell.method, "step": s.step, "layers": s.layers,
                                   "rank_correlation": s.rank_correlation, "rank_correlation_std": s.rank_correlation_std,
                                   "maps": pack_images(_unit(s.maps))} for s in steps],
                "clean_maps": pack_images(_unit(clean_maps)), "adversarial_maps": pack_images(_unit(adv_maps))}

    def portable(self, state: ExplainState) -> ExplainState:
        return state.to(torch.device("cpu"))

    def localize(self, state: ExplainState, device: torch.device) -> ExplainState:
        return state.to(device)

    def finish_group(self, cells: Sequence[ExplainCell], state: ExplainState, device: torch.device,
                     memo: Memo) -> dict[str, Any]:
        config = self.config

        def baseline() -> dict[str, Any]:
            noise = random_maps(len(state.x), *state.x.shape[-2:], seed=config.seed)
            found = {mode: curves(state.model, state.x, state.y, noise, mode, steps=config.steps,
                                  batch_size=config.batch_size, device=device) for mode in ("deletion", "insertion")}
            return {"auc": {m: c.mean_auc for m, c in found.items()},
                    "curves": [{"method": "random order", "mode": m, "fraction": f, "mean_probability": p}
                               for m, c in found.items() for f, p in zip(c.fractions, c.mean_probability, strict=True)]}

        key = None if state.fingerprint is None else cache_key(
            {"explain-baseline": True, "model": state.fingerprint, "data": state.data_fingerprint,
             "steps": config.steps, "seed": config.seed, "batch_size": config.batch_size, "device": device.type})
        linf, l2 = perturbation_norms(state.x_adv, state.x)
        return {"baseline": memo(key, baseline), "model": state.model_name, "n": len(state.y),
                "class_names": list(state.class_names), "gradcam_layer": state.gradcam_layer,
                "images": pack_images(state.x), "adversarial_images": pack_images(state.x_adv),
                "labels": state.y.tolist(), "clean": state.clean.tolist(), "adversarial": state.adversarial.tolist(),
                "clean_accuracy": float((state.clean == state.y).float().mean()),
                "adversarial_accuracy": float((state.adversarial == state.y).float().mean()),
                "mean_linf": float(linf.mean()), "mean_l2": float(l2.mean())}

    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        group = next(iter(output.groups.values()), None)
        spec = get_spec(self.config.dataset)
        rows, curve_rows, random_rows = [], [], []
        for record in output.finished:
            data = record.data
            rows.append({"model": group["model"] if group else self.config.model, "dataset": spec.name,
                         "n": group["n"] if group else 0,
                         "clean_accuracy": group["clean_accuracy"] if group else float("nan"),
                         "attack": self.config.attack, "eps": self.eps,
                         "adversarial_accuracy": group["adversarial_accuracy"] if group else float("nan"),
                         "random_deletion_auc": group["baseline"]["auc"]["deletion"] if group else float("nan"),
                         "random_insertion_auc": group["baseline"]["auc"]["insertion"] if group else float("nan"),
                         **data["row"]})
            curve_rows += data["curves"]
            random_rows += [{k: v for k, v in s.items() if k != "maps"} for s in data["randomization"]]
        if group:
            curve_rows += group["baseline"]["curves"]
        return {"results.csv": pd.DataFrame(rows, columns=RESULT_COLUMNS),
                "curves.csv": pd.DataFrame(curve_rows, columns=["method", "mode", "fraction", "mean_probability"]),
                "randomization.csv": pd.DataFrame(random_rows, columns=["method", "step", "layers", "rank_correlation",
                                                                        "rank_correlation_std"])}

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Check]:
        return explain_checks(tables["results.csv"])

    def group_checks(self, output: StudyOutput) -> list[Check]:
        return []

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        group = next(iter(output.groups.values()), {"model": self.config.model, "n": 0})
        dataset = get_spec(self.config.dataset).name
        title = f"What {group['model']} looks at on {dataset}"
        subtitle = (f"{', '.join(self.methods)} · {group['n']} test images · adversarial: {self.config.attack} "
                    f"{self.config.norm} eps {self.eps:g}")
        return f"explain-{group['model'][:40]}-{dataset}", title, subtitle

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        group = next(iter(output.groups.values()), {})
        return {"model": group.get("model"), "gradcam_layer": group.get("gradcam_layer")}


def _unit(maps: torch.Tensor) -> torch.Tensor:
    """Maps N×H×W scaled per image to [0, 1] as N×1×H×W images (a constant map becomes black)."""
    flat = maps.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    scaled = torch.where(high > low, (flat - low) / (high - low).clamp_min(1e-12), torch.zeros_like(flat))
    return scaled.reshape(maps.shape).unsqueeze(1)


def _completeness_error(state: ExplainState, method: str, options: dict[str, Any] | None, batch_size: int,
                        device: torch.device) -> float:
    """Mean |Σ attributions − (score(x) − score(black))| over the images, relative to the mean
    |score(x) − score(black)| (Sundararajan et al.'s completeness axiom; 0 for exact integration)."""
    attributions = attribute(state.model, state.x, state.y, method, options=options, batch_size=batch_size,
                             device=device)
    scores = predict_logits(state.model, state.x, batch_size=batch_size, device=device).gather(1, state.y[:, None])
    black = predict_logits(state.model, torch.zeros_like(state.x), batch_size=batch_size,
                           device=device).gather(1, state.y[:, None])
    difference = (scores - black)[:, 0].cpu()
    error = (attributions.flatten(1).sum(1) - difference).abs().mean()
    return float(error / difference.abs().mean().clamp_min(1e-12))


def explain_checks(results: pd.DataFrame) -> list[Check]:
    """Per method: the randomisation test (flag: the maps survive randomised weights) and faithfulness (flag:
    deletion or insertion no better than a random order)."""
    checks = []
    for _, row in results.iterrows():
        method = row["method"]
        if row["randomization"] == "skipped":
            checks.append(Check(f"randomisation test: {method}", "skipped", "not run (--randomization-n 0)",
                                "explain-randomization"))
        else:
            rho = row["randomization_rank_correlation"]
            verdict = (f"maps keep a rank correlation of {rho:.2f} with the trained model's after every layer is "
                       f"randomised (flag at ≥ {FLAG_RANK_CORRELATION}): they show the image more than what the "
                       "model learned" if row["randomization"] == "flag" else
                       f"maps fall to a rank correlation of {rho:.2f} once the weights are randomised")
            checks.append(Check(f"randomisation test: {method}", row["randomization"], verdict,
                                "explain-randomization"))
        worse = []
        if not row["deletion_auc"] < row["random_deletion_auc"]:
            worse.append(f"deletion AUC {row['deletion_auc']:.3f} ≥ random {row['random_deletion_auc']:.3f}")
        if not row["insertion_auc"] > row["random_insertion_auc"]:
            worse.append(f"insertion AUC {row['insertion_auc']:.3f} ≤ random {row['random_insertion_auc']:.3f}")
        checks.append(Check(f"faithfulness: {method}", "flag" if worse else "pass",
                            "; ".join(worse) + ": the map ranks pixels no better than chance" if worse else
                            f"deletion AUC {row['deletion_auc']:.3f} (random {row['random_deletion_auc']:.3f}), "
                            f"insertion AUC {row['insertion_auc']:.3f} (random {row['random_insertion_auc']:.3f})",
                            "explain-faithfulness"))
    return checks


def explain_study(config: ExplainConfig) -> ExplainStudy:
    """Validate ``config`` (methods, options, sizes, attack) before any model is trained or loaded."""
    spec = get_spec(config.dataset)
    if not config.methods:
        raise InvalidArgumentError("no attribution method given; name one, e.g. --method grad")
    methods = list(dict.fromkeys(ATTRIBUTION_METHODS.canonical(m) for m in config.methods))
    if config.layer and "gradcam" not in methods:
        raise InvalidArgumentError(f"--layer names Grad-CAM's layer, but Grad-CAM is not among the methods "
                                   f"({', '.join(methods)}); add --method gradcam or drop --layer")
    for name, options in config.options.items():
        if ATTRIBUTION_METHODS.canonical(name) not in methods:
            raise InvalidArgumentError(f"options are given for {name}, which is not among the methods "
                                       f"({', '.join(methods)}); add --method {name} or drop its -p options")
        method_options(ATTRIBUTION_METHODS.get(name), options)
    for name, value in (("--per-class", config.per_class), ("--steps", config.steps),
                        ("--randomization-steps", config.randomization_steps)):
        if value < 1:
            raise InvalidArgumentError(f"{name} must be at least 1, got {value}")
    if config.randomization_n < 0:
        raise InvalidArgumentError(f"--randomization-n must be 0 (skip the test) or more, got {config.randomization_n}")
    check_run_options(config.per_class, config.batch_size, config.jobs, config.device)
    grid = spec.eps_grid(config.norm)
    eps = parse_eps(config.eps) if config.eps is not None else grid[len(grid) // 2]
    make_attack(config.attack, eps, config.norm)  # a bad attack name or threat model fails now, in one line
    return ExplainStudy(config, methods, eps)
