"""The 15 common corruptions of Hendrycks & Dietterich (2019) at severities 1-5, generated on the fly.

The corruptions themselves are not ours: :func:`corrupt` calls the ``imagecorruptions`` module of the
``imagecorruptions-imaug`` package (the maintained fork of Michaelis et al.'s ``imagecorruptions``, which is
Hendrycks' ImageNet-C code with ImageNet-C's parameters, adapted to images of any size). This module is the
thin adapter between that package (one uint8 H×W×3 image at a time, NumPy's global RNG) and trustkit's
contract (float N×C×H×W batches in [0, 1]):

- **colour**: grey images (C = 1) are replicated to three channels, as the package's own ``corrupt`` does, and
  the three channels it returns are averaged back to one; C = 3 passes through;
- **size**: the package's ``corrupt`` refuses images under 32 pixels a side, but its corruption functions run at
  any size (checked at 8, 16, 28 and 32 pixels). trustkit calls them directly, at the image's own size: nothing
  is resampled, so the noises, brightness and contrast are exactly the package's, and pixelate and JPEG keep
  their meaning. The parameters are ImageNet-C's, in pixels of a 224-pixel image: on small images the spatial
  corruptions (blurs, elastic, weather) are far stronger relative to the image, and on 8×8 digits some levels
  coincide (pixelate keeps int(8 × 0.6) = int(8 × 0.5) = 4 pixels at levels 1 and 2);
- **randomness**: before each image NumPy's global RNG is seeded from (seed, the image's index in its data set,
  the corruption's number), and the two corruptions that draw their own generator (impulse noise, glass blur)
  get the same seed. A corrupted image therefore does not depend on its batch, their order or the process.
  Severity is deliberately *not* in the seed: the five levels of one image are the same random draw (the same
  noise field, frost crop, snow layer, displacement field) at growing strength, so accuracy against severity
  is a paired comparison and not five independent samples. The caller's NumPy state is restored afterwards.

Severity is the package's: level s uses the s-th entry of each corruption's parameter list, every list ordered
from weak to strong (tests/test_corruptions.py checks that a measure fitting each type's design grows).
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import torch

from trustkit.errors import InvalidArgumentError
from trustkit.registry import Registry

PACKAGE = "imagecorruptions-imaug"  # the distribution that provides the ``imagecorruptions`` module
REQUIREMENT = "imagecorruptions-imaug>=1.1.5,<2"
SEVERITIES = (1, 2, 3, 4, 5)
CATEGORIES = ("noise", "blur", "weather", "digital")


@dataclass(frozen=True)
class Corruption:
    """One corruption type: ``function`` is its name in the package, ``number`` its position in Hendrycks'
    list (0-14), ``category`` its group (noise, blur, weather, digital)."""

    name: str
    function: str
    category: str
    number: int
    summary: str


CORRUPTIONS: Registry[Corruption] = Registry("corruption")

_TABLE = (
    ("gaussian_noise", "noise", "additive Gaussian noise, σ 0.08-0.38"),
    ("shot_noise", "noise", "Poisson (photon) noise, 60-3 photons per unit"),
    ("impulse_noise", "noise", "salt-and-pepper noise, 3-27% of pixels"),
    ("defocus_blur", "blur", "disk kernel, radius 3-10 px"),
    ("glass_blur", "blur", "Gaussian blur with local pixel shuffling"),
    ("motion_blur", "blur", "directional blur, radius 10-20 px, random angle"),
    ("zoom_blur", "blur", "mean of the image zoomed by up to 1.11-1.31"),
    ("snow", "weather", "falling snow flakes (motion-blurred noise layer)"),
    ("frost", "weather", "a frost photograph blended over the image"),
    ("fog", "weather", "plasma-fractal haze"),
    ("brightness", "weather", "HSV value raised by 0.1-0.5"),
    ("contrast", "digital", "deviations from the mean scaled by 0.4-0.05"),
    ("elastic_transform", "digital", "smooth random displacement field"),
    ("pixelate", "digital", "box-downscaled to 60-25% and back"),
    ("jpeg_compression", "digital", "JPEG at quality 25-7"),
)
for _number, (_function, _category, _summary) in enumerate(_TABLE):
    CORRUPTIONS.add(_function, Corruption(_function.replace("_", "-"), _function, _category, _number, _summary),
                    summary=f"{_category}: {_summary}")
del _number, _function, _category, _summary


def corruption_names() -> list[str]:
    """The 15 canonical names (``gaussian-noise`` ...), in Hendrycks' order."""
    return CORRUPTIONS.names()


def category(name: str) -> str:
    """The category (noise, blur, weather, digital) of corruption ``name``."""
    return CORRUPTIONS.get(name).category


def package_version() -> str:
    """The installed version of the corruption package (a one-line error naming the install when absent)."""
    from importlib import metadata

    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        raise InvalidArgumentError(f"common corruptions need the {PACKAGE} package, which is not installed; "
                                   f"pip install '{REQUIREMENT}'") from None


def library_versions() -> dict[str, str]:
    """Versions of the package and of the libraries its corruptions run on (part of every cache key)."""
    from importlib import metadata

    found = {PACKAGE: package_version()}
    for name in ("opencv-python", "opencv-python-headless", "scikit-image", "scipy", "numba", "pillow"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@lru_cache(maxsize=None)
def _function(name: str) -> tuple[Callable[..., Any], bool]:
    """The package's function of corruption ``name`` (its own name) and whether it takes its own ``seed``."""
    package_version()
    import warnings

    with warnings.catch_warnings():  # the package's modules warn about their own dependencies on import
        warnings.simplefilter("ignore")
        from imagecorruptions import corruptions as functions

    function = getattr(functions, name)
    return function, "seed" in inspect.signature(function).parameters


def image_seed(seed: int, index: int, corruption: Corruption) -> int:
    """The 32-bit seed of one image's corruption: a function of (seed, image index, corruption) only — the same
    at every severity (common random numbers)."""
    state = np.random.SeedSequence([int(seed) % 2**63, int(index) % 2**63, corruption.number])
    return int(state.generate_state(1, dtype=np.uint32)[0])


def check_severity(severity: int) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise InvalidArgumentError(f"severity must be an integer from 1 to 5, got {severity!r}; e.g. --severity 3")
    return int(severity)


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int = 0, *,
            indices: torch.Tensor | list[int] | None = None) -> torch.Tensor:
    """``images`` (N×C×H×W, C = 1 or 3, values in [0, 1]) under corruption ``name`` at ``severity`` (1-5):
    float32 N×C×H×W in [0, 1] on ``images``' device. ``indices`` are the images' positions in their data set
    (default 0..N-1): image i's randomness depends only on (``seed``, indices[i], name, severity)."""
    corruption = CORRUPTIONS.get(name)
    severity = check_severity(severity)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise InvalidArgumentError(f"corruptions take images N×C×H×W with 1 or 3 channels, got shape "
                                   f"{tuple(images.shape)}; convert the images to grey or RGB first")
    count = images.shape[0]
    index_list = list(range(count)) if indices is None else [int(i) for i in indices]
    if len(index_list) != count:
        raise InvalidArgumentError(f"{len(index_list)} indices for {count} images; give one index per image")
    if count == 0:
        return images.detach().float().clone()
    pixels = images.detach().float().cpu()
    if not torch.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1:
        raise InvalidArgumentError("images to corrupt must be finite and in [0, 1] (trustkit's pixel space); "
                                   "undo any normalisation first")
    from PIL import Image

    function, takes_seed = _function(corruption.function)
    channels, height, width = pixels.shape[1:]
    array = (pixels * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # N×H×W×C
    if channels == 1:
        array = np.repeat(array, 3, axis=3)
    out = np.empty((count, height, width, channels), dtype=np.uint8)
    saved = np.random.get_state()
    try:
        for i in range(count):
            s = image_seed(seed, index_list[i], corruption)
            np.random.seed(s)
            extra: dict[str, Any] = {"seed": s} if takes_seed else {}
            # what the package's corrupt() does after its size check: a PIL image in, uint8 (truncated) out
            result = np.uint8(function(Image.fromarray(np.ascontiguousarray(array[i])), severity, **extra))
            if result.ndim == 2:
                result = result[..., None]
            if channels == 1:
                result = np.rint(result.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
            out[i] = result
    finally:
        np.random.set_state(saved)
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div(255).to(images.device)


NOT_COMPARABLE = ("Not comparable with the published CIFAR-10-C (or MNIST-C, ImageNet-C) files: these corrupted "
                  "images are generated here, by the package's ImageNet-C parameters at the images' own size and "
                  "with trustkit's seeds, not read from the released data sets (whose CIFAR-10 parameters are "
                  "milder), and mCE is relative to a baseline of this run, not to AlexNet.")


def corruption_errors(errors: dict[str, list[float]], clean_error: float, baseline_errors: dict[str, list[float]],
                      baseline_clean_error: float) -> dict[str, Any]:
    """Hendrycks & Dietterich's corruption errors of a model against a baseline, all as fractions (1.0 = the
    baseline's). ``errors[c]`` are the model's error rates (0-1) on corruption c at each severity, in the same
    order as the baseline's; ``clean_error`` its error on clean images.

    CE_c = Σ_s E_s,c / Σ_s E_s,c(baseline);  relative CE_c = Σ_s (E_s,c − E_clean) / Σ_s (E_s,c(baseline) −
    E_clean(baseline)); mCE and relative mCE are their means over the corruptions where they are defined (a
    zero denominator, i.e. a baseline that makes no error or does not degrade, leaves that type out)."""
    ce: dict[str, float] = {}
    relative: dict[str, float] = {}
    for name, values in errors.items():
        base = baseline_errors.get(name)
        if base is None or len(base) != len(values):
            continue
        total = sum(base)
        if total > 0:
            ce[name] = sum(values) / total
        degradation = sum(b - baseline_clean_error for b in base)
        if degradation > 0 and math.isfinite(degradation) and math.isfinite(clean_error):
            relative[name] = sum(v - clean_error for v in values) / degradation
    return {"ce": ce, "relative_ce": relative,
            "mce": sum(ce.values()) / len(ce) if ce else math.nan,
            "relative_mce": sum(relative.values()) / len(relative) if relative else math.nan}
