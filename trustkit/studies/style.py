"""The style-transfer study (``trustkit explain style``): Gatys et al.'s neural style transfer through one model,
one cell per (content image, style image, style weight).

One group — the model, its content and style layers and the decoded images — is resolved once. Each cell
reseeds and optimises one image (:func:`trustkit.explain.style.transfer_style`); a few style weights side by side
show the content/style trade-off. Rows hold the final losses (relative errors: 0 is a perfect match, 1 as far
as a blank feature map), the start style loss and the time; the cell's data also holds the three images and the
loss trace.

Models: any trustkit spec through :func:`trustkit.models.loading.resolve_model` (a zoo name is trained first,
as a scheduled step of the engine), and ``torchvision:NAME`` / ``timm:NAME`` library specs. Those are built with
:func:`trustkit.models.library.load_library_model` directly, with 1,000 classes unless the spec says otherwise
(``resolve_model`` insists that a model's logits match a trustkit data set's class count, which ImageNet weights
never do, and style transfer never reads the logits). A library spec without ``weights=`` has random weights:
the report says so (random convolutional features still capture textures, Ustyuzhaninov et al. 2017, but not
Gatys et al.'s painterly style). Nothing is downloaded.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from trustkit.blackbox.models import check_model_spec
from trustkit.data import get_spec
from trustkit.errors import InvalidArgumentError
from trustkit.explain.image_files import read_image
from trustkit.explain.style import CONTENT_WEIGHT, SIZE, STEPS, TV_WEIGHT, check_settings, transfer_style
from trustkit.explain.style_layers import LayerChoice, LayerFeatures, choose_layers, model_layers
from trustkit.fingerprint import cache_key, tensor_fingerprint
from trustkit.images import pack_images
from trustkit.models import MODELS
from trustkit.models.library import is_library_spec, load_library_model, parse_library_spec
from trustkit.models.loading import LoadedModel, resolve_model
from trustkit.runtime import seed_everything, select_device
from trustkit.sanity import Check
from trustkit.studies.base import Memo, Progress, StudyOutput, TrainStep
from trustkit.studies.bench_cells import model_fingerprint

DEFAULT_STYLE_WEIGHTS = (1.0, 10.0, 100.0)  # light, medium, strong stylisation (normalised losses)
LIBRARY_CLASSES = 1000  # torchvision/timm weights are ImageNet-1k unless the spec names num_classes
LIBRARY_INPUT = (3, 224, 224)  # the input size torchvision/timm architectures are built for
TINY_PARAMETERS = 1_000_000
TINY_SIDE = 32  # a model built for images of at most 32×32 pixels
RESULT_COLUMNS = ["model", "content", "style", "content_weight", "style_weight", "tv_weight", "content_loss",
                  "style_loss", "tv", "total_loss", "start_style_loss", "steps", "optimizer", "init", "height",
                  "width", "seconds"]
LOSS_COLUMNS = ["model", "content", "style", "style_weight", "step", "total", "content_loss", "style_loss", "tv"]
# what decides a cell's numbers besides its images, weight, model and layers (the key folds these in)
KEYED_SETTINGS = ("content_weight", "tv_weight", "steps", "optimizer", "lr", "init", "size", "normalize", "seed")


@dataclass(frozen=True)
class StyleConfig:
    """What ``trustkit explain style`` runs. ``content`` / ``style``: image files (every pair is transferred);
    ``style_weights``: β values (one cell each; unitless with ``normalize``); layers by name (empty: Gatys-style
    defaults); ``size``: the content's longer side in pixels (None: its own size; the style image is scaled to
    cover the content and centre-cropped); ``dataset``: which checkpoint a zoo name means and the input shape of a
    factory/TorchScript model (None: digits, or a checkpoint's own data set). The rest as in
    :func:`trustkit.explain.style.transfer_style`."""

    content: tuple[str, ...] = ()
    style: tuple[str, ...] = ()
    model: str = "cnn"
    dataset: str | None = None
    style_weights: tuple[float, ...] = DEFAULT_STYLE_WEIGHTS
    content_weight: float = CONTENT_WEIGHT
    tv_weight: float = TV_WEIGHT
    content_layers: tuple[str, ...] = ()
    style_layers: tuple[str, ...] = ()
    steps: int = STEPS
    optimizer: str = "lbfgs"
    lr: float | None = None
    init: str = "content"
    size: int | None = SIZE
    normalize: bool = True
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    download: bool = False
    trust_code: bool = False


@dataclass(frozen=True)
class StyleCell:
    """One transfer: ``content`` in the style of ``style`` with style weight ``style_weight`` through ``model``."""

    model: str
    content: str
    style: str
    style_weight: float

    @property
    def group(self) -> str:  # the cells of one model share it, its layers and the decoded images
        return self.model

    def title(self) -> str:
        return f"{Path(self.content).name} in the style of {Path(self.style).name}, style weight {self.style_weight:g}"


@dataclass
class StyleState:
    """The loaded model, its input shape and layers, and every image of the group (decoded for its channels)."""

    loaded: LoadedModel
    input_shape: tuple[int, int, int]
    dataset: str | None
    layers: LayerChoice
    contents: dict[str, torch.Tensor]
    styles: dict[tuple[str, str], torch.Tensor]  # (content, style) -> the style fitted to that content's size
    notes: list[str]
    fingerprint: str | None
    image_fingerprints: dict[str, str] = field(default_factory=dict)

    def to(self, device: torch.device) -> "StyleState":
        self.loaded.module = self.loaded.module.to(device)
        return self


def _checkpoint_dataset(spec: str) -> str | None:
    """The data set a trustkit ``.safetensors`` checkpoint was trained on (its header), else None."""
    path = Path(spec).expanduser()
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    from trustkit.models.store import read_metadata

    return read_metadata(path).get("dataset")


def model_dataset(config: StyleConfig) -> str | None:
    """The data set a spec is resolved for (None for library specs, which need none)."""
    if is_library_spec(config.model):
        return None
    return config.dataset or _checkpoint_dataset(config.model) or "digits"


def load_style_model(config: StyleConfig, device: torch.device) -> tuple[LoadedModel, tuple[int, int, int]]:
    """``(loaded model, the C×H×W input it was built for)``; see the module doc for library specs."""
    if is_library_spec(config.model):
        module, metadata = load_library_model(config.model, LIBRARY_CLASSES)
        return LoadedModel(module.to(device).eval(), config.model, config.model, metadata), LIBRARY_INPUT
    dataset = model_dataset(config)
    loaded = resolve_model(config.model, dataset, data_root=config.data_root, device=device,
                           trust_code=config.trust_code)
    shape = tuple(int(s) for s in (loaded.metadata.get("input_shape") or get_spec(dataset).shape))
    return loaded, shape  # type: ignore[return-value]


def random_weights(loaded: LoadedModel) -> bool | None:
    """True for a library model without weights (its random initialisation), False for trained trustkit
    checkpoints and library models with weights, None when unknown (a Python object, a factory, TorchScript)."""
    if loaded.metadata.get("format") == "library":
        return loaded.metadata.get("weights") is None
    if loaded.metadata.get("dataset") is not None:
        return False
    return None


@dataclass
class StyleStudy:
    """A validated style-transfer configuration as engine cells."""

    config: StyleConfig
    contents: list[str]
    styles: list[str]
    style_weights: list[float]
    kind: str = "style"

    def cells(self) -> Sequence[StyleCell]:
        return [StyleCell(self.config.model, c, s, w) for c in self.contents for s in self.styles
                for w in self.style_weights]

    def description(self) -> str:
        return f"style transfer through {self.config.model}"

    def settings(self) -> dict[str, Any]:
        return {**asdict(self.config), "content": self.contents, "style": self.styles,
                "style_weights": self.style_weights, "dataset": model_dataset(self.config)}

    def prerequisites(self) -> list[TrainStep]:
        config = self.config
        if config.model in MODELS:
            return [TrainStep(config.model, model_dataset(config), config.data_root, config.download)]
        return []

    def prepare(self, cells: Sequence[StyleCell], device: torch.device) -> StyleState:
        config = self.config
        loaded, shape = load_style_model(config, device)
        loaded.module.eval()
        layers = choose_layers(model_layers(loaded.module, shape), config.content_layers, config.style_layers)
        channels = shape[0]
        contents, styles, notes = {}, {}, []
        for cell in cells:
            if cell.content not in contents:
                found = read_image(cell.content, channels=channels, size=config.size)
                contents[cell.content] = found.image[0]
                notes += [found.note] if found.note else []
            key = (cell.content, cell.style)
            if key not in styles:
                found = read_image(cell.style, channels=channels, size=tuple(contents[cell.content].shape[-2:]))
                styles[key] = found.image[0]
                notes += [found.note] if found.note and found.note not in notes else []
        fingerprints = {c: tensor_fingerprint(x) for c, x in contents.items()}
        fingerprints.update({f"{c}\n{s}": tensor_fingerprint(x) for (c, s), x in styles.items()})
        return StyleState(loaded, shape, model_dataset(config), layers, contents, styles, list(dict.fromkeys(notes)),
                          model_fingerprint(loaded), fingerprints)

    def key(self, cell: StyleCell, state: StyleState, device_type: str) -> str | None:
        if state.fingerprint is None:
            return None
        settings = {k: getattr(self.config, k) for k in KEYED_SETTINGS}
        return cache_key({"style": {"content": state.image_fingerprints[cell.content],
                                    "style": state.image_fingerprints[f"{cell.content}\n{cell.style}"],
                                    # the row names the files: a renamed file is a new row
                                    "names": [Path(cell.content).name, Path(cell.style).name],
                                    "style_weight": cell.style_weight, **settings},
                          "model": state.fingerprint, "model_name": state.loaded.name,
                          "layers": {"content": [layer.name for layer in state.layers.content],
                                     "style": [layer.name for layer in state.layers.style]},
                          "device": device_type})

    def run(self, cell: StyleCell, state: StyleState, device: torch.device, bar: Progress | None) -> dict[str, Any]:
        config = self.config
        seed_everything(config.seed)  # each cell reseeds: results do not depend on the order or the process
        content, style = state.contents[cell.content], state.styles[(cell.content, cell.style)]
        tic = time.perf_counter()
        result = transfer_style(state.loaded.module, content, style, content_layers=state.layers.content,
                                style_layers=state.layers.style, content_weight=config.content_weight,
                                style_weight=cell.style_weight, tv_weight=config.tv_weight, steps=config.steps,
                                optimizer=config.optimizer, lr=config.lr, init=config.init,
                                normalize=config.normalize, seed=config.seed, device=device,
                                input_shape=state.input_shape,
                                on_step=(lambda step: bar.advance(1 / config.steps)) if bar else None)
        seconds = time.perf_counter() - tic
        trace = result.trace
        row = {"model": state.loaded.name, "content": Path(cell.content).name, "style": Path(cell.style).name,
               "content_weight": config.content_weight, "style_weight": cell.style_weight,
               "tv_weight": config.tv_weight, "content_loss": trace["content"][-1], "style_loss": trace["style"][-1],
               "tv": trace["tv"][-1], "total_loss": trace["total"][-1], "start_style_loss": trace["style"][0],
               "steps": config.steps, "optimizer": config.optimizer, "init": config.init,
               "height": int(content.shape[-2]), "width": int(content.shape[-1]), "seconds": seconds}
        return {"row": row, "trace": trace,
                "images": pack_images(torch.stack([content, style, result.image[0]]))}

    def portable(self, state: StyleState) -> StyleState:
        return state.to(torch.device("cpu"))

    def localize(self, state: StyleState, device: torch.device) -> StyleState:
        return state.to(device)

    def finish_group(self, cells: Sequence[StyleCell], state: StyleState, device: torch.device,
                     memo: Memo) -> dict[str, Any]:
        model = state.loaded.module
        first = next(iter(state.contents.values()))
        with torch.no_grad():  # the feature maps' shapes at the working size (describe_layers measured the model's)
            features = LayerFeatures(model, state.layers.names)(first.unsqueeze(0).to(device))
        layers = [{"role": role, "label": layer.label, "module": layer.name,
                   "shape": "×".join(map(str, features[layer.name].shape[1:])), "native_shape": layer.info.shape_text}
                  for role, chosen in (("content", state.layers.content), ("style", state.layers.style))
                  for layer in chosen]
        parameters = sum(p.numel() for p in model.parameters())
        side = max(state.input_shape[1:])
        return {"model": state.loaded.name, "source": state.loaded.source, "random_weights": random_weights(state.loaded),
                "parameters": parameters, "input_shape": list(state.input_shape), "dataset": state.dataset,
                "tiny": parameters < TINY_PARAMETERS or side <= TINY_SIDE, "notes": state.notes, "layers": layers,
                "channels": state.input_shape[0]}

    def frames(self, output: StudyOutput) -> dict[str, pd.DataFrame]:
        rows = [record.data["row"] for record in output.finished]
        losses = [{"model": r.data["row"]["model"], "content": r.data["row"]["content"], "style": r.data["row"]["style"],
                   "style_weight": r.data["row"]["style_weight"], "step": step, "total": total, "content_loss": c,
                   "style_loss": s, "tv": t}
                  for r in output.finished
                  for step, (total, c, s, t) in enumerate(zip(r.data["trace"]["total"], r.data["trace"]["content"],
                                                              r.data["trace"]["style"], r.data["trace"]["tv"],
                                                              strict=True))]
        return {"results.csv": pd.DataFrame(rows, columns=RESULT_COLUMNS),
                "losses.csv": pd.DataFrame(losses, columns=LOSS_COLUMNS)}

    def checks(self, tables: dict[str, pd.DataFrame], output: StudyOutput) -> list[Check]:
        return style_checks(tables["results.csv"])

    def group_checks(self, output: StudyOutput) -> list[Check]:
        return []

    def headline(self, output: StudyOutput) -> tuple[str, str, str]:
        group = next(iter(output.groups.values()), {"model": self.config.model})
        config = self.config
        size = f"longer side {config.size} px" if config.size else "images at their own size"
        subtitle = (f"{len(self.contents)} content × {len(self.styles)} style image(s) × style weights "
                    f"{', '.join(f'{w:g}' for w in self.style_weights)} · {config.steps} {config.optimizer} steps · "
                    f"{size}")
        return f"style-{str(group['model'])[:40]}", f"Style transfer through {group['model']}", subtitle

    def run_extras(self, output: StudyOutput) -> dict[str, Any]:
        group = next(iter(output.groups.values()), {})
        return {"model": group.get("model"), "random_weights": group.get("random_weights"),
                "layers": group.get("layers", [])}


def style_checks(results: pd.DataFrame) -> list[Check]:
    """One check: every transfer with a positive style weight ended with a smaller style loss than it started
    from (else the optimisation did not move towards the style: too few steps, or a too large ``lr``)."""
    moved = results[results["style_weight"] > 0] if len(results) else results
    if not len(moved):
        return [Check("style loss fell", "skipped", "no finished transfer with a positive style weight",
                      "style-transfer")]
    stuck = moved[~(moved["style_loss"] < moved["start_style_loss"])]
    if len(stuck):
        names = ", ".join(f"{r.content}/{r.style} (weight {r.style_weight:g})" for r in stuck.itertuples())
        return [Check("style loss fell", "flag", f"the style loss did not fall for {names}: give more --steps or "
                      "check the layers", "style-transfer")]
    worst = float((moved["style_loss"] / moved["start_style_loss"].clip(lower=1e-12)).max())
    return [Check("style loss fell", "pass", f"every transfer lowered its style loss (the least to {worst:.1%} of "
                  "its start)", "style-transfer")]


def _files(paths: Sequence[str], option: str) -> list[str]:
    if not paths:
        raise InvalidArgumentError(f"no {option.strip('-')} image given; pass {option} FILE (PNG, JPEG ...)")
    return list(dict.fromkeys(str(Path(p).expanduser().resolve()) for p in paths))


def style_study(config: StyleConfig) -> StyleStudy:
    """Validate ``config`` — files readable, weights, steps, optimiser, model spec, device — before any model is
    trained or loaded. Layer names are checked against the model once it is loaded (before any cell runs)."""
    contents, styles = _files(config.content, "--content"), _files(config.style, "--style")
    if config.size is not None and (isinstance(config.size, bool) or not isinstance(config.size, int)
                                    or not 8 <= config.size <= 4096):
        raise InvalidArgumentError(f"size must be a whole number of pixels from 8 to 4096, got {config.size!r}; "
                                   f"pass e.g. --size {SIZE}")
    for path in contents + styles:  # decodable now, at a small size: a bad file fails before the model trains
        read_image(path, channels=3, size=min(config.size or 64, 64))
    weights = list(dict.fromkeys(float(w) for w in config.style_weights))
    if not weights:
        raise InvalidArgumentError("no style weight given; pass --style-weight, e.g. 100")
    for weight in weights:
        if not math.isfinite(weight) or weight < 0:
            raise InvalidArgumentError(f"style weight must be a finite number >= 0, got {weight}; pass e.g. 100")
        check_settings(steps=config.steps, content_weight=config.content_weight, style_weight=weight,
                       tv_weight=config.tv_weight, optimizer=config.optimizer, init=config.init, lr=config.lr)
    check_model_spec(config.model)
    if is_library_spec(config.model):
        parse_library_spec(config.model)  # unknown options fail now
    elif config.dataset is not None:
        get_spec(config.dataset)  # an unknown data set fails now
    select_device(config.device)
    return StyleStudy(config, contents, styles, weights)
