"""Olivetti faces (AT&T Laboratories Cambridge): 400 grey 64×64 images of 40 people, 10 each; label = person.

Read with scikit-learn's ``fetch_olivetti_faces(data_home=<root>/scikit_learn_data, download_if_missing=False)``
from its own cache file ``olivetti_py3.pkz`` (scikit-learn's compressed-joblib cache, loaded by scikit-learn
itself); with ``--download`` and internet access scikit-learn fetches it into the first data root.

The data set has no official split, so trustkit fixes one: for every person, a ``RandomState(0)`` permutation
of their 10 images puts 8 in train and 2 in test (320 train / 80 test, every person in both). The split is
stratified and seeded, so every run and every user sees the same people in the same split. Pixels come as
float32 in [0, 1] (scikit-learn already scales them).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trustkit.data.base import DatasetSpec, ImageDataset
from trustkit.errors import DataNotFoundError

FOLDER = "scikit_learn_data"
CACHE_FILE = "olivetti_py3.pkz"
PEOPLE = 40
IMAGES_PER_PERSON = 10
TEST_PER_PERSON = 2  # 8 train / 2 test per person
SPLIT_SEED = 0  # changing it changes the split: never do that silently


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of ``split`` ('train' or 'test'): per person, a seeded permutation; the first 2 are test."""
    rng = np.random.RandomState(SPLIT_SEED)
    chosen = []
    for person in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == person)
        order = members[rng.permutation(len(members))]
        chosen.append(order[:TEST_PER_PERSON] if split == "test" else order[TEST_PER_PERSON:])
    return np.sort(np.concatenate(chosen))


def find_home(roots: list[Path]) -> Path | None:
    """The first ``<root>/scikit_learn_data`` (or a root that is that folder itself) holding the cache file."""
    for root in roots:
        for candidate in (root / FOLDER, root):
            if (candidate / CACHE_FILE).is_file():
                return candidate
    return None


def load(split: str, roots: list[Path], download: bool) -> ImageDataset:
    from sklearn.datasets import fetch_olivetti_faces

    home = find_home(roots)
    if home is None and download:
        home = roots[0] / FOLDER
    if home is None:
        searched = ", ".join(str(r / FOLDER / CACHE_FILE) for r in roots)
        raise DataNotFoundError(
            f"Olivetti faces not found (searched {searched}); pass --data-root DIR (or set TRUSTKIT_DATA) to a folder "
            f"holding {FOLDER}/{CACHE_FILE} (scikit-learn's cache), or add --download when online")
    try:
        bunch = fetch_olivetti_faces(data_home=str(home), download_if_missing=download)
    except OSError as exc:  # offline download, or a truncated / corrupt cache file
        raise DataNotFoundError(f"Olivetti faces could not be read from {home} ({type(exc).__name__}: {exc}); "
                                f"replace {CACHE_FILE} with a complete copy or use --download when online") from None
    labels = bunch.target.astype(np.int64)
    chosen = split_indices(labels, split)
    images = torch.from_numpy(bunch.images[chosen].astype(np.float32)).unsqueeze(1).contiguous()  # N×1×64×64
    return ImageDataset(images.clamp_(0, 1), torch.from_numpy(labels[chosen]), name="olivetti", split=split,
                        class_names=SPEC.class_names)


SPEC = DatasetSpec(
    name="olivetti",
    summary="Olivetti faces, 40 people × 10 grey 64×64 images, fixed per-person split 320 train / 80 test",
    shape=(1, 64, 64),
    class_names=tuple(f"person-{i:02d}" for i in range(PEOPLE)),
    mean=(0.5470,),  # measured on the 400 images
    std=(0.1725,),
    eps_linf=(1 / 255, 2 / 255, 4 / 255, 8 / 255),
    eps_l2=(0.25, 0.5, 1.0, 2.0),  # 64×64 grey: as many pixels as a 32×32 colour image, CIFAR-like budgets ×2
    loader=load,
    default_n=80,
)
