"""What a bench cell attacks with: an attack name, the engine that implements it, and its parameters."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from trustkit.attacks import ATTACKS, Attack, accepted_params, make_attack
from trustkit.attacks.art_bridge import ART_PREFIX, ArtAttack, art_equivalent
from trustkit.attacks.base import ThreatModel
from trustkit.errors import InvalidArgumentError

ENGINES = ("trustkit", "art")


def parse_param(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)`` with the value read as YAML (``3`` int, ``0.5`` float, ``true``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise InvalidArgumentError(f"cannot read parameter '{text}'; write key=value, e.g. --param steps=40")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


@dataclass(frozen=True)
class AttackSpec:
    """An attack as named on the command line: ``pgd``, ``apgd-t``, or ``art:HopSkipJump``.

    ``engine="art"`` runs a trustkit attack name with ART's implementation; ``art:`` names always run in ART.
    ``params`` are the attack's keyword parameters (those it does not take are dropped, so shared options
    like --steps can apply to several attacks at once; ``strict_params`` are an error if no attack takes them).
    """

    name: str
    engine: str = "trustkit"
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def parse(cls, name: str, engine: str = "trustkit", params: dict[str, Any] | None = None) -> "AttackSpec":
        if engine not in ENGINES:
            raise InvalidArgumentError(f"unknown engine '{engine}'; use one of: {', '.join(ENGINES)}")
        if name.lower().startswith(ART_PREFIX):
            class_name = name[len(ART_PREFIX):]
            from trustkit.attacks.art_bridge import _evasion_class

            _evasion_class(class_name)  # fail fast on an unknown class
            return cls(f"{ART_PREFIX}{class_name}", "art", dict(params or {}))
        return cls(ATTACKS.canonical(name), engine, dict(params or {}))

    def describe(self) -> dict[str, Any]:
        """JSON-able identity: name, engine and parameters (sorted), as recorded in caches and reports."""
        return {"name": self.name, "engine": self.engine,
                "params": {k: self.params[k] for k in sorted(self.params) if self.accepts(k)}}

    @property
    def label(self) -> str:
        """How reports name the attack: ``pgd``, or ``pgd (art)`` when ART runs a trustkit name."""
        return self.name if self.engine == "trustkit" or self.is_art_class else f"{self.name} ({self.engine})"

    @property
    def is_art_class(self) -> bool:
        return self.name.startswith(ART_PREFIX)

    def accepts(self, key: str) -> bool:
        if self.is_art_class:
            return True
        accepted = accepted_params(ATTACKS.get(self.name))
        return accepted is None or key in accepted

    def build(self, eps: float, norm: str, batch_size: int = 256) -> Attack:
        """The attack instance for one cell."""
        if self.is_art_class:
            return ArtAttack(eps, norm=norm, class_name=self.name[len(ART_PREFIX):], batch_size=batch_size, **self.params)
        native = make_attack(self.name, eps, norm, ignore_unknown=True, **self.params)
        return art_equivalent(self.name, native, batch_size) if self.engine == "art" else native


def check_params_used(specs: list[AttackSpec], strict: dict[str, Any]) -> None:
    """Every explicitly given --param must be taken by at least one of the attacks."""
    for key in strict:
        if not any(spec.accepts(key) for spec in specs):
            takes = sorted({k for s in specs if not s.is_art_class for k in (accepted_params(ATTACKS.get(s.name)) or ())
                            if "." not in k})  # ensembles also take member.key forms: not listed
            raise InvalidArgumentError(f"no attack in this run takes parameter '{key}' "
                                       f"({', '.join(s.name for s in specs)} take: {', '.join(takes)})")


def build_attacks(names: list[str], engine: str, params: dict[str, Any], strict: dict[str, Any], norm: str,
                  eps_grid: list[float], batch_size: int) -> list[AttackSpec]:
    """Parse and try-construct every attack, so bad names or parameters fail before any work starts."""
    if not names:
        raise InvalidArgumentError("no attack given; name one, e.g. 'trustkit bench fgsm'")
    merged = {**{k: v for k, v in params.items() if v is not None}, **strict}
    specs = [AttackSpec.parse(a, engine, merged) for a in names]
    check_params_used(specs, strict)
    for eps in eps_grid:
        ThreatModel(norm, eps)  # raises on a norm/eps outside the threat model
    for spec in specs:
        spec.build(eps_grid[0], norm, batch_size)
    return specs
