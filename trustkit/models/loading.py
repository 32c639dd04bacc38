"""Resolve a model spec to an eval-mode ``nn.Module`` on [0, 1] inputs.

A spec is one of: a zoo name (``cnn``; its store checkpoint, trained beforehand by ``trustkit train`` or
``trustkit.train.zoo.ensure_trained``: this layer never trains), a store entry
(``cnn-mnist``), a trustkit checkpoint (one ``*.safetensors`` file: weights + metadata naming a zoo
architecture), a TorchScript file, or ``package.module:factory`` (a callable returning an ``nn.Module``).

Data versus programs: a trustkit checkpoint is data (tensors and JSON) and is always safe to load. A TorchScript
file and a factory are programs: loading one runs its author's code (PyTorch's SECURITY.md: "Pytorch models are
programs ... running untrusted models is equivalent to running untrusted code"), so they load only with the caller's explicit consent, ``trust_code=True`` (the CLI's
``--trust-code``), as Hugging Face's ``trust_remote_code``. Without it they are refused before any of their code
is read, imported or run. Pickled files (``torch.save``) are refused always.
"""
from __future__ import annotations

import copy
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
from trustkit.models.library import is_library_spec, load_library_model
from trustkit.models.store import checkpoint_exists, read_checkpoint, store_dir, store_name, store_path
from trustkit.runtime import select_device

FACTORY_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
SAFE_ROUTE = ("the safe route is a trustkit checkpoint: safetensors weights + a named zoo architecture "
              "(trustkit.models.store.save_checkpoint; see docs/models.md)")
PICKLE_REFUSAL = ("is a pickled PyTorch file (torch.save); trustkit never unpickles files because unpickling runs "
                  f"arbitrary code; {SAFE_ROUTE}")
TRUST_CODE_HINT = "pass --trust-code (trust_code=True in Python) only if you trust its author and its code"


def torchscript_refusal(path: os.PathLike | str, what: str = "a TorchScript file") -> str:
    """The one-line refusal of a TorchScript file (or ``what`` else is a program) loaded without consent."""
    return (f"{path} is {what}: a program, and loading it runs its code (PyTorch's SECURITY.md: "
            f"running an untrusted model is running untrusted code), so trustkit did not load it; {TRUST_CODE_HINT}; {SAFE_ROUTE}")


def factory_refusal(spec: str) -> str:
    """The one-line refusal of a ``package.module:factory`` spec given without consent."""
    module_name, attr = spec.split(":")
    return (f"'{spec}' is code: loading it imports {module_name} and calls {attr}(), which runs whatever they "
            f"contain, so trustkit did not import it; {TRUST_CODE_HINT}; {SAFE_ROUTE}")


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
    if path.suffix == ".json":  # an old two-file checkpoint named by its metadata file
        path = path.with_suffix(".safetensors")
    weights, meta = read_checkpoint(path)  # one open: a concurrent overwrite cannot mix two versions
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
    """'torchscript', 'export', 'pickle' or 'unknown' from the file's bytes (never by unpickling it)."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return "unknown"
        if any(n.endswith("/archive_format") for n in names):  # torch.export.save (.pt2): a program too
            return "export"
        # TorchScript archives carry compiled code next to the tensor data; torch.save archives only data.pkl.
        if any("/code/" in n for n in names) or any(n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "pickle"
        return "unknown"
    if head[:1] == b"\x80":  # pickle protocol marker (legacy torch.save format)
        return "pickle"
    return "unknown"


def _load_file(path: Path, device: torch.device, trust_code: bool = False) -> LoadedModel:
    if path.suffix == ".json":  # an old two-file checkpoint named by its metadata file
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise CheckpointError(f"model file {path} not found; check the path")
    if path.suffix == ".safetensors":
        module, meta = load_checkpoint(path, device)
        return LoadedModel(module, path.stem, str(path), meta)
    kind = _sniff(path)
    if kind == "pickle":
        raise CheckpointError(f"{path} {PICKLE_REFUSAL}")
    if kind == "export":
        return _load_exported(path, device, trust_code)
    if kind != "torchscript":
        raise CheckpointError(f"{path} is neither a trustkit checkpoint (.safetensors) nor a TorchScript "
                              f"file; {SAFE_ROUTE}")
    if not trust_code:  # refused before torch.jit.load reads (and runs) any of its code
        raise CheckpointError(torchscript_refusal(path))
    try:
        module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # torch.jit raises RuntimeError subclasses with long C++ traces
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"TorchScript file {path} could not be loaded ({first}); re-export it") from None
    return LoadedModel(module.eval(), path.stem, str(path), {"format": "torchscript"})


class ExportedModel(nn.Module):
    """A ``torch.export`` program as an ``nn.Module``. Its train/eval switch only records the flag: an exported
    graph is frozen in the mode it was exported in (and refuses ``eval()`` itself)."""

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> "ExportedModel":
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)


def _load_exported(path: Path, device: torch.device, trust_code: bool) -> LoadedModel:
    """A ``torch.export.save`` archive (.pt2), with consent: loading it deserialises a program (and its sample
    inputs are a pickle), so it is code like TorchScript."""
    if not trust_code:
        raise CheckpointError(torchscript_refusal(path, "a torch.export program (.pt2)"))
    try:
        program = torch.export.load(str(path)).module()
    except Exception as exc:  # noqa: BLE001 - torch.export raises many types with long traces
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"torch.export program {path} could not be loaded ({first}); re-export it") from None
    return LoadedModel(ExportedModel(program).to(device).eval(), path.stem, str(path), {"format": "torch.export"})


def _load_factory(spec: str, device: torch.device, trust_code: bool = False) -> LoadedModel:
    if not trust_code:  # refused before the module is imported: importing it already runs its code
        raise CheckpointError(factory_refusal(spec))
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


# Zoo models trained in memory because the store could not be written (trustkit.train.zoo.ensure_trained puts
# them here). A models-layer cache so that resolve_model can serve them without importing train.
_IN_MEMORY: dict[tuple[str, str], tuple[nn.Module, dict[str, Any]]] = {}


def remember_in_memory(arch: str, dataset: str, module: nn.Module, metadata: dict[str, Any]) -> None:
    """Keep a zoo model that could not be stored, so ``resolve_model(arch, dataset)`` serves it in this process.

    ``arch`` is a zoo architecture name (aliases allowed), ``dataset`` a data set name; ``module`` is copied to
    the CPU (later changes to the caller's module do not leak in) and ``metadata`` is kept as given.
    """
    key = (MODELS.canonical(arch), get_spec(dataset).name)
    _IN_MEMORY[key] = (copy.deepcopy(module).cpu().eval(), dict(metadata))


def in_memory(arch: str, dataset: str) -> bool:
    """True if :func:`remember_in_memory` holds zoo model ``arch`` for ``dataset`` in this process."""
    return (MODELS.canonical(arch), get_spec(dataset).name) in _IN_MEMORY


def missing_zoo_model(arch: str, dataset: str) -> CheckpointError:
    """The one-line error for zoo model ``arch`` that has no checkpoint for ``dataset`` (and none in memory)."""
    return CheckpointError(f"no trained '{arch}' for {dataset} in {store_dir()}; run 'trustkit train --model "
                           f"{arch} --dataset {dataset}' (or call trustkit.train.zoo.ensure_trained first)")


def _load_zoo_model(arch: str, data_spec: DatasetSpec, torch_device: torch.device) -> LoadedModel:
    """The stored ``arch`` for ``data_spec``, else the one trained in memory; never trains (the models layer
    cannot import train): a missing one raises :func:`missing_zoo_model`'s CheckpointError."""
    path = store_path(store_name(arch, data_spec.name))
    if checkpoint_exists(path):
        module, meta = load_checkpoint(path, torch_device)
        return LoadedModel(module, arch, str(path), meta)
    if (arch, data_spec.name) in _IN_MEMORY:  # a copy: callers may move or wrap it, the cache stays intact
        module, meta = _IN_MEMORY[(arch, data_spec.name)]
        return LoadedModel(copy.deepcopy(module).to(torch_device).eval(), arch, f"{arch} trained in memory", meta)
    raise missing_zoo_model(arch, data_spec.name)


def _looks_like_file(spec: str) -> bool:
    return (os.path.exists(spec) or spec.endswith((".safetensors", ".json", ".pt", ".pt2", ".pth", ".ts", ".zip"))
            or "/" in spec)


def zoo_arch(spec: str | nn.Module) -> str | None:
    """The canonical zoo architecture ``resolve_model`` would take ``spec`` for, else None (a module, a file
    path, a store entry, a factory or an unknown name). One rule, so ``ensure_trained`` and ``resolve_model``
    can never disagree about what a spec is."""
    if isinstance(spec, nn.Module) or _looks_like_file(spec) or spec not in MODELS:
        return None
    return MODELS.canonical(spec)


def resolve_model(spec: str | nn.Module, dataset: str = "digits", *, data_root: str | os.PathLike | None = None,
                  device: str | torch.device = "auto", download: bool = False,
                  trust_code: bool = False) -> LoadedModel:
    """Resolve ``spec`` (see module doc) for ``dataset``. Never trains: a zoo name without a checkpoint raises
    CheckpointError; call ``trustkit.train.zoo.ensure_trained(spec, dataset)`` first to train missing ones.

    ``trust_code`` allows TorchScript files and ``package.module:factory`` specs, which run their own code
    when loaded; without it they are refused (CheckpointError) before any of that code runs. ``data_root`` and
    ``download`` are accepted for symmetry with ``ensure_trained`` and unused here (resolving reads no data).
    """
    data_spec = get_spec(dataset)
    torch_device = select_device(device)
    if isinstance(spec, nn.Module):
        loaded = LoadedModel(spec.to(torch_device).eval(), type(spec).__name__, "python object")
    elif is_library_spec(spec):  # an installed library's architecture with the user's safetensors weights: data
        module, meta = load_library_model(spec, data_spec.num_classes)
        loaded = LoadedModel(module.to(torch_device), spec, spec, meta)  # the name is the spec: rows name what to rerun
    elif _looks_like_file(spec):
        loaded = _load_file(Path(spec).expanduser(), torch_device, trust_code)
    elif (arch := zoo_arch(spec)) is not None:
        loaded = _load_zoo_model(arch, data_spec, torch_device)
    elif checkpoint_exists(store_path(spec)):
        module, meta = load_checkpoint(store_path(spec), torch_device)
        loaded = LoadedModel(module, spec, str(store_path(spec)), meta)
    elif FACTORY_PATTERN.match(spec):
        loaded = _load_factory(spec, torch_device, trust_code)
    else:
        try:
            MODELS.canonical(spec)
        except UnknownNameError as exc:  # add the non-zoo forms a spec may take
            raise UnknownNameError(f"{exc}; or give a trained store entry, a .safetensors checkpoint, or (with "
                                   "--trust-code) a TorchScript file or package.module:factory") from None
    check_input_shape(loaded, data_spec, torch_device)
    return loaded


def load_model(spec: str | nn.Module, dataset: str = "digits", data_root: str | os.PathLike | None = None,
               device: str | torch.device = "auto", *, trust_code: bool = False) -> nn.Module:
    """An eval-mode ``nn.Module`` on [0, 1] inputs for ``spec`` (zoo name, store entry, trustkit checkpoint; with
    ``trust_code=True`` also a TorchScript file or ``package.module:factory``, which run their own code).

    Never trains (see :func:`resolve_model`); ``trustkit.load_model`` is the convenience that trains missing
    zoo models first."""
    return resolve_model(spec, dataset, data_root=data_root, device=device, trust_code=trust_code).module
