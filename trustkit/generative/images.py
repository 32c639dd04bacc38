"""Image grids and strips of generated samples: tensors -> one image, PNG files written atomically."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from trustkit.atomic import atomic_path
from trustkit.errors import InvalidArgumentError
from trustkit.images import image_uri, png_bytes


def grid(images: torch.Tensor, columns: int = 8, padding: int = 1) -> torch.Tensor:
    """N×C×H×W images in [0, 1] tiled ``columns`` per row on a white background: one C×H'×W' image."""
    from torchvision.utils import make_grid

    return make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=max(1, columns), padding=padding, pad_value=1.0)


def strips(rows: torch.Tensor, padding: int = 1) -> torch.Tensor:
    """R×S×C×H×W (R strips of S images, e.g. interpolations) as one image with one strip per row."""
    return grid(rows.reshape(-1, *rows.shape[2:]), columns=rows.shape[1], padding=padding)


def grid_uri(images: torch.Tensor, columns: int = 8) -> str:
    """A grid of images as an embedded PNG data URI (for reports)."""
    return image_uri(grid(images, columns))


def save_png(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write a C×H×W image in [0, 1] as PNG (tiny images upscaled, nearest neighbour), atomically."""
    path = Path(path).expanduser()
    if path.suffix.lower() != ".png":
        raise InvalidArgumentError(f"output file {path} must end in .png; give e.g. --out samples.png")
    if path.is_dir():
        raise InvalidArgumentError(f"output {path} is a folder; give a file name such as {path / 'samples.png'}")
    payload = png_bytes(image)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return path
