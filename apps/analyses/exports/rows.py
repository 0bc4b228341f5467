"""The rows of a stored result, as the exports give them: rebuilt from the write-once dataset
versions the result cites, with the platform's values for each row, as CSV and JSON."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from apps.analyses.models import AnalysisResult
from apps.datasets.ingest.export import FORMULA_START
from apps.datasets.models import DatasetVersion
from workers.metaanalysis.measures import REGISTRY

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

# One constant a file of the bundle: the bundle, its README and the R script name each by it.
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
_ESCAPED_START = (*FORMULA_START, "'")


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
