"""Checkpoints: weights in safetensors plus a JSON of metadata. Loading never unpickles anything.

A checkpoint ``NAME.safetensors`` has its metadata beside it in ``NAME.json`` (architecture, data set,
input shape, normalisation, training recipe, seed, metrics). Both are written atomically, the JSON last,
so a checkpoint whose JSON exists is complete. The store keeps zoo checkpoints under
``$TRUSTKIT_HOME/checkpoints``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trustkit._version import __version__
from trustkit.atomic import atomic_path, write_json
from trustkit.errors import CheckpointError
from trustkit.paths import home

FORMAT = "trustkit-checkpoint"
FORMAT_VERSION = 1


def store_dir() -> Path:
    """Folder of the checkpoint store: ``$TRUSTKIT_HOME/checkpoints``."""
    return home() / "checkpoints"


def store_path(name: str) -> Path:
    """Weights path of the store entry ``name`` (e.g. ``cnn-digits``)."""
    return store_dir() / f"{name}.safetensors"


def metadata_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def save_checkpoint(model: nn.Module, metadata: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``model``'s state dict to ``path`` (.safetensors) and ``metadata`` to the sibling .json."""
    return save_tensors(model.state_dict(), metadata, path)


def save_tensors(tensors: dict[str, torch.Tensor], metadata: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write named tensors to ``path`` (.safetensors) and ``metadata`` to the sibling .json, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "trustkit_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **metadata}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    write_json(metadata_path(path), meta)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of checkpoint ``path``; CheckpointError if it is missing or unreadable."""
    path = Path(path)
    meta_file = metadata_path(path)
    if not meta_file.is_file():
        raise CheckpointError(f"checkpoint {path} has no metadata file {meta_file.name} beside it; "
                              "copy it along or re-save the model with trustkit")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint metadata {meta_file} is corrupt ({exc}); delete it and retrain "
                              "with 'trustkit train'") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_file} is not trustkit checkpoint metadata; save models with trustkit "
                              "or load them as TorchScript / package.module:factory")
    return meta


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file (no pickle involved); CheckpointError if missing or corrupt."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; check the path or train it with 'trustkit train'")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated/garbled files
        raise CheckpointError(f"checkpoint {path} is corrupt ({type(exc).__name__}: {exc}); delete it and "
                              "retrain with 'trustkit train'") from None
