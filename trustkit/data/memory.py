"""Data handed over in Python (tensors, a Dataset, a DataLoader) as a data set trustkit can evaluate on.

:func:`register_tensors` keeps the images in this process under a name ``memory:<hash>`` (the hash of the
exact tensors, so the same data gets the same name and cache keys stay complete); ``get_spec`` and
``load_dataset`` then serve it like a built-in set, with the same images as both splits.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch

from trustkit.data.base import DatasetSpec, ImageDataset
from trustkit.errors import InvalidArgumentError
from trustkit.fingerprint import tensor_fingerprint

PREFIX = "memory:"
_SETS: dict[str, tuple[DatasetSpec, ImageDataset]] = {}


def is_memory_dataset(name: str) -> bool:
    return name.startswith(PREFIX)


def _collect(data: Any, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` from a pair of tensors, a map-style Dataset of (x, y) or an iterable of (x, y) batches."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
        return (x[:limit], y[:limit]) if limit else (x, y)
    if isinstance(data, torch.utils.data.DataLoader) or (not hasattr(data, "__getitem__") and isinstance(data, Iterable)):
        xs, ys, count = [], [], 0
        for batch in data:
            if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
                raise InvalidArgumentError("the DataLoader must yield (images, labels) batches")
            xs.append(batch[0])
            ys.append(torch.as_tensor(batch[1]))
            count += len(batch[0])
            if limit and count >= limit:
                break
        if not xs:
            raise InvalidArgumentError("the DataLoader yielded no batch")
        x, y = torch.cat(xs), torch.cat(ys)
        return (x[:limit], y[:limit]) if limit else (x, y)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        count = min(len(data), limit) if limit else len(data)
        items = [data[i] for i in range(count)]
        return torch.stack([torch.as_tensor(item[0]) for item in items]), torch.tensor([int(item[1]) for item in items])
    raise InvalidArgumentError(f"cannot evaluate on a {type(data).__name__}; give (x, y) tensors, a Dataset of "
                               "(image, label) pairs, a DataLoader, or a data-set name")


def register_tensors(data: Any, *, class_names: Iterable[str] | None = None, limit: int | None = None,
                     name: str = "your data") -> str:
    """Keep ``data`` (see :func:`_collect`; images N×C×H×W in [0, 1], labels 0..K-1) in this process and return
    its data-set name ``memory:<hash>``. ``limit`` reads at most that many images from a Dataset or DataLoader.
    Images outside [0, 1] or of the wrong shape are one-line errors."""
    x, y = _collect(data, limit)
    x, y = x.detach().float().cpu(), y.detach().long().cpu().reshape(-1)
    if x.ndim != 4 or len(x) != len(y) or len(x) == 0:
        raise InvalidArgumentError(f"images must be N×C×H×W with one label each, got {tuple(x.shape)} and "
                                   f"{len(y)} labels")
    if not torch.isfinite(x).all() or float(x.min()) < 0 or float(x.max()) > 1:
        raise InvalidArgumentError("images must lie in [0, 1] (normalisation belongs inside the model); got "
                                   f"values from {float(x.min()):.3g} to {float(x.max()):.3g}")
    names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(int(y.max()) + 1))
    if int(y.min()) < 0 or int(y.max()) >= len(names):
        raise InvalidArgumentError(f"labels must lie in 0..{len(names) - 1} ({len(names)} classes)")
    key = f"{PREFIX}{tensor_fingerprint(x, y)[:16]}"
    if key not in _SETS:
        images = ImageDataset(x, y, name=key, split="test", class_names=names)
        channels = x.shape[1]

        def loader(split: str, roots: Any, download: bool) -> ImageDataset:
            return images

        spec = DatasetSpec(name=key, summary=f"{name} ({len(x)} images handed over in Python)",
                           shape=tuple(x.shape[1:]), class_names=names, mean=(0.5,) * channels, std=(0.5,) * channels,
                           eps_linf=(1 / 255, 2 / 255, 4 / 255, 8 / 255), eps_l2=(0.25, 0.5, 1.0), loader=loader,
                           default_n=len(x), needs_files=False)
        _SETS[key] = (spec, images)
    return key


def memory_spec(name: str) -> DatasetSpec:
    if name not in _SETS:
        raise InvalidArgumentError(f"no data set '{name}' in this process; memory: data sets exist only in the "
                                   "Python session that registered them")
    return _SETS[name][0]
