"""Reports: one renderer per study kind, jinja2 templates, plots, embedded images, compare (leaderboards)."""
from __future__ import annotations

from typing import Any, Callable

from trustkit.errors import InvalidArgumentError

# study kind -> "module:function" rendering report.html from (info, output, tables, checks)
RENDERERS = {"bench": "trustkit.report.bench_report:render_bench", "suite": "trustkit.report.bench_report:render_bench",
             "transfer": "trustkit.report.transfer:render_transfer",
             "substitute": "trustkit.report.substitute:render_substitute",
             "fakes": "trustkit.report.detection_report:render_fakes",
             "privacy-audit": "trustkit.report.privacy:render_privacy",
             "explain": "trustkit.report.explain:render_explain",
             "maximize": "trustkit.report.visualize:render_maximize",
             "style": "trustkit.report.style:render_style",
             "certify": "trustkit.report.certify:render_certify",
             "corruptions": "trustkit.report.corruptions:render_corruptions",
             "calibration": "trustkit.report.calibration:render_calibration",
             "membership": "trustkit.report.membership:render_membership",
             "combined": "trustkit.report.combined:render_combined"}


def renderer(kind: str) -> Callable[..., str]:
    """The report renderer of study ``kind`` (imported on first use: reports pull in matplotlib)."""
    import importlib

    if kind not in RENDERERS:
        raise InvalidArgumentError(f"no report for study kind '{kind}'; known: {', '.join(RENDERERS)}")
    module, _, name = RENDERERS[kind].partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function
