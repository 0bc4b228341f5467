"""The effect measures: the one place that knows each measure code and what follows from it.

Everything else (the effect-size kernels, the analysis pipeline, the command line, the upload
validator, the data dictionary's choices, the portal and its plots) reads this registry, so a
measure added or corrected here is added or corrected everywhere. ``tests/platform/test_concepts.py``
checks that no other module lists measure codes.

Column names are metafor's ``escalc()`` argument names. A measure's ``groups`` are requirement
groups: each must be satisfied by one of its columns, the first being the preferred one (2x2 tables
accept the group size instead of the non-events, ``bi`` or ``n1i``; proportions the non-events
instead of the sample size, ``ni`` or ``mi``; GEN the standard error instead of the variance).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

Family = Literal["table", "person_time", "means", "correlation", "proportion", "generic"]

_TABLE = (("ai",), ("bi", "n1i"), ("ci",), ("di", "n2i"))
_TABLE_CELLS = ("ai", "bi", "ci", "di")
_PERSON_TIME = ("x1i", "t1i", "x2i", "t2i")
_MEANS_COLUMNS = ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")
_MEANS = tuple((c,) for c in _MEANS_COLUMNS)


@dataclasses.dataclass(frozen=True)
class Measure:
    """One effect measure.

    Attributes
    ----------
    code : str
        metafor's measure code.
    title : str
        Display name, as the data dictionary offers it ("Log odds ratio").
    label : str
        The measure in a sentence, with its code ("odds ratio (OR)"): upload messages use it.
    family : str
        The kind of input and the effect-size kernel that reads it.
    groups : tuple of tuple of str
        Requirement groups of input columns (see the module docstring).
    yi_inputs, vi_inputs : tuple of str
        The columns the effect size and its variance depend on: a missing value there propagates
        to ``NA`` exactly where metafor's does, and nowhere else.
    log_scale : bool
        Estimated on the log scale (ratios); reports add the back-transformed estimate.
    ratio_label : str or None
        The name of the back-transformed ratio, for log-scale measures.
    mantel_haenszel : bool
        Pooled by the Mantel-Haenszel method as well (metafor's ``rma.mh``).
    mantel_haenszel_tests : tuple of str
        The tests of the pooled tables ``rma.mh`` reports for this measure: Cochran's (CO), the
        Cochran-Mantel-Haenszel (MH), Breslow-Day (BD) and Tarone's (TA) test.
    peto : bool
        Pooled by Peto's method as well (metafor's ``rma.peto``).
    outcome : bool
        Offered to consortium outcomes (PETO and IRD are computed but not offered).
    min_n : int
        Smallest group or total sample size an upload accepts: means need 2 per group (an SD needs
        two observations); correlations 4 (the sampling variance needs ``ni > 3``); 2x2 tables
        given by group size 1; everything else 2.
    positive_means : bool
        Means must be greater than 0 (the log ratio of means).
    """

    code: str
    title: str
    label: str
    family: Family
    groups: tuple[tuple[str, ...], ...]
    yi_inputs: tuple[str, ...]
    vi_inputs: tuple[str, ...]
    log_scale: bool = False
    ratio_label: str | None = None
    mantel_haenszel: bool = False
    mantel_haenszel_tests: tuple[str, ...] = ()
    peto: bool = False
    outcome: bool = True
    min_n: int = 2
    positive_means: bool = False

    @property
    def statistics(self) -> tuple[str, ...]:
        """Every column the measure reads, preferred alternatives first."""
        firsts = [g[0] for g in self.groups]
        rest = [c for g in self.groups for c in g[1:] if c not in firsts]
        return tuple(firsts + rest)

    @property
    def required(self) -> tuple[str, ...]:
        """The preferred column of each requirement group."""
        return tuple(g[0] for g in self.groups)

    def back_transform(self, value: float) -> float:
        """The estimate on the scale readers use: the ratio for log-scale measures."""
        return math.exp(value) if self.log_scale else value


def _table_measure(code: str, title: str, label: str, **options: Any) -> Measure:
    """A measure of 2x2 tables: every cell feeds both the effect and its variance; a group may be
    given by its size (then its smallest size is 1)."""
    return Measure(code, title, label, "table", _TABLE, _TABLE_CELLS, _TABLE_CELLS, min_n=1, **options)


#: Every measure, in the order the data dictionary offers them.
REGISTRY: Mapping[str, Measure] = {
    m.code: m
    for m in (
        Measure(
            "SMD",
            "Standardised mean difference (Hedges' g)",
            "standardised mean difference (SMD)",
            "means",
            _MEANS,
            _MEANS_COLUMNS,
            _MEANS_COLUMNS,
        ),
        Measure(
            "MD",
            "Mean difference",
            "mean difference (MD)",
            "means",
            _MEANS,
            ("m1i", "m2i"),
            ("sd1i", "n1i", "sd2i", "n2i"),
        ),
        Measure(
            "ROM",
            "Log ratio of means",
            "ratio of means (ROM)",
            "means",
            _MEANS,
            yi_inputs=("m1i", "m2i"),
            vi_inputs=_MEANS_COLUMNS,
            log_scale=True,
            ratio_label="ratio of means",
            positive_means=True,
        ),
        _table_measure(
            "OR",
            "Log odds ratio",
            "odds ratio (OR)",
            log_scale=True,
            ratio_label="OR",
            mantel_haenszel=True,
            mantel_haenszel_tests=("CO", "MH", "BD", "TA"),
            peto=True,
        ),
        _table_measure(
            "RR", "Log risk ratio", "risk ratio (RR)", log_scale=True, ratio_label="RR", mantel_haenszel=True
        ),
        _table_measure("RD", "Risk difference", "risk difference (RD)", mantel_haenszel=True),
        Measure(
            "COR",
            "Correlation",
            "correlation (COR)",
            "correlation",
            (("ri",), ("ni",)),
            ("ri",),
            ("ri", "ni"),
            min_n=4,
        ),
        Measure(
            "ZCOR",
            "Fisher's z-transformed correlation",
            "Fisher's z-transformed correlation (ZCOR)",
            "correlation",
            (("ri",), ("ni",)),
            ("ri",),
            ("ni",),
            min_n=4,
        ),
        Measure(
            "PR",
            "Proportion",
            "proportion (PR)",
            "proportion",
            (("xi",), ("ni", "mi")),
            ("xi", "mi"),
            ("xi", "mi"),
        ),
        Measure(
            "PLO",
            "Logit proportion",
            "log odds of a proportion (PLO)",
            "proportion",
            (("xi",), ("ni", "mi")),
            ("xi", "mi"),
            ("xi", "mi"),
        ),
        Measure(
            "IRR",
            "Log incidence rate ratio",
            "incidence rate ratio (IRR)",
            "person_time",
            tuple((c,) for c in _PERSON_TIME),
            yi_inputs=_PERSON_TIME,
            vi_inputs=("x1i", "x2i"),
            log_scale=True,
            ratio_label="IRR",
            mantel_haenszel=True,
            mantel_haenszel_tests=("MH",),
        ),
        Measure(
            "GEN",
            "Precomputed effect size (yi, vi)",
            "precomputed effect size (GEN)",
            "generic",
            (("yi",), ("vi", "sei")),
            ("yi",),
            ("vi",),
        ),
        _table_measure(
            "PETO",
            "Log odds ratio (Peto's method)",
            "Peto's odds ratio (PETO)",
            log_scale=True,
            ratio_label="OR",
            outcome=False,
        ),
        Measure(
            "IRD",
            "Incidence rate difference",
            "incidence rate difference (IRD)",
            "person_time",
            tuple((c,) for c in _PERSON_TIME),
            _PERSON_TIME,
            _PERSON_TIME,
            mantel_haenszel=True,
            outcome=False,
        ),
    )
}

#: Codes a consortium outcome (and an analysis specification) may use.
OUTCOME_MEASURES: tuple[str, ...] = tuple(code for code, m in REGISTRY.items() if m.outcome)

#: Codes with a Mantel-Haenszel estimator.
MANTEL_HAENSZEL_MEASURES: tuple[str, ...] = tuple(code for code, m in REGISTRY.items() if m.mantel_haenszel)

#: Each test of the pooled tables ``rma.mh`` reports, with the measures it is reported for.
MANTEL_HAENSZEL_TESTS: Mapping[str, tuple[str, ...]] = {
    test: tuple(code for code, m in REGISTRY.items() if test in m.mantel_haenszel_tests)
    for test in ("CO", "MH", "BD", "TA")
}


def get(code: str) -> Measure:
    """The measure with this code; ``KeyError`` for an unknown one."""
    return REGISTRY[code]


def is_log_scale(code: str) -> bool:
    """Whether the measure's estimates are on the log scale (unknown codes are not)."""
    measure = REGISTRY.get(code)
    return measure is not None and measure.log_scale
