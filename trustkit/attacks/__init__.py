"""Evasion attacks under the Attack contract; ``ATTACKS`` maps names to attack classes."""
from __future__ import annotations

from typing import Any

from trustkit.attacks.base import NORMS, Attack, ThreatModel, format_eps, parse_eps, perturbation_norms
from trustkit.attacks.fgsm import FGSM
from trustkit.attacks.pgd import PGD
from trustkit.registry import Registry

ATTACKS: Registry[type[Attack]] = Registry("attack")
ATTACKS.add("fgsm", FGSM, summary="Fast Gradient Sign Method, one step (Goodfellow et al. 2015)", aliases=("fgm",))
ATTACKS.add("pgd", PGD, summary="Projected Gradient Descent with random start and restarts (Madry et al. 2018)")


def make_attack(name: str, eps: float | str, norm: str = "linf", **params: Any) -> Attack:
    """Instantiate attack ``name`` at ``eps``; ``params`` that are None are left at their defaults."""
    cls = ATTACKS.get(name)
    return cls(eps=eps, norm=norm, **{k: v for k, v in params.items() if v is not None})


__all__ = ["ATTACKS", "NORMS", "Attack", "FGSM", "PGD", "ThreatModel", "format_eps", "make_attack", "parse_eps",
           "perturbation_norms"]
