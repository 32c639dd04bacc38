"""The calibration study (``trustkit bench calibration``): are a model's confidences right, on clean and on
adversarial inputs, and does its confidence fall on images of another kind?

One group per model — the model, a seeded subset of test images and the out-of-distribution (OOD) sets converted
to the model's input shape — is resolved once in the driver. Its cells:

- ``clean``: accuracy, ECE, MCE, NLL, Brier and the reliability bins of the test images
  (:mod:`trustkit.calibration.metrics`);
- ``adversarial``: the same on the attack's images of the sample (confidence in the predicted class against
  correctness). The attack runs bench's loop (:func:`trustkit.attacks.evaluate.run_attack`: images the model
  already gets wrong stay as they are) with ``early_stop=False``: the whole budget, the highest-loss point of the
  ball, the confident mistake an attacker is after, not the first point over the decision boundary;
- one per OOD set: max-softmax and energy scores of the test images (positives) against the OOD images, AUROC,
  AUPR, FPR at 95% TPR (:mod:`trustkit.calibration.ood`). ``noise`` is built in (uniform noise, seeded); any
  other data set is converted by :func:`trustkit.calibration.ood.convert_images`.

Every cell is keyed by the model's bytes, the exact test (and OOD) tensors and what else decides its numbers,
so a rerun reads them back and adding an OOD set computes only its own cell.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from trustkit.attacks import make_attack, parse_eps
from trustkit.attacks.evaluate import clean_predictions, run_attack
from trustkit.calibration.metrics import ECE_FLAG, OVERCONFIDENT_WRONG, calibration_summary, reliability
from trustkit.calibration.ood import (AUROC_FLAG, NOISE, OOD_SCORES, conversion_note, convert_images, noise_images,
                                      ood_metrics, roc_points)
from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.fingerprint import cache_key, tensor_fingerprint
from trustkit.images import pack_images
from trustkit.models import MODELS
from trustkit.models.inference import predict_logits
from trustkit.models.loading import resolve_model
from trustkit.runtime import check_run_options, seed_everything
from trustkit.sanity import Check
from trustkit.studies.base import Memo, Progress, RunSettings, StudyOutput, TrainStep
from trustkit.studies.bench_cells import model_fingerprint

CONDITIONS = ("clean", "adversarial")
HISTOGRAM_BINS = 30  # OOD score histograms in the report
EXAMPLES = 8  # OOD images kept per cell to show what the converted set looks like

RESULT_COLUMNS = ["model", "dataset", "condition", "attack", "norm", "eps", "n", "accuracy", "ece", "ece_floor",
                  "mce", "nll", "brier", "mean_confidence", "mean_confidence_correct", "mean_confidence_wrong",
                  "bins", "seconds"]
RELIABILITY_COLUMNS = ["model", "dataset", "condition", "bin", "lower", "upper", "count", "mean_confidence",
                       "accuracy", "gap"]
OOD_COLUMNS = ["model", "dataset", "ood_dataset", "score", "auroc", "aupr", "aupr_out", "fpr_at_95_tpr",
               "mean_score_in", "mean_score_out", "n_in", "n_out", "conversion"]


@dataclass(frozen=True)
class CalibrationConfig(RunSettings):
    """What ``trustkit bench calibration`` runs. ``n`` test images of ``dataset`` (seeded subset; default the
    data set's); ``ood`` data sets (any data set name, converted to the model's input shape, or ``noise``) with
    ``n_ood`` images each (seeded; default as many as test images); ``attack`` at ``eps`` (default: the middle of
    the data set's grid for ``norm``) makes the adversarial images; ``bins`` equal-width confidence bins."""

    models: tuple[str, ...] = ("cnn",)
    dataset: str = "digits"
    ood: tuple[str, ...] = (NOISE,)
    attack: str = "pgd"
    eps: float | str | None = None
    norm: str = "linf"
    bins: int = 15
    n: int | None = None
    n_ood: int | None = None
    seed: int = 0
    batch_size: int = 256


@dataclass(frozen=True)
class CalibrationCell:
    """Calibration of ``model`` on the clean or the adversarial images of its group's sample."""

    model: str
    condition: str

    @property
    def group(self) -> str:
        return self.model

    def title(self) -> str:
        return f"calibration {self.model} {self.condition}"


@dataclass(frozen=True)
class OODCell:
    """OOD detection by ``model``: its test images against the images of ``ood``."""

    model: str
    ood: str

    @property
    def group(self) -> str:
        return self.model

    def title(self) -> str:
        return f"OOD {self.model} vs {self.ood}"


@dataclass
class OODSet:
    """An OOD set as the model sees it: images in its input shape, how they were converted, their fingerprint."""

    name: str
    x: torch.Tensor
    conversion: str
    fingerprint: str = ""

    def __post_init__(self) -> None:
        self.fingerprint = self.fingerprint or tensor_fingerprint(self.x)


@dataclass
class CalibrationState:
    """One model's group: the model on a device, its sample of test images and the converted OOD sets."""

    model: torch.nn.Module
    model_name: str
    fingerprint: str | None
    x: torch.Tensor
    y: torch.Tensor
    ood: dict[str, OODSet]
    data_fingerprint: str = ""

    def __post_init__(self) -> None:
        self.data_fingerprint = self.data_fingerprint or tensor_fingerprint(self.x, self.y)

    def to(self, device: torch.device) -> "CalibrationState":
        self.model = self.model.to(device)
        return self


@dataclass
class CalibrationStudy:
    """A validated calibration configuration as engine cells."""

    config: CalibrationConfig
    models: list[str]
    ood: list[str]
    eps: float
    kind: str = "calibration"
    _ood_sets: dict[tuple[str, int | None], OODSet] = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict[str, Any]:  # workers rebuild the OOD sets rather than receive them
        return {**self.__dict__, "_ood_sets": {}}

    def cells(self) -> Sequence[CalibrationCell | OODCell]:
        found: list[CalibrationCell | OODCell] = []
        for model in self.models:
            found += [CalibrationCell(model, condition) for condition in CONDITIONS]
            found += [OODCell(model, ood) for ood in self.ood]
        return found

    def description(self) -> str:
        return f"calibration of {', '.join(self.models)} on {get_spec(self.config.dataset).name}"

    def settings(self) -> dict[str, Any]:
        return {**asdict(self.config), "models": self.models, "ood": self.ood, "eps": self.eps,
                "dataset": get_spec(self.config.dataset).name, "early_stop": False}

    def prerequisites(self) -> list[TrainStep]:
        c = self.config
        return [TrainStep(m, c.dataset, c.data_root, c.download) for m in self.models if m in MODELS]

    def _ood_set(self, name: str, count: int) -> OODSet:
        """OOD set ``name`` with ``count`` images in the model's input shape (loaded once per study)."""
        c, spec = self.config, get_spec(self.config.dataset)
        key = (name, count)
        if key not in self._ood_sets:
            if name == NOISE:
                found = OODSet(name, noise_images(count, spec.shape, c.seed), f"uniform noise U(0, 1), seed {c.seed}")
            else:
                other = load_dataset(name, "test", c.data_root, c.download)
                x, _ = other.tensors(other.sample(count, count, c.seed))
                found = OODSet(name, convert_images(x, spec.shape), conversion_note(tuple(x.shape[1:]), spec.shape))
            self._ood_sets[key] = found
        return self._ood_sets[key]

    def prepare(self, cells: Sequence[CalibrationCell | OODCell], device: torch.device) -> CalibrationState:
        c, spec = self.config, get_spec(self.config.dataset)
        model = cells[0].model
        loaded = resolve_model(model, spec.name, data_root=c.data_root, device=device, trust_code=c.trust_code)
        test_set = load_dataset(spec.name, "test", c.data_root, c.download)
        x, y = test_set.tensors(test_set.sample(c.n, spec.default_n, c.seed))
        count = c.n_ood or len(x)
        ood = {cell.ood: self._ood_set(cell.ood, count) for cell in cells if isinstance(cell, OODCell)}
        return CalibrationState(loaded.module.eval(), loaded.name, model_fingerprint(loaded), x, y, ood)

    def key(self, cell: CalibrationCell | OODCell, state: CalibrationState, device_type: str) -> str | None:
        if state.fingerprint is None:
            return None
        c = self.config
        common = {"model": state.fingerprint, "data": state.data_fingerprint, "batch_size": c.batch_size,
                  "device": device_type}
        if isinstance(cell, OODCell):
            found = state.ood[cell.ood]
            return cache_key({"calibration": "ood", "ood": cell.ood, "ood_data": found.fingerprint, **common})
        attack = {"attack": c.attack, "eps": self.eps, "norm": c.norm, "seed": c.seed, "early_stop": False} \
            if cell.condition == "adversarial" else {}
        return cache_key({"calibration": cell.condition, "bins": c.bins, "seed": c.seed, **attack, **common})

    def run(self, cell: CalibrationCell | OODCell, state: CalibrationState, device: torch.device,
            bar: Progress | None) -> dict[str, Any]:
        seed_everything(self.config.seed)
        if isinstance(cell, OODCell):
            return self._ood(cell, state, device)
        return self._calibration(cell, state, device, bar)

    def _calibration(self, cell: CalibrationCell, state: CalibrationState, device: torch.device,
                     bar: Progress | None) -> dict[str, Any]:
        c, tic = self.config, time.perf_counter()
        x = state.x
        if cell.condition == "adversarial":
            clean = clean_predictions(state.model, x, batch_size=c.batch_size, device=device)
            attack = make_attack(c.attack, self.eps, c.norm, ignore_unknown=True, early_stop=False)
            outcome = run_attack(state.model, attack, x, state.y, clean, batch_size=c.batch_size, device=device,
                                 gallery_index=torch.arange(len(x)))
            x = outcome.gallery_x_adv
            if bar:
                bar.advance(0.8)
        logits = predict_logits(state.model, x, batch_size=c.batch_size, device=device)
        probabilities = logits.double().softmax(1).cpu().numpy()
        labels = state.y.numpy()
        summary = calibration_summary(probabilities, labels, c.bins, seed=c.seed)
        table = reliability(probabilities.max(1), probabilities.argmax(1) == labels, c.bins)
        bins = [{"bin": i, "lower": float(table.edges[i]), "upper": float(table.edges[i + 1]),
                 "count": int(table.count[i]), "mean_confidence": float(table.mean_confidence[i]),
                 "accuracy": float(table.accuracy[i]), "gap": float(table.gap[i])} for i in range(c.bins)]
        return {"row": {**summary, "seconds": time.perf_counter() - tic}, "reliability": bins}

    def _ood(self, cell: OODCell, state: CalibrationState, device: torch.device) -> dict[str, Any]:
        c, found = self.config, state.ood[cell.ood]
        logits_in = predict_logits(state.model, state.x, batch_size=c.batch_size, device=device).cpu()
        logits_out = predict_logits(state.model, found.x, batch_size=c.batch_size, device=device).cpu()
        rows, histograms, curves = [], {}, {}
        for score, function in OOD_SCORES.items():
            s_in, s_out = function(logits_in).numpy(), function(logits_out).numpy()
            rows.append({"score": score, **ood_metrics(s_in, s_out)})
            low, high = float(min(s_in.min(), s_out.min())), float(max(s_in.max(), s_out.max()))
            edges = np.linspace(low, high if high > low else low + 1e-6, HISTOGRAM_BINS + 1)
            histograms[score] = {"edges": edges.tolist(), "in": np.histogram(s_in, edges)[0].tolist(),
                                 "out": np.histogram(s_out, edges)[0].tolist()}
            curves[score] = roc_points(s_in, s_out)
        return {"rows": rows, "histograms": histograms, "roc": curves, "conversion": found.conversion,
                "examples": pack_images(found.x[:EXAMPLES])}

    def portable(self, state: CalibrationState) -> CalibrationState:
        return state.to(torch.device("cpu"))

    def localize(self, state: CalibrationState, device: torch.device) -> CalibrationState:
        return state.to(device)

    def finish_group(self, cells: Sequence[CalibrationCell | OODCell], state: CalibrationState,
                     device: torch.device, memo: Memo) -> dict[str, Any]:
        return {"model": state.model_name, "n": len(state.y),
                "ood": {name: {"n": len(s.x), "conversion": s.conversion} for name, s in state.ood.items()}}

    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        c, dataset = self.config, get_spec(self.config.dataset).name
        rows, bins, ood = [], [], []
        for record in output.finished:
            cell = record.cell
            group = output.groups.get(cell.group, {})
            name = group.get("model", cell.model)
            head = {"model": name, "dataset": dataset}
            if isinstance(cell, OODCell):
                ood += [{**head, "ood_dataset": cell.ood, **row, "conversion": record.data["conversion"]}
                        for row in record.data["rows"]]
                continue
            adversarial = cell.condition == "adversarial"
            rows.append({**head, "condition": cell.condition, "attack": c.attack if adversarial else "none",
                         "norm": c.norm, "eps": self.eps if adversarial else 0.0, "bins": c.bins,
                         **record.data["row"]})
            bins += [{**head, "condition": cell.condition, **b} for b in record.data["reliability"]]
        return {"results.csv": pd.DataFrame(rows, columns=RESULT_COLUMNS),
                "reliability.csv": pd.DataFrame(bins, columns=RELIABILITY_COLUMNS),
                "ood.csv": pd.DataFrame(ood, columns=OOD_COLUMNS)}

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Check]:
        return calibration_checks(tables["results.csv"], tables["ood.csv"])

    def group_checks(self, output: StudyOutput) -> list[Check]:
        return []

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        c, dataset = self.config, get_spec(self.config.dataset).name
        names = [g.get("model", m) for m, g in ((m, output.groups.get(m, {})) for m in self.models)]
        n = next((g["n"] for g in output.groups.values() if "n" in g), c.n or get_spec(dataset).default_n)
        title = f"Calibration and OOD detection of {', '.join(names)} on {dataset}"
        subtitle = (f"{n} test images · {c.bins} bins · adversarial: {c.attack} {c.norm} eps {self.eps:g} · "
                    f"OOD: {', '.join(self.ood)}")
        return f"calibration-{'+'.join(self.models)[:40]}-{dataset}", title, subtitle

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        return {"models": [dict(g) for g in output.groups.values()], "ood": list(self.ood)}


def calibration_checks(results: pd.DataFrame, ood: pd.DataFrame) -> list[Check]:
    """Per model: overconfidence under attack (flag: wrong adversarial answers carry a mean confidence of at
    least :data:`OVERCONFIDENT_WRONG`); per model × condition: ECE (flag: above :data:`ECE_FLAG` and above the
    ECE a perfectly calibrated model would reach by chance); per model × OOD set × score: AUROC (flag: at most
    :data:`AUROC_FLAG`, i.e. near or below chance)."""
    checks = []
    for _, row in results.iterrows():
        model, condition = row["model"], row["condition"]
        ece, floor = row["ece"], row["ece_floor"]
        if condition == "adversarial":
            wrong = row["mean_confidence_wrong"]
            name = f"overconfident under attack: {model}"
            if not math.isfinite(wrong):
                checks.append(Check(name, "skipped", "the attack left every image correct",
                                    "calibration-overconfident"))
            elif wrong >= OVERCONFIDENT_WRONG:
                checks.append(Check(name, "flag", f"its wrong answers under {row['attack']} (eps {row['eps']:g}) carry "
                                    f"a mean confidence of {wrong:.1%} (flag at ≥ {OVERCONFIDENT_WRONG:.0%}); "
                                    "a confidence threshold does not catch the attack", "calibration-overconfident"))
            else:
                checks.append(Check(name, "pass", f"its wrong answers under {row['attack']} carry a mean confidence "
                                    f"of {wrong:.1%} (flag at ≥ {OVERCONFIDENT_WRONG:.0%})",
                                    "calibration-overconfident"))
        name = f"expected calibration error: {model} {condition}"
        if not math.isfinite(ece):
            checks.append(Check(name, "skipped", "no images", "calibration-ece"))
        elif ece > ECE_FLAG and ece > floor:
            checks.append(Check(name, "flag", f"ECE {ece:.1%} > {ECE_FLAG:.0%} (a perfectly calibrated model would "
                                f"stay below {floor:.1%} with these {int(row['n'])} images); mean confidence "
                                f"{row['mean_confidence']:.1%} vs accuracy {row['accuracy']:.1%}", "calibration-ece"))
        else:
            checks.append(Check(name, "pass", f"ECE {ece:.1%} (flag above {ECE_FLAG:.0%} and above the sampling "
                                f"floor {floor:.1%})", "calibration-ece"))
    for _, row in ood.iterrows():
        name = f"OOD detection: {row['model']} vs {row['ood_dataset']} ({row['score']})"
        auroc = row["auroc"]
        if auroc <= AUROC_FLAG:
            worse = " — the OOD images look *more* in-distribution than the test images" if auroc < 0.5 else ""
            checks.append(Check(name, "flag", f"AUROC {auroc:.3f} ≤ {AUROC_FLAG}: the score barely tells "
                                f"{row['ood_dataset']} from the test set{worse}", "calibration-ood"))
        else:
            checks.append(Check(name, "pass", f"AUROC {auroc:.3f}, FPR at 95% TPR {row['fpr_at_95_tpr']:.1%}",
                                "calibration-ood"))
    return checks


def calibration_study(config: CalibrationConfig) -> CalibrationStudy:
    """Validate ``config`` (models, data sets, OOD sets, sizes, attack) before any model is trained or loaded."""
    spec = get_spec(config.dataset)
    models = list(dict.fromkeys(m.strip() for m in config.models if m and m.strip()))
    if not models:
        raise InvalidArgumentError("no model given; name one, e.g. --model cnn")
    if isinstance(config.ood, str):
        raise InvalidArgumentError(f"ood must be a list of data set names, got the string '{config.ood}'; "
                                   f"write e.g. ood: [{config.ood}]")
    ood: list[str] = []
    for name in config.ood:
        name = name.strip()
        canonical = NOISE if name.lower() == NOISE else get_spec(name).name if name else ""
        if not canonical:
            continue
        if canonical == spec.name:
            raise InvalidArgumentError(f"the OOD set '{name}' is the in-distribution data set itself; name another "
                                       f"data set, e.g. --ood {NOISE}")
        if canonical not in ood:
            ood.append(canonical)
    if not ood:
        raise InvalidArgumentError(f"no OOD data set given; name one, e.g. --ood {NOISE}")
    if config.bins < 1:
        raise InvalidArgumentError(f"--bins must be at least 1, got {config.bins}")
    if config.n_ood is not None and config.n_ood < 1:
        raise InvalidArgumentError(f"--n-ood must be at least 1, got {config.n_ood}")
    check_run_options(config.n, config.batch_size, config.jobs, config.device)
    grid = spec.eps_grid(config.norm)
    eps = parse_eps(config.eps) if config.eps is not None else grid[len(grid) // 2]
    make_attack(config.attack, eps, config.norm)  # a bad attack name or threat model fails now, in one line
    return CalibrationStudy(config, models, ood, eps)
