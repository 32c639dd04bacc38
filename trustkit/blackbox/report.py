"""Report folders of black-box runs: ``reports/<run-id>/`` with results.csv, run.json and report.html,
built in a temporary folder and renamed into place only when complete (as ``bench`` does)."""
from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from trustkit.tables import write_csv
from trustkit.atomic import atomic_dir
from trustkit.bench.run import new_run_id
from trustkit.report.html import render
from trustkit.report.metadata import environment
from trustkit.runtime import device_description
from trustkit.sanity import Check


def run_info(run_id: str, kind: str, title: str, subtitle: str, config: dict[str, Any], device: torch.device,
             checks: list[Check], timings: dict[str, float], **extra: Any) -> dict[str, Any]:
    """What run.json records: configuration, seed, device, versions, git commit, checks and timings."""
    return {
        "run_id": run_id, "kind": kind, "title": title, "subtitle": subtitle,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config, "seed": config.get("seed"), "device": device_description(device),
        "sanity_checks": [c.to_dict() for c in checks],
        "timings_seconds": {k: round(v, 3) for k, v in timings.items()},
        **extra, **environment(),
    }


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``frame`` as dicts, NaN as None (templates print None as "–")."""
    rows = frame.to_dict("records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and math.isnan(value):
                row[key] = None
    return rows


def write_run_folder(out: str | Path, label: str, *, make_info: Callable[[str], dict[str, Any]], template: str,
                     context: dict[str, Any], tables: dict[str, pd.DataFrame]) -> tuple[Path, dict[str, Any]]:
    """Write ``<out>/<run-id>/`` atomically: every table as CSV, run.json and report.html from ``template``.

    ``make_info(run_id)`` returns the run.json content; the template gets ``context`` plus ``env``/``run_id``/
    ``created``/``config``/``config_json``/``device``/``timings`` from it.
    """
    out = Path(out)
    run_id = new_run_id(label, out)
    info = make_info(run_id)
    html = render(template, env=info, run_id=run_id, created=info["created"], config=info["config"],
                  config_json=json.dumps(info["config"], indent=2, default=str), device=info["device"],
                  timings=info["timings_seconds"], title=info["title"], subtitle=info["subtitle"], **context)
    with atomic_dir(out / run_id) as tmp:
        for name, table in tables.items():
            write_csv(table, tmp / name)
        (tmp / "run.json").write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
        (tmp / "report.html").write_text(html, encoding="utf-8")
    return out / run_id, info
