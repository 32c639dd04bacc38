"""Class-conditioned GANs on the DCGAN architecture.

* Conditional GAN (Mirza & Osindero 2014): the one-hot class is appended to z for G and given to D as K
  constant image planes, so D judges "real image of this class".
* ACGAN (Odena et al. 2017): G is conditioned the same way; D sees only the image and has two heads, a
  real/fake logit and an auxiliary K-way classifier. D minimises source BCE + class cross-entropy on real and
  fake images; G minimises the non-saturating source loss + class cross-entropy of its samples.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trustkit.generative.base import Logs
from trustkit.generative.dcgan import DCGAN
from trustkit.generative.nets import ConvEncoder, ConvGenerator, label_planes


class ConditionalGAN(DCGAN):
    """DCGAN whose G gets [z, one-hot(y)] and whose D gets the image stacked with K label planes."""

    conditional = True

    def build_generator(self, latent_dim: int, width: int) -> nn.Module:
        return nn.Sequential(ConvGenerator(latent_dim + self.num_classes, self.shape, width), nn.Tanh())

    def build_discriminator(self, width: int, dropout: float) -> nn.Module:
        channels, height, width_px = self.shape
        trunk = ConvEncoder((channels + self.num_classes, height, width_px), width, norm="batch")
        return nn.Sequential(trunk, nn.Dropout(dropout), nn.Linear(trunk.out_features, 1))

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        assert labels is not None, "conditional generators need labels"
        return self.generator(torch.cat([z, self.one_hot(labels)], dim=1))

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        assert labels is not None, "conditional discriminators need labels"
        planes = label_planes(labels, self.num_classes, x.shape[-1]).to(x.dtype)
        return self.discriminator(torch.cat([x, planes], dim=1)).squeeze(1)


class ACGANDiscriminator(nn.Module):
    """Shared conv trunk with a real/fake head (1 logit) and an auxiliary class head (K logits)."""

    def __init__(self, shape: tuple[int, int, int], num_classes: int, width: int, dropout: float) -> None:
        super().__init__()
        self.trunk = ConvEncoder(shape, width, norm="batch")
        self.dropout = nn.Dropout(dropout)
        self.source = nn.Linear(self.trunk.out_features, 1)
        self.classes = nn.Linear(self.trunk.out_features, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.dropout(self.trunk(x))
        return self.source(features).squeeze(1), self.classes(features)


class ACGAN(ConditionalGAN):
    """Auxiliary-classifier GAN: conditional G, unconditional D with a class head."""

    def build_discriminator(self, width: int, dropout: float) -> nn.Module:
        return ACGANDiscriminator(self.shape, self.num_classes, width, dropout)

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.discriminator(x)[0]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits N×K of D's auxiliary head for images in [-1, 1]."""
        return self.discriminator(x)[1]

    def discriminator_loss(self, real: torch.Tensor, labels: torch.Tensor, z: torch.Tensor,
                           fake_labels: torch.Tensor | None) -> tuple[torch.Tensor, Logs]:
        assert fake_labels is not None
        with torch.no_grad():
            fake = self.generate(z, fake_labels)
        real_source, real_classes = self.discriminator(real)
        fake_source, fake_classes = self.discriminator(fake)
        source = (F.binary_cross_entropy_with_logits(real_source, torch.full_like(real_source, self.real_label))
                  + F.binary_cross_entropy_with_logits(fake_source, torch.zeros_like(fake_source)))
        auxiliary = F.cross_entropy(real_classes, labels) + F.cross_entropy(fake_classes, fake_labels)
        loss = source + auxiliary
        return loss, {"d_loss": loss.detach(), "d_aux": auxiliary.detach(),
                      "d_real": torch.sigmoid(real_source).mean().detach(),
                      "d_fake": torch.sigmoid(fake_source).mean().detach(),
                      "aux_accuracy": (real_classes.argmax(1) == labels).float().mean().detach()}

    def generator_loss(self, z: torch.Tensor, fake_labels: torch.Tensor | None) -> tuple[torch.Tensor, Logs]:
        assert fake_labels is not None
        source, classes = self.discriminator(self.generate(z, fake_labels))
        auxiliary = F.cross_entropy(classes, fake_labels)
        loss = F.binary_cross_entropy_with_logits(source, torch.ones_like(source)) + auxiliary
        return loss, {"g_loss": loss.detach(), "g_aux": auxiliary.detach()}
