"""Batched inference helpers (no autograd, model in eval mode) and the input-gradients-only context."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from trustkit.batches import map_batches


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512,
                   device: torch.device | None = None) -> torch.Tensor:
    """Logits N×K (float32) for ``images`` (N×C×H×W in [0, 1], any dtype handled by the caller), on ``device``."""
    device = device or next(iter(model.parameters()), torch.empty(0)).device
    return map_batches(lambda batch: model(batch).float(), images, batch_size=batch_size, device=device, out=None)


@torch.no_grad()
def predict_labels(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512,
                   device: torch.device | None = None) -> torch.Tensor:
    """Predicted labels N (int64, CPU) for ``images`` (N×C×H×W in [0, 1]), the model run on ``device``."""
    device = device or next(iter(model.parameters()), torch.empty(0)).device
    return map_batches(lambda batch: model(batch).argmax(1), images, batch_size=batch_size, device=device,
                       empty=torch.empty(0, dtype=torch.long))


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 512,
             device: torch.device | None = None) -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    was_training = model.training
    model.eval()
    try:
        logits = predict_logits(model, images, batch_size=batch_size, device=device)
    finally:
        model.train(was_training)
    return (logits.argmax(1).cpu() == labels.cpu()).float().mean().item()


@contextlib.contextmanager
def input_gradients_only(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no weight gradients for the duration; restores both afterwards."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
