"""scikit-learn's embedded 8×8 digits (1,797 images, 17 grey levels): needs no files, the default."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trustkit.data.base import DatasetSpec, ImageDataset

TEST_SIZE = 360  # fixed split: a seeded permutation, the first 360 images are the test split


def load(split: str, roots: list[Path], download: bool) -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
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
