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
training recipe; "GAN discriminator" for ``gan:`` specs). :func:`lab_models` is the lab's trio.

Zoo classifiers, generators and adversarially trained store entries named as ``trustkit train --adv RECIPE
--eps EPS`` names them (``cnn-digits-pgd-eps0.2``, trained with that command's defaults) are trained by the
engine on first use (:meth:`MaximizeStudy.prerequisites`), before any group is prepared.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd
import torch
from torch import nn

from trustkit.blackbox.models import check_model_spec
from trustkit.data import get_spec, load_dataset
from trustkit.errors import CheckpointError, InvalidArgumentError, UnknownNameError
from trustkit.explain.visualize import (BLUR_EVERY, BLUR_SIGMA, HEADS, L2, LR, STEPS, TV, TV_BETA, DiscriminatorView,
                                        auto_jitter, check_settings, discriminator_heads, find_layer,
                                        maximize_class, maximize_feature, output_names, real_statistics, softmax_probability,
                                        total_variation)
from trustkit.fingerprint import cache_key, file_fingerprint, tensor_fingerprint
from trustkit.images import pack_images
from trustkit.models import MODELS
from trustkit.models.features import LayerInfo
from trustkit.models.inference import predict_logits
from trustkit.runtime import check_run_options, seed_everything
from trustkit.sanity import Check
from trustkit.studies.base import RUN_ONLY_SETTINGS as BASE_RUN_ONLY
from trustkit.studies.base import Memo, Progress, StudyOutput, TrainStep
from trustkit.studies.bench_cells import model_fingerprint
from trustkit.train import adversarial_entry

GAN_PREFIX = "gan:"
BUILT_IN_DATASETS = ("digits", "mnist", "cifar10", "faces", "olivetti")  # where a mismatched store entry may be from
TARGETS = ("class", "feature")
DEFAULT_CHANNELS = 8  # feature targets: the layer's first channels unless --channels names them
ROLES = {"standard": "standard", "adversarial": "adversarially trained", "gan": "GAN discriminator"}
# The lab's adversarially trained model: PGD (Madry et al.) at the middle of the data set's eps grid. On 2 CPU
# cores the whole trio trains in under 2 minutes from an empty store (once; the store keeps it).
LAB_RECIPE = "pgd"
LAB_EPS = {"digits": 0.2, "mnist": 0.3, "cifar10": 8 / 255}
# Run settings that decide where and how cells execute, not their numbers: left out of the cache keys.
# (and the cell's own model, target and index, which its key holds itself)
RUN_ONLY_SETTINGS = BASE_RUN_ONLY + ("models", "targets", "classes", "channels", "data_root", "download")
MIN_SPREAD = 1e-6  # an objective that real images do not move at all has no spread to measure it in
SMALL_IMAGE_PIXELS = 32 * 32  # at or below this, one intra-op thread is faster (tiny ops; threads spin-wait)


def lab_models(dataset: str = "digits") -> list[str]:
    """The seed deck's lab on ``dataset``: the standard zoo cnn, the same cnn adversarially trained (PGD), and
    the ACGAN discriminator's class head, each as ``ROLE=SPEC``."""
    from trustkit.train import store_name

    name = get_spec(dataset).name
    if name not in LAB_EPS:
        raise InvalidArgumentError(f"the lab trio is set up for {', '.join(LAB_EPS)}, not {name}; name the models "
                                   "yourself, e.g. --model cnn --model gan:acgan")
    robust = store_name("cnn", name, LAB_RECIPE, LAB_EPS[name])
    return [f"{ROLES['standard']}=cnn", f"{ROLES['adversarial']}={robust}", f"{ROLES['gan']}={GAN_PREFIX}acgan"]


@dataclass(frozen=True)
class ModelChoice:
    """One compared model: ``spec`` as a model loader reads it, ``role`` as given (None: inferred), and for
    ``gan:`` specs the generative ``gan`` spec and its discriminator ``head``."""

    text: str
    spec: str
    role: str | None = None
    gan: str | None = None
    head: str = "auto"

    @property
    def is_gan(self) -> bool:
        return self.gan is not None


def parse_model(text: str) -> ModelChoice:
    """``"cnn"``, ``"robust=cnn-digits-pgd-eps0.2"``, ``"gan:acgan"``, ``"gan:acgan:source"`` -> a ModelChoice."""
    raw = str(text).strip()
    role = None
    if "=" in raw:
        role, _, raw = (part.strip() for part in raw.partition("="))
        if not role or not raw:
            raise InvalidArgumentError(f"cannot read model '{text}'; write SPEC or ROLE=SPEC, e.g. "
                                       "'robust=cnn-digits-pgd-eps0.2'")
    if not raw:
        raise InvalidArgumentError("empty model spec; name a model, e.g. --model cnn")
    if not raw.lower().startswith(GAN_PREFIX):
        return ModelChoice(str(text).strip(), raw, role)
    gan, head = raw[len(GAN_PREFIX):].strip(), "auto"
    stem, _, last = gan.rpartition(":")
    if stem and last.lower() in HEADS:
        gan, head = stem, last.lower()
    if not gan:
        raise InvalidArgumentError(f"'{text}' names no generative model; write gan:NAME, e.g. gan:acgan")
    return ModelChoice(str(text).strip(), raw, role, gan, head)


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


def _gan_family(choice: ModelChoice, dataset: str) -> type:
    """The generative class behind a ``gan:`` spec, read without loading weights (registry or header)."""
    from trustkit.generative import GENERATIVE_MODELS
    from trustkit.models.store import checkpoint_exists, read_metadata, store_path

    name = choice.gan or ""
    if name in GENERATIVE_MODELS:
        return GENERATIVE_MODELS.get(name)
    path = Path(name).expanduser()
    if name.endswith((".safetensors", ".json")) or "/" in name or os.sep in name:
        meta = read_metadata(path)
    elif checkpoint_exists(store_path(name)):
        meta = read_metadata(store_path(name))
    else:
        try:
            GENERATIVE_MODELS.canonical(name)
        except UnknownNameError as exc:
            raise UnknownNameError(f"{exc}; or give a store entry such as gen-acgan-{dataset} or a .safetensors "
                                   "checkpoint after gan:") from None
        raise AssertionError("unreachable")  # canonical() either raised or the name was registered
    if meta.get("kind") != "generative" or meta.get("arch") not in GENERATIVE_MODELS:
        raise CheckpointError(f"{name} is not a trustkit generative checkpoint; train one with 'trustkit gen train "
                              f"--model acgan --dataset {dataset}'")
    return GENERATIVE_MODELS.get(meta["arch"])


def _gan_outputs(choice: ModelChoice, dataset: str) -> tuple[str, int]:
    """``(head, number of outputs)`` of a ``gan:`` spec's discriminator view, checked before any work."""
    family = _gan_family(choice, dataset)
    heads = discriminator_heads(family)
    head = heads[0] if choice.head == "auto" else choice.head
    if head not in heads:
        raise InvalidArgumentError(f"{family.__name__} has no '{head}' head; it has: {', '.join(heads)} "
                                   f"(write {GAN_PREFIX}{choice.gan}:{heads[0]})")
    return head, get_spec(dataset).num_classes if head == "class" else 1


@contextlib.contextmanager
def _threads_for(shape: Sequence[int], device: torch.device) -> Iterator[None]:
    """One intra-op thread on the CPU for small images: their ops are too small to split, and on a busy machine
    two OpenMP threads spin-wait for each other (measured: the 8×8 DCGAN discriminator, 30 steps, 2.4 s with
    2 threads under load, 0.02 s with 1)."""
    if device.type != "cpu" or shape[-1] * shape[-2] > SMALL_IMAGE_PIXELS:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
        config, steps = self.config, []
        for choice in self.choices:
            if choice.is_gan:
                from trustkit.generative import GENERATIVE_MODELS

                if choice.gan in GENERATIVE_MODELS:
                    steps.append(TrainStep(GENERATIVE_MODELS.canonical(choice.gan), config.dataset, config.data_root,
                                           config.download, kind="generator"))
            elif choice.spec in MODELS:
                steps.append(TrainStep(choice.spec, config.dataset, config.data_root, config.download))
            elif (parsed := adversarial_entry(choice.spec, get_spec(config.dataset).name)) is not None:
                arch, recipe, eps = parsed  # trained as `trustkit train --adv RECIPE --eps EPS` would
                steps.append(TrainStep(arch, config.dataset, config.data_root, config.download, recipe=recipe, eps=eps))
        return steps

    # --- one model's shared state ---------------------------------------------------------------------
    def prepare(self, cells: Sequence[MaximizeCell], device: torch.device) -> MaximizeState:
        config, spec = self.config, get_spec(self.config.dataset)
        choice = next(c for c in self.choices if c.text == cells[0].model)
        if choice.is_gan:
            module, name, role, fingerprint, info = self._load_gan(choice, device)
            kind = "discriminator"
        else:
            module, name, role, fingerprint, info = self._load_classifier(choice, device)
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
        with _threads_for(spec.shape, device):
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

    def _load_classifier(self, choice: ModelChoice,
                         device: torch.device) -> tuple[nn.Module, str, str, str | None, dict[str, Any]]:
        from trustkit.models.loading import resolve_model

        config = self.config
        loaded = resolve_model(choice.spec, config.dataset, device=device, trust_code=config.trust_code)
        recipe = loaded.metadata.get("recipe") if isinstance(loaded.metadata.get("recipe"), dict) else {}
        trained = recipe.get("recipe", "clean")
        role = choice.role or (ROLES["adversarial"] if trained != "clean" else ROLES["standard"])
        info = {"spec": choice.spec, "source": loaded.source, "recipe": trained,
                "eps": recipe.get("eps") if trained != "clean" else None}
        return loaded.module, loaded.name, role, model_fingerprint(loaded), info

    def _load_gan(self, choice: ModelChoice,
                  device: torch.device) -> tuple[nn.Module, str, str, str | None, dict[str, Any]]:
        from trustkit.generative.store import resolve_generator

        loaded = resolve_generator(choice.gan or "", self.config.dataset, device)
        head, _ = self.outputs[choice.text]
        view = DiscriminatorView(loaded.model, head)
        what = "class head" if head == "class" else "real/fake logit"
        name = f"{loaded.arch} discriminator ({what})"
        info = {"spec": choice.spec, "source": loaded.source, "recipe": loaded.metadata.get("family", "gan"),
                "eps": None}
        fingerprint = f"file:{file_fingerprint(loaded.source)}" if os.path.isfile(loaded.source) else None
        return view, name, choice.role or ROLES["gan"], fingerprint, info

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
        with _threads_for(shape, device):
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
    if not config.models:
        raise InvalidArgumentError("no model given; name one or more, e.g. --model cnn --model gan:acgan")
    choices = [parse_model(text) for text in config.models]
    seen: dict[str, str] = {}
    for choice in choices:
        if choice.spec in seen:
            raise InvalidArgumentError(f"model '{choice.spec}' is given twice ('{seen[choice.spec]}' and "
                                       f"'{choice.text}'); name each model once")
        seen[choice.spec] = choice.text
    outputs: dict[str, tuple[str, int]] = {}
    for choice in choices:
        if choice.is_gan:
            outputs[choice.text] = _gan_outputs(choice, dataset)
            continue
        if adversarial_entry(choice.spec, dataset) is None:
            other = next((d for d in BUILT_IN_DATASETS if d != dataset and adversarial_entry(choice.spec, d)), None)
            if other is not None and not os.path.exists(choice.spec):
                raise InvalidArgumentError(f"model '{choice.spec}' is trained on {other}, not {dataset}; pass "
                                           f"--dataset {other} or a model trained on {dataset}")
            check_model_spec(choice.spec)
        outputs[choice.text] = ("logits", spec.num_classes)
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


__all__ = ["GAN_PREFIX", "LAB_EPS", "LAB_RECIPE", "MaximizeCell", "MaximizeConfig", "MaximizeState", "MaximizeStudy",
           "ModelChoice", "RESULT_COLUMNS", "lab_models", "maximize_checks", "maximize_study",
           "parse_model"]
