"""Black-box attacks: transfer from surrogate models (``transfer``), substitute models trained from label
queries (``substitute``, Papernot et al. 2017), and query accounting (``queries``). The query-based attacks
live with the other attacks: score-based Square (``trustkit.attacks.square``) and decision-based HopSkipJump
(``trustkit.attacks.hopskipjump``, ART's search under a query budget). CLI: ``trustkit bench transfer``,
``trustkit bench substitute``, ``trustkit bench square|hopskipjump``; see docs/blackbox.md.

Submodules load lazily, so importing the command-line group stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TransferConfig": "trustkit.blackbox.transfer", "TransferResult": "trustkit.blackbox.transfer",
    "success_matrix": "trustkit.blackbox.transfer",
    "SubstituteConfig": "trustkit.blackbox.substitute", "SubstituteResult": "trustkit.blackbox.substitute",
    "train_substitute": "trustkit.blackbox.substitute",
    "LabelOracle": "trustkit.blackbox.queries", "QueryCounter": "trustkit.attacks.queries",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trustkit.blackbox' has no attribute '{name}'")


__all__ = ["LabelOracle", "QueryCounter", "SubstituteConfig", "SubstituteResult", "TransferConfig", "TransferResult",
           "success_matrix", "train_substitute"]
