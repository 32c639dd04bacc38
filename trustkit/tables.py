"""CSV files that are safe to open: tidy frames out, user strings kept as strings on the way back in.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and tab or carriage return) as a
formula: a model named ``=HYPERLINK(...)`` would become one in results.csv. :func:`write_csv` prefixes such
text cells with a single quote (OWASP's advice); :func:`read_csv` removes that quote again and keeps names
such as ``None``, ``NA``, ``nan`` or ``2024`` as the strings they are.
"""
from __future__ import annotations

import os
from typing import Iterable

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TEXT_COLUMNS = ("suite", "model", "dataset", "defense", "evaluation", "attack", "engine", "access", "targets",
                "attack_params", "norm", "broken_by", "class_name", "worst_attack", "run_id", "flags")


def _neutralise(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """``frame.to_csv(path, index=False)`` with formula-like text cells quoted against injection."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(_neutralise)
    safe.to_csv(path, index=False)


def read_csv(path: str | os.PathLike, text_columns: Iterable[str] = TEXT_COLUMNS) -> pd.DataFrame:
    """A CSV written by :func:`write_csv`: ``text_columns`` stay strings (no NaN for 'None'), unquoted."""
    header = pd.read_csv(path, nrows=0).columns
    text = [c for c in text_columns if c in header]
    frame = pd.read_csv(path, dtype={c: str for c in text}, keep_default_na=False, na_values={
        c: ["", "nan", "NaN"] for c in header if c not in text})
    for column in text:
        frame[column] = frame[column].map(
            lambda v: v[1:] if isinstance(v, str) and v.startswith("'") and v[1:].startswith(FORMULA_STARTS) else v)
    return frame
