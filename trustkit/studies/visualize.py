"""Class-score maximisation and feature visualisation (``trustkit explain maximize``) as engine cells.

A cell is one (model, target, index): it optimises one image so that the model's logit of class ``index``
(target "class") or the mean activation of channel ``index`` of the run's layer (target "feature") is as large
as possible, under the priors of :mod:`trustkit.explain.visualize`. Cells of one model form a group that shares
the loaded model, the data set's mean image (what the L2 decay pulls towards, Simonyan et al.'s x̄) and the
model's logits on real test images (the reference a maximised logit is compared with). Every cell reseeds and
starts from the same seeded image, so models and classes are compared from one start.

Models are compared side by side, each with a role: a *standard* classifier, an *adversarially trained* one
(robust models give perceptually aligned images, Santurkar et al. 2019) and a *GAN discriminator* of the
generative zoo (``gan:acgan``: its auxiliary class head; ``gan:dcgan``: its real/fake logit) — the lab of the
seed deck. A model is written ``SPEC`` or ``ROLE=SPEC``; without a role it is inferred (the checkpoint's
training recipe; "GAN discriminator" for ``gan:`` specs). :mod:`trustkit.studies.visualize_models` reads and
checks them; its :func:`~trustkit.studies.visualize_models.lab_models` is the lab's trio.

Zoo classifiers, generators and adversarially trained store entries named as ``trustkit train --adv RECIPE
--eps EPS`` names them (``cnn-digits-pgd-eps0.2``, trained with that command's defaults) are trained by the
engine on first use (:meth:`MaximizeStudy.prerequisites`), before any group is prepared.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import pandas as pd
import torch
from torch import nn

from trustkit.data import get_spec, load_dataset
from trustkit.errors import InvalidArgumentError
from trustkit.explain.discriminator import output_names, softmax_probability
from trustkit.explain.visualize import (BLUR_EVERY, BLUR_SIGMA, L2, LR, STEPS, TV, TV_BETA, auto_jitter,
                                        check_settings, find_layer, maximize_class, maximize_feature,
                                        real_statistics, total_variation)
from trustkit.fingerprint import cache_key, tensor_fingerprint
from trustkit.images import pack_images
from trustkit.models.features import LayerInfo
from trustkit.models.inference import predict_logits
from trustkit.runtime import check_run_options, seed_everything, small_image_threads
from trustkit.sanity import Check
from trustkit.studies.base import RUN_ONLY_SETTINGS as BASE_RUN_ONLY
from trustkit.studies.base import Memo, Progress, StudyOutput, TrainStep
from trustkit.studies.visualize_models import ModelChoice, check_models, load_classifier, load_gan, train_steps

TARGETS = ("class", "feature")
DEFAULT_CHANNELS = 8  # feature targets: the layer's first channels unless --channels names them
# Run settings that decide where and how cells execute, not their numbers: left out of the cache keys.
# (and the cell's own model, target and index, which its key holds itself)
RUN_ONLY_SETTINGS = BASE_RUN_ONLY + ("models", "targets", "classes", "channels", "data_root", "download")
MIN_SPREAD = 1e-6  # an objective that real images do not move at all has no spread to measure it in


@dataclass
class MaximizeConfig:
    """What ``trustkit explain maximize`` runs.

    ``models``: model texts (``SPEC`` or ``ROLE=SPEC``; ``gan:NAME[:HEAD]`` for a GAN discriminator);
    ``targets``: "class" (class logits) and/or "feature" (mean activation of one channel of ``layer``);
    ``classes``: class indices (default: all; a real/fake head has only "real"); ``channels``: feature channels
    (default: the first 8). Optimisation (units in :mod:`trustkit.explain.visualize`): ``steps`` Adam steps of
    ``lr`` pixels, ``l2`` decay towards ``l2_center`` ("mean": the data set's mean test image; or a pixel
    value), ``tv`` weight of the TV_β prior with exponent ``tv_beta``, ``jitter`` pixels of random roll (None:
    side // 16), a Gaussian blur of ``blur_sigma`` pixels every ``blur_every`` steps (0: never), start noise
    ±``init_noise``. ``n``: test images behind the mean image and the real-image reference (default: the data
    set's evaluation size).
    """

    models: list[str] = field(default_factory=lambda: ["cnn"])
    dataset: str = "digits"
    targets: list[str] = field(default_factory=lambda: ["class"])
    classes: list[int] | None = None
    layer: str | None = None
    channels: list[int] | None = None
    steps: int = STEPS
    lr: float = LR
    l2: float = L2
    l2_center: str | float = "mean"
    tv: float = TV
    tv_beta: float = TV_BETA
    jitter: int | None = None
    blur_every: int = BLUR_EVERY
    blur_sigma: float = BLUR_SIGMA
    init_noise: float = 0.1
    n: int | None = None
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    download: bool = False
    trust_code: bool = False
    out: str = "reports"
    use_cache: bool = True
    jobs: int = 1
    backend: str = "local"
    ray_address: str | None = None


@dataclass(frozen=True)
class MaximizeCell:
    """Maximise ``model``'s class logit ``index`` (target "class") or channel ``index`` of ``layer``."""

    model: str
    target: str
    index: int
    layer: str = ""

    @property
    def group(self) -> str:
        return self.model  # one group per model: the loaded model, mean image and reference logits

    def title(self) -> str:
        what = f"class {self.index}" if self.target == "class" else f"{self.layer} channel {self.index}"
        return f"maximise {what} of {self.model}"


@dataclass
class MaximizeState:
    """One model's shared state: the module (a function of [0, 1] images returning logits), its display name,
    role and fingerprint, the feature layer, the L2 centre image, the data's fingerprint, and each objective's
    mean and spread over real test images (class logits; the layer's channels)."""

    name: str
    role: str
    module: nn.Module
    output_names: list[str]
    fingerprint: str | None
    center: torch.Tensor
    data_fingerprint: str
    layer: LayerInfo | None
    class_mean: list[float]
    class_std: list[float]
    channel_mean: list[float]
    channel_std: list[float]
    info: dict[str, Any]

    def to(self, device: torch.device) -> "MaximizeState":
        return replace(self, module=self.module.to(device))

    def reference(self, cell: "MaximizeCell") -> tuple[float, float]:
        """``(mean, spread)`` of the cell's objective over real test images; the spread is the unit the
        optimisation divides the objective by (1 where real images never move it, e.g. a dead channel)."""
        means, stds = ((self.class_mean, self.class_std) if cell.target == "class"
                       else (self.channel_mean, self.channel_std))
        std = stds[cell.index]
        return means[cell.index], std if std > MIN_SPREAD else 1.0


@dataclass
class MaximizeStudy:
    """A validated maximisation configuration as engine cells."""

    config: MaximizeConfig
    choices: list[ModelChoice]
    outputs: dict[str, tuple[str, int]]  # model text -> (discriminator head or "logits", number of outputs)
    classes: list[int]
    channels: list[int]
    kind: str = "maximize"

    def cells(self) -> Sequence[MaximizeCell]:
        cells: list[MaximizeCell] = []
        for choice in self.choices:
            _, count = self.outputs[choice.text]
            if "class" in self.config.targets:
                chosen = self.classes if count > 1 else [0]  # a real/fake head has one output: "real"
                cells += [MaximizeCell(choice.text, "class", c) for c in chosen]
            if "feature" in self.config.targets:
                cells += [MaximizeCell(choice.text, "feature", c, self.config.layer or "") for c in self.channels]
        return cells

    def description(self) -> str:
        return f"maximise on {', '.join(c.spec for c in self.choices)}"

    def settings(self) -> dict[str, Any]:
        spec = get_spec(self.config.dataset)
        shape = spec.shape
        return {**asdict(self.config), "dataset": spec.name, "classes": self.classes,
                "channels": self.channels if "feature" in self.config.targets else [],
                "jitter_pixels": auto_jitter(shape) if self.config.jitter is None else self.config.jitter,
                "roles": {c.text: c.role for c in self.choices}}

    def prerequisites(self) -> list[TrainStep]:
        c = self.config
        return train_steps(self.choices, c.dataset, c.data_root, c.download)

    # --- one model's shared state ---------------------------------------------------------------------
    def prepare(self, cells: Sequence[MaximizeCell], device: torch.device) -> MaximizeState:
        config, spec = self.config, get_spec(self.config.dataset)
        choice = next(c for c in self.choices if c.text == cells[0].model)
        if choice.is_gan:
            module, name, role, fingerprint, info = load_gan(choice, self.config.dataset, self.outputs[choice.text][0],
                                                             device)
            kind = "discriminator"
        else:
            module, name, role, fingerprint, info = load_classifier(choice, config.dataset, config.trust_code,
                                                                    device)
            kind = "classifier"
        module = module.eval()
        head, count = self.outputs[choice.text]
        names = output_names(module, spec.class_names, count)
        layer = find_layer(module, config.layer, spec.shape) if "feature" in config.targets else None
        if layer is not None:
            if not layer.shape:
                raise InvalidArgumentError(f"layer {layer.label} of {name} returns one number per image; pick a "
                                           "layer with channels")
            wrong = [c for c in self.channels if c >= layer.shape[0]]
            if wrong:
                raise InvalidArgumentError(f"channel {wrong[0]} is out of range: layer {layer.label} of {name} has "
                                           f"{layer.shape[0]} ({layer.shape_text}); pass --channels in "
                                           f"0..{layer.shape[0] - 1}")
        test_set = load_dataset(spec.name, "test", config.data_root, config.download)
        x, y = test_set.tensors(test_set.sample(config.n, spec.default_n, config.seed))
        center = x.mean(0) if config.l2_center == "mean" else torch.full(spec.shape, float(config.l2_center))
        with small_image_threads(spec.shape, device):
            logits = predict_logits(module, x, batch_size=256, device=device).cpu()
            class_mean, class_std = real_statistics(module, x, y if count > 1 else None, device=device)
            channel_mean, channel_std = (real_statistics(module, x, layer=layer, device=device) if layer is not None
                                         else (torch.empty(0), torch.empty(0)))
        accuracy = float((logits.argmax(1) == y).float().mean()) if count == spec.num_classes else None
        real_probability = float(torch.sigmoid(logits[:, 0]).mean()) if count == 1 else None
        info = {**info, "name": name, "role": role, "kind": kind, "head": head, "outputs": names,
                "layer": layer.label if layer is not None else None,
                "layer_shape": layer.shape_text if layer is not None else None,
                "accuracy": accuracy, "real_probability": real_probability, "n": len(y)}
        return MaximizeState(name, role, module, names, fingerprint, center.float(), tensor_fingerprint(x, y),
                             layer, class_mean.tolist(), class_std.tolist(), channel_mean.tolist(),
                             channel_std.tolist(), info)

    def key(self, cell: MaximizeCell, state: MaximizeState, device_type: str) -> str | None:
        if state.fingerprint is None:
            return None
        settings = {k: v for k, v in asdict(self.config).items() if k not in RUN_ONLY_SETTINGS}
        return cache_key({"maximize": asdict(cell), "settings": settings, "model": state.fingerprint,
                          "name": state.name, "role": state.role, "outputs": state.output_names,
                          "layer": state.layer.name if state.layer is not None else None,
                          "data": state.data_fingerprint, "device": device_type})

    def run(self, cell: MaximizeCell, state: MaximizeState, device: torch.device,
            bar: Progress | None) -> dict[str, Any]:
        config, shape = self.config, get_spec(self.config.dataset).shape
        seed_everything(config.seed)  # each cell reseeds: results do not depend on the order or the process
        every = max(1, config.steps // 20)

        def advance(step: int) -> None:
            if bar is not None and (step + 1) % every == 0:
                bar.advance(every / config.steps)

        real_mean, spread = state.reference(cell)
        options = dict(steps=config.steps, lr=config.lr, l2=config.l2, l2_center=state.center, tv=config.tv,
                       tv_beta=config.tv_beta, jitter=config.jitter, blur_every=config.blur_every,
                       blur_sigma=config.blur_sigma, seed=config.seed, device=device, scale=spread,
                       callback=advance)
        tic = time.perf_counter()
        with small_image_threads(shape, device):
            if cell.target == "class":
                result = maximize_class(state.module, cell.index, shape, **options)
            else:
                assert state.layer is not None
                result = maximize_feature(state.module, state.layer, cell.index, shape, **options)
            seconds = time.perf_counter() - tic
            with torch.no_grad():
                logits = state.module(result.images.to(device)).float().cpu()[0]
        predicted = int(logits.argmax())
        is_class = cell.target == "class"
        row = {"model": state.name, "role": state.role, "target": cell.target,
               "layer": "logits" if is_class else (state.layer.label if state.layer else cell.layer),
               "index": cell.index,
               "class_name": state.output_names[cell.index] if is_class else f"channel {cell.index}",
               "start": float(result.start[0]), "end": float(result.end[0]),
               "gain": float(result.end[0] - result.start[0]),
               "gain_in_spreads": float(result.end[0] - result.start[0]) / spread,
               "probability": softmax_probability(logits, cell.index) if is_class else math.nan,
               "predicted": state.output_names[predicted],
               "predicted_probability": softmax_probability(logits, predicted),
               "real_mean": real_mean, "real_spread": spread,
               "total_variation": float(total_variation(result.images)[0]),
               "steps": config.steps, "seconds": seconds}
        return {"rows": [row], "image": pack_images(result.images),
                "trace": [round(float(v), 5) for v in result.trace[0]]}

    def portable(self, state: MaximizeState) -> MaximizeState:
        return state.to(torch.device("cpu"))

    def localize(self, state: MaximizeState, device: torch.device) -> MaximizeState:
        return state.to(device)

    def finish_group(self, cells: Sequence[MaximizeCell], state: MaximizeState, device: torch.device,
                     memo: Memo) -> dict[str, Any]:
        return dict(state.info)

    # --- the finished study -----------------------------------------------------------------------------
    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        rows = [row for r in output.finished for row in r.data["rows"]]
        return {"results.csv": pd.DataFrame(rows, columns=RESULT_COLUMNS)}

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Check]:
        return maximize_checks(tables["results.csv"])

    def group_checks(self, output: StudyOutput) -> list[Check]:
        return []

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        dataset = get_spec(self.config.dataset).name
        names = [g.get("name", t) for t, g in output.groups.items()] or [c.spec for c in self.choices]
        what = " and ".join(("class-score maximisation" if t == "class" else "feature visualisation")
                            for t in self.config.targets)
        title = f"{what[0].upper()}{what[1:]}: {', '.join(names)} on {dataset}"
        subtitle = (f"{self.config.steps} Adam steps · L2 {self.config.l2:g} · TV {self.config.tv:g} · "
                    f"blur every {self.config.blur_every} steps")
        label = f"maximize-{'+'.join(c.spec.replace(':', '-') for c in self.choices)[:60]}-{dataset}"
        return label, title, subtitle

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        return {"models": [dict(g, group=str(k)) for k, g in output.groups.items()]}


RESULT_COLUMNS = ["model", "role", "target", "layer", "index", "class_name", "start", "end", "gain",
                  "gain_in_spreads", "probability", "predicted", "predicted_probability", "real_mean", "real_spread",
                  "total_variation", "steps", "seconds"]


def maximize_checks(results: pd.DataFrame) -> list[Check]:
    """Did every maximisation raise its target, and does every class image end predicted as its class?"""
    if results.empty:
        return [Check("maximisation raises the target", "skipped", "no cell finished", "maximisation")]
    fell = results[~(results["end"] > results["start"])]
    checks = [Check("maximisation raises the target", "flag" if len(fell) else "pass",
                    f"{len(fell)} of {len(results)} targets did not rise: "
                    + ", ".join(f"{r.model} {r.class_name}" for r in fell.head(5).itertuples())
                    + "; raise --steps or --lr, or lower --l2/--tv" if len(fell) else
                    f"every one of {len(results)} targets rose (median gain "
                    f"{results['gain'].median():.3g})", "maximisation")]
    classes = results[(results["target"] == "class") & (results["class_name"] != "real")]
    if len(classes):
        missed = classes[classes["predicted"] != classes["class_name"]]
        checks.append(Check("class images are predicted as their class", "flag" if len(missed) else "pass",
                            (f"{len(missed)} of {len(classes)} class images end predicted as another class: "
                             + ", ".join(f"{r.model} {r.class_name} -> {r.predicted}"
                                         for r in missed.head(5).itertuples())
                             + "; the priors may be too strong for this model: lower --l2/--tv or raise --steps")
                            if len(missed) else f"all {len(classes)} class images end predicted as their class",
                            "maximisation"))
    return checks


def maximize_study(config: MaximizeConfig) -> MaximizeStudy:
    """Validate ``config`` (models, targets, indices, optimisation settings, run options) before any model is
    trained or loaded; bad input raises a one-line TrustkitError."""
    spec = get_spec(config.dataset)
    dataset = spec.name
    choices, outputs = check_models(config.models, dataset)
    targets = list(dict.fromkeys(t.strip().lower() for t in config.targets))
    if not targets or any(t not in TARGETS for t in targets):
        bad = next((t for t in targets if t not in TARGETS), "")
        raise InvalidArgumentError(f"unknown target '{bad}'; pick class, feature or both (--target class,feature)")
    config = replace(config, targets=targets)
    classes = list(range(spec.num_classes)) if config.classes is None else list(config.classes)
    if not classes:
        raise InvalidArgumentError(f"no class given; pass class indices in 0..{spec.num_classes - 1}, e.g. --classes 0,1")
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < spec.num_classes:
            raise InvalidArgumentError(f"class index {c} is out of range: {dataset} has {spec.num_classes} classes; "
                                       f"pass indices in 0..{spec.num_classes - 1}")
    classes = list(dict.fromkeys(classes))
    channels: list[int] = []
    if "feature" in targets:
        if not config.layer:
            raise InvalidArgumentError("feature targets need a layer; pass --layer, e.g. --layer relu2 (aliases "
                                       "conv1, relu1, pool1 ... or module names such as net.3)")
        channels = list(range(DEFAULT_CHANNELS)) if config.channels is None else list(config.channels)
        if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in channels):
            raise InvalidArgumentError(f"channels must be whole numbers >= 0, got {config.channels}; e.g. --channels 0,1,2")
        channels = list(dict.fromkeys(channels))
    check_settings(steps=config.steps, lr=config.lr, l2=config.l2, tv=config.tv, tv_beta=config.tv_beta,
                   jitter=config.jitter, blur_every=config.blur_every, blur_sigma=config.blur_sigma)
    if config.l2_center != "mean":
        try:
            center = float(config.l2_center)
        except (TypeError, ValueError):
            center = math.nan
        if not 0 <= center <= 1:
            raise InvalidArgumentError(f"l2 centre must be 'mean' or a pixel value in [0, 1], got "
                                       f"{config.l2_center!r}; e.g. --l2-center mean")
        config = replace(config, l2_center=center)
    if not (math.isfinite(float(config.init_noise)) and 0 <= config.init_noise <= 1):
        raise InvalidArgumentError(f"init noise must lie in [0, 1] (pixels), got {config.init_noise}; e.g. 0.1")
    check_run_options(config.n, 1, config.jobs, config.device)
    return MaximizeStudy(config, choices, outputs, classes, channels)


__all__ = ["MaximizeCell", "MaximizeConfig", "MaximizeState", "MaximizeStudy", "RESULT_COLUMNS", "maximize_checks",
           "maximize_study"]
