"""trustkit: measure how far an image model can be trusted — attacks, defenses, generative models, privacy."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from trustkit._version import __version__
from trustkit.errors import TrustkitError

if TYPE_CHECKING:  # torch loads on first use, not on `import trustkit` (so `trustkit --help` stays instant)
    import torch
    from torch import nn

    from trustkit.data import ImageDataset

__all__ = ["TrustkitError", "__version__", "evaluate", "load_dataset", "load_model"]


def load_dataset(name: str = "digits", split: str = "test", data_root: str | os.PathLike | None = None,
                 download: bool = False) -> "ImageDataset":
    """A data set split as ``(x in [0, 1], int label)`` pairs: see :func:`trustkit.data.load_dataset`."""
    from trustkit.data import load_dataset as load

    return load(name, split, data_root, download)


def load_model(spec: "str | nn.Module", dataset: str = "digits", data_root: str | os.PathLike | None = None,
               device: "str | torch.device" = "auto", *, trust_code: bool = False) -> "nn.Module":
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


def evaluate(model: "str | nn.Module", data: Any = "digits", *, attacks: "str | list[str]" = "fgsm,pgd",
             eps: "list[float | str] | None" = None, norm: str = "linf", n: int | None = None,
             class_names: "list[str] | None" = None, out: str = "reports", **options: Any):  # noqa: ANN201
    """Attack ``model`` on ``data`` and write the usual report: the notebook entry point.

    ``model`` is any ``nn.Module`` taking [0, 1] images (normalisation inside it), or a model spec string.
    ``data`` is a data-set name (``"mnist"``, ``"folder:PATH@224"``), ``(x, y)`` tensors, a Dataset of
    ``(image, label)`` pairs or a DataLoader of ``(images, labels)`` batches; ``n`` images are used (from a
    Dataset or DataLoader only the first ``n`` are read). ``attacks`` are registry names (``"fgsm,pgd,strong"``);
    ``eps`` a budget grid on the [0, 1] pixel scale (default: the data's). Other ``options`` are
    :class:`trustkit.engine.BenchConfig` fields (``batch_size``, ``seed``, ``device``, ``attack_params``...).
    Returns the run (``.results`` is the tidy frame, ``.report`` the HTML file). Runs with a Python
    ``nn.Module`` are not cached.
    """
    from trustkit.data.memory import register_tensors
    from trustkit.engine import BenchConfig, run_bench

    if isinstance(data, str):
        dataset = data
    else:
        dataset = register_tensors(data, class_names=class_names, limit=n)
    names = [a.strip() for a in attacks.split(",")] if isinstance(attacks, str) else list(attacks)
    config = BenchConfig(attacks=names, model=model if isinstance(model, str) else "python object", dataset=dataset,
                         eps=eps, norm=norm, n=n, out=out, **options)
    return run_bench(config, model=None if isinstance(model, str) else model)
