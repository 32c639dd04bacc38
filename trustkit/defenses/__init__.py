"""Input-transformation defenses (``--defense``), evaluated naive and adaptive (BPDA / EOT)."""
from __future__ import annotations

from typing import Any

from trustkit.defenses.base import AdaptiveView, Defense, DefendedModel
from trustkit.defenses.transforms import JPEG, BitDepth, GaussianNoise, Median
from trustkit.errors import InvalidArgumentError
from trustkit.registry import Registry

DEFENSES: Registry[type[Defense]] = Registry("defense")
DEFENSES.add("jpeg", JPEG, summary="JPEG re-encoding at quality 75 (non-differentiable: BPDA)")
DEFENSES.add("bitdepth", BitDepth, summary="bit-depth reduction to 4 bits, feature squeezing (BPDA)",
             aliases=("bit-depth", "squeeze"))
DEFENSES.add("median", Median, summary="3×3 median smoothing, feature squeezing (differentiable a.e.)")
DEFENSES.add("noise", GaussianNoise, summary="Gaussian noise sigma 0.1, randomised (EOT)", aliases=("gaussian",))


def make_defense(spec: str) -> Defense:
    """A defense from ``"name"`` or ``"name:key=value,key=value"`` (e.g. ``jpeg:quality=50``)."""
    name, _, rest = spec.partition(":")
    cls = DEFENSES.get(name)
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"cannot read defense parameter '{item}'; write e.g. {name}:quality=50")
        params[key.strip()] = value.strip()
    try:
        return cls(**params)
    except TypeError:
        import inspect

        takes = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        raise InvalidArgumentError(f"defense '{cls.name}' takes {', '.join(takes)}; got {', '.join(params)}") from None


__all__ = ["DEFENSES", "AdaptiveView", "Defense", "DefendedModel", "make_defense"]
