"""Helpers shared by test modules: an HTML tag/source collector, a CLI runner capturing output, and a run
killed mid-study."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

from trustkit.cli import run


class HtmlCollector(HTMLParser):
    """Records every start tag and every src/href value of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.sources += [v for k, v in attrs if k in ("src", "href") and v]


def run_cli(capsys, *args):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


REPO = Path(__file__).resolve().parents[1]


def kill_mid_run(script: str, out: Path, home: Path, *, cells_before_kill: int, total: int,
                 deadline_seconds: float = 240) -> int:
    """Run ``script`` (Python source; ``sys.argv[1]`` is its report folder ``out``) with ``TRUSTKIT_HOME``
    ``home`` and SIGKILL it once the engine's cache holds ``cells_before_kill`` cells; returns how many it
    held. Asserts that the kill landed mid-run and left no run folder behind."""
    env = {**os.environ, "TRUSTKIT_HOME": str(home), "PYTHONPATH": str(REPO)}
    victim = subprocess.Popen([sys.executable, "-c", script, str(out)], env=env)
    cells = home / "cells"
    deadline = time.monotonic() + deadline_seconds
    while (time.monotonic() < deadline and len(list(cells.rglob("*.json"))) < cells_before_kill
           and victim.poll() is None):
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    done = len(list(cells.rglob("*.json")))
    assert 0 < done < total, "the kill should land mid-run; make the cells slower if it does not"
    assert not out.exists() or not any(out.iterdir())  # nothing half-written
    return done


def run_script(script: str, out: Path, home: Path) -> Path:
    """Run ``script`` to the end with ``TRUSTKIT_HOME`` ``home``; the run folder it wrote under ``out``."""
    env = {**os.environ, "TRUSTKIT_HOME": str(home), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", script, str(out)], env=env, check=True)
    return next(out.iterdir())
