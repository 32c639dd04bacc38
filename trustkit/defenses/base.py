"""Input-transformation defenses as model wrappers, and the adaptive views an attacker uses against them.

A defense transforms images before the classifier. Evaluated honestly it is attacked twice:
- naive: the attacker ignores the defense (crafts on the undefended model), as many defense papers did;
- adaptive (Athalye et al. 2018): BPDA — the transform's forward pass with an identity backward pass — for
  non-differentiable transforms, and EOT — the expected prediction over the transform's randomness — for
  randomised ones. Only the adaptive number says how robust the defended model is.
"""
from __future__ import annotations

import abc
import math
from typing import Any

import torch
from torch import nn

from trustkit.errors import InvalidArgumentError

EOT_SAMPLES = 8  # transform draws averaged per forward pass in the adaptive (EOT) view


class Defense(abc.ABC):
    """An input transform on [0, 1] images N×C×H×W, returning [0, 1] images of the same shape."""

    name = "defense"
    differentiable = True  # False: gradients through transform() are zero or absent (BPDA needed)
    randomized = False  # True: transform() draws randomness each call (EOT needed)

    @abc.abstractmethod
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The defended input."""

    def params(self) -> dict[str, Any]:
        return {}

    def describe(self) -> str:
        """``name`` or ``name:key=value,...`` — how results and reports name this configuration."""
        params = self.params()
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")

    @property
    def adaptive_method(self) -> str:
        """"bpda", "eot", "bpda+eot" or "gradient" (a deterministic differentiable transform needs neither)."""
        parts = [] if self.differentiable else ["bpda"]
        parts += ["eot"] if self.randomized else []
        return "+".join(parts) or "gradient"


class DefendedModel(nn.Module):
    """``model(defense.transform(x))``: the model as deployed, used for every prediction."""

    def __init__(self, model: nn.Module, defense: Defense) -> None:
        super().__init__()
        self.model, self.defense = model, defense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.defense.differentiable:
            return self.model(self.defense.transform(x))
        with torch.no_grad():  # no gradient exists through it; attacking this view directly shows the masking
            defended = self.defense.transform(x)
        return self.model(defended)


class AdaptiveView(nn.Module):
    """What an adaptive attacker differentiates: BPDA through non-differentiable transforms (forward =
    transform, backward = identity) and, for randomised ones, the log of the softmax averaged over
    ``samples`` draws (EOT), returned as logits."""

    def __init__(self, model: nn.Module, defense: Defense, samples: int = EOT_SAMPLES) -> None:
        super().__init__()
        self.model, self.defense, self.samples = model, defense, samples

    def _transformed(self, x: torch.Tensor) -> torch.Tensor:
        if self.defense.differentiable:
            return self.defense.transform(x)
        with torch.no_grad():
            out = self.defense.transform(x)
        return x + (out - x).detach()  # straight-through: the transform's output, the identity's gradient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.defense.randomized:
            return self.model(self._transformed(x))
        draws = torch.stack([self.model(self._transformed(x)).float().log_softmax(1) for _ in range(self.samples)])
        return torch.logsumexp(draws, dim=0) - torch.log(torch.tensor(float(self.samples)))


def positive(name: str, value: Any, kind: type = float, maximum: float | None = None) -> Any:
    """Validate a defense parameter (> 0, at most ``maximum``), with a one-line error."""
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"defense parameter {name} must be a {kind.__name__}, got {value!r}") from None
    if not math.isfinite(value):
        raise InvalidArgumentError(f"defense parameter {name} must be a finite number, got {value}")
    if value <= 0 or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise InvalidArgumentError(f"defense parameter {name} must be > 0{bound}, got {value}")
    return value
