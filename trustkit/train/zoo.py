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
from trustkit.train import adversarial_entry, gaussian_entry, train_model
from trustkit.train import store_name as adversarial_store_name  # with the recipe suffix


def ensure_trained(spec: str | nn.Module, dataset: str, *, device: str | torch.device = "auto",
                   data_root: str | os.PathLike | None = None, download: bool = False, recipe: str = "clean",
                   eps: float = 0.0, sigma: float = 0.0) -> None:
    """Train zoo model ``spec`` on ``dataset`` now if the store has no checkpoint of it; otherwise do nothing.

    ``spec`` is any model spec ``resolve_model`` accepts; only a zoo architecture name (``cnn``, aliases
    allowed) whose clean store entry (``cnn-digits``) is missing is trained, with its default recipe, on
    ``device`` ("auto", "cpu", "cuda", ...). A file path, store entry, factory, ``nn.Module``, or a zoo name
    already trained is a no-op. ``data_root`` is where the data sets are searched; ``download`` lets a missing
    one be fetched. ``recipe`` and ``eps`` (pixel units in [0, 1]) ask for the adversarially trained entry
    ``trustkit train --adv RECIPE --eps EPS`` writes (``cnn-digits-pgd-eps0.2``), trained with that command's
    defaults when missing; an entry name of that form given as ``spec`` means the same. ``recipe`` "gaussian" with
    ``sigma`` (or a spec ``cnn-mnist-gaussian-sigma0.25``) asks for the Gaussian-noise trained base model of
    randomized smoothing that ``trustkit train --noise SIGMA`` writes.

    One process trains: concurrent callers wait on the entry's lock and then find the checkpoint. A store that
    cannot be written trains the model in memory instead (``home_writable`` warns once) and hands it to
    ``trustkit.models.loading.remember_in_memory``, so ``resolve_model`` serves it for the rest of the process.
    Raises CheckpointError if neither the store nor the temporary folder can be written.
    """
    dataset = get_spec(dataset).name
    arch = zoo_arch(spec)
    if arch is None and isinstance(spec, str) and (parsed := adversarial_entry(spec, dataset)) is not None:
        arch, recipe, eps = parsed
    if arch is None and isinstance(spec, str) and (noisy := gaussian_entry(spec, dataset)) is not None:
        (arch, sigma), recipe = noisy, "gaussian"
    if arch is None:
        return
    if recipe != "clean":
        _ensure_adversarial(arch, dataset, recipe, eps, device, data_root, download, sigma)
        return
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


def _ensure_adversarial(arch: str, dataset: str, recipe: str, eps: float, device: str | torch.device,
                        data_root: str | os.PathLike | None, download: bool, sigma: float = 0.0) -> None:
    """Train the ``recipe``/``eps`` (gaussian: ``sigma``) entry of ``arch`` on ``dataset`` once, under its lock, if
    it is missing."""
    from trustkit.attacks import format_eps
    from trustkit.train import format_sigma
    from trustkit.train.recipes import RECIPES

    gaussian = RECIPES.canonical(recipe) == "gaussian"
    name = adversarial_store_name(arch, dataset, recipe, eps, sigma)
    path = store_path(name)
    if checkpoint_exists(path):
        return
    if not home_writable(store_dir()):
        raise CheckpointError(f"no stored {name}, and {store_dir()} cannot be written to keep it once trained; set "
                              "TRUSTKIT_HOME to a writable folder")
    command = (f"trustkit train --model {arch} --dataset {dataset} --noise {format_sigma(sigma)}" if gaussian else
               f"trustkit train --model {arch} --dataset {dataset} --adv {recipe} --eps {format_eps(eps)}")
    with entry_lock(path, waiting=f"another trustkit process is training {name}; waiting for it"):
        if not checkpoint_exists(path):
            train_model(arch, dataset, recipe=recipe, eps=None if gaussian else eps, sigma=sigma if gaussian else None,
                        device=str(select_device(device)), data_root=data_root, download=download,
                        announce=f"no stored {name}: training it now ({command}; cached in {store_dir()})")
