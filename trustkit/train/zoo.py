"""Train the store's zoo models that are missing, before anything resolves them.

``trustkit.models.loading.resolve_model`` only loads: the models layer must not import train (layers import
downwards only), so a zoo name without a checkpoint raises there. Callers that promise a trained model
(``trustkit.load_model``, bench, black-box, privacy and generative runs) call :func:`ensure_trained` right
before they resolve.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from trustkit.data import get_spec
from trustkit.errors import CheckpointError
from trustkit.models.loading import in_memory, remember_in_memory, zoo_arch
from trustkit.models.store import checkpoint_exists, entry_lock, home_writable, store_dir, store_name, store_path
from trustkit.runtime import select_device
from trustkit.train import train_model


def ensure_trained(spec: str | nn.Module, dataset: str, *, device: str | torch.device = "auto",
                   data_root: str | os.PathLike | None = None, download: bool = False) -> None:
    """Train zoo model ``spec`` on ``dataset`` now if the store has no checkpoint of it; otherwise do nothing.

    ``spec`` is any model spec ``resolve_model`` accepts; only a zoo architecture name (``cnn``, aliases
    allowed) whose clean store entry (``cnn-digits``) is missing is trained, with its default recipe, on
    ``device`` ("auto", "cpu", "cuda", ...). A file path, store entry, factory, ``nn.Module``, or a zoo name
    already trained is a no-op. ``data_root`` is where the data sets are searched; ``download`` lets a missing
    one be fetched.

    One process trains: concurrent callers wait on the entry's lock and then find the checkpoint. A store that
    cannot be written trains the model in memory instead (``home_writable`` warns once) and hands it to
    ``trustkit.models.loading.remember_in_memory``, so ``resolve_model`` serves it for the rest of the process.
    Raises CheckpointError if neither the store nor the temporary folder can be written.
    """
    arch = zoo_arch(spec)
    if arch is None:
        return
    dataset = get_spec(dataset).name
    path = store_path(store_name(arch, dataset))
    if checkpoint_exists(path):
        return
    train_device = str(select_device(device))
    if not home_writable(store_dir()):
        if in_memory(arch, dataset):  # trained earlier in this process: not again
            return
        # train_model always saves: let it save to a scratch folder that is deleted right after
        try:
            scratch = tempfile.TemporaryDirectory(prefix="trustkit-unstored-")
        except OSError as exc:
            raise CheckpointError(f"no cached {arch} for {dataset}, and neither {store_dir()} nor the temporary "
                                  f"folder can be written ({exc.strerror}); set TRUSTKIT_HOME to a writable "
                                  "folder") from None
        with scratch:
            trained = train_model(arch, dataset, device=train_device, data_root=data_root, download=download,
                                  out=Path(scratch.name) / path.name,
                                  announce=f"no cached {arch} for {dataset}: training it now (kept in memory "
                                           "only: the store is not writable)")
        remember_in_memory(arch, dataset, trained.model, {**trained.metadata, "format": "in-memory (not stored)"})
        return
    with entry_lock(path, waiting=f"another trustkit process is training {arch} for {dataset}; waiting for it"):
        if not checkpoint_exists(path):  # re-check: another process may have trained it while we waited
            train_model(arch, dataset, device=train_device, data_root=data_root, download=download,
                        announce=f"no cached {arch} for {dataset}: training it now (cached in {store_dir()})")
