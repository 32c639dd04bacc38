"""The fit loop: shuffled mini-batches straight from in-memory tensors, one-cycle LR, progress bar."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from trustkit.data import ImageDataset
from trustkit.data.base import to_unit_float
from trustkit.models.inference import accuracy
from trustkit.runtime import autocast, progress
from trustkit.train.config import TrainConfig
from trustkit.train.recipes import RECIPES


@dataclass
class TrainHistory:
    """Per-epoch records: mean training loss, test accuracy (fraction) and wall seconds."""

    epochs: list[dict[str, float]] = field(default_factory=list)

    @property
    def final_accuracy(self) -> float | None:
        return self.epochs[-1].get("test_accuracy") if self.epochs else None

    @property
    def seconds(self) -> float:
        return sum(e["seconds"] for e in self.epochs)


def crop_flip(x: torch.Tensor, generator: torch.Generator | None = None, pad: int = 4) -> torch.Tensor:
    """Random ``pad``-pixel zero-padded crops and horizontal flips of a batch (standard CIFAR augmentation)."""
    n, c, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[batch, chan, rows, cols]
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                           weight_decay=config.weight_decay)


def fit(model: nn.Module, train_set: ImageDataset, config: TrainConfig, *, device: torch.device,
        seed: int = 0, test_set: ImageDataset | None = None, augment: str = "none",
        description: str = "train") -> TrainHistory:
    """Train ``model`` in place on ``train_set``; evaluates ``test_set`` accuracy after every epoch."""
    generator = torch.Generator().manual_seed(seed)
    loss_fn = RECIPES.get(config.recipe)(config)
    optimizer = _optimizer(model, config)
    steps_per_epoch = -(-len(train_set) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, epochs=config.epochs,
                                                   steps_per_epoch=steps_per_epoch)
    images = train_set.images.pin_memory() if device.type == "cuda" else train_set.images
    labels = train_set.labels
    channels_last = device.type == "cuda" and images.ndim == 4
    history = TrainHistory()
    with progress(description, config.epochs * steps_per_epoch) as bar:
        for epoch in range(config.epochs):
            started = time.perf_counter()
            model.train()
            order = torch.randperm(len(labels), generator=generator)
            total_loss = torch.zeros((), device=device)
            for start in range(0, len(order), config.batch_size):
                index = order[start:start + config.batch_size]
                x = to_unit_float(images[index].to(device, non_blocking=True))
                y = labels[index].to(device, non_blocking=True)
                if config.augment and augment == "crop-flip":
                    x = crop_flip(x, generator)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(device, config.amp):
                    loss = loss_fn(model, x, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total_loss += loss.detach() * len(index)
                bar.advance()
            record = {"epoch": epoch + 1, "train_loss": (total_loss / len(order)).item()}
            if test_set is not None:
                x_test, y_test = test_set.tensors()
                record["test_accuracy"] = accuracy(model, x_test, y_test, device=device)
            record["seconds"] = time.perf_counter() - started
            history.epochs.append(record)
            bar.note(f"epoch {epoch + 1}/{config.epochs} loss {record['train_loss']:.3f}"
                     + (f" acc {record['test_accuracy']:.1%}" if "test_accuracy" in record else ""))
    model.eval()
    return history
