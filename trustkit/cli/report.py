"""``trustkit report``: work with finished runs (``compare``: a leaderboard across them)."""
from __future__ import annotations

import click

from trustkit.cli import options as opt


@click.group()
def report() -> None:
    """Work with finished runs: compare them in a leaderboard."""


@report.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@opt.out("Folder that receives <run-id>/report.html, leaderboard.csv and run.json.")
def compare(run_dirs: tuple[str, ...], out: str) -> None:
    """Leaderboard across runs: clean and worst-case robust accuracy per threat model, sorted, with each run's
    sanity flags.

    \b
        trustkit report compare reports/*-suite-digits-quick reports/*-fgsm-cnn-mnist
    """
    from trustkit.report.compare import compare_runs

    folder = compare_runs(list(run_dirs), out)
    click.echo(f"report: {folder / 'report.html'}")
