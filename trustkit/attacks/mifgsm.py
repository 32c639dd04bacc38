"""Momentum Iterative FGSM (Dong et al. 2018): accumulate L1-normalised gradients with decay ``mu``."""
from __future__ import annotations

import torch

from trustkit.attacks.base import steepest_ascent
from trustkit.attacks.iterative import IterativeAttack


class MIFGSM(IterativeAttack):
    """g ← mu·g + ∇/‖∇‖₁, x ← Π(x + alpha·sign(g)) (or the l2-normalised g for l2); alpha defaults to eps/steps."""

    name = "mifgsm"

    def __init__(self, eps: float | str, *, norm: str = "linf", alpha: float | None = None, steps: int = 10,
                 decay: float = 1.0, targeted: bool = False, early_stop: bool = True) -> None:
        super().__init__(eps, norm=norm, targeted=targeted, steps=steps, restarts=1, early_stop=early_stop)
        self.alpha = float(alpha) if alpha is not None else self.eps / self.steps
        self.decay = float(decay)

    def params(self) -> dict[str, object]:
        params = {**super().params(), "alpha": self.alpha, "decay": self.decay}
        del params["restarts"]
        return params

    def init_state(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"momentum": torch.zeros_like(x)}

    def step(self, x_adv, x, grad, state):  # noqa: ANN001, ANN201 - see IterativeAttack.step
        l1 = grad.abs().flatten(1).sum(dim=1).clamp_min(1e-12).view(-1, *[1] * (grad.ndim - 1))
        state["momentum"].mul_(self.decay).add_(grad / l1)
        return x_adv + self.alpha * steepest_ascent(state["momentum"], self.norm)
