"""Privacy audits: feature inversion per layer (white-box, inverse network, generative prior), reconstruction
metrics and re-identification, split-layer mitigations, membership inference and model inversion.

Entry points: :func:`trustkit.engine.run_audit` (the whole audit and its report, as the cells of :mod:`trustkit.studies.privacy_audit`) and the attacks in
:mod:`trustkit.privacy.inversion` / :mod:`trustkit.privacy.inverse_net`. See docs/privacy.md.
"""
from __future__ import annotations

from trustkit.privacy.inverse_net import InverseNetworkAttack
from trustkit.privacy.inversion import GenerativePriorInversion, InversionAttack, InversionTarget, WhiteBoxInversion
from trustkit.models.features import FeatureExtractor, LayerInfo, describe_layers, resolve_layers
from trustkit.privacy.metrics import psnr, ssim

__all__ = ["FeatureExtractor", "GenerativePriorInversion", "InverseNetworkAttack", "InversionAttack",
           "InversionTarget", "LayerInfo", "WhiteBoxInversion", "describe_layers", "psnr", "resolve_layers", "ssim"]
