"""Auto-PGD (Croce & Hein 2020): step-size-free PGD with momentum, CE or DLR loss, and the targeted APGD-T.

The step size starts at 2·eps and is halved, with a restart from the best point so far, at checkpoints
where the loss oscillated (rose in fewer than rho = 75% of the steps since the last checkpoint) or stalled.
Checkpoints fall at 22% of the budget, then at shrinking intervals (3% less each time, at least 6%).
"""
from __future__ import annotations

import torch
from torch import nn

from trustkit.attacks.base import Attack, input_gradient, steepest_ascent
from trustkit.attacks.iterative import RunResult, best_of_restarts
from trustkit.attacks.losses import cross_entropy, dlr, dlr_targeted, margin
from trustkit.attacks.losses import fooled as is_fooled
from trustkit.attacks.precision import confirm_fooled
from trustkit.errors import InvalidArgumentError

LOSSES = ("ce", "dlr", "margin")
MOMENTUM = 0.75
RHO = 0.75


def _start(x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """AutoAttack's random start: a random direction scaled onto the eps-sphere (linf: its max-norm)."""
    shape = (-1, *[1] * (x.ndim - 1))
    if norm == "linf":
        t = 2 * torch.rand_like(x) - 1
        return x + eps * t / t.flatten(1).abs().amax(dim=1).clamp_min(1e-12).view(shape)
    t = torch.randn_like(x)
    return x + eps * t / t.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)


class APGD(Attack):
    """APGD with cross-entropy (``loss="ce"``), DLR (``loss="dlr"``, 3+ classes) or CW-margin (``loss="margin"``)
    loss; ``steps`` iterations (default 100).

    ``targets`` > 0 runs the targeted DLR version APGD-T: one run per target class among the ``targets``
    classes the clean image scores highest after its top one, each on the samples still standing. Success
    is always misclassification (targets only steer the search). With ``early_stop`` (default) it returns per
    sample the first fooling iterate (and drops the sample from the batch), else the highest-loss point found;
    with ``early_stop=False`` every sample runs all steps and returns its highest-loss point.
    """

    name = "apgd"

    def __init__(self, eps: float | str, *, norm: str = "linf", steps: int = 100, loss: str = "ce", restarts: int = 1,
                 targets: int = 0, early_stop: bool = True, rho: float = RHO, eot: int = 1) -> None:
        super().__init__(eps, norm=norm, early_stop=early_stop)
        if int(steps) < 1 or int(restarts) < 1 or int(targets) < 0 or int(eot) < 1:
            raise InvalidArgumentError(f"APGD needs steps >= 1, restarts >= 1, targets >= 0 and eot >= 1, got "
                                       f"steps={steps}, restarts={restarts}, targets={targets}, eot={eot}")
        if loss not in LOSSES:
            raise InvalidArgumentError(f"unknown APGD loss '{loss}'; use one of: {', '.join(LOSSES)}")
        self.steps, self.restarts, self.targets = int(steps), int(restarts), int(targets)
        self.loss, self.rho, self.eot = loss, float(rho), int(eot)
        self.first_checkpoint = max(int(0.22 * self.steps), 1)
        self.min_interval = max(int(0.06 * self.steps), 1)
        self.interval_decrease = max(int(0.03 * self.steps), 1)

    def params(self) -> dict[str, object]:
        return {**super().params(), "steps": self.steps, "restarts": self.restarts, "loss": self.loss,
                "targets": self.targets, "rho": self.rho, "eot": self.eot}

    def _gradient(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, objective) -> tuple:  # noqa: ANN001
        """``input_gradient``; with ``eot`` > 1 the loss and gradient are averaged over that many draws of a
        randomised model (the logits, used to judge success, are the last draw's)."""
        if self.eot == 1:
            return input_gradient(model, x, y, objective=objective)
        loss_sum, grad_sum = 0.0, torch.zeros_like(x)
        for _ in range(self.eot):
            logits, loss, grad = input_gradient(model, x, y, objective=objective)
            loss_sum, grad_sum = loss_sum + loss, grad_sum + grad
        return logits, loss_sum / self.eot, grad_sum / self.eot

    def run_once(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 target: torch.Tensor | None = None) -> RunResult:
        """One APGD run from a random start; ``target`` (labels) switches to the targeted DLR loss."""
        n, shape = len(x), (-1, *[1] * (x.ndim - 1))
        x_adv = self.threat.project(_start(x, self.eps, self.norm), x)
        s: dict[str, torch.Tensor] = {"x": x, "y": y}  # per-sample state, compacted together as samples leave
        if target is not None:
            s["target"] = target

        def objective(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            if "target" in s:
                return dlr_targeted(logits, labels, s["target"])
            return {"ce": cross_entropy, "dlr": dlr, "margin": margin}[self.loss](logits, labels)

        logits, loss, grad = self._gradient(model, x_adv, y, objective)
        s.update({
            "x_adv": x_adv, "x_old": x_adv, "grad": grad, "x_best": x_adv, "grad_best": grad, "loss_best": loss,
            "loss_last_check": loss, "reduced_last_check": torch.ones(n, dtype=torch.bool, device=x.device),
            "step_size": torch.full((n,), 2.0 * self.eps, device=x.device).view(shape),
            "history": torch.full((n, self.steps + 1), -torch.inf, device=x.device),
        })
        s["history"][:, 0] = loss
        s["fooled_best"] = is_fooled(logits, y)
        result, value = x_adv.clone(), loss.clone()
        fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
        active = torch.arange(n, device=x.device)

        def retire(done: torch.Tensor, fooled_now: torch.Tensor) -> None:
            nonlocal active, s
            finished = active[done]
            result[finished] = torch.where(fooled_now[done].view(shape), s["x_adv"][done], s["x_best"][done])
            fooled[finished], value[finished] = fooled_now[done], s["loss_best"][done]
            keep = ~done
            active = active[keep]
            s = {k: v[keep] for k, v in s.items()}

        fooled_now = confirm_fooled(model, x_adv, y, is_fooled(logits, y))
        if self.early_stop and bool(fooled_now.any()):
            retire(fooled_now, fooled_now)
        interval, since_check = self.first_checkpoint, 0
        for i in range(self.steps):
            if len(active) == 0:
                break
            momentum = MOMENTUM if i > 0 else 1.0
            previous = s["x_adv"] - s["x_old"]
            s["x_old"] = s["x_adv"]
            z = self.threat.project(s["x_adv"] + s["step_size"] * steepest_ascent(s["grad"], self.norm), s["x"])
            s["x_adv"] = self.threat.project(s["x_adv"] + momentum * (z - s["x_adv"]) + (1 - momentum) * previous,
                                             s["x"])
            logits, loss, s["grad"] = self._gradient(model, s["x_adv"], s["y"], objective)
            probed = s["x_adv"]  # the point these logits belong to (a step-size reset below may move x_adv)
            s["history"][:, i + 1] = loss
            improved = loss > s["loss_best"]
            s["x_best"] = torch.where(improved.view(shape), s["x_adv"], s["x_best"])
            s["grad_best"] = torch.where(improved.view(shape), s["grad"], s["grad_best"])
            s["loss_best"] = torch.where(improved, loss, s["loss_best"])
            s["fooled_best"] = torch.where(improved, is_fooled(logits, s["y"]), s["fooled_best"])
            since_check += 1
            if since_check == interval:
                window = s["history"][:, i + 1 - interval:i + 2]
                oscillating = (window[:, 1:] > window[:, :-1]).sum(dim=1) < interval * self.rho
                stalled = ~s["reduced_last_check"] & (s["loss_last_check"] >= s["loss_best"])
                reduce = oscillating | stalled
                s["reduced_last_check"], s["loss_last_check"] = reduce, s["loss_best"]
                s["step_size"] = torch.where(reduce.view(shape), s["step_size"] / 2, s["step_size"])
                s["x_adv"] = torch.where(reduce.view(shape), s["x_best"], s["x_adv"])
                s["grad"] = torch.where(reduce.view(shape), s["grad_best"], s["grad"])
                interval, since_check = max(interval - self.interval_decrease, self.min_interval), 0
            fooled_now = confirm_fooled(model, probed, s["y"], is_fooled(logits, s["y"]))
            if self.early_stop and bool(fooled_now.any()):
                retire(fooled_now, fooled_now)
        if len(active):  # still in the batch: the highest-loss point (with early_stop, never fooled)
            s["fooled_best"] = confirm_fooled(model, s["x_best"], s["y"], s["fooled_best"])
            result[active], fooled[active], value[active] = s["x_best"], s["fooled_best"], s["loss_best"]
        return result, fooled, value

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.targets == 0:
            return best_of_restarts(lambda rows: self.run_once(model, x[rows], y[rows]), len(x), self.restarts,
                                    x.device)[0]
        with torch.no_grad():
            ranking = model(x).float().argsort(dim=1, descending=True)
        if ranking.shape[1] < 4:
            raise InvalidArgumentError(f"targeted APGD (DLR-T) needs at least 4 classes, the model has {ranking.shape[1]}")
        best, value = x.clone(), torch.full((len(x),), -torch.inf, device=x.device)
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for rank in range(1, min(self.targets, ranking.shape[1] - 1) + 1):
            remaining = (~fooled).nonzero().squeeze(1)
            if len(remaining) == 0:
                break
            xs, ys, ts = x[remaining], y[remaining], ranking[remaining, rank]
            x_new, fooled_new, value_new = best_of_restarts(
                lambda rows, xs=xs, ys=ys, ts=ts: self.run_once(model, xs[rows], ys[rows], target=ts[rows]), len(xs),
                self.restarts,
                x.device)
            better = fooled_new | (value_new > value[remaining])
            chosen = remaining[better]
            best[chosen], fooled[chosen], value[chosen] = x_new[better], fooled_new[better], value_new[better]
        return best
