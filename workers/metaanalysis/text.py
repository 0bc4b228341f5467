"""Numbers and tables as text, as R's metafor prints them: what the engine's text reports share."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["as_list", "coefficients", "fmt", "fmt_p", "p_clause", "row_label", "stars", "table"]


def row_label(row: int, labels: Sequence[str] | None) -> str:
    """``row 3 (Smith 2019)``: a 0-based row as the user counts it, with its study label if known."""
    where = f"row {row + 1}"
    if labels is not None and 0 <= row < len(labels):
        where += f" ({labels[row]})"
    return where


def fmt(value: Any, digits: int = 4) -> str:
    """A number as metafor prints it (``digits`` decimals; ``NA`` for a missing value)."""
    if value is None:
        return "NA"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return "NA" if math.isnan(x) else ("Inf" if x > 0 else "-Inf")
    out = f"{x:.{digits}f}"
    return "0." + "0" * digits if out == "-0." + "0" * digits else out


def fmt_p(value: Any, digits: int = 4) -> str:
    """A p-value as metafor prints it: ``<.0001`` below 10^-digits, else ``digits`` decimals."""
    if value is None:
        return "NA"
    x = float(value)
    if math.isnan(x):
        return "NA"
    if x < 10.0**-digits:
        return "<." + "0" * (digits - 1) + "1"
    return f"{x:.{digits}f}"


def p_clause(value: Any) -> str:
    text = fmt_p(value)
    return f"p-val < {text[1:]}" if text.startswith("<") else f"p-val = {text}"


def stars(p: Any) -> str:
    if p is None or not isinstance(p, int | float) or math.isnan(p):
        return ""
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return mark
    return ""


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    row_names: Sequence[str] | None = None,
    indent: int = 0,
) -> list[str]:
    """Right-aligned text table (row names left-aligned), as R prints a data frame.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : sequence of sequences of str
        Cells, already formatted.
    row_names : sequence of str, optional
        A left-aligned first column without a title.
    indent : int
        Spaces before every line.

    Returns
    -------
    list of str
        The lines of the table.
    """
    cols = (
        list(zip(*([list(header), *[list(r) for r in rows]]), strict=True)) if rows else [[h] for h in header]
    )
    widths = [max(len(c) for c in col) for col in cols]
    name_w = max((len(n) for n in row_names), default=0) if row_names else 0
    pad = " " * indent
    lines = []
    lead = (" " * name_w + "  ") if row_names else ""
    lines.append(pad + lead + "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for i, r in enumerate(rows):
        lead = (row_names[i].ljust(name_w) + "  ") if row_names else ""
        lines.append(pad + lead + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    return [line.rstrip() for line in lines]


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def coefficients(fit: Mapping[str, Any], *, tdist: bool) -> list[str]:
    """The coefficient table (``dfs`` one value for all coefficients, or one per coefficient)."""
    names = [str(n) for n in as_list(fit.get("coef_names", ["intrcpt"]))]
    header = ["estimate", "se", "tval" if tdist else "zval"]
    if tdist:
        header.append("df")
    header += ["pval", "ci.lb", "ci.ub", ""]
    cells = []
    dfs = as_list(fit.get("dfs")) if tdist else []
    for j in range(len(names)):

        def col(key: str, j: int = j) -> Any:
            values = as_list(fit.get(key))
            return values[j] if j < len(values) else None

        row = [fmt(col("beta")), fmt(col("se")), fmt(col("stat"))]
        if tdist:
            df = dfs[j] if j < len(dfs) else (dfs[0] if dfs else None)
            row.append(
                fmt(df, 0 if isinstance(df, int) or (isinstance(df, float) and df.is_integer()) else 2)
            )
        pval = col("pval")
        row += [fmt_p(pval), fmt(col("ci_lb")), fmt(col("ci_ub")), stars(pval)]
        cells.append(row)
    return table(header, cells, row_names=names if len(names) > 1 else None)
