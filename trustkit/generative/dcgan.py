"""DCGAN (Radford et al. 2016): strided convs in D, fractional-strided convs in G, batch norm in both (not on
the G output or the D input), ReLU + Tanh generator, LeakyReLU(0.2) discriminator, Adam(2e-4, β1 0.5).

Losses as taught: D minimises BCE(D(x) -> real) + BCE(D(G(z)) -> 0) with one-sided label smoothing (real
target ``real_label``, 0.9 by default); G minimises the non-saturating −log D(G(z)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trustkit.generative.base import AdversarialModel, Logs
from trustkit.generative.nets import ConvEncoder, ConvGenerator, default_width

# Widths (base channel count) per image side, chosen so an MNIST epoch takes tens of seconds on 2 CPU cores;
# width 64 at 28×28 reproduces the lecture's 256-128-64 generator (≈10× slower on a CPU). On 8×8 digits D has
# a single conv layer, and 64 channels there (vs 32) cut the domain FID of 60-epoch runs from ~110 to ~30.
GENERATOR_WIDTHS = {8: 32, 28: 16, 32: 32, 64: 16}
DISCRIMINATOR_WIDTHS = {8: 64, 28: 32, 32: 32, 64: 32}


def default_latent_dim(side: int) -> int:
    """100 as in the lectures' MNIST/CIFAR generators, 128 for 64×64 faces (the lectures' face GAN)."""
    return 128 if side >= 64 else 100


class DCGAN(AdversarialModel):
    """Unconditional DCGAN for square images of side 8, 28, 32 or 64 (any even side >= 8 works).

    ``latent_dim``: length of z (default 100, 128 at 64×64); ``width``/``d_width``: base channels of G/D
    (see GENERATOR_WIDTHS); ``dropout``: dropout before D's last layer (default 0.2 at 64×64, the lecture's
    face D, which also keeps D from overpowering G on the 6,400 training faces; 0 elsewhere);
    ``real_label``: target of real images in D's loss (1.0 disables label smoothing).
    """

    conditional = False

    def __init__(self, shape: tuple[int, int, int], num_classes: int, *, latent_dim: int | None = None,
                 width: int | None = None, d_width: int | None = None, dropout: float | None = None,
                 real_label: float = 0.9) -> None:
        side = shape[1]
        dropout = (0.2 if side >= 64 else 0.0) if dropout is None else dropout
        latent_dim = latent_dim or default_latent_dim(side)
        super().__init__(shape, num_classes, latent_dim)
        width = width or default_width(side, GENERATOR_WIDTHS)
        d_width = d_width or default_width(side, DISCRIMINATOR_WIDTHS)
        self.options = {"latent_dim": latent_dim, "width": width, "d_width": d_width, "dropout": dropout,
                        "real_label": real_label}
        self.real_label = real_label
        self.generator = self.build_generator(latent_dim, width)
        self.discriminator = self.build_discriminator(d_width, dropout)

    # --- architecture hooks (conditional variants override these) ---------------------------------------
    def build_generator(self, latent_dim: int, width: int) -> nn.Module:
        return nn.Sequential(ConvGenerator(latent_dim, self.shape, width, norm="batch", act="relu"), nn.Tanh())

    def build_discriminator(self, width: int, dropout: float) -> nn.Module:
        trunk = ConvEncoder(self.shape, width, norm="batch")
        return nn.Sequential(trunk, nn.Dropout(dropout), nn.Linear(trunk.out_features, 1))

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z)


    def critic(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Discriminator logits (N,) for images ``x`` in [-1, 1]."""
        return self.discriminator(x).squeeze(1)

    # --- losses ------------------------------------------------------------------------------------------
    def discriminator_loss(self, real: torch.Tensor, labels: torch.Tensor, z: torch.Tensor,
                           fake_labels: torch.Tensor | None) -> tuple[torch.Tensor, Logs]:
        with torch.no_grad():
            fake = self.generate(z, fake_labels)
        real_logits = self.critic(real, labels)
        fake_logits = self.critic(fake, fake_labels)
        loss = (F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, self.real_label))
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        return loss, {"d_loss": loss.detach(), "d_real": torch.sigmoid(real_logits).mean().detach(),
                      "d_fake": torch.sigmoid(fake_logits).mean().detach()}

    def generator_loss(self, z: torch.Tensor, fake_labels: torch.Tensor | None) -> tuple[torch.Tensor, Logs]:
        logits = self.critic(self.generate(z, fake_labels), fake_labels)
        loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))  # non-saturating −log D(G(z))
        return loss, {"g_loss": loss.detach()}


class ResizeDCGAN(DCGAN):
    """DCGAN whose generator's last up-sampling is nearest-neighbour resize + 3×3 conv instead of a transposed
    conv: the variant known to remove the spectral artefact that frequency-based fake detectors rely on."""

    def build_generator(self, latent_dim: int, width: int) -> nn.Module:
        return nn.Sequential(ConvGenerator(latent_dim, self.shape, width, norm="batch", act="relu", last="resize"),
                             nn.Tanh())
