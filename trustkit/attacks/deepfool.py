"""DeepFool (Moosavi-Dezfooli et al. 2016): step to the nearest linearised decision boundary, repeat.

A minimum-norm attack (l2, or linf with the dual l1 geometry): each iteration linearises the logit
differences f_k - f_y around the current point, moves to the closest boundary among ``candidates``
classes, and stops per sample as soon as the label flips. ``overshoot`` pushes the final point past it.
"""
from __future__ import annotations

import torch
from torch import nn

from trustkit.attacks.base import Attack
from trustkit.errors import InvalidArgumentError


class DeepFool(Attack):
    """At most ``steps`` iterations over the ``candidates`` classes the clean image scores highest."""

    name = "deepfool"
    minimum_norm = True
    boundary_point = True

    def __init__(self, eps: float | str, *, norm: str = "l2", steps: int = 50, overshoot: float = 0.02,
                 candidates: int = 10, early_stop: bool = True) -> None:
        super().__init__(eps, norm=norm, early_stop=early_stop)
        if steps < 1 or overshoot < 0 or candidates < 2:
            raise InvalidArgumentError("DeepFool needs steps >= 1, overshoot >= 0 and candidates >= 2")
        self.steps, self.overshoot, self.candidates = int(steps), float(overshoot), int(candidates)

    def params(self) -> dict[str, object]:
        return {**super().params(), "steps": self.steps, "overshoot": self.overshoot, "candidates": self.candidates}

    def find(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per sample, the first boundary-crossing point found (overshoot included), unbounded."""
        with torch.no_grad():
            ranking = model(x).float().argsort(dim=1, descending=True)
        k = min(self.candidates, ranking.shape[1])
        # candidate classes other than the true one, best-scoring first
        others = torch.stack([row[row != label][:k - 1] for row, label in zip(ranking, y)]) if len(x) else ranking[:, :0]
        total = torch.zeros_like(x)
        result = x.clone()
        active = torch.arange(len(x), device=x.device)
        shape = (-1, *[1] * (x.ndim - 1))
        for _ in range(self.steps + 1):
            if len(active) == 0:
                break
            x_i = (x[active] + (1 + self.overshoot) * total[active]).clamp(0, 1)
            with torch.enable_grad():
                x_i.requires_grad_(True)
                logits = model(x_i).float()
                done = logits.argmax(1) != y[active]
                if bool(done.any()):
                    result[active[done]] = x_i.detach()[done]
                if bool(done.all()):
                    break
                z_y = logits.gather(1, y[active, None]).squeeze(1)
                best_dist = torch.full((len(active),), torch.inf, device=x.device)
                best_step = torch.zeros_like(x_i)
                for j in range(others.shape[1]):
                    cls = others[active, j]
                    diff = logits.gather(1, cls[:, None]).squeeze(1) - z_y
                    (w,) = torch.autograd.grad(diff.sum(), x_i, retain_graph=j < others.shape[1] - 1)
                    flat = w.flatten(1)
                    dual = flat.norm(dim=1) if self.norm == "l2" else flat.abs().sum(dim=1)
                    dist = (diff.detach().abs() + 1e-4) / dual.clamp_min(1e-12)
                    if self.norm == "l2":
                        step = dist.view(shape) * w / flat.norm(dim=1).clamp_min(1e-12).view(shape)
                    else:
                        step = dist.view(shape) * w.sign()
                    closer = dist < best_dist
                    best_dist = torch.where(closer, dist, best_dist)
                    best_step = torch.where(closer.view(shape), step, best_step)
            keep = ~done
            total[active[keep]] += best_step[keep]
            active = active[keep]
        if len(active):
            result[active] = (x[active] + (1 + self.overshoot) * total[active]).clamp(0, 1)
        return result

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.find(model, x, y)
