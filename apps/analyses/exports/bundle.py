"""The reproducibility bundle: the rows, specification, stored result, scripts, versions and
checksums in one zip, and the one entry point for every kind of export (:func:`export_file`)."""

from __future__ import annotations

import hashlib
import io
import platform
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import scipy

from apps.analyses.exports.python_script import (
    _python_script,
    python_script,
)
from apps.analyses.exports.r_script import (
    _r_script,
    r_script,
)
from apps.analyses.exports.r_syntax import (
    _comment,
)
from apps.analyses.exports.rows import (
    _ZIP_DATE,
    CHECKSUMS,
    CONTENT_TYPES,
    DATA_CSV,
    DATA_JSON,
    PY_SCRIPT,
    R_SCRIPT,
    README,
    RESULT_JSON,
    SPEC_JSON,
    VALIDATED_AGAINST,
    VERSIONS_JSON,
    ExportError,
    ExportFile,
    _csv_bytes,
    _export_rows,
    _json_bytes,
    _rows_json_bytes,
    _Snapshot,
    _snapshot,
    rows_csv,
    rows_json,
)
from apps.analyses.models import AnalysisResult
from workers.metaanalysis import ENGINE_VERSION

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
