"""Feature vectors for the sample-quality metrics: the penultimate layer of a trustkit classifier.

The classifier is a zoo model trained on the same data set (``cnn`` by default; trained and stored by
``trustkit.train.zoo.ensure_trained`` if missing). Its penultimate activations, i.e. the input of the last
``nn.Linear`` in ``model.net`` (128 values for ``cnn``), are captured with a forward pre-hook, so one forward
pass gives both features and class probabilities.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from trustkit.errors import InvalidArgumentError
from trustkit.models.loading import LoadedModel, resolve_model
from trustkit.train.zoo import ensure_trained

MAX_FEATURES = 4096  # covariance D×D and its eigendecomposition: 4096² floats = 134 MB, ~10 s


def last_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of ``model.net`` (or of ``model``): its input is the penultimate feature vector."""
    root = getattr(model, "net", model)
    linears = [m for m in root.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InvalidArgumentError(f"classifier {type(root).__name__} has no nn.Linear layer to take penultimate "
                                   "features from; use a zoo classifier (cnn, mlp, resnet)")
    return linears[-1]


@dataclass
class FeatureBatch:
    """Penultimate features N×D and softmax probabilities N×K (CPU, float32)."""

    features: torch.Tensor
    probabilities: torch.Tensor


class FeatureExtractor:
    """Penultimate-layer features and class probabilities of a classifier on [0, 1] images."""

    def __init__(self, classifier: nn.Module, device: torch.device, name: str = "classifier") -> None:
        self.classifier = classifier.eval()
        self.device = device
        self.name = name
        self.layer = last_linear(classifier)
        self.dim = self.layer.in_features
        if self.dim > MAX_FEATURES:  # e.g. softmax on 64×64 faces: the "features" are the 12,288 raw pixels
            raise InvalidArgumentError(f"classifier '{name}' has {self.dim}-d penultimate features, too many for "
                                       f"a Fréchet distance (≤ {MAX_FEATURES}); use --classifier cnn, mlp or resnet")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 500) -> FeatureBatch:
        captured: list[torch.Tensor] = []
        handle = self.layer.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0].detach()))
        features, probabilities = [], []
        try:
            for start in range(0, len(images), batch_size):
                batch = images[start:start + batch_size].to(self.device).float()
                logits = self.classifier(batch)
                features.append(captured.pop().flatten(1).float().cpu())
                probabilities.append(torch.softmax(logits.float(), dim=1).cpu())
        finally:
            handle.remove()
        return FeatureBatch(torch.cat(features), torch.cat(probabilities))


def domain_feature_net(dataset: str, *, classifier: str = "cnn", data_root: str | os.PathLike | None = None,
                       device: str | torch.device = "cpu") -> tuple[FeatureExtractor, LoadedModel]:
    """The feature extractor of classifier ``classifier`` for ``dataset`` (trained and cached if missing)."""
    ensure_trained(classifier, dataset, device=device, data_root=data_root)
    loaded = resolve_model(classifier, dataset, data_root=data_root, device=device)
    device_used = next(loaded.module.parameters()).device
    return FeatureExtractor(loaded.module, device_used, loaded.name), loaded
