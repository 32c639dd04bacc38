"""The black-box feature-inversion attack: a decoder trained to map features back to images.

The attacker can query the split model (images in, features out) on auxiliary data from the same
distribution — here the training split — and fits a network g with min Σ ‖g(Φ(x)) − x‖² (Dosovitskiy & Brox
2016; the black-box inverse-network attack of He et al. 2019). At attack time one forward pass of g rebuilds
the private image from its features; no gradients of the target are needed.

Trained decoders are cached in the checkpoint store as ``inv-<model>-<dataset>-<layer>`` (safetensors + JSON,
never pickle), keyed by a fingerprint of the target model's weights: retraining the target retrains them.
"""
from __future__ import annotations

import math
import re
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trustkit.batches import map_batches
from trustkit.errors import CheckpointError, InvalidArgumentError
from trustkit.fingerprint import state_dict_fingerprint
from trustkit.models.store import checkpoint_exists, read_checkpoint, save_checkpoint, store_path
from trustkit.privacy.inversion import InversionAttack, InversionTarget
from trustkit.models.features import frozen
from trustkit.runtime import log, progress

KIND = "inverse-network"
MAX_AUX_IMAGES = 20000  # auxiliary images used for training (MNIST's 60,000 would only cost time)
FEATURE_CACHE_BYTES = 256 * 2 ** 20  # auxiliary features up to this size are computed once, not every step
ARCH_VERSION = 2  # bump when InverseNetwork changes: stored decoders of older versions are retrained


def model_fingerprint(model: nn.Module) -> str:
    """sha256 (first 16 hex digits) of a model's state dict: parameter names, shapes and bytes."""
    return state_dict_fingerprint(model)[:16]


class InverseNetwork(nn.Module):
    """Decoder from features of shape ``feature_shape`` (C×h×w maps or flat vectors) to images ``image_shape``.

    Maps: 3×3 conv to ``width`` channels at the feature resolution (``width``/2 when the maps are at more than a
    quarter of the image size, where convolutions are dearest); vectors: a linear layer onto a
    ``width``×(H/4)×(W/4) grid. Then stride-2 transposed convolutions up to the image size, halving the channels
    at each step (at least 8), a 3×3 conv, and a 3×3 conv to the image channels with a sigmoid (output in
    [0, 1]); a final bilinear resize fixes odd sizes. Inputs are standardised with the mean/std of the auxiliary
    features (buffers, saved with the weights).
    """

    def __init__(self, feature_shape: tuple[int, ...], image_shape: tuple[int, int, int], width: int = 32) -> None:
        super().__init__()
        self.feature_shape, self.image_shape = tuple(feature_shape), tuple(image_shape)
        channels, height, width_px = image_shape
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        if len(feature_shape) == 3:
            size = feature_shape[1]
            current = width if size * 4 <= height else max(8, width // 2)
            self.stem = nn.Sequential(nn.Conv2d(feature_shape[0], current, 3, padding=1), act())
        else:
            size, current = max(2, math.ceil(height / 4)), width
            self.stem = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(feature_shape), width * size * size), act(),
                                      nn.Unflatten(1, (width, size, size)))
        ups: list[nn.Module] = []
        while size * 2 <= height:
            following = max(8, current // 2)
            ups += [nn.ConvTranspose2d(current, following, 4, 2, 1), act()]
            size, current = size * 2, following
        self.body = nn.Sequential(*ups, nn.Conv2d(current, current, 3, padding=1), act(),
                                  nn.Conv2d(current, channels, 3, padding=1))
        self.register_buffer("feature_mean", torch.zeros(()))
        self.register_buffer("feature_std", torch.ones(()))
        self._out = (height, width_px)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = features.reshape(len(features), *self.feature_shape)
        out = self.body(self.stem((features - self.feature_mean) / self.feature_std))
        if tuple(out.shape[-2:]) != self._out:
            out = F.interpolate(out, size=self._out, mode="bilinear", align_corners=False)
        return torch.sigmoid(out)


def inverse_store_name(model_name: str, dataset: str, layer_alias: str) -> str:
    """Store entry of a trained inverse network: ``inv-cnn-olivetti-relu2``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"inv-{model_name}-{dataset}-{layer_alias}").replace(".", "_")


class InverseNetworkAttack(InversionAttack):
    """Train (or load from the store) a decoder per (model, data set, layer) on auxiliary images, then rebuild
    the private images with one forward pass. ``steps`` Adam steps of ``batch_size`` (cosine-decayed lr)."""

    name = "inverse-net"
    access = "black-box: feature queries on auxiliary data"
    description = "learned inverse network (Dosovitskiy & Brox 2016; He et al. 2019)"

    def __init__(self, steps: int = 1500, batch_size: int = 64, lr: float = 2e-3, width: int = 32,
                 cache: bool = True) -> None:
        if steps < 1 or batch_size < 1 or width < 1 or lr <= 0:
            raise InvalidArgumentError(f"the inverse network needs steps, batch size, width >= 1 and lr > 0, got "
                                       f"{steps}, {batch_size}, {width}, {lr}")
        self.steps, self.batch_size, self.lr, self.width, self.cache = steps, batch_size, lr, width, cache
        self._networks: dict[tuple, InverseNetwork] = {}
        self.notes: dict[str, Any] = {}

    def params(self) -> dict[str, Any]:
        return {"steps": self.steps, "batch_size": self.batch_size, "lr": self.lr, "width": self.width}

    def _options(self, target: InversionTarget, seed: int) -> dict[str, Any]:
        return {"arch_version": ARCH_VERSION, "steps": self.steps, "batch_size": self.batch_size, "lr": self.lr,
                "width": self.width, "seed": seed,
                "feature_shape": list(target.layer.shape), "image_shape": list(target.image_shape),
                "aux_images": min(MAX_AUX_IMAGES, len(target.aux_images) if target.aux_images is not None else 0)}

    @staticmethod
    def _key(target: InversionTarget, seed: int) -> tuple:
        return (target.fingerprint, target.layer.name, target.transform_name, seed)

    def prepare(self, target: InversionTarget, seed: int = 0) -> dict[str, Any]:
        key = self._key(target, seed)
        if key in self._networks:
            return self.notes[key]
        options = self._options(target, seed)
        path = store_path(inverse_store_name(target.model_name, target.dataset, target.layer.alias))
        # Decoders for mitigated features are trained per run only: the store keeps the raw-feature ones.
        cache = self.cache and target.transform is None
        network, notes = None, {}
        if cache and checkpoint_exists(path):
            network, notes = self._load(path, target, options)
        if network is None:
            network, notes = self._train(target, seed)
            if cache:
                save_checkpoint(network, {"kind": KIND, "target_model": target.model_name,
                                          "target_fingerprint": target.fingerprint, "dataset": target.dataset,
                                          "layer": target.layer.name, "layer_alias": target.layer.alias,
                                          "options": options, "metrics": notes}, path)
                notes = {**notes, "checkpoint": str(path)}
        self._networks[key] = network.to(target.device).eval()
        self.notes[key] = notes
        return notes

    def _load(self, path: Any, target: InversionTarget, options: dict[str, Any]) -> tuple[InverseNetwork | None, dict]:
        try:
            weights, meta = read_checkpoint(path)  # one open: weights and metadata of the same version
            if (meta.get("kind") != KIND or meta.get("target_fingerprint") != target.fingerprint
                    or meta.get("layer") != target.layer.name or meta.get("options") != options):
                return None, {}  # another target model or other settings: retrain (the entry is overwritten)
            network = InverseNetwork(tuple(options["feature_shape"]), tuple(options["image_shape"]), options["width"])
            network.load_state_dict(weights, strict=True)
        except (CheckpointError, RuntimeError, KeyError):
            return None, {}
        return network, {**meta.get("metrics", {}), "checkpoint": str(path), "cached": True}

    def _train(self, target: InversionTarget, seed: int) -> tuple[InverseNetwork, dict[str, Any]]:
        if target.aux_images is None or len(target.aux_images) == 0:
            raise InvalidArgumentError("the inverse-network attack needs auxiliary images (the training split)")
        started = time.perf_counter()
        generator = torch.Generator().manual_seed(seed)
        aux = target.aux_images
        if len(aux) > MAX_AUX_IMAGES:
            aux = aux[torch.randperm(len(aux), generator=generator)[:MAX_AUX_IMAGES]]
        extractor = target.extractor()  # clean Φ; the mitigation (if any) is applied per batch, fresh noise each time
        transform = target.transform if target.transform is not None else (lambda f: f)
        torch.manual_seed(seed)
        network = InverseNetwork(target.layer.shape, target.image_shape, self.width).to(target.device)
        cached: torch.Tensor | None = None
        with frozen(target.model), torch.no_grad():
            if len(aux) * target.layer.size * 4 <= FEATURE_CACHE_BYTES:
                cached = map_batches(extractor, aux, batch_size=256, device=target.device, out=None)
            sample = transform(cached[:512] if cached is not None else extractor(aux[:512].to(target.device)))
            network.feature_mean.fill_(float(sample.mean()))  # standardisation of what the attacker observes
            network.feature_std.fill_(float(sample.std().clamp_min(1e-6)))
        optimizer = torch.optim.Adam(network.parameters(), lr=self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, self.steps, eta_min=self.lr / 100)
        order = torch.randperm(len(aux), generator=generator)
        cursor, losses = 0, []
        network.train()
        with frozen(target.model), progress(f"train inverse network for {target.layer.alias}", self.steps) as bar:
            for _ in range(self.steps):
                if cursor + self.batch_size > len(order):
                    order, cursor = torch.randperm(len(aux), generator=generator), 0
                index = order[cursor:cursor + self.batch_size]
                x = aux[index].to(target.device)
                cursor += self.batch_size
                with torch.no_grad():  # the adaptive attacker learns from what it observes: transformed features
                    features = transform(cached[index.to(cached.device)] if cached is not None else extractor(x))
                loss = F.mse_loss(network(features), x)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                bar.advance()
        network.eval()
        seconds = time.perf_counter() - started
        final = sum(losses[-20:]) / len(losses[-20:])
        log(f"trained inverse network for {target.layer.label}: {self.steps} steps in {seconds:.1f} s, final "
            f"training MSE {final:.4f}")
        return network, {"train_seconds": round(seconds, 2), "final_train_mse": round(final, 6),
                         "aux_images": len(aux), "cached": False}

    def reconstruct(self, target: InversionTarget, features: torch.Tensor, seed: int = 0) -> torch.Tensor:
        self.prepare(target, seed)
        network = self._networks[self._key(target, seed)]
        with torch.no_grad():
            return map_batches(network, features, batch_size=256, device=target.device)
