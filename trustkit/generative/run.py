"""``trustkit gen train`` and ``gen eval`` as functions: train/load, measure, and write ``<out>/<run-id>/``.

A run folder holds ``report.html`` (self-contained), ``results.csv`` (one row per metric), ``history.csv``
(losses per epoch) and ``run.json`` (configuration, seed, versions, device, timings). It is built in a
temporary folder and renamed into place only when complete.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from trustkit.data import get_spec, load_dataset
from trustkit.generative import GENERATIVE_MODELS, GenerativeModel, build_generative
from trustkit.generative.evaluate import GenEvalConfig, evaluate_generator
from trustkit.generative.store import LoadedGenerator, resolve_generator, save_generator, store_name
from trustkit.generative.train import GenHistory, GenTrainConfig, default_config, fit_generative
from trustkit.models.store import checkpoint_exists, entry_lock, store_path
from trustkit.runtime import log, prepare_model, seed_everything, select_device

REPORT_SAMPLES = 64  # images in the report's final sample grid (conditional: rounded to whole rows per class)
INTERPOLATION_PAIRS, INTERPOLATION_STEPS = 6, 10


@dataclass
class TrainedGenerator:
    """A freshly trained generative model, its checkpoint path, metadata and history (with epoch grids)."""

    model: GenerativeModel
    path: Path
    metadata: dict[str, Any]
    history: GenHistory


@dataclass
class GenRunResult:
    """What ``gen train``/``gen eval`` produced: the report folder, checkpoint, metric rows and history."""

    run_dir: Path
    checkpoint: Path
    metrics: pd.DataFrame
    history: list[dict[str, float]] = field(default_factory=list)
    run_info: dict[str, Any] = field(default_factory=dict)

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"


def parameter_counts(model: GenerativeModel) -> dict[str, str]:
    """Parameter counts by part: generator/discriminator for GANs, encoder/decoder for autoencoders."""
    parts = {name: child for name, child in model.named_children()}
    counts = {name: f"{sum(p.numel() for p in part.parameters()):,}" for name, part in parts.items()}
    counts["total"] = f"{sum(p.numel() for p in model.parameters()):,}"
    return counts


def train_generator(arch: str, dataset: str = "digits", *, config: GenTrainConfig | None = None,
                    options: dict[str, Any] | None = None, seed: int = 0, device: str | torch.device = "auto",
                    data_root: str | os.PathLike | None = None, download: bool = False,
                    checkpoint: str | os.PathLike | None = None, **overrides: Any) -> TrainedGenerator:
    """Train generative model ``arch`` on ``dataset`` and save it (default: store entry ``gen-<arch>-<data>``).

    ``options`` go to the model (latent_dim, width, beta ...; None keeps defaults); ``overrides`` (epochs,
    batch_size, lr ...) replace fields of the family's default :class:`GenTrainConfig`.
    """
    arch = GENERATIVE_MODELS.canonical(arch)
    spec = get_spec(dataset)
    torch_device = select_device(device)
    seed_everything(seed)
    model = build_generative(arch, spec, **(options or {}))
    config = (config or default_config(model.kind, spec.name, getattr(model, "critic_steps", 1)))
    config = config.with_overrides(**overrides).validate()
    train_set = load_dataset(spec.name, "train", data_root, download)
    test_set = load_dataset(spec.name, "test", data_root)
    model = prepare_model(model, torch_device)
    history = fit_generative(model, train_set, config, device=torch_device, seed=seed, test_set=test_set,
                             description=f"gen train {arch} on {spec.name}")
    resolved = {**config.to_dict(), "lr": config.lr or model.default_lr,
                "betas": list(config.betas or model.default_betas), "critic_steps": getattr(model, "critic_steps", 1)}
    metadata = {
        "arch": arch, "family": model.kind, "conditional": model.conditional, "dataset": spec.name,
        "input_shape": list(spec.shape), "num_classes": spec.num_classes, "class_names": list(spec.class_names),
        "latent_dim": model.latent_dim, "options": model.options, "recipe": resolved, "seed": seed,
        "metrics": {"train_seconds": round(history.seconds, 2), "device": str(torch_device)},
        "history": history.epochs,
    }
    path = Path(checkpoint) if checkpoint else store_path(store_name(arch, spec.name))
    path = save_generator(model, metadata, path)
    log(f"trained {arch} on {spec.name}: {len(history.epochs)} epochs in {history.seconds:.1f} s -> {path}")
    return TrainedGenerator(model.eval(), path, metadata, history)


def ensure_generator(arch: str, dataset: str, *, data_root: str | os.PathLike | None = None,
                     device: str | torch.device = "auto", download: bool = False) -> None:
    """Train generative model ``arch`` on ``dataset`` with its defaults (store entry ``gen-<arch>-<data>``) if
    the store has none; otherwise do nothing. One process trains: others wait on the entry's lock."""
    arch = GENERATIVE_MODELS.canonical(arch)
    name = store_name(arch, get_spec(dataset).name)
    path = store_path(name)
    if checkpoint_exists(path):
        return
    with entry_lock(path, waiting=f"another trustkit process is training {name}; waiting for it"):
        if not checkpoint_exists(path):
            log(f"no trained {arch} for {get_spec(dataset).name}: training it now (stored as {name})")
            train_generator(arch, dataset, data_root=data_root, device=device, download=download)


def report_samples(model: GenerativeModel, seed: int) -> tuple[torch.Tensor, int]:
    """The report's sample grid and its column count: 8×8 samples, or one row per class (conditional)."""
    generator = torch.Generator().manual_seed(seed)
    if not model.conditional:
        return model.sample(REPORT_SAMPLES, generator=generator), 8
    per_class = max(1, min(12, REPORT_SAMPLES // model.num_classes))
    labels = torch.arange(model.num_classes).repeat_interleave(per_class)
    return model.sample(len(labels), labels, generator=generator), per_class


def _reconstructions(model: GenerativeModel, dataset: str, data_root: str | os.PathLike | None,
                     count: int = 16) -> torch.Tensor | None:
    """Pairs of rows (test images, reconstructions) for models with an encoder; None otherwise."""
    if not model.has_encoder:
        return None
    x, y = load_dataset(dataset, "test", data_root).tensors(torch.arange(count))
    labels = y.to(model.device) if model.conditional else None
    model.eval()
    with torch.no_grad():
        rebuilt = model.decode(model.encode(x.to(model.device), labels), labels).cpu()
    return torch.stack([x, rebuilt]).view(2, count, *x.shape[1:])


def train_and_evaluate(arch: str, dataset: str = "digits", *, config: GenTrainConfig | None = None,
                  options: dict[str, Any] | None = None, seed: int = 0, device: str = "auto",
                  data_root: str | os.PathLike | None = None, download: bool = False,
                  checkpoint: str | os.PathLike | None = None, evaluate: bool = True,
                  eval_config: GenEvalConfig | None = None, out: str | os.PathLike = "reports",
                  **overrides: Any) -> dict[str, Any]:
    """Train, save and (optionally) evaluate; returns what :func:`trustkit.report.generative.write_run` writes
    (``trustkit.engine.run_gen_train`` does both). Cheap checks run first."""
    started = time.perf_counter()
    arch = GENERATIVE_MODELS.canonical(arch)
    spec = get_spec(dataset)
    torch_device = select_device(device)
    eval_config = (eval_config or GenEvalConfig(seed=seed)).validate()
    trained = train_generator(arch, spec.name, config=config, options=options, seed=seed, device=torch_device,
                              data_root=data_root, download=download, checkpoint=checkpoint, **overrides)
    timings = {"train": trained.history.seconds,
               "seconds_per_epoch": trained.history.seconds / max(1, len(trained.history.epochs))}
    evaluation = None
    if evaluate:
        evaluation = evaluate_generator(trained.model, spec.name, config=eval_config, data_root=data_root,
                                        device=torch_device)
        timings["evaluate"] = evaluation.seconds
    timings["total"] = time.perf_counter() - started
    config_dict = {"arch": arch, "train": trained.metadata["recipe"], "options": trained.model.options,
                   "evaluate": eval_config.to_dict() if evaluate else None, "data_root": str(data_root or "")}
    return dict(out=out, kind="gen-train", model=trained.model, metadata=trained.metadata, checkpoint=trained.path,
                evaluation=evaluation, history=trained.history, config=config_dict, timings=timings,
                device=torch_device, data_root=data_root, seed=seed)


def evaluate_stored(spec: str, dataset: str | None = None, *, eval_config: GenEvalConfig | None = None,
                 seed: int = 0, device: str = "auto", data_root: str | os.PathLike | None = None,
                 out: str | os.PathLike = "reports") -> dict[str, Any]:
    """Load a trained generative model and measure it; returns what :func:`trustkit.report.generative.write_run`
    writes (``trustkit.engine.run_gen_eval`` does both; loss curves come from the checkpoint's stored history,
    per-epoch grids exist only in training reports)."""
    started = time.perf_counter()
    torch_device = select_device(device)
    eval_config = (eval_config or GenEvalConfig(seed=seed)).validate()
    loaded: LoadedGenerator = resolve_generator(spec, dataset, torch_device)
    evaluation = evaluate_generator(loaded.model, loaded.dataset, config=eval_config, data_root=data_root,
                                    device=torch_device)
    timings = {"evaluate": evaluation.seconds, "total": time.perf_counter() - started}
    config_dict = {"arch": loaded.arch, "model_spec": spec, "evaluate": eval_config.to_dict(),
                   "data_root": str(data_root or "")}
    return dict(out=out, kind="gen-eval", model=loaded.model, metadata=loaded.metadata,
                checkpoint=Path(loaded.source), evaluation=evaluation, history=None, config=config_dict,
                timings=timings, device=torch_device, data_root=data_root, seed=seed)


@dataclass
class ArithmeticResult:
    """Images of z + α·v (rows: start points, columns: α), the originals for encoder models, and notes."""

    images: torch.Tensor
    originals: torch.Tensor | None
    alphas: list[float]
    info: dict[str, Any]


def attribute_arithmetic(loaded: LoadedGenerator, attribute_text: str, alphas: list[float], *, rows: int = 6,
                         seed: int = 0, data_root: str | os.PathLike | None = None, classifier: str = "cnn",
                         samples: int = 2000) -> ArithmeticResult:
    """Latent arithmetic z' = z + α·v for an attribute such as ``gender=female`` (see :mod:`latent`).

    Models with an encoder take v from the labelled training split and start from test images without
    the attribute; GANs take v from ``samples`` of their own, labelled by zoo classifier ``classifier``,
    and start from generated latents without it (class attributes only).
    """
    from trustkit.errors import InvalidArgumentError
    from trustkit.generative.latent import (attribute_values, attribute_vector, class_vector_from_samples,
                                            latent_arithmetic, parse_attribute)
    from trustkit.models.inference import predict_logits
    from trustkit.models.loading import resolve_model
    from trustkit.train.zoo import ensure_trained

    if rows < 1:
        raise InvalidArgumentError(f"--rows must be at least 1, got {rows}")
    model, dataset = loaded.model, loaded.dataset
    test_set = load_dataset(dataset, "test", data_root)
    attribute = parse_attribute(attribute_text, test_set)
    if model.has_encoder:
        train_set = load_dataset(dataset, "train", data_root)
        mask = attribute.mask(attribute_values(attribute, train_set))
        if not mask.any() or mask.all():
            raise InvalidArgumentError(f"{'no' if not mask.any() else 'every'} training image has attribute "
                                       f"'{attribute.text}'; pick a value that splits the data")
        x_train, y_train = train_set.tensors()
        vector = attribute_vector(model, x_train, mask, y_train if model.conditional else None)
        negatives = (~attribute.mask(attribute_values(attribute, test_set))).nonzero().squeeze(1)[:rows]
        x_start, y_start = test_set.tensors(negatives)
        labels = y_start.to(model.device) if model.conditional else None
        with torch.no_grad():
            z = model.encode(x_start.to(model.device), labels).cpu()
        source, originals = f"{int(mask.sum())} of {len(mask)} {dataset} training images have it", x_start
    else:
        if not attribute.is_class:
            raise InvalidArgumentError(f"{type(model).__name__} has no encoder, so only class attributes work "
                                       f"(e.g. class=1); use a VAE or autoencoder for '{attribute.text}'")
        ensure_trained(classifier, dataset, device=model.device, data_root=data_root)
        net = resolve_model(classifier, dataset, data_root=data_root, device=model.device).module
        vector, negatives_z, negative_labels = class_vector_from_samples(
            model, lambda images: predict_logits(net, images).argmax(1), attribute, n=samples, seed=seed)
        z, originals = negatives_z[:rows], None
        labels = None if negative_labels is None else negative_labels[:rows]
        source = f"{samples} generated samples labelled by {classifier}"
    images = latent_arithmetic(model, z, vector, alphas, labels)
    info = {"attribute": attribute.text, "vector_norm": float(vector.norm()), "source": source,
            "rows": len(z), "alphas": alphas}
    return ArithmeticResult(images, originals, alphas, info)
