"""torch.compile for the attacked model, kept only where it is measured to help.

Attacks spend their time in forward+backward passes w.r.t. the input, so that is what is timed: a few passes
of the eager model against the compiled one on a batch of the run's own images, after compiling. The compiled
model is kept only when it is at least ``MIN_SPEEDUP`` faster; otherwise the run stays eager and says why.

On the CPU trustkit does not compile at all: measured on a 2-core x86_64 machine (torch 2.14.1, inductor), the
digits cnn took 104 s to compile and then ran a forward+backward pass of 256 images in 80 ms against 54 ms eager.
Attack batches shrink as samples are fooled, so the model is compiled with ``dynamic=True`` (one graph for every
batch size, instead of a recompile per size).
"""
from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trustkit.models.inference import input_gradients_only

MIN_SPEEDUP = 1.05
TIMED_PASSES = 5
CPU_REASON = ("torch.compile is not used on the CPU: measured slower there (digits cnn: 104 s to compile, then 80 ms "
              "per forward+backward pass of 256 images against 54 ms eager)")


def _input_gradient_passes(module: nn.Module, x: torch.Tensor, y: torch.Tensor, passes: int) -> float:
    """Seconds for ``passes`` forward+backward passes w.r.t. ``x`` (what an attack step costs)."""
    started = time.perf_counter()
    for _ in range(passes):
        probe = x.detach().clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(module(probe).float(), y, reduction="sum"), probe)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return time.perf_counter() - started


def compile_if_faster(module: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                      compiler: Any = None) -> tuple[nn.Module, dict[str, Any]]:
    """``(model to attack, what was decided)``: the compiled ``module`` if it runs input-gradient passes on
    ``x``/``y`` (a batch on the model's device) at least ``MIN_SPEEDUP`` times faster than eager, else
    ``module``. ``compiler`` replaces ``torch.compile`` (tests). The decision dict records the device, the
    milliseconds per pass of both, the compile seconds and the reason."""
    if x.device.type == "cpu" and compiler is None:
        return module, {"compile": "off", "reason": CPU_REASON}
    compiler = compiler or (lambda m: torch.compile(m, dynamic=True))
    with input_gradients_only(module):  # as the attacks will run it: eval mode, no weight gradients
        compiled = compiler(module)
        started = time.perf_counter()
        _input_gradient_passes(compiled, x, y, 1)  # compiles
        compile_seconds = time.perf_counter() - started
        _input_gradient_passes(module, x, y, 1)  # warm the eager path alike
        eager = _input_gradient_passes(module, x, y, TIMED_PASSES) / TIMED_PASSES
        fast = _input_gradient_passes(compiled, x, y, TIMED_PASSES) / TIMED_PASSES
    decision = {"eager_ms": round(eager * 1000, 3), "compiled_ms": round(fast * 1000, 3),
                "compile_seconds": round(compile_seconds, 2), "device": x.device.type}
    if eager >= MIN_SPEEDUP * fast:
        return compiled, {"compile": "on", **decision,
                          "reason": f"compiled: {eager / fast:.2f}x faster per forward+backward pass"}
    return module, {"compile": "off", **decision,
                    "reason": f"compiled was not faster ({fast * 1000:.1f} ms vs {eager * 1000:.1f} ms eager per "
                              "forward+backward pass): eager kept"}
