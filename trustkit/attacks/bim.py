"""Basic Iterative Method / I-FGSM (Kurakin et al. 2017): PGD from the clean image, no random start."""
from __future__ import annotations

from trustkit.attacks.pgd import PGD


class BIM(PGD):
    """``steps`` FGSM steps of size ``alpha`` (default eps/steps·1.25, so the budget is reachable), clipped to
    the eps-ball and [0, 1] after each step, starting from the clean image."""

    name = "bim"

    def __init__(self, eps: float | str, alpha: float | None = None, steps: int = 10, norm: str = "linf",
                 restarts: int = 1, targeted: bool = False, early_stop: bool = True) -> None:
        super().__init__(eps, alpha=alpha, steps=steps, norm=norm, random_start=False, restarts=1,
                         targeted=targeted, early_stop=early_stop)
        if alpha is None:
            self.alpha = 1.25 * self.eps / self.steps
        del restarts  # deterministic from the clean image: a restart would repeat the same path
