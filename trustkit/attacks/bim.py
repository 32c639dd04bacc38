"""Basic Iterative Method / I-FGSM (Kurakin et al. 2017): PGD from the clean image, no random start."""
from __future__ import annotations

from trustkit.attacks.pgd import PGD


class BIM(PGD):
    """``steps`` FGSM steps of size ``alpha`` (default eps/steps·1.25, so the budget is reachable), clipped to
    the eps-ball and [0, 1] after each step, starting from the clean image. Deterministic: it takes no
    ``restarts`` (each would repeat the same path); use ``pgd`` for random restarts."""

    name = "bim"

    def __init__(self, eps: float | str, *, norm: str = "linf", alpha: float | None = None, steps: int = 10,
                 targeted: bool = False, early_stop: bool = True) -> None:
        super().__init__(eps, alpha=alpha, steps=steps, norm=norm, random_start=False, restarts=1,
                         targeted=targeted, early_stop=early_stop)
        if alpha is None:
            self.alpha = 1.25 * self.eps / self.steps

    def params(self) -> dict[str, object]:
        params = super().params()
        del params["restarts"], params["random_start"]
        return params
