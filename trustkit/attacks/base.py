"""Threat models and the Attack contract: ``attack(model, x, y) -> x_adv`` inside the ball and [0, 1]."""
from __future__ import annotations

import abc
import math
import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from trustkit.attacks import precision
from trustkit.attacks.losses import cross_entropy, targeted_cross_entropy
from trustkit.errors import InvalidArgumentError, ShapeMismatchError
from trustkit.models.inference import input_gradients_only  # noqa: F401 - re-exported for attacks

NORMS = ("linf", "l2")
L2_MARGIN = 1e-5  # relative; see ThreatModel.project
_EPS_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(?:/\s*([0-9]*\.?[0-9]+))?\s*$", re.I)


def parse_eps(value: str | float | int) -> float:
    """Epsilon from a number or a string such as ``"0.3"``, ``"8/255"`` or ``"1e-2"`` (pixel units on [0, 1])."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        eps = float(value)
    else:
        match = _EPS_PATTERN.match(str(value))
        if not match:
            raise InvalidArgumentError(f"cannot read epsilon '{value}'; write a number such as 0.3 or a fraction such as 8/255")
        numerator, denominator = float(match.group(1)), float(match.group(2) or 1)
        if denominator == 0:
            raise InvalidArgumentError(f"epsilon '{value}' divides by zero; write e.g. 8/255")
        eps = numerator / denominator
    if not math.isfinite(eps) or eps < 0:
        raise InvalidArgumentError(f"epsilon must be a finite number >= 0, got {value}")
    return eps


def format_eps(eps: float) -> str:
    """``8/255`` for small multiples of 1/255 (the 8-bit convention), else a short decimal."""
    steps = eps * 255
    if 0 < eps < 0.1 and abs(steps - round(steps)) < 1e-6:
        return f"{round(steps)}/255"
    return f"{eps:.4g}"


@dataclass(frozen=True)
class ThreatModel:
    """The set of allowed inputs: ``||x_adv - x||_norm <= eps`` and ``x_adv`` in [0, 1]^d."""

    norm: str
    eps: float

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise InvalidArgumentError(f"unknown norm '{self.norm}'; use one of: {', '.join(NORMS)}")
        if not math.isfinite(self.eps) or self.eps < 0:
            raise InvalidArgumentError(f"epsilon must be >= 0, got {self.eps}")
        if self.norm == "linf" and self.eps > 1:
            raise InvalidArgumentError(f"linf epsilon {self.eps} exceeds 1, the whole pixel range [0, 1]; "
                                       "use a value in [0, 1] such as 0.3 or 8/255")
        # The largest float32 not above eps: results then satisfy the budget both in float32 tensor
        # comparisons and after .item() in double precision (float32(0.1) > 0.1, for instance).
        eps32 = torch.tensor(self.eps, dtype=torch.float32)
        if float(eps32) > self.eps:
            eps32 = torch.nextafter(eps32, torch.tensor(0.0))
        object.__setattr__(self, "eps32", float(eps32))

    @property
    def budget(self) -> float:
        """Largest norm that counts as within eps: one the projection leaves untouched (float32 eps, and for l2
        its safety margin), so a point found at this size stays where it is after ``project_strict``."""
        return self.eps32 if self.norm == "linf" else self.eps32 * (1 - L2_MARGIN)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Nearest point (per sample) of the threat model to ``x_adv``: inside the eps-ball around ``x``, in [0, 1]."""
        delta = x_adv - x
        if self.norm == "linf":
            return (x + delta.clamp(-self.eps32, self.eps32)).clamp(0.0, 1.0)
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        # the small margin keeps the recomputed float32 norm of the result <= eps despite rounding
        scale = (self.eps32 * (1 - L2_MARGIN) / norms).clamp(max=1.0)
        return (x + delta * scale.view(-1, *[1] * (x.ndim - 1))).clamp(0.0, 1.0)

    def project_strict(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """:meth:`project`, then undo float32 rounding that leaves a point outside the ball (linf: one-ulp
        nudge towards x; l2: shrink rows whose recomputed norm still exceeds eps).

        Used once on an attack's final output, so the result passes ``norm(x_adv - x) <= eps`` exactly.
        """
        out = self.project(x_adv, x)
        if self.norm == "linf":
            # x + delta rounds in float32 and can land one ulp outside the ball: step those back towards x.
            overshoot = (out - x).abs() > self.eps32
            return torch.where(overshoot, torch.nextafter(out, x), out)
        for attempt in range(10):
            norms = (out - x).flatten(1).norm(dim=1)
            over = norms > self.eps32
            if not bool(over.any()):
                break
            shrink = torch.where(over, self.eps32 / norms.clamp_min(1e-12) * (1 - 1e-6 * 4**attempt), 1.0)
            out = (x + (out - x) * shrink.view(-1, *[1] * (x.ndim - 1))).clamp(0.0, 1.0)
        # When eps is near the float32 spacing of the pixels (eps ~ 1e-7), no scaling lands inside the ball:
        # those rows fall back to the clean input, which always satisfies the budget.
        still_over = (out - x).flatten(1).norm(dim=1) > self.eps32
        return torch.where(still_over.view(-1, *[1] * (x.ndim - 1)), x, out)

    def __str__(self) -> str:
        return f"{self.norm} eps={format_eps(self.eps)}"


def extend_to_boundary(x_adv: torch.Tensor, x: torch.Tensor, threat: ThreatModel) -> torch.Tensor:
    """Scale each non-zero perturbation along its direction to the ball's boundary (norm exactly eps).

    A minimum-norm point only just crosses the attacked model's boundary; on another model (transfer, a
    defense's surrogate) the full budget in the same direction is the stronger point.
    """
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(dim=1) if threat.norm == "linf" else delta.norm(dim=1)
    scale = torch.where(size > 0, threat.eps32 / size.clamp_min(1e-12), torch.ones_like(size))
    return (x + (x_adv - x) * scale.view(-1, *[1] * (x.ndim - 1))).clamp(0.0, 1.0)


def row_norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample linf or l2 norm of a batch of perturbations (any shape N×...)."""
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


def perturbation_norms(x_adv: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(linf, l2)`` norms of ``x_adv - x`` (pixel units on [0, 1])."""
    delta = (x_adv - x).flatten(1)
    return delta.abs().amax(dim=1), delta.norm(dim=1)


class Attack(abc.ABC):
    """An evasion attack under a :class:`ThreatModel`.

    ``attack(model, x, y)`` takes images N×C×H×W in [0, 1] and labels (targets when ``targeted``) and returns
    adversarial images inside the threat model. The model runs in eval mode; only input gradients are taken.

    Every option is keyword-only after ``eps``. ``norms`` lists the norms the attack supports; any other is
    refused. ``early_stop=True`` (default) returns per sample the first point that fools the model, which is all
    an evaluation of *this* model needs; ``early_stop=False`` spends the whole budget and returns the strongest
    point (last or highest-loss iterate; for minimum-norm attacks, the found direction extended to the ball's
    boundary) — what a transfer attack or an attack on a defended model's surrogate needs.
    """

    name: str = "attack"
    access: str = "white-box"  # "black-box" for attacks that only query outputs (sanity checks compare them)
    minimum_norm: bool = False  # True: find() seeks the smallest perturbation, whatever eps is
    boundary_point: bool = False  # True: results sit just past the decision boundary (minimum-norm searches)
    norms: tuple[str, ...] = NORMS
    can_target: bool = False  # True: ``targeted=True`` makes ``y`` the target labels

    def __init__(self, eps: float | str, *, norm: str = "linf", targeted: bool = False,
                 early_stop: bool = True) -> None:
        if norm not in type(self).norms:
            supported = " or ".join(type(self).norms)
            raise InvalidArgumentError(f"attack '{self.name}' supports only the {supported} norm, not '{norm}'; "
                                       f"use --norm {type(self).norms[0]}")
        if targeted and not self.can_target:
            raise InvalidArgumentError(f"attack '{self.name}' has no targeted version; drop targeted=true "
                                       "(apgd-t and fab-t steer towards runner-up classes on their own)")
        self.threat = ThreatModel(norm, parse_eps(eps))
        self.targeted = bool(targeted)
        self.early_stop = bool(early_stop)

    @property
    def eps(self) -> float:
        return self.threat.eps

    @property
    def norm(self) -> str:
        return self.threat.norm

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_inputs(x, y)
        with input_gradients_only(model):
            x_adv = self.perturb(model, x.detach(), y.detach())
        if self.boundary_point and not self.early_stop:
            x_adv = extend_to_boundary(x_adv.detach(), x.detach(), self.threat)
        return self.threat.project_strict(x_adv.detach(), x.detach())

    def find_unbounded(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Minimum-norm attacks: the perturbed images before projection onto the threat model.

        One search serves every eps of a grid: project its result onto each ball (``threat.project_strict``).
        """
        if not self.minimum_norm:
            raise TypeError(f"{type(self).__name__} is not a minimum-norm attack")
        check_inputs(x, y)
        with input_gradients_only(model):
            return self.find(model, x.detach(), y.detach()).detach()

    def find(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The unbounded search of a minimum-norm attack (see :meth:`find_unbounded`)."""
        raise TypeError(f"{type(self).__name__} is not a minimum-norm attack")

    @abc.abstractmethod
    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Craft adversarial examples; the caller projects the result onto the threat model."""

    def params(self) -> dict[str, object]:
        """Parameters that define this attack, defaults resolved (recorded in reports and cache keys)."""
        return {"norm": self.norm, "eps": self.eps, "targeted": self.targeted, "early_stop": self.early_stop}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.params().items())
        return f"{type(self).__name__}({inner})"


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, targeted: bool = False,
                   objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(logits at x, per-sample objective, its gradient w.r.t. x)``; ascend the gradient to attack.

    The default objective is cross-entropy, negated for targeted attacks (``y`` = target labels), so ascent
    always helps the attacker. Gradients come from the summed objective, so each sample's gradient is
    independent of the batch it sits in.
    """
    if objective is None:
        objective = targeted_cross_entropy if targeted else cross_entropy
    with torch.enable_grad():  # callers may sit inside torch.no_grad(); the attack still needs its gradient
        x = x.detach().requires_grad_(True)
        with precision.autocast():  # 16-bit forward/backward inside attack_precision (trustkit.attacks.precision)
            logits = model(x).float()
        values = objective(logits, y)
        if values.requires_grad:
            (grad,) = torch.autograd.grad(values.sum(), x, allow_unused=True)
        else:
            grad = None  # the model cut the graph (no_grad inside, non-differentiable preprocessing)
        if grad is None:
            grad = torch.zeros_like(x)  # no gradient path: attacks see zero, as the probes report
    return logits.detach(), values.detach(), grad


def steepest_ascent(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Unit step of steepest ascent for ``norm``: sign(grad) for linf, grad / ||grad||_2 per sample for l2."""
    if norm == "linf":
        return grad.sign()
    norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad / norms.view(-1, *[1] * (grad.ndim - 1))


def check_inputs(x: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse images that are not N×C×H×W floats in [0, 1] with one integer label each."""
    if x.ndim != 4:
        raise ShapeMismatchError(f"attack inputs must be N×C×H×W, got shape {tuple(x.shape)}; add a batch "
                                 "dimension with x.unsqueeze(0)")
    if not x.is_floating_point():
        raise InvalidArgumentError(f"attack inputs must be float images in [0, 1], got {x.dtype}; divide uint8 by 255")
    if y.shape != (x.shape[0],):
        raise ShapeMismatchError(f"need one label per image: {x.shape[0]} images, labels of shape {tuple(y.shape)}")
    low, high = torch.aminmax(x) if x.numel() else (torch.zeros(()), torch.zeros(()))
    if not bool((low >= 0) & (high <= 1)):  # NaN fails both comparisons; inf fails one
        raise InvalidArgumentError("attack inputs must be finite and inside [0, 1]; trustkit models normalise "
                                   "internally, so pass raw pixels scaled to [0, 1]")
