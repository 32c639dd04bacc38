"""One way to run a function over tensors in batches: every batched prediction, encoding, decoding and
attack loop in trustkit goes through :func:`map_batches`."""
from __future__ import annotations

from typing import Callable

import torch


def map_batches(function: Callable[..., torch.Tensor], *tensors: torch.Tensor | None, batch_size: int,
                device: torch.device | str | None = None, out: torch.device | str | None = "cpu",
                progress: Callable[[int], None] | None = None,
                empty: torch.Tensor | None = None) -> torch.Tensor:
    """``function`` applied to consecutive slices of ``batch_size`` rows of ``tensors`` (all of one length;
    None passes through as None), each slice moved to ``device`` first (None: left where it is); the results
    moved to ``out`` (None: left where they are) and concatenated along the first dimension.

    ``progress(rows)`` is called after each batch with the batch's row count; ``empty`` is returned when
    there are no rows (default: an empty float tensor).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    first = next(t for t in tensors if t is not None)
    parts = []
    for start in range(0, len(first), batch_size):
        args = [None if t is None else t[start:start + batch_size] for t in tensors]
        if device is not None:
            args = [None if a is None else a.to(device, non_blocking=True) for a in args]
        result = function(*args)
        parts.append(result if out is None else result.to(out))
        if progress is not None:
            progress(len(args[0]) if args[0] is not None else 0)
    if not parts:
        return empty if empty is not None else torch.empty(0)
    return torch.cat(parts)
