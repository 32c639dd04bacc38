"""The one terminal table of every command: the key columns that tell its rows apart, then the values.

A key column whose value is the same in every row says nothing about any row: it is left out of the table and
named once in a line below it instead (``every row: norm linf, engine trustkit``), unless the title names it.
A key column that varies is always shown, so no two rows of a table read the same.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:  # rich and pandas load only when a command prints
    import pandas as pd
    from rich.table import Table

Format = Callable[[Any], str]
LEFT = "left"


def blank(value: Any) -> bool:
    """None, NaN and empty text: nothing to show."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value)


def text(value: Any) -> str:
    return "–" if blank(value) else str(value)


def percent(value: Any, digits: int = 1) -> str:
    return "–" if blank(value) else f"{value:.{digits}%}"


def _hashable(value: Any) -> Any:
    return None if blank(value) else value


def varying(frame: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """The columns of ``keys`` in ``frame`` that take more than one value (NaN and "" count as one value)."""
    return [key for key in keys if key in frame.columns and len({_hashable(v) for v in frame[key]}) > 1]


def constants(frame: pd.DataFrame, keys: Sequence[str], *, title_keys: Sequence[str] = (),
              formats: Mapping[str, Format] | None = None, headers: Mapping[str, str] | None = None) -> str:
    """``"norm linf, engine trustkit"``: the keys that are the same in every row (and not blank), except
    ``title_keys``; "" when there are none."""
    formats, headers, shown = formats or {}, headers or {}, varying(frame, keys)
    same = [k for k in keys if k in frame.columns and k not in shown and k not in title_keys and len(frame)
            and not blank(frame[k].iloc[0])]
    return ", ".join(f"{headers.get(k, k)} {formats.get(k, text)(frame[k].iloc[0])}" for k in same)


def build_table(frame: pd.DataFrame, keys: Sequence[str], values: Mapping[str, Callable[[Any], str]], *,
                title: str = "", formats: Mapping[str, Format] | None = None,
                headers: Mapping[str, str] | None = None, justify: Mapping[str, str] | None = None) -> Table:
    """A rich table of ``frame``: its varying ``keys`` (left-aligned, formatted by ``formats``, titled by
    ``headers``), then one column per ``values`` entry (header -> text of a row, right-aligned unless ``justify``
    says otherwise)."""
    from rich.table import Table

    formats, headers, justify = formats or {}, headers or {}, justify or {}
    shown = varying(frame, keys)
    table = Table(title=title or None, title_justify="left")
    for key in shown:
        table.add_column(headers.get(key, key), justify=justify.get(key, LEFT), overflow="fold")  # never cut
    for header in values:
        table.add_column(header, justify=justify.get(header, "right"))
    for _, row in frame.iterrows():
        table.add_row(*(formats.get(k, text)(row[k]) for k in shown), *(cell(row) for cell in values.values()))
    return table


def print_table(frame: pd.DataFrame, keys: Sequence[str], values: Mapping[str, Callable[[Any], str]], *,
                title_keys: Sequence[str] = (), **options: Any) -> Table:
    """Print :func:`build_table` ``(frame, keys, values, **options)``, then one line naming the keys that are
    the same in every row (:func:`constants`; ``title_keys`` are left out: the title names them). Returns the
    table."""
    from rich.console import Console

    table = build_table(frame, keys, values, **options)
    console = Console()
    if not console.is_terminal:  # a log or a pipe has no width to keep to: print whole rows, unwrapped
        natural = console.measure(table, options=console.options.update_width(1000)).maximum
        console = Console(width=max(console.width, natural))
    console.print(table)
    same = constants(frame, keys, title_keys=title_keys, formats=options.get("formats"),
                     headers=options.get("headers"))
    if same:
        console.print(f"every row: {same}", highlight=False, markup=False)
    return table


def print_flags(checks: Sequence[Any]) -> None:
    """One line per sanity check that raised a flag."""
    from rich.console import Console
    from rich.markup import escape

    console = Console()
    for check in checks:
        if check.status == "flag":
            console.print(f"[bold yellow]sanity flag:[/] {escape(check.name)}: {escape(check.detail)}", markup=True,
                          highlight=False)


__all__ = ["blank", "build_table", "constants", "percent", "print_flags", "print_table", "text", "varying"]
