"""Data-set registry and loaders. Samples come out as float tensors in [0, 1], N×C×H×W (stored as uint8 or float)."""
from __future__ import annotations

import os

from trustkit.data import cifar10, digits, faces, mnist, olivetti
from trustkit.data.base import SPLITS, DatasetSpec, ImageDataset
from trustkit.data.folder import is_user_dataset, user_spec
from trustkit.data.memory import is_memory_dataset, memory_spec
from trustkit.errors import InvalidArgumentError
from trustkit.paths import data_roots
from trustkit.registry import Registry

DATASETS: Registry[DatasetSpec] = Registry("data set")
DATASETS.add("digits", digits.SPEC, summary=digits.SPEC.summary, aliases=("sklearn-digits",))
DATASETS.add("mnist", mnist.SPEC, summary=mnist.SPEC.summary)
DATASETS.add("cifar10", cifar10.SPEC, summary=cifar10.SPEC.summary, aliases=("cifar-10", "cifar"))
DATASETS.add("faces", faces.SPEC, summary=faces.SPEC.summary, aliases=("utkface", "faces-utk64"))
DATASETS.add("olivetti", olivetti.SPEC, summary=olivetti.SPEC.summary, aliases=("olivetti-faces", "att-faces"))

DEFAULT_DATASET = "digits"


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` registered as ``name``, or of the user's images (``folder:PATH[@SIZE]``,
    ``csv:FILE[@SIZE]``: :mod:`trustkit.data.folder`)."""
    if is_user_dataset(name):
        return user_spec(name)
    if is_memory_dataset(name):
        return memory_spec(name)
    return DATASETS.get(name)


def load_dataset(name: str = DEFAULT_DATASET, split: str = "test", data_root: str | os.PathLike | None = None,
                 download: bool = False) -> ImageDataset:
    """Load a registered data set split as an :class:`ImageDataset` of ``(x in [0,1], int label)``.

    ``data_root`` (else ``$TRUSTKIT_DATA``, else ``$TRUSTKIT_HOME/data``) is searched for local copies;
    ``download=True`` fetches missing files (needs internet), checksum-verified before they are read.
    """
    spec = get_spec(name)
    if split not in SPLITS:
        raise InvalidArgumentError(f"unknown split '{split}'; use one of: {', '.join(SPLITS)}")
    return spec.loader(split, data_roots(data_root), download)


__all__ = ["DATASETS", "DEFAULT_DATASET", "DatasetSpec", "ImageDataset", "get_spec", "load_dataset"]
