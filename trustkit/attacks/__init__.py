"""Evasion attacks under the Attack contract; ``ATTACKS`` maps names to attack factories."""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from trustkit.attacks.apgd import APGD
from trustkit.attacks.base import NORMS, Attack, ThreatModel, format_eps, parse_eps, perturbation_norms
from trustkit.attacks.bim import BIM
from trustkit.attacks.cw import CarliniWagnerL2
from trustkit.attacks.deepfool import DeepFool
from trustkit.attacks.ensemble import StrongEnsemble
from trustkit.attacks.fgsm import FGSM
from trustkit.attacks.hopskipjump import HopSkipJump
from trustkit.attacks.mifgsm import MIFGSM
from trustkit.attacks.pgd import PGD
from trustkit.attacks.square import Square
from trustkit.errors import InvalidArgumentError
from trustkit.registry import Registry

AttackFactory = Callable[..., Attack]

ATTACKS: Registry[AttackFactory] = Registry("attack")
ATTACKS.add("fgsm", FGSM, summary="Fast Gradient Sign Method, one step (Goodfellow et al. 2015)", aliases=("fgm",))
ATTACKS.add("bim", BIM, summary="Basic Iterative Method / I-FGSM, no random start (Kurakin et al. 2017)",
            aliases=("i-fgsm", "ifgsm"))
ATTACKS.add("mifgsm", MIFGSM, summary="Momentum Iterative FGSM (Dong et al. 2018)", aliases=("mi-fgsm", "mim"))
ATTACKS.add("pgd", PGD, summary="Projected Gradient Descent with random start and restarts (Madry et al. 2018)")
ATTACKS.add("apgd-ce", functools.partial(APGD, loss="ce"), summary="Auto-PGD, cross-entropy loss (Croce & Hein 2020)",
            aliases=("apgd",))
ATTACKS.add("apgd-dlr", functools.partial(APGD, loss="dlr"), summary="Auto-PGD, DLR loss (Croce & Hein 2020)")
ATTACKS.add("apgd-t", functools.partial(APGD, loss="dlr", targets=9),
            summary="targeted Auto-PGD with DLR loss over the 9 runner-up classes (APGD-T)", aliases=("apgd-dlr-t",))
ATTACKS.add("cw", CarliniWagnerL2, summary="Carlini-Wagner L2, minimum-norm (Carlini & Wagner 2017)",
            aliases=("cw-l2", "carlini-wagner"))
ATTACKS.add("deepfool", DeepFool, summary="DeepFool, minimum-norm (Moosavi-Dezfooli et al. 2016)")
ATTACKS.add("strong", StrongEnsemble, summary="worst case over APGD-CE and APGD-T, attacking only points still "
            "standing (AutoAttack-style)")
ATTACKS.add("square", Square, summary="Square attack, score-based black-box random search (Andriushchenko et al. 2020)")
ATTACKS.add("hopskipjump", HopSkipJump, summary="HopSkipJump, decision-based black-box (Chen et al. 2020), ART's search "
            "under a per-image query budget", aliases=("hsj",))


def accepted_params(factory: AttackFactory) -> set[str] | None:
    """Keyword parameters a factory takes besides eps/norm; None when it takes any (``**kwargs``)."""
    parameters = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return {n for n in parameters if n not in ("self", "eps", "norm")}


def make_attack(name: str, eps: float | str, norm: str = "linf", *, ignore_unknown: bool = False,
                **params: Any) -> Attack:
    """Instantiate attack ``name`` at ``eps``. ``params`` that are None keep their defaults; a parameter the
    attack does not take is an error unless ``ignore_unknown`` (then it is dropped)."""
    factory = ATTACKS.get(name)
    given = {k: v for k, v in params.items() if v is not None}
    accepted = accepted_params(factory)
    if accepted is not None:
        unknown = set(given) - accepted
        if unknown and not ignore_unknown:
            raise InvalidArgumentError(f"attack '{ATTACKS.canonical(name)}' takes no parameter "
                                       f"{', '.join(sorted(unknown))}; it takes: {', '.join(sorted(accepted))}")
        given = {k: v for k, v in given.items() if k in accepted}
    try:
        return factory(eps=eps, norm=norm, **given)
    except TypeError as exc:  # a wrongly typed --param value
        raise InvalidArgumentError(f"bad parameter for attack '{name}': {exc}") from None


__all__ = ["APGD", "ATTACKS", "BIM", "MIFGSM", "NORMS", "Attack", "CarliniWagnerL2", "DeepFool", "FGSM", "HopSkipJump", "PGD",
           "Square", "StrongEnsemble", "ThreatModel", "accepted_params", "format_eps", "make_attack", "parse_eps",
           "perturbation_norms"]
