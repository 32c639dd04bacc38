"""The ``strong`` ensemble: run member attacks in turn on the points still standing, keep the worst case.

As in AutoAttack (Croce & Hein 2020), each member attacks only samples that every earlier member failed to
break, so the cost falls as the ensemble proceeds; per sample the result is the first successful adversarial
example, and ``last_broken_by`` records which member broke it.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from trustkit.attacks.base import Attack
from trustkit.errors import InvalidArgumentError

DEFAULT_MEMBERS = ("apgd-ce", "apgd-t")


class StrongEnsemble(Attack):
    """Members by registry name (default APGD-CE then targeted APGD-DLR), all at this eps and norm.

    After each call, ``last_broken_by`` holds per sample the index into ``members`` of the attack that broke
    it, or -1 where none did (also for samples the model already misclassified).
    """

    name = "strong"

    def __init__(self, eps: float | str, norm: str = "linf", members: Sequence[str] | str = DEFAULT_MEMBERS,
                 **member_params: Any) -> None:
        super().__init__(eps, norm, False)
        from trustkit.attacks import ATTACKS, make_attack  # late: the registry imports this module

        names = [m.strip() for m in members.split(",")] if isinstance(members, str) else list(members)
        if not names:
            raise InvalidArgumentError("the strong ensemble needs at least one member attack")
        self.members = [ATTACKS.canonical(m) for m in names]
        if "strong" in self.members:
            raise InvalidArgumentError("the strong ensemble cannot contain itself")
        self.attacks = [make_attack(m, eps, norm, ignore_unknown=True, **member_params) for m in self.members]
        self.last_broken_by = torch.empty(0, dtype=torch.long)

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
