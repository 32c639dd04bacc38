"""scikit-learn's embedded 8×8 digits (1,797 images, 17 grey levels): needs no files, the default."""
from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from trustkit.data.base import DatasetSpec, ImageDataset

TEST_SIZE = 360  # fixed split: a seeded permutation, the first 360 images are the test split


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (images N×8×8 with grey levels 0..16, labels N), in its file order.

    Reads the CSV that scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``) without importing
    scikit-learn: ``import sklearn.datasets`` pulls in SciPy and costs about a second, most of a cached run.
    Falls back to ``load_digits`` when the file is not where this scikit-learn keeps it.
    """
    spec = importlib.util.find_spec("sklearn")  # locates the package without executing it
    shipped = (Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
               if spec and spec.submodule_search_locations else None)
    if shipped is not None and shipped.is_file():
        with gzip.open(shipped, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",")
        return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target.astype(np.int64)


def load(split: str, roots: list[Path], download: bool) -> ImageDataset:
    pixels, targets = digits_arrays()
    images = torch.from_numpy(pixels.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(targets)
    order = torch.from_numpy(np.random.RandomState(0).permutation(len(labels)))
    chosen = order[:TEST_SIZE] if split == "test" else order[TEST_SIZE:]
    return ImageDataset(images[chosen], labels[chosen], name="digits", split=split, class_names=SPEC.class_names)


SPEC = DatasetSpec(
    name="digits",
    summary="scikit-learn 8×8 handwritten digits, 1,437 train / 360 test, embedded (no download)",
    shape=(1, 8, 8),
    class_names=tuple(str(d) for d in range(10)),
    mean=(0.3053,),
    std=(0.3760,),
    eps_linf=(0.05, 0.1, 0.2, 0.3),
    eps_l2=(0.25, 0.5, 1.0, 2.0),
    loader=load,
    default_n=360,
    needs_files=False,
)
