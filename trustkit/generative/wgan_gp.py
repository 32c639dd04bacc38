"""WGAN-GP (Gulrajani et al. 2017): a critic without sigmoid, trained on D(fake) − D(real) plus a gradient
penalty λ·(‖∇D(x̂)‖₂ − 1)² at random interpolates x̂ of real and fake; layer norm instead of batch norm in the
critic (batch norm would make the per-sample gradient norm depend on the batch); G minimises −D(G(z)).
Five critic steps per generator step, Adam(1e-4, β = (0, 0.9)), λ = 10, as in the paper.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from trustkit.generative.base import AdversarialModel, Logs
from trustkit.generative.dcgan import DISCRIMINATOR_WIDTHS, GENERATOR_WIDTHS, default_latent_dim
from trustkit.generative.nets import ConvEncoder, ConvGenerator, default_width


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean over the batch of (‖∇ₓ critic(x̂)‖₂ − 1)², x̂ = ε·real + (1 − ε)·fake with ε ~ U[0, 1] per sample.

    Built with ``create_graph=True`` so that the penalty itself can be differentiated w.r.t. critic weights.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), generator=generator).to(real)
    mixed = (eps * real + (1 - eps) * fake).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


class WGANGP(AdversarialModel):
    """Unconditional WGAN-GP on the DCGAN generator; critic = DCGAN-style conv stack with layer norm.

    ``gp_weight`` is λ; ``latent_dim``/``width``/``d_width`` as for :class:`~trustkit.generative.dcgan.DCGAN`.
    """

    default_lr = 1e-4
    default_betas = (0.0, 0.9)
    critic_steps = 5

    def __init__(self, shape: tuple[int, int, int], num_classes: int, *, latent_dim: int | None = None,
                 width: int | None = None, d_width: int | None = None, gp_weight: float = 10.0) -> None:
        side = shape[1]
        latent_dim = latent_dim or default_latent_dim(side)
        super().__init__(shape, num_classes, latent_dim)
        width = width or default_width(side, GENERATOR_WIDTHS)
        d_width = d_width or default_width(side, DISCRIMINATOR_WIDTHS)
        self.options = {"latent_dim": latent_dim, "width": width, "d_width": d_width, "gp_weight": gp_weight}
        self.gp_weight = gp_weight
        self.generator = nn.Sequential(ConvGenerator(latent_dim, shape, width, norm="batch"), nn.Tanh())
        trunk = ConvEncoder(shape, d_width, norm="layer")
        self.discriminator = nn.Sequential(trunk, nn.Linear(trunk.out_features, 1))  # no sigmoid: a critic

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z)

    def critic(self, x: torch.Tensor) -> torch.Tensor:
        """Critic scores (N,) for images in [-1, 1]; unbounded real numbers."""
        return self.discriminator(x).squeeze(1)

    def discriminator_loss(self, real: torch.Tensor, labels: torch.Tensor, z: torch.Tensor,
                           fake_labels: torch.Tensor | None) -> tuple[torch.Tensor, Logs]:
        with torch.no_grad():
            fake = self.generate(z)
        real_score, fake_score = self.critic(real).mean(), self.critic(fake).mean()
        penalty = gradient_penalty(self.critic, real, fake)
        loss = fake_score - real_score + self.gp_weight * penalty
        # −(critic loss without the penalty) estimates the Wasserstein-1 distance (up to the Lipschitz scale)
        return loss, {"d_loss": loss.detach(), "wasserstein": (real_score - fake_score).detach(),
                      "gradient_penalty": penalty.detach()}

    def generator_loss(self, z: torch.Tensor, fake_labels: torch.Tensor | None) -> tuple[torch.Tensor, Logs]:
        loss = -self.critic(self.generate(z)).mean()
        return loss, {"g_loss": loss.detach()}
