"""No test waits a fixed time for something to happen, or passes or fails by how fast the machine is.

A test that sleeps to let a worker, a cache or a clock catch up is slow on a fast machine and flaky
on a slow one; a test that asserts how long something took measures the machine. Tests wait for an
event instead (``tests.integration.conftest.wait_until``, a generous deadline that ends as soon as
the event happens) and move the clock the code reads instead of waiting for it.

The check reads every function under tests/ (its source, not by running it) and refuses a call of
``time.sleep`` or ``asyncio.sleep``, and an ``assert`` that compares a difference of clock readings
(``time.monotonic``, ``time.perf_counter``, ``time.time``). ``ALLOWED`` names the few functions
that must poll or hold, each with its reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"

#: Functions (``path::qualified name``) allowed to sleep or time, and why. (tests/bench needs no
#: entry: the bench harness's own tests run it on a fake clock.)
ALLOWED = {
    "tests/integration/conftest.py::wait_until": "polls for an event and returns as soon as it happens",
    "tests/integration/conftest.py::WorkerProcess.start": "polls the worker's log until it says ready",
    "tests/platform/test_deployment.py::test_web_health_check_passes_on_a_production_configuration": (
        "polls until the gunicorn it started accepts connections"
    ),
    "tests/platform/test_nginx_proxy.py::proxy": "polls until the nginx it started accepts connections",
    "tests/browser/screenshots.py::run": "polls until the server it started answers",
    "tests/browser/screenshots.py::_load_images": "polls until the page's lazy images have loaded",
    "tests/integration/slow_worker.py::_slow_down_every_recompute._slow_compute": (
        "fault injection: a worker's recompute that lasts long enough to be killed in the middle"
    ),
    "tests/webhooks/conftest.py::Receiver.__init__.Handler.do_POST": (
        "the test receiver holds an answer as a slow receiver would (``Scripted.hold``)"
    ),
}

SLEEPS = {("time", "sleep"), ("asyncio", "sleep")}
CLOCKS = {
    ("time", name)
    for name in ("monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "time", "time_ns")
}


def _imported_names(tree: ast.Module) -> dict[str, tuple[str, str | None]]:
    """Local names bound to the ``time`` and ``asyncio`` modules or their functions: name ->
    (module, function or None for the module itself)."""
    names: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in ("time", "asyncio"):
                    names[alias.asname or alias.name] = (alias.name, None)
        elif isinstance(node, ast.ImportFrom) and node.module in ("time", "asyncio"):
            for alias in node.names:
                names[alias.asname or alias.name] = (node.module, alias.name)
    return names


def _called(call: ast.AST, names: dict[str, tuple[str, str | None]]) -> tuple[str, str] | None:
    """``(module, function)`` when ``call`` calls a function of ``time`` or ``asyncio``."""
    if not isinstance(call, ast.Call):
        return None
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        module = names.get(func.value.id)
        if module is not None and module[1] is None:
            return module[0], func.attr
    if isinstance(func, ast.Name):
        imported = names.get(func.id)
        if imported is not None and imported[1] is not None:
            return imported[0], imported[1]
    return None


class _FunctionCheck(ast.NodeVisitor):
    """The sleeps and timed asserts of one function's own body (nested functions are their own)."""

    def __init__(self, names: dict[str, tuple[str, str | None]]) -> None:
        self.names = names
        self.readings: set[str] = set()  # names holding a clock reading
        self.durations: set[str] = set()  # names holding a difference of readings
        self.found: list[tuple[int, str]] = []

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        pass  # checked on its own

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        pass  # checked on its own

    def _is_reading(self, node: ast.AST) -> bool:
        return _called(node, self.names) in CLOCKS or (
            isinstance(node, ast.Name) and node.id in self.readings
        )

    def _is_duration(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.durations
        return (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Sub)
            and (self._is_reading(node.left) or self._is_reading(node.right))
        )

    def visit_Assign(self, node: ast.Assign) -> None:
        targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if self._is_reading(node.value):
            self.readings.update(targets)
        elif self._is_duration(node.value):
            self.durations.update(targets)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        called = _called(node, self.names)
        if called in SLEEPS:
            self.found.append((node.lineno, f"calls {called[0]}.sleep"))
        self.generic_visit(node)

    def visit_Assert(self, node: ast.Assert) -> None:
        for compare in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            if any(self._is_duration(side) for side in (compare.left, *compare.comparators)):
                self.found.append((node.lineno, "asserts how long something took"))
                break
        self.generic_visit(node)


def _functions(
    tree: ast.AST, prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method, with its qualified name (``Class.method``, ``outer.inner``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + node.name, node
            yield from _functions(node, prefix + node.name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, prefix + node.name + ".")
        else:
            yield from _functions(node, prefix)


def timing_findings(path: Path) -> list[tuple[str, int, str]]:
    """``(qualified name, line, what)`` for each sleep and each timed assert in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = _imported_names(tree)
    found = []
    for qualname, function in _functions(tree):
        check = _FunctionCheck(names)
        for statement in function.body:
            check.visit(statement)
        found += [(qualname, line, what) for line, what in check.found]
    return found


def _all_findings() -> list[tuple[str, int, str]]:
    """``(path::qualified name, line, what)`` for every function under tests/."""
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        found += [(f"{relative}::{name}", line, what) for name, line, what in timing_findings(path)]
    return found


def test_no_test_sleeps_or_times_a_window() -> None:
    refused = [f"{key}:{line}: {what}" for key, line, what in _all_findings() if key not in ALLOWED]
    assert not refused, "wait for an event or move the clock instead:\n" + "\n".join(refused)


def test_every_allowed_entry_still_needs_it() -> None:
    found = {key for key, _, _ in _all_findings()}
    stale = [entry for entry in ALLOWED if entry not in found]
    assert not stale, f"allowed, but no longer sleeps or times anything: {stale}"


#: A test module that sleeps and times windows, and one test that waits for an event properly.
PLANTED = """\
import time
from asyncio import sleep as nap

def test_waits_and_times():
    started = time.monotonic()
    time.sleep(1)
    assert time.monotonic() - started < 2

async def test_naps():
    await nap(0.1)

class TestTimed:
    def test_elapsed(self):
        t0 = time.perf_counter()
        elapsed = time.perf_counter() - t0
        assert 0.5 <= elapsed

def test_waits_for_an_event_with_a_deadline():
    deadline = time.monotonic() + 5
    assert time.monotonic() < deadline
"""


def test_the_check_sees_sleeps_and_timed_asserts(tmp_path: Path) -> None:
    planted = tmp_path / "test_planted.py"
    planted.write_text(PLANTED)
    assert timing_findings(planted) == [
        ("test_waits_and_times", 6, "calls time.sleep"),
        ("test_waits_and_times", 7, "asserts how long something took"),
        ("test_naps", 10, "calls asyncio.sleep"),
        ("TestTimed.test_elapsed", 16, "asserts how long something took"),
    ]
