"""Feature-inversion attacks: rebuild the private input x from its features Φ0 = Φ(x) at one layer.

Three attackers, one interface (:class:`InversionAttack.reconstruct`):

- :class:`WhiteBoxInversion` — the attacker knows the network up to the layer and solves
  x* = argmin_{x ∈ [0,1]} ‖Φ(x) − Φ0‖² / ‖Φ0‖² + λ·TV_β(x) by projected Adam with restarts (Mahendran &
  Vedaldi 2015; the rMLE attack of He et al. 2019). TV_β(x) = Σ ((x[i,j+1]−x[i,j])² + (x[i+1,j]−x[i,j])²)^(β/2)
  divided by the number of pixels, so λ does not depend on the image size.
- :class:`~trustkit.privacy.inverse_net.InverseNetworkAttack` — black-box: a decoder trained on auxiliary
  data to map features back to images (Dosovitskiy & Brox 2016; He et al. 2019), see ``inverse_net.py``.
- :class:`GenerativePriorInversion` — optimise the latent z of a trustkit VAE/GAN so that Φ(G(z)) matches Φ0;
  the reconstruction is G(z*), a picture the generator finds plausible.
"""
from __future__ import annotations

import abc
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from trustkit.errors import CheckpointError, InvalidArgumentError
from trustkit.images import total_variation
from trustkit.models.features import FeatureExtractor, LayerInfo, frozen
from trustkit.runtime import log, progress


@dataclass
class InversionTarget:
    """What an inversion attacker is given: the target model (white-box access where the attack needs it),
    the attacked layer, the image shape, auxiliary images from the same distribution (the training split,
    [0, 1]) and identifiers used to cache trained attack components."""

    model: nn.Module
    model_name: str
    dataset: str
    layer: LayerInfo
    image_shape: tuple[int, int, int]
    aux_images: torch.Tensor | None = None
    fingerprint: str = ""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    data_root: str | os.PathLike | None = None
    # A split-layer mitigation applied to the features the attacker observes (None: the raw features). An
    # adaptive attacker knows it: the inverse network trains on transformed features.
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    transform_name: str = ""

    def extractor(self, with_transform: bool = False) -> FeatureExtractor:
        """Φ for this layer; ``with_transform`` also applies the mitigation (what the attacker observes)."""
        return FeatureExtractor(self.model, self.layer, self.transform if with_transform else None)


def feature_distance(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image ‖Φ − Φ0‖² / ‖Φ0‖² (Mahendran & Vedaldi's normalised loss; 1 for Φ = 0)."""
    diff = (features - target).flatten(1).pow(2).sum(1)
    return diff / target.flatten(1).pow(2).sum(1).clamp_min(1e-12)


def _cosine(step: int, steps: int, lr: float) -> float:
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps))))


class InversionAttack(abc.ABC):
    """Base of the inversion attacks: ``reconstruct(target, features, seed)`` -> images N×C×H×W in [0, 1]."""

    name: ClassVar[str] = "inversion"
    access: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def params(self) -> dict[str, Any]:
        return {}

    def prepare(self, target: InversionTarget, seed: int = 0) -> dict[str, Any]:
        """Train or load whatever the attack needs for ``target`` (before the clock of reconstruct starts);
        returns notes for the report."""
        return {}

    @abc.abstractmethod
    def reconstruct(self, target: InversionTarget, features: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """The victims rebuilt from their observed ``features``: N×C×H×W in [0, 1]."""


def _best_of_restarts(objective: torch.Tensor, candidates: torch.Tensor, n: int, restarts: int) -> torch.Tensor:
    """Per image, the candidate (restart-major layout: restart r of image i at r·n + i) with the lowest objective."""
    best = objective.view(restarts, n).argmin(0)
    return candidates.view(restarts, n, *candidates.shape[1:])[best, torch.arange(n)]


class WhiteBoxInversion(InversionAttack):
    """Regularised optimisation x* = argmin ‖Φ(x) − Φ0‖²/‖Φ0‖² + λ·TV_β(x) over x ∈ [0, 1] (projected Adam,
    cosine-decayed step size), best of ``restarts`` random starts per image."""

    name = "white-box"
    access = "white-box: weights up to the layer"
    description = "optimisation with a TV prior (Mahendran & Vedaldi 2015; He et al. 2019 rMLE)"

    def __init__(self, steps: int = 300, lr: float = 0.05, tv_weight: float = 0.02, tv_beta: float = 2.0,
                 restarts: int = 2, batch_size: int = 128) -> None:
        if steps < 1 or restarts < 1 or batch_size < 1:
            raise InvalidArgumentError(f"white-box inversion needs steps, restarts and batch size >= 1, got "
                                       f"{steps}, {restarts}, {batch_size}")
        if tv_weight < 0 or lr <= 0 or tv_beta <= 0:
            raise InvalidArgumentError(f"white-box inversion needs lr > 0, tv_weight >= 0, tv_beta > 0; got {lr}, "
                                       f"{tv_weight}, {tv_beta}")
        self.steps, self.lr, self.tv_weight, self.tv_beta = steps, lr, tv_weight, tv_beta
        self.restarts, self.batch_size = restarts, batch_size

    def params(self) -> dict[str, Any]:
        return {"steps": self.steps, "lr": self.lr, "tv_weight": self.tv_weight, "tv_beta": self.tv_beta,
                "restarts": self.restarts}

    def reconstruct(self, target: InversionTarget, features: torch.Tensor, seed: int = 0) -> torch.Tensor:
        extractor = target.extractor()
        generator = torch.Generator().manual_seed(seed)
        outputs = []
        with frozen(target.model), progress(f"white-box inversion of {target.layer.alias}",
                                            self.steps * -(-len(features) // self.batch_size)) as bar:
            for start in range(0, len(features), self.batch_size):
                goal = features[start:start + self.batch_size].to(target.device)
                outputs.append(self._invert_batch(extractor, goal, target.image_shape, generator, bar).cpu())
        return torch.cat(outputs)

    def _objective(self, extractor: nn.Module, x: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return feature_distance(extractor(x), goal) + self.tv_weight * total_variation(x, self.tv_beta)

    def _invert_batch(self, extractor: nn.Module, goal: torch.Tensor, shape: tuple[int, ...],
                      generator: torch.Generator, bar: Any) -> torch.Tensor:
        n, restarts = len(goal), self.restarts
        goals = goal.repeat(restarts, *([1] * (goal.ndim - 1)))
        x = torch.rand(n * restarts, *shape, generator=generator).to(goal.device).requires_grad_(True)
        optimizer = torch.optim.Adam([x], lr=self.lr)
        for step in range(self.steps):
            for group in optimizer.param_groups:
                group["lr"] = _cosine(step, self.steps, self.lr)
            loss = self._objective(extractor, x, goals).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                x.clamp_(0, 1)
            bar.advance()
        with torch.no_grad():
            final = self._objective(extractor, x, goals)
        return _best_of_restarts(final, x.detach(), n, restarts)


# Epochs for generator priors trained on demand (trustkit gen's defaults are tuned for sampling, and
# Olivetti's 320 training images need many passes).
PRIOR_EPOCHS = {"digits": 40, "mnist": 5, "olivetti": 300, "faces": 15, "cifar10": 10}
DEFAULT_PRIOR = "vae"


def resolve_prior(spec: str, dataset: str, *, device: torch.device, data_root: str | os.PathLike | None = None,
                  seed: int = 0, train_if_missing: bool = True) -> Any:
    """The unconditional generative model ``spec`` (name, store entry or .safetensors) for ``dataset``; a
    registered name missing from the store is trained on the training split and cached (``gen-<name>-<data>``)."""
    from trustkit.generative import GENERATIVE_MODELS
    from trustkit.generative.store import resolve_generator

    try:
        loaded = resolve_generator(spec, dataset, device)
    except CheckpointError:
        if not (train_if_missing and spec in GENERATIVE_MODELS):
            raise
        from trustkit.generative.run import train_generator
        from trustkit.generative.store import store_name

        epochs = PRIOR_EPOCHS.get(dataset)
        log(f"no trained generator '{spec}' for {dataset}: training one for the generative-prior attack "
            f"({epochs or 'default'} epochs, cached as {store_name(spec, dataset)})")
        train_generator(spec, dataset, seed=seed, device=device, data_root=data_root, epochs=epochs)
        loaded = resolve_generator(spec, dataset, device)
    if loaded.model.conditional:
        raise InvalidArgumentError(f"generator '{loaded.name}' is class-conditional, but the attacker does not know "
                                   "the class; use an unconditional one (vae, conv-vae, dcgan, wgan-gp)")
    return loaded


class GenerativePriorInversion(InversionAttack):
    """z* = argmin_z ‖Φ(G(z)) − Φ0‖²/‖Φ0‖² + γ·‖u‖²/d with z = prior(u), u standard normal (so autoencoders'
    fitted code Gaussians and N(0, I) priors are handled alike); the reconstruction is G(z*). Best of
    ``restarts`` random latents per image."""

    name = "gen-prior"
    access = "white-box up to the layer + a generator trained on auxiliary data"
    description = "latent optimisation through a trustkit VAE/GAN decoder"

    def __init__(self, generator: str = DEFAULT_PRIOR, steps: int = 300, lr: float = 0.05,
                 latent_weight: float = 1e-3, restarts: int = 4, batch_size: int = 128) -> None:
        if steps < 1 or restarts < 1 or batch_size < 1:
            raise InvalidArgumentError(f"generative-prior inversion needs steps, restarts and batch size >= 1, got "
                                       f"{steps}, {restarts}, {batch_size}")
        if lr <= 0 or latent_weight < 0:
            raise InvalidArgumentError(f"generative-prior inversion needs lr > 0 and latent_weight >= 0, got {lr}, "
                                       f"{latent_weight}")
        self.generator_spec, self.steps, self.lr = generator, steps, lr
        self.latent_weight, self.restarts, self.batch_size = latent_weight, restarts, batch_size
        self._loaded: Any = None
        self._key: tuple | None = None
        self.last_noise: torch.Tensor | None = None  # u* of the last reconstruct(): G(prior(u*)) is the output

    def params(self) -> dict[str, Any]:
        return {"generator": self.generator_spec, "steps": self.steps, "lr": self.lr,
                "latent_weight": self.latent_weight, "restarts": self.restarts}

    def prepare(self, target: InversionTarget, seed: int = 0) -> dict[str, Any]:
        key = (self.generator_spec, target.dataset, str(target.device))
        if self._key != key:
            self._loaded = resolve_prior(self.generator_spec, target.dataset, device=target.device,
                                         data_root=target.data_root, seed=seed)
            self._key = key
        return {"generator": self._loaded.name, "generator_source": self._loaded.source}

    def reconstruct(self, target: InversionTarget, features: torch.Tensor, seed: int = 0) -> torch.Tensor:
        self.prepare(target, seed)
        decoder = self._loaded.model
        extractor = target.extractor()
        generator = torch.Generator().manual_seed(seed)
        outputs, noises = [], []
        with frozen(target.model), frozen(decoder), progress(f"generative-prior inversion of {target.layer.alias}",
                                                             self.steps * -(-len(features) // self.batch_size)) as bar:
            for start in range(0, len(features), self.batch_size):
                goal = features[start:start + self.batch_size].to(target.device)
                images, noise = self._invert_batch(decoder, extractor, goal, generator, bar)
                outputs.append(images.cpu())
                noises.append(noise.cpu())
        self.last_noise = torch.cat(noises)
        return torch.cat(outputs)

    def _invert_batch(self, decoder: Any, extractor: nn.Module, goal: torch.Tensor, generator: torch.Generator,
                      bar: Any) -> tuple[torch.Tensor, torch.Tensor]:
        n, restarts = len(goal), self.restarts
        goals = goal.repeat(restarts, *([1] * (goal.ndim - 1)))
        noise = torch.randn(n * restarts, decoder.latent_dim, generator=generator).to(goal.device)
        noise.requires_grad_(True)
        optimizer = torch.optim.Adam([noise], lr=self.lr)

        def objective() -> tuple[torch.Tensor, torch.Tensor]:
            images = decoder.decode(decoder.latent_from_noise(noise)).to(goal.device)
            value = feature_distance(extractor(images), goals)
            return value + self.latent_weight * noise.pow(2).mean(1), images

        for step in range(self.steps):
            for group in optimizer.param_groups:
                group["lr"] = _cosine(step, self.steps, self.lr)
            loss, _ = objective()
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimizer.step()
            bar.advance()
        with torch.no_grad():
            final, images = objective()
        return (_best_of_restarts(final, images.detach().clamp(0, 1), n, restarts),
                _best_of_restarts(final, noise.detach(), n, restarts))

