"""An analysis's settings have one home: ``workers/metaanalysis/spec.py`` (``SETTINGS``,
``CHOICES``, ``check_level``, ``check_rho``, ``check_mods``, ``check_model``).

The platform's model, settings form and API derive from it; the scan fails if a module writes a
bound of the confidence level, of rho or the three-level model's estimators again.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from workers.metaanalysis import spec

ROOT = Path(__file__).resolve().parents[2]
HOME = "workers/metaanalysis/spec.py"


def _python_files() -> list[Path]:
    return [
        p
        for top in ("apps", "workers")
        for p in sorted((ROOT / top).rglob("*.py"))
        if "migrations" not in p.parts
    ]


def _number(node: ast.AST) -> float | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    return None


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def setting_rules(path: Path) -> list[int]:
    """Lines of ``path`` that write a setting's rule: a level compared with 50 or 100, rho with
    -1 or 1, or an estimator refused unless it is one of ("ML", "REML")."""
    lines = []
    tree = ast.parse(path.read_text(), filename=str(path))
    in_level_function = {
        id(inner)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef) and "level" in fn.name
        for inner in ast.walk(fn)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            numbers = {_number(p) for p in parts} - {None}
            names = set().union(*(_names(p) for p in parts))
            if id(node) in in_level_function:
                names.add("level")
            level_bound = any("level" in n or n == "lev" for n in names) and numbers & {50.0, 100.0}
            rho_bound = "rho" in names and numbers & {-1.0, 1.0}
            if level_bound or rho_bound:
                lines.append(node.lineno)
            refused = any(isinstance(op, ast.NotIn) for op in node.ops)
            listed = [
                {e.value for e in p.elts if isinstance(e, ast.Constant)}
                for p in parts
                if isinstance(p, ast.Tuple | ast.List | ast.Set)
            ]
            if refused and {"ML", "REML"} in listed:
                lines.append(node.lineno)
    return sorted(set(lines))


def test_only_the_home_writes_a_setting_rule() -> None:
    offenders = {}
    for path in _python_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel != HOME and (lines := setting_rules(path)):
            offenders[rel] = lines
    assert not offenders, f"a setting's rule written outside {HOME}: {offenders}"


def test_the_scan_sees_a_second_rule(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "if not 50 <= level < 100:\n    pass\n"
        "def _level(value):\n    return 0 < value < 100\n"
        "if not -1 < self.rho < 1:\n    pass\n"
        'if method not in ("ML", "REML"):\n    pass\n'
    )
    assert setting_rules(sample) == [1, 4, 5, 7]


def test_the_models_choices_are_the_engines() -> None:
    from apps.analyses.models import Analysis

    assert tuple(Analysis.Method.values) == spec.CHOICES["method"][0]
    assert tuple(Analysis.Test.values) == spec.CHOICES["test"][0]
    assert tuple(Analysis.Dependence.values) == spec.CHOICES["dependence"][0]


def test_every_setting_is_a_field_of_the_model_and_of_the_form() -> None:
    from apps.analyses.models import Analysis
    from apps.analyses.services import ANALYSIS_FIELDS

    model_fields = {f.name for f in Analysis._meta.get_fields()}
    assert set(spec.SETTINGS) <= model_fields
    assert set(ANALYSIS_FIELDS) == {"name", *spec.SETTINGS}
    assert set(spec.SETTINGS) | {"measure", "timepoints", "reverse_instruments"} == {
        f.name for f in spec.dataclasses.fields(spec.AnalysisSpec)
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"level": 40}, "level"),
        ({"level": 100}, "level"),
        ({"rho": 1}, "rho"),
        ({"method": "XX"}, "method"),
        ({"mods": ["a"] * 11}, "mods"),
        ({"dependence": "che", "method": "PM"}, "method"),
    ],
)
def test_the_platform_and_the_engine_refuse_alike(changes: dict, field: str) -> None:
    """The same settings are refused by the settings form's validation and by the engine."""
    from django.core.exceptions import ValidationError

    from apps.analyses.services import analysis_validate
    from apps.consortium.models import Outcome
    from workers.metaanalysis.errors import InvalidInputError

    outcome = Outcome.objects.create(code="o", name="O", measure="SMD")
    with pytest.raises(ValidationError) as refused:
        analysis_validate(outcome=outcome, analysis=None, data={"name": "A", **changes})
    assert field in refused.value.message_dict
    with pytest.raises(InvalidInputError) as engine:
        spec.AnalysisSpec(measure="SMD", **changes)
    assert engine.value.column == field
    assert engine.value.message.rstrip(".").lower() in refused.value.message_dict[field][0].lower()
