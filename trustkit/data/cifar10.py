"""CIFAR-10, 50,000 train + 10,000 test 32×32 colour images.

Two layouts are read: torchvision's official ``cifar-10-batches-py`` and an ImageFolder of JPEG files
``cifar10-jpeg/{train,test}/<class>/*.jpg`` (decoded with Pillow, ~1 s per 10,000 images).
"""
from __future__ import annotations

from pathlib import Path

import torch

from trustkit.data.base import DatasetSpec, ImageDataset, fetch
from trustkit.errors import DataNotFoundError

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _image_folder(root: Path, split: str) -> Path | None:
    for candidate in (root / "cifar10-jpeg" / split, root / split):
        if candidate.is_dir() and all((candidate / c).is_dir() for c in CLASS_NAMES):
            return candidate
    return None


def _load_image_folder(folder: Path, split: str) -> ImageDataset:
    import numpy as np
    from PIL import Image

    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(CLASS_NAMES):  # by name, so label order never depends on listing order
        class_files = sorted((folder / name).glob("*.jpg"))
        files += class_files
        labels += [label] * len(class_files)
    if not files:
        raise DataNotFoundError(f"no .jpg files under {folder}/<class>/; point --data-root at a complete copy")
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])  # N×H×W×3 uint8
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(images, torch.tensor(labels), name="cifar10", split=split, class_names=CLASS_NAMES)


def load(split: str, roots: list[Path], download: bool) -> ImageDataset:
    from torchvision.datasets import CIFAR10

    for root in roots:
        if (root / "cifar-10-batches-py").is_dir():
            data = CIFAR10(str(root), train=(split == "train"), download=False)
            images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
            return ImageDataset(images, torch.tensor(data.targets), name="cifar10", split=split,
                                class_names=CLASS_NAMES)
        folder = _image_folder(root, split)
        if folder is not None:
            return _load_image_folder(folder, split)
    if download:
        fetch("CIFAR-10", lambda: CIFAR10(str(roots[0]), train=True, download=True), roots[0])
        return load(split, roots[:1], False)
    searched = ", ".join(f"{r}/cifar-10-batches-py, {r}/cifar10-jpeg/{split}" for r in roots)
    raise DataNotFoundError(
        f"CIFAR-10 not found (searched {searched}); pass --data-root DIR (or set TRUSTKIT_DATA) to a folder "
        "holding cifar-10-batches-py or cifar10-jpeg/{train,test}/<class>/, or add --download when online")


SPEC = DatasetSpec(
    name="cifar10",
    summary="CIFAR-10 32×32 colour, 10 classes, 50,000 train / 10,000 test (official or JPEG folders)",
    shape=(3, 32, 32),
    class_names=CLASS_NAMES,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    eps_linf=(1 / 255, 2 / 255, 4 / 255, 8 / 255),
    eps_l2=(0.125, 0.25, 0.5, 1.0),
    loader=load,
    default_n=1000,
    augment="crop-flip",
)
