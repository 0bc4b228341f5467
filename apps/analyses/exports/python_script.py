"""The Python script of an export: it reruns the engine on the exported rows and compares every
number with the stored result."""

from __future__ import annotations

import json

from apps.analyses.exports.rows import (
    INPUT_PREFIX,
    OUTPUT_COLUMNS,
    _Snapshot,
    _snapshot,
)
from apps.analyses.models import AnalysisResult

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
