"""Fast Gradient Sign Method (Goodfellow et al. 2015): x_adv = x + eps * sign(grad_x loss)."""
from __future__ import annotations

import torch
from torch import nn

from trustkit.attacks.base import Attack, input_gradient, steepest_ascent


class FGSM(Attack):
    """One step of size ``eps`` along the gradient sign (linf) or the normalised gradient (l2, "FGM").

    ``targeted=True`` treats ``y`` as target labels and steps down the target's cross-entropy.
    """

    name = "fgsm"
    can_target = True

    def __init__(self, eps: float | str, *, norm: str = "linf", targeted: bool = False,
                 early_stop: bool = True) -> None:
        # one step is the whole budget: early_stop changes nothing
        super().__init__(eps, norm=norm, targeted=targeted, early_stop=early_stop)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _, _, grad = input_gradient(model, x, y, targeted=self.targeted)
        return x + self.eps * steepest_ascent(grad, self.norm)
