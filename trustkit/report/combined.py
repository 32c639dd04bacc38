"""The report of a combined study (a suite with ``studies:``, :mod:`trustkit.studies.combined`): an overview
of every part, then each part's own report content as a section — the attacks (bench), certified robustness,
common corruptions, calibration and OOD detection — so one file answers every trust question asked."""
from __future__ import annotations

import importlib
import json
from dataclasses import replace
from typing import Any, Callable

import pandas as pd
from markupsafe import Markup

from trustkit.report.html import render
from trustkit.studies.combined import part_output, part_tables

# study kind -> the function that renders its report's content as a section (same arguments as a renderer)
SECTIONS = {"bench": "trustkit.report.bench_report:bench_section",
            "suite": "trustkit.report.bench_report:bench_section",
            "certify": "trustkit.report.certify:certify_section",
            "corruptions": "trustkit.report.corruptions:corruptions_section",
            "calibration": "trustkit.report.calibration:calibration_section",
            "privacy-audit": "trustkit.report.privacy:privacy_section",
            "membership": "trustkit.report.membership:membership_section"}


def section_renderer(kind: str) -> Callable[..., str]:
    module, _, name = SECTIONS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def render_combined(*, info: dict[str, Any], output: Any, tables: dict[str, pd.DataFrame], checks: list) -> str:
    """One self-contained page: an overview card per part (cells, flags), then every part's section."""
    parts = info["config"]["parts"]
    kinds = [p["kind"] for p in parts]
    sections = []
    for i, part in enumerate(parts):
        prefix = f"{part['title']}: "
        own_checks = [replace(c, name=c.name[len(prefix):]) for c in checks if c.name.startswith(prefix)]
        sub_output = part_output(output, i)
        failures = [{"cell": r.cell.title(), "error": r.error} for r in sub_output.failed]
        extras = info.get("parts", [{}] * len(parts))[i]  # the part's own run.json keys (its run_extras)
        sub_info = {**info, **extras, "config": part["settings"], "title": part["title"], "failures": failures}
        html = section_renderer(part["kind"])(info=sub_info, output=sub_output, tables=part_tables(tables, kinds, i),
                                              checks=own_checks)
        sections.append({"id": f"part-{i}", "title": part["title"], "kind": part["kind"], "html": Markup(html),
                         "cells": len(sub_output.records), "failed": len(failures),
                         "flags": sum(c.status == "flag" for c in own_checks)})
    return render("combined.html.j2", run_id=info["run_id"], created=info["created"], env=info,
                  config=info["config"], config_json=json.dumps(info["config"], indent=2, default=str),
                  title=info["title"], subtitle=info["subtitle"], sections=sections, device=info["device"],
                  timings=info["timings_seconds"], n_cells=len(output.records),
                  cached_cells=sum(r.cached for r in output.records),
                  flag_count=sum(c.status == "flag" for c in checks))
