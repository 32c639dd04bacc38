"""Training loop for generative models: in-memory mini-batches, Adam, per-epoch losses and sample grids.

Reconstruction models (AE/VAE) take one Adam step on ``model.loss`` per batch. Adversarial models take a
discriminator step per batch and a generator step every ``critic_steps`` batches (1 for DCGAN-style GANs,
5 for WGAN-GP), so one epoch is one pass of the real training images through the discriminator.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterator

import torch
from torch import nn

from trustkit.data import ImageDataset
from trustkit.data.base import to_unit_float
from trustkit.errors import InvalidArgumentError
from trustkit.generative.base import AdversarialModel, GenerativeModel, ReconstructionModel, to_signed
from trustkit.runtime import autocast, progress

GRID_SEED_OFFSET = 7919  # the per-epoch grids use latents from seed + this, independent of training noise


@dataclass(frozen=True)
class GenTrainConfig:
    """How a generative model is fit.

    ``lr``/``betas`` None mean the model's own Adam defaults (2e-4, (0.5, 0.999) for DCGANs; 1e-4, (0, 0.9) for
    WGAN-GP; 1e-3 for AE/VAE). ``grid_size`` is the number of samples drawn from a fixed latent batch after
    every epoch. ``max_steps`` caps the batches per epoch (quick checks). ``amp``: bfloat16 autocast on CUDA;
    off by default because likelihood sums and the gradient penalty lose precision in bfloat16.
    """

    epochs: int = 5
    batch_size: int = 64
    lr: float | None = None
    betas: tuple[float, float] | None = None
    grid_size: int = 64
    max_steps: int | None = None
    amp: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **overrides: Any) -> "GenTrainConfig":
        """A copy with every override that is not None applied."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def validate(self) -> "GenTrainConfig":
        for name in ("epochs", "batch_size", "grid_size"):
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise InvalidArgumentError(f"max_steps must be at least 1, got {self.max_steps}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise InvalidArgumentError(f"--lr must be a finite number > 0, got {self.lr}")
        return self


# Epochs that give recognisable samples in reasonable CPU time (MNIST DCGAN epoch ≈ 30-40 s on 2 cores).
# "wgan" is for critics trained several steps per generator step: an epoch holds 1/critic_steps G updates.
_DEFAULT_EPOCHS = {"digits": {"gan": 60, "wgan": 100, "vae": 40, "autoencoder": 40},
                   "mnist": {"gan": 5, "wgan": 10, "vae": 10, "autoencoder": 5},
                   "cifar10": {"gan": 15, "wgan": 30, "vae": 15, "autoencoder": 10},
                   "faces": {"gan": 25, "wgan": 50, "vae": 25, "autoencoder": 15}}
# Small batches on digits: 1,437 images give 45 steps per epoch at 32, 23 at 64; 32 gave clearly better DCGAN
# samples in 60 epochs (domain FID 11 and 33 vs 29 and 89 over two seeds, D width 64).
_DEFAULT_BATCH = {"digits": 32, "mnist": 128, "cifar10": 128, "faces": 64}


def default_config(kind: str, dataset: str, critic_steps: int = 1) -> GenTrainConfig:
    """Default epochs and batch size for a model family (``gan``, ``vae``, ``autoencoder``) on ``dataset``."""
    key = "wgan" if kind == "gan" and critic_steps > 1 else kind
    epochs = _DEFAULT_EPOCHS.get(dataset, {}).get(key, 10)
    grid_size = 32 if dataset == "faces" else 64  # 64×64 colour grids are ~10× the bytes of MNIST ones per epoch
    return GenTrainConfig(epochs=epochs, batch_size=_DEFAULT_BATCH.get(dataset, 64), grid_size=grid_size)


@dataclass
class GenHistory:
    """Per-epoch records (mean of every logged loss, wall and CPU seconds) and the sample grid after each epoch."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    grids: list[torch.Tensor] = field(default_factory=list)
    grid_labels: torch.Tensor | None = None

    @property
    def seconds(self) -> float:
        return sum(e["seconds"] for e in self.epochs)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Turn off weight gradients of ``module`` for the block (the G step needs none for D: saves a backward)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def _adam(params: Any, model: GenerativeModel, config: GenTrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=config.lr or model.default_lr, betas=config.betas or model.default_betas)


def grid_latents(model: GenerativeModel, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fixed latents (and balanced labels: one row per class) used for every epoch's grid."""
    if model.conditional:
        per_class = max(1, count // model.num_classes)
        labels = torch.arange(model.num_classes).repeat_interleave(per_class)
        count = len(labels)
    else:
        labels = None
    return torch.randn(count, model.latent_dim, generator=torch.Generator().manual_seed(seed)), labels


@torch.no_grad()
def _grid(model: GenerativeModel, noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Images in [0, 1] (CPU) decoded in eval mode from fixed standard-normal ``noise``."""
    was_training = model.training
    model.eval()
    try:
        device = model.device
        z = model.latent_from_noise(noise.to(device))
        return model.decode(z, None if labels is None else labels.to(device)).float().cpu()
    finally:
        model.train(was_training)


class _Stepper:
    """One optimisation step per batch for either kind of model; accumulates logs on the device."""

    def __init__(self, model: GenerativeModel, config: GenTrainConfig, device: torch.device) -> None:
        self.model, self.config, self.device = model, config, device
        self.sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=device))
        self.counts: dict[str, int] = defaultdict(int)
        self.batches = 0
        if isinstance(model, AdversarialModel):
            self.opt_d = _adam(model.discriminator.parameters(), model, config)
            self.opt_g = _adam(model.generator.parameters(), model, config)
        elif isinstance(model, ReconstructionModel):
            self.opt = _adam(model.parameters(), model, config)
        else:
            raise TypeError(f"{type(model).__name__} is neither a ReconstructionModel nor an AdversarialModel")

    def _record(self, logs: dict[str, torch.Tensor]) -> None:
        for key, value in logs.items():
            self.sums[key] += value.float()
            self.counts[key] += 1

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        model = self.model
        self.batches += 1
        with autocast(self.device, self.config.amp):
            if isinstance(model, ReconstructionModel):
                loss, logs = model.loss(x, y)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                self._record(logs)
                return
            n = len(x)
            fake_labels = torch.randint(0, model.num_classes, (n,), device=self.device) if model.conditional else None
            loss, logs = model.discriminator_loss(to_signed(x), y, model.sample_latent(n), fake_labels)
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_d.step()
            self._record(logs)
            if self.batches % model.critic_steps == 0:
                with frozen(model.discriminator):
                    loss, logs = model.generator_loss(model.sample_latent(n), fake_labels)
                self.opt_g.zero_grad(set_to_none=True)
                loss.backward()
                self.opt_g.step()
                self._record(logs)

    def epoch_means(self) -> dict[str, float]:
        means = {k: (self.sums[k] / self.counts[k]).item() for k in self.sums}
        self.sums.clear()
        self.counts.clear()
        return means


@torch.no_grad()
def _test_record(model: GenerativeModel, test_set: ImageDataset, device: torch.device, limit: int = 2000) -> dict[str, float]:
    """Held-out loss after an epoch: the ELBO (nats) for VAEs, the reconstruction MSE for autoencoders."""
    from trustkit.generative.likelihood import batched, binarize, elbo, mean_loss

    x, y = test_set.tensors(torch.arange(min(limit, len(test_set))))
    was_training = model.training
    model.eval()
    try:
        if model.kind == "vae":
            generator = torch.Generator().manual_seed(0)
            target = binarize(x, generator) if model.binarize else x
            labels = y if model.conditional else None
            values = batched(lambda xb, yb: elbo(model, xb, yb, generator), target, labels, 500, device)
            return {"test_elbo": values.mean().item()}
        if model.kind == "autoencoder":
            return {"test_loss": mean_loss(model, x, y, device)}
    finally:
        model.train(was_training)
    return {}


def fit_generative(model: GenerativeModel, train_set: ImageDataset, config: GenTrainConfig, *,
                   device: torch.device, seed: int = 0, test_set: ImageDataset | None = None,
                   description: str = "train") -> GenHistory:
    """Train ``model`` in place on ``train_set`` (images in [0, 1]); returns losses and grids per epoch."""
    config.validate()
    generator = torch.Generator().manual_seed(seed)
    stepper = _Stepper(model, config, device)
    images = train_set.images.pin_memory() if device.type == "cuda" else train_set.images
    labels = train_set.labels
    channels_last = device.type == "cuda"
    steps_per_epoch = -(-len(labels) // config.batch_size)
    if config.max_steps:
        steps_per_epoch = min(steps_per_epoch, config.max_steps)
    grid_z, grid_labels = grid_latents(model, config.grid_size, seed + GRID_SEED_OFFSET)
    history = GenHistory(grid_labels=grid_labels)
    with progress(description, config.epochs * steps_per_epoch) as bar:
        for epoch in range(config.epochs):
            started, cpu_started = time.perf_counter(), time.process_time()
            model.train()
            order = torch.randperm(len(labels), generator=generator)
            for step in range(steps_per_epoch):
                index = order[step * config.batch_size:(step + 1) * config.batch_size]
                x = to_unit_float(images[index].to(device, non_blocking=True))
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                stepper.step(x, labels[index].to(device, non_blocking=True))
                bar.advance()
            record: dict[str, float] = {"epoch": epoch + 1, **stepper.epoch_means()}
            bad = [k for k, v in record.items() if not math.isfinite(v)]
            if bad:
                raise InvalidArgumentError(f"training diverged in epoch {epoch + 1} ({', '.join(bad)} not finite); "
                                           "lower --lr or change --batch-size")
            model.finish_training(images, labels)
            # training time only, not the evaluation below; CPU seconds of this process (all threads) beside wall
            # seconds, because on a shared machine wall time also measures the neighbours' load
            record["seconds"] = time.perf_counter() - started
            record["cpu_seconds"] = time.process_time() - cpu_started
            if test_set is not None:
                record.update(_test_record(model, test_set, device))
            history.grids.append(_grid(model, grid_z, grid_labels))
            history.epochs.append(record)
            losses = [f"{k} {v:.3f}" for k, v in record.items() if k.endswith(("loss", "elbo"))]
            bar.note(f"epoch {epoch + 1}/{config.epochs} " + " ".join(losses[:3]), milestone=True)
    model.eval()
    return history

