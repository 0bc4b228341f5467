"""Exports of a stored result that a statistician can re-run (apps.analyses.exports): the rows it
was computed from (CSV, JSON), an R script that reproduces it with metafor, a Python script that
reruns the engine, and a deterministic bundle of them all."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import SMD_ROWS, ci_requires_services, dependent_trial_rows, make_cast, store_rows

ROOT = Path(__file__).resolve().parents[2]
R_TABLE = "== R beside the platform's stored result =="

#: Each variant: the data (one row per study, or several per study) and the analysis settings.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "smd": ("one_level", {}),
    "smd_mods": (
        "one_level",
        {"mods": ["year", "setting"], "method": "DL", "test": "knha", "subgroup": "setting"},
    ),
    "che": ("dependent", {"timepoint": "post"}),
    "aggregate": ("dependent", {"timepoint": "post", "dependence": "aggregate"}),
    "multilevel": ("dependent", {"dependence": "multilevel", "mods": ["year"], "test": "t"}),
    "none_robust": ("dependent", {"timepoint": "post", "dependence": "none"}),
    # risk ratios at two time points: the model and Mantel-Haenszel read the post-treatment rows only
    "rr_timepoints": ("tables", {"timepoint": "post"}),
    # RFS scored so that lower is better: its effects are sign-aligned before pooling
    "aligned": ("dependent_aligned", {"timepoint": "post"}),
}


def _table_rows() -> list[dict[str, Any]]:
    """Seven trials' events at two time points, as 2x2 tables (ai bi ci di) or as events and group
    sizes (ai n1i ci n2i); the 6-month rows differ, so pooling them in would show."""
    rows = []
    for j in range(7):
        for t, shift in (("post", 0), ("6m", 6)):
            a, n1, c, n2 = 12 + 3 * j + shift, 40 + 2 * j, 8 + 2 * j, 42 + j
            row: dict[str, Any] = {"study": f"Trial {j + 1}", "timepoint": t, "year": 2010 + j}
            if j % 2:
                row.update(ai=a, n1i=n1, ci=c, n2i=n2)
            else:
                row.update(ai=a, bi=n1 - a, ci=c, di=n2 - c)
            rows.append(row)
    return rows


def _one_level_rows() -> list[dict[str, Any]]:
    """Six studies, one row each: means and SDs, one Cohen's d; a label a spreadsheet would read as
    a formula, one with an umlaut, and a categorical moderator."""
    settings = ["inpatient", "outpatient", "-day clinic", "outpatient"]
    rows = [{**row, "setting": s} for row, s in zip(SMD_ROWS, settings, strict=True)]
    rows.append(
        {
            "study": "Müller 2021",
            "m1i": 11.0,
            "sd1i": 3.9,
            "n1i": 40,
            "m2i": 9.1,
            "sd2i": 4.1,
            "n2i": 38,
            "year": 2021,
            "setting": "inpatient",
        }
    )
    rows.append(
        {"study": "-Cole 2018", "di": 0.31, "n1i": 33, "n2i": 35, "year": 2018, "setting": "-day clinic"}
    )
    return rows


def _dependent_rows() -> list[dict[str, Any]]:
    """The shared dependent trials (some rows as Cohen's d or t), with one row also giving an effect
    size with its SE (and its means: the given effect size wins) and one an effect size with its
    variance instead of its means."""
    rows = dependent_trial_rows()
    rows[2].update(yi=0.35, sei=0.21)
    rows[6].update(yi=0.52, vi=0.048)
    for name in ("m1i", "sd1i", "m2i", "sd2i"):
        del rows[6][name]
    return rows


def _result(variant: str) -> Any:
    """A stored result of the variant: rows of two centres, recomputed as the worker does."""
    from apps.analyses.models import Analysis
    from apps.analyses.services import analysis_recompute
    from apps.consortium.models import Outcome

    cast = make_cast()
    outcome = cast["outcome"]
    data, settings = VARIANTS[variant]
    if data == "tables":
        outcome = cast["outcome2"]
        Outcome.objects.filter(pk=outcome.pk).update(measure="RR", timepoints=["post", "6m"])
        outcome.refresh_from_db()
        rows, split = _table_rows(), 6
    elif data in ("dependent", "dependent_aligned"):
        scales = (
            {"RFS": {"direction": "lower", "min": None, "max": None}} if data == "dependent_aligned" else {}
        )
        Outcome.objects.filter(pk=outcome.pk).update(
            instruments=["PRFQ", "RFS"], timepoints=["post", "6m"], instrument_scales=scales
        )
        outcome.refresh_from_db()
        rows, split = _dependent_rows(), 11
    else:
        rows, split = _one_level_rows(), 4
    analysis = Analysis.objects.get(outcome=outcome, is_default=True)
    Analysis.objects.filter(pk=analysis.pk).update(**settings)
    store_rows(centre=cast["centre_a"], outcome=outcome, rows=rows[:split], submit=True)
    store_rows(centre=cast["centre_b"], outcome=outcome, rows=rows[split:], submit=True)
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.status == "done", result and result.error
    return result


def _unzip(content: bytes, into: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        archive.extractall(into)
        return {name: archive.read(name) for name in archive.namelist()}


def _rel(a: float, b: float) -> float:
    return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))


def _stored_value(blocks: dict[str, Any], name: str) -> float:
    """The stored number a line of the R script's table names: ``block.field``, ``block.field[j]``
    or ``block.field[i,j]`` (from 1, R's index)."""
    block, _, field = name.partition(".")
    indices: list[int] = []
    if field.endswith("]"):
        field, _, at = field[:-1].partition("[")
        indices = [int(j) - 1 for j in at.split(",")]
    value = blocks[block][field]
    for index in indices or [0]:
        value = value[index] if isinstance(value, list) else value
    return float(value)


def _rscript() -> str:
    """Rscript's path; without it the test fails under CI (which installs R) and is skipped elsewhere."""
    path = shutil.which("Rscript")
    if path is None:
        message = "Rscript is not on PATH: the R reproduction cannot be checked"
        if ci_requires_services():
            pytest.fail(message + " and CI requires it")
        pytest.skip(message + " (set CI=true to make this a failure)")
    return path


# --- the rows ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("variant", ["smd", "che"])
def test_rows_are_the_versions_rows_in_engine_order_with_the_platform_values(variant: str) -> None:
    from apps.analyses.exports import OUTPUT_COLUMNS, engine_rows, result_rows, source_rows
    from apps.analyses.services import analysis_inputs

    result = _result(variant)
    rows = result_rows(result)
    es = result.blocks["effect_sizes"]
    current, provenance = analysis_inputs(analysis=result.analysis)
    assert provenance == result.dataset_versions and [p["centre"] for p in provenance] == ["alpha", "beta"]
    # the engine's input, in its order, rebuilt from the result's versions
    assert source_rows(result) == current
    assert engine_rows(rows) == current
    assert [r["row"] for r in rows] == list(range(len(es["yi"])))
    assert [r["centre"] for r in rows] == [row["centre"] for row in current]
    for name in ("yi", "vi", "form", "derivation", "in_model"):
        assert [r[name] for r in rows] == es[name], name
    assert sum(r["in_model"] for r in rows) == result.k
    reasons = {o["row"]: o for o in result.omitted}
    for r in rows:
        why = reasons.get(r["row"])
        assert r["omitted_code"] == (why and why["code"]) and r["omitted_reason"] == (why and why["reason"])
    # the platform's columns come last, in a fixed order
    assert list(rows[0])[-len(OUTPUT_COLUMNS) + 1 :] == list(OUTPUT_COLUMNS[1:])
    if variant == "che":
        # a given effect size is an input: exported as input_yi beside the platform's yi
        given = rows[2]
        assert given["form"] == "yi_sei" and given["input_yi"] == 0.35 and given["sei"] == 0.21
        assert given["yi"] == 0.35 and given["vi"] == pytest.approx(0.21**2, rel=1e-15)
        assert rows[6]["form"] == "yi_vi" and rows[6]["input_vi"] == 0.048
        assert [rows[i]["form"] for i in (1, 3, 5)] == ["di", "ti", "di"]
        assert rows[3]["omitted_code"] == "not_selected" and not rows[3]["in_model"]


def _csv_value(cell: str, value: Any) -> bool:
    """Whether a CSV cell holds ``value`` as the export writes it."""
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell == ("TRUE" if value else "FALSE")
    if isinstance(value, int | float):
        return float(cell) == value and (isinstance(value, float) or cell == str(value))
    text = cell[1:] if cell.startswith("'") else cell  # one leading quote escapes a formula-like text
    return text == value


@pytest.mark.django_db
@pytest.mark.parametrize("variant", ["smd", "che"])
def test_csv_and_json_round_trip(variant: str) -> None:
    from apps.analyses.exports import result_rows, rows_csv, rows_json

    result = _result(variant)
    rows = result_rows(result)
    assert json.loads(rows_json(result).decode("utf-8")) == rows

    content = rows_csv(result)
    text = content.decode("utf-8")
    assert not text.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(text)))
    header, body = table[0], table[1:]
    # one column order: each row's keys in it (a row has the columns of its centre's version)
    assert set(header) == {k for r in rows for k in r} and len(body) == len(rows)
    assert all(list(row) == [c for c in header if c in row] for row in rows)
    for cells, row in zip(body, rows, strict=True):
        for name, cell in zip(header, cells, strict=True):
            assert _csv_value(cell, row.get(name)), (name, cell, row.get(name))
    if variant == "smd":
        # text a spreadsheet would run as a formula is escaped in the CSV, exact in the JSON
        cole = next(c for c in body if c[header.index("study")].endswith("Cole 2018"))
        assert cole[header.index("study")] == "'-Cole 2018"
        assert cole[header.index("setting")] == "'-day clinic"
        assert "Müller 2021" in text
    # the same result gives the same bytes
    assert rows_csv(result) == content


@pytest.mark.django_db
def test_rows_come_from_the_results_versions_not_the_current_data() -> None:
    from apps.analyses.exports import engine_rows, result_rows
    from apps.analyses.services import analysis_inputs, analysis_recompute

    old = _result("smd")
    before = engine_rows(result_rows(old))
    changed = [{**row, "m1i": row["m1i"] + 1.0} if "m1i" in row else row for row in _one_level_rows()[:4]]
    store_rows(
        centre=old.analysis.outcome.datasets.get(centre__code="alpha").centre,
        outcome=old.analysis.outcome,
        rows=changed,
        submit=True,
    )
    new = analysis_recompute(analysis_id=old.analysis_id)
    assert new is not None and new.pk != old.pk
    current, _ = analysis_inputs(analysis=old.analysis)
    assert engine_rows(result_rows(new)) == current != before
    assert engine_rows(result_rows(old)) == before


@pytest.mark.django_db
def test_a_result_whose_versions_cannot_be_found_is_refused() -> None:
    from apps.analyses.exports import ExportError, result_rows

    result = _result("smd")
    entry = result.dataset_versions[0]
    result.dataset_versions = [{**entry, "version": 10**9}, *result.dataset_versions[1:]]
    with pytest.raises(ExportError) as missing:
        result_rows(result)
    assert missing.value.code == "version_missing"
    result.dataset_versions = [{**entry, "checksum": "0" * 64}, *result.dataset_versions[1:]]
    with pytest.raises(ExportError) as changed:
        result_rows(result)
    assert changed.value.code == "version_changed"


# --- the bundle -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bundle_unpacks_verifies_and_reruns_the_engine(variant: str, tmp_path: Path) -> None:
    from apps.analyses.exports import VALIDATED_AGAINST, bundle, engine_rows
    from apps.datasets.services import rows_checksum
    from workers.metaanalysis import ENGINE_VERSION
    from workers.metaanalysis.analysis import run_analysis
    from workers.metaanalysis.spec import AnalysisSpec

    result = _result(variant)
    files = _unzip(bundle(result), tmp_path)
    assert set(files) == {
        "data.csv",
        "data.json",
        "spec.json",
        "result.json",
        "analysis.R",
        "reproduce.py",
        "versions.json",
        "README.md",
        "SHA256SUMS",
    }
    sums = dict(reversed(line.split("  ", 1)) for line in files["SHA256SUMS"].decode().splitlines())
    assert set(sums) == set(files) - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest, name

    stored = json.loads(files["result.json"])
    assert stored["blocks"] == result.blocks and stored["spec"] == result.spec == json.loads(
        files["spec.json"]
    )
    for key in (
        "notes",
        "omitted",
        "k",
        "engine_version",
        "spec_hash",
        "input_fingerprint",
        "dataset_versions",
    ):
        assert stored[key] == getattr(result, key), key
    versions = json.loads(files["versions.json"])
    assert versions["engine_version"] == result.engine_version == ENGINE_VERSION
    assert versions["validated_against"] == VALIDATED_AGAINST
    assert versions["exported_by"]["numpy"] == np.__version__
    readme = files["README.md"].decode()
    assert all(name in readme for name in set(files) - {"README.md"})

    # the rows of each centre are exactly its dataset version's: they hash to the recorded checksum
    rows = engine_rows(json.loads(files["data.json"]))
    for entry in result.dataset_versions:
        mine = [{k: v for k, v in r.items() if k != "centre"} for r in rows if r["centre"] == entry["centre"]]
        assert len(mine) == entry["rows"]
        assert rows_checksum(list(mine[0]), mine) == entry["checksum"]

    # the engine on data.json with spec.json gives the stored numbers
    report = run_analysis(AnalysisSpec.from_dict(json.loads(files["spec.json"])), rows).to_dict()
    summary, fresh = result.blocks["summary"], report["blocks"]["summary"]
    for key, value in summary.items():
        if isinstance(value, float):
            assert _rel(fresh[key], value) <= 1e-12, key
        elif isinstance(value, list):
            assert fresh[key] == pytest.approx(value, rel=1e-12, abs=0), key
        else:
            assert fresh[key] == value, key

    # and so does reproduce.py, on its own, with only the platform's source on the path
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "reproduce.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "largest relative difference" in proc.stdout and "reproduced" in proc.stdout
    assert "NOT" not in proc.stdout  # the specification hash is the stored one


@pytest.mark.django_db
def test_reproduce_py_reports_a_difference(tmp_path: Path) -> None:
    from apps.analyses.exports import bundle

    _unzip(bundle(_result("smd")), tmp_path)
    stored = json.loads((tmp_path / "result.json").read_text())
    stored["blocks"]["fit"]["beta"][0] *= 1 + 1e-6
    (tmp_path / "result.json").write_text(json.dumps(stored))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "reproduce.py"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "blocks.fit.beta[0]" in proc.stdout and "NOT reproduced" in proc.stdout


@pytest.mark.django_db
def test_bundle_bytes_are_deterministic() -> None:
    from apps.analyses.exports import bundle
    from apps.analyses.models import AnalysisResult

    result = _result("che")
    content = bundle(result)
    assert bundle(AnalysisResult.objects.get(pk=result.pk)) == content
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert archive.namelist()[-1] == "SHA256SUMS"


@pytest.mark.django_db
def test_a_failed_result_exports_its_rows_and_no_r_script(tmp_path: Path) -> None:
    from apps.analyses.exports import ExportError, bundle, r_script, result_rows
    from apps.analyses.models import Analysis
    from apps.analyses.services import analysis_recompute

    cast = make_cast()
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    Analysis.objects.filter(pk=analysis.pk).update(mods=["dose"])  # a column the data do not have
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.status == "failed"
    rows = result_rows(result)
    assert len(rows) == len(SMD_ROWS) and not any(r["in_model"] for r in rows)
    with pytest.raises(ExportError):
        r_script(result)
    files = _unzip(bundle(result), tmp_path)
    assert "analysis.R" not in files and "No R script" in files["README.md"].decode()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "reproduce.py"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "failed the same way" in proc.stdout


@pytest.mark.django_db
def test_export_files_for_the_endpoints() -> None:
    from apps.analyses.exports import CONTENT_TYPES, export_file

    result = _result("smd")
    for kind in ("csv", "json", "r", "python", "bundle"):
        export = export_file(result, kind)
        assert export.content and export.content_type == CONTENT_TYPES[kind]
        assert export.filename.startswith(f"result-{result.pk}")
    assert f'"result-{result.pk}-data.csv"' in export_file(result, "r").content.decode()
    with pytest.raises(ValueError):
        export_file(result, "xlsx")


# --- R ----------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_r_script_reproduces_the_result_with_metafor(variant: str, tmp_path: Path) -> None:
    from apps.analyses.exports import bundle
    from workers.metaanalysis.dependent import block_names

    rscript = _rscript()
    result = _result(variant)
    _unzip(bundle(result), tmp_path)
    proc = subprocess.run(
        [rscript, "analysis.R", "data.csv"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Error" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    # escalc() gives the platform's effect sizes, up to rounding
    escalc = re.search(r"largest difference (\S+) \(yi\), (\S+) \(vi\); 0 row\(s\) missing", proc.stdout)
    assert escalc is not None, proc.stdout[:2000]
    assert float(escalc[1]) <= 1e-12 and float(escalc[2]) <= 1e-12
    table: dict[str, float] = {}
    for line in lines[lines.index(R_TABLE) + 2 :]:
        parts = line.split()
        if len(parts) == 4 and "." in parts[0]:
            table[parts[0]] = float(parts[1])
    blocks = result.blocks
    summary = blocks["summary"]
    names = block_names(summary["dependence"])
    fit = names["fit"]
    # the pooled estimate and its standard error, and the headline inference
    assert _rel(table[f"{fit}.beta[1]"], blocks[fit]["beta"][0]) <= 1e-5
    assert _rel(table[f"{fit}.se[1]"], blocks[fit]["se"][0]) <= 1e-5
    assert _rel(table["summary.estimate"], summary["estimate"]) <= 1e-5
    assert _rel(table["summary.se"], summary["se"]) <= 1e-5
    if "CR2" in names and names["CR2"] in blocks:
        cr2 = names["CR2"]
        p = len(blocks[cr2]["se"])
        for j in range(p):
            assert _rel(table[f"{cr2}.se[{j + 1}]"], blocks[cr2]["se"][j]) <= 1e-5
            assert _rel(table[f"{cr2}.dfs[{j + 1}]"], blocks[cr2]["dfs"][j]) <= 1e-5
    if variant in ("che", "none_robust"):
        assert summary["inference"] == "CR2" and "summary.dfs" in table
        assert "summary.pi_lb" in table  # the robust prediction interval, as predict(robust(...))
    if variant == "rr_timepoints":
        # Mantel-Haenszel over the rows the analysis selects (post-treatment), as the engine does
        assert blocks["mantel_haenszel"]["k"] == 7 and "mantel_haenszel.beta" in table
        assert "confint.tau2[2]" in table and "leave1out.estimate[7]" in table and "fit.I2" in table
    if variant == "aligned":
        assert result.spec["reverse_instruments"] == ["RFS"] and any(blocks["effect_sizes"]["aligned"])
    if variant == "che":
        assert any(name.startswith("multilevel_confint_vcalc.sigma2[") for name in table)
        assert "leave1out_study.estimate[1]" in table
    # every number the script lists agrees (a variance component at 0 within 1e-9)
    assert len(table) >= 8
    for name, value in table.items():
        stored = _stored_value(blocks, name)
        close = _rel(value, stored) <= 1e-5
        if ("sigma2" in name or "tau2" in name) and not close:
            close = abs(value - stored) <= 1e-9
        assert close, (name, value, stored)


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("false", pytest.skip.Exception)]
)
def test_without_rscript_the_r_check_fails_under_ci_and_is_skipped_elsewhere(
    ci: str, outcome: type[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="Rscript is not on PATH"):
        _rscript()
