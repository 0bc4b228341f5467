"""Reading one cell as a number or as text, whatever the format gave (text, number, date...).

The functions return the value and, when the cell cannot be read as asked, a *problem* naming
why; the validator turns the problem into an error code and a sentence fitting the column.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any, Literal

from .numbers import classify, resolve
from .readers import ErrorCell, FormulaCell, is_blank

Problem = Literal[
    "formula", "excel_error", "date", "boolean", "structured", "not_finite", "ambiguous", "text"
]

_FORMULA_START = ("=", "+", "@")
#: Starts of text that export_rows prefixes with a quote (tab and CR are trimmed away on reading).
NEUTRALISED_START = ("=", "+", "-", "@")


def looks_like_formula(text: str) -> bool:
    """A text value starting with ``=``, ``+`` or ``@`` that is not a number (``+1.5`` is one)."""
    return text[:1] in _FORMULA_START and classify(text).kind == "invalid"


def display(cell: Any, limit: int = 100) -> str:
    """The cell as the data manager would recognise it in a message."""
    if isinstance(cell, (FormulaCell, ErrorCell)):
        text = cell.text
    elif isinstance(cell, bool):
        text = "TRUE" if cell else "FALSE"
    elif isinstance(cell, float):
        text = format_number(cell)
    elif isinstance(cell, dt.datetime):
        text = cell.date().isoformat() if cell.time() == dt.time() else cell.isoformat(sep=" ")
    elif isinstance(cell, (dict, list)):
        text = json.dumps(cell, default=str)
    elif isinstance(cell, str):
        text = " ".join(cell.split())
    else:
        text = str(cell)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_number(value: float) -> str:
    """``12`` for 12.0, otherwise the shortest text that reads back as the same float."""
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _blank_formula_or_error(cell: Any) -> tuple[bool, Problem | None]:
    """Cells read the same way whether a number or a text is expected: ``(True, problem)`` for a
    blank (no problem), a formula or an Excel error; ``(False, None)`` for anything else."""
    if is_blank(cell):
        return True, None
    if isinstance(cell, FormulaCell):
        return True, "formula"
    if isinstance(cell, ErrorCell):
        return True, "excel_error"
    return False, None


def read_number(cell: Any, decimal_mark: str | None) -> tuple[float | None, Problem | None]:
    """``(value, None)`` for a number or a blank (value ``None``), else ``(None, problem)``."""
    settled, problem = _blank_formula_or_error(cell)
    if settled:
        return None, problem
    if isinstance(cell, bool):  # before int: True is an int in Python
        return None, "boolean"
    if isinstance(cell, (int, float)):
        value = float(cell)
        return (value, None) if math.isfinite(value) else (None, "not_finite")
    if isinstance(cell, (dt.date, dt.time, dt.timedelta)):
        return None, "date"
    if isinstance(cell, (dict, list)):
        return None, "structured"
    text = str(cell).strip()
    number = classify(text)
    if number.kind == "invalid":
        return None, "formula" if looks_like_formula(text) else "text"
    resolved = resolve(number, decimal_mark)
    return (resolved, None) if resolved is not None else (None, "ambiguous")


def read_text(cell: Any) -> tuple[str | None, Problem | None]:
    """``(text, None)``, whitespace trimmed and collapsed (``None`` for a blank), else ``(None, problem)``.

    Numbers become their shortest text (``2019`` rather than ``2019.0``), booleans ``TRUE``/``FALSE``
    and dates ISO 8601, as a spreadsheet would show them.
    """
    settled, problem = _blank_formula_or_error(cell)
    if settled:
        return None, problem
    if isinstance(cell, (dict, list)):
        return None, "structured"
    if isinstance(cell, float) and not math.isfinite(cell):
        return None, "not_finite"
    if isinstance(cell, (str, bool, int, float, dt.date, dt.time, dt.datetime)):
        text = display(cell, limit=10**9)
        if isinstance(cell, str):
            # Undo the quote export_rows puts before text such as "-5 mg vs placebo", so that an
            # exported file uploads back unchanged ("'=..." becomes "=..." and is refused below).
            if text[:1] == "'" and text[1:2] in NEUTRALISED_START:
                text = text[1:]
            if looks_like_formula(text):
                return None, "formula"
        return text, None
    return str(cell), None
