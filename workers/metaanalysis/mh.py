"""Short names for Mantel-Haenszel and Peto pooling; see :mod:`workers.metaanalysis.mantel_haenszel`."""

from __future__ import annotations

from typing import Any

from .mantel_haenszel import MH_MEASURES, MantelHaenszelResult, PetoResult, rma_mh, rma_peto

__all__ = [
    "MH_MEASURES",
    "MantelHaenszelResult",
    "PetoResult",
    "mantel_haenszel",
    "peto",
    "rma_mh",
    "rma_peto",
]


def mantel_haenszel(
    measure: str, ai: Any, bi: Any, ci: Any, di: Any, *, level: float = 95.0
) -> MantelHaenszelResult:
    """Mantel-Haenszel pooling of 2x2 tables (metafor ``rma.mh``)."""
    return rma_mh(measure, {"ai": ai, "bi": bi, "ci": ci, "di": di}, level=level)


def peto(ai: Any, bi: Any, ci: Any, di: Any, *, level: float = 95.0) -> PetoResult:
    """Peto's one-step log odds ratio (metafor ``rma.peto``)."""
    return rma_peto({"ai": ai, "bi": bi, "ci": ci, "di": di}, level=level)
