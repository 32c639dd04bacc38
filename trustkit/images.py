"""Images and figures as bytes: tensors -> PNG, PNG data URIs, matplotlib figures (no external files; reports
embed them and open offline)."""
from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import torch

MIN_DISPLAY_PIXELS = 96  # tiny images (8×8 digits) are upscaled, nearest-neighbour, to at least this


def png_bytes(image: torch.Tensor) -> bytes:
    """PNG of a C×H×W float image in [0, 1] (C = 1 or 3), upscaled by an integer factor when tiny."""
    from PIL import Image

    array = (image.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    array = array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))
    factor = max(1, -(-MIN_DISPLAY_PIXELS // max(array.shape[0], array.shape[1])))
    if factor > 1:
        array = np.repeat(np.repeat(array, factor, axis=0), factor, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def data_uri(payload: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def image_uri(image: torch.Tensor) -> str:
    """``data:image/png;base64,...`` for a C×H×W image in [0, 1]."""
    return data_uri(png_bytes(image))


def perturbation_uri(delta: torch.Tensor) -> str:
    """The perturbation x_adv - x shown on mid-grey: brighter = added, darker = removed, scaled to its max."""
    peak = float(delta.abs().max())
    shown = 0.5 + delta / (2 * peak) if peak > 0 else torch.full_like(delta, 0.5)
    return image_uri(shown)


def new_figure(width: float = 6.4, height: float = 4.0, ncols: int = 1, nrows: int = 1,
               **subplots: Any):  # noqa: ANN201 - matplotlib types
    """``(figure, axes)`` of a figure drawn off-screen (Agg); ``ncols``/``nrows`` > 1 give a grid of axes,
    ``subplots`` go to :meth:`matplotlib.figure.Figure.subplots` (``squeeze``, ``sharey``...).

    A bare :class:`~matplotlib.figure.Figure`, not pyplot: no global figure registry to leak figures into when
    a caller forgets to close one, and no GUI backend to choose.
    """
    import matplotlib
    from matplotlib.figure import Figure

    # labels carry user strings (model and data set names): '$\\foo$' must print as text, not as mathtext
    matplotlib.rcParams["text.parse_math"] = False
    fig = Figure(figsize=(width, height), dpi=110)
    return fig, fig.subplots(nrows, ncols, **{"squeeze": True, **subplots})


def figure_uri(fig) -> str:  # noqa: ANN001
    """The figure as an embeddable PNG data URI (the figure is garbage once unreferenced: nothing to close)."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    return data_uri(buffer.getvalue())


def pack_images(images: torch.Tensor) -> dict[str, Any]:
    """Images (N, C, H, W in [0, 1]) as float16 bytes in base64: small in the cell's JSON, exact enough for
    the report to draw them and their perturbation."""
    array = images.detach().to("cpu", torch.float16).numpy()
    return {"shape": list(array.shape), "float16": base64.b64encode(array.tobytes()).decode("ascii")}


def unpack_images(packed: dict[str, Any]) -> torch.Tensor:
    """The inverse of :func:`pack_images` (float32)."""
    raw = np.frombuffer(base64.b64decode(packed["float16"]), dtype=np.float16).reshape(packed["shape"])
    return torch.from_numpy(raw.astype(np.float32))


def total_variation(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Per-image total-variation prior TV_β of images N×C×H×W: Σ ((x[i,j+1]−x[i,j])² + (x[i+1,j]−x[i,j])²)^(β/2)
    over channels and the (H−1)×(W−1) positions where both differences exist, divided by C·H·W (pixel² for
    β = 2). The prior of feature inversion, class-score maximisation and style transfer."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    squared = dx.pow(2) + dy.pow(2)
    if beta != 2.0:
        squared = (squared + 1e-8).pow(beta / 2)  # smooth at 0, where the gradient of |d|^β (β < 2) is infinite
    return squared.flatten(1).sum(1) / x[0].numel()
