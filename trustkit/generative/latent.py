"""Walking the latent space: interpolation strips and attribute arithmetic z' = z + α·v.

An attribute vector v is the mean latent of images with the attribute minus the mean latent of those
without (the lecture's recipe). Models with an encoder (AE, VAE) get it from labelled data, e.g. UTKFace
``gender=female`` or ``age>=60``; GANs, which have no encoder, get it from their own samples labelled by a
trustkit classifier, which works for the class label only.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Callable

import torch

from trustkit.batches import map_batches
from trustkit.data import ImageDataset
from trustkit.errors import InvalidArgumentError
from trustkit.generative.base import GenerativeModel

_OPERATORS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    ">=": operator.ge, "<=": operator.le, "!=": operator.ne, "==": operator.eq, "=": operator.eq,
    ">": operator.gt, "<": operator.lt}
_ATTRIBUTE = re.compile(r"^\s*([A-Za-z_]+)\s*(>=|<=|!=|==|=|>|<)\s*([\w.-]+)\s*$")
CLASS_KEYS = ("class", "label")


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation (1 − t)·z0 + t·z1, broadcast over ``t``."""
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: keeps the norm typical of Gaussian latents (a straight line between two
    Gaussian samples passes through the low-density region near the origin). Falls back to lerp for
    (anti)parallel vectors."""
    cos = (z0 * z1).sum(-1, keepdim=True) / (z0.norm(dim=-1, keepdim=True) * z1.norm(dim=-1, keepdim=True))
    omega = torch.arccos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
    sin = torch.sin(omega)
    spherical = (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / sin
    return torch.where(sin.abs() < 1e-4, lerp(z0, z1, t), spherical)


def interpolation_method(model: GenerativeModel, method: str = "auto") -> str:
    """``slerp`` for N(0, I) priors (VAEs, GANs), ``linear`` for autoencoders' empirical code Gaussians."""
    if method not in ("auto", "slerp", "linear"):
        raise InvalidArgumentError(f"interpolation method must be auto, slerp or linear, got '{method}'")
    if method == "auto":
        return "linear" if model.kind == "autoencoder" else "slerp"
    return method


@torch.no_grad()
def interpolate(model: GenerativeModel, z0: torch.Tensor, z1: torch.Tensor, steps: int = 8, *,
                method: str = "auto", labels: torch.Tensor | None = None) -> torch.Tensor:
    """Images along the path z0 -> z1 for each of P pairs: P×steps×C×H×W in [0, 1] (CPU).

    ``z0``/``z1`` are P×latent_dim; ``labels`` (P,) hold the class of each strip for conditional models.
    """
    if steps < 2:
        raise InvalidArgumentError(f"an interpolation needs at least 2 steps, got {steps}")
    method = interpolation_method(model, method)
    device = model.device
    t = torch.linspace(0, 1, steps, device=device).view(1, steps, 1)
    path = (slerp if method == "slerp" else lerp)(z0.to(device)[:, None], z1.to(device)[:, None], t)
    pairs = len(z0)
    strip_labels = None if labels is None else labels.to(device).repeat_interleave(steps)
    model.eval()
    images = model.decode(path.reshape(pairs * steps, -1), strip_labels).float().cpu()
    return images.view(pairs, steps, *images.shape[1:])


@torch.no_grad()
def random_interpolations(model: GenerativeModel, pairs: int = 4, steps: int = 8, *, seed: int = 0,
                          method: str = "auto") -> torch.Tensor:
    """Interpolation strips between random prior samples (conditional models: one class per strip)."""
    if pairs < 1:
        raise InvalidArgumentError(f"--pairs must be at least 1, got {pairs}")
    generator = torch.Generator().manual_seed(seed)
    z0, z1 = model.sample_latent(pairs, generator), model.sample_latent(pairs, generator)
    labels = model.default_labels(pairs)
    return interpolate(model, z0, z1, steps, method=method, labels=labels)


@dataclass(frozen=True)
class Attribute:
    """A yes/no attribute such as ``gender=female`` or ``age>=60``: name, comparison and integer value."""

    name: str
    op: str
    value: int
    text: str

    @property
    def is_class(self) -> bool:
        return self.name in CLASS_KEYS

    def mask(self, values: torch.Tensor) -> torch.Tensor:
        return _OPERATORS[self.op](values, self.value)


def _lookup(value: str, names: tuple[str, ...], what: str) -> int:
    if value.lstrip("-").isdigit():
        return int(value)
    lowered = [n.lower() for n in names]
    if value.lower() in lowered:
        return lowered.index(value.lower())
    raise InvalidArgumentError(f"unknown {what} '{value}'; use one of: {', '.join(names)} (or its number)")


def parse_attribute(text: str, dataset: ImageDataset) -> Attribute:
    """Read ``NAME OP VALUE`` (``gender=female``, ``race=asian``, ``age>=60``, ``class=3``) for ``dataset``.

    ``class``/``label`` and, for faces, the attributes ``gender``/``age``/``race`` are known; class and
    race values may be names. The attribute of the data set's label (faces: gender) becomes ``class``.
    """
    match = _ATTRIBUTE.match(text or "")
    if not match:
        raise InvalidArgumentError(f"cannot read attribute '{text}'; write NAME=VALUE or NAME>=VALUE, e.g. "
                                   "gender=female, age>=60, class=3")
    name, op, raw = match.group(1).lower(), match.group(2), match.group(3)
    attributes = getattr(dataset, "attributes", {})
    if name in CLASS_KEYS or (name in attributes and torch.equal(attributes[name], dataset.labels)):
        return Attribute("class", op, _lookup(raw, dataset.class_names, f"{dataset.name} class"), text)
    if name not in attributes:
        known = ", ".join([*CLASS_KEYS, *attributes])
        raise InvalidArgumentError(f"{dataset.name} has no attribute '{name}'; use one of: {known}")
    if name == "race":
        from trustkit.data.faces import RACE_NAMES

        return Attribute(name, op, _lookup(raw, RACE_NAMES, "race"), text)
    if not raw.lstrip("-").isdigit():
        raise InvalidArgumentError(f"attribute '{name}' takes a whole number, got '{raw}'")
    return Attribute(name, op, int(raw), text)


def attribute_values(attribute: Attribute, dataset: ImageDataset) -> torch.Tensor:
    """Per-image values of ``attribute`` in ``dataset`` (class labels or a face attribute)."""
    return dataset.labels if attribute.is_class else dataset.attributes[attribute.name]


def _split_mask(mask: torch.Tensor, attribute: Attribute, source: str) -> None:
    positives = int(mask.sum())
    if positives == 0 or positives == len(mask):
        side = "no" if positives == 0 else "every"
        raise InvalidArgumentError(f"{side} {source} has attribute '{attribute.text}'; an attribute vector needs "
                                   "examples with and without it, so pick another value")


@torch.no_grad()
def attribute_vector(model: GenerativeModel, images: torch.Tensor, mask: torch.Tensor,
                     labels: torch.Tensor | None = None, batch_size: int = 500) -> torch.Tensor:
    """v = mean encode(images with the attribute) − mean encode(images without), via the model's encoder."""
    if not model.has_encoder:
        raise InvalidArgumentError(f"{type(model).__name__} has no encoder; attribute vectors from data need an "
                                   "autoencoder or VAE (GANs support class attributes only)")
    model.eval()
    device = model.device
    codes = map_batches(model.encode, images, labels, batch_size=batch_size, device=device)
    mask = mask.bool().cpu()
    return codes[mask].mean(0) - codes[~mask].mean(0)


@torch.no_grad()
def class_vector_from_samples(model: GenerativeModel, classify: Callable[[torch.Tensor], torch.Tensor],
                              attribute: Attribute, n: int = 2000,
                              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """For models without an encoder: sample ``n`` latents, label the images with ``classify`` (images ->
    predicted class), and return (v, latents without the attribute, their class labels for conditional
    models) with v = mean z(with) − mean z(without)."""
    generator = torch.Generator().manual_seed(seed)
    z = model.sample_latent(n, generator)
    labels = model.default_labels(n)
    model.eval()
    images = map_batches(model.decode, z, labels, batch_size=500)
    mask = attribute.mask(classify(images).cpu())
    _split_mask(mask, attribute, "generated sample (as labelled by the classifier)")
    z, mask = z.cpu(), mask.cpu()
    return z[mask].mean(0) - z[~mask].mean(0), z[~mask], None if labels is None else labels.cpu()[~mask]


@torch.no_grad()
def latent_arithmetic(model: GenerativeModel, z: torch.Tensor, vector: torch.Tensor, alphas: list[float],
                      labels: torch.Tensor | None = None) -> torch.Tensor:
    """Images of z + α·v for each start latent (rows) and α (columns): N×len(alphas)×C×H×W in [0, 1]."""
    if not alphas:
        raise InvalidArgumentError("give at least one --alpha")
    device = model.device
    scale = torch.tensor(alphas, dtype=z.dtype, device=device).view(1, -1, 1)
    moved = z.to(device)[:, None] + scale * vector.to(device).view(1, 1, -1)
    rows, cols = moved.shape[:2]
    row_labels = None if labels is None else labels.to(device).repeat_interleave(cols)
    model.eval()
    images = model.decode(moved.reshape(rows * cols, -1), row_labels).float().cpu()
    return images.view(rows, cols, *images.shape[1:])
