"""The CIFAR-10 GAN lab (ACGAN + WGAN-GP) as two generative models on the lab's own networks.

Generator (:class:`LabGenerator`, 3,559,363 parameters for 3 channels): fc 100 -> 196·4·4, then
ConvT 4×4 stride 2 (-> 8×8), three 3×3 convs, ConvT (-> 16×16), one conv, ConvT (-> 32×32), each followed by
batch norm and ReLU, and a last 3×3 conv to the image channels with Tanh. Discriminator: the lab's eight
196-channel convolutions with layer norm (:mod:`trustkit.models.disc196`), whose two heads are fc1 (one
score per image) and fc10 (class logits).

* ``acgan-cifar``: ACGAN (Odena et al. 2017) with the losses of :class:`trustkit.generative.cgan.ACGAN` —
  fc1 is the real/fake logit, fc10 the auxiliary classifier. As in the lab, the class reaches G by overwriting
  the first K entries of z with one-hot(y), so G's first layer stays fc 100 -> 196·4·4.
* ``wgan-gp-cifar``: WGAN-GP (Gulrajani et al. 2017) with the losses of
  :class:`trustkit.generative.wgan_gp.WGANGP` — fc1 is the critic (no sigmoid), λ = 10, five critic steps per
  generator step, Adam(1e-4, β = (0, 0.9)). Unconditional, so the critic has no fc10.

Both take only 32×32 images (the generator's three doublings from 4×4 end there).
"""
from __future__ import annotations

import torch
from torch import nn

from trustkit.errors import InvalidArgumentError, ShapeMismatchError
from trustkit.generative.base import AdversarialModel
from trustkit.generative.cgan import ACGAN
from trustkit.generative.wgan_gp import WGANGP
from trustkit.models.disc196 import CHANNELS, Disc196, Disc196Critic

SIDE = 32  # pixels; 4 · 2³, the generator's output side
BASE = 4  # pixels; side of the generator's first feature map (and of the discriminator's last)
LATENT_DIM = 100


def check_lab_shape(shape: tuple[int, int, int], name: str) -> tuple[int, int, int]:
    """``shape`` (C, H, W) if it is C×32×32; otherwise a one-line ShapeMismatchError."""
    channels, height, width = shape
    if (height, width) != (SIDE, SIDE):
        raise ShapeMismatchError(f"{name} is the CIFAR-10 GAN lab's network and takes {SIDE}×{SIDE} images only, "
                                 f"got {channels}×{height}×{width}; use --dataset cifar10, or acgan / wgan-gp for "
                                 "other sizes")
    return channels, height, width


def _up() -> nn.Sequential:
    """ConvT 4×4 stride 2 (doubles the side; kernel divisible by stride: no checkerboard) -> batch norm -> ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(CHANNELS, CHANNELS, 4, stride=2, padding=1), nn.BatchNorm2d(CHANNELS),
                         nn.ReLU())


def _same() -> nn.Sequential:
    """Conv 3×3 padding 1 (keeps the side) -> batch norm -> ReLU."""
    return nn.Sequential(nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1), nn.BatchNorm2d(CHANNELS), nn.ReLU())


class LabGenerator(nn.Module):
    """The lab's generator: latents N×latent_dim -> images N×channels×32×32 in [-1, 1] (Tanh)."""

    def __init__(self, latent_dim: int = LATENT_DIM, channels: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Sequential(nn.Linear(latent_dim, CHANNELS * BASE * BASE), nn.BatchNorm1d(CHANNELS * BASE * BASE),
                                 nn.ReLU())
        self.convs = nn.Sequential(
            _up(), _same(), _same(), _same(),  # 8×8
            _up(), _same(),  # 16×16
            _up(),  # 32×32
            nn.Conv2d(CHANNELS, channels, 3, padding=1), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.convs(self.fc1(z).view(-1, CHANNELS, BASE, BASE))


class LabACGAN(AdversarialModel):
    """ACGAN on the lab's networks: conditional G, D = :class:`~trustkit.models.disc196.Disc196` (fc1, fc10).

    ``latent_dim`` is the length of z (100; must exceed the number of classes, whose one-hot overwrites z's
    first entries); ``real_label`` the target of real images in D's source loss (0.9: one-sided label smoothing,
    as trustkit's DCGAN family; 1.0 disables it); ``norm`` the discriminator's layer norm ("group" or the lab's
    literal "layer", see :mod:`trustkit.models.disc196`). Adam(2e-4, β = (0.5, 0.999)) as the DCGAN family.
    """

    conditional = True

    # The losses are ACGAN's own; only the networks (and how the class reaches G) differ. They use
    # self.generate, self.discriminator (-> source logits, class logits) and self.real_label.
    discriminator_loss = ACGAN.discriminator_loss
    generator_loss = ACGAN.generator_loss

    def __init__(self, shape: tuple[int, int, int], num_classes: int, *, latent_dim: int | None = None,
                 real_label: float = 0.9, norm: str = "group") -> None:
        channels, _, _ = check_lab_shape(shape, "acgan-cifar")
        latent_dim = latent_dim or LATENT_DIM
        if latent_dim <= num_classes:
            raise InvalidArgumentError(f"acgan-cifar writes the class one-hot into z, so --latent-dim must exceed "
                                       f"the {num_classes} classes; got {latent_dim}")
        super().__init__(shape, num_classes, latent_dim)
        self.options = {"latent_dim": latent_dim, "real_label": real_label, "norm": norm}
        self.real_label = real_label
        self.generator = LabGenerator(latent_dim, channels)
        self.discriminator = Disc196(self.shape, num_classes, norm=norm)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        assert labels is not None, "conditional generators need labels"
        # the lab's conditioning: z[:, :K] = one-hot(y), the rest stays noise (not a concatenation)
        conditioned = torch.cat([self.one_hot(labels).to(z.dtype), z[:, self.num_classes:]], dim=1)
        return self.generator(conditioned)

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Real/fake logits (N,) of fc1 for images in [-1, 1]."""
        return self.discriminator(x)[0]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits N×K of fc10 for images in [-1, 1]."""
        return self.discriminator(x)[1]


class LabWGANGP(AdversarialModel):
    """WGAN-GP on the lab's networks: G = :class:`LabGenerator`, critic = trunk + fc1 (no sigmoid).

    ``latent_dim`` is the length of z (100); ``gp_weight`` λ of the gradient penalty (10); ``norm`` the critic's
    layer norm ("group" or the lab's literal "layer"); batch norm would make a sample's gradient depend on the
    rest of its batch, which the per-sample penalty forbids.
    """

    default_lr = 1e-4
    default_betas = (0.0, 0.9)
    critic_steps = 5

    # WGAN-GP's losses (critic D(fake) − D(real) + λ·penalty, generator −D(fake)); they use self.generate,
    # self.critic and self.gp_weight.
    discriminator_loss = WGANGP.discriminator_loss
    generator_loss = WGANGP.generator_loss

    def __init__(self, shape: tuple[int, int, int], num_classes: int, *, latent_dim: int | None = None,
                 gp_weight: float = 10.0, norm: str = "group") -> None:
        channels, _, _ = check_lab_shape(shape, "wgan-gp-cifar")
        latent_dim = latent_dim or LATENT_DIM
        super().__init__(shape, num_classes, latent_dim)
        self.options = {"latent_dim": latent_dim, "gp_weight": gp_weight, "norm": norm}
        self.gp_weight = gp_weight
        self.generator = LabGenerator(latent_dim, channels)
        self.discriminator = Disc196Critic(self.shape, norm=norm)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z)

    def critic(self, x: torch.Tensor) -> torch.Tensor:
        """Critic scores (N,) of fc1 for images in [-1, 1]; unbounded real numbers."""
        return self.discriminator(x)


__all__ = ["LabACGAN", "LabGenerator", "LabWGANGP", "check_lab_shape"]
