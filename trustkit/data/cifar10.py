"""CIFAR-10, 50,000 train + 10,000 test 32×32 colour images.

Two layouts are read:

- torchvision's official ``cifar-10-batches-py``. Its batches are pickles, so before torchvision unpickles them
  trustkit checks the MD5 of every file it will open (the five training batches, ``test_batch`` and
  ``batches.meta``) against the published values that ``torchvision.datasets.CIFAR10`` lists; a missing file or a
  mismatch stops with one line and nothing is unpickled. (A pickle with the MD5 of a published file would take a
  second preimage of MD5, which nobody knows how to make.)
- an ImageFolder of JPEG files ``cifar10-jpeg/{train,test}/<class>/*.jpg`` (decoded with Pillow, ~1 s per 10,000
  images); an empty, truncated or undecodable file, or one that is not 32×32, stops with one line naming it.

``--download`` fetches torchvision's archive (MD5-checked) into a temporary folder and moves the extracted
``cifar-10-batches-py`` into place only when it is complete.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from trustkit.data.base import DatasetSpec, ImageDataset, decode_image, fetch, read_checked
from trustkit.errors import DataNotFoundError

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BATCHES = "cifar-10-batches-py"
JPEG_FOLDER = "cifar10-jpeg"
# torchvision.datasets.CIFAR10 (torchvision 0.29): url, filename, tgz_md5, train_list, test_list, meta
ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_FILE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
TRAIN_MD5 = {"data_batch_1": "c99cafc152244af753f735de768cd75f",
             "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
             "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
             "data_batch_4": "634d18415352ddfa80567beed471001a",
             "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb"}
TEST_MD5 = {"test_batch": "40351d587109b95175f43aff81a1287e"}
META_MD5 = {"batches.meta": "5ff9c542aee3614f3951f8cda6e48888"}
BATCH_MD5 = {**TRAIN_MD5, **TEST_MD5, **META_MD5}  # torchvision checks (and we must pass) all of them
BATCH_FIX = (f"delete {BATCHES} and add --download when online (torchvision's official archive), or point "
             f"--data-root at a {JPEG_FOLDER}/{{train,test}}/<class>/ copy")


def verify_batches(folder: Path) -> None:
    """Check every file torchvision's CIFAR10 opens against its published MD5 before anything is unpickled."""
    missing = [name for name in BATCH_MD5 if not (folder / name).is_file()]
    if missing:
        raise DataNotFoundError(f"{folder} is incomplete: {', '.join(missing)} missing; {BATCH_FIX}")
    for name, md5 in BATCH_MD5.items():
        read_checked(folder / name, "md5", md5, BATCH_FIX)


def _load_batches(root: Path, split: str) -> ImageDataset:
    from torchvision.datasets import CIFAR10

    verify_batches(root / BATCHES)
    try:  # torchvision checks the same MD5s again, then unpickles the verified official files
        data = CIFAR10(str(root), train=(split == "train"), download=False)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:  # e.g. a file replaced since it was checked
        raise DataNotFoundError(f"cannot read {root / BATCHES} ({type(exc).__name__}: {exc}); {BATCH_FIX}") from None
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(images, torch.tensor(data.targets), name="cifar10", split=split, class_names=CLASS_NAMES)


def _image_folder(root: Path, split: str) -> Path | None:
    for candidate in (root / JPEG_FOLDER / split, root / split):
        if candidate.is_dir() and all((candidate / c).is_dir() for c in CLASS_NAMES):
            return candidate
    return None


def _load_image_folder(folder: Path, split: str) -> ImageDataset:
    import numpy as np

    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(CLASS_NAMES):  # by name, so label order never depends on listing order
        class_files = sorted((folder / name).glob("*.jpg"))
        files += class_files
        labels += [label] * len(class_files)
    if not files:
        raise DataNotFoundError(f"no .jpg files under {folder}/<class>/; point --data-root at a complete copy")
    fix = "replace it with a good 32×32 copy, or delete it"
    pixels = np.stack([decode_image(f, (32, 32), "RGB", fix) for f in files])  # N×H×W×3 uint8
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(images, torch.tensor(labels), name="cifar10", split=split, class_names=CLASS_NAMES)


def download(root: Path) -> None:
    """torchvision's archive (MD5-checked) extracted beside ``root``; moved into place only when complete."""
    from torchvision.datasets import utils as tv_utils

    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".cifar10-download.", dir=root) as tmp:
        tv_utils.download_and_extract_archive(ARCHIVE_URL, download_root=tmp, filename=ARCHIVE_FILE, md5=ARCHIVE_MD5)
        verify_batches(Path(tmp) / BATCHES)
        os.replace(Path(tmp) / BATCHES, root / BATCHES)


def load(split: str, roots: list[Path], download_missing: bool) -> ImageDataset:
    for root in roots:
        if (root / BATCHES).is_dir():
            return _load_batches(root, split)
        folder = _image_folder(root, split)
        if folder is not None:
            return _load_image_folder(folder, split)
    if download_missing:
        fetch("CIFAR-10", lambda: download(roots[0]), roots[0])
        return _load_batches(roots[0], split)
    searched = ", ".join(f"{r}/{BATCHES}, {r}/{JPEG_FOLDER}/{split}" for r in roots)
    raise DataNotFoundError(
        f"CIFAR-10 not found (searched {searched}); pass --data-root DIR (or set TRUSTKIT_DATA) to a folder "
        f"holding {BATCHES} or {JPEG_FOLDER}/{{train,test}}/<class>/, or add --download when online")


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
