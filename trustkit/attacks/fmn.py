"""Fast Minimum-Norm attack, FMN (Pintor et al. 2021, "Fast Minimum-norm Adversarial Attacks through Adaptive
Norm Constraints"), linf and l2.

Normalised gradient steps on the logit difference z_y − max_{j≠y} z_j inside an ℓp ball whose radius ε_k adapts
every step: while the point is not adversarial the radius grows (before the first success: to the linearised
boundary, ‖δ‖ + |loss| / ‖∇‖_dual, times (1 + γ_k) — the paper stops at the boundary itself, where a locally
linear model leaves the point on it, a tie that never counts as adversarial), once it is the radius shrinks by
(1 − γ_k) below the best norm found. Step size α_k and γ_k decay from their initial to their final values by
cosine annealing. Per sample the smallest adversarial example over all steps is kept. All norms are in pixel units on [0, 1].
"""
from __future__ import annotations

import math

import torch
from torch import nn

from trustkit.attacks.base import Attack, row_norms
from trustkit.errors import InvalidArgumentError


def _project(delta: torch.Tensor, radius: torch.Tensor, norm: str) -> torch.Tensor:
    """``delta`` onto the per-sample ℓp ball of ``radius`` (linf: clamp; l2: rescale)."""
    shape = (-1, *[1] * (delta.ndim - 1))
    if norm == "linf":
        r = radius.view(shape)
        return torch.maximum(torch.minimum(delta, r), -r)
    scale = (radius / row_norms(delta, norm).clamp_min(1e-12)).clamp(max=1.0)
    return delta * scale.view(shape)


class FMN(Attack):
    """FMN with ``steps`` iterations (default 100); ``alpha_init`` → ``alpha_final`` (default alpha_init / 100)
    and ``gamma_init`` → ``gamma_final`` by cosine annealing.

    :meth:`find` is the minimum-norm search (one run serves a whole ε grid in ``bench``). ``attack(model, x, y)``
    returns, per sample, the smallest adversarial example found if it lies within eps, else the clean image
    (``early_stop``); with ``early_stop=False`` the smallest one found whatever its size, which the base class
    extends to the ball's boundary.
    """

    name = "fmn"
    norms = ("linf", "l2")
    access = "white-box"
    minimum_norm = True
    boundary_point = True

    def __init__(self, eps: float | str, *, norm: str = "linf", steps: int = 100, alpha_init: float = 1.0,
                 alpha_final: float | None = None, gamma_init: float = 0.05, gamma_final: float = 0.001,
                 early_stop: bool = True) -> None:
        super().__init__(eps, norm=norm, early_stop=early_stop)
        alpha_final = alpha_init / 100 if alpha_final is None else alpha_final
        if int(steps) < 1:
            raise InvalidArgumentError(f"FMN needs steps >= 1, got {steps}")
        if not (alpha_init > 0 and 0 < alpha_final <= alpha_init):
            raise InvalidArgumentError(f"FMN needs 0 < alpha_final <= alpha_init, got alpha_init={alpha_init}, "
                                       f"alpha_final={alpha_final}")
        if not 0 <= gamma_final <= gamma_init < 1:
            raise InvalidArgumentError(f"FMN needs 0 <= gamma_final <= gamma_init < 1, got gamma_init={gamma_init}, "
                                       f"gamma_final={gamma_final}")
        self.steps, self.alpha_init, self.alpha_final = int(steps), float(alpha_init), float(alpha_final)
        self.gamma_init, self.gamma_final = float(gamma_init), float(gamma_final)

    def params(self) -> dict[str, object]:
        return {**super().params(), "steps": self.steps, "alpha_init": self.alpha_init,
                "alpha_final": self.alpha_final, "gamma_init": self.gamma_init, "gamma_final": self.gamma_final}

    def find(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per sample, the smallest adversarial example found, unbounded; the clean image where none."""
        return self._search(model, x, y)[0]

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        best, size = self._search(model, x, y)
        if self.early_stop:
            return torch.where((size <= self.threat.budget).view(-1, *[1] * (x.ndim - 1)), best, x)
        return best

    def _search(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(smallest adversarial example per sample, its norm)``; the clean image and inf where none."""
        shape = (-1, *[1] * (x.ndim - 1))
        dual = 1.0 if self.norm == "linf" else 2.0
        delta = torch.zeros_like(x)
        radius = torch.full((len(x),), math.inf, device=x.device)
        widest = row_norms(torch.maximum(x, 1 - x), self.norm)  # no point of the box is farther from x
        best, best_size = x.clone(), torch.full((len(x),), math.inf, device=x.device)
        found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for i in range(self.steps):
            cosine = (1 + math.cos(math.pi * i / self.steps)) / 2
            alpha = self.alpha_final + (self.alpha_init - self.alpha_final) * cosine
            gamma = self.gamma_final + (self.gamma_init - self.gamma_final) * cosine
            with torch.enable_grad():
                delta.requires_grad_(True)
                logits = model(x + delta).float()
                true = logits.gather(1, y[:, None]).squeeze(1)
                other = logits.scatter(1, y[:, None], -math.inf).amax(dim=1)
                loss = other - true  # > 0: adversarial; ascended
                (gradient,) = torch.autograd.grad(loss.sum(), delta)
            delta = delta.detach()
            size = row_norms(delta, self.norm)
            adversarial = logits.argmax(1) != y
            smaller = adversarial & (size < best_size)
            best = torch.where(smaller.view(shape), x + delta, best)
            best_size = torch.where(smaller, size, best_size)
            found |= adversarial
            to_boundary = loss.detach().abs() / gradient.flatten(1).norm(p=dual, dim=1).clamp_min(1e-12)
            radius = torch.where(adversarial, torch.minimum(radius * (1 - gamma), best_size),
                                 torch.where(found, radius * (1 + gamma), (size + to_boundary) * (1 + gamma)))
            radius = torch.minimum(radius, widest)
            step = gradient / gradient.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
            delta = _project(delta + alpha * step, radius, self.norm)
            delta = (x + delta).clamp(0, 1) - x
        # the last step's point is not judged inside the loop
        with torch.no_grad():
            adversarial = model(x + delta).float().argmax(1) != y
        size = row_norms(delta, self.norm)
        smaller = adversarial & (size < best_size)
        best = torch.where(smaller.view(shape), x + delta, best)
        best_size = torch.where(smaller, size, best_size)
        return best, best_size
