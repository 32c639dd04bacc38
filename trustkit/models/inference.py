"""Batched inference helpers (no autograd, model in eval mode)."""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512,
                   device: torch.device | None = None) -> torch.Tensor:
    """Logits N×K for ``images`` (N×C×H×W in [0, 1], any dtype handled by the caller), on ``device``."""
    device = device or next(iter(model.parameters()), torch.empty(0)).device
    outputs = [model(images[i:i + batch_size].to(device, non_blocking=True)).float()
               for i in range(0, len(images), batch_size)]
    return torch.cat(outputs) if outputs else torch.empty(0)


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
