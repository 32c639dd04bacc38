"""Render self-contained HTML reports from jinja2 templates (every value HTML-escaped)."""
from __future__ import annotations

import math
from typing import Any

from trustkit.attacks.base import format_eps


def _pct(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value) * 100:.{digits}f}%"


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{float(value):.{digits}f}"


def _environment():  # noqa: ANN202 - jinja2 type
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("trustkit.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"], default=True), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=_pct, num=_num, eps=format_eps)
    return env


def render(template: str, **context: Any) -> str:
    """Render ``template`` (a file in trustkit/report/templates) with ``context``."""
    return _environment().get_template(template).render(**context)


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows of a DataFrame (or a list of row dicts) as dicts, NaN and ±inf as None (templates print "–")."""
    rows = frame.to_dict("records") if hasattr(frame, "to_dict") else frame
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and not math.isfinite(value):
                row[key] = None
    return rows
