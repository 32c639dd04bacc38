"""Score the user's own images with a stored fake detector (``trustkit detect score PATH --detector ...``).

A stored detector is a safetensors file whose metadata names the detector, the data set it was trained on and the
threshold calibrated on its validation split (:func:`trustkit.detection.run.train_detector` writes them). Images
are decoded with Pillow, converted to the detector's channels and, when their size differs from its training
resolution, centre-cropped to a square and resized with an antialiasing (Lanczos) filter — which changes the
high-frequency content frequency detectors read, so such rows say ``resized``. Nothing is unpickled.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from trustkit.data import get_spec
from trustkit.data.folder import IMAGE_EXTENSIONS
from trustkit.detection import DETECTORS, Detector, make_detector
from trustkit.errors import CheckpointError, DataNotFoundError, InvalidArgumentError
from trustkit.runtime import log

SCORE_COLUMNS = ["file", "p_fake", "verdict", "threshold", "resized", "width", "height"]


@dataclass
class StoredDetector:
    """A fitted detector, its calibrated threshold on P(fake), and what it was trained on."""

    detector: Detector
    threshold: float
    name: str
    dataset: str
    generator: str
    source: str


def load_stored_detector(spec: str) -> StoredDetector:
    """The detector of store entry ``spec`` (``det-cnn-faces-dcgan``, see ``trustkit list``) or of a detector
    ``.safetensors`` file; a one-line error naming the stored detectors when it is neither."""
    from trustkit.models.store import list_checkpoints, read_checkpoint, store_path

    path = Path(spec) if spec.endswith(".safetensors") or os.path.sep in spec else store_path(spec)
    if not path.is_file():
        stored = [p.stem for p in list_checkpoints("det-")]
        raise InvalidArgumentError(f"no stored detector '{spec}'; "
                                   + (f"stored: {', '.join(stored)}" if stored else
                                      "train one with `trustkit detect train` or `trustkit bench fakes`")
                                   + " (or give a detector .safetensors file)")
    try:
        weights, meta = read_checkpoint(path)
    except CheckpointError as exc:
        raise InvalidArgumentError(f"cannot read detector {path}: {str(exc).splitlines()[0]}") from None
    if meta.get("kind") != "detector" or meta.get("detector") not in DETECTORS:
        raise InvalidArgumentError(f"{path} is not a trustkit fake detector (its metadata says kind "
                                   f"'{meta.get('kind')}'); give a det-* store entry")
    options = meta.get("options") or {}  # the constructor options it was trained with (plain numbers and names)
    detector = DETECTORS.get(meta["detector"])(**options) if options else make_detector(meta["detector"],
                                                                                          meta["dataset"])
    detector.load_state(weights)
    return StoredDetector(detector, float(meta["threshold"]), meta["detector"], meta["dataset"],
                          meta.get("generator", ""), str(path))


def image_files(path: str | os.PathLike) -> list[Path]:
    """The image files at ``path``: the file itself, or every image below the folder (sorted)."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataNotFoundError(f"{root} does not exist; give an image file or a folder of images")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def decode_for(path: Path, channels: int, size: tuple[int, int]) -> tuple[torch.Tensor, bool, tuple[int, int]]:
    """``(uint8 C×H×W image, resized?, original (width, height))``: converted to ``channels`` (1: greyscale,
    3: RGB; alpha dropped) and brought to ``size`` (height, width) by centre crop + Lanczos resize if needed."""
    from PIL import Image

    with Image.open(path) as image:
        original = image.size
        image = image.convert("L" if channels == 1 else "RGB")
        height, width = size
        resized = image.size != (width, height)
        if resized:
            side = min(image.size)
            left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
            image = image.crop((left, top, left + side, top + side)).resize((width, height), Image.LANCZOS)
        array = np.asarray(image, dtype=np.uint8)
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(array.copy()).permute(2, 0, 1), resized, original


def score_images(path: str | os.PathLike, detector_spec: str, *, device: torch.device | None = None,
                 batch_size: int = 256) -> tuple[pd.DataFrame, dict[str, Any]]:
    """P(fake) of every image at ``path`` under the stored detector ``detector_spec`` and the verdict at its
    calibrated threshold: ``(frame with SCORE_COLUMNS, summary)``. Unreadable files are skipped with a warning
    each and counted in the summary; a path with no readable image is a one-line error."""
    stored = load_stored_detector(detector_spec)
    spec = get_spec(stored.dataset)
    channels, size = spec.shape[0], tuple(spec.shape[1:])
    files = image_files(path)
    if not files:
        raise DataNotFoundError(f"{path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    images, kept, skipped = [], [], []
    for file in files:
        try:
            image, resized, original = decode_for(file, channels, size)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            log(f"warning: skipped {file}: cannot decode it ({type(exc).__name__})")
            skipped.append(str(file))
            continue
        images.append(image)
        kept.append((file, resized, original))
    if not images:
        raise DataNotFoundError(f"none of the {len(files)} file(s) at {path} could be decoded as an image")
    scores = np.concatenate([stored.detector.score(torch.stack(images[i:i + batch_size]), device=device)
                             for i in range(0, len(images), batch_size)])
    frame = pd.DataFrame({"file": [str(f) for f, _, _ in kept], "p_fake": scores,
                          "verdict": np.where(scores >= stored.threshold, "fake", "real"),
                          "threshold": stored.threshold, "resized": [r for _, r, _ in kept],
                          "width": [o[0] for _, _, o in kept], "height": [o[1] for _, _, o in kept]},
                         columns=SCORE_COLUMNS)
    summary = {"detector": stored.name, "trained_on": f"{stored.dataset} vs {stored.generator}",
               "source": stored.source, "threshold": stored.threshold, "scored": len(frame),
               "fake": int((frame["verdict"] == "fake").sum()), "resized": int(frame["resized"].sum()),
               "skipped": len(skipped), "size": f"{size[1]}×{size[0]}"}
    return frame, summary
