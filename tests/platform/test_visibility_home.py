"""Which results and releases a person may see is written once, in ``apps/analyses/visibility.py``.

The scan fails when another module compares or filters on a release's embargo, or writes the rule
in SQL; the behaviour tests hold every form of the rule (the queryset filter, the predicate for a
release in memory, "what could they see then") to the same answers.
"""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

ROOT = Path(__file__).resolve().parents[2]
HOME = "apps/analyses/visibility.py"

#: places that read a release's embargo for another question than "who may see it", and why
EMBARGO_READS_ALLOWED = {
    # publishing: an embargo must end in the future
    ("apps/analyses/releases.py", "release_fields_validate"),
    # the read cache: when the next embargo ends, cached documents must expire then
    ("apps/analyses/releases.py", "seconds_to_next_embargo_end"),
}

_LOOKUPS = ("__lt", "__lte", "__gt", "__gte", "__isnull", "__range")


def _python_files() -> list[Path]:
    return [p for p in sorted((ROOT / "apps").rglob("*.py")) if "migrations" not in p.parts]


def embargo_rules(path: Path) -> list[tuple[int, str]]:
    """Where ``path`` decides by a release's embargo: a comparison with ``embargo_until``, a
    filter on it, or SQL that names it. Each as (line, enclosing function)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        hit = False
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            hit = any(isinstance(p, ast.Attribute) and p.attr == "embargo_until" for p in parts)
        elif isinstance(node, ast.keyword) and node.arg:
            hit = "embargo_until__" in node.arg and node.arg.endswith(_LOOKUPS)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            hit = "embargo_until" in text and any(
                word in text.upper() for word in ("SELECT", "WHERE", " IS NULL", "<=")
            )
            hit = hit or any(f"embargo_until{lookup}" in text for lookup in _LOOKUPS)
        if hit:
            found.append((getattr(node, "lineno", 0), function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "")
    return found


def test_only_the_home_decides_by_an_embargo() -> None:
    offenders = {}
    for path in _python_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel == HOME:
            continue
        rules = [(line, fn) for line, fn in embargo_rules(path) if (rel, fn) not in EMBARGO_READS_ALLOWED]
        if rules:
            offenders[rel] = rules
    assert not offenders, f"the visibility rule written outside {HOME}: {offenders}"


def test_the_scan_sees_a_second_rule(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def shown(release, now, qs):\n"
        "    if release.embargo_until is None or release.embargo_until <= now:\n"
        "        return qs.filter(release__embargo_until__lte=now)\n"
        '    SQL = "SELECT 1 FROM r WHERE rl.embargo_until IS NULL"\n'
    )
    assert sorted({line for line, _ in embargo_rules(sample)}) == [2, 3, 4]
    assert embargo_rules(ROOT / HOME), "the home itself must be seen by the scan"


@pytest.mark.django_db
def test_the_filter_and_the_in_memory_predicate_agree() -> None:
    from apps.analyses import visibility
    from apps.analyses.models import Release

    now = timezone.now()
    hour = timedelta(hours=1)
    moments = [now - 2 * hour, now - hour, now, now + hour]
    for i, published in enumerate(moments[:3]):
        for j, embargo in enumerate([None, *moments]):
            Release.objects.create(name=f"r{i}-{j}", published_at=published, embargo_until=embargo)
    for at in [*moments, None]:
        by_filter = set(Release.objects.readable(at).values_list("name", flat=True))
        by_predicate = {r.name for r in Release.objects.all() if visibility.release_is_readable(r, at)}
        assert by_filter == by_predicate, at
        assert by_filter  # some are readable at every moment tried
