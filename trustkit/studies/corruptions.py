"""The common-corruptions study (``trustkit bench corruptions``): accuracy of each model under the 15 corruptions
of Hendrycks & Dietterich (2019) at severities 1-5, and the mean corruption error relative to a baseline model.

One group per model (the mCE baseline is a model group too) — the model and the seeded subset of test images,
which is the same for every model — is resolved once in the driver. Its cells:

- ``clean``: accuracy on the test images as they are;
- one per corruption type: accuracy at every requested severity, on images corrupted by
  :func:`trustkit.corruptions.corrupt` (seeded per image, so every model sees the very same corrupted images).

Corrupted images do not depend on the model: within one process they are made once per (type, severity) and
shared by every model's cell. Every cell is keyed by the model's bytes, the exact test tensors, the severities,
the seed and the versions of the corruption package and the libraries it runs on.

Hendrycks' corruption error of model f on type c is CE_c = Σ_s E_{s,c}(f) / Σ_s E_{s,c}(baseline), mCE the mean
of CE_c over the types; the relative CE_c = Σ_s (E_{s,c}(f) − E_clean(f)) / Σ_s (E_{s,c}(base) − E_clean(base))
measures the *degradation* only (:func:`trustkit.corruptions.common.corruption_errors`).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import pandas as pd
import torch

from trustkit.corruptions.common import (CORRUPTIONS, NOT_COMPARABLE, SEVERITIES, check_severity, corrupt,
                                         corruption_errors, corruption_names, library_versions)
from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.fingerprint import cache_key, tensor_fingerprint
from trustkit.images import pack_images
from trustkit.models import MODELS
from trustkit.models.inference import predict_labels
from trustkit.models.loading import resolve_model
from trustkit.runtime import check_run_options, seed_everything
from trustkit.sanity import Check
from trustkit.studies.base import Memo, Progress, RunSettings, StudyOutput, TrainStep
from trustkit.studies.bench_cells import model_fingerprint

CLEAN = "clean"
DEFAULT_BASELINE = "softmax"
RESULT_COLUMNS = ["model", "dataset", "corruption", "category", "severity", "accuracy", "error", "n"]
SUMMARY_COLUMNS = ["model", "dataset", "baseline", "clean_accuracy", "clean_error", "mean_corruption_error",
                   "mce", "relative_mce", "corruptions", "severities", "n"]
CE_COLUMNS = ["model", "dataset", "baseline", "corruption", "category", "mean_error", "ce", "relative_ce"]


@dataclass(frozen=True)
class CorruptionsConfig(RunSettings):
    """What ``trustkit bench corruptions`` runs. ``models`` and the mCE ``baseline`` (a model spec like any
    other; a zoo name is trained first when missing) on ``n`` test images of ``dataset`` (seeded subset; default
    the data set's), under ``corruptions`` (default all 15) at ``severities`` (default 1-5)."""

    models: tuple[str, ...] = ("cnn",)
    dataset: str = "digits"
    baseline: str = DEFAULT_BASELINE
    corruptions: tuple[str, ...] = tuple(corruption_names())
    severities: tuple[int, ...] = SEVERITIES
    n: int | None = None
    seed: int = 0
    batch_size: int = 256


@dataclass(frozen=True)
class CorruptionCell:
    """``model``'s accuracy under ``corruption`` at every severity of the study (``clean``: no corruption)."""

    model: str
    corruption: str

    @property
    def group(self) -> str:
        return self.model

    def title(self) -> str:
        return f"{self.model} {self.corruption}"


@dataclass
class CorruptionsState:
    """One model's group: the model on a device and the sample of test images (with their data-set indices)."""

    model: torch.nn.Module
    model_name: str
    fingerprint: str | None
    x: torch.Tensor
    y: torch.Tensor
    indices: torch.Tensor
    data_fingerprint: str = ""

    def __post_init__(self) -> None:
        self.data_fingerprint = self.data_fingerprint or tensor_fingerprint(self.x, self.y, self.indices)

    def to(self, device: torch.device) -> "CorruptionsState":
        self.model = self.model.to(device)
        return self


@dataclass
class CorruptionsStudy:
    """A validated corruptions configuration as engine cells."""

    config: CorruptionsConfig
    models: list[str]
    baseline: str
    corruptions: list[str]
    severities: list[int]
    kind: str = "corruptions"
    _images: dict[tuple[str, str, int], torch.Tensor] = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict[str, Any]:  # workers make their own corrupted images rather than receive them
        return {**self.__dict__, "_images": {}}

    @property
    def groups(self) -> list[str]:
        """The models evaluated: the study's, then the baseline when it is not one of them."""
        return self.models + ([self.baseline] if self.baseline not in self.models else [])

    def cells(self) -> Sequence[CorruptionCell]:
        return [CorruptionCell(m, c) for m in self.groups for c in [CLEAN, *self.corruptions]]

    def description(self) -> str:
        return f"corruptions of {', '.join(self.groups)} on {get_spec(self.config.dataset).name}"

    def settings(self) -> dict[str, Any]:
        return {**asdict(self.config), "models": self.models, "baseline": self.baseline,
                "corruptions": self.corruptions, "severities": self.severities,
                "dataset": get_spec(self.config.dataset).name, "package": library_versions()}

    def prerequisites(self) -> list[TrainStep]:
        c = self.config
        return [TrainStep(m, c.dataset, c.data_root, c.download) for m in self.groups if m in MODELS]

    def prepare(self, cells: Sequence[CorruptionCell], device: torch.device) -> CorruptionsState:
        c, spec = self.config, get_spec(self.config.dataset)
        loaded = resolve_model(cells[0].model, spec.name, data_root=c.data_root, device=device,
                               trust_code=c.trust_code)
        test_set = load_dataset(spec.name, "test", c.data_root, c.download)
        indices = test_set.sample(c.n, spec.default_n, c.seed)
        x, y = test_set.tensors(indices)
        return CorruptionsState(loaded.module.eval(), loaded.name, model_fingerprint(loaded), x, y, indices)

    def key(self, cell: CorruptionCell, state: CorruptionsState, device_type: str) -> str | None:
        if state.fingerprint is None:
            return None
        c = self.config
        common = {"model": state.fingerprint, "data": state.data_fingerprint, "batch_size": c.batch_size,
                  "device": device_type}
        if cell.corruption == CLEAN:
            return cache_key({"corruptions": CLEAN, **common})
        return cache_key({"corruptions": cell.corruption, "severities": self.severities, "seed": c.seed,
                          "package": library_versions(), **common})

    def corrupted(self, state: CorruptionsState, name: str, severity: int) -> torch.Tensor:
        """The sample under ``name`` at ``severity`` (made once per process and shared by every model)."""
        key = (state.data_fingerprint, name, severity)
        if key not in self._images:
            images = corrupt(state.x, name, severity, self.config.seed, indices=state.indices)
            self._images[key] = (images * 255).round().to(torch.uint8)  # exact: corrupt() returns k/255
        return self._images[key].float().div(255)

    def run(self, cell: CorruptionCell, state: CorruptionsState, device: torch.device,
            bar: Progress | None) -> dict[str, Any]:
        c, tic = self.config, time.perf_counter()
        seed_everything(c.seed)
        if cell.corruption == CLEAN:
            labels = predict_labels(state.model, state.x, batch_size=c.batch_size, device=device).cpu()
            return {"rows": [{"severity": 0, "accuracy": float((labels == state.y).float().mean()),
                              "n": len(state.y)}], "seconds": time.perf_counter() - tic}
        rows, examples = [], []
        for severity in self.severities:
            x = self.corrupted(state, cell.corruption, severity)
            labels = predict_labels(state.model, x, batch_size=c.batch_size, device=device).cpu()
            rows.append({"severity": severity, "accuracy": float((labels == state.y).float().mean()),
                         "n": len(state.y)})
            examples.append(x[:1])
            if bar:
                bar.advance(1 / len(self.severities))
        return {"rows": rows, "example": pack_images(torch.cat(examples)), "seconds": time.perf_counter() - tic}

    def portable(self, state: CorruptionsState) -> CorruptionsState:
        return state.to(torch.device("cpu"))

    def localize(self, state: CorruptionsState, device: torch.device) -> CorruptionsState:
        return state.to(device)

    def finish_group(self, cells: Sequence[CorruptionCell], state: CorruptionsState, device: torch.device,
                     memo: Memo) -> dict[str, Any]:
        return {"model": state.model_name, "n": len(state.y), "example": pack_images(state.x[:1]),
                "example_label": int(state.y[0]), "example_index": int(state.indices[0])}

    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        dataset = get_spec(self.config.dataset).name
        rows = []
        for record in output.finished:
            cell = record.cell
            name = output.groups.get(cell.group, {}).get("model", cell.model)
            category = "none" if cell.corruption == CLEAN else CORRUPTIONS.get(cell.corruption).category
            rows += [{"model": name, "dataset": dataset, "corruption": cell.corruption, "category": category,
                      "severity": r["severity"], "accuracy": r["accuracy"], "error": 1 - r["accuracy"], "n": r["n"]}
                     for r in record.data["rows"]]
        results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
        baseline = output.groups.get(self.baseline, {}).get("model", self.baseline)
        names = [output.groups.get(m, {}).get("model", m) for m in self.groups]
        summary, ce = summary_tables(results, names, baseline, dataset, self.corruptions, self.severities)
        return {"results.csv": results, "summary.csv": summary, "ce.csv": ce}

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Check]:
        baseline = output.groups.get(self.baseline, {}).get("model", self.baseline)
        return corruption_checks(tables["results.csv"], tables["ce.csv"], baseline)

    def group_checks(self, output: StudyOutput) -> list[Check]:
        return []

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        c, dataset = self.config, get_spec(self.config.dataset).name
        names = [output.groups.get(m, {}).get("model", m) for m in self.models]
        n = next((g["n"] for g in output.groups.values() if "n" in g), c.n or get_spec(dataset).default_n)
        title = f"Common corruptions: {', '.join(names)} on {dataset}"
        subtitle = (f"{len(self.corruptions)} corruption types × severities {', '.join(map(str, self.severities))} · "
                    f"{n} test images · mCE relative to {self.baseline}")
        return f"corruptions-{'+'.join(self.models)[:40]}-{dataset}", title, subtitle

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        return {"models": [{k: v for k, v in g.items() if not k.startswith("example")} for g in output.groups.values()],
                "baseline": self.baseline, "corruption_package": library_versions(), "comparability": NOT_COMPARABLE}


def summary_tables(results: pd.DataFrame, models: Sequence[str], baseline: str, dataset: str,
                   corruptions: Sequence[str], severities: Sequence[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(summary, ce)``: per model its clean error, unnormalised mean corruption error, mCE and relative mCE;
    per model × type its CE and relative CE against ``baseline`` (NaN where the baseline's is missing or 0)."""
    def errors(model: str) -> tuple[float, dict[str, list[float]]]:
        part = results[results["model"] == model]
        clean = part.loc[part["corruption"] == CLEAN, "error"]
        found = {}
        for name in corruptions:
            rows = part[part["corruption"] == name].set_index("severity")["error"]
            if all(s in rows.index for s in severities):
                found[name] = [float(rows[s]) for s in severities]
        return (float(clean.iloc[0]) if len(clean) else math.nan), found

    base_clean, base_errors = errors(baseline)
    summary, ce_rows = [], []
    for model in models:
        clean, found = errors(model)
        if not found and math.isnan(clean):
            continue
        table = corruption_errors(found, clean, base_errors, base_clean)
        for name in corruptions:
            if name in found:
                ce_rows.append({"model": model, "dataset": dataset, "baseline": baseline, "corruption": name,
                                "category": CORRUPTIONS.get(name).category,
                                "mean_error": sum(found[name]) / len(found[name]),
                                "ce": table["ce"].get(name, math.nan),
                                "relative_ce": table["relative_ce"].get(name, math.nan)})
        all_errors = [e for values in found.values() for e in values]
        n = results.loc[results["model"] == model, "n"]
        summary.append({"model": model, "dataset": dataset, "baseline": baseline, "clean_accuracy": 1 - clean,
                        "clean_error": clean,
                        "mean_corruption_error": sum(all_errors) / len(all_errors) if all_errors else math.nan,
                        "mce": table["mce"], "relative_mce": table["relative_mce"], "corruptions": len(found),
                        "severities": ",".join(map(str, severities)), "n": int(n.iloc[0]) if len(n) else 0})
    return pd.DataFrame(summary, columns=SUMMARY_COLUMNS), pd.DataFrame(ce_rows, columns=CE_COLUMNS)


def corruption_checks(results: pd.DataFrame, ce: pd.DataFrame, baseline: str) -> list[Check]:
    """Per model × type: accuracy must not rise with severity (flag: a rise of more than two binomial standard
    errors plus one image between consecutive severities); per type: the baseline must degrade, or its relative
    CE is undefined (skipped)."""
    checks = []
    corrupted = results[results["corruption"] != CLEAN]
    for (model, name), part in corrupted.groupby(["model", "corruption"], sort=False):
        part = part.sort_values("severity")
        accuracy, severity, n = part["accuracy"].tolist(), part["severity"].tolist(), int(part["n"].iloc[0])
        rises = []
        for i in range(1, len(accuracy)):
            p = accuracy[i - 1]
            tolerance = 2 * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1)) + 1 / max(n, 1)
            if accuracy[i] - p > tolerance:
                rises.append(f"{p:.1%} at severity {severity[i - 1]} → {accuracy[i]:.1%} at {severity[i]}")
        label = f"accuracy falls with severity: {model} {name}"
        curve = " → ".join(f"{a:.1%}" for a in accuracy)
        if len(accuracy) < 2:
            checks.append(Check(label, "skipped", "one severity only", "corruptions-severity"))
        elif rises:
            checks.append(Check(label, "flag", f"accuracy rises: {'; '.join(rises)} (beyond two standard errors on "
                                f"{n} images); the severities do not order this model's difficulty — look for "
                                "a corruption that saturates (the image is gone) or a model that is guessing",
                                "corruptions-severity"))
        else:
            checks.append(Check(label, "pass", curve, "corruptions-severity"))
    base = ce[ce["model"] == baseline] if len(ce) else ce
    for _, row in base.iterrows():
        if not math.isfinite(row["relative_ce"]):
            checks.append(Check(f"baseline degrades: {row['corruption']}", "skipped",
                                f"{baseline} is not less accurate under {row['corruption']} than on clean images "
                                "(summed over severities): the relative CE of this type is undefined and left "
                                "out of the relative mCE", "corruptions-baseline"))
    return checks


def corruptions_study(config: CorruptionsConfig) -> CorruptionsStudy:
    """Validate ``config`` (models, baseline, corruption names, severities, sizes) before any work."""
    spec = get_spec(config.dataset)
    for name, value in (("models", config.models), ("corruptions", config.corruptions),
                        ("severities", config.severities)):
        if isinstance(value, (str, int)):
            raise InvalidArgumentError(f"{name} must be a list, got {value!r}; write e.g. {name}: [{value}]")
    models = list(dict.fromkeys(m.strip() for m in config.models if m and str(m).strip()))
    if not models:
        raise InvalidArgumentError("no model given; name one, e.g. --model cnn")
    baseline = str(config.baseline or "").strip()
    if not baseline:
        raise InvalidArgumentError(f"no mCE baseline given; name a model, e.g. --baseline {DEFAULT_BASELINE}")
    corruptions = list(dict.fromkeys(CORRUPTIONS.get(str(c)).name for c in config.corruptions if str(c).strip()))
    if not corruptions:
        raise InvalidArgumentError("no corruption given; name one, e.g. --corruption gaussian-noise, or leave "
                                   "--corruption out for all 15")
    severities = sorted(dict.fromkeys(check_severity(s) for s in config.severities))
    if not severities:
        raise InvalidArgumentError("no severity given; e.g. --severity 1,3,5, or leave --severity out for 1-5")
    channels = spec.shape[0]
    if channels not in (1, 3):
        raise InvalidArgumentError(f"common corruptions need grey or RGB images, but {spec.name} has {channels} "
                                   "channels; choose another data set")
    check_run_options(config.n, config.batch_size, config.jobs, config.device)
    library_versions()  # the corruption package is installed (else one line naming the pip install)
    return CorruptionsStudy(config, models, baseline, corruptions, severities)
