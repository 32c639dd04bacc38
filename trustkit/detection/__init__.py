"""Fake-image detection: real/fake data from trustkit generators, detectors, generalisation and evasion."""
from __future__ import annotations

from trustkit.detection.base import FAKE, REAL, Detector
from trustkit.detection.cnn import CNNDetector
from trustkit.detection.cnn_blur_jpeg import BlurJPEGCNNDetector
from trustkit.detection.dct import DCTDetector
from trustkit.detection.spectral import SpectralDetector
from trustkit.registry import Registry

DETECTORS: Registry[type[Detector]] = Registry("detector")
DETECTORS.add("cnn", CNNDetector, summary="small CNN trained as a real/fake classifier")
DETECTORS.add("spectral", SpectralDetector, summary="azimuthal log-FFT profile + logistic regression (Durall et al. 2020)",
              aliases=("fft",))
DETECTORS.add("dct", DCTDetector, summary="log DCT coefficients + linear model (Frank et al. 2020)")
DETECTORS.add("cnn-blur-jpeg", BlurJPEGCNNDetector, summary="the CNN trained with random blur + JPEG (the CNNDetection "
              "protocol, Wang et al. 2020)")
# what a study trains unless asked (cnn-blur-jpeg joins with --protocol cnndetection or --detectors)
DEFAULT_DETECTORS = ("cnn", "spectral", "dct")


def make_detector(name: str, dataset: str) -> Detector:
    """A fresh detector ``name`` for images of ``dataset``."""
    cls = DETECTORS.get(name)
    return cls(dataset) if issubclass(cls, CNNDetector) else cls()


__all__ = ["DEFAULT_DETECTORS", "DETECTORS", "FAKE", "REAL", "Detector", "make_detector"]
