"""Projected Gradient Descent (Madry et al. 2018), linf or l2, with random starts and restarts."""
from __future__ import annotations

import torch
from torch import nn

from trustkit.attacks.base import Attack, input_gradient, steepest_ascent
from trustkit.errors import InvalidArgumentError


class PGD(Attack):
    """``steps`` steps of size ``alpha`` (default 2.5·eps/steps), each projected back onto the threat model.

    Per sample it returns the first iterate that fooled the model (checked on the logits each step already
    computes, so at no extra cost); otherwise the last iterate. Restarts only re-attack samples that no
    earlier restart fooled.
    """

    name = "pgd"

    def __init__(self, eps: float | str, alpha: float | None = None, steps: int = 10, norm: str = "linf",
                 random_start: bool = True, restarts: int = 1, targeted: bool = False) -> None:
        super().__init__(eps, norm, targeted)
        if steps < 1 or restarts < 1:
            raise InvalidArgumentError(f"PGD needs steps >= 1 and restarts >= 1, got steps={steps}, restarts={restarts}")
        self.steps, self.restarts, self.random_start = int(steps), int(restarts), bool(random_start)
        self.alpha = float(alpha) if alpha is not None else 2.5 * self.eps / self.steps
        if self.alpha <= 0 and self.eps > 0:
            raise InvalidArgumentError(f"PGD step size alpha must be > 0, got {alpha}")

    def params(self) -> dict[str, object]:
        return {**super().params(), "alpha": self.alpha, "steps": self.steps, "restarts": self.restarts,
                "random_start": self.random_start}

    def _random_start(self, x: torch.Tensor) -> torch.Tensor:
        if not self.random_start:
            return x.clone()
        if self.norm == "linf":
            return x + torch.empty_like(x).uniform_(-self.eps, self.eps)
        direction = torch.randn_like(x)
        direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        radius = self.eps * torch.rand(len(x), device=x.device) ** (1.0 / x[0].numel())  # uniform in the ball
        return x + direction * radius.view(-1, 1, 1, 1)

    def _fooled(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        predicted = logits.argmax(1)
        return predicted == y if self.targeted else predicted != y

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_adv = self.threat.project(self._random_start(x), x)
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        first_fooling = x_adv.clone()
        for _ in range(self.steps):
            logits, grad = input_gradient(model, x_adv, y, targeted=self.targeted)
            now_fooled = self._fooled(logits, y)
            first_fooling = torch.where((now_fooled & ~fooled).view(-1, 1, 1, 1), x_adv, first_fooling)
            fooled |= now_fooled
            x_adv = self.threat.project(x_adv + self.alpha * steepest_ascent(grad, self.norm), x)
        return torch.where(fooled.view(-1, 1, 1, 1), first_fooling, x_adv), fooled

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        best, fooled = self._run(model, x, y)
        for _ in range(self.restarts - 1):
            remaining = (~fooled).nonzero().squeeze(1)
            if len(remaining) == 0:
                break
            x_restart, fooled_restart = self._run(model, x[remaining], y[remaining])
            best[remaining] = x_restart
            fooled[remaining] = fooled_restart
        return best
