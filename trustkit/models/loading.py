"""Resolve a model spec to an eval-mode ``nn.Module`` on [0, 1] inputs.

A spec is one of: a zoo name (``cnn``; trained and cached on first use), a store entry
(``cnn-mnist``), a trustkit checkpoint (``*.safetensors`` + ``*.json``), a TorchScript file, or
``package.module:factory`` (a callable returning an ``nn.Module``). Pickled files are refused.
"""
from __future__ import annotations

import importlib
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trustkit.data import DatasetSpec, get_spec
from trustkit.errors import CheckpointError, ShapeMismatchError, UnknownNameError
from trustkit.models import MODELS, build_model
from trustkit.models.store import read_metadata, read_weights, store_dir, store_path
from trustkit.runtime import select_device

FACTORY_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
PICKLE_REFUSAL = ("is a pickled PyTorch file (torch.save); trustkit never unpickles files because that can run "
                  "arbitrary code. Export it as TorchScript (torch.jit.script/trace(model).save(path)), save its "
                  "state dict as safetensors via trustkit.models.store.save_checkpoint, or pass package.module:factory")


@dataclass
class LoadedModel:
    """A resolved model: the module, a short display name, where it came from and its metadata."""

    module: nn.Module
    name: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a zoo model from a trustkit checkpoint; returns ``(eval-mode model, metadata)``."""
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    weights = read_weights(path)
    meta = read_metadata(path)
    try:
        spec = get_spec(meta["dataset"])
        arch = MODELS.canonical(meta["arch"])
    except (KeyError, UnknownNameError) as exc:
        raise CheckpointError(f"checkpoint {path} names an unknown architecture or data set ({exc}); "
                              "upgrade trustkit or retrain the model") from None
    model = build_model(arch, spec)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"checkpoint {path} does not match architecture '{arch}' ({first}); "
                              "retrain it with 'trustkit train'") from None
    return model.to(select_device(device)).eval(), meta


def _sniff(path: Path) -> str:
    """'torchscript', 'pickle' or 'unknown' from the file's bytes (never by unpickling it)."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return "unknown"
        # TorchScript archives carry compiled code next to the tensor data; torch.save archives only data.pkl.
        if any("/code/" in n for n in names) or any(n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "pickle"
        return "unknown"
    if head[:1] == b"\x80":  # pickle protocol marker (legacy torch.save format)
        return "pickle"
    return "unknown"


def _load_file(path: Path, device: torch.device) -> LoadedModel:
    if not path.is_file():
        raise CheckpointError(f"model file {path} not found; check the path")
    if path.suffix in (".safetensors", ".json"):
        module, meta = load_checkpoint(path, device)
        return LoadedModel(module, path.stem, str(path), meta)
    kind = _sniff(path)
    if kind == "pickle":
        raise CheckpointError(f"{path} {PICKLE_REFUSAL}")
    if kind != "torchscript":
        raise CheckpointError(f"{path} is neither a trustkit checkpoint (.safetensors + .json) nor a TorchScript "
                              "file; save the model in one of those formats")
    try:
        module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # torch.jit raises RuntimeError subclasses with long C++ traces
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"TorchScript file {path} could not be loaded ({first}); re-export it") from None
    return LoadedModel(module.eval(), path.stem, str(path), {"format": "torchscript"})


def _load_factory(spec: str, device: torch.device) -> LoadedModel:
    module_name, attr = spec.split(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise CheckpointError(f"cannot import '{spec}' ({exc}); make sure the package is importable "
                              "(installed or on PYTHONPATH)") from None
    model = factory()
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"'{spec}' returned {type(model).__name__}, not a torch.nn.Module; "
                              "the factory must return the model")
    return LoadedModel(model.to(device).eval(), attr, spec, {"format": "factory"})


def check_input_shape(loaded: LoadedModel, spec: DatasetSpec, device: torch.device) -> None:
    """Refuse, in one line, a model that does not take ``spec``'s images or returns the wrong logits."""
    trained_on = loaded.metadata.get("input_shape")
    if trained_on is not None and tuple(trained_on) != spec.shape:
        raise ShapeMismatchError(
            f"model '{loaded.name}' takes {'×'.join(map(str, trained_on))} images (trained on "
            f"{loaded.metadata.get('dataset')}) but {spec.name} images are {'×'.join(map(str, spec.shape))}; "
            f"use --dataset {loaded.metadata.get('dataset')} or a model trained on {spec.name}")
    probe = torch.rand(2, *spec.shape, device=device)
    try:
        with torch.no_grad():
            out = loaded.module(probe)
    except Exception as exc:  # any failure of a foreign model on our shape is the user's shape problem
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ShapeMismatchError(f"model '{loaded.name}' rejects {spec.name} images of shape "
                                 f"{'×'.join(map(str, spec.shape))} ({first}); pick the data set it was built for") from None
    if not isinstance(out, torch.Tensor) or out.shape != (2, spec.num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ShapeMismatchError(f"model '{loaded.name}' returns {got} for a batch of 2 {spec.name} images, "
                                 f"expected logits of shape (2, {spec.num_classes}); pick the matching data set")


def resolve_model(spec: str | nn.Module, dataset: str = "digits", *, data_root: str | os.PathLike | None = None,
                  device: str | torch.device = "auto", train_if_missing: bool = True,
                  download: bool = False) -> LoadedModel:
    """Resolve ``spec`` (see module doc) for ``dataset``; trains and caches zoo models that are missing."""
    data_spec = get_spec(dataset)
    torch_device = select_device(device)
    if isinstance(spec, nn.Module):
        loaded = LoadedModel(spec.to(torch_device).eval(), type(spec).__name__, "python object")
    elif os.path.exists(spec) or spec.endswith((".safetensors", ".json", ".pt", ".pth", ".ts", ".zip")) or "/" in spec:
        loaded = _load_file(Path(spec).expanduser(), torch_device)
    elif spec in MODELS:
        arch = MODELS.canonical(spec)
        from trustkit.train import store_name, train_model  # late import: train depends on models

        path = store_path(store_name(arch, data_spec.name))
        if not path.with_suffix(".json").is_file():
            if not train_if_missing:
                raise CheckpointError(f"no trained '{arch}' for {data_spec.name} in {store_dir()}; run "
                                      f"'trustkit train --model {arch} --dataset {data_spec.name}'")
            train_model(arch, data_spec.name, device=str(torch_device), data_root=data_root, download=download,
                        announce=f"no cached {arch} for {data_spec.name}: training it now (cached in {store_dir()})")
        module, meta = load_checkpoint(path, torch_device)
        loaded = LoadedModel(module, arch, str(path), meta)
    elif store_path(spec).with_suffix(".json").is_file():
        module, meta = load_checkpoint(store_path(spec), torch_device)
        loaded = LoadedModel(module, spec, str(store_path(spec)), meta)
    elif FACTORY_PATTERN.match(spec):
        loaded = _load_factory(spec, torch_device)
    else:
        try:
            MODELS.canonical(spec)
        except UnknownNameError as exc:  # add the non-zoo forms a spec may take
            raise UnknownNameError(f"{exc}; or give a trained store entry, a .safetensors / TorchScript file, "
                                   "or package.module:factory") from None
    check_input_shape(loaded, data_spec, torch_device)
    return loaded


def load_model(spec: str | nn.Module, dataset: str = "digits", data_root: str | os.PathLike | None = None,
               device: str | torch.device = "auto") -> nn.Module:
    """An eval-mode ``nn.Module`` on [0, 1] inputs for ``spec`` (zoo name, checkpoint, TorchScript, factory)."""
    return resolve_model(spec, dataset, data_root=data_root, device=device).module
