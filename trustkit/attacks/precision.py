"""Reduced-precision attack iterations: gradients in bfloat16/float16, every verdict in float32.

An iterative attack needs only the sign (L∞) or the direction (L2) of the input gradient, which survives a
16-bit forward and backward pass: on this project's 2-core CPU (AVX512-bf16) a bf16 forward+backward of the zoo
cnn (MNIST, batch 256) costs 0.63× the float32 one and of the CIFAR ResNet-18 (batch 64) 0.49×, with 96-97% of the
gradient's signs unchanged (benchmarks/RESULTS.md). What the attack *reports* must not change precision, so:

- inside :func:`attack_precision`, :func:`trustkit.attacks.base.input_gradient` runs the model under
  ``torch.autocast`` in the chosen 16-bit type (logits and losses come back as float32 tensors);
- an iterate that the 16-bit logits call fooled leaves the search only once a float32 forward pass agrees
  (:func:`confirm_fooled`), so early stopping never keeps a point that only fools the 16-bit model;
- robust accuracy is always judged by a float32 forward pass of the finished adversarial images
  (:func:`trustkit.attacks.evaluate.run_attack`): a reduced precision can make the search weaker, never the
  reported number wrong.

Attacks that do not go through ``input_gradient`` (FAB, DeepFool, C&W, Square, ART's) run in float32 whatever
the setting.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch
from torch import nn

from trustkit.errors import InvalidArgumentError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# (device type, 16-bit dtype) of the attack iterations in progress; None: float32
_ACTIVE: contextvars.ContextVar[tuple[str, torch.dtype] | None] = contextvars.ContextVar("attack_precision",
                                                                                         default=None)


def check_precision(name: str) -> str:
    """``name`` if it is one of :data:`PRECISIONS`; otherwise one line naming them."""
    if name not in PRECISIONS:
        raise InvalidArgumentError(f"unknown attack precision '{name}'; use one of {', '.join(PRECISIONS)}")
    return name


@contextlib.contextmanager
def attack_precision(name: str, device: torch.device | str) -> Iterator[None]:
    """Attack iterations inside the block compute their gradients in ``name`` ("fp32", "bf16", "fp16") on
    ``device``'s type; "fp32" changes nothing. A 16-bit type the device cannot run is one line."""
    check_precision(name)
    kind = torch.device(device).type
    if name == "fp32":
        yield
        return
    if kind == "cuda" and name == "bf16" and not torch.cuda.is_bf16_supported():
        raise InvalidArgumentError("this GPU has no bfloat16; use --precision fp16 or fp32")
    if kind == "mps" and name == "bf16":
        raise InvalidArgumentError("bfloat16 autocast is not available on mps; use --precision fp16 or fp32")
    token = _ACTIVE.set((kind, _DTYPES[name]))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def reduced() -> bool:
    """True inside a 16-bit :func:`attack_precision` block."""
    return _ACTIVE.get() is not None


def autocast() -> contextlib.AbstractContextManager:
    """The autocast context of the active precision (a no-op context for float32)."""
    active = _ACTIVE.get()
    if active is None:
        return contextlib.nullcontext()
    kind, dtype = active
    return torch.autocast(kind, dtype=dtype)


def confirm_fooled(model: nn.Module, x: torch.Tensor, y: torch.Tensor, candidates: torch.Tensor,
                   targeted: bool = False) -> torch.Tensor:
    """``candidates`` (bool N, judged on 16-bit logits) narrowed to those a float32 forward pass of ``x`` also
    finds fooled (misclassified; for ``targeted``, classified as ``y``). Unchanged in float32."""
    if not reduced() or not bool(candidates.any()):
        return candidates
    rows = candidates.nonzero().squeeze(1)
    with torch.no_grad():
        labels = model(x[rows]).float().argmax(1)
    fooled = labels == y[rows] if targeted else labels != y[rows]
    confirmed = torch.zeros_like(candidates)
    confirmed[rows] = fooled
    return confirmed
