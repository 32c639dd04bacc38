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
from trustkit.attacks.ensemble import StrongEnsemble, StrongRandEnsemble
from trustkit.attacks.fab import FAB
from trustkit.attacks.fgsm import FGSM
from trustkit.attacks.hopskipjump import HopSkipJump
from trustkit.attacks.mifgsm import MIFGSM
from trustkit.attacks.params import coerce, parameter_kinds
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
ATTACKS.add("fab", FAB, summary="FAB, fast adaptive boundary attack: minimally distorted adversarial examples (Croce & Hein 2020)")
ATTACKS.add("fab-t", functools.partial(FAB, targets=9), summary="targeted FAB over the 9 runner-up classes (FAB-T, AutoAttack's member)")
ATTACKS.add("cw", CarliniWagnerL2, summary="Carlini-Wagner L2, minimum-norm (Carlini & Wagner 2017)",
            aliases=("cw-l2", "carlini-wagner"))
ATTACKS.add("deepfool", DeepFool, summary="DeepFool, minimum-norm (Moosavi-Dezfooli et al. 2016)")
ATTACKS.add("strong", StrongEnsemble, summary="AutoAttack's standard ensemble: APGD-CE, APGD-T, FAB-T, Square-5000, "
            "each on the points still standing (Croce & Hein 2020)", aliases=("autoattack",))
ATTACKS.add("strong-rand", StrongRandEnsemble, summary="AutoAttack's version for randomised models: APGD-CE and "
            "APGD-DLR with EOT over 20 draws")
ATTACKS.add("square", Square, summary="Square attack, score-based black-box random search (Andriushchenko et al. 2020)")
ATTACKS.add("hopskipjump", HopSkipJump, summary="HopSkipJump, decision-based black-box (Chen et al. 2020), ART's search "
            "under a per-image query budget", aliases=("hsj",))


def attack_class(name: str) -> type[Attack]:
    """The Attack class behind registry name ``name`` (through ``functools.partial``)."""
    factory = ATTACKS.get(name)
    return getattr(factory, "func", factory)


def supported_norms(name: str) -> tuple[str, ...]:
    """The norms attack ``name`` supports (others are refused when it is built)."""
    return attack_class(name).norms


def accepted_params(factory: AttackFactory, members: Any = None) -> set[str] | None:
    """Keyword parameters a factory takes besides eps/norm; None when it takes any (``**kwargs``).

    Ensembles take what their members take (``parameter_names``; ``members`` overrides their default
    members); a ``functools.partial`` does not take the keywords it fixes.
    """
    target = getattr(factory, "func", factory)
    fixed = set(getattr(factory, "keywords", {}) or {})
    if hasattr(target, "parameter_names"):
        if members is None:
            return target.parameter_names() - fixed
        names = [m.strip() for m in members.split(",")] if isinstance(members, str) else list(members)
        return target.parameter_names([ATTACKS.canonical(m) for m in names if m]) - fixed
    parameters = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return {n for n in parameters if n not in ("self", "eps", "norm")} - fixed


def make_attack(name: str, eps: float | str, norm: str = "linf", *, ignore_unknown: bool = False,
                **params: Any) -> Attack:
    """Instantiate attack ``name`` at ``eps``. ``params`` that are None keep their defaults; each other value is
    type- and range-checked (``steps=1.5`` or ``alpha=nan`` is one line); a parameter the attack does not take
    is an error unless ``ignore_unknown`` (then it is dropped)."""
    factory = ATTACKS.get(name)
    canonical = ATTACKS.canonical(name)
    given = {k: v for k, v in params.items() if v is not None}
    accepted = accepted_params(factory, given.get("members"))
    if accepted is not None:
        unknown = set(given) - accepted
        if unknown and not ignore_unknown:
            raise InvalidArgumentError(f"attack '{canonical}' takes no parameter "
                                       f"{', '.join(sorted(unknown))}; it takes: {', '.join(sorted(accepted))}")
        given = {k: v for k, v in given.items() if k in accepted}
    kinds = parameter_kinds(factory)
    given = {k: coerce(canonical, k.rpartition(".")[2], v, kinds.get(k, _member_kind(k))) for k, v in given.items()}
    try:
        return factory(eps=eps, norm=norm, **given)
    except TypeError as exc:  # a parameter the constructor refused
        raise InvalidArgumentError(f"bad parameter for attack '{canonical}': {exc}") from None


def _member_kind(key: str) -> str | None:
    """The kind of an ensemble's ``member.key`` or shared key, from the first member that declares it."""
    member, _, inner = key.rpartition(".")
    candidates = [member] if member else [n for n in ATTACKS if n not in ("strong", "strong-rand")]
    for candidate in candidates:
        if candidate in ATTACKS:
            kind = parameter_kinds(ATTACKS.get(candidate)).get(inner)
            if kind is not None:
                return kind
    return None


__all__ = ["APGD", "ATTACKS", "BIM", "MIFGSM", "NORMS", "Attack", "CarliniWagnerL2", "DeepFool", "FAB", "FGSM", "HopSkipJump", "PGD",
           "Square", "StrongEnsemble", "StrongRandEnsemble", "ThreatModel", "accepted_params", "attack_class",
           "supported_norms", "format_eps", "make_attack", "parse_eps",
           "perturbation_norms"]
