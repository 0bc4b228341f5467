"""A worker whose every recompute lasts at least ``SLOW_WORKER_PAUSE_SECONDS`` (1.5 by default),
for the fault-injection tests: started as ``celery -A tests.integration.slow_worker worker``, it
gives a test time to kill it in the middle of a recompute. The platform's own worker has no such
pause."""

from __future__ import annotations

import os
import time
from typing import Any

from workers.celery import app  # noqa: F401  (Django set up, the tasks registered)

_PAUSE = float(os.environ.get("SLOW_WORKER_PAUSE_SECONDS", "1.5"))


def _slow_down_every_recompute() -> None:
    # imported here, after ``workers.celery`` has set Django up
    from apps.analyses import services

    compute = services._compute

    def _slow_compute(analysis: Any, rows: Any) -> Any:
        time.sleep(_PAUSE)  # a computation that takes this long
        return compute(analysis, rows)

    services._compute = _slow_compute  # type: ignore[assignment]


_slow_down_every_recompute()
