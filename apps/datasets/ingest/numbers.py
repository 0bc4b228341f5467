"""Numbers written as text: decimal commas, thousands separators and their ambiguity.

Spreadsheets exported in continental Europe write ``0,45`` for 0.45 and may group thousands as
``1.234,5``; English ones write ``1,234.5``. Most forms say by themselves which mark is the
decimal one: ``0,45`` (not three digits after the mark), ``1.234,5`` (two different marks),
``1,234,567`` (repeated groups). Only a single group of exactly three digits after a single mark
(``1,234`` or ``1.234``) can be read two ways. For those the file's *decimal mark* decides, and
it is detected from the unambiguous numbers in the same file (:func:`detect_decimal_mark`); when
the file gives no evidence, or evidence for both marks, the value is reported as
``ambiguous_number`` rather than guessed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

# U+2212 MINUS SIGN appears when values are copied from papers' PDFs.
_MINUS = str.maketrans({"\u2212": "-"})
_INT = re.compile(r"[+-]?\d+")
_SINGLE = re.compile(r"(?P<sign>[+-]?)(?P<int>\d*)(?P<sep>[.,])(?P<frac>\d+)")
_GROUPED = re.compile(r"[+-]?\d{1,3}(?P<t>[.,])\d{3}(?:(?P=t)\d{3})*(?:(?P<d>[.,])\d+)?")
_SCIENTIFIC = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)[eE][+-]?\d+")
_GROUP_HEAD = re.compile(r"[1-9]\d{0,2}")

DecimalMark = Literal[".", ","]


def _other(mark: str) -> str:
    return "," if mark == "." else "."


@dataclass(frozen=True)
class NumberText:
    """What a text looks like as a number.

    ``kind`` is ``number`` (``value`` holds it), ``ambiguous`` (``value`` is the reading with
    ``separator`` as the decimal mark, ``alternative`` the reading with it as a thousands
    separator) or ``invalid``. ``evidence`` is the decimal mark the text proves the writer
    used, if any.
    """

    kind: Literal["number", "ambiguous", "invalid"]
    value: float | None = None
    alternative: float | None = None
    separator: str | None = None
    evidence: str | None = None


_INVALID = NumberText("invalid")


def _finite(value: float, evidence: str | None = None) -> NumberText:
    return NumberText("number", value=value, evidence=evidence) if math.isfinite(value) else _INVALID


def classify(text: str) -> NumberText:
    """Classify a trimmed text as a number, an ambiguous number, or not a number."""
    s = text.strip().translate(_MINUS)
    if _INT.fullmatch(s):
        return _finite(float(int(s)))
    m = _SINGLE.fullmatch(s)
    if m:
        sign, whole, sep, frac = m["sign"], m["int"], m["sep"], m["frac"]
        as_decimal = float(f"{sign}{whole or '0'}.{frac}")
        if _GROUP_HEAD.fullmatch(whole) and len(frac) == 3:
            as_thousands = float(f"{sign}{whole}{frac}")
            return NumberText("ambiguous", value=as_decimal, alternative=as_thousands, separator=sep)
        return _finite(as_decimal, evidence=sep)
    m = _GROUPED.fullmatch(s)
    if m:
        thousands, decimal = m["t"], m["d"]
        if decimal == thousands:  # "1.234.5": not a number in any locale
            return _INVALID
        plain = s.replace(thousands, "")
        if decimal:
            plain = plain.replace(decimal, ".")
        # repeated groups ("1.234.567") prove the other mark is the decimal one
        return _finite(float(plain), evidence=decimal or _other(thousands))
    if _SCIENTIFIC.fullmatch(s):
        mark = "," if "," in s else ("." if "." in s else None)
        return _finite(float(s.replace(",", ".")), evidence=mark)
    return _INVALID


def detect_decimal_mark(texts: Iterable[str], default: DecimalMark | None) -> DecimalMark | None:
    """The decimal mark the numbers in ``texts`` prove, ``default`` without evidence, ``None`` if mixed."""
    seen: set[str] = set()
    for text in texts:
        evidence = classify(text).evidence
        if evidence:
            seen.add(evidence)
            if len(seen) == 2:
                return None
    if seen == {","}:
        return ","
    if seen == {"."}:
        return "."
    return default


def resolve(number: NumberText, decimal_mark: str | None) -> float | None:
    """The value of a classified number under the file's decimal mark (``None``: cannot tell)."""
    if number.kind == "number":
        return number.value
    if number.kind == "ambiguous" and decimal_mark is not None:
        return number.value if number.separator == decimal_mark else number.alternative
    return None
