"""Typed, range-checked attack parameters: what ``-p key=value`` and the API may pass to an attack.

A parameter's type comes from the attack constructor's annotation (``steps: int``, ``alpha: float | None``);
its range from one table keyed by name, because a name means the same thing in every attack (``steps`` is
always an iteration count). A value of the wrong type, a non-finite number or one outside the range is one
line that names the parameter, the value and what is allowed.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable

from trustkit.errors import InvalidArgumentError


@dataclass(frozen=True)
class Range:
    """Allowed values: ``low`` (inclusive unless ``open_low``) to ``high`` (inclusive)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def admits(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or value <= self.high

    def describe(self) -> str:
        low = "" if self.low is None else f"{'>' if self.open_low else '>='} {self.low:g}"
        high = "" if self.high is None else f"<= {self.high:g}"
        return " and ".join(p for p in (low, high) if p)


POSITIVE = Range(0, None, open_low=True)
NON_NEGATIVE = Range(0, None)
FRACTION = Range(0, 1, open_low=True)
RANGES: dict[str, Range] = {
    # counts
    "steps": Range(1, 100_000), "restarts": Range(1, 1_000), "targets": Range(0, 1_000),
    "n_queries": Range(1, 1_000_000), "binary_search_steps": Range(1, 100), "candidates": Range(2, 100_000),
    "max_iter": Range(1, 100_000), "max_eval": Range(1, 1_000_000), "init_eval": Range(1, 1_000_000),
    "init_size": Range(1, 1_000_000), "eot": Range(1, 1_000),
    # step sizes and constants
    "alpha": POSITIVE, "lr": POSITIVE, "initial_const": POSITIVE, "alpha_max": FRACTION, "p_init": FRACTION,
    "rho": FRACTION, "beta": FRACTION, "eta": Range(1, None), "confidence": NON_NEGATIVE, "overshoot": NON_NEGATIVE,
    "decay": NON_NEGATIVE,
}


def _kind(annotation: Any) -> str | None:
    """'int', 'float', 'bool' or 'str' from an annotation such as ``float | None``; None for anything else."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = {p.strip() for p in str(text).replace("Optional[", "").rstrip("]").split("|")} - {"None"}
    for kind in ("bool", "int", "float", "str"):
        if parts == {kind}:
            return kind
    return None


def parameter_kinds(factory: Callable[..., Any]) -> dict[str, str | None]:
    """Keyword parameter name -> kind for an attack class, ``functools.partial`` of one, or factory function."""
    target = getattr(factory, "func", factory)
    signature = inspect.signature(target.__init__ if inspect.isclass(target) else target)
    return {name: _kind(p.annotation) for name, p in signature.parameters.items()
            if name not in ("self", "eps") and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def coerce(attack: str, name: str, value: Any, kind: str | None) -> Any:
    """``value`` as ``kind``, checked against the range table; one line on anything else."""
    if value is None or kind is None:
        return value
    where = f"attack '{attack}' parameter {name}"
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise InvalidArgumentError(f"{where} is true or false, got {value!r}; write e.g. -p {name}=true")
    if kind == "str":
        if isinstance(value, str):
            return value
        raise InvalidArgumentError(f"{where} is a name, got {value!r}")
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise InvalidArgumentError(f"{where} is a{'n integer' if kind == 'int' else ' number'}, got "
                                       f"{value!r}") from None
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise InvalidArgumentError(f"{where} is a number, got {value!r}")
    if not math.isfinite(number):
        raise InvalidArgumentError(f"{where} must be a finite number, got {value!r}")
    if kind == "int":
        if float(number) != int(number):
            raise InvalidArgumentError(f"{where} is an integer, got {value!r}")
        number = int(number)
    else:
        number = float(number)
    allowed = RANGES.get(name)
    if allowed is not None and not allowed.admits(number):
        raise InvalidArgumentError(f"{where} must be {allowed.describe()}, got {value!r}")
    return number
