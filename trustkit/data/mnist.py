"""MNIST, 60,000 train + 10,000 test 28×28 grey digits, read from the raw IDX files of torchvision's layout.

trustkit parses ``<root>/MNIST/raw/*-ubyte`` itself with NumPy (magic number, dimensions and file size checked
before a byte of pixels is used) instead of calling ``torchvision.datasets.MNIST``: that class ``torch.load``s
``MNIST/processed/training.pt`` and ``test.pt`` (pickles) whenever they exist, in preference to the raw files,
so a planted ``processed/`` folder would be read. trustkit never opens ``processed/``; when it holds the only
copy, loading stops with one line asking for the raw files. The folder names ``MNIST`` and ``raw`` are matched
case-insensitively (``mnist/raw`` works). ``--download`` fetches torchvision's four ``.gz`` archives (each checked
against torchvision's published MD5) and keeps the decompressed files only once all four arrived.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from trustkit.data.base import DatasetSpec, ImageDataset, fetch, refuse_pickle
from trustkit.errors import DataNotFoundError

FOLDER = "MNIST"
RAW = "raw"
SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
RAW_FILES = SPLIT_FILES["train"] + SPLIT_FILES["test"]
IMAGES_MAGIC = 0x00000803  # IDX: two zero bytes, type 0x08 (unsigned byte), 3 dimensions
LABELS_MAGIC = 0x00000801  # ... 1 dimension
SIDE = 28
PICKLES = ("processed/training.pt", "processed/test.pt")  # torchvision's legacy cache: torch.load'ed, never read here
# torchvision.datasets.MNIST.mirrors / .resources (torchvision 0.29): the archives and their published MD5s
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
RESOURCES = (("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
             ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
             ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
             ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"))
FIX = "replace it with the official file (or delete the raw folder and add --download when online)"


def _dirs_named(parent: Path, name: str) -> list[Path]:
    """Sub-folders of ``parent`` called ``name``: the exact spelling first, then other cases (``mnist``)."""
    exact = [parent / name] if (parent / name).is_dir() else []
    try:
        others = sorted(c for c in parent.iterdir() if c.name.lower() == name.lower() and c.name != name and c.is_dir())
    except OSError:  # parent missing or unreadable
        others = []
    return exact + others


def raw_candidates(root: Path) -> list[Path]:
    """Folders that may hold the IDX files: ``<root>/MNIST/raw``, ``<root>/raw`` (root = the MNIST folder), ``root``."""
    found = [raw for mnist in _dirs_named(root, FOLDER) for raw in _dirs_named(mnist, RAW)] + _dirs_named(root, RAW)
    if root.name.lower() == RAW and root.is_dir():
        found.append(root)
    return list(dict.fromkeys(found))


def read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes as a uint8 array, after checking its magic number, shape and size."""
    header_size = 4 + 4 * ndim
    with open(path, "rb") as file:
        header = file.read(header_size)
    if header[:2] == b"\x1f\x8b":
        raise DataNotFoundError(f"{path} is gzip-compressed; decompress it (gunzip) in place: trustkit reads the "
                                "uncompressed IDX files torchvision extracts")
    if len(header) < header_size:
        raise DataNotFoundError(f"{path} is truncated ({len(header)} bytes, shorter than an IDX header); {FIX}")
    found = int.from_bytes(header[:4], "big")
    if found != magic:
        raise DataNotFoundError(f"{path} is not an MNIST IDX {'image' if ndim == 3 else 'label'} file (magic number "
                                f"0x{found:08x}, expected 0x{magic:08x}); {FIX}")
    dims = tuple(int.from_bytes(header[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and dims[1:] != (SIDE, SIDE):
        raise DataNotFoundError(f"{path} holds {dims[1]}×{dims[2]} images, expected {SIDE}×{SIDE}; {FIX}")
    expected = header_size + math.prod(dims)
    size = path.stat().st_size
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise DataNotFoundError(f"{path} is {what} ({size:,} bytes, expected {expected:,} for {dims[0]:,} "
                                f"{'images' if ndim == 3 else 'labels'}); {FIX}")
    data = np.fromfile(path, dtype=np.uint8, offset=header_size)
    if data.size != math.prod(dims):  # the file changed under us
        raise DataNotFoundError(f"{path} changed while it was read; {FIX}")
    return data.reshape(dims)


def read_split(raw: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N×28×28 images, int64 N labels) of ``split`` from the raw folder."""
    image_file, label_file = (raw / name for name in SPLIT_FILES[split])
    images = read_idx(image_file, IMAGES_MAGIC, 3)
    labels = read_idx(label_file, LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise DataNotFoundError(f"{image_file} holds {len(images):,} images but {label_file} {len(labels):,} labels; "
                                f"{FIX}")
    if labels.size and labels.max() > 9:
        raise DataNotFoundError(f"{label_file} holds label {int(labels.max())}, but MNIST labels are 0-9; {FIX}")
    return images, labels.astype(np.int64)


def download(root: Path) -> None:
    """torchvision's four archives into ``<root>/MNIST/raw`` (MD5-checked); nothing is kept unless all arrive."""
    from torchvision.datasets import utils as tv_utils

    raw = root / FOLDER / RAW
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mnist-download.", dir=root) as tmp:
        wanted = [(name, md5) for name, md5 in RESOURCES if not (raw / name.removesuffix(".gz")).is_file()]
        for name, md5 in wanted:
            errors = []
            for mirror in MIRRORS:
                try:
                    tv_utils.download_and_extract_archive(mirror + name, download_root=tmp, filename=name, md5=md5)
                    break
                except Exception as exc:  # urllib, HTTP and MD5 errors: try the next mirror
                    errors.append(f"{mirror}: {type(exc).__name__}: {exc}")
            else:
                raise OSError(f"{name}: " + "; ".join(errors))
        raw.mkdir(parents=True, exist_ok=True)
        for name, _ in wanted:
            os.replace(Path(tmp) / name.removesuffix(".gz"), raw / name.removesuffix(".gz"))


def _not_found(roots: list[Path], split: str) -> DataNotFoundError:
    candidates = [c for r in roots for c in raw_candidates(r)]
    for mnist in (d for r in roots for d in _dirs_named(r, FOLDER) + [r]):
        for name in PICKLES:
            if (mnist / name).is_file():
                return refuse_pickle(mnist / name, f"the raw IDX files {FOLDER}/{RAW}/*-ubyte (or --download)")
    searched = ", ".join(str(r / FOLDER / RAW) for r in roots)
    detail = ""
    if candidates:
        missing = [n for n in SPLIT_FILES[split] if not (candidates[0] / n).is_file()]
        gz = any((candidates[0] / f"{n}.gz").is_file() for n in missing)
        detail = (f"; {candidates[0]} lacks {', '.join(missing)}"
                  + (" (only the .gz archives are there: gunzip them)" if gz else ""))
    return DataNotFoundError(
        f"MNIST not found (searched {searched}{detail}); pass --data-root DIR (or set TRUSTKIT_DATA) to a folder "
        f"holding {FOLDER}/{RAW}/{{{','.join(SPLIT_FILES[split])}}}, or add --download when online")


def load(split: str, roots: list[Path], download_missing: bool) -> ImageDataset:
    found = next((c for r in roots for c in raw_candidates(r)
                  if all((c / n).is_file() for n in SPLIT_FILES[split])), None)
    if found is None and download_missing:
        fetch("MNIST", lambda: download(roots[0]), roots[0])
        found = roots[0] / FOLDER / RAW
    if found is None:
        raise _not_found(roots, split)
    images, labels = read_split(found, split)
    return ImageDataset(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels), name="mnist", split=split,
                        class_names=SPEC.class_names)


SPEC = DatasetSpec(
    name="mnist",
    summary="MNIST 28×28 handwritten digits, 60,000 train / 10,000 test",
    shape=(1, 28, 28),
    class_names=tuple(str(d) for d in range(10)),
    mean=(0.1307,),
    std=(0.3081,),
    eps_linf=(0.05, 0.1, 0.2, 0.3),
    eps_l2=(0.5, 1.0, 1.5, 2.0),
    loader=load,
    default_n=1000,
)
