"""The attack registry and how attacks are built from names and checked parameters.

``ATTACKS`` starts empty and is filled by :mod:`trustkit.attacks` (one ``ATTACKS.add`` line per attack), which
Python always imports before any of its modules; ensembles build their members through it without importing
the package that registers them (no import cycle).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from trustkit.attacks.base import Attack
from trustkit.attacks.params import coerce, parameter_kinds
from trustkit.errors import InvalidArgumentError
from trustkit.registry import Registry

AttackFactory = Callable[..., Attack]

ATTACKS: Registry[AttackFactory] = Registry("attack")


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
