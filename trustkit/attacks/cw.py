"""Carlini-Wagner L2 (Carlini & Wagner 2017): minimise ||delta||_2^2 + c·f(x+delta) in tanh space.

f is the margin max(z_y - max_{i≠y} z_i + kappa, 0); a binary search over c per sample finds the
smallest constant that still succeeds. A minimum-norm attack: it looks for the smallest adversarial
perturbation, and the threat model's eps then decides whether that perturbation is allowed.
"""
from __future__ import annotations

import torch
from torch import nn

from trustkit.attacks.base import Attack
from trustkit.errors import InvalidArgumentError

UPPER_START = 1e10


class CarliniWagnerL2(Attack):
    """``binary_search_steps`` rounds of ``steps`` Adam steps (learning rate ``lr``) per sample, margin
    ``confidence`` (kappa, logit units), starting constant ``initial_const``. Returns the smallest-L2
    adversarial example found (the clean image where none was), projected onto the threat model."""

    name = "cw"
    minimum_norm = True
    boundary_point = True
    norms = ("l2",)

    def __init__(self, eps: float | str, *, norm: str = "l2", steps: int = 100, binary_search_steps: int = 5,
                 initial_const: float = 0.1, lr: float = 0.01, confidence: float = 0.0, abort_early: bool = True,
                 early_stop: bool = True) -> None:
        super().__init__(eps, norm=norm, early_stop=early_stop)
        if steps < 1 or binary_search_steps < 1 or initial_const <= 0 or lr <= 0:
            raise InvalidArgumentError("C&W needs steps >= 1, binary_search_steps >= 1, initial_const > 0 and lr > 0")
        self.steps, self.binary_search_steps = int(steps), int(binary_search_steps)
        self.initial_const, self.lr, self.confidence = float(initial_const), float(lr), float(confidence)
        self.abort_early = bool(abort_early)

    def params(self) -> dict[str, object]:
        return {**super().params(), "steps": self.steps, "binary_search_steps": self.binary_search_steps,
                "initial_const": self.initial_const, "lr": self.lr, "confidence": self.confidence,
                "abort_early": self.abort_early}

    def find(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The smallest-L2 adversarial example found per sample, unbounded (the clean image if none)."""
        n = len(x)
        w0 = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6))
        one_hot = torch.nn.functional.one_hot(y, num_classes=model(x[:1]).shape[1]).bool()
        const = torch.full((n,), self.initial_const, device=x.device)
        lower, upper = torch.zeros(n, device=x.device), torch.full((n,), UPPER_START, device=x.device)
        best_l2, best = torch.full((n,), torch.inf, device=x.device), x.clone()
        for _ in range(self.binary_search_steps):
            delta = torch.zeros_like(x, requires_grad=True)
            optimizer = torch.optim.Adam([delta], lr=self.lr)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            previous = torch.inf
            for step in range(self.steps):
                with torch.enable_grad():
                    x_new = (torch.tanh(w0 + delta) + 1) / 2
                    logits = model(x_new).float()
                    l2sq = (x_new - x).flatten(1).pow(2).sum(1)
                    real = logits.masked_select(one_hot)
                    other = logits.masked_fill(one_hot, -torch.inf).amax(1)
                    margin = real - other + self.confidence
                    loss = (l2sq + const * margin.clamp_min(0)).sum()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                optimizer.step()
                with torch.no_grad():
                    success = margin <= 0
                    l2 = l2sq.sqrt()
                    better = success & (l2 < best_l2)
                    best_l2 = torch.where(better, l2, best_l2)
                    best[better] = x_new.detach()[better]
                    succeeded |= success
                if self.abort_early and step % max(self.steps // 10, 1) == 0:
                    if loss.item() > previous * 0.9999:
                        break
                    previous = loss.item()
            upper = torch.where(succeeded, torch.minimum(upper, const), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, const))
            const = torch.where(upper < UPPER_START / 10, (lower + upper) / 2, const * 10)
        return best

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.find(model, x, y)
