"""Each concept has one home: the measures, the JSON form of engine values, the file reader (the
command line and an upload read a file alike), the specification's hash, the direction of imports
between the apps and between the workers and the apps, and the signals that carry changes upwards
(docs/architecture.md). The homes of the visibility rule, the settings' rules, the measure domains
and the HTTP errors have their own scans beside this file."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from workers.metaanalysis import measures

ROOT = Path(__file__).resolve().parents[2]
CODES = frozenset(measures.REGISTRY)

#: Modules allowed to list measure codes, and why.
LISTS_ALLOWED = {
    # the registry itself
    "workers/metaanalysis/measures.py",
}


def _python_files() -> Iterator[Path]:
    for top in ("apps", "workers"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _codes_in(node: ast.AST) -> set[str]:
    elements: list[ast.expr | None] = []
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        elements = list(node.elts)
    elif isinstance(node, ast.Dict):
        elements = list(node.keys)
    return {e.value for e in elements if isinstance(e, ast.Constant) and e.value in CODES}


def _measure_lists(path: Path) -> list[tuple[int, list[str]]]:
    """Collections written out with two or more measure codes: a list the registry should own."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        codes = _codes_in(node)
        if len(codes) >= 2:
            found.append((getattr(node, "lineno", 0), sorted(codes)))
    return found


def test_no_module_but_the_registry_lists_measure_codes() -> None:
    offenders = {}
    for path in _python_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel in LISTS_ALLOWED:
            continue
        found = _measure_lists(path)
        if found:
            offenders[rel] = found
    assert not offenders, f"measure codes listed outside workers/metaanalysis/measures.py: {offenders}"


def test_the_layout_check_sees_a_list_of_codes(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('RATIOS = {"OR": "odds", "RR": "risk"}\nif m in ("PR", "PLO"):\n    pass\n')
    assert [codes for _, codes in _measure_lists(sample)] == [["OR", "RR"], ["PLO", "PR"]]


def test_mantel_haenszel_eligibility_agrees_with_the_registry() -> None:
    from workers.metaanalysis.mantel_haenszel import MH_MEASURES

    assert set(MH_MEASURES) == set(measures.MANTEL_HAENSZEL_MEASURES)


def test_every_reader_of_measures_agrees_with_the_registry() -> None:
    from apps.consortium.models import MEASURE_CHOICES
    from apps.datasets.ingest import MEASURES as UPLOAD_MEASURES
    from workers.metaanalysis import effects
    from workers.metaanalysis.effect_sizes import MEASURE_COLUMNS

    outcome = measures.OUTCOME_MEASURES
    assert [code for code, _ in MEASURE_CHOICES] == list(outcome)
    assert list(UPLOAD_MEASURES) == list(outcome)
    assert outcome == effects.MEASURES
    assert set(MEASURE_COLUMNS) == set(measures.REGISTRY)
    for code in outcome:
        upload = UPLOAD_MEASURES[code]
        assert upload.min_n == measures.get(code).min_n
        assert upload.label == measures.get(code).label


def test_log_scale_is_one_list() -> None:
    """PETO is a log odds ratio: the command line and the portal both back-transform it."""
    from apps.portal.scale import ratio_of

    assert measures.is_log_scale("PETO")
    pooled = {"estimate": 0.0, "ci_lb": -1.0, "ci_ub": 1.0, "pi_lb": None, "pi_ub": None}
    for code, measure in measures.REGISTRY.items():
        ratio = ratio_of(code, pooled)
        assert (ratio is not None) == measure.log_scale, code
        if ratio is not None:
            assert ratio["estimate"] == 1.0 and ratio["label"] == measure.ratio_label


def test_the_command_line_and_an_upload_read_a_file_alike(tmp_path: Path) -> None:
    """Decimal commas, and "1,234" with no evidence of its decimal mark: refused by both."""
    import io

    from apps.datasets.ingest import UploadRejected, UploadSpec, parse_upload
    from workers.metaanalysis import cli

    proven = "study;yi;vi\nA;1,234;0,1\nB;0,5;0,2\nC;0,25;0,1\n"
    parsed = parse_upload(proven.encode(), filename="a.csv", spec=UploadSpec(outcome_code="o", measure="GEN"))
    frame = cli.read_table("-", stdin=io.StringIO(proven), measure="GEN")
    rows = cli.rows_from_frame(frame, "GEN")
    assert [r["yi"] for r in parsed.rows] == [r["yi"] for r in rows] == [1.234, 0.5, 0.25]

    unproven = "study;yi;vi\nA;1,234;1\nB;2;1\nC;3;1\n"
    try:
        parse_upload(unproven.encode(), filename="b.csv", spec=UploadSpec(outcome_code="o", measure="GEN"))
    except UploadRejected as exc:
        assert any(e.code == "ambiguous_number" for e in exc.errors)
    else:
        raise AssertionError("the upload read an ambiguous number")
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["-", "--measure", "GEN"], stdin=io.StringIO(unproven), stdout=out, stderr=err) == 2
    assert "ambiguous" in err.getvalue()


def test_the_json_form_of_engine_values_is_one_function() -> None:
    from workers.metaanalysis import fit_result, jsonable, rma

    assert rma.jsonable is fit_result.jsonable is jsonable.to_jsonable


def test_the_platform_hashes_a_specification_as_the_engine_does() -> None:
    """A stored result's ``spec_hash`` is the engine's hash of its ``spec``: a partner can
    reproduce it outside the platform."""
    from apps.analyses.models import Analysis
    from apps.consortium.models import Outcome
    from workers.metaanalysis.spec import AnalysisSpec, spec_hash

    outcome = Outcome(code="o", name="O", measure="SMD", timepoints=["post", "6m"], instruments=[])
    analysis = Analysis(outcome=outcome, name="A", level=90, timepoint="post", mods=[])
    assert (
        analysis.spec_hash()
        == spec_hash(analysis.spec())
        == AnalysisSpec.from_dict(analysis.spec()).spec_hash()
    )
    assert AnalysisSpec.from_dict(analysis.spec()).to_dict() == analysis.spec()


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function (not for type checking only)."""
    names: set[str] = set()
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


#: Which apps each app may import (docs/architecture.md, "Layers"): the floor first. ``config``
#: (settings, the Celery app) and ``common`` (shared small pieces) are open to all but import no app.
MAY_IMPORT: dict[str, set[str]] = {
    "common": set(),
    "config": {"common"},
    "audit": {"common"},
    "consortium": {"common", "audit"},
    "datasets": {"common", "audit", "consortium"},
    "security": {"common", "audit", "datasets"},
    "analyses": {"common", "config", "audit", "consortium", "datasets"},
    "api": {"common", "config", "audit", "consortium", "datasets", "analyses", "security"},
    "webhooks": {"common", "config", "audit", "consortium", "datasets", "analyses", "api"},
    "portal": {"common", "config", "audit", "consortium", "datasets", "analyses", "api", "security"},
    "demo": {"common", "config", "audit", "consortium", "datasets", "analyses", "api", "webhooks"},
}

#: Modules that read other apps' objects to name them, above their own app's floor, and why.
READERS_ABOVE_THEIR_APP = {
    # the audit page names each event's object: a centre, an outcome, a dataset, an analysis
    "apps/audit/selectors.py": {"consortium", "datasets", "analyses"},
}


def import_violations() -> dict[str, set[str]]:
    """For each module under apps/, the apps it imports that its app may not."""
    found = {}
    for path in sorted((ROOT / "apps").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        rel = path.relative_to(ROOT).as_posix()
        app = path.relative_to(ROOT / "apps").parts[0]
        if app not in MAY_IMPORT:
            continue
        allowed = MAY_IMPORT[app] | {app} | READERS_ABOVE_THEIR_APP.get(rel, set())
        used = {n.split(".")[1] for n in _imports(path) if n.startswith("apps.") and n.count(".") >= 1}
        if used - allowed:
            found[rel] = used - allowed
    return found


def test_every_app_is_in_the_layers() -> None:
    apps = {p.name for p in (ROOT / "apps").iterdir() if (p / "__init__.py").exists()}
    assert apps == set(MAY_IMPORT)


def test_imports_run_down_the_layers_only() -> None:
    """The consortium is the floor (a new outcome reaches the analyses by a signal); datasets never
    import analyses (a data change reaches them by a signal); nothing imports the demo."""
    assert import_violations() == {}


def test_a_data_change_requests_recomputes_through_the_signal() -> None:
    from apps.analyses.services import on_outcome_data_changed
    from apps.datasets.models import Dataset
    from apps.datasets.signals import outcome_data_changed

    sync_receivers, _ = outcome_data_changed._live_receivers(Dataset)
    assert on_outcome_data_changed in sync_receivers


def test_a_data_dictionary_change_reaches_the_analyses_through_signals() -> None:
    from apps.analyses.services import on_outcome_created, on_outcome_data_changed
    from apps.consortium.models import Outcome
    from apps.consortium.signals import outcome_changed, outcome_created

    assert on_outcome_created in outcome_created._live_receivers(Outcome)[0]
    assert on_outcome_data_changed in outcome_changed._live_receivers(Outcome)[0]


def test_imports_run_from_the_workers_to_the_apps_never_back() -> None:
    """The services publish through the Celery app in apps/config; the worker package imports the
    apps (its tasks call the services), never the other way round."""
    importers = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "apps").rglob("*.py")
        if any(n.startswith(("workers.celery", "workers.tasks")) for n in _imports(path))
    }
    assert importers == set()
    assert "apps.analyses" in _imports(ROOT / "workers/tasks.py")
    assert "apps.config.celery" in _imports(ROOT / "apps/analyses/outbox.py")


def test_plots_draw_intervals_at_the_analysis_level() -> None:
    from apps.analyses.models import AnalysisResult
    from apps.portal.figures.data import critical_value, forest_rows, inputs_of

    assert abs(critical_value(95) - 1.959963984540054) < 1e-12
    assert abs(critical_value(90) - 1.6448536269514722) < 1e-12
    blocks = {
        "effect_sizes": {"yi": [0.5], "vi": [0.04]},
        "fit": {"beta": [0.5], "ci_lb": [0.1], "ci_ub": [0.9], "p": 1, "level": 95.0},
    }

    def interval(level: float) -> tuple[float, float]:
        result = AnalysisResult(blocks=blocks, spec={"level": level}, studies=["A"], dataset_versions=[])
        (row,) = forest_rows(inputs_of(result, measure="SMD", direction="higher", rows=False))
        assert row.lb is not None and row.ub is not None
        return round(row.lb, 2), round(row.ub, 2)

    assert interval(90) == (0.17, 0.83)  # 0.5 -/+ 1.645 * 0.2
    assert interval(95) == (0.11, 0.89)
