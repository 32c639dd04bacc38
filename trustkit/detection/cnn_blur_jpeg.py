"""The CNN detector trained as in the CNNDetection protocol (Wang et al. 2020, "CNN-generated images are
surprisingly easy to spot... for now"): blur and JPEG at random on every training image.

Each image of each training batch (real and fake alike), independently:

- with probability 0.5, Gaussian blur with σ ~ U[0, 3] pixels;
- then, with probability 0.5, a JPEG round trip at a quality drawn uniformly from 30..100.

Wang et al. train on one generator (ProGAN) with this augmentation and test on many others; it is what makes
their detector generalise and survive the degradations of the web. Validation (threshold calibration) and test
images are not augmented. Blur is torchvision's ``gaussian_blur``, JPEG Pillow's encoder and decoder (the ``jpeg`` defense's round trip); every draw
comes from the fit loop's seeded generator, so a run is repeatable on one machine.
"""
from __future__ import annotations

import math

import torch
from torchvision.transforms.v2 import functional as tvf

from trustkit.defenses.transforms import JPEG
from trustkit.detection.cnn import CNNDetector

BLUR_PROBABILITY, SIGMA_MAX = 0.5, 3.0  # σ in pixels
JPEG_PROBABILITY, QUALITY_RANGE = 0.5, (30, 100)  # JPEG quality, both ends included


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of one C×H×W float image; the kernel (2·ceil(3σ)+1) stops short of the image size, as
    reflect padding needs."""
    radius = min(math.ceil(3 * sigma), min(image.shape[-2:]) - 1)
    if radius < 1:
        return image
    return tvf.gaussian_blur(image, [2 * radius + 1] * 2, [sigma, sigma])


def blur_jpeg(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The protocol's augmentation of a batch ``x`` (N×C×H×W floats in [0, 1], any device): see the module
    docstring. Returns floats in [0, 1] on ``x``'s device; JPEG re-quantises the images it touches to 8 bits."""
    n = len(x)
    blur = torch.rand(n, generator=generator) < BLUR_PROBABILITY
    sigmas = torch.rand(n, generator=generator) * SIGMA_MAX
    jpeg = torch.rand(n, generator=generator) < JPEG_PROBABILITY
    qualities = torch.randint(QUALITY_RANGE[0], QUALITY_RANGE[1] + 1, (n,), generator=generator)
    if not (blur.any() or jpeg.any()):
        return x
    out = x.detach().cpu().clone()
    for i in torch.nonzero(blur | jpeg).flatten().tolist():
        image = out[i]
        if blur[i]:
            image = _blur(image, float(sigmas[i]))
        if jpeg[i]:
            image = JPEG(int(qualities[i])).transform(image[None])[0]  # Pillow's round trip, as the defense's
        out[i] = image
    return out.to(x.device)


class BlurJPEGCNNDetector(CNNDetector):
    """:class:`~trustkit.detection.cnn.CNNDetector` trained with :func:`blur_jpeg` (store entries
    ``det-cnn-blur-jpeg-...``); scores and is attacked exactly like ``cnn``."""

    name = "cnn-blur-jpeg"

    def __init__(self, dataset: str, epochs: int = 10, batch_size: int = 64, lr: float = 0.02,
                 arch: str = "cnn", augment: str = "blur-jpeg") -> None:
        # ``augment`` is accepted so that options() rebuild the detector (trustkit detect score); it has one value
        if augment != "blur-jpeg":
            raise ValueError(f"cnn-blur-jpeg trains with blur-jpeg augmentation only, got '{augment}'")
        super().__init__(dataset, epochs, batch_size, lr, arch)
        self.augmentation = blur_jpeg

    def options(self) -> dict[str, object]:
        return {**super().options(), "augment": "blur-jpeg"}
