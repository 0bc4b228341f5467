"""Check the engine against metafor's reference results: ``python -m workers.metaanalysis.validate [DIR]``.

Every ``*.json`` case in DIR (default ``tests/metaanalysis/cases``; format in
``/work/shared/reference/README.md``) is run through :func:`run_analysis`, once for each model its
keys call for, and EVERY field of EVERY expected block is compared with the block of the model
that computes it (rtol 1e-6, atol 1e-9; ``null`` must match None/NaN; lists elementwise).

Which model computes which block (the README's keys, in any combination):

- the one-level blocks (``fit``, ``confint``, ``egger``, ..., ``peto``): ``rma`` on the rows as
  independent studies;
- ``predict``, ``robust_cr1``, ``robust_cr2``: the model ``model`` names (``rma`` when absent);
- ``multilevel_fit``, ``multilevel_confint``: the three-level model (``random``);
- ``*_vcalc``: the three-level model with sampling errors correlated ``rho`` within a study;
- ``aggregated``, ``aggregated_fit``: the rows aggregated per study (``struct: CS``, ``rho``).

Each failing case is printed with ``block.field`` and both values, a block no model computed with
the reason (``not implemented: ...`` for blocks and keys the engine does not offer); the last
line is ``N passed, M failed`` (cases), and the exit status is 1 if any case failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .analysis import AnalysisSpec, run_analysis
from .errors import EngineError

__all__ = [
    "ATOL",
    "RTOL",
    "Model",
    "compare_block",
    "load_case",
    "main",
    "models_for",
    "run_case",
    "values_match",
]

RTOL = 1e-6
ATOL = 1e-9
DEFAULT_DIR = Path("tests/metaanalysis/cases")

SENSITIVITY_BLOCKS = frozenset({"leave1out", "cumulative", "influence"})
BIAS_BLOCKS = frozenset({"egger", "rank", "fsn", "trimfill"})
#: metafor's one-level blocks: ``rma()`` on the rows, each row an independent study.
ONE_LEVEL_BLOCKS = frozenset({"fit", "confint", "mantel_haenszel", "peto"}) | SENSITIVITY_BLOCKS | BIAS_BLOCKS
#: Blocks of the model the case's ``model`` key names.
MODEL_BLOCKS = frozenset({"predict", "robust_cr1", "robust_cr2"})
MULTILEVEL_BLOCKS = frozenset({"multilevel_fit", "multilevel_confint"})
AGGREGATED_BLOCKS = frozenset({"aggregated", "aggregated_fit"})

#: Blocks of the reference format the engine does not compute, and what they are.
NOT_IMPLEMENTED = {
    "pet": "PET, the meta-regression on the standard error",
    "peese": "PEESE, the meta-regression on the sampling variance",
    "pet_modified": "PET with the modified standard error of an SMD",
    "peese_modified": "PEESE with the modified sampling variance of an SMD",
    "egger_multilevel_modified": "the CR2 Egger test for dependent SMDs on the modified standard error",
    "critical_values": "group-sequential designs (rpact's getDesignGroupSequential)",
    "alpha_spent": "group-sequential designs (rpact's getDesignGroupSequential)",
    "stage_levels": "group-sequential designs (rpact's getDesignGroupSequential)",
    "futility_bounds": "group-sequential designs (rpact's getDesignGroupSequential)",
    "ris": "trial sequential analysis (required information size)",
    "diversity": "trial sequential analysis (diversity D²)",
    "ris_adjusted": "trial sequential analysis (diversity-adjusted information size)",
    "looks": "trial sequential analysis (monitoring boundaries per look)",
}

#: Case keys the engine cannot honour: every block but the effect sizes depends on them.
UNSUPPORTED_KEYS = {
    "kind": "sequential monitoring",
    "time": "sampling errors autocorrelated over follow-up time (vcalc's time1 with phi)",
    "phi": "sampling errors autocorrelated over follow-up time (vcalc's time1 with phi)",
    "type": "a correlation between instruments (vcalc's type)",
    "timepoints": "moderator levels in a given order (timepoints)",
}


@dataclasses.dataclass(frozen=True)
class Model:
    """One model a case's keys call for: the engine's dependence model and its ``rho``."""

    dependence: str
    rho: float | None = None

    @property
    def label(self) -> str:
        names = {"none": "rma", "multilevel": "multilevel", "che": "vcalc", "aggregate": "aggregated"}
        return names[self.dependence] + (f" (rho = {self.rho:g})" if self.rho is not None else "")


def _unwrap(value: Any) -> Any:
    # R's jsonlite writes an NA inside a list column as [null]: a one-element list is its element
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def load_case(path: Path) -> dict[str, Any]:
    """Read one case file; row cells written as one-element lists (``[null]``) are unwrapped."""
    with Path(path).open(encoding="utf-8") as fh:
        case = json.load(fh)
    case["rows"] = [{key: _unwrap(val) for key, val in row.items()} for row in case.get("rows") or []]
    return case


def _with_rho(case: dict[str, Any], dependence: str) -> Model | str:
    model = Model(dependence)
    rho = case.get("rho")
    if rho is None:
        return f"block not computed (the {model.label} model needs rho, which the case does not give)"
    return Model(dependence, float(rho))


def model_of_block(case: dict[str, Any], block: str) -> Model | str | None:
    """The model whose report holds ``block``; the reason when the engine cannot compute it; None
    for the effect sizes (every model reports them) and for blocks of no known model."""
    unsupported = [why for key, why in UNSUPPORTED_KEYS.items() if key in case]
    if block == "effect_sizes" and "kind" not in case:
        return None
    if unsupported:
        return "not implemented: " + NOT_IMPLEMENTED.get(block, "; ".join(dict.fromkeys(unsupported)))
    if block in ONE_LEVEL_BLOCKS:
        return Model("none")
    if block in MODEL_BLOCKS:
        return Model("multilevel") if case.get("model") == "multilevel" else Model("none")
    if block in MULTILEVEL_BLOCKS:
        return Model("multilevel")
    if block.endswith("_vcalc"):
        return _with_rho(case, "che")
    if block in AGGREGATED_BLOCKS:
        if case.get("struct", "CS") != "CS":
            return f"not implemented: aggregation with struct {case['struct']!r} (the engine has CS)"
        return _with_rho(case, "aggregate")
    return None


def _main_model(case: dict[str, Any]) -> Model:
    """The model a block of no known model is looked for in first (``model``, else ``rho``)."""
    if case.get("model") == "multilevel":
        return Model("multilevel")
    if case.get("model") is None and case.get("rho") is not None:
        return Model("che", float(case["rho"]))
    return Model("none")


def models_for(case: dict[str, Any]) -> dict[str, Model | str | None]:
    """For each expected block: its model, or why no model computes it (None: any model's)."""
    return {block: model_of_block(case, block) for block in case["expected"]}


def _spec(case: dict[str, Any], model: Model, blocks: Sequence[str]) -> AnalysisSpec:
    """The analysis of ``model`` with the case's settings; the sensitivity and bias analyses only
    when a block asks for them (a block of no known model asks for everything)."""
    known = ONE_LEVEL_BLOCKS | MODEL_BLOCKS | MULTILEVEL_BLOCKS | AGGREGATED_BLOCKS | {"effect_sizes"}
    unknown = any(b not in known and not b.endswith("_vcalc") for b in blocks)
    return AnalysisSpec(
        measure=case["measure"],
        method=case.get("method", "REML"),
        test=case.get("test", "z"),
        level=float(case.get("level", 95)),
        mods=tuple(case.get("mods") or ()),
        dependence=model.dependence,
        rho=model.rho if model.rho is not None else 0.6,
        sensitivity=unknown or any(b in SENSITIVITY_BLOCKS for b in blocks),
        bias=unknown or any(b in BIAS_BLOCKS for b in blocks),
    )


def _rows(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The case's rows with the random levels and the cluster under the engine's names: ``study``
    (outer level, cluster) and ``es_id`` (estimate within a study)."""
    levels = list(case.get("random") or [])
    outer = levels[0] if levels else case.get("cluster")
    inner = levels[1] if len(levels) > 1 else None
    rename = {name: to for name, to in ((outer, "study"), (inner, "es_id")) if name and name != to}
    if not rename:
        return case["rows"]
    return [{**row, **{to: row.get(name) for name, to in rename.items()}} for row in case["rows"]]


def values_match(actual: Any, expected: Any) -> bool:
    """Equality within rtol/atol; None matches None or NaN; lists compare elementwise."""
    if expected is None:
        return actual is None or (isinstance(actual, float) and math.isnan(actual))
    if isinstance(expected, list):
        if not isinstance(actual, list | tuple) or len(actual) != len(expected):
            return False
        return all(values_match(a, e) for a, e in zip(actual, expected, strict=True))
    if isinstance(expected, str | bool):
        return actual == expected
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return False
    a, e = float(actual), float(expected)
    if not math.isfinite(a):
        return False
    return abs(a - e) <= ATOL + RTOL * abs(e)


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _first_difference(actual: Any, expected: Any) -> str:
    if isinstance(expected, list) and isinstance(actual, list | tuple) and len(actual) == len(expected):
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            if not values_match(a, e):
                return f"[{i}]: expected {_show(e)}, got {_show(a)}"
    return f": expected {_show(expected)}, got {_show(actual)}"


def compare_block(name: str, actual: dict[str, Any] | None, expected: dict[str, Any]) -> list[str]:
    """Differences between an engine block and the expected one, as ``block.field: ...`` lines."""
    if actual is None:
        return [f"{name}: block not computed"]
    out = []
    for field, exp in expected.items():
        if field not in actual:
            out.append(f"{name}.{field}: field missing (expected {_show(exp)})")
        elif not values_match(actual[field], exp):
            out.append(f"{name}.{field}{_first_difference(actual[field], exp)}")
    return out


@dataclasses.dataclass
class _Report:
    """The engine's report of one model: its blocks and the reasons of its notes, or why the run
    failed."""

    blocks: dict[str, Any]
    why: dict[str, str]
    failure: str | None = None


def _run(case: dict[str, Any], model: Model, blocks: Sequence[str], rows: list[dict[str, Any]]) -> _Report:
    try:
        report = run_analysis(_spec(case, model, blocks), rows).to_dict()
    except EngineError as exc:
        return _Report({}, {}, f"the {model.label} model raised {type(exc).__name__}: {exc.message}")
    why: dict[str, str] = {}
    for note in report["notes"]:
        why.setdefault(note["block"], note["message"])
    return _Report(report["blocks"], why)


def _not_computed(name: str, reports: Sequence[_Report]) -> str:
    for report in reports:
        if report.failure is not None:
            return f"{name}: block not computed ({report.failure})"
        if name in report.why:
            return f"{name}: block not computed ({report.why[name]})"
    if name in NOT_IMPLEMENTED:
        return f"{name}: not implemented: {NOT_IMPLEMENTED[name]}"
    return f"{name}: not implemented: the engine computes no {name!r} block"


def run_case(case: dict[str, Any]) -> list[str]:
    """Run every model the case's keys call for and return the differences (empty when it passes)."""
    wanted = models_for(case)
    if "measure" not in case:
        return [
            f"{name}: {why}"
            if isinstance(why, str)
            else f"{name}: block not computed (the case has no measure)"
            for name, why in wanted.items()
        ]
    runs: dict[Model, list[str]] = {}
    for name, model in wanted.items():
        if isinstance(model, Model):
            runs.setdefault(model, []).append(name)
    open_blocks = [name for name, model in wanted.items() if model is None]
    if open_blocks and not (runs and open_blocks == ["effect_sizes"]):
        runs.setdefault(_main_model(case), []).extend(b for b in open_blocks if b != "effect_sizes")
    rows = _rows(case)
    reports = {model: _run(case, model, blocks, rows) for model, blocks in runs.items()}
    out: list[str] = []
    for name, expected in case["expected"].items():
        model = wanted[name]
        if isinstance(model, str):
            out.append(f"{name}: {model}")
            continue
        # a block of one model is read from that model's report; the effect sizes and blocks of
        # no known model from the first report that has them
        candidates = [reports[model]] if model is not None else list(reports.values())
        actual = next((r.blocks[name] for r in candidates if name in r.blocks), None)
        out.extend(
            [_not_computed(name, candidates)] if actual is None else compare_block(name, actual, expected)
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m workers.metaanalysis.validate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("directory", nargs="?", default=str(DEFAULT_DIR), help="directory with *.json cases")
    args = parser.parse_args(argv)
    files = sorted(Path(args.directory).glob("*.json"))
    if not files:
        print(f"no *.json cases in {args.directory}", file=sys.stderr)
        print("0 passed, 0 failed")
        return 1
    passed = failed = 0
    for path in files:
        try:
            case = load_case(path)
            diffs = run_case(case)
            name = case.get("id", path.stem)
        except (OSError, ValueError, KeyError) as exc:
            diffs, name = [f"cannot read case: {exc}"], path.stem
        if diffs:
            failed += 1
            print(f"FAIL {name}")
            for line in diffs:
                print(f"  {line}")
        else:
            passed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
