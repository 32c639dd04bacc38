"""Frequency features of images for fake detection: azimuthally averaged log spectra and log DCT coefficients."""
from __future__ import annotations

import numpy as np
import torch

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights: colour images are judged on their luminance


def grey(images: torch.Tensor) -> np.ndarray:
    """N×C×H×W images (uint8 or [0, 1] float) -> N×H×W float64 luminance in [0, 1]."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if x.shape[1] == 3:
        x = sum(w * x[:, i] for i, w in enumerate(LUMA))
    else:
        x = x[:, 0]
    return x.double().cpu().numpy()


def radial_index(height: int, width: int) -> np.ndarray:
    """Integer distance of every frequency bin from the centre of a shifted spectrum."""
    yy, xx = np.indices((height, width))
    return np.round(np.hypot(yy - height // 2, xx - width // 2)).astype(np.int64)


def azimuthal_spectrum(images: torch.Tensor) -> np.ndarray:
    """Per image, the log FFT magnitude averaged over rings of equal frequency (Durall et al. 2020),
    min-max normalised: N × R, rings out to the corners (R = ⌈H/√2⌉ + 1 for a square image) — the corner
    frequencies are where transposed-convolution checkerboards live."""
    x = grey(images)
    spectrum = np.log(np.abs(np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1))) + 1e-8)
    n, h, w = spectrum.shape
    radius = radial_index(h, w)
    bins = int(radius.max()) + 1
    counts = np.bincount(radius.ravel(), minlength=bins)[:bins]
    profile = np.stack([np.bincount(radius.ravel(), weights=s.ravel(), minlength=bins)[:bins] / counts
                        for s in spectrum])
    low, high = profile.min(axis=1, keepdims=True), profile.max(axis=1, keepdims=True)
    return (profile - low) / np.maximum(high - low, 1e-12)


def log_dct(images: torch.Tensor) -> np.ndarray:
    """Per image, log |2-D DCT-II| (orthonormal) of the luminance, flattened (Frank et al. 2020): N × H·W."""
    from scipy.fft import dctn

    x = grey(images)
    return np.log(np.abs(dctn(x, axes=(-2, -1), norm="ortho")) + 1e-6).reshape(len(x), -1)
