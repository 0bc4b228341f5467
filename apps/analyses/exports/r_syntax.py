"""R source text: strings, names, numbers and vectors written so that R reads back exactly what
was meant, and the pieces of a script the R export shares (``_R`` collects its lines)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from apps.analyses.exports.rows import (
    LEAD_COLUMNS,
    ROW,
    ExportError,
    _export_columns,
    _input_name,
    _Snapshot,
)
from workers.metaanalysis.design import build_design
from workers.metaanalysis.errors import EngineError
from workers.metaanalysis.measures import REGISTRY

# --- the R script -----------------------------------------------------------------------------

_R_RESERVED = frozenset(
    [
        "if",
        "else",
        "repeat",
        "while",
        "function",
        "for",
        "next",
        "break",
        "TRUE",
        "FALSE",
        "NULL",
        "Inf",
        "NaN",
        "NA",
        "NA_integer_",
        "NA_real_",
        "NA_character_",
        "NA_complex_",
        "in",
    ]
)


def _r_str(text: str) -> str:
    """An R string literal (ASCII: other characters as ``\\u{...}`` escapes)."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif 32 <= code < 127:
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{{{code:04x}}}")
        else:
            out.append(f"\\U{{{code:08x}}}")
    return '"' + "".join(out) + '"'


def _r_name(name: str) -> str:
    """A column name in an R formula (back-quoted unless syntactic)."""
    if re.fullmatch(r"(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*", name) and name not in _R_RESERVED:
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _r_num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    if isinstance(value, float) and math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return repr(float(value)) if isinstance(value, float) else str(value)


def _r_vec(values: Iterable[Any], fmt: Callable[[Any], str] = _r_str) -> str:
    return "c(" + ", ".join(fmt(v) for v in values) + ")"


def _comment(text: str) -> str:
    """Text for an R or Markdown line: no line breaks or control characters."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", str(text)).strip()


def _first(value: Any, index: int = 0) -> Any:
    if isinstance(value, list):
        return value[index] if index < len(value) else None
    return value if index == 0 else None


def _column_classes(snap: _Snapshot, rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The R class of each exported column (read.csv's colClasses): text stays text, so that a
    study "2015" or a level "01" is read as written."""
    measure = REGISTRY.get(str(snap.spec.get("measure")))
    numeric_names = {"yi", "vi", *(c for f in measure.forms for c in f.columns)} if measure else {"yi", "vi"}
    classes: dict[str, str] = {}
    for name in _export_columns(snap):
        values = [r.get(name) for r in rows if r.get(name) is not None]
        if name == ROW:
            classes[name] = "integer"
        elif name == "in_model":
            classes[name] = "logical"
        elif name in LEAD_COLUMNS[:5] or name in ("form", "derivation", "omitted_code", "omitted_reason"):
            classes[name] = "character"
        elif (values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)) or (
            not values and _input_name(name) in numeric_names
        ):
            classes[name] = "numeric"
        else:
            classes[name] = "character"
    return classes


@dataclasses.dataclass
class _R:
    """An R script being written: lines, and the quantities to compare with the platform's."""

    lines: list[str] = dataclasses.field(default_factory=list)
    checks: list[tuple[str, str, float, float]] = dataclasses.field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def block(self, comment: str, *lines: str) -> None:
        self.lines.append("")
        self.lines.extend("# " + part for part in _wrap(comment))
        self.lines.extend(lines)

    def check(self, name: str, r_expr: str, platform_value: Any, scale: float = 0.0) -> None:
        """Compare ``r_expr`` with the platform's number (skipped where the platform has none);
        the difference is relative to the larger of the two, or to ``scale`` if that is larger."""
        if isinstance(platform_value, bool) or not isinstance(platform_value, int | float):
            return
        if not math.isfinite(platform_value):
            return
        self.checks.append((name, r_expr, float(platform_value), scale))


def _wrap(text: str, width: int = 96) -> list[str]:
    words, lines, line = _comment(text).split(" "), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def _selection_words(spec: Mapping[str, Any]) -> str:
    parts = []
    if spec.get("timepoint"):
        tp = spec["timepoint"]
        parts.append("each study's latest time point" if tp == "latest" else f"time point {tp}")
    if spec.get("instruments"):
        parts.append("the first instrument a study reports of " + ", ".join(spec["instruments"]))
    return "; ".join(parts) if parts else "every row"


def _model_kind(snap: _Snapshot) -> str:
    summary = snap.blocks.get("summary")
    if isinstance(summary, Mapping) and summary.get("dependence"):
        return str(summary["dependence"])
    model = snap.blocks.get("model")
    if isinstance(model, Mapping) and model.get("dependence"):
        return str(model["dependence"])
    raise ExportError("the result has no fitted model to reproduce", code="no_model")


def _moderator_levels(snap: _Snapshot) -> dict[str, tuple[str, ...]]:
    """The levels of every categorical moderator (and the subgroup column), as the engine coded
    them: the values among the rows in the model, sorted as R sorts them, the first the reference."""
    es = snap.blocks.get("effect_sizes") or {}
    in_model = np.asarray(es.get("in_model") or [False] * len(snap.rows), dtype=bool)
    names = [*(snap.spec.get("mods") or ())]
    if snap.spec.get("subgroup"):
        names.append(snap.spec["subgroup"])
    present = [n for n in dict.fromkeys(names) if any(n in r for r in snap.rows)]
    if not present or not in_model.any():
        return {}
    levels: dict[str, tuple[str, ...]] = {}
    for name in present:
        try:
            design = build_design(snap.rows, [name], in_model)
        except EngineError:
            continue
        levels.update(design.factors)
    return levels
