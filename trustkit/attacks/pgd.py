"""Projected Gradient Descent (Madry et al. 2018), linf or l2, with random starts and restarts."""
from __future__ import annotations

import torch

from trustkit.attacks.base import steepest_ascent
from trustkit.attacks.iterative import IterativeAttack, random_point_in_ball
from trustkit.errors import InvalidArgumentError


class PGD(IterativeAttack):
    """``steps`` steps of size ``alpha`` (default 2.5·eps/steps) along the steepest-ascent direction of the
    cross-entropy, each projected back onto the threat model, from a uniform random start in the ball.

    ``early_stop`` (default) returns per sample the first iterate that fools the model and stops attacking it;
    ``early_stop=False`` runs every sample for all steps and returns the last iterate. Restarts re-attack only
    samples that no earlier restart fooled.
    """

    name = "pgd"

    def __init__(self, eps: float | str, *, norm: str = "linf", alpha: float | None = None, steps: int = 10,
                 random_start: bool = True, restarts: int = 1, targeted: bool = False, early_stop: bool = True) -> None:
        super().__init__(eps, norm=norm, targeted=targeted, steps=steps, restarts=restarts, early_stop=early_stop)
        self.random_start = bool(random_start)
        self.alpha = float(alpha) if alpha is not None else 2.5 * self.eps / self.steps
        if self.alpha <= 0 and self.eps > 0:
            raise InvalidArgumentError(f"{self.name} step size alpha must be > 0, got {alpha}")

    def params(self) -> dict[str, object]:
        return {**super().params(), "alpha": self.alpha, "random_start": self.random_start}

    def start(self, x: torch.Tensor) -> torch.Tensor:
        return random_point_in_ball(x, self.eps, self.norm) if self.random_start else x.clone()

    def step(self, x_adv, x, grad, state):  # noqa: ANN001, ANN201 - see IterativeAttack.step
        return x_adv + self.alpha * steepest_ascent(grad, self.norm)
