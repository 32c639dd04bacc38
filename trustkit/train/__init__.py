"""Train zoo classifiers and store them as checkpoints."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from trustkit.data import get_spec, load_dataset
from trustkit.models import MODELS, build_model
from trustkit.models.store import save_checkpoint, store_path
from trustkit.runtime import log, prepare_model, seed_everything, select_device
from trustkit.train.config import TrainConfig, default_config
from trustkit.train.fit import TrainHistory, fit

__all__ = ["TrainConfig", "TrainedModel", "default_config", "fit", "store_name", "train_model"]


@dataclass
class TrainedModel:
    """A freshly trained model, where it was saved, its metadata and per-epoch history."""

    model: nn.Module
    path: Path
    metadata: dict[str, Any]
    history: TrainHistory


def store_name(arch: str, dataset: str, recipe: str = "clean") -> str:
    """Store entry of a zoo model: ``cnn-digits``, or ``cnn-mnist-<recipe>`` for other recipes."""
    base = f"{MODELS.canonical(arch)}-{get_spec(dataset).name}"
    return base if recipe == "clean" else f"{base}-{recipe}"


def train_model(arch: str, dataset: str = "digits", *, config: TrainConfig | None = None, seed: int = 0,
                device: str = "auto", data_root: str | os.PathLike | None = None,
                out: str | os.PathLike | None = None, announce: str | None = None, download: bool = False,
                **overrides: Any) -> TrainedModel:
    """Train zoo model ``arch`` on ``dataset`` and save it (default: the store entry ``bench`` uses).

    ``overrides`` (epochs, batch_size, lr, ...) replace fields of the default :class:`TrainConfig`;
    ``announce`` is logged once the data has loaded (so a missing data set fails with one clean line).
    """
    arch = MODELS.canonical(arch)
    spec = get_spec(dataset)
    config = (config or default_config(arch, spec.name)).with_overrides(**overrides)
    torch_device = select_device(device)
    train_set = load_dataset(spec.name, "train", data_root, download)
    test_set = load_dataset(spec.name, "test", data_root)
    if announce:
        log(announce)
    seed_everything(seed)
    model = prepare_model(build_model(arch, spec), torch_device)
    history = fit(model, train_set, config, device=torch_device, seed=seed, test_set=test_set,
                  augment=spec.augment, description=f"train {arch} on {spec.name}")
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
                    "device": str(torch_device)},
        "history": history.epochs,
    }
    path = Path(out) if out else store_path(store_name(arch, spec.name, config.recipe))
    path = save_checkpoint(model, metadata, path)
    log(f"trained {arch} on {spec.name}: test accuracy {history.final_accuracy:.2%} "
        f"in {history.seconds:.1f} s -> {path}")
    return TrainedModel(model.eval(), path, metadata, history)
