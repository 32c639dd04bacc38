"""Reading a user's image files for style transfer.

Images are tensors in [0, 1] (the models normalise inside); :func:`read_image` decodes a user's file with the
same safety as trustkit's folder data sets (Pillow's decompression-bomb limit, every decoder error one line).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from trustkit.errors import DataNotFoundError, InvalidArgumentError, ShapeMismatchError


# --- reading the user's images --------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageFile:
    """A decoded image: ``image`` 1×C×H×W float32 in [0, 1]; the file's Pillow ``mode`` and pixel ``size``
    (width, height, upright) before resizing; ``note`` says how its colours were converted (empty: not at all)."""

    image: torch.Tensor
    path: str
    mode: str
    size: tuple[int, int]
    note: str = ""


GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def read_image(path: str | Path, *, channels: int = 3, size: int | tuple[int, int] | None = None) -> ImageFile:
    """Decode an image file for a model of ``channels`` (1: grey, 3: RGB) input channels.

    ``size`` an int: resize (bicubic, antialiased) so the longer side has ``size`` pixels, keeping the aspect
    ratio; a ``(height, width)`` pair: scale to cover it and centre-crop (no stretching — brush strokes keep their
    shape); None: keep the file's size. Photos are turned upright by their EXIF orientation. Colour files are converted to grey for a 1-channel model (ITU-R 601 luma,
    Pillow's ``L``) and grey files replicated for an RGB one; transparent pixels are shown on white. A missing,
    empty, truncated or undecodable file (or one over Pillow's decompression-bomb limit) is one
    DataNotFoundError line naming it, as for trustkit's folder data sets (:mod:`trustkit.data.folder`).
    """
    from PIL import Image, ImageOps

    if channels not in (1, 3):
        raise ShapeMismatchError(f"style transfer reads images as grey (1 channel) or RGB (3), but this model takes "
                                 f"{channels} channels; use a grey or RGB model")
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"no image file {path}; check the path (any format Pillow reads: PNG, JPEG ...)")
    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as image:
            original = image.mode
            # phone photos are stored sideways with an EXIF orientation tag: turn them upright, as viewers do
            turned = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
            file_size = image.size[::-1] if turned else image.size
            target = _target_size(file_size, size)
            if image.format == "JPEG":  # decode at a power-of-two reduction when the target is much smaller
                image.draft(mode, target[::-1] if turned else target)
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            image = image.convert(mode)
            if isinstance(size, tuple):
                image = ImageOps.fit(image, target, method=Image.BICUBIC)
            elif image.size != target:
                image = image.resize(target, Image.BICUBIC, reducing_gap=3.0)
            import numpy as np

            array = np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:  # what Pillow raises
        empty = path.stat().st_size == 0
        detail = "empty file" if empty else f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        raise DataNotFoundError(f"cannot decode {path} ({detail}); give a PNG or JPEG image that opens in an "
                                "image viewer") from None
    array = array[:, :, None] if array.ndim == 2 else array
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).float().div_(255).contiguous()
    grey = original in GREY_MODES
    note = ""
    if channels == 1 and not grey:
        note = f"{path.name} is colour ({original}); converted to grey (ITU-R 601 luma) for this 1-channel model"
    elif channels == 3 and grey:
        note = f"{path.name} is grey ({original}); its channel is repeated as R, G and B for this RGB model"
    return ImageFile(tensor, str(path), original, file_size, note)


def _target_size(file_size: tuple[int, int], size: int | tuple[int, int] | None) -> tuple[int, int]:
    """(width, height) of the decoded image."""
    width, height = file_size
    if size is None:
        target = (width, height)
    elif isinstance(size, tuple):
        target = (int(size[1]), int(size[0]))
    else:
        if int(size) < 8:
            raise InvalidArgumentError(f"image size must be at least 8 pixels, got {size}; pass e.g. size=128")
        scale = int(size) / max(width, height)
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
    if min(target) < 8:
        raise InvalidArgumentError(f"the image would be {target[0]}×{target[1]} pixels; style transfer needs at least "
                                   "8 on each side: use a larger size or a less elongated image")
    return target


__all__ = ["GREY_MODES", "ImageFile", "read_image"]
