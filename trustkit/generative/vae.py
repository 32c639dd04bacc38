"""Variational autoencoders (Kingma & Welling 2014): MLP, convolutional, β-VAE and conditional VAE.

The encoder outputs μ and log σ²; z = μ + σ ⊙ ε; the decoder outputs Bernoulli logits per pixel; the loss is
−log p(x|z) + β·KL(q(z|x) ‖ N(0, I)) with the closed-form KL Σ(σ² + μ² − log σ² − 1)/2 (nats per image).
Grey data sets are binarised stochastically on the fly (``binarize``, on by default for one channel), which
makes the Bernoulli likelihood a proper one and the NLL comparable with published MNIST figures (~90 nats for
a standard VAE). Colour images are fitted with the same cross-entropy on continuous targets.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from trustkit.generative.base import Logs, ReconstructionModel
from trustkit.generative.likelihood import bernoulli_log_likelihood, binarize, gaussian_kl
from trustkit.generative.nets import ConvEncoder, ConvGenerator, Reshape, default_width, mlp

LATENT_DIMS = {8: 8, 28: 32, 32: 64, 64: 64}
CONV_WIDTHS = {8: 32, 28: 32, 32: 32, 64: 32}


class VAE(ReconstructionModel):
    """Shared VAE logic; subclasses build ``self.encoder`` (x -> 2·latent features) and ``self.decoder``
    (z -> logits) and may condition both on the class (``conditional``)."""

    kind = "vae"

    def __init__(self, shape: tuple[int, int, int], num_classes: int, latent_dim: int | None, beta: float,
                 binarize: bool | None) -> None:
        latent_dim = latent_dim or LATENT_DIMS[min(LATENT_DIMS, key=lambda s: abs(s - shape[1]))]
        super().__init__(shape, num_classes, latent_dim)
        self.beta = beta
        self.binarize = shape[0] == 1 if binarize is None else binarize
        self.options = {"latent_dim": latent_dim, "beta": beta, "binarize": self.binarize}

    # --- encoder / decoder with optional conditioning -------------------------------------------------
    def encoder_input(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return x

    def decoder_input(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return z

    def posterior(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of q(z|x), each N×latent_dim, for images ``x`` in [0, 1]."""
        mu, logvar = self.encoder(self.encoder_input(x, labels)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)  # keeps exp() finite early in training

    def logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self.decoder_input(z, labels)).view(-1, *self.shape)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x|z) per image (nats) under the Bernoulli decoder."""
        return bernoulli_log_likelihood(self.logits(z, labels), x)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            labels = self.check_labels(labels, len(x))
        return self.posterior(x, labels)[0]

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.logits(z, labels))

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, Logs]:
        target = binarize(x) if self.binarize else x
        labels = labels if self.conditional else None
        mu, logvar = self.posterior(target, labels)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        reconstruction = -self.log_likelihood(target, z, labels)
        kl = gaussian_kl(mu, logvar)
        loss = (reconstruction + self.beta * kl).mean()
        return loss, {"loss": loss.detach(), "reconstruction": reconstruction.mean().detach(),
                      "kl": kl.mean().detach(), "elbo": -(reconstruction + kl).mean().detach()}


class MLPVAE(VAE):
    """MLP VAE: pixels → 512 → 256 → (μ, log σ²) of ``latent_dim`` (32 on MNIST) and the mirror image back."""

    def __init__(self, shape: tuple[int, int, int], num_classes: int, *, latent_dim: int | None = None,
                 beta: float = 1.0, binarize: bool | None = None, hidden: tuple[int, int] = (512, 256)) -> None:
        super().__init__(shape, num_classes, latent_dim, beta, binarize)
        self.options["hidden"] = list(hidden)
        pixels, extra = math.prod(shape), self.num_classes if self.conditional else 0
        self.encoder = mlp([pixels + extra, *hidden, 2 * self.latent_dim])
        self.decoder = mlp([self.latent_dim + extra, *reversed(hidden), pixels])

    def encoder_input(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return x.flatten(1)


class ConditionalVAE(MLPVAE):
    """Conditional VAE (Sohn et al. 2015): the one-hot class is appended to the encoder's pixels and to z."""

    conditional = True

    def encoder_input(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        assert labels is not None, "a conditional VAE needs labels"
        return torch.cat([x.flatten(1), self.one_hot(labels).to(x.dtype)], dim=1)

    def decoder_input(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        assert labels is not None, "a conditional VAE needs labels"
        return torch.cat([z, self.one_hot(labels).to(z.dtype)], dim=1)


class ConvVAE(VAE):
    """Convolutional VAE: DCGAN-style strided-conv encoder (LeakyReLU, no normalisation, so that q(z|x) of one
    image never depends on the rest of its batch) and a transposed-conv decoder with batch norm."""

    def __init__(self, shape: tuple[int, int, int], num_classes: int, *, latent_dim: int | None = None,
                 beta: float = 1.0, binarize: bool | None = None, width: int | None = None) -> None:
        super().__init__(shape, num_classes, latent_dim, beta, binarize)
        width = width or default_width(shape[1], CONV_WIDTHS)
        self.options["width"] = width
        trunk = ConvEncoder(shape, width, norm="none")
        self.encoder = nn.Sequential(trunk, nn.Linear(trunk.out_features, 2 * self.latent_dim))
        self.decoder = nn.Sequential(ConvGenerator(self.latent_dim, shape, width // 2, norm="batch"),
                                     Reshape(*shape))


class BetaVAE(ConvVAE):
    """β-VAE (Higgins et al. 2017): the convolutional VAE with the KL weighted by β (default 4), which trades
    reconstruction for a smoother, more disentangled latent space."""

    def __init__(self, shape: tuple[int, int, int], num_classes: int, *, latent_dim: int | None = None,
                 beta: float = 4.0, binarize: bool | None = None, width: int | None = None) -> None:
        super().__init__(shape, num_classes, latent_dim=latent_dim, beta=beta, binarize=binarize, width=width)
