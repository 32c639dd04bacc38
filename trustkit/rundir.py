"""The one writer of run folders: ``<out>/<run-id>/`` with every table as CSV, ``run.json`` and ``report.html``.

Every workload (bench, suites, transfer, substitute, fakes, privacy audits, generative runs, compare) writes
its folder here, so all folders share one layout and one ``run.json`` schema (docs/reports.md). The folder is
built in a temporary sibling and renamed into place when complete: a run that fails or is killed leaves
nothing half-written.

``run.json`` (schema ``trustkit-run``, version :data:`RUN_SCHEMA_VERSION`) always holds: ``schema``,
``schema_version``, ``run_id``, ``kind``, ``title``, ``subtitle``, ``created`` (UTC, ISO 8601), ``config``,
``seed``, ``device``, ``sanity_checks``, ``timings_seconds``, ``files`` (what the folder holds), ``versions``,
``platform``, ``git_commit``, ``command``; workloads add their own keys beside those (``cells``, ``models``...).
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
import torch

from trustkit.atomic import atomic_dir
from trustkit.environment import environment
from trustkit.runtime import device_description
from trustkit.tables import write_csv

RUN_SCHEMA = "trustkit-run"
RUN_SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema", "schema_version", "run_id", "kind", "title", "subtitle", "created", "config", "seed",
                 "device", "sanity_checks", "timings_seconds", "files", "versions", "platform", "git_commit",
                 "command")


def safe_name(text: str) -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9._-]`` replaced by one ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def new_run_id(label: str, out: Path) -> str:
    """``<date>-<time>-<label>``, made unique within ``out``."""
    base = f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{safe_name(label)[:80]}"
    run_id, counter = base, 2
    while (Path(out) / run_id).exists():
        run_id, counter = f"{base}-{counter}", counter + 1
    return run_id


def run_record(run_id: str, *, kind: str, title: str, subtitle: str, config: Mapping[str, Any],
               device: torch.device | str, checks: list[Any], timings: Mapping[str, float],
               files: list[str], **extra: Any) -> dict[str, Any]:
    """The ``run.json`` content: the schema's keys, then the workload's ``extra`` ones. ``checks`` are
    :class:`trustkit.sanity.Check` objects or their dicts; ``timings`` are seconds."""
    return {
        "schema": RUN_SCHEMA, "schema_version": RUN_SCHEMA_VERSION, "run_id": run_id, "kind": kind,
        "title": title, "subtitle": subtitle,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": dict(config), "seed": config.get("seed"),
        "device": device if isinstance(device, str) else device_description(device),
        "sanity_checks": [c if isinstance(c, dict) else c.to_dict() for c in checks],
        "timings_seconds": {k: round(float(v), 3) for k, v in timings.items()},
        "files": files, **extra, **environment(),
    }


def write_run_folder(out: str | Path, label: str, *, kind: str, title: str, subtitle: str,
                     config: Mapping[str, Any], device: torch.device | str, checks: list[Any],
                     timings: Mapping[str, float], tables: Mapping[str, pd.DataFrame],
                     render_html: Callable[[dict[str, Any]], str] | None,
                     files: Mapping[str, str | bytes] | None = None,
                     **extra: Any) -> tuple[Path, dict[str, Any]]:
    """Write ``<out>/<run-id>/`` atomically and return ``(folder, run.json content)``.

    ``tables`` maps file names (``results.csv``) to frames, written formula-safe; ``files`` maps further file
    names to text or bytes; ``render_html(info)`` returns report.html from the run.json content (None: no
    report). The HTML is rendered before anything is written, so a template error leaves no folder.
    """
    out = Path(out)
    run_id = new_run_id(label, out)
    names = [*tables, *(files or {}), "run.json"] + (["report.html"] if render_html is not None else [])
    info = run_record(run_id, kind=kind, title=title, subtitle=subtitle, config=config, device=device,
                      checks=checks, timings=timings, files=names, **extra)
    html = render_html(info) if render_html is not None else None
    with atomic_dir(out / run_id) as tmp:
        for name, table in tables.items():
            write_csv(table, tmp / name)
        for name, content in (files or {}).items():
            if isinstance(content, bytes):
                (tmp / name).write_bytes(content)
            else:
                (tmp / name).write_text(content, encoding="utf-8")
        (tmp / "run.json").write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
        if html is not None:
            (tmp / "report.html").write_text(html, encoding="utf-8")
    return out / run_id, info
