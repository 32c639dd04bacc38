"""UTKFace aligned face crops at 64×64 colour; class label = gender, age and race kept as attributes.

The folder ``faces-utk64`` holds PNG files named ``age_gender_race_date.png`` (gender 0 male / 1 female;
race 0 White, 1 Black, 2 Asian, 3 Indian, 4 Other). Files whose names do not parse are skipped (the full
UTKFace release has a handful with a missing field). The train/test split is decided per file by a salted
hash of its name, so it is fixed, seeded and does not change when files are added or removed (~20% test).
Decoding the 8,000 files with Pillow takes ~2.5 s on 2 CPU cores.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from trustkit.data.base import DatasetSpec, ImageDataset
from trustkit.errors import DataNotFoundError

FOLDER = "faces-utk64"
CLASS_NAMES = ("male", "female")  # gender code 0 / 1 in UTKFace file names
RACE_NAMES = ("white", "black", "asian", "indian", "other")
ATTRIBUTES = ("gender", "age", "race")
SPLIT_SALT = "trustkit-faces-split-v1"  # changing it changes the split: never do that silently
TEST_BUCKETS = 1  # hash % 5 < TEST_BUCKETS -> test (20%)


@dataclass(frozen=True)
class FaceLabels:
    """Attributes parsed from a UTKFace file name: age in years, gender 0/1, race 0..4."""

    age: int
    gender: int
    race: int


def parse_name(name: str) -> FaceLabels | None:
    """``'25_1_2_20170116.png'`` -> FaceLabels(25, 1, 2); None when the name is not in UTKFace form."""
    parts = Path(name).stem.split("_")
    if len(parts) < 4:
        return None
    try:
        age, gender, race = int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        return None
    if not (0 <= age <= 130 and gender in (0, 1) and 0 <= race < len(RACE_NAMES)):
        return None
    return FaceLabels(age, gender, race)


def split_of(name: str) -> str:
    """'train' or 'test' for a file name; deterministic (salted SHA-256 of the name)."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{Path(name).name}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 5 < TEST_BUCKETS else "train"


class FaceDataset(ImageDataset):
    """An :class:`ImageDataset` of faces whose ``attributes`` hold per-image ``age``, ``gender``, ``race``
    (int64 tensors aligned with ``images``); ``labels`` are the gender codes."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, attributes: dict[str, torch.Tensor],
                 split: str, files: tuple[str, ...] = ()) -> None:
        super().__init__(images, labels, name="faces", split=split, class_names=CLASS_NAMES)
        self.attributes = attributes
        self.files = files

    def subset(self, indices: torch.Tensor) -> "FaceDataset":
        files = tuple(self.files[i] for i in indices.tolist()) if self.files else ()
        return FaceDataset(self.images[indices], self.labels[indices], split=self.split, files=files,
                           attributes={k: v[indices] for k, v in self.attributes.items()})


def find_folder(roots: list[Path]) -> Path | None:
    """The first ``<root>/faces-utk64`` (or a root that is that folder itself) holding PNG files."""
    for root in roots:
        candidates = (root / FOLDER, root) if root.name == FOLDER else (root / FOLDER,)
        for candidate in candidates:
            if candidate.is_dir() and next(candidate.glob("*.png"), None) is not None:
                return candidate
    return None


def load(split: str, roots: list[Path], download: bool) -> FaceDataset:
    import numpy as np
    from PIL import Image

    folder = find_folder(roots)
    if folder is None:
        searched = ", ".join(str(r / FOLDER) for r in roots)
        hint = " (UTKFace has no torchvision downloader)" if download else ""
        raise DataNotFoundError(
            f"faces not found (searched {searched}){hint}; pass --data-root DIR (or set TRUSTKIT_DATA) to a folder "
            f"holding {FOLDER}/ with UTKFace PNGs named age_gender_race_date.png")
    chosen: list[tuple[Path, FaceLabels]] = []
    for path in sorted(folder.glob("*.png")):  # sorted: image order never depends on directory listing order
        labels = parse_name(path.name)
        if labels is not None and split_of(path.name) == split:
            chosen.append((path, labels))
    if not chosen:
        raise DataNotFoundError(f"no UTKFace PNGs (age_gender_race_date.png) for the {split} split in {folder}; "
                                "point --data-root at a complete copy")
    pixels = []
    for path, _ in chosen:
        try:
            with Image.open(path) as image:
                if image.size != (64, 64):
                    image = image.resize((64, 64), Image.BICUBIC)  # other crops of UTKFace come at 200×200
                pixels.append(np.asarray(image.convert("RGB")))
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:  # Pillow's errors
            raise DataNotFoundError(f"cannot decode {path} ({type(exc).__name__}: {' '.join(str(exc).split())}); "
                                    "replace or delete the file") from None
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()  # uint8 N×3×64×64
    attributes = {name: torch.tensor([getattr(lab, name) for _, lab in chosen], dtype=torch.int64)
                  for name in ATTRIBUTES}
    return FaceDataset(images, attributes["gender"].clone(), attributes=attributes, split=split,
                       files=tuple(p.name for p, _ in chosen))


SPEC = DatasetSpec(
    name="faces",
    summary="UTKFace 64×64 colour face crops, label gender (age, race as attributes), 6,464 train / 1,536 test",
    shape=(3, 64, 64),
    class_names=CLASS_NAMES,
    mean=(0.5950, 0.4552, 0.3893),  # measured on the 8,000 images of faces-utk64
    std=(0.2590, 0.2305, 0.2258),
    eps_linf=(1 / 255, 2 / 255, 4 / 255, 8 / 255),
    eps_l2=(0.25, 0.5, 1.0, 2.0),  # twice CIFAR-10's: 4× the pixels, so √4 × the norm for the same per-pixel change
    loader=load,
    default_n=1000,
    augment="crop-flip",
)
