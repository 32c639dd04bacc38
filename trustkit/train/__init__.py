"""Train zoo classifiers — clean or adversarially — and store them as checkpoints."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from trustkit.attacks import format_eps
from trustkit.data import get_spec, load_dataset
from trustkit.models import MODELS, build_model
from trustkit.models.store import save_checkpoint, store_path
from trustkit.models.store import store_name as zoo_store_name
from trustkit.runtime import log, prepare_model, seed_everything, select_device
from trustkit.train import adversarial  # noqa: F401 - registers the adversarial recipes
from trustkit.train.config import TrainConfig
from trustkit.train.defaults import default_config
from trustkit.train.distributed import Distributed
from trustkit.train.fit import TrainHistory, fit
from trustkit.train.recipes import RECIPES

__all__ = ["RECIPES", "TrainConfig", "TrainedModel", "adversarial_entry", "default_config", "fit", "gaussian_entry",
           "store_name", "train_model"]


@dataclass
class TrainedModel:
    """A freshly trained model, where it was saved, its metadata and per-epoch history."""

    model: nn.Module
    path: Path | None
    metadata: dict[str, Any]
    history: TrainHistory


def store_name(arch: str, dataset: str, recipe: str = "clean", eps: float = 0.0, sigma: float = 0.0) -> str:
    """Store entry of a zoo model: ``cnn-digits``; adversarially trained ``cnn-mnist-fgsm-rs-eps0.3``; trained
    with Gaussian noise for randomized smoothing ``cnn-mnist-gaussian-sigma0.25``.

    The clean name is :func:`trustkit.models.store.store_name` (the models layer resolves zoo names without
    importing train); this adds the recipe and ε (a float in [0, 1] pixel units) suffix of the adversarial
    recipes, or the noise level σ (pixel units) of the gaussian recipe.
    """
    base = zoo_store_name(arch, dataset)
    if recipe == "clean":
        return base
    if RECIPES.canonical(recipe) == "gaussian":
        return f"{base}-gaussian-sigma{format_sigma(sigma)}"
    return f"{base}-{RECIPES.canonical(recipe)}-eps{format_eps(eps).replace('/', '-')}"


def format_sigma(sigma: float) -> str:
    """A noise level as store names write it: ``0.25``, ``1`` (up to 6 significant digits)."""
    return f"{sigma:.6g}"


def gaussian_entry(spec: str, dataset: str) -> tuple[str, float] | None:
    """``(arch, sigma)`` when ``spec`` is the store entry ``trustkit train --model ARCH --dataset DATASET --noise
    SIGMA`` writes (``cnn-mnist-gaussian-sigma0.25``), else None: the inverse of :func:`store_name` for the
    gaussian recipe."""
    head, marker, sigma_text = spec.rpartition("-gaussian-sigma")
    if not marker or not head:
        return None
    try:
        sigma = float(sigma_text)
    except ValueError:
        return None
    if not (math.isfinite(sigma) and sigma > 0):
        return None
    for arch in MODELS.names():
        if store_name(arch, dataset, "gaussian", sigma=sigma) == spec:
            return arch, sigma
    return None


def adversarial_entry(spec: str, dataset: str) -> tuple[str, str, float] | None:
    """``(arch, recipe, eps)`` when ``spec`` is the store entry that ``trustkit train --model ARCH --dataset
    DATASET --adv RECIPE --eps EPS`` writes (``cnn-digits-pgd-eps0.2``, ``resnet-cifar10-trades-eps8-255``),
    else None: the inverse of :func:`store_name`."""
    from trustkit.attacks import parse_eps
    from trustkit.errors import TrustkitError

    head, marker, eps_text = spec.rpartition("-eps")
    if not marker or not eps_text:
        return None
    try:
        eps = parse_eps(eps_text.replace("-", "/"))
    except TrustkitError:
        return None
    for arch in MODELS.names():
        for recipe in RECIPES.names():
            if recipe not in ("clean", "gaussian") and store_name(arch, dataset, recipe, eps) == spec:
                return arch, recipe, eps
    return None


def train_model(arch: str, dataset: str = "digits", *, config: TrainConfig | None = None, seed: int = 0,
                device: str = "auto", data_root: str | os.PathLike | None = None,
                out: str | os.PathLike | None = None, announce: str | None = None, download: bool = False,
                recipe: str = "clean", **overrides: Any) -> TrainedModel:
    """Train zoo model ``arch`` on ``dataset`` and save it (default: the store entry ``bench`` uses).

    ``recipe`` picks the training loss ("clean", "fast" (PGD-3 with eps warm-up), "fgsm-rs", "n-fgsm", "pgd",
    "trades", or "gaussian" with ``sigma``: Gaussian-noise training for randomized smoothing); ``overrides`` (epochs, batch_size, lr, eps,
    alpha, sigma, ...) replace fields of the default :class:`TrainConfig`. ``announce`` is
    logged once the data has loaded (so a missing data set fails with one clean line). Under torchrun the
    processes share the work and rank 0 saves.
    """
    arch = MODELS.canonical(arch)
    spec = get_spec(dataset)
    recipe = RECIPES.canonical(recipe)
    config = (config or default_config(arch, spec.name, recipe)).with_overrides(**overrides)
    RECIPES.get(config.recipe)(config)  # validates eps/alpha/steps before any data is loaded
    distributed = Distributed.from_environment()
    torch_device = distributed.device(select_device(device))
    train_set = load_dataset(spec.name, "train", data_root, download)
    test_set = load_dataset(spec.name, "test", data_root)
    if announce and distributed.is_main:
        log(announce)
    seed_everything(seed)
    model = prepare_model(build_model(arch, spec), torch_device)
    history = fit(model, train_set, config, device=torch_device, seed=seed, test_set=test_set,
                  augment=spec.augment, description=f"train {arch} ({config.recipe}) on {spec.name}",
                  distributed=distributed)
    metadata = {
        "arch": arch,
        "dataset": spec.name,
        "input_shape": list(spec.shape),
        "num_classes": spec.num_classes,
        "class_names": list(spec.class_names),
        "normalization": {"mean": list(spec.mean), "std": list(spec.std)},
        "recipe": config.to_dict(),
        "seed": seed,
        "metrics": {"clean_accuracy": history.final_accuracy, "train_seconds": round(history.seconds, 2),
                    "device": str(torch_device), "processes": distributed.world_size,
                    "best_epoch": history.best_epoch, "catastrophic_overfitting_at": history.collapsed_at,
                    "best_val_pgd_accuracy": history.best_val_pgd_accuracy,
                    "best_val_square_accuracy": history.best_val_square_accuracy,
                    "best_val_robust_accuracy": history.best_val_robust_accuracy,
                    "masking_suspected": history.kept_masking, "masking_epochs": history.masking_epochs,
                    "never_robust": history.never_robust},
        "history": history.epochs,
    }
    path = None
    if distributed.is_main:
        path = Path(out) if out else store_path(store_name(arch, spec.name, config.recipe, config.eps, config.sigma))
        path = save_checkpoint(model, metadata, path)
        kept = (f", kept epoch {history.best_epoch} (best validation robust accuracy, worst of PGD-10 and Square)"
                if history.best_epoch else "")
        log(f"trained {arch} ({config.recipe}) on {spec.name}: test accuracy {history.final_accuracy:.2%} "
            f"in {history.seconds:.1f} s{kept} -> {path}")
    distributed.barrier()
    distributed.close()
    return TrainedModel(model.eval(), path, metadata, history)
