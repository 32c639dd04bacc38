"""Deterministic autoencoders from the CS5242-style labs: an MLP one and a convolutional one.

Both work in [-1, 1] internally (Tanh output, mean squared reconstruction error) and return [0, 1] images.
They have no prior over codes, so :meth:`sample_latent` draws each code dimension from a Gaussian with the
mean and standard deviation measured on the encoded training set (:meth:`finish_training`) — the lab's
recipe, and its lesson: such samples come out blurry or broken, which is what motivates VAEs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trustkit.data.base import to_unit_float
from trustkit.errors import ShapeMismatchError
from trustkit.generative.base import Logs, ReconstructionModel, to_signed, to_unit
from trustkit.generative.nets import Reshape, mlp

STATISTICS_IMAGES = 10_000  # code mean/std from at most this many training images (plenty for 2 moments)


class _CodeStatistics(ReconstructionModel):
    """Shared by both autoencoders: code mean/std buffers and the Gaussian sampling they imply."""

    kind = "autoencoder"

    def _init_code_statistics(self) -> None:
        self.register_buffer("code_mean", torch.zeros(self.latent_dim))
        self.register_buffer("code_std", torch.ones(self.latent_dim))

    def latent_from_noise(self, noise: torch.Tensor) -> torch.Tensor:
        return self.code_mean + self.code_std * noise

    @torch.no_grad()
    def finish_training(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        was_training = self.training
        self.eval()
        codes = torch.cat([self.encode(to_unit_float(images[i:i + 512]).to(self.device))
                           for i in range(0, min(len(images), STATISTICS_IMAGES), 512)])
        self.train(was_training)
        self.code_mean.copy_(codes.mean(0))
        self.code_std.copy_(codes.std(0) if len(codes) > 1 else torch.ones_like(self.code_std))

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        target = to_signed(x)
        loss = F.mse_loss(self.reconstruct_signed(target), target)
        return loss, {"loss": loss.detach()}

    def reconstruct_signed(self, x_signed: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class MLPAutoencoder(_CodeStatistics):
    """784 → 128 → 64 → latent → 64 → 128 → 784, ReLU, Tanh output (218,643 parameters at latent 3 on MNIST).

    ``latent_dim`` defaults to the lab's 3; larger codes give clearer reconstructions.
    """

    def __init__(self, shape: tuple[int, int, int], num_classes: int, *, latent_dim: int = 3) -> None:
        super().__init__(shape, num_classes, latent_dim)
        self.options = {"latent_dim": latent_dim}
        pixels = math.prod(shape)
        self.encoder = nn.Sequential(nn.Flatten(), mlp([pixels, 128, 64, latent_dim]))
        self.decoder = nn.Sequential(mlp([latent_dim, 64, 128, pixels]), nn.Tanh(), Reshape(*shape))
        self._init_code_statistics()

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(to_signed(x))

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return to_unit(self.decoder(z))

    def reconstruct_signed(self, x_signed: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x_signed))


class ConvAutoencoder(_CodeStatistics):
    """Conv 3×3 (C→32), ReLU, MaxPool → Conv 3×3 (32→64), ReLU, MaxPool; code = 64×(H/4)×(W/4) (64×2×2 on
    8×8 digits, as in the lab); decoder mirrors it with 2×2 stride-2 transposed convs and a Tanh output."""

    def __init__(self, shape: tuple[int, int, int], num_classes: int) -> None:
        channels, height, width = shape
        if height % 4 or width % 4:
            raise ShapeMismatchError(f"conv-ae needs height and width divisible by 4, got {height}×{width}; "
                                     "use the MLP autoencoder 'ae' for these images")
        code_shape = (64, height // 4, width // 4)
        super().__init__(shape, num_classes, math.prod(code_shape))
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.decoder = nn.Sequential(
            Reshape(*code_shape),
            nn.ConvTranspose2d(64, 32, 2, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(32, channels, 2, stride=2), nn.Tanh())
        self._init_code_statistics()

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(to_signed(x))

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return to_unit(self.decoder(z))

    def reconstruct_signed(self, x_signed: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x_signed))
