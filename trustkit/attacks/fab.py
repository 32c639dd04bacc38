"""FAB, the Fast Adaptive Boundary attack (Croce & Hein, ICML 2020): minimally distorted adversarial examples.

Each iteration linearises the model at the current point, picks the decision boundary (class k vs the true
class y) that the linearisation puts closest, and projects onto that hyperplane, within the box [0, 1]^d,
both the current point and the clean image. The next point mixes the two projections (weight at most
``alpha_max`` on the clean one, which keeps the search near the image) and overshoots by ``eta``. Whenever the
point fools the model, its norm is a candidate minimum and the search steps back towards the image by ``beta``.

``targets`` > 0 is FAB-T: the only boundary considered is the one with a target class, taken in turn among the
classes the clean image scores highest after its top one; it needs one gradient per step instead of one per
class. All norms are in pixel units on [0, 1].
"""
from __future__ import annotations

import torch
from torch import nn

from trustkit.attacks.base import Attack, row_norms
from trustkit.errors import InvalidArgumentError

# Gradient coordinates below this fraction of a row's largest one are treated as zero by the projections:
# they cannot move the linearised logit difference, and 1/|w| would overflow the l2 breakpoints.
NEGLIGIBLE_WEIGHT = 1e-8


def project_onto_hyperplane(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor, norm: str) -> torch.Tensor:
    """Smallest step ``d`` (linf or l2 norm) per row with ``w·(t + d) = b`` and ``t + d`` in [0, 1]^D.

    ``t`` and ``w`` are N×D, ``b`` is N. When no point of the box reaches the hyperplane, ``d`` goes to the box
    corner that comes closest. The minimiser moves every useful coordinate by ``min(tau, room)`` (linf) or
    ``min(tau·|w_i|, room)`` (l2) against the sign of ``w_i``, where ``room`` is the distance to the box wall on
    that side; the scalar ``tau`` solves a piecewise-linear equation, found here by one sort over coordinates.
    """
    violation = (w * t).sum(dim=1) - b
    # orient each row so that the step must lower w·t by violation >= 0; the hyperplane itself is unchanged
    orientation = torch.where(violation >= 0, 1.0, -1.0).to(w.dtype)
    w, violation = w * orientation[:, None], violation * orientation
    # dividing by the largest |w_i| leaves the solution unchanged and keeps 1/|w_i| far from overflow
    scale = w.abs().amax(dim=1).clamp_min(torch.finfo(w.dtype).tiny)
    w, violation = w / scale[:, None], violation / scale
    useful = w.abs() > NEGLIGIBLE_WEIGHT
    room = torch.where(w > 0, t, 1 - t)
    magnitude = w.abs()
    if norm == "linf":
        weight, breakpoint = magnitude, room  # coordinate i moves min(tau, room_i), lowering w·t by |w_i| per unit
    else:
        weight, breakpoint = magnitude**2, room / magnitude.clamp_min(NEGLIGIBLE_WEIGHT)
    weight = torch.where(useful, weight, 0.0)
    breakpoint = torch.where(useful, breakpoint, 0.0)
    # reduction(tau) = sum_i weight_i · min(tau, breakpoint_i): find tau with reduction(tau) = violation
    breakpoint, order = breakpoint.sort(dim=1)
    weight = weight.gather(1, order)
    zero = weight.new_zeros(len(w), 1)
    saturated = torch.cat((zero, (weight * breakpoint).cumsum(dim=1)), dim=1)  # sum over breakpoints <= tau
    unsaturated = torch.cat((weight.flip(1).cumsum(dim=1).flip(1), zero), dim=1)  # weight of those beyond
    reduction_at_breakpoints = saturated[:, 1:] + breakpoint * unsaturated[:, 1:]  # nondecreasing
    passed = (reduction_at_breakpoints < violation[:, None]).sum(dim=1, keepdim=True)
    slope = unsaturated.gather(1, passed).squeeze(1)
    # no weight left beyond the last breakpoint: the box cannot reach the hyperplane, saturate every coordinate
    tau = torch.where(slope > 0, (violation - saturated.gather(1, passed).squeeze(1)) / slope.clamp_min(1e-30),
                      torch.inf).clamp_min(0.0)
    reach = tau[:, None] if norm == "linf" else tau[:, None] * magnitude
    move = torch.where(useful, torch.minimum(reach, room), 0.0)
    return -torch.sign(w) * move


def _random_start(x: torch.Tensor, radius: torch.Tensor, norm: str) -> torch.Tensor:
    """AutoAttack's FAB restart: a random direction scaled to norm ``radius / 2`` per sample, clipped to [0, 1]."""
    shape = (-1, *[1] * (x.ndim - 1))
    if norm == "linf":
        t = 2 * torch.rand_like(x) - 1
        size = t.flatten(1).abs().amax(dim=1)
    else:
        t = torch.randn_like(x)
        size = t.flatten(1).norm(dim=1)
    return (x + (0.5 * radius / size.clamp_min(1e-12)).view(shape) * t).clamp(0.0, 1.0)


class FAB(Attack):
    """FAB: ``steps`` boundary projections per run; untargeted, or FAB-T over ``targets`` runner-up classes.

    :meth:`find` is the minimum-norm search: every restart and every target class runs on every sample and the
    smallest adversarial example found is kept. ``attack(model, x, y)`` follows AutoAttack: success means a
    misclassified point within eps (for FAB-T as well; the target only steers the search), later runs (restarts,
    further targets) attack only the samples still standing, and restarts begin at a random point of norm
    min(best norm found, eps) / 2. With ``early_stop`` a sample leaves a run as soon as it has an adversarial
    example within eps — the same successes as a full run at a fraction of the cost, but the point returned is
    the first one found within eps, not the smallest. Where it finds none, the clean image is returned.
    """

    name = "fab"
    norms = ("linf", "l2")
    access = "white-box"
    minimum_norm = True
    boundary_point = True

    def __init__(self, eps: float | str, *, norm: str = "linf", steps: int = 100, restarts: int = 1,
                 targets: int = 0, alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9,
                 early_stop: bool = True) -> None:
        super().__init__(eps, norm=norm, early_stop=early_stop)
        if int(steps) < 1:
            raise InvalidArgumentError(f"FAB needs steps >= 1, got {steps}")
        if int(restarts) < 1:
            raise InvalidArgumentError(f"FAB needs restarts >= 1, got {restarts}")
        if int(targets) < 0:
            raise InvalidArgumentError(f"FAB needs targets >= 0 (0: untargeted), got {targets}")
        if not 0 < alpha_max <= 1:
            raise InvalidArgumentError(f"FAB needs 0 < alpha_max <= 1, got {alpha_max}")
        if not eta >= 1:
            raise InvalidArgumentError(f"FAB needs eta >= 1 (overshoot past the boundary), got {eta}")
        if not 0 < beta <= 1:
            raise InvalidArgumentError(f"FAB needs 0 < beta <= 1 (backward step), got {beta}")
        self.steps, self.restarts, self.targets = int(steps), int(restarts), int(targets)
        self.alpha_max, self.eta, self.beta = float(alpha_max), float(eta), float(beta)

    def params(self) -> dict[str, object]:
        return {**super().params(), "steps": self.steps, "restarts": self.restarts, "targets": self.targets,
                "alpha_max": self.alpha_max, "eta": self.eta, "beta": self.beta}

    def find(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per sample, the smallest adversarial example over all runs, unbounded; the clean image where none."""
        best, _ = self._search(model, x, y, bounded=False)
        return best

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        best, size = self._search(model, x, y, bounded=True)
        if self.early_stop:
            return torch.where((size <= self.threat.budget).view(-1, *[1] * (x.ndim - 1)), best, x)
        # beyond eps the smallest point found still gives the direction the base class extends to the ball
        return best

    def _search(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                bounded: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """All runs (targets × restarts): per sample the smallest adversarial found and its norm (inf if none)."""
        with torch.no_grad():
            logits = model(x).float()
        classes = logits.shape[1]
        if classes < 2:
            raise InvalidArgumentError(f"FAB needs a model with at least 2 classes, this one has {classes}")
        correct = logits.argmax(dim=1) == y
        best = x.clone()
        # misclassified images are their own minimal adversarial example (norm 0)
        best_size = torch.where(correct, torch.inf, 0.0)
        if self.targets:
            # runner-up classes by clean score, the true class excluded (it is the top one of correct samples)
            ranking = logits.scatter(1, y[:, None], -torch.inf).argsort(dim=1, descending=True)
            targets: list[torch.Tensor | None] = [ranking[:, rank] for rank in range(min(self.targets, classes - 1))]
        else:
            targets = [None]
        budget = self.threat.budget
        if bounded and budget <= 0:  # eps = 0: nothing but the misclassified images can count as fooled
            return best, best_size
        stop_at = budget if bounded and self.early_stop else None
        for target in targets:
            for restart in range(self.restarts):
                # bounded (AutoAttack): only the samples not yet fooled within eps; unbounded: every sample
                rows = ((best_size > budget) if bounded else correct).nonzero().squeeze(1)
                if len(rows) == 0:
                    break
                x_rows = x[rows]
                start = x_rows if restart == 0 else _random_start(
                    x_rows, best_size[rows].clamp(max=self.eps), self.norm)
                found, size = self._run(model, x_rows, y[rows], None if target is None else target[rows], start,
                                        stop_at)
                better = size < best_size[rows]
                best[rows[better]], best_size[rows[better]] = found[better], size[better]
        return best, best_size

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
             start: torch.Tensor, stop_at: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One FAB run from ``start`` on correctly classified images: (smallest adversarial found, its norm).

        The norm is inf (and the point the clean image) where none was found. With ``stop_at`` a sample leaves
        the batch once it holds an adversarial example of norm <= stop_at.
        """
        n = len(x)
        result, result_size = x.clone(), torch.full((n,), torch.inf, device=x.device)
        s: dict[str, torch.Tensor] = {"x": x, "y": y, "x_adv": start, "best_size": result_size.clone()}
        if target is not None:
            s["target"] = target
        active = torch.arange(n, device=x.device)
        for _ in range(self.steps):
            if len(active) == 0:
                break
            clean, current = s["x"].flatten(1), s["x_adv"].flatten(1)
            w, difference = self._closest_boundary(model, s["x_adv"], s["y"], s.get("target"))
            # the linearised boundary f_k - f_y = 0 around the current point, as the hyperplane w·z = b
            b = (w * current).sum(dim=1) - difference
            steps = project_onto_hyperplane(torch.cat((current, clean)), torch.cat((w, w)), torch.cat((b, b)),
                                            self.norm)
            from_current, from_clean = steps[:len(current)], steps[len(current):]
            size_current = row_norms(from_current, self.norm).clamp_min(1e-8)
            size_clean = row_norms(from_clean, self.norm).clamp_min(1e-8)
            # lean towards the clean image's projection when the current point is far from the boundary
            alpha = (size_current / (size_current + size_clean)).clamp(0.0, self.alpha_max)[:, None]
            x_new = ((current + self.eta * from_current) * (1 - alpha)
                     + (clean + self.eta * from_clean) * alpha).clamp(0.0, 1.0)
            with torch.no_grad():
                fooled = model(x_new.view_as(s["x"])).float().argmax(dim=1) != s["y"]
            size = row_norms(x_new - clean, self.norm)
            better = fooled & (size < s["best_size"])
            result[active[better]] = x_new[better].view(-1, *x.shape[1:])
            result_size[active[better]] = size[better]
            s["best_size"] = torch.where(better, size, s["best_size"])
            # past the boundary: step back towards the image so the next projection lands closer to it
            x_new = torch.where(fooled[:, None], clean + self.beta * (x_new - clean), x_new)
            s["x_adv"] = x_new.view_as(s["x"])
            if stop_at is not None:
                keep = s["best_size"] > stop_at
                if not bool(keep.all()):
                    active = active[keep]
                    s = {k: v[keep] for k, v in s.items()}
        return result, result_size

    def _closest_boundary(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                          target: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w, f_k - f_y)`` at ``x`` for the class k whose linearised boundary is nearest in the attack's norm.

        ``w`` (N×D) is the input gradient of the logit difference f_k - f_y. Candidates are every class but y,
        or only ``target``. One backward pass per candidate; only the nearest gradient is kept, so memory stays
        at one gradient per sample whatever the number of classes.
        """
        n = len(x)
        with torch.enable_grad():  # callers may sit inside torch.no_grad(); the linearisation needs the gradient
            x = x.detach().requires_grad_(True)
            logits = model(x).float()
            if target is not None:
                candidates = target[:, None]
            else:  # the classes other than y, j-th column: j if j < y else j + 1
                others = torch.arange(logits.shape[1] - 1, device=x.device).expand(n, -1)
                candidates = others + (others >= y[:, None]).long()
            true_logit = logits.gather(1, y[:, None]).squeeze(1)
            nearest = torch.full((n,), torch.inf, device=x.device)
            best_w = x.new_zeros(n, x[0].numel())
            best_difference = logits.new_zeros(n)
            for j in range(candidates.shape[1]):
                difference = logits.gather(1, candidates[:, j:j + 1]).squeeze(1) - true_logit
                grad = None
                if difference.requires_grad:  # a model that cuts the graph gives no gradient: w = 0
                    (grad,) = torch.autograd.grad(difference.sum(), x, retain_graph=j < candidates.shape[1] - 1,
                                                  allow_unused=True)
                w = torch.zeros_like(best_w) if grad is None else grad.flatten(1)
                dual = w.abs().sum(dim=1) if self.norm == "linf" else w.norm(dim=1)  # dual norm of the gradient
                distance = difference.detach().abs() / (dual + 1e-12)
                closer = distance < nearest
                nearest = torch.where(closer, distance, nearest)
                best_w = torch.where(closer[:, None], w, best_w)
                best_difference = torch.where(closer, difference.detach(), best_difference)
        return best_w, best_difference
