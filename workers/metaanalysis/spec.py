"""What to compute for one outcome: :class:`AnalysisSpec`, its JSON form and its hash.

The one codec of an analysis specification: the platform stores ``to_dict()``, rebuilds the spec
with ``from_dict()`` and identifies it by :func:`spec_hash`, the same digest a partner can compute
outside the platform from a stored result's ``spec``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidInputError
from .estimators import METHODS, TESTS
from .measures import OUTCOME_MEASURES

__all__ = [
    "CHOICES",
    "DEPENDENCE_MODELS",
    "LATEST",
    "LEVEL_MIN",
    "MAX_MODS",
    "RHO_SENSITIVITY",
    "SETTINGS",
    "AnalysisSpec",
    "check_choice",
    "check_flag",
    "check_level",
    "check_model",
    "check_mods",
    "check_multilevel",
    "check_rho",
    "spec_hash",
]

#: How several effects of one study are handled (see docs/engine.md, "Dependent effects"):
#: ``auto`` chooses ``che`` with cluster-robust (CR2) tests when any study has more than one row
#: after the row selection, and ``none`` otherwise; ``none`` treats rows as independent studies
#: (with several rows per study only together with cluster-robust tests); ``aggregate`` pools each
#: study's rows first (compound symmetry, ``rho``); ``multilevel`` fits the three-level model;
#: ``che`` the correlated-and-hierarchical-effects model (three levels, sampling errors
#: correlated ``rho`` within a study).
DEPENDENCE_MODELS: tuple[str, ...] = ("auto", "none", "aggregate", "multilevel", "che")

#: The ``timepoint`` that keeps, per study, the rows of its latest time point.
LATEST = "latest"

#: The assumed within-study correlations the sensitivity analysis reports the pooled estimate at.
RHO_SENSITIVITY: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)

# --- the rules of each setting ------------------------------------------------------------------
# One home for them: ``AnalysisSpec`` applies them when it is built, the platform's settings form
# and API (``apps.analyses.services.analysis_validate``) apply them field by field, and the
# estimators and the command line check a level with :func:`check_level`.

#: The settings an analysis chooses; the rest of a specification (``measure``, ``timepoints``,
#: ``reverse_instruments``) comes from the outcome's data dictionary.
SETTINGS: tuple[str, ...] = (
    "method",
    "test",
    "level",
    "mods",
    "subgroup",
    "cumulative_order",
    "sensitivity",
    "bias",
    "dependence",
    "rho",
    "robust",
    "timepoint",
    "instruments",
)

#: The values each choice takes, and what a message calls the setting.
CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "measure": (OUTCOME_MEASURES, "measure"),
    "method": (METHODS, "method"),
    "test": (TESTS, "test"),
    "dependence": (DEPENDENCE_MODELS, "dependence model"),
}

#: A confidence level is a percentage from LEVEL_MIN up to, not including, 100: below 50 % an
#: interval is narrower than it is likely to miss.
LEVEL_MIN = 50.0

#: The most moderators one meta-regression takes.
MAX_MODS = 10

#: Dependence models fitted as three-level models (by ML or REML, tested with z or t).
MULTILEVEL_MODELS = ("multilevel", "che")

#: The estimators that maximise a likelihood: the only ones a multilevel model is fitted by.
LIKELIHOOD_METHODS = ("ML", "REML")


def _refuse(name: str, message: str) -> InvalidInputError:
    return InvalidInputError(message, code=f"invalid_{name}", column=name)


def check_choice(name: str, value: Any) -> str:
    """``value`` if it is one of the choices of setting ``name`` (:data:`CHOICES`)."""
    allowed, what = CHOICES[name]
    if not isinstance(value, str) or value not in allowed:
        raise _refuse(name, f"unknown {what} {value!r}; use one of {', '.join(allowed)}")
    return value


def check_level(value: Any) -> float:
    """A confidence level in percent (:data:`LEVEL_MIN` <= level < 100) as a float."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not LEVEL_MIN <= value < 100
    ):
        raise _refuse(
            "level",
            f"level must be a percentage between {LEVEL_MIN:g} and 100 (e.g. 95; 100 itself is no level), got {value!r}",
        )
    return float(value)


def check_rho(value: Any) -> float:
    """An assumed correlation of two sampling errors of one study: -1 < rho < 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1 < value < 1:
        raise _refuse(
            "rho", f"rho must be a correlation between -1 and 1 (exclusive), e.g. 0.6, got {value!r}"
        )
    return float(value)


def check_mods(value: Any) -> tuple[str, ...]:
    """The moderators of a meta-regression: distinct column names, at most :data:`MAX_MODS`."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise _refuse("mods", "mods must be a list of column names")
    if not all(isinstance(m, str) and m for m in value):
        raise _refuse("mods", "mods must be non-empty column names")
    if len(value) > MAX_MODS:
        raise _refuse("mods", f"a meta-regression takes at most {MAX_MODS} moderators")
    if len(set(value)) != len(value):
        raise _refuse("mods", "mods lists a column twice")
    return tuple(value)


def check_flag(name: str, value: Any) -> bool:
    """A setting that is true or false."""
    if not isinstance(value, bool):
        raise _refuse(name, f"{name} must be true or false")
    return value


def check_model(*, dependence: str, method: str, test: str) -> None:
    """The settings that depend on each other: a three-level model (:data:`MULTILEVEL_MODELS`)
    is fitted by ML or REML and tested with z or t (Knapp-Hartung is for one-level models)."""
    if dependence in MULTILEVEL_MODELS:
        check_multilevel(method=method, test=test)


def check_multilevel(*, method: str, test: str) -> None:
    """A multilevel model's estimator (:data:`LIKELIHOOD_METHODS`) and test (z or t)."""
    if method not in LIKELIHOOD_METHODS:
        raise _refuse("method", f"multilevel models use ML or REML, not {method!r}")
    if test not in ("z", "t"):
        raise _refuse(
            "test",
            f"multilevel models use the z or t test, not {test!r} (Knapp-Hartung is for one-level models)",
        )


@dataclasses.dataclass(frozen=True)
class AnalysisSpec:
    """What to compute for one outcome.

    Attributes
    ----------
    measure : str
        metafor's effect-size measure (``SMD``, ``OR``, ..., ``GEN`` for given yi/vi).
    method : str
        tau² estimator (``REML`` default; ``EE`` for the equal-effects model).
    test : str
        ``z`` or ``knha`` (Knapp-Hartung); ``t`` is accepted too.
    level : float
        Confidence level in percent.
    mods : tuple of str
        Moderator columns of a meta-regression (intercept added).
    subgroup : str or None
        Column defining subgroups for a subgroup analysis.
    cumulative_order : str or None
        Column to order the cumulative meta-analysis by (row order when None).
    sensitivity : bool
        Run leave-one-out, cumulative and influence diagnostics.
    bias : bool
        Run the publication-bias analyses (Egger, rank test, fail-safe N, trim-and-fill).
    dependence : str
        How several rows of one study are handled: one of :data:`DEPENDENCE_MODELS`.
    rho : float
        Assumed correlation of two sampling errors of one study (``aggregate`` and ``che``).
    robust : bool
        Report cluster-robust tests (CR2, with CR1 beside it) as the headline inference where a
        study has several rows.
    timepoint : str or None
        Which rows enter: None keeps every time point, a time point code keeps that one,
        ``"latest"`` keeps each study's latest (in the order of ``timepoints``).
    timepoints : tuple of str
        The data dictionary's time points, earliest first (what "latest" is judged by).
    instruments : tuple of str
        Preferred instruments, first choice first: each study (at each time point) keeps the rows
        of the first listed instrument it reports; empty keeps every instrument.
    reverse_instruments : tuple of str
        Instruments whose effects are sign-aligned before anything is pooled: their ``yi`` is
        negated (a log ratio inverted), because a higher score on them means the opposite of what
        the outcome's direction says (a problem count in an outcome where higher is better). Only
        for measures whose sign carries the direction (differences of means, mean changes,
        correlations, given effect sizes). Left out of the JSON form when empty, so that the hash
        of a specification without it is what it always was.
    """

    measure: str
    method: str = "REML"
    test: str = "z"
    level: float = 95.0
    mods: tuple[str, ...] = ()
    subgroup: str | None = None
    cumulative_order: str | None = None
    sensitivity: bool = True
    bias: bool = True
    dependence: str = "auto"
    rho: float = 0.6
    robust: bool = True
    timepoint: str | None = None
    timepoints: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    reverse_instruments: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in CHOICES:
            check_choice(name, getattr(self, name))
        object.__setattr__(self, "level", check_level(self.level))
        object.__setattr__(self, "mods", check_mods(self.mods))
        for name in ("subgroup", "cumulative_order"):
            val = getattr(self, name)
            if val is not None and (not isinstance(val, str) or not val):
                raise _refuse(name, f"{name} must be a column name or None")
        for name in ("sensitivity", "bias", "robust"):
            check_flag(name, getattr(self, name))
        object.__setattr__(self, "rho", check_rho(self.rho))
        check_model(dependence=self.dependence, method=self.method, test=self.test)
        for name in ("timepoints", "instruments", "reverse_instruments"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise _refuse(name, f"{name} must be a list of codes")
            object.__setattr__(self, name, tuple(value))
        tp = self.timepoint
        if tp is not None and (not isinstance(tp, str) or not tp):
            raise _refuse("timepoint", 'timepoint must be a time point code, "latest" or null')
        if tp == LATEST and not self.timepoints:
            raise _refuse("timepoint", 'timepoint "latest" needs the time points in order (timepoints)')

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-ready form of the spec."""
        return {
            "measure": self.measure,
            "method": self.method,
            "test": self.test,
            "level": self.level,
            "mods": list(self.mods),
            "subgroup": self.subgroup,
            "cumulative_order": self.cumulative_order,
            "sensitivity": self.sensitivity,
            "bias": self.bias,
            "dependence": self.dependence,
            "rho": self.rho,
            "robust": self.robust,
            "timepoint": self.timepoint,
            "timepoints": list(self.timepoints),
            "instruments": list(self.instruments),
            **({"reverse_instruments": list(self.reverse_instruments)} if self.reverse_instruments else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnalysisSpec:
        """Build a spec from its ``to_dict()`` form (unknown keys are refused)."""
        known = {f.name for f in dataclasses.fields(cls)}
        extra = set(data) - known
        if extra:
            raise InvalidInputError(f"unknown spec field(s): {', '.join(sorted(extra))}", code="invalid_spec")
        kwargs = dict(data)
        for name in ("mods", "timepoints", "instruments", "reverse_instruments"):
            if isinstance(kwargs.get(name), list):
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)

    def spec_hash(self) -> str:
        """sha256 of the canonical JSON (see :func:`spec_hash`)."""
        return spec_hash(self.to_dict())


def spec_hash(spec: Mapping[str, Any]) -> str:
    """sha256 of a specification's canonical JSON: sorted keys, no whitespace, ASCII.

    The one hash of a specification, for the engine and the platform alike, so that a stored
    result's ``spec_hash`` can be reproduced from its ``spec`` outside the platform.
    """
    canonical = json.dumps(dict(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
