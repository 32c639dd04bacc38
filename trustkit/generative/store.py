"""Generative checkpoints in trustkit's store: one safetensors file (metadata in its header), entries ``gen-<model>-<data>``.

A spec given to the CLI or :func:`resolve_generator` is a registered model name (its store entry for the data
set), a store entry (``gen-dcgan-mnist``) or a ``.safetensors`` path. Nothing is ever unpickled.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trustkit.data import get_spec
from trustkit.errors import CheckpointError, ShapeMismatchError, UnknownNameError
from trustkit.generative import GENERATIVE_MODELS, GenerativeModel, build_generative
from trustkit.models.store import checkpoint_exists, read_checkpoint, save_checkpoint, store_dir, store_path
from trustkit.runtime import prepare_model, select_device

KIND = "generative"


def store_name(arch: str, dataset: str) -> str:
    """Store entry of a generative model: ``gen-dcgan-mnist``."""
    return f"gen-{GENERATIVE_MODELS.canonical(arch)}-{get_spec(dataset).name}"


@dataclass
class LoadedGenerator:
    """A generative model rebuilt from a checkpoint, with where it came from and its metadata."""

    model: GenerativeModel
    name: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return self.metadata["arch"]

    @property
    def dataset(self) -> str:
        return self.metadata["dataset"]


def save_generator(model: GenerativeModel, metadata: dict[str, Any], path: str | os.PathLike) -> Path:
    """Save weights and metadata (with ``kind: generative``) atomically, in one safetensors file."""
    return save_checkpoint(model, {"kind": KIND, **metadata}, path)


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Rebuild a generative model from ``path`` (.safetensors or its .json); eval mode, on ``device``."""
    path = Path(path).expanduser()
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    weights, meta = read_checkpoint(path)  # one open: weights and metadata of the same version
    if meta.get("kind") != KIND:
        raise CheckpointError(f"checkpoint {path} is not a generative model (it is a classifier checkpoint); "
                              "train one with 'trustkit gen train'")
    try:
        spec = get_spec(meta["dataset"])
        arch = GENERATIVE_MODELS.canonical(meta["arch"])
    except (KeyError, UnknownNameError) as exc:
        raise CheckpointError(f"checkpoint {path} names an unknown generative model or data set ({exc}); "
                              "upgrade trustkit or retrain it with 'trustkit gen train'") from None
    model = build_generative(arch, spec, **meta.get("options", {}))
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"checkpoint {path} does not match generative model '{arch}' ({first}); "
                              "retrain it with 'trustkit gen train'") from None
    model = prepare_model(model, select_device(device)).eval()
    return LoadedGenerator(model, path.stem, str(path), meta)


def resolve_generator(spec: str, dataset: str | None = None, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Load the generative model named by ``spec`` (see module doc); ``dataset`` picks the store entry for a
    model name (default digits) and must match a checkpoint's data set when both are given."""
    if spec.endswith((".safetensors", ".json")) or "/" in spec or os.sep in spec:
        loaded = load_generator(spec, device)
    elif spec in GENERATIVE_MODELS:
        name = store_name(spec, dataset or "digits")
        if not checkpoint_exists(store_path(name)):
            data = get_spec(dataset or "digits").name
            raise CheckpointError(f"no trained '{GENERATIVE_MODELS.canonical(spec)}' for {data} in {store_dir()}; "
                                  f"run 'trustkit gen train --model {GENERATIVE_MODELS.canonical(spec)} "
                                  f"--dataset {data}'")
        loaded = load_generator(store_path(name), device)
    elif checkpoint_exists(store_path(spec)):
        loaded = load_generator(store_path(spec), device)
    else:
        try:
            GENERATIVE_MODELS.canonical(spec)
        except UnknownNameError as exc:
            raise UnknownNameError(f"{exc}; or give a store entry such as gen-dcgan-mnist or a .safetensors "
                                   "checkpoint") from None
        raise AssertionError("unreachable")  # canonical() either raised or spec was in the registry
    if dataset is not None and get_spec(dataset).name != loaded.dataset:
        raise ShapeMismatchError(f"generative model '{loaded.name}' was trained on {loaded.dataset}, not "
                                 f"{get_spec(dataset).name}; use --dataset {loaded.dataset} or train one on "
                                 f"{get_spec(dataset).name}")
    return loaded
