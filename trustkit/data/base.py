"""Data-set description (:class:`DatasetSpec`) and the in-memory image set (:class:`ImageDataset`)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from trustkit.errors import DataNotFoundError

SPLITS = ("train", "test")


class ImageDataset(torch.utils.data.Dataset):
    """Images held in memory as one tensor, N×C×H×W, uint8 (0..255) or float (already in [0, 1]).

    ``dataset[i]`` returns ``(x, label)`` with ``x`` a float32 C×H×W tensor in [0, 1] and ``label`` an int.
    :meth:`tensors` hands out whole batches without a DataLoader (the fast path trustkit uses).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, name: str, split: str,
                 class_names: tuple[str, ...]) -> None:
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"images must be N×C×H×W with one label each, got {tuple(images.shape)} / {len(labels)}")
        self.images = images
        self.labels = labels.long()
        self.name, self.split, self.class_names = name, split, class_names

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return to_unit_float(self.images[index]), int(self.labels[index])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def tensors(self, indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)``: float32 images in [0, 1] and int64 labels, for ``indices`` (default: all)."""
        if indices is None:
            return to_unit_float(self.images), self.labels
        return to_unit_float(self.images[indices]), self.labels[indices]

    def sample(self, n: int | None, default_n: int, seed: int) -> torch.Tensor:
        """Sorted indices of the seeded random subset of ``n`` images (default ``default_n``) an evaluation uses."""
        return subset(len(self), n, default_n, seed)

    def subset(self, indices: torch.Tensor) -> "ImageDataset":
        return ImageDataset(self.images[indices], self.labels[indices], name=self.name, split=self.split,
                            class_names=self.class_names)


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 0..1; float input is returned as float32 unchanged."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def fetch(name: str, download: Callable[[], object], folder: Path) -> None:
    """Run a torchvision download; a failure (offline, server down) becomes one DataNotFoundError line."""
    try:
        download()
    except Exception as exc:  # urllib, HTTP and checksum errors all mean the same to the user
        detail = " ".join(str(exc).split())  # torchvision's messages span lines; the error is one
        raise DataNotFoundError(f"downloading {name} into {folder} failed ({type(exc).__name__}: {detail}); check "
                                "the internet connection or point --data-root at a local copy") from None


def read_checked(path: Path, algorithm: str, expected: str, fix: str) -> bytes:
    """The bytes of ``path``, after checking their ``algorithm`` digest ('md5', 'sha256') is ``expected``.

    The digest is taken of the bytes returned, so what was checked is what gets parsed. A mismatch is one
    DataNotFoundError line that names the file, both digests and ``fix``.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataNotFoundError(f"cannot read {path} ({exc.strerror or exc}); {fix}") from None
    digest = hashlib.new(algorithm, data).hexdigest()
    if digest != expected:
        name = {"md5": "MD5", "sha256": "SHA-256"}.get(algorithm, algorithm)
        raise DataNotFoundError(f"refusing {path}: its {name} is {digest}, not the published {expected} "
                                f"(a corrupt or substituted file); {fix}")
    return data


def refuse_pickle(path: Path, use_instead: str) -> DataNotFoundError:
    """The one-line error for a pickled data file that trustkit will not load (loading a pickle runs its code)."""
    return DataNotFoundError(f"refusing {path}: it is a pickle, and loading a pickle can run any code it holds; "
                             f"use {use_instead} instead")


def decode_image(path: Path, size: tuple[int, int], mode: str, fix: str) -> np.ndarray:
    """Decode one image file with Pillow to a uint8 array (H×W or H×W×C) of ``size`` (width, height) in ``mode``.

    ``mode`` 'L' demands an 8-bit grey file as it is; 'RGB' converts (grey JPEGs are common). An empty,
    truncated or undecodable file, or one of another size, is one DataNotFoundError line naming it.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.size != size:
                raise DataNotFoundError(f"{path} is {image.size[0]}×{image.size[1]} pixels, expected "
                                        f"{size[0]}×{size[1]}; {fix}")
            if mode == "L" and image.mode != "L":
                raise DataNotFoundError(f"{path} is a '{image.mode}' image, expected 8-bit grey ('L'); {fix}")
            return np.asarray(image.convert(mode) if image.mode != mode else image)
    except DataNotFoundError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:  # what Pillow raises
        empty = path.is_file() and path.stat().st_size == 0
        detail = "empty file" if empty else f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        raise DataNotFoundError(f"cannot decode {path} ({detail}); {fix}") from None


Loader = Callable[[str, list[Path], bool], ImageDataset]


@dataclass(frozen=True)
class DatasetSpec:
    """What trustkit knows about a data set: shapes, classes, normalisation and sensible eps grids.

    ``mean``/``std`` are per channel, on the [0, 1] pixel scale; ``eps_linf``/``eps_l2`` are the default
    perturbation budgets (pixel units on [0, 1]); ``default_n`` is how many test images ``bench`` uses.
    """

    name: str
    summary: str
    shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    eps_linf: tuple[float, ...]
    eps_l2: tuple[float, ...]
    loader: Loader = field(repr=False, compare=False)
    default_n: int = 1000
    augment: str = "none"  # "none" or "crop-flip" (random 4-pixel-padded crops + horizontal flips)
    needs_files: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def eps_grid(self, norm: str) -> tuple[float, ...]:
        return self.eps_linf if norm == "linf" else self.eps_l2


def subset(n_total: int, n: int | None, default_n: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded random subset of the test split (``n`` or the data set's default)."""
    count = min(n or default_n, n_total)
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:count].sort().values
