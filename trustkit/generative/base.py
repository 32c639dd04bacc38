"""The contract every generative model keeps: images in [0, 1] at the boundary, latents, (conditional) sampling.

Two kinds share it. :class:`ReconstructionModel` (autoencoders, VAEs) trains on one loss with one optimiser;
:class:`AdversarialModel` (GANs) trains a generator against a discriminator/critic with two optimisers. The
training loop (``trustkit.generative.train``) only talks to these two interfaces, so a new model is one file
that subclasses one of them, plus one registry line.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from trustkit.batches import map_batches
from trustkit.errors import InvalidArgumentError, ShapeMismatchError

Logs = dict[str, torch.Tensor]


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> [-1, 1] (the range Tanh generators and their discriminators work in)."""
    return x * 2 - 1


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped so rounding never leaves the pixel range."""
    return ((x + 1) / 2).clamp(0, 1)


class GenerativeModel(nn.Module):
    """Base of all trustkit generative models.

    ``shape`` is C×H×W of the images; ``num_classes`` the labels of the data set (used by conditional
    models); ``latent_dim`` the length of a latent vector z. Subclasses set ``kind`` and ``conditional``,
    store their constructor options in ``self.options`` (saved in checkpoints to rebuild the model) and
    implement :meth:`decode` (and :meth:`encode` when they have an encoder).
    """

    kind: ClassVar[str] = "generative"
    conditional: ClassVar[bool] = False
    has_encoder: ClassVar[bool] = False

    def __init__(self, shape: tuple[int, int, int], num_classes: int, latent_dim: int) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.num_classes = num_classes
        self.latent_dim = latent_dim
        self.options: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --- latents and labels -------------------------------------------------------------------------
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latent vectors from the model's prior, n×latent_dim on the model's device."""
        return self.latent_from_noise(torch.randn(n, self.latent_dim, generator=generator).to(self.device))

    def latent_from_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """Map standard-normal noise to the prior over latents (the identity for N(0, I) priors)."""
        return noise

    def default_labels(self, n: int) -> torch.Tensor | None:
        """Balanced labels 0, 1, ..., K-1, 0, 1, ... for conditional models; None for unconditional ones."""
        if not self.conditional:
            return None
        return torch.arange(n, device=self.device) % self.num_classes

    def check_labels(self, labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """Validate ``labels`` for ``n`` samples: required shape, range, and only for conditional models."""
        if labels is None:
            return self.default_labels(n)
        if not self.conditional:
            raise InvalidArgumentError(f"{type(self).__name__} is not class-conditional; drop the class labels "
                                       "or use a conditional model (cvae, cgan, acgan)")
        labels = torch.as_tensor(labels, device=self.device).long().reshape(-1)
        if labels.numel() == 1 and n > 1:
            labels = labels.expand(n)
        if len(labels) != n:
            raise ShapeMismatchError(f"got {len(labels)} class labels for {n} samples; give one label per sample")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise InvalidArgumentError(f"class labels must lie in 0..{self.num_classes - 1}, got "
                                       f"{int(labels.min())}..{int(labels.max())}")
        return labels

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(labels, self.num_classes).float()

    # --- the [0, 1] boundary ---------------------------------------------------------------------------
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images N×C×H×W in [0, 1] for latents ``z`` (and class ``labels`` if conditional)."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latent codes (the posterior mean for VAEs) of images ``x`` in [0, 1]; only when ``has_encoder``."""
        raise InvalidArgumentError(f"{type(self).__name__} has no encoder; use an autoencoder or VAE for this")

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
               batch_size: int = 500) -> torch.Tensor:
        """``n`` new images in [0, 1] (eval mode, no gradients), on the CPU; ``labels`` for conditional models
        (default: balanced over classes). ``generator`` seeds the latents."""
        if n < 1:
            raise InvalidArgumentError(f"the number of samples must be at least 1, got {n}")
        labels = self.check_labels(labels, n)
        was_training = self.training
        self.eval()
        try:
            z = self.sample_latent(n, generator)
            return map_batches(self.decode, z, labels, batch_size=batch_size)
        finally:
            self.train(was_training)

    def finish_training(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Hook run after every epoch with (a subset of) the training images, uint8 or float in [0, 1];
        autoencoders fit their code statistics here."""


class ReconstructionModel(GenerativeModel):
    """Models trained on one loss with one optimiser (autoencoders, VAEs)."""

    default_lr: ClassVar[float] = 1e-3
    default_betas: ClassVar[tuple[float, float]] = (0.9, 0.999)
    has_encoder = True

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        """``(loss to minimise, logs)`` for a batch of images ``x`` in [0, 1] with class ``labels``."""
        raise NotImplementedError


class AdversarialModel(GenerativeModel):
    """A generator ``self.generator`` trained against ``self.discriminator`` (a critic for WGANs).

    The training loop calls :meth:`discriminator_loss` ``critic_steps`` times per :meth:`generator_loss`.
    Both take real images in [-1, 1] (the generator's Tanh range). ``default_lr``/``default_betas`` are the
    Adam settings of the paper the model follows.
    """

    kind = "gan"
    default_lr: ClassVar[float] = 2e-4
    default_betas: ClassVar[tuple[float, float]] = (0.5, 0.999)
    critic_steps: ClassVar[int] = 1

    generator: nn.Module
    discriminator: nn.Module

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Generator output in [-1, 1] (with gradients); :meth:`decode` is the [0, 1] version."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return to_unit(self.generate(z, labels))

    def discriminator_loss(self, real: torch.Tensor, labels: torch.Tensor, z: torch.Tensor,
                           fake_labels: torch.Tensor | None) -> tuple[torch.Tensor, Logs]:
        """Loss of the discriminator on a real batch (in [-1, 1]) and a batch generated from ``z``."""
        raise NotImplementedError

    def generator_loss(self, z: torch.Tensor, fake_labels: torch.Tensor | None) -> tuple[torch.Tensor, Logs]:
        """Loss of the generator for latents ``z``."""
        raise NotImplementedError
