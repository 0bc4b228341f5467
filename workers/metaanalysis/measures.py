"""The effect measures: the one place that knows each measure code and what follows from it.

Everything else (the effect-size kernels, the analysis pipeline, the command line, the upload
validator, the data dictionary's choices, the portal and its plots) reads this registry, so a
measure added or corrected here is added or corrected everywhere. ``tests/platform/test_concepts.py``
checks that no other module lists measure codes.

Column names are metafor's ``escalc()`` argument names. A measure's ``groups`` are requirement
groups: each must be satisfied by one of its columns, the first being the preferred one (2x2 tables
accept the group size instead of the non-events, ``bi`` or ``n1i``; proportions the non-events
instead of the sample size, ``ni`` or ``mi``; GEN the standard error instead of the variance).
The same names mean different things in different families, as in metafor: ``di`` is a cell of a
2x2 table for OR but Cohen's d for SMD; ``mi`` the non-events of a proportion but the mean of MN;
for the change-score measures (SMCR, SMCC, MC) ``m1i`` is the post-test mean, ``m2i`` the pre-test
mean, ``sd1i`` the pre-test SD and ``ri`` the pre-post correlation.

Input forms. A row may give its effect size in several ways; :attr:`Measure.forms` lists them as
:class:`InputForm` objects, in order of precedence, and each row is computed from the first form
it has complete (every requirement group of the form has a value in that row):

1. ``yi_vi``: ``yi`` with ``vi``, used as given (every measure);
2. ``yi_sei``: ``yi`` with ``sei``, ``vi = sei**2`` (every measure);
3. the measure's reported-statistic forms, :attr:`Measure.reported_forms` (SMD only: ``di``,
   Cohen's d with ``n1i n2i``; then ``ti``, an independent-samples t with ``n1i n2i``);
4. ``raw``: the measure's own inputs, its ``groups`` (GEN has none beyond 1 and 2).

A row with no complete form gets no usable effect size (``workers.metaanalysis.input_forms``
selects the form and words what was used).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal

Family = Literal["table", "person_time", "means", "change", "mean", "correlation", "proportion", "generic"]

_TABLE = (("ai",), ("bi", "n1i"), ("ci",), ("di", "n2i"))
_TABLE_CELLS = ("ai", "bi", "ci", "di")
_PERSON_TIME = ("x1i", "t1i", "x2i", "t2i")
_MEANS_COLUMNS = ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")
_MEANS = tuple((c,) for c in _MEANS_COLUMNS)
_CHANGE_COLUMNS = ("m1i", "m2i", "sd1i", "sd2i", "ni", "ri")
_CHANGE = tuple((c,) for c in _CHANGE_COLUMNS)
_MEAN_COLUMNS = ("mi", "sdi", "ni")


@dataclasses.dataclass(frozen=True)
class InputForm:
    """One complete set of inputs a row may give (see "Input forms" in the module docstring).

    Attributes
    ----------
    code : str
        ``yi_vi``, ``yi_sei``, ``di``, ``ti`` or ``raw``: what :attr:`EffectSizes.forms
        <workers.metaanalysis.effect_sizes.EffectSizes.forms>` records per row.
    groups : tuple of tuple of str
        Requirement groups, as :attr:`Measure.groups`: the form is complete in a row when each
        group has a value in one of its columns.
    label : str
        What the inputs are, in words ("Cohen's d", "means and SDs").
    """

    code: str
    groups: tuple[tuple[str, ...], ...]
    label: str

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the form reads, preferred alternatives first."""
        firsts = [g[0] for g in self.groups]
        return tuple(firsts + [c for g in self.groups for c in g[1:] if c not in firsts])


#: The forms every measure accepts first: an effect size given with its variance or its SE.
GIVEN_FORMS: tuple[InputForm, ...] = (
    InputForm("yi_vi", (("yi",), ("vi",)), "a given effect size and variance"),
    InputForm("yi_sei", (("yi",), ("sei",)), "a given effect size and standard error"),
)

#: SMD's reported statistics (metafor's ``di`` and ``ti`` arguments of ``escalc()``).
_SMD_REPORTED: tuple[InputForm, ...] = (
    InputForm("di", (("di",), ("n1i",), ("n2i",)), "Cohen's d"),
    InputForm("ti", (("ti",), ("n1i",), ("n2i",)), "an independent-samples t statistic"),
)

#: What a family's raw inputs are, in words (the ``raw`` form's label).
_RAW_LABELS: Mapping[str, str] = {
    "table": "a 2x2 table",
    "person_time": "events and person-time",
    "means": "means and SDs",
    "change": "pre/post means and SDs",
    "mean": "a mean and SD",
    "correlation": "a correlation",
    "proportion": "events and sample size",
    "generic": "a given effect size",
}


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
        Smallest group or total sample size a stored row may hold: means need 2 per group (an SD
        needs two observations); correlations 4 (the sampling variance needs ``ni > 3``);
        standardised mean changes 3 (the bias correction ``J(ni - 1)`` needs ``ni > 2``); 2x2
        tables given by group size 1; everything else 2. :mod:`workers.metaanalysis.domains`
        makes it the sample sizes' accepted limit.
    positive_means : bool
        Means must be greater than 0 (the log ratio of means); the means' accepted limit in
        :mod:`workers.metaanalysis.domains`.
    reported_forms : tuple of InputForm
        Reported-statistic input forms tried after the given effect size and before the raw
        inputs (see :attr:`forms`).
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
    reported_forms: tuple[InputForm, ...] = ()

    @property
    def forms(self) -> tuple[InputForm, ...]:
        """Every input form, in order of precedence (see the module docstring)."""
        if self.family == "generic":
            return GIVEN_FORMS
        return (*GIVEN_FORMS, *self.reported_forms, InputForm("raw", self.groups, _RAW_LABELS[self.family]))

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
            reported_forms=_SMD_REPORTED,
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
        # Bonett (2008): standardised by the unweighted average of the two variances
        Measure(
            "SMDH",
            "Standardised mean difference, unequal variances (Bonett)",
            "standardised mean difference with heteroscedastic variances (SMDH)",
            "means",
            _MEANS,
            _MEANS_COLUMNS,
            _MEANS_COLUMNS,
        ),
        # change scores (Morris 2008); the bias correction J(ni - 1) needs ni > 2
        Measure(
            "SMCR",
            "Standardised mean change (raw-score standardisation)",
            "standardised mean change with raw-score standardisation (SMCR)",
            "change",
            (("m1i",), ("m2i",), ("sd1i",), ("ni",), ("ri",)),
            ("m1i", "m2i", "sd1i", "ni"),
            ("m1i", "m2i", "sd1i", "ni", "ri"),
            min_n=3,
            outcome=True,
        ),
        Measure(
            "SMCC",
            "Standardised mean change (change-score standardisation)",
            "standardised mean change with change-score standardisation (SMCC)",
            "change",
            _CHANGE,
            _CHANGE_COLUMNS,
            _CHANGE_COLUMNS,
            min_n=3,
            outcome=True,
        ),
        Measure(
            "MC",
            "Mean change",
            "raw mean change (MC)",
            "change",
            _CHANGE,
            ("m1i", "m2i"),
            ("sd1i", "sd2i", "ni", "ri"),
            outcome=True,
        ),
        Measure(
            "MN",
            "Mean",
            "raw mean (MN)",
            "mean",
            tuple((c,) for c in _MEAN_COLUMNS),
            ("mi",),
            ("sdi", "ni"),
            outcome=True,
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
