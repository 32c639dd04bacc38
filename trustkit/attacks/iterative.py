"""Shared machinery of iterative gradient attacks: per-sample early stopping, random starts, restarts.

Samples are independent in an eval-mode model, so once a sample is fooled it can leave the batch: the
attack keeps stepping only the samples still standing (``early_stop=True``), which returns exactly what a
full run would have recorded as "first fooling iterate" at a fraction of the cost on weak models.
"""
from __future__ import annotations

import abc
from typing import Callable

import torch
from torch import nn

from trustkit.attacks.base import Attack, input_gradient
from trustkit.attacks.losses import fooled as is_fooled
from trustkit.attacks.precision import confirm_fooled
from trustkit.errors import InvalidArgumentError

RunResult = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (x_adv, fooled bool, objective value)


def random_point_in_ball(x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """A uniform sample of the linf cube, or of the l2 ball (direction ~ Gaussian, radius ~ eps·U^(1/d))."""
    if norm == "linf":
        return x + torch.empty_like(x).uniform_(-eps, eps)
    direction = torch.randn_like(x)
    direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))
    radius = eps * torch.rand(len(x), device=x.device) ** (1.0 / x[0].numel())
    return x + direction * radius.view(-1, *[1] * (x.ndim - 1))


def best_of_restarts(run_once: Callable[[torch.Tensor], RunResult], n: int, restarts: int,
                     device: torch.device) -> RunResult:
    """Run ``run_once(rows)`` up to ``restarts`` times, each time only on the rows (sample indices) that no
    earlier run fooled. Per sample it keeps the first fooling result, else the one with the highest objective.
    """
    best, fooled, value = run_once(torch.arange(n, device=device))
    for _ in range(restarts - 1):
        remaining = (~fooled).nonzero().squeeze(1)
        if len(remaining) == 0:
            break
        x_new, fooled_new, value_new = run_once(remaining)
        better = fooled_new | (value_new > value[remaining])
        chosen = remaining[better]
        best[chosen], fooled[chosen], value[chosen] = x_new[better], fooled_new[better], value_new[better]
    return best, fooled, value


class IterativeAttack(Attack):
    """``steps`` projected ascent steps from a (random) start, with restarts and per-sample early stopping.

    Subclasses define :meth:`step` (the update rule, which may keep per-sample state in ``state``) and may
    override :meth:`start` and :meth:`objective`. With ``early_stop`` a sample leaves the batch at its first
    fooling iterate, which is what it returns; otherwise every sample runs all steps and returns its last
    iterate (Madry et al.'s PGD), which suits adversarial training and transfer.
    """

    can_target = True

    def __init__(self, eps: float | str, *, norm: str = "linf", targeted: bool = False, steps: int = 10,
                 restarts: int = 1, early_stop: bool = True) -> None:
        super().__init__(eps, norm=norm, targeted=targeted, early_stop=early_stop)
        if int(steps) < 1 or int(restarts) < 1:
            raise InvalidArgumentError(f"{self.name} needs steps >= 1 and restarts >= 1, got steps={steps}, "
                                       f"restarts={restarts}")
        self.steps, self.restarts = int(steps), int(restarts)

    def params(self) -> dict[str, object]:
        return {**super().params(), "steps": self.steps, "restarts": self.restarts}

    def objective(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        """Per-sample loss to ascend; None means cross-entropy (negated when targeted)."""
        return None

    def start(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    def init_state(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample state tensors (first dimension N) that :meth:`step` updates."""
        return {}

    @abc.abstractmethod
    def step(self, x_adv: torch.Tensor, x: torch.Tensor, grad: torch.Tensor,
             state: dict[str, torch.Tensor]) -> torch.Tensor:
        """The update rule: the next iterate (before projection) from the current one and its gradient."""

    def run_once(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, need_status: bool) -> RunResult:
        """One attack run; ``need_status`` forces a final forward pass to learn whether the last iterates fool."""
        objective = self.objective()
        x_adv = self.threat.project(self.start(x), x)
        state = self.init_state(x)
        result = x_adv.clone()
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        value = torch.full((len(x),), -torch.inf, device=x.device)
        active = torch.arange(len(x), device=x.device)
        for step in range(self.steps + 1):
            last = step == self.steps
            if last and not need_status:  # the caller checks the final iterates itself
                break
            if last:
                with torch.no_grad():
                    logits = model(x_adv).float()
                    loss = (objective or _default_objective(self.targeted))(logits, y)
            else:
                logits, loss, grad = input_gradient(model, x_adv, y, targeted=self.targeted, objective=objective)
            if last:  # everything still standing finishes here, fooled or not
                result[active], fooled[active], value[active] = x_adv, is_fooled(logits, y, self.targeted), loss
                active = active[:0]
                break
            if self.early_stop:
                done = confirm_fooled(model, x_adv, y, is_fooled(logits, y, self.targeted), self.targeted)
                if bool(done.any()):
                    finished = active[done]
                    result[finished], fooled[finished], value[finished] = x_adv[done], True, loss[done]
                    keep = ~done
                    active, x_adv, x, y, grad = active[keep], x_adv[keep], x[keep], y[keep], grad[keep]
                    state = {k: v[keep] for k, v in state.items()}
                    if len(active) == 0:
                        break
            x_adv = self.threat.project(self.step(x_adv, x, grad, state), x)
        if len(active):
            result[active] = x_adv  # the last iterates, not checked here
        return result, fooled, value

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        need_status = self.restarts > 1
        best, _, _ = best_of_restarts(lambda rows: self.run_once(model, x[rows], y[rows], need_status=need_status),
                                      len(x), self.restarts, x.device)
        return best


def _default_objective(targeted: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    from trustkit.attacks.losses import cross_entropy, targeted_cross_entropy

    return targeted_cross_entropy if targeted else cross_entropy
