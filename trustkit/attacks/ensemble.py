"""The ``strong`` ensemble: AutoAttack's standard version (Croce & Hein 2020), members in turn on what stands.

``strong`` runs APGD-CE, APGD-T (9 target classes), FAB-T (9 target classes) and Square (5,000 queries,
p_init 0.8), in that order, each only on the samples that every earlier member failed to break, so the cost
falls as the ensemble proceeds and the gradient-free last member catches gradient masking that fools the
others. Per sample the result is the first successful adversarial example; ``last_broken_by`` records which
member broke it. ``strong-rand`` is AutoAttack's version for randomised models: APGD-CE and APGD-DLR, each
averaging its gradient over 20 draws of the model (EOT).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from trustkit.attacks.base import Attack
from trustkit.attacks.registry import ATTACKS, accepted_params, make_attack
from trustkit.errors import InvalidArgumentError

DEFAULT_MEMBERS = ("apgd-ce", "apgd-t", "fab-t", "square")
RAND_MEMBERS = ("apgd-ce", "apgd-dlr")
# AutoAttack's settings for its members where they differ from the members' own defaults.
MEMBER_DEFAULTS: dict[str, dict[str, Any]] = {"square": {"n_queries": 5000, "p_init": 0.8}}
RAND_EOT = 20


def split_member_params(params: dict[str, Any], members: Sequence[str]) -> tuple[dict[str, Any], dict[str, dict]]:
    """``(shared, per_member)``: ``member.key=value`` (e.g. ``square.n_queries``) goes to one member only."""
    shared: dict[str, Any] = {}
    per_member: dict[str, dict[str, Any]] = {m: {} for m in members}
    for key, value in params.items():
        prefix, dot, inner = key.rpartition(".")
        if not dot:
            shared[key] = value
            continue
        member = ATTACKS.canonical(prefix)
        if member not in per_member:
            raise InvalidArgumentError(f"'{key}' names member '{prefix}', which this ensemble does not run; its "
                                       f"members are: {', '.join(members)}")
        per_member[member][inner] = value
    return shared, per_member


class StrongEnsemble(Attack):
    """Members by registry name (default AutoAttack's standard four), all at this eps and norm.

    ``member_params`` go to every member that takes them (``steps=50`` to both APGDs and FAB-T); a key no
    member takes is refused. ``square.n_queries=1000`` sets one member's parameter. After each call,
    ``last_broken_by`` holds per sample the index into ``members`` of the attack that broke it, or -1 where
    none did (also for samples the model already misclassified).
    """

    name = "strong"

    def __init__(self, eps: float | str, *, norm: str = "linf", members: Sequence[str] | str = DEFAULT_MEMBERS,
                 early_stop: bool = True, **member_params: Any) -> None:
        super().__init__(eps, norm=norm, early_stop=early_stop)

        names = [m.strip() for m in members.split(",")] if isinstance(members, str) else list(members)
        if not names or not all(names):
            raise InvalidArgumentError("the strong ensemble needs at least one member attack, e.g. members=apgd-ce")
        self.members = [ATTACKS.canonical(m) for m in names]
        if {"strong", "strong-rand"} & set(self.members):
            raise InvalidArgumentError("the strong ensemble cannot contain itself")
        shared, per_member = split_member_params(member_params, self.members)
        taken = set().union(*((accepted_params(ATTACKS.get(m)) or set(shared)) for m in self.members))
        unknown = set(shared) - taken
        if unknown:
            raise InvalidArgumentError(f"no member of the ensemble ({', '.join(self.members)}) takes parameter "
                                       f"{', '.join(sorted(unknown))}; they take: {', '.join(sorted(taken))}")
        self.attacks = []
        for member in self.members:
            given = {**MEMBER_DEFAULTS.get(member, {}), **shared}
            accepted = accepted_params(ATTACKS.get(member))
            given = {k: v for k, v in given.items() if accepted is None or k in accepted}
            self.attacks.append(make_attack(member, eps, norm, early_stop=early_stop,
                                            **{**given, **per_member[member]}))
        self.last_broken_by = torch.empty(0, dtype=torch.long)

    @classmethod
    def parameter_names(cls, members: Sequence[str] = DEFAULT_MEMBERS) -> set[str]:
        """Every key the ensemble takes: those of its members (shared), ``member.key`` forms and ``members``."""
        names = {"members", "early_stop"}
        for member in members:
            keys = (accepted_params(ATTACKS.get(member)) or set()) - {"targeted"}  # the ensemble is untargeted
            names |= keys | {f"{ATTACKS.canonical(member)}.{k}" for k in keys}
        return names

    def params(self) -> dict[str, object]:
        return {**super().params(), "members": {m: a.params() for m, a in zip(self.members, self.attacks)}}

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        best = x.clone()
        with torch.no_grad():
            standing = model(x).argmax(1) == y
        broken_by = torch.full((len(x),), -1, dtype=torch.long, device=x.device)
        for index, attack in enumerate(self.attacks):
            rows = standing.nonzero().squeeze(1)
            if len(rows) == 0:
                break
            x_adv = attack(model, x[rows], y[rows])
            with torch.no_grad():
                success = model(x_adv).argmax(1) != y[rows]
            best[rows] = x_adv  # a failed member's point is still a valid point of the threat model
            standing[rows[success]] = False
            broken_by[rows[success]] = index
        self.last_broken_by = broken_by.cpu()
        return best


class StrongRandEnsemble(StrongEnsemble):
    """AutoAttack's ``rand`` version: APGD-CE and APGD-DLR, each gradient averaged over ``eot`` model draws
    (Expectation over Transformation), for models whose output is random."""

    name = "strong-rand"

    def __init__(self, eps: float | str, *, norm: str = "linf", members: Sequence[str] | str = RAND_MEMBERS,
                 eot: int = RAND_EOT, early_stop: bool = True, **member_params: Any) -> None:
        super().__init__(eps, norm=norm, members=members, early_stop=early_stop, eot=eot, **member_params)

    @classmethod
    def parameter_names(cls, members: Sequence[str] = RAND_MEMBERS) -> set[str]:
        return super().parameter_names(members)
