"""Exports of a stored result that a statistician can re-run: its rows, an R script, a Python
script, and a bundle of them all.

A result is computed from exact dataset versions (``AnalysisResult.dataset_versions``); versions
are write-once, so the rows of a result are rebuilt from them (as ``analysis_inputs`` builds the
current rows: each centre's rows in the stored order, tagged with the centre), never from the
data as they are now.

The exported rows are the input rows, in the order the engine saw them, each with the platform's
values for it: ``row`` (its number from 0, as ``omitted`` counts), ``yi``, ``vi``, ``form``,
``derivation``, ``in_model`` (block ``effect_sizes``) and ``omitted_code``, ``omitted_reason``.
An input column whose name is one of these (an effect size given as ``yi`` with ``vi``) is
exported as ``input_<name>``; :func:`engine_rows` undoes that, giving the engine's input back.

The R script reproduces the result with metafor from the CSV; the Python script reruns the
engine on the JSON rows and compares every number with the stored result; :func:`bundle` zips
them with the specification, the stored result, the versions and checksums. Everything here is
a pure function of the result: the same result gives the same bytes.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import platform
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy

from apps.analyses.models import AnalysisResult
from apps.datasets.models import DatasetVersion
from workers.metaanalysis import ENGINE_VERSION
from workers.metaanalysis.dependent import block_names
from workers.metaanalysis.design import build_design
from workers.metaanalysis.errors import EngineError
from workers.metaanalysis.measures import REGISTRY
from workers.metaanalysis.spec import RHO_SENSITIVITY

__all__ = [
    "CONTENT_TYPES",
    "OUTPUT_COLUMNS",
    "VALIDATED_AGAINST",
    "ExportError",
    "ExportFile",
    "bundle",
    "engine_rows",
    "export_file",
    "python_script",
    "r_script",
    "result_rows",
    "rows_csv",
    "rows_json",
    "source_rows",
]

#: The number of a row among the inputs (from 0, as ``omitted`` and ``analysis_inputs`` count).
ROW = "row"
#: The platform's values for each row, added after the input columns.
EFFECT_COLUMNS: tuple[str, ...] = (
    "yi",
    "vi",
    "form",
    "derivation",
    "in_model",
    "omitted_code",
    "omitted_reason",
)
#: Every column the export adds to the input rows.
OUTPUT_COLUMNS: tuple[str, ...] = (ROW, *EFFECT_COLUMNS)
#: An input column named like an output column (or starting with this) is exported under this prefix.
INPUT_PREFIX = "input_"
#: Input columns shown first, in this order, where the data have them.
LEAD_COLUMNS: tuple[str, ...] = ("centre", "study", "comparison", "instrument", "timepoint", "year", "es_id")

#: The R packages (and versions) whose results the engine is validated against (``make validate``).
VALIDATED_AGAINST: dict[str, str] = {"metafor": "3.8-1", "clubSandwich": "0.5.8"}

DATA_CSV = "data.csv"
DATA_JSON = "data.json"
SPEC_JSON = "spec.json"
RESULT_JSON = "result.json"
R_SCRIPT = "analysis.R"
PY_SCRIPT = "reproduce.py"
VERSIONS_JSON = "versions.json"
CHECKSUMS = "SHA256SUMS"
README = "README.md"

#: Content type of each export (the keys are :func:`export_file`'s kinds).
CONTENT_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "r": "text/plain; charset=utf-8",
    "python": "text/x-python; charset=utf-8",
    "bundle": "application/zip",
}

#: A zip entry's timestamp: fixed, so that the same result gives the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
#: A text cell starting with one of these could run as a spreadsheet formula (CSV injection), and
#: a leading quote is how such text is escaped: either way the cell is written with one more quote.
_ESCAPED_START = ("=", "+", "-", "@", "\t", "\r", "'")

#: Convergence settings for metafor: its defaults stop up to ~1e-6 (relative) short of the exact
#: optimum the engine iterates to; these are the settings the reference cases were computed with.
_RMA_CONTROL = "list(threshold = 1e-13, tol = 1e-13, maxiter = 10000)"
#: For rma.mv, metafor's own optimiser settings (nlminb): they agree with the engine's optimum to
#: ~1e-8 (relative) in the variance components; a tighter ``rel.tol`` (1e-12) moves nothing there
#: and stops with a convergence error when a variance component is 0.
_RMA_MV_CONTROL = "list()"


class ExportError(Exception):
    """The result cannot be exported (its versions are missing, or it has no model to reproduce)."""

    def __init__(self, message: str, *, code: str = "not_exportable") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclasses.dataclass(frozen=True)
class ExportFile:
    """One export, ready to serve: its bytes, content type and a file name."""

    content: bytes
    content_type: str
    filename: str


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    """A stored result and the rows it was computed from."""

    result_id: int | None
    seq: int | None
    analysis: str
    outcome: str
    status: str
    error: Any
    spec: dict[str, Any]
    blocks: dict[str, Any]
    omitted: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    k: int | None
    engine_version: str
    spec_hash: str
    input_fingerprint: str
    dataset_versions: list[dict[str, Any]]
    rows: list[dict[str, Any]]

    def stored(self) -> dict[str, Any]:
        """The stored result as ``result.json`` holds it."""
        return {
            "result": self.result_id,
            "seq": self.seq,
            "analysis": self.analysis,
            "outcome": self.outcome,
            "status": self.status,
            "error": self.error,
            "engine_version": self.engine_version,
            "spec": self.spec,
            "spec_hash": self.spec_hash,
            "input_fingerprint": self.input_fingerprint,
            "dataset_versions": self.dataset_versions,
            "k": self.k,
            "blocks": self.blocks,
            "omitted": self.omitted,
            "notes": self.notes,
        }


# --- the rows ---------------------------------------------------------------------------------


def source_rows(result: AnalysisResult) -> list[dict[str, Any]]:
    """The rows the engine ran on, rebuilt from the result's own dataset versions.

    As ``analysis_inputs`` combines them: each version's rows in their stored order, the versions
    in the result's order (by centre), each row tagged with its ``centre``.

    Raises
    ------
    ExportError
        A version is missing or its checksum is not the one the result records.
    """
    entries = list(result.dataset_versions or [])
    ids = [entry.get("version") for entry in entries]
    versions = {v.pk: v for v in DatasetVersion.objects.filter(pk__in=ids).only("pk", "checksum", "rows")}
    rows: list[dict[str, Any]] = []
    for entry in entries:
        version = versions.get(entry.get("version"))
        if version is None:
            raise ExportError(
                f"dataset version {entry.get('version')} (centre {entry.get('centre')}) is not stored",
                code="version_missing",
            )
        if version.checksum != entry.get("checksum"):
            raise ExportError(
                f"dataset version {version.pk} (centre {entry.get('centre')}) has checksum "
                f"{version.checksum}, not the {entry.get('checksum')} the result was computed from",
                code="version_changed",
            )
        rows.extend({**row, "centre": entry.get("centre")} for row in version.rows)
    return rows


def _canonical(value: Any) -> Any:
    """A JSON value as the database gives it back, whether read from it or still in memory: no
    negative zero (PostgreSQL's jsonb has none), so the same result always gives the same bytes."""
    if isinstance(value, float):
        return 0.0 if value == 0 else value
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _snapshot(result: AnalysisResult) -> _Snapshot:
    rows = source_rows(result)
    blocks = _canonical(dict(result.blocks or {}))
    es = blocks.get("effect_sizes")
    if isinstance(es, Mapping) and len(es.get("yi") or ()) != len(rows):
        raise ExportError(
            f"the result's effect sizes have {len(es.get('yi') or ())} rows, its dataset versions "
            f"{len(rows)}: the rows it was computed from cannot be rebuilt",
            code="rows_mismatch",
        )
    studies = [f"{row.get('study')} [{row.get('centre')}]" for row in rows]
    if result.studies and list(result.studies) != studies:
        raise ExportError(
            "the result's studies are not those of its dataset versions: the rows it was computed "
            "from cannot be rebuilt",
            code="rows_mismatch",
        )
    analysis = result.analysis
    return _Snapshot(
        result_id=result.pk,
        seq=result.seq,
        analysis=analysis.name,
        outcome=analysis.outcome.code,
        status=result.status,
        error=_canonical(result.error),
        spec=_canonical(dict(result.spec or {})),
        blocks=blocks,
        omitted=_canonical(list(result.omitted or [])),
        notes=_canonical(list(result.notes or [])),
        k=result.k,
        engine_version=result.engine_version,
        spec_hash=result.spec_hash,
        input_fingerprint=result.input_fingerprint,
        dataset_versions=_canonical(list(result.dataset_versions or [])),
        rows=rows,
    )


def _export_name(name: str) -> str:
    """An input column's name in the export (``input_`` before a name the export uses itself)."""
    return INPUT_PREFIX + name if name in OUTPUT_COLUMNS or name.startswith(INPUT_PREFIX) else name


def _input_name(name: str) -> str:
    return name[len(INPUT_PREFIX) :] if name.startswith(INPUT_PREFIX) else name


def _input_columns(snap: _Snapshot) -> list[str]:
    """The input columns in a stable order: identity, the measure's statistics (in the order of
    its input forms), moderators, subgroup and order columns, then the rest alphabetically."""
    present: dict[str, None] = {}
    for row in snap.rows:
        present.update(dict.fromkeys(row))
    measure = REGISTRY.get(str(snap.spec.get("measure")))
    statistics = [c for form in measure.forms for c in form.columns] if measure is not None else []
    chosen = [
        *LEAD_COLUMNS,
        *statistics,
        *(snap.spec.get("mods") or ()),
        *(c for c in (snap.spec.get("subgroup"), snap.spec.get("cumulative_order")) if c),
    ]
    ordered = [c for c in dict.fromkeys(chosen) if c in present]
    return ordered + sorted(c for c in present if c not in ordered)


def _export_columns(snap: _Snapshot) -> list[str]:
    return [ROW, *(_export_name(c) for c in _input_columns(snap)), *EFFECT_COLUMNS]


def _export_rows(snap: _Snapshot) -> list[dict[str, Any]]:
    es = snap.blocks.get("effect_sizes")
    es = es if isinstance(es, Mapping) else {}
    n = len(snap.rows)

    def column(name: str) -> list[Any]:
        values = es.get(name)
        return list(values) if isinstance(values, list) and len(values) == n else [None] * n

    yi, vi, form, derivation, in_model = (column(c) for c in ("yi", "vi", "form", "derivation", "in_model"))
    omitted: dict[int, list[Mapping[str, Any]]] = {}
    for item in snap.omitted:
        omitted.setdefault(int(item.get("row", -1)), []).append(item)
    columns = _input_columns(snap)
    out = []
    for i, row in enumerate(snap.rows):
        record: dict[str, Any] = {ROW: i}
        record.update((_export_name(c), row[c]) for c in columns if c in row)
        why = omitted.get(i, [])
        record.update(
            yi=yi[i],
            vi=vi[i],
            form=form[i],
            derivation=derivation[i],
            in_model=bool(in_model[i]),
            omitted_code="; ".join(str(o.get("code")) for o in why) or None,
            omitted_reason="; ".join(str(o.get("reason")) for o in why) or None,
        )
        out.append(record)
    return out


def result_rows(result: AnalysisResult) -> list[dict[str, Any]]:
    """The study rows ``result`` was computed from, in the order the engine saw them.

    Each row: ``row`` (its number from 0), its input columns (``centre`` added, a column named
    like an output column exported as ``input_<name>``), then the platform's ``yi``, ``vi``,
    ``form``, ``derivation``, ``in_model`` and, for a row left out, ``omitted_code`` and
    ``omitted_reason`` (``None`` otherwise).
    """
    return _export_rows(_snapshot(result))


def engine_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The engine's input rows from exported ones: the inverse of :func:`result_rows`."""
    return [{_input_name(k): v for k, v in row.items() if k not in OUTPUT_COLUMNS} for row in rows]


def _escape(text: str) -> str:
    """Text for a CSV cell: a leading quote is added where a spreadsheet could read a formula (or
    where the text starts with a quote itself), so removing one leading quote always restores it."""
    return "'" + text if text.startswith(_ESCAPED_START) else text


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, dict | list):
        return _escape(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return _escape(str(value))


def _csv_bytes(snap: _Snapshot, rows: Sequence[Mapping[str, Any]]) -> bytes:
    columns = _export_columns(snap)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([_escape(c) for c in columns])
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    return buffer.getvalue().encode("utf-8")


def _json_bytes(value: Any, *, indent: int | None = 1) -> bytes:
    """Canonical JSON: sorted keys (a result read back from PostgreSQL's jsonb has its keys in
    another order than one still in memory), so the same value always gives the same bytes."""
    separators = None if indent else (",", ":")
    text = json.dumps(
        value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=True, allow_nan=False
    )
    return (text + "\n").encode("utf-8")


def _rows_json_bytes(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """One row a line: readable, and diffs of two exports show the rows that changed."""
    lines = ",\n".join(json.dumps(r, ensure_ascii=False, allow_nan=False) for r in rows)
    return ("[\n" + lines + "\n]\n" if rows else "[]\n").encode("utf-8")


def rows_csv(result: AnalysisResult) -> bytes:
    """:func:`result_rows` as CSV: UTF-8, a header, one line per input row, a stable column order.

    Numbers are written in full (``repr``), booleans as ``TRUE``/``FALSE``, missing values as
    empty cells. Text that a spreadsheet could run as a formula (starting with ``= + - @``, a tab
    or carriage return), or that starts with a quote, gets one leading quote (CSV injection);
    removing one leading quote from every text cell restores it (the R script does).
    """
    snap = _snapshot(result)
    return _csv_bytes(snap, _export_rows(snap))


def rows_json(result: AnalysisResult) -> bytes:
    """:func:`result_rows` as a UTF-8 JSON array, one row a line."""
    return _rows_json_bytes(_export_rows(_snapshot(result)))


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


def _r_script(snap: _Snapshot, rows: Sequence[Mapping[str, Any]], data_file: str) -> str:
    if snap.status != AnalysisResult.Status.DONE:
        raise ExportError(
            "the result is a failed computation: there is no model to reproduce", code="no_model"
        )
    dependence = _model_kind(snap)
    names = block_names(dependence)
    blocks = snap.blocks
    fit_block = blocks.get(names["fit"])
    if not isinstance(fit_block, Mapping) or not isinstance(blocks.get("summary"), Mapping):
        raise ExportError("the result has no fitted model to reproduce", code="no_model")
    if not isinstance((blocks.get("effect_sizes") or {}).get("in_model"), list):
        raise ExportError(
            "the result does not record which rows entered its model (it predates in_model)",
            code="no_row_selection",
        )
    spec = snap.spec
    measure = REGISTRY.get(str(spec.get("measure")))
    if measure is None:
        raise ExportError(f"unknown measure {spec.get('measure')!r}", code="no_model")
    summary = blocks["summary"]
    method, test, level = str(spec.get("method", "REML")), str(spec.get("test", "z")), spec.get("level", 95.0)
    rho = float(spec.get("rho", 0.6))
    mods = [str(m) for m in spec.get("mods") or ()]
    robust_blocks = [kind for kind in ("CR2", "CR1") if kind in names and names[kind] in blocks]
    forms = {f for f in (blocks.get("effect_sizes") or {}).get("form") or () if f}
    classes = _column_classes(snap, rows)
    levels = _moderator_levels(snap)
    columns = _export_columns(snap)
    escaped = any(_escape(c) != c for c in columns) or any(
        isinstance(v, str) and v.startswith(_ESCAPED_START) for r in rows for v in r.values()
    )

    r = _R()
    title = f"result {snap.result_id}" if snap.result_id is not None else "a stored result"
    r.add(
        f"# analysis.R: reproduces {title} of the analysis {_comment(repr(snap.analysis))} "
        f"(outcome {_comment(snap.outcome)}) with metafor.",
        f"# The platform's meta-analysis engine {_comment(snap.engine_version)} computed it; the engine is "
        f"validated against R's metafor {VALIDATED_AGAINST['metafor']} and clubSandwich "
        f"{VALIDATED_AGAINST['clubSandwich']}.",
        f"# Run it where the exported rows are:  Rscript analysis.R [{data_file}]",
        '# Each call says which block of the platform\'s result (result.json, "blocks") it reproduces;',
        "# the end of the output lists R's numbers beside the platform's, with their relative difference.",
        "",
        "suppressPackageStartupMessages(library(metafor))",
    )
    if robust_blocks or dependence in ("multilevel", "che"):
        r.add("suppressPackageStartupMessages(library(clubSandwich))  # robust(..., clubSandwich = TRUE)")
    r.add(
        'cat("metafor", format(packageVersion("metafor")), "\\n")',
        "args <- commandArgs(trailingOnly = TRUE)",
        f"data_file <- if (length(args) > 0) args[1] else {_r_str(data_file)}",
        "",
        '# The settings of the analysis (result.json, "spec").',
        f"method <- {_r_str(method)}",
        f"test <- {_r_str(test)}",
        f"level <- {_r_num(float(level))}",
    )
    if dependence in ("aggregate", "che"):
        r.add(f"rho <- {_r_num(rho)}  # assumed correlation of two sampling errors of one study")
    if dependence in ("multilevel", "che"):
        r.add(
            "# rma.mv() with metafor's default optimiser (nlminb): it stops within ~1e-8 (relative) of the",
            "# exact optimum the platform's engine iterates to, ~1e-6 where the likelihood is flat. (A",
            "# tighter rel.tol moves the estimates no closer, and stops with a convergence error when a",
            "# variance component is 0: see fit_mv() below.)",
            f"ctl <- {_RMA_MV_CONTROL}",
        )
    else:
        r.add(
            "# Tighter convergence than metafor's defaults (threshold 1e-5), which stop up to ~1e-6",
            "# (relative) short of the exact optimum the platform's engine iterates to.",
            f"ctl <- {_RMA_CONTROL}",
        )

    # reading the rows
    class_items = ", ".join(f"{_r_str(_escape(c))} = {_r_str(classes[c])}" for c in columns)
    r.block(
        f"The rows the result was computed from, one per input row ({DATA_CSV} of the export). Text "
        "columns are read as text; an empty cell is a missing value.",
        f"classes <- c({class_items})",
        'dat <- read.csv(data_file, colClasses = classes, na.strings = "", check.names = FALSE,',
        '                encoding = "UTF-8", strip.white = FALSE)',
    )
    if escaped:
        r.block(
            "Text that a spreadsheet could run as a formula (or that starts with a quote) was written "
            "with one more leading quote: remove it.",
            'names(dat) <- sub("^\'", "", names(dat))',
            "text <- vapply(dat, is.character, logical(1))",
            'dat[text] <- lapply(dat[text], function(x) sub("^\'", "", x))',
        )

    # effect sizes
    generic = measure.family == "generic"
    args = (
        []
        if generic
        else list(
            dict.fromkeys([*measure.statistics, *(c for f in measure.reported_forms for c in f.columns)])
        )
    )
    given = forms & {"yi_vi", "yi_sei"}
    r.block(
        "Block effect_sizes: the effect size of every row, recomputed with escalc() from its inputs "
        "(the platform's values, the columns yi and vi, are compared with R's below).",
        'es_platform <- dat[c("yi", "vi")]',
        "dat$yi <- NULL",
        "dat$vi <- NULL",
    )
    needed = [*args, *(("input_yi", "input_vi", "sei") if given or generic else ())]
    if needed:
        r.add(
            f"for (v in {_r_vec(needed)}) if (is.null(dat[[v]])) dat[[v]] <- NA_real_  # columns no row has"
        )
    if given or generic:
        r.add(
            "# Rows that give an effect size with its variance (input_yi, input_vi) or its standard error",
            "# (input_yi, sei) use it as given (vi = sei^2, as escalc(yi = , sei = ) computes it)"
            + (";" if generic else "; escalc(replace = FALSE)"),
            "# below keeps these values"
            + (" (rows with neither have no effect size)." if generic else " and computes the other rows."),
            "given <- !is.na(dat$input_yi) & (!is.na(dat$input_vi) | !is.na(dat$sei))",
            "dat$yi <- ifelse(given, dat$input_yi, NA_real_)",
            "dat$vi <- ifelse(given, ifelse(!is.na(dat$input_vi), dat$input_vi, dat$sei^2), NA_real_)",
        )
    if generic:
        r.add(f"dat <- escalc(measure = {_r_str(measure.code)}, yi = yi, vi = vi, data = dat)")
    else:
        call_args = ", ".join(f"{a} = {a}" for a in args)
        replace = ", replace = FALSE" if given else ""
        if measure.reported_forms:
            words = " and ".join(f"{f.columns[0]} ({f.label})" for f in measure.reported_forms)
            r.add(
                *(
                    "# " + line
                    for line in _wrap(
                        f"{measure.code} from {words} where a row gives them (escalc's own arguments: "
                        "a given di replaces the means, ti fills a missing di), otherwise from the raw inputs."
                    )
                )
            )
        r.add(f"dat <- escalc(measure = {_r_str(measure.code)}, {call_args}, data = dat{replace})")
    r.add(
        'cat(sprintf("escalc() beside the platform\'s effect sizes: largest difference %.3g (yi), %.3g (vi); ",',
        "            max(abs(dat$yi - es_platform$yi), 0, na.rm = TRUE),",
        "            max(abs(dat$vi - es_platform$vi), 0, na.rm = TRUE)))",
        'cat(sprintf("%d row(s) missing in one but not the other\\n", sum(is.na(dat$yi) != is.na(es_platform$yi))))',
    )

    # the selection
    r.block(
        f"The rows in the model (column in_model of block effect_sizes): the analysis keeps "
        f"{_selection_words(spec)}, and leaves out rows without a usable effect size or moderator "
        "value. The platform's column in_model says which rows entered (omitted_reason says why "
        "the others did not): keep those.",
        "all_rows <- dat",
        "dat <- dat[dat$in_model, ]",
    )

    def coercions(frame: str) -> list[str]:
        out = []
        for name in mods:
            col = f"{frame}[[{_r_str(_export_name(name))}]]"
            if name in levels:
                out.append(f"{col} <- factor({col}, levels = {_r_vec(levels[name])})")
            else:
                out.append(f"{col} <- as.numeric({col})")
        return out

    if mods and dependence != "aggregate":
        r.block(
            "Moderators: numbers as numbers; text as factors whose first level (the reference) is the "
            "platform's (R's sort order of the values in the model).",
            *coercions("dat"),
        )
    mods_arg = f", mods = ~ {' + '.join(_r_name(_export_name(m)) for m in mods)}" if mods else ""
    common = "method = method, test = test, level = level, control = ctl"
    has_es_id = any("es_id" in row for row in snap.rows)
    if dependence in ("multilevel", "che"):
        r.block(
            "Estimates within a study (random = ~ 1 | study/es_id): "
            + (
                "the column es_id where a row gives one, otherwise the row."
                if has_es_id
                else "every row is its own estimate."
            ),
            (
                'dat$es_id <- ifelse(is.na(dat$es_id), paste("row", dat$row), as.character(dat$es_id))'
                if has_es_id
                else "dat$es_id <- dat$row"
            ),
        )
    if dependence == "che":
        r.add(
            "# vcalc()'s obs: a row's position within its study, so that every two rows of a study are",
            "# distinct observations whose sampling errors correlate rho.",
            "dat$.position <- as.character(ave(dat$row, dat$study, FUN = seq_along))",
        )

    model_data = "dat"
    if mods:
        kind_words = f"meta-regression ({'fixed' if method == 'EE' else 'mixed'}-effects model)"
    else:
        kind_words = f"{'equal' if method == 'EE' else 'random'}-effects model"
    if dependence == "aggregate":
        r.block(
            f"Block aggregated: one effect per study, its rows pooled under compound symmetry "
            f"(rho = {rho:g}).",
            'agg <- aggregate(dat, cluster = study, struct = "CS", rho = rho)',
            'print(agg[c("study", "yi", "vi")])',
        )
        if mods:
            r.block(
                "Moderators (study-level: the same in every row of a study), coded as the platform codes them.",
                *coercions("agg"),
            )
        model_data = "agg"
        r.block(
            f"Block aggregated_fit: the {kind_words} on "
            f"the studies (rma, method {method}, {test} test, {float(level):g}% intervals).",
            f"fit <- rma(yi, vi{mods_arg}, data = agg, {common})",
            "print(fit)",
        )
    elif dependence == "none":
        r.block(
            f"Block fit: the {kind_words}, every row an "
            f"independent study (rma, method {method}, {test} test, {float(level):g}% intervals).",
            f"fit <- rma(yi, vi{mods_arg}, data = dat, {common})",
            "print(fit)",
        )
    else:
        mods_formula = f"~ {' + '.join(_r_name(_export_name(m)) for m in mods)}" if mods else "~ 1"
        r.block(
            "rma.mv() with metafor's optimiser (nlminb, on the log scale of the variance components). "
            "Where a variance component is at its boundary, 0, the likelihood is flat in it and the "
            "optimiser stops up to ~1e-5 (relative) away in the other component: where one ends at "
            "~0, fit_mv() refits with it fixed at 0 -- the same optimum, then found directly -- and "
            "keeps whichever fit has the larger likelihood.",
            "fit_mv <- function(d, V, mods = ~ 1, boundary = TRUE) {",
            "  f <- rma.mv(yi, V, mods = mods, random = ~ 1 | study/es_id, data = d,",
            "              method = method, test = test, level = level, control = ctl)",
            "  zero <- f$sigma2 < 1e-6 * max(f$sigma2, mean(d$vi))",
            "  if (boundary && any(zero) && !all(zero)) {",
            "    g <- try(rma.mv(yi, V, mods = mods, random = ~ 1 | study/es_id, data = d, sigma2 = ifelse(zero, 0, NA),",
            "                    method = method, test = test, level = level, control = ctl), silent = TRUE)",
            '    if (!inherits(g, "try-error") && logLik(g) >= logLik(f)) return(g)',
            "  }",
            "  f",
            "}",
        )
        if dependence == "che":
            r.block(
                f"Block {names['fit']}: correlated and hierarchical effects -- sampling errors of one "
                f"study correlated rho = {rho:g} (vcalc; every pair of a study's rows), random effects "
                "of studies and of estimates within studies (rma.mv, random = ~ 1 | study/es_id).",
                "V <- vcalc(vi, cluster = study, obs = .position, rho = rho, data = dat)",
                f"fit <- fit_mv(dat, V, mods = {mods_formula})",
                "print(fit)",
            )
        else:
            r.block(
                f"Block {names['fit']}: the three-level model -- random effects of studies and of "
                "estimates within studies (rma.mv, random = ~ 1 | study/es_id), sampling errors independent.",
                "V <- dat$vi",
                f"fit <- fit_mv(dat, V, mods = {mods_formula})",
                "print(fit)",
            )
    for kind in robust_blocks:
        var = kind.lower()
        what = (
            "CR2 (bias-reduced) with Satterthwaite degrees of freedom, through clubSandwich"
            if kind == "CR2"
            else "CR1 with n - p degrees of freedom"
        )
        headline = " -- the headline inference of block summary" if summary.get("inference") == kind else ""
        r.block(
            f"Block {names[kind]}: cluster-robust tests by study, {what}{headline}.",
            f"{var} <- robust(fit, cluster = study{', clubSandwich = TRUE' if kind == 'CR2' else ''})",
            f"print({var})",
        )
    if names["predict"] in blocks:
        r.block(
            f"Block {names['predict']}: the pooled estimate with its confidence and prediction interval.",
            "pred <- predict(fit)",
            "print(pred)",
        )
    if dependence in ("multilevel", "che"):
        mods_formula = f"~ {' + '.join(_r_name(_export_name(m)) for m in mods)}" if mods else "~ 1"
        _r_dependent_extras(r, snap, names, mods_formula, rho if dependence == "che" else 0.0)
    else:
        _r_one_level_extras(r, snap, model_data, common, dependence)

    _r_comparisons(r, snap, names, robust_blocks)
    return "\n".join(r.lines) + "\n"


def _r_one_level_extras(r: _R, snap: _Snapshot, data: str, common: str, dependence: str) -> None:
    """Confidence intervals, sensitivity, bias, subgroups and Mantel-Haenszel of an ``rma`` fit."""
    blocks, spec = snap.blocks, snap.spec
    if "confint" in blocks:
        r.block(
            "Block confint: Q-profile confidence intervals of tau^2, tau, I^2 and H^2.", "print(confint(fit))"
        )
    if "leave1out" in blocks:
        r.block("Block leave1out: the model without each study in turn.", "print(leave1out(fit))")
    if "cumulative" in blocks:
        order = spec.get("cumulative_order")
        by = (
            f", order = {_r_name(_export_name(str(order)))}"
            if order and any(order in row for row in snap.rows)
            else ""
        )
        words = f"in increasing order of {order}" if by else "in row order"
        r.block(
            f"Block cumulative: the cumulative meta-analysis, studies added {words}.",
            f"print(cumul(fit{by}))",
        )
    if "influence" in blocks:
        r.block("Block influence: influence diagnostics.", "print(influence(fit))")
    if "egger" in blocks:
        r.block("Block egger: Egger's regression test (standard error as predictor).", "print(regtest(fit))")
    if "rank" in blocks:
        r.block("Block rank: the rank correlation test (Begg and Mazumdar).", "print(ranktest(fit))")
    if "fsn" in blocks:
        r.block(
            "Block fsn: Rosenthal's fail-safe N.",
            f'print(fsn(yi, vi, data = {data}, type = "Rosenthal"))',
        )
    if "trimfill" in blocks:
        r.block(
            "Block trimfill: trim-and-fill (estimator L0, side chosen as metafor chooses it).",
            "print(trimfill(fit))",
        )
    sub = spec.get("subgroup")
    if "subgroups" in blocks and sub:
        levels = blocks["subgroups"].get("levels") or []
        col = f"{data}[[{_r_str(_export_name(sub))}]]"
        r.block(
            f"Block subgroups: the model in each subgroup of {sub}, and the test of subgroup differences "
            "(the moderator test of the subgroups as a factor).",
            f"for (g in {_r_vec(levels)}) {{",
            '  cat("\\nSubgroup", g, "\\n")',
            f"  print(rma(yi, vi, data = {data}, subset = which({col} == g), {common}))",
            "}",
            f"{data}$.subgroup <- factor({col}, levels = {_r_vec(levels)})",
            f"print(rma(yi, vi, mods = ~ .subgroup, data = {data}, {common}))",
        )
    if "mantel_haenszel" in blocks or "peto" in blocks:
        measure = REGISTRY[str(spec.get("measure"))]
        cells, derived = [], []
        for index, group in enumerate(measure.groups):
            cells.append(f"{group[0]} = {group[0]}")
            if len(group) > 1 and index > 0:  # the non-events from a group size: n1i - ai
                cell, size, events = group[0], group[1], measure.groups[index - 1][0]
                derived.append(
                    f"all_rows${cell} <- ifelse(is.na(all_rows${cell}), all_rows${size} - all_rows${events}, "
                    f"all_rows${cell})"
                )
        r.block(
            "Blocks mantel_haenszel and peto: pooled straight from the tables. As the platform pools "
            "them: from every row that gives a table, including rows the selection above leaves out.",
            *derived,
        )
        if "mantel_haenszel" in blocks:
            r.add(
                f"mh <- rma.mh({', '.join(cells)}, measure = {_r_str(measure.code)}, data = all_rows, level = level)",
                "print(mh)",
            )
            r.check("mantel_haenszel.beta", "mh$beta[1]", _first(blocks["mantel_haenszel"].get("beta")))
            r.check("mantel_haenszel.se", "mh$se[1]", _first(blocks["mantel_haenszel"].get("se")))
        if "peto" in blocks:
            r.add(f"peto <- rma.peto({', '.join(cells)}, data = all_rows, level = level)", "print(peto)")
            r.check("peto.beta", "peto$beta[1]", _first(blocks["peto"].get("beta")))
            r.check("peto.se", "peto$se[1]", _first(blocks["peto"].get("se")))
    if "rho_sensitivity" in blocks and dependence == "aggregate":
        r.block(
            "Block rho_sensitivity: the pooled estimate at other assumed within-study correlations.",
            f"for (r in {_r_vec(RHO_SENSITIVITY, _r_num)}) {{",
            '  f <- rma(yi, vi, data = aggregate(dat, cluster = study, struct = "CS", rho = r),',
            "           method = method, test = test, level = level, control = ctl)",
            '  cat(sprintf("rho = %.1f: estimate %.6f [%.6f, %.6f], tau^2 %.6f\\n", r, f$beta[1], f$ci.lb, f$ci.ub, f$tau2))',
            "}",
        )


def _r_dependent_extras(
    r: _R, snap: _Snapshot, names: Mapping[str, str], mods_formula: str, rho: float
) -> None:
    """Profile intervals, aggregation, leave-one-study-out, Egger-type test and rho sensitivity of
    an ``rma.mv`` fit."""
    blocks, spec = snap.blocks, snap.spec
    use_robust = bool(spec.get("robust", True))
    vmatrix = "vcalc(vi, cluster = study, obs = .position, rho = r, data = d)"
    r.block(
        "The model refitted on other rows or at another rho (the loops below).",
        "refit <- function(d, r, mods = ~ 1) {",
        f"  fit_mv(d, if (r == 0) d$vi else {vmatrix}, mods = mods)",
        "}",
        "headline <- function(f, d) {",
        "  if (" + ("TRUE" if use_robust else "FALSE") + " && length(unique(d$study)) > 1) "
        "robust(f, cluster = study, clubSandwich = TRUE) else f",
        "}",
    )
    if names["confint"] in blocks:
        r.block(
            f"Block {names['confint']}: profile-likelihood confidence intervals of the variance "
            "components (of the fit with both components free).",
            f"print(confint(fit_mv(dat, V, mods = {mods_formula}, boundary = FALSE)))",
        )
    if "aggregated" in blocks:
        r.block(
            f"Block aggregated: each study's rows pooled to one effect (compound symmetry, rho = {rho:g}).",
            f'print(aggregate(dat, cluster = study, struct = "CS", rho = {_r_num(rho)})[c("study", "yi", "vi")])',
        )
    inference = "CR2 tests" if use_robust else "model-based tests"
    if "leave1out_study" in blocks:
        r.block(
            f"Block leave1out_study: the model without each study (all its rows) in turn, {inference}.",
            "for (s in unique(dat$study)) {",
            "  d <- dat[dat$study != s, ]",
            f"  h <- headline(refit(d, {_r_num(rho)}), d)",
            '  cat(sprintf("without %s: estimate %.6f, se %.6f, p %.4g\\n", s, h$beta[1], h$se[1], h$pval[1]))',
            "}",
        )
    if "egger_multilevel" in blocks:
        r.block(
            "Block egger_multilevel: an Egger-type test for dependent effects -- the model with the "
            "standard error as moderator, CR2 tests (the intercept is the limit estimate).",
            f"egger <- robust(refit(dat, {_r_num(rho)}, mods = ~ sqrt(vi)), cluster = study, clubSandwich = TRUE)",
            "print(egger)",
        )
    if "rho_sensitivity" in blocks:
        r.block(
            f"Block rho_sensitivity: the pooled estimate at other assumed within-study correlations, {inference}.",
            f"for (r in {_r_vec(RHO_SENSITIVITY, _r_num)}) {{",
            "  h <- headline(refit(dat, r), dat)",
            '  cat(sprintf("rho = %.1f: estimate %.6f [%.6f, %.6f], p %.4g\\n", r, h$beta[1], h$ci.lb[1], h$ci.ub[1], h$pval[1]))',
            "}",
        )


def _r_comparisons(r: _R, snap: _Snapshot, names: Mapping[str, str], robust_blocks: Sequence[str]) -> None:
    """The closing table: R's numbers beside the platform's stored ones."""
    blocks = snap.blocks
    fit = blocks[names["fit"]]
    summary = blocks["summary"]
    source = "fit"
    if summary.get("inference") in robust_blocks:
        source = str(summary["inference"]).lower()
    r.check("summary.estimate", f"{source}$beta[1]", summary.get("estimate"))
    r.check("summary.se", f"{source}$se[1]", summary.get("se"))
    r.check("summary.ci_lb", f"{source}$ci.lb[1]", summary.get("ci_lb"))
    r.check("summary.ci_ub", f"{source}$ci.ub[1]", summary.get("ci_ub"))
    r.check("summary.pval", f"{source}$pval[1]", summary.get("pval"))
    if summary.get("dfs") is not None:
        r.check("summary.dfs", f"{source}$dfs[1]", summary.get("dfs"))
    p = len(fit.get("beta") or [])
    for j in range(p):
        r.check(f"{names['fit']}.beta[{j + 1}]", f"fit$beta[{j + 1}]", _first(fit.get("beta"), j))
        r.check(f"{names['fit']}.se[{j + 1}]", f"fit$se[{j + 1}]", _first(fit.get("se"), j))
    # a variance component is compared relative to the typical sampling variance where it is ~0
    es = blocks.get("effect_sizes") or {}
    vi = [
        v for v, m in zip(es.get("vi") or [], es.get("in_model") or [], strict=False) if m and v is not None
    ]
    typical = float(np.mean(vi)) if vi else 0.0
    if "sigma2" in fit:
        for j in range(len(fit.get("sigma2") or [])):
            r.check(
                f"{names['fit']}.sigma2[{j + 1}]", f"fit$sigma2[{j + 1}]", _first(fit["sigma2"], j), typical
            )
    else:
        r.check(f"{names['fit']}.tau2", "fit$tau2", fit.get("tau2"), typical)
    r.check(f"{names['fit']}.QE", "fit$QE", fit.get("QE"))
    if p > 1:
        r.check(f"{names['fit']}.QM", "fit$QM", fit.get("QM"))
    for kind in robust_blocks:
        block = blocks[names[kind]]
        var = kind.lower()
        for j in range(len(block.get("se") or [])):
            r.check(f"{names[kind]}.se[{j + 1}]", f"{var}$se[{j + 1}]", _first(block.get("se"), j))
            r.check(f"{names[kind]}.dfs[{j + 1}]", f"at({var}$dfs, {j + 1})", _first(block.get("dfs"), j))
    pred = blocks.get(names["predict"])
    if isinstance(pred, Mapping):
        for field, expr in (("pred", "pred$pred"), ("pi_lb", "pred$pi.lb"), ("pi_ub", "pred$pi.ub")):
            r.check(f"{names['predict']}.{field}", f"{expr}[1]", _first(pred.get(field)))
    if not r.checks:
        return
    width = max(len(check[0]) for check in r.checks)

    def vector(values: Sequence[str]) -> list[str]:
        return [*(f"  {v}," for v in values[:-1]), f"  {values[-1]}", ")"]

    r.block(
        "R's numbers beside the platform's (result.json). An index [j] is R's (from 1): coefficient j, "
        "or variance component j (study, then estimate within study). The relative difference is to "
        "the larger of the two numbers; for a variance component, to the typical sampling variance "
        "where that is larger (a component at 0 is met by one within ~1e-10).",
        "at <- function(x, j) x[min(j, length(x))]  # a value given once for every coefficient",
        "platform <- c(",
        *vector([f"{_r_str(name)} = {_r_num(value)}" for name, _, value, _ in r.checks]),
        "ours <- c(",
        *vector([f"{_r_str(name)} = {expr}" for name, expr, _, _ in r.checks]),
        f"scale <- {_r_vec((check[3] for check in r.checks), _r_num)}",
        "reldiff <- ifelse(ours == platform, 0, abs(ours - platform) / pmax(abs(ours), abs(platform), scale))",
        'cat("\\n== R beside the platform\'s stored result ==\\n")',
        f'cat(sprintf("%-{width}s %24s %24s %10s\\n", "quantity", "R", "platform", "rel.diff"))',
        f'cat(sprintf("%-{width}s %24.17g %24.17g %10.2e\\n", names(platform), ours, platform, reldiff), sep = "")',
        'cat(sprintf("largest relative difference: %.2e (%s)\\n", max(reldiff), names(platform)[which.max(reldiff)]))',
    )


def r_script(result: AnalysisResult, data_file: str = DATA_CSV) -> str:
    """An R script that reproduces ``result`` with metafor from the exported CSV (``data_file``).

    It reads the rows (:func:`rows_csv`), recomputes the effect sizes with ``escalc()`` (given
    ``yi``/``vi``/``sei``, Cohen's ``di`` and ``ti`` through escalc's own arguments), keeps the rows
    in the model (column ``in_model``), fits the model of the result (``rma``; ``aggregate`` then
    ``rma``; ``rma.mv`` with ``vcalc`` for CHE), the cluster-robust tests, ``predict()`` and the
    sensitivity and bias analyses the result holds, and ends with R's numbers beside the stored
    ones. Comments name the block of the result each call reproduces.

    Raises
    ------
    ExportError
        The result is a failed computation or holds no fitted model.
    """
    snap = _snapshot(result)
    return _r_script(snap, _export_rows(snap), data_file)


# --- the Python script ------------------------------------------------------------------------

_PYTHON_TEMPLATE = '''\
#!/usr/bin/env python3
"""Recompute {title} with the platform's meta-analysis engine and compare it with the stored result.

Run it in the folder of the export, with the platform's source tree on the module path:

    PYTHONPATH=/path/to/the/platform python reproduce.py [--rtol 1e-9] [--atol 1e-12]

It reads data.json (the rows), spec.json (the analysis specification) and result.json (the stored
result), runs workers.metaanalysis.analysis.run_analysis(AnalysisSpec.from_dict(spec), rows) and
compares every number of the report (blocks, omitted rows, notes, k) with the stored one. It
prints the largest relative difference; the exit status is 0 when every number agrees within
rtol * max(|a|, |b|) + atol and every text is the same, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from workers.metaanalysis import ENGINE_VERSION
from workers.metaanalysis.analysis import run_analysis
from workers.metaanalysis.errors import EngineError
from workers.metaanalysis.spec import AnalysisSpec, spec_hash

HERE = Path(__file__).resolve().parent
#: Columns the export adds to every input row; an input column of one of these names (or starting
#: with the prefix) was exported as INPUT_PREFIX + its name.
OUTPUT_COLUMNS = {output_columns}
INPUT_PREFIX = {input_prefix}


def engine_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The engine's input rows: the exported rows without the platform's columns."""
    return [
        {{
            (k[len(INPUT_PREFIX) :] if k.startswith(INPUT_PREFIX) else k): v
            for k, v in row.items()
            if k not in OUTPUT_COLUMNS
        }}
        for row in rows
    ]


def compare(
    stored: Any, fresh: Any, path: str, numbers: list[tuple[float, float, str]], texts: list[str]
) -> None:
    """Walk two JSON values side by side: numbers into ``numbers``, any other difference into ``texts``."""
    if isinstance(stored, dict) and isinstance(fresh, dict):
        for key in sorted(set(stored) | set(fresh)):
            if key not in stored or key not in fresh:
                texts.append(
                    f"{{path}}.{{key}}: only in the {{'stored' if key in stored else 'recomputed'}} result"
                )
            else:
                compare(stored[key], fresh[key], f"{{path}}.{{key}}", numbers, texts)
    elif isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            texts.append(f"{{path}}: {{len(stored)}} stored values, {{len(fresh)}} recomputed")
        for i, (a, b) in enumerate(zip(stored, fresh, strict=False)):
            compare(a, b, f"{{path}}[{{i}}]", numbers, texts)
    elif (
        isinstance(stored, (int, float))
        and isinstance(fresh, (int, float))
        and not isinstance(stored, bool)
        and not isinstance(fresh, bool)
    ):
        numbers.append((float(stored), float(fresh), path))
    elif stored != fresh:
        texts.append(f"{{path}}: stored {{stored!r}}, recomputed {{fresh!r}}")


def relative(a: float, b: float) -> float:
    if a == b:
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE / "data.json"))
    parser.add_argument("--spec", default=str(HERE / "spec.json"))
    parser.add_argument("--result", default=str(HERE / "result.json"))
    parser.add_argument("--rtol", type=float, default=1e-9)
    parser.add_argument("--atol", type=float, default=1e-12)
    opts = parser.parse_args(argv)
    rows = engine_rows(json.loads(Path(opts.data).read_text(encoding="utf-8")))
    spec = json.loads(Path(opts.spec).read_text(encoding="utf-8"))
    stored = json.loads(Path(opts.result).read_text(encoding="utf-8"))
    stored_engine = stored.get("engine_version")
    print(f"engine {{ENGINE_VERSION}} (the stored result: engine {{stored_engine}}); {{len(rows)}} rows")
    same_hash = spec_hash(spec) == stored.get("spec_hash")
    print(f"specification hash {{spec_hash(spec)}}: {{'the' if same_hash else 'NOT the'}} stored result's")
    try:
        report = run_analysis(AnalysisSpec.from_dict(spec), rows).to_dict()
    except EngineError as exc:
        error = stored.get("error") or {{}}
        failed = stored.get("status") == "failed"
        same = failed and (error.get("code"), error.get("message")) == (exc.code, exc.message)
        print(f"the engine stops: {{exc.code}}: {{exc.message}}")
        if same:
            print("the stored result failed the same way")
        else:
            print(f"the stored result: {{stored.get('status')}} {{error}}")
        return 0 if same else 1
    if stored.get("status") == "failed":
        print(f"the stored result failed ({{stored.get('error')}}), the engine computes it now")
        return 1
    numbers: list[tuple[float, float, str]] = []
    texts: list[str] = []
    for key in ("k", "blocks", "omitted", "notes"):
        compare(stored.get(key), report.get(key), key, numbers, texts)
    worst = max(numbers, key=lambda n: relative(n[0], n[1]), default=(0.0, 0.0, "-"))
    bad = [n for n in numbers if not abs(n[0] - n[1]) <= opts.rtol * max(abs(n[0]), abs(n[1])) + opts.atol]
    summary = (stored.get("blocks") or {{}}).get("summary") or {{}}
    fresh_summary = (report.get("blocks") or {{}}).get("summary") or {{}}
    for field in ("estimate", "se", "ci_lb", "ci_ub", "pval", "dfs", "tau2", "sigma2", "I2"):
        if summary.get(field) is not None or fresh_summary.get(field) is not None:
            old, new = summary.get(field), fresh_summary.get(field)
            print(f"summary.{{field:<9}} stored {{old!r:<24}} recomputed {{new!r}}")
    largest = relative(worst[0], worst[1])
    where = f" ({{worst[2]}})" if largest else ": every number is the same"
    print(f"{{len(numbers)}} numbers compared; largest relative difference {{largest:.3g}}{{where}}")
    for a, b, path in bad[:20]:
        print(f"differs: {{path}}: stored {{a!r}}, recomputed {{b!r}}")
    for text in texts[:20]:
        print(f"differs: {{text}}")
    ok = not bad and not texts
    if ok:
        print("reproduced")
    else:
        print(f"NOT reproduced: {{len(bad)}} number(s) and {{len(texts)}} other value(s) differ")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
'''


def _python_script(snap: _Snapshot) -> str:
    title = f"result {snap.result_id}" if snap.result_id is not None else "a stored result"
    columns = "(" + ", ".join(json.dumps(c) for c in OUTPUT_COLUMNS) + ")"
    return _PYTHON_TEMPLATE.format(title=title, output_columns=columns, input_prefix=json.dumps(INPUT_PREFIX))


def python_script(result: AnalysisResult) -> str:
    """A Python script that reruns the engine on ``data.json`` with ``spec.json`` and compares
    every number with ``result.json``, printing the largest relative difference (exit status 0
    when all agree)."""
    return _python_script(_snapshot(result))


# --- the bundle -------------------------------------------------------------------------------


def _versions(snap: _Snapshot) -> dict[str, Any]:
    return {
        "result": snap.result_id,
        "engine_version": snap.engine_version,
        "exported_by": {
            "engine_version": ENGINE_VERSION,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "validated_against": dict(VALIDATED_AGAINST),
    }


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _readme(snap: _Snapshot, files: Mapping[str, str], has_r: bool, r_reason: str) -> str:
    title = f"result {snap.result_id}" if snap.result_id is not None else "a stored result"
    summary = snap.blocks.get("summary") or {}
    lines = [
        f"# Export of {title}",
        "",
        f"Analysis {_comment(repr(snap.analysis))} of outcome {_comment(snap.outcome)}, computed by the "
        f"platform's meta-analysis engine {_comment(snap.engine_version)} from "
        f"{len(snap.dataset_versions)} dataset version(s) ({len(snap.rows)} rows; {snap.k} in the model).",
    ]
    if summary:
        lines += [
            "",
            f"Pooled estimate {_short(summary.get('estimate'))} (SE {_short(summary.get('se'))}; "
            f"{summary.get('dependence')} model, {summary.get('inference')} inference; "
            f"{summary.get('k')} rows of {summary.get('n_studies')} studies).",
        ]
    lines += ["", "## Files", ""]
    lines += [f"- `{name}`: {what}" for name, what in files.items()]
    lines += [
        "",
        "## The columns of data.csv and data.json",
        "",
        "One row per input row, in the order the engine read them: `row` (its number from 0, as "
        "`omitted` in result.json counts), the uploaded columns (`centre` added; an uploaded column "
        "named like one of the columns below is renamed `input_<name>`), then the platform's values: "
        "`yi` and `vi` (the effect size and its sampling variance), `form` (the input it was computed "
        "from: `raw`, `di`, `ti`, `yi_vi`, `yi_sei`), `derivation` (in words), `in_model` (whether the "
        "row entered the model) and, for a row left out, `omitted_code` and `omitted_reason`.",
        "",
        "In data.csv an empty cell is a missing value and booleans are TRUE/FALSE. A text cell that a "
        "spreadsheet could run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage "
        "return), or that starts with a quote, is written with one more leading quote: remove one "
        "leading quote from every text cell to get the text back (analysis.R does).",
        "",
        "## Checking and re-running",
        "",
        "Check the files: `sha256sum -c SHA256SUMS`.",
        "",
        "Python, with the platform's engine (its source tree on the module path):",
        "",
        "    PYTHONPATH=/path/to/the/platform python reproduce.py",
        "",
        "reruns the engine on data.json with spec.json and compares every number with result.json; "
        "it prints the largest relative difference and exits with status 0 when all agree.",
        "",
    ]
    if has_r:
        lines += [
            f"R (metafor; the engine is validated against metafor {VALIDATED_AGAINST['metafor']} and "
            f"clubSandwich {VALIDATED_AGAINST['clubSandwich']}):",
            "",
            "    Rscript analysis.R data.csv",
            "",
            "recomputes the effect sizes with escalc(), fits the model and prints R's numbers beside the "
            "platform's. metafor's optimisers stop close to, not at, the exact optimum the engine "
            "iterates to: a one-level model agrees to ~1e-12; a multilevel model's variance components "
            "(and the numbers that depend on them) to ~1e-8, or ~1e-6 where the likelihood is flat "
            "(a component at 0, moderators on a large scale).",
        ]
    else:
        lines += [f"No R script: {r_reason}."]
    return "\n".join(lines) + "\n"


def _zip(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, wherever the platform runs: the same bytes everywhere
            info.external_attr = (0o100755 if name == PY_SCRIPT else 0o100644) << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def bundle(result: AnalysisResult) -> bytes:
    """A zip of everything needed to re-run ``result``: the rows (``data.csv``, ``data.json``),
    ``spec.json``, the stored ``result.json``, ``analysis.R``, ``reproduce.py``, ``versions.json``,
    ``README.md`` and ``SHA256SUMS`` (of every other file).

    Deterministic: fixed timestamps and file order, so the same result gives the same bytes. A
    failed result, or one without a fitted model, has no ``analysis.R`` (the README says why).
    """
    snap = _snapshot(result)
    rows = _export_rows(snap)
    try:
        script: str | None = _r_script(snap, rows, DATA_CSV)
        r_reason = ""
    except ExportError as exc:
        script, r_reason = None, exc.message
    described = {
        DATA_CSV: "the rows the result was computed from, with the platform's effect size of each (CSV)",
        DATA_JSON: "the same rows as JSON (one row a line)",
        SPEC_JSON: "the analysis specification (the engine's AnalysisSpec.to_dict())",
        RESULT_JSON: "the stored result: specification, blocks, omitted rows, notes, k, engine version, "
        "hashes and the dataset versions it was computed from",
        R_SCRIPT: "reproduces the result with R's metafor from data.csv",
        PY_SCRIPT: "reruns the platform's engine on data.json and compares with result.json",
        VERSIONS_JSON: "the engine version, the Python, numpy and scipy of the export, and the R packages "
        "the engine is validated against",
        README: "this file",
        CHECKSUMS: "SHA-256 of every other file (sha256sum -c SHA256SUMS)",
    }
    if script is None:
        del described[R_SCRIPT]
    files: dict[str, bytes] = {
        DATA_CSV: _csv_bytes(snap, rows),
        DATA_JSON: _rows_json_bytes(rows),
        SPEC_JSON: _json_bytes(snap.spec),
        RESULT_JSON: _json_bytes(snap.stored(), indent=None),  # blocks hold k-long lists: one line
    }
    if script is not None:
        files[R_SCRIPT] = script.encode("utf-8")
    files[PY_SCRIPT] = _python_script(snap).encode("utf-8")
    files[VERSIONS_JSON] = _json_bytes(_versions(snap))
    files[README] = _readme(snap, described, script is not None, r_reason).encode("utf-8")
    files[CHECKSUMS] = "".join(
        f"{hashlib.sha256(content).hexdigest()}  {name}\n" for name, content in sorted(files.items())
    ).encode("ascii")
    return _zip(files)


def export_file(result: AnalysisResult, kind: str) -> ExportFile:
    """One export of ``result`` for an endpoint: ``kind`` is ``csv``, ``json``, ``r``, ``python``
    or ``bundle`` (see :data:`CONTENT_TYPES`). The R script reads the CSV under the name this
    gives it (``result-<id>-data.csv``)."""
    stem = f"result-{result.pk}"
    csv_name = f"{stem}-data.csv"
    makers: dict[str, tuple[Callable[[], bytes], str]] = {
        "csv": (lambda: rows_csv(result), csv_name),
        "json": (lambda: rows_json(result), f"{stem}-data.json"),
        "r": (lambda: r_script(result, data_file=csv_name).encode("utf-8"), f"{stem}-analysis.R"),
        "python": (lambda: python_script(result).encode("utf-8"), f"{stem}-reproduce.py"),
        "bundle": (lambda: bundle(result), f"{stem}.zip"),
    }
    if kind not in makers:
        raise ValueError(f"unknown export {kind!r}; use one of {', '.join(makers)}")
    make, filename = makers[kind]
    return ExportFile(content=make(), content_type=CONTENT_TYPES[kind], filename=filename)
