"""trustkit: measure how far an image model can be trusted — attacks, defenses, generative models, privacy."""
from __future__ import annotations

import os

import torch
from torch import nn

from trustkit._version import __version__
from trustkit.data import load_dataset
from trustkit.errors import TrustkitError

__all__ = ["TrustkitError", "__version__", "load_dataset", "load_model"]


def load_model(spec: str | nn.Module, dataset: str = "digits", data_root: str | os.PathLike | None = None,
               device: str | torch.device = "auto", *, trust_code: bool = False) -> nn.Module:
    """An eval-mode ``nn.Module`` on [0, 1] inputs for ``spec``: a zoo name (trained now and stored if missing),
    a store entry or a trustkit checkpoint; with ``trust_code=True`` also a TorchScript file or
    ``package.module:factory``, which run their own code. ``data_root`` is where data sets are searched if a zoo
    model must be trained; ``device`` is "auto", "cpu", "cuda", ...

    The convenience lives here, at the top of the package, because training belongs to ``trustkit.train``, which
    ``trustkit.models.loading.load_model`` (the same, minus the training) may not import.
    """
    # late imports: every ``import trustkit.<anything>`` runs this file, and it should not pull in train/attacks
    from trustkit.models.loading import resolve_model
    from trustkit.train.zoo import ensure_trained

    ensure_trained(spec, dataset, device=device, data_root=data_root)
    return resolve_model(spec, dataset, data_root=data_root, device=device, trust_code=trust_code).module
