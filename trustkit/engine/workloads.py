"""Workloads that are not cells yet — generative training and evaluation:
their package computes the result, the report renders it and :mod:`trustkit.rundir` writes the folder.
They do not resume cell by cell: they cache the trained generators in the store instead.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustkit.generative.run import GenRunResult


def run_gen_train(arch: str, dataset: str = "digits", **options: Any) -> "GenRunResult":
    """Train, save and evaluate a generative model and write its training report
    (options: :func:`trustkit.generative.run.train_and_evaluate`)."""
    from trustkit.generative.run import train_and_evaluate
    from trustkit.report.generative import write_run

    return write_run(**train_and_evaluate(arch, dataset, **options))


def run_gen_eval(spec: str, dataset: str | None = None, **options: Any) -> "GenRunResult":
    """Measure a stored generative model and write its evaluation report
    (options: :func:`trustkit.generative.run.evaluate_stored`)."""
    from trustkit.generative.run import evaluate_stored
    from trustkit.report.generative import write_run

    return write_run(**evaluate_stored(spec, dataset, **options))
