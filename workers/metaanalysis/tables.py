"""Reading study tables from text: delimiters, header names and numbers written as text.

One reader for every way a table reaches the engine: the platform's upload pipeline
(``apps.datasets.ingest``) and the command line (:mod:`workers.metaanalysis.cli`) both use these
functions, so the same file gives the same numbers in both. Pure Python, no Django.

Numbers written as text: spreadsheets exported in continental Europe write ``0,45`` for 0.45 and
may group thousands as ``1.234,5``; English ones write ``1,234.5``. Most forms say by themselves
which mark is the decimal one: ``0,45`` (not three digits after the mark), ``1.234,5`` (two
different marks), ``1,234,567`` (repeated groups). Only a single group of exactly three digits
after a single mark (``1,234`` or ``1.234``) can be read two ways. For those the file's *decimal
mark* decides, and it is detected from the unambiguous numbers in the same file
(:func:`detect_decimal_mark`); when the file gives no evidence, or evidence for both marks, the
value is reported as ambiguous rather than guessed.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

#: Delimiters a CSV file may use, in order of preference when the evidence ties.
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")

#: How many leading records may hold the header (a title or notes may come first).
HEADER_SEARCH = 10


def header_key(text: str) -> str:
    """The comparison key of a header: case-folded letters and digits only."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def parse_records(
    text: str, delimiter: str, limit: int | None = None
) -> Iterator[tuple[int, list[str] | None]]:
    """CSV records numbered from 1 as a spreadsheet shows them (a quoted line break stays in its row).

    ``None`` stands for a record the csv module could not read (a field beyond its size limit,
    which in practice means a quote that was never closed); reading stops there, since where the
    following rows begin can no longer be known.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    number = 0
    while limit is None or number < limit:
        number += 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield number, None
            return
        yield number, record


def header_index(known_counts: Sequence[int]) -> int:
    """Which of the first rows is the header, given how many known column names each holds.

    The first row, unless a later one holds more known names, and at least two: a data row may
    hold a value that happens to be a one-letter alias ("a", "n", "x"), a real header rarely
    holds fewer than two known names.
    """
    best = max(range(len(known_counts)), key=lambda i: (known_counts[i], -i))
    return best if known_counts[best] >= 2 and known_counts[best] > known_counts[0] else 0


def detect_delimiter(text: str, known: Collection[str]) -> str:
    """The delimiter that gives the most recognised header names, then the most regular rows.

    csv.Sniffer guesses from character frequencies and is easily fooled by decimal commas; the
    header is a far better witness, since the caller knows which column names to expect.
    ``known`` holds their :func:`header_key` forms.
    """
    sample = text[: 256 * 1024]
    best: tuple[tuple[float, ...], str] | None = None
    for rank, delimiter in enumerate(DELIMITERS):
        records = [
            r for _, r in parse_records(sample, delimiter, limit=60) if r and any(c.strip() for c in r)
        ]
        if not records:
            continue
        # the header is the first record, or a later one with more known names (below a title)
        counts = [sum(1 for h in r if header_key(h) in known) for r in records[:HEADER_SEARCH]]
        at = header_index(counts)
        header, data = records[at], records[at + 1 :]
        width = len(header)
        recognised = counts[at]
        fits = sum(1 for r in data if len(r) <= width or not any(c.strip() for c in r[width:]))
        exact = sum(1 for r in data if len(r) == width)
        n = max(len(data), 1)
        score = (
            float(recognised),
            fits / n if data else 1.0,
            float(width > 1),
            exact / n,
            float(width),
            -rank,
        )
        if best is None or score > best[0]:
            best = (score, delimiter)
    return best[1] if best else ","


# --------------------------------------------------------------------------------------------
# numbers written as text

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
