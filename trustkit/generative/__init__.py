"""Generative models trained, sampled and scored by trustkit: autoencoders, VAEs, DCGAN, conditional GAN,
ACGAN and WGAN-GP. ``GENERATIVE_MODELS`` maps names to classes ``(shape, num_classes, **options) -> model``;
every model returns images in [0, 1] from ``sample()`` (see :mod:`trustkit.generative.base`).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from trustkit.data import DatasetSpec
from trustkit.errors import InvalidArgumentError
from trustkit.generative import autoencoder, cgan, dcgan, gan_lab, vae, wgan_gp
from trustkit.generative.base import AdversarialModel, GenerativeModel, ReconstructionModel
from trustkit.registry import Registry

GenerativeFactory = Callable[..., GenerativeModel]

GENERATIVE_MODELS: Registry[GenerativeFactory] = Registry("generative model")
GENERATIVE_MODELS.add("ae", autoencoder.MLPAutoencoder, summary="MLP autoencoder 784-128-64-3 (lab), Tanh output",
                      aliases=("mlp-ae", "autoencoder"))
GENERATIVE_MODELS.add("conv-ae", autoencoder.ConvAutoencoder, summary="conv autoencoder conv32-pool-conv64-pool, "
                      "mirrored decoder (lab)", aliases=("conv-autoencoder",))
GENERATIVE_MODELS.add("vae", vae.MLPVAE, summary="MLP VAE 512-256-z, Bernoulli decoder", aliases=("mlp-vae",))
GENERATIVE_MODELS.add("conv-vae", vae.ConvVAE, summary="convolutional VAE, strided-conv encoder, DCGAN-style decoder")
GENERATIVE_MODELS.add("beta-vae", vae.BetaVAE, summary="convolutional β-VAE (β = 4)")
GENERATIVE_MODELS.add("cvae", vae.ConditionalVAE, summary="conditional MLP VAE (class one-hot to encoder and "
                      "decoder)", aliases=("conditional-vae",))
GENERATIVE_MODELS.add("dcgan", dcgan.DCGAN, summary="DCGAN: strided convs, batch norm, ReLU/Tanh G, LeakyReLU D")
GENERATIVE_MODELS.add("dcgan-resize", dcgan.ResizeDCGAN, summary="DCGAN whose last up-sampling is resize + conv "
                      "(no transposed-conv spectral artefact)", aliases=("resize-dcgan",))
GENERATIVE_MODELS.add("cgan", cgan.ConditionalGAN, summary="conditional DCGAN (class to G's input and D's planes)",
                      aliases=("conditional-gan",))
GENERATIVE_MODELS.add("acgan", cgan.ACGAN, summary="auxiliary-classifier GAN (D has a real/fake and a class head)")
GENERATIVE_MODELS.add("wgan-gp", wgan_gp.WGANGP, summary="WGAN-GP: layer-norm critic, no sigmoid, gradient penalty",
                      aliases=("wgan", "wgangp"))
GENERATIVE_MODELS.add("acgan-cifar", gan_lab.LabACGAN, summary="ACGAN on the CIFAR-10 GAN lab's networks (D: 8 conv "
                      "196 ch, layer norm, heads fc1 + fc10); 32×32 only")
GENERATIVE_MODELS.add("wgan-gp-cifar", gan_lab.LabWGANGP, summary="WGAN-GP on the CIFAR-10 GAN lab's networks (critic "
                      "fc1, no sigmoid, λ = 10, 5 critic steps); 32×32 only")


def build_generative(name: str, spec: DatasetSpec, **options: Any) -> GenerativeModel:
    """A freshly initialised generative model ``name`` for data set ``spec``; ``options`` that are None keep the
    model's size-dependent defaults (latent_dim, width, beta ...)."""
    factory = GENERATIVE_MODELS.get(name)
    given = {k: v for k, v in options.items() if v is not None}
    accepted = [p for p in inspect.signature(factory).parameters if p not in ("shape", "num_classes")]
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise InvalidArgumentError(f"generative model '{GENERATIVE_MODELS.canonical(name)}' takes no option "
                                   f"{', '.join(unknown)}; it takes: {', '.join(accepted) or 'none'}")
    return factory(spec.shape, spec.num_classes, **given)


__all__ = ["AdversarialModel", "GENERATIVE_MODELS", "GenerativeModel", "ReconstructionModel", "build_generative"]
