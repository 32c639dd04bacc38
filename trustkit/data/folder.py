"""The user's own images: ``folder:PATH`` (one sub-folder per class, as torchvision's ImageFolder) and
``csv:FILE`` (``path,label`` rows; paths relative to the file), of any size and any format Pillow reads.

Images are decoded lazily, never all held in memory: :meth:`FolderDataset.tensors` decodes only the rows asked
for, in a DataLoader with worker processes (``TRUSTKIT_WORKERS`` or ``workers=`` in the spec, default: up to 4),
so ``--n 1000`` of a 50,000-image folder reads 1,000 files. Sizes: with ``@SIZE`` in the spec
(``folder:val@224``) every image is resized (shorter side to SIZE / 0.875, bilinear with antialiasing) and
centre-cropped to SIZE × SIZE — the usual ImageNet evaluation transform; without it every image must already
have the size of the first one. ``folder:PATH`` with ``train/`` and ``test/`` sub-folders uses them as the
splits; otherwise the folder is both (evaluation only needs ``test``). Spec options after ``?``:
``skip_bad=1`` (skip files Pillow cannot read, counted in a warning, instead of a one-line error),
``workers=N`` and ``classes=FILE`` (the class names, one per line in class order, in place of the folder names
or CSV labels — ImageNet's synset folders, say).
"""
from __future__ import annotations

import csv
import functools
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import torch

from trustkit.data.base import DatasetSpec, ImageDataset, to_unit_float
from trustkit.errors import DataNotFoundError, InvalidArgumentError
from trustkit.runtime import log

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # ImageFolder's
PREFIXES = ("folder:", "csv:")
RESIZE_RATIO = 0.875  # resize to SIZE / 0.875 (256 for 224), then centre-crop SIZE: torchvision's eval transform
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def is_user_dataset(name: str) -> bool:
    return name.startswith(PREFIXES)


@dataclass(frozen=True)
class UserDataOptions:
    """What a ``folder:`` / ``csv:`` spec says: the source, its kind, the target size and reading options."""

    kind: str  # "folder" or "csv"
    path: Path
    size: int | None
    skip_bad: bool
    workers: int | None
    classes: Path | None = None

    @property
    def name(self) -> str:
        """The canonical spec (absolute path), the data set's name in results and cache keys (without
        ``workers``, which changes how fast images are read, not which)."""
        return self.spec(with_workers=False)

    def spec(self, *, with_workers: bool = True) -> str:
        """These options written as a spec that :func:`parse_spec` reads back."""
        options = [f"workers={self.workers}"] * (with_workers and self.workers is not None)
        options += ["skip_bad=1"] * self.skip_bad
        if self.classes is not None:
            options.append(f"classes={quote(str(self.classes), safe='/:')}")
        suffix = f"@{self.size}" if self.size else ""
        return f"{self.kind}:{self.path}{suffix}" + (f"?{'&'.join(options)}" if options else "")


def with_options(spec: str, *, size: int | None = None, workers: int | None = None, skip_bad: bool = False,
                 classes: str | os.PathLike | None = None) -> str:
    """``spec`` with reading options added (what the CLI's --image-size, --workers, --skip-bad and --classes
    do); options the spec already holds stay unless given again. A bad spec or a missing file is one line."""
    options = parse_spec(spec)
    options = replace(options, size=size or options.size,
                      workers=workers if workers is not None else options.workers,
                      skip_bad=options.skip_bad or skip_bad,
                      classes=Path(classes).expanduser().resolve() if classes else options.classes)
    return options.spec()


def parse_spec(spec: str) -> UserDataOptions:
    """``folder:PATH[@SIZE][?skip_bad=1&workers=N]`` or ``csv:FILE[...]``; a bad spec is one line."""
    kind, _, rest = spec.partition(":")
    rest, _, query = rest.partition("?")
    path_text, size = rest, None
    head, at, size_text = rest.rpartition("@")
    if at and "/" not in size_text and os.sep not in size_text:  # "@224" ends the spec; "@" inside a path stays
        if not size_text.isdigit() or not 8 <= int(size_text) <= 4096:
            raise InvalidArgumentError(f"image size '{size_text}' in '{spec}' must be a whole number of pixels "
                                       "from 8 to 4096, e.g. folder:val@224")
        path_text, size = head, int(size_text)
    options = dict(part.partition("=")[::2] for part in query.split("&") if part)
    unknown = set(options) - {"skip_bad", "workers", "classes"}
    if unknown:
        raise InvalidArgumentError(f"unknown option {', '.join(sorted(unknown))} in '{spec}'; use skip_bad=1, "
                                   "workers=N or classes=FILE")
    classes = Path(unquote(options["classes"])).expanduser().resolve() if options.get("classes") else None
    if classes is not None and not classes.is_file():
        raise DataNotFoundError(f"no class-name file {classes}; give a text file with one class name per line")
    workers = options.get("workers")
    if workers is not None and (not workers.isdigit() or int(workers) > 64):
        raise InvalidArgumentError(f"workers={workers} in '{spec}' must be a whole number from 0 to 64")
    path = Path(os.path.expanduser(path_text)).resolve()
    if kind == "folder" and not path.is_dir():
        raise DataNotFoundError(f"no folder {path} (from --dataset {spec}); give a folder with one sub-folder of "
                                "images per class")
    if kind == "csv" and not path.is_file():
        raise DataNotFoundError(f"no file {path} (from --dataset {spec}); give a CSV of path,label rows")
    return UserDataOptions(kind, path, size, options.get("skip_bad", "0") in ("1", "true", "yes"),
                           int(workers) if workers is not None else None, classes)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _folder_index(root: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")))
    if not classes:
        raise DataNotFoundError(f"{root} has no class sub-folders; put each class's images in a folder of its "
                                "own (root/<class>/<image>), as torchvision's ImageFolder")
    files, labels = [], []
    for label, name in enumerate(classes):
        found = _image_files(root / name)
        files += found
        labels += [label] * len(found)
    if not files:
        raise DataNotFoundError(f"{root} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in its class folders")
    return files, labels, classes


def _csv_index(path: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or (number == 1 and row[:2] == ["path", "label"]):
                continue
            if len(row) < 2 or not row[0].strip():
                raise DataNotFoundError(f"{path}, line {number}: expected 'path,label', got {','.join(row)!r}")
            rows.append((row[0].strip(), row[1].strip()))
    if not rows:
        raise DataNotFoundError(f"{path} has no path,label rows")
    classes = tuple(sorted({label for _, label in rows}, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v)))
    lookup = {name: i for i, name in enumerate(classes)}
    files = [(path.parent / p).resolve() for p, _ in rows]
    missing = next((f for f in files if not f.is_file()), None)
    if missing is not None:
        raise DataNotFoundError(f"{missing} (listed in {path}) does not exist; paths are relative to the CSV file")
    return files, [lookup[label] for _, label in rows], classes


def _decode(path: Path, size: int | None, expected: tuple[int, int] | None, mode: str) -> torch.Tensor:
    """One image as uint8 C×H×W: resized and centre-cropped to ``size``, or checked against ``expected``."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if size is not None:  # torchvision's Resize(int) then CenterCrop, to the pixel (tests check it)
                short, long = sorted(image.size)
                new_short = math.ceil(size / RESIZE_RATIO)
                new_long = int(new_short * long / short)
                width, height = (new_short, new_long) if image.size[0] <= image.size[1] else (new_long, new_short)
                image = image.resize((width, height), Image.BILINEAR)
                left, top = int(round((width - size) / 2.0)), int(round((height - size) / 2.0))
                image = image.crop((left, top, left + size, top + size))
            elif expected is not None and image.size != expected:
                raise DataNotFoundError(f"{path} is {image.size[0]}×{image.size[1]} pixels, the first image "
                                        f"{expected[0]}×{expected[1]}; add @SIZE to the spec (e.g. "
                                        "folder:PATH@224) to resize and centre-crop every image")
            array = np.asarray(image, dtype=np.uint8)
    except DataNotFoundError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        empty = path.is_file() and path.stat().st_size == 0
        detail = "empty file" if empty else f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        raise DataNotFoundError(f"cannot decode {path} ({detail}); remove or replace it, or add ?skip_bad=1 to "
                                "the data set to skip unreadable files") from None
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


class _Files(torch.utils.data.Dataset):
    def __init__(self, files: list[Path], size: int | None, expected: tuple[int, int] | None, mode: str,
                 skip_bad: bool) -> None:
        self.files, self.size, self.expected, self.mode, self.skip_bad = files, size, expected, mode, skip_bad

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor | None:
        try:
            return _decode(self.files[index], self.size, self.expected, self.mode)
        except DataNotFoundError:
            if self.skip_bad:
                return None
            raise


def _collate(batch: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
    return batch


class FolderDataset(ImageDataset):
    """A folder (or CSV) of image files, decoded on demand: same interface as :class:`ImageDataset`, but
    :meth:`tensors` reads only the requested rows and :attr:`images` (every image at once) is for small sets."""

    def __init__(self, files: list[Path], labels: list[int], *, name: str, split: str, class_names: tuple[str, ...],
                 shape: tuple[int, int, int], options: UserDataOptions) -> None:
        self.files, self.labels = files, torch.tensor(labels, dtype=torch.long)
        self.name, self.split, self.class_names = name, split, class_names
        self._shape, self.options = shape, options
        self._all: torch.Tensor | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._shape

    @property
    def images(self) -> torch.Tensor:  # type: ignore[override]
        """Every image as one uint8 tensor (decoded once, then kept): only for sets that fit in memory. Files
        ``skip_bad`` skipped leave the set for good, labels included, so images and labels stay aligned."""
        if self._all is None:
            images, kept = self._decode_rows(torch.arange(len(self.files)))
            if not bool(kept.all()):
                self.files = [f for f, keep in zip(self.files, kept.tolist()) if keep]
                self.labels = self.labels[kept]
            self._all = images
        return self._all

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y = self.tensors(torch.tensor([index]))
        return x[0], int(y[0])

    def tensors(self, indices: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` of ``indices`` (default all): float32 in [0, 1] and int64, decoding only those files
        (rows of unreadable files are dropped under ``skip_bad``)."""
        rows = torch.arange(len(self.files)) if indices is None else torch.as_tensor(indices).long()
        images, kept = self._decode_rows(rows)
        return to_unit_float(images), self.labels[rows[kept]]

    def subset(self, indices: torch.Tensor) -> "FolderDataset":
        picked = torch.as_tensor(indices).long().tolist()
        return FolderDataset([self.files[i] for i in picked], self.labels[picked].tolist(), name=self.name,
                             split=self.split, class_names=self.class_names, shape=self._shape, options=self.options)

    def sample(self, n: int | None, default_n: int, seed: int) -> torch.Tensor:
        """A seeded, class-stratified subset (sorted indices): classes take turns, so every class is present
        when ``n`` allows; chosen from the file list alone, without reading any image."""
        count = min(n or default_n, len(self.files))
        order = torch.randperm(len(self.files), generator=torch.Generator().manual_seed(seed))
        rank = torch.empty(len(order), dtype=torch.long)
        for label in self.labels.unique():
            members = order[self.labels[order] == label]
            rank[members] = torch.arange(len(members))
        position = torch.empty(len(order), dtype=torch.long)
        position[order] = torch.arange(len(order))
        chosen = torch.argsort(rank * len(order) + position)[:count]
        return chosen.sort().values

    def _decode_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.options.size
        expected = None if size else (self._shape[2], self._shape[1])
        mode = "L" if self._shape[0] == 1 else "RGB"
        files = _Files([self.files[i] for i in rows.tolist()], size, expected, mode, self.options.skip_bad)
        workers = self.options.workers if self.options.workers is not None else default_workers(len(files))
        loader = torch.utils.data.DataLoader(files, batch_size=64, num_workers=workers, collate_fn=_collate,
                                             persistent_workers=False)
        decoded = [image for batch in loader for image in batch]
        kept = torch.tensor([image is not None for image in decoded], dtype=torch.bool)
        if not bool(kept.all()):
            log(f"warning: skipped {int((~kept).sum())} unreadable file(s) of {len(decoded)} in {self.name} "
                "(skip_bad)")
        images = [image for image in decoded if image is not None]
        if not images:
            return torch.empty(0, *self._shape, dtype=torch.uint8), kept
        return torch.stack(images), kept


def default_workers(files: int) -> int:
    """DataLoader workers: ``TRUSTKIT_WORKERS`` if set, else none for a few files, else up to 4 (the cores)."""
    configured = os.environ.get("TRUSTKIT_WORKERS")
    if configured is not None and configured.isdigit():
        return int(configured)
    return 0 if files < 64 else min(4, os.cpu_count() or 1)


def _index(options: UserDataOptions, split: str) -> tuple[list[Path], list[int], tuple[str, ...]]:
    if options.kind == "csv":
        return _csv_index(options.path)
    root = options.path
    if (root / "train").is_dir() and (root / "test").is_dir():
        root = root / split
    return _folder_index(root)


def _class_names(path: Path, count: int) -> tuple[str, ...]:
    """The class names of ``path`` (one per non-empty line); a count that differs from the data's is one line."""
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names) != count:
        raise DataNotFoundError(f"{path} names {len(names)} classes but the data has {count}; give one name per "
                                "line, in the order of the class folders (sorted) or labels")
    return names


@functools.lru_cache(maxsize=32)  # get_spec is asked often; scanning a large folder once is enough
def user_spec(spec: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of a ``folder:`` / ``csv:`` spec: classes from the folder names (or the CSV's
    labels), shape from ``@SIZE`` or the first image, ImageNet's mean/std for colour images."""
    options = parse_spec(spec)
    files, _, classes = _index(options, "test")
    shown = _class_names(options.classes, len(classes)) if options.classes else classes
    first = _decode(files[0], options.size, None, "RGB")
    from PIL import Image

    with Image.open(files[0]) as image:
        grey = image.mode in ("L", "1", "I;16", "I")
    channels = 1 if grey else 3
    shape = (channels, first.shape[1], first.shape[2])
    mean, std = ((0.5,), (0.5,)) if grey else (IMAGENET_MEAN, IMAGENET_STD)

    def loader(split: str, roots: list[Path], download: bool) -> FolderDataset:
        found, labels, names = _index(options, split)
        if names != classes:
            raise DataNotFoundError(f"the {split} split of {options.path} has classes {', '.join(names[:5])}... but "
                                    f"the test split {', '.join(classes[:5])}...; give both splits the same class "
                                    "folders")
        return FolderDataset(found, labels, name=options.name, split=split, class_names=shown, shape=shape,
                             options=options)

    return DatasetSpec(name=options.name, summary=f"user images from {options.path}", shape=shape,
                       class_names=shown, mean=mean, std=std, eps_linf=(1 / 255, 2 / 255, 4 / 255, 8 / 255),
                       eps_l2=(0.25, 0.5, 1.0), loader=loader, default_n=1000, augment="none", needs_files=True)
