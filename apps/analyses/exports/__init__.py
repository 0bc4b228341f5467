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

The package: ``rows`` (the rows, as CSV and JSON), ``r_syntax`` and ``r_script`` (the R script),
``python_script``, and ``bundle`` (the zip, and :func:`export_file`, the API's entry point).
"""

from apps.analyses.exports.bundle import bundle, export_file
from apps.analyses.exports.python_script import python_script
from apps.analyses.exports.r_script import r_script
from apps.analyses.exports.rows import (
    CONTENT_TYPES,
    OUTPUT_COLUMNS,
    VALIDATED_AGAINST,
    ExportError,
    ExportFile,
    engine_rows,
    result_rows,
    rows_csv,
    rows_json,
    source_rows,
)

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
